//! `telegaz demo`: the server on the embedded defaults in a demo data
//! directory, ~20 simulated units with a month of history, a web user, and
//! live uploads through real FTP until Ctrl-C.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use telegaz_config::Config;
use telegaz_domain::{Role, UserName};
use telegaz_ingest::Ingestor;
use telegaz_sim::{Account, Clock, FleetConfig, Schedule, SimUnit, Unit, UnitParams, lis200};
use telegaz_store::{Database, DeviceUpdate, NewUser, UserUpdate};

use crate::cli::ServeArgs;

/// The data directory of the demo unless --data-dir says otherwise.
pub const DEFAULT_DIR: &str = "./telegaz-demo";
/// The FTP address of the demo unless --ftp-listen says otherwise.
pub const DEFAULT_FTP: &str = "127.0.0.1:2121";

/// The sites of the demo fleet: device name and title.
const SITES: [(&str, &str); 20] = [
    ("kotelnaya-3", "Котельная №3, ул. Ленина 12"),
    ("kotelnaya-5", "Котельная №5, ул. Гагарина 7"),
    ("shrp-7", "ШРП-7, ул. Ленина 5"),
    ("grp-12", "ГРП-12, промзона «Северная»"),
    ("shkola-14", "Школа №14, ул. Мира 21"),
    ("bolnica-2", "Городская больница №2, котельная"),
    ("hlebozavod", "Хлебозавод, ул. Заводская 3"),
    ("tep-1", "ТЭЦ-1, узел учёта №1"),
    ("dk-neftyanik", "ДК «Нефтяник», пр. Победы 40"),
    ("detsad-8", "Детский сад №8, ул. Садовая 2"),
    ("kotelnaya-9", "Котельная №9, мкр. Южный"),
    ("teplica-agro", "Тепличный комбинат «Агро»"),
    ("shrp-21", "ШРП-21, пос. Заречный"),
    ("banya-1", "Баня №1, ул. Пушкина 10"),
    ("avtobaza", "Автобаза, ул. Транспортная 8"),
    (
        "mkd-lesnaya-4",
        "Жилой дом, ул. Лесная 4 (крышная котельная)",
    ),
    ("sportkompleks", "Спорткомплекс «Олимп», бассейн"),
    ("molzavod", "Молочный завод, ул. Полевая 15"),
    ("kotelnaya-11", "Котельная №11, ул. Советская 30"),
    ("grp-3", "ГРП-3, ул. Кирова 1"),
];
/// Silent: its last upload was four days ago.
const SILENT: usize = 4;
/// In alarm: a non-zero status word in its newest rows.
const ALARM: usize = 2;
/// Has a quarantined junk file.
const JUNK: usize = 6;

#[derive(Debug, Args)]
pub struct DemoArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Password of the web user `demo` (default: generated and printed).
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// Time between two live uploads of each unit.
    #[arg(long, default_value = "3m", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Seed of the simulated data.
    #[arg(long, default_value_t = 2026)]
    pub seed: u64,
}

async fn hash(pw: &str) -> anyhow::Result<String> {
    crate::cmd_device::hash(&SecretString::from(pw.to_owned())).await
}

/// The demo user `demo` (admin) with this password.
async fn demo_user(db: &dyn Database, password: &str) -> anyhow::Result<()> {
    let password_hash = hash(password).await?;
    match db.user_by_name("demo").await? {
        Some(u) => {
            db.update_user(
                u.id,
                UserUpdate {
                    password_hash: Some(password_hash),
                    role: Some(Role::Admin),
                    enabled: Some(true),
                },
            )
            .await?;
        }
        None => {
            db.create_user(NewUser {
                name: UserName::parse("demo").map_err(anyhow::Error::msg)?,
                password_hash,
                role: Role::Admin,
            })
            .await?;
        }
    }
    Ok(())
}

pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<()> {
    crate::logging::init_server(&config.log);
    let db = crate::cli::open_db(&config).await?;
    let spool = crate::raw_store::open_spool(&config)?;

    // The units: accounts with passwords from the seed, one corrector each.
    let passwords = telegaz_sim::accounts::generate(SITES.len() as u32, "demo-", args.seed);
    let accounts: Vec<Account> = SITES
        .iter()
        .zip(passwords)
        .map(|((name, _), a)| Account {
            name: (*name).to_owned(),
            login: (*name).to_owned(),
            password: a.password,
        })
        .collect();
    let mut new = Vec::new();
    for a in &accounts {
        new.push(db.device_by_name(&a.name).await?.is_none());
    }
    telegaz_sim::accounts::register(&*db, &accounts).await?;

    let tz = TimeZone::get("Europe/Moscow").context("the time zone Europe/Moscow")?;
    let now = Timestamp::now();
    let local_now = tz.to_datetime(now);
    // A fixed epoch: every run generates the same values for the same hours,
    // so a second start of the demo adds duplicates, never conflicts.
    let epoch = jiff::civil::date(2025, 1, 1).at(1, 0, 0, 0);
    let month_ago = local_now - SignedDuration::from_hours(30 * 24);
    let ingestor = Ingestor::new(db.clone(), spool.clone(), crate::profiles::load(&config));
    let mut live = Vec::new();
    let mut imported = Vec::new();
    for (i, (a, (_, title))) in accounts.iter().zip(SITES).enumerate() {
        let mut device = db
            .device_by_name(&a.name)
            .await?
            .with_context(|| format!("device {} was not created", a.name))?;
        if device.title != title {
            device = db
                .update_device(
                    device.id,
                    DeviceUpdate {
                        title: Some(title.to_owned()),
                        ..DeviceUpdate::default()
                    },
                )
                .await?;
        }
        let mut params = UnitParams::from_seed(args.seed, i as u64);
        if i == ALARM {
            params.alarm_from = Some(local_now - SignedDuration::from_hours(5));
        }
        let mut unit = Unit::new(params, epoch);
        unit.skip_until(month_ago);
        let (until, at) = if i == SILENT {
            let back = SignedDuration::from_hours(4 * 24);
            (local_now - back, now - back)
        } else {
            (local_now, now)
        };
        let is_new = new.get(i).copied().unwrap_or(false);
        if !is_new && i != SILENT {
            // A later start: only the last three days again, to fill the gap
            // since the last run (the rest are duplicates).
            unit.skip_until(local_now - SignedDuration::from_hours(72));
        }
        let archive = unit.generate_until(until);
        if is_new || i != SILENT {
            let name = if is_new {
                format!("{}_month.txt", a.login)
            } else {
                format!("{}_catch_up.txt", a.login)
            };
            let bytes = lis200::write(&archive);
            imported.push(
                crate::cmd_ingest::store_bytes(
                    &*db,
                    &spool,
                    &device,
                    &name,
                    &bytes,
                    "demo history",
                    at,
                )
                .await?,
            );
            if i == JUNK && is_new {
                imported.push(
                    crate::cmd_ingest::store_bytes(
                        &*db,
                        &spool,
                        &device,
                        "arch_err.txt",
                        &lis200::junk(),
                        "demo junk file",
                        now,
                    )
                    .await?,
                );
            }
        }
        if i != SILENT {
            live.push(SimUnit {
                account: a.clone(),
                unit,
            });
        }
    }
    let mut problems = Vec::new();
    ingestor
        .process_many(&imported, |id, result| {
            if let Err(e) = result {
                problems.push(format!("#{}: {e}", id.0));
            }
        })
        .await;
    if !problems.is_empty() {
        tracing::warn!(problems = ?problems, "some demo history was not ingested");
    }

    let password = match &args.password {
        Some(p) => SecretString::from(p.clone()),
        None => telegaz_auth::generate_password(),
    };
    demo_user(&*db, password.expose_secret()).await?;
    drop(db);

    let running = crate::serve::start(&config).await?;
    let web = loopback_if_any(running.web);
    let ftp = loopback_if_any(running.ftp);
    println!();
    println!("Telegaz demo: http://{web}/");
    println!("  sign in as: demo / {}", password.expose_secret());
    println!(
        "  {} simulated units upload by FTP to {ftp} every {}; data in {}",
        live.len(),
        humantime::format_duration(args.interval),
        config.data_dir.display()
    );
    println!("  Ctrl-C stops it.");

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut fleet = FleetConfig::new(ftp.to_string(), live);
    fleet.rounds = None;
    fleet.interval = args.interval;
    fleet.schedule = Schedule::Spread(args.interval.min(Duration::from_secs(60)) / 2);
    fleet.clock = Clock::Wall(tz);
    fleet.session_timeout = Duration::from_secs(30);
    fleet.seed = args.seed;
    fleet.stop = Some(stop_rx);
    let fleet_task = tokio::spawn(telegaz_sim::run_fleet(fleet));

    crate::serve::shutdown_signal().await;
    let _ = stop_tx.send(true);
    match fleet_task.await {
        Ok(Ok(stats)) => {
            let s = stats.summary();
            tracing::info!(
                sessions = s.sessions,
                acknowledged = s.acknowledged,
                failed = s.failed,
                "demo units stopped"
            );
        }
        Ok(Err(e)) => tracing::error!(error = %e, "the demo units stopped with an error"),
        Err(e) => tracing::error!(error = %e, "the demo units' task failed"),
    }
    running.stop().await;
    Ok(())
}

fn loopback_if_any(a: std::net::SocketAddr) -> std::net::SocketAddr {
    if a.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), a.port())
    } else {
        a
    }
}
