#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The raw stores against real peers: the local directory, and a real
//! S3-compatible server (Moto's, started per test on a free port).

use std::sync::Arc;
use std::time::Duration;

use rusty_s3::actions::{GetObject, PutObject};
use rusty_s3::{Bucket, Credentials, S3Action as _, UrlStyle};
use sha2::{Digest, Sha256};
use telegaz_domain::Sha256Digest;
use telegaz_spool::testing::{S3TestServer, TEST_ACCESS_KEY, TEST_SECRET_KEY};
use telegaz_spool::{S3Store, Spool, SpoolError};
use tokio::io::AsyncReadExt;

fn sha_of(data: &[u8]) -> Sha256Digest {
    Sha256Digest(Sha256::digest(data).into())
}

async fn server_with_bucket(bucket: &str) -> S3TestServer {
    let server = S3TestServer::start().unwrap_or_else(|e| panic!("{e}"));
    server.create_bucket(bucket).await.unwrap();
    server
}

fn s3_spool(dir: &std::path::Path, server: &S3TestServer, prefix: &str) -> (Spool, Arc<S3Store>) {
    let store = Arc::new(S3Store::new(&server.settings("raw", prefix)).unwrap());
    let spool = Spool::with_raw_store(dir.join("spool"), store.clone()).unwrap();
    (spool, store)
}

async fn store_bytes(spool: &Spool, id: i64, data: &[u8]) -> telegaz_spool::Committed {
    let mut t = spool.create_temp(id).await.unwrap();
    for chunk in data.chunks(64 * 1024) {
        t.write(chunk).await.unwrap();
    }
    let c = spool.commit(t).await.unwrap();
    spool.remove_temp(id).await.unwrap();
    c
}

async fn read_all(spool: &Spool, sha: &Sha256Digest, offset: u64) -> Vec<u8> {
    let mut r = spool.open_object_at(sha, offset).await.unwrap();
    let mut out = Vec::new();
    r.read_to_end(&mut out).await.unwrap();
    out
}

/// What every raw store must do, through the spool.
async fn put_get_list_exists(spool: &Spool) {
    let hello = b"hello world".as_slice();
    let c = store_bytes(spool, 1, hello).await;
    assert_eq!(
        (c.sha256, c.size, c.newly_stored),
        (sha_of(hello), 11, true)
    );
    let again = store_bytes(spool, 2, hello).await;
    assert!(!again.newly_stored, "same content is stored once");
    assert!(spool.object_exists(&c.sha256).await.unwrap());
    assert_eq!(spool.object_size(&c.sha256).await.unwrap(), Some(11));
    let absent = sha_of(b"never stored");
    assert!(!spool.object_exists(&absent).await.unwrap());
    assert_eq!(spool.object_size(&absent).await.unwrap(), None);
    assert_eq!(read_all(spool, &c.sha256, 0).await, hello);
    assert_eq!(read_all(spool, &c.sha256, 6).await, b"world");
    assert_eq!(
        read_all(spool, &c.sha256, 11).await,
        b"",
        "offset at the end"
    );
    assert_eq!(spool.read_prefix(&c.sha256, 5).await.unwrap(), b"hello");
    assert!(spool.read_prefix(&c.sha256, 12).await.is_err());
    assert_eq!(spool.hash_object(&c.sha256).await.unwrap(), (c.sha256, 11));

    let empty = store_bytes(spool, 3, b"").await;
    assert_eq!((empty.sha256, empty.size), (sha_of(b""), 0));
    assert_eq!(read_all(spool, &empty.sha256, 0).await, b"");

    let (mut objects, strangers) = spool.list_objects().await.unwrap();
    objects.sort_unstable();
    let mut expected = vec![c.sha256, empty.sha256];
    expected.sort_unstable();
    assert_eq!(objects, expected);
    assert!(strangers.is_empty(), "{strangers:?}");
}

#[tokio::test]
async fn local_store_puts_gets_lists() {
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::open(dir.path().join("spool")).unwrap();
    put_get_list_exists(&spool).await;
    let hex = sha_of(b"hello world").to_hex();
    assert!(
        dir.path()
            .join("spool/objects")
            .join(&hex[..2])
            .join(&hex)
            .is_file(),
        "the local layout is unchanged"
    );
}

#[tokio::test]
async fn s3_store_puts_gets_lists() {
    let server = server_with_bucket("raw").await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, store) = s3_spool(dir.path(), &server, "site-a");
    store.check().await.unwrap();
    put_get_list_exists(&spool).await;

    // The object is in the bucket under the prefix, byte for byte (read
    // with a request of our own, not through the store).
    let sha = sha_of(b"hello world");
    let hex = sha.to_hex();
    let key = format!("site-a/objects/{}/{hex}", &hex[..2]);
    assert_eq!(spool.object_location(&sha), format!("s3://raw/{key}"));
    let bucket = Bucket::new(
        server.endpoint().parse().unwrap(),
        UrlStyle::Path,
        "raw",
        "us-east-1",
    )
    .unwrap();
    let creds = Credentials::new(TEST_ACCESS_KEY, TEST_SECRET_KEY);
    let url = GetObject::new(&bucket, Some(&creds), &key).sign(Duration::from_secs(60));
    let got = reqwest::get(url).await.unwrap();
    assert!(got.status().is_success(), "{}", got.status());
    assert_eq!(got.bytes().await.unwrap().as_ref(), b"hello world");

    // Something in the bucket that Telegaz did not name is a stranger, and
    // another prefix's objects are not ours.
    for key in ["site-a/objects/notes.txt", "site-b/objects/aa/whatever"] {
        let url = PutObject::new(&bucket, Some(&creds), key).sign(Duration::from_secs(60));
        let r = reqwest::Client::new()
            .put(url)
            .body("x")
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    let (objects, strangers) = spool.list_objects().await.unwrap();
    assert_eq!(objects.len(), 2);
    assert_eq!(
        strangers,
        vec!["s3://raw/site-a/objects/notes.txt".to_owned()]
    );
}

#[tokio::test]
async fn s3_store_lists_past_one_page() {
    let server = server_with_bucket("raw").await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _store) = s3_spool(dir.path(), &server, "");
    let mut expected = Vec::new();
    for i in 0..1010u32 {
        let c = store_bytes(&spool, i64::from(i), &i.to_le_bytes()).await;
        expected.push(c.sha256);
    }
    expected.sort_unstable();
    let (objects, _) = spool.list_objects().await.unwrap();
    assert_eq!(objects, expected, "S3 lists 1000 keys a page");
}

#[tokio::test]
async fn s3_store_large_object_round_trip() {
    let server = server_with_bucket("raw").await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, _store) = s3_spool(dir.path(), &server, "big/");
    let data: Vec<u8> = (0..24 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let c = store_bytes(&spool, 1, &data).await;
    assert_eq!((c.sha256, c.size), (sha_of(&data), data.len() as u64));
    assert_eq!(
        spool.object_size(&c.sha256).await.unwrap(),
        Some(data.len() as u64)
    );
    assert_eq!(
        spool.hash_object(&c.sha256).await.unwrap(),
        (c.sha256, c.size)
    );
    let tail = read_all(&spool, &c.sha256, 20 * 1024 * 1024).await;
    assert_eq!(tail, &data[20 * 1024 * 1024..]);
}

#[tokio::test]
async fn unreachable_object_store_keeps_the_bytes_and_says_what_to_do() {
    let mut server = server_with_bucket("raw").await;
    let dir = tempfile::tempdir().unwrap();
    let (spool, store) = s3_spool(dir.path(), &server, "");
    server.stop();

    let mut t = spool.create_temp(7).await.unwrap();
    t.write(b"reading of unit 7").await.unwrap();
    let e = spool.commit(t).await.unwrap_err();
    assert!(matches!(e, SpoolError::ObjectStore { .. }), "{e:?}");
    let msg = e.to_string();
    assert!(msg.contains("cannot connect"), "{msg}");
    assert!(msg.contains(&server.endpoint()), "{msg}");
    assert!(msg.contains("incoming"), "says where the bytes wait: {msg}");
    assert!(
        !msg.contains("X-Amz-Signature"),
        "no signed URL in messages: {msg}"
    );
    assert!(!msg.contains(TEST_SECRET_KEY), "{msg}");
    assert!(!e.is_out_of_space());
    assert!(spool.temp_path(7).is_file(), "nothing lost");
    assert!(store.check().await.is_err());
    assert!(spool.list_objects().await.is_err());

    // Back (empty: Moto keeps nothing across a restart); the temp is committed.
    server.resume().unwrap();
    server.create_bucket("raw").await.unwrap();
    let c = spool.commit_existing_temp(7).await.unwrap();
    assert!(c.newly_stored);
    assert_eq!(read_all(&spool, &c.sha256, 0).await, b"reading of unit 7");
}

#[tokio::test]
async fn missing_bucket_is_explained() {
    let server = server_with_bucket("raw").await;
    let store = S3Store::new(&server.settings("no-such-bucket", "")).unwrap();
    let e = store.check().await.unwrap_err().to_string();
    assert!(e.contains("does not exist"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let spool = Spool::with_raw_store(dir.path(), Arc::new(store)).unwrap();
    let mut t = spool.create_temp(1).await.unwrap();
    t.write(b"x").await.unwrap();
    let e = spool.commit(t).await.unwrap_err().to_string();
    assert!(e.contains("NoSuchBucket") || e.contains("404"), "{e}");
}
