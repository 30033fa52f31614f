//! A bounded, seeded fuzz run of the FTP control channel against the live
//! server: many connections send random and mutated command sequences
//! (mutations of valid sessions, path traversal, absolute paths, NUL bytes,
//! huge arguments, invalid UTF-8, telnet IAC bytes, binary garbage, half
//! lines, abrupt closes), some after a valid login of a real device account,
//! some with real data transfers. Then:
//!
//! - the server process stayed alive and answers a fresh session (login,
//!   `STOR`, `226`, the bytes stored);
//! - every reply it sent was a well-formed FTP reply (three digits, then a
//!   space or a dash; multi-line replies closed by their code);
//! - no file appeared or changed anywhere in the sandbox (the test's and the
//!   server's working directory, `TMPDIR`, the data directory) except under
//!   `spool/` and the database files;
//! - its resident memory (`VmRSS`) stayed under a fixed bound and its heap
//!   (`RssAnon`) did not grow much from the first half of the run to the
//!   second;
//! - no panic in its log.
//!
//! `TELEGAZ_FUZZ_SEED` replays a run (the seed is printed), and
//! `TELEGAZ_FUZZ_ITERS` sets the number of connections (default 800).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use common::{Server, content};
use suppaftp::FtpStream;
use suppaftp::types::FileType;

/// Connections at once.
const WORKERS: usize = 8;
/// No new connection is started after this long (a bound, not an assertion).
const TIME_BUDGET: Duration = Duration::from_secs(90);
/// How long a reply may take before the server counts as not answering.
const REPLY_WAIT: Duration = Duration::from_secs(30);
/// Resident memory the server must stay under. A debug build starts near
/// 60 MiB and levels off between 150 and 210 MiB under this fuzz (argon2 checks of
/// the device password take 19 MiB each; the binary's pages come in as its
/// code runs); a leak of what the fuzz sends (huge lines, many sessions)
/// would pass this and grow from one half of the run to the next.
const RSS_BOUND_KIB: u64 = 320 * 1024;

/// xorshift64*: small, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

const VERBS: &[&str] = &[
    "USER", "PASS", "CWD", "CDUP", "PWD", "MKD", "RMD", "STOR", "APPE", "STOU", "RETR", "RNFR",
    "RNTO", "DELE", "PASV", "EPSV", "PORT", "EPRT", "REST", "TYPE", "MODE", "STRU", "SITE", "OPTS",
    "AUTH", "PBSZ", "PROT", "CCC", "ABOR", "NOOP", "SYST", "FEAT", "HELP", "STAT", "ALLO", "SIZE",
    "MDTM", "LIST", "NLST", "MLSD", "XMKD", "XCWD", "ACCT", "REIN", "SMNT", "EPSV ALL", "HOST",
    "user", "Stor", "QUIT",
];

/// Verbs whose argument is a path.
const PATH_VERBS: &[&str] = &[
    "CWD", "MKD", "RMD", "STOR", "APPE", "RETR", "RNFR", "RNTO", "DELE", "SIZE", "MDTM", "LIST",
    "NLST", "XMKD", "XCWD",
];

/// Verbs that open a data connection (one preliminary and one final reply).
const TRANSFER_VERBS: &[&str] = &["STOR", "APPE", "STOU", "RETR", "LIST", "NLST", "MLSD"];

struct Fuzz {
    ftp: SocketAddr,
    /// The sandbox's absolute paths, offered as names to write to.
    sandbox_paths: Vec<String>,
    bad_replies: Mutex<Vec<String>>,
    stalls: Mutex<Vec<String>>,
    connections: AtomicUsize,
    lines_sent: AtomicUsize,
    replies: AtomicUsize,
    uploads_acknowledged: AtomicUsize,
    logins: AtomicUsize,
}

impl Fuzz {
    fn path_arg(&self, rng: &mut Rng) -> Vec<u8> {
        let fixed: &[&[u8]] = &[
            b"../../etc/passwd",
            b"/../../../../tmp/telegaz-fuzz",
            b"..\\..\\..\\windows\\win.ini",
            b"/etc/cron.d/evil",
            b"C:\\boot.ini",
            b"%2e%2e/%2e%2e/x",
            b"~root/.ssh/authorized_keys",
            b"a\0b.txt",
            b"\0",
            b"/proc/self/environ",
            b"spool/objects/x",
            b"../spool/incoming/x.tmp",
            b"telegaz.db",
            b"../telegaz.db",
            b"....//....//x",
            b".",
            b"..",
            b"/",
            b"",
            b"\xee\xf2\xf7\xe5\xf2.txt",
            b"\xff\xfe\xfd",
            b"\xc3\x28.txt",
            b"arch/2026/11/readout.txt",
            b"a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s",
            b"file\r.txt",
            b"-rf",
            b"*",
            b"$(touch pwned)",
        ];
        match rng.below(6) {
            0 | 1 => rng.pick(fixed).to_vec(),
            2 => {
                let p = rng.pick(&self.sandbox_paths).clone();
                format!("{p}/fuzz-{}.txt", rng.below(1000)).into_bytes()
            }
            3 => {
                let depth = 1 + rng.below(40);
                let mut p = "../".repeat(depth).into_bytes();
                p.extend_from_slice(b"etc/passwd");
                p
            }
            4 => vec![b'x'; 200 + rng.below(5000)],
            _ => {
                let len = rng.below(40);
                rng.bytes(len).into_iter().filter(|&b| b != b'\n').collect()
            }
        }
    }

    /// A PORT/EPRT argument: this client's listener, another address
    /// (a bounce attempt, refused), or nonsense. Never an arbitrary port.
    fn active_arg(&self, rng: &mut Rng, listener_port: u16, eprt: bool) -> Vec<u8> {
        let (hi, lo) = (listener_port >> 8, listener_port & 0xff);
        let s = match (eprt, rng.below(4)) {
            (false, 0) => format!("127,0,0,1,{hi},{lo}"),
            (false, 1) => format!("127,0,0,2,{hi},{lo}"),
            (false, 2) => "127,0,0,1,0,21".to_owned(),
            (false, _) => rng
                .pick(&["1,2,3", "999,1,1,1,1,1", "", ",,,,,"])
                .to_string(),
            (true, 0) => format!("|1|127.0.0.1|{listener_port}|"),
            (true, 1) => format!("|1|127.0.0.2|{listener_port}|"),
            (true, 2) => format!("|2|::1|{listener_port}|"),
            (true, _) => rng
                .pick(&["|3|x|1|", "||||", "|1|127.0.0.1|99999|", ""])
                .to_string(),
        };
        s.into_bytes()
    }

    /// One command line, without its line end.
    fn command(&self, rng: &mut Rng, listener_port: u16) -> Vec<u8> {
        let verb = *rng.pick(VERBS);
        let arg: Vec<u8> = match verb.to_ascii_uppercase().as_str() {
            "USER" => rng
                .pick(&[
                    "unit1",
                    "unit2",
                    "anonymous",
                    "root",
                    "unit1\0",
                    "' OR 1=1 --",
                    "",
                ])
                .as_bytes()
                .to_vec(),
            "PASS" => rng
                .pick(&["pw-unit1", "wrong", "", "pw-unit1 ", "\u{0}"])
                .as_bytes()
                .to_vec(),
            "PORT" => self.active_arg(rng, listener_port, false),
            "EPRT" => self.active_arg(rng, listener_port, true),
            "REST" => rng
                .pick(&[
                    "0",
                    "100",
                    "18446744073709551615",
                    "99999999999999999999",
                    "-1",
                    "x",
                ])
                .as_bytes()
                .to_vec(),
            "TYPE" => rng
                .pick(&["I", "A", "L 8", "E", "X", "A N"])
                .as_bytes()
                .to_vec(),
            "SITE" => rng
                .pick(&["CHMOD 777 x", "EXEC /bin/sh -c id", "HELP", "UMASK 000"])
                .as_bytes()
                .to_vec(),
            "OPTS" => rng
                .pick(&["UTF8 ON", "UTF-8 OFF", "MLST type;", "x"])
                .as_bytes()
                .to_vec(),
            "AUTH" => rng
                .pick(&["TLS", "SSL", "TLS-C", "KERBEROS"])
                .as_bytes()
                .to_vec(),
            "PROT" => rng.pick(&["P", "C", "S", "E", "X"]).as_bytes().to_vec(),
            "PBSZ" => rng.pick(&["0", "-1", "99999999999"]).as_bytes().to_vec(),
            v if PATH_VERBS.contains(&v) => self.path_arg(rng),
            _ if rng.chance(30) => self.path_arg(rng),
            _ => Vec::new(),
        };
        let mut line = verb.as_bytes().to_vec();
        if !arg.is_empty() || rng.chance(20) {
            line.push(b' ');
            line.extend_from_slice(&arg);
        }
        line
    }

    /// Mutate a line in place, never adding a line feed.
    fn mutate(rng: &mut Rng, line: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(3) {
            match rng.below(8) {
                0 if !line.is_empty() => {
                    let i = rng.below(line.len());
                    line[i] ^= 1 << rng.below(8);
                }
                1 => {
                    let b = *rng.pick(&[0u8, 0xff, 0xfe, 0x80, 0xc3, b'\r', b' ', b'/', b'\\']);
                    let i = rng.below(line.len() + 1);
                    line.insert(i, b);
                }
                2 if !line.is_empty() => {
                    let i = rng.below(line.len());
                    line.remove(i);
                }
                3 => {
                    let sequences: [&[u8]; 4] =
                        [b"\xff\xf4\xff\xf2", b"\xff\xfb\x01", b"\xff\xff", b"\xff"];
                    let iac = rng.pick(&sequences).to_vec();
                    let i = rng.below(line.len() + 1);
                    line.splice(i..i, iac.iter().copied());
                }
                4 => {
                    // A huge argument: up to twenty times the line limit.
                    let n = rng.below(80_000);
                    line.extend(std::iter::repeat_n(b'A', n));
                }
                5 => line.extend(rng.bytes(8).into_iter().filter(|&b| b != b'\n')),
                6 => line.make_ascii_lowercase(),
                _ => line.truncate(rng.below(line.len() + 1)),
            }
        }
        line.retain(|&b| b != b'\n');
    }

    fn note_reply_error(&self, seed: u64, what: String) {
        let mut bad = self.bad_replies.lock().unwrap();
        if bad.len() < 20 {
            bad.push(format!("connection seed {seed}: {what}"));
        }
    }

    /// Blast mode: send a byte script (any bytes, cut anywhere, maybe
    /// closed abruptly), then read what came back until the server closes.
    fn blast(&self, seed: u64) {
        let mut rng = Rng::new(seed);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut script = Vec::new();
        if rng.chance(40) {
            script.extend_from_slice(b"USER unit1\r\nPASS pw-unit1\r\n");
        }
        for _ in 0..1 + rng.below(30) {
            match rng.below(10) {
                0 => {
                    let n = rng.below(3000);
                    script.extend(rng.bytes(n));
                }
                1 => {
                    // A half line: the next one runs into it.
                    let mut line = self.command(&mut rng, port);
                    Self::mutate(&mut rng, &mut line);
                    script.extend_from_slice(&line);
                }
                _ => {
                    let mut line = self.command(&mut rng, port);
                    let verb = line.split(|&b| b == b' ').next().unwrap_or(&[]).to_vec();
                    let active =
                        verb.eq_ignore_ascii_case(b"PORT") || verb.eq_ignore_ascii_case(b"EPRT");
                    if !active && rng.chance(50) {
                        Self::mutate(&mut rng, &mut line);
                    }
                    script.extend_from_slice(&line);
                    script.extend_from_slice(if rng.chance(80) { b"\r\n" } else { b"\n" });
                }
            }
        }
        let abrupt = rng.chance(25);
        let Ok(mut stream) = TcpStream::connect(self.ftp) else {
            self.stalls
                .lock()
                .unwrap()
                .push(format!("seed {seed}: connect refused"));
            return;
        };
        stream.set_read_timeout(Some(REPLY_WAIT)).unwrap();
        let reader = stream.try_clone().unwrap();
        let collect = std::thread::spawn(move || read_all(reader));
        let mut rest = script.as_slice();
        while !rest.is_empty() {
            let n = (1 + rng.below(2000)).min(rest.len());
            if stream.write_all(&rest[..n]).is_err() {
                break;
            }
            rest = &rest[n..];
            if abrupt && rng.chance(10) {
                break;
            }
        }
        self.lines_sent.fetch_add(
            script.iter().filter(|&&b| b == b'\n').count(),
            Ordering::Relaxed,
        );
        if abrupt {
            // Reset or plain close, in the middle of whatever was going on.
            let _ = stream.shutdown(Shutdown::Both);
            drop(stream);
            let _ = collect.join();
            return;
        }
        let _ = stream.shutdown(Shutdown::Write);
        let (bytes, ended) = collect.join().unwrap();
        if !ended {
            self.stalls.lock().unwrap().push(format!(
                "seed {seed}: no end of the session within {REPLY_WAIT:?} of the client's"
            ));
        }
        match check_replies(&bytes) {
            Ok(n) => {
                self.replies.fetch_add(n, Ordering::Relaxed);
            }
            Err(e) => self.note_reply_error(seed, e),
        }
    }

    /// Conversation mode: log in as a real device, then one command at a
    /// time (mutated or not, always one line), reading each reply, with
    /// real passive and active transfers of names that try to escape.
    fn converse(&self, seed: u64) {
        let mut rng = Rng::new(seed);
        let mut c = match Conversation::open(self.ftp) {
            Ok(c) => c,
            Err(e) => {
                self.stalls
                    .lock()
                    .unwrap()
                    .push(format!("seed {seed}: {e}"));
                return;
            }
        };
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(false).unwrap();
        let port = listener.local_addr().unwrap().port();
        let result = (|| -> Result<(), String> {
            c.expect("USER unit1", "331")?;
            c.expect("PASS pw-unit1", "230")?;
            self.logins.fetch_add(1, Ordering::Relaxed);
            for _ in 0..5 + rng.below(25) {
                match rng.below(10) {
                    0..=2 => self.transfer(&mut rng, &mut c, &listener, port)?,
                    _ => {
                        let mut line = self.command(&mut rng, port);
                        let verb = String::from_utf8_lossy(
                            line.split(|&b| b == b' ').next().unwrap_or(&[]),
                        )
                        .to_ascii_uppercase();
                        if verb == "QUIT" || TRANSFER_VERBS.contains(&verb.as_str()) {
                            continue;
                        }
                        if rng.chance(50) && verb != "PORT" && verb != "EPRT" {
                            Self::mutate(&mut rng, &mut line);
                        }
                        c.send_line(&line)?;
                        self.lines_sent.fetch_add(1, Ordering::Relaxed);
                        let reply = c.final_reply()?;
                        if reply.starts_with("221") {
                            return Ok(()); // a mutation made a QUIT
                        }
                    }
                }
            }
            if rng.chance(70) {
                c.send_line(b"QUIT")?;
                let _ = c.final_reply();
            }
            Ok(())
        })();
        self.replies.fetch_add(c.replies, Ordering::Relaxed);
        if let Err(e) = result {
            if e.starts_with("bad reply") {
                self.note_reply_error(seed, e);
            } else if e.starts_with("no reply") {
                self.stalls
                    .lock()
                    .unwrap()
                    .push(format!("seed {seed}: {e}"));
            }
            // Anything else: the server closed the session (after a 421 or a
            // 221 a mutation asked for), which is its right.
        }
    }

    /// EPSV/PASV or PORT/EPRT, then STOR/APPE of a hostile name, and bytes.
    fn transfer(
        &self,
        rng: &mut Rng,
        c: &mut Conversation,
        listener: &TcpListener,
        port: u16,
    ) -> Result<(), String> {
        let active = rng.chance(25);
        let passive_port = if active {
            let arg = if rng.chance(50) {
                format!("PORT 127,0,0,1,{},{}", port >> 8, port & 0xff)
            } else {
                format!("EPRT |1|127.0.0.1|{port}|")
            };
            c.expect(&arg, "200")?;
            None
        } else if rng.chance(50) {
            let r = c.expect("EPSV", "229")?;
            Some(epsv_port(&r).ok_or(format!("bad reply: EPSV without a port {r:?}"))?)
        } else {
            let r = c.expect("PASV", "227")?;
            Some(pasv_port(&r).ok_or(format!("bad reply: PASV without a port {r:?}"))?)
        };
        let verb = if rng.chance(75) { "STOR" } else { "APPE" };
        let mut line = format!("{verb} ").into_bytes();
        line.extend(self.path_arg(rng));
        if rng.chance(30) {
            Self::mutate(rng, &mut line);
            if !line.starts_with(verb.as_bytes()) {
                line.splice(0..0, format!("{verb} ").into_bytes());
            }
        }
        // Connect first for passive mode (the server waits for it).
        let data = passive_port.and_then(|p| TcpStream::connect(("127.0.0.1", p)).ok());
        c.send_line(&line)?;
        self.lines_sent.fetch_add(1, Ordering::Relaxed);
        let first = c.reply()?;
        if !first.starts_with("150") && !first.starts_with("125") {
            return Ok(()); // refused (a bad name, say): one final reply
        }
        let mut data = match data {
            Some(d) => d,
            None => {
                listener.set_nonblocking(false).unwrap();
                let (s, _) = listener
                    .accept()
                    .map_err(|e| format!("no reply: accept {e}"))?;
                s
            }
        };
        let len = rng.below(70_000);
        let bytes = content(rng.next(), len);
        if rng.chance(15) {
            // The control connection goes away in the middle of a transfer.
            let _ = data.write_all(&bytes[..len / 2]);
            c.stream.shutdown(Shutdown::Both).ok();
            return Err("closed mid-transfer".into());
        }
        data.write_all(&bytes)
            .map_err(|e| format!("data connection: {e}"))?;
        drop(data);
        let last = c.final_reply()?;
        if last.starts_with("226") {
            self.uploads_acknowledged.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

/// A control connection read one reply at a time.
struct Conversation {
    stream: TcpStream,
    pending: Vec<u8>,
    replies: usize,
}

impl Conversation {
    fn open(addr: SocketAddr) -> Result<Conversation, String> {
        let stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream.set_read_timeout(Some(REPLY_WAIT)).unwrap();
        let mut c = Conversation {
            stream,
            pending: Vec::new(),
            replies: 0,
        };
        let greeting = c.reply()?;
        if !greeting.starts_with("220") {
            return Err(format!("bad reply: greeting {greeting:?}"));
        }
        Ok(c)
    }

    fn send_line(&mut self, line: &[u8]) -> Result<(), String> {
        let mut bytes = line.to_vec();
        bytes.extend_from_slice(b"\r\n");
        self.stream
            .write_all(&bytes)
            .map_err(|e| format!("closed: {e}"))
    }

    fn expect(&mut self, line: &str, code: &str) -> Result<String, String> {
        self.send_line(line.as_bytes())?;
        let r = self.final_reply()?;
        if r.starts_with(code) {
            Ok(r)
        } else {
            // Well-formed but not what a plain session gets (an earlier
            // mutated USER logged the session out, say): the conversation ends.
            Err(format!("unexpected: {line:?} got {r:?}, expected {code}"))
        }
    }

    /// Replies until one that is not preliminary (1xx).
    fn final_reply(&mut self) -> Result<String, String> {
        loop {
            let r = self.reply()?;
            if !r.starts_with('1') {
                return Ok(r);
            }
        }
    }

    /// One complete reply (a multi-line one joined), checked for form.
    fn reply(&mut self) -> Result<String, String> {
        let mut all = Vec::new();
        let mut open_code: Option<[u8; 3]> = None;
        loop {
            let line = self.line()?;
            all.extend_from_slice(&line);
            all.extend_from_slice(b"\n");
            match open_code {
                None => {
                    let code = reply_code(&line)
                        .ok_or_else(|| format!("bad reply line {:?}", lossy(&line)))?;
                    if line[3] == b' ' {
                        self.replies += 1;
                        return Ok(lossy(&all));
                    }
                    open_code = Some(code);
                }
                Some(code) => {
                    if line.len() >= 4 && line[..3] == code && line[3] == b' ' {
                        self.replies += 1;
                        return Ok(lossy(&all));
                    }
                }
            }
        }
    }

    fn line(&mut self) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + REPLY_WAIT;
        loop {
            if let Some(i) = self.pending.windows(2).position(|w| w == b"\r\n") {
                let line = self.pending[..i].to_vec();
                self.pending.drain(..i + 2);
                return Ok(line);
            }
            let mut buf = [0u8; 4096];
            match self.stream.read(&mut buf) {
                Ok(0) if self.pending.is_empty() => return Err("closed by the server".into()),
                Ok(0) => {
                    return Err(format!(
                        "bad reply: unterminated {:?} at close",
                        lossy(&self.pending)
                    ));
                }
                Ok(n) => self.pending.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if Instant::now() >= deadline {
                        return Err(format!("no reply within {REPLY_WAIT:?}"));
                    }
                }
                Err(e) => return Err(format!("closed: {e}")),
            }
        }
    }
}

fn lossy(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(b);
    if s.len() > 200 {
        format!("{}…", s.chars().take(200).collect::<String>())
    } else {
        s.into_owned()
    }
}

/// `Some(code)` when the line starts like a reply: three digits (first 1–5),
/// then a space or a dash.
fn reply_code(line: &[u8]) -> Option<[u8; 3]> {
    if line.len() >= 4
        && (b'1'..=b'5').contains(&line[0])
        && line[1].is_ascii_digit()
        && line[2].is_ascii_digit()
        && (line[3] == b' ' || line[3] == b'-')
    {
        Some([line[0], line[1], line[2]])
    } else {
        None
    }
}

/// Everything received, as CRLF lines, must be well-formed replies; the
/// number of replies.
fn check_replies(bytes: &[u8]) -> Result<usize, String> {
    let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    // The server ended the session: nothing may follow the last line end.
    let tail = lines.pop().unwrap_or_default();
    if !tail.is_empty() {
        return Err(format!("unterminated reply {:?}", lossy(tail)));
    }
    let mut open: Option<[u8; 3]> = None;
    let mut replies = 0;
    for (i, line) in lines.iter().enumerate() {
        let Some(line) = line.strip_suffix(b"\r") else {
            return Err(format!("line {i} not ended by CRLF: {:?}", lossy(line)));
        };
        if line.contains(&b'\r') {
            return Err(format!("bare CR inside reply line {i}: {:?}", lossy(line)));
        }
        match open {
            Some(code) => {
                if line.len() >= 4 && line[..3] == code && line[3] == b' ' {
                    open = None;
                    replies += 1;
                }
            }
            None => {
                let code = reply_code(line)
                    .ok_or_else(|| format!("bad reply line {i}: {:?}", lossy(line)))?;
                if line[3] == b'-' {
                    open = Some(code);
                } else {
                    replies += 1;
                }
            }
        }
        if i == 0 && !line.starts_with(b"220") {
            return Err(format!(
                "the first reply is not the greeting: {:?}",
                lossy(line)
            ));
        }
    }
    if open.is_some() {
        return Err("a multi-line reply was never closed".into());
    }
    Ok(replies)
}

/// Read until the server closes (true) or stops sending for `REPLY_WAIT` (false).
fn read_all(mut s: TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (out, true),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(_) => return (out, false),
        }
    }
}

fn epsv_port(reply: &str) -> Option<u16> {
    reply.split("(|||").nth(1)?.split('|').next()?.parse().ok()
}

fn pasv_port(reply: &str) -> Option<u16> {
    let inner = reply.split('(').nth(1)?.split(')').next()?;
    let n: Vec<u16> = inner
        .split(',')
        .map(|x| x.trim().parse().ok())
        .collect::<Option<_>>()?;
    (n.len() == 6).then(|| n[4] * 256 + n[5])
}

/// Every file and folder under `root`: (size, modification time) by path.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, (u64, Option<SystemTime>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(m) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(p, (0, None));
            } else {
                out.insert(p, (m.len(), m.modified().ok()));
            }
        }
    }
    out
}

/// Resident memory of a process, in KiB: `VmRSS` (all of it) and
/// `RssAnon` (its heap and stacks, without the pages of its executable that
/// a debug build faults in as the fuzz reaches more of its code).
#[derive(Debug, Clone, Copy)]
struct Rss {
    total: u64,
    anon: u64,
}

fn rss_kib(pid: u32) -> Rss {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc/{pid}/status"))
    };
    Rss {
        total: field("VmRSS:"),
        anon: field("RssAnon:"),
    }
}

/// Running (not exited: our child stays a zombie until reaped).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit(") ").next().and_then(|r| r.chars().next()))
        .is_some_and(|state| state != 'Z' && state != 'X')
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    Some(
        v.trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
    )
}

#[test]
fn the_control_channel_survives_random_and_mutated_sessions() {
    let seed = env_u64("TELEGAZ_FUZZ_SEED").unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    });
    let iters = env_u64("TELEGAZ_FUZZ_ITERS").unwrap_or(800) as usize;
    println!("fuzz seed {seed}, {iters} connections (replay: TELEGAZ_FUZZ_SEED={seed})");

    // The sandbox: the working directory of this test and of the server,
    // the server's TMPDIR, and its data directory.
    let sandbox = tempfile::tempdir().unwrap();
    let root = sandbox.path().canonicalize().unwrap();
    let (cwd, tmp, data) = (root.join("cwd"), root.join("tmp"), root.join("data"));
    std::fs::create_dir_all(&cwd).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    std::env::set_current_dir(&cwd).unwrap();
    let env: Vec<(String, String)> = [
        ("TMPDIR", tmp.to_str().unwrap()),
        // Wrong passwords are part of the fuzz; the throttle is tested elsewhere.
        (
            "TELEGAZ_LOGIN_POLICY__MAX_FAILURES_PER_LOGIN_AND_ADDRESS",
            "1000000",
        ),
        ("TELEGAZ_LOGIN_POLICY__MAX_FAILURES_PER_ADDRESS", "0"),
        // PASV followed by no data connection, or a data connection that
        // sends nothing, should not hold a worker long.
        ("TELEGAZ_FTP__DATA_CONNECT_TIMEOUT", "1s"),
        ("TELEGAZ_FTP__STALL_TIMEOUT", "5s"),
        // Slow database moments wait rather than go to the outage journal.
        ("TELEGAZ_FTP__DATABASE_WAIT", "60s"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let server = Server::start_at(data.clone(), &env);
    let pid = server.pid().expect("the server runs");

    // One good upload first, so that the spool's folders exist before the snapshot.
    good_upload(&server, "before-fuzz.txt", 1);
    server.wait_upload(|u| u["original_name"] == "before-fuzz.txt");
    let before = snapshot(&root);
    let rss_start = rss_kib(pid);

    let fuzz = Fuzz {
        ftp: server.ftp,
        sandbox_paths: [&root, &cwd, &tmp, &data, &data.join("spool")]
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        bad_replies: Mutex::new(Vec::new()),
        stalls: Mutex::new(Vec::new()),
        connections: AtomicUsize::new(0),
        lines_sent: AtomicUsize::new(0),
        replies: AtomicUsize::new(0),
        uploads_acknowledged: AtomicUsize::new(0),
        logins: AtomicUsize::new(0),
    };
    let started = Instant::now();
    let mut rss_halves = Vec::new();
    for half in 0..2u64 {
        let next = AtomicUsize::new(0);
        let finished = AtomicUsize::new(0);
        let quota = iters / 2;
        std::thread::scope(|scope| {
            for _ in 0..WORKERS {
                scope.spawn(|| {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= quota || started.elapsed() > TIME_BUDGET {
                            break;
                        }
                        let conn_seed = seed ^ (half << 40) ^ (n as u64).wrapping_mul(0x1000_0001);
                        if conn_seed.is_multiple_of(3) {
                            fuzz.converse(conn_seed);
                        } else {
                            fuzz.blast(conn_seed);
                        }
                        fuzz.connections.fetch_add(1, Ordering::Relaxed);
                    }
                    finished.fetch_add(1, Ordering::Relaxed);
                });
            }
            // Watch the process while the workers run.
            while finished.load(Ordering::Relaxed) < WORKERS {
                assert!(alive(pid), "the server died; log:\n{}", server.log());
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        assert!(alive(pid), "the server died; log:\n{}", server.log());
        rss_halves.push(rss_kib(pid));
    }
    println!(
        "fuzz: {} connections ({} logged in as a device), {} lines, {} replies, {} uploads acknowledged in {:.0?}; resident memory at start {:?}, after each half {:?} (KiB)",
        fuzz.connections.load(Ordering::Relaxed),
        fuzz.logins.load(Ordering::Relaxed),
        fuzz.lines_sent.load(Ordering::Relaxed),
        fuzz.replies.load(Ordering::Relaxed),
        fuzz.uploads_acknowledged.load(Ordering::Relaxed),
        started.elapsed(),
        rss_start,
        rss_halves
    );
    assert!(
        fuzz.connections.load(Ordering::Relaxed) > 0,
        "no connection was made"
    );
    assert!(
        fuzz.logins.load(Ordering::Relaxed) > 0,
        "no fuzz session logged in as a device (seed {seed})"
    );

    let bad = fuzz.bad_replies.lock().unwrap();
    assert!(
        bad.is_empty(),
        "malformed replies (seed {seed}):\n{}",
        bad.join("\n")
    );
    let stalls = fuzz.stalls.lock().unwrap();
    assert!(
        stalls.is_empty(),
        "the server stopped answering (seed {seed}):\n{}",
        stalls.join("\n")
    );

    // Still serving: a fresh session of the other unit stores a file.
    good_upload(&server, "after-fuzz.txt", 2);
    let u = server.wait_upload(|u| u["original_name"] == "after-fuzz.txt");
    server.assert_stored(&u, &content(2, 4321));

    // Nothing written outside the spool and the database.
    let after = snapshot(&root);
    let allowed = |p: &Path| {
        p.starts_with(data.join("spool"))
            || p == root.join("server.log")
            || p.parent() == Some(data.as_path())
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("telegaz.db"))
    };
    let changed: Vec<String> = after
        .iter()
        .filter(|(p, meta)| before.get(*p) != Some(meta) && !allowed(p))
        .map(|(p, _)| p.display().to_string())
        .chain(
            before
                .keys()
                .filter(|p| !after.contains_key(*p) && !allowed(p))
                .map(|p| format!("{} (removed)", p.display())),
        )
        .collect();
    assert!(
        changed.is_empty(),
        "files changed outside the spool and the database (seed {seed}):\n{}",
        changed.join("\n")
    );
    let in_dir = |d: &Path| std::fs::read_dir(d).unwrap().count();
    assert_eq!(
        in_dir(&cwd),
        0,
        "something was written to the working directory"
    );
    assert_eq!(in_dir(&tmp), 0, "something was written to TMPDIR");
    // Outside the sandbox, the names the fuzz offered do not exist either.
    assert!(!Path::new("/tmp/telegaz-fuzz").exists());

    // Memory: bounded, and not growing from one half to the next.
    // (The growth check is on anonymous memory: a debug binary's own pages
    // come in as more of its code runs, and are no leak.)
    let (first, second) = (rss_halves[0], rss_halves[1]);
    assert!(
        second.total < RSS_BOUND_KIB,
        "VmRSS {} KiB after the run, over {RSS_BOUND_KIB} KiB (seed {seed})",
        second.total
    );
    assert!(
        second.anon <= first.anon * 3 / 2 + 16 * 1024,
        "RssAnon grew from {} KiB after the first half to {} KiB after the second (seed {seed})",
        first.anon,
        second.anon
    );

    let log = server.log();
    assert!(
        !log.contains("panicked"),
        "the server panicked (seed {seed}):\n{log}"
    );
    drop(server);
    std::env::set_current_dir(std::env::temp_dir()).unwrap();
}

fn good_upload(server: &Server, name: &str, seed: u64) {
    let data = content(seed, 4321);
    let mut ftp = FtpStream::connect(server.ftp).unwrap();
    ftp.login("unit2", "pw-unit2").unwrap();
    ftp.transfer_type(FileType::Binary).unwrap();
    ftp.put_file(name, &mut Cursor::new(&data)).unwrap();
    ftp.quit().unwrap();
}
