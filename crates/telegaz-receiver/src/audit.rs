//! The audit trail: every event is logged (tracing), counted (metrics) and
//! written to the audit table by a background task in batches, so that a burst of
//! connections does not queue one database commit per line.
//!
//! While the database is away the events wait in a bounded queue and the writer
//! keeps retrying (with a growing pause); nobody who records an event waits for
//! the database. Only when the queue is full is an event left to the log alone
//! (counted in `telegaz_audit_dropped_total`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use telegaz_domain::NewAuditEvent;
use telegaz_store::Database;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Event(Box<NewAuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Handle for recording audit events. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
    dropped: Arc<AtomicU64>,
}

/// Events that may wait for the database (about 100 MB at most).
const QUEUE: usize = 200_000;
const BATCH: usize = 512;
/// The longest pause between two tries while the database is away.
const MAX_PAUSE: Duration = Duration::from_secs(5);
/// How long one write may take before it counts as failed.
const WRITE_WAIT: Duration = Duration::from_secs(60);
/// Tries after the server began to stop, before the rest is left to the log.
const TRIES_WHEN_STOPPING: u32 = 3;

impl AuditLog {
    /// Start the writer task.
    pub fn start(db: Arc<dyn Database>) -> (AuditLog, tokio::task::JoinHandle<()>) {
        Self::start_with_capacity(db, QUEUE)
    }

    /// Start the writer task with room for `capacity` waiting events.
    pub fn start_with_capacity(
        db: Arc<dyn Database>,
        capacity: usize,
    ) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let handle = tokio::spawn(writer(db, rx));
        (
            AuditLog {
                tx,
                dropped: Arc::default(),
            },
            handle,
        )
    }

    /// Record an event: log it, count it, queue it for the database. Never
    /// waits for the database; when the queue is full the event is in the log only.
    pub async fn record(&self, event: NewAuditEvent) {
        tracing::info!(
            target: "telegaz::audit",
            kind = event.kind.as_str(),
            outcome = %event.outcome,
            session = event.session.as_deref().unwrap_or(""),
            peer = event.peer.as_deref().unwrap_or(""),
            login = event.login.as_deref().unwrap_or(""),
            device_id = event.device_id.map(|d| d.0),
            upload_id = event.upload_id.map(|u| u.0),
            detail = %event.detail,
            "audit"
        );
        metrics::counter!(
            "telegaz_audit_events_total",
            "kind" => event.kind.as_str(),
        )
        .increment(1);
        match self.tx.try_send(Msg::Event(Box::new(event))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("telegaz_audit_dropped_total").increment(1);
                let n = self.dropped.fetch_add(1, Ordering::Relaxed);
                if n.is_power_of_two() || n == 0 {
                    tracing::error!(
                        dropped = n + 1,
                        "the audit queue is full (the database has been away for long): events are only in the log until it is back"
                    );
                }
            }
            Err(TrySendError::Closed(_)) => {
                tracing::error!("audit writer has stopped; the event above is only in the log");
            }
        }
    }

    /// Wait until everything recorded so far is in the database (or given up on).
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }
}

async fn writer(db: Arc<dyn Database>, mut rx: mpsc::Receiver<Msg>) {
    let mut batch: Vec<NewAuditEvent> = Vec::with_capacity(BATCH);
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(msg) = next.take() {
            match msg {
                Msg::Event(e) => batch.push(*e),
                Msg::Flush(w) => waiters.push(w),
            }
            if batch.len() >= BATCH {
                break;
            }
            next = rx.try_recv().ok();
        }
        let written = write_batch(&*db, &mut batch, &rx).await;
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
        if !written {
            // Stopping, and the database is still away: the rest is in the log.
            let mut rest = 0usize;
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    Msg::Event(_) => rest += 1,
                    Msg::Flush(w) => {
                        let _ = w.send(());
                    }
                }
            }
            if rest > 0 {
                tracing::error!(
                    events = rest,
                    "more audit events not written to the database before the stop; they remain in the log only"
                );
            }
            return;
        }
    }
}

/// Write a batch, retrying while the database is busy or away. Gives up only
/// when the server is stopping (every handle dropped) and a few tries failed.
/// Returns false when it gave up.
async fn write_batch(
    db: &dyn Database,
    batch: &mut Vec<NewAuditEvent>,
    rx: &mpsc::Receiver<Msg>,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let mut pause = Duration::from_millis(100);
    let mut attempt = 0u32;
    let mut tries_stopping = 0u32;
    loop {
        attempt += 1;
        let error = match tokio::time::timeout(WRITE_WAIT, db.insert_audit(batch)).await {
            Ok(Ok(())) => {
                if attempt > 1 {
                    tracing::info!(
                        events = batch.len(),
                        attempt,
                        "audit events that waited for the database are written"
                    );
                }
                batch.clear();
                return true;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {} s", WRITE_WAIT.as_secs()),
        };
        metrics::counter!("telegaz_audit_write_failures_total").increment(1);
        if attempt == 1 || attempt.is_power_of_two() {
            tracing::warn!(attempt, error = %error, events = batch.len(), waiting = rx.len(),
                "audit write failed; the events wait in memory and are retried");
        }
        if rx.is_closed() {
            tries_stopping += 1;
            if tries_stopping >= TRIES_WHEN_STOPPING {
                tracing::error!(
                    events = batch.len() + rx.len(),
                    "audit events could not be written to the database before the stop; they remain in the log only"
                );
                batch.clear();
                return false;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
