//! `telegaz report` end to end: stored readings to CSV, Windows-1251 CSV, XLSX, JSON, HTML.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{BIN, Server};
use serde_json::Value;

fn sample(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples/lis200")
        .join(file)
}

fn telegaz(s: &Server, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.dir)
        .args(args)
        .output()
        .unwrap()
}

fn ok(out: std::process::Output) -> Vec<u8> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn reports_in_every_format_from_stored_readings() {
    let s = Server::start();
    ok(telegaz(
        &s,
        &[
            "import",
            "--device",
            "unit1",
            sample("tc220_interval_3days.txt").to_str().unwrap(),
        ],
    ));
    ok(telegaz(
        &s,
        &[
            "import",
            "--device",
            "unit1",
            sample("tc220_events.txt").to_str().unwrap(),
        ],
    ));
    let period = "range:2026-01-14..2026-01-16";

    // JSON: the gas days of expected.json.
    let json: Value = serde_json::from_slice(&ok(telegaz(
        &s,
        &[
            "report", "--device", "unit1", "--period", period, "--format", "json",
        ],
    )))
    .unwrap();
    let expected: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/samples/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let truth = expected
        .iter()
        .find(|e| e["file"] == "tc220_interval_3days.txt")
        .unwrap();
    let rows = json["devices"][0]["rows"].as_array().unwrap();
    for day in truth["daily"].as_array().unwrap() {
        let row = rows
            .iter()
            .find(|r| r["gas_day"] == day["gas_day"])
            .unwrap_or_else(|| panic!("{day}"));
        let vb: f64 = row["vb_m3"]
            .as_str()
            .map_or_else(|| row["vb_m3"].as_f64().unwrap(), |t| t.parse().unwrap());
        assert_eq!(
            format!("{vb:.4}"),
            format!("{:.4}", day["vb_m3"].as_f64().unwrap()),
            "{row}"
        );
        assert_eq!(row["complete"], day["complete"], "{row}");
    }

    // CSV for programs and CSV for Russian Excel.
    let csv = String::from_utf8(ok(telegaz(
        &s,
        &[
            "report", "--device", "unit1", "--period", period, "--format", "csv",
        ],
    )))
    .unwrap();
    assert!(csv.lines().count() >= 4, "{csv}");
    let raw = ok(telegaz(
        &s,
        &[
            "report", "--device", "unit1", "--period", period, "--format", "csv-1251",
        ],
    ));
    let (text, _, malformed) = encoding_rs::WINDOWS_1251.decode(&raw);
    assert!(!malformed);
    assert!(
        text.contains("Газовые сутки") || text.contains("Газовый день"),
        "{text}"
    );
    assert!(text.contains(';') && text.contains("\r\n"));
    assert!(text.contains("602,036"), "decimal comma: {text}");

    // XLSX to a file; read back elsewhere in the reports crate's tests, here only its shape.
    let dir = tempfile::tempdir().unwrap();
    let xlsx = dir.path().join("r.xlsx");
    ok(telegaz(
        &s,
        &[
            "report",
            "--device",
            "unit1",
            "--period",
            period,
            "--format",
            "xlsx",
            "--output",
            xlsx.to_str().unwrap(),
        ],
    ));
    let bytes = std::fs::read(&xlsx).unwrap();
    assert_eq!(&bytes[..2], b"PK");

    // Hourly rows and the printable page.
    let hourly: Value = serde_json::from_slice(&ok(telegaz(
        &s,
        &[
            "report",
            "--device",
            "unit1",
            "--period",
            "day:2026-01-15",
            "--rows",
            "hourly",
            "--format",
            "json",
        ],
    )))
    .unwrap();
    assert_eq!(hourly["devices"][0]["rows"].as_array().unwrap().len(), 24);
    let html = String::from_utf8(ok(telegaz(
        &s,
        &[
            "report", "--device", "unit1", "--period", period, "--format", "html",
        ],
    )))
    .unwrap();
    assert!(
        html.contains("<table") && html.contains("@media print"),
        "{html}"
    );
    assert!(!html.contains("<script"));

    // Completeness: the first gas day misses its first hour.
    let lines = String::from_utf8(ok(telegaz(
        &s,
        &[
            "report",
            "--device",
            "unit1",
            "--period",
            period,
            "--completeness",
        ],
    )))
    .unwrap();
    let first: Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["gas_day"], "2026-01-14");
    assert_eq!(
        first["missing_hour_ends"].as_array().unwrap().len(),
        1,
        "{first}"
    );
}

#[test]
fn bad_report_requests_are_clear_and_write_nothing() {
    let s = Server::start();
    ok(telegaz(
        &s,
        &[
            "import",
            "--device",
            "unit1",
            sample("tc220_interval_3days.txt").to_str().unwrap(),
        ],
    ));
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("r.csv");
    for (args, needle) in [
        (
            vec!["--device", "nobody", "--period", "month:2026-01"],
            "no device named",
        ),
        (
            vec![
                "--device",
                "unit1",
                "--period",
                "range:2026-01-20..2026-01-10",
            ],
            "revers",
        ),
        (
            vec!["--device", "unit1", "--period", "month:2025-07"],
            "no readings",
        ),
        (vec!["--device", "unit1", "--period", "week:3"], "day:"),
    ] {
        let mut all = vec!["report"];
        all.extend(args.iter().copied());
        all.extend(["--output", out_file.to_str().unwrap()]);
        let out = telegaz(&s, &all);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(!out.status.success(), "{all:?}");
        assert!(err.contains(needle), "{all:?}: {err}");
        assert!(!out_file.exists(), "no file that looks valid: {all:?}");
    }
}
