//! The background worker and the one-shot processing used by the CLI.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use telegaz_domain::{IngestInfo, IngestState, UploadId};
use telegaz_spool::Spool;
use telegaz_store::{Database, PreparedFile};
use tokio::io::AsyncReadExt;

use crate::MAX_ATTEMPTS;
use crate::detect::{Profiles, SharedProfiles, detect_and_parse};

/// How often the worker looks at the queue for new uploads: a reading
/// should be queryable well within a second of its file's 226 (the look is
/// one indexed query).
const POLL: Duration = Duration::from_millis(200);

/// How long a worker holds an upload it claimed, unless configured
/// (`ingest.claim_lease`).
pub const DEFAULT_CLAIM_LEASE: Duration = Duration::from_secs(120);

/// Why an upload could not be processed now (it stays pending).
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error(transparent)]
    Store(#[from] telegaz_store::StoreError),
    #[error("reading upload #{id} from the spool: {source}")]
    Spool {
        id: i64,
        source: telegaz_spool::SpoolError,
    },
    #[error("reading upload #{id} from the spool: {source}")]
    Io { id: i64, source: std::io::Error },
    #[error("the ingest worker stopped: {0}")]
    Worker(String),
    /// Another worker (another receiver, or a running server while the CLI
    /// ingests) holds the upload or has finished it: nothing to do here.
    #[error("upload #{id} is being or has been ingested by another worker; left to it")]
    Taken { id: i64 },
}

impl IngestError {
    /// Another worker has the upload: not a failure of this one.
    pub fn is_taken(&self) -> bool {
        matches!(
            self,
            IngestError::Taken { .. }
                | IngestError::Store(telegaz_store::StoreError::NotPending(_))
        )
    }
}

/// Uploads claimed together and the task parsing them.
struct ParsingGroup {
    ids: Vec<UploadId>,
    task: tokio::task::JoinHandle<Vec<Result<Parsed, IngestError>>>,
}

/// At most this many uploads are claimed and stored in one transaction...
pub const GROUP_UPLOADS: usize = 256;
/// ... and at most this many bytes of them together (a larger upload is
/// processed alone; a group is parsed whole before it is stored).
pub const GROUP_BYTES: u64 = 4 << 20;

/// Uploads of a group read and parsed at once.
const PARSE_AHEAD: usize = 4;

/// What claiming an upload decided.
enum Claimed {
    /// Read and parse it.
    Go,
    /// Nothing to parse: the outcome is known (too many attempts).
    Done(Parsed),
}

/// The result of the first stage.
enum Parsed {
    /// Nothing to store: the outcome is known.
    Done(UploadId, Outcome),
    /// Parsed, its records encoded for storage in the parsing task (off
    /// the database writer's path).
    File(UploadId, telegaz_domain::DeviceId, Box<PreparedFile>),
}

/// How one upload ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Parsed(IngestInfo),
    Quarantined(String),
    Failed(String),
}

impl Outcome {
    pub fn state(&self) -> IngestState {
        match self {
            Outcome::Parsed(_) => IngestState::Parsed,
            Outcome::Quarantined(_) => IngestState::Quarantined,
            Outcome::Failed(_) => IngestState::Failed,
        }
    }
}

/// Runs the pipeline for uploads.
#[derive(Clone)]
pub struct Ingestor {
    db: Arc<dyn Database>,
    spool: Spool,
    profiles: SharedProfiles,
    claim_lease: Duration,
    group_bytes: u64,
}

impl Ingestor {
    pub fn new(db: Arc<dyn Database>, spool: Spool, profiles: Profiles) -> Self {
        Self::with_shared(db, spool, SharedProfiles::new(profiles))
    }

    /// An ingestor whose profiles can be replaced while it runs.
    pub fn with_shared(db: Arc<dyn Database>, spool: Spool, profiles: SharedProfiles) -> Self {
        Self {
            db,
            spool,
            profiles,
            claim_lease: DEFAULT_CLAIM_LEASE,
            group_bytes: GROUP_BYTES,
        }
    }

    /// How long this worker holds an upload it claimed; another worker (on
    /// the same database) takes the upload up after that if this one died.
    pub fn with_claim_lease(mut self, lease: Duration) -> Self {
        self.claim_lease = lease;
        self
    }

    /// How many bytes of uploads at most go in one group (one claim, one
    /// store transaction); [`GROUP_BYTES`] unless set.
    pub fn with_group_bytes(mut self, bytes: u64) -> Self {
        self.group_bytes = bytes;
        self
    }

    /// How long this worker holds an upload it claimed.
    pub fn claim_lease(&self) -> std::time::Duration {
        self.claim_lease
    }

    /// Detect, parse and store one upload; its outcome is recorded.
    pub async fn process(&self, id: UploadId) -> Result<Outcome, IngestError> {
        let parsed = self.parse(id).await?;
        self.store(parsed).await
    }

    /// Process several uploads, parsing the next group while the current
    /// one is stored (SQLite has one writer; parsing needs a CPU).
    ///
    /// Uploads go in groups of up to [`GROUP_UPLOADS`] uploads and
    /// [`GROUP_BYTES`] together (a bigger upload goes alone): a group is
    /// claimed in one transaction and stored in one, so a burst of small
    /// files costs two commits (two fsyncs) per group instead of per file.
    /// Only uploads never tried before are grouped; one that a worker may
    /// have died on is claimed, parsed and stored alone, with nothing else
    /// claimed meanwhile, so that a file that kills the worker uses up only
    /// its own attempts. The next group is claimed before the current one
    /// is stored, so the two write transactions follow each other instead
    /// of colliding. `each` sees every upload's result; one upload's error
    /// does not stop the others (the upload stays queued and is retried).
    pub async fn process_many(
        &self,
        ids: &[UploadId],
        mut each: impl FnMut(UploadId, Result<Outcome, IngestError>),
    ) {
        let mut rest = ids;
        let mut parsing: Option<ParsingGroup> = None;
        // Upload records read ahead and not yet grouped.
        let mut read: HashMap<UploadId, telegaz_domain::Upload> = HashMap::new();
        while !rest.is_empty() || parsing.is_some() {
            let (group, mut known, tail) = self.next_group(rest, &mut read).await;
            rest = tail;
            let mut alone = Vec::new();
            let mut next = None;
            if !group.is_empty() {
                match self
                    .db
                    .begin_first_ingest_attempts(&group, self.claim_lease)
                    .await
                {
                    Ok(fresh) => {
                        alone = group
                            .iter()
                            .filter(|id| !fresh.contains(id))
                            .copied()
                            .collect();
                        if !fresh.is_empty() {
                            known.retain(|k, _| fresh.contains(k));
                            next = Some(self.parse_group(fresh, known));
                        }
                    }
                    Err(e) => {
                        let e = e.to_string();
                        for id in &group {
                            each(*id, Err(IngestError::Worker(e.clone())));
                        }
                    }
                }
            }
            if let Some(current) = parsing.take() {
                self.store_group(current, &mut each).await;
            }
            parsing = next;
            if !alone.is_empty() {
                if let Some(current) = parsing.take() {
                    self.store_group(current, &mut each).await;
                }
                for id in alone {
                    each(id, self.process(id).await);
                }
            }
        }
    }

    /// The next group from the front of `ids`, with its upload records, and
    /// what is left. Records are read for a window of [`GROUP_UPLOADS`] ids
    /// in one query; those not used by this group stay in `read` for the
    /// next. An upload whose record cannot be read goes into the group:
    /// claiming and reading it tells.
    async fn next_group<'a>(
        &self,
        ids: &'a [UploadId],
        read: &mut HashMap<UploadId, telegaz_domain::Upload>,
    ) -> (
        Vec<UploadId>,
        HashMap<UploadId, telegaz_domain::Upload>,
        &'a [UploadId],
    ) {
        let window = ids.get(..ids.len().min(GROUP_UPLOADS)).unwrap_or(ids);
        let missing: Vec<UploadId> = window
            .iter()
            .filter(|id| !read.contains_key(id))
            .copied()
            .collect();
        if !missing.is_empty() {
            match self.db.uploads_by_id(&missing).await {
                Ok(found) => read.extend(found.into_iter().map(|u| (u.id, u))),
                Err(e) => {
                    tracing::debug!(error = %e, "reading a group's uploads; each is read on its own");
                }
            }
        }
        let mut group = Vec::new();
        let mut known = HashMap::new();
        let mut bytes = 0u64;
        for (i, id) in window.iter().enumerate() {
            let size = read.get(id).map_or(0, |u| u.size);
            if !group.is_empty() && bytes.saturating_add(size) > self.group_bytes {
                return (group, known, ids.get(i..).unwrap_or(&[]));
            }
            bytes = bytes.saturating_add(size);
            group.push(*id);
            if let Some(u) = read.remove(id) {
                known.insert(*id, u);
            }
        }
        (group, known, ids.get(window.len()..).unwrap_or(&[]))
    }

    /// Read and parse the claimed uploads of a group in a task of its own,
    /// up to [`PARSE_AHEAD`] at once (reading a file is several trips to
    /// the blocking pool, which a burst of sessions keeps busy), the
    /// results in the group's order.
    fn parse_group(
        &self,
        ids: Vec<UploadId>,
        mut known: HashMap<UploadId, telegaz_domain::Upload>,
    ) -> ParsingGroup {
        use futures::StreamExt;
        let me = self.clone();
        let jobs: Vec<_> = ids.iter().map(|id| (*id, known.remove(id))).collect();
        ParsingGroup {
            ids,
            task: tokio::spawn(async move {
                futures::stream::iter(jobs)
                    .map(|(id, upload)| {
                        let me = me.clone();
                        async move {
                            match upload {
                                Some(upload) => me.parse_upload(upload).await,
                                None => me.read_and_parse(id).await,
                            }
                        }
                    })
                    .buffered(PARSE_AHEAD)
                    .collect::<Vec<_>>()
                    .await
            }),
        }
    }

    /// Second stage for a group: cross-check, then store all its files in
    /// one transaction. When that fails (one file of the group, say, was
    /// finished by another worker meanwhile), each file is stored alone.
    async fn store_group(
        &self,
        group: ParsingGroup,
        each: &mut impl FnMut(UploadId, Result<Outcome, IngestError>),
    ) {
        let waited = std::time::Instant::now();
        let results = match group.task.await {
            Ok(r) => r,
            Err(e) => {
                for id in group.ids {
                    each(id, Err(IngestError::Worker(e.to_string())));
                }
                return;
            }
        };
        let mut files = Vec::with_capacity(results.len());
        for (id, result) in group.ids.iter().copied().zip(results) {
            match result {
                Err(e) => each(id, Err(e)),
                Ok(Parsed::Done(id, outcome)) => each(id, self.end(id, outcome).await),
                Ok(Parsed::File(id, device, mut p)) => {
                    match self.cross_check(id, device, &mut p).await {
                        Ok(()) => files.push((id, device, p)),
                        Err(e) => each(id, Err(e)),
                    }
                }
            }
        }
        let refs: Vec<_> = files.iter().map(|(id, d, p)| (*id, *d, &**p)).collect();
        let checked = std::time::Instant::now();
        let together = refs.len() > 1
            && match self.db.store_parsed_many(&refs).await {
                Ok(infos) => {
                    for ((id, _, _), info) in refs.iter().zip(infos) {
                        each(*id, self.end(*id, Outcome::Parsed(info)).await);
                    }
                    true
                }
                Err(e) => {
                    tracing::debug!(
                        error = %e,
                        uploads = refs.len(),
                        "storing a group in one transaction failed; storing each upload alone"
                    );
                    false
                }
            };
        if !together {
            for (id, device, p) in &refs {
                let result = match self.store_one(*id, *device, p).await {
                    Ok(info) => self.end(*id, Outcome::Parsed(info)).await,
                    Err(e) => Err(e),
                };
                each(*id, result);
            }
        }
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        tracing::debug!(
            uploads = files.len(),
            parse_wait_ms = ms(checked.duration_since(waited)),
            store_ms = ms(checked.elapsed()),
            "ingest group stored"
        );
    }

    /// First stage: claim the upload (counting the attempt), read the
    /// bytes, detect and parse.
    async fn parse(&self, id: UploadId) -> Result<Parsed, IngestError> {
        match self.claim(id).await? {
            Claimed::Go => self.read_and_parse(id).await,
            Claimed::Done(p) => Ok(p),
        }
    }

    /// Claim the upload, counting the attempt.
    async fn claim(&self, id: UploadId) -> Result<Claimed, IngestError> {
        let Some(attempts) = self.db.begin_ingest_attempt(id, self.claim_lease).await? else {
            return Err(IngestError::Taken { id: id.0 });
        };
        if attempts > MAX_ATTEMPTS {
            let reason = format!(
                "processing stopped {} times without finishing (the server stopped or crashed while parsing it); \
                 run `telegaz reparse` to try again",
                attempts - 1
            );
            return Ok(Claimed::Done(Parsed::Done(id, Outcome::Failed(reason))));
        }
        Ok(Claimed::Go)
    }

    /// Read the bytes of a claimed upload, detect and parse.
    async fn read_and_parse(&self, id: UploadId) -> Result<Parsed, IngestError> {
        let Some(upload) = self.db.upload(id).await? else {
            return Err(telegaz_store::StoreError::NotFound {
                what: format!("upload #{}", id.0),
            }
            .into());
        };
        self.parse_upload(upload).await
    }

    /// Read the bytes of a claimed upload whose record is at hand, detect
    /// and parse.
    async fn parse_upload(&self, upload: telegaz_domain::Upload) -> Result<Parsed, IngestError> {
        let id = upload.id;
        let (Some(device), Some(device_id), Some(sha)) =
            (upload.device.clone(), upload.device_id, upload.sha256)
        else {
            let reason = "the upload has no device or no stored bytes".to_owned();
            return Ok(Parsed::Done(id, Outcome::Failed(reason)));
        };
        let mut bytes = Vec::with_capacity(usize::try_from(upload.size).unwrap_or(0));
        let mut file = self
            .spool
            .open_object(&sha)
            .await
            .map_err(|source| IngestError::Spool { id: id.0, source })?;
        file.read_to_end(&mut bytes)
            .await
            .map_err(|source| IngestError::Io { id: id.0, source })?;
        let file_name = upload
            .final_path
            .rsplit('/')
            .next()
            .unwrap_or(&upload.final_path)
            .to_owned();
        let profiles = self.profiles.current();
        let parsed = tokio::task::spawn_blocking(move || {
            let p = match detect_and_parse(&bytes, &file_name, &device, &profiles) {
                Ok(p) => p,
                Err(unrecognised) => {
                    return Parsed::Done(id, Outcome::Quarantined(unrecognised.reason));
                }
            };
            if p.records.is_empty() && p.events.is_empty() {
                let reason = format!("recognised as {} but it holds no records", p.format);
                return Parsed::Done(id, Outcome::Quarantined(reason));
            }
            match PreparedFile::new(p) {
                Ok(p) => Parsed::File(id, device_id, Box::new(p)),
                Err(e) => Parsed::Done(
                    id,
                    Outcome::Failed(format!("its records cannot be encoded for storage: {e}")),
                ),
            }
        })
        .await;
        Ok(match parsed {
            Err(join) => Parsed::Done(id, Outcome::Failed(format!("the parser failed: {join}"))),
            Ok(p) => p,
        })
    }

    /// Second stage: cross-check and store, or record why not.
    async fn store(&self, parsed: Parsed) -> Result<Outcome, IngestError> {
        match parsed {
            Parsed::Done(id, outcome) => self.end(id, outcome).await,
            Parsed::File(id, device_id, mut p) => {
                self.cross_check(id, device_id, &mut p).await?;
                let info = self.store_one(id, device_id, &p).await?;
                self.end(id, Outcome::Parsed(info)).await
            }
        }
    }

    /// Compare the model and serial number the content states with what
    /// earlier uploads of the same device said; a difference is a warning
    /// (another corrector behind the same unit, or a misconfigured unit).
    async fn cross_check(
        &self,
        id: UploadId,
        device: telegaz_domain::DeviceId,
        prepared: &mut PreparedFile,
    ) -> Result<(), IngestError> {
        let parsed = prepared.parsed();
        if parsed.meta.serial.is_none() && parsed.meta.model.is_none() {
            return Ok(());
        }
        let earlier = self
            .db
            .list_uploads(&telegaz_store::UploadFilter {
                device_id: Some(device),
                before_id: Some(id),
                limit: Some(200),
                ..Default::default()
            })
            .await?;
        let seen = |get: fn(&IngestInfo) -> Option<&String>| {
            earlier.iter().find_map(|u| {
                u.ingest
                    .as_ref()
                    .filter(|i| i.status == IngestState::Parsed)
                    .and_then(|i| get(i).map(|v| (u.id, v.clone())))
            })
        };
        let checks = [
            (
                "serial number",
                parsed.meta.serial.as_ref(),
                seen(|i| i.serial.as_ref()),
            ),
            (
                "model",
                parsed.meta.model.as_ref(),
                seen(|i| i.model.as_ref()),
            ),
        ];
        let mut warnings = Vec::new();
        for (what, now, before) in checks {
            if let (Some(now), Some((upload, before))) = (now, before)
                && *now != before
            {
                warnings.push(format!(
                    "{what} {now} differs from {before} in upload #{}: is this unit reading another corrector?",
                    upload.0
                ));
            }
        }
        for w in warnings {
            prepared.warn(w);
        }
        Ok(())
    }

    /// Store one file in a transaction of its own.
    async fn store_one(
        &self,
        id: UploadId,
        device: telegaz_domain::DeviceId,
        prepared: &PreparedFile,
    ) -> Result<IngestInfo, IngestError> {
        self.db
            .store_parsed_many(&[(id, device, prepared)])
            .await?
            .pop()
            .ok_or_else(|| IngestError::Worker(format!("upload #{}: nothing was stored", id.0)))
    }

    async fn end(&self, id: UploadId, outcome: Outcome) -> Result<Outcome, IngestError> {
        match &outcome {
            Outcome::Parsed(info) => {
                tracing::info!(
                    upload_id = id.0,
                    format = info.format.as_deref().unwrap_or(""),
                    records = info.records.total,
                    new = info.records.new,
                    duplicate = info.records.duplicate,
                    conflicting = info.records.conflicting,
                    truncated = info.truncated,
                    "upload parsed"
                );
                metrics::counter!("telegaz_ingest_records_total", "kind" => "new")
                    .increment(info.records.new);
                metrics::counter!("telegaz_ingest_records_total", "kind" => "duplicate")
                    .increment(info.records.duplicate);
                metrics::counter!("telegaz_ingest_records_total", "kind" => "conflicting")
                    .increment(info.records.conflicting);
            }
            Outcome::Quarantined(reason) => {
                self.db
                    .finish_ingest(id, IngestState::Quarantined, reason)
                    .await?;
                tracing::warn!(upload_id = id.0, reason = %reason, "upload quarantined");
            }
            Outcome::Failed(reason) => {
                self.db
                    .finish_ingest(id, IngestState::Failed, reason)
                    .await?;
                tracing::error!(upload_id = id.0, reason = %reason, "upload could not be ingested");
            }
        }
        metrics::counter!("telegaz_ingest_uploads_total", "outcome" => outcome.state().as_str())
            .increment(1);
        Ok(outcome)
    }

    /// Process everything pending, then wait for more, until `shutdown` changes.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        loop {
            let batch = match self.db.pending_ingest(GROUP_UPLOADS as u32).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the ingest queue; retrying");
                    Vec::new()
                }
            };
            // Stopping: leave what is queued for the next start (a pending
            // upload must not keep this loop turning after the stop).
            if *shutdown.borrow() {
                return;
            }
            let mut errors = 0;
            if !batch.is_empty() {
                self.process_many(&batch, |id, result| {
                    match result {
                        Err(e) if e.is_taken() => {
                            tracing::debug!(upload_id = id.0, "another worker has this upload");
                        }
                        Err(e) => {
                            errors += 1;
                            tracing::error!(upload_id = id.0, error = %e, "ingest failed; the upload stays queued");
                        }
                        Ok(_) => {}
                    }
                })
                .await;
            }
            if batch.is_empty() || errors > 0 {
                let pause = if errors > 0 {
                    Duration::from_secs(5)
                } else {
                    POLL
                };
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegaz_domain::{
        DeviceName, FileName, NewUpload, Timestamp, UploadFinish, UploadMode, UploadStatus,
    };
    use telegaz_store::NewDevice;

    /// A stored upload of `bytes` from a new device.
    async fn setup(bytes: &[u8]) -> (tempfile::TempDir, Ingestor, Arc<dyn Database>, UploadId) {
        let (dir, ingestor, db, ids) = setup_many(&[bytes.to_vec()]).await;
        (dir, ingestor, db, ids[0])
    }

    /// Stored uploads of `files` from one new device, in order.
    async fn setup_many(
        files: &[Vec<u8>],
    ) -> (
        tempfile::TempDir,
        Ingestor,
        Arc<dyn Database>,
        Vec<UploadId>,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let db = telegaz_store::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
            .await
            .unwrap();
        let spool = Spool::open(dir.path().join("spool")).unwrap();
        let name = DeviceName::parse("unit1").unwrap();
        let dev = db
            .create_device(NewDevice {
                name: name.clone(),
                login: name,
                password_hash: "x".into(),
                allowed_networks: vec![],
            })
            .await
            .unwrap();
        let mut ids = Vec::new();
        for (i, bytes) in files.iter().enumerate() {
            let id = db
                .begin_upload(&NewUpload {
                    device_id: dev.id,
                    original_name: FileName::utf8(&format!("a{i}.txt")),
                    path: format!("/a{i}.txt"),
                    mode: UploadMode::Store,
                    resumed_from: None,
                    offset: 0,
                    peer: None,
                    session: None,
                    started_at: Timestamp::now(),
                })
                .await
                .unwrap();
            let mut temp = spool.create_temp(id.0).await.unwrap();
            temp.write(bytes).await.unwrap();
            let c = spool.commit(temp).await.unwrap();
            db.finish_upload(
                id,
                &UploadFinish {
                    status: UploadStatus::Complete,
                    size: c.size,
                    sha256: c.sha256,
                    reason: None,
                    finished_at: Timestamp::now(),
                },
            )
            .await
            .unwrap();
            ids.push(id);
        }
        let ingestor = Ingestor::new(db.clone(), spool, Profiles::default());
        (dir, ingestor, db, ids)
    }

    const ROWS: &[u8] = b"(1)(2026-01-14,11:00:00)(1.5)(1.5)(1.5)(1.5)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n\
(2)(2026-01-14,12:00:00)(2.5)(2.5)(2.5)(2.5)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n";

    #[tokio::test]
    async fn an_upload_that_stopped_the_worker_repeatedly_is_marked_failed() {
        let (_d, ingestor, db, id) = setup(ROWS).await;
        // Three earlier attempts that never finished (the process died while parsing).
        // (Claims that end at once, as a worker's that died long ago.)
        for _ in 0..MAX_ATTEMPTS {
            assert!(
                db.begin_ingest_attempt(id, Duration::ZERO)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        let outcome = ingestor.process(id).await.unwrap();
        match outcome {
            Outcome::Failed(reason) => assert!(reason.contains("reparse"), "{reason}"),
            other => panic!("expected failed, got {other:?}"),
        }
        // Nothing else waits behind it.
        assert!(db.pending_ingest(10).await.unwrap().is_empty());
    }

    /// Two hourly rows on day `day` (0-based) of 2026.
    fn rows_of_day(day: usize) -> Vec<u8> {
        let (mut month, mut d) = (1, day);
        for len in [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31] {
            if d < len {
                break;
            }
            d -= len;
            month += 1;
        }
        let date = format!("2026-{month:02}-{:02}", d + 1);
        format!(
            "(1)({date},11:00:00)(1.5)(1.5)(1.5)(1.5)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n\
             (2)({date},12:00:00)(2.5)(2.5)(2.5)(2.5)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n"
        )
        .into_bytes()
    }

    /// More small uploads than a group holds, one of them tried before (a
    /// worker died on it) and one that is not an archive: each ends in its
    /// own right state, and `each` hears of every upload once.
    #[tokio::test]
    async fn small_uploads_go_in_groups_and_one_tried_before_goes_alone() {
        let n = GROUP_UPLOADS + 10;
        let mut files: Vec<Vec<u8>> = (0..n).map(rows_of_day).collect();
        files[5] = b"not an archive at all".to_vec();
        let (_d, ingestor, db, ids) = setup_many(&files).await;
        let tried = ids[7];
        assert_eq!(
            db.begin_ingest_attempt(tried, Duration::ZERO)
                .await
                .unwrap(),
            Some(1)
        );
        let mut seen = std::collections::BTreeMap::new();
        ingestor
            .process_many(&ids, |id, result| {
                assert!(
                    seen.insert(id, result.unwrap()).is_none(),
                    "#{} twice",
                    id.0
                );
            })
            .await;
        assert_eq!(seen.len(), n);
        for (i, id) in ids.iter().enumerate() {
            match (&seen[id], i) {
                (Outcome::Quarantined(_), 5) => {}
                (Outcome::Parsed(info), i) if i != 5 => {
                    assert_eq!(info.records.new, 2, "upload {i}")
                }
                (other, i) => panic!("upload {i}: {other:?}"),
            }
            let stored = db.upload(*id).await.unwrap().unwrap().ingest.unwrap();
            assert_eq!(stored.status, seen[id].state());
        }
        assert!(db.pending_ingest(100).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_interrupted_attempt_is_simply_redone() {
        let (_d, ingestor, db, id) = setup(ROWS).await;
        assert_eq!(
            db.begin_ingest_attempt(id, Duration::ZERO).await.unwrap(),
            Some(1)
        );
        assert_eq!(db.pending_ingest(10).await.unwrap(), vec![id]);
        match ingestor.process(id).await.unwrap() {
            Outcome::Parsed(info) => assert_eq!(info.records.new, 2),
            other => panic!("expected parsed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn the_worker_drains_the_queue_and_stops_on_shutdown() {
        let (_d, ingestor, db, id) = setup(ROWS).await;
        let (tx, rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(ingestor.clone().run(rx));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let u = db.upload(id).await.unwrap().unwrap();
            if u.ingest.map(|i| i.status) == Some(IngestState::Parsed) {
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "not parsed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx.send(true).unwrap();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn the_worker_stops_when_told_even_with_uploads_queued() {
        let (_dir, ingestor, db, id) = setup(b"queued, never parsed").await;
        assert_eq!(db.pending_ingest(10).await.unwrap(), vec![id]);
        let (tx, rx) = tokio::sync::watch::channel(true);
        let stopped = tokio::time::timeout(Duration::from_secs(10), ingestor.run(rx)).await;
        assert!(stopped.is_ok(), "the worker kept turning after the stop");
        drop(tx);
        assert_eq!(
            db.pending_ingest(10).await.unwrap(),
            vec![id],
            "left for the next start"
        );
    }
}
