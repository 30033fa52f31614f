//! Sending the queued notifications through each notifier.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use telegaz_domain::Notification;
use telegaz_store::{Database, SendOutcome, StoreError};

use crate::Clock;

/// Why a send failed, and whether trying again later may help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    pub retryable: bool,
}

/// Something that delivers notifications: e-mail, a webhook, Telegram, MQTT.
#[async_trait]
pub trait Sender: Send + Sync {
    /// The name notifications are queued under (from the configuration).
    fn name(&self) -> &str;
    async fn send(&self, notification: &Notification) -> Result<(), SendError>;
}

/// Sends what is due, for every notifier, and records each attempt.
pub struct Dispatcher {
    db: Arc<dyn Database>,
    clock: Arc<dyn Clock>,
    senders: Vec<Arc<dyn Sender>>,
    /// The longest one send may take before it counts as failed (retryable).
    pub send_timeout: Duration,
    /// A notification not sent this long after it was made is given up.
    pub give_up_after: SignedDuration,
    /// The shortest pause before a retry (the pauses then grow with the
    /// wait, up to an hour).
    pub first_retry: SignedDuration,
    /// How often each notifier's queue is looked at.
    pub poll: Duration,
    /// At most this many notifications a minute per notifier; the rest wait
    /// (in order) for the next minute.
    pub max_per_minute: usize,
    /// When each notifier sent its recent notifications.
    recent:
        std::sync::Mutex<std::collections::HashMap<String, std::collections::VecDeque<Timestamp>>>,
}

/// The pause before the next attempt: as long as the notification has been
/// waiting, at least `first` and at most an hour (1, 1, 2, 4, … minutes).
fn next_attempt(now: Timestamp, made: Timestamp, first: SignedDuration) -> Timestamp {
    let waited = now.duration_since(made);
    let pause = waited.clamp(first, SignedDuration::from_hours(1).max(first));
    now.checked_add(pause).unwrap_or(now)
}

impl Dispatcher {
    pub fn new(
        db: Arc<dyn Database>,
        clock: Arc<dyn Clock>,
        senders: Vec<Arc<dyn Sender>>,
    ) -> Self {
        Dispatcher {
            db,
            clock,
            senders,
            send_timeout: Duration::from_secs(30),
            give_up_after: SignedDuration::from_hours(24),
            first_retry: SignedDuration::from_mins(1),
            poll: Duration::from_secs(5),
            max_per_minute: 30,
            recent: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    /// How many more this notifier may send in the minute up to `now`.
    fn budget(&self, name: &str, now: Timestamp) -> usize {
        let Ok(mut recent) = self.recent.lock() else {
            return self.max_per_minute;
        };
        let times = recent.entry(name.to_owned()).or_default();
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) >= SignedDuration::from_mins(1))
        {
            times.pop_front();
        }
        self.max_per_minute.saturating_sub(times.len())
    }

    fn spent(&self, name: &str, at: Timestamp) {
        if let Ok(mut recent) = self.recent.lock() {
            recent.entry(name.to_owned()).or_default().push_back(at);
        }
    }

    /// One pass over one notifier: send what is due now, within its budget.
    async fn deliver(&self, sender: &dyn Sender) -> Result<usize, StoreError> {
        let now = self.clock.now();
        let budget = self.budget(sender.name(), now);
        if budget == 0 {
            return Ok(0);
        }
        let limit = u32::try_from(budget.min(100)).unwrap_or(100);
        let due = self.db.due_notifications(sender.name(), now, limit).await?;
        let mut sent = 0;
        for n in &due {
            self.spent(sender.name(), now);
            let result = match tokio::time::timeout(self.send_timeout, sender.send(n)).await {
                Ok(r) => r,
                Err(_) => Err(SendError {
                    message: format!("no answer within {} s", self.send_timeout.as_secs()),
                    retryable: true,
                }),
            };
            let now = self.clock.now();
            let outcome = match result {
                Ok(()) => {
                    sent += 1;
                    SendOutcome::Sent
                }
                Err(e) if e.retryable && now.duration_since(n.at) < self.give_up_after => {
                    tracing::warn!(notifier = sender.name(), notification = n.id, error = %e, "notification not sent; will retry");
                    SendOutcome::Retry {
                        error: e.message,
                        at: next_attempt(now, n.at, self.first_retry),
                    }
                }
                Err(e) => {
                    tracing::error!(notifier = sender.name(), notification = n.id, error = %e, "notification given up");
                    SendOutcome::Failed { error: e.message }
                }
            };
            let label = match &outcome {
                SendOutcome::Sent => "sent",
                SendOutcome::Retry { .. } => "retry",
                SendOutcome::Failed { .. } => "failed",
            };
            metrics::counter!("telegaz_notifications_total", "notifier" => sender.name().to_owned(), "outcome" => label)
                .increment(1);
            self.db
                .finish_notification(n.id, sender.name(), &outcome, now)
                .await?;
        }
        Ok(sent)
    }

    /// One pass over every notifier; returns how many were sent.
    pub async fn deliver_due(&self) -> usize {
        let mut sent = 0;
        for s in &self.senders {
            match self.deliver(&**s).await {
                Ok(n) => sent += n,
                Err(e) => {
                    tracing::error!(notifier = s.name(), error = %e, "cannot record notifications")
                }
            }
        }
        sent
    }

    /// Deliver until `shutdown` changes: each notifier in its own task, so a
    /// slow one never holds up the others.
    pub async fn run(self, shutdown: tokio::sync::watch::Receiver<bool>) {
        let me = Arc::new(self);
        let mut tasks = Vec::new();
        for sender in me.senders.clone() {
            let me = me.clone();
            let mut stop = shutdown.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    if let Err(e) = me.deliver(&*sender).await {
                        tracing::error!(notifier = sender.name(), error = %e, "cannot record notifications");
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(me.poll) => {}
                        _ = stop.changed() => return,
                    }
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_grow_with_the_wait_between_a_minute_and_an_hour() {
        let made: Timestamp = "2026-11-25T10:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let at = |mins: i64| {
            made.checked_add(SignedDuration::from_mins(mins))
                .unwrap_or(made)
        };
        let first = SignedDuration::from_mins(1);
        assert_eq!(next_attempt(at(0), made, first), at(1));
        assert_eq!(next_attempt(at(4), made, first), at(8));
        assert_eq!(next_attempt(at(300), made, first), at(360));
    }
}
