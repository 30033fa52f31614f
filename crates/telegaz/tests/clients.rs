//! Uploads by real FTP clients against the real server, byte-exact, with the
//! upload and audit records checked.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Cursor;
use std::process::Command;
use std::time::Duration;

use common::{Server, content, run_ok, sha256_hex, temp_file};
use suppaftp::types::FileType;
use suppaftp::{FtpStream, Mode};

fn login(s: &Server, user: &str, pass: &str) -> FtpStream {
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login(user, pass).unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp
}

#[test]
fn suppaftp_passive_session_with_namespace_commands() {
    let s = Server::start();
    let data = content(1, 150_000);
    let mut ftp = login(&s, "unit1", "pw-unit1");
    ftp.set_mode(Mode::Passive);
    // What embedded clients send around an upload.
    let syst = ftp
        .custom_command("SYST", &[suppaftp::Status::Name])
        .unwrap();
    assert!(syst.as_string().unwrap().contains("215"), "{syst:?}");
    ftp.feat().unwrap();
    ftp.custom_command("OPTS UTF8 ON", &[suppaftp::Status::CommandOk])
        .unwrap();
    ftp.custom_command("TYPE A", &[suppaftp::Status::CommandOk])
        .unwrap();
    ftp.custom_command("MODE S", &[suppaftp::Status::CommandOk])
        .unwrap();
    ftp.custom_command("STRU F", &[suppaftp::Status::CommandOk])
        .unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.noop().unwrap();

    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.mkdir("archive").unwrap();
    ftp.cwd("archive").unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/archive");
    ftp.put_file("h.bin", &mut Cursor::new(&data)).unwrap();
    assert_eq!(ftp.size("h.bin").unwrap(), data.len());
    ftp.mdtm("h.bin").unwrap();
    let names = ftp.nlst(None).unwrap();
    assert!(names.iter().any(|n| n.ends_with("h.bin")), "{names:?}");
    let list = ftp.list(None).unwrap();
    assert!(
        list.iter()
            .any(|l| l.contains("h.bin") && l.contains("150000")),
        "{list:?}"
    );
    ftp.cdup().unwrap();
    assert_eq!(ftp.pwd().unwrap(), "/");
    ftp.quit().unwrap();

    let u = s.wait_upload(|u| u["final_path"] == "/archive/h.bin");
    s.assert_stored(&u, &data);
    assert_eq!(u["device"], "unit1");
    assert_eq!(u["original_name"], "h.bin");
    assert!(u["duplicate_of"].is_null());
    assert!(u["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(u["received_at"].is_string());

    let id = u["id"].as_i64().unwrap();
    s.wait_audit(|e| {
        e["kind"] == "upload_finished" && e["upload_id"] == id && e["outcome"] == "complete"
    });
    s.wait_audit(|e| e["kind"] == "upload_started" && e["upload_id"] == id);
    s.wait_audit(|e| e["kind"] == "login_succeeded" && e["login"] == "unit1");
    s.wait_audit(|e| {
        e["kind"] == "connect" && e["peer"].as_str().unwrap().starts_with("127.0.0.1")
    });
    s.wait_audit(|e| e["kind"] == "make_dir" && e["detail"] == "/archive");
    s.wait_audit(|e| e["kind"] == "disconnect" && e["login"] == "unit1");
}

#[test]
fn suppaftp_active_mode() {
    let s = Server::start();
    let data = content(2, 70_000);
    let mut ftp = login(&s, "unit1", "pw-unit1").active_mode(Duration::from_secs(10));
    ftp.put_file("active.bin", &mut Cursor::new(&data)).unwrap();
    ftp.quit().unwrap();
    let u = s.wait_upload(|u| u["final_path"] == "/active.bin");
    s.assert_stored(&u, &data);
}

#[test]
fn same_content_again_is_a_duplicate_stored_once() {
    let s = Server::start();
    let data = content(3, 10_000);
    for (user, pass, name) in [
        ("unit1", "pw-unit1", "d1.bin"),
        ("unit1", "pw-unit1", "d2.bin"),
        ("unit1", "pw-unit1", "d1.bin"),
    ] {
        let mut ftp = login(&s, user, pass);
        ftp.set_mode(Mode::ExtendedPassive);
        ftp.put_file(name, &mut Cursor::new(&data)).unwrap();
        ftp.quit().unwrap();
    }
    let all = s.uploads();
    assert_eq!(all.len(), 3, "{all:#?}");
    let mut ids: Vec<i64> = all.iter().map(|u| u["id"].as_i64().unwrap()).collect();
    ids.sort();
    let first = ids[0];
    for u in &all {
        s.assert_stored(u, &data);
        if u["id"] == first {
            assert!(u["duplicate_of"].is_null());
        } else {
            assert_eq!(u["duplicate_of"], first, "{u:#}");
        }
    }
    // The bytes are stored once.
    let objects: Vec<_> = walkdir(&s.dir.join("spool/objects"));
    assert_eq!(objects.len(), 1, "{objects:?}");
}

fn walkdir(p: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(walkdir(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

#[test]
fn suppaftp_rename_and_delete_keep_the_bytes() {
    let s = Server::start();
    let data = content(4, 5_000);
    let mut ftp = login(&s, "unit1", "pw-unit1");
    ftp.put_file("up.tmp", &mut Cursor::new(&data)).unwrap();
    ftp.rename("up.tmp", "final.dat").unwrap();
    assert!(ftp.size("up.tmp").is_err());
    assert_eq!(ftp.size("final.dat").unwrap(), data.len());
    ftp.rm("final.dat").unwrap();
    assert!(ftp.size("final.dat").is_err());
    let names = ftp.nlst(None).unwrap();
    assert!(names.is_empty(), "{names:?}");
    ftp.quit().unwrap();

    let all = s.uploads();
    assert_eq!(
        all.len(),
        1,
        "one upload, not copied by the rename: {all:#?}"
    );
    let u = &all[0];
    assert_eq!(u["path"], "/up.tmp");
    assert_eq!(u["final_path"], "/final.dat");
    assert_eq!(u["deleted_by_device"], true);
    s.assert_stored(u, &data);
    let id = u["id"].as_i64().unwrap();
    s.wait_audit(|e| {
        e["kind"] == "rename" && e["upload_id"] == id && e["detail"] == "/up.tmp -> /final.dat"
    });
    s.wait_audit(|e| e["kind"] == "delete" && e["upload_id"] == id);
}

#[test]
fn devices_see_only_their_own_files() {
    let s = Server::start();
    let mut a = login(&s, "unit1", "pw-unit1");
    a.put_file("mine.bin", &mut Cursor::new(b"one")).unwrap();
    let mut b = login(&s, "unit2", "pw-unit2");
    assert!(b.nlst(None).unwrap().is_empty());
    assert!(b.size("mine.bin").is_err());
    assert!(b.rm("mine.bin").is_err());
    assert!(b.retr_as_buffer("mine.bin").is_err());
    a.quit().unwrap();
    b.quit().unwrap();
    let u = s.wait_upload(|u| u["final_path"] == "/mine.bin");
    assert_eq!(u["device"], "unit1");
    assert_eq!(u["deleted_by_device"], false);
}

fn curl(s: &Server) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--fail", "--max-time", "60"]);
    let _ = s;
    c
}

#[test]
fn curl_passive_active_resume_and_append() {
    let s = Server::start();
    // -T passive (curl uses EPSV, then PASV if refused).
    let data = content(5, 200_000);
    let (_d, f) = temp_file("c.bin", &data);
    run_ok(
        curl(&s)
            .arg("-T")
            .arg(&f)
            .arg(s.ftp_url("unit1", "pw-unit1", "/curl/passive.bin"))
            .arg("--ftp-create-dirs"),
    );
    let u = s.wait_upload(|u| u["final_path"] == "/curl/passive.bin");
    s.assert_stored(&u, &data);

    // Active mode, -P.
    run_ok(
        curl(&s)
            .args(["-P", "127.0.0.1"])
            .arg("-T")
            .arg(&f)
            .arg(s.ftp_url("unit1", "pw-unit1", "/active.bin")),
    );
    let u = s.wait_upload(|u| u["final_path"] == "/active.bin");
    s.assert_stored(&u, &data);

    // Resume: the first 80 000 bytes arrived earlier; -C - sends the rest.
    let (_d2, half) = temp_file("half.bin", &data[..80_000]);
    run_ok(
        curl(&s)
            .arg("-T")
            .arg(&half)
            .arg(s.ftp_url("unit1", "pw-unit1", "/resume.bin")),
    );
    s.wait_upload(|u| u["final_path"] == "/resume.bin");
    run_ok(curl(&s).args(["-C", "-"]).arg("-T").arg(&f).arg(s.ftp_url(
        "unit1",
        "pw-unit1",
        "/resume.bin",
    )));
    let u = s.wait_upload(|u| u["final_path"] == "/resume.bin" && u["size"] == 200_000);
    s.assert_stored(&u, &data);
    assert!(u["resumed_from"].is_i64(), "{u:#}");

    // --append: the new upload holds the old bytes followed by the new ones.
    let tail = content(6, 33_333);
    let (_d3, t) = temp_file("tail.bin", &tail);
    run_ok(
        curl(&s)
            .arg("-T")
            .arg(&half)
            .arg(s.ftp_url("unit1", "pw-unit1", "/log.txt")),
    );
    s.wait_upload(|u| u["final_path"] == "/log.txt");
    run_ok(
        curl(&s)
            .arg("--append")
            .arg("-T")
            .arg(&t)
            .arg(s.ftp_url("unit1", "pw-unit1", "/log.txt")),
    );
    let mut both = data[..80_000].to_vec();
    both.extend_from_slice(&tail);
    let u = s.wait_upload(|u| u["final_path"] == "/log.txt" && u["size"] == both.len() as u64);
    s.assert_stored(&u, &both);

    // Every upload's record holds its peer and a finished audit event.
    for u in s.uploads() {
        assert_eq!(u["status"], "complete", "{u:#}");
        let id = u["id"].as_i64().unwrap();
        s.wait_audit(|e| e["kind"] == "upload_finished" && e["upload_id"] == id);
    }
}

fn lftp(s: &Server, script: &str) -> std::process::Output {
    run_ok(Command::new("lftp").args([
        "-c",
        &format!(
            "set net:max-retries 1; set net:timeout 20; set ftp:ssl-allow no; open -u unit1,pw-unit1 -p {} 127.0.0.1; {script}",
            s.ftp.port()
        ),
    ]))
}

#[test]
fn lftp_put_and_temp_name_then_mv() {
    let s = Server::start();
    let data = content(7, 123_456);
    let (_d, f) = temp_file("l.bin", &data);
    let f = f.display().to_string();
    lftp(&s, &format!("put {f} -o plain.bin"));
    let u = s.wait_upload(|u| u["final_path"] == "/plain.bin");
    s.assert_stored(&u, &data);

    let data2 = content(8, 54_321);
    let (_d2, f2) = temp_file("m.bin", &data2);
    lftp(
        &s,
        &format!(
            "mkdir -p in; put {} -o in/arch.tmp; mv in/arch.tmp in/arch.txt; cls -l in",
            f2.display()
        ),
    );
    let u = s.wait_upload(|u| u["final_path"] == "/in/arch.txt");
    s.assert_stored(&u, &data2);
    assert_eq!(u["path"], "/in/arch.tmp");
    let same: Vec<_> = s
        .uploads()
        .into_iter()
        .filter(|x| x["sha256"] == sha256_hex(&data2))
        .collect();
    assert_eq!(
        same.len(),
        1,
        "the rename must not copy the upload: {same:#?}"
    );
}

fn python(script: &str, args: &[&str]) -> std::process::Output {
    run_ok(Command::new("python3").arg("-c").arg(script).args(args))
}

const FTPLIB: &str = r#"
import ftplib, io, sys
port, mode, name, path = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
data = open(path, 'rb').read()
ftp = ftplib.FTP()
ftp.connect('127.0.0.1', port, timeout=30)
ftp.login('unit1', 'pw-unit1')
if mode == 'active':
    ftp.set_pasv(False)
if mode == 'stou':
    resp = ftp.storbinary('STOU', io.BytesIO(data))
elif mode == 'rest':
    # The first part arrived in an earlier session; continue from there.
    ftp.storbinary('STOR ' + name, io.BytesIO(data[:40000]))
    ftp.storbinary('STOR ' + name, io.BytesIO(data[40000:]), rest=40000)
else:
    ftp.storbinary('STOR ' + name, io.BytesIO(data))
ftp.quit()
"#;

#[test]
fn python_ftplib_storbinary_rest_and_active() {
    let s = Server::start();
    let data = content(9, 100_000);
    let (_d, f) = temp_file("p.bin", &data);
    let port = s.ftp.port().to_string();
    let path = f.display().to_string();
    for mode in ["passive", "active", "rest"] {
        let name = format!("py-{mode}.bin");
        python(FTPLIB, &[&port, mode, &name, &path]);
        let want = format!("/{name}");
        let u = s.wait_upload(|u| u["final_path"] == want.as_str() && u["size"] == 100_000);
        s.assert_stored(&u, &data);
        if mode == "rest" {
            assert!(u["resumed_from"].is_i64(), "{u:#}");
        }
    }
    // STOU: the server chooses the name.
    python(FTPLIB, &[&port, "stou", "-", &path]);
    let u = s.wait_upload(|u| u["mode"] == "store_unique");
    s.assert_stored(&u, &data);
    assert!(
        u["final_path"].as_str().unwrap().starts_with("/telegaz-"),
        "{u:#}"
    );
}

#[test]
fn busybox_ftpput() {
    let s = Server::start();
    let data = content(10, 64_000);
    let (_d, f) = temp_file("b.bin", &data);
    run_ok(
        Command::new("busybox")
            .args([
                "ftpput",
                "-v",
                "-u",
                "unit2",
                "-p",
                "pw-unit2",
                "-P",
                &s.ftp.port().to_string(),
                "127.0.0.1",
                "bb.bin",
            ])
            .arg(&f),
    );
    let u = s.wait_upload(|u| u["final_path"] == "/bb.bin");
    s.assert_stored(&u, &data);
    assert_eq!(u["device"], "unit2");
}

#[test]
fn health_and_prometheus_metrics_over_http() {
    let s = Server::start();
    let mut ftp = login(&s, "unit1", "pw-unit1");
    ftp.put_file("m.bin", &mut Cursor::new(b"metrics")).unwrap();
    ftp.quit().unwrap();
    s.wait_upload(|u| u["final_path"] == "/m.bin");
    let health = run_ok(
        Command::new("curl")
            .args(["-sS", "--fail"])
            .arg(format!("http://{}/healthz", s.http)),
    );
    assert_eq!(String::from_utf8_lossy(&health.stdout).trim(), "ok");
    let metrics = run_ok(
        Command::new("curl")
            .args(["-sS", "--fail"])
            .arg(format!("http://{}/metrics", s.http)),
    );
    let text = String::from_utf8_lossy(&metrics.stdout);
    assert!(
        text.contains("telegaz_uploads_total{status=\"complete\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("telegaz_ftp_logins_total{outcome=\"ok\"} 1"),
        "{text}"
    );
}
