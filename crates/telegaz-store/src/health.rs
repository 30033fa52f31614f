//! Whether the database answers: shared by the receiver (which falls back to
//! its outage journal while it does not), `/healthz` and `/metrics`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use jiff::Timestamp;

#[derive(Debug, Default)]
struct State {
    down: AtomicBool,
    /// Uploads kept in the outage journal, not yet recorded in the database.
    waiting: AtomicU64,
    since: Mutex<Option<(Timestamp, String)>>,
}

/// The database's availability as the receiver sees it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct DbHealth {
    state: Arc<State>,
}

impl DbHealth {
    pub fn new() -> Self {
        let h = DbHealth::default();
        metrics::gauge!("telegaz_database_up").set(1.0);
        h
    }

    /// True while the database is unavailable.
    pub fn is_down(&self) -> bool {
        self.state.down.load(Ordering::Acquire)
    }

    /// Since when, and why, when it is unavailable.
    pub fn down_since(&self) -> Option<(Timestamp, String)> {
        self.state.since.lock().ok().and_then(|s| s.clone())
    }

    /// The database failed (`why` is the error, for the operator). Logs the
    /// change once; returns true when this call changed the state.
    pub fn mark_down(&self, why: &str) -> bool {
        if self.state.down.swap(true, Ordering::AcqRel) {
            return false;
        }
        if let Ok(mut s) = self.state.since.lock() {
            *s = Some((Timestamp::now(), why.to_owned()));
        }
        metrics::gauge!("telegaz_database_up").set(0.0);
        metrics::counter!("telegaz_database_outages_total").increment(1);
        tracing::error!(
            error = why,
            "the database is unavailable: uploads are kept in the spool and the outage journal and will be recorded when it is back; check the database server (or what holds the SQLite file)"
        );
        true
    }

    /// The database answered a write again. Logs the change once; returns true
    /// when this call changed the state.
    pub fn mark_up(&self) -> bool {
        if !self.state.down.swap(false, Ordering::AcqRel) {
            return false;
        }
        let since = self.state.since.lock().ok().and_then(|mut s| s.take());
        metrics::gauge!("telegaz_database_up").set(1.0);
        let secs = since.map_or(0, |(t, _)| {
            Timestamp::now().duration_since(t).as_secs().max(0)
        });
        tracing::warn!(
            outage_secs = secs,
            waiting = self.waiting(),
            "the database is available again; uploads kept during the outage are being recorded"
        );
        true
    }

    /// How many uploads wait in the outage journal.
    pub fn waiting(&self) -> u64 {
        self.state.waiting.load(Ordering::Acquire)
    }

    pub fn set_waiting(&self, n: u64) {
        self.state.waiting.store(n, Ordering::Release);
        metrics::gauge!("telegaz_outage_uploads_waiting").set(n as f64);
    }

    /// One line for `/healthz`: `ok`, or `degraded: …`.
    pub fn summary(&self) -> String {
        match self.down_since() {
            Some((since, why)) if self.is_down() => format!(
                "degraded: database unavailable since {since} ({why}); uploads are accepted into the spool ({} waiting to be recorded)",
                self.waiting()
            ),
            _ if self.waiting() > 0 => format!(
                "degraded: recording {} uploads received while the database was unavailable",
                self.waiting()
            ),
            _ => "ok".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goes_down_and_up_once() {
        let h = DbHealth::new();
        assert_eq!(h.summary(), "ok");
        assert!(h.mark_down("locked"));
        assert!(!h.mark_down("locked again"));
        assert!(h.summary().starts_with("degraded: database unavailable"));
        assert!(h.summary().contains("locked"));
        assert!(h.mark_up());
        assert!(!h.mark_up());
        h.set_waiting(2);
        assert!(h.summary().starts_with("degraded: recording 2"));
        h.set_waiting(0);
        assert_eq!(h.summary(), "ok");
    }
}
