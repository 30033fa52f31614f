//! The audit trail: every event is logged (tracing), counted (metrics) and
//! written to the audit table by a background task in batches, so that a burst of
//! connections does not queue one database commit per line.

use std::sync::Arc;
use std::time::Duration;

use telegaz_domain::NewAuditEvent;
use telegaz_store::Database;
use tokio::sync::{mpsc, oneshot};

enum Msg {
    Event(Box<NewAuditEvent>),
    Flush(oneshot::Sender<()>),
}

/// Handle for recording audit events. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    tx: mpsc::Sender<Msg>,
}

const QUEUE: usize = 10_000;
const BATCH: usize = 512;

impl AuditLog {
    /// Start the writer task.
    pub fn start(db: Arc<dyn Database>) -> (AuditLog, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        let handle = tokio::spawn(writer(db, rx));
        (AuditLog { tx }, handle)
    }

    /// Record an event: log it, count it, queue it for the database. Waits for
    /// room in the queue rather than dropping anything.
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
        if self.tx.send(Msg::Event(Box::new(event))).await.is_err() {
            tracing::error!("audit writer has stopped; the event above is only in the log");
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
        write_batch(&*db, &mut batch).await;
        for w in waiters.drain(..) {
            let _ = w.send(());
        }
    }
    write_batch(&*db, &mut batch).await;
}

/// Write a batch, retrying a few times while the database is busy or away.
async fn write_batch(db: &dyn Database, batch: &mut Vec<NewAuditEvent>) {
    if batch.is_empty() {
        return;
    }
    let mut delay = Duration::from_millis(100);
    for attempt in 1..=5 {
        match db.insert_audit(batch).await {
            Ok(()) => {
                batch.clear();
                return;
            }
            Err(e) => {
                tracing::warn!(attempt, error = %e, events = batch.len(), "audit write failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    tracing::error!(
        events = batch.len(),
        "audit events could not be written to the database; they remain in the log only"
    );
    metrics::counter!("telegaz_audit_write_failures_total").increment(batch.len() as u64);
    batch.clear();
}
