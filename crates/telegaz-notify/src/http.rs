//! What the webhook and Telegram share: the HTTP client and reading its errors.

use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::NotifyError;
use crate::error::{error_chain, redact};

/// Scheme, host and port of `url`: what may be shown of a URL whose path or
/// user info can hold a secret.
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            match u.port() {
                Some(port) => format!("{}://{host}:{port}", u.scheme()),
                None => format!("{}://{host}", u.scheme()),
            }
        }
        Err(_) => "<not a URL>".into(),
    }
}

/// An `http(s)://host…` URL, or why not.
pub(crate) fn parse_url(
    notifier: &str,
    what: &str,
    url: &str,
) -> Result<reqwest::Url, NotifyError> {
    let config = |message: String| NotifyError::Config {
        notifier: notifier.to_owned(),
        message,
    };
    if url.trim().is_empty() {
        return Err(config(format!(
            "{what} is empty: set it to an http:// or https:// URL"
        )));
    }
    // The reason of a parse error never quotes the URL.
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| config(format!("{what} is not a valid URL ({e})")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(config(format!(
            "{what} must start with http:// or https://, not {}://",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(config(format!("{what} has no host")));
    }
    Ok(parsed)
}

/// A client for one notifier: everything within `timeout`, no redirects.
pub(crate) fn client(notifier: &str, timeout: Duration) -> Result<reqwest::Client, NotifyError> {
    if timeout.is_zero() {
        return Err(NotifyError::Config {
            notifier: notifier.to_owned(),
            message: "timeout must be more than zero (e.g. \"10s\")".into(),
        });
    }
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("telegaz/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| NotifyError::Config {
            notifier: notifier.to_owned(),
            message: format!(
                "cannot make the HTTP client: {}",
                error_chain(&e.without_url())
            ),
        })
}

/// A request that got no HTTP answer. `secrets` are removed from the text.
pub(crate) fn request_error(
    notifier: &str,
    target: &str,
    timeout: Duration,
    e: reqwest::Error,
    secrets: &[&str],
) -> NotifyError {
    let e = e.without_url();
    if e.is_timeout() {
        return NotifyError::Timeout {
            notifier: notifier.to_owned(),
            target: target.to_owned(),
            after: timeout,
        };
    }
    let hint = if e.is_connect() {
        "check the host and port, the firewall, and that the receiver is up; it will be tried again"
    } else {
        "the connection broke off; it will be tried again"
    };
    NotifyError::Unreachable {
        notifier: notifier.to_owned(),
        target: target.to_owned(),
        error: redact(&error_chain(&e), secrets),
        hint: hint.into(),
    }
}

/// 408, 429 and 5xx: the receiver may take it later.
pub(crate) fn status_retryable(status: u16) -> bool {
    status == 408 || status == 429 || status >= 500
}

/// `Retry-After` in seconds (the HTTP-date form is ignored).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse::<u64>()
        .ok()
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_path_and_user_info() {
        assert_eq!(
            display_url("https://user:pw@hooks.example.ru/services/T0/B0/SECRET?x=1"),
            "https://hooks.example.ru"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8080/a"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(display_url("no url"), "<not a URL>");
    }

    #[test]
    fn urls_are_checked() {
        assert!(parse_url("n", "url", "https://example.ru/x").is_ok());
        for bad in ["", "  ", "example.ru/x", "ftp://example.ru/", "http://"] {
            let e = parse_url("n", "url", bad).unwrap_err();
            assert!(!e.retryable());
            assert!(e.to_string().starts_with("notifier n: url"), "{e}");
        }
    }

    #[test]
    fn retryable_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(status_retryable(s), "{s}");
        }
        for s in [300, 301, 400, 401, 403, 404, 410, 422] {
            assert!(!status_retryable(s), "{s}");
        }
    }
}
