//! Request rate limits per client on the web listener (`[web.rate_limit]`):
//! every request, sign-in attempts (stricter), and API requests with bad
//! bearer tokens (a block after a few). A refused request gets `429 Too Many
//! Requests` with `Retry-After`, is counted in
//! `telegaz_web_rate_limited_total{limit}` and logged (at most one warning a
//! second, the rest at debug level, so that a flood does not flood the log).
//!
//! Who the client is: the TCP peer address, or, when the peer is a trusted
//! reverse proxy (`web.rate_limit.trusted_proxies`), the right-most address
//! in `X-Forwarded-For` that is not itself a trusted proxy. `X-Forwarded-For`
//! from anyone else is ignored (anybody can write it). IPv6 clients are
//! counted per /64 network (one host usually has the whole /64). The
//! sign-in throttle and the audit trail use the same address.
//!
//! Memory is bounded: each limit forgets idle clients, and when more than
//! `max_clients` are remembered all the same, that limit starts afresh
//! (counted in `telegaz_web_rate_limit_resets_total` and logged).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use telegaz_auth::{LoginThrottle, ThrottlePolicy};
use telegaz_config::WebRateLimitConfig;

use crate::Ctx;
use crate::error::WebError;

/// The client a request is counted for, resolved once per request by [`guard`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ClientAddr(pub IpAddr);

/// Which limit refused a request (the `limit` label of the metric).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Limit {
    Requests,
    SignIn,
    BadToken,
}

impl Limit {
    fn label(self) -> &'static str {
        match self {
            Limit::Requests => "requests",
            Limit::SignIn => "sign_in",
            Limit::BadToken => "bad_token",
        }
    }
}

/// How often the keyed limiters are swept of idle clients (in checks).
const SWEEP_EVERY: u64 = 1024;

/// One keyed GCRA limiter, bounded in the clients it remembers.
struct Keyed {
    quota: Quota,
    limiter: RwLock<DefaultKeyedRateLimiter<IpAddr>>,
    checks: AtomicU64,
    max_clients: usize,
    name: Limit,
}

impl Keyed {
    /// `None` when the rate is 0 (off) or cannot make a quota.
    fn new(per_second: f64, burst: u32, max_clients: usize, name: Limit) -> Option<Keyed> {
        if per_second.is_nan() || per_second <= 0.0 {
            return None;
        }
        let period = Duration::try_from_secs_f64(1.0 / per_second).ok()?;
        let quota = Quota::with_period(period)?.allow_burst(NonZeroU32::new(burst)?);
        Some(Keyed {
            quota,
            limiter: RwLock::new(RateLimiter::keyed(quota)),
            checks: AtomicU64::new(0),
            max_clients: max_clients.max(1),
            name,
        })
    }

    /// `Err(wait)` when `key` is over the limit.
    fn check(&self, key: IpAddr) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        let limiter = match self.limiter.read() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        limiter
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(limiter.clock().now()))
    }

    /// Forget idle clients; start afresh if still too many are remembered.
    fn sweep(&self) {
        let mut limiter = match self.limiter.write() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        let remembered = limiter.len();
        if remembered > self.max_clients {
            *limiter = RateLimiter::keyed(self.quota);
            metrics::counter!("telegaz_web_rate_limit_resets_total", "limit" => self.name.label())
                .increment(1);
            tracing::warn!(
                limit = self.name.label(),
                remembered,
                max_clients = self.max_clients,
                "web rate limit forgot every client: more were limited at once than web.rate_limit.max_clients; raise it if this repeats without an attack"
            );
        }
    }

    #[cfg(test)]
    fn remembered(&self) -> usize {
        match self.limiter.read() {
            Ok(l) => l.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }
}

/// Every limit of the web listener, from `[web.rate_limit]`.
pub(crate) struct RateLimits {
    requests: Option<Keyed>,
    sign_in: Option<Keyed>,
    bad_tokens: Option<LoginThrottle>,
    trusted_proxies: Vec<IpNet>,
    unlimited_scrapers: Vec<IpNet>,
    /// At most one warning a second about refused requests.
    log_gate: DefaultDirectRateLimiter,
}

/// The bad-token throttle counts per client under this one "login".
const BEARER: &str = "bearer token";

impl RateLimits {
    pub(crate) fn new(config: &WebRateLimitConfig) -> RateLimits {
        let max = config.max_clients;
        RateLimits {
            requests: Keyed::new(
                config.requests_per_second,
                config.burst,
                max,
                Limit::Requests,
            ),
            sign_in: Keyed::new(
                config.sign_in_per_minute / 60.0,
                config.sign_in_burst,
                max,
                Limit::SignIn,
            ),
            bad_tokens: (config.bad_token_failures > 0).then(|| {
                LoginThrottle::new(ThrottlePolicy {
                    max_failures_per_login_and_address: config.bad_token_failures,
                    max_failures_per_address: 0,
                    window: config.bad_token_window,
                    block_for: config.bad_token_block,
                    max_entries: max.max(1),
                })
            }),
            trusted_proxies: config.trusted_proxies.clone(),
            unlimited_scrapers: config.unlimited_scrapers.clone(),
            log_gate: RateLimiter::direct(Quota::per_second(NonZeroU32::MIN)),
        }
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from `peer` (see the module docs).
    pub(crate) fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.to_str().unwrap_or("").rsplit(','));
        for hop in hops {
            let Some(ip) = parse_hop(hop.trim()) else {
                // Not an address: the hops before it cannot be trusted.
                return client;
            };
            client = ip.to_canonical();
            if !self.trusted(client) {
                return client;
            }
        }
        client
    }

    /// Health and metrics scrapes from monitoring are never limited.
    fn unlimited(&self, path: &str, client: IpAddr) -> bool {
        matches!(path, "/healthz" | "/metrics")
            && self.unlimited_scrapers.iter().any(|n| n.contains(&client))
    }

    /// Refuse a request over a limit: `Err((limit, wait))`.
    fn check(&self, method: &Method, path: &str, client: IpAddr) -> Result<(), (Limit, Duration)> {
        if self.unlimited(path, client) {
            return Ok(());
        }
        let key = key_of(client);
        if let Some(requests) = &self.requests {
            requests.check(key).map_err(|w| (Limit::Requests, w))?;
        }
        if method == Method::POST
            && path == "/login"
            && let Some(sign_in) = &self.sign_in
        {
            sign_in.check(key).map_err(|w| (Limit::SignIn, w))?;
        }
        Ok(())
    }

    /// Before a bearer token is looked up: is this client blocked for bad ones?
    pub(crate) fn check_bearer(&self, client: IpAddr) -> Result<(), WebError> {
        let Some(throttle) = &self.bad_tokens else {
            return Ok(());
        };
        throttle
            .check(key_of(client), BEARER, Instant::now())
            .map_err(|blocked| self.refused(Limit::BadToken, blocked.remaining, client, "/api"))
    }

    /// A bearer token that is not valid was sent by `client`.
    pub(crate) fn bad_bearer(&self, client: IpAddr) {
        if let Some(throttle) = &self.bad_tokens
            && let Some(blocked) = throttle.record_failure(key_of(client), BEARER, Instant::now())
        {
            tracing::warn!(
                client = %client,
                block_s = blocked.remaining.as_secs(),
                "API client blocked after repeated bad bearer tokens (web.rate_limit.bad_token_failures)"
            );
        }
    }

    /// Count and log a refusal; the error that answers it.
    fn refused(&self, limit: Limit, wait: Duration, client: IpAddr, path: &str) -> WebError {
        metrics::counter!("telegaz_web_rate_limited_total", "limit" => limit.label()).increment(1);
        let retry_after_s = retry_after_secs(wait);
        if self.log_gate.check().is_ok() {
            tracing::warn!(
                client = %client,
                path,
                limit = limit.label(),
                retry_after_s,
                "web request refused: too many from this client (web.rate_limit; further refusals this second are logged at debug level)"
            );
        } else {
            tracing::debug!(client = %client, path, limit = limit.label(), "web request refused: too many");
        }
        WebError::TooManyRequests { retry_after_s }
    }
}

/// Whole seconds to wait, at least 1 (`Retry-After` has no fractions).
fn retry_after_secs(wait: Duration) -> u64 {
    let s = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    s.max(1)
}

/// One `X-Forwarded-For` hop: an address, maybe with a port.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    hop.parse::<IpAddr>()
        .ok()
        .or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// What a client is counted under: an IPv4 address, or an IPv6 /64 network.
fn key_of(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

/// The outermost check: resolve the client, refuse what is over a limit.
pub(crate) async fn guard(State(ctx): State<Ctx>, mut request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let limits = &ctx.limits;
    let client = limits.client(peer, request.headers());
    request.extensions_mut().insert(ClientAddr(client));
    let path = request.uri().path();
    if let Err((limit, wait)) = limits.check(request.method(), path, client) {
        let api = path.starts_with("/api/");
        let lang = crate::auth::lang_of(&request);
        return limits.refused(limit, wait, client, path).respond(api, lang);
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn limits(trusted: &[&str]) -> RateLimits {
        RateLimits::new(&WebRateLimitConfig {
            trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
            ..WebRateLimitConfig::default()
        })
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let none = limits(&[]);
        let h = xff(&["203.0.113.9"]);
        assert_eq!(none.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        let l = limits(&["10.0.0.0/8"]);
        // A stranger cannot choose its address.
        assert_eq!(l.client(ip("198.51.100.1"), &h), ip("198.51.100.1"));
        // Through the proxy: the client it saw.
        assert_eq!(l.client(ip("10.0.0.5"), &h), ip("203.0.113.9"));
        // A forged left part is skipped: the right-most untrusted hop wins.
        let forged = xff(&["1.2.3.4, 203.0.113.9, 10.0.0.7"]);
        assert_eq!(l.client(ip("10.0.0.5"), &forged), ip("203.0.113.9"));
        // Several header lines read as one list, in order.
        let lines = xff(&["1.2.3.4", "203.0.113.9:4711"]);
        assert_eq!(l.client(ip("10.0.0.5"), &lines), ip("203.0.113.9"));
        // Garbage stops the walk at the last trusted hop.
        let junk = xff(&["203.0.113.9, not-an-address"]);
        assert_eq!(l.client(ip("10.0.0.5"), &junk), ip("10.0.0.5"));
        // No header: the proxy itself.
        assert_eq!(l.client(ip("10.0.0.5"), &HeaderMap::new()), ip("10.0.0.5"));
        // IPv4-mapped peers count as IPv4.
        assert_eq!(l.client(ip("::ffff:10.0.0.5"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn ipv6_clients_count_per_64_network() {
        assert_eq!(key_of(ip("2001:db8:1:2:aaaa::1")), ip("2001:db8:1:2::"));
        assert_eq!(
            key_of(ip("2001:db8:1:2:ffff::9")),
            key_of(ip("2001:db8:1:2::7"))
        );
        assert_ne!(key_of(ip("2001:db8:1:3::1")), key_of(ip("2001:db8:1:2::1")));
        assert_eq!(key_of(ip("192.0.2.1")), ip("192.0.2.1"));
        assert_eq!(key_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
    }

    #[test]
    fn retry_after_is_whole_seconds_rounded_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_clients() {
        // One request an hour each, so no client is idle during the flood.
        let k = Keyed::new(1.0 / 3600.0, 1, 500, Limit::Requests).unwrap();
        for n in 0..20_000u32 {
            let _ = k.check(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)));
            assert!(
                k.remembered() <= 500 + SWEEP_EVERY as usize,
                "{} clients remembered after {n}",
                k.remembered()
            );
        }
        // Idle clients are forgotten at the next sweep.
        let fast = Keyed::new(1e6, 1, 100_000, Limit::Requests).unwrap();
        for n in 0..(3 * SWEEP_EVERY as u32) {
            let _ = fast.check(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + n)));
        }
        assert!(fast.remembered() < 2 * SWEEP_EVERY as usize);
    }

    #[test]
    fn zero_rates_turn_limits_off() {
        let off = RateLimits::new(&WebRateLimitConfig::off());
        for _ in 0..10_000 {
            assert!(off.check(&Method::POST, "/login", ip("192.0.2.1")).is_ok());
        }
        assert!(off.check_bearer(ip("192.0.2.1")).is_ok());
    }
}
