//! Sending through an SMTP server (lettre; TLS by rustls with aws-lc-rs).

use async_trait::async_trait;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use telegaz_config::{SmtpConfig, SmtpTls};
use telegaz_domain::error_chain;

use crate::message::Email;
use crate::{DeliveryError, MailError};

/// Sends e-mails. [`SmtpMailer`] in the server; tests put their own.
#[async_trait]
pub trait Mailer: Send + Sync + 'static {
    async fn send(&self, email: &Email) -> Result<(), MailError>;
}

/// The mail server of `[smtp]`. One connection per message.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    server: String,
    /// For the whole conversation: lettre's own timeout covers connecting only.
    timeout: std::time::Duration,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    pub fn new(config: &SmtpConfig) -> Result<SmtpMailer, DeliveryError> {
        if !config.is_configured() {
            return Err(DeliveryError::NoSmtp);
        }
        let host = config.host.trim();
        let port = config.port();
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            .port(port)
            .timeout(Some(config.timeout));
        if config.tls != SmtpTls::None {
            let mut params = TlsParameters::builder(host.to_owned());
            if let Some(path) = &config.ca_file {
                let pem = std::fs::read(path).map_err(|e| {
                    DeliveryError::Tls(format!("cannot read smtp.ca_file {}: {e}", path.display()))
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    DeliveryError::Tls(format!(
                        "smtp.ca_file {} is not a PEM certificate: {e}",
                        path.display()
                    ))
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| DeliveryError::Tls(e.to_string()))?;
            builder = builder.tls(match config.tls {
                SmtpTls::Tls => Tls::Wrapper(params),
                _ => Tls::Required(params),
            });
        }
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        Ok(SmtpMailer {
            transport: builder.build(),
            server: format!("{host}:{port}"),
            timeout: config.timeout,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        let message = email.to_message()?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(result) => result
                .map(|_| ())
                .map_err(|e| MailError::from_smtp(&self.server, &e)),
            Err(_) => Err(MailError::Smtp {
                server: self.server.clone(),
                error: format!(
                    "no complete answer within {:?} (smtp.timeout)",
                    self.timeout
                ),
                hint: "the server accepts connections but does not answer: check smtp.port and smtp.tls (tls = \"tls\" on 465, \"starttls\" on 587 and 25), or raise smtp.timeout",
            }),
        }
    }
}

impl MailError {
    fn from_smtp(server: &str, e: &lettre::transport::smtp::Error) -> MailError {
        let error = error_chain(e);
        let lower = error.to_lowercase();
        let hint = if e.is_permanent() {
            "the server refused: check smtp.from, the recipients, smtp.username and the password"
        } else if e.is_transient() {
            "the server is busy or refused for now; it will be tried again"
        } else if e.is_tls() || lower.contains("certificate") || lower.contains("tls") {
            "TLS failed: check smtp.tls (starttls on 587, tls on 465) and the server's certificate (smtp.ca_file for an internal CA)"
        } else if lower.contains("authentication") {
            "logging in failed: check smtp.username and the password, and that the server offers AUTH PLAIN or LOGIN over this connection"
        } else if e.is_timeout() {
            "no answer in time: check smtp.host, smtp.port and the firewall"
        } else {
            "cannot talk to the server: check smtp.host, smtp.port and smtp.tls, and that the server is up"
        };
        MailError::Smtp {
            server: server.to_owned(),
            error,
            hint,
        }
    }
}
