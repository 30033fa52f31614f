//! Bad input: each gets a clear reply, nothing accepted is lost, nothing is
//! written outside the spool, and the server keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Cursor, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Raw, Server, content};
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream, Status};

fn login_err(s: &Server, user: &str, pass: &str) -> FtpError {
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login(user, pass).unwrap_err()
}

fn assert_530(e: FtpError) {
    match e {
        FtpError::UnexpectedResponse(r) => assert_eq!(r.status, Status::NotLoggedIn, "{r:?}"),
        other => panic!("expected 530, got {other:?}"),
    }
}

/// The server still accepts a normal upload.
fn still_serving(s: &Server, name: &str) {
    let data = content(99, 1234);
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit2", "pw-unit2").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.put_file(name, &mut Cursor::new(&data)).unwrap();
    ftp.quit().unwrap();
    let want = format!("/{name}");
    let u = s.wait_upload(|u| u["final_path"] == want.as_str());
    s.assert_stored(&u, &data);
}

#[test]
fn refused_logins_are_clear_and_audited_without_the_password() {
    let s = Server::start();
    s.cli(&["device", "add", "off1", "--password", "pw-off1"]);
    s.cli(&["device", "disable", "off1"]);
    s.cli(&[
        "device",
        "add",
        "far1",
        "--password",
        "pw-far1",
        "--allow",
        "10.20.0.0/16",
    ]);

    assert_530(login_err(&s, "unit1", "wrong-secret-1"));
    assert_530(login_err(&s, "nobody", "wrong-secret-2"));
    assert_530(login_err(&s, "off1", "pw-off1"));
    assert_530(login_err(&s, "far1", "pw-far1"));

    for (login, reason) in [
        ("unit1", "bad_password"),
        ("nobody", "unknown_user"),
        ("off1", "disabled"),
        ("far1", "address_not_allowed"),
    ] {
        s.wait_audit(|e| {
            e["kind"] == "login_failed" && e["login"] == login && e["outcome"] == reason
        });
    }
    let audit = serde_json::to_string(&s.audit()).unwrap();
    for secret in ["wrong-secret-1", "wrong-secret-2", "pw-off1", "pw-far1"] {
        assert!(
            !audit.contains(secret),
            "a password reached the audit trail"
        );
        assert!(!s.log().contains(secret), "a password reached the log");
    }
    assert!(s.uploads().is_empty());
    still_serving(&s, "after-logins.bin");
}

#[test]
fn repeated_failures_block_the_login_for_a_while() {
    let s = Server::start();
    for _ in 0..5 {
        assert_530(login_err(&s, "unit1", "guess"));
    }
    // Now even the right password is refused from this address.
    assert_530(login_err(&s, "unit1", "pw-unit1"));
    s.wait_audit(|e| e["kind"] == "login_failed" && e["outcome"] == "blocked");
    // Another device from the same address is not locked out by one device's failures.
    still_serving(&s, "other-device.bin");
}

#[test]
fn traversal_attempts_stay_inside_the_device_namespace() {
    let s = Server::start();
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let data = content(30, 3000);

    // STOR: ".." is clamped at the device's root; the name lands in its namespace.
    for name in [
        "../../../../escape1.bin",
        "/../../etc/escape2.bin",
        "..\\..\\escape3.bin",
        "%2e%2e/%2e%2e/escape4.bin",
    ] {
        let r = ftp.put_file(name, &mut Cursor::new(&data));
        if r.is_ok() {
            let all = s.uploads();
            let last = all
                .iter()
                .max_by_key(|u| u["id"].as_i64().unwrap())
                .unwrap();
            let p = last["final_path"].as_str().unwrap();
            assert!(p.starts_with('/') && !p.contains(".."), "{p}");
        }
    }
    // CWD cannot leave the root: `..` at the root is the root.
    ftp.cwd("../../../..").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
    assert!(
        ftp.cwd("/../../tmp").is_err(),
        "there is no /tmp in the namespace"
    );
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.put_file("after-cwd.bin", &mut Cursor::new(&data))
        .unwrap();
    s.wait_upload(|u| u["final_path"] == "/after-cwd.bin");
    ftp.cwd("/").unwrap();
    // RNTO and DELE outside the namespace.
    ftp.put_file("victim.bin", &mut Cursor::new(&data)).unwrap();
    let _ = ftp.rename("victim.bin", "../../../../tmp/moved.bin");
    assert!(ftp.rm("../../../../etc/passwd").is_err());
    assert!(ftp.rm("/../spool/objects").is_err());
    ftp.quit().unwrap();

    assert!(
        s.files_outside_data_dir().is_empty(),
        "{:?}",
        s.files_outside_data_dir()
    );
    assert!(!std::path::Path::new("/tmp/moved.bin").exists());
    assert!(!std::path::Path::new("/etc/escape2.bin").exists());
    // Every upload's bytes are intact in the spool.
    for u in s.uploads() {
        s.assert_stored(&u, &data);
    }
}

#[test]
fn a_file_over_the_size_limit_gets_552_and_is_kept_as_partial() {
    let s = Server::start_with(&[("TELEGAZ_FTP__MAX_FILE_SIZE", "100000")]);
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let data = content(31, 300_000);
    let err = ftp
        .put_file("big.bin", &mut Cursor::new(&data))
        .unwrap_err();
    let status = match &err {
        FtpError::UnexpectedResponse(r) => r.status,
        other => panic!("expected a 552 reply, got {other:?}"),
    };
    assert_eq!(status, Status::ExceededStorage, "{err:?}");
    let u = s.wait_upload(|u| u["final_path"] == "/big.bin");
    assert_eq!(u["status"], "partial", "{u:#}");
    assert!(
        u["reason"].as_str().unwrap().starts_with("too_large"),
        "{u:#}"
    );
    assert_eq!(u["size"], 100_000);
    assert!(s.upload_bytes(u["id"].as_i64().unwrap()) == data[..100_000]);
    still_serving(&s, "small.bin");
}

#[test]
fn a_windows_1251_file_name_is_accepted_and_the_bytes_kept() {
    let s = Server::start();
    let data = content(32, 4096);
    let (_d, f) = common::temp_file("w.bin", &data);
    // Python ftplib with the cp1251 encoding puts the raw 1251 bytes on the wire.
    common::run_ok(
        std::process::Command::new("python3")
            .arg("-c")
            .arg(
                r#"
import ftplib, sys
ftp = ftplib.FTP(encoding='cp1251')
ftp.connect('127.0.0.1', int(sys.argv[1]), timeout=30)
ftp.login('unit1', 'pw-unit1')
ftp.storbinary('STOR Отчёт_сутки.txt', open(sys.argv[2], 'rb'))
ftp.quit()
"#,
            )
            .arg(s.ftp.port().to_string())
            .arg(&f),
    );
    let u = s.wait_upload(|u| u["status"] == "complete");
    s.assert_stored(&u, &data);
    // The name is decoded for reading and its exact bytes are kept.
    assert_eq!(u["original_name"], "Отчёт_сутки.txt", "{u:#}");
    let (raw, _, _) = encoding_rs::WINDOWS_1251.encode("Отчёт_сутки.txt");
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(u["original_name_hex"], hex, "{u:#}");
    assert_eq!(u["final_path"], "/Отчёт_сутки.txt");
    assert!(s.files_outside_data_dir().is_empty());
}

#[test]
fn a_100_kb_command_line_gets_a_reply_and_harms_nothing() {
    let s = Server::start();
    let long = "A".repeat(100 * 1024);
    // Before login.
    let mut raw = Raw::connect(&s);
    let r = raw.cmd(&format!("USER {long}"));
    assert!(
        r.starts_with("500 Command line too long"),
        "{}",
        &r[..r.len().min(200)]
    );
    // The connection goes on: the next line is read as a command.
    assert!(raw.cmd("NOOP").starts_with("200"));
    // After login, as a file name and as a directory.
    let mut raw = Raw::connect(&s);
    assert!(raw.cmd("USER unit1").starts_with("331"));
    assert!(raw.cmd("PASS pw-unit1").starts_with("230"));
    for cmd in ["MKD", "CWD", "STOR", "DELE", "RNFR"] {
        let r = raw.cmd(&format!("{cmd} {long}"));
        assert!(
            r.starts_with("500 Command line too long"),
            "{cmd}: {}",
            &r[..r.len().min(200)]
        );
    }
    // A name under the line limit but over the path limits gets a clear refusal.
    let r = raw.cmd(&format!("MKD {}", "b".repeat(1000)));
    assert!(r.starts_with("553"), "{r}");
    assert!(raw.cmd("PWD").starts_with("257 \"/\""));
    drop(raw);
    assert!(s.files_outside_data_dir().is_empty());
    still_serving(&s, "after-long-line.bin");
}

#[test]
fn binary_garbage_before_login_harms_nothing() {
    let s = Server::start();
    let mut raw = Raw::connect(&s);
    let mut junk = content(33, 8192);
    junk.extend_from_slice(
        b"\xff\xf4\xff\xf2\x00\x00\r\n\r\n\n\x1b[2J\r\nSTOR /etc/x\r\nPASS \xd0\xd1\r\n",
    );
    raw.send(&junk);
    // Whatever it answers, it answers without crashing; read until quiet.
    raw.writer
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut sink = Vec::new();
    let _ = raw
        .reader
        .get_mut()
        .set_read_timeout(Some(Duration::from_millis(500)));
    let _ = raw.reader.read_to_end(&mut sink);
    let text = String::from_utf8_lossy(&sink);
    assert!(!text.contains("230"), "garbage must not log in: {text}");
    drop(raw);
    assert!(s.uploads().is_empty());
    assert!(s.files_outside_data_dir().is_empty());
    still_serving(&s, "after-garbage.bin");
}

/// Open a passive data port on a logged-in raw session; returns its port.
fn epsv(raw: &mut Raw) -> u16 {
    let r = raw.cmd("EPSV");
    assert!(r.starts_with("229"), "{r}");
    let inner = r.split("(|||").nth(1).unwrap();
    inner.split('|').next().unwrap().parse().unwrap()
}

#[test]
fn data_connections_only_from_the_client_and_no_bounce() {
    let s = Server::start();
    let mut raw = Raw::connect(&s);
    assert!(raw.cmd("USER unit1").starts_with("331"));
    assert!(raw.cmd("PASS pw-unit1").starts_with("230"));
    // PORT/EPRT naming another host (FTP bounce) is refused.
    assert!(raw.cmd("PORT 10,1,2,3,200,10").starts_with("500"));
    assert!(raw.cmd("EPRT |1|127.0.0.2|51000|").starts_with("500"));
    assert!(
        raw.cmd("PORT 127,0,0,1,0,22").starts_with("500"),
        "privileged port"
    );

    // A passive port: an intruder (127.0.0.2) connects first and tries to inject data.
    let port = epsv(&mut raw);
    raw.send(b"STOR injected.bin\r\n");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::AsyncWriteExt;
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        // The kernel completes the handshake (listen backlog); the server must not take it.
        let mut i = sock
            .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
            .expect("the test must exercise a foreign connection");
        let _ = i.write_all(b"FAKE CONSUMPTION DATA").await;
        let _ = i.shutdown().await;
    });
    std::thread::sleep(Duration::from_millis(300));
    // Then the real client, from the control connection's address.
    let mut real = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let r = raw.reply();
    assert!(r.starts_with("150"), "{r}");
    real.write_all(b"genuine").unwrap();
    drop(real);
    let r = raw.reply();
    assert!(r.starts_with("226"), "{r}");
    let u = s.wait_upload(|u| u["final_path"] == "/injected.bin");
    assert_eq!(s.upload_bytes(u["id"].as_i64().unwrap()), b"genuine");
}

#[test]
fn a_hundred_parallel_sessions_of_one_device() {
    let s = Server::start();
    let addr = s.ftp;
    let handles: Vec<_> = (0..100u64)
        .map(|i| {
            std::thread::spawn(move || {
                let data = content(500 + i, 10_000 + i as usize * 101);
                let mut ftp = FtpStream::connect(addr).unwrap();
                ftp.login("unit1", "pw-unit1").unwrap();
                ftp.transfer_type(FileType::Binary).unwrap();
                ftp.put_file(format!("p{i}.bin"), &mut Cursor::new(&data))
                    .unwrap();
                ftp.quit().unwrap();
                (format!("/p{i}.bin"), data)
            })
        })
        .collect();
    let sent: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let uploads = s.uploads();
    assert_eq!(uploads.len(), 100);
    for (path, data) in sent {
        let u = uploads
            .iter()
            .find(|u| u["final_path"] == path.as_str())
            .unwrap();
        s.assert_stored(u, &data);
    }
}

#[test]
fn login_and_idle_timeouts() {
    let s = Server::start_with(&[
        ("TELEGAZ_FTP__LOGIN_TIMEOUT", "1s"),
        ("TELEGAZ_FTP__IDLE_TIMEOUT", "2s"),
    ]);
    // Connected but never logged in.
    let mut silent = Raw::connect(&s);
    let r = silent.reply();
    assert!(r.starts_with("421") && r.contains("login_timeout"), "{r}");
    // Logged in, then idle.
    let mut idle = Raw::connect(&s);
    assert!(idle.cmd("USER unit1").starts_with("331"));
    assert!(idle.cmd("PASS pw-unit1").starts_with("230"));
    let r = idle.reply();
    assert!(r.starts_with("421") && r.contains("idle_timeout"), "{r}");
    s.wait_audit(|e| e["kind"] == "disconnect" && e["detail"].as_str().unwrap().contains("idle"));
}

#[test]
fn connection_limit_per_address() {
    let s = Server::start_with(&[("TELEGAZ_FTP__MAX_CONNECTIONS_PER_ADDRESS", "3")]);
    // Three connections from one address are allowed, the fourth is told why.
    let held: Vec<Raw> = (0..3).map(|_| Raw::connect(&s)).collect();
    let mut extra = TcpStream::connect(s.ftp).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut text = String::new();
    let _ = extra.read_to_string(&mut text);
    assert!(
        text.starts_with("421") && text.contains("max_connections_per_address"),
        "{text}"
    );
    s.wait_audit(|e| e["kind"] == "connect_refused");
    drop(held);
}
