use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When repeated failed logins lead to a temporary block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThrottlePolicy {
    /// Failures of one login from one address before that pair is blocked.
    pub max_failures_per_login_and_address: u32,
    /// Failures from one address (any login) before the address is blocked.
    /// Mobile carriers put many units behind one NAT address, so keep this well
    /// above the per-login limit; 0 disables the per-address block.
    pub max_failures_per_address: u32,
    /// Failures older than this are forgotten.
    pub window: Duration,
    /// How long a block lasts.
    pub block_for: Duration,
    /// Bound on remembered (address, login) pairs and addresses, against floods.
    pub max_entries: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            max_failures_per_login_and_address: 5,
            max_failures_per_address: 30,
            window: Duration::from_secs(15 * 60),
            block_for: Duration::from_secs(10 * 60),
            max_entries: 100_000,
        }
    }
}

/// What a block applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockScope {
    LoginAndAddress,
    Address,
}

impl BlockScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BlockScope::LoginAndAddress => "login_and_address",
            BlockScope::Address => "address",
        }
    }
}

/// A login attempt refused without checking the password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    pub scope: BlockScope,
    pub remaining: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    window_start: Instant,
    blocked_until: Option<Instant>,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Entry {
            failures: 0,
            window_start: now,
            blocked_until: None,
        }
    }

    fn blocked(&self, now: Instant) -> Option<Duration> {
        self.blocked_until
            .and_then(|until| until.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    fn expired(&self, now: Instant, window: Duration) -> bool {
        self.blocked(now).is_none() && now.saturating_duration_since(self.window_start) >= window
    }

    /// Count one failure; returns true when it crosses `limit`.
    fn fail(&mut self, now: Instant, policy: &ThrottlePolicy, limit: u32) -> bool {
        if self.expired(now, policy.window) {
            *self = Entry::new(now);
        }
        self.failures = self.failures.saturating_add(1);
        if limit > 0 && self.failures >= limit {
            self.blocked_until = Some(now + policy.block_for);
            self.failures = 0;
            self.window_start = now;
            return true;
        }
        false
    }
}

#[derive(Debug, Default)]
struct State {
    pairs: HashMap<(IpAddr, String), Entry>,
    addresses: HashMap<IpAddr, Entry>,
}

/// The failed-login policy: counts failures per (address, login) and per
/// address, and refuses attempts while a block is in force.
#[derive(Debug)]
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    state: Mutex<State>,
}

impl LoginThrottle {
    pub fn new(policy: ThrottlePolicy) -> Self {
        LoginThrottle {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Is an attempt from `addr` for `login` allowed now?
    pub fn check(&self, addr: IpAddr, login: &str, now: Instant) -> Result<(), Blocked> {
        self.with_state(|s| {
            if let Some(remaining) = s.addresses.get(&addr).and_then(|e| e.blocked(now)) {
                return Err(Blocked {
                    scope: BlockScope::Address,
                    remaining,
                });
            }
            if let Some(remaining) = s
                .pairs
                .get(&(addr, login.to_owned()))
                .and_then(|e| e.blocked(now))
            {
                return Err(Blocked {
                    scope: BlockScope::LoginAndAddress,
                    remaining,
                });
            }
            Ok(())
        })
    }

    /// Record a failed attempt. Returns the block it started, if any.
    pub fn record_failure(&self, addr: IpAddr, login: &str, now: Instant) -> Option<Blocked> {
        let policy = &self.policy;
        self.with_state(|s| {
            Self::bound(s, now, policy);
            let pair = s
                .pairs
                .entry((addr, login.to_owned()))
                .or_insert_with(|| Entry::new(now));
            let pair_blocked = pair.fail(now, policy, policy.max_failures_per_login_and_address);
            let address = s.addresses.entry(addr).or_insert_with(|| Entry::new(now));
            let addr_blocked = address.fail(now, policy, policy.max_failures_per_address);
            if addr_blocked {
                Some(Blocked {
                    scope: BlockScope::Address,
                    remaining: policy.block_for,
                })
            } else if pair_blocked {
                Some(Blocked {
                    scope: BlockScope::LoginAndAddress,
                    remaining: policy.block_for,
                })
            } else {
                None
            }
        })
    }

    /// A successful login clears that pair's failures (not the address's).
    pub fn record_success(&self, addr: IpAddr, login: &str) {
        self.with_state(|s| {
            s.pairs.remove(&(addr, login.to_owned()));
        });
    }

    /// Make a block that is in force last `block_for` from `now` (a ban that
    /// grew with repeats): `login` `None` is the address's block.
    pub fn extend_block(
        &self,
        addr: IpAddr,
        login: Option<&str>,
        block_for: Duration,
        now: Instant,
    ) {
        self.with_state(|s| {
            let entry = match login {
                Some(l) => s.pairs.get_mut(&(addr, l.to_owned())),
                None => s.addresses.get_mut(&addr),
            };
            if let Some(e) = entry
                && e.blocked(now).is_some()
            {
                e.blocked_until = Some(now + block_for);
            }
        });
    }

    /// Forget the blocks (and counted failures) that refuse `login` from
    /// `addr`: the ban they were recorded as was lifted.
    pub fn forgive(&self, addr: IpAddr, login: &str) {
        self.with_state(|s| {
            s.pairs.remove(&(addr, login.to_owned()));
            s.addresses.remove(&addr);
        });
    }

    /// Keep memory bounded: forget expired entries, then the oldest ones.
    fn bound(s: &mut State, now: Instant, policy: &ThrottlePolicy) {
        let cap = policy.max_entries.max(1);
        if s.pairs.len() < cap && s.addresses.len() < cap {
            return;
        }
        s.pairs.retain(|_, e| !e.expired(now, policy.window));
        s.addresses.retain(|_, e| !e.expired(now, policy.window));
        if s.pairs.len() >= cap {
            let mut starts: Vec<Instant> = s.pairs.values().map(|e| e.window_start).collect();
            starts.sort_unstable();
            let cut = starts[starts.len() / 2];
            s.pairs
                .retain(|_, e| e.window_start > cut || e.blocked(now).is_some());
        }
        if s.addresses.len() >= cap {
            let mut starts: Vec<Instant> = s.addresses.values().map(|e| e.window_start).collect();
            starts.sort_unstable();
            let cut = starts[starts.len() / 2];
            s.addresses
                .retain(|_, e| e.window_start > cut || e.blocked(now).is_some());
        }
    }

    #[cfg(test)]
    fn sizes(&self) -> (usize, usize) {
        self.with_state(|s| (s.pairs.len(), s.addresses.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn policy() -> ThrottlePolicy {
        ThrottlePolicy {
            max_failures_per_login_and_address: 3,
            max_failures_per_address: 5,
            window: Duration::from_secs(60),
            block_for: Duration::from_secs(30),
            max_entries: 1000,
        }
    }

    #[test]
    fn pair_is_blocked_after_limit_and_released_after_block() {
        let t = LoginThrottle::new(policy());
        let now = Instant::now();
        let a = ip("198.51.100.1");
        assert!(t.record_failure(a, "u1", now).is_none());
        assert!(t.record_failure(a, "u1", now).is_none());
        let b = t.record_failure(a, "u1", now).unwrap();
        assert_eq!(b.scope, BlockScope::LoginAndAddress);
        assert_eq!(
            t.check(a, "u1", now).unwrap_err().scope,
            BlockScope::LoginAndAddress
        );
        // Another unit behind the same address is not affected.
        assert!(t.check(a, "u2", now).is_ok());
        // Another address for the same login is not affected.
        assert!(t.check(ip("198.51.100.2"), "u1", now).is_ok());
        assert!(t.check(a, "u1", now + Duration::from_secs(31)).is_ok());
    }

    #[test]
    fn address_is_blocked_after_spraying_logins() {
        let t = LoginThrottle::new(policy());
        let now = Instant::now();
        let a = ip("203.0.113.5");
        for i in 0..4 {
            assert!(t.record_failure(a, &format!("guess{i}"), now).is_none());
        }
        let b = t.record_failure(a, "guess4", now).unwrap();
        assert_eq!(b.scope, BlockScope::Address);
        assert_eq!(
            t.check(a, "anything", now).unwrap_err().scope,
            BlockScope::Address
        );
    }

    #[test]
    fn failures_outside_the_window_are_forgotten() {
        let t = LoginThrottle::new(policy());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        t.record_failure(a, "u", now);
        t.record_failure(a, "u", now);
        let later = now + Duration::from_secs(61);
        assert!(t.record_failure(a, "u", later).is_none());
        assert!(t.check(a, "u", later).is_ok());
    }

    #[test]
    fn success_clears_the_pair() {
        let t = LoginThrottle::new(policy());
        let now = Instant::now();
        let a = ip("192.0.2.1");
        t.record_failure(a, "u", now);
        t.record_failure(a, "u", now);
        t.record_success(a, "u");
        assert!(t.record_failure(a, "u", now).is_none());
    }

    #[test]
    fn a_block_can_grow_and_be_forgiven() {
        let t = LoginThrottle::new(policy());
        let now = Instant::now();
        let a = ip("192.0.2.9");
        for _ in 0..3 {
            t.record_failure(a, "u", now);
        }
        t.extend_block(a, Some("u"), Duration::from_secs(300), now);
        let later = now + Duration::from_secs(100);
        assert_eq!(
            t.check(a, "u", later).unwrap_err().remaining,
            Duration::from_secs(200)
        );
        // No block, nothing to extend.
        t.extend_block(a, Some("other"), Duration::from_secs(300), now);
        assert!(t.check(a, "other", now).is_ok());
        t.forgive(a, "u");
        assert!(t.check(a, "u", later).is_ok());
        // Its failures are forgotten too: it takes the full count again.
        assert!(t.record_failure(a, "u", later).is_none());
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut p = policy();
        p.max_entries = 100;
        p.max_failures_per_address = 0;
        let t = LoginThrottle::new(p);
        let now = Instant::now();
        for i in 0..10_000u32 {
            let a = IpAddr::from(i.to_be_bytes());
            t.record_failure(a, "x", now + Duration::from_millis(u64::from(i)));
        }
        let (pairs, addrs) = t.sizes();
        assert!(pairs <= 100 && addrs <= 100, "{pairs} {addrs}");
    }
}
