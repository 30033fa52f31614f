//! The session writes on SQLite (the start and the end of uploads) and
//! group commit.
//!
//! SQLite has one writer and `synchronous = FULL` makes every commit an
//! fsync of the WAL. With a group of more than one, one task commits the
//! session writes: when the turn to write comes, it takes up to
//! [`StoreOptions::sqlite_session_group`](crate::StoreOptions) of the writes
//! waiting (ends of uploads first), runs them one after the other in one
//! transaction, commits once, and only then answers each. Each caller hears
//! back only once its write is durable, and a write is never answered from
//! a transaction that did not commit. When a group fails (one write is
//! refused, say, or the commit fails), it is rolled back and every write of
//! it is done again in a transaction of its own, so that one refused write
//! costs the others nothing and each caller gets its own answer.
//!
//! With the default group of one there is no committer: each write is its
//! own transaction in the caller's task, the end of an upload in the lane
//! ahead of ordinary writers (as before group commit existed; through one
//! committer task the readings of a burst came later). A fleet that calls
//! at the same minute is acknowledged about twice as fast with groups of
//! hundreds, at the cost of fresh readings while it lasts (BENCHMARKS.md,
//! "Group commit").

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use telegaz_domain::{NewUpload, UploadFinish, UploadId};
use tokio::sync::{mpsc, oneshot};

use crate::sqlite::{SqliteDatabase, WriteTx, finish_upload_in, insert_upload_in};
use crate::{FinishedUpload, Result, StoreError};

/// The most session writes one transaction takes when the configuration
/// does not say ([`crate::StoreOptions::sqlite_session_group`]): 16. In the
/// burst of 2,000 units (BENCHMARKS.md, "Session groups") that acknowledged
/// the fleet in 4.3-5.1 s against 5.6-6.6 s with each write its own
/// transaction, and kept its readings queryable within 0.36-0.56 s (p99).
/// Groups of 32 were a little faster (4.2-4.7 s) but their p99 went up to
/// 1.0 s when the machine was busier, and 64 to 1.1 s: the ingest worker
/// gets too little of two cores.
pub const DEFAULT_SESSION_GROUP: usize = 16;

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

    fn is_finish(&self) -> bool {
        matches!(self, Job::Finish { .. })
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
    let max = db.session_group().max(1);
    let mut pending = VecDeque::new();
    loop {
        if pending.is_empty() {
            match jobs.recv().await {
                Some(job) => pending.push_back(job),
                None => return,
            }
        }
        take_waiting(&mut jobs, &mut pending);
        let tx = db.finish_write_tx().await;
        // What came in while the turn was awaited can go along.
        take_waiting(&mut jobs, &mut pending);
        pending.retain(|j| !j.abandoned());
        let group = next_group(&mut pending, max);
        if group.is_empty() {
            if let Ok(tx) = tx {
                let _ = tx.rollback().await;
            }
            continue;
        }
        let result = match tx {
            Ok(tx) => together(tx, &group).await,
            Err(e) => Err(e),
        };
        answer_group(&db, &counts, group, result).await;
    }
}

/// Answer a group's writes from its result; when the group failed, do each
/// write again in a transaction of its own and answer from that.
async fn answer_group(
    db: &SqliteDatabase,
    counts: &Counts,
    mut group: Vec<Job>,
    result: Result<Vec<Done>>,
) {
    match result {
        Ok(done) => {
            counts.committed(done.len());
            for (job, d) in group.into_iter().zip(done) {
                job.answer(Ok(d));
            }
        }
        Err(e) if group.len() == 1 => {
            if let Some(job) = group.pop() {
                job.answer(Err(e));
            }
        }
        Err(e) => {
            tracing::debug!(
                error = %e,
                writes = group.len(),
                "session writes failed together; each is done again on its own"
            );
            for job in group {
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

fn take_waiting(jobs: &mut mpsc::UnboundedReceiver<Job>, pending: &mut VecDeque<Job>) {
    while let Ok(job) = jobs.try_recv() {
        pending.push_back(job);
    }
}

/// Up to `max` writes for the next transaction: the ends of uploads first
/// (what is in progress is finished first, so that its 226 and its readings
/// do not wait for sessions that began after it), then starts, each in the
/// order they came.
fn next_group(pending: &mut VecDeque<Job>, max: usize) -> Vec<Job> {
    let mut group = Vec::new();
    for finishes in [true, false] {
        let mut rest = VecDeque::with_capacity(pending.len());
        for job in pending.drain(..) {
            if group.len() < max && job.is_finish() == finishes {
                group.push(job);
            } else {
                rest.push_back(job);
            }
        }
        *pending = rest;
    }
    group
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
