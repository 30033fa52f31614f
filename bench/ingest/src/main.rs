//! Parse + store throughput of LIS-200 interval archives, measured side by side
//! with `sqlite3 .import` of the same rows as CSV into an empty table.
//!
//! Both sides start from files on disk and end with the rows committed in a
//! SQLite database on the same disk (WAL, synchronous=FULL). Ours is the real
//! ingest pipeline over uploads waiting in the spool: read, detect, parse the
//! LIS-200 text (exact decimals), and store every row idempotently on its
//! natural key (device, archive, time, record number) with duplicate and
//! conflict detection; the peer only splits CSV and appends to a table
//! without a key. The ratio (ours / peer) is what to compare
//! across machines.
//!
//! `cargo run --release -p telegaz-bench-ingest -- --devices 1000 --days 365`

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Parser;
use telegaz_domain::{DeviceName, FileName, NewUpload, Timestamp, UploadFinish};
use telegaz_domain::{UploadMode, UploadStatus};
use telegaz_ingest::{Ingestor, Outcome, Profiles};
use telegaz_spool::Spool;
use telegaz_store::NewDevice;

#[derive(Parser)]
struct Args {
    /// Devices, one archive file each.
    #[arg(long, default_value_t = 1000)]
    devices: u32,
    /// Days of hourly rows per device.
    #[arg(long, default_value_t = 365)]
    days: u32,
    /// Bytes of uploads stored in one transaction at most, in KiB (default:
    /// the server's, `telegaz_ingest::GROUP_BYTES`); for A/B runs.
    #[arg(long)]
    group_kib: Option<u64>,
}

/// One device's year as a ТС220 interval readout, and the same rows as CSV.
fn generate(device: u32, days: u32, text: &mut String, csv: &mut String) {
    let start = jiff::civil::date(2025, 1, 1).at(1, 0, 0, 0);
    let mut vb: u64 = 1_000_000 + u64::from(device) * 7919; // in 1e-4 m³
    let mut vm: u64 = vb + 12_345;
    for i in 0..u64::from(days) * 24 {
        let t = start + jiff::SignedDuration::from_hours(i64::try_from(i).unwrap_or(0));
        let step = 300_000 + (i * 7_919 + u64::from(device) * 104_729) % 200_000;
        vb += step;
        vm += step - step / 20;
        let ts = t.strftime("%Y-%m-%d,%H:%M:%S");
        let (vbs, vms) = (
            format!("{}.{:04}", vb / 10_000, vb % 10_000),
            format!("{}.{:04}", vm / 10_000, vm % 10_000),
        );
        let temp = format!("{}.{:02}", 5 + i % 10, i % 100);
        let _ = write!(
            text,
            "({})({ts})({vbs})({vbs})({vms})({vms})({temp})(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)\r\n",
            i + 1
        );
        let _ = writeln!(
            csv,
            "{device},{},{},{vbs},{vbs},{vms},{vms},{temp},104.5110,1.0017,0,0,0,33028,CRC Ok",
            i + 1,
            t.strftime("%Y-%m-%dT%H:%M:%S")
        );
    }
}

/// `sqlite3 .import` into a table without a key (`keyed: false`, the peer
/// the target is measured against) or with the same natural key as ours.
fn peer(dir: &Path, csv: &Path, keyed: bool) -> anyhow::Result<f64> {
    let db = dir.join(if keyed { "peer-keyed.db" } else { "peer.db" });
    let key = if keyed {
        ", PRIMARY KEY (device, local_time, record_no)) WITHOUT ROWID"
    } else {
        ")"
    };
    let script = format!(
        "PRAGMA journal_mode=WAL;\nPRAGMA synchronous=FULL;\n\
         CREATE TABLE readings (device INTEGER, record_no INTEGER, local_time TEXT, vb TEXT, vbt TEXT, vm TEXT, vo TEXT, \
         t TEXT, p TEXT, k TEXT, s1 TEXT, s2 TEXT, s3 TEXT, event INTEGER, checked TEXT{key};\n\
         .mode csv\n.import {} readings\n",
        csv.display()
    );
    let started = Instant::now();
    let mut child = Command::new("sqlite3")
        .arg(&db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("running sqlite3 (install the sqlite3 package)")?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let secs = started.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("sqlite3 failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let check = Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT count(*) FROM readings;")
        .output()?;
    println!(
        "peer rows stored: {}",
        String::from_utf8_lossy(&check.stdout).trim()
    );
    Ok(secs)
}

async fn ours(
    dir: &Path,
    files: &[std::path::PathBuf],
    group_kib: Option<u64>,
) -> anyhow::Result<(f64, u64)> {
    let db =
        telegaz_store::connect(&format!("sqlite://{}", dir.join("telegaz.db").display())).await?;
    let spool = Spool::open(dir.join("spool"))?;
    // Untimed set-up: a device per file, and the file stored as its upload,
    // exactly as the receiver leaves it for the ingest worker.
    let mut ids = Vec::new();
    for (i, f) in files.iter().enumerate() {
        let name = DeviceName::parse(&format!("d{i}")).map_err(anyhow::Error::msg)?;
        let dev = db
            .create_device(NewDevice {
                name: name.clone(),
                login: name,
                password_hash: "x".into(),
                allowed_networks: vec![],
            })
            .await?;
        let id = db
            .begin_upload(&NewUpload {
                device_id: dev.id,
                original_name: FileName::utf8("year.txt"),
                path: "/year.txt".into(),
                mode: UploadMode::Store,
                resumed_from: None,
                offset: 0,
                peer: None,
                session: None,
                started_at: Timestamp::now(),
            })
            .await?;
        let mut temp = spool.create_temp(id.0).await?;
        temp.write(&tokio::fs::read(f).await?).await?;
        let c = spool.commit(temp).await?;
        spool.remove_temp(id.0).await?;
        db.finish_upload(
            id,
            &UploadFinish {
                status: UploadStatus::Complete,
                size: c.size,
                sha256: c.sha256,
                reason: None,
                finished_at: Timestamp::now(),
            },
        )
        .await?;
        ids.push(id);
    }
    // Timed: the ingest pipeline over the queue (read, detect, parse, store).
    let mut ingestor = Ingestor::new(db.clone(), spool, Profiles::new(telegaz_profile::builtin()));
    if let Some(kib) = group_kib {
        ingestor = ingestor.with_group_bytes(kib.saturating_mul(1024));
    }
    let started = Instant::now();
    let mut rows = 0;
    let mut problems = Vec::new();
    ingestor
        .process_many(&ids, |id, result| match result {
            Ok(Outcome::Parsed(info)) => rows += info.records.new,
            other => problems.push(format!("#{}: {other:?}", id.0)),
        })
        .await;
    let secs = started.elapsed().as_secs_f64();
    if !problems.is_empty() {
        bail!("not parsed: {}", problems.join("; "));
    }
    Ok((secs, rows))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // `RUST_LOG=telegaz_ingest=debug` shows each ingest group's parse wait
    // and store time (on stderr); nothing is logged unless asked.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let dir = tempfile::tempdir_in(".")?;
    println!(
        "generating {} devices x {} days of hourly rows in {}",
        args.devices,
        args.days,
        dir.path().display()
    );
    let csv_path = dir.path().join("rows.csv");
    let mut all_csv = String::new();
    let mut files = Vec::new();
    for d in 0..args.devices {
        let (mut text, mut csv) = (String::new(), String::new());
        generate(d, args.days, &mut text, &mut csv);
        let p = dir.path().join(format!("d{d}.txt"));
        std::fs::write(&p, text)?;
        files.push(p);
        all_csv.push_str(&csv);
    }
    std::fs::write(&csv_path, all_csv)?;
    let total = u64::from(args.devices) * u64::from(args.days) * 24;

    let peer_secs = peer(dir.path(), &csv_path, false)?;
    let keyed_secs = peer(dir.path(), &csv_path, true)?;
    let (our_secs, stored) = ours(dir.path(), &files, args.group_kib).await?;
    if stored != total {
        bail!("stored {stored} rows, expected {total}");
    }
    let peer_rate = total as f64 / peer_secs;
    let our_rate = total as f64 / our_secs;
    println!("rows: {total}");
    println!("sqlite3 .import (CSV):        {peer_secs:8.2} s  {peer_rate:10.0} rows/s");
    let keyed_rate = total as f64 / keyed_secs;
    println!("sqlite3 .import, keyed table: {keyed_secs:8.2} s  {keyed_rate:10.0} rows/s");
    println!("telegaz parse + store:        {our_secs:8.2} s  {our_rate:10.0} rows/s");
    println!("ratio telegaz / sqlite3:      {:8.3}", our_rate / peer_rate);
    println!(
        "ratio telegaz / keyed:        {:8.3}",
        our_rate / keyed_rate
    );
    Ok(())
}
