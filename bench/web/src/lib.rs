//! Server time of the two heavy pages of the web UI, measured side by side
//! with the raw SQL each of them must at least read.
//!
//! Set-up (not timed): a SQLite database in a temporary directory with
//! `--devices` units. Unit `unit-00000` has `--year-days` gas days of hourly
//! interval readings, the device's own daily records and an event log; every
//! other unit has `--days` days of hourly readings in one upload a day, and
//! the units differ in state (ok, late, silent, never heard from, alarm,
//! quarantined upload, disabled). Everything goes in through the store's own
//! `Database` calls (`create_device`, `begin_upload`/`finish_upload`,
//! `store_parsed`), as the receiver and the ingest worker would leave it.
//!
//! Timed: each request through the whole router (`tower::ServiceExt::oneshot`:
//! session cookie, CSRF guard, security headers, handler, template) up to the
//! last byte of the body; no network. Each is measured `--repeat` times after
//! one untimed warm-up, alternating with its peer, the raw SQL through sqlx on
//! a pool with the store's settings over the same database file. The number to
//! compare across machines is the ratio page / peer.
//!
//! `cargo run --release -p telegaz-bench-web -- --devices 10000 --repeat 20`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use secrecy::SecretString;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{SqlitePool, sqlite::SqliteRow};
use telegaz_domain::{
    ArchiveKind, ArchiveRecord, Check, Decimal, DeviceId, DeviceName, EventRecord, FileMeta,
    FileName, IngestState, NewUpload, ParsedFile, Quantities, Role, Sha256Digest, UploadFinish,
    UploadMode, UploadStatus, UserName,
};
use telegaz_store::{Database, DeviceUpdate, NewDevice, NewSession, NewUser};
use telegaz_web::{WebContext, WebSettings};
use tower::ServiceExt;

/// The session cookie every request carries (a viewer's session).
const TOKEN: &str = "bench-session-token";
/// Time zone and contract hour of every unit (the defaults of a new device).
const TIME_ZONE: &str = "Europe/Moscow";
const CONTRACT_HOUR: i8 = 10;
/// Rows on a fleet page (`per=50`).
const PER: usize = 50;
/// Hourly table rows on one page of the device page (a week).
const HOURS_PER_PAGE: usize = 168;
/// The unit with the long history.
pub const YEAR_DEVICE: &str = "unit-00000";

/// Server time of the fleet page (10,000 units) and of the device page (a
/// year of hourly data), each against the raw SQL it must at least read.
///
/// Prints a Markdown table (request, median, p90, peer median, ratio) to
/// paste into BENCHMARKS.md. Set-up is not timed; it prints how long it took.
#[derive(Debug, Clone, clap::Parser)]
#[command(version)]
pub struct Options {
    /// Units in the fleet (unit-00000 … ); the first one has the long history.
    #[arg(long, default_value_t = 10_000)]
    pub devices: u32,
    /// Days of hourly readings of every other unit (one upload a day).
    #[arg(long, default_value_t = 2)]
    pub days: u32,
    /// Gas days of hourly readings of unit-00000 (the page allows at most 366).
    #[arg(long, default_value_t = 365)]
    pub year_days: u32,
    /// Timed repetitions of each request and of its peer (after one warm-up).
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// Search text of the fleet search request (`/?q=…`).
    #[arg(long, default_value = "unit-09")]
    pub search: String,
    /// Directory to create the temporary database in (default: the system's
    /// temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Keep the database when done (its path is printed), e.g. to look at
    /// query plans with `sqlite3 FILE 'EXPLAIN QUERY PLAN …'`.
    #[arg(long)]
    pub keep: bool,
}

/// One measured request.
#[derive(Debug, Clone)]
pub struct Measured {
    pub request: String,
    pub peer: &'static str,
    /// Server time of each timed repetition.
    pub samples: Vec<Duration>,
    pub peer_samples: Vec<Duration>,
    /// Size of the response body.
    pub body_bytes: usize,
    /// Rows the peer read.
    pub peer_rows: usize,
    /// The warm-up response's body (checked before timing).
    pub body: String,
}

impl Measured {
    pub fn median(&self) -> Duration {
        percentile(&self.samples, 50)
    }
    pub fn p90(&self) -> Duration {
        percentile(&self.samples, 90)
    }
    pub fn peer_median(&self) -> Duration {
        percentile(&self.peer_samples, 50)
    }
    /// Page time / peer time (medians).
    pub fn ratio(&self) -> f64 {
        self.median().as_secs_f64() / self.peer_median().as_secs_f64().max(1e-9)
    }
}

/// Nearest-rank percentile (`p` in 1..=100) of the samples.
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = (s.len() * p).div_ceil(100).clamp(1, s.len());
    s.get(rank - 1).copied().unwrap_or_default()
}

/// What a run found.
#[derive(Debug, Clone)]
pub struct Report {
    pub devices: u32,
    pub uploads: u64,
    pub readings: u64,
    pub setup: Duration,
    pub results: Vec<Measured>,
    /// The database, when `--keep` kept it.
    pub kept: Option<PathBuf>,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

impl Report {
    /// The Markdown table for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let mut out = String::from(
            "| request | median ms | p90 ms | peer | peer median ms | ratio |\n\
             |---|---:|---:|---|---:|---:|\n",
        );
        for m in &self.results {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} | **{:.1}** |",
                m.request,
                ms(m.median()),
                ms(m.p90()),
                m.peer,
                ms(m.peer_median()),
                m.ratio()
            );
        }
        out
    }

    /// Body sizes and peer row counts, for the reader of the numbers.
    pub fn sizes(&self) -> String {
        let mut out = String::new();
        for m in &self.results {
            let _ = writeln!(
                out,
                "{:<60} body {:>9} bytes, peer read {:>6} rows",
                m.request, m.body_bytes, m.peer_rows
            );
        }
        out
    }
}

/// The state a unit is given at set-up, by its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Ok,
    Late,
    Silent,
    Never,
    Alarm,
    Quarantined,
    Disabled,
}

fn kind_of(unit: u32) -> Kind {
    if unit == 0 {
        return Kind::Ok;
    }
    match unit % 20 {
        1 => Kind::Disabled,
        2 | 3 => Kind::Late,
        4 => Kind::Silent,
        5 => Kind::Alarm,
        6 => Kind::Quarantined,
        7 => Kind::Never,
        _ => Kind::Ok,
    }
}

/// Hours since the unit's last contact.
fn hours_quiet(kind: Kind) -> i64 {
    match kind {
        Kind::Late => 30,
        Kind::Silent => 5 * 24,
        _ => 1,
    }
}

pub fn unit_name(unit: u32) -> String {
    format!("unit-{unit:05}")
}

/// A decimal of `units` ten-thousandths.
fn d4(units: u64) -> Decimal {
    Decimal::new(i64::try_from(units).unwrap_or(i64::MAX), 4)
}

/// Hourly counters of one unit, as a ТС220 archive has them.
struct Counters {
    vb: u64,
    vm: u64,
    record_no: u64,
}

impl Counters {
    fn new(unit: u32) -> Counters {
        let vb = 1_000_000 + u64::from(unit) * 7919;
        Counters {
            vb,
            vm: vb + 12_345,
            record_no: 0,
        }
    }

    /// The interval record at `t` after one more hour of gas.
    fn advance(&mut self, unit: u32, t: DateTime, status: &str, line: u32) -> ArchiveRecord {
        self.record_no += 1;
        let i = self.record_no;
        let step = 300_000 + (i * 7_919 + u64::from(unit) * 104_729) % 200_000;
        self.vb += step;
        self.vm += step - step / 20;
        self.record(ArchiveKind::Interval, t, i, status, line)
    }

    fn record(
        &self,
        kind: ArchiveKind,
        t: DateTime,
        i: u64,
        status: &str,
        line: u32,
    ) -> ArchiveRecord {
        ArchiveRecord {
            kind,
            record_no: Some(i),
            local_time: t,
            utc_offset_seconds: None,
            quantities: Quantities {
                vb: Some(d4(self.vb)),
                vbt: Some(d4(self.vb)),
                vm: Some(d4(self.vm)),
                vo: Some(d4(self.vm)),
                p_kpa: Some(d4(1_045_110 + i % 997)),
                t_c: Some(Decimal::new(500 + i64::try_from(i % 1000).unwrap_or(0), 2)),
                k: Some(d4(10_017)),
                ..Quantities::default()
            },
            status: vec![status.to_owned(), "0".to_owned()],
            event_code: Some(if kind == ArchiveKind::Interval {
                0x8104
            } else {
                0x8103
            }),
            check: Check::Ok,
            line,
        }
    }
}

/// Set-up state shared by the set-up steps.
struct Loader {
    db: Arc<dyn Database>,
    tz: TimeZone,
    uploads: u64,
    readings: u64,
}

impl Loader {
    /// One complete upload from a device holding `records` and `events`,
    /// received at `at`, stored as the ingest worker stores it.
    async fn upload(
        &mut self,
        device: DeviceId,
        at: Timestamp,
        records: Vec<ArchiveRecord>,
        events: Vec<EventRecord>,
    ) -> anyhow::Result<()> {
        let id = self.begin(device, at).await?;
        self.readings += records.len() as u64;
        self.db
            .store_parsed(
                id,
                device,
                &ParsedFile {
                    format: "lis200-text".into(),
                    records,
                    events,
                    meta: FileMeta {
                        model: Some("TC220".into()),
                        serial: Some(format!("{}", device.0)),
                    },
                    truncated: false,
                    warnings: Vec::new(),
                },
            )
            .await
            .with_context(|| format!("storing the records of upload #{}", id.0))?;
        Ok(())
    }

    /// A received upload (complete, queued for ingest).
    async fn begin(
        &mut self,
        device: DeviceId,
        at: Timestamp,
    ) -> anyhow::Result<telegaz_domain::UploadId> {
        self.uploads += 1;
        let n = self.uploads;
        let id = self
            .db
            .begin_upload(&NewUpload {
                device_id: device,
                original_name: FileName::utf8(&format!("arch{n}.txt")),
                path: format!("/arch{n}.txt"),
                mode: UploadMode::Store,
                resumed_from: None,
                offset: 0,
                peer: Some("10.0.0.1:40000".into()),
                session: None,
                started_at: at,
            })
            .await
            .context("recording an upload")?;
        let mut digest = [0u8; 32];
        digest[..8].copy_from_slice(&n.to_le_bytes());
        self.db
            .finish_upload(
                id,
                &UploadFinish {
                    status: UploadStatus::Complete,
                    size: 4096,
                    sha256: Sha256Digest(digest),
                    reason: None,
                    finished_at: at,
                },
            )
            .await
            .context("finishing an upload")?;
        Ok(id)
    }

    fn timestamp(&self, t: DateTime) -> anyhow::Result<Timestamp> {
        Ok(self.tz.to_timestamp(t)?)
    }

    /// An ordinary unit: `days` days of hourly readings up to its last
    /// contact, one upload a day.
    async fn unit(
        &mut self,
        unit: u32,
        device: DeviceId,
        kind: Kind,
        days: u32,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        if kind == Kind::Never {
            return Ok(());
        }
        let last_contact = now - SignedDuration::from_hours(hours_quiet(kind));
        let newest = floor_hour(self.tz.to_datetime(last_contact));
        let hours = i64::from(days.max(1)) * 24;
        let mut counters = Counters::new(unit);
        let mut day: Vec<ArchiveRecord> = Vec::with_capacity(25);
        for h in (0..=hours).rev() {
            let t = newest - SignedDuration::from_hours(h);
            let status = if kind == Kind::Alarm && h == 0 {
                "0x2000"
            } else {
                "0"
            };
            let line = u32::try_from(day.len() + 1).unwrap_or(u32::MAX);
            day.push(counters.advance(unit, t, status, line));
            // One upload a day, received a couple of minutes after its last row.
            if h % 24 == 0 {
                let at = (self.timestamp(t)? + SignedDuration::from_mins(2)).min(now);
                self.upload(device, at, std::mem::take(&mut day), Vec::new())
                    .await?;
            }
        }
        if kind == Kind::Quarantined {
            let id = self.begin(device, now).await?;
            self.db
                .finish_ingest(
                    id,
                    IngestState::Quarantined,
                    "bench: a file no parser understands",
                )
                .await
                .context("quarantining an upload")?;
        }
        if kind == Kind::Disabled {
            self.db
                .update_device(
                    device,
                    DeviceUpdate {
                        enabled: Some(false),
                        ..DeviceUpdate::default()
                    },
                )
                .await
                .context("disabling a unit")?;
        }
        Ok(())
    }

    /// The unit with the long history: `days` gas days `first..=last` of
    /// hourly interval readings (from the hour before the first gas day
    /// starts), the device's daily record at every gas-day boundary and a few
    /// events a week, in uploads of 30 days.
    async fn year(
        &mut self,
        device: DeviceId,
        first: Date,
        last: Date,
        now: Timestamp,
    ) -> anyhow::Result<()> {
        let start = first.at(CONTRACT_HOUR, 0, 0, 0);
        let end = last.tomorrow()?.at(CONTRACT_HOUR, 0, 0, 0);
        let mut counters = Counters::new(0);
        let mut records: Vec<ArchiveRecord> = Vec::new();
        let mut events: Vec<EventRecord> = Vec::new();
        let mut t = start - SignedDuration::from_hours(1);
        let mut daily_no = 0;
        let mut event_no = 0;
        let codes = [0x2007_u16, 0x8102, 0x2103];
        while t <= end {
            let line = u32::try_from(records.len() + 1).unwrap_or(u32::MAX);
            records.push(counters.advance(0, t, "0", line));
            if t.hour() == CONTRACT_HOUR && t >= start {
                daily_no += 1;
                records.push(counters.record(ArchiveKind::Daily, t, daily_no, "0", line));
            }
            // An event every other day at 13:05:12.
            if t.hour() == 13 && t.date().day() % 2 == 0 {
                event_no += 1;
                let code = codes
                    .get(usize::try_from(event_no).unwrap_or(0) % codes.len())
                    .copied()
                    .unwrap_or(0x2007);
                events.push(EventRecord {
                    record_no: Some(event_no),
                    local_time: t + SignedDuration::new(5 * 60 + 12, 0),
                    utc_offset_seconds: None,
                    code,
                    check: Check::Ok,
                    line,
                });
            }
            let next = t + SignedDuration::from_hours(1);
            // An upload every 30 days, and one at the end.
            if next > end || (t.hour() == CONTRACT_HOUR && t.date().day() == 1) {
                let at = (self.timestamp(t)? + SignedDuration::from_mins(2)).min(now);
                self.upload(
                    device,
                    at,
                    std::mem::take(&mut records),
                    std::mem::take(&mut events),
                )
                .await?;
            }
            t = next;
        }
        Ok(())
    }
}

fn floor_hour(t: DateTime) -> DateTime {
    t.date().at(t.hour(), 0, 0, 0)
}

/// A pool over the same file with the store's settings (WAL,
/// `synchronous=FULL`, foreign keys, 8 connections).
async fn peer_pool(path: &Path) -> anyhow::Result<SqlitePool> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .connect_with(options)
        .await
        .context("opening the peer's pool")
}

/// A peer: raw SQL whose rows are fetched and every column decoded.
#[derive(Debug, Clone)]
enum Peer {
    /// Every device with its newest upload: what any fleet page must read to
    /// sort and count 10,000 units.
    Fleet,
    /// Every stored reading of a device between two local times.
    Readings {
        device: i64,
        from: String,
        to: String,
    },
}

impl Peer {
    fn label(&self) -> &'static str {
        match self {
            Peer::Fleet => "devices ⟕ newest upload",
            Peer::Readings { .. } => "readings of the range",
        }
    }

    /// Rows read, and a checksum so that nothing is optimised away.
    async fn run(&self, pool: &SqlitePool) -> anyhow::Result<usize> {
        let mut sum = 0usize;
        let rows: Vec<SqliteRow> = match self {
            Peer::Fleet => {
                let rows = sqlx::query(
                    "SELECT d.id, d.name, d.login, d.title, d.enabled, MAX(u.started_at) \
                     FROM devices d LEFT JOIN uploads u ON u.device_id = d.id GROUP BY d.id",
                )
                .fetch_all(pool)
                .await
                .context("peer: devices and their newest upload")?;
                for r in &rows {
                    sum += usize::try_from(r.try_get::<i64, _>(0)?).unwrap_or(0);
                    sum += r.try_get::<&str, _>(1)?.len();
                    sum += r.try_get::<&str, _>(2)?.len();
                    sum += r.try_get::<&str, _>(3)?.len();
                    sum += usize::try_from(r.try_get::<i64, _>(4)?).unwrap_or(0);
                    sum += r.try_get::<Option<&str>, _>(5)?.map_or(0, str::len);
                }
                rows
            }
            Peer::Readings { device, from, to } => {
                let rows = sqlx::query(
                    "SELECT * FROM readings WHERE device_id = ? AND local_time BETWEEN ? AND ?",
                )
                .bind(device)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await
                .context("peer: the readings of a range")?;
                for r in &rows {
                    sum += usize::try_from(r.try_get::<i64, _>("record_no")?).unwrap_or(0);
                    sum += r.try_get::<&str, _>("kind")?.len();
                    sum += r.try_get::<&str, _>("local_time")?.len();
                    sum += r.try_get::<&str, _>("quantities")?.len();
                    sum += r.try_get::<&str, _>("status")?.len();
                    sum += r.try_get::<&str, _>("checked")?.len();
                    sum += usize::try_from(r.try_get::<Option<i64>, _>("event_code")?.unwrap_or(0))
                        .unwrap_or(0);
                    sum += usize::try_from(r.try_get::<Option<i64>, _>("utc_offset")?.unwrap_or(0))
                        .unwrap_or(0);
                    sum += usize::try_from(r.try_get::<i64, _>("upload_id")?).unwrap_or(0);
                    sum += usize::try_from(r.try_get::<i64, _>("line")?).unwrap_or(0);
                }
                rows
            }
        };
        std::hint::black_box(sum);
        Ok(rows.len())
    }
}

/// What a response must contain.
#[derive(Debug, Clone)]
enum Expect {
    /// A fleet page: this many unit rows; the first one named `first` (when
    /// given), every one containing `contains` (when given); `first_state`
    /// the state of the first row (when given).
    FleetHtml {
        rows: usize,
        first: Option<String>,
        contains: Option<String>,
        first_state: Option<&'static str>,
    },
    /// The fleet as JSON: this many rows, `total` units, every state present.
    FleetJson { rows: usize, total: usize },
    /// A device page: this many gas-day rows and hourly rows on its first page.
    DeviceHtml { days: usize, hour_rows: usize },
    /// Hourly readings as JSON: at least this many.
    ReadingsJson { at_least: usize },
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

impl Expect {
    fn check(&self, body: &str) -> anyhow::Result<()> {
        match self {
            Expect::FleetHtml {
                rows,
                first,
                contains,
                first_state,
            } => {
                let names: Vec<&str> = body
                    .split("<tr class=\"unit\" data-device=\"")
                    .skip(1)
                    .filter_map(|s| s.split('"').next())
                    .collect();
                if names.len() != *rows {
                    bail!("{} unit rows, expected {rows}", names.len());
                }
                if let Some(f) = first
                    && names.first() != Some(&f.as_str())
                {
                    bail!("first row {:?}, expected {f}", names.first());
                }
                if let Some(c) = contains
                    && let Some(n) = names.iter().find(|n| !n.contains(c.as_str()))
                {
                    bail!("row {n} does not match the search {c:?}");
                }
                if let Some(s) = first_state {
                    let state = body
                        .split("class=\"badge state-")
                        .nth(1)
                        .and_then(|s| s.split('"').next());
                    if state != Some(*s) {
                        bail!("first row's state {state:?}, expected {s}");
                    }
                }
            }
            Expect::FleetJson { rows, total } => {
                let v: serde_json::Value = serde_json::from_str(body).context("fleet JSON")?;
                let got = v["rows"].as_array().map_or(0, Vec::len);
                if got != *rows {
                    bail!("{got} rows, expected {rows}");
                }
                if v["total"].as_u64() != Some(*total as u64) {
                    bail!("total {}, expected {total}", v["total"]);
                }
                let empty: Vec<&String> = v["counts"]
                    .as_object()
                    .map(|c| {
                        c.iter()
                            .filter(|(_, n)| n.as_u64() == Some(0))
                            .map(|(k, _)| k)
                            .collect()
                    })
                    .unwrap_or_default();
                if *total >= 20 && !empty.is_empty() {
                    bail!("no unit in state {empty:?}: the set-up should give every state");
                }
            }
            Expect::DeviceHtml { days, hour_rows } => {
                let got_days = count(body, "<tr class=\"day\"");
                let got_hours = count(body, "<tr class=\"hour\">");
                if got_days != *days || got_hours != *hour_rows {
                    bail!(
                        "{got_days} gas-day rows and {got_hours} hourly rows, expected {days} and {hour_rows}"
                    );
                }
                for chart in ["chart-vb", "chart-p", "chart-t"] {
                    if !body.contains(&format!("id=\"{chart}\"")) {
                        bail!("no chart {chart}");
                    }
                }
            }
            Expect::ReadingsJson { at_least } => {
                let v: serde_json::Value = serde_json::from_str(body).context("readings JSON")?;
                let got = v["readings"].as_array().map_or(0, Vec::len);
                if got < *at_least {
                    bail!("{got} hourly readings, expected at least {at_least}");
                }
            }
        }
        Ok(())
    }
}

struct Case {
    uri: String,
    peer: Peer,
    expect: Expect,
}

/// One request through the router to its last byte: status, body, time.
async fn request(router: &Router, uri: &str) -> anyhow::Result<(StatusCode, Vec<u8>, Duration)> {
    let req = Request::get(uri)
        .header(header::COOKIE, format!("tg_lang=ru; tg_session={TOKEN}"))
        .body(Body::empty())
        .context("building a request")?;
    let router = router.clone();
    let started = Instant::now();
    let response = router.oneshot(req).await?;
    let status = response.status();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .context("reading a response body")?;
    let elapsed = started.elapsed();
    Ok((status, body.to_vec(), elapsed))
}

fn local_text(t: DateTime) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Set up the database, then measure every request and its peer.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    if opts.devices == 0 {
        bail!("--devices must be at least 1");
    }
    if !(7..=366).contains(&opts.year_days) {
        bail!("--year-days must be 7 to 366 (the device page shows at most 366 gas days)");
    }
    let dir = match &opts.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("creating a temporary directory")?;
    let db_path = dir.path().join("telegaz.db");
    let db = telegaz_store::connect(&format!("sqlite://{}", db_path.display()))
        .await
        .context("opening the database")?;
    let spool = telegaz_spool::Spool::open(dir.path().join("spool")).context("opening a spool")?;

    // Set-up, not timed.
    let setup_started = Instant::now();
    let now = Timestamp::now();
    let tz = TimeZone::get(TIME_ZONE)?;
    let hash = telegaz_auth::hash_password(&SecretString::from("bench-password".to_owned()))
        .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))?;
    let user = db
        .create_user(NewUser {
            name: UserName::parse("bench").map_err(anyhow::Error::msg)?,
            password_hash: hash.clone(),
            role: Role::Viewer,
        })
        .await?;
    db.create_session(NewSession {
        token_sha256: telegaz_web::token_sha256(TOKEN),
        user_id: user.id,
        csrf_token: "bench-csrf".into(),
        created_at: now,
        expires_at: now + SignedDuration::from_hours(24),
    })
    .await?;
    let current_gas_day =
        (tz.to_datetime(now) - SignedDuration::from_hours(i64::from(CONTRACT_HOUR))).date();
    let last = current_gas_day.yesterday()?;
    let first = last.checked_sub(Span::new().days(i64::from(opts.year_days) - 1))?;
    let mut loader = Loader {
        db: db.clone(),
        tz: tz.clone(),
        uploads: 0,
        readings: 0,
    };
    let mut year_id = None;
    let mut names = Vec::new();
    for unit in 0..opts.devices {
        let name = unit_name(unit);
        let parsed = DeviceName::parse(&name).map_err(anyhow::Error::msg)?;
        let device = db
            .create_device(NewDevice {
                name: parsed.clone(),
                login: parsed,
                password_hash: hash.clone(),
                allowed_networks: vec![],
            })
            .await
            .with_context(|| format!("creating {name}"))?;
        if unit == 0 {
            db.update_device(
                device.id,
                DeviceUpdate {
                    title: Some("Котельная №1, год почасовых данных".into()),
                    ..DeviceUpdate::default()
                },
            )
            .await?;
            loader.year(device.id, first, last, now).await?;
            year_id = Some(device.id);
        } else {
            loader
                .unit(unit, device.id, kind_of(unit), opts.days, now)
                .await
                .with_context(|| format!("storing the data of {name}"))?;
        }
        names.push(name);
        if (unit + 1) % 2000 == 0 {
            eprintln!(
                "  {} units set up ({:.0} s)",
                unit + 1,
                setup_started.elapsed().as_secs_f64()
            );
        }
    }
    let year_id = year_id.context("no unit with the long history")?;
    let setup = setup_started.elapsed();

    let ctx = WebContext::new(
        db.clone(),
        spool,
        WebSettings {
            session_ttl: Duration::from_secs(24 * 3600),
            secure_cookies: telegaz_config::SecureCookies::Never,
            late_after: Duration::from_secs(26 * 3600),
            silent_after: Duration::from_secs(72 * 3600),
            sheet: telegaz_web::SheetInfo::default(),
            profiles_dir: dir.path().join("profiles"),
            notifiers: Vec::new(),
            // One in-process client makes every request: no rate limit.
            rate_limit: telegaz_config::WebRateLimitConfig::off(),
        },
        None,
    );
    let router = telegaz_web::router(ctx);
    let pool = peer_pool(&db_path).await?;

    let n = opts.devices as usize;
    let page_rows = n.min(PER);
    let search = opts.search.to_lowercase();
    let matching = names.iter().filter(|n| n.contains(&search)).count();
    let week_first = last.checked_sub(Span::new().days(6))?;
    // The range the device page reads: from two hours before the first gas
    // day starts to the end of the last one (`load_report_data`).
    let page_range = |from: Date| -> anyhow::Result<Peer> {
        Ok(Peer::Readings {
            device: year_id.0,
            from: local_text(from.at(CONTRACT_HOUR, 0, 0, 0) - SignedDuration::from_hours(2)),
            to: local_text(last.tomorrow()?.at(CONTRACT_HOUR, 0, 0, 0)),
        })
    };
    let year_hours = opts.year_days as usize * 24;
    let cases = vec![
        Case {
            uri: format!("/?per={PER}"),
            peer: Peer::Fleet,
            expect: Expect::FleetHtml {
                rows: page_rows,
                first: Some(YEAR_DEVICE.into()),
                contains: None,
                first_state: None,
            },
        },
        Case {
            uri: format!("/?sort=state&per={PER}"),
            peer: Peer::Fleet,
            expect: Expect::FleetHtml {
                rows: page_rows,
                first: None,
                contains: None,
                first_state: (n > 4).then_some("silent"),
            },
        },
        Case {
            uri: format!("/?q={}&per={PER}", opts.search),
            peer: Peer::Fleet,
            expect: Expect::FleetHtml {
                rows: matching.min(PER),
                first: None,
                contains: Some(search.clone()),
                first_state: None,
            },
        },
        Case {
            uri: format!("/devices/{YEAR_DEVICE}?from={first}&to={last}"),
            peer: page_range(first)?,
            expect: Expect::DeviceHtml {
                days: opts.year_days as usize,
                hour_rows: HOURS_PER_PAGE.min(year_hours),
            },
        },
        Case {
            uri: format!("/devices/{YEAR_DEVICE}?from={week_first}&to={last}"),
            peer: page_range(week_first)?,
            expect: Expect::DeviceHtml {
                days: 7,
                hour_rows: HOURS_PER_PAGE,
            },
        },
        Case {
            uri: format!("/api/v1/fleet?per={PER}"),
            peer: Peer::Fleet,
            expect: Expect::FleetJson {
                rows: page_rows,
                total: n,
            },
        },
        Case {
            uri: format!("/api/v1/devices/{YEAR_DEVICE}/readings?from={first}&to={last}"),
            // The API reads local dates: from two hours before `first`
            // 00:00 to the midnight after `last`.
            peer: Peer::Readings {
                device: year_id.0,
                from: local_text(first.at(0, 0, 0, 0) - SignedDuration::from_hours(2)),
                to: local_text(last.tomorrow()?.at(0, 0, 0, 0)),
            },
            expect: Expect::ReadingsJson {
                at_least: year_hours - 24,
            },
        },
    ];

    let mut results = Vec::new();
    for case in cases {
        // Warm-up (untimed): the response is checked here.
        let (status, body, _) = request(&router, &case.uri).await?;
        let body = String::from_utf8(body).context("a response that is not UTF-8")?;
        if status != StatusCode::OK {
            bail!(
                "GET {} answered {status}: {}",
                case.uri,
                body.chars().take(500).collect::<String>()
            );
        }
        case.expect
            .check(&body)
            .with_context(|| format!("GET {}", case.uri))?;
        let peer_rows = case.peer.run(&pool).await?;
        let mut samples = Vec::with_capacity(opts.repeat);
        let mut peer_samples = Vec::with_capacity(opts.repeat);
        for _ in 0..opts.repeat {
            let (status, _, took) = request(&router, &case.uri).await?;
            if status != StatusCode::OK {
                bail!("GET {} answered {status}", case.uri);
            }
            samples.push(took);
            let started = Instant::now();
            case.peer.run(&pool).await?;
            peer_samples.push(started.elapsed());
        }
        results.push(Measured {
            request: format!("GET {}", case.uri),
            peer: case.peer.label(),
            samples,
            peer_samples,
            body_bytes: body.len(),
            peer_rows,
            body,
        });
    }
    pool.close().await;
    let kept = opts.keep.then(|| {
        let _ = dir.keep();
        db_path
    });
    Ok(Report {
        kept,
        devices: opts.devices,
        uploads: loader.uploads,
        readings: loader.readings,
        setup,
        results,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
mod tests {
    use super::*;

    /// The benchmark body at a tiny size: every request answers 200 with the
    /// rows it should (checked inside `run`); no timing is asserted.
    #[tokio::test]
    async fn tiny_run_serves_every_page_with_its_rows() {
        let opts = Options {
            devices: 20,
            days: 2,
            year_days: 10,
            repeat: 1,
            search: "unit-0001".into(),
            dir: None,
            keep: false,
        };
        let report = run(&opts).await.unwrap();
        assert_eq!(report.results.len(), 7);
        for m in &report.results {
            assert_eq!(m.samples.len(), 1, "{}", m.request);
            assert_eq!(m.peer_samples.len(), 1, "{}", m.request);
            assert!(m.peer_rows > 0, "{}", m.request);
        }
        let fleet = &report.results[0].body;
        assert_eq!(count(fleet, "<tr class=\"unit\""), 20);
        assert!(fleet.contains("data-device=\"unit-00019\""));
        let search = &report.results[2].body;
        assert_eq!(count(search, "<tr class=\"unit\""), 10);
        assert!(!search.contains("data-device=\"unit-00009\""));
        let year = &report.results[3].body;
        assert_eq!(count(year, "<tr class=\"day\""), 10);
        assert!(year.contains("<tr class=\"event-row\">"));
        // 10 gas days of readings, plus the hour before: 240 hourly volumes.
        let api: serde_json::Value = serde_json::from_str(&report.results[6].body).unwrap();
        assert!(api["readings"].as_array().unwrap().len() >= 216);
        assert!(report.markdown().lines().count() == 9);
    }
}
