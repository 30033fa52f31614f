#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Alerts over time, on a real SQLite store, with a clock the test moves.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use telegaz_alerts::{AlertSettings, Clock, Dispatcher, Engine, ManualClock, SendError, Sender};
use telegaz_domain::{
    AlertKind, AlertState, DeviceId, DeviceName, FileName, IngestState, NewUpload, Notification,
    NotificationEvent, Sha256Digest, UploadFinish, UploadMode, UploadStatus,
};
use telegaz_store::{AlertFilter, Database, NewDevice};

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn db() -> (tempfile::TempDir, Arc<dyn Database>) {
    let dir = tempfile::tempdir().unwrap();
    let db = telegaz_store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
        .await
        .unwrap();
    (dir, db)
}

async fn device(db: &dyn Database, name: &str) -> DeviceId {
    db.create_device(NewDevice {
        name: DeviceName::parse(name).unwrap(),
        login: DeviceName::parse(name).unwrap(),
        password_hash: "$argon2id$x".into(),
        allowed_networks: vec![],
    })
    .await
    .unwrap()
    .id
}

/// An upload that started at `at` (its bytes do not matter here).
async fn upload_at(
    db: &dyn Database,
    d: DeviceId,
    at: Timestamp,
    byte: u8,
) -> telegaz_domain::UploadId {
    let id = db
        .begin_upload(&NewUpload {
            device_id: d,
            original_name: FileName::utf8("a.txt"),
            path: format!("/a{byte}.txt"),
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: None,
            session: None,
            started_at: at,
        })
        .await
        .unwrap();
    db.finish_upload(
        id,
        &UploadFinish {
            status: UploadStatus::Complete,
            size: 10,
            sha256: Sha256Digest([byte; 32]),
            reason: None,
            finished_at: at,
        },
    )
    .await
    .unwrap();
    id
}

/// Hourly uploads ending at `last`.
async fn hourly(db: &dyn Database, d: DeviceId, last: Timestamp, n: i64) {
    for i in (0..n).rev() {
        upload_at(db, d, last - SignedDuration::from_hours(i), i as u8).await;
    }
}

fn settings(notifiers: &[&str]) -> AlertSettings {
    AlertSettings {
        silent_grace: std::time::Duration::from_secs(30 * 60),
        digest_threshold: 20,
        notifiers: notifiers.iter().map(|s| (*s).to_owned()).collect(),
        // These tests' uploads are never parsed and their archives hold a few
        // hours: the backlog and missing-hours rules have their own tests.
        missing_hours: false,
        server: telegaz_alerts::ServerHealth {
            max_ingest_delay: std::time::Duration::from_secs(10 * 365 * 86400),
            ..telegaz_alerts::ServerHealth::default()
        },
        ..AlertSettings::default()
    }
}

/// A notifier that keeps what it was sent, and can be made to fail.
#[derive(Default)]
struct Recorder {
    name: String,
    got: Mutex<Vec<Notification>>,
    down: Mutex<bool>,
}

#[async_trait]
impl Sender for Recorder {
    fn name(&self) -> &str {
        &self.name
    }
    async fn send(&self, n: &Notification) -> Result<(), SendError> {
        if *self.down.lock().unwrap() {
            return Err(SendError {
                message: "connection refused".into(),
                retryable: true,
            });
        }
        self.got.lock().unwrap().push(n.clone());
        Ok(())
    }
}

fn recorder(name: &str) -> Arc<Recorder> {
    Arc::new(Recorder {
        name: name.into(),
        ..Recorder::default()
    })
}

#[tokio::test]
async fn silence_is_found_after_the_grace_period_and_a_return_resolves_it_once() {
    let (_dir, db) = db().await;
    let d = device(&*db, "kotelnaya-1").await;
    let last = t("2026-11-25T10:00:00Z");
    hourly(&*db, d, last, 6).await;
    let clock = Arc::new(ManualClock::new(last));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail"]));
    let mail = recorder("mail");
    let dispatcher = Dispatcher::new(db.clone(), clock.clone(), vec![mail.clone()]);

    // Learned schedule: hourly; grace 30 min: silent after 11:30.
    clock.set(t("2026-11-25T11:29:00Z"));
    assert_eq!(engine.evaluate().await.unwrap().opened, 0, "not yet");
    clock.set(t("2026-11-25T11:31:00Z"));
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.opened, e.notifications), (1, 1));
    let alerts = db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].kind, AlertKind::Silent);
    assert_eq!(dispatcher.deliver_due().await, 1);
    // Still silent: no second alert, no second message.
    clock.advance(SignedDuration::from_mins(10));
    assert_eq!(engine.evaluate().await.unwrap(), Default::default());
    assert_eq!(dispatcher.deliver_due().await, 0);
    // Acknowledged in the UI, then the unit calls again: resolved, one recovery notice.
    db.acknowledge_alert(alerts[0].id, "диспетчер", clock.now())
        .await
        .unwrap();
    upload_at(&*db, d, clock.now(), 99).await;
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.resolved, e.notifications), (1, 1));
    assert_eq!(
        engine.evaluate().await.unwrap(),
        Default::default(),
        "resolved once"
    );
    assert_eq!(dispatcher.deliver_due().await, 1);
    let got = mail.got.lock().unwrap().clone();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].event, NotificationEvent::Opened);
    assert!(
        got[0].title.contains("kotelnaya-1")
            && got[0].text.contains("обычный интервал передачи 1 ч"),
        "{got:?}"
    );
    assert_eq!(got[1].event, NotificationEvent::Resolved);
    assert_eq!(got[1].alert_id, got[0].alert_id);
    let all = db.list_alerts(&AlertFilter::default()).await.unwrap();
    assert_eq!(all[0].state, AlertState::Resolved);
}

#[tokio::test]
async fn a_unit_without_a_learned_schedule_uses_the_default_and_one_never_heard_from_is_not_silent()
{
    let (_dir, db) = db().await;
    let d = device(&*db, "new-unit").await;
    device(&*db, "never-called").await;
    upload_at(&*db, d, t("2026-11-25T10:00:00Z"), 1).await;
    let clock = Arc::new(ManualClock::new(t("2026-11-26T10:29:00Z")));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&[]));
    assert_eq!(
        engine.evaluate().await.unwrap().opened,
        0,
        "24 h + 30 min by default"
    );
    clock.set(t("2026-11-26T10:31:00Z"));
    assert_eq!(engine.evaluate().await.unwrap().opened, 1);
}

#[tokio::test]
async fn a_thousand_units_silent_at_once_are_one_digest_and_their_return_another() {
    let (_dir, db) = db().await;
    let last = t("2026-11-25T10:00:00Z");
    let mut ids = Vec::new();
    for i in 0..1000 {
        let d = device(&*db, &format!("u{i:04}")).await;
        upload_at(&*db, d, last, 1).await;
        ids.push(d);
    }
    let clock = Arc::new(ManualClock::new(t("2026-11-26T11:00:00Z")));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail", "mqtt"]));
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.opened, e.digests, e.notifications), (1000, 1, 1));
    let mail = recorder("mail");
    let mqtt = recorder("mqtt");
    let dispatcher = Dispatcher::new(db.clone(), clock.clone(), vec![mail.clone(), mqtt.clone()]);
    assert_eq!(dispatcher.deliver_due().await, 2, "one digest per notifier");
    let digest = mail.got.lock().unwrap()[0].clone();
    assert_eq!(digest.event, NotificationEvent::Digest);
    assert_eq!(digest.devices.len(), 1000);
    assert!(digest.title.contains("1000"));
    // The network comes back: every unit calls; one digest of recovery.
    for (i, d) in ids.iter().enumerate() {
        upload_at(&*db, *d, clock.now(), (i % 200) as u8 + 2).await;
    }
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.resolved, e.digests, e.notifications), (1000, 1, 1));
    assert_eq!(dispatcher.deliver_due().await, 2);
}

#[tokio::test]
async fn a_restart_sends_nothing_twice_and_a_notifier_that_is_down_is_retried_without_blocking_others()
 {
    let (_dir, db) = db().await;
    let d = device(&*db, "shrp-7").await;
    hourly(&*db, d, t("2026-11-25T10:00:00Z"), 4).await;
    let clock = Arc::new(ManualClock::new(t("2026-11-25T12:00:00Z")));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail", "webhook"]));
    assert_eq!(engine.evaluate().await.unwrap().opened, 1);
    let mail = recorder("mail");
    let hook = recorder("webhook");
    *hook.down.lock().unwrap() = true;
    let first = Dispatcher::new(db.clone(), clock.clone(), vec![mail.clone(), hook.clone()]);
    assert_eq!(
        first.deliver_due().await,
        1,
        "mail goes out although the webhook is down"
    );
    let sends = db.notification_sends(10).await.unwrap();
    let failed = sends.iter().find(|s| s.notifier == "webhook").unwrap();
    assert_eq!(failed.state, "pending");
    assert_eq!(
        failed.last_error.as_deref(),
        Some("connection refused"),
        "the failure is reported"
    );
    assert!(
        failed.next_attempt_at > clock.now(),
        "retried later, not at once"
    );
    // "Restart": a new dispatcher (and engine) over the same database.
    drop(first);
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail", "webhook"]));
    assert_eq!(
        engine.evaluate().await.unwrap(),
        Default::default(),
        "the alert is still open: nothing new"
    );
    let mail2 = recorder("mail");
    let hook2 = recorder("webhook");
    let second = Dispatcher::new(
        db.clone(),
        clock.clone(),
        vec![mail2.clone(), hook2.clone()],
    );
    assert_eq!(
        second.deliver_due().await,
        0,
        "nothing due yet, nothing re-sent"
    );
    clock.advance(SignedDuration::from_mins(5));
    assert_eq!(second.deliver_due().await, 1, "the webhook's retry");
    assert!(
        mail2.got.lock().unwrap().is_empty(),
        "mail was sent before the restart"
    );
    assert_eq!(hook2.got.lock().unwrap().len(), 1);
    // A notifier down for a day is given up, and says so.
    *hook2.down.lock().unwrap() = true;
    db.acknowledge_alert(1, "x", clock.now()).await.unwrap();
    upload_at(&*db, d, clock.now(), 50).await;
    engine.evaluate().await.unwrap();
    clock.advance(SignedDuration::from_hours(25));
    second.deliver_due().await;
    let sends = db.notification_sends(10).await.unwrap();
    assert!(
        sends
            .iter()
            .any(|s| s.notifier == "webhook" && s.state == "failed"),
        "{sends:?}"
    );
}

#[tokio::test]
async fn corrector_alarms_and_files_not_understood_open_and_close_alerts() {
    use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, ParsedFile, Quantities};
    let (_dir, db) = db().await;
    let d = device(&*db, "ek270-3").await;
    let now = t("2026-11-25T10:00:00Z");
    let row = |status: &str, hour: i8| ArchiveRecord {
        kind: ArchiveKind::Interval,
        record_no: Some(100 + hour as u64),
        local_time: jiff::civil::date(2026, 11, 25).at(hour, 0, 0, 0),
        utc_offset_seconds: None,
        quantities: Quantities::default(),
        status: vec![status.into()],
        event_code: Some(0x8104),
        check: Check::Ok,
        line: 1,
    };
    let file = |rows| ParsedFile {
        format: "test".into(),
        records: rows,
        ..ParsedFile::default()
    };
    let a = upload_at(&*db, d, now, 1).await;
    db.store_parsed(a, d, &file(vec![row("0", 9), row("0x2000", 10)]))
        .await
        .unwrap();
    let junk = upload_at(&*db, d, now, 2).await;
    db.finish_ingest(junk, IngestState::Quarantined, "not a known format")
        .await
        .unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail"]));
    let e = engine.evaluate().await.unwrap();
    assert_eq!(e.opened, 2);
    let kinds: Vec<AlertKind> = db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .map(|a| a.kind)
        .collect();
    assert!(
        kinds.contains(&AlertKind::CorrectorEvent) && kinds.contains(&AlertKind::UploadProblem)
    );
    // The next hour is normal again, and the junk file is re-parsed fine.
    let b = upload_at(&*db, d, now, 3).await;
    db.store_parsed(b, d, &file(vec![row("0", 11)]))
        .await
        .unwrap();
    db.enqueue_ingest(junk).await.unwrap();
    db.store_parsed(junk, d, &file(vec![row("0", 8)]))
        .await
        .unwrap();
    let e = engine.evaluate().await.unwrap();
    assert_eq!(e.resolved, 2);
    assert!(
        db.list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .is_empty()
    );
}

#[tokio::test]
async fn values_outside_their_limits_raise_alerts_until_they_are_back_and_maintenance_holds_them() {
    use telegaz_alerts::{Bounds, LimitRule, Maintenance};
    use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, ParsedFile, Quantities};
    let (_dir, db) = db().await;
    let d = device(&*db, "kotelnaya-3").await;
    let other = device(&*db, "shrp-7").await;
    let now = t("2026-11-25T10:00:00Z");
    let row = |hour: i8, vb: &str, p: &str, check: Check| ArchiveRecord {
        kind: ArchiveKind::Interval,
        record_no: Some(100 + hour as u64),
        local_time: jiff::civil::date(2026, 11, 25).at(hour, 0, 0, 0),
        utc_offset_seconds: None,
        quantities: Quantities {
            vb: Some(vb.parse::<Decimal>().unwrap()),
            p_kpa: Some(p.parse::<Decimal>().unwrap()),
            t_c: Some("12.5".parse::<Decimal>().unwrap()),
            ..Quantities::default()
        },
        status: vec!["0".into()],
        event_code: Some(0x8104),
        check,
        line: 1,
    };
    let store = |dev: DeviceId, rows: Vec<ArchiveRecord>, byte: u8| {
        let db = db.clone();
        async move {
            let id = upload_at(&*db, dev, now, byte).await;
            db.store_parsed(
                id,
                dev,
                &ParsedFile {
                    format: "test".into(),
                    records: rows,
                    ..ParsedFile::default()
                },
            )
            .await
            .unwrap();
        }
    };
    // Pressure too high and 130 m³ in the newest hour; the other unit has no limits.
    store(
        d,
        vec![
            row(9, "1000", "104", Check::Ok),
            row(10, "1130", "121.3", Check::Ok),
        ],
        1,
    )
    .await;
    store(other, vec![row(10, "5", "500", Check::Ok)], 2).await;
    let mut s = settings(&["mail"]);
    s.limits = vec![LimitRule {
        devices: vec!["kotelnaya-*".into()],
        p_kpa: Bounds {
            min: Some(95.0),
            max: Some(115.0),
        },
        hourly_m3: Bounds {
            min: None,
            max: Some(100.0),
        },
        ..LimitRule::default()
    }];
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::new(db.clone(), clock.clone(), s.clone());
    assert_eq!(engine.evaluate().await.unwrap().opened, 2);
    let open = db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert!(
        open.iter()
            .all(|a| a.kind == AlertKind::Limit && a.device.as_deref() == Some("kotelnaya-3"))
    );
    let p = open.iter().find(|a| a.key.ends_with(":p")).unwrap();
    assert!(
        p.detail.contains("121.3") && p.detail.contains("выше предела 115"),
        "{}",
        p.detail
    );
    assert!(
        open.iter()
            .any(|a| a.key.ends_with(":hourly") && a.detail.contains("130"))
    );
    // A row whose check failed does not count; the next good hour is normal: both resolve.
    store(
        d,
        vec![
            row(11, "1180", "130", Check::Failed("CRC Err".into())),
            row(11, "1180", "104.2", Check::Ok),
        ],
        3,
    )
    .await;
    let e = engine.evaluate().await.unwrap();
    assert_eq!(e.resolved, 2, "{e:?}");

    // In a maintenance window the same breach opens nothing; after it, it does.
    let mut s2 = s.clone();
    s2.maintenance = vec![Maintenance {
        devices: vec!["kotelnaya-3".into()],
        from: t("2026-11-25T09:00:00Z"),
        to: t("2026-11-25T12:00:00Z"),
    }];
    let engine = Engine::new(db.clone(), clock.clone(), s2);
    store(d, vec![row(13, "1210", "140", Check::Ok)], 4).await;
    assert_eq!(engine.evaluate().await.unwrap().opened, 0, "in maintenance");
    clock.set(t("2026-11-25T12:00:01Z"));
    assert_eq!(
        engine.evaluate().await.unwrap().opened,
        1,
        "after maintenance"
    );
}

#[tokio::test]
async fn the_server_itself_raises_alerts_for_an_ingest_backlog_and_a_full_disk() {
    let (dir, db) = db().await;
    let d = device(&*db, "unit-1").await;
    // Received ten minutes ago by the real clock (the queue's own times are
    // real): a fixed date here made the device look silent once the real
    // date moved on, and a second alert opened.
    let queued = jiff::Timestamp::now() - SignedDuration::from_mins(10);
    let id = upload_at(&*db, d, queued, 1).await;
    let clock = Arc::new(ManualClock::new(queued + SignedDuration::from_mins(10)));
    let mut s = settings(&["mail"]);
    s.server = telegaz_alerts::ServerHealth {
        spool_dir: None,
        min_free_bytes: 0,
        max_ingest_delay: std::time::Duration::from_secs(15 * 60),
    };
    let engine = Engine::new(db.clone(), clock.clone(), s.clone());
    // The upload was queued "now" (real time), so the backlog is judged from
    // the queue's own time: move the clock well past it.
    assert_eq!(engine.evaluate().await.unwrap().opened, 0);
    clock.set(jiff::Timestamp::now() + SignedDuration::from_mins(16));
    let e = engine.evaluate().await.unwrap();
    assert_eq!(e.opened, 1, "{e:?}");
    let a = &db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(a.kind, AlertKind::ServerHealth);
    assert_eq!(a.device, None);
    assert!(a.detail.contains("1 файлов"), "{}", a.detail);
    // Parsed: the backlog is gone, the alert resolves.
    db.store_parsed(
        id,
        d,
        &telegaz_domain::ParsedFile {
            format: "t".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(engine.evaluate().await.unwrap().resolved, 1);
    // A disk with less free space than required.
    s.server.spool_dir = Some(dir.path().to_owned());
    s.server.min_free_bytes = u64::MAX;
    let engine = Engine::new(db.clone(), clock.clone(), s);
    engine.evaluate().await.unwrap();
    let open = db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert!(
        open.iter()
            .any(|a| a.key == "server:disk" && a.detail.contains("ГиБ")),
        "{open:?}"
    );
}

#[tokio::test]
async fn corrector_events_are_alerts_until_the_corrector_clears_them() {
    use telegaz_domain::{Check, EventRecord, ParsedFile};
    let (_dir, db) = db().await;
    let d = device(&*db, "ek260-9").await;
    let ev = |code: u16, hour: i8| EventRecord {
        record_no: Some(u64::from(code) + hour as u64),
        local_time: jiff::civil::date(2026, 11, 25).at(hour, 0, 0, 0),
        utc_offset_seconds: None,
        code,
        check: Check::Ok,
        line: 1,
    };
    let store = |events: Vec<EventRecord>, at: Timestamp, byte: u8| {
        let db = db.clone();
        async move {
            let id = upload_at(&*db, d, at, byte).await;
            db.store_parsed(
                id,
                d,
                &ParsedFile {
                    format: "t".into(),
                    events,
                    ..ParsedFile::default()
                },
            )
            .await
            .unwrap();
        }
    };
    // Moscow: 10:00 UTC is 13:00 local.
    store(vec![ev(0x2007, 11)], t("2026-11-25T09:00:00Z"), 1).await;
    let clock = Arc::new(ManualClock::new(t("2026-11-25T10:00:00Z")));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail"]));
    assert_eq!(engine.evaluate().await.unwrap().opened, 1);
    let a = &db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(a.kind, AlertKind::CorrectorEvent);
    assert!(
        a.title.contains("аварийный предел давления (0x2007)"),
        "{}",
        a.title
    );
    assert_eq!(
        engine.evaluate().await.unwrap(),
        Default::default(),
        "nothing new without an upload"
    );
    // The next upload brings the clear: resolved, with a notice.
    store(vec![ev(0x0007, 12)], t("2026-11-25T10:05:00Z"), 2).await;
    clock.set(t("2026-11-25T10:06:00Z"));
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.resolved, e.notifications), (1, 1));
}

#[tokio::test]
async fn hours_missing_in_the_last_gas_day_are_an_alert_until_the_unit_sends_them() {
    use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, ParsedFile, Quantities};
    let (_dir, db) = db().await;
    let d = device(&*db, "kotelnaya-5").await;
    // Gas day 2026-11-24 (Moscow, contract hour 10): hour ends 11:00 on the 24th
    // to 10:00 on the 25th; the counter readings from 10:00 on the 24th on.
    let row = |i: i64| {
        let t = jiff::civil::date(2026, 11, 24).at(10, 0, 0, 0) + SignedDuration::from_hours(i);
        ArchiveRecord {
            kind: ArchiveKind::Interval,
            record_no: Some(1000 + i as u64),
            local_time: t,
            utc_offset_seconds: None,
            quantities: Quantities {
                vb: Some(Decimal::from(1000 + 10 * i)),
                ..Quantities::default()
            },
            status: vec!["0".into()],
            event_code: Some(0x8104),
            check: Check::Ok,
            line: 1,
        }
    };
    let full: Vec<ArchiveRecord> = (0..=24).map(row).collect();
    let gappy: Vec<ArchiveRecord> = full
        .iter()
        .filter(|r| r.record_no != Some(1005))
        .cloned()
        .collect();
    let now = t("2026-11-25T08:00:00Z"); // 11:00 in Moscow: the gas day is final
    let first = upload_at(&*db, d, now, 1).await;
    db.store_parsed(
        first,
        d,
        &ParsedFile {
            format: "t".into(),
            records: gappy,
            ..ParsedFile::default()
        },
    )
    .await
    .unwrap();
    let clock = Arc::new(ManualClock::new(now));
    let mut s = settings(&["mail"]);
    s.missing_hours = true;
    let engine = Engine::new(db.clone(), clock.clone(), s);
    assert_eq!(engine.evaluate().await.unwrap().opened, 1);
    let a = &db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(a.kind, AlertKind::MissingHours);
    assert!(
        a.detail.contains("2026-11-24") && a.detail.contains("15:00"),
        "{}",
        a.detail
    );
    // The unit sends the archive again, complete: resolved.
    let again = upload_at(&*db, d, now + SignedDuration::from_mins(5), 2).await;
    db.store_parsed(
        again,
        d,
        &ParsedFile {
            format: "t".into(),
            records: full,
            ..ParsedFile::default()
        },
    )
    .await
    .unwrap();
    clock.set(now + SignedDuration::from_mins(6));
    assert_eq!(engine.evaluate().await.unwrap().resolved, 1);
}

#[tokio::test]
async fn a_transfer_cut_off_and_not_retried_is_an_alert_until_a_complete_one_arrives() {
    let (_dir, db) = db().await;
    let d = device(&*db, "grps-unit").await;
    let at = t("2026-11-25T10:00:00Z");
    hourly(&*db, d, at, 3).await;
    let cut = db
        .begin_upload(&NewUpload {
            device_id: d,
            original_name: FileName::utf8("b.txt"),
            path: "/b.txt".into(),
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: None,
            session: None,
            started_at: at + SignedDuration::from_mins(5),
        })
        .await
        .unwrap();
    db.finish_upload(
        cut,
        &UploadFinish::partial(
            3,
            Sha256Digest([9; 32]),
            &telegaz_domain::PartialReason::ControlConnectionClosed,
            at + SignedDuration::from_mins(6),
        ),
    )
    .await
    .unwrap();
    let clock = Arc::new(ManualClock::new(at + SignedDuration::from_mins(20)));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&[]));
    assert_eq!(
        engine.evaluate().await.unwrap().opened,
        0,
        "a retry may still come"
    );
    clock.set(at + SignedDuration::from_mins(40));
    assert_eq!(engine.evaluate().await.unwrap().opened, 1);
    let a = &db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()[0];
    assert_eq!(
        (a.kind, a.key.starts_with("partial:")),
        (AlertKind::UploadProblem, true)
    );
    upload_at(&*db, d, clock.now(), 77).await;
    assert_eq!(engine.evaluate().await.unwrap().resolved, 1);
}

#[tokio::test]
async fn a_condition_that_flaps_is_not_told_again_and_again() {
    use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, ParsedFile, Quantities};
    let (_dir, db) = db().await;
    let d = device(&*db, "flaky").await;
    let now = t("2026-11-25T10:00:00Z");
    let row = |hour: i8, status: &str| ArchiveRecord {
        kind: ArchiveKind::Interval,
        record_no: Some(100 + hour as u64),
        local_time: jiff::civil::date(2026, 11, 25).at(hour, 0, 0, 0),
        utc_offset_seconds: None,
        quantities: Quantities::default(),
        status: vec![status.into()],
        event_code: Some(0x8104),
        check: Check::Ok,
        line: 1,
    };
    let clock = Arc::new(ManualClock::new(now));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail"]));
    let step = |hour: i8, status: &'static str, byte: u8| {
        let db = db.clone();
        let clock = clock.clone();
        async move {
            clock.advance(SignedDuration::from_mins(5));
            let id = upload_at(&*db, d, clock.now(), byte).await;
            db.store_parsed(
                id,
                d,
                &ParsedFile {
                    format: "t".into(),
                    records: vec![row(hour, status)],
                    ..ParsedFile::default()
                },
            )
            .await
            .unwrap();
        }
    };
    // Alarm: told. Clear: told.
    step(1, "0x2000", 1).await;
    assert_eq!(engine.evaluate().await.unwrap().notifications, 1);
    step(2, "0", 2).await;
    assert_eq!(engine.evaluate().await.unwrap().notifications, 1);
    // The alarm again ten minutes later: it flaps; opened and resolved without a word.
    step(3, "0x2000", 3).await;
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.opened, e.notifications, e.quiet), (1, 0, 1), "{e:?}");
    step(4, "0", 4).await;
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.resolved, e.notifications, e.quiet), (1, 0, 1), "{e:?}");
    // Long after, the same condition is news again.
    clock.advance(SignedDuration::from_hours(2));
    step(5, "0x2000", 5).await;
    let e = engine.evaluate().await.unwrap();
    assert_eq!((e.opened, e.notifications), (1, 1), "{e:?}");
}

#[tokio::test]
async fn a_schedule_set_for_a_unit_wins_over_the_learned_one() {
    let (_dir, db) = db().await;
    let daily = device(&*db, "daily-1").await;
    let hourly_unit = device(&*db, "hourly-1").await;
    let last = t("2026-11-25T10:00:00Z");
    hourly(&*db, daily, last, 4).await;
    hourly(&*db, hourly_unit, last, 4).await;
    let mut s = settings(&[]);
    s.schedules = vec![(
        vec!["daily-*".into()],
        std::time::Duration::from_secs(24 * 3600),
    )];
    let clock = Arc::new(ManualClock::new(t("2026-11-25T12:00:00Z")));
    let engine = Engine::new(db.clone(), clock.clone(), s);
    engine.evaluate().await.unwrap();
    let open: Vec<Option<String>> = db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.device)
        .collect();
    assert_eq!(
        open,
        vec![Some("hourly-1".to_owned())],
        "the daily unit is not late yet"
    );
}

#[tokio::test]
async fn a_failing_database_is_told_directly_and_its_return_too() {
    let (dir, db) = db().await;
    let file = dir.path().join("t.db");
    let sql = |statement: &str| {
        let out = std::process::Command::new("sqlite3")
            .arg(&file)
            .arg(statement)
            .output()
            .expect("the sqlite3 command (apt-get install sqlite3)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let mail = recorder("mail");
    let clock = Arc::new(ManualClock::new(t("2026-11-25T10:00:00Z")));
    let engine = Engine::new(db.clone(), clock.clone(), settings(&["mail"]))
        .with_emergency(vec![mail.clone()]);
    assert_eq!(engine.evaluate_once(0).await, 0);
    // The database breaks (a table goes missing under the server).
    sql("ALTER TABLE alerts RENAME TO alerts_away");
    let mut failures = 0;
    for _ in 0..telegaz_alerts::DATABASE_FAILURES + 2 {
        failures = engine.evaluate_once(failures).await;
    }
    assert_eq!(failures, telegaz_alerts::DATABASE_FAILURES + 2);
    {
        let got = mail.got.lock().unwrap();
        assert_eq!(got.len(), 1, "told once: {got:?}");
        assert_eq!(got[0].event, NotificationEvent::Opened);
        assert_eq!(got[0].kind, AlertKind::ServerHealth);
        assert!(
            got[0].text.contains("alerts"),
            "the error says what: {}",
            got[0].text
        );
    }
    // Repaired: told once more, that it works again.
    sql("ALTER TABLE alerts_away RENAME TO alerts");
    assert_eq!(engine.evaluate_once(failures).await, 0);
    let got = mail.got.lock().unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].event, NotificationEvent::Resolved);
}

#[tokio::test]
async fn each_notifier_sends_at_most_its_rate_and_the_rest_waits_in_order() {
    let (_dir, db) = db().await;
    let now = t("2026-11-25T10:00:00Z");
    for i in 0..25 {
        db.enqueue_notification(&telegaz_store::NewNotification {
            event: NotificationEvent::Opened,
            kind: AlertKind::Limit,
            severity: telegaz_domain::Severity::Warning,
            device: Some(format!("u{i}")),
            title: format!("#{i}"),
            text: String::new(),
            at: now,
            devices: vec![],
            notifiers: vec!["sms-gateway".into()],
        })
        .await
        .unwrap();
    }
    let clock = Arc::new(ManualClock::new(now));
    let gateway = recorder("sms-gateway");
    let mut d = Dispatcher::new(db.clone(), clock.clone(), vec![gateway.clone()]);
    d.max_per_minute = 10;
    assert_eq!(d.deliver_due().await, 10);
    assert_eq!(d.deliver_due().await, 0, "the minute's budget is spent");
    clock.advance(SignedDuration::from_secs(61));
    assert_eq!(d.deliver_due().await, 10);
    clock.advance(SignedDuration::from_secs(61));
    assert_eq!(d.deliver_due().await, 5);
    let titles: Vec<String> = gateway
        .got
        .lock()
        .unwrap()
        .iter()
        .map(|n| n.title.clone())
        .collect();
    let expected: Vec<String> = (0..25).map(|i| format!("#{i}")).collect();
    assert_eq!(titles, expected, "nothing lost, in order");
}
