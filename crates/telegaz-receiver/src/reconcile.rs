//! Start-up reconciliation of the spool with the database.
//!
//! After a crash the spool and the database may disagree. Nothing is deleted:
//! - a temporary file of a transfer that was in progress is kept and its record
//!   closed as `partial` (the client never heard `226`);
//! - a temporary file with no record, and a stored object no record refers to,
//!   are recorded as `recovered`;
//! - a record whose bytes are missing is reported loudly (log, audit, metric).
//!
//! Several receivers may share the database and the object store. Each one
//! reconciles only what is its own: the transfers it started (recorded with
//! its receiver id, or with none, from before receivers were recorded) and
//! the temporary files in its own spool directory; another receiver's
//! transfer in progress is left alone. In a shared object store (S3) an
//! object without a record may be another receiver's upload that is not
//! recorded yet (or waits in its outage journal): it is counted, not
//! recorded as recovered.

use std::collections::HashSet;
use std::sync::Arc;

use telegaz_domain::{
    AuditKind, NewAuditEvent, PartialReason, Sha256Digest, Timestamp, UploadFinish, UploadId,
    UploadStatus,
};
use telegaz_spool::{Spool, SpoolError};
use telegaz_store::{Database, RecoveredUpload, StoreError};

use crate::audit::AuditLog;

/// What reconciliation found and did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Transfers interrupted by the stop, closed as partial.
    pub interrupted: Vec<UploadId>,
    /// Files found without a record, now recorded as recovered.
    pub recovered: Vec<UploadId>,
    /// Records whose bytes are missing from the spool.
    pub missing: Vec<UploadId>,
    /// Leftover temporary files of finished uploads, removed (their bytes are stored).
    pub cleaned: usize,
    /// Files in the spool that Telegaz did not name; left alone.
    pub strangers: Vec<String>,
    /// Temporary files of transfers that another receiver started (the
    /// spool directory is shared, or this receiver's id changed); left alone.
    pub others: Vec<UploadId>,
    /// Objects in a shared object store that no record refers to (yet):
    /// another receiver's, being recorded; left alone.
    pub unrecorded_shared: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Reconcile the spool with the database at the start of receiver `receiver`
/// (its id, as recorded with the transfers it starts).
pub async fn reconcile(
    db: &Arc<dyn Database>,
    spool: &Spool,
    audit: &AuditLog,
    receiver: &str,
) -> Result<ReconcileReport, ReconcileError> {
    let mut report = ReconcileReport::default();
    // The transfers in progress this receiver may close: its own.
    let own: HashSet<UploadId> = db
        .interrupted_uploads(receiver)
        .await?
        .into_iter()
        .collect();

    // 1. Temporary files.
    let (temp_ids, strangers) = spool.list_temps()?;
    report
        .strangers
        .extend(strangers.iter().map(|p| p.display().to_string()));
    let temp_set: HashSet<i64> = temp_ids.iter().copied().collect();
    for id in temp_ids {
        match db.upload(UploadId(id)).await? {
            Some(rec) if rec.status == UploadStatus::Receiving && own.contains(&rec.id) => {
                close_interrupted(db, spool, audit, rec.id, &mut report).await?;
            }
            Some(rec) if rec.status == UploadStatus::Receiving => {
                tracing::warn!(
                    upload_id = rec.id.0,
                    owner = rec.receiver.as_deref().unwrap_or(""),
                    receiver,
                    "a temporary file of a transfer another receiver started is left alone; \
                     give every receiver its own data directory, and keep a receiver's id when it restarts"
                );
                report.others.push(rec.id);
            }
            Some(rec) => {
                let stored = match rec.sha256 {
                    Some(sha) => spool.object_exists(&sha).await?,
                    None => false,
                };
                if !stored {
                    spool.commit_existing_temp(id).await?;
                }
                spool.remove_temp(id).await?;
                report.cleaned += 1;
            }
            None => {
                let c = spool.commit_existing_temp(id).await?;
                let new_id = db
                    .record_recovered(&RecoveredUpload {
                        device_id: None,
                        found_as: format!("incoming/{id}.part"),
                        sha256: c.sha256,
                        size: c.size,
                        found_at: Timestamp::now(),
                    })
                    .await?;
                spool.remove_temp(id).await?;
                announce_recovered(
                    audit,
                    new_id,
                    &format!("incoming/{id}.part"),
                    &c.sha256,
                    c.size,
                )
                .await;
                report.recovered.push(new_id);
            }
        }
    }

    // 2. This receiver's records of transfers in progress whose temporary
    // file never appeared.
    let mut own: Vec<UploadId> = own.into_iter().collect();
    own.sort_unstable();
    for id in own {
        if !temp_set.contains(&id.0) {
            spool.create_temp(id.0).await?;
            close_interrupted(db, spool, audit, id, &mut report).await?;
        }
    }

    // 3. Objects and the records that refer to them. The records are read
    // first: an upload is recorded only after its object is stored, so every
    // digest read here is in the listing that follows, even while other
    // receivers store and record uploads meanwhile.
    let referenced: HashSet<Sha256Digest> = db.referenced_digests().await?.into_iter().collect();
    let (objects, strangers) = spool.list_objects().await?;
    report.strangers.extend(strangers);
    let objects: HashSet<Sha256Digest> = objects.into_iter().collect();
    let mut orphans: Vec<&Sha256Digest> = objects.difference(&referenced).collect();
    orphans.sort_unstable();
    if spool.raw_store().shared() && !orphans.is_empty() {
        tracing::info!(
            objects = orphans.len(),
            "objects without a record in the shared object store are left alone: \
             other receivers record their uploads after storing them"
        );
        report.unrecorded_shared = orphans.len();
        orphans.clear();
    }
    for sha in orphans {
        let (actual, size) = spool.hash_object(sha).await?;
        if actual != *sha {
            tracing::error!(object = %sha, actual = %actual, "a spool object's content does not match its name; recording it under its real digest is left to an operator");
        }
        let hex = sha.to_hex();
        let found_as = format!("objects/{}/{hex}", &hex[..2]);
        let id = db
            .record_recovered(&RecoveredUpload {
                device_id: None,
                found_as: found_as.clone(),
                sha256: *sha,
                size,
                found_at: Timestamp::now(),
            })
            .await?;
        announce_recovered(audit, id, &found_as, sha, size).await;
        report.recovered.push(id);
    }
    let mut missing: Vec<&Sha256Digest> = referenced.difference(&objects).collect();
    missing.sort_unstable();
    for sha in missing {
        for id in db.uploads_by_digest(sha).await? {
            tracing::error!(upload_id = id.0, sha256 = %sha, location = %spool.object_location(sha),
                "the bytes of a recorded upload are MISSING from the spool; restore them from a backup");
            metrics::counter!("telegaz_spool_missing_files_total").increment(1);
            let mut e = NewAuditEvent::new(AuditKind::MissingFile, "missing");
            e.upload_id = Some(id);
            e.detail = format!("bytes with sha256 {sha} are missing from the spool");
            audit.record(e).await;
            report.missing.push(id);
        }
    }
    for s in &report.strangers {
        tracing::warn!(path = %s, "unexpected file in the spool; Telegaz did not create it and leaves it alone");
    }
    Ok(report)
}

async fn close_interrupted(
    db: &Arc<dyn Database>,
    spool: &Spool,
    audit: &AuditLog,
    id: UploadId,
    report: &mut ReconcileReport,
) -> Result<(), ReconcileError> {
    let c = spool.commit_existing_temp(id.0).await?;
    let reason = PartialReason::ServerStopped;
    db.finish_upload(
        id,
        &UploadFinish::partial(c.size, c.sha256, &reason, Timestamp::now()),
    )
    .await?;
    spool.remove_temp(id.0).await?;
    tracing::warn!(
        upload_id = id.0,
        bytes = c.size,
        "transfer interrupted by the server stop; kept as partial"
    );
    let mut e = NewAuditEvent::new(AuditKind::UploadFinished, "partial");
    e.upload_id = Some(id);
    e.detail = format!("{} bytes kept, {reason}", c.size);
    audit.record(e).await;
    report.interrupted.push(id);
    Ok(())
}

async fn announce_recovered(
    audit: &AuditLog,
    id: UploadId,
    found_as: &str,
    sha: &Sha256Digest,
    size: u64,
) {
    tracing::warn!(
        upload_id = id.0,
        found_as,
        bytes = size,
        "file without a record found in the spool; recorded as recovered"
    );
    let mut e = NewAuditEvent::new(AuditKind::Recovered, "recovered");
    e.upload_id = Some(id);
    e.detail = format!("{found_as}: {size} bytes, sha256 {sha}");
    audit.record(e).await;
}
