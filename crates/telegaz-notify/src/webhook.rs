//! `POST` of the notification's JSON to a URL.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};
use telegaz_domain::Notification;

use crate::config::WebhookConfig;
use crate::error::{redact, shorten};
use crate::http::{client, display_url, parse_url, request_error, retry_after, status_retryable};
use crate::{Notifier, NotifyError, payload_bytes};

/// The header that carries the notification's id (for de-duplication).
pub const ID_HEADER: &str = "x-telegaz-notification-id";

/// Sends each notification as a JSON `POST` (see the crate's documentation).
pub struct WebhookNotifier {
    name: String,
    url: reqwest::Url,
    /// The URL as it may be shown: scheme, host and port.
    target: String,
    headers: HeaderMap,
    timeout: Duration,
    client: reqwest::Client,
}

impl std::fmt::Debug for WebhookNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<&str> = self.headers.keys().map(HeaderName::as_str).collect();
        f.debug_struct("WebhookNotifier")
            .field("name", &self.name)
            .field("url", &self.target)
            .field("headers", &headers)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl WebhookNotifier {
    pub fn new(config: &WebhookConfig) -> Result<WebhookNotifier, NotifyError> {
        let name = config.name.trim();
        let err = |message: String| NotifyError::Config {
            notifier: name.to_owned(),
            message,
        };
        if name.is_empty() {
            return Err(err("a webhook notifier needs a name".into()));
        }
        let url = parse_url(name, "url", &config.url)?;
        let mut headers = HeaderMap::new();
        for (key, value) in &config.headers {
            let header = HeaderName::from_bytes(key.trim().as_bytes())
                .map_err(|_| err(format!("headers: {key:?} is not a valid header name")))?;
            if header == CONTENT_TYPE || header.as_str() == ID_HEADER {
                return Err(err(format!(
                    "headers: {key} is set by the notifier and cannot be configured"
                )));
            }
            // The value is never quoted: it is a secret.
            let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
                err(format!(
                    "headers: the value of {key} is not a valid header value (line breaks or control characters?)"
                ))
            })?;
            value.set_sensitive(true);
            headers.insert(header, value);
        }
        Ok(WebhookNotifier {
            name: name.to_owned(),
            target: display_url(url.as_str()),
            url,
            headers,
            timeout: config.timeout,
            client: client(name, config.timeout)?,
        })
    }

    fn secrets(&self) -> Vec<&str> {
        let mut secrets: Vec<&str> = self
            .headers
            .values()
            .filter_map(|v| v.to_str().ok())
            .collect();
        // The parts of the URL that are not shown.
        secrets.push(self.url.password().unwrap_or(""));
        if self.url.path() != "/" {
            secrets.push(self.url.path());
        }
        secrets.push(self.url.query().unwrap_or(""));
        secrets
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let body = payload_bytes(&self.name, n)?;
        let started = Instant::now();
        let response = self
            .client
            .post(self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ID_HEADER, n.id)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                request_error(&self.name, &self.target, self.timeout, e, &self.secrets())
            })?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(
                notifier = %self.name,
                notification = n.id,
                status = status.as_u16(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "webhook: sent"
            );
            return Ok(());
        }
        let code = status.as_u16();
        let wait = retry_after(response.headers());
        let location = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(display_url);
        // What the receiver says is kept short; it cannot hold our secrets, but check.
        let text = match tokio::time::timeout(self.timeout, response.text()).await {
            Ok(Ok(text)) => text,
            _ => String::new(),
        };
        let retryable = status_retryable(code);
        let hint = if retryable {
            "the receiver is busy or failing; it will be tried again".to_owned()
        } else if status.is_redirection() {
            format!(
                "the URL redirects{}; set url to the final address",
                location.map(|l| format!(" to {l}")).unwrap_or_default()
            )
        } else if code == 401 || code == 403 {
            "not allowed: check the webhook's headers (Authorization); not tried again".to_owned()
        } else if code == 404 || code == 405 {
            "check the webhook's url; not tried again".to_owned()
        } else {
            "the receiver refuses the notification; not tried again".to_owned()
        };
        Err(NotifyError::Rejected {
            notifier: self.name.clone(),
            target: self.target.clone(),
            status: code,
            detail: redact(&shorten(&text, 300), &self.secrets()),
            hint,
            retryable,
            retry_after: wait,
        })
    }
}
