#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The scheduler against a real (SQLite) database, with the clock passed in
//! and a mailer that records what it is given (or fails, as a server that is down).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use jiff::Timestamp;
use jiff::civil::Date;
use telegaz_config::{
    Config, DeliveryConfig, DeliveryFormat, DeliveryPolicyConfig, ReportRows, SmtpConfig,
};
use telegaz_delivery::{Email, MailError, Mailer, Scheduler};
use telegaz_domain::{
    DeviceName, FileName, NewUpload, Sha256Digest, UploadFinish, UploadMode, UploadStatus,
};
use telegaz_store::{Database, DeliveryFilter, DeliveryRecord, DeliveryState, NewDevice};

#[derive(Default)]
struct Recorder {
    sent: Mutex<Vec<Email>>,
    down: AtomicBool,
}

#[async_trait]
impl Mailer for Recorder {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(MailError::Smtp {
                server: "mail.test:25".into(),
                error: "Connection error: Connection refused (os error 111)".into(),
                hint: "test",
            });
        }
        self.sent.lock().unwrap().push(email.clone());
        Ok(())
    }
}

impl Recorder {
    fn subjects(&self) -> Vec<String> {
        self.sent
            .lock()
            .unwrap()
            .iter()
            .map(|e| e.subject.clone())
            .collect()
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn day(s: &str) -> Date {
    s.parse().unwrap()
}

fn sample() -> Vec<u8> {
    std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../testdata/samples/lis200/tc220_interval_3days.txt"),
    )
    .unwrap()
}

/// A database with device `unit1` (Europe/Moscow, contract hour 10) holding the
/// sample's readings: gas days 14.01.2026 (23 hours) to 16.01.2026.
async fn database() -> (tempfile::TempDir, Arc<dyn Database>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = telegaz_store::connect(&url).await.unwrap();
    let dev = db
        .create_device(NewDevice {
            name: DeviceName::parse("unit1").unwrap(),
            login: DeviceName::parse("unit1").unwrap(),
            password_hash: "$argon2id$x".into(),
            allowed_networks: vec![],
        })
        .await
        .unwrap();
    let id = db
        .begin_upload(&NewUpload {
            device_id: dev.id,
            original_name: FileName::utf8("a.txt"),
            path: "/a.txt".into(),
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: None,
            session: None,
            started_at: Timestamp::now(),
        })
        .await
        .unwrap();
    db.finish_upload(
        id,
        &UploadFinish {
            status: UploadStatus::Complete,
            size: 1,
            sha256: Sha256Digest([1; 32]),
            reason: None,
            finished_at: Timestamp::now(),
        },
    )
    .await
    .unwrap();
    let parsed = telegaz_lis200::parse(&sample()).unwrap();
    db.store_parsed(id, dev.id, &parsed).await.unwrap();
    (dir, db)
}

fn config(deliveries: Vec<DeliveryConfig>, retry: &[u64], catch_up_days: u32) -> Config {
    Config {
        smtp: SmtpConfig {
            host: "mail.test".into(),
            from: "Telegaz <telegaz@example.ru>".into(),
            ..SmtpConfig::default()
        },
        delivery: deliveries,
        delivery_policy: DeliveryPolicyConfig {
            retry: retry.iter().map(|s| Duration::from_secs(*s)).collect(),
            catch_up_days,
            check_every: Duration::from_secs(60),
        },
        ..Config::default()
    }
}

fn daily(devices: &[&str]) -> DeliveryConfig {
    DeliveryConfig {
        name: "daily".into(),
        devices: devices.iter().map(|d| d.to_string()).collect(),
        recipients: vec![
            "dispatcher@example.ru".into(),
            "Иванов <ivanov@example.ru>".into(),
        ],
        format: DeliveryFormat::Xlsx,
        rows: ReportRows::Daily,
        delay: Duration::from_secs(30 * 60),
        subject: None,
    }
}

async fn record(db: &dyn Database, d: &str) -> DeliveryRecord {
    db.delivery("daily", day(d)).await.unwrap().unwrap()
}

#[tokio::test]
async fn each_gas_day_is_sent_once_after_its_contract_hour_and_delay() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    let cfg = config(vec![daily(&["unit1"])], &[60, 300], 1);
    let s = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();

    // Gas day 15.01 ends 16.01 10:00 Moscow time (07:00 UTC); due 30 minutes later.
    // Just before, the latest due day is 14.01.
    let t = s.tick(ts("2026-01-16T07:29:59Z")).await.unwrap();
    assert_eq!((t.scheduled, t.sent), (1, 1));
    assert_eq!(mailer.subjects(), ["Газовые сутки 14.01.2026: unit1"]);
    let t = s.tick(ts("2026-01-16T07:30:00Z")).await.unwrap();
    assert_eq!((t.scheduled, t.sent), (1, 1));
    assert_eq!(mailer.subjects()[1], "Газовые сутки 15.01.2026: unit1");

    let email = mailer.sent.lock().unwrap()[1].clone();
    assert_eq!(email.from.to_string(), "Telegaz <telegaz@example.ru>");
    assert_eq!(email.to.len(), 2);
    assert_eq!(email.to[1].email.to_string(), "ivanov@example.ru");
    assert_eq!(email.attachment.filename, "daily_2026-01-15.xlsx");
    assert_eq!(&email.attachment.bytes[..2], b"PK");
    assert!(
        email.body.contains("unit1: Vст = 602,036"),
        "{}",
        email.body
    );
    assert!(email.body.contains("данные полные"), "{}", email.body);

    let r = record(&*db, "2026-01-15").await;
    assert_eq!(r.state, DeliveryState::Sent);
    assert_eq!(r.attempts, 1);
    assert_eq!(r.sent_at, Some(ts("2026-01-16T07:30:00Z")));
    assert_eq!(r.due_at, ts("2026-01-16T07:30:00Z"));

    // Later checks, and a restarted scheduler on the same database, send nothing again.
    let t = s.tick(ts("2026-01-16T12:00:00Z")).await.unwrap();
    assert_eq!(t, Default::default());
    let restarted = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();
    let t = restarted.tick(ts("2026-01-16T12:01:00Z")).await.unwrap();
    assert_eq!(t, Default::default());
    assert_eq!(mailer.sent.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_mail_server_that_is_down_is_retried_then_reported_failed() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    mailer.down.store(true, Ordering::SeqCst);
    let cfg = config(vec![daily(&["unit1"])], &[60, 300], 1);
    let s = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();
    let t0 = ts("2026-01-16T07:30:00Z");

    let t = s.tick(t0).await.unwrap();
    assert_eq!((t.sent, t.retrying), (0, 1));
    let r = record(&*db, "2026-01-15").await;
    assert_eq!((r.state, r.attempts), (DeliveryState::Pending, 1));
    assert!(
        r.last_error
            .as_deref()
            .unwrap()
            .contains("Connection refused"),
        "{r:?}"
    );
    assert_eq!(r.next_attempt_at, Some(ts("2026-01-16T07:31:00Z")));

    // Not before the first wait.
    assert_eq!(
        s.tick(ts("2026-01-16T07:30:59Z")).await.unwrap(),
        Default::default()
    );
    assert_eq!(record(&*db, "2026-01-15").await.attempts, 1);
    // Second attempt after a minute, third five minutes later: then failed.
    let t = s.tick(ts("2026-01-16T07:31:00Z")).await.unwrap();
    assert_eq!(t.retrying, 1);
    let r = record(&*db, "2026-01-15").await;
    assert_eq!(r.next_attempt_at, Some(ts("2026-01-16T07:36:00Z")));
    let t = s.tick(ts("2026-01-16T07:36:00Z")).await.unwrap();
    assert_eq!(t.failed, 1);
    let r = record(&*db, "2026-01-15").await;
    assert_eq!((r.state, r.attempts), (DeliveryState::Failed, 3));
    assert_eq!(r.next_attempt_at, None);
    assert!(
        s.tick(ts("2026-01-16T20:00:00Z")).await.unwrap() == Default::default(),
        "a failed delivery is left for the operator"
    );

    // The operator sends it once the server is back.
    mailer.down.store(false, Ordering::SeqCst);
    let r = s
        .send_now("daily", day("2026-01-15"), ts("2026-01-16T21:00:00Z"))
        .await
        .unwrap();
    assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 4));
    assert!(r.last_error.unwrap().contains("Connection refused"));
    assert_eq!(mailer.subjects(), ["Газовые сутки 15.01.2026: unit1"]);
}

#[tokio::test]
async fn a_retry_that_succeeds_is_sent_once() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    mailer.down.store(true, Ordering::SeqCst);
    let cfg = config(vec![daily(&["unit1"])], &[60], 1);
    let s = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();
    s.tick(ts("2026-01-16T07:30:00Z")).await.unwrap();
    mailer.down.store(false, Ordering::SeqCst);
    let t = s.tick(ts("2026-01-16T07:31:00Z")).await.unwrap();
    assert_eq!(t.sent, 1);
    let r = record(&*db, "2026-01-15").await;
    assert_eq!((r.state, r.attempts), (DeliveryState::Sent, 2));
    s.tick(ts("2026-01-16T08:31:00Z")).await.unwrap();
    assert_eq!(mailer.sent.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn missing_data_and_unknown_devices_fail_with_what_to_do() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    let mut other = daily(&["unit1", "nosuch"]);
    other.name = "other".into();
    let cfg = config(vec![daily(&["unit1"]), other], &[60], 1);
    let s = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();
    // Gas day 20.01: the sample has no readings for it.
    let t = s.tick(ts("2026-01-21T08:00:00Z")).await.unwrap();
    assert_eq!((t.scheduled, t.sent, t.retrying), (2, 0, 2));
    let r = record(&*db, "2026-01-20").await;
    let e = r.last_error.unwrap();
    assert!(
        e.contains("no readings") && e.contains("uploads list"),
        "{e}"
    );
    let r = db
        .delivery("other", day("2026-01-20"))
        .await
        .unwrap()
        .unwrap();
    let e = r.last_error.unwrap();
    assert!(e.contains("no device named \"nosuch\""), "{e}");
    assert!(mailer.sent.lock().unwrap().is_empty());
}

#[tokio::test]
async fn catch_up_covers_only_the_latest_days() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    let cfg = config(vec![daily(&["unit1"])], &[60], 2);
    let s = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();
    // Latest due on 17.01 08:00 UTC: 16.01; with two days of catch-up, 15.01 too, not 14.01.
    let t = s.tick(ts("2026-01-17T08:00:00Z")).await.unwrap();
    assert_eq!((t.scheduled, t.sent), (2, 2));
    let days: Vec<String> = db
        .list_deliveries(&DeliveryFilter::default())
        .await
        .unwrap()
        .iter()
        .map(|r| r.gas_day.to_string())
        .collect();
    assert_eq!(days, ["2026-01-16", "2026-01-15"]);
}

#[tokio::test]
async fn an_attempt_cut_short_is_taken_up_after_its_lease() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    let cfg = config(vec![daily(&["unit1"])], &[60], 1);
    let s = Scheduler::new(&cfg, db.clone(), mailer.clone()).unwrap();
    let t0 = ts("2026-01-16T07:30:00Z");
    // A process took it and died before recording anything.
    s.schedule(t0).await.unwrap();
    db.claim_delivery(
        "daily",
        day("2026-01-15"),
        t0,
        ts("2026-01-16T07:40:00Z"),
        false,
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        s.tick(ts("2026-01-16T07:35:00Z")).await.unwrap(),
        Default::default()
    );
    let t = s.tick(ts("2026-01-16T07:40:00Z")).await.unwrap();
    assert_eq!(t.sent, 1);
    assert_eq!(record(&*db, "2026-01-15").await.attempts, 2);
}

#[tokio::test]
async fn hourly_csv_for_russian_excel() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    let mut d = daily(&["unit1"]);
    d.format = DeliveryFormat::Csv1251;
    d.rows = ReportRows::Hourly;
    d.subject = Some("{name}: {devices}, {gas_day_iso}".into());
    let s = Scheduler::new(&config(vec![d], &[60], 1), db, mailer.clone()).unwrap();
    s.send_now("daily", day("2026-01-15"), ts("2026-01-20T00:00:00Z"))
        .await
        .unwrap();
    let email = mailer.sent.lock().unwrap()[0].clone();
    assert_eq!(email.subject, "daily: unit1, 2026-01-15");
    assert_eq!(email.attachment.filename, "daily_2026-01-15.csv");
    assert!(email.attachment.content_type.contains("windows-1251"));
    let text: String = email.attachment.bytes.iter().map(|&b| b as char).collect();
    // 24 hourly rows, a totals row and a header, CRLF.
    assert!(text.matches("\r\n").count() >= 26, "{text}");
}

#[tokio::test]
async fn unknown_names_and_bad_addresses_are_explained() {
    let (_dir, db) = database().await;
    let mailer = Arc::new(Recorder::default());
    let s = Scheduler::new(
        &config(vec![daily(&["unit1"])], &[], 1),
        db.clone(),
        mailer.clone(),
    )
    .unwrap();
    let e = s
        .send_now("weekly", day("2026-01-15"), Timestamp::now())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("no delivery named \"weekly\"") && e.contains("daily"),
        "{e}"
    );
    let mut bad = daily(&["unit1"]);
    bad.recipients = vec!["a@@b".into()];
    let e = Scheduler::new(&config(vec![bad], &[], 1), db, mailer)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("\"a@@b\" is not a valid e-mail address"), "{e}");
}
