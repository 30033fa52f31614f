//! Transfers that do not end cleanly, and a server killed in the middle of a burst.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Cursor, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Server, content, sha256_hex, temp_file};
use suppaftp::FtpStream;
use suppaftp::types::FileType;

#[test]
fn client_killed_mid_transfer_leaves_a_partial_upload_with_the_bytes_that_arrived() {
    let s = Server::start();
    let data = content(20, 2_000_000);
    let (_d, f) = temp_file("slow.bin", &data);
    // curl sends slowly; it is killed (SIGKILL) halfway.
    let mut curl = Command::new("curl")
        .args(["-sS", "--limit-rate", "100K", "-T"])
        .arg(&f)
        .arg(s.ftp_url("unit1", "pw-unit1", "/cut.bin"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until the transfer is under way.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !s.uploads().iter().any(|u| u["status"] == "receiving") {
        assert!(Instant::now() < deadline, "the upload never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(1500));
    curl.kill().unwrap();
    curl.wait().unwrap();

    let u = s.wait_upload(|u| u["final_path"] == "/cut.bin");
    assert_eq!(u["status"], "partial", "{u:#}");
    let size = u["size"].as_u64().unwrap() as usize;
    assert!(size > 0 && size < data.len(), "{u:#}");
    let stored = s.upload_bytes(u["id"].as_i64().unwrap());
    assert_eq!(stored.len(), size);
    assert!(
        stored == data[..size],
        "the stored bytes must be what the client sent"
    );
    assert_eq!(u["sha256"], sha256_hex(&data[..size]));
    assert!(
        u["reason"]
            .as_str()
            .unwrap()
            .starts_with("control_connection_closed")
            || u["reason"]
                .as_str()
                .unwrap()
                .starts_with("data_connection_lost"),
        "{u:#}"
    );
    let id = u["id"].as_i64().unwrap();
    s.wait_audit(|e| {
        e["kind"] == "upload_finished" && e["upload_id"] == id && e["outcome"] == "partial"
    });
}

#[test]
fn client_that_sends_abor_leaves_a_partial_upload() {
    let s = Server::start();
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let mut stream = ftp.put_with_stream("abort.bin").unwrap();
    let head = content(21, 30_000);
    stream.write_all(&head).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let _ = ftp.abort(stream);
    let _ = ftp.quit();
    let u = s.wait_upload(|u| u["final_path"] == "/abort.bin");
    assert_eq!(u["status"], "partial", "{u:#}");
    let stored = s.upload_bytes(u["id"].as_i64().unwrap());
    assert!(stored.len() <= head.len() && stored == head[..stored.len()]);
}

#[test]
fn stalled_transfer_times_out_and_is_kept_as_partial() {
    let s = Server::start_with(&[("TELEGAZ_FTP__STALL_TIMEOUT", "2s")]);
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let mut stream = ftp.put_with_stream("stall.bin").unwrap();
    stream.write_all(b"first bytes").unwrap();
    stream.flush().unwrap();
    // Send nothing more, keep both connections open.
    let u = s.wait_upload(|u| u["final_path"] == "/stall.bin" && u["status"] != "receiving");
    assert_eq!(u["status"], "partial", "{u:#}");
    assert!(
        u["reason"].as_str().unwrap().starts_with("stalled"),
        "{u:#}"
    );
    assert_eq!(s.upload_bytes(u["id"].as_i64().unwrap()), b"first bytes");
    drop(stream);
}

#[test]
fn server_killed_during_a_burst_keeps_every_acknowledged_file() {
    let mut s = Server::start();
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let addr = s.ftp;
    let mut workers = Vec::new();
    for w in 0..12u64 {
        let acked = acked.clone();
        let stop = stop.clone();
        workers.push(std::thread::spawn(move || {
            let Ok(mut ftp) = FtpStream::connect(addr) else {
                return;
            };
            if ftp.login("unit1", "pw-unit1").is_err() {
                return;
            }
            let _ = ftp.transfer_type(FileType::Binary);
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let data = content(1000 * w + i, 20_000 + (i as usize * 7919) % 200_000);
                let name = format!("w{w}-{i}.bin");
                match ftp.put_file(&name, &mut Cursor::new(&data)) {
                    // put_file returns only after the 226.
                    Ok(_) => acked
                        .lock()
                        .unwrap()
                        .push((format!("/{name}"), sha256_hex(&data))),
                    Err(_) => return,
                }
                i += 1;
            }
        }));
    }
    // Let the burst run, then pull the plug.
    let deadline = Instant::now() + Duration::from_secs(20);
    while acked.lock().unwrap().len() < 60 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    s.kill9();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "the burst was too small to show anything: {}",
        acked.len()
    );

    s.restart();
    let uploads = s.uploads();
    for (path, sha) in &acked {
        let u = uploads
            .iter()
            .find(|u| u["final_path"] == path.as_str() && u["status"] == "complete")
            .unwrap_or_else(|| panic!("acknowledged file {path} is missing after the crash"));
        assert_eq!(&u["sha256"], sha, "{u:#}");
        let bytes = s.upload_bytes(u["id"].as_i64().unwrap());
        assert_eq!(&sha256_hex(&bytes), sha, "stored bytes of {path} differ");
    }
    // Nothing is left half-recorded: transfers cut by the crash are partial (bytes kept).
    assert!(
        uploads.iter().all(|u| u["status"] != "receiving"),
        "{uploads:#?}"
    );
}

#[test]
fn start_up_reconciliation_records_orphans_and_reports_missing_bytes() {
    let mut s = Server::start();
    let kept = content(40, 7000);
    let lost = content(41, 8000);
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.put_file("kept.bin", &mut Cursor::new(&kept)).unwrap();
    ftp.put_file("lost.bin", &mut Cursor::new(&lost)).unwrap();
    ftp.quit().unwrap();
    let lost_upload = s.wait_upload(|u| u["final_path"] == "/lost.bin");
    s.stop();

    let objects = s.dir.join("spool/objects");
    // An operator (or a crash between the spool and the database) leaves a
    // file in the spool that no record points at...
    let orphan = content(42, 5000);
    let orphan_sha = sha256_hex(&orphan);
    std::fs::create_dir_all(objects.join(&orphan_sha[..2])).unwrap();
    std::fs::write(objects.join(&orphan_sha[..2]).join(&orphan_sha), &orphan).unwrap();
    // ...and a recorded file disappears from the disk.
    let lost_sha = sha256_hex(&lost);
    std::fs::remove_file(objects.join(&lost_sha[..2]).join(&lost_sha)).unwrap();

    s.restart();
    let uploads = s.uploads();
    let rec = uploads
        .iter()
        .find(|u| u["sha256"] == orphan_sha.as_str())
        .unwrap_or_else(|| panic!("orphan not recorded: {uploads:#?}"));
    assert_eq!(rec["status"], "recovered");
    assert!(s.upload_bytes(rec["id"].as_i64().unwrap()) == orphan);
    s.wait_audit(|e| e["kind"] == "recovered" && e["upload_id"] == rec["id"]);

    // The missing one is reported loudly, and its record is not deleted.
    let id = lost_upload["id"].as_i64().unwrap();
    s.wait_audit(|e| e["kind"] == "missing_file" && e["upload_id"] == id);
    assert!(s.log().contains("missing"), "{}", s.log());
    assert!(s.uploads().iter().any(|u| u["id"] == id));
    // Nothing else was touched.
    let k = uploads
        .iter()
        .find(|u| u["final_path"] == "/kept.bin")
        .unwrap();
    s.assert_stored(k, &kept);
}
