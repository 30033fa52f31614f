//! Alerts end to end: a real `telegaz serve` with short alert settings, a
//! unit uploading by FTP (curl), then falling silent, then calling again.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, api_alerts as alerts, content, run_ok, temp_file, viewer_token as token};
use serde_json::Value;

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

/// A local HTTP receiver for the webhook: answers 500 to the first request
/// (the notifier must retry) and 200 after, keeping every body.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    std::thread::spawn(move || {
        let mut served = 0;
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = reader.read_exact(&mut body);
            served += 1;
            let status = if served == 1 {
                "500 Internal Server Error"
            } else {
                "200 OK"
            };
            if served > 1 {
                kept.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
            }
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
        }
    });
    (url, got)
}

#[test]
fn a_unit_that_falls_silent_raises_an_alert_and_its_return_resolves_it() {
    let (hook, received) = webhook_receiver();
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("telegaz.toml");
    std::fs::write(
        &file,
        format!("[[notifier]]\nname = \"dispatch\"\ntype = \"webhook\"\nurl = \"{hook}\"\n"),
    )
    .unwrap();
    let s = Server::start_with(&[
        ("TELEGAZ_CONFIG", file.to_str().unwrap()),
        ("TELEGAZ_ALERTS__EVALUATE_EVERY", "200ms"),
        ("TELEGAZ_ALERTS__SILENT_DEFAULT_INTERVAL", "1s"),
        ("TELEGAZ_ALERTS__SILENT_GRACE", "1s"),
        ("TELEGAZ_ALERTS__NOTIFY_RETRY", "200ms"),
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
    // The webhook answered 500 first: the notification is retried, and arrives.
    wait_for("the webhook notification", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|n| n["event"] == "opened" && n["device"] == "unit1" && n["kind"] == "silent")
    });
    // The unit calls again: the alert is resolved by itself, with a recovery notice.
    upload(&s, "/second.bin");
    wait_for("the alert to resolve", || {
        alerts(&s, &token, "?active=false")
            .iter()
            .any(|a| a["device"] == "unit1" && a["state"] == "resolved")
    });
    wait_for("the recovery notice", || {
        received
            .lock()
            .unwrap()
            .iter()
            .any(|n| n["event"] == "resolved" && n["device"] == "unit1")
    });
    let opened = received
        .lock()
        .unwrap()
        .iter()
        .filter(|n| n["event"] == "opened")
        .count();
    assert!(opened >= 1);
}

#[test]
fn every_unit_s_latest_state_and_reading_is_published_retained_over_mqtt() {
    assert!(
        Command::new("mosquitto_sub").arg("--help").output().is_ok(),
        "mosquitto_sub is needed (apt-get install mosquitto-clients; .ci/run does)"
    );
    let prefix = format!("telegaz-test-{}", std::process::id());
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("telegaz.toml");
    std::fs::write(
        &file,
        format!(
            "[[notifier]]\nname = \"broker\"\ntype = \"mqtt\"\nhost = \"127.0.0.1\"\nport = 1883\ntopic_prefix = \"{prefix}\"\n"
        ),
    )
    .unwrap();
    let s = Server::start_with(&[
        ("TELEGAZ_CONFIG", file.to_str().unwrap()),
        ("TELEGAZ_ALERTS__EVALUATE_EVERY", "200ms"),
    ]);
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples/lis200/tc220_interval_3days.txt");
    run_ok(
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30", "-T"])
            .arg(&sample)
            .arg(s.ftp_url("unit1", "pw-unit1", "/archive.txt")),
    );
    // A subscriber that comes later gets the retained state with the newest reading.
    let topic = format!("{prefix}/devices/unit1/state");
    let mut state = Value::Null;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(30) {
        let out = Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                "1883",
                "-C",
                "1",
                "-W",
                "2",
                "-t",
                &topic,
            ])
            .output()
            .unwrap();
        if let Ok(v) = serde_json::from_slice::<Value>(&out.stdout)
            && v["newest"]["local_time"] == "2026-01-17T10:00:00"
        {
            state = v;
            break;
        }
    }
    assert_eq!(state["device"], "unit1", "{state}");
    assert_eq!(state["newest"]["quantities"]["vb"], "6750.4954", "{state}");
    assert!(state["last_contact"].is_string());
    // Clean up the retained message.
    let _ = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", "1883", "-r", "-n", "-t", &topic])
        .output();
}

#[test]
fn a_notifier_that_is_down_never_holds_up_receiving_or_ingest() {
    // A webhook on a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cfg = tempfile::tempdir().unwrap();
    let file = cfg.path().join("telegaz.toml");
    std::fs::write(
        &file,
        format!("[[notifier]]\nname = \"down\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:{port}/hook\"\n"),
    )
    .unwrap();
    let s = Server::start_with(&[
        ("TELEGAZ_CONFIG", file.to_str().unwrap()),
        ("TELEGAZ_ALERTS__EVALUATE_EVERY", "100ms"),
        ("TELEGAZ_ALERTS__NOTIFY_RETRY", "100ms"),
    ]);
    let token = token(&s);
    // The sample's readings are from January: the unit is silent at once and
    // its last gas day has no hours, so notifications pile up for the dead webhook.
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples/lis200/tc220_interval_3days.txt");
    for name in ["/a.txt", "/b.txt"] {
        run_ok(
            Command::new("curl")
                .args(["-sS", "--fail", "--max-time", "30", "-T"])
                .arg(&sample)
                .arg(s.ftp_url("unit1", "pw-unit1", name)),
        );
    }
    wait_for("alerts", || !alerts(&s, &token, "").is_empty());
    // Both files are received and parsed although every notification fails.
    wait_for("both uploads parsed", || {
        s.uploads()
            .iter()
            .filter(|u| u["status"] == "complete" && u["ingest"]["status"] == "parsed")
            .count()
            == 2
    });
}
