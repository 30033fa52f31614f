//! `telegaz simulate` and `telegaz demo` against the real server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server};
use serde_json::Value;

/// Runs `telegaz simulate --json` on the server's data directory; the report.
fn simulate(s: &Server, args: &[&str]) -> Value {
    let ftp = s.ftp.to_string();
    let mut all = vec!["simulate", "--server", &ftp, "--json"];
    all.extend_from_slice(args);
    let out = s.cli(&all);
    assert!(
        out.status.success(),
        "simulate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sim_uploads(s: &Server) -> Vec<Value> {
    s.uploads()
        .into_iter()
        .filter(|u| u["device"].as_str().is_some_and(|d| d.starts_with("sim-")))
        .collect()
}

/// Waits until every complete upload has been through ingest.
fn wait_ingested(s: &Server) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let all = sim_uploads(s);
        let pending = all
            .iter()
            .any(|u| u["status"] == "complete" && u["ingest"]["status"] == "pending");
        if !pending && !all.iter().any(|u| u["status"] == "receiving") {
            return all;
        }
        assert!(Instant::now() < deadline, "ingest did not finish: {all:#?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn count_by(uploads: &[Value], f: impl Fn(&Value) -> String) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for u in uploads {
        *m.entry(f(u)).or_default() += 1;
    }
    m
}

#[test]
fn a_herd_of_20_units_two_rounds_everything_acknowledged_is_stored_and_parsed() {
    let s = Server::start();
    let report = simulate(
        &s,
        &[
            "--devices",
            "20",
            "--rounds",
            "2",
            "--schedule",
            "herd",
            "--interval",
            "0s",
        ],
    );
    let sum = &report["summary"];
    assert_eq!(sum["rounds"], 2, "{sum:#}");
    assert_eq!(sum["devices"], 20);
    assert_eq!(sum["sessions"], 40);
    assert_eq!(sum["acknowledged"], 40);
    assert_eq!(sum["files_acknowledged"], 40);
    assert_eq!(sum["failed"], 0);
    for kind in ["connect", "login", "transfer", "timeout", "other"] {
        assert_eq!(sum["failures"][kind], 0, "{kind}");
    }
    let sessions = report["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 40);
    let bytes: u64 = sessions.iter().map(|x| x["bytes"].as_u64().unwrap()).sum();
    assert_eq!(sum["bytes"], bytes);
    assert!(
        sum["latency_ms"]["max"].as_f64().unwrap() >= sum["latency_ms"]["p50"].as_f64().unwrap()
    );

    // Every acknowledged file is stored complete with its size, and parsed.
    let uploads = wait_ingested(&s);
    assert_eq!(uploads.len(), 40, "{uploads:#?}");
    for x in sessions {
        let u = uploads
            .iter()
            .find(|u| u["device"] == x["device"] && u["original_name"] == x["file"])
            .unwrap_or_else(|| panic!("no upload for {x}"));
        assert_eq!(u["status"], "complete", "{u:#}");
        assert_eq!(u["size"], x["size"]);
        assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
        assert_eq!(u["ingest"]["format"], "lis200-text");
        // 24 hourly rows and one daily row (10:00) per file.
        assert_eq!(u["ingest"]["records"]["total"], 25, "{u:#}");
        assert_eq!(u["ingest"]["records"]["new"], 25, "{u:#}");
    }

    // The readings are there: two days of hours from 2026-01-01 01:00 on.
    for device in ["sim-0001", "sim-0020"] {
        let out = s.cli(&[
            "readings",
            "--device",
            device,
            "--from",
            "2026-01-01",
            "--to",
            "2026-01-03",
            "--json",
        ]);
        assert!(out.status.success());
        let rows: Vec<Value> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        // The first hour has no reading before it: 47 hourly volumes.
        let with_volume: Vec<&Value> = rows.iter().filter(|r| r["vb_m3"].is_number()).collect();
        assert_eq!(with_volume.len(), 47, "{rows:#?}");
        for r in &with_volume {
            assert!(r["vb_m3"].as_f64().unwrap() > 0.0, "{r}");
            assert!(r["flags"].as_array().is_none_or(|f| f.is_empty()), "{r}");
        }
    }
}

#[test]
fn a_dropped_data_connection_leaves_a_partial_upload_and_the_retry_a_complete_one() {
    let s = Server::start();
    let report = simulate(
        &s,
        &[
            "--devices",
            "6",
            "--rounds",
            "1",
            "--drop-data",
            "0.5",
            "--attempts",
            "12",
            "--retry-after",
            "50ms",
            "--seed",
            "5",
        ],
    );
    let sum = &report["summary"];
    let injected = sum["injected"].as_u64().unwrap();
    assert!(injected > 0, "the seed drops some links: {sum:#}");
    assert_eq!(sum["files_acknowledged"], 6, "{sum:#}");
    assert_eq!(sum["failures"]["transfer"], injected);
    assert_eq!(sum["retries"], injected);
    let uploads = wait_ingested(&s);
    let by_status = count_by(&uploads, |u| u["status"].as_str().unwrap().to_owned());
    assert_eq!(
        by_status.get("partial").copied().unwrap_or(0) as u64,
        injected,
        "{uploads:#?}"
    );
    assert_eq!(by_status.get("complete"), Some(&6));
    for u in &uploads {
        let same: Vec<&Value> = uploads
            .iter()
            .filter(|v| v["original_name"] == u["original_name"] && v["status"] == "complete")
            .collect();
        assert_eq!(same.len(), 1, "one complete copy of {}", u["original_name"]);
        if u["status"] == "partial" {
            assert!(u["size"].as_u64() < same[0]["size"].as_u64(), "{u:#}");
        } else {
            assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
        }
    }
    // Each dropped attempt's bytes are what the server kept as partial.
    let mut dropped: Vec<u64> = report["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["injected"] == true)
        .map(|x| x["bytes"].as_u64().unwrap())
        .collect();
    let mut partial: Vec<u64> = uploads
        .iter()
        .filter(|u| u["status"] == "partial")
        .map(|u| u["size"].as_u64().unwrap())
        .collect();
    dropped.sort();
    partial.sort();
    // A reset may discard what the server had not read yet: never more.
    assert_eq!(dropped.len(), partial.len());
    assert!(
        dropped.iter().zip(&partial).all(|(d, p)| p <= d),
        "{dropped:?} {partial:?}"
    );
    assert!(partial.iter().any(|p| *p > 0), "{partial:?}");
}

#[test]
fn both_servers_get_every_file() {
    let a = Server::start();
    let b = Server::start();
    // The same seed gives the same accounts: create them on b first.
    let setup = simulate(&b, &["--devices", "3", "--rounds", "0"]);
    assert_eq!(setup["summary"]["sessions"], 0);
    let b_ftp = b.ftp.to_string();
    let report = simulate(
        &a,
        &["--devices", "3", "--rounds", "1", "--duplicate-to", &b_ftp],
    );
    let sum = &report["summary"];
    assert_eq!(sum["files_acknowledged"], 3, "{sum:#}");
    assert_eq!(sum["duplicates_acknowledged"], 3, "{sum:#}");
    let on_a = wait_ingested(&a);
    let on_b = wait_ingested(&b);
    let hashes = |v: &[Value]| {
        let mut h: Vec<String> = v
            .iter()
            .map(|u| u["sha256"].as_str().unwrap().to_owned())
            .collect();
        h.sort();
        h
    };
    assert_eq!(on_a.len(), 3);
    assert_eq!(hashes(&on_a), hashes(&on_b));
}

#[test]
fn a_late_passive_connection_fails_when_later_than_the_server_waits() {
    let s = Server::start_with(&[("TELEGAZ_FTP__DATA_CONNECT_TIMEOUT", "1s")]);
    let report = simulate(
        &s,
        &[
            "--devices",
            "2",
            "--rounds",
            "1",
            "--late-pasv",
            "2500",
            "--attempts",
            "1",
        ],
    );
    let sum = &report["summary"];
    assert_eq!(sum["acknowledged"], 0, "{sum:#}");
    assert_eq!(sum["failed"], 2);
    assert_eq!(sum["failures"]["transfer"], 2, "{report:#}");
    assert!(!sim_uploads(&s).iter().any(|u| u["status"] == "complete"));
    // A little late is fine.
    let report = simulate(
        &s,
        &[
            "--devices",
            "2",
            "--rounds",
            "1",
            "--late-pasv",
            "200",
            "--attempts",
            "1",
        ],
    );
    assert_eq!(report["summary"]["acknowledged"], 2, "{report:#}");
}

#[test]
fn bandwidth_and_latency_slow_the_sessions_down() {
    let s = Server::start();
    let report = simulate(
        &s,
        &[
            "--devices",
            "2",
            "--rounds",
            "1",
            "--bandwidth",
            "4000",
            "--latency",
            "50",
        ],
    );
    assert_eq!(report["summary"]["acknowledged"], 2, "{report:#}");
    for x in report["sessions"].as_array().unwrap() {
        // A file of ~3.3 KB at 4000 B/s, and 6 commands 50 ms apart at least.
        let floor = x["size"].as_f64().unwrap() / 4000.0 * 0.9 + 0.3;
        assert!(x["latency"].as_f64().unwrap() >= floor, "{x}");
    }
}

// ---- telegaz demo ----

struct Demo {
    child: std::process::Child,
    http: SocketAddr,
    ftp: SocketAddr,
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_demo() -> Demo {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let mut child = Command::new(BIN)
        .args(["demo", "--data-dir"])
        .arg(&dir)
        .args([
            "--ftp-listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
            "--passive-ports",
            "0-0",
            "--interval",
            "2s",
            "--password",
            "demo-password-1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(tmp.path().join("demo.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (mut http, mut ftp, mut creds) = (None, None, false);
    let deadline = Instant::now() + Duration::from_secs(120);
    while http.is_none() || ftp.is_none() || !creds {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).unwrap_or_else(|_| {
            panic!(
                "demo did not start; log:\n{}",
                std::fs::read_to_string(tmp.path().join("demo.log")).unwrap_or_default()
            )
        });
        let addr = |l: &str| l.rsplit(' ').next().unwrap().parse::<SocketAddr>().unwrap();
        if line.starts_with("telegaz: FTP listening on ") {
            ftp = Some(addr(&line));
        } else if line.starts_with("telegaz: HTTP listening on ") {
            http = Some(addr(&line));
        } else if line.contains("sign in as: demo / demo-password-1") {
            creds = true;
        }
    }
    Demo {
        child,
        http: http.unwrap(),
        ftp: ftp.unwrap(),
        _tmp: tmp,
        dir,
    }
}

/// A bare HTTP/1.1 request; the status line, headers and body.
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    c.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    c.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .find_map(|l| {
            l.split_once(':')
                .and_then(|(_, v)| v.trim().split(';').next())
                .and_then(|kv| kv.strip_prefix(&format!("{name}=")))
                .map(str::to_owned)
        })
}

fn form_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn demo_starts_serves_the_fleet_to_the_demo_user_and_stops_on_sigterm() {
    let mut d = start_demo();
    let (status, _, body) = http(d.http, "GET", "/healthz", &[], "");
    assert_eq!((status, body.trim()), (200, "ok"));

    // Sign in as demo (the form, its pre-session cookie and CSRF token).
    let (status, head, page) = http(d.http, "GET", "/login", &[], "");
    assert_eq!(status, 200);
    let pre = cookie(&head, "tg_prelogin").unwrap();
    let csrf = page
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned();
    let form = format!(
        "user=demo&password=demo-password-1&csrf={}&next=%2F",
        form_escape(&csrf)
    );
    let pre_cookie = format!("tg_prelogin={pre}");
    let (status, head, _) = http(
        d.http,
        "POST",
        "/login",
        &[
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("Cookie", &pre_cookie),
        ],
        &form,
    );
    assert_eq!(status, 303, "{head}");
    let session = cookie(&head, "tg_session")
        .filter(|s| !s.is_empty())
        .expect("signed in");
    let session_cookie = format!("tg_session={session}");

    // The fleet: 20 units, with the interesting states.
    let (status, _, fleet) = http(d.http, "GET", "/", &[("Cookie", &session_cookie)], "");
    assert_eq!(status, 200);
    assert!(fleet.contains("Котельная №3, ул. Ленина 12"), "{fleet}");
    let listed = [
        "kotelnaya-3",
        "kotelnaya-5",
        "shrp-7",
        "grp-12",
        "shkola-14",
        "bolnica-2",
        "hlebozavod",
        "tep-1",
        "dk-neftyanik",
        "detsad-8",
        "kotelnaya-9",
        "teplica-agro",
        "shrp-21",
        "banya-1",
        "avtobaza",
        "mkd-lesnaya-4",
        "sportkompleks",
        "molzavod",
        "kotelnaya-11",
        "grp-3",
    ];
    for name in listed {
        assert!(fleet.contains(name), "{name} not on the fleet page");
    }
    // One silent, one in alarm, one with a quarantined file; the rest fine.
    for (state, unit, count) in [
        ("silent", "shkola-14", 1),
        ("alarm", "shrp-7", 1),
        ("quarantined", "hlebozavod", 1),
        ("ok", "kotelnaya-3", 17),
    ] {
        let (status, _, page) = http(
            d.http,
            "GET",
            &format!("/?state={state}"),
            &[("Cookie", &session_cookie)],
            "",
        );
        assert_eq!(status, 200);
        assert!(
            fleet.contains(&format!("href=\"/?state={state}\">")),
            "no {state} badge"
        );
        assert!(page.contains(unit), "{unit} is not {state}");
        assert_eq!(
            page.matches("<td><span class=\"badge state-").count(),
            count,
            "{state}"
        );
    }
    let devices = Command::new(BIN)
        .arg("--data-dir")
        .arg(&d.dir)
        .args(["device", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&devices.stdout).lines().count(), 20);

    // Live uploads arrive through FTP.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let out = Command::new(BIN)
            .arg("--data-dir")
            .arg(&d.dir)
            .args(["uploads", "list", "--json"])
            .output()
            .unwrap();
        let ftp_uploads = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .filter(|u| {
                u["peer"]
                    .as_str()
                    .is_some_and(|p| p.starts_with("127.0.0.1:"))
            })
            .count();
        if ftp_uploads >= 19 {
            break;
        }
        assert!(Instant::now() < deadline, "no live uploads via {}", d.ftp);
        std::thread::sleep(Duration::from_millis(300));
    }

    // SIGTERM: a clean exit.
    Command::new("kill")
        .args(["-TERM", &d.child.id().to_string()])
        .status()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = d.child.try_wait().unwrap() {
            assert!(status.success(), "demo exited with {status}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}
