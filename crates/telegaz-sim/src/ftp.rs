//! A minimal FTP client, written for the simulator so that every step of a
//! session can be slowed down or broken the way a GPRS link does: passive
//! mode, binary type, one `STOR` per session.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::fleet::FailureKind;

/// Why a session did not end with `226`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionError {
    pub kind: FailureKind,
    pub message: String,
    /// The failure was injected (`drop_data`).
    pub injected: bool,
}

impl SessionError {
    fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            injected: false,
        }
    }
}

/// Link behaviour for one session.
#[derive(Debug, Clone, Default)]
pub struct Link {
    /// Added before the connection and before every command (one round trip).
    pub latency: Duration,
    /// Data stream rate limit, bytes per second.
    pub bandwidth: Option<u64>,
    /// Connect to the passive port this long after sending `STOR` (the usual
    /// order, without it: connect right after `227`, then `STOR`).
    pub late_pasv: Duration,
    /// Cut the link after this many bytes of the file (reset data connection,
    /// control connection closed).
    pub drop_after: Option<u64>,
}

/// What a session did.
#[derive(Debug, Clone, Default)]
pub struct Transfer {
    /// Bytes written to the data connection.
    pub bytes: u64,
}

struct Control {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    latency: Duration,
}

impl Control {
    async fn reply(&mut self, step: &str) -> Result<(u16, String), SessionError> {
        let err = |m: String| SessionError::new(FailureKind::Other, m);
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .await
            .map_err(|e| err(format!("{step}: reading the reply: {e}")))?;
        if n == 0 {
            return Err(err(format!("{step}: the server closed the connection")));
        }
        let code = parse_code(&line).ok_or_else(|| err(format!("{step}: bad reply {line:?}")))?;
        let mut text = line.trim_end().to_owned();
        if line.as_bytes().get(3) == Some(&b'-') {
            // Multi-line reply: up to the line "NNN ".
            loop {
                let mut more = String::new();
                let n = self
                    .reader
                    .read_line(&mut more)
                    .await
                    .map_err(|e| err(format!("{step}: reading the reply: {e}")))?;
                if n == 0 {
                    return Err(err(format!("{step}: the server closed the connection")));
                }
                text.push('\n');
                text.push_str(more.trim_end());
                if parse_code(&more) == Some(code) && more.as_bytes().get(3) == Some(&b' ') {
                    break;
                }
            }
        }
        Ok((code, text))
    }

    async fn command(&mut self, cmd: &str, step: &str) -> Result<(u16, String), SessionError> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        self.writer
            .write_all(format!("{cmd}\r\n").as_bytes())
            .await
            .map_err(|e| SessionError::new(FailureKind::Other, format!("{step}: sending: {e}")))?;
        self.reply(step).await
    }
}

fn parse_code(line: &str) -> Option<u16> {
    let head = line.get(..3)?;
    if head.bytes().all(|b| b.is_ascii_digit()) {
        head.parse().ok()
    } else {
        None
    }
}

/// `227 Entering Passive Mode (h1,h2,h3,h4,p1,p2)` → address; an unspecified
/// address means the control connection's peer.
fn parse_pasv(text: &str, peer: SocketAddr) -> Option<SocketAddr> {
    let inner = text.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u16> = inner
        .split(',')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    let [a, b, c, d, p1, p2] = n.as_slice() else {
        return None;
    };
    let octets = [*a, *b, *c, *d].map(|x| u8::try_from(x).unwrap_or(0));
    let ip = std::net::Ipv4Addr::from(octets);
    let port = p1.checked_mul(256)?.checked_add(*p2)?;
    let ip = if ip.is_unspecified() {
        peer.ip()
    } else {
        std::net::IpAddr::V4(ip)
    };
    Some(SocketAddr::new(ip, port))
}

/// Resolves `host:port`.
pub async fn resolve(server: &str) -> Result<SocketAddr, SessionError> {
    tokio::net::lookup_host(server)
        .await
        .map_err(|e| SessionError::new(FailureKind::Connect, format!("resolving {server}: {e}")))?
        .next()
        .ok_or_else(|| SessionError::new(FailureKind::Connect, format!("{server} has no address")))
}

/// One session: connect, log in, `TYPE I`, `PASV`, `STOR name`, the bytes,
/// `226`, `QUIT`. `transfer.bytes` counts what was written even on failure.
pub async fn upload(
    server: SocketAddr,
    login: &str,
    password: &str,
    name: &str,
    data: &[u8],
    link: &Link,
    transfer: &mut Transfer,
) -> Result<(), SessionError> {
    use FailureKind::{Connect, Login, Transfer as Xfer};
    if !link.latency.is_zero() {
        tokio::time::sleep(link.latency).await;
    }
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| SessionError::new(Connect, format!("connecting to {server}: {e}")))?;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().unwrap_or(server);
    let (r, w) = stream.into_split();
    let mut c = Control {
        reader: BufReader::new(r),
        writer: w,
        latency: link.latency,
    };
    let (code, text) = c.reply("greeting").await?;
    if code != 220 {
        return Err(SessionError::new(Connect, format!("greeting: {text}")));
    }
    let (code, text) = c.command(&format!("USER {login}"), "USER").await?;
    match code {
        230 => {}
        331 => {
            let (code, text) = c.command(&format!("PASS {password}"), "PASS").await?;
            if code != 230 {
                return Err(SessionError::new(Login, format!("PASS: {text}")));
            }
        }
        _ => return Err(SessionError::new(Login, format!("USER: {text}"))),
    }
    let (code, text) = c.command("TYPE I", "TYPE").await?;
    if code != 200 {
        return Err(SessionError::new(Xfer, format!("TYPE I: {text}")));
    }
    let (code, text) = c.command("PASV", "PASV").await?;
    let addr = match (code, parse_pasv(&text, peer)) {
        (227, Some(a)) => a,
        _ => return Err(SessionError::new(Xfer, format!("PASV: {text}"))),
    };
    let connect = |addr: SocketAddr| async move {
        TcpStream::connect(addr)
            .await
            .map_err(|e| SessionError::new(Xfer, format!("data connection to {addr}: {e}")))
    };
    let data_conn = if link.late_pasv.is_zero() {
        // The usual order: connect, then STOR.
        let data_conn = connect(addr).await?;
        let (code, text) = c.command(&format!("STOR {name}"), "STOR").await?;
        if code != 150 && code != 125 {
            return Err(SessionError::new(Xfer, format!("STOR: {text}")));
        }
        data_conn
    } else {
        // A slow unit: STOR, and the data connection only `late_pasv` later
        // (the server's wait for it runs from STOR).
        if !link.latency.is_zero() {
            tokio::time::sleep(link.latency).await;
        }
        c.writer
            .write_all(format!("STOR {name}\r\n").as_bytes())
            .await
            .map_err(|e| SessionError::new(Xfer, format!("STOR: sending: {e}")))?;
        tokio::time::sleep(link.late_pasv).await;
        let data_conn = connect(addr).await;
        let (code, text) = c.reply("STOR").await?;
        if code != 150 && code != 125 {
            return Err(SessionError::new(Xfer, format!("STOR: {text}")));
        }
        data_conn?
    };
    send(data_conn, data, link, transfer).await?;
    let (code, text) = c.reply("after the data").await?;
    if code != 226 && code != 250 {
        return Err(SessionError::new(Xfer, format!("STOR: {text}")));
    }
    // The file is acknowledged; a failing QUIT changes nothing.
    let _ = c.command("QUIT", "QUIT").await;
    Ok(())
}

/// Writes the file to the data connection, throttled, and closes it (or
/// resets it and gives up, for an injected drop).
async fn send(
    mut data_conn: TcpStream,
    data: &[u8],
    link: &Link,
    transfer: &mut Transfer,
) -> Result<(), SessionError> {
    let fail = |e: std::io::Error| {
        SessionError::new(FailureKind::Transfer, format!("writing the data: {e}"))
    };
    let limit = link.drop_after.map_or(data.len(), |n| {
        usize::try_from(n).unwrap_or(usize::MAX).min(data.len())
    });
    let chunk = match link.bandwidth {
        // About 10 writes a second, as a modem pushes its buffer.
        Some(bw) => usize::try_from((bw / 10).max(1)).unwrap_or(1024),
        None => 64 * 1024,
    };
    let started = Instant::now();
    let mut sent = 0usize;
    while sent < limit {
        let end = (sent + chunk).min(limit);
        let part = data.get(sent..end).unwrap_or_default();
        data_conn.write_all(part).await.map_err(fail)?;
        sent = end;
        transfer.bytes = sent as u64;
        if let Some(bw) = link.bandwidth.filter(|b| *b > 0) {
            let due = Duration::from_secs_f64(sent as f64 / bw as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    if link.drop_after.is_some() {
        // The link stalls, then is lost: the data connection is reset, the
        // session is gone.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let _ = data_conn.set_zero_linger();
        drop(data_conn);
        return Err(SessionError {
            kind: FailureKind::Transfer,
            message: format!(
                "link dropped after {sent} of {} bytes (injected)",
                data.len()
            ),
            injected: true,
        });
    }
    data_conn.shutdown().await.map_err(fail)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasv_reply() {
        let peer: SocketAddr = "10.0.0.1:21".parse().unwrap();
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (127,0,0,1,195,80)", peer),
            Some("127.0.0.1:50000".parse().unwrap())
        );
        assert_eq!(
            parse_pasv("227 Entering Passive Mode (0,0,0,0,0,21)", peer),
            Some("10.0.0.1:21".parse().unwrap())
        );
        assert_eq!(parse_pasv("227 nonsense", peer), None);
    }
}
