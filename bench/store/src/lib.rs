//! Store throughput and the two hot queries, on SQLite and on PostgreSQL,
//! each measured side by side with raw SQL on the same database.
//!
//! Per backend, in one run:
//!
//! - **Set-up** (not timed): `--fleet` units in all. `--devices` of them get
//!   `--days` of hourly readings each, cut into files of `--hours-per-file`
//!   rows, recorded as complete uploads (waiting for ingest) but not stored
//!   yet; one unit (`year`) gets `--year-hours` hourly readings (a year) in
//!   uploads of a month; every other unit gets a day of hourly readings. All
//!   through the store's own calls (`create_device`, `begin_upload`,
//!   `finish_upload`, `store_parsed`), on a database that does not wait for
//!   the disk while it is filled (SQLite: a file in `/dev/shm`, then copied
//!   to the disk with `VACUUM INTO`; PostgreSQL: `synchronous_commit = off`
//!   for the set-up's sessions only). Everything timed runs with the
//!   server's own settings (SQLite: WAL, `synchronous=FULL`, foreign keys;
//!   PostgreSQL: the server's defaults, `synchronous_commit = on`).
//! - **Store throughput**: the waiting uploads, oldest first, each claimed and
//!   stored as the ingest worker does (`begin_ingest_attempt` +
//!   `store_parsed`: one transaction per file). Peer: the same rows inserted
//!   into a plain table with the same columns and primary key (no foreign
//!   keys, no trigger, no partitions) in one transaction: prepared `INSERT`s
//!   on SQLite, `COPY … FROM STDIN (FORMAT csv)` on PostgreSQL; the values are
//!   rendered before the clock starts.
//! - **A device-year**: `Database::readings` of `year`'s interval readings
//!   over the year (the device page and the REST readings call), against the
//!   raw `SELECT` of the same rows with every column read.
//! - **Latest state of the fleet**: `Database::device_activity(None)` (the
//!   fleet page, the REST fleet call and the alerts), against the newest
//!   interval reading of every unit in raw SQL (`GROUP BY` with `MAX` on
//!   SQLite, `DISTINCT ON` on PostgreSQL). `device_activity` reads more than
//!   its peer (each unit's newest upload, login and problem uploads too).
//!
//! The queries are run `--repeat` times each after one warm-up, alternating
//! with their peer. The number to compare across machines is the ratio.
//!
//! `cargo run --release -p telegaz-bench-store -- --devices 200 --days 30 --fleet 10000`

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use jiff::civil::DateTime;
use jiff::{SignedDuration, Timestamp};
use sqlx::{Connection, Executor, Row};
use telegaz_domain::{
    ArchiveKind, ArchiveRecord, Check, Decimal, DeviceId, DeviceName, FileMeta, FileName,
    NewUpload, ParsedFile, Quantities, Sha256Digest, UploadFinish, UploadId, UploadMode,
    UploadStatus,
};
use telegaz_store::{Database, NewDevice, ReadingFilter};

/// Options; `--help` lists them.
#[derive(Debug, Clone, clap::Parser)]
#[command(version)]
pub struct Options {
    /// Units whose readings are stored in the timed throughput run.
    #[arg(long, default_value_t = 200)]
    pub devices: u32,
    /// Days of hourly readings of each of those units.
    #[arg(long, default_value_t = 30)]
    pub days: u32,
    /// Rows per file (upload) in the throughput run: one store call each.
    #[arg(long, default_value_t = 24)]
    pub hours_per_file: u32,
    /// Units in all (the latest-state query reads every one).
    #[arg(long, default_value_t = 10_000)]
    pub fleet: u32,
    /// Hourly readings of the unit read by the device-year query.
    #[arg(long, default_value_t = 8_760)]
    pub year_hours: u32,
    /// Timed repetitions of each query and of its peer (after one warm-up).
    #[arg(long, default_value_t = 20)]
    pub repeat: usize,
    /// PostgreSQL server to create the scratch database on (its user may
    /// create databases); the database is dropped at the end.
    #[arg(long, env = "TELEGAZ_TEST_POSTGRES_URL", hide_env_values = true)]
    pub postgres: Option<String>,
    /// SQLite only.
    #[arg(long)]
    pub no_postgres: bool,
    /// Tiny sizes (a smoke run: 3 units, 2 days, 30 units in all, 48 hours, 2 repetitions).
    #[arg(long)]
    pub quick: bool,
    /// Directory for the SQLite files (default: the system's temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl Options {
    /// The sizes in effect (`--quick` replaces them).
    pub fn effective(&self) -> Options {
        let mut o = self.clone();
        if o.quick {
            o.devices = 3;
            o.days = 2;
            o.fleet = 30;
            o.year_hours = 48;
            o.repeat = 2;
        }
        o.hours_per_file = o.hours_per_file.max(1);
        o.fleet = o.fleet.max(o.devices + 1);
        o
    }
}

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// Throughput of one backend.
#[derive(Debug, Clone)]
pub struct Throughput {
    pub rows: u64,
    pub files: u64,
    pub ours: Duration,
    pub peer: Duration,
}

impl Throughput {
    fn rate(&self, d: Duration) -> f64 {
        self.rows as f64 / d.as_secs_f64().max(1e-9)
    }
    /// Our rows/s over the peer's.
    pub fn ratio(&self) -> f64 {
        self.rate(self.ours) / self.rate(self.peer).max(1e-9)
    }
}

/// One query measured against its peer.
#[derive(Debug, Clone)]
pub struct Query {
    pub name: &'static str,
    pub peer: &'static str,
    pub rows: usize,
    pub peer_rows: usize,
    pub ours: Vec<Duration>,
    pub theirs: Vec<Duration>,
}

impl Query {
    /// Our median over the peer's.
    pub fn ratio(&self) -> f64 {
        percentile(&self.ours, 50).as_secs_f64()
            / percentile(&self.theirs, 50).as_secs_f64().max(1e-9)
    }
}

/// What one backend gave.
#[derive(Debug, Clone)]
pub struct BackendReport {
    pub backend: Backend,
    pub setup: Duration,
    pub throughput: Throughput,
    pub queries: Vec<Query>,
}

impl BackendReport {
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
}

/// What the run gave.
#[derive(Debug, Clone)]
pub struct Report {
    pub options: Options,
    pub backends: Vec<BackendReport>,
    /// Why PostgreSQL was not run, when it was not.
    pub skipped: Option<String>,
}

/// Nearest-rank percentile (`p` in 1..=100).
fn percentile(samples: &[Duration], p: usize) -> Duration {
    let mut s = samples.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let rank = (s.len() * p).div_ceil(100).clamp(1, s.len());
    s.get(rank - 1).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn thousands(n: f64) -> String {
    let s = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl Report {
    /// The Markdown tables for BENCHMARKS.md.
    pub fn markdown(&self) -> String {
        let o = &self.options;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Store throughput: {} units × {} days of hourly rows in files of {} rows; \
             {} units in all; the device-year is {} hourly rows; {} repetitions.\n",
            o.devices, o.days, o.hours_per_file, o.fleet, o.year_hours, o.repeat
        );
        out.push_str(
            "| backend | rows (files) | peer | peer s | peer rows/s | telegaz s | telegaz rows/s | ratio (rows/s) |\n\
             |---|---:|---|---:|---:|---:|---:|---:|\n",
        );
        for b in &self.backends {
            let t = &b.throughput;
            let peer = match b.backend {
                Backend::Sqlite => "prepared INSERTs, one transaction",
                Backend::Postgres => "COPY FROM STDIN (csv), one transaction",
            };
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {peer} | {:.2} | {} | {:.2} | {} | **{:.2}** |",
                b.backend.name(),
                thousands(t.rows as f64),
                thousands(t.files as f64),
                t.peer.as_secs_f64(),
                thousands(t.rate(t.peer)),
                t.ours.as_secs_f64(),
                thousands(t.rate(t.ours)),
                t.ratio()
            );
        }
        out.push_str(
            "\n| backend | query | rows | median ms | p95 ms | peer | peer median ms | peer p95 ms | ratio |\n\
             |---|---|---:|---:|---:|---|---:|---:|---:|\n",
        );
        for b in &self.backends {
            for q in &b.queries {
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | **{:.1}** |",
                    b.backend.name(),
                    q.name,
                    thousands(q.rows as f64),
                    ms(percentile(&q.ours, 50)),
                    ms(percentile(&q.ours, 95)),
                    q.peer,
                    ms(percentile(&q.theirs, 50)),
                    ms(percentile(&q.theirs, 95)),
                    q.ratio()
                );
            }
        }
        if let Some(why) = &self.skipped {
            let _ = writeln!(out, "\nPostgreSQL: not run ({why}).");
        }
        out
    }
}

/// The machine, for the record: cores and CPU model.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    format!("{cores} cores, {cpu}")
}

// ---------------------------------------------------------------- data

/// A decimal of `units` ten-thousandths.
fn d4(units: u64) -> Decimal {
    Decimal::new(i64::try_from(units).unwrap_or(i64::MAX), 4)
}

/// The interval row of unit `unit` at hour `h` after `start` (ТС220-like
/// counters growing by a varying step).
fn row(unit: u32, start: DateTime, h: u64, line: u32) -> ArchiveRecord {
    let hours = i64::try_from(h).unwrap_or(i64::MAX);
    let step = 300_000 + (h * 7_919 + u64::from(unit) * 104_729) % 200_000;
    let vb = 1_000_000 + u64::from(unit) * 7_919 + h * step;
    let vm = vb + 12_345 + h * (step / 20);
    ArchiveRecord {
        kind: ArchiveKind::Interval,
        record_no: Some(h + 1),
        local_time: start + SignedDuration::from_hours(hours),
        utc_offset_seconds: None,
        quantities: Quantities {
            vb: Some(d4(vb)),
            vbt: Some(d4(vb)),
            vm: Some(d4(vm)),
            vo: Some(d4(vm)),
            p_kpa: Some(d4(1_045_110 + h % 997)),
            t_c: Some(Decimal::new(500 + i64::try_from(h % 1000).unwrap_or(0), 2)),
            k: Some(d4(10_017)),
            ..Quantities::default()
        },
        status: vec!["0".into(), "0".into()],
        event_code: Some(0x8104),
        check: Check::Ok,
        line,
    }
}

/// Hours `first..first + n` of a unit as one parsed file.
fn file(unit: u32, start: DateTime, first: u64, n: u64) -> ParsedFile {
    let records = (first..first + n)
        .enumerate()
        .map(|(i, h)| row(unit, start, h, u32::try_from(i + 1).unwrap_or(u32::MAX)))
        .collect();
    ParsedFile {
        format: "lis200-text".into(),
        records,
        meta: FileMeta {
            model: Some("TC220".into()),
            serial: Some(unit.to_string()),
        },
        ..ParsedFile::default()
    }
}

fn throughput_start() -> DateTime {
    jiff::civil::date(2026, 1, 1).at(0, 0, 0, 0)
}

fn year_start() -> DateTime {
    jiff::civil::date(2025, 1, 1).at(0, 0, 0, 0)
}

/// The day every other unit of the fleet reported.
fn fleet_day() -> DateTime {
    jiff::civil::date(2026, 11, 24).at(0, 0, 0, 0)
}

// ---------------------------------------------------------------- set-up

/// Units and what the timed part needs.
struct Loaded {
    /// Uploads waiting for ingest, oldest first, with their device and rows.
    waiting: Vec<(UploadId, DeviceId, ParsedFile)>,
    year_device: DeviceId,
    devices: usize,
}

async fn create_device(db: &dyn Database, name: &str) -> anyhow::Result<DeviceId> {
    let name = DeviceName::parse(name).map_err(anyhow::Error::msg)?;
    Ok(db
        .create_device(NewDevice {
            name: name.clone(),
            login: name,
            password_hash: "$argon2id$bench".into(),
            allowed_networks: vec![],
        })
        .await
        .context("creating a unit")?
        .id)
}

/// A complete upload of `device` (queued for ingest, as the receiver leaves it).
async fn received(db: &dyn Database, device: DeviceId, n: u64) -> anyhow::Result<UploadId> {
    let id = db
        .begin_upload(&NewUpload {
            device_id: device,
            original_name: FileName::utf8(&format!("arch{n}.txt")),
            path: format!("/arch{n}.txt"),
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: Some("10.0.0.1:40000".into()),
            session: None,
            started_at: Timestamp::now(),
        })
        .await
        .context("recording an upload")?;
    let mut digest = [0u8; 32];
    digest[..8].copy_from_slice(&n.to_le_bytes());
    db.finish_upload(
        id,
        &UploadFinish {
            status: UploadStatus::Complete,
            size: 4096,
            sha256: Sha256Digest(digest),
            reason: None,
            finished_at: Timestamp::now(),
        },
    )
    .await
    .context("finishing an upload")?;
    Ok(id)
}

async fn load(db: &dyn Database, o: &Options) -> anyhow::Result<Loaded> {
    let mut n = 0u64;
    // Throughput units: uploads recorded, day by day across the units, as
    // they arrive; stored later (timed).
    let mut units = Vec::new();
    for u in 0..o.devices {
        units.push(create_device(db, &format!("tp-{u:05}")).await?);
    }
    let per = u64::from(o.hours_per_file);
    let hours = u64::from(o.days) * 24;
    let mut waiting = Vec::new();
    let mut first = 0;
    while first < hours {
        let len = per.min(hours - first);
        for (u, &dev) in units.iter().enumerate() {
            n += 1;
            let id = received(db, dev, n).await?;
            let unit = u32::try_from(u).unwrap_or(u32::MAX);
            waiting.push((id, dev, file(unit, throughput_start(), first, len)));
        }
        first += len;
    }
    // The year, in uploads of 30 days.
    let year_device = create_device(db, "year").await?;
    let year = u64::from(o.year_hours);
    let mut first = 0;
    while first < year {
        let len = (30 * 24).min(year - first);
        n += 1;
        let id = received(db, year_device, n).await?;
        db.store_parsed(id, year_device, &file(0, year_start(), first, len))
            .await
            .context("storing the year")?;
        first += len;
    }
    // Everybody else: a day each.
    let rest = o.fleet.saturating_sub(o.devices + 1);
    for u in 0..rest {
        let dev = create_device(db, &format!("unit-{u:05}")).await?;
        n += 1;
        let id = received(db, dev, n).await?;
        db.store_parsed(id, dev, &file(u + 1, fleet_day(), 0, 24))
            .await
            .context("storing a unit's day")?;
    }
    Ok(Loaded {
        waiting,
        year_device,
        devices: usize::try_from(o.fleet).unwrap_or(usize::MAX),
    })
}

// ---------------------------------------------------------------- backends

/// The raw side of a database: the peers' connection.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Pg(sqlx::PgPool),
}

/// A PostgreSQL scratch database, dropped by [`Scratch::drop_now`].
struct Scratch {
    admin: String,
    name: String,
    url: String,
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let (scheme, rest) = base
        .split_once("://")
        .context("the PostgreSQL URL has no scheme (postgres://USER@HOST:PORT/DB)")?;
    let authority = rest.split('/').next().unwrap_or(rest);
    let mut out = format!("{scheme}://{authority}/{database}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    Ok(out)
}

impl Scratch {
    async fn create(admin: &str) -> anyhow::Result<Scratch> {
        let name = format!("telegaz_store_bench_{}", std::process::id());
        let s = Scratch {
            admin: admin.to_owned(),
            url: with_database(admin, &name)?,
            name,
        };
        s.admin_sql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", s.name))
            .await?;
        s.admin_sql(&format!("CREATE DATABASE {}", s.name))
            .await
            .context("creating the scratch database (the URL's user must be allowed to)")?;
        Ok(s)
    }

    async fn admin_sql(&self, sql: &str) -> anyhow::Result<()> {
        let mut c = sqlx::PgConnection::connect(&self.admin)
            .await
            .with_context(|| {
                format!(
                    "connecting to PostgreSQL at {}",
                    telegaz_store::redact_url(&self.admin)
                )
            })?;
        c.execute(sqlx::AssertSqlSafe(sql.to_owned())).await?;
        c.close().await?;
        Ok(())
    }

    async fn drop_now(&self) {
        let _ = self
            .admin_sql(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .await;
    }
}

/// The SQLite store file for the timed part: filled in memory-backed files,
/// copied to `dir`.
async fn sqlite_db(
    o: &Options,
    dir: &Path,
) -> anyhow::Result<(Arc<dyn Database>, Raw, Loaded, Duration)> {
    let started = Instant::now();
    let shm = Path::new("/dev/shm");
    let fast = if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    };
    let fast_file = fast.path().join("telegaz.db");
    let loaded = {
        let db = telegaz_store::connect(&format!("sqlite://{}", fast_file.display())).await?;
        load(&*db, o).await?
    };
    let file = dir.join("telegaz.db");
    let mut c =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}", fast_file.display())).await?;
    sqlx::query("VACUUM INTO ?")
        .bind(file.display().to_string())
        .execute(&mut c)
        .await
        .context("copying the database to the disk")?;
    c.close().await?;
    drop(fast);
    let setup = started.elapsed();
    let db = telegaz_store::connect(&format!("sqlite://{}", file.display())).await?;
    // The peers' pool: the store's settings over the same file.
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&file)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(30));
    let raw = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(8)
        .min_connections(1)
        .connect_with(options)
        .await?;
    Ok((db, Raw::Sqlite(raw), loaded, setup))
}

/// The PostgreSQL store on the scratch database: filled with
/// `synchronous_commit = off`, then opened again with the server's setting.
async fn postgres_db(
    o: &Options,
    scratch: &Scratch,
) -> anyhow::Result<(Arc<dyn Database>, Raw, Loaded, Duration)> {
    let started = Instant::now();
    scratch
        .admin_sql(&format!(
            "ALTER DATABASE {} SET synchronous_commit = off",
            scratch.name
        ))
        .await?;
    let loaded = {
        let db = telegaz_store::connect(&scratch.url).await?;
        load(&*db, o).await?
    };
    scratch
        .admin_sql(&format!(
            "ALTER DATABASE {} RESET synchronous_commit",
            scratch.name
        ))
        .await?;
    let raw = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&scratch.url)
        .await?;
    raw.execute("VACUUM ANALYZE").await?;
    let setup = started.elapsed();
    let db = telegaz_store::connect(&scratch.url).await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&raw)
        .await?;
    if sync != "on" {
        bail!("synchronous_commit is {sync} for the timed part; expected on");
    }
    Ok((db, Raw::Pg(raw), loaded, setup))
}

// ---------------------------------------------------------------- timed

/// The peer's table: the readings' columns and primary key, nothing else.
const PLAIN_TABLE: &str = "CREATE TABLE plain_readings (device_id BIGINT NOT NULL, kind TEXT NOT NULL, \
     local_time TIMESTAMP NOT NULL, record_no BIGINT NOT NULL, utc_offset INTEGER, quantities TEXT NOT NULL, \
     status TEXT NOT NULL, event_code INTEGER, checked TEXT NOT NULL, upload_id BIGINT NOT NULL, \
     line INTEGER NOT NULL, PRIMARY KEY (device_id, kind, local_time, record_no))";

/// One row as the peer sends it (rendered before the clock starts).
struct PlainRow {
    device: i64,
    local: String,
    record_no: i64,
    quantities: String,
    status: String,
    event_code: Option<i64>,
    checked: String,
    upload: i64,
    line: i64,
}

fn plain_rows(waiting: &[(UploadId, DeviceId, ParsedFile)]) -> anyhow::Result<Vec<PlainRow>> {
    let mut out = Vec::new();
    for (id, dev, f) in waiting {
        for r in &f.records {
            out.push(PlainRow {
                device: dev.0,
                local: r.local_time.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
                record_no: r
                    .record_no
                    .and_then(|n| i64::try_from(n).ok())
                    .unwrap_or(-1),
                quantities: serde_json::to_string(&r.quantities)?,
                status: serde_json::to_string(&r.status)?,
                event_code: r.event_code.map(i64::from),
                checked: serde_json::to_string(&r.check)?,
                upload: id.0,
                line: i64::from(r.line),
            });
        }
    }
    Ok(out)
}

fn csv_field(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' {
            out.push('"');
        }
        out.push(c);
    }
    out.push('"');
}

async fn peer_insert(raw: &Raw, rows: &[PlainRow]) -> anyhow::Result<Duration> {
    match raw {
        Raw::Sqlite(pool) => {
            sqlx::query(sqlx::AssertSqlSafe(
                PLAIN_TABLE.replace("TIMESTAMP", "TEXT") + " WITHOUT ROWID",
            ))
            .execute(pool)
            .await?;
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            for r in rows {
                sqlx::query(
                    "INSERT INTO plain_readings (device_id, kind, local_time, record_no, utc_offset, \
                     quantities, status, event_code, checked, upload_id, line) \
                     VALUES (?, 'interval', ?, ?, NULL, ?, ?, ?, ?, ?, ?)",
                )
                .bind(r.device)
                .bind(&r.local)
                .bind(r.record_no)
                .bind(&r.quantities)
                .bind(&r.status)
                .bind(r.event_code)
                .bind(&r.checked)
                .bind(r.upload)
                .bind(r.line)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(started.elapsed())
        }
        Raw::Pg(pool) => {
            sqlx::query(PLAIN_TABLE).execute(pool).await?;
            let mut csv = String::new();
            for r in rows {
                let _ = write!(csv, "{},interval,{},{},,", r.device, r.local, r.record_no);
                csv_field(&mut csv, &r.quantities);
                csv.push(',');
                csv_field(&mut csv, &r.status);
                csv.push(',');
                if let Some(e) = r.event_code {
                    let _ = write!(csv, "{e}");
                }
                csv.push(',');
                csv_field(&mut csv, &r.checked);
                let _ = writeln!(csv, ",{},{}", r.upload, r.line);
            }
            let started = Instant::now();
            let mut tx = pool.begin().await?;
            let mut copy = tx
                .copy_in_raw("COPY plain_readings FROM STDIN (FORMAT csv)")
                .await?;
            copy.send(csv.as_bytes()).await?;
            let n = copy.finish().await?;
            tx.commit().await?;
            let secs = started.elapsed();
            if n != rows.len() as u64 {
                bail!("COPY stored {n} rows of {}", rows.len());
            }
            Ok(secs)
        }
    }
}

/// Claim and store every waiting upload, as the ingest worker does.
async fn store_all(
    db: &dyn Database,
    waiting: &[(UploadId, DeviceId, ParsedFile)],
) -> anyhow::Result<(Duration, u64)> {
    let started = Instant::now();
    let mut rows = 0;
    for (id, dev, parsed) in waiting {
        if db
            .begin_ingest_attempt(*id, Duration::from_secs(120))
            .await?
            .is_none()
        {
            bail!("upload #{} was not claimable", id.0);
        }
        rows += db.store_parsed(*id, *dev, parsed).await?.records.new;
    }
    Ok((started.elapsed(), rows))
}

/// Every column of every row, read (the peers' floor of decoding).
fn read_sqlite_rows(rows: &[sqlx::sqlite::SqliteRow]) -> anyhow::Result<usize> {
    let mut bytes = 0;
    for r in rows {
        for i in 0..r.len() {
            match r.try_get::<Option<i64>, _>(i) {
                Ok(v) => bytes += usize::from(v.is_some()),
                Err(_) => bytes += r.try_get::<Option<&str>, _>(i)?.map_or(0, str::len),
            }
        }
    }
    Ok(bytes)
}

fn read_pg_rows(rows: &[sqlx::postgres::PgRow]) -> anyhow::Result<usize> {
    use sqlx::ValueRef as _;
    let mut bytes = 0;
    for r in rows {
        for i in 0..r.len() {
            let v = r.try_get_raw(i)?;
            if !v.is_null() {
                bytes += v.as_bytes().map_err(anyhow::Error::msg)?.len();
            }
        }
    }
    Ok(bytes)
}

/// The device-year: the peer's rows.
async fn peer_year(raw: &Raw, device: DeviceId, to: DateTime) -> anyhow::Result<usize> {
    let (from, to) = (
        year_start().strftime("%Y-%m-%dT%H:%M:%S").to_string(),
        to.strftime("%Y-%m-%dT%H:%M:%S").to_string(),
    );
    Ok(match raw {
        Raw::Sqlite(pool) => {
            let rows = sqlx::query(
                "SELECT kind, local_time, record_no, utc_offset, quantities, status, event_code, checked, line \
                 FROM readings WHERE device_id = ? AND kind = 'interval' AND local_time BETWEEN ? AND ? \
                 ORDER BY local_time, record_no",
            )
            .bind(device.0)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            read_sqlite_rows(&rows)?;
            rows.len()
        }
        Raw::Pg(pool) => {
            let rows = sqlx::query(
                "SELECT kind, local_time, record_no, utc_offset, quantities, status, event_code, checked, line \
                 FROM readings WHERE device_id = $1 AND kind = 'interval' \
                 AND local_time BETWEEN $2::text::timestamp AND $3::text::timestamp \
                 ORDER BY local_time, record_no",
            )
            .bind(device.0)
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?;
            read_pg_rows(&rows)?;
            rows.len()
        }
    })
}

/// The newest interval reading of every unit: the peer's rows.
async fn peer_latest(raw: &Raw) -> anyhow::Result<usize> {
    Ok(match raw {
        Raw::Sqlite(pool) => {
            // SQLite's bare columns with MAX: the row holding the maximum.
            let rows = sqlx::query(
                "SELECT device_id, MAX(local_time), status FROM readings \
                 WHERE kind = 'interval' GROUP BY device_id",
            )
            .fetch_all(pool)
            .await?;
            read_sqlite_rows(&rows)?;
            rows.len()
        }
        Raw::Pg(pool) => {
            let rows = sqlx::query(
                "SELECT DISTINCT ON (device_id) device_id, local_time, status FROM readings \
                 WHERE kind = 'interval' ORDER BY device_id, local_time DESC",
            )
            .fetch_all(pool)
            .await?;
            read_pg_rows(&rows)?;
            rows.len()
        }
    })
}

/// Time `ours` and `theirs` alternately, after one untimed call of each.
async fn alternate<A, B, FA, FB>(
    repeat: usize,
    mut ours: A,
    mut theirs: B,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>, usize, usize)>
where
    A: FnMut() -> FA,
    B: FnMut() -> FB,
    FA: Future<Output = anyhow::Result<usize>>,
    FB: Future<Output = anyhow::Result<usize>>,
{
    let rows = ours().await?;
    let peer_rows = theirs().await?;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        ours().await?;
        a.push(t.elapsed());
        let t = Instant::now();
        theirs().await?;
        b.push(t.elapsed());
    }
    Ok((a, b, rows, peer_rows))
}

async fn measure(
    backend: Backend,
    o: &Options,
    db: Arc<dyn Database>,
    raw: Raw,
    loaded: Loaded,
    setup: Duration,
) -> anyhow::Result<BackendReport> {
    println!(
        "{}: set-up done in {:.1} s; storing {} files",
        backend.name(),
        setup.as_secs_f64(),
        loaded.waiting.len()
    );
    let plain = plain_rows(&loaded.waiting)?;
    let peer = peer_insert(&raw, &plain).await?;
    let (ours, rows) = store_all(&*db, &loaded.waiting).await?;
    if rows != plain.len() as u64 {
        bail!("stored {rows} new rows, expected {}", plain.len());
    }
    let throughput = Throughput {
        rows,
        files: loaded.waiting.len() as u64,
        ours,
        peer,
    };
    println!(
        "{}: stored {rows} rows in {:.2} s (peer {:.2} s); timing the queries",
        backend.name(),
        ours.as_secs_f64(),
        peer.as_secs_f64()
    );

    let year_end = year_start() + SignedDuration::from_hours(i64::from(o.year_hours.max(1)) - 1);
    let filter = ReadingFilter {
        device_id: loaded.year_device,
        kind: Some(ArchiveKind::Interval),
        from: Some(year_start()),
        to: Some(year_end),
    };
    let (a, b, n, pn) = alternate(
        o.repeat,
        || {
            let (db, filter) = (db.clone(), filter.clone());
            async move { Ok(db.readings(&filter).await?.len()) }
        },
        || peer_year(&raw, loaded.year_device, year_end),
    )
    .await?;
    let expected = usize::try_from(o.year_hours).unwrap_or(usize::MAX);
    if n != expected || pn != expected {
        bail!("device-year: read {n} rows, peer {pn}, expected {expected}");
    }
    let year = Query {
        name: "a device-year (`readings`)",
        peer: "SELECT of the range",
        rows: n,
        peer_rows: pn,
        ours: a,
        theirs: b,
    };

    let (a, b, n, pn) = alternate(
        o.repeat,
        || {
            let db = db.clone();
            async move {
                let all = db.device_activity(None).await?;
                if all.iter().any(|a| a.newest_reading.is_none()) {
                    bail!("a unit without its newest reading");
                }
                Ok(all.len())
            }
        },
        || peer_latest(&raw),
    )
    .await?;
    if n != loaded.devices || pn != loaded.devices {
        bail!(
            "latest state: {n} units, peer {pn}, expected {}",
            loaded.devices
        );
    }
    let latest = Query {
        name: "latest state of every unit (`device_activity`)",
        peer: match backend {
            Backend::Sqlite => "newest reading per unit (GROUP BY, MAX)",
            Backend::Postgres => "newest reading per unit (DISTINCT ON)",
        },
        rows: n,
        peer_rows: pn,
        ours: a,
        theirs: b,
    };
    Ok(BackendReport {
        backend,
        setup,
        throughput,
        queries: vec![year, latest],
    })
}

/// Run the benchmark on SQLite and, when a server is named, on PostgreSQL.
pub async fn run(opts: &Options) -> anyhow::Result<Report> {
    let o = opts.effective();
    let mut backends = Vec::new();
    let dir = match &o.dir {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let (db, raw, loaded, setup) = sqlite_db(&o, dir.path()).await?;
    backends.push(measure(Backend::Sqlite, &o, db, raw, loaded, setup).await?);

    let skipped = match (&o.postgres, o.no_postgres) {
        (_, true) => Some("--no-postgres".to_owned()),
        (None, false) => Some("no server: set TELEGAZ_TEST_POSTGRES_URL or --postgres".to_owned()),
        (Some(url), false) => {
            let scratch = Scratch::create(url).await?;
            let result = async {
                let (db, raw, loaded, setup) = postgres_db(&o, &scratch).await?;
                let report = measure(Backend::Postgres, &o, db.clone(), raw, loaded, setup).await;
                drop(db);
                report
            }
            .await;
            scratch.drop_now().await;
            backends.push(result?);
            None
        }
    };
    Ok(Report {
        options: o,
        backends,
        skipped,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code
mod tests {
    use super::*;
    use clap::Parser as _;

    /// The benchmark at `--quick` sizes completes on SQLite (and on
    /// PostgreSQL when `TELEGAZ_TEST_POSTGRES_URL` names a server) and
    /// prints its tables; no timing is asserted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quick_run_completes_and_prints_the_tables() {
        let opts = Options::parse_from(["store-bench", "--quick"]);
        let report = run(&opts).await.unwrap();
        let expected = if opts.postgres.is_some() { 2 } else { 1 };
        assert_eq!(report.backends.len(), expected, "{:?}", report.skipped);
        for b in &report.backends {
            assert_eq!(b.throughput.rows, 3 * 2 * 24);
            assert_eq!(b.throughput.files, 3 * 2);
            for q in &b.queries {
                assert_eq!(q.ours.len(), 2);
                assert_eq!(q.theirs.len(), 2);
                assert_eq!(q.rows, q.peer_rows);
            }
            assert_eq!(b.queries[0].rows, 48);
            assert_eq!(b.queries[1].rows, 30);
        }
        let md = report.markdown();
        println!("{md}");
        assert!(md.contains("| SQLite |"), "{md}");
        assert!(md.contains("ratio (rows/s)"), "{md}");
        assert!(md.contains("`device_activity`"), "{md}");
    }

    #[test]
    fn urls_name_the_scratch_database() {
        assert_eq!(
            with_database("postgres://root@127.0.0.1:5432/test?sslmode=disable", "x").unwrap(),
            "postgres://root@127.0.0.1:5432/x?sslmode=disable"
        );
    }
}
