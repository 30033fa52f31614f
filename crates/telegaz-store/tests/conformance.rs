#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test
//! Behaviour every `Database` backend must show. Each check takes a fresh database.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::str::FromStr;

use telegaz_domain::{
    ArchiveKind, ArchiveRecord, Check, Decimal, IngestState, ParsedFile, Quantities,
};
use telegaz_domain::{
    AuditKind, DeviceName, FileName, NewAuditEvent, NewUpload, Sha256Digest, Timestamp,
    UploadFinish, UploadId, UploadMode, UploadStatus,
};
use telegaz_store::{
    AuditFilter, Database, DeliveryFilter, DeliveryOutcome, DeliveryState, DeviceUpdate, NewDevice,
    ReadingFilter, RecoveredUpload, Renamed, RequeueFilter, StoreError, UploadFilter,
};

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Database>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("t.db").display());
    let db = telegaz_store::connect(&url).await.unwrap();
    (dir, db)
}

fn name(s: &str) -> DeviceName {
    DeviceName::parse(s).unwrap()
}

async fn device(db: &dyn Database, n: &str) -> telegaz_domain::Device {
    db.create_device(NewDevice {
        name: name(n),
        login: name(n),
        password_hash: "$argon2id$x".into(),
        allowed_networks: vec![],
    })
    .await
    .unwrap()
}

fn new_upload(device: telegaz_domain::DeviceId, path: &str) -> NewUpload {
    NewUpload {
        device_id: device,
        original_name: FileName::utf8(path.rsplit('/').next().unwrap()),
        path: path.into(),
        mode: UploadMode::Store,
        resumed_from: None,
        offset: 0,
        peer: Some("127.0.0.1:5000".into()),
        session: Some("s1".into()),
        started_at: Timestamp::now(),
    }
}

fn finish(status: UploadStatus, byte: u8, size: u64) -> UploadFinish {
    UploadFinish {
        status,
        size,
        sha256: Sha256Digest([byte; 32]),
        reason: (status == UploadStatus::Partial).then(|| "aborted".into()),
        finished_at: Timestamp::now(),
    }
}

async fn upload(
    db: &dyn Database,
    dev: telegaz_domain::DeviceId,
    path: &str,
    byte: u8,
) -> UploadId {
    let id = db.begin_upload(&new_upload(dev, path)).await.unwrap();
    db.finish_upload(id, &finish(UploadStatus::Complete, byte, 10))
        .await
        .unwrap();
    id
}

/// One check of the suite: it gets a fresh, empty database.
type SuiteCheck = for<'a> fn(&'a dyn Database) -> Pin<Box<dyn Future<Output = ()> + 'a>>;

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod boxed {
            use super::*;
            $(
                pub fn $name<'a>(db: &'a dyn Database) -> Pin<Box<dyn Future<Output = ()> + 'a>> {
                    Box::pin(super::$name(db))
                }
            )*
        }

        fn checks() -> Vec<(&'static str, SuiteCheck)> {
            vec![$((stringify!($name), boxed::$name as SuiteCheck)),*]
        }
    };
}

/// Runs every check against every backend. The PostgreSQL half needs a
/// server: `TELEGAZ_TEST_POSTGRES_URL` names a database whose user may create
/// databases (each check gets its own, dropped afterwards). Without it, the
/// PostgreSQL half is reported as ignored, never as passed.
fn main() -> std::process::ExitCode {
    let args = libtest_mimic::Arguments::from_args();
    let postgres = std::env::var("TELEGAZ_TEST_POSTGRES_URL")
        .ok()
        .filter(|u| !u.trim().is_empty());
    if postgres.is_none() {
        eprintln!(
            "conformance: the PostgreSQL half is NOT RUN (ignored): set \
             TELEGAZ_TEST_POSTGRES_URL=postgres://USER@HOST:PORT/DB to run it"
        );
    }
    let mut trials = Vec::new();
    for (i, (name, check)) in checks().into_iter().enumerate() {
        trials.push(libtest_mimic::Trial::test(
            format!("sqlite::{name}"),
            move || {
                block_on(async move {
                    let (_dir, db) = sqlite().await;
                    check(&*db).await;
                });
                Ok(())
            },
        ));
        trials.push(postgres_trial(
            format!("postgres::{name}"),
            postgres.clone(),
            i,
            move |url| {
                Box::pin(async move {
                    let db = telegaz_store::connect(&url).await.unwrap();
                    check(&*db).await;
                })
            },
        ));
    }
    let first = trials.len();
    for (i, (name, check)) in postgres_only().into_iter().enumerate() {
        trials.push(postgres_trial(
            format!("postgres::{name}"),
            postgres.clone(),
            first + i,
            check,
        ));
    }
    libtest_mimic::run(&args, trials).exit_code()
}

/// A check that needs the PostgreSQL server: it gets the URL of a fresh
/// database of its own, dropped afterwards even when the check fails.
fn postgres_trial(
    name: String,
    url: Option<String>,
    index: usize,
    check: impl FnOnce(String) -> Pin<Box<dyn Future<Output = ()>>> + Send + 'static,
) -> libtest_mimic::Trial {
    let ignored = url.is_none();
    libtest_mimic::Trial::test(name, move || {
        let Some(url) = url else {
            return Err("TELEGAZ_TEST_POSTGRES_URL is not set".into());
        };
        let mut scratch = None;
        block_on(async {
            scratch = Some(PgScratch::create(&url, index).await);
        });
        let scratch = scratch.unwrap();
        let db_url = scratch.url.clone();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            block_on(check(db_url));
        }));
        block_on(scratch.drop_database());
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
        Ok(())
    })
    .with_ignored_flag(ignored)
}

fn block_on<F: Future<Output = ()>>(f: F) {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f);
}

/// A database of its own for one check on the PostgreSQL server.
struct PgScratch {
    admin_url: String,
    name: String,
    url: String,
}

impl PgScratch {
    async fn create(admin_url: &str, index: usize) -> PgScratch {
        use sqlx::Connection;
        let name = format!("telegaz_conformance_{}_{index}", std::process::id());
        let mut admin = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to TELEGAZ_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap();
        PgScratch {
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    async fn drop_database(self) {
        use sqlx::Connection;
        let mut admin = sqlx::PgConnection::connect(&self.admin_url).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

/// The same URL naming another database.
fn with_database(url: &str, database: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let authority = rest.split('/').next().unwrap();
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

conformance!(
    devices_are_unique_and_updatable,
    upload_lifecycle_and_duplicates,
    partial_uploads_are_never_duplicates,
    transcoded_names_keep_their_bytes,
    namespace_files_and_directories,
    rename_file_records_final_name_and_keeps_replaced,
    rename_directory_moves_everything_below,
    delete_hides_name_but_keeps_upload,
    recovered_files_are_recorded,
    audit_is_filtered_by_time_device_and_kind,
    upload_filters,
    complete_uploads_are_queued_for_ingest,
    concurrent_ingest_claims_give_an_upload_to_one_worker,
    an_expired_ingest_claim_is_taken_up_again,
    a_finished_upload_is_never_claimable,
    groups_claim_only_untried_uploads_and_store_all_or_nothing,
    parsed_records_are_idempotent_and_conflicts_kept,
    ingest_outcomes_and_requeue,
    large_files_with_repeats_inside_and_across_uploads,
    events_are_stored_once_and_read_back,
    deliveries_are_recorded_once_and_claimed_when_due,
    delivery_outcomes_retry_fail_and_send,
    deliveries_are_listed_newest_first,
    users_sessions_and_roles,
    api_tokens_are_found_by_hash_and_revocable,
    device_activity_summarises_the_fleet,
    audit_pages_newest_first_and_filters_by_login,
    a_large_audit_batch_is_stored_whole_and_in_order,
    alerts_open_once_per_condition_and_resolve_with_a_notice,
    notifications_are_sent_once_per_notifier_and_retried,
    readings_far_in_the_past_and_future_are_kept,
    concurrent_ingest_of_overlapping_files_counts_each_row_once,
    concurrent_identical_uploads_find_each_other,
    concurrent_claims_give_a_delivery_to_one_caller,
    concurrent_dispatchers_take_each_notification_once,
    concurrent_openers_open_one_alert,
    rename_directory_with_non_ascii_names,
    // --- bans (abuse resistance) ---
    bans_refuse_their_scope_until_lifted_or_expired,
    // --- end bans ---
    // storebench (issue #4): receiver ownership of transfers.
    interrupted_uploads_are_a_receivers_own,
);

fn notice(
    event: telegaz_domain::NotificationEvent,
    notifiers: &[&str],
) -> telegaz_store::NewNotification {
    telegaz_store::NewNotification {
        event,
        kind: telegaz_domain::AlertKind::Silent,
        severity: telegaz_domain::Severity::Warning,
        device: Some("unit-1".into()),
        title: "Узел unit-1 молчит".into(),
        text: "Нет связи".into(),
        at: at("2026-11-25T10:00:00Z"),
        devices: vec![],
        notifiers: notifiers.iter().map(|s| (*s).to_owned()).collect(),
    }
}

async fn alerts_open_once_per_condition_and_resolve_with_a_notice(db: &dyn Database) {
    use telegaz_domain::{AlertKind, AlertState, NotificationEvent, Severity};
    use telegaz_store::{AlertFilter, NewAlert};
    let d = device(db, "unit-1").await;
    let new = NewAlert {
        key: format!("silent:{}", d.id),
        kind: AlertKind::Silent,
        severity: Severity::Warning,
        device_id: Some(d.id),
        title: "Узел unit-1 молчит".into(),
        detail: "<b>нет связи</b>".into(),
        opened_at: at("2026-11-25T10:00:00Z"),
    };
    let first = db
        .open_alert(&new, Some(&notice(NotificationEvent::Opened, &["mail"])))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.state, AlertState::Open);
    assert_eq!(first.device.as_deref(), Some("unit-1"));
    assert!(
        db.open_alert(&new, Some(&notice(NotificationEvent::Opened, &["mail"])))
            .await
            .unwrap()
            .is_none(),
        "the same condition opens no second alert"
    );
    assert_eq!(
        db.due_notifications("mail", at("2026-11-25T10:00:00Z"), 10)
            .await
            .unwrap()
            .len(),
        1,
        "and queues no second notification"
    );
    let acked = db
        .acknowledge_alert(first.id, "иванов", at("2026-11-25T10:05:00Z"))
        .await
        .unwrap();
    assert_eq!(acked.state, AlertState::Acknowledged);
    assert_eq!(acked.acknowledged_by.as_deref(), Some("иванов"));
    let active = db
        .list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(active.len(), 1);
    let resolved = db
        .resolve_alert(
            first.id,
            at("2026-11-25T11:00:00Z"),
            Some(&notice(NotificationEvent::Resolved, &["mail"])),
        )
        .await
        .unwrap();
    assert_eq!(resolved.state, AlertState::Resolved);
    assert_eq!(resolved.resolved_at, Some(at("2026-11-25T11:00:00Z")));
    // Resolving again changes nothing and queues no second notice.
    db.resolve_alert(
        first.id,
        at("2026-11-25T12:00:00Z"),
        Some(&notice(NotificationEvent::Resolved, &["mail"])),
    )
    .await
    .unwrap();
    let due = db
        .due_notifications("mail", at("2026-11-25T13:00:00Z"), 10)
        .await
        .unwrap();
    assert_eq!(due.len(), 2, "one opened, one resolved: {due:?}");
    assert_eq!(due[1].event, NotificationEvent::Resolved);
    assert_eq!(due[1].alert_id, Some(first.id));
    assert!(
        db.acknowledge_alert(first.id, "x", at("2026-11-25T13:00:00Z"))
            .await
            .is_err()
    );
    // Its history: when it was last resolved (for telling a flapping condition).
    assert_eq!(
        db.last_resolved_before(&new.key, at("2026-11-25T13:00:00Z"))
            .await
            .unwrap(),
        Some(at("2026-11-25T11:00:00Z"))
    );
    assert_eq!(
        db.last_resolved_before(&new.key, at("2026-11-25T10:30:00Z"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.last_resolved_before("other", at("2026-11-25T13:00:00Z"))
            .await
            .unwrap(),
        None
    );
    // After it is over, the same condition opens a new alert.
    let again = db.open_alert(&new, None).await.unwrap().unwrap();
    assert_ne!(again.id, first.id);
    assert!(
        db.list_alerts(&AlertFilter {
            active: true,
            ..AlertFilter::default()
        })
        .await
        .unwrap()
        .iter()
        .all(|a| a.id == again.id)
    );
    assert_eq!(
        db.list_alerts(&AlertFilter::default()).await.unwrap().len(),
        2
    );
}

async fn notifications_are_sent_once_per_notifier_and_retried(db: &dyn Database) {
    use telegaz_domain::NotificationEvent;
    use telegaz_store::SendOutcome;
    let mut digest = notice(NotificationEvent::Digest, &["mail", "mqtt"]);
    digest.devices = vec!["a".into(), "b".into()];
    let id = db.enqueue_notification(&digest).await.unwrap();
    let now = at("2026-11-25T10:00:00Z");
    let mail = db.due_notifications("mail", now, 10).await.unwrap();
    assert_eq!(mail.len(), 1);
    assert_eq!(mail[0].id, id);
    assert_eq!(mail[0].devices, vec!["a", "b"]);
    db.finish_notification(id, "mail", &SendOutcome::Sent, now)
        .await
        .unwrap();
    assert!(
        db.due_notifications("mail", now, 10)
            .await
            .unwrap()
            .is_empty(),
        "sent once"
    );
    let retry_at = at("2026-11-25T10:05:00Z");
    db.finish_notification(
        id,
        "mqtt",
        &SendOutcome::Retry {
            error: "broker down".into(),
            at: retry_at,
        },
        now,
    )
    .await
    .unwrap();
    assert!(
        db.due_notifications("mqtt", now, 10)
            .await
            .unwrap()
            .is_empty(),
        "not before its time"
    );
    assert_eq!(
        db.due_notifications("mqtt", retry_at, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    db.finish_notification(
        id,
        "mqtt",
        &SendOutcome::Failed {
            error: "gave up".into(),
        },
        retry_at,
    )
    .await
    .unwrap();
    assert!(
        db.due_notifications("mqtt", at("2026-11-26T00:00:00Z"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let sends = db.notification_sends(10).await.unwrap();
    let mqtt = sends.iter().find(|s| s.notifier == "mqtt").unwrap();
    assert_eq!((mqtt.state.as_str(), mqtt.attempts), ("failed", 2));
    assert_eq!(mqtt.last_error.as_deref(), Some("gave up"));
    let mail = sends.iter().find(|s| s.notifier == "mail").unwrap();
    assert_eq!(mail.sent_at, Some(now));
    assert!(
        db.finish_notification(999, "mail", &SendOutcome::Sent, now)
            .await
            .is_err()
    );
    // The ingest backlog: what waits, and since when.
    let (n, oldest) = db.ingest_backlog().await.unwrap();
    assert_eq!((n, oldest), (0, None));
    let d0 = device(db, "unit-b").await;
    upload(db, d0.id, "/q", 9).await;
    let (n, oldest) = db.ingest_backlog().await.unwrap();
    assert_eq!(n, 1);
    assert!(oldest.is_some());
    // Upload times, newest first, per enabled device, at most as many as asked.
    let d = device(db, "unit-t").await;
    upload(db, d.id, "/1", 1).await;
    upload(db, d.id, "/2", 2).await;
    let times = db.recent_upload_times(5).await.unwrap();
    let mine = &times.iter().find(|(id, _)| *id == d.id).unwrap().1;
    assert_eq!(mine.len(), 2);
    assert!(mine[0] >= mine[1]);
    let many = device(db, "unit-many").await;
    let mut started = Vec::new();
    for i in 0..7 {
        let id = upload(db, many.id, &format!("/m{i}"), 1).await;
        started.push(db.upload(id).await.unwrap().unwrap().started_at);
    }
    let quiet = device(db, "unit-quiet").await;
    let off = device(db, "unit-off").await;
    upload(db, off.id, "/x", 1).await;
    db.update_device(
        off.id,
        DeviceUpdate {
            enabled: Some(false),
            ..DeviceUpdate::default()
        },
    )
    .await
    .unwrap();
    let times = db.recent_upload_times(5).await.unwrap();
    let of = |id| times.iter().find(|(d, _)| *d == id).map(|(_, t)| t.clone());
    let newest: Vec<_> = started.iter().rev().take(5).copied().collect();
    assert_eq!(of(many.id), Some(newest), "the five newest, newest first");
    assert_eq!(
        of(quiet.id),
        Some(vec![]),
        "a unit without uploads is listed"
    );
    assert_eq!(of(off.id), None, "a disabled unit is not");
    assert_eq!(of(d.id).map(|t| t.len()), Some(2));
    let ids: Vec<_> = times.iter().map(|(d, _)| *d).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(ids, sorted, "one entry a unit, in id order");
}

async fn users_sessions_and_roles(db: &dyn Database) {
    use telegaz_domain::{Role, UserName};
    use telegaz_store::{NewSession, NewUser, UserUpdate};
    let u = db
        .create_user(NewUser {
            name: UserName::parse("иванов").unwrap(),
            password_hash: "$argon2id$h".into(),
            role: Role::Operator,
        })
        .await
        .unwrap();
    assert_eq!(u.role, Role::Operator);
    assert!(u.enabled);
    let again = db
        .create_user(NewUser {
            name: UserName::parse("иванов").unwrap(),
            password_hash: "x".into(),
            role: Role::Viewer,
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(db.user_by_name("иванов").await.unwrap().unwrap().id, u.id);
    assert!(db.user_by_name("петров").await.unwrap().is_none());

    let now = at("2026-11-25T10:00:00Z");
    let session = |hash: &str, expires: &str| NewSession {
        token_sha256: hash.into(),
        user_id: u.id,
        csrf_token: format!("csrf-{hash}"),
        created_at: now,
        expires_at: at(expires),
    };
    db.create_session(session("aa", "2026-11-25T18:00:00Z"))
        .await
        .unwrap();
    db.create_session(session("bb", "2026-11-25T10:30:00Z"))
        .await
        .unwrap();
    let s = db.session("aa", now).await.unwrap().unwrap();
    assert_eq!(s.user.id, u.id);
    assert_eq!(s.csrf_token, "csrf-aa");
    assert!(
        db.session("zz", now).await.unwrap().is_none(),
        "unknown token"
    );
    assert!(
        db.session("bb", at("2026-11-25T11:00:00Z"))
            .await
            .unwrap()
            .is_none(),
        "expired session"
    );
    db.delete_session("aa").await.unwrap();
    assert!(db.session("aa", now).await.unwrap().is_none(), "signed out");

    // A new role ends the sessions; so does disabling, which also keeps the user out.
    db.create_session(session("cc", "2026-11-25T18:00:00Z"))
        .await
        .unwrap();
    let u2 = db
        .update_user(
            u.id,
            UserUpdate {
                role: Some(Role::Viewer),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u2.role, Role::Viewer);
    assert!(
        db.session("cc", now).await.unwrap().is_none(),
        "role change ends sessions"
    );
    db.create_session(session("dd", "2026-11-25T18:00:00Z"))
        .await
        .unwrap();
    let u3 = db
        .update_user(
            u.id,
            UserUpdate {
                enabled: Some(false),
                ..UserUpdate::default()
            },
        )
        .await
        .unwrap();
    assert!(!u3.enabled);
    assert!(db.session("dd", now).await.unwrap().is_none());
    let missing = db
        .update_user(telegaz_domain::UserId(999), UserUpdate::default())
        .await;
    assert!(
        matches!(missing, Err(StoreError::NotFound { .. })),
        "{missing:?}"
    );
    assert_eq!(db.list_users().await.unwrap().len(), 1);
}

async fn api_tokens_are_found_by_hash_and_revocable(db: &dyn Database) {
    use telegaz_domain::{Role, UserName};
    use telegaz_store::{NewUser, UserUpdate};
    let u = db
        .create_user(NewUser {
            name: UserName::parse("script").unwrap(),
            password_hash: "h".into(),
            role: Role::Viewer,
        })
        .await
        .unwrap();
    let t = db.create_api_token(u.id, "export", "t1hash").await.unwrap();
    assert_eq!(t.name, "export");
    assert!(t.last_used_at.is_none());
    let now = at("2026-11-25T10:00:00Z");
    assert_eq!(
        db.user_by_api_token("t1hash", now)
            .await
            .unwrap()
            .unwrap()
            .id,
        u.id
    );
    assert!(db.user_by_api_token("other", now).await.unwrap().is_none());
    let listed = db.list_api_tokens(u.id).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].last_used_at, Some(now), "use is recorded");
    db.revoke_api_token(u.id, t.id).await.unwrap();
    assert!(
        db.user_by_api_token("t1hash", now).await.unwrap().is_none(),
        "revoked"
    );
    assert!(
        db.revoke_api_token(u.id, t.id).await.is_err(),
        "revoked twice"
    );
    // Disabling a user revokes their tokens.
    db.create_api_token(u.id, "second", "t2hash").await.unwrap();
    db.update_user(
        u.id,
        UserUpdate {
            enabled: Some(false),
            ..UserUpdate::default()
        },
    )
    .await
    .unwrap();
    assert!(db.user_by_api_token("t2hash", now).await.unwrap().is_none());
    db.update_user(
        u.id,
        UserUpdate {
            enabled: Some(true),
            ..UserUpdate::default()
        },
    )
    .await
    .unwrap();
    assert!(
        db.user_by_api_token("t2hash", now).await.unwrap().is_none(),
        "re-enabling does not bring revoked tokens back"
    );
}

async fn device_activity_summarises_the_fleet(db: &dyn Database) {
    let a = device(db, "unit-a").await;
    let b = device(db, "unit-b").await;
    let quiet = device(db, "unit-quiet").await;
    let first = upload(db, a.id, "/1.txt", 1).await;
    let second = upload(db, a.id, "/2.txt", 2).await;
    let bu = upload(db, b.id, "/b.txt", 3).await;
    let mut alarm = reading(11, "100.5");
    alarm.status = vec!["0".into(), "0x2000".into()];
    db.store_parsed(first, a.id, &parsed(vec![reading(10, "100"), alarm]))
        .await
        .unwrap();
    db.store_parsed(second, a.id, &parsed(vec![reading(9, "99")]))
        .await
        .unwrap();
    db.finish_ingest(bu, IngestState::Quarantined, "no parser")
        .await
        .unwrap();
    let mut login = NewAuditEvent::new(AuditKind::LoginSucceeded, "ok");
    login.device_id = Some(quiet.id);
    login.at = at("2026-11-20T08:00:00Z");
    db.insert_audit(&[login]).await.unwrap();

    let all = db.device_activity(None).await.unwrap();
    assert_eq!(all.len(), 3);
    let of = |id| all.iter().find(|x| x.device_id == id).unwrap();
    let second_upload = db.upload(second).await.unwrap().unwrap();
    assert_eq!(
        of(a.id).last_upload_at,
        Some(second_upload.started_at),
        "newest upload"
    );
    assert_eq!(
        of(a.id).newest_reading.map(|t| t.to_string()),
        Some("2026-01-14T11:00:00".into()),
        "newest hour, though it arrived first"
    );
    assert_eq!(of(a.id).newest_status, vec!["0", "0x2000"]);
    assert_eq!(of(a.id).problem_uploads, 0);
    assert!(!of(a.id).last_upload_partial);
    assert_eq!(of(b.id).problem_uploads, 1);
    assert!(!of(b.id).last_upload_partial);
    assert!(of(b.id).newest_reading.is_none());
    assert_eq!(of(quiet.id).last_upload_at, None);
    assert_eq!(
        of(quiet.id).last_contact(),
        Some(at("2026-11-20T08:00:00Z")),
        "a login is contact"
    );
}

/// More events than one statement of the SQLite backend takes (64), and
/// not a multiple of it: every event, every field, in the given order.
async fn a_large_audit_batch_is_stored_whole_and_in_order(db: &dyn Database) {
    let d = device(db, "unit-audit").await;
    let kinds = [
        AuditKind::LoginFailed,
        AuditKind::UploadStarted,
        AuditKind::UploadFinished,
    ];
    let events: Vec<NewAuditEvent> = (0..150)
        .map(|i| {
            let mut e = NewAuditEvent::new(kinds[i % 3], format!("outcome {i}"));
            e.at = at(&format!("2026-11-25T{:02}:{:02}:00Z", 10 + i / 60, i % 60));
            e.session = (i % 2 == 0).then(|| format!("s{i}"));
            e.peer = Some(format!("198.51.100.{}:{}", i % 250, 40000 + i));
            e.device_id = (i % 5 != 0).then_some(d.id);
            e.login = Some(format!("login-{i}"));
            e.detail = format!("detail {i}: «кириллица»");
            e
        })
        .collect();
    db.insert_audit(&events).await.unwrap();
    let stored = db
        .list_audit(&AuditFilter {
            limit: Some(1000),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), events.len());
    let mut stored = stored;
    stored.sort_by_key(|e| e.id);
    for (i, (e, s)) in events.iter().zip(&stored).enumerate() {
        assert_eq!(s.at, e.at, "event {i}");
        assert_eq!(s.kind, e.kind, "event {i}");
        assert_eq!(s.session, e.session, "event {i}");
        assert_eq!(s.peer, e.peer, "event {i}");
        assert_eq!(s.device_id, e.device_id, "event {i}");
        assert_eq!(s.login, e.login, "event {i}");
        assert_eq!(s.outcome, e.outcome, "event {i}");
        assert_eq!(s.detail, e.detail, "event {i}");
    }
}

async fn audit_pages_newest_first_and_filters_by_login(db: &dyn Database) {
    let mut events = Vec::new();
    for (i, login) in ["a", "b", "a", "a"].iter().enumerate() {
        let mut e = NewAuditEvent::new(AuditKind::LoginFailed, "bad password");
        e.login = Some((*login).into());
        e.at = at(&format!("2026-11-25T10:0{i}:00Z"));
        events.push(e);
    }
    db.insert_audit(&events).await.unwrap();
    let page = db
        .list_audit(&AuditFilter {
            login: Some("a".into()),
            newest_first: true,
            limit: Some(2),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(page.len(), 2);
    assert_eq!(page[0].at, at("2026-11-25T10:03:00Z"));
    assert_eq!(page[1].at, at("2026-11-25T10:02:00Z"));
    let next = db
        .list_audit(&AuditFilter {
            login: Some("a".into()),
            newest_first: true,
            before_id: Some(page[1].id),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].at, at("2026-11-25T10:00:00Z"));
    let until = db
        .list_audit(&AuditFilter {
            until: Some(at("2026-11-25T10:01:00Z")),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(until.len(), 1, "until is exclusive");
}

async fn devices_are_unique_and_updatable(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    assert!(d.enabled);
    let again = db
        .create_device(NewDevice {
            name: name("unit-1"),
            login: name("other"),
            password_hash: "h".into(),
            allowed_networks: vec![],
        })
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    let login_clash = db
        .create_device(NewDevice {
            name: name("unit-2"),
            login: name("unit-1"),
            password_hash: "h".into(),
            allowed_networks: vec![],
        })
        .await;
    assert!(matches!(login_clash, Err(StoreError::Conflict(_))));

    let updated = db
        .update_device(
            d.id,
            DeviceUpdate {
                password_hash: Some("new".into()),
                enabled: Some(false),
                allowed_networks: Some(vec!["10.0.0.0/8".into(), "192.0.2.1/32".into()]),
                time_zone: Some("Asia/Yekaterinburg".into()),
                contract_hour: Some(6),
                title: Some("Котельная <№3> & \"склад\"".into()),
                tls_required: Some(true),
            },
        )
        .await
        .unwrap();
    assert!(!updated.enabled);
    assert_eq!(updated.password_hash, "new");
    assert_eq!(updated.allowed_networks, vec!["10.0.0.0/8", "192.0.2.1/32"]);
    assert_eq!(updated.time_zone, "Asia/Yekaterinburg");
    assert_eq!(updated.contract_hour, 6);
    assert_eq!(
        updated.title, "Котельная <№3> & \"склад\"",
        "titles are kept as typed"
    );
    assert!(updated.tls_required);
    assert!(!d.tls_required, "TLS is not required by default");
    let untouched = db
        .update_device(d.id, DeviceUpdate::default())
        .await
        .unwrap();
    assert!(untouched.tls_required, "an update without it leaves it");
    assert_eq!(d.title, "", "no title by default");
    assert_eq!(d.time_zone, "Europe/Moscow", "default time zone");
    assert_eq!(d.contract_hour, 10, "default contract hour");
    assert_eq!(
        db.device_by_login("unit-1").await.unwrap().unwrap().id,
        d.id
    );
    assert!(db.device_by_name("nope").await.unwrap().is_none());
    assert_eq!(db.list_devices().await.unwrap().len(), 1);
}

async fn upload_lifecycle_and_duplicates(db: &dyn Database) {
    let d = device(db, "u").await;
    let other = device(db, "v").await;
    let id = db.begin_upload(&new_upload(d.id, "/a.txt")).await.unwrap();
    let rec = db.upload(id).await.unwrap().unwrap();
    assert_eq!(rec.status, UploadStatus::Receiving);
    assert_eq!(rec.device.as_deref(), Some("u"));
    assert!(rec.sha256.is_none());
    assert!(
        db.ns_file(d.id, "/a.txt").await.unwrap().is_none(),
        "not visible while receiving"
    );

    let f = db
        .finish_upload(id, &finish(UploadStatus::Complete, 1, 10))
        .await
        .unwrap();
    assert_eq!(f.duplicate_of, None);
    let rec = db.upload(id).await.unwrap().unwrap();
    assert_eq!(rec.status, UploadStatus::Complete);
    assert_eq!(rec.size, 10);
    assert_eq!(rec.sha256, Some(Sha256Digest([1; 32])));
    assert!(rec.received_at.is_some());
    let file = db.ns_file(d.id, "/a.txt").await.unwrap().unwrap();
    assert_eq!(file.upload_id, id);

    // The same content again from the same device: a duplicate of the first.
    let id2 = db.begin_upload(&new_upload(d.id, "/b.txt")).await.unwrap();
    let f2 = db
        .finish_upload(id2, &finish(UploadStatus::Complete, 1, 10))
        .await
        .unwrap();
    assert_eq!(f2.duplicate_of, Some(id));
    assert_eq!(
        db.upload(id2).await.unwrap().unwrap().duplicate_of,
        Some(id)
    );

    // Same content from another device is its own upload.
    let id3 = db
        .begin_upload(&new_upload(other.id, "/a.txt"))
        .await
        .unwrap();
    let f3 = db
        .finish_upload(id3, &finish(UploadStatus::Complete, 1, 10))
        .await
        .unwrap();
    assert_eq!(f3.duplicate_of, None);

    let missing = db
        .finish_upload(UploadId(9999), &finish(UploadStatus::Complete, 1, 1))
        .await;
    assert!(matches!(missing, Err(StoreError::NotFound { .. })));
}

async fn partial_uploads_are_never_duplicates(db: &dyn Database) {
    let d = device(db, "u").await;
    let first = upload(db, d.id, "/a", 5).await;
    let id = db.begin_upload(&new_upload(d.id, "/a")).await.unwrap();
    let f = db
        .finish_upload(id, &finish(UploadStatus::Partial, 5, 10))
        .await
        .unwrap();
    assert_eq!(f.duplicate_of, None);
    let rec = db.upload(id).await.unwrap().unwrap();
    assert_eq!(rec.status, UploadStatus::Partial);
    assert_eq!(rec.reason.as_deref(), Some("aborted"));
    // The name now shows the partial upload (so that a client can resume it),
    // and the earlier complete upload is still recorded.
    assert_eq!(db.ns_file(d.id, "/a").await.unwrap().unwrap().upload_id, id);
    assert_eq!(
        db.upload(first).await.unwrap().unwrap().status,
        UploadStatus::Complete
    );
}

async fn transcoded_names_keep_their_bytes(db: &dyn Database) {
    let d = device(db, "u").await;
    let mut u = new_upload(d.id, "/\u{43e}\u{442}\u{447}\u{435}\u{442}.txt");
    u.original_name = FileName {
        display: "\u{43e}\u{442}\u{447}\u{435}\u{442}.txt".into(),
        raw: vec![0xee, 0xf2, 0xf7, 0xe5, 0xf2, b'.', b't', b'x', b't'],
    };
    let id = db.begin_upload(&u).await.unwrap();
    let rec = db.upload(id).await.unwrap().unwrap();
    assert_eq!(rec.original_name, "отчет.txt");
    assert_eq!(rec.original_name_hex.as_deref(), Some("eef2f7e5f22e747874"));
    let plain = db.begin_upload(&new_upload(d.id, "/x.txt")).await.unwrap();
    assert_eq!(
        db.upload(plain).await.unwrap().unwrap().original_name_hex,
        None
    );
}

async fn namespace_files_and_directories(db: &dyn Database) {
    let d = device(db, "u").await;
    assert!(db.ns_dir_exists(d.id, "/").await.unwrap());
    assert!(!db.ns_dir_exists(d.id, "/arch").await.unwrap());
    db.ns_mkdir(d.id, "/arch").await.unwrap();
    assert!(matches!(
        db.ns_mkdir(d.id, "/arch").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.ns_mkdir(d.id, "/no/such").await,
        Err(StoreError::NotFound { .. })
    ));
    db.ns_mkdir(d.id, "/arch/2026").await.unwrap();
    let id = upload(db, d.id, "/arch/2026/h.txt", 2).await;
    let root = db.ns_list(d.id, "/").await.unwrap();
    assert_eq!(root.dirs.len(), 1);
    assert_eq!(root.dirs[0].path, "/arch");
    assert!(root.files.is_empty());
    let inner = db.ns_list(d.id, "/arch/2026").await.unwrap();
    assert_eq!(inner.files.len(), 1);
    assert_eq!(inner.files[0].path, "/arch/2026/h.txt");
    assert_eq!(inner.files[0].upload_id, id);
    assert_eq!(inner.files[0].size, 10);
    assert!(matches!(
        db.ns_rmdir(d.id, "/arch").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        db.ns_mkdir(d.id, "/arch/2026/h.txt").await,
        Err(StoreError::Conflict(_))
    ));
    // A file uploaded into a directory that vanished meanwhile recreates it.
    let other = device(db, "w").await;
    upload(db, other.id, "/deep/er/f", 3).await;
    assert!(db.ns_dir_exists(other.id, "/deep/er").await.unwrap());
    // Devices do not see each other's names.
    assert!(
        db.ns_list(other.id, "/arch")
            .await
            .unwrap()
            .files
            .is_empty()
    );
    assert!(
        db.ns_file(other.id, "/arch/2026/h.txt")
            .await
            .unwrap()
            .is_none()
    );
    db.ns_mkdir(d.id, "/empty").await.unwrap();
    db.ns_rmdir(d.id, "/empty").await.unwrap();
    assert!(!db.ns_dir_exists(d.id, "/empty").await.unwrap());
}

async fn rename_file_records_final_name_and_keeps_replaced(db: &dyn Database) {
    let d = device(db, "u").await;
    let old = upload(db, d.id, "/data.txt", 1).await;
    let tmp = upload(db, d.id, "/data.tmp", 2).await;
    let r = db.ns_rename(d.id, "/data.tmp", "/data.txt").await.unwrap();
    assert_eq!(
        r,
        Renamed::File {
            upload_id: tmp,
            replaced: Some(old)
        }
    );
    assert!(db.ns_file(d.id, "/data.tmp").await.unwrap().is_none());
    assert_eq!(
        db.ns_file(d.id, "/data.txt")
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        tmp
    );
    let rec = db.upload(tmp).await.unwrap().unwrap();
    assert_eq!(rec.path, "/data.tmp");
    assert_eq!(rec.final_path, "/data.txt");
    // The replaced upload is still there, bytes and all.
    assert_eq!(
        db.upload(old).await.unwrap().unwrap().status,
        UploadStatus::Complete
    );
    assert!(matches!(
        db.ns_rename(d.id, "/missing", "/x").await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(matches!(
        db.ns_rename(d.id, "/data.txt", "/nodir/x").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn rename_directory_moves_everything_below(db: &dyn Database) {
    let d = device(db, "u").await;
    db.ns_mkdir(d.id, "/in").await.unwrap();
    db.ns_mkdir(d.id, "/in/sub").await.unwrap();
    let a = upload(db, d.id, "/in/a", 1).await;
    let b = upload(db, d.id, "/in/sub/b", 2).await;
    // A sibling with a common prefix must not move.
    db.ns_mkdir(d.id, "/inbox").await.unwrap();
    let c = upload(db, d.id, "/inbox/c", 3).await;
    let r = db.ns_rename(d.id, "/in", "/done").await.unwrap();
    assert_eq!(r, Renamed::Dir { files: 2 });
    assert_eq!(
        db.ns_file(d.id, "/done/a")
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        a
    );
    assert_eq!(
        db.ns_file(d.id, "/done/sub/b")
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        b
    );
    assert_eq!(
        db.ns_file(d.id, "/inbox/c")
            .await
            .unwrap()
            .unwrap()
            .upload_id,
        c
    );
    assert!(db.ns_dir_exists(d.id, "/done/sub").await.unwrap());
    assert!(!db.ns_dir_exists(d.id, "/in").await.unwrap());
    assert_eq!(
        db.upload(b).await.unwrap().unwrap().final_path,
        "/done/sub/b"
    );
    assert_eq!(db.upload(c).await.unwrap().unwrap().final_path, "/inbox/c");
    assert!(matches!(
        db.ns_rename(d.id, "/done", "/done/sub/x").await,
        Err(StoreError::Conflict(_))
    ));
}

async fn delete_hides_name_but_keeps_upload(db: &dyn Database) {
    let d = device(db, "u").await;
    let id = upload(db, d.id, "/a", 1).await;
    assert_eq!(db.ns_delete(d.id, "/a").await.unwrap(), id);
    assert!(db.ns_file(d.id, "/a").await.unwrap().is_none());
    let rec = db.upload(id).await.unwrap().unwrap();
    assert_eq!(rec.status, UploadStatus::Complete);
    assert!(rec.deleted_by_device);
    assert!(matches!(
        db.ns_delete(d.id, "/a").await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn recovered_files_are_recorded(db: &dyn Database) {
    let d = device(db, "u").await;
    let first = upload(db, d.id, "/a", 9).await;
    let id = db
        .record_recovered(&RecoveredUpload {
            device_id: None,
            found_as: "objects/09/0909".into(),
            sha256: Sha256Digest([9; 32]),
            size: 10,
            found_at: Timestamp::now(),
        })
        .await
        .unwrap();
    let rec = db.upload(id).await.unwrap().unwrap();
    assert_eq!(rec.status, UploadStatus::Recovered);
    assert_eq!(rec.device, None);
    assert_eq!(rec.duplicate_of, Some(first));
    let digests = db.referenced_digests().await.unwrap();
    assert_eq!(digests, vec![Sha256Digest([9; 32])]);
    assert_eq!(
        db.uploads_by_digest(&Sha256Digest([9; 32])).await.unwrap(),
        vec![first, id]
    );
    assert!(
        db.uploads_by_digest(&Sha256Digest([7; 32]))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn audit_is_filtered_by_time_device_and_kind(db: &dyn Database) {
    let d = device(db, "u").await;
    let t0: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    let t1: Timestamp = "2026-01-02T00:00:00Z".parse().unwrap();
    let mut a = NewAuditEvent::new(AuditKind::Connect, "ok");
    a.at = t0;
    a.peer = Some("192.0.2.1:4000".into());
    let mut b = NewAuditEvent::new(AuditKind::LoginFailed, "bad_password");
    b.at = t1;
    b.login = Some("u".into());
    b.device_id = Some(d.id);
    db.insert_audit(&[a, b]).await.unwrap();
    let all = db.list_audit(&AuditFilter::default()).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].kind, AuditKind::Connect);
    assert_eq!(all[1].device.as_deref(), Some("u"));
    let since = db
        .list_audit(&AuditFilter {
            since: Some(t1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(since.len(), 1);
    assert_eq!(since[0].outcome, "bad_password");
    let by_kind = db
        .list_audit(&AuditFilter {
            kind: Some(AuditKind::Connect),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_kind.len(), 1);
    let by_device = db
        .list_audit(&AuditFilter {
            device_id: Some(d.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_device.len(), 1);
}

async fn upload_filters(db: &dyn Database) {
    let d = device(db, "u").await;
    let e = device(db, "e").await;
    let a = upload(db, d.id, "/a", 1).await;
    let b = upload(db, e.id, "/b", 2).await;
    let c = db.begin_upload(&new_upload(d.id, "/c")).await.unwrap();
    let all = db.list_uploads(&UploadFilter::default()).await.unwrap();
    assert_eq!(all.iter().map(|u| u.id).collect::<Vec<_>>(), vec![c, b, a]);
    let mine = db
        .list_uploads(&UploadFilter {
            device_id: Some(d.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(mine.len(), 2);
    let receiving = db
        .list_uploads(&UploadFilter {
            status: Some(UploadStatus::Receiving),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(receiving.iter().map(|u| u.id).collect::<Vec<_>>(), vec![c]);
    let page = db
        .list_uploads(&UploadFilter {
            before_id: Some(c),
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.iter().map(|u| u.id).collect::<Vec<_>>(), vec![b]);
}

fn reading(hour: i8, vb: &str) -> ArchiveRecord {
    ArchiveRecord {
        kind: ArchiveKind::Interval,
        record_no: Some(1000 + hour as u64),
        local_time: jiff::civil::date(2026, 1, 14).at(hour, 0, 0, 0),
        utc_offset_seconds: None,
        quantities: Quantities {
            vb: Some(Decimal::from_str(vb).unwrap()),
            p_kpa: Some(Decimal::from_str("104.5110").unwrap()),
            ..Quantities::default()
        },
        status: vec!["0".into()],
        event_code: Some(0x8104),
        check: Check::Ok,
        line: u32::try_from(hour).unwrap(),
    }
}

fn parsed(records: Vec<ArchiveRecord>) -> ParsedFile {
    ParsedFile {
        format: "test".into(),
        records,
        ..ParsedFile::default()
    }
}

async fn complete_uploads_are_queued_for_ingest(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let a = upload(db, d.id, "/a", 1).await;
    let p = db.begin_upload(&new_upload(d.id, "/p")).await.unwrap();
    db.finish_upload(p, &finish(UploadStatus::Partial, 2, 5))
        .await
        .unwrap();
    assert_eq!(
        db.pending_ingest(10).await.unwrap(),
        vec![a],
        "partial uploads are not parsed"
    );
    let u = db.upload(a).await.unwrap().unwrap();
    assert_eq!(u.ingest.unwrap().status, IngestState::Pending);
    assert!(db.upload(p).await.unwrap().unwrap().ingest.is_none());
    assert_eq!(db.begin_ingest_attempt(a, HOUR).await.unwrap(), Some(1));
    assert_eq!(
        db.begin_ingest_attempt(a, HOUR).await.unwrap(),
        None,
        "a live claim is not taken twice"
    );
    assert!(
        db.pending_ingest(10).await.unwrap().is_empty(),
        "a claimed upload is passed over"
    );
    assert_eq!(
        db.begin_ingest_attempt(p, HOUR).await.unwrap(),
        None,
        "a partial upload is never claimed"
    );
}

const HOUR: std::time::Duration = std::time::Duration::from_secs(3600);

/// Two workers (receivers on one database) claiming the same upload at
/// once: exactly one gets it, with one attempt counted.
async fn concurrent_ingest_claims_give_an_upload_to_one_worker(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    for i in 0..20u8 {
        let a = upload(db, d.id, &format!("/{i}"), i).await;
        let claim = || db.begin_ingest_attempt(a, HOUR);
        let (x, y) = tokio::join!(claim(), claim());
        let won: Vec<u32> = [x, y].into_iter().filter_map(Result::unwrap).collect();
        assert_eq!(won, vec![1], "upload #{}: one claim wins", a.0);
        assert!(
            !db.pending_ingest(100).await.unwrap().contains(&a),
            "a claimed upload is passed over"
        );
    }
}

/// A worker that died holding an upload loses it when the lease ends; if it
/// was only slow, its late result is refused and changes nothing.
async fn an_expired_ingest_claim_is_taken_up_again(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let a = upload(db, d.id, "/a", 1).await;
    // A claim that ends at once: the worker that took it is gone.
    assert_eq!(
        db.begin_ingest_attempt(a, std::time::Duration::ZERO)
            .await
            .unwrap(),
        Some(1)
    );
    assert_eq!(
        db.pending_ingest(10).await.unwrap(),
        vec![a],
        "waiting again"
    );
    assert_eq!(db.begin_ingest_attempt(a, HOUR).await.unwrap(), Some(2));
    assert_eq!(db.begin_ingest_attempt(a, HOUR).await.unwrap(), None);
    // The second worker stores it.
    let rows = parsed(vec![reading(11, "1.5"), reading(12, "2.25")]);
    let info = db.store_parsed(a, d.id, &rows).await.unwrap();
    assert_eq!(info.records.new, 2);
    // The first one comes back late: nothing is written twice.
    let late = parsed(vec![reading(11, "1.5"), reading(13, "7")]);
    match db.store_parsed(a, d.id, &late).await {
        Err(StoreError::NotPending(id)) => assert_eq!(id, a.0),
        other => panic!("a late store must be refused, got {other:?}"),
    }
    match db
        .finish_ingest(a, IngestState::Failed, "late failure")
        .await
    {
        Err(StoreError::NotPending(id)) => assert_eq!(id, a.0),
        other => panic!("a late outcome must be refused, got {other:?}"),
    }
    assert_eq!(
        every_reading(db, d.id).await.len(),
        2,
        "the late rows left no trace"
    );
    let ingest = db.upload(a).await.unwrap().unwrap().ingest.unwrap();
    assert_eq!(ingest.status, IngestState::Parsed);
    assert_eq!((ingest.records.total, ingest.records.new), (2, 2));
}

/// Parsed, quarantined and failed uploads are never claimed, however long
/// ago; queued again, they are claimable from the first attempt on.
/// The ingest worker's groups: one claim for the uploads never tried (an
/// upload tried before, or held, is left out), one transaction to store
/// them, in which one refused file leaves every file of the group unstored.
async fn groups_claim_only_untried_uploads_and_store_all_or_nothing(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let e = device(db, "unit-2").await;
    let mut ids = Vec::new();
    for i in 0..5u8 {
        ids.push(
            upload(
                db,
                if i % 2 == 0 { d.id } else { e.id },
                &format!("/g{i}"),
                i,
            )
            .await,
        );
    }
    let (a, b, c, held, tried) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    assert_eq!(db.begin_ingest_attempt(held, HOUR).await.unwrap(), Some(1));
    // A worker that died on it long ago: its claim has run out.
    assert_eq!(
        db.begin_ingest_attempt(tried, std::time::Duration::ZERO)
            .await
            .unwrap(),
        Some(1)
    );
    let got = db.begin_first_ingest_attempts(&ids, HOUR).await.unwrap();
    assert_eq!(got, vec![a, b, c], "only the uploads never tried, in order");
    assert!(
        db.begin_first_ingest_attempts(&ids, HOUR)
            .await
            .unwrap()
            .is_empty(),
        "a live claim is not taken twice"
    );
    assert_eq!(
        db.begin_ingest_attempt(a, HOUR).await.unwrap(),
        None,
        "claimed in the group"
    );
    assert_eq!(
        db.begin_ingest_attempt(tried, HOUR).await.unwrap(),
        Some(2),
        "the one tried before is claimed alone"
    );

    // One file of the group was finished elsewhere: nothing of the group is stored.
    db.finish_ingest(c, IngestState::Failed, "finished elsewhere")
        .await
        .unwrap();
    let prepare = |p| telegaz_store::PreparedFile::new(p).unwrap();
    let fa = prepare(parsed(vec![reading(1, "1"), reading(2, "2")]));
    let fb = prepare(parsed(vec![reading(1, "5")]));
    let fc = prepare(parsed(vec![reading(3, "3")]));
    match db
        .store_parsed_many(&[(a, d.id, &fa), (b, e.id, &fb), (c, d.id, &fc)])
        .await
    {
        Err(StoreError::NotPending(id)) => assert_eq!(id, c.0),
        other => panic!("the group must be refused, got {other:?}"),
    }
    for id in [a, b] {
        let u = db.upload(id).await.unwrap().unwrap();
        assert_eq!(
            u.ingest.unwrap().status,
            IngestState::Pending,
            "upload #{}",
            id.0
        );
    }
    assert!(
        every_reading(db, d.id).await.is_empty(),
        "no row of the group"
    );
    assert!(
        every_reading(db, e.id).await.is_empty(),
        "no row of the group"
    );

    // Without it, the group is stored at once, each file counted on its own.
    let infos = db
        .store_parsed_many(&[(a, d.id, &fa), (b, e.id, &fb)])
        .await
        .unwrap();
    assert_eq!(
        infos.iter().map(|i| i.records.new).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(every_reading(db, d.id).await.len(), 2);
    assert_eq!(every_reading(db, e.id).await.len(), 1);
    for id in [a, b] {
        let u = db.upload(id).await.unwrap().unwrap();
        assert_eq!(u.ingest.unwrap().status, IngestState::Parsed);
    }
}

async fn a_finished_upload_is_never_claimable(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let a = upload(db, d.id, "/a", 1).await;
    let b = upload(db, d.id, "/b", 2).await;
    let c = upload(db, d.id, "/c", 3).await;
    db.begin_ingest_attempt(c, HOUR).await.unwrap();
    db.store_parsed(a, d.id, &parsed(vec![reading(11, "1.5")]))
        .await
        .unwrap();
    db.finish_ingest(b, IngestState::Quarantined, "not a known format")
        .await
        .unwrap();
    db.finish_ingest(c, IngestState::Failed, "stopped too often")
        .await
        .unwrap();
    for id in [a, b, c] {
        assert_eq!(
            db.begin_ingest_attempt(id, std::time::Duration::ZERO)
                .await
                .unwrap(),
            None,
            "upload #{} is finished",
            id.0
        );
    }
    assert_eq!(
        db.begin_ingest_attempt(UploadId(999_999), HOUR)
            .await
            .unwrap(),
        None,
        "no such upload"
    );
    assert!(db.pending_ingest(10).await.unwrap().is_empty());
    // Queued again (re-parse): the old claim is gone with the old outcome.
    db.enqueue_ingest(c).await.unwrap();
    assert_eq!(db.pending_ingest(10).await.unwrap(), vec![c]);
    assert_eq!(db.begin_ingest_attempt(c, HOUR).await.unwrap(), Some(1));
}

async fn parsed_records_are_idempotent_and_conflicts_kept(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let first = upload(db, d.id, "/1", 1).await;
    let info = db
        .store_parsed(
            first,
            d.id,
            &parsed(vec![reading(11, "1.5"), reading(12, "2.25")]),
        )
        .await
        .unwrap();
    assert_eq!((info.records.total, info.records.new), (2, 2));
    assert_eq!(info.status, IngestState::Parsed);
    assert!(db.pending_ingest(10).await.unwrap().is_empty());

    // The same rows again, one new, one changed.
    let second = upload(db, d.id, "/2", 2).await;
    let info = db
        .store_parsed(
            second,
            d.id,
            &parsed(vec![
                reading(11, "1.5"),
                reading(12, "9.99"),
                reading(13, "3"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(info.records.total, 3);
    assert_eq!(info.records.new, 1);
    assert_eq!(info.records.duplicate, 1);
    assert_eq!(info.records.conflicting, 1);

    let stored = db
        .readings(&ReadingFilter {
            device_id: d.id,
            kind: Some(ArchiveKind::Interval),
            from: None,
            to: None,
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 3);
    // Never silently overwritten: the first value stays.
    assert_eq!(
        stored[1].quantities.vb,
        Some(Decimal::from_str("2.25").unwrap())
    );
    // Exact decimals round-trip with their printed digits.
    assert_eq!(stored[0].quantities.p_kpa.unwrap().to_string(), "104.5110");
    assert_eq!(stored[0], reading(11, "1.5"));
    let window = db
        .readings(&ReadingFilter {
            device_id: d.id,
            kind: None,
            from: Some(jiff::civil::date(2026, 1, 14).at(12, 0, 0, 0)),
            to: Some(jiff::civil::date(2026, 1, 14).at(12, 0, 0, 0)),
        })
        .await
        .unwrap();
    assert_eq!(window.len(), 1);
    let u = db.upload(second).await.unwrap().unwrap();
    assert_eq!(u.ingest.unwrap().records.conflicting, 1);
}

async fn ingest_outcomes_and_requeue(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let e = device(db, "unit-2").await;
    let a = upload(db, d.id, "/a", 1).await;
    let b = upload(db, e.id, "/b", 2).await;
    db.finish_ingest(a, IngestState::Quarantined, "not a known format")
        .await
        .unwrap();
    db.finish_ingest(b, IngestState::Failed, "disk error")
        .await
        .unwrap();
    let ua = db.upload(a).await.unwrap().unwrap().ingest.unwrap();
    assert_eq!(ua.status, IngestState::Quarantined);
    assert_eq!(ua.reason.as_deref(), Some("not a known format"));
    assert!(db.pending_ingest(10).await.unwrap().is_empty());

    let again = db
        .requeue_ingest(&RequeueFilter {
            state: Some(IngestState::Quarantined),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(again, vec![a]);
    assert_eq!(db.pending_ingest(10).await.unwrap(), vec![a]);
    let ua = db.upload(a).await.unwrap().unwrap().ingest.unwrap();
    assert_eq!(ua.status, IngestState::Pending);
    assert_eq!(ua.reason, None);
    let by_device = db
        .requeue_ingest(&RequeueFilter {
            device_id: Some(e.id),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(by_device, vec![b]);
}

fn reading_at(i: u32, vb: &str) -> ArchiveRecord {
    let mut r = reading(0, vb);
    r.record_no = Some(u64::from(i));
    r.local_time = jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0)
        + jiff::SignedDuration::from_hours(i64::from(i));
    r
}

async fn large_files_with_repeats_inside_and_across_uploads(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    // 1000 rows (several batches), with one key repeated identically and one
    // repeated with another value inside the same file.
    let mut rows: Vec<ArchiveRecord> = (0..1000)
        .map(|i| reading_at(i, &format!("{i}.5")))
        .collect();
    rows.push(reading_at(10, "10.5"));
    rows.push(reading_at(20, "999"));
    let a = upload(db, d.id, "/a", 1).await;
    let info = db.store_parsed(a, d.id, &parsed(rows)).await.unwrap();
    assert_eq!(info.records.total, 1002);
    assert_eq!(info.records.new, 1000);
    assert_eq!(info.records.duplicate, 1);
    assert_eq!(info.records.conflicting, 1);

    // A second upload overlapping the first: 500 old (one changed), 500 new.
    let mut rows: Vec<ArchiveRecord> = (500..1500)
        .map(|i| reading_at(i, &format!("{i}.5")))
        .collect();
    rows[100] = reading_at(600, "0.1");
    let b = upload(db, d.id, "/b", 2).await;
    let info = db.store_parsed(b, d.id, &parsed(rows)).await.unwrap();
    assert_eq!(info.records.total, 1000);
    assert_eq!(info.records.new, 500);
    assert_eq!(info.records.duplicate, 499);
    assert_eq!(info.records.conflicting, 1);

    let stored = every_reading(db, d.id).await;
    assert_eq!(stored.len(), 1500);
    assert_eq!(
        stored[20].quantities.vb,
        Some(Decimal::from_str("20.5").unwrap())
    );
    assert_eq!(
        stored[600].quantities.vb,
        Some(Decimal::from_str("600.5").unwrap())
    );
}

async fn events_are_stored_once_and_read_back(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let ev = |n: u64, h: i8, code: u16| telegaz_domain::EventRecord {
        record_no: Some(n),
        local_time: jiff::civil::date(2026, 1, 14).at(h, 5, 12, 0),
        utc_offset_seconds: None,
        code,
        check: Check::Ok,
        line: 1,
    };
    let file = ParsedFile {
        format: "test".into(),
        events: vec![ev(101, 13, 0x2007), ev(102, 14, 0x0007)],
        ..ParsedFile::default()
    };
    let a = upload(db, d.id, "/a", 1).await;
    assert_eq!(db.store_parsed(a, d.id, &file).await.unwrap().events, 2);
    let b = upload(db, d.id, "/b", 2).await;
    db.store_parsed(b, d.id, &file).await.unwrap();
    let all = db
        .events(&ReadingFilter {
            device_id: d.id,
            kind: None,
            from: Some(jiff::civil::date(2026, 1, 14).at(14, 0, 0, 0)),
            to: None,
        })
        .await
        .unwrap();
    assert_eq!(all, vec![ev(102, 14, 0x0007)]);
}

fn day(s: &str) -> jiff::civil::Date {
    s.parse().unwrap()
}

fn at(s: &str) -> Timestamp {
    s.parse().unwrap()
}

async fn deliveries_are_recorded_once_and_claimed_when_due(db: &dyn Database) {
    let d = day("2026-01-14");
    let due = at("2026-01-15T07:30:00Z");
    assert!(db.ensure_delivery("daily", d, due).await.unwrap());
    assert!(
        !db.ensure_delivery("daily", d, at("2026-01-16T00:00:00Z"))
            .await
            .unwrap(),
        "a second ensure changes nothing"
    );
    let r = db.delivery("daily", d).await.unwrap().unwrap();
    assert_eq!(r.state, DeliveryState::Pending);
    assert_eq!(
        (r.attempts, r.due_at, r.next_attempt_at),
        (0, due, Some(due))
    );
    assert!(
        db.delivery("daily", day("2026-01-15"))
            .await
            .unwrap()
            .is_none()
    );

    // Not due before its time.
    let early = at("2026-01-15T07:29:59Z");
    assert!(db.due_deliveries(early, 10).await.unwrap().is_empty());
    let lease = at("2026-01-15T07:40:00Z");
    assert!(
        db.claim_delivery("daily", d, early, lease, false)
            .await
            .unwrap()
            .is_none()
    );
    // Due at its time; one claim wins.
    let now = at("2026-01-15T07:30:00Z");
    assert_eq!(db.due_deliveries(now, 10).await.unwrap().len(), 1);
    let c = db
        .claim_delivery("daily", d, now, lease, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.state, DeliveryState::Sending);
    assert_eq!(c.attempts, 1);
    assert_eq!(c.next_attempt_at, Some(lease));
    assert_eq!(c.last_attempt_at, Some(now));
    assert!(
        db.claim_delivery("daily", d, now, lease, false)
            .await
            .unwrap()
            .is_none(),
        "taken while its lease runs"
    );
    assert!(db.due_deliveries(now, 10).await.unwrap().is_empty());
    // An attempt cut short is due again when its lease ends.
    let later = at("2026-01-15T07:40:00Z");
    let again = db.due_deliveries(later, 10).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].state, DeliveryState::Sending);
    let c = db
        .claim_delivery("daily", d, later, at("2026-01-15T07:50:00Z"), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.attempts, 2);
}

async fn delivery_outcomes_retry_fail_and_send(db: &dyn Database) {
    let d = day("2026-01-14");
    let t0 = at("2026-01-15T07:30:00Z");
    let lease = at("2026-01-15T07:40:00Z");
    db.ensure_delivery("daily", d, t0).await.unwrap();
    db.claim_delivery("daily", d, t0, lease, false)
        .await
        .unwrap()
        .unwrap();
    let retry_at = at("2026-01-15T07:31:00Z");
    let r = db
        .finish_delivery(
            "daily",
            d,
            t0,
            &DeliveryOutcome::Retry {
                error: "connection refused".into(),
                at: retry_at,
            },
        )
        .await
        .unwrap();
    assert_eq!(r.state, DeliveryState::Pending);
    assert_eq!(r.next_attempt_at, Some(retry_at));
    assert_eq!(r.last_error.as_deref(), Some("connection refused"));
    assert!(db.due_deliveries(t0, 10).await.unwrap().is_empty());
    assert_eq!(db.due_deliveries(retry_at, 10).await.unwrap().len(), 1);

    db.claim_delivery("daily", d, retry_at, lease, false)
        .await
        .unwrap()
        .unwrap();
    let r = db
        .finish_delivery(
            "daily",
            d,
            retry_at,
            &DeliveryOutcome::Failed {
                error: "535 authentication failed".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(r.state, DeliveryState::Failed);
    assert_eq!(r.attempts, 2);
    assert_eq!(r.next_attempt_at, None);
    let far = at("2030-01-01T00:00:00Z");
    assert!(db.due_deliveries(far, 10).await.unwrap().is_empty());
    assert!(
        db.claim_delivery("daily", d, far, far, false)
            .await
            .unwrap()
            .is_none(),
        "a failed delivery is not taken without force"
    );

    // Forced: taken in any state, and created when missing.
    let t1 = at("2026-01-16T09:00:00Z");
    let c = db
        .claim_delivery("daily", d, t1, at("2026-01-16T09:10:00Z"), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.state, c.attempts), (DeliveryState::Sending, 3));
    let r = db
        .finish_delivery("daily", d, t1, &DeliveryOutcome::Sent)
        .await
        .unwrap();
    assert_eq!(r.state, DeliveryState::Sent);
    assert_eq!(r.sent_at, Some(t1));
    assert_eq!(r.next_attempt_at, None);
    assert_eq!(
        r.last_error.as_deref(),
        Some("535 authentication failed"),
        "the last failure stays visible"
    );
    assert!(
        !db.ensure_delivery("daily", d, t1).await.unwrap(),
        "never queued again after it was sent"
    );
    assert!(db.due_deliveries(far, 10).await.unwrap().is_empty());

    let fresh = day("2026-01-10");
    let c = db
        .claim_delivery("manual", fresh, t1, at("2026-01-16T09:10:00Z"), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((c.attempts, c.due_at), (1, t1));
    assert!(matches!(
        db.finish_delivery("nothing", fresh, t1, &DeliveryOutcome::Sent)
            .await,
        Err(StoreError::NotFound { .. })
    ));
}

async fn deliveries_are_listed_newest_first(db: &dyn Database) {
    for (name, d) in [
        ("a", "2026-01-14"),
        ("a", "2026-01-15"),
        ("b", "2026-01-15"),
        ("a", "2026-01-16"),
    ] {
        db.ensure_delivery(name, day(d), at("2026-01-20T00:00:00Z"))
            .await
            .unwrap();
    }
    let all = db
        .list_deliveries(&DeliveryFilter::default())
        .await
        .unwrap();
    let keys: Vec<(String, String)> = all
        .iter()
        .map(|r| (r.name.clone(), r.gas_day.to_string()))
        .collect();
    assert_eq!(
        keys,
        [
            ("a".to_string(), "2026-01-16".to_string()),
            ("a".into(), "2026-01-15".into()),
            ("b".into(), "2026-01-15".into()),
            ("a".into(), "2026-01-14".into()),
        ]
    );
    let a = db
        .list_deliveries(&DeliveryFilter {
            name: Some("a".into()),
            since: Some(day("2026-01-15")),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(a.len(), 2);
    let limited = db
        .list_deliveries(&DeliveryFilter {
            limit: Some(1),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let sent = db
        .list_deliveries(&DeliveryFilter {
            state: Some(DeliveryState::Sent),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(sent.is_empty());
}

fn this_year() -> i16 {
    jiff::tz::TimeZone::UTC.to_datetime(Timestamp::now()).year()
}

fn reading_on(t: jiff::civil::DateTime, vb: &str) -> ArchiveRecord {
    let mut r = reading(0, vb);
    r.record_no = None;
    r.local_time = t;
    r
}

/// Device clocks lie: a reset to 2000, a far future year. Every row is
/// kept and read back (on PostgreSQL they land in yearly partitions or in
/// the default one), in time order, and a second copy is a duplicate.
async fn readings_far_in_the_past_and_future_are_kept(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let this_year = this_year();
    let times = [
        jiff::civil::date(1970, 1, 1).at(0, 0, 0, 0),
        jiff::civil::date(1999, 12, 31).at(23, 0, 0, 0),
        jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0),
        jiff::civil::date(this_year, 6, 1).at(12, 0, 0, 0),
        jiff::civil::date(this_year + 1, 12, 31).at(23, 0, 0, 0),
        jiff::civil::date(2150, 3, 1).at(1, 0, 0, 0),
        jiff::civil::date(9999, 12, 31).at(23, 0, 0, 0),
    ];
    // Stored out of order, as a confused device may print them.
    let mut rows: Vec<ArchiveRecord> = times
        .iter()
        .enumerate()
        .map(|(i, t)| reading_on(*t, &format!("{i}.10")))
        .collect();
    rows.reverse();
    let file = ParsedFile {
        format: "test".into(),
        records: rows,
        events: times
            .iter()
            .enumerate()
            .map(|(i, t)| telegaz_domain::EventRecord {
                record_no: None,
                local_time: *t,
                utc_offset_seconds: Some(10_800),
                code: u16::try_from(i).unwrap(),
                check: Check::Absent,
                line: 7,
            })
            .collect(),
        ..ParsedFile::default()
    };
    let a = upload(db, d.id, "/a", 1).await;
    let info = db.store_parsed(a, d.id, &file).await.unwrap();
    assert_eq!((info.records.new, info.events), (7, 7));
    let all = |from, to| ReadingFilter {
        device_id: d.id,
        kind: Some(ArchiveKind::Interval),
        from,
        to,
    };
    let stored = db.readings(&all(None, None)).await.unwrap();
    assert_eq!(
        stored.iter().map(|r| r.local_time).collect::<Vec<_>>(),
        times.to_vec(),
        "every row, in time order"
    );
    assert_eq!(
        stored[6].quantities.vb.unwrap().to_string(),
        "6.10",
        "digits as printed"
    );
    assert_eq!(stored[0].record_no, None);
    // A window across the turn of the millennium (two partitions).
    let window = db
        .readings(&all(Some(times[1]), Some(times[2])))
        .await
        .unwrap();
    assert_eq!(window.len(), 2);
    let future = db.readings(&all(Some(times[5]), None)).await.unwrap();
    assert_eq!(future.len(), 2);
    let events = db.events(&all(None, None)).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.local_time).collect::<Vec<_>>(),
        times.to_vec()
    );
    assert_eq!(events[0].utc_offset_seconds, Some(10_800));
    assert_eq!(events[3].check, Check::Absent);
    let activity = db.device_activity(Some(d.id)).await.unwrap();
    assert_eq!(activity.len(), 1);
    assert_eq!(activity[0].newest_reading, Some(times[6]));

    let b = upload(db, d.id, "/b", 2).await;
    let again = db.store_parsed(b, d.id, &file).await.unwrap();
    assert_eq!((again.records.new, again.records.duplicate), (0, 7));
    assert_eq!(db.readings(&all(None, None)).await.unwrap().len(), 7);
}

/// Names arrive transcoded from Windows-1251: a directory named in
/// Cyrillic moves with everything below it like any other.
async fn rename_directory_with_non_ascii_names(db: &dyn Database) {
    let d = device(db, "u").await;
    db.ns_mkdir(d.id, "/отчёты").await.unwrap();
    db.ns_mkdir(d.id, "/отчёты/май").await.unwrap();
    let a = upload(db, d.id, "/отчёты/май/суточный.txt", 1).await;
    let r = db.ns_rename(d.id, "/отчёты", "/архив-2026").await.unwrap();
    assert_eq!(r, Renamed::Dir { files: 1 });
    assert!(db.ns_dir_exists(d.id, "/архив-2026/май").await.unwrap());
    assert_eq!(
        db.ns_file(d.id, "/архив-2026/май/суточный.txt")
            .await
            .unwrap()
            .map(|f| f.upload_id),
        Some(a)
    );
    assert_eq!(
        db.upload(a).await.unwrap().unwrap().final_path,
        "/архив-2026/май/суточный.txt"
    );
    assert!(!db.ns_dir_exists(d.id, "/отчёты").await.unwrap());
}

/// Two workers storing overlapping files of one device at the same time:
/// each row is new for exactly one of them, and the rest are duplicates.
async fn concurrent_ingest_of_overlapping_files_counts_each_row_once(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    let a = upload(db, d.id, "/a", 1).await;
    let b = upload(db, d.id, "/b", 2).await;
    let first = parsed((0..600).map(|i| reading_at(i, &format!("{i}.5"))).collect());
    let second = parsed(
        (300..900)
            .map(|i| reading_at(i, &format!("{i}.5")))
            .collect(),
    );
    let (x, y) = tokio::join!(
        db.store_parsed(a, d.id, &first),
        db.store_parsed(b, d.id, &second)
    );
    let (x, y) = (x.unwrap(), y.unwrap());
    assert_eq!(x.records.new + y.records.new, 900);
    assert_eq!(x.records.duplicate + y.records.duplicate, 300);
    assert_eq!(x.records.conflicting + y.records.conflicting, 0);
    assert_eq!(every_reading(db, d.id).await.len(), 900);
}

async fn every_reading(db: &dyn Database, device: telegaz_domain::DeviceId) -> Vec<ArchiveRecord> {
    db.readings(&ReadingFilter {
        device_id: device,
        kind: None,
        from: None,
        to: None,
    })
    .await
    .unwrap()
}

/// Two receivers finishing the same content for one device at the same
/// time: the later one is recorded as a duplicate of the earlier one.
async fn concurrent_identical_uploads_find_each_other(db: &dyn Database) {
    let d = device(db, "unit-1").await;
    for round in 0..5u8 {
        let a = db.begin_upload(&new_upload(d.id, "/a")).await.unwrap();
        let b = db.begin_upload(&new_upload(d.id, "/b")).await.unwrap();
        let same = finish(UploadStatus::Complete, 100 + round, 10);
        let (fa, fb) = tokio::join!(db.finish_upload(a, &same), db.finish_upload(b, &same));
        let (fa, fb) = (fa.unwrap(), fb.unwrap());
        assert!(
            matches!(
                (fa.duplicate_of, fb.duplicate_of),
                (Some(x), None) if x == b
            ) || matches!((fa.duplicate_of, fb.duplicate_of), (None, Some(x)) if x == a),
            "round {round}: exactly one is the duplicate of the other: {fa:?} {fb:?}"
        );
    }
}

/// Checks of the PostgreSQL schema itself (partitions), through SQL.
/// A check of the PostgreSQL half only: it gets its database's URL.
type PgCheck = fn(String) -> Pin<Box<dyn Future<Output = ()>>>;

fn postgres_only() -> Vec<(&'static str, PgCheck)> {
    vec![
        ("partitions_exist_for_the_coming_years", |url| {
            Box::pin(partitions_exist_for_the_coming_years(url))
        }),
        ("rows_in_the_default_partition_move_to_a_new_year", |url| {
            Box::pin(rows_in_the_default_partition_move_to_a_new_year(url))
        }),
        ("the_hot_queries_use_the_indexes", |url| {
            Box::pin(the_hot_queries_use_the_indexes(url))
        }),
        ("a_missing_database_is_named_in_the_error", |url| {
            Box::pin(a_missing_database_is_named_in_the_error(url))
        }),
    ]
}

async fn pg(url: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    sqlx::PgConnection::connect(url).await.unwrap()
}

async fn partitions_of(conn: &mut sqlx::PgConnection, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
         WHERE i.inhparent = $1::regclass ORDER BY 1",
    )
    .bind(table)
    .fetch_all(conn)
    .await
    .unwrap()
}

async fn partitions_exist_for_the_coming_years(url: String) {
    let db = telegaz_store::connect(&url).await.unwrap();
    let mut conn = pg(&url).await;
    let year = this_year();
    for table in ["readings", "events"] {
        let parts = partitions_of(&mut conn, table).await;
        assert!(parts.contains(&format!("{table}_default")), "{parts:?}");
        for y in year - 10..=year + 2 {
            assert!(parts.contains(&format!("{table}_y{y}")), "{y}: {parts:?}");
        }
    }
    // Opening again (another receiver, a restart) changes nothing.
    let again = telegaz_store::connect(&url).await.unwrap();
    assert_eq!(
        partitions_of(&mut conn, "readings").await.len(),
        14,
        "13 years and the default"
    );
    drop((db, again));
}

async fn rows_in_the_default_partition_move_to_a_new_year(url: String) {
    let db = telegaz_store::connect(&url).await.unwrap();
    let d = device(&*db, "unit-1").await;
    let a = upload(&*db, d.id, "/a", 1).await;
    let year = this_year() + 7;
    let t = jiff::civil::date(year, 2, 3).at(4, 0, 0, 0);
    let file = ParsedFile {
        format: "test".into(),
        records: vec![reading_on(t, "1.5")],
        events: vec![telegaz_domain::EventRecord {
            record_no: Some(1),
            local_time: t,
            utc_offset_seconds: None,
            code: 7,
            check: Check::Ok,
            line: 1,
        }],
        ..ParsedFile::default()
    };
    db.store_parsed(a, d.id, &file).await.unwrap();
    let mut conn = pg(&url).await;
    let place = |table: &'static str| {
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!(
            "SELECT tableoid::regclass::text FROM {table}"
        )))
    };
    assert_eq!(
        place("readings").fetch_one(&mut conn).await.unwrap(),
        "readings_default"
    );
    let made: i32 = sqlx::query_scalar("SELECT telegaz_ensure_partitions($1, $1)")
        .bind(i32::from(year))
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(made, 2, "one for readings, one for events");
    assert_eq!(
        place("readings").fetch_one(&mut conn).await.unwrap(),
        format!("readings_y{year}")
    );
    assert_eq!(
        place("events").fetch_one(&mut conn).await.unwrap(),
        format!("events_y{year}")
    );
    let stored = db
        .readings(&ReadingFilter {
            device_id: d.id,
            kind: None,
            from: Some(t),
            to: Some(t),
        })
        .await
        .unwrap();
    assert_eq!(stored, vec![reading_on(t, "1.5")]);
}

/// The two hot queries: one device over a range reads only that range's
/// partition through the primary key; the newest state of every device
/// goes through newest_readings, one primary-key probe per device.
async fn the_hot_queries_use_the_indexes(url: String) {
    let db = telegaz_store::connect(&url).await.unwrap();
    let d = device(&*db, "unit-1").await;
    let a = upload(&*db, d.id, "/a", 1).await;
    let rows = (0..2000).map(|i| reading_at(i, "1")).collect();
    db.store_parsed(a, d.id, &parsed(rows)).await.unwrap();
    let mut conn = pg(&url).await;
    sqlx::query("ANALYZE").execute(&mut conn).await.unwrap();
    let plan = |sql: &'static str| {
        sqlx::query_scalar::<_, String>(sqlx::AssertSqlSafe(format!("EXPLAIN (COSTS OFF) {sql}")))
    };
    let range = plan(
        "SELECT * FROM readings WHERE device_id = 1 AND kind = 'interval' \
         AND local_time >= '2026-01-10' AND local_time <= '2026-01-20'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .join("\n");
    assert!(range.contains("readings_y2026_pkey"), "{range}");
    assert!(!range.contains("readings_y2025"), "pruned: {range}");
    assert!(!range.contains("readings_default"), "pruned: {range}");
    let newest = db.device_activity(None).await.unwrap();
    assert_eq!(
        newest[0].newest_reading,
        Some(reading_at(1999, "1").local_time)
    );
    let recorded: String = sqlx::query_scalar(
        "SELECT local_time::text FROM newest_readings WHERE device_id = $1 AND kind = 'interval'",
    )
    .bind(d.id.0)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(recorded, "2026-03-25 07:00:00");
}

async fn a_missing_database_is_named_in_the_error(url: String) {
    let missing = with_database(&url, "telegaz_no_such_database");
    let e = match telegaz_store::connect(&missing).await {
        Ok(_) => panic!("a database that does not exist opened"),
        Err(e) => e,
    };
    assert!(matches!(e, StoreError::Connect { .. }), "{e:?}");
    let text = e.to_string();
    assert!(text.contains("telegaz_no_such_database"), "{text}");
    assert!(text.contains("does not exist"), "{text}");
}

/// Several processes may run the delivery scheduler on one database: of
/// claims racing for the same due delivery, exactly one gets it.
async fn concurrent_claims_give_a_delivery_to_one_caller(db: &dyn Database) {
    let now = at("2026-01-15T07:30:00Z");
    let lease = at("2026-01-15T07:40:00Z");
    let first = day("2026-01-01");
    for i in 0..20 {
        let d = first.checked_add(jiff::Span::new().days(i)).unwrap();
        db.ensure_delivery("daily", d, now).await.unwrap();
        let claim = || db.claim_delivery("daily", d, now, lease, false);
        let (a, b, c, e) = tokio::join!(claim(), claim(), claim(), claim());
        let won: Vec<_> = [a, b, c, e]
            .into_iter()
            .filter_map(Result::unwrap)
            .collect();
        assert_eq!(won.len(), 1, "gas day {d}: {won:?}");
        assert_eq!((won[0].state, won[0].attempts), (DeliveryState::Sending, 1));
        let stored = db.delivery("daily", d).await.unwrap().unwrap();
        assert_eq!(stored.attempts, 1, "one attempt counted for gas day {d}");
    }
}

/// Several dispatchers (processes) may send through the same notifier: each
/// due notification is taken by one of them, and is due again only when the
/// taker's lease runs out without an outcome (it died while sending).
async fn concurrent_dispatchers_take_each_notification_once(db: &dyn Database) {
    use telegaz_domain::NotificationEvent;
    use telegaz_store::{NOTIFICATION_LEASE, SendOutcome};
    let mut queued = Vec::new();
    for _ in 0..12 {
        let n = notice(NotificationEvent::Digest, &["mail"]);
        queued.push(db.enqueue_notification(&n).await.unwrap());
    }
    let now = at("2026-11-25T10:00:00Z");
    let take = || db.due_notifications("mail", now, 8);
    let (a, b, c) = tokio::join!(take(), take(), take());
    let mut taken: Vec<i64> = [a, b, c]
        .into_iter()
        .flat_map(Result::unwrap)
        .map(|n| n.id)
        .collect();
    taken.sort_unstable();
    assert_eq!(taken, queued, "each taken once, none left behind");
    assert!(
        db.due_notifications("mail", now, 100)
            .await
            .unwrap()
            .is_empty(),
        "taken ones are not due while their dispatcher sends them"
    );
    for id in &queued[..4] {
        db.finish_notification(*id, "mail", &SendOutcome::Sent, now)
            .await
            .unwrap();
    }
    let before_end = now
        .checked_add(NOTIFICATION_LEASE)
        .unwrap()
        .checked_sub(jiff::SignedDuration::from_secs(1))
        .unwrap();
    assert!(
        db.due_notifications("mail", before_end, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let lease_over = now.checked_add(NOTIFICATION_LEASE).unwrap();
    let again: Vec<i64> = db
        .due_notifications("mail", lease_over, 100)
        .await
        .unwrap()
        .iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(
        again,
        queued[4..],
        "unfinished ones are due again, sent ones not"
    );
}

/// Several alert evaluators may see the same condition at once: one alert,
/// one notification.
async fn concurrent_openers_open_one_alert(db: &dyn Database) {
    use telegaz_domain::{AlertKind, NotificationEvent, Severity};
    use telegaz_store::{AlertFilter, NewAlert};
    let d = device(db, "unit-1").await;
    for round in 0..10 {
        let new = NewAlert {
            key: format!("silent:{}:{round}", d.id),
            kind: AlertKind::Silent,
            severity: Severity::Warning,
            device_id: Some(d.id),
            title: "Узел unit-1 молчит".into(),
            detail: String::new(),
            opened_at: at("2026-11-25T10:00:00Z"),
        };
        let n = notice(NotificationEvent::Opened, &["mail"]);
        let open = || db.open_alert(&new, Some(&n));
        let (a, b, c) = tokio::join!(open(), open(), open());
        let opened: Vec<_> = [a, b, c].into_iter().filter_map(Result::unwrap).collect();
        assert_eq!(opened.len(), 1, "round {round}: {opened:?}");
        let resolve = || db.resolve_alert(opened[0].id, at("2026-11-25T11:00:00Z"), Some(&n));
        let (a, b) = tokio::join!(resolve(), resolve());
        a.unwrap();
        b.unwrap();
    }
    assert_eq!(
        db.list_alerts(&AlertFilter::default()).await.unwrap().len(),
        10
    );
    let due = db
        .due_notifications("mail", at("2026-11-25T12:00:00Z"), 100)
        .await
        .unwrap();
    assert_eq!(
        due.len(),
        20,
        "one opened and one resolved notice per alert"
    );
}

// --- bans (abuse resistance) ---
async fn bans_refuse_their_scope_until_lifted_or_expired(db: &dyn Database) {
    use telegaz_domain::NewBan;
    use telegaz_store::{BAN_BY_SYSTEM, BanFilter};
    let t0 = at("2026-11-25T10:00:00Z");
    let mins = |m: i64| t0.checked_add(jiff::SignedDuration::from_mins(m)).unwrap();
    let new = |address: Option<&str>, login: Option<&str>, by: &str, expires: Option<i64>| NewBan {
        address: address.map(str::to_owned),
        login: login.map(str::to_owned),
        reason: "5 failed logins".into(),
        created_by: by.into(),
        created_at: t0,
        expires_at: expires.map(mins),
        repeat: 0,
    };
    assert!(db.active_ban("10.0.0.1", "u1", t0).await.unwrap().is_none());
    // A login from one address, for ten minutes.
    let pair = db
        .create_ban(&new(Some("10.0.0.1"), Some("u1"), BAN_BY_SYSTEM, Some(10)))
        .await
        .unwrap();
    assert_eq!(pair.address.as_deref(), Some("10.0.0.1"));
    assert_eq!(pair.login.as_deref(), Some("u1"));
    assert_eq!(pair.expires_at, Some(mins(10)));
    assert_eq!(pair.created_at, t0);
    assert!(pair.lifted_at.is_none());
    let found = db.active_ban("10.0.0.1", "u1", mins(1)).await.unwrap();
    assert_eq!(found.map(|b| b.id), Some(pair.id));
    assert!(
        db.active_ban("10.0.0.1", "u2", mins(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.active_ban("10.0.0.2", "u1", mins(1))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.active_ban("10.0.0.1", "u1", mins(10))
            .await
            .unwrap()
            .is_none(),
        "an expired ban refuses nothing"
    );
    // A whole address until lifted wins over the shorter one.
    let addr = db
        .create_ban(&new(Some("10.0.0.1"), None, "cli", None))
        .await
        .unwrap();
    for login in ["u1", "u2"] {
        let b = db.active_ban("10.0.0.1", login, mins(1)).await.unwrap();
        assert_eq!(b.map(|b| b.id), Some(addr.id), "{login}");
    }
    // A login from every address.
    let login = db
        .create_ban(&new(None, Some("u9"), "web:admin", Some(60)))
        .await
        .unwrap();
    let b = db.active_ban("192.0.2.77", "u9", mins(1)).await.unwrap();
    assert_eq!(b.map(|b| b.id), Some(login.id));
    // Nothing at all is refused.
    assert!(db.create_ban(&new(None, None, "cli", None)).await.is_err());

    // Listing: newest first; active only at a time.
    let all = db.list_bans(&BanFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![login.id, addr.id, pair.id]
    );
    let live = db
        .list_bans(&BanFilter {
            active_at: Some(mins(30)),
            limit: None,
        })
        .await
        .unwrap();
    assert_eq!(
        live.iter().map(|b| b.id).collect::<Vec<_>>(),
        vec![login.id, addr.id]
    );

    // Lifting takes effect at once, records who, and is idempotent.
    let lifted = db.lift_ban(addr.id, "cli", mins(2)).await.unwrap();
    assert_eq!(lifted.lifted_at, Some(mins(2)));
    assert_eq!(lifted.lifted_by.as_deref(), Some("cli"));
    assert!(!lifted.active_at(mins(3)));
    assert!(
        db.active_ban("10.0.0.1", "u2", mins(3))
            .await
            .unwrap()
            .is_none()
    );
    let again = db.lift_ban(addr.id, "someone else", mins(5)).await.unwrap();
    assert_eq!(again.lifted_at, Some(mins(2)));
    assert_eq!(again.lifted_by.as_deref(), Some("cli"));
    assert!(matches!(
        db.lift_ban(9_999_999, "cli", mins(5)).await,
        Err(StoreError::NotFound { .. })
    ));

    // Repeats the throttle counts: its own bans of exactly that scope.
    db.create_ban(&new(Some("10.0.0.1"), Some("u1"), BAN_BY_SYSTEM, Some(20)))
        .await
        .unwrap();
    db.create_ban(&new(Some("10.0.0.1"), None, BAN_BY_SYSTEM, Some(20)))
        .await
        .unwrap();
    let count = |login: Option<&'static str>, since| async move {
        db.count_bans_by(BAN_BY_SYSTEM, "10.0.0.1", login, since)
            .await
            .unwrap()
    };
    assert_eq!(count(Some("u1"), mins(-60)).await, 2);
    assert_eq!(count(None, mins(-60)).await, 1);
    assert_eq!(
        count(Some("u1"), mins(1)).await,
        0,
        "older ones are not counted"
    );
    assert_eq!(
        db.count_bans_by("cli", "10.0.0.1", None, mins(-60))
            .await
            .unwrap(),
        1
    );
}
// --- end bans ---

// ---- begin storebench: receiver ownership of transfers (issue #4) ----
/// Start-up reconciliation of one receiver closes its own transfers in
/// progress and those recorded without a receiver, never another
/// receiver's (which may be live on a shared database); the owner is read back.
async fn interrupted_uploads_are_a_receivers_own(db: &dyn Database) {
    let d = device(db, "u").await;
    let mine = db
        .begin_upload_by(&new_upload(d.id, "/mine.txt"), "rx-a")
        .await
        .unwrap();
    let theirs = db
        .begin_upload_by(&new_upload(d.id, "/theirs.txt"), "rx-b")
        .await
        .unwrap();
    let legacy = db
        .begin_upload(&new_upload(d.id, "/old.txt"))
        .await
        .unwrap();
    let done = db
        .begin_upload_by(&new_upload(d.id, "/done.txt"), "rx-a")
        .await
        .unwrap();
    db.finish_upload(done, &finish(UploadStatus::Complete, 7, 10))
        .await
        .unwrap();

    assert_eq!(
        db.interrupted_uploads("rx-a").await.unwrap(),
        vec![mine, legacy]
    );
    assert_eq!(
        db.interrupted_uploads("rx-b").await.unwrap(),
        vec![theirs, legacy]
    );
    assert_eq!(db.interrupted_uploads("rx-c").await.unwrap(), vec![legacy]);
    let rec = db.upload(theirs).await.unwrap().unwrap();
    assert_eq!(rec.receiver.as_deref(), Some("rx-b"));
    assert_eq!(rec.status, UploadStatus::Receiving);
    assert_eq!(db.upload(legacy).await.unwrap().unwrap().receiver, None);
    // Finishing keeps the owner; a finished transfer is nobody's to close.
    let rec = db.upload(done).await.unwrap().unwrap();
    assert_eq!(rec.receiver.as_deref(), Some("rx-a"));
    db.finish_upload(mine, &finish(UploadStatus::Partial, 8, 3))
        .await
        .unwrap();
    assert_eq!(db.interrupted_uploads("rx-a").await.unwrap(), vec![legacy]);
}
// ---- end storebench ----
