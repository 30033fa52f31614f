//! Telegaz's FTP receiver against pyftpdlib and vsftpd, in the same run on the
//! same machine (see BENCHMARKS.md, "FTP receiver"). The binary `ftp-bench`
//! drives it; the pieces are here so that a test can run the burst small.

pub mod servers;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use telegaz_sim::ftp::{Link, Transfer, upload};
use telegaz_sim::{Account, accounts, fleet_units};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Bytes of each burst file (at most; the archive is cut at a whole hour).
pub const BURST_FILE_SIZE: usize = 8 * 1024;

/// A file of the burst: its name and bytes.
pub type File = (String, Arc<Vec<u8>>);

/// One file of the burst: who sends it, under what name, what bytes.
#[derive(Debug, Clone)]
pub struct Job {
    pub login: String,
    pub password: String,
    pub name: String,
    pub data: Arc<Vec<u8>>,
}

/// `n` units' accounts (`fb-0001`…) and one ТС220 archive each, as many whole
/// hours as fit in [`BURST_FILE_SIZE`], so that Telegaz parses every file.
pub fn burst_files(n: u32, seed: u64) -> (Vec<Account>, Vec<File>) {
    let accounts = accounts::generate(n, "fb-", seed);
    let start = jiff::civil::date(2026, 1, 1).at(1, 0, 0, 0);
    let files = fleet_units(&accounts, seed, start)
        .into_iter()
        .map(|u| {
            // Largest number of hours whose readout fits.
            let (mut lo, mut hi) = (1u32, 200u32);
            while lo < hi {
                let mid = (lo + hi).div_ceil(2);
                let size = telegaz_sim::lis200::write(&u.unit.clone().generate(mid)).len();
                if size <= BURST_FILE_SIZE {
                    lo = mid;
                } else {
                    hi = mid - 1;
                }
            }
            let data = telegaz_sim::lis200::write(&u.unit.clone().generate(lo));
            (format!("{}_{lo}h.txt", u.account.login), Arc::new(data))
        })
        .collect();
    (accounts, files)
}

/// One session of the burst.
#[derive(Debug, Clone)]
pub struct Session {
    pub job: usize,
    pub latency: Duration,
    /// Wall-clock time the session ended (after the 226 and QUIT).
    pub ended: SystemTime,
    pub error: Option<String>,
}

/// What a burst did.
#[derive(Debug, Clone)]
pub struct Burst {
    pub total: Duration,
    pub sessions: Vec<Session>,
}

impl Burst {
    pub fn acknowledged(&self) -> usize {
        self.sessions.iter().filter(|s| s.error.is_none()).count()
    }
    pub fn errors(&self) -> usize {
        self.sessions.len() - self.acknowledged()
    }
    /// Latency quantile in ms over all sessions (nearest rank).
    pub fn latency_ms(&self, q: f64) -> f64 {
        let mut v: Vec<f64> = self
            .sessions
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .collect();
        quantile(&mut v, q)
    }
    /// The first few distinct error messages.
    pub fn error_samples(&self) -> Vec<String> {
        let mut seen = Vec::new();
        for e in self.sessions.iter().filter_map(|s| s.error.as_ref()) {
            if !seen.contains(e) && seen.len() < 3 {
                seen.push(e.clone());
            }
        }
        seen
    }
}

/// Nearest-rank quantile; sorts `v`.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let rank = (q * v.len() as f64).ceil() as usize;
    v.get(rank.saturating_sub(1).min(v.len() - 1))
        .copied()
        .unwrap_or(f64::NAN)
}

/// Every job once, `in_flight` sessions at a time: connect, log in, `TYPE I`,
/// `PASV`, `STOR`, 226, `QUIT` (the simulator's client, no faults).
pub async fn run_burst(server: SocketAddr, jobs: &[Job], in_flight: usize) -> Burst {
    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let jobs: Arc<Vec<Job>> = Arc::new(jobs.to_vec());
    let t0 = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..jobs.len() {
        let sem = sem.clone();
        let jobs = jobs.clone();
        tasks.spawn(async move {
            let _permit = sem.acquire().await;
            let started = Instant::now();
            let error = match jobs.get(i) {
                Some(j) => {
                    let mut t = Transfer::default();
                    let r = tokio::time::timeout(
                        Duration::from_secs(120),
                        upload(
                            server,
                            &j.login,
                            &j.password,
                            &j.name,
                            &j.data,
                            &Link::default(),
                            &mut t,
                        ),
                    )
                    .await;
                    match r {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(format!("{}: {}", e.kind.as_str(), e.message)),
                        Err(_) => Some("timeout: session not done within 120 s".into()),
                    }
                }
                None => Some("no such job".into()),
            };
            Session {
                job: i,
                latency: started.elapsed(),
                ended: SystemTime::now(),
                error,
            }
        });
    }
    let mut sessions = Vec::with_capacity(jobs.len());
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(s) => sessions.push(s),
            Err(e) => sessions.push(Session {
                job: usize::MAX,
                latency: Duration::ZERO,
                ended: SystemTime::now(),
                error: Some(format!("task failed: {e}")),
            }),
        }
    }
    sessions.sort_by_key(|s| s.job);
    Burst {
        total: t0.elapsed(),
        sessions,
    }
}

/// Result of checking the stored files.
#[derive(Debug, Clone, Default)]
pub struct Verified {
    pub checked: usize,
    pub identical: usize,
    pub problems: Vec<String>,
}

impl Verified {
    fn problem(&mut self, p: String) {
        if self.problems.len() < 5 {
            self.problems.push(p);
        }
    }
}

/// Peers: every acknowledged file must be in `root` under its name, byte for byte.
pub fn verify_dir(root: &Path, jobs: &[Job], burst: &Burst) -> Verified {
    let mut v = Verified::default();
    for s in burst.sessions.iter().filter(|s| s.error.is_none()) {
        let Some(job) = jobs.get(s.job) else { continue };
        v.checked += 1;
        match std::fs::read(root.join(&job.name)) {
            Ok(b) if b == *job.data => v.identical += 1,
            Ok(b) => v.problem(format!(
                "{}: {} bytes stored, {} sent, or different bytes",
                job.name,
                b.len(),
                job.data.len()
            )),
            Err(e) => v.problem(format!("{}: {e}", job.name)),
        }
    }
    v
}

/// Telegaz: every acknowledged file must be a complete upload of its device
/// under its name, and the spool object of its SHA-256 must hold the bytes.
pub async fn verify_telegaz(
    data_dir: &Path,
    jobs: &[Job],
    burst: &Burst,
) -> anyhow::Result<Verified> {
    let db = telegaz_store::connect(&format!(
        "sqlite://{}",
        data_dir.join("telegaz.db").display()
    ))
    .await
    .context("opening Telegaz's database")?;
    let spool = telegaz_spool::Spool::open(data_dir.join("spool")).context("opening the spool")?;
    let uploads = db
        .list_uploads(&telegaz_store::UploadFilter::default())
        .await
        .context("listing uploads")?;
    let mut by_key: HashMap<(String, String), &telegaz_domain::Upload> = HashMap::new();
    for u in &uploads {
        if u.status == telegaz_domain::UploadStatus::Complete
            && let Some(d) = &u.device
        {
            by_key.insert((d.clone(), u.original_name.clone()), u);
        }
    }
    let mut v = Verified::default();
    for s in burst.sessions.iter().filter(|s| s.error.is_none()) {
        let Some(job) = jobs.get(s.job) else { continue };
        v.checked += 1;
        let Some(u) = by_key.get(&(job.login.clone(), job.name.clone())) else {
            v.problem(format!(
                "{}/{}: acknowledged, no complete upload recorded",
                job.login, job.name
            ));
            continue;
        };
        let Some(sha) = &u.sha256 else {
            v.problem(format!("upload #{}: no SHA-256", u.id.0));
            continue;
        };
        let mut stored = Vec::new();
        let read = match spool.open_object(sha).await {
            Ok(mut r) => r
                .read_to_end(&mut stored)
                .await
                .map_err(|e| spool.read_error(sha, e)),
            Err(e) => Err(e),
        };
        match read {
            Ok(_) if stored == *job.data && u.size == job.data.len() as u64 => v.identical += 1,
            Ok(_) => v.problem(format!(
                "upload #{}: stored bytes differ from the sent ones",
                u.id.0
            )),
            Err(e) => v.problem(e.to_string()),
        }
    }
    Ok(v)
}

/// When each upload's readings became visible, seen by polling the database
/// read-only: for every upload whose ingest state is `parsed` (its readings are
/// committed in the same transaction), the wall-clock time it was first seen
/// minus the upload's `received_at` (recorded just before the 226).
pub struct QueryablePoller {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<HashMap<String, f64>>>,
}

impl QueryablePoller {
    pub async fn start(data_dir: &Path, every: Duration) -> anyhow::Result<Self> {
        let opts = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(data_dir.join("telegaz.db"))
            .read_only(true);
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .context("opening Telegaz's database read-only")?;
        let (stop, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let mut seen: HashMap<String, f64> = HashMap::new();
            let mut ids: HashSet<i64> = HashSet::new();
            loop {
                let rows: Vec<(i64, String, Option<String>)> = sqlx::query_as(
                    "SELECT u.id, u.original_name, u.received_at FROM ingest i \
                     JOIN uploads u ON u.id = i.upload_id WHERE i.state = 'parsed'",
                )
                .fetch_all(&pool)
                .await
                .context("polling the ingest state")?;
                let now = jiff::Timestamp::now();
                for (id, name, received) in rows {
                    if !ids.insert(id) {
                        continue;
                    }
                    if let Some(r) = received.and_then(|r| r.parse::<jiff::Timestamp>().ok()) {
                        let ms = now.duration_since(r).as_secs_f64() * 1000.0;
                        seen.insert(name, ms);
                    }
                }
                if *rx.borrow() {
                    break;
                }
                tokio::select! {
                    _ = tokio::time::sleep(every) => {}
                    _ = rx.changed() => {}
                }
            }
            pool.close().await;
            Ok(seen)
        });
        Ok(Self { stop, task })
    }

    /// Stops after one more poll; latency in ms per original file name.
    pub async fn finish(self) -> anyhow::Result<HashMap<String, f64>> {
        let _ = self.stop.send(true);
        self.task.await.context("the poller task failed")?
    }
}

/// Waits until `n` uploads are parsed (or `limit` passes); how many were.
pub async fn wait_parsed(data_dir: &Path, n: usize, limit: Duration) -> anyhow::Result<usize> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data_dir.join("telegaz.db"))
        .read_only(true);
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(opts)
        .await?;
    let deadline = Instant::now() + limit;
    loop {
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM ingest WHERE state = 'parsed'")
            .fetch_one(&pool)
            .await?;
        let count = usize::try_from(count).unwrap_or(0);
        if count >= n || Instant::now() > deadline {
            pool.close().await;
            return Ok(count);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Logged-in sessions held open (dropped: closed).
pub struct IdleSessions {
    pub conns: Vec<TcpStream>,
    pub errors: usize,
    pub first_error: Option<String>,
}

async fn read_reply(r: &mut BufReader<TcpStream>) -> anyhow::Result<u16> {
    let mut line = String::new();
    if r.read_line(&mut line).await? == 0 {
        bail!("connection closed");
    }
    let code: u16 = line
        .get(..3)
        .and_then(|c| c.parse().ok())
        .context("bad reply")?;
    if line.as_bytes().get(3) != Some(&b'-') {
        return Ok(code);
    }
    // Multi-line: read up to "NNN ".
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            bail!("connection closed");
        }
        if line.get(..3).and_then(|c| c.parse().ok()) == Some(code)
            && line.as_bytes().get(3) == Some(&b' ')
        {
            return Ok(code);
        }
    }
}

async fn login(server: SocketAddr, user: &str, pass: &str) -> anyhow::Result<TcpStream> {
    let s = TcpStream::connect(server).await?;
    let mut r = BufReader::new(s);
    if read_reply(&mut r).await? != 220 {
        bail!("no 220 greeting");
    }
    r.get_mut()
        .write_all(format!("USER {user}\r\n").as_bytes())
        .await?;
    let mut code = read_reply(&mut r).await?;
    if code == 331 {
        r.get_mut()
            .write_all(format!("PASS {pass}\r\n").as_bytes())
            .await?;
        code = read_reply(&mut r).await?;
    }
    if code != 230 {
        bail!("login refused: {code}");
    }
    Ok(r.into_inner())
}

/// Opens `n` sessions (round-robin over `accounts`), `in_flight` logins at a time.
pub async fn open_idle(
    server: SocketAddr,
    accounts: &[(String, String)],
    n: usize,
    in_flight: usize,
) -> IdleSessions {
    let sem = Arc::new(tokio::sync::Semaphore::new(in_flight.max(1)));
    let accounts: Arc<Vec<(String, String)>> = Arc::new(accounts.to_vec());
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let sem = sem.clone();
        let accounts = accounts.clone();
        tasks.spawn(async move {
            let _p = sem.acquire().await;
            let Some((u, p)) = accounts.get(i % accounts.len().max(1)) else {
                anyhow::bail!("no accounts");
            };
            tokio::time::timeout(Duration::from_secs(120), login(server, u, p))
                .await
                .map_err(|_| anyhow::anyhow!("login not done within 120 s"))?
        });
    }
    let mut out = IdleSessions {
        conns: Vec::with_capacity(n),
        errors: 0,
        first_error: None,
    };
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(c)) => out.conns.push(c),
            Ok(Err(e)) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    out
}

/// One `STOR` of `data` as `name`; seconds from connect to 226 + QUIT.
pub async fn single_stor(
    server: SocketAddr,
    user: &str,
    pass: &str,
    name: &str,
    data: &[u8],
) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let mut t = Transfer::default();
    upload(server, user, pass, name, data, &Link::default(), &mut t)
        .await
        .map_err(|e| anyhow::anyhow!("{}: {}", e.kind.as_str(), e.message))?;
    Ok(t0.elapsed())
}

/// Pseudo-random bytes (xorshift), incompressible enough.
pub fn random_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

pub fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `telegaz` binary of this workspace's target directory for `profile`,
/// built first with `cargo build -p telegaz` (a no-op when it is fresh).
pub fn telegaz_binary(profile: &str) -> anyhow::Result<PathBuf> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest
        .parent()
        .and_then(Path::parent)
        .context("workspace directory")?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = std::process::Command::new(&cargo);
    cmd.current_dir(workspace)
        .args(["build", "-p", "telegaz", "--bin", "telegaz"]);
    if profile == "release" {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {cargo} build"))?;
    if !status.success() {
        bail!("cargo build -p telegaz failed");
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    let target = if target.is_absolute() {
        target
    } else {
        workspace.join(target)
    };
    let bin = target.join(profile).join("telegaz");
    if !bin.exists() {
        bail!("{} not found after the build", bin.display());
    }
    Ok(bin)
}

/// Registers the accounts as Telegaz devices in a fresh data directory.
pub async fn register_devices(data_dir: &Path, accounts: &[Account]) -> anyhow::Result<()> {
    let db = telegaz_store::connect(&format!(
        "sqlite://{}",
        data_dir.join("telegaz.db").display()
    ))
    .await
    .context("creating Telegaz's database")?;
    accounts::register(&*db, accounts)
        .await
        .context("registering the devices")?;
    Ok(())
}

/// The burst's jobs for Telegaz (one account per unit) or a peer (one shared account).
pub fn jobs(accounts: &[Account], files: &[File], shared: Option<(&str, &str)>) -> Vec<Job> {
    accounts
        .iter()
        .zip(files)
        .map(|(a, (name, data))| {
            let (login, password) = match shared {
                Some((u, p)) => (u.to_owned(), p.to_owned()),
                None => (a.login.clone(), a.password.clone()),
            };
            Job {
                login,
                password,
                name: name.clone(),
                data: data.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The burst at a tiny size against Telegaz (debug build), every
    /// acknowledged file checked byte for byte; no timing assertions.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tiny_burst_against_telegaz() {
        let bin = telegaz_binary("debug").unwrap();
        let (accounts, files) = burst_files(10, 7);
        for (_, d) in &files {
            assert!(d.len() <= BURST_FILE_SIZE && d.len() > BURST_FILE_SIZE - 400);
        }
        let (tmp, dir) = servers::Telegaz::data_dir().unwrap();
        register_devices(&dir, &accounts).await.unwrap();
        let tg = servers::Telegaz::start(&bin, tmp, dir.clone(), 1 << 20).unwrap();
        let poller = QueryablePoller::start(&dir, Duration::from_millis(20))
            .await
            .unwrap();
        let tg_jobs = jobs(&accounts, &files, None);
        let burst = run_burst(tg.ftp, &tg_jobs, 5).await;
        assert_eq!(burst.errors(), 0, "{:?}", burst.error_samples());
        let v = verify_telegaz(&dir, &tg_jobs, &burst).await.unwrap();
        assert_eq!(v.checked, 10);
        assert_eq!(v.identical, 10, "{:?}", v.problems);
        let parsed = wait_parsed(&dir, 10, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(parsed, 10);
        let seen = poller.finish().await.unwrap();
        assert_eq!(seen.len(), 10);
        let idle = open_idle(
            tg.ftp,
            &[(accounts[0].login.clone(), accounts[0].password.clone())],
            3,
            3,
        )
        .await;
        assert_eq!(idle.conns.len(), 3, "{:?}", idle.first_error);
        assert!(servers::tree_memory(tg.process.pid()).rss_kib > 0);
        drop(idle);
        // The peers, when they are installed; said out loud when not.
        let peer_jobs = jobs(
            &accounts,
            &files,
            Some((servers::PEER_USER, servers::PEER_PASSWORD)),
        );
        match servers::pyftpdlib_missing() {
            Some(why) => eprintln!("SKIPPED pyftpdlib: {why}"),
            None => {
                let py = servers::Pyftpdlib::start().unwrap();
                let b = run_burst(py.ftp, &peer_jobs, 5).await;
                assert_eq!(b.errors(), 0, "{:?}", b.error_samples());
                let v = verify_dir(&py.root, &peer_jobs, &b);
                assert_eq!((v.checked, v.identical), (10, 10), "{:?}", v.problems);
            }
        }
        match servers::vsftpd_binary() {
            Err(why) => eprintln!("SKIPPED vsftpd: {why}"),
            Ok(bin) => {
                let vs = servers::Vsftpd::start(&bin, (22000, 22099)).unwrap();
                let b = run_burst(vs.ftp, &peer_jobs, 5).await;
                assert_eq!(b.errors(), 0, "{:?}", b.error_samples());
                let v = verify_dir(&vs.root, &peer_jobs, &b);
                assert_eq!((v.checked, v.identical), (10, 10), "{:?}", v.problems);
            }
        }
    }
}
