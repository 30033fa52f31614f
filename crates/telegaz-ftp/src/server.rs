//! The FTP engine: control connections, data connections, transfers.
//!
//! Written for what the embedded clients of telemetry modems do on flaky links,
//! and for what libunftp 0.24 could not give us (see the README): a transfer
//! watches its control connection while it runs, so `ABOR` or a vanished
//! client ends it as partial and no `226` is sent for it; data connections are
//! accepted only from the control connection's address and `PORT`/`EPRT` only
//! connect back to it; command lines have a maximum length; names keep their
//! exact bytes.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use secrecy::SecretString;
use telegaz_domain::{FileName, PartialReason};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::backend::{
    Account, Backend, FsError, LoginError, SessionInfo, UploadRequest, UploadSink, WriteMode,
};
use crate::names::{self, NameEncoding};
use crate::path::VPath;
use crate::proxy::{self, ProxySources};
use crate::tls::{Conn, TlsSettings};

/// Engine settings.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Passive ports, inclusive; `0..=0` lets the system choose.
    pub passive_ports: (u16, u16),
    /// Address advertised in PASV replies (behind NAT); default: the control connection's local address.
    pub passive_address: Option<IpAddr>,
    pub stall_timeout: Duration,
    pub idle_timeout: Duration,
    pub login_timeout: Duration,
    pub data_connect_timeout: Duration,
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    pub max_command_line: usize,
    /// Commands allowed before a login succeeds; then 421 and close.
    pub max_commands_before_login: u32,
    /// Commands per second before login (a burst of this many is allowed).
    pub max_command_rate_before_login: u32,
    pub greeting: String,
    /// After a data connection ends, how long to look for the client having gone.
    pub client_gone_grace: Duration,
    /// Load balancers whose connections (control, and data if they carry
    /// them) start with a PROXY protocol header naming the real client.
    pub proxy_from: ProxySources,
    /// FTPS (explicit `AUTH TLS`); `None`: plain FTP only.
    pub tls: Option<TlsSettings>,
    /// At shutdown, how long transfers in flight may run on; those still
    /// running then are ended and kept as partial (reason `shutdown`).
    pub shutdown_grace: Duration,
}

/// After the grace period, how long to wait for sessions to record the
/// transfers they end (the bytes are made durable first).
const SHUTDOWN_RECORD_WAIT: Duration = Duration::from_secs(30);

/// Wait until `rx` holds `true` (or its sender is gone).
async fn until_set(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|&v| v).await;
}

/// Over-long command lines one session may send (each answered 500); the
/// next one ends the session with 421 (a flood, not a client's mistake).
pub const MAX_LONG_LINES: u32 = 16;

/// How long a balancer has to send its PROXY header.
const PROXY_HEADER_WAIT: Duration = Duration::from_secs(10);

/// After a data connection ends cleanly, how long to look at the control
/// connection before committing: a killed client closes both at once.
pub const CLIENT_GONE_GRACE: Duration = Duration::from_millis(100);

/// The largest read of an upload's data connection (the buffer starts at
/// 64 KiB and grows while reads fill it; tokio hands a file up to 2 MiB at
/// once to its blocking thread).
const MAX_READ: usize = 1024 * 1024;

/// Accept connections until `shutdown` is set; then stop listening (new
/// connections are refused), close idle sessions with `421`, let transfers in
/// flight finish for `shutdown_grace`, end those still running as partial, and
/// return when every session has ended.
pub async fn serve<B: Backend>(
    listener: TcpListener,
    backend: Arc<B>,
    config: EngineConfig,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let config = Arc::new(config);
    let counter = Arc::new(Mutex::new(Counter::default()));
    let sessions = tokio_util::task::TaskTracker::new();
    // Set when the grace period is over: transfers still running end now.
    let (cut_tx, cut) = tokio::sync::watch::channel(false);
    accept(
        listener, &backend, &config, &counter, &sessions, &shutdown, &cut,
    )
    .await;
    sessions.close();
    if !sessions.is_empty() {
        tracing::info!(
            sessions = sessions.len(),
            grace_s = config.shutdown_grace.as_secs_f64(),
            "not accepting connections; waiting for transfers in flight (ftp.shutdown_grace)"
        );
    }
    if tokio::time::timeout(config.shutdown_grace, sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            sessions = sessions.len(),
            "shutdown grace period over: ending the transfers still running (kept as partial, reason shutdown)"
        );
        let _ = cut_tx.send(true);
        if tokio::time::timeout(SHUTDOWN_RECORD_WAIT, sessions.wait())
            .await
            .is_err()
        {
            tracing::error!(
                sessions = sessions.len(),
                "sessions did not end after the grace period; their transfers are closed at the next start"
            );
        }
    }
}

/// The accept loop: runs until `shutdown` is set; the listener is closed when it returns.
async fn accept<B: Backend>(
    listener: TcpListener,
    backend: &Arc<B>,
    config: &Arc<EngineConfig>,
    counter: &Arc<Mutex<Counter>>,
    sessions: &tokio_util::task::TaskTracker,
    shutdown: &tokio::sync::watch::Receiver<bool>,
    cut: &tokio::sync::watch::Receiver<bool>,
) {
    let mut stop = shutdown.clone();
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = until_set(&mut stop) => return,
        };
        let backend = backend.clone();
        let config = config.clone();
        let counter = counter.clone();
        let stop = shutdown.clone();
        let cut = cut.clone();
        sessions.spawn(async move {
            let mut stream = stream;
            let local = stream
                .local_addr()
                .unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
            let mut info = SessionInfo {
                id: format!("{:016x}", rand::random::<u64>()),
                peer,
                local,
                tls: false,
            };
            if config.proxy_from.expects_header(peer.ip()) {
                match proxy::read_header(&mut stream, PROXY_HEADER_WAIT).await {
                    Ok(Some(client)) => {
                        tracing::debug!(session = %info.id, balancer = %peer, client = %client, "PROXY header");
                        info.peer = client;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        backend
                            .refused(
                                &info,
                                &format!("bad PROXY protocol header from a balancer: {e}"),
                            )
                            .await;
                        return;
                    }
                }
            }
            let peer = info.peer;
            let slot = match Slot::take(&counter, peer.ip(), &config) {
                Ok(s) => s,
                Err(reason) => {
                    backend.refused(&info, reason).await;
                    let mut stream = stream;
                    let msg = format!("421 Service not available: {reason}; try again later\r\n");
                    let _ = tokio::time::timeout(
                        Duration::from_secs(5),
                        stream.write_all(msg.as_bytes()),
                    )
                    .await;
                    return;
                }
            };
            backend.connected(&info).await;
            let _ = stream.set_nodelay(true);
            let (rd, wr) = tokio::io::split(Conn::Plain(stream));
            let mut s = Session {
                backend: backend.clone(),
                config: config.clone(),
                info: info.clone(),
                ctl: LineReader::new(rd, config.max_command_line),
                out: wr,
                account: None,
                user: None,
                cwd: VPath::root(),
                rest: 0,
                rnfr: None,
                data: None,
                encoding: NameEncoding::Utf8,
                stop,
                cut,
                protect_data: false,
                before_login: PreLogin::new(&config),
                long_lines: 0,
            };
            let reason = s.run().await;
            backend
                .disconnected(&info, s.account.as_ref(), &reason)
                .await;
            drop(slot);
        });
    }
}

#[derive(Default)]
struct Counter {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

struct Slot {
    counter: Arc<Mutex<Counter>>,
    ip: IpAddr,
}

impl Slot {
    fn take(
        counter: &Arc<Mutex<Counter>>,
        ip: IpAddr,
        config: &EngineConfig,
    ) -> Result<Slot, &'static str> {
        let mut c = counter.lock().map_err(|_| "internal error")?;
        if c.total >= config.max_connections {
            return Err("too many connections (ftp.max_connections)");
        }
        let n = c.per_address.entry(ip).or_insert(0);
        if *n >= config.max_connections_per_address {
            return Err("too many connections from this address (ftp.max_connections_per_address)");
        }
        *n += 1;
        c.total += 1;
        Ok(Slot {
            counter: counter.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut c) = self.counter.lock() {
            c.total = c.total.saturating_sub(1);
            if let Some(n) = c.per_address.get_mut(&self.ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    c.per_address.remove(&self.ip);
                }
            }
        }
    }
}

/// A line from the control connection.
enum Line {
    Command(Vec<u8>),
    /// Longer than the limit; its bytes were discarded.
    TooLong,
    Eof,
}

/// Reads CRLF (or LF) terminated lines with a length limit. Cancel-safe:
/// partial input stays in the buffer when a `select!` drops the future.
/// Holds at most `max` + one read (4 KiB) of a line at any time.
struct LineReader<R = ReadHalf<Conn>> {
    rd: R,
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(rd: R, max: usize) -> Self {
        Self {
            rd,
            buf: Vec::with_capacity(256),
            max,
            discarding: false,
        }
    }

    async fn next(&mut self) -> std::io::Result<Line> {
        loop {
            if let Some(pos) = self.buf.iter().position(|&b| b == b'\n') {
                let mut line: Vec<u8> = self.buf.drain(..=pos).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                // Too long, whether it came in pieces or in one read.
                if std::mem::take(&mut self.discarding) || line.len() > self.max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Command(strip_telnet(&line)));
            }
            if self.buf.len() > self.max {
                self.buf.clear();
                self.discarding = true;
            }
            let mut chunk = [0u8; 4096];
            let n = self.rd.read(&mut chunk).await?;
            if n == 0 {
                return Ok(Line::Eof);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// A command line's verb (upper case; bytes that are not UTF-8 replaced)
/// and its argument bytes (after the first space, kept exactly).
fn split_command(line: &[u8]) -> (String, &[u8]) {
    let (verb, arg) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    (String::from_utf8_lossy(verb).to_ascii_uppercase(), arg)
}

/// Remove telnet IAC sequences (clients send IAC IP IAC DM before ABOR).
fn strip_telnet(line: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        if line[i] == 0xff {
            match line.get(i + 1) {
                Some(0xff) => {
                    out.push(0xff);
                    i += 2;
                }
                Some(0xfb..=0xfe) => i += 3,
                Some(_) => i += 2,
                None => i += 1,
            }
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    out
}

enum DataSetup {
    Passive(TcpListener),
    Active(SocketAddr),
}

/// How a session ends.
type End = String;

struct Session<B: Backend> {
    backend: Arc<B>,
    config: Arc<EngineConfig>,
    info: SessionInfo,
    ctl: LineReader,
    out: WriteHalf<Conn>,
    account: Option<B::Account>,
    user: Option<String>,
    cwd: VPath,
    rest: u64,
    rnfr: Option<VPath>,
    data: Option<DataSetup>,
    encoding: NameEncoding,
    /// Set when the server stops: no new commands, idle sessions close.
    stop: tokio::sync::watch::Receiver<bool>,
    /// Set when the shutdown grace period is over: transfers end now.
    cut: tokio::sync::watch::Receiver<bool>,
    /// `PROT P`: data connections are TLS.
    protect_data: bool,
    /// Counts the commands of a client that has not logged in yet.
    before_login: PreLogin,
    /// Over-long lines so far.
    long_lines: u32,
}

/// The limits on a client that has not logged in: a total number of
/// commands and a rate (a token bucket that holds a burst of `rate`, at
/// least [`MIN_BURST_BEFORE_LOGIN`]).
struct PreLogin {
    commands: u32,
    max_commands: u32,
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled: tokio::time::Instant,
}

/// However low the rate before login, a client may send this many commands
/// at once (USER, PASS and what clients send before them: FEAT, OPTS, AUTH).
const MIN_BURST_BEFORE_LOGIN: u32 = 5;

impl PreLogin {
    fn new(config: &EngineConfig) -> Self {
        let rate = f64::from(config.max_command_rate_before_login.max(1));
        let burst = rate.max(f64::from(MIN_BURST_BEFORE_LOGIN));
        PreLogin {
            commands: 0,
            max_commands: config.max_commands_before_login.max(1),
            rate,
            burst,
            tokens: burst,
            refilled: tokio::time::Instant::now(),
        }
    }

    /// Count one command; `Err((code, text))` when it is one too many.
    fn count(&mut self, now: tokio::time::Instant) -> Result<(), (&'static str, String)> {
        self.commands = self.commands.saturating_add(1);
        if self.commands > self.max_commands {
            return Err((
                "commands_before_login",
                format!(
                    "more than {} commands before login (ftp.max_commands_before_login)",
                    self.max_commands
                ),
            ));
        }
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.refilled = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens < 1.0 {
            return Err((
                "command_rate_before_login",
                format!(
                    "more than {} commands per second before login (ftp.max_command_rate_before_login)",
                    self.rate
                ),
            ));
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

/// Result of running a transfer.
enum Transfer {
    Done,
    /// The control connection is gone: end the session.
    Closed(End),
}

impl<B: Backend> Session<B> {
    async fn reply(&mut self, code: u16, text: &str) -> std::io::Result<()> {
        let line = format!("{code} {}\r\n", text.replace(['\r', '\n'], " "));
        self.out.write_all(line.as_bytes()).await?;
        self.out.flush().await
    }

    async fn reply_bytes(&mut self, code: u16, text: &[u8]) -> std::io::Result<()> {
        let mut line = format!("{code} ").into_bytes();
        line.extend(
            text.iter()
                .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
        );
        line.extend_from_slice(b"\r\n");
        self.out.write_all(&line).await?;
        self.out.flush().await
    }

    async fn run(&mut self) -> End {
        let greeting = self.config.greeting.clone();
        if self.reply(220, &greeting).await.is_err() {
            return "closed before the greeting".into();
        }
        let login_deadline = tokio::time::Instant::now() + self.config.login_timeout;
        let mut stop = self.stop.clone();
        loop {
            let wait = if self.account.is_none() {
                login_deadline.saturating_duration_since(tokio::time::Instant::now())
            } else {
                self.config.idle_timeout
            };
            let next = tokio::select! {
                biased;
                _ = until_set(&mut stop) => None,
                r = tokio::time::timeout(wait, self.ctl.next()) => Some(r),
            };
            let Some(next) = next else {
                let _ = self
                    .reply(421, "Server shutting down; try again later")
                    .await;
                return "server shutting down".into();
            };
            let line = match next {
                Ok(Ok(l)) => l,
                Ok(Err(e)) => return format!("control connection error: {e}"),
                Err(_) => {
                    let what = if self.account.is_none() {
                        "no login in time (ftp.login_timeout)"
                    } else {
                        "idle (ftp.idle_timeout)"
                    };
                    let _ = self.reply(421, &format!("Closing: {what}")).await;
                    return what.into();
                }
            };
            if !matches!(line, Line::Eof)
                && let Some(end) = self.over_limits(matches!(line, Line::TooLong)).await
            {
                return end;
            }
            let line = match line {
                Line::Eof => return "closed by the client".into(),
                Line::TooLong => {
                    let max = self.config.max_command_line;
                    if self
                        .reply(500, &format!("Command line too long (limit {max} bytes)"))
                        .await
                        .is_err()
                    {
                        return "closed".into();
                    }
                    continue;
                }
                Line::Command(l) => l,
            };
            match self.command(&line).await {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(e) => return format!("control connection error: {e}"),
            }
        }
    }

    /// Count a line against the session's limits (commands and their rate
    /// before login, over-long lines); `Some` ends the session, after a 421
    /// and a record for the audit trail.
    async fn over_limits(&mut self, too_long: bool) -> Option<End> {
        let mut hit = None;
        if too_long {
            self.long_lines = self.long_lines.saturating_add(1);
            if self.long_lines > MAX_LONG_LINES {
                hit = Some((
                    "long_lines",
                    format!(
                        "more than {MAX_LONG_LINES} command lines over the limit of {} bytes (ftp.max_command_line)",
                        self.config.max_command_line
                    ),
                ));
            }
        }
        if hit.is_none() && self.account.is_none() {
            hit = self.before_login.count(tokio::time::Instant::now()).err();
        }
        let (code, text) = hit?;
        tracing::info!(session = %self.info.id, peer = %self.info.peer, limit = code, "{text}; closing");
        self.backend.limit_reached(&self.info, code, &text).await;
        let _ = self.reply(421, &format!("Closing: {text}")).await;
        Some(text)
    }

    /// Handle one command. `Ok(Some(_))` ends the session.
    async fn command(&mut self, line: &[u8]) -> std::io::Result<Option<End>> {
        let (verb, arg) = split_command(line);
        let arg_text = String::from_utf8_lossy(arg).into_owned();
        tracing::trace!(session = %self.info.id, verb = %verb, "command");
        // Commands allowed before login.
        match verb.as_str() {
            "USER" | "PASS" if self.tls_required_now() => {
                let user = if verb == "USER" {
                    Some(arg_text.trim().to_owned())
                } else {
                    self.user.take()
                };
                self.account = None;
                self.user = None;
                self.backend
                    .login_refused(&self.info, user.as_deref(), &LoginError::TlsRequired)
                    .await;
                return self
                    .reply(
                        530,
                        "TLS is required on this server: send AUTH TLS before USER (ftp.tls.required)",
                    )
                    .await
                    .map(|_| None);
            }
            "USER" => {
                self.account = None;
                self.user = Some(arg_text.trim().to_owned());
                return self.reply(331, "Password required").await.map(|_| None);
            }
            "PASS" => {
                let Some(user) = self.user.take() else {
                    return self.reply(503, "Send USER first").await.map(|_| None);
                };
                let pw = SecretString::from(String::from_utf8_lossy(arg).into_owned());
                return match self.backend.login(&self.info, &user, pw).await {
                    Ok(a) => {
                        self.account = Some(a);
                        self.cwd = VPath::root();
                        self.reply(230, "Logged in").await.map(|_| None)
                    }
                    Err(LoginError::TlsRequired) => self
                        .reply(
                            530,
                            "This device must use TLS: send AUTH TLS before USER (device setting tls_required)",
                        )
                        .await
                        .map(|_| None),
                    Err(_) => self.reply(530, "Login incorrect").await.map(|_| None),
                };
            }
            "QUIT" => {
                self.reply(221, "Goodbye").await?;
                return Ok(Some("QUIT".into()));
            }
            "NOOP" => return self.reply(200, "OK").await.map(|_| None),
            "SYST" => return self.reply(215, "UNIX Type: L8").await.map(|_| None),
            "FEAT" => {
                let tls: &[u8] = if self.config.tls.is_some() {
                    b" AUTH TLS\r\n PBSZ\r\n PROT\r\n"
                } else {
                    b""
                };
                self.out.write_all(b"211-Features:\r\n").await?;
                self.out.write_all(tls).await?;
                self.out
                    .write_all(
                        b" EPSV\r\n PASV\r\n EPRT\r\n SIZE\r\n MDTM\r\n REST STREAM\r\n UTF8\r\n211 End\r\n",
                    )
                    .await?;
                self.out.flush().await?;
                return Ok(None);
            }
            "OPTS" => {
                let a = arg_text.to_ascii_uppercase();
                return if a.starts_with("UTF8") || a.starts_with("UTF-8") {
                    self.reply(200, "UTF8 mode on").await.map(|_| None)
                } else {
                    self.reply(501, "Option not understood").await.map(|_| None)
                };
            }
            "HELP" => {
                return self
                    .reply(214, "USER PASS STOR STOU APPE REST RETR RNFR RNTO DELE MKD RMD CWD CDUP PWD LIST NLST SIZE MDTM PASV EPSV PORT EPRT TYPE MODE STRU SYST FEAT OPTS NOOP ABOR QUIT")
                    .await
                    .map(|_| None);
            }
            "AUTH" | "PBSZ" | "PROT" | "CCC" if self.config.tls.is_none() => {
                return self
                    .reply(502, "TLS is not enabled on this server")
                    .await
                    .map(|_| None);
            }
            "AUTH" => return self.auth_tls(&arg_text).await,
            "PBSZ" | "PROT" if !self.info.tls => {
                return self.reply(503, "Send AUTH TLS first").await.map(|_| None);
            }
            "PBSZ" => return self.reply(200, "PBSZ=0").await.map(|_| None),
            "PROT" => {
                return match arg_text.trim().to_ascii_uppercase().as_str() {
                    "P" => {
                        self.protect_data = true;
                        self.reply(200, "Data connections will be protected (PROT P)")
                            .await
                            .map(|_| None)
                    }
                    "C" if self.data_protection_required() => self
                        .reply(
                            534,
                            "Data connections must be protected on this server: use PROT P",
                        )
                        .await
                        .map(|_| None),
                    "C" => {
                        self.protect_data = false;
                        self.reply(200, "Data connections will be clear (PROT C)")
                            .await
                            .map(|_| None)
                    }
                    "S" | "E" => self
                        .reply(536, "Only PROT P and PROT C are supported")
                        .await
                        .map(|_| None),
                    _ => self.reply(504, "PROT takes P or C").await.map(|_| None),
                };
            }
            "CCC" => {
                return self
                    .reply(534, "CCC refused: the control connection stays encrypted")
                    .await
                    .map(|_| None);
            }
            _ => {}
        }
        let Some(account) = self.account.clone() else {
            return self
                .reply(530, "Please log in with USER and PASS")
                .await
                .map(|_| None);
        };
        let account = &account;
        match verb.as_str() {
            "PWD" | "XPWD" => {
                let p = format!(
                    "\"{}\" is the current directory",
                    self.cwd.as_str().replace('"', "\"\"")
                );
                let bytes = names::encode(&p, self.encoding);
                self.reply_bytes(257, &bytes).await?;
            }
            "CWD" | "XCWD" | "CDUP" | "XCUP" => {
                let raw = if verb.ends_with("UP") {
                    b"..".as_slice()
                } else {
                    arg
                };
                match self.resolve(raw) {
                    Ok(p) => match self.backend.stat(account, &p).await {
                        Ok(e) if e.is_dir => {
                            self.cwd = p;
                            self.reply(250, "Directory changed").await?;
                        }
                        Ok(_) => self.reply(550, "Not a directory").await?,
                        Err(e) => self.fs_reply(&e).await?,
                    },
                    Err(msg) => self.reply(553, &msg).await?,
                }
            }
            "TYPE" => {
                let a = arg_text.trim().to_ascii_uppercase();
                if a.starts_with('A') || a.starts_with('I') || a.starts_with("L 8") || a == "L8" {
                    // Files are stored byte for byte in either type.
                    self.reply(200, &format!("Type set to {a}")).await?;
                } else {
                    self.reply(504, "Type not supported").await?;
                }
            }
            "MODE" => {
                if arg_text.trim().eq_ignore_ascii_case("S") {
                    self.reply(200, "Mode S").await?;
                } else {
                    self.reply(504, "Only stream mode").await?;
                }
            }
            "STRU" => {
                if arg_text.trim().eq_ignore_ascii_case("F") {
                    self.reply(200, "Structure F").await?;
                } else {
                    self.reply(504, "Only file structure").await?;
                }
            }
            "ALLO" => self.reply(202, "No storage allocation necessary").await?,
            "STAT" => self.reply(211, "Telegaz FTP: logged in").await?,
            "PASV" => self.passive(false).await?,
            "EPSV" => self.passive(true).await?,
            "PORT" => {
                let addr = parse_port(&arg_text);
                self.active(addr).await?;
            }
            "EPRT" => {
                let addr = parse_eprt(&arg_text);
                self.active(addr).await?;
            }
            "REST" => match arg_text.trim().parse::<u64>() {
                Ok(n) => {
                    self.rest = n;
                    self.reply(350, &format!("Restarting at {n}; send STOR or RETR"))
                        .await?;
                }
                Err(_) => self.reply(501, "REST needs a byte offset").await?,
            },
            "STOR" | "APPE" | "STOU" | "RETR" | "LIST" | "NLST"
                if self.data_protection_required() && !self.protect_data =>
            {
                self.data = None;
                self.rest = 0;
                self.reply(
                    521,
                    "Data connections must be protected on this server: send PBSZ 0 and PROT P",
                )
                .await?;
            }
            "STOR" | "APPE" | "STOU" => {
                let rest = std::mem::take(&mut self.rest);
                let (raw, mode) = match verb.as_str() {
                    "APPE" => (arg.to_vec(), WriteMode::Append),
                    "STOU" => {
                        let name = format!("telegaz-{:016x}.dat", rand::random::<u64>());
                        (name.into_bytes(), WriteMode::Store { unique: true })
                    }
                    _ if rest > 0 => (arg.to_vec(), WriteMode::Resume(rest)),
                    _ => (arg.to_vec(), WriteMode::Store { unique: false }),
                };
                if let Transfer::Closed(end) = self.store(account, &raw, mode).await? {
                    return Ok(Some(end));
                }
            }
            "RETR" => {
                let rest = std::mem::take(&mut self.rest);
                if let Transfer::Closed(end) = self.retrieve(account, arg, rest).await? {
                    return Ok(Some(end));
                }
            }
            "LIST" | "NLST" | "MLSD" => {
                if verb == "MLSD" {
                    self.reply(502, "Use LIST or NLST").await?;
                } else if let Transfer::Closed(end) =
                    self.listing(account, arg, verb == "NLST").await?
                {
                    return Ok(Some(end));
                }
            }
            "SIZE" | "MDTM" => match self.resolve(arg) {
                Ok(p) => match self.backend.stat(account, &p).await {
                    Ok(e) if !e.is_dir => {
                        if verb == "SIZE" {
                            self.reply(213, &e.size.to_string()).await?;
                        } else {
                            let t = e.modified.strftime("%Y%m%d%H%M%S").to_string();
                            self.reply(213, &t).await?;
                        }
                    }
                    Ok(_) => self.reply(550, "Not a plain file").await?,
                    Err(e) => self.fs_reply(&e).await?,
                },
                Err(msg) => self.reply(553, &msg).await?,
            },
            "MKD" | "XMKD" => match self.resolve(arg) {
                Ok(p) => {
                    let r = self.backend.mkdir(&self.info, account, &p).await;
                    match r {
                        Ok(()) => {
                            let text = format!("\"{}\" created", p.as_str().replace('"', "\"\""));
                            let bytes = names::encode(&text, self.encoding);
                            self.reply_bytes(257, &bytes).await?;
                        }
                        Err(e) => self.fs_reply(&e).await?,
                    }
                }
                Err(msg) => self.reply(553, &msg).await?,
            },
            "RMD" | "XRMD" | "DELE" => match self.resolve(arg) {
                Ok(p) => {
                    let r = if verb == "DELE" {
                        self.backend.delete(&self.info, account, &p).await
                    } else {
                        self.backend.rmdir(&self.info, account, &p).await
                    };
                    match r {
                        Ok(()) => self.reply(250, "Removed").await?,
                        Err(e) => self.fs_reply(&e).await?,
                    }
                }
                Err(msg) => self.reply(553, &msg).await?,
            },
            "RNFR" => match self.resolve(arg) {
                Ok(p) => match self.backend.stat(account, &p).await {
                    Ok(_) => {
                        self.rnfr = Some(p);
                        self.reply(350, "Ready for RNTO").await?;
                    }
                    Err(e) => self.fs_reply(&e).await?,
                },
                Err(msg) => self.reply(553, &msg).await?,
            },
            "RNTO" => {
                let Some(from) = self.rnfr.take() else {
                    self.reply(503, "Send RNFR first").await?;
                    return Ok(None);
                };
                match self.resolve(arg) {
                    Ok(to) => {
                        let r = self.backend.rename(&self.info, account, &from, &to).await;
                        match r {
                            Ok(()) => self.reply(250, "Renamed").await?,
                            Err(e) => self.fs_reply(&e).await?,
                        }
                    }
                    Err(msg) => self.reply(553, &msg).await?,
                }
            }
            "ABOR" => {
                self.data = None;
                self.reply(226, "No transfer to abort").await?;
            }
            _ => self.reply(502, "Command not implemented").await?,
        }
        Ok(None)
    }

    /// TLS is required of every session and this one has not started it.
    fn tls_required_now(&self) -> bool {
        self.config.tls.as_ref().is_some_and(|t| t.required) && !self.info.tls
    }

    /// Transfers need `PROT P`: TLS is required globally or by the device.
    fn data_protection_required(&self) -> bool {
        self.config.tls.as_ref().is_some_and(|t| t.required)
            || self.account.as_ref().is_some_and(|a| a.tls_required())
    }

    /// `AUTH TLS`: answer 234, then the TLS handshake on the control connection.
    async fn auth_tls(&mut self, mechanism: &str) -> std::io::Result<Option<End>> {
        let Some(tls) = self.config.tls.clone() else {
            return self
                .reply(502, "TLS is not enabled on this server")
                .await
                .map(|_| None);
        };
        if self.info.tls {
            return self.reply(503, "TLS is already on").await.map(|_| None);
        }
        let mechanism = mechanism.trim().to_ascii_uppercase();
        if !matches!(mechanism.as_str(), "TLS" | "TLS-C" | "SSL") {
            return self.reply(504, "Use AUTH TLS").await.map(|_| None);
        }
        self.reply(234, "AUTH TLS successful, start the TLS handshake")
            .await?;
        if !self.ctl.buf.is_empty() {
            // Plain text sent after AUTH but before the handshake would be
            // taken as if it came encrypted (command injection).
            return Ok(Some(
                "commands sent after AUTH TLS before the TLS handshake".into(),
            ));
        }
        let (rd, wr) = tokio::io::split(Conn::Gone);
        let rd = std::mem::replace(&mut self.ctl.rd, rd);
        let wr = std::mem::replace(&mut self.out, wr);
        if !rd.is_pair_of(&wr) {
            return Ok(Some(
                "internal error: control connection halves mismatch".into(),
            ));
        }
        let Conn::Plain(tcp) = rd.unsplit(wr) else {
            return Ok(Some("internal error: control connection not plain".into()));
        };
        let wait = self.config.data_connect_timeout;
        match tokio::time::timeout(wait, tls.control().accept(tcp)).await {
            Ok(Ok(stream)) => {
                let (rd, wr) = tokio::io::split(Conn::Tls(Box::new(stream)));
                self.ctl.rd = rd;
                self.out = wr;
                self.info.tls = true;
                // RFC 4217: AUTH resets the login state.
                self.user = None;
                self.account = None;
                tracing::debug!(session = %self.info.id, "control connection is TLS");
                Ok(None)
            }
            Ok(Err(e)) => Ok(Some(format!(
                "TLS handshake on the control connection failed: {e}"
            ))),
            Err(_) => Ok(Some(format!(
                "no TLS handshake on the control connection within {} s",
                wait.as_secs()
            ))),
        }
    }

    /// After `150`: a data connection under `PROT P` starts TLS (the client
    /// may resume the control connection's session). `Err`: why it failed.
    async fn secure_data(&mut self, tcp: TcpStream) -> Result<Conn, String> {
        if !self.protect_data {
            return Ok(Conn::Plain(tcp));
        }
        let Some(tls) = self.config.tls.clone() else {
            return Ok(Conn::Plain(tcp));
        };
        let wait = self.config.data_connect_timeout;
        match tokio::time::timeout(wait, tls.data().accept(tcp)).await {
            Ok(Ok(stream)) => Ok(Conn::Tls(Box::new(stream))),
            Ok(Err(e)) => {
                tracing::info!(session = %self.info.id, error = %e, "TLS handshake on a data connection failed");
                Err(format!("TLS handshake on the data connection failed: {e}"))
            }
            Err(_) => Err(format!(
                "no TLS handshake on the data connection within {} s",
                wait.as_secs()
            )),
        }
    }

    fn resolve(&mut self, raw: &[u8]) -> Result<VPath, String> {
        let (name, enc) = names::decode(raw);
        if enc == NameEncoding::Cp1251 {
            self.encoding = NameEncoding::Cp1251;
        }
        VPath::resolve(&self.cwd, &name.display).map_err(|e| e.to_string())
    }

    async fn fs_reply(&mut self, e: &FsError) -> std::io::Result<()> {
        let code = match e {
            FsError::NotFound(_)
            | FsError::Exists(_)
            | FsError::NotEmpty(_)
            | FsError::NotAllowed(_) => 550,
            FsError::BadName(_) => 553,
            FsError::NoSpace(_) => 452,
            FsError::TooLarge(_) => 552,
            FsError::Local(_) => 451,
        };
        let text = e.to_string();
        self.reply(code, &text).await
    }

    async fn passive(&mut self, extended: bool) -> std::io::Result<()> {
        self.data = None;
        let local_ip = self.info.local.ip();
        let listener = match bind_passive(local_ip, self.config.passive_ports) {
            Some(l) => l,
            None => {
                let (lo, hi) = self.config.passive_ports;
                let text = format!(
                    "no passive port free in {lo}-{hi} (ftp.passive_ports): every one is held by another session"
                );
                tracing::warn!(session = %self.info.id, peer = %self.info.peer, "{text}");
                self.backend
                    .limit_reached(&self.info, "passive_ports", &text)
                    .await;
                return self
                    .reply(425, "No passive port free, try again later")
                    .await;
            }
        };
        let port = match listener.local_addr() {
            Ok(a) => a.port(),
            Err(_) => return self.reply(425, "Cannot open a passive port").await,
        };
        self.data = Some(DataSetup::Passive(listener));
        if extended {
            self.reply(229, &format!("Entering Extended Passive Mode (|||{port}|)"))
                .await
        } else {
            let ip = self.config.passive_address.unwrap_or(local_ip);
            let v4 = match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(v6) => v6.to_ipv4_mapped(),
            };
            let Some(v4) = v4 else {
                self.data = None;
                return self.reply(522, "PASV needs IPv4; use EPSV").await;
            };
            let o = v4.octets();
            self.reply(
                227,
                &format!(
                    "Entering Passive Mode ({},{},{},{},{},{})",
                    o[0],
                    o[1],
                    o[2],
                    o[3],
                    port >> 8,
                    port & 0xff
                ),
            )
            .await
        }
    }

    async fn active(&mut self, addr: Option<SocketAddr>) -> std::io::Result<()> {
        self.data = None;
        let Some(addr) = addr else {
            return self.reply(501, "Bad address").await;
        };
        // Connect back only to the client itself: no FTP bounce.
        if addr.ip().to_canonical() != self.info.peer.ip().to_canonical() {
            return self
                .reply(500, "PORT/EPRT must name the address of this connection")
                .await;
        }
        if addr.port() < 1024 {
            return self
                .reply(500, "PORT/EPRT to a privileged port is refused")
                .await;
        }
        self.data = Some(DataSetup::Active(addr));
        self.reply(200, "Active mode set").await
    }

    /// Open the data connection set up by PASV/EPSV/PORT/EPRT.
    async fn open_data(&mut self) -> std::io::Result<Option<TcpStream>> {
        let Some(setup) = self.data.take() else {
            self.reply(425, "Use PASV, EPSV, PORT or EPRT first")
                .await?;
            return Ok(None);
        };
        let wait = self.config.data_connect_timeout;
        let peer_ip = self.info.peer.ip().to_canonical();
        let balancers = &self.config.proxy_from;
        let result = match setup {
            DataSetup::Passive(listener) => {
                tokio::time::timeout(wait, async {
                    loop {
                        match listener.accept().await {
                            Ok((s, from)) if from.ip().to_canonical() == peer_ip => return Ok(s),
                            // Through the balancer: its header names the client.
                            Ok((mut s, from)) if balancers.expects_header(from.ip()) => {
                                match proxy::read_header(&mut s, PROXY_HEADER_WAIT).await {
                                    Ok(Some(client)) if client.ip().to_canonical() == peer_ip => return Ok(s),
                                    other => {
                                        tracing::warn!(session = %self.info.id, from = %from, header = ?other, "data connection through the balancer for another client refused");
                                    }
                                }
                            }
                            Ok((_, from)) => {
                                tracing::warn!(session = %self.info.id, from = %from, "data connection from a foreign address refused");
                            }
                            Err(e) => return Err(e),
                        }
                    }
                })
                .await
            }
            DataSetup::Active(addr) => {
                tokio::time::timeout(wait, async {
                    let sock = if addr.is_ipv4() {
                        TcpSocket::new_v4()?
                    } else {
                        TcpSocket::new_v6()?
                    };
                    sock.connect(addr).await
                })
                .await
            }
        };
        match result {
            Ok(Ok(s)) => Ok(Some(s)),
            Ok(Err(e)) => {
                self.reply(425, &format!("Cannot open the data connection: {e}"))
                    .await?;
                Ok(None)
            }
            Err(_) => {
                self.reply(425, "No data connection in time").await?;
                Ok(None)
            }
        }
    }

    async fn store(
        &mut self,
        account: &B::Account,
        raw: &[u8],
        mode: WriteMode,
    ) -> std::io::Result<Transfer> {
        let (name, enc) = names::decode(raw);
        if enc == NameEncoding::Cp1251 {
            self.encoding = NameEncoding::Cp1251;
        }
        let path = match VPath::resolve(&self.cwd, &name.display) {
            Ok(p) => p,
            Err(e) => {
                self.data = None;
                self.reply(553, &e.to_string()).await?;
                return Ok(Transfer::Done);
            }
        };
        // The last component's exact bytes.
        let last_raw = raw
            .rsplit(|&b| b == b'/' || b == b'\\')
            .next()
            .unwrap_or(raw)
            .to_vec();
        let file_name = FileName {
            display: path.file_name().unwrap_or("").to_owned(),
            raw: last_raw,
        };
        let request = UploadRequest {
            path: path.clone(),
            name: file_name,
            mode,
        };
        let sink = self
            .backend
            .begin_upload(&self.info, account, request)
            .await;
        let sink = match sink {
            Ok(s) => s,
            Err(e) => {
                self.data = None;
                self.fs_reply(&e).await?;
                return Ok(Transfer::Done);
            }
        };
        let mut guard = SinkGuard(Some(sink));
        let mut cut = self.cut.clone();
        let data = tokio::select! {
            d = self.open_data() => d?,
            _ = until_set(&mut cut) => {
                guard.abandon(PartialReason::Shutdown).await;
                self.reply(421, "Server shutting down; try again later").await?;
                return Ok(Transfer::Closed("server shut down before the transfer began".into()));
            }
        };
        let Some(data) = data else {
            guard
                .abandon(PartialReason::DataConnectionLost(
                    "no data connection".into(),
                ))
                .await;
            return Ok(Transfer::Done);
        };
        let opening = if matches!(mode, WriteMode::Store { unique: true }) {
            format!("FILE: {}", path.file_name().unwrap_or(""))
        } else {
            "Ready to receive".to_owned()
        };
        self.reply(150, &opening).await?;
        let mut data = match self.secure_data(data).await {
            Ok(d) => d,
            Err(msg) => {
                guard
                    .abandon(PartialReason::DataConnectionLost(msg.clone()))
                    .await;
                self.reply(425, &format!("{msg}; the transfer is ended"))
                    .await?;
                return Ok(Transfer::Done);
            }
        };

        // Small first (a fleet's small files, many at once); doubled each
        // time a read fills it, up to MAX_READ, so that a big file moves in
        // fewer, larger writes.
        let mut buf = vec![0u8; 64 * 1024];
        let stall = self.config.stall_timeout;
        loop {
            tokio::select! {
                biased;
                _ = until_set(&mut cut) => {
                    guard.abandon(PartialReason::Shutdown).await;
                    drop(data);
                    self.reply(426, "Server shutting down; the bytes received are kept").await?;
                    self.reply(421, "Closing").await?;
                    return Ok(Transfer::Closed("server shut down during a transfer".into()));
                }
                line = self.ctl.next() => {
                    match line {
                        Ok(Line::Command(l)) if is_abort(&l) => {
                            guard.abandon(PartialReason::Aborted).await;
                            self.reply(426, "Transfer aborted; the bytes received are kept").await?;
                            self.reply(226, "Abort successful").await?;
                            return Ok(Transfer::Done);
                        }
                        Ok(Line::Command(l)) => {
                            let verb = String::from_utf8_lossy(l.split(|&b| b == b' ').next().unwrap_or(&[])).to_ascii_uppercase();
                            if verb == "NOOP" || verb == "STAT" {
                                self.reply(200, "Transfer in progress").await?;
                            } else {
                                self.reply(503, "A transfer is in progress; send ABOR to stop it").await?;
                            }
                        }
                        Ok(Line::TooLong) => {
                            self.reply(500, "Command line too long").await?;
                        }
                        Ok(Line::Eof) | Err(_) => {
                            guard.abandon(PartialReason::ControlConnectionClosed).await;
                            return Ok(Transfer::Closed("the client closed the control connection during a transfer".into()));
                        }
                    }
                }
                r = tokio::time::timeout(stall, data.read(&mut buf)) => {
                    let n = match r {
                        Ok(Ok(n)) => n,
                        // A TLS client that closes TCP without close_notify:
                        // the same end of data as on a plain connection.
                        Ok(Err(e)) if data.is_tls() && e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                        Ok(Err(e)) => {
                            guard.abandon(PartialReason::DataConnectionLost(e.to_string())).await;
                            self.reply(426, "Data connection lost; the bytes received are kept").await?;
                            return Ok(Transfer::Done);
                        }
                        Err(_) => {
                            guard.abandon(PartialReason::Stalled { seconds: stall.as_secs() }).await;
                            self.reply(426, &format!("No data for {} s; the bytes received are kept", stall.as_secs())).await?;
                            return Ok(Transfer::Done);
                        }
                    };
                    if n == 0 {
                        break;
                    }
                    let Some(sink) = guard.0.as_mut() else { break };
                    if let Err(e) = sink.write(&buf[..n]).await {
                        let reason = match &e {
                            FsError::TooLarge(limit) => PartialReason::TooLarge { limit: *limit },
                            other => PartialReason::StorageError(other.to_string()),
                        };
                        guard.abandon(reason).await;
                        drop(data);
                        self.fs_reply(&e).await?;
                        return Ok(Transfer::Done);
                    }
                    if n == buf.len() && buf.len() < MAX_READ {
                        buf.resize(buf.len() * 2, 0);
                    }
                }
            }
        }
        // Answer the client's close (TLS: close_notify) before dropping it.
        let _ = tokio::time::timeout(Duration::from_secs(5), data.shutdown()).await;
        drop(data);
        // The data connection ended cleanly. A client that died closes both
        // connections at once: look at the control connection briefly.
        let grace = self.config.client_gone_grace;
        let mut pending = None;
        // The bytes are made durable while we look: the fsync (long for a big
        // file) and the grace overlap instead of adding up.
        let (settled, look) = match guard.0.as_mut() {
            Some(sink) => {
                tokio::join!(sink.settle(), tokio::time::timeout(grace, self.ctl.next()))
            }
            None => (Ok(()), tokio::time::timeout(grace, self.ctl.next()).await),
        };
        match look {
            Err(_) => {}
            Ok(Ok(Line::Eof)) | Ok(Err(_)) => {
                guard.abandon(PartialReason::ControlConnectionClosed).await;
                return Ok(Transfer::Closed(
                    "the client closed the control connection during a transfer".into(),
                ));
            }
            Ok(Ok(Line::Command(l))) if is_abort(&l) => {
                guard.abandon(PartialReason::Aborted).await;
                self.reply(426, "Transfer aborted; the bytes received are kept")
                    .await?;
                self.reply(226, "Abort successful").await?;
                return Ok(Transfer::Done);
            }
            Ok(Ok(Line::Command(l))) => pending = Some(l),
            Ok(Ok(Line::TooLong)) => {}
        }
        let outcome = match settled {
            Err(e) => {
                guard
                    .abandon(PartialReason::StorageError(e.to_string()))
                    .await;
                Err(e)
            }
            Ok(()) => match guard.0.take() {
                Some(sink) => sink.complete().await,
                None => return Ok(Transfer::Done),
            },
        };
        match outcome {
            Ok(receipt) => {
                self.reply(
                    226,
                    &format!(
                        "Transfer complete, {} bytes stored{}",
                        receipt.size,
                        if receipt.note.is_empty() {
                            String::new()
                        } else {
                            format!("; {}", receipt.note)
                        }
                    ),
                )
                .await?;
            }
            Err(e) => {
                self.fs_reply(&e).await?;
            }
        }
        if let Some(l) = pending
            && let Some(end) = Box::pin(self.command(&l)).await?
        {
            return Ok(Transfer::Closed(end));
        }
        Ok(Transfer::Done)
    }

    async fn retrieve(
        &mut self,
        account: &B::Account,
        raw: &[u8],
        offset: u64,
    ) -> std::io::Result<Transfer> {
        let path = match self.resolve(raw) {
            Ok(p) => p,
            Err(msg) => {
                self.data = None;
                self.reply(553, &msg).await?;
                return Ok(Transfer::Done);
            }
        };
        let reader = self.backend.read(account, &path, offset).await;
        let reader = match reader {
            Ok(r) => r,
            Err(e) => {
                self.data = None;
                self.fs_reply(&e).await?;
                return Ok(Transfer::Done);
            }
        };
        self.send_data(reader).await
    }

    async fn listing(
        &mut self,
        account: &B::Account,
        raw: &[u8],
        names_only: bool,
    ) -> std::io::Result<Transfer> {
        // Ignore ls-style options such as `-la`.
        let arg: Vec<u8> = if raw.first() == Some(&b'-') {
            match raw.iter().position(|&b| b == b' ') {
                Some(i) => raw[i + 1..].to_vec(),
                None => Vec::new(),
            }
        } else {
            raw.to_vec()
        };
        let path = match self.resolve(&arg) {
            Ok(p) => p,
            Err(msg) => {
                self.data = None;
                self.reply(553, &msg).await?;
                return Ok(Transfer::Done);
            }
        };
        let entries = match self.backend.stat(account, &path).await {
            Ok(e) if !e.is_dir => Ok(vec![e]),
            Ok(_) => self.backend.list(account, &path).await,
            Err(e) => Err(e),
        };
        let entries = match entries {
            Ok(e) => e,
            Err(e) => {
                self.data = None;
                self.fs_reply(&e).await?;
                return Ok(Transfer::Done);
            }
        };
        let mut out = String::new();
        let now_year = jiff::Timestamp::now()
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .year();
        for e in &entries {
            let name = e.path.file_name().unwrap_or("");
            if names_only {
                let _ = write!(out, "{name}\r\n");
            } else {
                let z = e.modified.to_zoned_datetime(jiff::tz::TimeZone::UTC);
                let when = if z.year() == now_year {
                    z.strftime("%b %d %H:%M").to_string()
                } else {
                    z.strftime("%b %d  %Y").to_string()
                };
                let (kind, perm) = if e.is_dir {
                    ('d', "rwxr-xr-x")
                } else {
                    ('-', "rw-r--r--")
                };
                let _ = write!(
                    out,
                    "{kind}{perm} 1 ftp ftp {:>12} {when} {name}\r\n",
                    e.size
                );
            }
        }
        let bytes = names::encode(&out, self.encoding);
        self.send_data(Box::new(std::io::Cursor::new(bytes))).await
    }

    /// Send bytes over the data connection, watching the control connection.
    async fn send_data(
        &mut self,
        mut reader: Box<dyn AsyncRead + Send + Unpin>,
    ) -> std::io::Result<Transfer> {
        let Some(data) = self.open_data().await? else {
            return Ok(Transfer::Done);
        };
        self.reply(150, "Opening data connection").await?;
        let mut data = match self.secure_data(data).await {
            Ok(d) => d,
            Err(msg) => {
                self.reply(425, &format!("{msg}; the transfer is ended"))
                    .await?;
                return Ok(Transfer::Done);
            }
        };
        let mut buf = vec![0u8; 64 * 1024];
        let stall = self.config.stall_timeout;
        let mut cut = self.cut.clone();
        loop {
            let n = match reader.read(&mut buf).await {
                Ok(n) => n,
                Err(e) => {
                    self.reply(451, &format!("Read error: {e}")).await?;
                    return Ok(Transfer::Done);
                }
            };
            if n == 0 {
                break;
            }
            tokio::select! {
                biased;
                _ = until_set(&mut cut) => {
                    drop(data);
                    self.reply(426, "Server shutting down").await?;
                    self.reply(421, "Closing").await?;
                    return Ok(Transfer::Closed("server shut down during a transfer".into()));
                }
                line = self.ctl.next() => match line {
                    Ok(Line::Command(l)) if is_abort(&l) => {
                        self.reply(426, "Transfer aborted").await?;
                        self.reply(226, "Abort successful").await?;
                        return Ok(Transfer::Done);
                    }
                    Ok(Line::Command(_)) | Ok(Line::TooLong) => {
                        self.reply(503, "A transfer is in progress; send ABOR to stop it").await?;
                    }
                    Ok(Line::Eof) | Err(_) => return Ok(Transfer::Closed("closed by the client during a transfer".into())),
                },
                r = tokio::time::timeout(stall, data.write_all(&buf[..n])) => match r {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) | Err(_) => {
                        self.reply(426, "Data connection lost").await?;
                        return Ok(Transfer::Done);
                    }
                },
            }
        }
        let _ = data.shutdown().await;
        drop(data);
        self.reply(226, "Transfer complete").await?;
        Ok(Transfer::Done)
    }
}

fn is_abort(line: &[u8]) -> bool {
    let t = String::from_utf8_lossy(line);
    t.trim().eq_ignore_ascii_case("ABOR")
}

/// Abandons the upload (bytes kept, recorded partial) if a transfer ends without `complete`.
struct SinkGuard<S: UploadSink>(Option<S>);

impl<S: UploadSink> SinkGuard<S> {
    async fn abandon(&mut self, reason: PartialReason) {
        if let Some(s) = self.0.take()
            && let Err(e) = s.abandon(reason).await
        {
            tracing::error!(error = %e, "cannot record a partial upload");
        }
    }
}

impl<S: UploadSink> Drop for SinkGuard<S> {
    fn drop(&mut self) {
        if let Some(s) = self.0.take()
            && let Ok(h) = tokio::runtime::Handle::try_current()
        {
            h.spawn(async move {
                let _ = s.abandon(PartialReason::Shutdown).await;
            });
        }
    }
}

fn bind_passive(ip: IpAddr, (lo, hi): (u16, u16)) -> Option<TcpListener> {
    let try_port = |port: u16| -> Option<TcpListener> {
        let sock = if ip.is_ipv4() {
            TcpSocket::new_v4().ok()?
        } else {
            TcpSocket::new_v6().ok()?
        };
        // A port whose last data connection is in TIME_WAIT is free to
        // listen on again (a small range must not run dry on closed ones).
        sock.set_reuseaddr(true).ok()?;
        sock.bind(SocketAddr::new(ip, port)).ok()?;
        sock.listen(8).ok()
    };
    if lo == 0 && hi == 0 {
        return try_port(0);
    }
    let span = u32::from(hi) - u32::from(lo) + 1;
    let start = rand::random::<u32>() % span;
    for i in 0..span.min(200) {
        let port = lo as u32 + (start + i) % span;
        if let Some(l) = try_port(port as u16) {
            return Some(l);
        }
    }
    None
}

/// `h1,h2,h3,h4,p1,p2`
fn parse_port(arg: &str) -> Option<SocketAddr> {
    let nums: Vec<u8> = arg
        .trim()
        .split(',')
        .map(|x| x.trim().parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    if nums.len() != 6 {
        return None;
    }
    let ip = std::net::Ipv4Addr::new(nums[0], nums[1], nums[2], nums[3]);
    let port = (u16::from(nums[4]) << 8) | u16::from(nums[5]);
    Some(SocketAddr::new(IpAddr::V4(ip), port))
}

/// `|1|132.235.1.2|6275|` or `|2|::1|6275|`
fn parse_eprt(arg: &str) -> Option<SocketAddr> {
    let arg = arg.trim();
    let delim = arg.chars().next()?;
    let parts: Vec<&str> = arg.split(delim).collect();
    if parts.len() != 5 {
        return None;
    }
    let ip: IpAddr = parts[2].parse().ok()?;
    match (parts[1], &ip) {
        ("1", IpAddr::V4(_)) | ("2", IpAddr::V6(_)) => {}
        _ => return None,
    }
    let port: u16 = parts[3].parse().ok()?;
    Some(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telnet_sequences_are_stripped() {
        assert_eq!(strip_telnet(b"\xff\xf4\xff\xf2ABOR"), b"ABOR");
        assert_eq!(strip_telnet(b"a\xff\xffb"), b"a\xffb");
        assert_eq!(strip_telnet(b"\xff\xfb\x01X"), b"X");
        assert_eq!(strip_telnet(b"\xff"), b"");
    }

    #[test]
    fn port_and_eprt_arguments() {
        assert_eq!(
            parse_port("127,0,0,1,4,1"),
            Some("127.0.0.1:1025".parse().unwrap())
        );
        assert_eq!(parse_port("127,0,0,1,4"), None);
        assert_eq!(parse_port("300,0,0,1,4,1"), None);
        assert_eq!(
            parse_eprt("|1|10.0.0.1|2121|"),
            Some("10.0.0.1:2121".parse().unwrap())
        );
        assert_eq!(
            parse_eprt("|2|::1|2121|"),
            Some("[::1]:2121".parse().unwrap())
        );
        assert_eq!(parse_eprt("|2|10.0.0.1|2121|"), None);
        assert_eq!(parse_eprt("garbage"), None);
    }

    /// Hands out its bytes in the given pieces, as a TCP peer might.
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// Arbitrary bytes, with the separators and telnet bytes a control
    /// channel parser must get right much more often than chance.
    fn control_bytes() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        // Cheap to generate (one u8 per byte): the upper 96 values stand
        // for the special bytes.
        const SPECIAL: &[u8] = b"\n\r \xff/.";
        proptest::collection::vec(any::<u8>(), 0..4000).prop_map(|bytes| {
            bytes
                .into_iter()
                .map(|b| match b.checked_sub(160) {
                    Some(i) => SPECIAL[usize::from(i) % SPECIAL.len()],
                    None => b,
                })
                .collect()
        })
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused_even_in_one_read() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut input = vec![b'A'; 3000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        let mut r = LineReader::new(Pieces([input].into()), 512);
        rt.block_on(async {
            assert!(matches!(r.next().await.unwrap(), Line::TooLong));
            assert!(matches!(r.next().await.unwrap(), Line::Command(l) if l == b"NOOP"));
            assert!(matches!(r.next().await.unwrap(), Line::Eof));
        });
    }

    proptest::proptest! {
        #![proptest_config(proptest::test_runner::Config::with_cases(96))]

        /// Whatever bytes arrive, in whatever pieces: one result per line
        /// feed, no line over the limit, nothing panics, and every path
        /// argument resolves inside the virtual root or is refused.
        #[test]
        fn the_control_channel_parser_takes_arbitrary_bytes(
            input in control_bytes(),
            cuts in proptest::collection::vec(1usize..700, 1..40),
            max in 512usize..1500,
        ) {
            let mut pieces = std::collections::VecDeque::new();
            let mut rest = input.as_slice();
            for cut in cuts.iter().cycle() {
                if rest.is_empty() {
                    break;
                }
                let (a, b) = rest.split_at((*cut).min(rest.len()));
                pieces.push_back(a.to_vec());
                rest = b;
            }
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut reader = LineReader::new(Pieces(pieces), max);
            let mut lines = 0usize;
            loop {
                match rt.block_on(reader.next()).unwrap() {
                    Line::Eof => break,
                    Line::TooLong => lines += 1,
                    Line::Command(line) => {
                        lines += 1;
                        proptest::prop_assert!(line.len() <= max);
                        proptest::prop_assert!(!line.contains(&b'\n'));
                        let (verb, arg) = split_command(&line);
                        proptest::prop_assert!(!verb.contains(' '));
                        // The argument's bytes are kept exactly.
                        proptest::prop_assert!(line.ends_with(arg));
                        let (name, _) = names::decode(arg);
                        if let Ok(p) = VPath::resolve(&VPath::root(), &name.display) {
                            let s = p.as_str();
                            proptest::prop_assert!(s.starts_with('/'));
                            proptest::prop_assert!(!s.contains(|c: char| c.is_control()));
                            proptest::prop_assert!(p.components().all(|c| c != ".." && c != "."));
                        }
                        let text = String::from_utf8_lossy(arg);
                        let _ = parse_port(&text);
                        let _ = parse_eprt(&text);
                    }
                }
                proptest::prop_assert!(reader.buf.len() <= max + 4096);
            }
            proptest::prop_assert_eq!(lines, input.iter().filter(|&&b| b == b'\n').count());
        }

        #[test]
        fn telnet_stripping_takes_arbitrary_bytes(bytes in control_bytes()) {
            let out = strip_telnet(&bytes);
            proptest::prop_assert!(out.len() <= bytes.len());
        }
    }

    proptest::proptest! {
        #[test]
        fn argument_parsers_never_panic(s in ".{0,64}") {
            let _ = parse_port(&s);
            let _ = parse_eprt(&s);
            let _ = strip_telnet(s.as_bytes());
        }
    }
}
