//! Alerts end to end: a real `telegaz serve` with short alert settings, a
//! unit uploading by FTP (curl), then falling silent, then calling again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, content, run_ok, temp_file};
use serde_json::Value;

fn token(s: &Server) -> String {
    s.cli(&[
        "user",
        "add",
        "watcher",
        "--role",
        "viewer",
        "--password",
        "watcher-password-1",
    ]);
    let out = s.cli(&["user", "token", "watcher", "--label", "test"]);
    let text = String::from_utf8(out.stdout).unwrap();
    text.trim().rsplit(' ').next().unwrap().to_owned()
}

fn alerts(s: &Server, token: &str, query: &str) -> Vec<Value> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{}/api/v1/alerts{query}", s.http))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["alerts"].as_array().unwrap().clone()
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn upload(s: &Server, name: &str) {
    let (_d, f) = temp_file("a.bin", &content(1, 1000));
    run_ok(
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30", "-T"])
            .arg(&f)
            .arg(s.ftp_url("unit1", "pw-unit1", name)),
    );
}

#[test]
fn a_unit_that_falls_silent_raises_an_alert_and_its_return_resolves_it() {
    let s = Server::start_with(&[
        ("TELEGAZ_ALERTS__EVALUATE_EVERY", "200ms"),
        ("TELEGAZ_ALERTS__SILENT_DEFAULT_INTERVAL", "1s"),
        ("TELEGAZ_ALERTS__SILENT_GRACE", "1s"),
    ]);
    let token = token(&s);
    upload(&s, "/first.bin");
    // Silent after 1 s + 1 s without contact: one alert, shown by the API.
    wait_for("the silent alert", || {
        alerts(&s, &token, "")
            .iter()
            .any(|a| a["kind"] == "silent" && a["device"] == "unit1")
    });
    let open = alerts(&s, &token, "");
    assert_eq!(
        open.iter()
            .filter(|a| a["kind"] == "silent" && a["device"] == "unit1")
            .count(),
        1,
        "one alert per condition: {open:?}"
    );
    // The unit calls again: the alert is resolved by itself.
    upload(&s, "/second.bin");
    wait_for("the alert to resolve", || {
        alerts(&s, &token, "?active=false")
            .iter()
            .any(|a| a["device"] == "unit1" && a["state"] == "resolved")
    });
}
