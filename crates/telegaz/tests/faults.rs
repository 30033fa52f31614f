//! Fault injection against the real binary: the spool's disk filling up
//! during an upload, SIGKILL at random moments across bursts of uploads, and
//! SIGTERM with transfers in flight.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, api_alerts, content, sha256_hex, viewer_token};
use suppaftp::types::FileType;
use suppaftp::{FtpError, FtpStream};

/// Wait for a condition, with a generous deadline.
fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// STOR `data` as `name`; the final reply's code (226 when stored). The
/// server may close the data connection early (disk full): the rest of the
/// bytes are then not sent, and the control connection's reply is read.
fn put(addr: SocketAddr, name: &str, data: &[u8]) -> u32 {
    let mut ftp = FtpStream::connect(addr).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let code = match ftp.put_with_stream(name) {
        Ok(mut stream) => {
            let _ = stream.write_all(data).and_then(|()| stream.flush());
            match stream.finish() {
                Ok(()) => 226,
                Err(FtpError::UnexpectedResponse(r)) => r.status.code(),
                Err(e) => panic!("STOR {name}: {e}"),
            }
        }
        Err(FtpError::UnexpectedResponse(r)) => r.status.code(),
        Err(e) => panic!("STOR {name}: {e}"),
    };
    let _ = ftp.quit();
    code
}

/// A tmpfs mounted for the length of a test (unmounted on drop).
struct Mount(PathBuf);

impl Mount {
    /// Mount a tmpfs of `bytes` at `dir`; `None` when this process may not mount.
    fn tmpfs(dir: &Path, bytes: u64) -> Option<Mount> {
        std::fs::create_dir_all(dir).unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(dir)
            .output()
            .ok()?;
        if out.status.success() {
            Some(Mount(dir.to_owned()))
        } else {
            eprintln!(
                "cannot mount a tmpfs at {}: {}",
                dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
            None
        }
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fill the file system of `dir` with a ballast file until `leave` bytes are free.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let ballast = dir.join("ballast");
    let mut f = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0x5au8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
            Err(e) => panic!("filling {}: {e}", dir.display()),
        }
    }
    f.set_len(written.saturating_sub(leave)).unwrap();
    f.sync_all().unwrap();
    ballast
}

/// Every object in the spool holds the bytes its name says.
fn assert_objects_sound(spool: &Path) {
    let objects = spool.join("objects");
    for sub in std::fs::read_dir(&objects).unwrap().flatten() {
        for obj in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let bytes = std::fs::read(obj.path()).unwrap();
            assert_eq!(
                sha256_hex(&bytes),
                obj.file_name().to_string_lossy(),
                "object {} does not hold the bytes its name says",
                obj.path().display()
            );
        }
    }
}

#[test]
fn disk_full_during_an_upload_is_refused_kept_partial_alerted_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let spool = dir.join("spool");
    // The spool on its own small file system (the database stays outside it).
    let Some(_mount) = Mount::tmpfs(&spool, 4 << 20) else {
        panic!("this test mounts a tmpfs and must run as root (CI does)");
    };
    let env: Vec<(String, String)> = [
        ("TELEGAZ_ALERTS__EVALUATE_EVERY", "200ms"),
        ("TELEGAZ_ALERTS__MIN_FREE_DISK", "1048576"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let s = Server::start_at(dir.clone(), &env);
    let token = viewer_token(&s);
    let disk_alerts = |query: &str| {
        api_alerts(&s, &token, query)
            .into_iter()
            .filter(|a| a["key"] == "server:disk")
            .collect::<Vec<_>>()
    };

    let before = content(90, 100_000);
    assert_eq!(put(s.ftp, "before.bin", &before), 226);
    let u = s.wait_upload(|u| u["final_path"] == "/before.bin");
    s.assert_stored(&u, &before);
    assert!(disk_alerts("").is_empty(), "{:#?}", disk_alerts(""));

    // Something else fills the disk, leaving 256 KiB.
    let ballast = fill(&spool, 256 << 10);
    let big = content(91, 1_500_000);
    let code = put(s.ftp, "big.bin", &big);
    assert!(code == 452 || code == 552, "STOR on a full disk got {code}");

    // The record says partial, with the reason; its bytes are what arrived.
    let u = s.wait_upload(|u| u["final_path"] == "/big.bin" && u["status"] != "receiving");
    assert_eq!(u["status"], "partial", "{u:#}");
    let reason = u["reason"].as_str().unwrap();
    assert!(reason.starts_with("storage_error"), "{u:#}");
    let size = u["size"].as_u64().unwrap() as usize;
    assert!(size < big.len(), "{u:#}");
    let stored = s.upload_bytes(u["id"].as_i64().unwrap());
    assert_eq!(stored.len(), size, "{u:#}");
    assert!(
        stored == big[..size],
        "the bytes kept must be the first bytes the client sent"
    );
    assert_eq!(u["sha256"], sha256_hex(&big[..size]), "{u:#}");
    assert_objects_sound(&spool);
    let id = u["id"].as_i64().unwrap();
    s.wait_audit(|e| {
        e["kind"] == "upload_finished" && e["upload_id"] == id && e["outcome"] == "partial"
    });

    // An alert is open, visible through the API.
    wait_for("the disk alert", || !disk_alerts("").is_empty());
    let alert = &disk_alerts("")[0];
    assert_eq!(alert["kind"], "server_health", "{alert:#}");
    assert_eq!(alert["severity"], "critical", "{alert:#}");

    // Space returns: the next upload is stored, and the alert resolves.
    std::fs::remove_file(&ballast).unwrap();
    let after = content(92, 1_500_000);
    assert_eq!(put(s.ftp, "after.bin", &after), 226);
    let u = s.wait_upload(|u| u["final_path"] == "/after.bin");
    s.assert_stored(&u, &after);
    wait_for("the disk alert to resolve", || disk_alerts("").is_empty());
    assert!(
        disk_alerts("?active=false")
            .iter()
            .any(|a| a["state"] == "resolved"),
        "{:#?}",
        disk_alerts("?active=false")
    );
    assert_objects_sound(&spool);
    assert!(
        s.uploads().iter().all(|u| u["status"] != "receiving"),
        "{:#?}",
        s.uploads()
    );
}
