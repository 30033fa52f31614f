use std::io::Write;

use anyhow::Context;
use telegaz_auth::ThrottlePolicy;
use telegaz_config::Config;
use telegaz_receiver::{AuditLog, Receiver, ReceiverSettings, reconcile};
use tokio::net::TcpListener;

/// Print a line that scripts and tests can wait for.
fn announce(what: &str, addr: std::net::SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "telegaz: {what} listening on {addr}");
    let _ = out.flush();
}

/// Listen on `addr` with room for `backlog` connections not yet accepted
/// (tokio's `bind` asks for 1,024). `SO_REUSEADDR` as std and tokio set it,
/// so a restart does not wait for old connections in TIME_WAIT.
fn listen(addr: std::net::SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

async fn bind_ftp(config: &Config) -> anyhow::Result<TcpListener> {
    let addr = config.ftp_listen()?;
    listen(addr, config.ftp.listen_backlog).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && addr.port() < 1024 {
            " Ports below 1024 need CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' on the binary, or a systemd socket): see the README section on port 21."
        } else if e.kind() == std::io::ErrorKind::AddrInUse {
            " Another program (or another Telegaz) is using it: stop it or choose another --ftp-listen."
        } else {
            ""
        };
        anyhow::anyhow!("cannot listen for FTP on {addr}: {e}.{hint}")
    })
}

pub async fn run(config: Config) -> anyhow::Result<()> {
    crate::logging::init_server(&config.log);
    let running = start(&config).await?;
    shutdown_signal().await;
    running.stop().await;
    Ok(())
}

/// A started server: its addresses, and how to stop it.
pub struct Running {
    pub ftp: std::net::SocketAddr,
    pub web: std::net::SocketAddr,
    stop_tx: tokio::sync::watch::Sender<bool>,
    engine: tokio::task::JoinHandle<()>,
    tcp_task: Option<tokio::task::JoinHandle<()>>,
    ingest_task: Option<tokio::task::JoinHandle<()>>,
    delivery_task: Option<tokio::task::JoinHandle<()>>,
    alert_tasks: Vec<tokio::task::JoinHandle<()>>,
    web_task: tokio::task::JoinHandle<std::io::Result<()>>,
    outage_task: tokio::task::JoinHandle<()>,
    audit: AuditLog,
    audit_task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops receiving, ingest, delivery and the web UI, and flushes the audit trail.
    pub async fn stop(self) {
        tracing::info!("shutting down");
        let _ = self.stop_tx.send(true);
        let _ = self.engine.await;
        if let Some(task) = self.tcp_task {
            let _ = task.await;
        }
        if let Some(task) = self.ingest_task {
            let _ = task.await;
        }
        if let Some(task) = self.delivery_task {
            let _ = task.await;
        }
        for task in self.alert_tasks {
            let _ = task.await;
        }
        let _ = self.web_task.await;
        let _ = self.outage_task.await;
        // The database may be away: the audit trail waits for it a while, then
        // what is left stays in the log only.
        if tokio::time::timeout(AUDIT_STOP_WAIT, self.audit.flush())
            .await
            .is_err()
        {
            tracing::error!(
                "the audit trail could not be written to the database before the stop; the rest is in the log"
            );
        }
        drop(self.audit);
        let _ = tokio::time::timeout(AUDIT_STOP_WAIT, self.audit_task).await;
    }
}

/// How long a stop waits for the audit trail to reach the database.
const AUDIT_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Starts every part of the server (logging must be set up already).
pub async fn start(config: &Config) -> anyhow::Result<Running> {
    let config = config.clone();
    let metrics = telegaz_web::install_metrics().map_err(anyhow::Error::msg)?;
    let db = crate::cli::open_db(&config).await?;
    let spool = crate::raw_store::open_spool(&config)?;
    crate::raw_store::check(&config).await?;
    // Set up report delivery before anything starts, so that bad settings stop the start.
    let scheduler = if config.delivery.is_empty() {
        None
    } else {
        let mailer = telegaz_delivery::SmtpMailer::new(&config.smtp)
            .context("scheduled delivery: the mail server settings ([smtp])")?;
        Some(
            telegaz_delivery::Scheduler::new(&config, db.clone(), std::sync::Arc::new(mailer))
                .context("scheduled delivery: the [[delivery]] settings")?,
        )
    };
    // Bad certificate or key files stop the start, naming the file.
    let tls = ftps_settings(&config.ftp.tls)?;
    let (audit, audit_task) = AuditLog::start(db.clone());

    let lp = &config.login_policy;
    let receiver_id = receiver_id(&config)?;
    tracing::info!(receiver_id = %receiver_id, "receiver id (recorded with the transfers this receiver starts)");
    let health = telegaz_store::DbHealth::new();
    let outage_dir = config.data_dir.join("outage");
    let receiver = Receiver::new(
        db.clone(),
        spool.clone(),
        audit.clone(),
        ReceiverSettings {
            max_file_size: config.ftp.max_file_size,
            login_policy: ThrottlePolicy {
                max_failures_per_login_and_address: lp.max_failures_per_login_and_address,
                max_failures_per_address: lp.max_failures_per_address,
                window: lp.window,
                block_for: lp.block_for,
                ..ThrottlePolicy::default()
            },
            database_wait: config.ftp.database_wait,
            outage_dir: outage_dir.clone(),
            health: health.clone(),
            max_block_for: lp.max_block_for,
            repeat_lookback: lp.repeat_lookback,
            receiver_id,
            ..ReceiverSettings::default()
        },
    )
    .with_context(|| {
        format!(
            "cannot open the outage journal {}; check that the data directory is writable",
            outage_dir.display()
        )
    })?;

    // Uploads kept while the database was away are recorded before
    // reconciliation looks at the spool.
    let replayed = receiver
        .replay_outage(true)
        .await
        .context("recording the uploads kept during a database outage failed")?;
    if !replayed.recorded.is_empty() || replayed.already > 0 || replayed.left > 0 {
        tracing::info!(
            recorded = replayed.recorded.len(),
            already = replayed.already,
            left = replayed.left,
            journal = %outage_dir.display(),
            "uploads received during a database outage recorded at start-up"
        );
    }
    match receiver.refresh_devices().await {
        Ok(n) => tracing::debug!(devices = n, "device cache filled"),
        Err(e) => tracing::warn!(error = %e, "cannot fill the device cache"),
    }

    let started = std::time::Instant::now();
    let report = reconcile(&db, &spool, &audit, receiver.receiver_id())
        .await
        .context("start-up reconciliation of the spool with the database failed")?;
    tracing::info!(
        interrupted = report.interrupted.len(),
        recovered = report.recovered.len(),
        missing = report.missing.len(),
        cleaned = report.cleaned,
        other_receivers = report.others.len(),
        unrecorded_shared_objects = report.unrecorded_shared,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "start-up reconciliation done"
    );
    if !report.missing.is_empty() {
        tracing::error!(uploads = ?report.missing, "recorded uploads whose bytes are missing from the spool; see the audit trail (kind missing_file)");
    }

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // Uploads the object store did not take wait in the spool; store them when it is back.
    tokio::spawn(
        receiver
            .clone()
            .run_retries(config.storage.retry_interval, stop_rx.clone()),
    );

    let web_addr = config.web_listen()?;
    let web_listener = telegaz_web::bind(web_addr).await.with_context(|| {
        format!("cannot listen for HTTP on {web_addr}; choose another --web-listen")
    })?;
    let web_addr = web_listener.local_addr()?;
    announce("HTTP", web_addr);
    crate::cmd_user::ensure_first_admin(&*db).await?;
    let web_ctx = telegaz_web::WebContext::with_health(
        db.clone(),
        spool.clone(),
        telegaz_web::WebSettings::from_config(&config),
        Some(metrics),
        health,
    );
    let mut web_stop = stop_rx.clone();
    let web_task = tokio::spawn(telegaz_web::serve(
        web_listener,
        web_ctx.clone(),
        async move {
            let _ = web_stop.changed().await;
        },
    ));

    // Raw TCP is announced before FTP: scripts wait for the FTP line last.
    let tcp_task = start_tcp(&config, &receiver, &stop_rx).await?;

    let ftp_listener = bind_ftp(&config).await?;
    let ftp_addr = ftp_listener.local_addr()?;
    announce("FTP", ftp_addr);
    let ftp = &config.ftp;
    let passive_address = match &ftp.passive_host {
        Some(host) => Some(resolve_passive_host(host).await?),
        None => None,
    };
    let outage_task = tokio::spawn(receiver.clone().run_outage_tasks(stop_rx.clone()));
    let engine = tokio::spawn(telegaz_ftp::serve(
        ftp_listener,
        std::sync::Arc::new(receiver),
        telegaz_ftp::EngineConfig {
            passive_ports: (ftp.passive_ports.first(), ftp.passive_ports.last()),
            passive_address,
            stall_timeout: ftp.stall_timeout,
            idle_timeout: ftp.idle_timeout,
            login_timeout: ftp.login_timeout,
            data_connect_timeout: ftp.data_connect_timeout,
            max_connections: ftp.max_connections,
            max_connections_per_address: ftp.max_connections_per_address,
            max_command_line: ftp.max_command_line,
            max_commands_before_login: ftp.max_commands_before_login,
            max_command_rate_before_login: ftp.max_command_rate_before_login,
            greeting: ftp.greeting.clone(),
            client_gone_grace: telegaz_ftp::CLIENT_GONE_GRACE,
            proxy_from: telegaz_ftp::proxy::ProxySources::new(ftp.proxy_protocol_from.clone()),
            shutdown_grace: ftp.shutdown_grace,
            tls,
        },
        stop_rx.clone(),
    ));

    let ingest_task = if config.ingest.enabled {
        // What a killed process was parsing is redone now, not after its lease.
        match db.release_stale_ingest_claims().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(uploads = n, "ingest claims of a stopped process released"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot release stale ingest claims; they run out after ingest.claim_lease")
            }
        }
        // The web UI's profile editor replaces these while the worker runs.
        let ingestor =
            telegaz_ingest::Ingestor::with_shared(db.clone(), spool, web_ctx.profiles.clone())
                .with_claim_lease(config.ingest.claim_lease);
        Some(tokio::spawn(ingestor.run(stop_rx.clone())))
    } else {
        tracing::info!("ingest is off (ingest.enabled = false): uploads stay queued");
        None
    };

    // Its own task: a slow or absent mail server never holds up receiving or ingest.
    let delivery_task = scheduler.map(|s| tokio::spawn(s.run(stop_rx.clone())));

    let alert_tasks = crate::alerts::start(&config, &db, &stop_rx)?;

    Ok(Running {
        ftp: ftp_addr,
        web: web_addr,
        stop_tx,
        engine,
        tcp_task,
        ingest_task,
        delivery_task,
        alert_tasks,
        web_task,
        outage_task,
        audit,
        audit_task,
    })
}

/// Raw-TCP reception (`[tcp]`), when `tcp.listen` is set.
async fn start_tcp(
    config: &Config,
    receiver: &Receiver,
    stop: &tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    let Some(addr) = config.tcp_listen()? else {
        return Ok(None);
    };
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        anyhow::anyhow!("cannot listen for raw TCP on {addr}: {e}; choose another tcp.listen")
    })?;
    let addr = listener.local_addr()?;
    announce("TCP", addr);
    let tcp = &config.tcp;
    let settings = telegaz_receiver::TcpSettings {
        idle_timeout: tcp.idle_timeout,
        login_timeout: tcp.login_timeout,
        max_connections: tcp.max_connections,
        by_address: tcp
            .by_address
            .iter()
            .map(|s| (s.address, s.device.clone()))
            .collect(),
    };
    let task = tokio::spawn(telegaz_receiver::serve_tcp(
        listener,
        receiver.clone(),
        settings,
        stop.clone(),
    ));
    Ok(Some(task))
}

/// FTPS settings from `[ftp.tls]`; `None` when no certificate is configured.
fn ftps_settings(
    tls: &telegaz_config::FtpTlsConfig,
) -> anyhow::Result<Option<telegaz_ftp::TlsSettings>> {
    let Some((certificate, key)) = tls.files() else {
        return Ok(None);
    };
    let required = tls.required == telegaz_config::TlsRequired::All;
    let settings = telegaz_ftp::TlsSettings::from_pem_files(certificate, key, required)?;
    tracing::info!(
        certificate = %certificate.display(),
        required,
        "FTPS (AUTH TLS) is on"
    );
    Ok(Some(settings))
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// The address advertised in PASV replies: an IP, or a DNS name resolved once at start.
async fn resolve_passive_host(host: &str) -> anyhow::Result<std::net::IpAddr> {
    if let Ok(ip) = host.parse() {
        return Ok(ip);
    }
    let addrs: Vec<_> = tokio::net::lookup_host((host, 0))
        .await
        .with_context(|| {
            format!("cannot resolve ftp.passive_host {host:?}; use the server's public IP address")
        })?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .map(|a| a.ip())
        .with_context(|| format!("ftp.passive_host {host:?} has no address"))
}

// ---- begin storebench: the receiver id (issue #4) ----
/// The file in the data directory that keeps a receiver's generated id.
const RECEIVER_ID_FILE: &str = "receiver-id";

/// This receiver's id: `receiver_id` from the configuration, else the one
/// kept in `<data_dir>/receiver-id`, made (random) at the first start.
pub fn receiver_id(config: &Config) -> anyhow::Result<String> {
    if let Some(id) = &config.receiver_id {
        return Ok(id.clone());
    }
    let path = config.data_dir.join(RECEIVER_ID_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let id = text.trim().to_owned();
            telegaz_config::check_receiver_id(&id).with_context(|| {
                format!(
                    "{} does not hold a receiver id; remove it to make a new one, or set receiver_id",
                    path.display()
                )
            })?;
            return Ok(id);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| {
                format!(
                    "cannot read the receiver id from {}; check the data directory's permissions",
                    path.display()
                )
            });
        }
    }
    let id = format!("rx-{:016x}", rand::random::<u64>());
    let write = || -> std::io::Result<()> {
        std::fs::create_dir_all(&config.data_dir)?;
        let tmp = path.with_extension("tmp");
        {
            use std::io::Write as _;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(format!("{id}\n").as_bytes())?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        telegaz_spool::sync_dir(&config.data_dir).map_err(std::io::Error::other)
    };
    write().with_context(|| {
        format!(
            "cannot keep the new receiver id in {}; check that the data directory is writable",
            path.display()
        )
    })?;
    Ok(id)
}
// ---- end storebench ----
