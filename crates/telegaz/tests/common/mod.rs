//! Black-box harness: runs the real `telegaz` binary on free ports, with its
//! own data directory, and reads back what it recorded through its own CLI.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const BIN: &str = env!("CARGO_BIN_EXE_telegaz");

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Deterministic test content (no two tests share it unless they want to).
pub fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub struct Server {
    pub dir: PathBuf,
    pub ftp: SocketAddr,
    pub http: SocketAddr,
    /// The raw-TCP port, when `TELEGAZ_TCP__LISTEN` (or a config file) turned it on.
    pub tcp: Option<SocketAddr>,
    child: Option<Child>,
    _tmp: Option<tempfile::TempDir>,
    env: Vec<(String, String)>,
}

impl Server {
    /// A new data directory, with devices `unit1`/`pw-unit1` and `unit2`/`pw-unit2`.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("data");
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut s = Self::start_at(dir, &env);
        s._tmp = Some(tmp);
        s
    }

    /// Like [`Server::start_with`], in a data directory the caller owns (and
    /// may have prepared: a dedicated file system under it, say).
    pub fn start_at(dir: PathBuf, env: &[(String, String)]) -> Self {
        let env = env.to_vec();
        cli_in(
            &dir,
            &env,
            &["device", "add", "unit1", "--password", "pw-unit1"],
        );
        cli_in(
            &dir,
            &env,
            &["device", "add", "unit2", "--password", "pw-unit2"],
        );
        Self::spawn(dir, env)
    }

    /// Start a server in `dir` without adding devices: another receiver on a
    /// database that already has them.
    pub fn start_beside(dir: PathBuf, env: &[(String, String)]) -> Self {
        Self::spawn(dir, env.to_vec())
    }

    fn spawn(dir: PathBuf, env: Vec<(String, String)>) -> Self {
        let mut cmd = serve_command(&dir);
        cmd.env("TELEGAZ_LOG__LEVEL", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.parent().unwrap().join("server.log"))
                    .unwrap(),
            ));
        if !env.iter().any(|(k, _)| k == "TELEGAZ_FTP__PASSIVE_PORTS") {
            cmd.args(["--passive-ports", "0-0"]);
        }
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut ftp, mut http, mut tcp) = (None, None, None);
        let deadline = Instant::now() + Duration::from_secs(60);
        while ftp.is_none() || http.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).unwrap_or_else(|_| {
                let log = std::fs::read_to_string(dir.parent().unwrap().join("server.log"))
                    .unwrap_or_default();
                panic!("server did not announce its ports; log:\n{log}")
            });
            let addr = |l: &str| l.rsplit(' ').next().unwrap().parse::<SocketAddr>().unwrap();
            if line.starts_with("telegaz: FTP listening on ") {
                ftp = Some(addr(&line));
            } else if line.starts_with("telegaz: HTTP listening on ") {
                http = Some(addr(&line));
            } else if line.starts_with("telegaz: TCP listening on ") {
                tcp = Some(addr(&line));
            }
        }
        Server {
            dir,
            ftp: ftp.unwrap(),
            http: http.unwrap(),
            tcp,
            child: Some(child),
            _tmp: None,
            env,
        }
    }

    /// The server's process id (while it runs).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL the server (no shutdown path runs).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = c.kill();
            let _ = c.wait();
            panic!("server did not stop within 30 s of SIGTERM");
        }
    }

    /// Send SIGTERM and hand over the process (to watch how it ends).
    pub fn sigterm(&mut self) -> Child {
        let c = self.child.take().unwrap();
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        c
    }

    /// SIGKILL, then start again on the same data directory with other settings.
    pub fn restart_with(&mut self, env: &[(&str, &str)]) {
        self.env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.restart();
    }

    /// Start again on the same data directory (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        let tmp = self._tmp.take();
        let mut s = Self::spawn(self.dir.clone(), self.env.clone());
        s._tmp = tmp;
        std::mem::swap(self, &mut s);
    }

    pub fn ftp_url(&self, user: &str, pass: &str, path: &str) -> String {
        format!("ftp://{user}:{pass}@{}{path}", self.ftp)
    }

    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        cli_in(&self.dir, &self.env, args)
    }

    pub fn uploads(&self) -> Vec<Value> {
        let out = self.cli(&["uploads", "list", "--json"]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait until some upload satisfies `pred` and nothing is still receiving.
    pub fn wait_upload(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = self.uploads();
            if let Some(u) = all.iter().find(|u| pred(u))
                && !all.iter().any(|u| u["status"] == "receiving")
            {
                return u.clone();
            }
            if Instant::now() > deadline {
                panic!(
                    "no matching upload; uploads: {all:#?}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn upload_bytes(&self, id: i64) -> Vec<u8> {
        let out = self.cli(&["uploads", "get", &id.to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    pub fn audit(&self) -> Vec<Value> {
        let out = self.cli(&["audit", "--json"]);
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Wait until the audit trail holds an event satisfying `pred` (it is written in batches).
    pub fn wait_audit(&self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let all = self.audit();
            if let Some(e) = all.iter().find(|e| pred(e)) {
                return e.clone();
            }
            if Instant::now() > deadline {
                panic!("no matching audit event; audit: {all:#?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// An API token of a new viewer (`watcher`), for `Authorization: Bearer`.
    pub fn viewer_token(&self) -> String {
        self.cli(&[
            "user",
            "add",
            "watcher",
            "--role",
            "viewer",
            "--password",
            "watcher-password-1",
        ]);
        let out = self.cli(&["user", "token", "watcher", "--label", "test"]);
        let text = String::from_utf8(out.stdout).unwrap();
        text.trim().rsplit(' ').next().unwrap().to_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.parent().unwrap().join("server.log")).unwrap_or_default()
    }

    /// Every file under the test's temporary root, outside the data directory.
    pub fn files_outside_data_dir(&self) -> Vec<PathBuf> {
        let root = self.dir.parent().unwrap();
        let mut out = Vec::new();
        walk(root, &mut |p| {
            if !p.starts_with(&self.dir) && p.file_name().is_some_and(|n| n != "server.log") {
                out.push(p.to_path_buf());
            }
        });
        out
    }

    /// Assert that a partial upload holds exactly the bytes sent (all of them).
    pub fn assert_partial_prefix(&self, upload: &Value, sent: &[u8]) {
        assert_eq!(upload["status"], "partial", "{upload:#}");
        assert_eq!(upload["size"], sent.len() as u64, "{upload:#}");
        assert_eq!(upload["sha256"], sha256_hex(sent), "{upload:#}");
        let id = upload["id"].as_i64().unwrap();
        assert!(
            self.upload_bytes(id) == sent,
            "stored bytes differ for upload {id}"
        );
    }

    /// Assert that an upload is recorded complete with exactly these bytes.
    pub fn assert_stored(&self, upload: &Value, data: &[u8]) {
        assert_eq!(upload["status"], "complete", "{upload:#}");
        assert_eq!(upload["size"], data.len() as u64, "{upload:#}");
        assert_eq!(upload["sha256"], sha256_hex(data), "{upload:#}");
        let id = upload["id"].as_i64().unwrap();
        assert!(
            self.upload_bytes(id) == data,
            "stored bytes differ for upload {id}"
        );
    }
}

fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn cli_in(dir: &Path, env: &[(String, String)], args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(dir).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "telegaz {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A new viewer account and an API token for it.
pub fn viewer_token(s: &Server) -> String {
    s.viewer_token()
}

/// `GET /api/v1/alerts{query}` with curl: the alerts it lists.
pub fn api_alerts(s: &Server, token: &str, query: &str) -> Vec<Value> {
    let out = Command::new("curl")
        .args(["-sS", "--fail", "--max-time", "10", "-H"])
        .arg(format!("Authorization: Bearer {token}"))
        .arg(format!("http://{}/api/v1/alerts{query}", s.http))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    v["alerts"].as_array().unwrap().clone()
}

/// Run an external client; panic with its output if it fails.
pub fn run_ok(cmd: &mut Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `telegaz serve` on free local ports with this data directory.
pub fn serve_command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--data-dir").arg(dir).args([
        "serve",
        "--ftp-listen",
        "127.0.0.1:0",
        "--web-listen",
        "127.0.0.1:0",
    ]);
    cmd
}

/// A self-signed certificate for `localhost`/127.0.0.1 and its key (PEM), made with openssl.
pub fn self_signed_cert(dir: &Path) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    run_ok(Command::new("openssl").args([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=localhost",
        "-addext",
        "subjectAltName=DNS:localhost,IP:127.0.0.1",
        "-keyout",
        key.to_str().unwrap(),
        "-out",
        cert.to_str().unwrap(),
    ]));
    (cert, key)
}

/// Write test content to a file in a fresh temporary directory.
pub fn temp_file(name: &str, data: &[u8]) -> (tempfile::TempDir, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join(name);
    std::fs::write(&p, data).unwrap();
    (d, p)
}

/// A connection to `to` from the local address `from`.
pub fn connect_from(from: &str, to: std::net::SocketAddr) -> std::net::TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{from}:0").parse().unwrap()).unwrap();
        let stream = sock.connect(to).await.unwrap();
        let std = stream.into_std().unwrap();
        std.set_nonblocking(false).unwrap();
        std
    })
}

/// A raw control connection (for what well-behaved clients do not send).
pub struct Raw {
    pub reader: std::io::BufReader<std::net::TcpStream>,
    pub writer: std::net::TcpStream,
}

impl Raw {
    pub fn from_stream(stream: std::net::TcpStream) -> Self {
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        Raw {
            reader: std::io::BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }

    /// Connected, greeting read.
    pub fn connect(s: &Server) -> Self {
        Self::connect_from(s, "127.0.0.1")
    }

    pub fn connect_from(s: &Server, from: &str) -> Self {
        let mut r = Self::from_stream(connect_from(from, s.ftp));
        let greeting = r.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        r
    }

    /// One complete reply (multi-line replies joined); `<closed>` at EOF.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => return all + "<closed>",
                Ok(_) => {}
            }
            all.push_str(&line);
            let b = line.as_bytes();
            if b.len() >= 4 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
                return all;
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).unwrap();
    }

    pub fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes());
        self.reply()
    }

    pub fn login(&mut self, user: &str, pass: &str) {
        assert!(self.cmd(&format!("USER {user}")).starts_with("331"));
        let r = self.cmd(&format!("PASS {pass}"));
        assert!(r.starts_with("230"), "{r}");
    }

    /// After the server said it closes: nothing more comes.
    pub fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        let _ = self.reader.read_to_end(&mut rest);
        assert!(
            rest.is_empty(),
            "more after the close: {}",
            String::from_utf8_lossy(&rest)
        );
    }
}

/// The settings of `telegaz serve` for raw files in `bucket` (under
/// `prefix`) of a test S3 server.
pub fn s3_env(
    s3: &telegaz_spool::testing::S3TestServer,
    bucket: &str,
    prefix: &str,
) -> Vec<(&'static str, String)> {
    use telegaz_spool::testing::{TEST_ACCESS_KEY, TEST_SECRET_KEY};
    vec![
        ("TELEGAZ_STORAGE__RAW", "s3".into()),
        ("TELEGAZ_STORAGE__RETRY_INTERVAL", "1s".into()),
        ("TELEGAZ_STORAGE__S3__ENDPOINT", s3.endpoint()),
        ("TELEGAZ_STORAGE__S3__BUCKET", bucket.into()),
        ("TELEGAZ_STORAGE__S3__PREFIX", prefix.into()),
        ("TELEGAZ_STORAGE__S3__TIMEOUT", "10s".into()),
        ("TELEGAZ_STORAGE__S3__ACCESS_KEY_ID", TEST_ACCESS_KEY.into()),
        (
            "TELEGAZ_STORAGE__S3__SECRET_ACCESS_KEY",
            TEST_SECRET_KEY.into(),
        ),
    ]
}

/// The object with this SHA-256 (hex) as a bucket holds it, read with a
/// store of the test's own; `None` when it is not there.
pub fn bucket_bytes(store: &telegaz_spool::S3Store, sha_hex: &str) -> Option<Vec<u8>> {
    use telegaz_spool::RawStore;
    use tokio::io::AsyncReadExt;
    let sha = sha_hex.parse().unwrap();
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        if !store.exists(&sha).await.unwrap() {
            return None;
        }
        let mut out = Vec::new();
        store
            .open(&sha, 0)
            .await
            .unwrap()
            .read_to_end(&mut out)
            .await
            .unwrap();
        Some(out)
    })
}

/// An hourly LIS-200 archive (ТС220 readout) of `rows` rows, hours
/// `first..first + rows` after 2001-01-01 00:00: files with other `first`
/// share no reading.
pub fn hourly_archive(rows: u64, first: u64) -> Vec<u8> {
    let base = jiff::civil::date(2001, 1, 1).at(0, 0, 0, 0);
    let mut s = String::from("/ELS6TC220\r\n");
    for h in first..first + rows {
        let t = base
            .checked_add(jiff::SignedDuration::from_hours(h as i64))
            .unwrap();
        let vb = h as f64 * 1.25;
        s.push_str(&format!(
            "({h})({})({vb:.4})({vb:.4})({vb:.4})({vb:.4})(10.00)(104.0000)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n",
            t.strftime("%Y-%m-%d,%H:%M:%S")
        ));
    }
    s.into_bytes()
}
