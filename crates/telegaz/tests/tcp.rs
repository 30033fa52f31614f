//! Raw-TCP reception with a real client (Python sockets): each connection's
//! bytes become an upload, through the same spool, records and ingest as FTP.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, run_ok};
use serde_json::Value;

fn sample(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples/lis200")
        .join(file)
}

fn expected_hours(file: &str) -> usize {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/samples/expected.json");
    let all: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let truth = all.iter().find(|t| t["file"] == file).unwrap();
    truth["hourly"].as_array().unwrap().len()
}

/// What the Python client does with the connection once the bytes are sent.
#[derive(Clone, Copy)]
enum Finish {
    /// Half-close (SHUT_WR) and print the server's reply.
    HalfClose,
    /// Reset (SO_LINGER 0) after the bytes: a unit losing its link.
    Reset,
    /// Keep the connection open and silent; print the server's reply.
    Stay,
}

const CLIENT: &str = r#"
import socket, struct, sys, time
host, port, head, path, finish = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
data = head.encode().decode('unicode_escape').encode('latin-1')
if path != '-':
    data += open(path, 'rb').read()
if finish == 'reset':
    data = data[: len(data) // 2]
s = socket.create_connection((host, port), timeout=60)
s.sendall(data)
if finish == 'reset':
    time.sleep(0.3)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    s.close()
    print('RESET')
    sys.exit(0)
if finish == 'half':
    try:
        s.shutdown(socket.SHUT_WR)
    except OSError:
        pass  # the server answered and closed already
reply = b''
while not reply.endswith(b'\n'):
    chunk = s.recv(100)
    if not chunk:
        break
    reply += chunk
print('REPLY ' + reply.decode('latin-1').strip())
"#;

/// Send `head` (a Python string literal with `\r\n` escapes) and then the file.
fn send(s: &Server, head: &str, file: Option<&PathBuf>, finish: Finish) -> String {
    let addr = s.tcp.expect("the server announced no TCP port");
    let finish = match finish {
        Finish::HalfClose => "half",
        Finish::Reset => "reset",
        Finish::Stay => "stay",
    };
    let path = file.map_or("-".to_owned(), |p| p.display().to_string());
    let out = run_ok(Command::new("python3").args([
        "-c",
        CLIENT,
        "127.0.0.1",
        &addr.port().to_string(),
        head,
        &path,
        finish,
    ]));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

fn start(extra: &[(&str, &str)]) -> Server {
    let mut env = vec![("TELEGAZ_TCP__LISTEN", "127.0.0.1:0")];
    env.extend_from_slice(extra);
    Server::start_with(&env)
}

fn wait_ingested(s: &Server, id: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let u = s.uploads().into_iter().find(|u| u["id"] == id).unwrap();
        if !u["ingest"].is_null() && u["ingest"]["status"] != "pending" {
            return u;
        }
        assert!(
            Instant::now() < deadline,
            "not ingested: {u:#}\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn readings(s: &Server, device: &str) -> Vec<Value> {
    let out = s.cli(&[
        "readings",
        "--device",
        device,
        "--from",
        "2000-01-01",
        "--to",
        "2100-01-01",
        "--json",
    ]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `OK <id>` was answered, and that upload is the device's, complete, byte-exact.
fn stored_ok(s: &Server, reply: &str, device: &str, bytes: &[u8]) -> i64 {
    let id: i64 = reply
        .strip_prefix("REPLY OK ")
        .unwrap_or_else(|| panic!("{reply}\n{}", s.log()))
        .parse()
        .unwrap();
    let u = s.wait_upload(|u| u["id"] == id);
    assert_eq!(u["device"], device, "{u:#}");
    s.assert_stored(&u, bytes);
    id
}

const FILE: &str = "tc220_interval_3days.txt";

#[test]
fn login_line_then_data_is_stored_parsed_and_queryable() {
    let s = start(&[]);
    let path = sample(FILE);
    let bytes = std::fs::read(&path).unwrap();
    let reply = send(
        &s,
        "LOGIN unit1 pw-unit1\\r\\n",
        Some(&path),
        Finish::HalfClose,
    );
    let id = stored_ok(&s, &reply, "unit1", &bytes);
    let u = wait_ingested(&s, id);
    assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
    assert_eq!(readings(&s, "unit1").len(), expected_hours(FILE));
    assert!(u["session"].is_string(), "{u:#}");
    s.wait_audit(|e| {
        e["kind"] == "login_succeeded" && e["login"] == "unit1" && e["session"] == u["session"]
    });
}

#[test]
fn wrong_password_or_no_login_is_refused_and_audited() {
    let s = start(&[]);
    let path = sample(FILE);
    let reply = send(
        &s,
        "LOGIN unit1 wrong\\r\\n",
        Some(&path),
        Finish::HalfClose,
    );
    assert_eq!(reply, "REPLY ERR login refused");
    s.wait_audit(|e| {
        e["kind"] == "login_failed" && e["outcome"] == "bad_password" && e["login"] == "unit1"
    });
    // No line at all, from an address that identifies nobody.
    let reply = send(&s, "", Some(&path), Finish::HalfClose);
    assert!(reply.starts_with("REPLY ERR send LOGIN"), "{reply}");
    s.wait_audit(|e| e["kind"] == "login_failed" && e["outcome"] == "no_login");
    // A device that must use FTPS is refused on raw TCP.
    s.cli(&["device", "set", "unit2", "--tls-required", "true"]);
    let reply = send(
        &s,
        "LOGIN unit2 pw-unit2\\r\\n",
        Some(&path),
        Finish::HalfClose,
    );
    assert!(reply.contains("must use FTPS"), "{reply}");
    s.wait_audit(|e| e["outcome"] == "tls_required" && e["login"] == "unit2");
    assert!(s.uploads().is_empty(), "{:#?}", s.uploads());
}

#[test]
fn allow_listed_address_needs_no_login_line() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("telegaz.toml");
    std::fs::write(
        &config,
        "[[tcp.by_address]]\naddress = \"127.0.0.1\"\ndevice = \"unit2\"\n",
    )
    .unwrap();
    let s = start(&[("TELEGAZ_CONFIG", config.to_str().unwrap())]);
    let path = sample(FILE);
    let bytes = std::fs::read(&path).unwrap();
    let reply = send(&s, "", Some(&path), Finish::HalfClose);
    let id = stored_ok(&s, &reply, "unit2", &bytes);
    assert_eq!(wait_ingested(&s, id)["ingest"]["status"], "parsed");
    assert_eq!(readings(&s, "unit2").len(), expected_hours(FILE));
    // A LOGIN line from that address still names its own device.
    let reply = send(
        &s,
        "LOGIN unit1 pw-unit1\\r\\n",
        Some(&path),
        Finish::HalfClose,
    );
    stored_ok(&s, &reply, "unit1", &bytes);
}

#[test]
fn dropped_connection_is_partial_and_parsed_only_once_resent() {
    let s = start(&[]);
    let path = sample(FILE);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        send(&s, "LOGIN unit1 pw-unit1\\r\\n", Some(&path), Finish::Reset),
        "RESET"
    );
    let partial = s.wait_upload(|u| u["status"] == "partial");
    let size = partial["size"].as_u64().unwrap() as usize;
    assert!(size < bytes.len(), "{partial:#}");
    let id = partial["id"].as_i64().unwrap();
    assert!(s.upload_bytes(id) == bytes[..size], "a prefix is kept");
    assert!(
        partial["reason"].as_str().unwrap().contains("lost"),
        "{partial:#}"
    );

    // The unit sends the whole file again: parsed once, no reading twice.
    let reply = send(
        &s,
        "LOGIN unit1 pw-unit1\\r\\n",
        Some(&path),
        Finish::HalfClose,
    );
    let id2 = stored_ok(&s, &reply, "unit1", &bytes);
    let u = wait_ingested(&s, id2);
    assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
    assert_eq!(readings(&s, "unit1").len(), expected_hours(FILE));
    let partial = s.uploads().into_iter().find(|u| u["id"] == id).unwrap();
    assert!(
        partial["ingest"].is_null() || partial["ingest"]["status"] != "parsed",
        "a partial upload is not parsed: {partial:#}"
    );
}

#[test]
fn idle_connection_ends_as_partial() {
    let s = start(&[("TELEGAZ_TCP__IDLE_TIMEOUT", "1s")]);
    let reply = send(
        &s,
        "LOGIN unit1 pw-unit1\\r\\nfirst bytes",
        None,
        Finish::Stay,
    );
    assert!(reply.starts_with("REPLY ERR no data for 1 s"), "{reply}");
    let u = s.wait_upload(|u| u["status"] == "partial");
    assert_eq!(u["size"], 11, "{u:#}");
    assert!(u["reason"].as_str().unwrap().contains("1"), "{u:#}");
    let id = u["id"].as_i64().unwrap();
    assert_eq!(s.upload_bytes(id), b"first bytes");
}
