//! The PostgreSQL backend: for fleets, and for several receivers on one
//! database. Its own embedded migrations (`migrations/postgres`); readings are
//! partitioned by time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, PgPool};
use telegaz_domain::{
    ApiToken, ArchiveRecord, AuditEvent, Device, DeviceId, EventRecord, IngestInfo, IngestState,
    NewAuditEvent, NewUpload, ParsedFile, Sha256Digest, Timestamp, Upload, UploadFinish, UploadId,
    User, UserId, WebSession,
};

use crate::{
    AlertFilter, AuditFilter, Database, DeliveryFilter, DeliveryOutcome, DeliveryRecord,
    DeviceActivity, DeviceUpdate, FinishedUpload, NewAlert, NewDevice, NewNotification, NewSession,
    NewUser, NotificationSend, NsFile, NsListing, ReadingFilter, RecoveredUpload, Renamed,
    RequeueFilter, Result, SendOutcome, StoreError, UploadFilter, UserUpdate,
};

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The PostgreSQL [`Database`].
#[derive(Debug, Clone)]
pub struct PgDatabase {
    pub(crate) pool: PgPool,
    /// The year for which the partitions of the coming years were last made
    /// sure of (0: not yet).
    partitions_year: Arc<AtomicI32>,
}

impl PgDatabase {
    /// Connect to the database a `postgres://` URL names and bring its schema
    /// up to date (creating the partitions of the coming years).
    pub async fn open(url: &str) -> Result<Self> {
        let location = crate::redact_url(url);
        let options: PgConnectOptions =
            url.parse()
                .map_err(|source: sqlx::Error| StoreError::UnsupportedUrl {
                    url: location.clone(),
                    hint: format!(
                        "{source}; write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE \
                         (percent-encode special characters in the password)"
                    ),
                })?;
        // One connection first, so that a server that is down or refuses us
        // is reported at once with its reason (the pool would keep retrying).
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(|source| StoreError::Connect {
                location: location.clone(),
                source,
            })?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Connect { location, source })?;
        MIGRATOR.run(&pool).await?;
        let db = PgDatabase {
            pool,
            partitions_year: Arc::new(AtomicI32::new(0)),
        };
        crate::pg_ingest::ensure_partitions(&db).await?;
        Ok(db)
    }

    pub(crate) fn partitions_year(&self) -> Option<i32> {
        Some(self.partitions_year.load(Ordering::Relaxed)).filter(|y| *y != 0)
    }

    pub(crate) fn set_partitions_year(&self, year: i32) {
        self.partitions_year.store(year, Ordering::Relaxed);
    }
}

#[async_trait]
impl Database for PgDatabase {
    async fn create_device(&self, device: NewDevice) -> Result<Device> {
        crate::pg_core::create_device(self, device).await
    }

    async fn device_by_id(&self, id: DeviceId) -> Result<Option<Device>> {
        crate::pg_core::device_by_id(self, id).await
    }

    async fn device_by_name(&self, name: &str) -> Result<Option<Device>> {
        crate::pg_core::device_by_name(self, name).await
    }

    async fn device_by_login(&self, login: &str) -> Result<Option<Device>> {
        crate::pg_core::device_by_login(self, login).await
    }

    async fn list_devices(&self) -> Result<Vec<Device>> {
        crate::pg_core::list_devices(self).await
    }

    async fn update_device(&self, id: DeviceId, update: DeviceUpdate) -> Result<Device> {
        crate::pg_core::update_device(self, id, update).await
    }

    async fn begin_upload(&self, upload: &NewUpload) -> Result<UploadId> {
        crate::pg_core::begin_upload(self, upload, None).await
    }

    // ---- begin storebench: receiver ownership of transfers (issue #4) ----
    async fn begin_upload_by(&self, upload: &NewUpload, receiver: &str) -> Result<UploadId> {
        crate::pg_core::begin_upload(self, upload, Some(receiver)).await
    }

    async fn interrupted_uploads(&self, receiver: &str) -> Result<Vec<UploadId>> {
        crate::pg_core::interrupted_uploads(self, receiver).await
    }
    // ---- end storebench ----

    async fn finish_upload(&self, id: UploadId, finish: &UploadFinish) -> Result<FinishedUpload> {
        crate::pg_core::finish_upload(self, id, finish).await
    }

    async fn record_recovered(&self, found: &RecoveredUpload) -> Result<UploadId> {
        crate::pg_core::record_recovered(self, found).await
    }

    async fn upload(&self, id: UploadId) -> Result<Option<Upload>> {
        crate::pg_core::upload(self, id).await
    }

    async fn list_uploads(&self, filter: &UploadFilter) -> Result<Vec<Upload>> {
        crate::pg_core::list_uploads(self, filter).await
    }

    async fn referenced_digests(&self) -> Result<Vec<Sha256Digest>> {
        crate::pg_core::referenced_digests(self).await
    }

    async fn uploads_by_digest(&self, sha256: &Sha256Digest) -> Result<Vec<UploadId>> {
        crate::pg_core::uploads_by_digest(self, sha256).await
    }

    async fn ns_file(&self, device: DeviceId, path: &str) -> Result<Option<NsFile>> {
        crate::pg_core::ns_file(self, device, path).await
    }

    async fn ns_dir_exists(&self, device: DeviceId, path: &str) -> Result<bool> {
        crate::pg_core::ns_dir_exists(self, device, path).await
    }

    async fn ns_list(&self, device: DeviceId, dir: &str) -> Result<NsListing> {
        crate::pg_core::ns_list(self, device, dir).await
    }

    async fn ns_mkdir(&self, device: DeviceId, path: &str) -> Result<()> {
        crate::pg_core::ns_mkdir(self, device, path).await
    }

    async fn ns_rmdir(&self, device: DeviceId, path: &str) -> Result<()> {
        crate::pg_core::ns_rmdir(self, device, path).await
    }

    async fn ns_delete(&self, device: DeviceId, path: &str) -> Result<UploadId> {
        crate::pg_core::ns_delete(self, device, path).await
    }

    async fn ns_rename(&self, device: DeviceId, from: &str, to: &str) -> Result<Renamed> {
        crate::pg_core::ns_rename(self, device, from, to).await
    }

    async fn enqueue_ingest(&self, id: UploadId) -> Result<()> {
        crate::pg_core::enqueue_ingest(self, id).await
    }

    async fn requeue_ingest(&self, filter: &RequeueFilter) -> Result<Vec<UploadId>> {
        crate::pg_core::requeue_ingest(self, filter).await
    }

    async fn pending_ingest(&self, limit: u32) -> Result<Vec<UploadId>> {
        crate::pg_core::pending_ingest(self, limit).await
    }

    async fn ingest_backlog(&self) -> Result<(u64, Option<Timestamp>)> {
        crate::pg_core::ingest_backlog(self).await
    }

    async fn begin_ingest_attempt(
        &self,
        id: UploadId,
        lease: std::time::Duration,
    ) -> Result<Option<u32>> {
        crate::pg_core::begin_ingest_attempt(self, id, lease).await
    }

    async fn store_parsed(
        &self,
        id: UploadId,
        device: DeviceId,
        parsed: &ParsedFile,
    ) -> Result<IngestInfo> {
        crate::pg_core::store_parsed(self, id, device, parsed).await
    }

    async fn begin_first_ingest_attempts(
        &self,
        ids: &[UploadId],
        lease: std::time::Duration,
    ) -> Result<Vec<UploadId>> {
        crate::pg_core::begin_first_ingest_attempts(self, ids, lease).await
    }

    async fn store_parsed_many(
        &self,
        files: &[(UploadId, DeviceId, &crate::PreparedFile)],
    ) -> Result<Vec<IngestInfo>> {
        crate::pg_core::store_parsed_many(self, files).await
    }

    async fn finish_ingest(&self, id: UploadId, state: IngestState, reason: &str) -> Result<()> {
        crate::pg_core::finish_ingest(self, id, state, reason).await
    }

    async fn readings(&self, filter: &ReadingFilter) -> Result<Vec<ArchiveRecord>> {
        crate::pg_core::readings(self, filter).await
    }

    async fn events(&self, filter: &ReadingFilter) -> Result<Vec<EventRecord>> {
        crate::pg_core::events(self, filter).await
    }

    async fn insert_audit(&self, events: &[NewAuditEvent]) -> Result<()> {
        crate::pg_core::insert_audit(self, events).await
    }

    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditEvent>> {
        crate::pg_core::list_audit(self, filter).await
    }

    async fn device_activity(&self, only: Option<DeviceId>) -> Result<Vec<DeviceActivity>> {
        crate::pg_core::device_activity(self, only).await
    }

    async fn open_alert(
        &self,
        alert: &NewAlert,
        notification: Option<&NewNotification>,
    ) -> Result<Option<telegaz_domain::Alert>> {
        crate::pg_alerts::open_alert(self, alert, notification).await
    }

    async fn resolve_alert(
        &self,
        id: i64,
        at: Timestamp,
        notification: Option<&NewNotification>,
    ) -> Result<telegaz_domain::Alert> {
        crate::pg_alerts::resolve_alert(self, id, at, notification).await
    }

    async fn acknowledge_alert(
        &self,
        id: i64,
        by: &str,
        at: Timestamp,
    ) -> Result<telegaz_domain::Alert> {
        crate::pg_alerts::acknowledge_alert(self, id, by, at).await
    }

    async fn list_alerts(&self, filter: &AlertFilter) -> Result<Vec<telegaz_domain::Alert>> {
        crate::pg_alerts::list_alerts(self, filter).await
    }

    async fn last_resolved_before(
        &self,
        key: &str,
        before: Timestamp,
    ) -> Result<Option<Timestamp>> {
        crate::pg_alerts::last_resolved_before(self, key, before).await
    }

    async fn enqueue_notification(&self, notification: &NewNotification) -> Result<i64> {
        crate::pg_alerts::enqueue_notification(self, notification).await
    }

    async fn due_notifications(
        &self,
        notifier: &str,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<telegaz_domain::Notification>> {
        crate::pg_alerts::due_notifications(self, notifier, now, limit).await
    }

    async fn finish_notification(
        &self,
        notification_id: i64,
        notifier: &str,
        outcome: &SendOutcome,
        now: Timestamp,
    ) -> Result<()> {
        crate::pg_alerts::finish_notification(self, notification_id, notifier, outcome, now).await
    }

    async fn notification_sends(&self, limit: u32) -> Result<Vec<NotificationSend>> {
        crate::pg_alerts::notification_sends(self, limit).await
    }

    async fn recent_upload_times(
        &self,
        per_device: u32,
    ) -> Result<Vec<(DeviceId, Vec<Timestamp>)>> {
        crate::pg_alerts::recent_upload_times(self, per_device).await
    }

    async fn create_user(&self, user: NewUser) -> Result<User> {
        crate::pg_web::create_user(self, user).await
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>> {
        crate::pg_web::user_by_id(self, id).await
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<User>> {
        crate::pg_web::user_by_name(self, name).await
    }

    async fn list_users(&self) -> Result<Vec<User>> {
        crate::pg_web::list_users(self).await
    }

    async fn update_user(&self, id: UserId, update: UserUpdate) -> Result<User> {
        crate::pg_web::update_user(self, id, update).await
    }

    async fn create_session(&self, session: NewSession) -> Result<()> {
        crate::pg_web::create_session(self, session).await
    }

    async fn session(&self, token_sha256: &str, now: Timestamp) -> Result<Option<WebSession>> {
        crate::pg_web::session(self, token_sha256, now).await
    }

    async fn delete_session(&self, token_sha256: &str) -> Result<()> {
        crate::pg_web::delete_session(self, token_sha256).await
    }

    async fn create_api_token(
        &self,
        user: UserId,
        name: &str,
        token_sha256: &str,
    ) -> Result<ApiToken> {
        crate::pg_web::create_api_token(self, user, name, token_sha256).await
    }

    async fn user_by_api_token(&self, token_sha256: &str, now: Timestamp) -> Result<Option<User>> {
        crate::pg_web::user_by_api_token(self, token_sha256, now).await
    }

    async fn list_api_tokens(&self, user: UserId) -> Result<Vec<ApiToken>> {
        crate::pg_web::list_api_tokens(self, user).await
    }

    async fn revoke_api_token(&self, user: UserId, id: i64) -> Result<()> {
        crate::pg_web::revoke_api_token(self, user, id).await
    }

    async fn ensure_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        due_at: Timestamp,
    ) -> Result<bool> {
        crate::pg_delivery::ensure_delivery(self, name, gas_day, due_at).await
    }

    async fn due_deliveries(&self, now: Timestamp, limit: u32) -> Result<Vec<DeliveryRecord>> {
        crate::pg_delivery::due_deliveries(self, now, limit).await
    }

    async fn claim_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        now: Timestamp,
        lease_until: Timestamp,
        force: bool,
    ) -> Result<Option<DeliveryRecord>> {
        crate::pg_delivery::claim_delivery(self, name, gas_day, now, lease_until, force).await
    }

    async fn finish_delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
        now: Timestamp,
        outcome: &DeliveryOutcome,
    ) -> Result<DeliveryRecord> {
        crate::pg_delivery::finish_delivery(self, name, gas_day, now, outcome).await
    }

    async fn delivery(
        &self,
        name: &str,
        gas_day: jiff::civil::Date,
    ) -> Result<Option<DeliveryRecord>> {
        crate::pg_delivery::delivery(self, name, gas_day).await
    }

    async fn list_deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>> {
        crate::pg_delivery::list_deliveries(self, filter).await
    }

    // --- bans (abuse resistance) ---
    async fn create_ban(&self, ban: &telegaz_domain::NewBan) -> Result<telegaz_domain::Ban> {
        crate::pg_bans::create_ban(self, ban).await
    }

    async fn list_bans(&self, filter: &crate::BanFilter) -> Result<Vec<telegaz_domain::Ban>> {
        crate::pg_bans::list_bans(self, filter).await
    }

    async fn lift_ban(&self, id: i64, by: &str, at: Timestamp) -> Result<telegaz_domain::Ban> {
        crate::pg_bans::lift_ban(self, id, by, at).await
    }

    async fn active_ban(
        &self,
        address: &str,
        login: &str,
        now: Timestamp,
    ) -> Result<Option<telegaz_domain::Ban>> {
        crate::pg_bans::active_ban(self, address, login, now).await
    }

    async fn count_bans_by(
        &self,
        created_by: &str,
        address: &str,
        login: Option<&str>,
        since: Timestamp,
    ) -> Result<u32> {
        crate::pg_bans::count_bans_by(self, created_by, address, login, since).await
    }
    // --- end bans ---
}
