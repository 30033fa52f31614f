//! `ftp-bench`: Telegaz's FTP receiver against pyftpdlib and vsftpd, in one
//! run on one machine. See BENCHMARKS.md, "FTP receiver".

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Parser;
use telegaz_bench_ftp::servers::{self, PEER_PASSWORD, PEER_USER, TreeMemory};
use telegaz_bench_ftp::{
    Burst, Job, QueryablePoller, Verified, burst_files, jobs, open_idle, quantile, random_bytes,
    register_devices, run_burst, sha256_hex, single_stor, telegaz_binary, verify_dir,
    verify_telegaz, wait_parsed,
};

#[derive(Debug, Parser)]
#[command(
    about = "Telegaz's FTP receiver against pyftpdlib and vsftpd (burst, idle sessions, one big STOR, upload to queryable)"
)]
struct Args {
    /// Units in the burst: each connects, logs in, STORs one ~8 KB archive, QUITs.
    #[arg(long, default_value_t = 2000)]
    units: u32,
    /// Sessions in flight at once during the burst.
    #[arg(long, default_value_t = 500)]
    in_flight: usize,
    /// Idle logged-in sessions held open for the memory measurement.
    #[arg(long, default_value_t = 2000)]
    idle: usize,
    /// Size of the single-stream STOR, MiB (0: skip).
    #[arg(long, default_value_t = 256)]
    big_mib: usize,
    /// Seed of the generated archives and passwords.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The telegaz binary; default: build it (`cargo build --release -p telegaz`).
    #[arg(long)]
    telegaz: Option<PathBuf>,
    /// Passive port range of vsftpd.
    #[arg(long, default_value = "20000-21999")]
    vsftpd_pasv: String,
    /// Leave the peers out (Telegaz alone).
    #[arg(long)]
    no_peers: bool,
}

/// Everything measured on one server.
#[derive(Debug, Default)]
struct Results {
    name: String,
    version: String,
    burst: Option<Burst>,
    verified: Verified,
    idle_sessions: usize,
    idle_errors: usize,
    mem_before: TreeMemory,
    mem_after: TreeMemory,
    big: Option<Result<(Duration, bool), String>>,
    queryable_ms: Vec<f64>,
    queryable_missing: usize,
    /// CPU seconds during the burst: the server's process tree, the bench's clients.
    burst_cpu: Option<(f64, f64)>,
}

impl Results {
    fn per_session_kib(&self, pss: bool) -> f64 {
        if self.idle_sessions == 0 {
            return f64::NAN;
        }
        let (a, b) = if pss {
            (self.mem_after.pss_kib, self.mem_before.pss_kib)
        } else {
            (self.mem_after.rss_kib, self.mem_before.rss_kib)
        };
        (a as f64 - b as f64) / self.idle_sessions as f64
    }
    fn total_s(&self) -> f64 {
        self.burst
            .as_ref()
            .map_or(f64::NAN, |b| b.total.as_secs_f64())
    }
    fn mb_s(&self, bytes: usize) -> f64 {
        match &self.big {
            Some(Ok((d, true))) => bytes as f64 / 1e6 / d.as_secs_f64(),
            _ => f64::NAN,
        }
    }
}

fn parse_range(s: &str) -> anyhow::Result<(u16, u16)> {
    let (a, b) = s.split_once('-').context("a range is A-B")?;
    let (a, b): (u16, u16) = (a.trim().parse()?, b.trim().parse()?);
    if a > b {
        bail!("empty range {s}");
    }
    Ok((a, b))
}

fn raise_nofile() {
    // Children inherit the limit; the soft limit goes up to the hard one.
    let out = std::process::Command::new("sh")
        .args(["-c", "ulimit -Hn"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok());
    eprintln!(
        "open-file limit (hard): {}",
        out.as_deref().map_or("?", str::trim)
    );
}

async fn burst_phase(
    r: &mut Results,
    (addr, pid): (SocketAddr, u32),
    jobs: &[Job],
    in_flight: usize,
) -> Burst {
    eprintln!(
        "[{}] burst: {} sessions, {in_flight} in flight",
        r.name,
        jobs.len()
    );
    let (server0, client0) = (servers::tree_cpu_s(pid), servers::own_cpu_s());
    let b = run_burst(addr, jobs, in_flight).await;
    let cpu = (
        servers::tree_cpu_s(pid) - server0,
        servers::own_cpu_s() - client0,
    );
    r.burst_cpu = Some(cpu);
    eprintln!(
        "[{}] burst: {:.2} s, {} acknowledged, {} errors {:?}; CPU: server {:.2} s, bench clients {:.2} s",
        r.name,
        b.total.as_secs_f64(),
        b.acknowledged(),
        b.errors(),
        b.error_samples(),
        cpu.0,
        cpu.1
    );
    b
}

async fn idle_phase(
    r: &mut Results,
    addr: SocketAddr,
    pid: u32,
    accounts: &[(String, String)],
    n: usize,
) {
    if n == 0 {
        return;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    r.mem_before = servers::tree_memory(pid);
    let idle = open_idle(addr, accounts, n, 200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    r.mem_after = servers::tree_memory(pid);
    r.idle_sessions = idle.conns.len();
    r.idle_errors = idle.errors;
    eprintln!(
        "[{}] idle: {} sessions logged in ({} failed {:?}); tree {} → {} processes, RSS {} → {} KiB, PSS {} → {} KiB",
        r.name,
        idle.conns.len(),
        idle.errors,
        idle.first_error,
        r.mem_before.processes,
        r.mem_after.processes,
        r.mem_before.rss_kib,
        r.mem_after.rss_kib,
        r.mem_before.pss_kib,
        r.mem_after.pss_kib
    );
    drop(idle);
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn big_phase(
    r: &mut Results,
    addr: SocketAddr,
    user: &str,
    pass: &str,
    data: &[u8],
    stored: impl AsyncFnOnce() -> anyhow::Result<String>,
) {
    if data.is_empty() {
        return;
    }
    let res = single_stor(addr, user, pass, "big.bin", data).await;
    r.big = Some(match res {
        Ok(d) => {
            let ok = match stored().await {
                Ok(sha) => sha == sha256_hex(data),
                Err(e) => {
                    eprintln!("[{}] big file: cannot check: {e:#}", r.name);
                    false
                }
            };
            eprintln!(
                "[{}] single STOR of {} MiB: {:.2} s, {:.1} MB/s, stored intact: {ok}",
                r.name,
                data.len() >> 20,
                d.as_secs_f64(),
                data.len() as f64 / 1e6 / d.as_secs_f64()
            );
            Ok((d, ok))
        }
        Err(e) => {
            eprintln!("[{}] single STOR failed: {e:#}", r.name);
            Err(format!("{e:#}"))
        }
    });
}

fn file_sha(path: &Path) -> anyhow::Result<String> {
    Ok(sha256_hex(&std::fs::read(path)?))
}

async fn run_telegaz(
    args: &Args,
    bin: &Path,
    accounts: &[telegaz_sim::Account],
    jobs: &[Job],
    big: &[u8],
) -> anyhow::Result<Results> {
    let mut r = Results {
        name: "Telegaz".into(),
        version: format!("{} (release)", bin.display()),
        ..Default::default()
    };
    let (tmp, dir) = servers::Telegaz::data_dir()?;
    let t = std::time::Instant::now();
    register_devices(&dir, accounts).await?;
    eprintln!(
        "[Telegaz] {} devices registered in {:.1} s (not timed)",
        accounts.len(),
        t.elapsed().as_secs_f64()
    );
    let max_size = (big.len() as u64 + (1 << 20)).max(16 << 20);
    let mut tg = servers::Telegaz::start(bin, tmp, dir.clone(), max_size)?;
    let poller = QueryablePoller::start(&dir, Duration::from_millis(20)).await?;
    let b = burst_phase(&mut r, (tg.ftp, tg.process.pid()), jobs, args.in_flight).await;
    let parsed = wait_parsed(&dir, b.acknowledged(), Duration::from_secs(300)).await?;
    let seen = poller.finish().await?;
    eprintln!("[Telegaz] {parsed} uploads parsed");
    for s in b.sessions.iter().filter(|s| s.error.is_none()) {
        match jobs.get(s.job).and_then(|j| seen.get(&j.name)) {
            Some(ms) => r.queryable_ms.push(*ms),
            None => r.queryable_missing += 1,
        }
    }
    r.verified = verify_telegaz(&dir, jobs, &b).await?;
    r.burst = Some(b);
    tg.process.check_alive()?;
    let idle_accounts: Vec<(String, String)> = accounts
        .iter()
        .map(|a| (a.login.clone(), a.password.clone()))
        .collect();
    idle_phase(&mut r, tg.ftp, tg.process.pid(), &idle_accounts, args.idle).await;
    let (user, pass) = idle_accounts.first().cloned().unwrap_or_default();
    let data_dir = dir.clone();
    let login = user.clone();
    big_phase(&mut r, tg.ftp, &user, &pass, big, async move || {
        let db = telegaz_store::connect(&format!(
            "sqlite://{}",
            data_dir.join("telegaz.db").display()
        ))
        .await?;
        let uploads = db
            .list_uploads(&telegaz_store::UploadFilter::default())
            .await?;
        let u = uploads
            .iter()
            .find(|u| u.original_name == "big.bin" && u.device.as_deref() == Some(login.as_str()))
            .context("no upload big.bin")?;
        let sha = u.sha256.as_ref().context("no SHA-256")?;
        let objects = telegaz_spool::LocalStore::open(data_dir.join("spool").join("objects"))?;
        file_sha(&objects.object_path(sha))
    })
    .await;
    tg.process.check_alive()?;
    Ok(r)
}

async fn run_peer(
    args: &Args,
    name: &str,
    version: String,
    (addr, pid): (SocketAddr, u32),
    root: &Path,
    jobs: &[Job],
    big: &[u8],
) -> Results {
    let mut r = Results {
        name: name.into(),
        version,
        ..Default::default()
    };
    let b = burst_phase(&mut r, (addr, pid), jobs, args.in_flight).await;
    r.verified = verify_dir(root, jobs, &b);
    r.burst = Some(b);
    let shared = [(PEER_USER.to_owned(), PEER_PASSWORD.to_owned())];
    idle_phase(&mut r, addr, pid, &shared, args.idle).await;
    let path = root.join("big.bin");
    big_phase(
        &mut r,
        addr,
        PEER_USER,
        PEER_PASSWORD,
        big,
        async move || file_sha(&path),
    )
    .await;
    r
}

fn fmt(x: f64, digits: usize) -> String {
    if x.is_nan() {
        "n/a".into()
    } else {
        format!("{x:.digits$}")
    }
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_nan() || b.is_nan() || b == 0.0 {
        "n/a".into()
    } else {
        format!("**{:.2}**", a / b)
    }
}

fn report(args: &Args, all: &mut [Results], big_len: usize) {
    println!(
        "\n## FTP receiver: {} units, {} in flight, {} idle sessions, {} MiB STOR\n",
        args.units, args.in_flight, args.idle, args.big_mib
    );
    println!(
        "| server | burst total s | p50 ms | p99 ms | errors | verified | idle sessions | RSS KiB/session | PSS KiB/session | STOR MB/s |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in all.iter() {
        let (p50, p99, errors) = r.burst.as_ref().map_or((f64::NAN, f64::NAN, 0), |b| {
            (b.latency_ms(0.5), b.latency_ms(0.99), b.errors())
        });
        let big = match &r.big {
            Some(Ok((_, true))) => fmt(r.mb_s(big_len), 1),
            Some(Ok((_, false))) => "stored bytes differ".into(),
            Some(Err(e)) => format!("failed: {e}"),
            None => "n/a".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {}/{} | {}{} | {} | {} | {} |",
            r.name,
            fmt(r.total_s(), 2),
            fmt(p50, 1),
            fmt(p99, 1),
            errors,
            r.verified.identical,
            r.verified.checked,
            r.idle_sessions,
            if r.idle_errors > 0 {
                format!(" ({} failed)", r.idle_errors)
            } else {
                String::new()
            },
            fmt(r.per_session_kib(false), 1),
            fmt(r.per_session_kib(true), 1),
            big
        );
    }
    let Some((tg, peers)) = all.split_first_mut() else {
        return;
    };
    if !peers.is_empty() {
        println!(
            "\n| ratio Telegaz / peer | burst total time | p99 latency | RSS per idle session | PSS per idle session | STOR throughput |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for p in peers.iter() {
            let p99 = |r: &Results| r.burst.as_ref().map_or(f64::NAN, |b| b.latency_ms(0.99));
            println!(
                "| {} | {} | {} | {} | {} | {} |",
                p.name,
                ratio(tg.total_s(), p.total_s()),
                ratio(p99(tg), p99(p)),
                ratio(tg.per_session_kib(false), p.per_session_kib(false)),
                ratio(tg.per_session_kib(true), p.per_session_kib(true)),
                ratio(tg.mb_s(big_len), p.mb_s(big_len)),
            );
        }
    }
    println!(
        "\nCPU during the burst (user + system, seconds; the server's whole process tree, and the bench's own clients):\n"
    );
    println!("| server | server CPU s | bench clients CPU s |");
    println!("|---|---:|---:|");
    for r in std::iter::once(&*tg).chain(peers.iter()) {
        let (s, c) = r.burst_cpu.unwrap_or((f64::NAN, f64::NAN));
        println!("| {} | {} | {} |", r.name, fmt(s, 2), fmt(c, 2));
    }
    let mut q = tg.queryable_ms.clone();
    let n = q.len();
    println!(
        "\nTelegaz upload → queryable (received_at → readings visible to a reader polling every 20 ms), {n} uploads ({} not seen): p50 {} ms, p99 {} ms, max {} ms",
        tg.queryable_missing,
        fmt(quantile(&mut q, 0.5), 0),
        fmt(quantile(&mut q, 0.99), 0),
        fmt(quantile(&mut q, 1.0), 0)
    );
    for r in all.iter() {
        println!("- {}: {}", r.name, r.version);
        for p in &r.verified.problems {
            println!("  - verification problem: {p}");
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    raise_nofile();
    let pasv = parse_range(&args.vsftpd_pasv)?;
    // Peers: present, or exactly how to get them.
    let py_missing = if args.no_peers {
        Some("left out (--no-peers)".into())
    } else {
        servers::pyftpdlib_missing()
    };
    let vsftpd = if args.no_peers {
        Err("left out (--no-peers)".into())
    } else {
        servers::vsftpd_binary()
    };
    if let Some(m) = &py_missing {
        eprintln!("pyftpdlib: SKIPPED: {m}");
    }
    if let Err(m) = &vsftpd {
        eprintln!("vsftpd: SKIPPED: {m}");
    }
    let bin = match &args.telegaz {
        Some(p) => p.clone(),
        None => telegaz_binary("release")?,
    };
    let (accounts, files) = burst_files(args.units, args.seed);
    let sizes: Vec<usize> = files.iter().map(|(_, d)| d.len()).collect();
    eprintln!(
        "burst files: {} ТС220 archives of {}–{} bytes (mean {:.0})",
        files.len(),
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
        sizes.iter().sum::<usize>() as f64 / sizes.len().max(1) as f64
    );
    let big = random_bytes(args.big_mib << 20, args.seed);
    let mut all = Vec::new();
    let tg_jobs = jobs(&accounts, &files, None);
    all.push(run_telegaz(&args, &bin, &accounts, &tg_jobs, &big).await?);
    let peer_jobs = jobs(&accounts, &files, Some((PEER_USER, PEER_PASSWORD)));
    if py_missing.is_none() {
        let py = servers::Pyftpdlib::start()?;
        let r = run_peer(
            &args,
            "pyftpdlib",
            format!(
                "pyftpdlib {} (FTPServer, epoll; fsync before 226)",
                servers::pyftpdlib_version()
            ),
            (py.ftp, py.process.pid()),
            &py.root,
            &peer_jobs,
            &big,
        )
        .await;
        all.push(r);
    }
    if let Ok(vbin) = &vsftpd {
        let vs = servers::Vsftpd::start(vbin, pasv)?;
        let r = run_peer(
            &args,
            "vsftpd",
            format!("{} (no fsync: vsftpd has no such option)", vbin.display()),
            (vs.ftp, vs.process.pid()),
            &vs.root,
            &peer_jobs,
            &big,
        )
        .await;
        all.push(r);
    }
    report(&args, &mut all, big.len());
    Ok(())
}
