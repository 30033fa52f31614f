//! The fleet runner: every unit uploads one archive per round, on a schedule,
//! through a link with the faults asked for; every session is recorded.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use serde::Serialize;
use tokio::sync::watch;

use crate::SimError;
use crate::accounts::Account;
use crate::ftp::{self, Link, Transfer};
use crate::lis200;
use crate::model::{Archive, Unit};
use crate::rng::Rng;

/// When the units of a round start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// All at the same moment (the thundering herd at the top of the hour).
    Herd,
    /// Spread evenly (with jitter) over this long.
    Spread(Duration),
}

/// What each round's file holds.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Simulated time: every round uploads the next `hours_per_file` hours.
    Simulated { hours_per_file: u32 },
    /// Wall-clock time in this zone: every upload holds the hours since the
    /// last one up to the current hour (the newest hour again if none is new).
    Wall(TimeZone),
}

/// Link faults. Probabilities are per session attempt.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Added before connecting and before every command.
    pub latency: Duration,
    /// Data stream limit, bytes per second (GPRS: a few KB/s).
    pub bandwidth: Option<u64>,
    /// Chance that the link drops in the middle of the file; the unit tries
    /// again later in the same round.
    pub drop_data: f64,
    /// Connect to the passive port this long after sending `STOR`.
    pub late_pasv: Duration,
}

/// One simulated unit: its account and its corrector.
#[derive(Debug, Clone)]
pub struct SimUnit {
    pub account: Account,
    pub unit: Unit,
}

/// A signal to stop after the sessions in flight (`true` = stop).
pub type Stop = watch::Receiver<bool>;

/// Everything [`run_fleet`] needs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `host:port` of the FTP server.
    pub server: String,
    /// A second server that gets a copy of every file ("both servers").
    pub duplicate_to: Option<String>,
    pub units: Vec<SimUnit>,
    pub schedule: Schedule,
    /// Rounds to run; `None`: until stopped.
    pub rounds: Option<u32>,
    /// Time from the start of one round to the start of the next (a round
    /// that takes longer delays the next).
    pub interval: Duration,
    pub clock: Clock,
    pub faults: Faults,
    /// Limit for one session (connect to `QUIT`).
    pub session_timeout: Duration,
    /// Attempts per file and server in a round (first try included).
    pub max_attempts: u32,
    /// Wait before trying again after a failure.
    pub retry_after: Duration,
    /// Seed of the schedule jitter and the faults.
    pub seed: u64,
    pub stop: Option<Stop>,
}

impl FleetConfig {
    /// Sensible defaults for `units` against `server`: herd, one round,
    /// simulated time with a day per file, no faults.
    pub fn new(server: impl Into<String>, units: Vec<SimUnit>) -> Self {
        Self {
            server: server.into(),
            duplicate_to: None,
            units,
            schedule: Schedule::Herd,
            rounds: Some(1),
            interval: Duration::from_secs(60),
            clock: Clock::Simulated { hours_per_file: 24 },
            faults: Faults::default(),
            session_timeout: Duration::from_secs(120),
            max_attempts: 3,
            retry_after: Duration::from_secs(1),
            seed: 1,
            stop: None,
        }
    }
}

/// Why a session failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    Connect,
    Login,
    Transfer,
    Timeout,
    Other,
}

impl FailureKind {
    pub const ALL: [FailureKind; 5] = [
        FailureKind::Connect,
        FailureKind::Login,
        FailureKind::Transfer,
        FailureKind::Timeout,
        FailureKind::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Connect => "connect",
            FailureKind::Login => "login",
            FailureKind::Transfer => "transfer",
            FailureKind::Timeout => "timeout",
            FailureKind::Other => "other",
        }
    }
}

/// Which server a session went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    Primary,
    Duplicate,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The server answered `226`: the unit may delete its copy.
    Acknowledged,
    Failed {
        kind: FailureKind,
        message: String,
        injected: bool,
    },
}

/// One FTP session.
#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub device: String,
    pub round: u32,
    pub target: Target,
    /// 1 for the first try of a file.
    pub attempt: u32,
    pub file: String,
    /// File size.
    pub size: u64,
    /// Bytes written to the data connection.
    pub bytes: u64,
    /// Start, since the start of the run.
    #[serde(serialize_with = "secs")]
    pub started: Duration,
    /// Connect to the end of the session.
    #[serde(serialize_with = "secs")]
    pub latency: Duration,
    #[serde(flatten)]
    pub outcome: Outcome,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

impl SessionRecord {
    pub fn acknowledged(&self) -> bool {
        self.outcome == Outcome::Acknowledged
    }
}

/// Everything a run did.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    pub sessions: Vec<SessionRecord>,
    pub rounds: u32,
    /// Time the rounds were busy (from each round's start to its last session's end).
    pub busy: Duration,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

/// Latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The numbers of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rounds: u32,
    pub devices: usize,
    pub sessions: u64,
    pub acknowledged: u64,
    /// Files acknowledged by the primary server.
    pub files_acknowledged: u64,
    /// Copies acknowledged by the `duplicate_to` server.
    pub duplicates_acknowledged: u64,
    /// Files never acknowledged by the primary server after every attempt.
    pub files_lost: u64,
    pub failed: u64,
    /// Failed sessions by kind (every kind listed).
    pub failures: BTreeMap<&'static str, u64>,
    /// Failures that were injected (`drop_data`).
    pub injected: u64,
    /// Second and later attempts.
    pub retries: u64,
    /// Bytes written to data connections (partial ones included).
    pub bytes: u64,
    pub busy_s: f64,
    pub elapsed_s: f64,
    /// Sessions per second of busy time.
    pub sessions_per_s: f64,
    /// Latency of all sessions.
    pub latency_ms: Percentiles,
}

/// The `q` quantile (nearest rank) of sorted values.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted
        .get(rank.saturating_sub(1).min(sorted.len() - 1))
        .copied()
        .unwrap_or(0.0)
}

impl Stats {
    /// Latencies of all sessions, sorted, in milliseconds.
    pub fn latencies_ms(&self) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .sessions
            .iter()
            .map(|s| s.latency.as_secs_f64() * 1000.0)
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }

    pub fn summary(&self) -> Summary {
        let lat = self.latencies_ms();
        let mut failures: BTreeMap<&'static str, u64> =
            FailureKind::ALL.iter().map(|k| (k.as_str(), 0)).collect();
        let mut injected = 0;
        for s in &self.sessions {
            if let Outcome::Failed {
                kind, injected: i, ..
            } = &s.outcome
            {
                *failures.entry(kind.as_str()).or_default() += 1;
                injected += u64::from(*i);
            }
        }
        let count = |f: &dyn Fn(&SessionRecord) -> bool| {
            self.sessions.iter().filter(|s| f(s)).count() as u64
        };
        let files: std::collections::BTreeSet<(&str, u32)> = self
            .sessions
            .iter()
            .filter(|s| s.target == Target::Primary)
            .map(|s| (s.device.as_str(), s.round))
            .collect();
        let files_acknowledged = count(&|s| s.target == Target::Primary && s.acknowledged());
        let sessions = self.sessions.len() as u64;
        let acknowledged = count(&|s| s.acknowledged());
        let busy = self.busy.as_secs_f64();
        Summary {
            rounds: self.rounds,
            devices: self
                .sessions
                .iter()
                .map(|s| s.device.as_str())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            sessions,
            acknowledged,
            files_acknowledged,
            duplicates_acknowledged: count(&|s| s.target == Target::Duplicate && s.acknowledged()),
            files_lost: (files.len() as u64).saturating_sub(files_acknowledged),
            failed: sessions - acknowledged,
            failures,
            injected,
            retries: count(&|s| s.attempt > 1),
            bytes: self.sessions.iter().map(|s| s.bytes).sum(),
            busy_s: busy,
            elapsed_s: self.elapsed.as_secs_f64(),
            sessions_per_s: if busy > 0.0 {
                sessions as f64 / busy
            } else {
                0.0
            },
            latency_ms: Percentiles {
                p50: quantile(&lat, 0.50),
                p90: quantile(&lat, 0.90),
                p99: quantile(&lat, 0.99),
                max: lat.last().copied().unwrap_or(0.0),
            },
        }
    }
}

impl Summary {
    /// A table for people.
    pub fn table(&self) -> String {
        let l = &self.latency_ms;
        let mut s = String::new();
        let mut row = |k: &str, v: String| s.push_str(&format!("{k:<28} {v}\n"));
        row("rounds", self.rounds.to_string());
        row("devices", self.devices.to_string());
        row("sessions", self.sessions.to_string());
        row("  acknowledged (226)", self.acknowledged.to_string());
        row("  failed", self.failed.to_string());
        for (k, v) in &self.failures {
            row(&format!("    {k}"), v.to_string());
        }
        row("  injected failures", self.injected.to_string());
        row("  retries", self.retries.to_string());
        row("files acknowledged", self.files_acknowledged.to_string());
        row(
            "copies to second server",
            self.duplicates_acknowledged.to_string(),
        );
        row("files lost", self.files_lost.to_string());
        row("bytes sent", self.bytes.to_string());
        row("busy time", format!("{:.3} s", self.busy_s));
        row("sessions/s", format!("{:.1}", self.sessions_per_s));
        row(
            "session latency ms",
            format!(
                "p50 {:.1}  p90 {:.1}  p99 {:.1}  max {:.1}",
                l.p50, l.p90, l.p99, l.max
            ),
        );
        s
    }
}

/// The file a unit uploads now, and its name.
fn next_file(u: &mut SimUnit, clock: &Clock) -> (String, Vec<u8>) {
    let archive = match clock {
        Clock::Simulated { hours_per_file } => u.unit.generate(*hours_per_file),
        Clock::Wall(tz) => {
            let now = tz.to_datetime(jiff::Timestamp::now());
            let mut a = u.unit.generate_until(now);
            if a.rows.is_empty()
                && let Some(last) = u.unit.last_row()
            {
                a = Archive {
                    rows: vec![last.clone()],
                    events: vec![],
                };
            }
            a
        }
    };
    let stamp = archive
        .last_time()
        .map(|t: DateTime| t.strftime("%Y%m%d_%H%M").to_string())
        .unwrap_or_else(|| "empty".into());
    (
        format!("{}_{stamp}.txt", u.account.login),
        lis200::write(&archive),
    )
}

struct Shared {
    primary: SocketAddr,
    duplicate: Option<SocketAddr>,
    config: FleetConfig,
    t0: Instant,
}

/// One file of one unit in one round.
struct Job<'a> {
    account: &'a Account,
    round: u32,
    name: &'a str,
    data: &'a [u8],
}

/// One file to one server, with retries. Records every attempt.
async fn deliver(
    shared: &Shared,
    job: &Job<'_>,
    target: Target,
    rng: &mut Rng,
    out: &mut Vec<SessionRecord>,
) {
    let Job {
        account,
        round,
        name,
        data,
    } = *job;
    let cfg = &shared.config;
    let server = match target {
        Target::Primary => shared.primary,
        Target::Duplicate => match shared.duplicate {
            Some(a) => a,
            None => return,
        },
    };
    for attempt in 1..=cfg.max_attempts.max(1) {
        let drop_after = rng
            .chance(cfg.faults.drop_data)
            .then(|| (data.len() as f64 * rng.range(0.2, 0.8)) as u64);
        let link = Link {
            latency: cfg.faults.latency,
            bandwidth: cfg.faults.bandwidth,
            late_pasv: cfg.faults.late_pasv,
            drop_after,
        };
        let started = Instant::now();
        let mut transfer = Transfer::default();
        let result = tokio::time::timeout(
            cfg.session_timeout,
            ftp::upload(
                server,
                &account.login,
                &account.password,
                name,
                data,
                &link,
                &mut transfer,
            ),
        )
        .await;
        let outcome = match result {
            Ok(Ok(())) => Outcome::Acknowledged,
            Ok(Err(e)) => Outcome::Failed {
                kind: e.kind,
                message: e.message,
                injected: e.injected,
            },
            Err(_) => Outcome::Failed {
                kind: FailureKind::Timeout,
                message: format!("session not done within {:?}", cfg.session_timeout),
                injected: false,
            },
        };
        let ok = outcome == Outcome::Acknowledged;
        if let Outcome::Failed { kind, message, .. } = &outcome {
            tracing::debug!(device = %account.name, round, attempt, kind = kind.as_str(), %message, "session failed");
        }
        out.push(SessionRecord {
            device: account.name.clone(),
            round,
            target,
            attempt,
            file: name.to_owned(),
            size: data.len() as u64,
            bytes: transfer.bytes,
            started: started.saturating_duration_since(shared.t0),
            latency: started.elapsed(),
            outcome,
        });
        if ok || attempt == cfg.max_attempts.max(1) || stopped(&cfg.stop) {
            break;
        }
        tokio::time::sleep(cfg.retry_after).await;
    }
}

fn stopped(stop: &Option<Stop>) -> bool {
    stop.as_ref().is_some_and(|s| *s.borrow())
}

/// Waits for `d` or the stop signal; true when stopped.
async fn sleep_or_stop(d: Duration, stop: &Option<Stop>) -> bool {
    match stop {
        None => {
            tokio::time::sleep(d).await;
            false
        }
        Some(s) => {
            let mut s = s.clone();
            if *s.borrow() {
                return true;
            }
            let woke = tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = s.wait_for(|v| *v) => true,
            };
            woke || *s.borrow()
        }
    }
}

/// Runs the fleet: `rounds` rounds (or until `stop`), every unit uploading
/// one file per round to the server (and its copy to `duplicate_to`).
pub async fn run_fleet(config: FleetConfig) -> Result<Stats, SimError> {
    let primary = ftp::resolve(&config.server)
        .await
        .map_err(|e| SimError::Config(e.message))?;
    let duplicate = match &config.duplicate_to {
        Some(s) => Some(
            ftp::resolve(s)
                .await
                .map_err(|e| SimError::Config(e.message))?,
        ),
        None => None,
    };
    if !(0.0..=1.0).contains(&config.faults.drop_data) {
        return Err(SimError::Config(
            "drop_data is a probability between 0 and 1".into(),
        ));
    }
    let mut units = config.units.clone();
    let shared = Arc::new(Shared {
        primary,
        duplicate,
        config: FleetConfig {
            units: Vec::new(),
            ..config
        },
        t0: Instant::now(),
    });
    let cfg = &shared.config;
    let mut stats = Stats::default();
    let mut round = 0u32;
    let n = units.len().max(1);
    while cfg.rounds.is_none_or(|r| round < r) && !stopped(&cfg.stop) {
        round += 1;
        let round_start = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, mut u) in units.drain(..).enumerate() {
            let shared = shared.clone();
            let mut rng = Rng::stream(shared.config.seed, 4 + u64::from(round), i as u64);
            let offset = match shared.config.schedule {
                Schedule::Herd => Duration::ZERO,
                Schedule::Spread(over) => {
                    let slot = over.as_secs_f64() / n as f64;
                    Duration::from_secs_f64(slot * (i as f64 + rng.unit()))
                }
            };
            tasks.spawn(async move {
                let mut out = Vec::new();
                let cfg = &shared.config;
                if !offset.is_zero() && sleep_or_stop(offset, &cfg.stop).await {
                    return (i, u, out);
                }
                let (name, data) = next_file(&mut u, &cfg.clock);
                let job = Job {
                    account: &u.account,
                    round,
                    name: &name,
                    data: &data,
                };
                deliver(&shared, &job, Target::Primary, &mut rng, &mut out).await;
                if shared.duplicate.is_some() {
                    deliver(&shared, &job, Target::Duplicate, &mut rng, &mut out).await;
                }
                (i, u, out)
            });
        }
        let mut back = Vec::with_capacity(n);
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((i, u, out)) => {
                    back.push((i, u));
                    stats.sessions.extend(out);
                }
                Err(e) => return Err(SimError::Task(e.to_string())),
            }
        }
        back.sort_by_key(|(i, _)| *i);
        units = back.into_iter().map(|(_, u)| u).collect();
        stats.busy += round_start.elapsed();
        stats.rounds = round;
        tracing::info!(round, sessions = stats.sessions.len(), "round done");
        if cfg.rounds.is_some_and(|r| round >= r) {
            break;
        }
        let wait = cfg.interval.saturating_sub(round_start.elapsed());
        if sleep_or_stop(wait, &cfg.stop).await {
            break;
        }
    }
    stats
        .sessions
        .sort_by(|a, b| a.started.cmp(&b.started).then(a.device.cmp(&b.device)));
    stats.elapsed = shared.t0.elapsed();
    Ok(stats)
}
