//! `import`, `reparse`, `readings`, `daily`: the ingest pipeline from the command line.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use jiff::civil::{Date, DateTime};
use serde_json::value::RawValue;
use telegaz_config::Config;
use telegaz_domain::gasday::{self, Flag};
use telegaz_domain::{
    AuditKind, Decimal, Device, FileName, IngestState, NewAuditEvent, NewUpload, Timestamp,
    UploadFinish, UploadId, UploadMode, UploadStatus,
};
use telegaz_ingest::{Ingestor, Outcome};
use telegaz_spool::Spool;
use telegaz_store::{Database, ReadingFilter, RequeueFilter};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The device the files come from.
    #[arg(long, value_name = "NAME")]
    pub device: String,
    /// Files to import, as if the device had uploaded them.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReparseArgs {
    /// Only this device's uploads.
    #[arg(long, value_name = "NAME")]
    pub device: Option<String>,
    /// Only uploads whose ingest ended so: pending, parsed, quarantined, failed.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<IngestState>,
    /// Only uploads received since (2h, 7d, 2026-11-25, 2026-11-25T10:00:00Z).
    #[arg(long, value_name = "TIME", value_parser = crate::timearg::parse)]
    pub since: Option<Timestamp>,
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    #[arg(long, value_name = "NAME")]
    pub device: String,
    /// First day (local date of the device), e.g. 2026-01-14.
    #[arg(long, value_name = "DATE")]
    pub from: Date,
    /// Last day, inclusive.
    #[arg(long, value_name = "DATE")]
    pub to: Date,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

async fn device(db: &dyn Database, name: &str) -> anyhow::Result<Device> {
    db.device_by_name(name)
        .await?
        .with_context(|| format!("no device named {name:?}; see `telegaz device list`"))
}

fn ingestor(config: &Config, db: Arc<dyn Database>) -> anyhow::Result<Ingestor> {
    let spool = crate::raw_store::open_spool(config)?;
    Ok(Ingestor::new(db, spool, crate::profiles::load(config))
        .with_claim_lease(config.ingest.claim_lease))
}

fn bar(len: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}") {
        bar.set_style(style);
    }
    bar
}

fn describe(id: UploadId, name: &str, outcome: &Outcome) -> String {
    match outcome {
        Outcome::Parsed(info) => format!(
            "#{} {name}: parsed as {}, {} records ({} new, {} duplicate, {} conflicting), {} events{}",
            id.0,
            info.format.as_deref().unwrap_or("?"),
            info.records.total,
            info.records.new,
            info.records.duplicate,
            info.records.conflicting,
            info.events,
            if info.truncated {
                "; the file is cut short"
            } else {
                ""
            }
        ),
        Outcome::Quarantined(reason) => format!("#{} {name}: quarantined: {reason}", id.0),
        Outcome::Failed(reason) => format!("#{} {name}: failed: {reason}", id.0),
    }
}

/// Store a file as an upload of `device` (durably, like an FTP upload).
async fn store_file(
    db: &dyn Database,
    spool: &Spool,
    device: &Device,
    path: &std::path::Path,
) -> anyhow::Result<UploadId> {
    let bytes = tokio::fs::read(path)
        .await
        .with_context(|| format!("cannot read {}", path.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".into());
    store_bytes(
        db,
        spool,
        device,
        &name,
        &bytes,
        &path.display().to_string(),
        Timestamp::now(),
    )
    .await
}

/// Store `bytes` as an upload of `device` named `name`, received at `at`
/// (durably, like an FTP upload); `source` says where they came from.
pub(crate) async fn store_bytes(
    db: &dyn Database,
    spool: &Spool,
    device: &Device,
    name: &str,
    bytes: &[u8],
    source: &str,
    at: Timestamp,
) -> anyhow::Result<UploadId> {
    let id = db
        .begin_upload(&NewUpload {
            device_id: device.id,
            original_name: FileName::utf8(name),
            path: format!("/import/{name}"),
            mode: UploadMode::Store,
            resumed_from: None,
            offset: 0,
            peer: Some("import".into()),
            session: None,
            started_at: at,
        })
        .await?;
    let mut temp = spool.create_temp(id.0).await?;
    temp.write(bytes).await?;
    let committed = spool.commit(temp).await?;
    db.finish_upload(
        id,
        &UploadFinish {
            status: UploadStatus::Complete,
            size: committed.size,
            sha256: committed.sha256,
            reason: None,
            finished_at: at,
        },
    )
    .await?;
    spool.remove_temp(id.0).await?;
    let mut e = NewAuditEvent::new(AuditKind::UploadFinished, "complete");
    e.device_id = Some(device.id);
    e.upload_id = Some(id);
    e.detail = format!(
        "imported {source} ({} bytes, sha256 {})",
        committed.size, committed.sha256
    );
    db.insert_audit(&[e]).await?;
    Ok(id)
}

/// How long past the claim lease to wait for an upload another worker took.
const TAKEN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The outcome another worker recorded.
fn outcome_of(info: telegaz_domain::IngestInfo) -> Outcome {
    let reason = || info.reason.clone().unwrap_or_default();
    match info.status {
        IngestState::Quarantined => Outcome::Quarantined(reason()),
        IngestState::Failed => Outcome::Failed(reason()),
        _ => Outcome::Parsed(info),
    }
}

/// Run the pipeline over `ids`, with a progress bar; returns how many were not parsed.
async fn process_all(
    ingestor: &Ingestor,
    db: &dyn Database,
    ids: &[UploadId],
) -> anyhow::Result<usize> {
    let mut names = std::collections::HashMap::new();
    for id in ids {
        if let Some(u) = db.upload(*id).await? {
            names.insert(*id, u.final_path);
        }
    }
    let bar = bar(ids.len());
    let mut not_parsed = 0;
    let mut first_error = None;
    let mut taken = Vec::new();
    ingestor
        .process_many(ids, |id, result| {
            if let Err(e) = &result
                && e.is_taken()
            {
                // A running server's worker has it: its outcome comes below.
                taken.push(id);
                return;
            }
            let name = names.get(&id).map(String::as_str).unwrap_or("");
            let line = match &result {
                Ok(outcome) => describe(id, name, outcome),
                Err(e) => format!("#{} {name}: error: {e}; it stays queued", id.0),
            };
            if !matches!(result, Ok(Outcome::Parsed(_))) {
                not_parsed += 1;
            }
            if let Err(e) = result
                && !e.is_taken()
            {
                first_error.get_or_insert(e);
            }
            bar.suspend(|| println!("{line}"));
            bar.inc(1);
        })
        .await;
    // Wait for what another worker took (it may have died: then its claim
    // runs out and ours is not renewed here; the upload stays queued).
    let deadline = tokio::time::Instant::now() + ingestor.claim_lease() + TAKEN_GRACE;
    for id in taken {
        let name = names.get(&id).map(String::as_str).unwrap_or("");
        let outcome = loop {
            let info = db.upload(id).await?.and_then(|u| u.ingest);
            match info {
                Some(i) if i.status != IngestState::Pending => break Some(outcome_of(i)),
                _ if tokio::time::Instant::now() >= deadline => break None,
                _ => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        };
        let line = match &outcome {
            Some(o) => describe(id, name, o),
            None => format!(
                "#{} {name}: another worker (a running server?) took it and has not finished; it stays queued",
                id.0
            ),
        };
        if !matches!(outcome, Some(Outcome::Parsed(_))) {
            not_parsed += 1;
        }
        bar.suspend(|| println!("{line}"));
        bar.inc(1);
    }
    bar.finish_and_clear();
    if let Some(e) = first_error {
        return Err(anyhow::Error::new(e).context("ingest could not finish"));
    }
    Ok(not_parsed)
}

pub async fn import(config: &Config, args: ImportArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let device = device(&*db, &args.device).await?;
    let spool = crate::raw_store::open_spool(config)?;
    let mut ids = Vec::new();
    for f in &args.files {
        ids.push(store_file(&*db, &spool, &device, f).await?);
    }
    let ingestor = ingestor(config, db.clone())?;
    let failed = process_all(&ingestor, &*db, &ids).await?;
    if failed > 0 {
        bail!(
            "{failed} of {} files were not parsed; they are kept (see above) and can be re-parsed with `telegaz reparse`",
            ids.len()
        );
    }
    Ok(())
}

pub async fn reparse(config: &Config, args: ReparseArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let device_id = match &args.device {
        Some(name) => Some(device(&*db, name).await?.id),
        None => None,
    };
    let ids = db
        .requeue_ingest(&RequeueFilter {
            device_id,
            state: args.status,
            since: args.since,
        })
        .await?;
    if ids.is_empty() {
        println!("No uploads match.");
        return Ok(());
    }
    let ingestor = ingestor(config, db.clone())?;
    let failed = process_all(&ingestor, &*db, &ids).await?;
    println!("{} uploads re-parsed, {failed} not parsed.", ids.len());
    Ok(())
}

/// A decimal as a JSON number with exactly its digits.
fn num(d: Option<Decimal>) -> anyhow::Result<Box<RawValue>> {
    let text = d.map_or_else(|| "null".to_owned(), |d| d.normalize().to_string());
    Ok(RawValue::from_string(text)?)
}

fn flags(f: &[Flag]) -> Vec<&'static str> {
    f.iter()
        .map(|f| match f {
            Flag::CounterDecreased => "counter_decreased",
            Flag::DailyMismatch => "daily_mismatch",
            Flag::MissingHours => "missing_hours",
            Flag::ConflictingReadings => "conflicting_readings",
            Flag::ImplausibleValue => "implausible_value",
        })
        .collect()
}

fn local(dt: DateTime) -> String {
    dt.strftime("%Y-%m-%dT%H:%M:%S").to_string()
}

async fn readings_around(
    db: &dyn Database,
    device: &Device,
    from: DateTime,
    to: DateTime,
) -> anyhow::Result<Vec<telegaz_domain::ArchiveRecord>> {
    // One hour before the window: the first hour needs its predecessor.
    Ok(db
        .readings(&ReadingFilter {
            device_id: device.id,
            kind: None,
            from: Some(from - jiff::SignedDuration::from_hours(2)),
            to: Some(to),
        })
        .await?)
}

fn zone(device: &Device) -> anyhow::Result<jiff::tz::TimeZone> {
    jiff::tz::TimeZone::get(&device.time_zone).with_context(|| {
        format!(
            "device {} has time zone {:?}, which this system does not know; fix it with `telegaz device set {} --tz ZONE`",
            device.name, device.time_zone, device.name
        )
    })
}

pub async fn readings(config: &Config, args: RangeArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let device = device(&*db, &args.device).await?;
    let tz = zone(&device)?;
    let start = args.from.at(0, 0, 0, 0);
    let end = args.to.tomorrow()?.at(0, 0, 0, 0);
    let records = readings_around(&*db, &device, start, end).await?;
    let hours = gasday::hourly(&records, &tz);
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:<20} {:>12} {:>12} {:>10} {:>8}  FLAGS",
            "HOUR END (LOCAL)", "VB, m3", "VM, m3", "P, kPa", "T, °C"
        )?;
    }
    for h in hours
        .iter()
        .filter(|h| h.hour_end_local > start && h.hour_end_local <= end)
    {
        if args.json {
            #[derive(serde::Serialize)]
            struct Row {
                hour_end_local: String,
                vb_m3: Box<RawValue>,
                vm_m3: Box<RawValue>,
                p_kpa: Box<RawValue>,
                t_c: Box<RawValue>,
                flags: Vec<&'static str>,
            }
            let row = Row {
                hour_end_local: local(h.hour_end_local),
                vb_m3: num(h.vb_m3)?,
                vm_m3: num(h.vm_m3)?,
                p_kpa: num(h.p_kpa)?,
                t_c: num(h.t_c)?,
                flags: flags(&h.flags),
            };
            serde_json::to_writer(&mut out, &row)?;
            writeln!(out)?;
        } else {
            let s = |d: Option<Decimal>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
            writeln!(
                out,
                "{:<20} {:>12} {:>12} {:>10} {:>8}  {}",
                local(h.hour_end_local),
                s(h.vb_m3),
                s(h.vm_m3),
                s(h.p_kpa),
                s(h.t_c),
                flags(&h.flags).join(",")
            )?;
        }
    }
    Ok(())
}

pub async fn daily(config: &Config, args: RangeArgs) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let device = device(&*db, &args.device).await?;
    let tz = zone(&device)?;
    let h = device.contract_hour;
    let start = args.from.at(h, 0, 0, 0);
    let end = args.to.tomorrow()?.at(h, 0, 0, 0);
    let records = readings_around(&*db, &device, start, end).await?;
    let now_local = Timestamp::now().to_zoned_datetime(tz.clone()).datetime();
    let days = gasday::daily(&records, &tz, h, now_local);
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(
            out,
            "{:<10} {:>14} {:>14} {:>5} {:>8} {:>5}  FLAGS",
            "GAS DAY", "VB, m3", "VM, m3", "HOURS", "COMPLETE", "FINAL"
        )?;
    }
    for d in days
        .iter()
        .filter(|d| d.gas_day >= args.from && d.gas_day <= args.to)
    {
        if args.json {
            #[derive(serde::Serialize)]
            struct Row {
                gas_day: String,
                vb_m3: Box<RawValue>,
                vm_m3: Box<RawValue>,
                hours: u32,
                complete: bool,
                #[serde(rename = "final")]
                is_final: bool,
                device_vb_m3: Box<RawValue>,
                flags: Vec<&'static str>,
            }
            let row = Row {
                gas_day: d.gas_day.to_string(),
                vb_m3: num(Some(d.vb_m3))?,
                vm_m3: num(Some(d.vm_m3))?,
                hours: d.hours,
                complete: d.complete,
                is_final: d.is_final,
                device_vb_m3: num(d.device_vb_m3)?,
                flags: flags(&d.flags),
            };
            serde_json::to_writer(&mut out, &row)?;
            writeln!(out)?;
        } else {
            writeln!(
                out,
                "{:<10} {:>14} {:>14} {:>5} {:>8} {:>5}  {}",
                d.gas_day.to_string(),
                d.vb_m3.to_string(),
                d.vm_m3.to_string(),
                d.hours,
                if d.complete { "yes" } else { "no" },
                if d.is_final { "yes" } else { "no" },
                flags(&d.flags).join(",")
            )?;
        }
    }
    Ok(())
}
