//! The three servers, started on the loopback with private settings and
//! stopped (killed, temporary directories removed) when dropped.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The shared account of the peers (a local system user for vsftpd).
pub const PEER_USER: &str = "ftpbench";
pub const PEER_PASSWORD: &str = "ftpbench-Pw-2026";

/// A child process killed on drop.
pub struct Guard {
    child: Option<Child>,
    what: String,
}

impl Guard {
    fn new(child: Child, what: impl Into<String>) -> Self {
        Self {
            child: Some(child),
            what: what.into(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Fails when the process has already exited.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(c) = self.child.as_mut()
            && let Some(status) = c.try_wait()?
        {
            bail!("{} exited: {status}", self.what);
        }
        Ok(())
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound and released: good enough here).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Reads the child's stdout lines on a thread until `pred` matches one.
fn wait_for_line<T>(
    child: &mut Child,
    what: &str,
    log: &Path,
    mut pred: impl FnMut(&str) -> Option<T> + Send + 'static,
) -> anyhow::Result<T>
where
    T: Send + 'static,
{
    let stdout = child
        .stdout
        .take()
        .with_context(|| format!("{what}: no stdout"))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(v) = pred(&line) {
                sent = tx.send(v).is_ok();
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(60)).map_err(|_| {
        let log = std::fs::read_to_string(log).unwrap_or_default();
        anyhow::anyhow!("{what} did not start within 60 s; its log:\n{log}")
    })
}

fn log_file(path: &Path) -> anyhow::Result<Stdio> {
    Ok(Stdio::from(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    ))
}

/// `telegaz serve` on a fresh data directory.
pub struct Telegaz {
    pub ftp: SocketAddr,
    pub http: SocketAddr,
    pub data_dir: PathBuf,
    pub process: Guard,
    _tmp: tempfile::TempDir,
}

impl Telegaz {
    /// An empty data directory (the caller registers devices before [`Telegaz::start`]).
    pub fn data_dir() -> anyhow::Result<(tempfile::TempDir, PathBuf)> {
        let tmp = tempfile::Builder::new()
            .prefix("ftp-bench-telegaz")
            .tempdir()?;
        let dir = tmp.path().join("data");
        std::fs::create_dir_all(&dir)?;
        Ok((tmp, dir))
    }

    pub fn start(
        bin: &Path,
        tmp: tempfile::TempDir,
        data_dir: PathBuf,
        max_file_size: u64,
    ) -> anyhow::Result<Self> {
        let log = tmp.path().join("telegaz.log");
        let mut child = Command::new(bin)
            .arg("--data-dir")
            .arg(&data_dir)
            .args([
                "serve",
                "--ftp-listen",
                "127.0.0.1:0",
                "--web-listen",
                "127.0.0.1:0",
                "--passive-ports",
                "0-0",
            ])
            .env("TELEGAZ_LOG__LEVEL", "warn")
            .env("TELEGAZ_FTP__MAX_FILE_SIZE", max_file_size.to_string())
            .env("TELEGAZ_FTP__MAX_CONNECTIONS", "20000")
            .env("TELEGAZ_FTP__MAX_CONNECTIONS_PER_ADDRESS", "20000")
            .env("TELEGAZ_FTP__IDLE_TIMEOUT", "10m")
            .stdout(Stdio::piped())
            .stderr(log_file(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let addrs = wait_for_line(&mut child, "telegaz serve", &log, {
            let (mut ftp, mut http) = (None, None);
            move |line| {
                let addr = line.rsplit(' ').next()?.parse::<SocketAddr>().ok()?;
                if line.starts_with("telegaz: FTP listening on ") {
                    ftp = Some(addr);
                } else if line.starts_with("telegaz: HTTP listening on ") {
                    http = Some(addr);
                }
                ftp.zip(http)
            }
        });
        let process = Guard::new(child, "telegaz serve");
        let (ftp, http) = addrs?;
        Ok(Self {
            ftp,
            http,
            data_dir,
            process,
            _tmp: tmp,
        })
    }
}

/// pyftpdlib with the fsyncing filesystem of `pyftpd_server.py`.
pub struct Pyftpdlib {
    pub ftp: SocketAddr,
    pub root: PathBuf,
    pub process: Guard,
    _tmp: tempfile::TempDir,
}

/// The Python server script, next to this crate's manifest.
pub fn pyftpd_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pyftpd_server.py")
}

/// `None` with the reason and the remedy when pyftpdlib cannot be imported.
pub fn pyftpdlib_missing() -> Option<String> {
    let ok = Command::new("python3")
        .args(["-c", "import pyftpdlib"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (!ok).then(|| {
        "pyftpdlib is not installed: `python3 -m pip install pyftpdlib` (needs python3)".into()
    })
}

/// The pyftpdlib version, for the report.
pub fn pyftpdlib_version() -> String {
    Command::new("python3")
        .args(["-c", "import pyftpdlib; print(pyftpdlib.__ver__)"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "?".into(), |s| s.trim().to_owned())
}

impl Pyftpdlib {
    pub fn start() -> anyhow::Result<Self> {
        let tmp = tempfile::Builder::new()
            .prefix("ftp-bench-pyftpd")
            .tempdir()?;
        let root = tmp.path().join("root");
        std::fs::create_dir_all(&root)?;
        let log = tmp.path().join("pyftpdlib.log");
        let port = free_port()?;
        let mut child = Command::new("python3")
            .arg(pyftpd_script())
            .arg(port.to_string())
            .arg(&root)
            .args([PEER_USER, PEER_PASSWORD])
            .stdout(Stdio::piped())
            .stderr(log_file(&log)?)
            .spawn()
            .context("starting python3 pyftpd_server.py")?;
        let ready = wait_for_line(&mut child, "pyftpdlib", &log, |l| {
            (l.trim() == "ready").then_some(())
        });
        let process = Guard::new(child, "pyftpdlib");
        ready?;
        Ok(Self {
            ftp: SocketAddr::from(([127, 0, 0, 1], port)),
            root,
            process,
            _tmp: tmp,
        })
    }
}

/// vsftpd, as root, with a private configuration file.
pub struct Vsftpd {
    pub ftp: SocketAddr,
    pub root: PathBuf,
    pub process: Guard,
    _tmp: tempfile::TempDir,
}

/// Where vsftpd is, or why it cannot run and how to get it.
pub fn vsftpd_binary() -> Result<PathBuf, String> {
    let found = ["/usr/sbin/vsftpd", "/sbin/vsftpd", "/usr/local/sbin/vsftpd"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    let Some(bin) = found else {
        return Err("vsftpd is not installed: `apt-get install vsftpd` (Debian/Ubuntu)".into());
    };
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    if uid.as_deref().map(str::trim) != Some("0") {
        return Err("vsftpd needs root (it switches to the logged-in user); run the bench as root to include it".into());
    }
    Ok(bin)
}

/// The local user all vsftpd sessions log in as; created when missing.
fn ensure_peer_user() -> anyhow::Result<()> {
    let exists = Command::new("id")
        .arg(PEER_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?
        .success();
    if !exists {
        let ok = Command::new("useradd")
            .args(["-m", "-s", "/bin/bash", PEER_USER])
            .status()
            .context("useradd")?
            .success();
        if !ok {
            bail!("useradd -m {PEER_USER} failed");
        }
    }
    let mut chpasswd = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .context("chpasswd")?;
    if let Some(stdin) = chpasswd.stdin.as_mut() {
        use std::io::Write;
        writeln!(stdin, "{PEER_USER}:{PEER_PASSWORD}")?;
    }
    drop(chpasswd.stdin.take());
    if !chpasswd.wait()?.success() {
        bail!("chpasswd for {PEER_USER} failed");
    }
    Ok(())
}

impl Vsftpd {
    pub fn start(bin: &Path, pasv_ports: (u16, u16)) -> anyhow::Result<Self> {
        ensure_peer_user()?;
        let tmp = tempfile::Builder::new()
            .prefix("ftp-bench-vsftpd")
            .tempdir()?;
        // The temporary directory is 0700 root: the user must reach its root.
        set_mode(tmp.path(), 0o755)?;
        let root = tmp.path().join("root");
        let empty = tmp.path().join("empty");
        std::fs::create_dir_all(&root)?;
        std::fs::create_dir_all(&empty)?;
        let ok = Command::new("chown")
            .arg(format!("{PEER_USER}:"))
            .arg(&root)
            .status()?
            .success();
        if !ok {
            bail!("chown {PEER_USER} {}", root.display());
        }
        let port = free_port()?;
        let conf = tmp.path().join("vsftpd.conf");
        let text = format!(
            "listen=YES\nlisten_ipv6=NO\nlisten_address=127.0.0.1\nlisten_port={port}\n\
             background=NO\nanonymous_enable=NO\nlocal_enable=YES\nwrite_enable=YES\n\
             local_umask=022\nlocal_root={root}\nchroot_local_user=NO\n\
             secure_chroot_dir={empty}\npam_service_name=vsftpd\n\
             pasv_enable=YES\npasv_address=127.0.0.1\npasv_min_port={pmin}\npasv_max_port={pmax}\n\
             max_clients=0\nmax_per_ip=0\nidle_session_timeout=600\ndata_connection_timeout=120\n\
             xferlog_enable=NO\nvsftpd_log_file={log}\ndual_log_enable=NO\n\
             seccomp_sandbox=NO\nisolate=NO\nisolate_network=NO\n\
             use_localtime=NO\nftpd_banner=vsftpd ready\n",
            root = root.display(),
            empty = empty.display(),
            pmin = pasv_ports.0,
            pmax = pasv_ports.1,
            log = tmp.path().join("vsftpd.log").display(),
        );
        std::fs::write(&conf, text)?;
        let log = tmp.path().join("vsftpd.stderr");
        let child = Command::new(bin)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log_file(&log)?)
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut process = Guard::new(child, "vsftpd");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            process.check_alive().with_context(|| {
                std::fs::read_to_string(&log).unwrap_or_else(|_| "no log".into())
            })?;
            if std::net::TcpStream::connect(addr).is_ok() {
                break;
            }
            if Instant::now() > deadline {
                bail!("vsftpd did not listen on {addr} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            ftp: addr,
            root,
            process,
            _tmp: tmp,
        })
    }
}

fn set_mode(path: &Path, mode: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("chmod {}", path.display()))
}

/// Memory of a process and all its descendants, from `/proc`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TreeMemory {
    pub processes: usize,
    /// Sum of VmRSS (shared pages counted in every process).
    pub rss_kib: u64,
    /// Sum of Pss (shared pages divided among their users).
    pub pss_kib: u64,
}

fn status_field(text: &str, field: &str) -> Option<u64> {
    text.lines()
        .find(|l| l.starts_with(field))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// `root` and every live descendant, from `/proc`.
fn tree_pids(root: u32) -> Vec<u32> {
    let mut parent = std::collections::HashMap::<u32, Vec<u32>>::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // The fields after the command name in parentheses: state ppid …
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|s| s.parse::<u32>().ok());
            if let Some(ppid) = ppid {
                parent.entry(ppid).or_default().push(pid);
            }
        }
    }
    let mut out = Vec::new();
    let mut todo = vec![root];
    while let Some(pid) = todo.pop() {
        out.push(pid);
        if let Some(kids) = parent.get(&pid) {
            todo.extend(kids);
        }
    }
    out
}

/// RSS and PSS summed over `root` and its descendants.
pub fn tree_memory(root: u32) -> TreeMemory {
    let mut out = TreeMemory::default();
    for pid in tree_pids(root) {
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
            out.processes += 1;
            out.rss_kib += status_field(&s, "VmRSS:").unwrap_or(0);
        }
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
            out.pss_kib += status_field(&s, "Pss:").unwrap_or(0);
        }
    }
    out
}

/// CPU seconds (user + system) a process has used, from `/proc/PID/stat`,
/// with those of its children it has waited for. `None` when it is gone.
fn process_cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command name in parentheses: state ppid … utime (12th) stime cutime cstime.
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    Some(tick(11) + tick(12) + tick(13) + tick(14))
}

/// Clock ticks a second (`getconf CLK_TCK`; 100 where it cannot be asked).
fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// CPU seconds used so far by `root` and every live descendant (and the
/// children they waited for).
pub fn tree_cpu_s(root: u32) -> f64 {
    let ticks: u64 = tree_pids(root)
        .iter()
        .map(|pid| process_cpu_ticks(&pid.to_string()).unwrap_or(0))
        .sum();
    ticks as f64 / clock_ticks()
}

/// CPU seconds this process (the bench: the clients, and for Telegaz the
/// reader polling for readings) has used so far.
pub fn own_cpu_s() -> f64 {
    process_cpu_ticks("self").unwrap_or(0) as f64 / clock_ticks()
}
