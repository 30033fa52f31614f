//! An e-mail through the server's mail server.

use std::sync::Arc;

use async_trait::async_trait;
use lettre::message::Mailbox;
use telegaz_delivery::{Attachment, Email, MailError, Mailer};
use telegaz_domain::Notification;

use crate::config::EmailConfig;
use crate::{Notifier, NotifyError, payload_bytes};

/// Sends each notification as an e-mail: subject = title, body = text.
pub struct EmailNotifier {
    name: String,
    from: Mailbox,
    to: Vec<Mailbox>,
    mailer: Arc<dyn Mailer>,
}

impl std::fmt::Debug for EmailNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let to: Vec<String> = self.to.iter().map(ToString::to_string).collect();
        f.debug_struct("EmailNotifier")
            .field("name", &self.name)
            .field("from", &self.from.to_string())
            .field("to", &to)
            .finish_non_exhaustive()
    }
}

impl EmailNotifier {
    pub fn new(
        config: &EmailConfig,
        mailer: Arc<dyn Mailer>,
    ) -> Result<EmailNotifier, NotifyError> {
        let name = config.name.trim();
        let err = |message: String| NotifyError::Config {
            notifier: name.to_owned(),
            message,
        };
        if name.is_empty() {
            return Err(err("an e-mail notifier needs a name".into()));
        }
        let from = match config.from.as_deref().map(str::trim) {
            Some(from) if !from.is_empty() => from,
            _ => return Err(err("no sender: set from (or smtp.from)".into())),
        };
        let from: Mailbox = from
            .parse()
            .map_err(|e| err(format!("from {from:?} is not a valid e-mail address ({e})")))?;
        if config.recipients.is_empty() {
            return Err(err("recipients is empty: give at least one address".into()));
        }
        let to = config
            .recipients
            .iter()
            .map(|r| {
                r.trim().parse::<Mailbox>().map_err(|e| {
                    err(format!(
                        "recipient {r:?} is not a valid e-mail address ({e})"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EmailNotifier {
            name: name.to_owned(),
            from,
            to,
            mailer,
        })
    }

    /// The e-mail of a notification.
    pub fn email(&self, n: &Notification) -> Result<Email, NotifyError> {
        let mut body = n.text.trim_end().to_owned();
        body.push('\n');
        Ok(Email {
            from: self.from.clone(),
            to: self.to.clone(),
            subject: n.title.trim().to_owned(),
            body,
            attachment: Attachment {
                filename: format!("telegaz-notification-{}.json", n.id),
                content_type: "application/json".into(),
                bytes: payload_bytes(&self.name, n)?,
            },
        })
    }
}

#[async_trait]
impl Notifier for EmailNotifier {
    fn name(&self) -> &str {
        &self.name
    }

    async fn send(&self, n: &Notification) -> Result<(), NotifyError> {
        let email = self.email(n)?;
        match self.mailer.send(&email).await {
            Ok(()) => {
                tracing::debug!(notifier = %self.name, notification = n.id, recipients = self.to.len(), "email: sent");
                Ok(())
            }
            Err(e) => Err(NotifyError::Mail {
                notifier: self.name.clone(),
                retryable: matches!(e, MailError::Smtp { .. }),
                error: e.to_string(),
            }),
        }
    }
}
