//! Behaviour of profiles as a whole: TOML in, files in, records out.

use std::str::FromStr;

use jiff::civil::DateTime;
use telegaz_domain::{ArchiveKind, Check, Decimal, ParsedFile};

use crate::{Profile, ProfileError, builtin};

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn dt(s: &str) -> DateTime {
    s.parse().unwrap()
}

fn profile(text: &str) -> Profile {
    Profile::from_toml("test", text).unwrap_or_else(|e| panic!("{e}"))
}

fn refused(text: &str) -> String {
    match Profile::from_toml("test", text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn parsed(p: &Profile, bytes: &[u8]) -> ParsedFile {
    p.parse(bytes).unwrap_or_else(|e| panic!("{e}"))
}

fn unrecognised(p: &Profile, bytes: &[u8]) -> String {
    match p.parse(bytes) {
        Ok(f) => panic!("accepted: {f:?}"),
        Err(e) => e.reason,
    }
}

/// A UTF-8, `;`, decimal-comma profile with split date/time columns by name.
const BY_NAME: &str = r#"
[format]
encoding = "utf-8"
delimiter = ";"
decimal_separator = ","
header_line = 1

[timestamp]
date = "Дата"
date_format = "%d.%m.%Y"
time = "Время"
time_format = "%H:%M"

[[columns]]
column = "Vст, м3"
quantity = "vb"

[[columns]]
column = "Статус"
quantity = "status"
"#;

const BY_NAME_FILE: &str = "Дата;Время;Vст, м3;Статус\r\n\
14.01.2026;11:00;4982,6473;0\r\n\
14.01.2026;12:00;5020,9904;0\r\n";

#[test]
fn builtin_profiles_all_load() {
    let all = builtin();
    assert_eq!(all.len(), crate::BUILTIN.len());
    for (name, text) in crate::BUILTIN {
        Profile::from_toml(name, text).unwrap();
    }
    assert_eq!(all[0].name(), "vendor-csv-cp1251");
    assert!(!all[0].has_bindings());
    assert!(!all[0].binds("bpek-01", "export_cp1251.csv"));
}

#[test]
fn builtin_reads_the_sample() {
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/samples/csv/export_cp1251.csv"
    ))
    .unwrap();
    let f = parsed(&builtin()[0], &bytes);
    assert_eq!(f.format, "profile:vendor-csv-cp1251");
    assert_eq!(f.records.len(), 24);
    assert!(!f.truncated);
    assert!(f.warnings.is_empty(), "{:?}", f.warnings);
    let r = &f.records[0];
    assert_eq!(r.kind, ArchiveKind::Interval);
    assert_eq!(r.local_time, dt("2026-01-14T11:00:00"));
    assert_eq!(r.line, 2);
    assert_eq!(r.quantities.vb, Some(d("4982.6473")));
    assert_eq!(r.quantities.vm, Some(d("4990.2284")));
    assert_eq!(r.quantities.p_kpa, Some(d("104.51")));
    assert_eq!(r.quantities.t_c, Some(d("11.21")));
    assert_eq!(r.quantities.k, Some(d("1.0017")));
    assert_eq!(r.status, ["0"]);
    assert_eq!(r.check, Check::Absent);
    assert_eq!(f.records[23].line, 25);
}

// --- unit conversions --------------------------------------------------------

#[test]
fn units_are_converted_into_the_model() {
    let p = profile(
        r#"
[format]
encoding = "utf-8"
delimiter = ","
decimal_separator = "."

[timestamp]
datetime = 1
datetime_format = "%Y-%m-%d %H:%M"

[[columns]]
column = 2
quantity = "p"
unit = "bar"
[[columns]]
column = 3
quantity = "vb_disturbed"
unit = "m3"
[[columns]]
column = 4
quantity = "t"
unit = "K"
[[columns]]
column = 5
quantity = "flow"
[[columns]]
column = 6
quantity = "c"
"#,
    );
    let f = parsed(&p, b"2026-01-14 11:00,12.9437,1.5,284.36,3.25,2.0157\n");
    let q = &f.records[0].quantities;
    assert_eq!(q.p_kpa, Some(d("1294.37")));
    assert_eq!(q.vb_disturbed, Some(d("1.5")));
    assert_eq!(q.t_c, Some(d("11.21")));
    assert_eq!(q.flow_m3h, Some(d("3.25")));
    assert_eq!(q.c, Some(d("2.0157")));

    for (unit, text, want) in [
        ("kPa", "104.51", "104.51"),
        ("MPa", "0.10451", "104.51"),
        ("kgf/cm2", "1.0657", "104.50946905"),
        ("kgf/cm²", "2", "196.133"),
    ] {
        let p = profile(&format!(
            r#"
[format]
encoding = "utf-8"
delimiter = ","
decimal_separator = "."
[timestamp]
datetime = 1
datetime_format = "%Y-%m-%d %H:%M"
[[columns]]
column = 2
quantity = "p"
unit = "{unit}"
"#
        ));
        let f = parsed(&p, format!("2026-01-14 11:00,{text}\n").as_bytes());
        assert_eq!(f.records[0].quantities.p_kpa, Some(d(want)), "{unit}");
    }
}

// --- encodings ---------------------------------------------------------------

fn with_encoding(encoding: &str) -> Profile {
    profile(&BY_NAME.replace("\"utf-8\"", &format!("{encoding:?}")))
}

#[test]
fn windows_1251() {
    let p = with_encoding("windows-1251");
    let (bytes, _, bad) = encoding_rs::WINDOWS_1251.encode(BY_NAME_FILE);
    assert!(!bad);
    let f = parsed(&p, &bytes);
    assert_eq!(f.records.len(), 2);
    assert_eq!(f.records[1].quantities.vb, Some(d("5020.9904")));
    // The same bytes read as UTF-8 do not match the header.
    let reason = unrecognised(&with_encoding("utf-8"), &bytes);
    assert!(reason.contains("encoding"), "{reason}");
}

#[test]
fn koi8_r() {
    let p = with_encoding("koi8-r");
    let (bytes, _, bad) = encoding_rs::KOI8_R.encode(BY_NAME_FILE);
    assert!(!bad);
    assert_eq!(parsed(&p, &bytes).records.len(), 2);
    // KOI8-R bytes read as Windows-1251 give other letters: the header does not match.
    let reason = unrecognised(&with_encoding("windows-1251"), &bytes);
    assert!(reason.contains("no column named 'Дата'"), "{reason}");
}

#[test]
fn utf8_bom_overrides_the_profile() {
    let mut bytes = b"\xEF\xBB\xBF".to_vec();
    bytes.extend_from_slice(BY_NAME_FILE.as_bytes());
    let f = parsed(&with_encoding("windows-1251"), &bytes);
    assert_eq!(f.records.len(), 2);
    assert!(
        f.warnings[0].contains("byte-order mark"),
        "{:?}",
        f.warnings
    );
    // A UTF-8 profile reading a file with a BOM: no warning, the BOM is dropped.
    let f = parsed(&with_encoding("utf-8"), &bytes);
    assert!(f.warnings.is_empty());
}

#[test]
fn utf16_bom_is_honoured() {
    let mut bytes = vec![0xFF, 0xFE];
    for unit in BY_NAME_FILE.encode_utf16() {
        bytes.extend_from_slice(&unit.to_le_bytes());
    }
    assert_eq!(parsed(&with_encoding("koi8-r"), &bytes).records.len(), 2);
}

#[test]
fn invalid_utf8_rows_are_skipped() {
    let mut bytes = BY_NAME_FILE.as_bytes().to_vec();
    bytes.extend_from_slice(b"14.01.2026;13:00;5060,76\xFF;0\r\n");
    bytes.extend_from_slice("14.01.2026;14:00;5095,6488;0\r\n".as_bytes());
    let f = parsed(&with_encoding("utf-8"), &bytes);
    assert_eq!(f.records.len(), 3);
    assert!(
        f.warnings
            .iter()
            .any(|w| w.starts_with("line 4: bytes that are not valid UTF-8")),
        "{:?}",
        f.warnings
    );
}

// --- timestamps --------------------------------------------------------------

#[test]
fn start_timestamps_become_interval_ends() {
    let start = profile(&BY_NAME.replace(
        "time_format = \"%H:%M\"",
        "time_format = \"%H:%M\"\nmarks = \"start\"",
    ));
    let end = profile(BY_NAME);
    let file = "Дата;Время;Vст, м3;Статус\n31.12.2025;23:00;1;0\n";
    assert_eq!(
        parsed(&start, file.as_bytes()).records[0].local_time,
        dt("2026-01-01T00:00:00")
    );
    assert_eq!(
        parsed(&end, file.as_bytes()).records[0].local_time,
        dt("2025-12-31T23:00:00")
    );

    let half_hour = profile(&BY_NAME.replace(
        "time_format = \"%H:%M\"",
        "time_format = \"%H:%M\"\nmarks = \"start\"\ninterval = \"30m\"",
    ));
    assert_eq!(
        parsed(&half_hour, file.as_bytes()).records[0].local_time,
        dt("2025-12-31T23:30:00")
    );

    let daily = profile(&format!("kind = \"daily\"\n{BY_NAME}").replace(
        "time_format = \"%H:%M\"",
        "time_format = \"%H:%M\"\nmarks = \"start\"",
    ));
    let r = &parsed(
        &daily,
        "Дата;Время;Vст, м3;Статус\n14.01.2026;10:00;1;0\n".as_bytes(),
    )
    .records[0];
    assert_eq!(r.kind, ArchiveKind::Daily);
    assert_eq!(r.local_time, dt("2026-01-15T10:00:00"));

    // A monthly record stamped with the start of its month, at "24:00" of the day before.
    let monthly = profile(&format!("kind = \"monthly\"\n{BY_NAME}").replace(
        "time_format = \"%H:%M\"",
        "time_format = \"%H:%M\"\nmarks = \"start\"",
    ));
    let r = &parsed(
        &monthly,
        "Дата;Время;Vст, м3;Статус\n31.12.2025;24:00;1;0\n".as_bytes(),
    )
    .records[0];
    assert_eq!(r.local_time, dt("2026-02-01T00:00:00"));
}

#[test]
fn midnight_written_as_24_00() {
    let f = parsed(
        &profile(BY_NAME),
        "Дата;Время;Vст, м3;Статус\n14.01.2026;23:00;1;0\n14.01.2026;24:00;2;0\n".as_bytes(),
    );
    assert_eq!(f.records[1].local_time, dt("2026-01-15T00:00:00"));
}

#[test]
fn one_column_with_date_and_time() {
    let p = profile(
        r#"
[format]
encoding = "utf-8"
delimiter = "\t"
decimal_separator = "."
header_line = 2

[timestamp]
datetime = "Time"
datetime_format = "%Y-%m-%d %H:%M:%S"

[[columns]]
column = "Vb"
quantity = "vb"
[[columns]]
column = 3
quantity = "vm"
"#,
    );
    let f = parsed(
        &p,
        b"exported by X\nTime\tVb\tVm\n2026-01-14 11:00:00\t4982.6473\t4990.2284\n",
    );
    let r = &f.records[0];
    assert_eq!(r.local_time, dt("2026-01-14T11:00:00"));
    assert_eq!(r.quantities.vb, Some(d("4982.6473")));
    assert_eq!(r.quantities.vm, Some(d("4990.2284")));
    assert_eq!(r.line, 3);
}

// --- columns -----------------------------------------------------------------

#[test]
fn columns_by_name_follow_the_header_order() {
    let p = profile(BY_NAME);
    // Same columns, other order: names find them.
    let f = parsed(
        &p,
        "  Статус ; Vст, м3 ;Время;Дата\n7;1,5;11:00;14.01.2026\n".as_bytes(),
    );
    assert_eq!(f.records[0].quantities.vb, Some(d("1.5")));
    assert_eq!(f.records[0].status, ["7"]);
}

#[test]
fn missing_header_name_is_explained() {
    let p = profile(BY_NAME);
    let reason = unrecognised(
        &p,
        "Дата;Время;Vb;Статус\n14.01.2026;11:00;1;0\n".as_bytes(),
    );
    assert!(
        reason.contains("line 1 has no column named 'Vст, м3'") && reason.contains("'Vb'"),
        "{reason}"
    );
    // Latin "C" in place of Cyrillic "С".
    let reason = unrecognised(
        &p,
        "Дата;Время;Vст, м3;Cтатус\n14.01.2026;11:00;1;0\n".as_bytes(),
    );
    assert!(reason.contains("look-alike"), "{reason}");
}

#[test]
fn columns_by_number_without_header() {
    let p = profile(
        r#"
[format]
encoding = "utf-8"
delimiter = ";"
decimal_separator = ","
[timestamp]
date = 1
date_format = "%d.%m.%Y"
time = 2
time_format = "%H:%M"
[[columns]]
column = 4
quantity = "vm"
"#,
    );
    let f = parsed(
        &p,
        b"14.01.2026;11:00;x;4990,2284\n14.01.2026;12:00;y;4991\n14.01.2026;13:00;z\n",
    );
    assert_eq!(f.records.len(), 2);
    assert_eq!(f.records[0].quantities.vm, Some(d("4990.2284")));
    assert!(f.warnings[0].contains("line 3: 3 columns, but the profile reads column 4"));
}

#[test]
fn quoted_fields() {
    let p = profile(&BY_NAME.replace("\"Статус\"", "\"Статус; текст\""));
    let f = parsed(
        &p,
        "Дата;Время;\"Vст, м3\";\"Статус; текст\"\n\"14.01.2026\";11:00;\"4982,6473\";\"ok; \"\"fine\"\"\"\n"
            .as_bytes(),
    );
    assert_eq!(f.records[0].quantities.vb, Some(d("4982.6473")));
    assert_eq!(f.records[0].status, ["ok; \"fine\""]);
}

#[test]
fn decimal_comma_with_comma_delimiter_needs_quotes() {
    let p = profile(
        r#"
[format]
encoding = "utf-8"
delimiter = ","
decimal_separator = ","
[timestamp]
datetime = 1
datetime_format = "%d.%m.%Y %H:%M"
[[columns]]
column = 2
quantity = "vb"
"#,
    );
    let f = parsed(&p, b"14.01.2026 11:00,\"4982,6473\"\n");
    assert_eq!(f.records[0].quantities.vb, Some(d("4982.6473")));
}

#[test]
fn status_and_check_columns_decide_the_check() {
    let p = profile(
        r#"
[format]
encoding = "utf-8"
delimiter = ";"
decimal_separator = "."
[timestamp]
datetime = 1
datetime_format = "%Y-%m-%d,%H:%M:%S"
[[columns]]
column = 2
quantity = "vb"
[[columns]]
column = 3
quantity = "status"
[[columns]]
column = 4
quantity = "check"
ok = ["CRC Ok"]
"#,
    );
    let f = parsed(
        &p,
        b"2014-05-28,11:00:00;4945.2514;0x0010;CRC Ok\n2014-05-28,12:00:00;4946;0;CRC Error\n",
    );
    assert_eq!(f.records[0].check, Check::Ok);
    assert_eq!(f.records[0].status, ["0x0010"]);
    assert_eq!(f.records[1].check, Check::Failed("CRC Error".into()));
    assert!(f.records[1].status == ["0"]);
}

#[test]
fn empty_numeric_cells_are_absent() {
    let f = parsed(
        &profile(BY_NAME),
        "Дата;Время;Vст, м3;Статус\n14.01.2026;11:00;;0\n14.01.2026;12:00;1;0\n".as_bytes(),
    );
    assert_eq!(f.records[0].quantities.vb, None);
    assert_eq!(f.records[1].quantities.vb, Some(d("1")));
}

// --- rows that do not fit ----------------------------------------------------

#[test]
fn bad_rows_are_skipped_with_line_and_column() {
    let file = "Дата;Время;Vст, м3;Статус\n\
        27.02.2026;11:00;1;0\n\
        \n\
        30.02.2026;12:00;2;0\n\
        ;;;\n\
        28.02.2026;13:00;3;0\n\
        28.02.2026;14:00;3;0;extra\n\
        28.02.2026;15:00;4;0;\n";
    let f = parsed(&profile(BY_NAME), file.as_bytes());
    assert_eq!(f.records.len(), 3);
    assert_eq!(f.records[1].line, 6);
    assert_eq!(f.records[2].line, 8);
    assert_eq!(f.warnings.len(), 2, "{:?}", f.warnings);
    assert!(
        f.warnings[0].starts_with("line 4, column 1 (Дата): '30.02.2026' is not a date"),
        "{}",
        f.warnings[0]
    );
    assert!(
        f.warnings[1].starts_with("line 7: 5 columns where the header on line 1 has 4"),
        "{}",
        f.warnings[1]
    );
}

#[test]
fn a_profile_that_does_not_match_is_refused_with_a_reason() {
    let p = profile(BY_NAME);
    let file =
        "Дата;Время;Vст, м3;Статус\n14.01.2026;11:00;4982.6473;0\n14.01.2026;12:00;5020.9904;0\n";
    let reason = unrecognised(&p, file.as_bytes());
    assert_eq!(
        reason,
        "profile \"test\": none of the 2 data rows fit the profile; first: line 2, column 3 (Vст, м3): '4982.6473' is not a number with decimal separator ','"
    );
}

#[test]
fn more_than_half_failing_is_refused() {
    let p = profile(BY_NAME);
    let file = "Дата;Время;Vст, м3;Статус\n\
        14.01.2026;11:00;1;0\n\
        14.01.2026;12:00;x;0\n\
        14.01.2026;13:00;y;0\n";
    let reason = unrecognised(&p, file.as_bytes());
    assert!(
        reason.contains("2 of 3 data rows do not fit") && reason.contains("line 3, column 3"),
        "{reason}"
    );
    // Exactly half is still imported (with warnings).
    let file = "Дата;Время;Vст, м3;Статус\n14.01.2026;11:00;1;0\n14.01.2026;12:00;x;0\n";
    assert_eq!(parsed(&p, file.as_bytes()).records.len(), 1);
}

#[test]
fn header_only_or_empty_files_are_refused() {
    let p = profile(BY_NAME);
    let reason = unrecognised(&p, "Дата;Время;Vст, м3;Статус\r\n\r\n".as_bytes());
    assert!(reason.contains("no data rows after line 1"), "{reason}");
    let reason = unrecognised(&p, b"");
    assert!(reason.contains("header on line 1"), "{reason}");
}

#[test]
fn cut_off_last_line() {
    let p = profile(BY_NAME);
    let full = "Дата;Время;Vст, м3;Статус\r\n14.01.2026;11:00;1;0\r\n14.01.2026;12:00;2;0\r\n";
    for cut in [
        full.len() - 2,
        full.len() - 3,
        full.len() - 5,
        full.len() - 12,
    ] {
        let f = parsed(&p, full.as_bytes().get(..cut).unwrap());
        assert!(f.truncated, "cut at {cut}");
        assert_eq!(f.records.len(), 1, "cut at {cut}");
    }
    // Cut between CR and LF: the row is complete.
    let f = parsed(&p, full.as_bytes().get(..full.len() - 1).unwrap());
    assert!(!f.truncated);
    assert_eq!(f.records.len(), 2);

    // Without require_final_newline a complete last line is read…
    let lax = profile(&BY_NAME.replace(
        "header_line = 1",
        "header_line = 1\nrequire_final_newline = false",
    ));
    let f = parsed(&lax, full.trim_end().as_bytes());
    assert!(!f.truncated);
    assert_eq!(f.records.len(), 2);
    // …and one that does not fit is the cut-off row, not a failure.
    let f = parsed(&lax, full.as_bytes().get(..full.len() - 9).unwrap());
    assert!(f.truncated);
    assert_eq!(f.records.len(), 1);

    // Cut inside the first data row: nothing to import.
    let header_len = full.find('\n').unwrap() + 1;
    let reason = unrecognised(&p, full.as_bytes().get(..header_len + 5).unwrap());
    assert!(reason.contains("cut off"), "{reason}");
}

#[test]
fn warnings_are_bounded() {
    let mut file = String::from("Дата;Время;Vст, м3;Статус\n");
    for _ in 0..300 {
        file.push_str("14.01.2026;11:00;1;0\n14.01.2026;11:00;1;0\n14.01.2026;11:00;x;0\n");
    }
    let f = parsed(&profile(BY_NAME), file.as_bytes());
    assert_eq!(f.records.len(), 600);
    assert_eq!(f.warnings.len(), crate::parse::MAX_WARNINGS + 1);
    assert_eq!(
        f.warnings.last().unwrap(),
        "… and 200 more warnings not shown"
    );
}

#[test]
fn hostile_input_is_refused_quickly() {
    let p = &builtin()[0];
    let parens = vec![b'('; 200_000];
    let reason = unrecognised(p, &parens);
    assert!(reason.len() < 2_000, "{}", reason.len());

    let mut big_field = b"\xc4\xe0\xf2\xe0;".to_vec();
    big_field.extend(std::iter::repeat_n(b'7', 100_000));
    assert!(p.parse(&big_field).is_err());

    // A valid header, then a 100 KB field in a row, then garbage.
    let header = encoding_rs::WINDOWS_1251
        .encode("Дата;Время;Vст, м3;Vраб, м3;P, кПа;T, °C;Kсж;Статус\r\n")
        .0
        .into_owned();
    let mut file = header.clone();
    file.extend(std::iter::repeat_n(b'"', 100_001));
    file.extend_from_slice(b"\r\n");
    file.extend(std::iter::repeat_n(b';', 100_000));
    file.extend_from_slice(b"\r\n");
    let reason = unrecognised(p, &file);
    assert!(reason.len() < 2_000, "{}", reason.len());

    let mut garbage = header;
    let mut x: u32 = 12345;
    for _ in 0..200_000 {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
        garbage.push((x >> 16) as u8);
    }
    assert!(p.parse(&garbage).is_err());
}

// --- bindings ----------------------------------------------------------------

#[test]
fn bindings() {
    let p = profile(&format!(
        "[bind]\ndevices = [\"bpek-??\"]\nfile_names = [\"export_*.csv\", \"*.TXT\"]\n{BY_NAME}"
    ));
    assert!(p.has_bindings());
    assert!(p.binds("bpek-01", "other.bin"));
    assert!(p.binds("gas-7", "export_1.csv"));
    assert!(p.binds("gas-7", "upload/2026/EXPORT_1.CSV"));
    assert!(p.binds("gas-7", "a.txt"));
    assert!(!p.binds("bpek-100", "export.csv"));
    assert!(!profile(BY_NAME).binds("bpek-01", "export_1.csv"));
}

// --- validation --------------------------------------------------------------

#[test]
fn unknown_keys_are_errors() {
    let e = refused(&BY_NAME.replace("header_line", "headers_line"));
    assert!(e.contains("unknown field `headers_line`"), "{e}");
    assert!(e.contains("header_line"), "lists what is allowed: {e}");
    let e = refused(&format!("colour = \"red\"\n{BY_NAME}"));
    assert!(e.contains("unknown field `colour`"), "{e}");
    let e = refused(&BY_NAME.replace("quantity = \"vb\"", "quantity = \"vb\"\nscale = 2"));
    assert!(e.contains("unknown field `scale`"), "{e}");
    let e = refused(&BY_NAME.replace("quantity = \"vb\"", "quantity = \"volume\""));
    assert!(
        e.contains("unknown variant `volume`") && e.contains("vb_disturbed"),
        "{e}"
    );
}

#[test]
fn bad_units_are_errors() {
    let e = refused(&BY_NAME.replace("quantity = \"vb\"", "quantity = \"vb\"\nunit = \"l\""));
    assert_eq!(
        e,
        "profile \"test\": [[columns]] #1 (column \"Vст, м3\"), unit: \"l\" is not a volume unit; allowed: m3, m³"
    );
    let e = refused(&BY_NAME.replace("quantity = \"vb\"", "quantity = \"p\"\nunit = \"psi\""));
    assert!(
        e.contains("\"psi\" is not a pressure unit; allowed: kPa, bar, MPa, kgf/cm2"),
        "{e}"
    );
    let e = refused(&BY_NAME.replace("quantity = \"vb\"", "quantity = \"t\""));
    assert!(e.contains("`unit` is required for temperature"), "{e}");
}

#[test]
fn missing_date_column_is_an_error() {
    let e = refused(&BY_NAME.replace("date = \"Дата\"\n", ""));
    assert!(e.contains("timestamp.date: missing"), "{e}");
    let e = refused(&BY_NAME.replace("time = \"Время\"\n", ""));
    assert!(e.contains("timestamp.time: missing"), "{e}");
    let e = refused(&BY_NAME.replace("[timestamp]", "[timestamp]\ndatetime = 1"));
    assert!(e.contains("not both"), "{e}");
}

#[test]
fn other_validation_errors() {
    let cases = [
        (
            "encoding = \"utf-8\"",
            "encoding = \"latin-1\"",
            "format.encoding",
        ),
        (
            "delimiter = \";\"",
            "delimiter = \";;\"",
            "format.delimiter",
        ),
        ("delimiter = \";\"", "delimiter = '\"'", "format.delimiter"),
        (
            "decimal_separator = \",\"",
            "decimal_separator = \"'\"",
            "format.decimal_separator",
        ),
        ("header_line = 1", "header_line = 0", "format.header_line"),
        (
            "header_line = 1",
            "header_line = 2\nskip_lines = 1",
            "format.skip_lines",
        ),
        ("header_line = 1", "", "format.header_line"),
        (
            "date_format = \"%d.%m.%Y\"",
            "date_format = \"%d.%m\"",
            "timestamp.date_format",
        ),
        (
            "date_format = \"%d.%m.%Y\"",
            "date_format = \"%Q\"",
            "timestamp.date_format",
        ),
        (
            "time_format = \"%H:%M\"",
            "time_format = \"%M\"",
            "timestamp.time_format",
        ),
        (
            "time_format = \"%H:%M\"",
            "time_format = \"%I:%M\"",
            "timestamp.time_format",
        ),
        (
            "time_format = \"%H:%M\"",
            "time_format = \"%H:%M\"\ninterval = \"-1h\"",
            "timestamp.interval",
        ),
        (
            "time_format = \"%H:%M\"",
            "time_format = \"%H:%M\"\ninterval = \"often\"",
            "timestamp.interval",
        ),
        (
            "time_format = \"%H:%M\"",
            "time_format = \"%H:%M\"\nmarks = \"middle\"",
            "unknown variant `middle`",
        ),
        ("column = \"Статус\"", "column = 0", "count from 1"),
        (
            "column = \"Статус\"",
            "column = \"  \"",
            "empty header text",
        ),
        (
            "column = \"Статус\"",
            "column = 1.5",
            "column number counted from 1",
        ),
        (
            "quantity = \"status\"",
            "quantity = \"vb\"",
            "already mapped",
        ),
        (
            "quantity = \"status\"",
            "quantity = \"check\"",
            "ok: missing",
        ),
        (
            "quantity = \"status\"",
            "quantity = \"status\"\nok = []",
            "one or more",
        ),
        (
            "quantity = \"vb\"",
            "quantity = \"status\"",
            "no numeric quantity",
        ),
    ];
    for (from, to, want) in cases {
        let text = BY_NAME.replace(from, to);
        assert_ne!(text, BY_NAME, "{from}");
        let e = refused(&text);
        assert!(e.contains(want), "{to}: {e}");
    }
    assert!(matches!(
        Profile::from_toml("", BY_NAME),
        Err(ProfileError::Invalid { .. })
    ));
    assert!(matches!(
        Profile::from_toml("x", "format = ["),
        Err(ProfileError::Syntax { .. })
    ));
    let e = refused(&format!("[bind]\ndevices = [\"\"]\n{BY_NAME}"));
    assert!(e.contains("bind.devices"), "{e}");
}

#[test]
fn deeply_nested_toml_is_refused() {
    let text = format!("a = {}", "[".repeat(200_000));
    assert!(Profile::from_toml("x", &text).is_err());
    let text = format!("a = {}", "{ b = ".repeat(50_000));
    assert!(Profile::from_toml("x", &text).is_err());
}
