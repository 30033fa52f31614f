#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Start-up reconciliation with several receivers on one database and one
//! object store: a receiver closes only its own transfers in progress, and
//! leaves objects of a shared object store without a record alone (another
//! receiver stores an upload before it records it). A real SQLite store, a
//! real local spool and a real S3 server (Moto's `moto_server`).

use std::sync::Arc;

use telegaz_domain::{DeviceName, FileName, NewUpload, Timestamp, UploadMode, UploadStatus};
use telegaz_receiver::{AuditLog, reconcile};
use telegaz_spool::testing::S3TestServer;
use telegaz_spool::{S3Store, Spool};
use telegaz_store::{Database, NewDevice};

async fn store(dir: &std::path::Path) -> Arc<dyn Database> {
    telegaz_store::connect(&format!("sqlite://{}", dir.join("t.db").display()))
        .await
        .unwrap()
}

async fn device(db: &dyn Database) -> telegaz_domain::DeviceId {
    let name = DeviceName::parse("unit1").unwrap();
    db.create_device(NewDevice {
        name: name.clone(),
        login: name,
        password_hash: "$argon2id$x".into(),
        allowed_networks: vec![],
    })
    .await
    .unwrap()
    .id
}

fn new_upload(device: telegaz_domain::DeviceId, path: &str) -> NewUpload {
    NewUpload {
        device_id: device,
        original_name: FileName::utf8(path.trim_start_matches('/')),
        path: path.into(),
        mode: UploadMode::Store,
        resumed_from: None,
        offset: 0,
        peer: Some("127.0.0.1:5000".into()),
        session: Some("s1".into()),
        started_at: Timestamp::now(),
    }
}

async fn status(db: &dyn Database, id: telegaz_domain::UploadId) -> UploadStatus {
    db.upload(id).await.unwrap().unwrap().status
}

#[tokio::test]
async fn a_receiver_closes_its_own_transfers_and_no_other_receivers() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path()).await;
    let dev = device(&*db).await;
    let spool = Spool::open(dir.path().join("spool-a")).unwrap();
    // Receiver A was killed with a transfer half done (temporary file in its
    // spool) and one whose file never appeared; receiver B is mid-transfer
    // (its file is in B's own spool); one record is from before receivers
    // were recorded.
    let with_temp = db
        .begin_upload_by(&new_upload(dev, "/a1.txt"), "rx-a")
        .await
        .unwrap();
    let mut temp = spool.create_temp(with_temp.0).await.unwrap();
    temp.write(b"half of a file").await.unwrap();
    drop(temp);
    let without_temp = db
        .begin_upload_by(&new_upload(dev, "/a2.txt"), "rx-a")
        .await
        .unwrap();
    let theirs = db
        .begin_upload_by(&new_upload(dev, "/b.txt"), "rx-b")
        .await
        .unwrap();
    let legacy = db.begin_upload(&new_upload(dev, "/old.txt")).await.unwrap();

    let (audit, _task) = AuditLog::start(db.clone());
    let report = reconcile(&db, &spool, &audit, "rx-a").await.unwrap();
    let mut closed = report.interrupted.clone();
    closed.sort_unstable();
    assert_eq!(closed, vec![with_temp, without_temp, legacy], "{report:?}");
    for id in [with_temp, without_temp, legacy] {
        assert_eq!(status(&*db, id).await, UploadStatus::Partial);
    }
    assert_eq!(status(&*db, theirs).await, UploadStatus::Receiving);
    let kept = db.upload(with_temp).await.unwrap().unwrap();
    assert_eq!(kept.size, 14, "the bytes that arrived are kept");

    // B's own start closes B's transfer.
    let spool_b = Spool::open(dir.path().join("spool-b")).unwrap();
    let report = reconcile(&db, &spool_b, &audit, "rx-b").await.unwrap();
    assert_eq!(report.interrupted, vec![theirs]);
    assert_eq!(status(&*db, theirs).await, UploadStatus::Partial);
}

/// A temporary file in this receiver's spool whose record belongs to another
/// receiver (a spool directory shared by mistake) is left alone.
#[tokio::test]
async fn a_temporary_file_of_another_receivers_transfer_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path()).await;
    let dev = device(&*db).await;
    let spool = Spool::open(dir.path().join("spool")).unwrap();
    let theirs = db
        .begin_upload_by(&new_upload(dev, "/b.txt"), "rx-b")
        .await
        .unwrap();
    let mut temp = spool.create_temp(theirs.0).await.unwrap();
    temp.write(b"bytes of B").await.unwrap();
    drop(temp);
    let (audit, _task) = AuditLog::start(db.clone());
    let report = reconcile(&db, &spool, &audit, "rx-a").await.unwrap();
    assert!(report.interrupted.is_empty(), "{report:?}");
    assert_eq!(report.others, vec![theirs]);
    assert_eq!(status(&*db, theirs).await, UploadStatus::Receiving);
    assert!(spool.temp_path(theirs.0).exists());
}

/// An object without a record: in a local spool (one receiver's) it is
/// recorded as recovered; in a shared bucket it may be another receiver's
/// upload being recorded, and is left alone.
#[tokio::test]
async fn objects_without_a_record_are_recovered_locally_but_not_in_a_shared_bucket() {
    let s3 = S3TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    s3.create_bucket("fleet").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = store(dir.path()).await;
    let (audit, _task) = AuditLog::start(db.clone());
    let bucket = || Arc::new(S3Store::new(&s3.settings("fleet", "r/")).unwrap());

    // Receiver B stores an upload's bytes in the bucket; its record is not
    // written yet (it is about to be, or B waits for the database).
    let spool_b = Spool::with_raw_store(dir.path().join("spool-b"), bucket()).unwrap();
    let mut temp = spool_b.create_temp(-1).await.unwrap();
    temp.write(b"B's upload, not recorded yet").await.unwrap();
    let stored = spool_b.commit(temp).await.unwrap();

    // Receiver A starts meanwhile.
    let spool_a = Spool::with_raw_store(dir.path().join("spool-a"), bucket()).unwrap();
    let report = reconcile(&db, &spool_a, &audit, "rx-a").await.unwrap();
    assert!(report.recovered.is_empty(), "{report:?}");
    assert_eq!(report.unrecorded_shared, 1);
    assert!(
        db.uploads_by_digest(&stored.sha256)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(spool_a.object_exists(&stored.sha256).await.unwrap());

    // The same object in a receiver's own local spool is recovered.
    let local = Spool::open(dir.path().join("spool-local")).unwrap();
    let mut temp = local.create_temp(-1).await.unwrap();
    temp.write(b"B's upload, not recorded yet").await.unwrap();
    local.commit(temp).await.unwrap();
    local.remove_temp(-1).await.unwrap();
    let report = reconcile(&db, &local, &audit, "rx-a").await.unwrap();
    assert_eq!(report.recovered.len(), 1, "{report:?}");
    assert_eq!(report.unrecorded_shared, 0);
    assert_eq!(
        db.uploads_by_digest(&stored.sha256).await.unwrap(),
        report.recovered
    );
}
