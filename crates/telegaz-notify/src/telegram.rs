//! A message from a Telegram bot (Bot API `sendMessage`).

use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde::Deserialize;
use telegaz_config::Secret;
use telegaz_domain::Notification;

use crate::config::{ChatId, TelegramConfig};
use crate::error::{redact, shorten};
use crate::http::{client, parse_url, request_error, retry_after, status_retryable};
use crate::{Notifier, NotifyError};

/// Telegram's limit on the length of a message, in characters.
const MAX_MESSAGE: usize = 4096;

/// Sends each notification as a message to one chat.
pub struct TelegramNotifier {
    name: String,
    token: Secret,
    chat_id: ChatId,
    /// `{base_url}/bot{token}/sendMessage`: secret.
    url: reqwest::Url,
    /// The same with `<token>` in place of the token.
    target: String,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for TelegramNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramNotifier")
            .field("name", &self.name)
            .field("url", &self.target)
            .field("token", &self.token)
            .field("chat_id", &self.chat_id)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    description: Option<String>,
    parameters: Option<Parameters>,
}

#[derive(Deserialize)]
struct Parameters {
    retry_after: Option<u64>,
}

impl TelegramNotifier {
    pub fn new(config: &TelegramConfig) -> Result<TelegramNotifier, NotifyError> {
        let name = config.name.trim();
        let err = |message: &str| NotifyError::Config {
            notifier: name.to_owned(),
            message: message.to_owned(),
        };
        if name.is_empty() {
            return Err(err("a telegram notifier needs a name"));
        }
        let token = config.token.expose().trim();
        if token.is_empty() {
            return Err(err(
                "token is empty: set the bot's token from @BotFather (e.g. in the environment)",
            ));
        }
        // A token is `123456:ABC-…`; anything that would break out of the path is wrong.
        if token
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '/' | '?' | '#' | '%'))
        {
            return Err(err(
                "token is not a bot token (it has spaces or URL characters): copy it again from @BotFather",
            ));
        }
        match &config.chat_id {
            ChatId::Name(n) if n.trim().is_empty() => {
                return Err(err(
                    "chat_id is empty: set the chat's numeric id or @channelname",
                ));
            }
            _ => {}
        }
        let base = parse_url(name, "base_url", &config.base_url)?;
        let base = base.as_str().trim_end_matches('/').to_owned();
        let url = reqwest::Url::parse(&format!("{base}/bot{token}/sendMessage"))
            .map_err(|_| err("base_url and token do not make a valid URL"))?;
        Ok(TelegramNotifier {
            name: name.to_owned(),
            token: Secret::new(token),
            chat_id: config.chat_id.clone(),
            url,
            target: format!("{base}/bot<token>/sendMessage"),
            timeout: config.timeout,
            client: client(name, config.timeout)?,
        })
    }

    fn secrets(&self) -> [&str; 1] {
        [self.token.expose()]
    }
}

/// The message: the title in bold, an empty line, the text; HTML-escaped.
pub fn message_html(n: &Notification) -> String {
    let title = escape_html(n.title.trim());
    let mut out = format!("<b>{title}</b>");
    let text = n.text.trim();
    if !text.is_empty() {
        out.push_str("\n\n");
        let room = MAX_MESSAGE.saturating_sub(title.chars().count() + 10);
        let escaped = escape_html(text);
        if escaped.chars().count() <= room {
            out.push_str(&escaped);
        } else {
            // Cut on the unescaped text, so no entity is cut in half.
            let mut cut = String::new();
            for c in text.chars() {
                let next = escape_html(&c.to_string());
                if cut.chars().count() + next.chars().count() + 1 > room {
                    break;
                }
                cut.push_str(&next);
            }
            out.push_str(&cut);
            out.push('…');
        }
    }
    out
}

fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[async_trait]
impl Notifier for TelegramNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = serde_json::json!({
            "chat_id": self.chat_id,
            "text": message_html(n),
            "parse_mode": "HTML",
        });
        let started = Instant::now();
        let response = self
            .client
            .post(self.url.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| {
                request_error(&self.name, &self.target, self.timeout, e, &self.secrets())
            })?;
        let status = response.status();
        let code = status.as_u16();
        let header_wait = retry_after(response.headers());
        let text = match tokio::time::timeout(self.timeout, response.text()).await {
            Ok(Ok(text)) => text,
            Ok(Err(e)) if status.is_success() => {
                return Err(request_error(
                    &self.name,
                    &self.target,
                    self.timeout,
                    e,
                    &self.secrets(),
                ));
            }
            Err(_) if status.is_success() => {
                return Err(NotifyError::Timeout {
                    notifier: self.name.clone(),
                    target: self.target.clone(),
                    after: self.timeout,
                });
            }
            _ => String::new(),
        };
        let answer: Option<Answer> = serde_json::from_str(&text).ok();
        if status.is_success() && answer.as_ref().is_some_and(|a| a.ok) {
            tracing::debug!(
                notifier = %self.name,
                notification = n.id,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "telegram: sent"
            );
            return Ok(());
        }
        let detail = match answer.as_ref().and_then(|a| a.description.as_deref()) {
            Some(d) => d.to_owned(),
            None if status.is_success() => {
                format!("not a Bot API answer: {}", shorten(&text, 200))
            }
            None => shorten(&text, 200),
        };
        let wait = answer
            .as_ref()
            .and_then(|a| a.parameters.as_ref())
            .and_then(|p| p.retry_after)
            .map(Duration::from_secs)
            .or(header_wait);
        let retryable = status_retryable(code);
        let hint = match code {
            401 => "the bot token is wrong or revoked: check token; not tried again",
            403 => {
                "the bot may not write to this chat (blocked, removed, or not an admin of the channel); not tried again"
            }
            400 if detail.contains("chat not found") => {
                "check chat_id, and that the bot was added to the chat; not tried again"
            }
            404 => "check base_url and token; not tried again",
            _ if retryable => "Telegram is busy or failing; it will be tried again",
            _ if status.is_success() => "check base_url: it does not look like the Bot API",
            _ => "Telegram refused the message; not tried again",
        };
        Err(NotifyError::Rejected {
            notifier: self.name.clone(),
            target: self.target.clone(),
            status: code,
            detail: redact(&shorten(&detail, 300), &self.secrets()),
            hint: hint.to_owned(),
            retryable,
            retry_after: wait,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegaz_domain::{AlertKind, NotificationEvent, Severity};

    fn n(title: &str, text: &str) -> Notification {
        Notification {
            id: 1,
            event: NotificationEvent::Opened,
            alert_id: Some(1),
            kind: AlertKind::Limit,
            severity: Severity::Warning,
            device: Some("u1".into()),
            title: title.into(),
            text: text.into(),
            at: "2026-01-15T09:00:00Z".parse().unwrap(),
            devices: vec![],
        }
    }

    #[test]
    fn the_message_is_escaped_html() {
        assert_eq!(
            message_html(&n("u1: P < 0,5 бар", "Давление 0,4 бар & падает <b>")),
            "<b>u1: P &lt; 0,5 бар</b>\n\nДавление 0,4 бар &amp; падает &lt;b&gt;"
        );
        assert_eq!(message_html(&n("Т", "  ")), "<b>Т</b>");
    }

    #[test]
    fn long_texts_are_cut_to_telegrams_limit() {
        let m = message_html(&n("Т", &"я<".repeat(5000)));
        assert!(m.chars().count() <= MAX_MESSAGE, "{}", m.chars().count());
        assert!(m.ends_with('…'));
        assert!(!m.contains("&l…") && !m.ends_with("&…"));
    }
}
