//! FTPS (explicit, RFC 4217): the server's certificate and key, and the
//! streams that are either plain TCP or TLS over TCP.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

/// Why the certificate or key cannot be used. Each names the file to fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error(
        "cannot read the TLS certificate {path}: {detail}; set ftp.tls.certificate to a PEM file the server can read"
    )]
    Certificate { path: PathBuf, detail: String },
    #[error(
        "the TLS certificate file {path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
    )]
    NoCertificate { path: PathBuf },
    #[error(
        "cannot read the TLS private key {path}: {detail}; set ftp.tls.key to a PEM file (PKCS#8, PKCS#1 or SEC1) the server can read"
    )]
    Key { path: PathBuf, detail: String },
    #[error("the TLS certificate {certificate} and key {key} cannot be used together: {detail}")]
    Mismatch {
        certificate: PathBuf,
        key: PathBuf,
        detail: String,
    },
}

/// The FTPS side of the engine: the acceptor, and whether TLS is required of
/// every session.
#[derive(Clone)]
pub struct TlsSettings {
    control: TlsAcceptor,
    data: TlsAcceptor,
    /// Every session must send `AUTH TLS` before `USER`, and `PROT P` before transfers.
    pub required: bool,
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("required", &self.required)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Load a PEM certificate chain and private key.
    pub fn from_pem_files(
        certificate: &Path,
        key: &Path,
        required: bool,
    ) -> Result<TlsSettings, TlsSetupError> {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| TlsSetupError::Certificate {
                path: certificate.to_owned(),
                detail: pem_error(&e),
            })?;
        if certs.is_empty() {
            return Err(TlsSetupError::NoCertificate {
                path: certificate.to_owned(),
            });
        }
        let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsSetupError::Key {
            path: key.to_owned(),
            detail: pem_error(&e),
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mismatch = |e: rustls::Error| TlsSetupError::Mismatch {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            detail: e.to_string(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(mismatch)?
            .with_no_client_auth()
            .with_single_cert(certs, private_key)
            .map_err(mismatch)?;
        // Clients resume the control connection's session on data connections
        // (curl does by default; some servers insist): keep sessions and
        // issue tickets.
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(4096);
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(mismatch)?;
        // Data connections resume with the same session store and ticket keys
        // but are sent no TLS 1.3 tickets of their own: a client that only
        // writes (an upload) never reads them, and closing a socket with
        // unread input resets the connection, losing the upload's last bytes.
        let mut data = config.clone();
        data.send_tls13_tickets = 0;
        Ok(TlsSettings {
            control: TlsAcceptor::from(Arc::new(config)),
            data: TlsAcceptor::from(Arc::new(data)),
            required,
        })
    }

    /// For `AUTH TLS` on the control connection.
    pub(crate) fn control(&self) -> &TlsAcceptor {
        &self.control
    }

    /// For data connections under `PROT P`.
    pub(crate) fn data(&self) -> &TlsAcceptor {
        &self.data
    }
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM section of that kind".into(),
        other => format!("not a valid PEM file ({other:?})"),
    }
}

/// A connection: plain TCP, or TLS over TCP after `AUTH TLS` / `PROT P`.
pub(crate) enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Placeholder while the control connection is being upgraded.
    Gone,
}

impl Conn {
    pub(crate) fn is_tls(&self) -> bool {
        matches!(self, Conn::Tls(_))
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "connection is being upgraded")
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Gone => Poll::Ready(Err(gone())),
        }
    }
}
