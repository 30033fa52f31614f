//! Raw files in S3-compatible object storage, end to end: the real `telegaz
//! serve` configured for a real S3 server (Moto's, on a free port), FTP
//! uploads with curl, the bytes read back from the bucket, through the CLI and
//! the web API; then the object store goes away and comes back.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, Server, run_ok, sha256_hex};
use serde_json::Value;
use telegaz_spool::S3Store;
use telegaz_spool::testing::{S3TestServer, TEST_SECRET_KEY};

const BUCKET: &str = "telegaz-raw";
const PREFIX: &str = "plant-7/";

fn sample(file: &str) -> (PathBuf, Vec<u8>) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/samples/lis200")
        .join(file);
    let data = std::fs::read(&path).unwrap();
    (path, data)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn s3_env(s3: &S3TestServer) -> Vec<(&'static str, String)> {
    common::s3_env(s3, BUCKET, PREFIX)
}

/// The object with this SHA-256 as the bucket holds it, read with a store of
/// the test's own.
fn bucket_bytes(s3: &S3TestServer, sha_hex: &str) -> Option<Vec<u8>> {
    common::bucket_bytes(
        &S3Store::new(&s3.settings(BUCKET, PREFIX)).unwrap(),
        sha_hex,
    )
}

fn curl_upload(s: &Server, path: &std::path::Path, name: &str) -> std::process::Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "60", "-T"])
        .arg(path)
        .arg(s.ftp_url("unit1", "pw-unit1", &format!("/{name}")))
        .output()
        .unwrap()
}

fn wait_for<T>(what: &str, s: &Server, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn upload(s: &Server, id: i64) -> Value {
    s.uploads().into_iter().find(|u| u["id"] == id).unwrap()
}

fn assert_ingested_with_readings(s: &Server, id: i64, from: &str, to: &str) {
    let u = wait_for("ingest", s, || {
        let u = upload(s, id);
        (!u["ingest"].is_null() && u["ingest"]["status"] != "pending").then_some(u)
    });
    assert_eq!(u["ingest"]["status"], "parsed", "{u:#}");
    let out = s.cli(&[
        "readings", "--device", "unit1", "--from", from, "--to", to, "--json",
    ]);
    let rows = String::from_utf8(out.stdout).unwrap();
    assert!(
        rows.lines().count() > 10,
        "readings are queryable after ingest from S3: {rows}"
    );
}

#[test]
fn uploads_are_stored_in_the_bucket_and_survive_an_outage_of_the_object_store() {
    let mut s3 = S3TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(s3.create_bucket(BUCKET)).unwrap();
    let env = s3_env(&s3);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let s = Server::start_with(&env);

    // 1. FTP upload -> 226 -> in the bucket byte for byte, ingested, downloadable.
    let (path, data) = sample("tc220_interval_3days.txt");
    let out = curl_upload(&s, &path, "interval.txt");
    assert!(
        out.status.success(),
        "upload refused: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        s.log()
    );
    let u = s.wait_upload(|u| u["final_path"] == "/interval.txt");
    s.assert_stored(&u, &data); // through `telegaz uploads get`
    let id = u["id"].as_i64().unwrap();
    assert_eq!(
        bucket_bytes(&s3, &sha256_hex(&data)).as_deref(),
        Some(data.as_slice()),
        "the object is in the bucket under {PREFIX}objects/"
    );
    let objects = s.dir.join("spool/objects");
    assert!(
        std::fs::read_dir(&objects).is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
            || std::fs::read_dir(&objects).unwrap().next().is_none(),
        "nothing is kept in the local object directory with storage.raw = s3"
    );
    assert_ingested_with_readings(&s, id, "2026-01-14", "2026-01-17");
    let token = s.viewer_token();
    let raw = run_ok(
        Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "30", "-H"])
            .arg(format!("Authorization: Bearer {token}"))
            .arg(format!("http://{}/api/v1/uploads/{id}/raw", s.http)),
    );
    assert!(raw.stdout == data, "the web API serves the bytes from S3");

    // 2. The object store goes away: no 226, nothing lost.
    s3.stop();
    let (path2, data2) = sample("ek270_interval_with_header.txt");
    let out = curl_upload(&s, &path2, "while-down.txt");
    assert!(
        !out.status.success(),
        "a transfer must not be acknowledged while the object store is away"
    );
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("451"), "curl: {said}");
    let pending = wait_for("the refused upload's record", &s, || {
        s.uploads()
            .into_iter()
            .find(|u| u["final_path"] == "/while-down.txt")
    });
    let id2 = pending["id"].as_i64().unwrap();
    assert_ne!(pending["status"], "complete", "{pending:#}");
    let temp = s.dir.join(format!("spool/incoming/{id2}.part"));
    assert!(
        std::fs::read(&temp).unwrap() == data2,
        "the bytes wait in the spool"
    );
    let log = s.log();
    assert!(
        log.contains("object store") && log.contains("cannot connect"),
        "the log says what is wrong: {log}"
    );
    assert!(!log.contains(TEST_SECRET_KEY), "no secret in the log");
    assert!(!log.contains("X-Amz-Signature"), "no signed URL in the log");

    // 3. It comes back (Moto keeps nothing: the bucket is made again); the
    // bytes are stored without any client doing anything.
    s3.resume().unwrap();
    rt().block_on(s3.create_bucket(BUCKET)).unwrap();
    let settled = wait_for("the waiting upload to be stored", &s, || {
        let u = upload(&s, id2);
        (u["status"] == "partial").then_some(u)
    });
    assert_eq!(settled["sha256"], sha256_hex(&data2), "{settled:#}");
    assert_eq!(
        bucket_bytes(&s3, &sha256_hex(&data2)).as_deref(),
        Some(data2.as_slice())
    );
    assert!(
        !temp.exists(),
        "the temporary file goes once the bytes are stored"
    );
    assert!(s.upload_bytes(id2) == data2);

    // 4. The unit sends the file again (it never heard 226): acknowledged and ingested.
    let out = curl_upload(&s, &path2, "while-down.txt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let again =
        s.wait_upload(|u| u["final_path"] == "/while-down.txt" && u["status"] == "complete");
    s.assert_stored(&again, &data2);
    assert_ingested_with_readings(
        &s,
        again["id"].as_i64().unwrap(),
        "2026-02-01",
        "2026-02-03",
    );
}

#[test]
fn serve_refuses_to_start_when_the_object_store_cannot_be_used() {
    let s3 = S3TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    // No bucket made: the check at start-up fails and says why.
    let tmp = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args([
            "serve",
            "--ftp-listen",
            "127.0.0.1:0",
            "--web-listen",
            "127.0.0.1:0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (k, v) in s3_env(&s3) {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve kept running with a missing bucket");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("object store") && said.contains("does not exist"),
        "{said}"
    );
    assert!(!said.contains(TEST_SECRET_KEY), "{said}");
}

#[test]
fn start_up_reconciliation_stores_what_waited_for_the_object_store() {
    let mut s3 = S3TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    rt().block_on(s3.create_bucket(BUCKET)).unwrap();
    let mut env = s3_env(&s3);
    // No retry while it runs: what waits is left to the next start.
    env.retain(|(k, _)| *k != "TELEGAZ_STORAGE__RETRY_INTERVAL");
    env.push(("TELEGAZ_STORAGE__RETRY_INTERVAL", "1h".into()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut s = Server::start_with(&env);

    s3.stop();
    let (path, data) = sample("tc220_interval_3days.txt");
    let out = curl_upload(&s, &path, "before-crash.txt");
    assert!(
        !out.status.success(),
        "no 226 while the object store is away"
    );
    let id = wait_for("the refused upload's record", &s, || {
        s.uploads()
            .into_iter()
            .find(|u| u["final_path"] == "/before-crash.txt")
            .and_then(|u| u["id"].as_i64())
    });
    let temp = s.dir.join(format!("spool/incoming/{id}.part"));
    assert!(std::fs::read(&temp).unwrap() == data);
    s.kill9();

    s3.resume().unwrap();
    rt().block_on(s3.create_bucket(BUCKET)).unwrap();
    s.restart();
    let u = upload(&s, id);
    assert_eq!(u["status"], "partial", "{u:#}");
    assert_eq!(u["sha256"], sha256_hex(&data), "{u:#}");
    assert_eq!(
        bucket_bytes(&s3, &sha256_hex(&data)).as_deref(),
        Some(data.as_slice()),
        "reconciliation stored the waiting bytes in the bucket"
    );
    assert!(!temp.exists());
    assert!(s.upload_bytes(id) == data);
}
