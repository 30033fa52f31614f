//! PostgreSQL side of scheduled report deliveries.

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

pub(crate) async fn ensure_delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: jiff::civil::Date,
    due_at: Timestamp,
) -> Result<bool> {
    let _ = (db, name, gas_day, due_at);
    Err(not_yet("ensure_delivery"))
}

pub(crate) async fn due_deliveries(
    db: &PgDatabase,
    now: Timestamp,
    limit: u32,
) -> Result<Vec<DeliveryRecord>> {
    let _ = (db, now, limit);
    Err(not_yet("due_deliveries"))
}

pub(crate) async fn claim_delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: jiff::civil::Date,
    now: Timestamp,
    lease_until: Timestamp,
    force: bool,
) -> Result<Option<DeliveryRecord>> {
    let _ = (db, name, gas_day, now, lease_until, force);
    Err(not_yet("claim_delivery"))
}

pub(crate) async fn finish_delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: jiff::civil::Date,
    now: Timestamp,
    outcome: &DeliveryOutcome,
) -> Result<DeliveryRecord> {
    let _ = (db, name, gas_day, now, outcome);
    Err(not_yet("finish_delivery"))
}

pub(crate) async fn delivery(
    db: &PgDatabase,
    name: &str,
    gas_day: jiff::civil::Date,
) -> Result<Option<DeliveryRecord>> {
    let _ = (db, name, gas_day);
    Err(not_yet("delivery"))
}

pub(crate) async fn list_deliveries(
    db: &PgDatabase,
    filter: &DeliveryFilter,
) -> Result<Vec<DeliveryRecord>> {
    let _ = (db, filter);
    Err(not_yet("list_deliveries"))
}
