//! Explicit cases of bad, cut and hostile input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use telegaz_domain::{ArchiveKind, Check, ParsedFile};
use telegaz_lis200::{looks_like, parse};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/samples/lis200");

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{SAMPLES}/{name}")).unwrap()
}

const SOH: u8 = 0x01;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
const EOT: u8 = 0x04;
const ACK: u8 = 0x06;
const NAK: u8 = 0x15;

fn row(no: u32, hour: u32, vb: &str) -> String {
    format!(
        "({no})(2026-03-02,{hour:02}:00:00)({vb})({vb})({vb})({vb})(11.03)(104.1960)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n"
    )
}

fn bcc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// `STX data end BCC`, with the BCC right unless `corrupt`.
fn block(data: &str, end: u8, corrupt: bool) -> Vec<u8> {
    let mut v = vec![STX];
    v.extend_from_slice(data.as_bytes());
    v.push(end);
    v.push(bcc(&v[1..]) ^ u8::from(corrupt));
    v
}

/// `SOH cmd STX data ETX BCC`.
fn command(cmd: &str, data: &str) -> Vec<u8> {
    let mut v = vec![SOH];
    v.extend_from_slice(cmd.as_bytes());
    v.push(STX);
    v.extend_from_slice(data.as_bytes());
    v.push(ETX);
    v.push(bcc(&v[1..]));
    v
}

fn session_start() -> Vec<u8> {
    let mut v = b"/?!\r\n/ELS6TC220\r\n\x06051\r\n".to_vec();
    v.extend(command("P0", "(7654321)"));
    v
}

fn r3() -> Vec<u8> {
    command("R3", "3:V.0(2;2026-03-02,10:00:00;2026-03-02,17:00:00;6)")
}

fn hours(p: &ParsedFile) -> Vec<i8> {
    p.records.iter().map(|r| r.local_time.hour()).collect()
}

#[test]
fn two_hundred_kilobytes_of_open_parentheses() {
    let input = vec![b'('; 200 * 1024];
    assert!(!looks_like(&input));
    let err = parse(&input).unwrap_err();
    assert!(err.reason.contains("line 1"), "{err}");
    assert!(err.reason.contains("longer than any LIS-200 row"), "{err}");
    // Between good rows it is only a skipped line.
    let mut mixed = row(1, 11, "1.0").into_bytes();
    mixed.extend(&input);
    mixed.extend(b"\r\n");
    mixed.extend(row(2, 12, "2.0").into_bytes());
    let p = parse(&mixed).unwrap();
    assert_eq!(p.records.len(), 2);
    assert!(!p.truncated);
}

#[test]
fn a_hundred_kilobyte_field() {
    let huge = format!(
        "(2)(2026-03-02,12:00:00)({})(1)(1)(1)(11.03)(104.1960)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n",
        "9".repeat(100 * 1024)
    );
    let text = format!("{}{huge}{}", row(1, 11, "1.0"), row(3, 13, "3.0"));
    let p = parse(text.as_bytes()).unwrap();
    assert_eq!(hours(&p), [11, 13]);
    assert!(
        p.warnings.iter().any(|w| w.starts_with("line 2: ")),
        "{:?}",
        p.warnings
    );
    assert!(parse(huge.as_bytes()).is_err());
    // A huge field at the very end, cut off: the earlier rows stay.
    let cut = format!(
        "{}(2)(2026-03-02,12:00:00)({}",
        row(1, 11, "1.0"),
        "9".repeat(100 * 1024)
    );
    let p = parse(cut.as_bytes()).unwrap();
    assert_eq!(p.records.len(), 1);
    assert!(p.truncated);
}

#[test]
fn empty_input() {
    let err = parse(b"").unwrap_err();
    assert!(err.reason.starts_with("empty file"), "{err}");
    assert!(!looks_like(b""));
}

#[test]
fn random_looking_garbage_is_unrecognised() {
    let garbage: Vec<u8> = (0u32..50_000)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(parse(&garbage).is_err());
    let text = "hello\nworld\n(((\n)))\n";
    let err = parse(text.as_bytes()).unwrap_err();
    assert!(
        err.reason.starts_with("no usable LIS-200 rows: line 1"),
        "{err}"
    );
}

#[test]
fn warnings_are_bounded() {
    let mut text = String::new();
    for _ in 0..10_000 {
        text.push_str("(1)(2026-02-30,11:00:00)(0x2007)(CRC Ok)\r\n");
    }
    text.push_str("(2)(2026-02-28,11:00:00)(0x2007)(CRC Ok)\r\n");
    let p = parse(text.as_bytes()).unwrap();
    assert_eq!(p.events.len(), 1);
    assert!(p.warnings.len() <= 102, "{}", p.warnings.len());
    assert!(p.warnings.iter().any(|w| w.contains("9900 more")));
}

#[test]
fn row_with_a_failed_check_is_kept_but_not_usable() {
    let text = format!(
        "{}{}",
        row(1, 11, "1.0"),
        row(2, 12, "2.0").replace("CRC Ok", "CRC Error")
    );
    let p = parse(text.as_bytes()).unwrap();
    assert_eq!(p.records.len(), 2);
    assert_eq!(p.records[0].check, Check::Ok);
    assert_eq!(p.records[1].check, Check::Failed("CRC Error".into()));
    assert!(!p.records[1].check.usable());
}

#[test]
fn impossible_date() {
    let bad = "(2)(2026-02-30,12:00:00)(2.0)(2.0)(2.0)(2.0)(11.03)(104.1960)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n";
    let text = format!("{}{}{bad}", row(1, 11, "1.0"), row(3, 13, "3.0"));
    let p = parse(text.as_bytes()).unwrap();
    assert_eq!(hours(&p), [11, 13]);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.starts_with("line 3: date 2026-02-30 does not exist")),
        "{:?}",
        p.warnings
    );
    let err = parse(bad.as_bytes()).unwrap_err();
    assert!(
        err.reason
            .contains("line 1: date 2026-02-30 does not exist"),
        "{err}"
    );
}

#[test]
fn error_reply_0103() {
    // The only answer is "archive empty": nothing to keep, and the reason says why.
    let mut capture = session_start();
    capture.extend(r3());
    capture.extend(block("(#0103)", ETX, false));
    capture.extend(command("B0", ""));
    let err = parse(&capture).unwrap_err();
    assert!(err.reason.contains("#0103 (archive empty)"), "{err}");

    // An error reply to one request does not spoil the data of another.
    let mut capture = session_start();
    capture.extend(command("R3", "1:V.0(2;;;1)"));
    capture.extend(block("#0103", ETX, false));
    capture.extend(r3());
    capture.extend(block(&row(1, 11, "1.0"), ETX, false));
    let p = parse(&capture).unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.meta.serial.as_deref(), Some("7654321"));
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("#0103 (archive empty) to R3 1:V.0")),
        "{:?}",
        p.warnings
    );

    // In clean text too.
    let text = format!("#0103\r\n{}", row(1, 11, "1.0"));
    let p = parse(text.as_bytes()).unwrap();
    assert_eq!(p.records.len(), 1);
    assert!(p.warnings[0].starts_with("line 1: the device replied #0103"));
}

fn three_blocks(corrupt_middle: bool, after_middle: &[u8]) -> Vec<u8> {
    let mut capture = session_start();
    capture.extend(r3());
    capture.extend(block(&(row(1, 11, "1.0") + &row(2, 12, "2.0")), EOT, false));
    capture.push(ACK);
    capture.extend(block(
        &(row(3, 13, "3.0") + &row(4, 14, "4.0")),
        EOT,
        corrupt_middle,
    ));
    capture.extend(after_middle);
    capture.extend(block(&(row(5, 15, "5.0") + &row(6, 16, "6.0")), ETX, false));
    capture.push(ACK);
    capture.extend(command("B0", ""));
    capture
}

#[test]
fn block_with_a_bad_bcc_is_not_used() {
    let good = parse(&three_blocks(false, &[ACK])).unwrap();
    assert_eq!(hours(&good), [11, 12, 13, 14, 15, 16]);
    assert!(good.warnings.is_empty(), "{:?}", good.warnings);

    let p = parse(&three_blocks(true, &[ACK])).unwrap();
    assert_eq!(p.format, "lis200-serial");
    assert_eq!(hours(&p), [11, 12, 15, 16]);
    assert!(!p.truncated);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.contains("fails its block check") && w.contains("not used")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn bad_block_repeated_after_nak_loses_nothing() {
    let mut repeat = vec![NAK];
    repeat.extend(block(&(row(3, 13, "3.0") + &row(4, 14, "4.0")), EOT, false));
    repeat.push(ACK);
    let p = parse(&three_blocks(true, &repeat)).unwrap();
    assert_eq!(hours(&p), [11, 12, 13, 14, 15, 16]);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
}

#[test]
fn good_block_rejected_by_nak_is_not_counted_twice() {
    let mut repeat = vec![NAK];
    repeat.extend(block(&(row(3, 13, "3.0") + &row(4, 14, "4.0")), EOT, false));
    repeat.push(ACK);
    let p = parse(&three_blocks(false, &repeat)).unwrap();
    assert_eq!(hours(&p), [11, 12, 13, 14, 15, 16]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn a_row_may_straddle_two_blocks() {
    let text = row(1, 11, "1.0") + &row(2, 12, "2.0");
    let (a, b) = text.split_at(100);
    let mut capture = session_start();
    capture.extend(r3());
    capture.extend(block(a, EOT, false));
    capture.push(ACK);
    capture.extend(block(b, ETX, false));
    let p = parse(&capture).unwrap();
    assert_eq!(hours(&p), [11, 12]);
    assert!(!p.truncated);
}

#[test]
fn sample_capture_with_a_corrupted_middle_block() {
    let mut capture = sample("tc220_raw_serial_capture.bin");
    // A digit inside the second data block (rows 510–519) changes on the line.
    let at = capture.windows(5).position(|w| w == b"(510)").unwrap() + 2;
    capture[at] = b'7';
    let p = parse(&capture).unwrap();
    let nos: Vec<u64> = p.records.iter().filter_map(|r| r.record_no).collect();
    assert_eq!(p.records.len(), 20);
    assert!(nos.iter().all(|n| !(510..520).contains(n)), "{nos:?}");
    assert!(p.records.iter().all(|r| r.check == Check::Ok));
    assert!(!p.truncated);
}

#[test]
fn capture_cut_inside_a_block_keeps_flagged_rows() {
    let capture = sample("tc220_raw_serial_capture.bin");
    let at = capture.windows(5).position(|w| w == b"(525)").unwrap();
    let p = parse(&capture[..at + 3]).unwrap();
    assert!(p.truncated);
    let ok = p.records.iter().filter(|r| r.check == Check::Ok).count();
    let unverified: Vec<u64> = p
        .records
        .iter()
        .filter(|r| matches!(&r.check, Check::Failed(t) if t.contains("not verified")))
        .filter_map(|r| r.record_no)
        .collect();
    assert_eq!(ok, 20);
    assert_eq!(unverified, [520, 521, 522, 523, 524]);
}

#[test]
fn capture_recorded_with_parity_bits() {
    let clean = sample("tc220_raw_serial_capture.bin");
    let with_parity: Vec<u8> = clean
        .iter()
        .map(|&c| if c.count_ones() % 2 == 1 { c | 0x80 } else { c })
        .collect();
    assert!(looks_like(&with_parity));
    assert_eq!(parse(&with_parity).unwrap(), parse(&clean).unwrap());
}

#[test]
fn monthly_and_event_archives_by_request() {
    let mut capture = session_start();
    capture.extend(command("R3", "1:V.0(2;;;1)"));
    capture.extend(block(
        &row(1, 11, "1.0").replace("0x8104", "0x8105"),
        ETX,
        false,
    ));
    capture.extend(command("R3", "4:V.0(2;;;1)"));
    capture.extend(block(
        "(101)(2026-01-14,13:05:12)(0x2007)(CRC Ok)\r\n",
        ETX,
        false,
    ));
    let p = parse(&capture).unwrap();
    assert_eq!(p.records.len(), 1);
    assert_eq!(p.records[0].kind, ArchiveKind::Monthly);
    assert_eq!(p.events.len(), 1);
    assert_eq!(p.events[0].line, 2);
}

#[test]
fn serial_number_and_model_from_value_reads() {
    let mut capture = b"/?!\r\n/ELS6\r\n".to_vec();
    capture.extend(command("R1", "1:180.0(1)"));
    capture.extend(block("(98765)", ETX, false));
    capture.extend(command("R1", "1:181.0(1)"));
    capture.extend(block("(EK270)", ETX, false));
    capture.extend(r3());
    capture.extend(block(&row(1, 11, "1.0"), ETX, false));
    let p = parse(&capture).unwrap();
    assert_eq!(p.meta.serial.as_deref(), Some("98765"));
    assert_eq!(p.meta.model.as_deref(), Some("EK270"));
    // A ТС-shaped row from a device that says it is an ЕК: read, with a warning.
    assert_eq!(p.records.len(), 1);
    assert!(p.warnings.iter().any(|w| w.contains("identifies as EK270")));
}

#[test]
fn clean_text_with_a_stray_control_byte_stays_text() {
    let text = format!(
        "{}{}\x02{}",
        row(1, 11, "1.0"),
        row(2, 12, "2.0"),
        row(3, 13, "3.0")
    );
    let p = parse(text.as_bytes()).unwrap();
    assert_eq!(p.format, "lis200-text");
    assert_eq!(hours(&p), [11, 12]);
    assert!(
        p.warnings.iter().any(|w| w.starts_with("line 3: ")),
        "{:?}",
        p.warnings
    );
}
