//! The command line that operators and automation rely on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;

use common::Server;
use suppaftp::FtpStream;

fn stdout(o: std::process::Output) -> String {
    String::from_utf8(o.stdout).unwrap()
}

fn can_login(s: &Server, user: &str, pass: &str) -> bool {
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    let ok = ftp.login(user, pass).is_ok();
    let _ = ftp.quit();
    ok
}

#[test]
fn device_commands_audit_and_uploads() {
    let s = Server::start();
    // Login defaults to the name; --login sets another.
    s.cli(&[
        "device",
        "add",
        "shrp-7",
        "--login",
        "shrp7",
        "--password",
        "pw-shrp7",
    ]);
    let list = stdout(s.cli(&["device", "list", "--json"]));
    let devices: Vec<serde_json::Value> = list
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let d = devices.iter().find(|d| d["name"] == "shrp-7").unwrap();
    assert_eq!(d["login"], "shrp7");
    assert!(
        !list.contains("pw-shrp7") && !list.contains("argon2"),
        "{list}"
    );
    assert!(can_login(&s, "shrp7", "pw-shrp7"));

    // passwd without --password generates one and prints it once.
    let out = stdout(s.cli(&["device", "passwd", "shrp-7"]));
    let new_pw = out.split_whitespace().last().unwrap().to_owned();
    assert!(new_pw.len() >= 16, "{out}");
    assert!(!can_login(&s, "shrp7", "pw-shrp7"));
    assert!(can_login(&s, "shrp7", &new_pw));

    s.cli(&["device", "disable", "shrp-7"]);
    assert!(!can_login(&s, "shrp7", &new_pw));
    s.cli(&["device", "enable", "shrp-7"]);
    assert!(can_login(&s, "shrp7", &new_pw));

    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("shrp7", &new_pw).unwrap();
    ftp.put_file("x.bin", &mut Cursor::new(b"bytes")).unwrap();
    ftp.quit().unwrap();
    let u = s.wait_upload(|u| u["device"] == "shrp-7");
    for key in [
        "id",
        "device",
        "original_name",
        "size",
        "sha256",
        "status",
        "duplicate_of",
        "peer",
        "received_at",
    ] {
        assert!(
            u.get(key).is_some(),
            "uploads list --json lacks {key}: {u:#}"
        );
    }
    let only = stdout(s.cli(&["uploads", "list", "--device", "unit1", "--json"]));
    assert!(only.is_empty(), "{only}");

    s.wait_audit(|e| e["kind"] == "device_changed");
    let recent = stdout(s.cli(&["audit", "--since", "1h", "--json"]));
    assert!(recent.contains("\"login_succeeded\""), "{recent}");
    let future = stdout(s.cli(&["audit", "--since", "2999-01-01", "--json"]));
    assert!(future.is_empty(), "{future}");
    // The trail is written in batches: wait for the upload's end to be in it.
    s.wait_audit(|e| e["kind"] == "upload_finished");
    let text = stdout(s.cli(&["audit"]));
    assert!(text.contains("upload_finished"), "{text}");
    assert!(!text.contains(&new_pw));
}

#[test]
fn passive_port_range_and_advertised_address() {
    // A range of ten ports that are free right now.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = probe
        .local_addr()
        .unwrap()
        .port()
        .saturating_sub(20)
        .max(20000);
    drop(probe);
    let range = format!("{}-{}", base, base + 9);
    let s = Server::start_with(&[
        ("TELEGAZ_FTP__PASSIVE_PORTS", range.as_str()),
        ("TELEGAZ_FTP__PASSIVE_HOST", "10.9.8.7"),
    ]);
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    let r = ftp
        .custom_command("PASV", &[suppaftp::Status::PassiveMode])
        .unwrap();
    let text = r.as_string().unwrap();
    let nums: Vec<u16> = text
        .split(['(', ')'])
        .nth(1)
        .unwrap()
        .split(',')
        .map(|n| n.trim().parse().unwrap())
        .collect();
    assert_eq!(&nums[..4], &[10, 9, 8, 7], "{text}");
    let port = nums[4] * 256 + nums[5];
    assert!((base..=base + 9).contains(&port), "{port} not in {range}");
    let r = ftp
        .custom_command("EPSV", &[suppaftp::Status::ExtendedPassiveMode])
        .unwrap();
    let text = r.as_string().unwrap();
    let port: u16 = text
        .split("|||")
        .nth(1)
        .unwrap()
        .split('|')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((base..=base + 9).contains(&port), "{port} not in {range}");
    ftp.quit().unwrap();
}
