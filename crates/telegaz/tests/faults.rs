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
    // TELEGAZ_FAULT_NO_MOUNT=1 tries the fallback as root.
    let mount = match std::env::var_os("TELEGAZ_FAULT_NO_MOUNT") {
        Some(_) => None,
        None => Mount::tmpfs(&spool, 4 << 20),
    };
    if mount.is_none() {
        if !cfg!(debug_assertions) {
            panic!("without root this test needs the spool's injected fault (debug builds)");
        }
        println!(
            "NOTE: cannot mount a tmpfs (not root): the disk is filled by the spool's injected \
             fault (spool/{}, debug builds) instead, and the free-space alert is not checked",
            telegaz_spool::FAULT_DISK_FULL
        );
    }
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
    let ballast = match mount {
        Some(_) => fill(&spool, 256 << 10),
        None => {
            let marker = spool.join(telegaz_spool::FAULT_DISK_FULL);
            std::fs::write(&marker, b"").unwrap();
            marker
        }
    };
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
    if mount.is_some() {
        wait_for("the disk alert", || !disk_alerts("").is_empty());
        let alert = &disk_alerts("")[0];
        assert_eq!(alert["kind"], "server_health", "{alert:#}");
        assert_eq!(alert["severity"], "critical", "{alert:#}");
    }

    // Space returns: the next upload is stored, and the alert resolves.
    std::fs::remove_file(&ballast).unwrap();
    let after = content(92, 1_500_000);
    assert_eq!(put(s.ftp, "after.bin", &after), 226);
    let u = s.wait_upload(|u| u["final_path"] == "/after.bin");
    s.assert_stored(&u, &after);
    if mount.is_some() {
        wait_for("the disk alert to resolve", || disk_alerts("").is_empty());
        assert!(
            disk_alerts("?active=false")
                .iter()
                .any(|a| a["state"] == "resolved"),
            "{:#?}",
            disk_alerts("?active=false")
        );
    }
    assert_objects_sound(&spool);
    assert!(
        s.uploads().iter().all(|u| u["status"] != "receiving"),
        "{:#?}",
        s.uploads()
    );
}

/// Wait for a process to exit, with a generous deadline.
fn wait_exit(mut child: std::process::Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Read reply lines from a control connection until one starts with a code
/// and a space (the last line of a reply).
fn read_reply(r: &mut impl std::io::BufRead) -> String {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return String::new();
        }
        if line.len() >= 4 && line.as_bytes()[3] == b' ' {
            return line;
        }
    }
}

/// A raw control connection, logged in as unit1.
fn raw_session(addr: SocketAddr) -> (std::io::BufReader<std::net::TcpStream>, std::net::TcpStream) {
    let c = std::net::TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut r = std::io::BufReader::new(c.try_clone().unwrap());
    let mut w = c;
    assert!(read_reply(&mut r).starts_with("220"));
    write!(w, "USER unit1\r\n").unwrap();
    assert!(read_reply(&mut r).starts_with("331"));
    write!(w, "PASS pw-unit1\r\n").unwrap();
    assert!(read_reply(&mut r).starts_with("230"));
    (r, w)
}

/// True once the address no longer takes FTP sessions: the connection is
/// refused, or the server answers 421.
fn refuses_connections(addr: SocketAddr) -> bool {
    match std::net::TcpStream::connect(addr) {
        Err(_) => true,
        Ok(c) => {
            c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let reply = read_reply(&mut std::io::BufReader::new(c));
            reply.is_empty() || reply.starts_with("421")
        }
    }
}

#[test]
fn sigterm_lets_a_transfer_in_flight_finish_refuses_new_connections_and_exits_0() {
    let mut s = Server::start_with(&[("TELEGAZ_FTP__SHUTDOWN_GRACE", "60s")]);
    let data = content(70, 400_000);
    // An idle logged-in session: closed with 421 at the signal.
    let (mut idle_r, _idle_w) = raw_session(s.ftp);
    // A slow upload: the first part, then the signal, then the rest.
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let mut stream = ftp.put_with_stream("slow.bin").unwrap();
    stream.write_all(&data[..100_000]).unwrap();
    stream.flush().unwrap();
    wait_for("the upload to start", || {
        s.uploads().iter().any(|u| u["status"] == "receiving")
    });

    let server = s.sigterm();
    assert!(
        read_reply(&mut idle_r).starts_with("421"),
        "an idle session is told the server is going"
    );
    wait_for("new connections to be refused", || {
        refuses_connections(s.ftp)
    });
    // The transfer started before the signal goes on and is acknowledged.
    for chunk in data[100_000..].chunks(50_000) {
        stream.write_all(chunk).unwrap();
        stream.flush().unwrap();
        std::thread::sleep(Duration::from_millis(100));
    }
    stream
        .finish()
        .expect("the transfer in flight must end with 226");
    let status = wait_exit(server);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    assert!(
        s.log().contains("waiting for transfers in flight"),
        "{}",
        s.log()
    );

    let u = s.wait_upload(|u| u["final_path"] == "/slow.bin");
    s.assert_stored(&u, &data);
}

#[test]
fn sigterm_ends_a_transfer_still_running_after_the_grace_period_as_partial() {
    let mut s = Server::start_with(&[
        ("TELEGAZ_FTP__SHUTDOWN_GRACE", "1s"),
        ("TELEGAZ_FTP__STALL_TIMEOUT", "300s"),
    ]);
    let head = content(71, 50_000);
    let mut ftp = FtpStream::connect(s.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let mut stream = ftp.put_with_stream("long.bin").unwrap();
    stream.write_all(&head).unwrap();
    stream.flush().unwrap();
    // Wait until the server holds every byte sent, then keep the transfer open.
    wait_for("the bytes to arrive", || {
        std::fs::read_dir(s.dir.join("spool/incoming"))
            .unwrap()
            .flatten()
            .any(|e| e.metadata().map(|m| m.len()).unwrap_or(0) == head.len() as u64)
    });

    let server = s.sigterm();
    let status = wait_exit(server);
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let err = stream
        .finish()
        .expect_err("no 226 for a transfer cut by the shutdown");
    assert!(
        matches!(&err, FtpError::UnexpectedResponse(r) if r.status.code() == 426),
        "{err:?}"
    );

    let u = s.wait_upload(|u| u["final_path"] == "/long.bin");
    assert_eq!(u["status"], "partial", "{u:#}");
    assert!(
        u["reason"].as_str().unwrap().starts_with("shutdown"),
        "{u:#}"
    );
    s.assert_partial_prefix(&u, &head);
    assert!(
        s.audit().iter().any(|e| e["kind"] == "upload_finished"
            && e["upload_id"] == u["id"]
            && e["outcome"] == "partial"),
        "the audit trail records the end of the transfer"
    );
}

/// Rows per archive file in the kill test.
const ROWS: u64 = 12;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One file a client sent and heard 226 for.
#[derive(Clone)]
struct Acked {
    path: String,
    data: Vec<u8>,
}

/// A burst of uploads by parallel FTP sessions, one per entry of `next`
/// (each client's next file number), until the server dies; what each
/// acknowledged. `ready` counts the clients logged in.
fn burst(
    addr: SocketAddr,
    next: &[std::sync::Arc<std::sync::atomic::AtomicU64>],
    ready: &std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<std::thread::JoinHandle<Vec<Acked>>> {
    use std::sync::atomic::Ordering;
    next.iter()
        .enumerate()
        .map(|(w, next)| {
            let next = next.clone();
            let ready = ready.clone();
            std::thread::spawn(move || {
                let mut acked = Vec::new();
                let Ok(mut ftp) = FtpStream::connect(addr) else {
                    return acked;
                };
                let login = if w % 2 == 0 { "unit1" } else { "unit2" };
                let password = format!("pw-{login}");
                if ftp.login(login, &password).is_err()
                    || ftp.transfer_type(FileType::Binary).is_err()
                {
                    return acked;
                }
                ready.fetch_add(1, Ordering::SeqCst);
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    // Clients on one unit use disjoint hours: 100 000 hours each.
                    let data = common::hourly_archive(ROWS, w as u64 * 100_000 + n * ROWS);
                    let name = format!("w{w}-{n}.txt");
                    // put_file returns only after the 226.
                    match ftp.put_file(&name, &mut std::io::Cursor::new(&data)) {
                        Ok(_) => acked.push(Acked {
                            path: format!("/{name}"),
                            data,
                        }),
                        Err(_) => return acked,
                    }
                }
            })
        })
        .collect()
}

/// The last start-up reconciliation report in the (JSON) log.
fn last_reconciliation(s: &Server) -> serde_json::Value {
    s.log()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .rfind(|v| v["message"] == "start-up reconciliation done")
        .unwrap_or_else(|| panic!("no reconciliation report in the log:\n{}", s.log()))
}

/// Every record that names stored bytes finds them in the spool.
fn assert_no_record_without_bytes(s: &Server, uploads: &[serde_json::Value]) {
    for u in uploads {
        if let Some(sha) = u["sha256"].as_str() {
            let obj = s.dir.join("spool/objects").join(&sha[..2]).join(sha);
            assert!(
                obj.is_file(),
                "upload {} points at a missing file: {u:#}",
                u["id"]
            );
        } else {
            assert_eq!(
                u["status"], "receiving",
                "a finished record without bytes: {u:#}"
            );
        }
    }
}

#[test]
fn sigkill_at_random_moments_loses_nothing_acknowledged() {
    use telegaz_sim::Rng;
    let seed = env_u64("TELEGAZ_FAULT_SEED", 20_261_125);
    let kills = env_u64("TELEGAZ_FAULT_KILLS", 50);
    let clients = 4;
    println!("SIGKILL test: seed {seed} (TELEGAZ_FAULT_SEED), {kills} kills (TELEGAZ_FAULT_KILLS)");
    let mut rng = Rng::new(seed);
    let env = [("TELEGAZ_LOG__FORMAT", "json")];
    let mut s = Server::start_with(&env);
    let next: Vec<_> = (0..clients)
        .map(|_| std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0)))
        .collect();
    let mut acked: Vec<Acked> = Vec::new();
    let mut starts = 1;
    for kill in 0..kills {
        // A burst, cut at a random moment.
        let ready = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let workers = burst(s.ftp, &next, &ready);
        wait_for("the clients to log in", || {
            ready.load(std::sync::atomic::Ordering::SeqCst) == clients
        });
        let moment = Duration::from_millis(rng.below(400));
        std::thread::sleep(moment);
        s.kill9();
        let mut fresh = Vec::new();
        for w in workers {
            fresh.extend(w.join().unwrap());
        }
        s.restart();
        starts += 1;

        // After the restart: the report names nothing missing...
        let report = last_reconciliation(&s);
        assert_eq!(report["missing"], 0, "kill {kill}: {report}");
        let reports = s.log().matches("start-up reconciliation done").count();
        assert_eq!(reports, starts, "kill {kill}: one report per start");
        // ...every file acknowledged so far is there, complete...
        let uploads = s.uploads();
        let complete: std::collections::HashMap<&str, &serde_json::Value> = uploads
            .iter()
            .filter(|u| u["status"] == "complete")
            .map(|u| (u["final_path"].as_str().unwrap(), u))
            .collect();
        for a in acked.iter().chain(&fresh) {
            let u = complete.get(a.path.as_str()).unwrap_or_else(|| {
                panic!(
                    "kill {kill} (after {moment:?}): acknowledged {} is missing",
                    a.path
                )
            });
            assert_eq!(u["sha256"], sha256_hex(&a.data), "kill {kill}: {u:#}");
            assert_eq!(u["size"], a.data.len() as u64, "kill {kill}: {u:#}");
        }
        // ...the ones of this burst byte for byte...
        for a in &fresh {
            s.assert_stored(complete[a.path.as_str()], &a.data);
        }
        // ...nothing is left receiving, and no record points at missing bytes.
        assert!(
            uploads.iter().all(|u| u["status"] != "receiving"),
            "kill {kill}: {uploads:#?}"
        );
        assert_no_record_without_bytes(&s, &uploads);
        acked.extend(fresh);
    }
    let all = s.uploads();
    let count = |status: &str| all.iter().filter(|u| u["status"] == status).count();
    println!(
        "{} uploads acknowledged across {kills} kills; recorded: {} complete, {} partial",
        acked.len(),
        count("complete"),
        count("partial")
    );
    assert!(
        acked.len() as u64 >= kills,
        "the bursts were too small to show anything: {} acknowledged",
        acked.len()
    );

    // Everything complete is parsed, each exactly once: every reading new
    // (a second parse would find them all duplicates), none missing.
    let mut uploads = Vec::new();
    wait_for("ingest of every complete upload", || {
        uploads = s.uploads();
        uploads
            .iter()
            .filter(|u| u["status"] == "complete")
            .all(|u| !u["ingest"].is_null() && u["ingest"]["status"] != "pending")
    });
    let complete: Vec<_> = uploads
        .iter()
        .filter(|u| u["status"] == "complete")
        .collect();
    for u in &complete {
        assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
        let records = &u["ingest"]["records"];
        assert_eq!(records["total"], ROWS, "{u:#}");
        assert_eq!(records["new"], ROWS, "parsed more than once? {u:#}");
    }
    for a in &acked {
        assert!(complete.iter().any(|u| u["final_path"] == a.path.as_str()));
    }
    let out = common::run_ok(
        Command::new("sqlite3")
            .arg("-readonly")
            .arg(s.dir.join("telegaz.db"))
            .arg("SELECT count(*) FROM readings"),
    );
    let readings: u64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    assert_eq!(readings, ROWS * complete.len() as u64, "readings stored");
}
