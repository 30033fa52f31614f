//! The ingest pipeline end to end: sample files through `telegaz import` and
//! through real FTP uploads give exactly the values of `expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{BIN, Server};
use serde_json::Value;
use suppaftp::FtpStream;
use suppaftp::types::FileType;

fn samples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/samples")
}

fn expected() -> Vec<Value> {
    serde_json::from_str(&std::fs::read_to_string(samples().join("expected.json")).unwrap())
        .unwrap()
}

fn sample_path(file: &str) -> PathBuf {
    for dir in ["lis200", "csv"] {
        let p = samples().join(dir).join(file);
        if p.exists() {
            return p;
        }
    }
    panic!("no sample {file}");
}

fn lines(out: &std::process::Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A JSON number at 4 decimals (the values are printed with at most 4).
fn d4(v: &Value) -> String {
    format!(
        "{:.4}",
        v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
    )
}

/// Compare the device's readings and gas days with the ground truth of one file.
fn check_against_expected(s: &Server, device: &str, truth: &Value) {
    let file = truth["file"].as_str().unwrap();
    let hourly = truth["hourly"].as_array().unwrap();
    let first = &hourly[0]["hour_end_local"].as_str().unwrap()[..10];
    let last = &hourly[hourly.len() - 1]["hour_end_local"].as_str().unwrap()[..10];
    let got = lines(&s.cli(&[
        "readings", "--device", device, "--from", first, "--to", last, "--json",
    ]));
    let got_times: Vec<&str> = got
        .iter()
        .map(|h| h["hour_end_local"].as_str().unwrap())
        .collect();
    let want_times: Vec<&str> = hourly
        .iter()
        .map(|h| h["hour_end_local"].as_str().unwrap())
        .collect();
    assert_eq!(got_times, want_times, "{file}: hours");
    for (g, w) in got.iter().zip(hourly) {
        assert_eq!(
            d4(&g["vb_m3"]),
            d4(&w["vb_m3"]),
            "{file} {}: vb",
            w["hour_end_local"]
        );
        assert_eq!(
            d4(&g["vm_m3"]),
            d4(&w["vm_m3"]),
            "{file} {}: vm",
            w["hour_end_local"]
        );
        assert!(
            g.get("p_kpa").is_some() && g.get("t_c").is_some() && g["flags"].is_array(),
            "{g}"
        );
    }
    let daily = truth["daily"].as_array().unwrap();
    let first = daily[0]["gas_day"].as_str().unwrap();
    let last = daily[daily.len() - 1]["gas_day"].as_str().unwrap();
    let got = lines(&s.cli(&[
        "daily", "--device", device, "--from", first, "--to", last, "--json",
    ]));
    assert_eq!(got.len(), daily.len(), "{file}: gas days {got:#?}");
    for (g, w) in got.iter().zip(daily) {
        assert_eq!(g["gas_day"], w["gas_day"], "{file}");
        assert_eq!(
            d4(&g["vb_m3"]),
            d4(&w["vb_m3"]),
            "{file} {}: vb",
            w["gas_day"]
        );
        assert_eq!(g["hours"], w["hours"], "{file} {}: hours", w["gas_day"]);
        assert_eq!(
            g["complete"], w["complete"],
            "{file} {}: complete",
            w["gas_day"]
        );
    }
}

fn import(s: &Server, device: &str, files: &[PathBuf]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(&s.dir)
        .args(["import", "--device", device]);
    cmd.args(files);
    cmd.output().unwrap()
}

fn wait_ingested(s: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let u = s.uploads().into_iter().find(|u| u["id"] == id).unwrap();
        if u["ingest"]["status"] != "pending" && !u["ingest"].is_null() {
            return u;
        }
        assert!(
            Instant::now() < deadline,
            "upload {id} was not ingested: {u:#}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn golden_samples_through_import() {
    let s = Server::start();
    for (i, truth) in expected().iter().enumerate() {
        let device = format!("golden{i}");
        s.cli(&["device", "add", &device, "--password", "pw-golden-0"]);
        let out = import(&s, &device, &[sample_path(truth["file"].as_str().unwrap())]);
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("parsed as"));
        check_against_expected(&s, &device, truth);
    }
}

#[test]
fn golden_samples_through_ftp_uploads() {
    let s = Server::start();
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    for truth in expected() {
        let file = truth["file"].as_str().unwrap();
        let bytes = std::fs::read(sample_path(file)).unwrap();
        // One device per file: the samples overlap in time.
        let device = format!("ftp-{}", file.replace(['.', '_'], "-"));
        s.cli(&["device", "add", &device, "--password", "pw-ftp-samples"]);
        let mut d = FtpStream::connect(s.ftp).unwrap();
        d.login(device.as_str(), "pw-ftp-samples").unwrap();
        d.transfer_type(FileType::Binary).unwrap();
        d.put_file(file, &mut Cursor::new(&bytes)).unwrap();
        d.quit().unwrap();
        let u = s.wait_upload(|u| u["device"] == device.as_str());
        let u = wait_ingested(&s, u["id"].as_i64().unwrap());
        assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
        assert!(u["ingest"]["format"].is_string());
        assert!(u["ingest"]["records"]["total"].as_u64().unwrap() > 0);
        check_against_expected(&s, &device, &truth);
    }
    // The event log is parsed too.
    let events = std::fs::read(sample_path("tc220_events.txt")).unwrap();
    ftp.put_file("events.txt", &mut Cursor::new(&events))
        .unwrap();
    ftp.quit().unwrap();
    let u = s.wait_upload(|u| u["final_path"] == "/events.txt");
    let u = wait_ingested(&s, u["id"].as_i64().unwrap());
    assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
    assert!(u["ingest"]["events"].as_u64().unwrap() > 0, "{u:#}");
}

#[test]
fn same_result_for_repeats_splits_and_shuffles() {
    let s = Server::start();
    let path = sample_path("tc220_interval_3days.txt");
    let text = std::fs::read_to_string(&path).unwrap();
    let rows: Vec<&str> = text.lines().collect();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, rows: &[&str]| {
        let p = dir.path().join(name);
        std::fs::write(&p, rows.join("\r\n") + "\r\n").unwrap();
        p
    };
    // Reference: the whole file once.
    s.cli(&["device", "add", "whole", "--password", "pw-whole-00"]);
    assert!(
        import(&s, "whole", std::slice::from_ref(&path))
            .status
            .success()
    );
    // The same file twice: the second time every record is a duplicate.
    s.cli(&["device", "add", "twice", "--password", "pw-twice-00"]);
    assert!(
        import(&s, "twice", std::slice::from_ref(&path))
            .status
            .success()
    );
    let out = import(&s, "twice", std::slice::from_ref(&path));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(0 new"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Split into three uploads, overlapping by a row.
    s.cli(&["device", "add", "split", "--password", "pw-split-00"]);
    let n = rows.len();
    let parts = [
        write("p1.txt", &rows[..n / 3 + 1]),
        write("p2.txt", &rows[n / 3..2 * n / 3 + 1]),
        write("p3.txt", &rows[2 * n / 3..]),
    ];
    assert!(import(&s, "split", &parts).status.success());
    // Shuffled and with duplicated rows.
    s.cli(&["device", "add", "shuffled", "--password", "pw-shuffle-0"]);
    let mut shuffled: Vec<&str> = rows.clone();
    shuffled.reverse();
    shuffled.rotate_left(7);
    shuffled.extend_from_slice(&rows[10..20]);
    assert!(
        import(&s, "shuffled", &[write("shuffled.txt", &shuffled)])
            .status
            .success()
    );

    let range = |d: &str, what: &str| {
        lines(&s.cli(&[
            what,
            "--device",
            d,
            "--from",
            "2026-01-13",
            "--to",
            "2026-01-18",
            "--json",
        ]))
    };
    for what in ["readings", "daily"] {
        let reference = range("whole", what);
        assert!(!reference.is_empty());
        for d in ["twice", "split", "shuffled"] {
            assert_eq!(range(d, what), reference, "{what} of {d}");
        }
    }
}

#[test]
fn bad_files_are_quarantined_with_a_reason_and_write_nothing() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut random = vec![0u8; 5000];
    let mut x = 12345u32;
    for b in random.iter_mut() {
        x = x.wrapping_mul(1103515245).wrapping_add(12345);
        *b = (x >> 16) as u8;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.txt", Vec::new()),
        ("random.bin", random),
        (
            "impossible.txt",
            b"(1)(2026-02-30,11:00:00)(1.0)(1.0)(1.0)(1.0)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n".to_vec(),
        ),
        ("parens.txt", vec![b'('; 200 * 1024]),
        (
            // The vendor CSV in KOI8-R instead of Windows-1251, with '.' decimals: the shipped profile must not half-read it.
            "export_koi8.csv",
            "Дата|Время|Vст\n14.01.2026|11:00|4982.6473\n".as_bytes().to_vec(),
        ),
    ];
    for (name, bytes) in &cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = import(&s, "unit1", &[p]);
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(!out.status.success(), "{name}: {text}");
        assert!(text.contains("quarantined"), "{name}: {text}");
    }
    for u in s.uploads() {
        assert_eq!(u["ingest"]["status"], "quarantined", "{u:#}");
        let reason = u["ingest"]["reason"].as_str().unwrap();
        assert!(reason.len() > 10, "{reason}");
        // The bytes are kept for a later re-parse.
        assert_eq!(u["status"], "complete");
    }
    // Nothing was written for any of them.
    let hours = lines(&s.cli(&[
        "readings",
        "--device",
        "unit1",
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--json",
    ]));
    assert!(hours.is_empty(), "{hours:#?}");
}

#[test]
fn quarantined_files_are_parsed_after_a_profile_is_added() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("site.txt");
    std::fs::write(
        &p,
        "when|base\n2026-01-14 11:00|100.5\n2026-01-14 12:00|101.25\n2026-01-14 13:00|103\n",
    )
    .unwrap();
    let out = import(&s, "unit1", &[p]);
    assert!(!out.status.success());
    let u = &s.uploads()[0];
    assert_eq!(u["ingest"]["status"], "quarantined");

    // The operator describes the format...
    std::fs::create_dir_all(s.dir.join("profiles")).unwrap();
    std::fs::write(s.dir.join("profiles/site.toml"), SITE_PROFILE).unwrap();
    // ...and re-parses what was quarantined.
    let out = s.cli(&["reparse", "--status", "quarantined"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("parsed as profile:site"), "{text}");
    let hours = lines(&s.cli(&[
        "readings",
        "--device",
        "unit1",
        "--from",
        "2026-01-14",
        "--to",
        "2026-01-14",
        "--json",
    ]));
    assert_eq!(hours.len(), 2, "{hours:#?}");
    assert_eq!(d4(&hours[0]["vb_m3"]), "0.7500");
    assert_eq!(d4(&hours[1]["vb_m3"]), "1.7500");
}

const SITE_PROFILE: &str = include_str!("../../../testdata/profiles/site.toml");

#[test]
fn gas_day_settings_per_device() {
    let s = Server::start();
    s.cli(&[
        "device",
        "set",
        "unit1",
        "--tz",
        "Asia/Yekaterinburg",
        "--contract-hour",
        "6",
    ]);
    let list = String::from_utf8(s.cli(&["device", "list", "--json"]).stdout).unwrap();
    assert!(
        list.contains("\"time_zone\":\"Asia/Yekaterinburg\"")
            && list.contains("\"contract_hour\":6"),
        "{list}"
    );
    let bad = Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.dir)
        .args(["device", "set", "unit1", "--tz", "Mars/Olympus"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("IANA"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    let bad = Command::new(BIN)
        .arg("--data-dir")
        .arg(&s.dir)
        .args(["device", "set", "unit1", "--contract-hour", "24"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    // With a 06:00 contract hour the same readings make other gas days.
    assert!(
        import(&s, "unit1", &[sample_path("tc220_interval_3days.txt")])
            .status
            .success()
    );
    let days = lines(&s.cli(&[
        "daily",
        "--device",
        "unit1",
        "--from",
        "2026-01-14",
        "--to",
        "2026-01-17",
        "--json",
    ]));
    assert!(!days.is_empty());
    for d in &days {
        assert!(d["final"].is_boolean() && d["flags"].is_array(), "{d}");
    }
    let full: Vec<_> = days.iter().filter(|d| d["complete"] == true).collect();
    assert!(!full.is_empty(), "{days:#?}");
    for d in full {
        assert_eq!(d["hours"], 24, "{d}");
    }
}

#[test]
fn queued_uploads_survive_a_restart_and_are_parsed_then() {
    // A receiver that does not parse: uploads are queued, durably.
    let mut s = Server::start_with(&[("TELEGAZ_INGEST__ENABLED", "false")]);
    let bytes = std::fs::read(sample_path("tc220_interval_3days.txt")).unwrap();
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.put_file("a.txt", &mut Cursor::new(&bytes)).unwrap();
    ftp.quit().unwrap();
    let u = s.wait_upload(|u| u["final_path"] == "/a.txt");
    std::thread::sleep(Duration::from_millis(1500));
    let u = s
        .uploads()
        .into_iter()
        .find(|x| x["id"] == u["id"])
        .unwrap();
    assert_eq!(u["ingest"]["status"], "pending", "{u:#}");
    // The process dies; the next one (parsing) picks the queue up.
    s.restart_with(&[("TELEGAZ_INGEST__ENABLED", "true")]);
    let u = wait_ingested(&s, u["id"].as_i64().unwrap());
    assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
    let records = &u["ingest"]["records"];
    assert!(records["new"].as_u64().unwrap() > 70, "{u:#}");
    assert_eq!(records["new"], records["total"], "{u:#}");
}
