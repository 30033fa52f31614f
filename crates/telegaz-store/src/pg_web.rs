//! PostgreSQL side of users, sessions and API tokens.

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

pub(crate) async fn create_user(db: &PgDatabase, user: NewUser) -> Result<User> {
    let _ = (db, user);
    Err(not_yet("create_user"))
}

pub(crate) async fn user_by_id(db: &PgDatabase, id: UserId) -> Result<Option<User>> {
    let _ = (db, id);
    Err(not_yet("user_by_id"))
}

pub(crate) async fn user_by_name(db: &PgDatabase, name: &str) -> Result<Option<User>> {
    let _ = (db, name);
    Err(not_yet("user_by_name"))
}

pub(crate) async fn list_users(db: &PgDatabase) -> Result<Vec<User>> {
    let _ = db;
    Err(not_yet("list_users"))
}

pub(crate) async fn update_user(db: &PgDatabase, id: UserId, update: UserUpdate) -> Result<User> {
    let _ = (db, id, update);
    Err(not_yet("update_user"))
}

pub(crate) async fn create_session(db: &PgDatabase, session: NewSession) -> Result<()> {
    let _ = (db, session);
    Err(not_yet("create_session"))
}

pub(crate) async fn session(
    db: &PgDatabase,
    token_sha256: &str,
    now: Timestamp,
) -> Result<Option<WebSession>> {
    let _ = (db, token_sha256, now);
    Err(not_yet("session"))
}

pub(crate) async fn delete_session(db: &PgDatabase, token_sha256: &str) -> Result<()> {
    let _ = (db, token_sha256);
    Err(not_yet("delete_session"))
}

pub(crate) async fn create_api_token(
    db: &PgDatabase,
    user: UserId,
    name: &str,
    token_sha256: &str,
) -> Result<ApiToken> {
    let _ = (db, user, name, token_sha256);
    Err(not_yet("create_api_token"))
}

pub(crate) async fn user_by_api_token(
    db: &PgDatabase,
    token_sha256: &str,
    now: Timestamp,
) -> Result<Option<User>> {
    let _ = (db, token_sha256, now);
    Err(not_yet("user_by_api_token"))
}

pub(crate) async fn list_api_tokens(db: &PgDatabase, user: UserId) -> Result<Vec<ApiToken>> {
    let _ = (db, user);
    Err(not_yet("list_api_tokens"))
}

pub(crate) async fn revoke_api_token(db: &PgDatabase, user: UserId, id: i64) -> Result<()> {
    let _ = (db, user, id);
    Err(not_yet("revoke_api_token"))
}
