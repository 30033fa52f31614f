//! Raw-TCP reception, for units that push their readout over a bare TCP
//! connection instead of FTP. Each connection's bytes are one upload, with the
//! same path as an FTP upload: spool temporary file → `fsync` → record →
//! queued for ingest.
//!
//! The protocol (docs/tcp-reception.md):
//!
//! 1. The unit connects. The server sends nothing yet.
//! 2. The unit names itself with a first line `LOGIN <login> <password>\r\n`
//!    (checked like an FTP login: throttle, allow-list, audit), or sends its
//!    data at once from a source address listed in `[[tcp.by_address]]`.
//! 3. Every byte after that line (or every byte, by address) is the file.
//! 4. The unit half-closes (or closes) its side. The server makes the bytes
//!    durable, records the upload complete and answers `OK <upload id>\r\n`.
//!
//! A refused unit hears `ERR <reason>\r\n`. A connection that breaks (reset),
//! stays silent for `tcp.idle_timeout` or exceeds `ftp.max_file_size` keeps its
//! bytes as a partial upload, which is not parsed.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use telegaz_domain::{AuditKind, FileName, PartialReason};
use telegaz_ftp::{
    Backend, FsError, LoginError, SessionInfo, UploadRequest, UploadSink, VPath, WriteMode,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::receiver::{DeviceAccount, DeviceUpload, Receiver, canonical_ip, event};

/// Settings of the raw-TCP listener.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// No byte for this long ends the connection; what came is kept as partial.
    pub idle_timeout: Duration,
    /// Time allowed for the first line.
    pub login_timeout: Duration,
    pub max_connections: usize,
    /// Source addresses that identify a device (by name) without a `LOGIN` line.
    pub by_address: HashMap<IpAddr, String>,
}

/// The longest first line accepted (`LOGIN <login> <password>`).
const MAX_LOGIN_LINE: usize = 512;
const LOGIN_PREFIX: &[u8] = b"LOGIN ";

/// Accept raw-TCP connections until `shutdown` changes.
pub async fn serve_tcp(
    listener: TcpListener,
    receiver: Receiver,
    settings: TcpSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let settings = Arc::new(settings);
    let slots = Arc::new(Semaphore::new(settings.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "raw TCP: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let local = stream
            .local_addr()
            .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let session = SessionInfo {
            id: format!("{:016x}", rand::random::<u64>()),
            peer,
            local,
            tls: false,
        };
        let receiver = receiver.clone();
        let settings = settings.clone();
        let slots = slots.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let Ok(_slot) = slots.try_acquire_owned() else {
                receiver
                    .refused(
                        &session,
                        "too many raw-TCP connections (tcp.max_connections)",
                    )
                    .await;
                reply(&mut stream, "ERR busy, try again later").await;
                return;
            };
            let mut e = event(AuditKind::Connect, "ok", &session);
            e.detail = "raw TCP".into();
            receiver.audit().record(e).await;
            let conn = Connection {
                receiver: &receiver,
                settings: &settings,
                session: &session,
                stream,
                stop,
            };
            let (account, end) = conn.run().await;
            let mut e = event(AuditKind::Disconnect, "ok", &session);
            if let Some(a) = &account {
                e.device_id = Some(a.device_id);
                e.login = Some(a.login.clone());
            }
            e.detail = format!("raw TCP: {end}");
            receiver.audit().record(e).await;
        });
    }
}

async fn reply(stream: &mut TcpStream, line: &str) {
    let line = format!("{}\r\n", line.replace(['\r', '\n'], " "));
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.write_all(line.as_bytes())).await;
}

/// Answer `ERR …`, then close so that the unit can still read the answer:
/// closing with unread input would reset the connection and lose it.
async fn refuse(stream: &mut TcpStream, line: &str) {
    reply(stream, line).await;
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 4096];
    let mut left: usize = 1 << 20;
    let drain = async {
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

struct Connection<'a> {
    receiver: &'a Receiver,
    settings: &'a TcpSettings,
    session: &'a SessionInfo,
    stream: TcpStream,
    stop: watch::Receiver<bool>,
}

/// How the first bytes identify the unit.
enum Opening {
    /// `LOGIN <login> <password>`, and the bytes after that line.
    Login {
        login: String,
        password: SecretString,
        rest: Vec<u8>,
    },
    /// No login line: every byte so far is data.
    Data(Vec<u8>),
}

impl Connection<'_> {
    /// Serve one connection; returns the account it logged in as and how it ended.
    async fn run(mut self) -> (Option<DeviceAccount>, String) {
        let opening = match tokio::time::timeout(self.settings.login_timeout, self.opening()).await
        {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return (None, format!("connection error before any data: {e}")),
            Err(_) => {
                reply(&mut self.stream, "ERR no data in time (tcp.login_timeout)").await;
                return (None, "nothing received in time (tcp.login_timeout)".into());
            }
        };
        let (account, first) = match opening {
            Opening::Login {
                login,
                password,
                rest,
            } => match self.receiver.login(self.session, &login, password).await {
                Ok(a) => (a, rest),
                Err(e) => return (None, self.refuse(&e).await),
            },
            Opening::Data(data) => {
                let ip = canonical_ip(self.session.peer.ip());
                let Some(device) = self.settings.by_address.get(&ip) else {
                    let mut e = event(AuditKind::LoginFailed, "no_login", self.session);
                    e.detail =
                        "raw TCP: no LOGIN line and the address is not in tcp.by_address".into();
                    self.receiver.audit().record(e).await;
                    refuse(
                        &mut self.stream,
                        "ERR send LOGIN <login> <password> as the first line",
                    )
                    .await;
                    return (
                        None,
                        "no LOGIN line and the address is not in tcp.by_address".into(),
                    );
                };
                match self.receiver.login_by_address(self.session, device).await {
                    Ok(a) => (a, data),
                    Err(e) => return (None, self.refuse(&e).await),
                }
            }
        };
        let end = self.receive(&account, first).await;
        (Some(account), end)
    }

    async fn refuse(&mut self, e: &LoginError) -> String {
        let text = match e {
            LoginError::TlsRequired => "ERR this device must use FTPS (tls_required)",
            LoginError::Blocked { .. } => "ERR temporarily blocked after failed logins",
            LoginError::Banned { .. } => "ERR banned: ask the operator (telegaz ban list)",
            _ => "ERR login refused",
        };
        refuse(&mut self.stream, text).await;
        format!("login refused: {e}")
    }

    /// Read until the first bytes say whether a `LOGIN` line comes.
    async fn opening(&mut self) -> std::io::Result<Opening> {
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            let is_login = buf.len() >= LOGIN_PREFIX.len()
                && buf[..LOGIN_PREFIX.len()].eq_ignore_ascii_case(LOGIN_PREFIX);
            let may_be_login = buf.len() < LOGIN_PREFIX.len()
                && LOGIN_PREFIX[..buf.len()].eq_ignore_ascii_case(&buf);
            if is_login {
                if let Some(pos) = buf.iter().position(|&b| b == b'\n') {
                    let rest = buf.split_off(pos + 1);
                    return Ok(parse_login(&buf, rest));
                }
                if buf.len() > MAX_LOGIN_LINE {
                    // Not a login line after all: treat it all as data (and
                    // then as unidentified unless the address is listed).
                    return Ok(Opening::Data(buf));
                }
            } else if !may_be_login {
                return Ok(Opening::Data(buf));
            }
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Opening::Data(buf));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Receive the file; returns how the connection ended.
    async fn receive(&mut self, account: &DeviceAccount, first: Vec<u8>) -> String {
        let stamp = jiff::Timestamp::now()
            .strftime("%Y%m%dT%H%M%SZ")
            .to_string();
        let name = format!("tcp-{stamp}-{}.dat", self.session.id);
        let path = match VPath::resolve(&VPath::root(), &name) {
            Ok(p) => p,
            Err(e) => return format!("internal error: {e}"),
        };
        let request = UploadRequest {
            path,
            name: FileName::utf8(&name),
            mode: WriteMode::Store { unique: false },
        };
        let mut sink = match self
            .receiver
            .begin_upload(self.session, account, request)
            .await
        {
            Ok(s) => s,
            Err(e) => {
                refuse(&mut self.stream, &format!("ERR {e}")).await;
                return format!("cannot start the upload: {e}");
            }
        };
        let id = shown_id(&sink);
        if !first.is_empty()
            && let Err(e) = sink.write(&first).await
        {
            return self.abandon(sink, e).await;
        }
        let idle = self.settings.idle_timeout;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let stop = &mut self.stop;
            let stopping = async move {
                if stop.changed().await.is_err() {
                    // Nobody can stop us any more: only the connection ends it.
                    std::future::pending::<()>().await;
                }
            };
            let r = tokio::select! {
                r = tokio::time::timeout(idle, self.stream.read(&mut buf)) => r,
                _ = stopping => {
                    let _ = sink.abandon(PartialReason::Shutdown).await;
                    reply(&mut self.stream, "ERR the server is shutting down").await;
                    return "server shutdown during the upload".into();
                }
            };
            let n = match r {
                Ok(Ok(0)) => break,
                Ok(Ok(n)) => n,
                Ok(Err(e)) => {
                    let why = e.to_string();
                    let _ = sink
                        .abandon(PartialReason::DataConnectionLost(why.clone()))
                        .await;
                    return format!("connection lost during upload #{id}: {why}");
                }
                Err(_) => {
                    let _ = sink
                        .abandon(PartialReason::Stalled {
                            seconds: idle.as_secs(),
                        })
                        .await;
                    reply(
                        &mut self.stream,
                        &format!(
                            "ERR no data for {} s; upload {id} kept as partial",
                            idle.as_secs()
                        ),
                    )
                    .await;
                    return format!("idle during upload #{id} (tcp.idle_timeout)");
                }
            };
            if let Err(e) = sink.write(&buf[..n]).await {
                return self.abandon(sink, e).await;
            }
        }
        match sink.complete().await {
            Ok(receipt) => {
                reply(&mut self.stream, &format!("OK {id}")).await;
                let _ = self.stream.shutdown().await;
                format!("upload #{id} complete, {} bytes", receipt.size)
            }
            Err(e) => {
                reply(&mut self.stream, &format!("ERR {e}")).await;
                format!("upload #{id} not recorded: {e}")
            }
        }
    }

    async fn abandon(&mut self, sink: DeviceUpload, e: FsError) -> String {
        let id = shown_id(&sink);
        let reason = match &e {
            FsError::TooLarge(limit) => PartialReason::TooLarge { limit: *limit },
            other => PartialReason::StorageError(other.to_string()),
        };
        let _ = sink.abandon(reason).await;
        refuse(
            &mut self.stream,
            &format!("ERR {e}; upload {id} kept as partial"),
        )
        .await;
        format!("upload #{id} ended: {e}")
    }
}

fn parse_login(line: &[u8], rest: Vec<u8>) -> Opening {
    let text = String::from_utf8_lossy(&line[LOGIN_PREFIX.len()..]);
    let text = text.trim_end_matches(['\r', '\n']).trim_start_matches(' ');
    let (login, password) = text.split_once(' ').unwrap_or((text, ""));
    Opening::Login {
        login: login.to_owned(),
        password: SecretString::from(password.to_owned()),
        rest,
    }
}

/// The upload's id as the unit and the log see it; while the database is away
/// the upload is kept in the outage journal and has no id yet.
fn shown_id(sink: &DeviceUpload) -> String {
    sink.upload_id().map_or_else(
        || "(kept; recorded when the database is back)".to_owned(),
        |id| id.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn login_lines() {
        match parse_login(b"LOGIN unit-1 pass word\r\n", b"data".to_vec()) {
            Opening::Login {
                login,
                password,
                rest,
            } => {
                assert_eq!(login, "unit-1");
                assert_eq!(password.expose_secret(), "pass word");
                assert_eq!(rest, b"data");
            }
            Opening::Data(_) => unreachable!("a login line"),
        }
        match parse_login(b"LOGIN onlyname\n", Vec::new()) {
            Opening::Login {
                login, password, ..
            } => {
                assert_eq!(login, "onlyname");
                assert_eq!(password.expose_secret(), "");
            }
            Opening::Data(_) => unreachable!("a login line"),
        }
    }
}
