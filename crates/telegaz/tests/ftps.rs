//! FTPS (explicit AUTH TLS) with real clients: curl, lftp, and a Python
//! client that breaks TLS on purpose (`ftps_client.py`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, content, run_ok, self_signed_cert, serve_command, temp_file};

struct Tls {
    _dir: tempfile::TempDir,
    cert: String,
    key: String,
}

fn tls() -> Tls {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed_cert(dir.path());
    Tls {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        _dir: dir,
    }
}

fn start(tls: &Tls, required: &str) -> Server {
    Server::start_with(&[
        ("TELEGAZ_FTP__TLS__CERTIFICATE", &tls.cert),
        ("TELEGAZ_FTP__TLS__KEY", &tls.key),
        ("TELEGAZ_FTP__TLS__REQUIRED", required),
    ])
}

fn curl(args: &[&str]) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "-v", "--max-time", "60"])
        .args(args)
        .output()
        .unwrap()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn curl_ssl_reqd_upload_and_download_over_tls() {
    let t = tls();
    let s = start(&t, "off");
    let data = content(901, 300_000);
    let (_d, f) = temp_file("up.bin", &data);
    let url = s.ftp_url("unit1", "pw-unit1", "/tls.bin");
    let out = curl(&["--ssl-reqd", "-k", "-T", f.to_str().unwrap(), &url]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    // curl 7.88 asks for AUTH SSL first; both names mean TLS.
    assert!(
        (log.contains("> AUTH SSL") || log.contains("> AUTH TLS")) && log.contains("< 234"),
        "{log}"
    );
    assert!(log.contains("PROT P") && log.contains("< 200"), "{log}");
    assert!(log.contains("< 226 Transfer complete"), "{log}");
    let u = s.wait_upload(|u| u["final_path"] == "/tls.bin");
    s.assert_stored(&u, &data);

    // Again and again: curl never reads an upload's data connection, so a
    // TLS 1.3 ticket sent there would make its close a reset that loses the
    // last bytes (it did, about one upload in three).
    for i in 0..10 {
        let url = s.ftp_url("unit1", "pw-unit1", &format!("/again-{i}.bin"));
        let out = curl(&["--ssl-reqd", "-k", "-T", f.to_str().unwrap(), &url]);
        assert!(out.status.success(), "upload {i}: {}", stderr(&out));
    }
    for i in 0..10 {
        let u = s.wait_upload(|u| u["final_path"] == format!("/again-{i}.bin").as_str());
        s.assert_stored(&u, &data);
    }

    // RETR over a protected data connection (curl resumes the TLS session).
    let dir = tempfile::tempdir().unwrap();
    let back = dir.path().join("back.bin");
    let out = curl(&["--ssl-reqd", "-k", "-o", back.to_str().unwrap(), &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        std::fs::read(&back).unwrap() == data,
        "downloaded bytes differ"
    );
}

#[test]
fn lftp_with_ssl_force() {
    let t = tls();
    let s = start(&t, "all");
    let data = content(902, 123_457);
    let (_d, f) = temp_file("l.bin", &data);
    let out = run_ok(Command::new("lftp").args([
        "-c",
        &format!(
            "set net:max-retries 1; set net:timeout 20; set ftp:ssl-force true; \
             set ftp:ssl-protect-data true; set ssl:verify-certificate no; \
             open -u unit1,pw-unit1 -p {} 127.0.0.1; put {} -o lftp.bin; cls -l",
            s.ftp.port(),
            f.display()
        ),
    ]));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("lftp.bin"),
        "{out:?}"
    );
    let u = s.wait_upload(|u| u["final_path"] == "/lftp.bin");
    s.assert_stored(&u, &data);
}

#[test]
fn required_all_refuses_cleartext_logins_and_audits_them() {
    let t = tls();
    let s = start(&t, "all");
    let data = content(903, 1000);
    let (_d, f) = temp_file("x.bin", &data);
    let url = s.ftp_url("unit1", "pw-unit1", "/clear.bin");
    let out = curl(&["-T", f.to_str().unwrap(), &url]);
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("< 530 TLS is required"), "{log}");
    let e = s.wait_audit(|e| e["kind"] == "login_failed" && e["outcome"] == "tls_required");
    assert_eq!(e["login"], "unit1", "{e:#}");

    // FEAT advertises TLS, and with it the same client gets in.
    let out = curl(&["--ssl-reqd", "-k", "-T", f.to_str().unwrap(), &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    let u = s.wait_upload(|u| u["final_path"] == "/clear.bin");
    s.assert_stored(&u, &data);
    // TLS on the control connection only (PROT C) is refused when required.
    let out = curl(&[
        "--ftp-ssl-control",
        "-k",
        "-T",
        f.to_str().unwrap(),
        &s.ftp_url("unit1", "pw-unit1", "/clear-data.bin"),
    ]);
    assert!(!out.status.success(), "{}", stderr(&out));
    assert!(!s.uploads().iter().any(|u| u["path"] == "/clear-data.bin"));
}

#[test]
fn device_that_requires_tls_is_refused_in_clear() {
    let t = tls();
    let s = start(&t, "off");
    let out = s.cli(&["device", "set", "unit2", "--tls-required", "true"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("TLS required"));
    let listed = String::from_utf8(s.cli(&["device", "list", "--json"]).stdout).unwrap();
    assert!(listed.contains("\"tls_required\":true"), "{listed}");
    let data = content(904, 2048);
    let (_d, f) = temp_file("y.bin", &data);

    let out = curl(&[
        "-T",
        f.to_str().unwrap(),
        &s.ftp_url("unit2", "pw-unit2", "/a.bin"),
    ]);
    let log = stderr(&out);
    assert!(!out.status.success(), "{log}");
    assert!(log.contains("< 530 This device must use TLS"), "{log}");
    let e = s.wait_audit(|e| {
        e["kind"] == "login_failed" && e["outcome"] == "tls_required" && e["login"] == "unit2"
    });
    assert!(e["device_id"].is_number(), "{e:#}");

    // Other devices still upload in clear; unit2 does over TLS.
    let out = curl(&[
        "-T",
        f.to_str().unwrap(),
        &s.ftp_url("unit1", "pw-unit1", "/b.bin"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = curl(&[
        "--ssl-reqd",
        "-k",
        "-T",
        f.to_str().unwrap(),
        &s.ftp_url("unit2", "pw-unit2", "/c.bin"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let u = s.wait_upload(|u| u["final_path"] == "/c.bin");
    s.assert_stored(&u, &data);

    // Back to clear.
    s.cli(&["device", "set", "unit2", "--tls-required", "false"]);
    let out = curl(&[
        "-T",
        f.to_str().unwrap(),
        &s.ftp_url("unit2", "pw-unit2", "/d.bin"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

fn steps(out: &std::process::Output) -> Vec<(String, String)> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("STEP "))
        .map(|l| {
            let (name, reply) = l.split_once(' ').unwrap_or((l, ""));
            (name.to_owned(), reply.to_owned())
        })
        .collect()
}

#[test]
fn tls_failures_end_the_transfer_not_the_session() {
    let t = tls();
    let s = start(&t, "off");
    let data = content(905, 200_000);
    let (_d, f) = temp_file("p.bin", &data);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ftps_client.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).args([
        "127.0.0.1",
        &s.ftp.port().to_string(),
        "unit1",
        "pw-unit1",
        f.to_str().unwrap(),
    ]);
    let out = run_ok(&mut cmd);
    let steps = steps(&out);
    let reply = |name: &str| -> &str {
        &steps
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no step {name}: {steps:#?}\n{}", s.log()))
            .1
    };
    let feat = reply("FEAT");
    for f in ["AUTH TLS", "PBSZ", "PROT"] {
        assert!(feat.contains(f), "FEAT lacks {f}: {feat}");
    }
    assert!(reply("PBSZ-early").starts_with("503"), "{steps:#?}");
    assert!(reply("AUTH").starts_with("234"), "{steps:#?}");
    assert!(reply("PASS").starts_with("230"), "{steps:#?}");
    assert!(reply("PROT").starts_with("200"), "{steps:#?}");
    // The aborted handshake ends that transfer with 425 and the session answers.
    assert!(reply("STOR-broken").starts_with("150"), "{steps:#?}");
    assert!(reply("broken-end").starts_with("425"), "{steps:#?}");
    assert!(reply("NOOP").starts_with("200"), "{steps:#?}");
    assert!(reply("CCC").starts_with("534"), "{steps:#?}");
    // A TLS error mid-transfer: 426; then a clean upload on the same session.
    assert!(reply("mid-end").starts_with("426"), "{steps:#?}");
    assert!(reply("NOOP-2").starts_with("200"), "{steps:#?}");
    assert!(reply("ok-end").starts_with("226"), "{steps:#?}");
    assert!(reply("QUIT").starts_with("221"), "{steps:#?}");
    assert!(reply("AUTH-2").starts_with("234"), "{steps:#?}");

    let ok = s.wait_upload(|u| u["final_path"] == "/ok.bin");
    s.assert_stored(&ok, &data);
    let broken = s.wait_upload(|u| u["path"] == "/broken.bin");
    assert_eq!(broken["status"], "partial", "{broken:#}");
    assert!(
        broken["reason"].as_str().unwrap().contains("TLS"),
        "{broken:#}"
    );
    let mid = s.wait_upload(|u| u["path"] == "/mid.bin");
    assert_eq!(mid["status"], "partial", "{mid:#}");
    let size = mid["size"].as_u64().unwrap() as usize;
    assert!(size > 0 && size <= data.len(), "{mid:#}");
    let id = mid["id"].as_i64().unwrap();
    assert!(
        s.upload_bytes(id) == data[..size],
        "the partial upload holds what came"
    );

    // The server still serves after the failed control handshake.
    let url = s.ftp_url("unit1", "pw-unit1", "/after.bin");
    let out = curl(&["--ssl-reqd", "-k", "-T", f.to_str().unwrap(), &url]);
    assert!(out.status.success(), "{}", stderr(&out));
    s.wait_audit(|e| {
        e["kind"] == "disconnect"
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.contains("TLS handshake on the control connection failed"))
    });
}

/// `telegaz serve` with bad TLS files stops at once and names the file.
fn serve_fails(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = serve_command(&dir.path().join("data"));
    cmd.stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success());
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with bad TLS files");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn bad_certificate_or_key_files_stop_the_start_naming_the_file() {
    let t = tls();
    let missing: PathBuf = PathBuf::from(&t.cert).with_file_name("missing-cert.pem");
    let missing = missing.display().to_string();
    let err = serve_fails(&[
        ("TELEGAZ_FTP__TLS__CERTIFICATE", &missing),
        ("TELEGAZ_FTP__TLS__KEY", &t.key),
    ]);
    assert!(
        err.contains(&missing) && err.contains("certificate"),
        "{err}"
    );

    // A key that is not the certificate's.
    let other = tls();
    let err = serve_fails(&[
        ("TELEGAZ_FTP__TLS__CERTIFICATE", &t.cert),
        ("TELEGAZ_FTP__TLS__KEY", &other.key),
    ]);
    assert!(err.contains(&other.key) && err.contains(&t.cert), "{err}");

    // The certificate given as the key.
    let err = serve_fails(&[
        ("TELEGAZ_FTP__TLS__CERTIFICATE", &t.cert),
        ("TELEGAZ_FTP__TLS__KEY", &t.cert),
    ]);
    assert!(
        err.contains(&t.cert) && err.contains("private key"),
        "{err}"
    );
}
