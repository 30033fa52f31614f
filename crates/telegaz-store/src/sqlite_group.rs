//! Group commit of the session writes on SQLite: the start and the end of
//! uploads.
//!
//! SQLite has one writer and `synchronous = FULL` makes every commit an
//! fsync of the WAL. Committed one by one, a fleet uploading at the top of
//! the hour queued two fsync'd transactions per upload behind each other
//! while the CPUs idled. Here one task commits them: it takes what is
//! waiting when the turn to write comes (up to [`MAX_GROUP`] writes), runs
//! them one after the other in one transaction, commits once, and only then
//! answers each. Each caller still hears back only once its write is
//! durable, and a write is never answered from a transaction that did not
//! commit. When the group fails (one write is refused, say, or the commit
//! fails), it is rolled back and every write of it is done again in a
//! transaction of its own, so that one refused write costs the others
//! nothing and each caller gets its own answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use telegaz_domain::{NewUpload, UploadFinish, UploadId};
use tokio::sync::{mpsc, oneshot};

use crate::sqlite::{SqliteDatabase, WriteTx, finish_upload_in, insert_upload_in};
use crate::{FinishedUpload, Result, StoreError};

/// Writes committed together at most (a burst of 500 sessions gives
/// groups of a few dozen to a few hundred).
const MAX_GROUP: usize = 512;

/// One session write waiting for its commit.
pub(crate) enum Job {
    Begin {
        upload: NewUpload,
        receiver: Option<String>,
        reply: oneshot::Sender<Result<UploadId>>,
    },
    Finish {
        id: UploadId,
        finish: UploadFinish,
        reply: oneshot::Sender<Result<FinishedUpload>>,
    },
}

/// What a job's statements returned, kept until the commit.
enum Done {
    Begun(UploadId),
    Finished(FinishedUpload),
}

impl Job {
    /// Its caller is gone (dropped before its turn): like a write dropped
    /// before its transaction began, it is not done.
    fn abandoned(&self) -> bool {
        match self {
            Job::Begin { reply, .. } => reply.is_closed(),
            Job::Finish { reply, .. } => reply.is_closed(),
        }
    }

    async fn execute(&self, tx: &mut sqlx::SqliteConnection) -> Result<Done> {
        match self {
            Job::Begin {
                upload, receiver, ..
            } => insert_upload_in(tx, upload, receiver.as_deref())
                .await
                .map(Done::Begun),
            Job::Finish { id, finish, .. } => {
                finish_upload_in(tx, *id, finish).await.map(Done::Finished)
            }
        }
    }

    /// Answer the caller (who may have gone: nothing to do then).
    fn answer(self, result: Result<Done>) {
        match self {
            Job::Begin { reply, .. } => {
                let _ = reply.send(result.and_then(|d| match d {
                    Done::Begun(id) => Ok(id),
                    Done::Finished(_) => Err(mixed_up()),
                }));
            }
            Job::Finish { reply, .. } => {
                let _ = reply.send(result.and_then(|d| match d {
                    Done::Finished(f) => Ok(f),
                    Done::Begun(_) => Err(mixed_up()),
                }));
            }
        }
    }
}

fn mixed_up() -> StoreError {
    StoreError::Corrupt("a session write was answered with another's result".into())
}

/// The committer's mailbox, started on first use (and again, on the runtime
/// at hand, if the runtime that ran it has shut down).
#[derive(Debug, Default)]
pub(crate) struct Group {
    mailbox: Mutex<Option<mpsc::UnboundedSender<Job>>>,
    counts: Arc<Counts>,
}

/// Transactions the committer committed and the writes answered from them
/// (also the `telegaz_store_session_*` metrics).
#[derive(Debug, Default)]
struct Counts {
    commits: AtomicU64,
    writes: AtomicU64,
}

impl Counts {
    fn committed(&self, writes: usize) {
        let writes = writes as u64;
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(writes, Ordering::Relaxed);
        metrics::counter!("telegaz_store_session_commits_total").increment(1);
        metrics::counter!("telegaz_store_session_writes_total").increment(writes);
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Begin { upload, .. } => write!(f, "Begin({})", upload.path),
            Job::Finish { id, .. } => write!(f, "Finish({id})"),
        }
    }
}

impl Group {
    /// (commits, writes) so far.
    #[cfg(test)]
    pub(crate) fn counts(&self) -> (u64, u64) {
        (
            self.counts.commits.load(Ordering::Relaxed),
            self.counts.writes.load(Ordering::Relaxed),
        )
    }
}

impl SqliteDatabase {
    /// Hand a session write to the committer and wait for its answer, given
    /// once the transaction that holds it has committed.
    pub(crate) async fn session_write<T>(
        &self,
        job: impl FnOnce(oneshot::Sender<Result<T>>) -> Job,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.submit(job(reply))?;
        answer.await.unwrap_or(Err(StoreError::WriterStopped))
    }

    fn submit(&self, job: Job) -> Result<()> {
        let mut mailbox = self
            .group()
            .mailbox
            .lock()
            .map_err(|_| StoreError::WriterStopped)?;
        let job = match mailbox.as_ref() {
            Some(m) => match m.send(job) {
                Ok(()) => return Ok(()),
                // The committer's runtime is gone.
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let m = self.start_committer().ok_or(StoreError::WriterStopped)?;
        let sent = m.send(job).map_err(|_| StoreError::WriterStopped);
        *mailbox = Some(m);
        sent
    }

    /// Start the committer on the runtime at hand. It holds a copy of the
    /// database without the mailbox, so it ends when the last handle of the
    /// database is dropped.
    fn start_committer(&self) -> Option<mpsc::UnboundedSender<Job>> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (mailbox, jobs) = mpsc::unbounded_channel();
        let db = self.detached();
        let counts = self.group().counts.clone();
        runtime.spawn(commit_loop(db, counts, jobs));
        Some(mailbox)
    }
}

async fn commit_loop(
    db: SqliteDatabase,
    counts: Arc<Counts>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
) {
    while let Some(first) = jobs.recv().await {
        let mut waiting = vec![first];
        take_waiting(&mut jobs, &mut waiting);
        let tx = db.finish_write_tx().await;
        // What came in while the turn was awaited goes along.
        take_waiting(&mut jobs, &mut waiting);
        waiting.retain(|j| !j.abandoned());
        if waiting.is_empty() {
            if let Ok(tx) = tx {
                let _ = tx.rollback().await;
            }
            continue;
        }
        let result = match tx {
            Ok(tx) => together(tx, &waiting).await,
            Err(e) => Err(e),
        };
        match result {
            Ok(done) => {
                counts.committed(done.len());
                for (job, d) in waiting.into_iter().zip(done) {
                    job.answer(Ok(d));
                }
            }
            Err(e) if waiting.len() == 1 => {
                if let Some(job) = waiting.pop() {
                    job.answer(Err(e));
                }
            }
            Err(e) => {
                tracing::debug!(
                    error = %e,
                    writes = waiting.len(),
                    "session writes failed together; each is done again on its own"
                );
                for job in waiting {
                    let result = match db.finish_write_tx().await {
                        Ok(tx) => together(tx, std::slice::from_ref(&job)).await,
                        Err(e) => Err(e),
                    };
                    let result = result.and_then(|mut d| d.pop().ok_or_else(mixed_up));
                    if result.is_ok() {
                        counts.committed(1);
                    }
                    job.answer(result);
                }
            }
        }
    }
}

fn take_waiting(jobs: &mut mpsc::UnboundedReceiver<Job>, waiting: &mut Vec<Job>) {
    while waiting.len() < MAX_GROUP {
        match jobs.try_recv() {
            Ok(job) => waiting.push(job),
            Err(_) => break,
        }
    }
}

/// Run `jobs` in `tx` and commit: every result, or the first error (the
/// transaction rolled back).
async fn together(mut tx: WriteTx, jobs: &[Job]) -> Result<Vec<Done>> {
    let mut done = Vec::with_capacity(jobs.len());
    for job in jobs {
        match job.execute(&mut tx).await {
            Ok(d) => done.push(d),
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e);
            }
        }
    }
    tx.commit()
        .await
        .map_err(StoreError::query("committing session writes"))?;
    Ok(done)
}
