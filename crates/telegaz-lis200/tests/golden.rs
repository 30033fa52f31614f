//! Golden tests: the shared samples against `expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use jiff::civil::DateTime;
use telegaz_domain::{ArchiveKind, Check, Decimal, ParsedFile};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/samples");

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{SAMPLES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_sample(name: &str) -> ParsedFile {
    telegaz_lis200::parse(&sample(&format!("lis200/{name}")))
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// `(hour_end_local, vb, vm)` for consecutive usable interval records one hour apart.
fn hourly(p: &ParsedFile) -> Vec<(DateTime, Decimal, Decimal)> {
    let mut rows: Vec<_> = p
        .records
        .iter()
        .filter(|r| r.kind == ArchiveKind::Interval && r.check.usable())
        .collect();
    rows.sort_by_key(|r| r.local_time);
    rows.windows(2)
        .filter(|w| w[1].local_time.duration_since(w[0].local_time).as_secs() == 3600)
        .map(|w| {
            let (a, b) = (&w[0].quantities, &w[1].quantities);
            (
                w[1].local_time,
                b.vb.unwrap() - a.vb.unwrap(),
                b.vm.unwrap() - a.vm.unwrap(),
            )
        })
        .collect()
}

/// The JSON number as written, as a decimal (never through f64).
fn json_decimal(v: &serde_json::Value) -> Decimal {
    match v {
        serde_json::Value::Number(n) => Decimal::from_str(&n.to_string()).unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn expected_hourly(file: &str) -> Vec<(DateTime, Decimal, Decimal)> {
    let all: serde_json::Value = serde_json::from_slice(&sample("expected.json")).unwrap();
    let entry = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in expected.json"));
    entry["hourly"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                DateTime::from_str(h["hour_end_local"].as_str().unwrap()).unwrap(),
                json_decimal(&h["vb_m3"]),
                json_decimal(&h["vm_m3"]),
            )
        })
        .collect()
}

fn check_hourly(file: &str) -> ParsedFile {
    let parsed = parse_sample(file);
    let got = hourly(&parsed);
    let want = expected_hourly(file);
    assert_eq!(got.len(), want.len(), "{file}: number of hours");
    for ((gt, gvb, gvm), (wt, wvb, wvm)) in got.iter().zip(&want) {
        assert_eq!(gt, wt, "{file}: hour");
        assert_eq!(gvb.round_dp(4), wvb.round_dp(4), "{file}: vb at {gt}");
        assert_eq!(gvm.round_dp(4), wvm.round_dp(4), "{file}: vm at {gt}");
    }
    assert!(!parsed.truncated, "{file}");
    assert!(
        parsed.records.iter().all(|r| r.check == Check::Ok),
        "{file}"
    );
    parsed
}

#[test]
fn tc220_interval_text() {
    let p = check_hourly("tc220_interval_3days.txt");
    assert_eq!(p.format, "lis200-text");
    let daily: Vec<_> = p
        .records
        .iter()
        .filter(|r| r.kind == ArchiveKind::Daily)
        .collect();
    assert_eq!(daily.len(), 3);
    assert!(daily.iter().all(|r| r.event_code == Some(0x8103)));
    assert_eq!(p.records.len(), 75);
    let first = &p.records[0];
    assert_eq!(first.record_no, Some(13484));
    assert_eq!(first.line, 1);
    assert_eq!(
        first.quantities.t_c,
        Some(Decimal::from_str("11.21").unwrap())
    );
    assert_eq!(
        first.quantities.p_kpa,
        Some(Decimal::from_str("104.5110").unwrap())
    );
    assert_eq!(first.status, vec!["0", "0", "0"]);
    assert_eq!(first.utc_offset_seconds, None);
    // No header: the layout assumption is stated, once.
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
}

#[test]
fn ek270_interval_with_header() {
    let p = check_hourly("ek270_interval_with_header.txt");
    assert_eq!(p.records.len(), 48);
    let first = &p.records[0];
    assert_eq!(first.line, 3);
    assert_eq!(first.record_no, Some(640));
    // p printed in bar, normalised to kPa exactly.
    assert_eq!(
        first.quantities.p_kpa,
        Some(Decimal::from_str("1294.02").unwrap())
    );
    assert_eq!(
        first.quantities.t_c,
        Some(Decimal::from_str("3.07").unwrap())
    );
    assert_eq!(
        first.quantities.c,
        Some(Decimal::from_str("13.53056").unwrap())
    );
    assert_eq!(first.status.len(), 5);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn tc220_raw_serial_capture() {
    let p = check_hourly("tc220_raw_serial_capture.bin");
    assert_eq!(p.format, "lis200-serial");
    assert_eq!(p.meta.model.as_deref(), Some("TC220"));
    assert_eq!(p.meta.serial.as_deref(), Some("1234567"));
    assert_eq!(p.records.len(), 30);
    assert_eq!(p.records[0].record_no, Some(500));
    assert_eq!(p.records[0].line, 1);
    assert_eq!(p.records[29].line, 30);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn tc220_events() {
    let p = parse_sample("tc220_events.txt");
    assert!(p.records.is_empty());
    assert_eq!(p.events.len(), 5);
    let e = &p.events[0];
    assert_eq!(e.code, 0x2007);
    assert_eq!(
        e.local_time,
        jiff::civil::date(2026, 1, 14).at(13, 5, 12, 0)
    );
    assert_eq!(e.record_no, Some(101));
    assert_eq!(e.check, Check::Ok);
    assert_eq!(e.line, 1);
    let codes: Vec<u16> = p.events.iter().map(|e| e.code).collect();
    assert_eq!(codes, [0x2007, 0x0007, 0x2106, 0x0106, 0x8004]);
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn samples_are_recognised_and_the_csv_is_not() {
    for name in [
        "lis200/tc220_interval_3days.txt",
        "lis200/ek270_interval_with_header.txt",
        "lis200/tc220_raw_serial_capture.bin",
        "lis200/tc220_events.txt",
    ] {
        assert!(telegaz_lis200::looks_like(&sample(name)), "{name}");
    }
    let csv = sample("csv/export_cp1251.csv");
    assert!(!telegaz_lis200::looks_like(&csv));
    assert!(telegaz_lis200::parse(&csv).is_err());
}
