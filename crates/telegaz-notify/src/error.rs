//! What went wrong when sending, and whether trying again can help.

use std::time::Duration;

pub(crate) use telegaz_domain::error_chain;

/// Sending a notification (or making a notifier) failed.
///
/// Messages name the notifier and what to check; they never hold a secret
/// (tokens, passwords, header values, the path of a webhook URL).
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The notifier's configuration is wrong. Not retryable.
    #[error("notifier {notifier}: {message}")]
    Config { notifier: String, message: String },

    /// The receiver answered, but did not take the notification.
    #[error("notifier {notifier}: {target} answered {status}: {detail} ({hint})")]
    Rejected {
        notifier: String,
        /// Where it was sent, without secrets.
        target: String,
        /// The HTTP status (or the protocol's code).
        status: u16,
        /// What the receiver said, shortened.
        detail: String,
        hint: String,
        retryable: bool,
        /// When the receiver asked to wait before trying again.
        retry_after: Option<Duration>,
    },

    /// No (complete) answer in time. Retryable.
    #[error(
        "notifier {notifier}: no answer from {target} within {after:?} (is it up and reachable? the timeout is the notifier's `timeout`)"
    )]
    Timeout {
        notifier: String,
        target: String,
        after: Duration,
    },

    /// The receiver could not be reached (refused, reset, name not found…). Retryable.
    #[error("notifier {notifier}: cannot reach {target}: {error} ({hint})")]
    Unreachable {
        notifier: String,
        target: String,
        error: String,
        hint: String,
    },

    /// The mail server did not take the e-mail.
    #[error("notifier {notifier}: {error}")]
    Mail {
        notifier: String,
        error: String,
        retryable: bool,
    },

    /// A fault of this program (e.g. a notification that cannot be encoded). Not retryable.
    #[error("notifier {notifier}: {message}")]
    Internal { notifier: String, message: String },
}

impl NotifyError {
    /// Whether sending the same notification again later can succeed.
    pub fn retryable(&self) -> bool {
        match self {
            NotifyError::Config { .. } | NotifyError::Internal { .. } => false,
            NotifyError::Rejected { retryable, .. } | NotifyError::Mail { retryable, .. } => {
                *retryable
            }
            NotifyError::Timeout { .. } | NotifyError::Unreachable { .. } => true,
        }
    }

    /// How long the receiver asked to wait before the next attempt, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            NotifyError::Rejected { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The name of the notifier that failed.
    pub fn notifier(&self) -> &str {
        match self {
            NotifyError::Config { notifier, .. }
            | NotifyError::Rejected { notifier, .. }
            | NotifyError::Timeout { notifier, .. }
            | NotifyError::Unreachable { notifier, .. }
            | NotifyError::Mail { notifier, .. }
            | NotifyError::Internal { notifier, .. } => notifier,
        }
    }
}

/// `text` with every non-empty secret replaced by `[REDACTED]`.
pub(crate) fn redact(text: &str, secrets: &[&str]) -> String {
    let mut out = text.to_owned();
    for s in secrets {
        if !s.is_empty() {
            out = out.replace(s, "[REDACTED]");
        }
    }
    out
}

/// At most `max` characters of `text`, on one line.
pub(crate) fn shorten(text: &str, max: usize) -> String {
    let one_line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= max {
        one_line
    } else {
        let mut s: String = one_line.chars().take(max).collect();
        s.push('…');
        s
    }
}
