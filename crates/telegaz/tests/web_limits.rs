//! The web listener's rate limits in the real server, over real HTTP (curl):
//! the `[web.rate_limit]` settings reach it, the client is the TCP peer,
//! `429` comes with `Retry-After`, and monitoring scrapes from loopback are
//! not limited. (The limits themselves: `crates/telegaz-web/tests/rate_limit.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::{Server, run_ok};

/// Status code and the `Retry-After` header of one GET with curl.
fn get(s: &Server, path: &str) -> (u16, Option<u64>) {
    let out = run_ok(
        Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "--max-time", "10"])
            .arg(format!("http://{}{path}", s.http)),
    );
    let head = String::from_utf8(out.stdout).unwrap();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let retry_after = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("retry-after")
            .then(|| v.trim().parse().ok())?
    });
    (status, retry_after)
}

#[test]
fn the_server_answers_429_past_the_configured_rate_and_spares_monitoring() {
    let s = Server::start_with(&[
        // One refill in 1000 s: the burst of 3 stays spent during the test.
        ("TELEGAZ_WEB__RATE_LIMIT__REQUESTS_PER_SECOND", "0.001"),
        ("TELEGAZ_WEB__RATE_LIMIT__BURST", "3"),
    ]);
    for n in 0..3 {
        assert_eq!(get(&s, "/login").0, 200, "request {n}");
    }
    let (status, retry_after) = get(&s, "/login");
    assert_eq!(status, 429);
    let wait = retry_after.expect("Retry-After");
    assert!((1..=1000).contains(&wait), "Retry-After {wait}");
    assert_eq!(get(&s, "/api/v1/devices").0, 429);
    // Health checks and Prometheus from loopback go on (web.rate_limit.unlimited_scrapers).
    for _ in 0..10 {
        assert_eq!(get(&s, "/healthz").0, 200);
        assert_eq!(get(&s, "/metrics").0, 200);
    }
    let out = run_ok(
        Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .arg(format!("http://{}/metrics", s.http)),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.lines().any(
            |l| l.starts_with("telegaz_web_rate_limited_total{limit=\"requests\"} ")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
    assert!(
        s.log().contains("web request refused: too many"),
        "the refusal is logged:\n{}",
        s.log()
    );
}
