//! PostgreSQL side of alerts, the notification outbox and upload times.

// A skeleton: this module fills in its own imports as it is written.
#[allow(unused_imports)]
use telegaz_domain::{
    ApiToken, ArchiveRecord, AuditEvent, Device, DeviceId, EventRecord, IngestInfo, IngestState,
    NewAuditEvent, NewUpload, ParsedFile, Sha256Digest, Timestamp, Upload, UploadFinish, UploadId,
    User, UserId, WebSession,
};

use crate::postgres::{PgDatabase, not_yet};
#[allow(unused_imports)]
use crate::{
    AlertFilter, AuditFilter, DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeviceActivity,
    DeviceUpdate, FinishedUpload, NewAlert, NewDevice, NewNotification, NewSession, NewUser,
    NotificationSend, NsFile, NsListing, ReadingFilter, RecoveredUpload, Renamed, RequeueFilter,
    Result, SendOutcome, UploadFilter, UserUpdate,
};

pub(crate) async fn open_alert(
    db: &PgDatabase,
    alert: &NewAlert,
    notification: Option<&NewNotification>,
) -> Result<Option<telegaz_domain::Alert>> {
    let _ = (db, alert, notification);
    Err(not_yet("open_alert"))
}

pub(crate) async fn resolve_alert(
    db: &PgDatabase,
    id: i64,
    at: Timestamp,
    notification: Option<&NewNotification>,
) -> Result<telegaz_domain::Alert> {
    let _ = (db, id, at, notification);
    Err(not_yet("resolve_alert"))
}

pub(crate) async fn acknowledge_alert(
    db: &PgDatabase,
    id: i64,
    by: &str,
    at: Timestamp,
) -> Result<telegaz_domain::Alert> {
    let _ = (db, id, by, at);
    Err(not_yet("acknowledge_alert"))
}

pub(crate) async fn list_alerts(
    db: &PgDatabase,
    filter: &AlertFilter,
) -> Result<Vec<telegaz_domain::Alert>> {
    let _ = (db, filter);
    Err(not_yet("list_alerts"))
}

pub(crate) async fn last_resolved_before(
    db: &PgDatabase,
    key: &str,
    before: Timestamp,
) -> Result<Option<Timestamp>> {
    let _ = (db, key, before);
    Err(not_yet("last_resolved_before"))
}

pub(crate) async fn enqueue_notification(
    db: &PgDatabase,
    notification: &NewNotification,
) -> Result<i64> {
    let _ = (db, notification);
    Err(not_yet("enqueue_notification"))
}

pub(crate) async fn due_notifications(
    db: &PgDatabase,
    notifier: &str,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<telegaz_domain::Notification>> {
    let _ = (db, notifier, now, limit);
    Err(not_yet("due_notifications"))
}

pub(crate) async fn finish_notification(
    db: &PgDatabase,
    notification_id: i64,
    notifier: &str,
    outcome: &SendOutcome,
    now: Timestamp,
) -> Result<()> {
    let _ = (db, notification_id, notifier, outcome, now);
    Err(not_yet("finish_notification"))
}

pub(crate) async fn notification_sends(
    db: &PgDatabase,
    limit: u32,
) -> Result<Vec<NotificationSend>> {
    let _ = (db, limit);
    Err(not_yet("notification_sends"))
}

pub(crate) async fn recent_upload_times(
    db: &PgDatabase,
    per_device: u32,
) -> Result<Vec<(DeviceId, Vec<Timestamp>)>> {
    let _ = (db, per_device);
    Err(not_yet("recent_upload_times"))
}
