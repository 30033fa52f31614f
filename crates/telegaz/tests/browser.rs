//! The web UI in a real browser: headless Chromium (Debian's `chromium`)
//! driven by Playwright (`tests/browser/ui_test.py`; `.ci/run` installs both)
//! against a real `telegaz serve` holding real data. Screenshots and the
//! printed configuration sheet are kept in `<target>/tmp/browser/`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Server;
use serde_json::{Value, json};

fn sample(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples")
        .join(path)
}

fn ok(out: std::process::Output) {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn upload_id(uploads: &[Value], name: &str) -> i64 {
    uploads
        .iter()
        .find(|u| u["original_name"] == name)
        .and_then(|u| u["id"].as_i64())
        .unwrap_or_else(|| panic!("no upload named {name}: {uploads:?}"))
}

#[test]
fn the_web_ui_works_in_chromium() {
    let chromium =
        std::env::var("TELEGAZ_TEST_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "Chromium is needed for the browser test: apt-get install chromium (.ci/run does)"
    );
    let probe = Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .output()
        .expect("python3 is needed for the browser test");
    assert!(
        probe.status.success(),
        "Playwright for Python is needed for the browser test: python3 -m pip install playwright (.ci/run does)"
    );

    let s = Server::start();
    let password = "engineer-password-1";
    ok(s.cli(&[
        "user",
        "add",
        "engineer",
        "--role",
        "admin",
        "--password",
        password,
    ]));
    for d in ["unit-a", "unit-b", "unit-c"] {
        ok(s.cli(&["device", "add", d, "--password", "device-password-1"]));
    }
    ok(s.cli(&[
        "device",
        "set",
        "unit-b",
        "--title",
        "<script>alert(1)</script>",
    ]));

    let lis = sample("lis200/tc220_interval_3days.txt");
    let csv = sample("csv/export_cp1251.csv");
    ok(s.cli(&[
        "import",
        "--device",
        "unit-a",
        lis.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]));
    let tmp = tempfile::tempdir().unwrap();
    let mut hostile: Vec<u8> = (0u8..32).collect();
    hostile.extend_from_slice(b"<script>alert(3)</script>\n");
    let hostile_path = tmp.path().join("hostile.bin");
    std::fs::write(&hostile_path, &hostile).unwrap();
    let original = std::fs::read(&csv).unwrap();
    let (text, _, _) = encoding_rs::WINDOWS_1251.decode(&original);
    let tabs_path = tmp.path().join("export-tabs.csv");
    std::fs::write(&tabs_path, text.replace(';', "\t")).unwrap();
    // Neither is understood: both are kept in quarantine (import says so and exits 1).
    let import = Command::new(common::BIN)
        .arg("--data-dir")
        .arg(&s.dir)
        .args(["import", "--device", "unit-b"])
        .arg(&hostile_path)
        .arg(&tabs_path)
        .output()
        .unwrap();
    assert_eq!(import.status.code(), Some(1), "{import:?}");
    let uploads = s.uploads();
    let devices = String::from_utf8(s.cli(&["device", "list", "--json"]).stdout)
        .unwrap()
        .lines()
        .count();

    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/ui_test.py");
    let args = json!({
        "base": format!("http://{}", s.http),
        "user": "engineer",
        "password": password,
        "out": out,
        "chromium": chromium,
        "units": devices,
        "device": "unit-a",
        "from": "2026-01-13",
        "to": "2026-01-17",
        "min_points": 20,
        "cp1251_upload": upload_id(&uploads, "export_cp1251.csv"),
        "hostile_upload": upload_id(&uploads, "hostile.bin"),
        "quarantined_upload": upload_id(&uploads, "export-tabs.csv"),
    });
    let run = Command::new("python3")
        .arg(&script)
        .arg(args.to_string())
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{report}");
    assert!(
        run.status.success(),
        "browser checks failed:\n{report}\nscreenshots: {}",
        out.display()
    );
    assert!(out.join("01-fleet.png").exists() && out.join("03-sheet.pdf").exists());
}
