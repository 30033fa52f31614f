//! Property tests: no input makes the parser panic, row order and repeats do
//! not change what is read, and a cut never loses the rows before it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;

use proptest::prelude::*;
use telegaz_domain::{ArchiveRecord, Check, EventRecord, ParsedFile};
use telegaz_lis200::{looks_like, parse};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/samples/lis200");

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(format!("{SAMPLES}/{name}")).unwrap()
}

/// Parses and checks the invariants every result must keep.
fn parse_checked(bytes: &[u8]) -> Option<ParsedFile> {
    let _ = looks_like(bytes);
    match parse(bytes) {
        Ok(p) => {
            assert!(!p.records.is_empty() || !p.events.is_empty());
            assert!(p.warnings.len() <= 110, "{} warnings", p.warnings.len());
            assert!(p.format == "lis200-text" || p.format == "lis200-serial");
            Some(p)
        }
        Err(e) => {
            assert!(!e.reason.is_empty());
            None
        }
    }
}

/// Records and events without their line numbers, as comparable text.
fn content(p: &ParsedFile) -> BTreeSet<String> {
    let records = p.records.iter().map(|r| {
        format!(
            "{:?}",
            ArchiveRecord {
                line: 0,
                ..r.clone()
            }
        )
    });
    let events = p.events.iter().map(|e| {
        format!(
            "{:?}",
            EventRecord {
                line: 0,
                ..e.clone()
            }
        )
    });
    records.chain(events).collect()
}

/// Bytes that reach deep into the parser: row syntax and control bytes.
fn lis_alphabet() -> impl Strategy<Value = Vec<u8>> {
    let alphabet = b"()0123456789-,:.x CRCOk\r\n\x01\x02\x03\x04\x06\x15/?!#".to_vec();
    prop::collection::vec(prop::sample::select(alphabet), 0..2048)
}

/// A text sample's lines (with their line breaks) and, for each, where its
/// content ends (after the last `)`).
fn lines_of(text: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |k| start + k + 1);
        let content_end = start + text[start..end].trim_ascii_end().len();
        out.push((start, content_end, end));
        start = end;
    }
    out
}

/// Cutting `text` at `cut` keeps every row that ends before the cut, and the
/// file is marked truncated exactly when the cut falls inside a row.
fn check_cut(text: &[u8], full: &ParsedFile, cut: usize) {
    let got = parse_checked(&text[..cut]);
    let lines = lines_of(text);
    let complete_lines: BTreeSet<u32> = lines
        .iter()
        .enumerate()
        .filter(|(_, (_, content_end, _))| *content_end <= cut)
        .map(|(i, _)| i as u32 + 1)
        .collect();
    let want: Vec<&ArchiveRecord> = full
        .records
        .iter()
        .filter(|r| complete_lines.contains(&r.line))
        .collect();
    let want_events: Vec<&EventRecord> = full
        .events
        .iter()
        .filter(|e| complete_lines.contains(&e.line))
        .collect();
    let inside_row = lines
        .iter()
        .any(|&(start, content_end, _)| start < cut && cut < content_end);
    match got {
        None => assert!(
            want.is_empty() && want_events.is_empty(),
            "cut at {cut}: rows lost"
        ),
        Some(p) => {
            for r in want {
                assert!(p.records.contains(r), "cut at {cut}: line {} lost", r.line);
            }
            for e in want_events {
                assert!(p.events.contains(e), "cut at {cut}: line {} lost", e.line);
            }
            // A cut inside a header row leaves no rows at all (None above).
            assert_eq!(p.truncated, inside_row, "cut at {cut}");
        }
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..4096)) {
        parse_checked(&bytes);
    }

    #[test]
    fn lis_like_bytes_never_panic(bytes in lis_alphabet()) {
        parse_checked(&bytes);
    }

    #[test]
    fn mutated_samples_never_panic(
        which in 0usize..4,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
    ) {
        let name = [
            "tc220_raw_serial_capture.bin",
            "tc220_interval_3days.txt",
            "ek270_interval_with_header.txt",
            "tc220_events.txt",
        ][which];
        let mut bytes = sample(name);
        for (at, b) in edits {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        if let Some(p) = parse_checked(&bytes) {
            // Whatever survives is still exact: failed checks are flagged, not dropped silently.
            for r in &p.records {
                prop_assert!(r.line >= 1);
                if let Check::Failed(t) = &r.check {
                    prop_assert!(!t.is_empty());
                }
            }
        }
    }

    #[test]
    fn shuffled_and_repeated_rows_read_the_same(
        order in Just((0..80usize).collect::<Vec<_>>()).prop_shuffle(),
        repeats in prop::collection::vec(0..80usize, 0..20),
    ) {
        let mut all = sample("tc220_interval_3days.txt");
        all.extend(sample("tc220_events.txt"));
        let full = parse(&all).unwrap();
        let lines: Vec<&[u8]> = all.split_inclusive(|&c| c == b'\n').collect();
        prop_assert_eq!(lines.len(), 80);
        let mut shuffled = Vec::new();
        for i in order.iter().chain(&repeats) {
            shuffled.extend_from_slice(lines[*i]);
        }
        let p = parse(&shuffled).unwrap();
        prop_assert_eq!(content(&p), content(&full));
        prop_assert!(!p.truncated);
    }

    #[test]
    fn truncated_text_keeps_rows_before_the_cut(
        which in 0usize..3,
        at in any::<prop::sample::Index>(),
    ) {
        let name = ["tc220_interval_3days.txt", "ek270_interval_with_header.txt", "tc220_events.txt"][which];
        let text = sample(name);
        let full = parse(&text).unwrap();
        check_cut(&text, &full, at.index(text.len() + 1));
    }
}

/// Every cut of the sample capture: rows of blocks received whole (BCC
/// included) are kept as `CRC Ok`; rows of the block being received are kept
/// only flagged as not verified; the file is truncated unless the readout's
/// last block arrived.
#[test]
fn every_cut_of_the_serial_capture() {
    let capture = sample("tc220_raw_serial_capture.bin");
    let full = parse(&capture).unwrap();
    // End of each data block (just after its BCC) and its records.
    let mut block_ends = Vec::new();
    let mut i = 0;
    while let Some(k) = capture[i..].iter().position(|&c| c == 0x02) {
        let start = i + k;
        let end = start
            + capture[start..]
                .iter()
                .position(|&c| c == 0x03 || c == 0x04)
                .unwrap();
        block_ends.push(end + 2);
        i = end + 2;
    }
    let data_blocks: Vec<usize> = block_ends[2..].to_vec(); // P0 and R3 hold an STX too
    assert_eq!(data_blocks.len(), 3);
    for cut in 0..=capture.len() {
        let got = parse_checked(&capture[..cut]);
        let whole_blocks = data_blocks.iter().filter(|&&e| e <= cut).count();
        let want_ok = &full.records[..whole_blocks * 10];
        match got {
            None => assert!(want_ok.is_empty(), "cut at {cut}"),
            Some(p) => {
                let ok: Vec<&ArchiveRecord> =
                    p.records.iter().filter(|r| r.check == Check::Ok).collect();
                assert_eq!(ok.len(), want_ok.len(), "cut at {cut}");
                for (a, b) in ok.iter().zip(want_ok) {
                    assert_eq!(*a, b, "cut at {cut}");
                }
                for r in p.records.iter().filter(|r| r.check != Check::Ok) {
                    assert!(
                        matches!(&r.check, Check::Failed(t) if t.contains("not verified")),
                        "cut at {cut}: {:?}",
                        r.check
                    );
                }
                assert_eq!(p.truncated, whole_blocks < 3, "cut at {cut}");
            }
        }
    }
}

/// Every cut of the clean text samples (exhaustive, complementing the
/// random cuts above).
#[test]
fn every_cut_of_the_text_samples() {
    for name in ["tc220_events.txt", "ek270_interval_with_header.txt"] {
        let text = sample(name);
        let full = parse(&text).unwrap();
        for cut in 0..=text.len() {
            check_cut(&text, &full, cut);
        }
    }
}
