#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failed step should stop the test
//! Request rate limits of the web listener (`[web.rate_limit]`) through the
//! real router: `429` with `Retry-After` past a limit, recovery after the
//! window, other clients unaffected, sign-in and bad bearer tokens limited
//! more strictly, monitoring scrapes exempt, `X-Forwarded-For` believed only
//! from trusted proxies, refusals counted in `/metrics`.
//!
//! Each request carries the client address the server would see
//! (`ConnectInfo`). Rates are chosen so that no assertion depends on how
//! fast the machine is: a limit that must hold refills once in 1000 s; a
//! limit that must recover is waited for with a generous deadline.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use metrics_exporter_prometheus::PrometheusHandle;
use telegaz_config::WebRateLimitConfig;
use telegaz_domain::Role;
use telegaz_store::AuditFilter;
use telegaz_web::WebContext;

mod common;

use common::{Reply, cookie_of, csrf_in};

/// One refill in 1000 s: within a test, a spent burst stays spent.
const SLOW: f64 = 0.001;

struct Env {
    _dir: tempfile::TempDir,
    ctx: Arc<WebContext>,
    app: Router,
}

fn retry_after(r: &Reply) -> u64 {
    r.headers
        .get(header::RETRY_AFTER)
        .unwrap_or_else(|| panic!("no Retry-After on {}: {}", r.status, r.body))
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// The process-wide metrics recorder (installed once per test binary).
fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| telegaz_web::install_metrics().unwrap())
        .clone()
}

async fn env(limits: WebRateLimitConfig) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let ctx = common::context_with(dir.path(), limits).await;
    let ctx = WebContext::new(
        ctx.db.clone(),
        ctx.spool.clone(),
        ctx.settings.clone(),
        Some(metrics()),
    );
    let app = telegaz_web::router(ctx.clone());
    Env {
        _dir: dir,
        ctx,
        app,
    }
}

fn limits() -> WebRateLimitConfig {
    WebRateLimitConfig {
        unlimited_scrapers: vec!["127.0.0.0/8".parse().unwrap()],
        ..WebRateLimitConfig::off()
    }
}

impl Env {
    async fn send(&self, from: &str, mut req: Request<Body>) -> Reply {
        let peer: SocketAddr = format!("{from}:40000")
            .parse()
            .or_else(|_| format!("[{from}]:40000").parse())
            .unwrap();
        req.extensions_mut().insert(ConnectInfo(peer));
        common::send(&self.app, req).await
    }

    async fn get(&self, from: &str, path: &str) -> Reply {
        self.send(from, Request::get(path).body(Body::empty()).unwrap())
            .await
    }

    async fn get_with(&self, from: &str, path: &str, name: &str, value: &str) -> Reply {
        self.send(
            from,
            Request::get(path)
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// A sign-in attempt the way a browser makes it (form, token, cookie).
    async fn sign_in(&self, from: &str, user: &str, password: &str) -> Reply {
        let page = self.get(from, "/login").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let pre = cookie_of(&page, "tg_prelogin").unwrap();
        let csrf = csrf_in(&page.body);
        let body = serde_urlencoded::to_string([
            ("user", user),
            ("password", password),
            ("csrf", &csrf),
            ("next", "/"),
        ])
        .unwrap();
        self.send(
            from,
            Request::post("/login")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, format!("tg_prelogin={pre}"))
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn token(&self, name: &str) -> String {
        let user = common::user(&*self.ctx.db, name, Role::Viewer, "pw-123456789").await;
        let token = telegaz_web::generate_token();
        self.ctx
            .db
            .create_api_token(user.id, "test", &telegaz_web::token_sha256(&token))
            .await
            .unwrap();
        token
    }
}

/// The value of `telegaz_web_rate_limited_total{limit="…"}` in `/metrics`.
fn refused_count(metrics_text: &str, limit: &str) -> u64 {
    metrics_text
        .lines()
        .find(|l| {
            l.starts_with("telegaz_web_rate_limited_total")
                && l.contains(&format!("limit=\"{limit}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_client_over_the_request_rate_gets_429_with_retry_after_and_others_do_not() {
    let e = env(WebRateLimitConfig {
        requests_per_second: SLOW,
        burst: 3,
        ..limits()
    })
    .await;
    let a = "192.0.2.10";
    for n in 0..3 {
        let r = e.get(a, "/login").await;
        assert_eq!(r.status, StatusCode::OK, "request {n}: {}", r.body);
    }
    // The fourth: refused, with when to come back (the next refill is
    // 1000 s away at most) and the usual security headers.
    let r = e.get(a, "/login").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    let wait = retry_after(&r);
    assert!((1..=1000).contains(&wait), "Retry-After {wait}");
    assert!(r.body.contains("429"), "an error page: {}", r.body);
    assert!(r.headers.contains_key(header::CONTENT_SECURITY_POLICY));
    // The API answers in JSON; every path counts against the same client.
    let r = e.get(a, "/api/v1/devices").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(retry_after(&r) >= 1);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert!(
        v["error"].as_str().unwrap().contains("too many requests"),
        "{v}"
    );
    // Health and metrics are limited for this client (not a monitoring address)…
    assert_eq!(
        e.get(a, "/healthz").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // …and never for the monitoring ones, however often.
    for _ in 0..20 {
        assert_eq!(e.get("127.0.0.1", "/healthz").await.status, StatusCode::OK);
        assert_eq!(e.get("127.0.0.1", "/metrics").await.status, StatusCode::OK);
    }
    // Other clients have their own allowance, spent or not.
    for other in ["192.0.2.11", "198.51.100.7", "2001:db8:2::1"] {
        for _ in 0..3 {
            assert_eq!(
                e.get(other, "/login").await.status,
                StatusCode::OK,
                "{other}"
            );
        }
    }
    // One IPv6 host has its whole /64: changing the interface id does not help.
    let v6 = e.get("2001:db8:2::2", "/login").await;
    assert_eq!(v6.status, StatusCode::TOO_MANY_REQUESTS, "same /64");
    assert_eq!(
        e.get("2001:db8:3::1", "/login").await.status,
        StatusCode::OK,
        "another /64"
    );
    // Counted in Prometheus metrics.
    let text = e.get("127.0.0.1", "/metrics").await.body;
    assert!(refused_count(&text, "requests") >= 4, "{text}");
}

#[tokio::test]
async fn a_limited_client_is_served_again_after_the_window() {
    // Two requests a second, none in reserve: a quick second request is
    // refused, and half a second later the client is welcome again.
    let e = env(WebRateLimitConfig {
        requests_per_second: 2.0,
        burst: 1,
        ..limits()
    })
    .await;
    let a = "192.0.2.20";
    let mut refused = None;
    for _ in 0..200 {
        let r = e.get(a, "/login").await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, StatusCode::OK);
    }
    let refused = refused.expect("a burst of 1 was never exceeded");
    assert_eq!(retry_after(&refused), 1, "half a second, rounded up");
    // Another client is not held up meanwhile.
    assert_eq!(e.get("192.0.2.21", "/login").await.status, StatusCode::OK);
    // Recovery: wait for it with a generous deadline (it takes 0.5 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if e.get(a, "/login").await.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "still refused after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sign_in_attempts_have_their_own_stricter_limit() {
    let e = env(WebRateLimitConfig {
        requests_per_second: 1000.0,
        burst: 1000,
        sign_in_per_minute: SLOW * 60.0,
        sign_in_burst: 2,
        ..limits()
    })
    .await;
    let pw = "the-right-password-1";
    common::user(&*e.ctx.db, "ivanov", Role::Operator, pw).await;
    let a = "203.0.113.5";
    for _ in 0..2 {
        let r = e.sign_in(a, "ivanov", "wrong").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let to = r.headers[header::LOCATION].to_str().unwrap();
        assert!(to.contains("error=failed"), "{to}");
    }
    // The third attempt is refused before the password is even checked,
    // the right password too.
    let r = e.sign_in(a, "ivanov", pw).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert!(retry_after(&r) >= 1);
    assert!(!r.headers.contains_key(header::SET_COOKIE));
    // Pages are not sign-in attempts: the form still shows.
    assert_eq!(e.get(a, "/login").await.status, StatusCode::OK);
    // Another client signs in.
    let r = e.sign_in("203.0.113.6", "ivanov", pw).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    let set = r.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(
        set.starts_with("tg_session=") && !set.starts_with("tg_session=;"),
        "{set}"
    );
    let text = e.get("127.0.0.1", "/metrics").await.body;
    assert!(refused_count(&text, "sign_in") >= 1, "{text}");
}

#[tokio::test]
async fn repeated_bad_bearer_tokens_block_the_client_for_a_while() {
    let e = env(WebRateLimitConfig {
        bad_token_failures: 3,
        bad_token_window: Duration::from_secs(600),
        bad_token_block: Duration::from_secs(600),
        ..limits()
    })
    .await;
    let good = e.token("reader").await;
    let bearer = |t: &str| format!("Bearer {t}");
    let a = "192.0.2.30";
    // Valid tokens never count, however many.
    for _ in 0..10 {
        let r = e
            .get_with(a, "/api/v1/devices", "authorization", &bearer(&good))
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    }
    for n in 0..3 {
        let r = e
            .get_with(
                a,
                "/api/v1/devices",
                "authorization",
                &bearer(&format!("guess-{n}")),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "guess {n}: {}", r.body);
    }
    // Blocked now: guesses and the valid token alike, until the block ends.
    for t in ["guess-4", good.as_str()] {
        let r = e
            .get_with(a, "/api/v1/devices", "authorization", &bearer(t))
            .await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        let wait = retry_after(&r);
        assert!((1..=600).contains(&wait), "Retry-After {wait}");
    }
    // Other clients are not blocked.
    let r = e
        .get_with(
            "192.0.2.31",
            "/api/v1/devices",
            "authorization",
            &bearer(&good),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let text = e.get("127.0.0.1", "/metrics").await.body;
    assert!(refused_count(&text, "bad_token") >= 2, "{text}");
}

#[tokio::test]
async fn a_bad_token_block_ends() {
    let e = env(WebRateLimitConfig {
        bad_token_failures: 2,
        bad_token_window: Duration::from_secs(600),
        bad_token_block: Duration::from_millis(300),
        ..limits()
    })
    .await;
    let good = e.token("reader").await;
    let a = "192.0.2.40";
    for n in 0..2 {
        let r = e
            .get_with(
                a,
                "/api/v1/devices",
                "authorization",
                &format!("Bearer bad-{n}"),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = e
            .get_with(
                a,
                "/api/v1/devices",
                "authorization",
                &format!("Bearer {good}"),
            )
            .await;
        if r.status == StatusCode::OK {
            break;
        }
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        assert!(Instant::now() < deadline, "still blocked after 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn forwarded_for_is_believed_only_from_trusted_proxies() {
    let e = env(WebRateLimitConfig {
        requests_per_second: SLOW,
        burst: 2,
        trusted_proxies: vec!["10.9.0.0/16".parse().unwrap()],
        ..limits()
    })
    .await;
    let xff = "x-forwarded-for";
    // Through the trusted proxy each client has its own allowance.
    for client in ["203.0.113.1", "203.0.113.2"] {
        for _ in 0..2 {
            let r = e.get_with("10.9.0.1", "/login", xff, client).await;
            assert_eq!(r.status, StatusCode::OK, "{client}");
        }
        let r = e.get_with("10.9.0.1", "/login", xff, client).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{client}");
    }
    // A client cannot escape by writing its own left part of the header.
    let r = e
        .get_with("10.9.0.1", "/login", xff, "198.51.100.99, 203.0.113.1")
        .await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // From anyone else the header is ignored: changing it does not help.
    for n in 0..3 {
        let r = e
            .get_with(
                "198.51.100.7",
                "/login",
                xff,
                &format!("203.0.113.{}", 50 + n),
            )
            .await;
        let expected = if n < 2 {
            StatusCode::OK
        } else {
            StatusCode::TOO_MANY_REQUESTS
        };
        assert_eq!(r.status, expected, "request {n}");
    }
    // The sign-in audit records the address the proxy saw.
    common::user(&*e.ctx.db, "petrov", Role::Viewer, "pw-123456789").await;
    let r = e
        .send(
            "10.9.0.2",
            Request::builder()
                .method(Method::POST)
                .uri("/login")
                .header(xff, "203.0.113.77")
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .header(header::COOKIE, "tg_prelogin=t")
                .body(Body::from("user=petrov&password=wrong&csrf=t"))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let audit = e
        .ctx
        .db
        .list_audit(&AuditFilter {
            login: Some("petrov".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0].peer.as_deref(), Some("203.0.113.77"));
}
