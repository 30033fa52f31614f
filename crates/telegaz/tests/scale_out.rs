#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Two receivers side by side: two `telegaz serve` processes on one
//! PostgreSQL database, uploads to both, one SIGKILLed mid-burst. Every
//! acknowledged file must be stored byte for byte and parsed exactly once,
//! the killed receiver's ones by the survivor.
//!
//! Needs a PostgreSQL server: `TELEGAZ_TEST_POSTGRES_URL` names a database
//! whose user may create databases (`.ci/run` sets it); the test creates a
//! scratch database and drops it at the end.
//!
//! Raw files: one S3 bucket (Moto's `moto_server`, started on a free port)
//! that both receivers store into, each with its own data directory (its
//! temporary files and outage journal stay local). Every acknowledged file
//! must be in the bucket byte for byte.
//!
//! The second test restarts one receiver while the other is mid-transfer:
//! start-up reconciliation must leave the other's transfer (its record and
//! its objects in the shared bucket) alone.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, bucket_bytes, sha256_hex};
use suppaftp::FtpStream;
use suppaftp::types::FileType;
use telegaz_spool::testing::S3TestServer;
use telegaz_spool::{RawStore, S3Store};

/// Rows per archive file.
const ROWS: u64 = 12;
/// FTP clients per receiver.
const CLIENTS: usize = 4;
/// How long a claim holds in this test (2 min by default): the killed
/// receiver's claims run out quickly.
const LEASE: &str = "3s";

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(180);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A scratch database on the server `TELEGAZ_TEST_POSTGRES_URL` names,
/// dropped when this goes (also when the test fails).
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

impl Scratch {
    fn create() -> Scratch {
        let admin = std::env::var("TELEGAZ_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| {
                panic!(
                    "the two-receiver test needs PostgreSQL: set \
                     TELEGAZ_TEST_POSTGRES_URL=postgres://root@127.0.0.1:5432/test \
                     (a database whose user may create databases; .ci/run sets it up)"
                )
            });
        // One per test of this process.
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!(
            "telegaz_scale_out_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let (base, query) = match admin.split_once('?') {
            Some((b, q)) => (b, Some(q)),
            None => (admin.as_str(), None),
        };
        let (scheme, rest) = base.split_once("://").unwrap();
        let authority = rest.split('/').next().unwrap();
        let mut url = format!("{scheme}://{authority}/{name}");
        if let Some(q) = query {
            url.push('?');
            url.push_str(q);
        }
        let s = Scratch { admin, name, url };
        s.psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.name));
        s.psql(&format!("CREATE DATABASE {}", s.name));
        s
    }

    fn psql(&self, sql: &str) -> String {
        let out = common::run_ok(
            Command::new("psql")
                .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d"])
                .arg(&self.admin)
                .args(["-c", sql]),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// One value from the scratch database.
    fn query(&self, sql: &str) -> String {
        let out = common::run_ok(
            Command::new("psql")
                .args(["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d"])
                .arg(&self.url)
                .args(["-c", sql]),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args(["-X", "-q", "-d"])
            .arg(&self.admin)
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
            ])
            .status();
    }
}

/// One file a client sent and heard 226 for.
struct Acked {
    path: String,
    data: Vec<u8>,
}

/// Parallel FTP sessions uploading to one receiver until it dies or `stop`
/// is set; `acked` counts the 226 replies, `ready` the clients logged in.
struct Burst {
    clients: Vec<std::thread::JoinHandle<Vec<Acked>>>,
}

impl Burst {
    fn start(
        receiver: usize,
        addr: SocketAddr,
        stop: &Arc<AtomicBool>,
        ready: &Arc<AtomicUsize>,
        acked: &Arc<AtomicUsize>,
    ) -> Burst {
        let clients = (0..CLIENTS)
            .map(|w| {
                let (stop, ready, count) = (stop.clone(), ready.clone(), acked.clone());
                std::thread::spawn(move || {
                    let mut acked = Vec::new();
                    let Ok(mut ftp) = FtpStream::connect(addr) else {
                        return acked;
                    };
                    let login = if w % 2 == 0 { "unit1" } else { "unit2" };
                    if ftp.login(login, &format!("pw-{login}")).is_err()
                        || ftp.transfer_type(FileType::Binary).is_err()
                    {
                        return acked;
                    }
                    ready.fetch_add(1, Ordering::SeqCst);
                    // Each client of each receiver: its own hours and names.
                    let client = (receiver * CLIENTS + w) as u64;
                    for n in 0.. {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let data = common::hourly_archive(ROWS, client * 100_000 + n * ROWS);
                        let name = format!("r{receiver}-c{w}-{n}.txt");
                        // put_file returns only after the 226.
                        match ftp.put_file(&name, &mut std::io::Cursor::new(&data)) {
                            Ok(_) => {
                                acked.push(Acked {
                                    path: format!("/{name}"),
                                    data,
                                });
                                count.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(_) => break,
                        }
                    }
                    let _ = ftp.quit();
                    acked
                })
            })
            .collect();
        Burst { clients }
    }

    fn join(self) -> Vec<Acked> {
        self.clients
            .into_iter()
            .flat_map(|c| c.join().unwrap())
            .collect()
    }
}

const BUCKET: &str = "telegaz-fleet";
const PREFIX: &str = "region-1/";

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

/// One bucket on a fresh Moto server, and the store the test reads it with.
fn bucket() -> (S3TestServer, S3Store) {
    let s3 = S3TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(s3.create_bucket(BUCKET)).unwrap();
    let store = S3Store::new(&s3.settings(BUCKET, PREFIX)).unwrap();
    (s3, store)
}

/// The settings of both receivers: one database, one bucket.
fn fleet_env(db: &Scratch, s3: &S3TestServer) -> Vec<(String, String)> {
    let mut env = vec![
        ("TELEGAZ_DATABASE_URL".to_owned(), db.url.clone()),
        ("TELEGAZ_INGEST__CLAIM_LEASE".to_owned(), LEASE.to_owned()),
    ];
    env.extend(
        common::s3_env(s3, BUCKET, PREFIX)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v)),
    );
    env
}

/// No raw file of this receiver lies in its local object directory: the
/// bucket holds them all.
fn assert_no_local_objects(s: &Server) {
    let objects = s.dir.join("spool/objects");
    let local = std::fs::read_dir(&objects)
        .map(|rd| rd.count())
        .unwrap_or(0);
    assert_eq!(local, 0, "objects under {}", objects.display());
}

#[test]
fn two_receivers_on_one_database_one_killed_mid_burst_lose_and_repeat_nothing() {
    let db = Scratch::create();
    let (s3, store) = bucket();
    let root = tempfile::tempdir().unwrap();
    let env_owned = fleet_env(&db, &s3);
    // Each its own data directory (spool for transfers in progress, outage
    // journal, log); the first adds the devices.
    let (dir_a, dir_b) = (root.path().join("a/data"), root.path().join("b/data"));
    for d in [&dir_a, &dir_b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let mut a = Server::start_at(dir_a, &env_owned);
    let b = Server::start_beside(dir_b, &env_owned);

    // Both receive at once.
    let stop_a = Arc::new(AtomicBool::new(false));
    let stop_b = Arc::new(AtomicBool::new(false));
    let ready = Arc::new(AtomicUsize::new(0));
    let (acked_a, acked_b) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let burst_a = Burst::start(0, a.ftp, &stop_a, &ready, &acked_a);
    let burst_b = Burst::start(1, b.ftp, &stop_b, &ready, &acked_b);
    wait_for("the clients to log in", || {
        ready.load(Ordering::SeqCst) == 2 * CLIENTS
    });
    // Mid-burst: both have acknowledged files, transfers are in flight.
    wait_for("files acknowledged by both receivers", || {
        acked_a.load(Ordering::SeqCst) >= 20 && acked_b.load(Ordering::SeqCst) >= 20
    });
    a.kill9();
    let from_a = burst_a.join();
    // The survivor keeps receiving.
    let before = acked_b.load(Ordering::SeqCst);
    wait_for("the survivor to receive more after the kill", || {
        acked_b.load(Ordering::SeqCst) >= before + 20
    });
    stop_b.store(true, Ordering::SeqCst);
    let from_b = burst_b.join();
    println!(
        "acknowledged: {} by the killed receiver, {} by the survivor",
        from_a.len(),
        from_b.len()
    );
    assert!(!from_a.is_empty() && !from_b.is_empty());

    // The survivor ingests everything complete, the killed one's included
    // (those it had claimed once their claims run out).
    let mut uploads = Vec::new();
    wait_for("ingest of every complete upload", || {
        uploads = b.uploads();
        uploads
            .iter()
            .filter(|u| u["status"] == "complete")
            .all(|u| !u["ingest"].is_null() && u["ingest"]["status"] != "pending")
    });
    let complete: std::collections::HashMap<&str, &serde_json::Value> = uploads
        .iter()
        .filter(|u| u["status"] == "complete")
        .map(|u| (u["final_path"].as_str().unwrap(), u))
        .collect();
    // Every acknowledged file is stored, byte for byte...
    for f in from_a.iter().chain(&from_b) {
        let u = complete
            .get(f.path.as_str())
            .unwrap_or_else(|| panic!("acknowledged {} is not stored complete", f.path));
        assert_eq!(u["sha256"], sha256_hex(&f.data), "{u:#}");
        b.assert_stored(u, &f.data);
        assert!(
            bucket_bytes(&store, &sha256_hex(&f.data)).as_deref() == Some(f.data.as_slice()),
            "acknowledged {} is in the bucket byte for byte",
            f.path
        );
    }
    assert_no_local_objects(&a);
    assert_no_local_objects(&b);
    // ...and parsed exactly once: every reading new (a second parse would
    // have found them all duplicates), none counted twice.
    for u in complete.values() {
        assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
        let records = &u["ingest"]["records"];
        assert_eq!(records["total"], ROWS, "{u:#}");
        assert_eq!(records["new"], ROWS, "parsed more than once? {u:#}");
        assert_eq!(records["duplicate"], 0, "{u:#}");
    }
    let readings: u64 = db.query("SELECT count(*) FROM readings").parse().unwrap();
    let distinct: u64 = db
        .query("SELECT count(DISTINCT (device_id, kind, local_time, record_no)) FROM readings")
        .parse()
        .unwrap();
    assert_eq!(
        readings,
        ROWS * complete.len() as u64,
        "readings stored: {} complete uploads (of them {} acknowledged)",
        complete.len(),
        from_a.len() + from_b.len()
    );
    assert_eq!(distinct, readings, "no reading stored twice");
    let from_stored: u64 = db
        .query("SELECT coalesce(sum(records_new), 0) FROM ingest WHERE state = 'parsed'")
        .parse()
        .unwrap();
    assert_eq!(from_stored, readings, "each reading counted new once");
}

/// The receiver id a `telegaz serve` made and keeps in its data directory.
fn receiver_id_of(data_dir: &Path) -> String {
    std::fs::read_to_string(data_dir.join("receiver-id"))
        .unwrap()
        .trim()
        .to_owned()
}

/// Receiver B restarts (SIGKILL, start) while receiver A is mid-transfer and
/// while an object of another upload sits in the shared bucket without its
/// record yet (stored, about to be recorded). B's start-up reconciliation
/// must close neither A's transfer (its record stays `receiving`, A then
/// acknowledges it with 226 and records it complete) nor record the object
/// as `recovered`.
#[test]
fn a_restarting_receiver_leaves_another_receivers_transfer_and_objects_alone() {
    use std::io::Write as _;

    let db = Scratch::create();
    let (s3, store) = bucket();
    let root = tempfile::tempdir().unwrap();
    let env = fleet_env(&db, &s3);
    let (dir_a, dir_b) = (root.path().join("a/data"), root.path().join("b/data"));
    for d in [&dir_a, &dir_b] {
        std::fs::create_dir_all(d).unwrap();
    }
    let a = Server::start_at(dir_a.clone(), &env);
    let mut b = Server::start_beside(dir_b.clone(), &env);
    let (id_a, id_b) = (receiver_id_of(&dir_a), receiver_id_of(&dir_b));
    assert_ne!(id_a, id_b, "each receiver makes its own id");

    // A's transfer in flight: the first half sent, the data connection open.
    let data = common::hourly_archive(ROWS, 50_000);
    let (head, tail) = data.split_at(data.len() / 2);
    let mut ftp = FtpStream::connect(a.ftp).unwrap();
    ftp.login("unit1", "pw-unit1").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    let mut stream = ftp.put_with_stream("in-flight.txt").unwrap();
    stream.write_all(head).unwrap();
    stream.flush().unwrap();
    let receiving = |s: &Server| {
        s.uploads()
            .into_iter()
            .find(|u| u["final_path"] == "/in-flight.txt")
    };
    let mut rec = None;
    wait_for("A's transfer to be recorded", || {
        rec = receiving(&b);
        rec.is_some()
    });
    let rec = rec.unwrap();
    assert_eq!(rec["status"], "receiving", "{rec:#}");
    assert_eq!(rec["receiver"], id_a.as_str(), "{rec:#}");
    let id = rec["id"].as_i64().unwrap();

    // Another upload's object in the bucket, its record not written yet.
    let pending = b"an upload stored by a third receiver, not recorded yet".to_vec();
    let pending_sha = sha256_hex(&pending);
    let file = root.path().join("pending.bin");
    std::fs::write(&file, &pending).unwrap();
    rt().block_on(store.put_file(&file, &pending_sha.parse().unwrap(), pending.len() as u64))
        .unwrap();

    // B restarts: `restart` returns once B listens, after its reconciliation.
    b.restart();
    assert!(
        b.log().contains("start-up reconciliation done"),
        "{}",
        b.log()
    );
    let rec = receiving(&b).unwrap();
    assert_eq!(
        rec["status"], "receiving",
        "B's reconciliation closed A's live transfer: {rec:#}"
    );
    let uploads = b.uploads();
    assert!(
        !uploads.iter().any(|u| u["sha256"] == pending_sha.as_str()),
        "B recorded another receiver's object as recovered: {uploads:#?}"
    );

    // A finishes the transfer: 226, recorded complete, in the bucket, parsed once.
    stream.write_all(tail).unwrap();
    stream
        .finish()
        .unwrap_or_else(|e| panic!("A did not acknowledge the transfer: {e}\n{}", a.log()));
    let _ = ftp.quit();
    let mut done = None;
    wait_for("A's upload to be parsed", || {
        done = receiving(&a).filter(|u| {
            u["status"] != "receiving"
                && !u["ingest"].is_null()
                && u["ingest"]["status"] != "pending"
        });
        done.is_some()
    });
    let done = done.unwrap();
    a.assert_stored(&done, &data);
    assert_eq!(done["id"], id, "{done:#}");
    assert_eq!(done["receiver"], id_a.as_str(), "{done:#}");
    assert_eq!(done["ingest"]["status"], "parsed", "{done:#}");
    assert_eq!(done["ingest"]["records"]["new"], ROWS, "{done:#}");
    assert!(bucket_bytes(&store, &sha256_hex(&data)).as_deref() == Some(data.as_slice()));
    let partial: Vec<_> = a
        .audit()
        .into_iter()
        .filter(|e| e["upload_id"] == id && e["outcome"] == "partial")
        .collect();
    assert!(
        partial.is_empty(),
        "closed as partial on the way: {partial:#?}"
    );
    // The object without a record is still there, untouched.
    assert_eq!(bucket_bytes(&store, &pending_sha), Some(pending));
}
