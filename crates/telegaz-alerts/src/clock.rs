//! Where "now" comes from.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

/// The time source of alert evaluation and dispatch.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to (for tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(at: Timestamp) -> Self {
        ManualClock(Mutex::new(at))
    }

    pub fn set(&self, at: Timestamp) {
        match self.0.lock() {
            Ok(mut t) => *t = at,
            Err(poisoned) => *poisoned.into_inner() = at,
        }
    }

    pub fn advance(&self, by: SignedDuration) {
        let now = self.now();
        self.set(now.checked_add(by).unwrap_or(now));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        match self.0.lock() {
            Ok(t) => *t,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}
