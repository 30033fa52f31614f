//! Telegaz configuration, in layers (later ones win):
//!
//! 1. built-in defaults, which work without any file;
//! 2. a TOML file (`--config FILE`, else `TELEGAZ_CONFIG`, else `./telegaz.toml` if present);
//! 3. `TELEGAZ_*` environment variables, sections separated by `__`
//!    (`TELEGAZ_FTP__LISTEN=0.0.0.0:21`, `TELEGAZ_DATA_DIR=/var/lib/telegaz`);
//! 4. command-line flags.

mod port_range;
mod storage;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use port_range::{InvalidPortRange, PortRange};
pub use storage::{RawStorageKind, S3Config, StorageConfig};

/// A configuration that cannot be used, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "the configuration file {0} does not exist; create it or leave out --config to run on defaults"
    )]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
    #[error("cannot read the configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
}

/// Everything configurable. Every field has a working default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database (by default) and the spool live.
    pub data_dir: PathBuf,
    /// `sqlite://FILE`; default: `sqlite://<data_dir>/telegaz.db`.
    pub database_url: Option<String>,
    /// SQLite only: the most starts and ends of uploads committed in one
    /// transaction (group commit). Default 16 (BENCHMARKS.md, "Session
    /// groups"); 1: each its own transaction. Hundreds acknowledge a
    /// fleet calling at the same minute faster still, while its readings
    /// become queryable seconds later during the burst. 1 to 4096.
    pub sqlite_session_group: usize,
    pub ftp: FtpConfig,
    /// Raw-TCP reception (units in TCP mode); off unless `tcp.listen` is set.
    pub tcp: TcpConfig,
    pub web: WebConfig,
    pub login_policy: LoginPolicyConfig,
    pub log: LogConfig,
    pub ingest: IngestConfig,
    /// The mail server that scheduled reports are sent through.
    pub smtp: SmtpConfig,
    /// Scheduled report deliveries (`[[delivery]]` tables); none by default.
    pub delivery: Vec<DeliveryConfig>,
    /// Retries and catch-up of the delivery scheduler.
    pub delivery_policy: DeliveryPolicyConfig,
    /// Alerts: silent units, corrector alarms, files not understood.
    pub alerts: AlertsConfig,
    /// Where alert notifications go (`[[notifier]]` tables: e-mail, webhook,
    /// Telegram, MQTT); read by `telegaz-notify`, which checks them.
    pub notifier: Vec<RawNotifier>,
    /// Where committed raw files are kept: the local spool (default) or S3.
    pub storage: StorageConfig,
    /// This receiver's id among several on one database (recorded with each
    /// transfer it starts; start-up reconciliation closes only its own).
    /// Default: a random id made at the first start and kept in
    /// `<data_dir>/receiver-id`. Letters, digits, `.`, `_`, `-`; at most 64.
    pub receiver_id: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./telegaz-data"),
            database_url: None,
            sqlite_session_group: 16,
            ftp: FtpConfig::default(),
            tcp: TcpConfig::default(),
            web: WebConfig::default(),
            login_policy: LoginPolicyConfig::default(),
            log: LogConfig::default(),
            ingest: IngestConfig::default(),
            smtp: SmtpConfig::default(),
            delivery: Vec::new(),
            delivery_policy: DeliveryPolicyConfig::default(),
            alerts: AlertsConfig::default(),
            notifier: Vec::new(),
            storage: StorageConfig::default(),
            receiver_id: None,
        }
    }
}

/// The FTP receiver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FtpConfig {
    /// Control connection address. Port 21 needs CAP_NET_BIND_SERVICE (see README).
    pub listen: String,
    /// Passive data ports, `A-B`. Open them in the firewall. `0-0`: any free port.
    pub passive_ports: PortRange,
    /// Address or DNS name advertised in PASV replies when the server is behind NAT.
    pub passive_host: Option<String>,
    /// Largest file accepted; bigger uploads get 552 and are kept as partial.
    pub max_file_size: u64,
    /// A transfer with no byte for this long is ended and kept as partial.
    #[serde(with = "humantime_serde")]
    pub stall_timeout: Duration,
    /// A logged-in session with no command for this long is closed.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time allowed from connecting to a successful login.
    #[serde(with = "humantime_serde")]
    pub login_timeout: Duration,
    /// How long to wait for the data connection after PASV/EPSV/PORT/EPRT.
    #[serde(with = "humantime_serde")]
    pub data_connect_timeout: Duration,
    /// Simultaneous control connections, in total and from one address.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// Connections the kernel may hold for the server before it accepts them
    /// (the listen backlog of the control port; the kernel caps it at
    /// `net.core.somaxconn`). When a whole fleet connects at the top of the
    /// hour, a short queue overflows: the kernel then drops handshakes, and
    /// one completed by a SYN cookie can leave a unit waiting for a greeting
    /// that never comes (FTP servers speak first).
    pub listen_backlog: u32,
    /// Longest command line accepted (bytes); longer lines get 500.
    pub max_command_line: usize,
    /// Commands a client may send before it has logged in; past it the
    /// connection gets 421 and is closed (audited, `limit_reached`).
    pub max_commands_before_login: u32,
    /// Commands per second a client may send before it has logged in
    /// (bursts up to this many, at least 5); faster gets 421 and the
    /// connection closed.
    pub max_command_rate_before_login: u32,
    /// Text of the 220 greeting.
    pub greeting: String,
    /// The longest a unit's session waits for one database operation; past
    /// it the database counts as unavailable and uploads go to the outage
    /// journal (recorded when it is back).
    #[serde(with = "humantime_serde")]
    pub database_wait: Duration,
    /// Networks of TCP load balancers in front of this receiver. Connections
    /// from them must start with a PROXY protocol header (v1 or v2), which
    /// gives the unit's real address for limits, bans, allow-lists and the
    /// audit trail. Empty (default): no PROXY protocol. Never list networks
    /// that units connect from directly: the header would let them choose
    /// their address.
    pub proxy_protocol_from: Vec<ipnet::IpNet>,
    /// At shutdown (SIGTERM), how long transfers in flight may run on; new
    /// connections are refused meanwhile. Transfers still running then are
    /// ended and kept as partial (reason `shutdown`).
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// FTPS (explicit `AUTH TLS`): on when a certificate and key are given.
    pub tls: FtpTlsConfig,
}

/// `[ftp.tls]`: the certificate and key (PEM files) and whether TLS is required.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FtpTlsConfig {
    /// PEM certificate chain, the server's certificate first.
    pub certificate: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: Option<PathBuf>,
    /// `off`: TLS is offered; devices with `tls_required` must use it.
    /// `all`: every session must send `AUTH TLS` before `USER` and `PROT P` before transfers.
    pub required: TlsRequired,
}

impl FtpTlsConfig {
    /// Certificate and key, when FTPS is on.
    pub fn files(&self) -> Option<(&Path, &Path)> {
        match (&self.certificate, &self.key) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        }
    }
}

/// Which sessions must use TLS.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsRequired {
    #[default]
    Off,
    All,
}

/// `[tcp]`: raw-TCP reception. Each connection's bytes are one upload; the
/// unit names itself with a first line `LOGIN <login> <password>` or is known
/// by its source address (`[[tcp.by_address]]`). See docs/tcp-reception.md.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TcpConfig {
    /// `ADDRESS:PORT` to listen on; none (the default): off.
    pub listen: Option<String>,
    /// A connection that sends no byte for this long ends; what came is kept as partial.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// Time allowed for the first line (`LOGIN …`).
    #[serde(with = "humantime_serde")]
    pub login_timeout: Duration,
    /// Simultaneous connections; more are closed at once.
    pub max_connections: usize,
    /// Source addresses that identify one device each, without a `LOGIN` line.
    pub by_address: Vec<TcpSource>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            listen: None,
            idle_timeout: Duration::from_secs(120),
            login_timeout: Duration::from_secs(30),
            max_connections: 500,
            by_address: Vec::new(),
        }
    }
}

/// A source address that identifies a device on the raw-TCP port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpSource {
    pub address: IpAddr,
    /// The device's name (`telegaz device list`).
    pub device: String,
}

impl Default for FtpConfig {
    fn default() -> Self {
        FtpConfig {
            listen: "0.0.0.0:2121".into(),
            passive_ports: PortRange::new(50000, 50999).unwrap_or(PortRange::ANY),
            passive_host: None,
            max_file_size: 16 * 1024 * 1024,
            stall_timeout: Duration::from_secs(120),
            idle_timeout: Duration::from_secs(300),
            login_timeout: Duration::from_secs(60),
            data_connect_timeout: Duration::from_secs(60),
            max_connections: 2000,
            max_connections_per_address: 500,
            listen_backlog: 4096,
            max_command_line: 4096,
            max_commands_before_login: 20,
            max_command_rate_before_login: 10,
            greeting: "Telegaz FTP ready".into(),
            database_wait: Duration::from_secs(3),
            proxy_protocol_from: Vec::new(),
            shutdown_grace: Duration::from_secs(30),
            tls: FtpTlsConfig::default(),
        }
    }
}

/// The HTTP listener: web UI, REST API, metrics and health.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub listen: String,
    /// How long a sign-in lasts.
    #[serde(with = "humantime_serde")]
    pub session_ttl: Duration,
    /// The `Secure` flag of the session cookie: `auto` (when the request came
    /// over HTTPS, by `X-Forwarded-Proto`, or to localhost), `always`, `never`.
    pub secure_cookies: SecureCookies,
    /// A device not heard from for this long is shown `late`…
    #[serde(with = "humantime_serde")]
    pub late_after: Duration,
    /// …and after this long `silent`.
    #[serde(with = "humantime_serde")]
    pub silent_after: Duration,
    /// What the printable configuration sheet tells whoever sets up a unit.
    pub sheet: SheetConfig,
    /// Request rate limits per client address (`[web.rate_limit]`).
    pub rate_limit: WebRateLimitConfig,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8080".into(),
            session_ttl: Duration::from_secs(12 * 3600),
            secure_cookies: SecureCookies::Auto,
            late_after: Duration::from_secs(26 * 3600),
            silent_after: Duration::from_secs(72 * 3600),
            sheet: SheetConfig::default(),
            rate_limit: WebRateLimitConfig::default(),
        }
    }
}

/// `[web.rate_limit]`: how fast one client may ask the web listener. A client
/// over a limit gets `429 Too Many Requests` with `Retry-After`. A client is
/// its TCP peer address (an IPv6 client: its /64 network), or, when the peer
/// is one of `trusted_proxies`, the address that proxy put in
/// `X-Forwarded-For`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebRateLimitConfig {
    /// Sustained requests per second from one client (any page, the API,
    /// static files). 0 turns this limit off.
    pub requests_per_second: f64,
    /// Requests a client may make at once above the sustained rate.
    pub burst: u32,
    /// Sign-in attempts (`POST /login`) per minute from one client, on top
    /// of the failed-login block (`argon2` is costly: this bounds the CPU one
    /// client can spend). 0 turns this limit off.
    pub sign_in_per_minute: f64,
    /// Sign-in attempts a client may make at once.
    pub sign_in_burst: u32,
    /// API requests with a bearer token that is not valid, from one client,
    /// within `bad_token_window`, before that client is refused for
    /// `bad_token_block` (every request, valid token or not). 0 turns this off.
    pub bad_token_failures: u32,
    #[serde(with = "humantime_serde")]
    pub bad_token_window: Duration,
    #[serde(with = "humantime_serde")]
    pub bad_token_block: Duration,
    /// Bound on the clients remembered per limit (memory); past it the
    /// least recently limited are forgotten.
    pub max_clients: usize,
    /// Reverse proxies in front of the web listener whose `X-Forwarded-For`
    /// is believed (the right-most address not itself a trusted proxy is the
    /// client). Empty (default): the header is ignored, the TCP peer is the
    /// client. Never list networks that browsers connect from directly.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Clients whose `/healthz` and `/metrics` requests are never limited
    /// (monitoring, load-balancer health checks). Default: loopback.
    pub unlimited_scrapers: Vec<ipnet::IpNet>,
}

impl Default for WebRateLimitConfig {
    fn default() -> Self {
        WebRateLimitConfig {
            requests_per_second: 20.0,
            burst: 200,
            sign_in_per_minute: 6.0,
            sign_in_burst: 10,
            bad_token_failures: 10,
            bad_token_window: Duration::from_secs(60),
            bad_token_block: Duration::from_secs(5 * 60),
            max_clients: 100_000,
            trusted_proxies: Vec::new(),
            unlimited_scrapers: ["127.0.0.0/8", "::1/128"]
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

impl WebRateLimitConfig {
    /// No limit at all (tests and benchmarks that drive the router in-process).
    pub fn off() -> Self {
        WebRateLimitConfig {
            requests_per_second: 0.0,
            sign_in_per_minute: 0.0,
            bad_token_failures: 0,
            ..WebRateLimitConfig::default()
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (key, rate, burst) in [
            (
                "web.rate_limit.requests_per_second",
                self.requests_per_second,
                ("web.rate_limit.burst", self.burst),
            ),
            (
                "web.rate_limit.sign_in_per_minute",
                self.sign_in_per_minute,
                ("web.rate_limit.sign_in_burst", self.sign_in_burst),
            ),
        ] {
            if !rate.is_finite() || rate < 0.0 {
                return Err(format!(
                    "{key} = {rate} must be a number of requests, 0 or more (0: off)"
                ));
            }
            if rate > 0.0 && rate < 1e-6 {
                return Err(format!(
                    "{key} = {rate} is too small to mean anything; use 0 to turn the limit off"
                ));
            }
            if rate > 0.0 && burst.1 == 0 {
                return Err(format!("{} must be at least 1 while {key} is on", burst.0));
            }
        }
        if self.bad_token_failures > 0
            && (self.bad_token_window.is_zero() || self.bad_token_block.is_zero())
        {
            return Err("web.rate_limit.bad_token_window and web.rate_limit.bad_token_block must be greater than zero (or set web.rate_limit.bad_token_failures = 0 to turn the block off)".into());
        }
        if self.max_clients == 0 {
            return Err("web.rate_limit.max_clients must be at least 1".into());
        }
        Ok(())
    }
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookies {
    Auto,
    Always,
    Never,
}

/// Settings printed on each unit's configuration sheet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SheetConfig {
    /// The address devices reach the FTP server at (public IP or DNS name).
    /// Default: `ftp.passive_host`, else the sheet asks for it to be filled in.
    pub server: Option<String>,
    /// The FTP port devices connect to. Default: the port of `ftp.listen`.
    pub port: Option<u16>,
    /// A second (reserve) server, if the utility runs one.
    pub second_server: Option<String>,
    /// A note on the APN of the SIM card (operator-specific).
    pub apn_note: String,
    /// The upload schedule to configure.
    pub schedule: String,
}

impl Default for SheetConfig {
    fn default() -> Self {
        SheetConfig {
            server: None,
            port: None,
            second_server: None,
            apn_note: "APN оператора связи SIM-карты (например internet.mts.ru, internet.beeline.ru, internet)".into(),
            schedule: "ежечасно / hourly".into(),
        }
    }
}

/// Temporary blocks after repeated failed logins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginPolicyConfig {
    pub max_failures_per_login_and_address: u32,
    /// 0 disables the per-address block (many units may share a carrier NAT address).
    pub max_failures_per_address: u32,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// How long the first block lasts. Each block is recorded in the ban
    /// list (`telegaz ban list`); a repeat offender's next block lasts twice
    /// as long as the one before…
    #[serde(with = "humantime_serde")]
    pub block_for: Duration,
    /// …up to this long…
    #[serde(with = "humantime_serde")]
    pub max_block_for: Duration,
    /// …counting the blocks of the same address (and login) made within this
    /// time back.
    #[serde(with = "humantime_serde")]
    pub repeat_lookback: Duration,
}

impl Default for LoginPolicyConfig {
    fn default() -> Self {
        LoginPolicyConfig {
            max_failures_per_login_and_address: 5,
            max_failures_per_address: 30,
            window: Duration::from_secs(15 * 60),
            block_for: Duration::from_secs(10 * 60),
            max_block_for: Duration::from_secs(24 * 3600),
            repeat_lookback: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// One `[[notifier]]` table as written. Its settings (tokens, passwords)
/// never appear in Debug output: only its name and type do.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RawNotifier(pub toml::Table);

impl std::fmt::Debug for RawNotifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = |k: &str| self.0.get(k).and_then(|v| v.as_str()).unwrap_or("?");
        f.debug_struct("Notifier")
            .field("name", &text("name"))
            .field("type", &text("type"))
            .finish_non_exhaustive()
    }
}

/// Alert evaluation inside `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    pub enabled: bool,
    /// How often conditions are evaluated.
    #[serde(with = "humantime_serde")]
    pub evaluate_every: Duration,
    /// Added to a unit's usual upload interval (learned from its uploads)
    /// before it counts as silent.
    #[serde(with = "humantime_serde")]
    pub silent_grace: Duration,
    /// The interval assumed until a unit's schedule is learned (3 uploads).
    #[serde(with = "humantime_serde")]
    pub silent_default_interval: Duration,
    /// This many units going silent (or coming back) at once are told in
    /// one digest (a mobile-network outage must not send a message per unit).
    pub digest_threshold: usize,
    /// The first pause before a notification that failed is sent again; the
    /// pauses then grow, up to an hour; it is given up after a day.
    #[serde(with = "humantime_serde")]
    pub notify_retry: Duration,
    /// At most this many notifications a minute through each notifier; the
    /// rest wait, in order, for the next minute.
    pub max_per_minute: usize,
    /// Alert on hours missing in a unit's last final gas day.
    pub missing_hours: bool,
    /// A condition back within this time after it was resolved flaps: its
    /// alert opens and resolves without notifications.
    #[serde(with = "humantime_serde")]
    pub flap_window: Duration,
    /// Less free space than this (bytes) where the spool is: an alert.
    pub min_free_disk: u64,
    /// An upload waiting this long for ingest: an alert.
    #[serde(with = "humantime_serde")]
    pub max_ingest_delay: Duration,
    /// Value limits (`[[alerts.limit]]`), each for the units it names.
    pub limit: Vec<LimitConfig>,
    /// Maintenance windows (`[[alerts.maintenance]]`): no new alerts for the
    /// units named while one lasts.
    pub maintenance: Vec<MaintenanceConfig>,
    /// Upload schedules set per unit (`[[alerts.schedule]]`), instead of the
    /// one learned from its uploads.
    pub schedule: Vec<ScheduleConfig>,
    /// Corrector event codes and what they mean (`[[alerts.event]]`), for
    /// codes the built-in list does not know (tamper, battery, …).
    pub event: Vec<EventCodeConfig>,
}

/// The upload interval of some units.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// Unit names; `*` matches any run of characters.
    pub devices: Vec<String>,
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

/// What a corrector event code means. Raised codes (`0x2xxx`) hold until
/// cleared (`0x0xxx` with the same low bits); other codes hold for a day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventCodeConfig {
    /// E.g. `"0x2103"`.
    pub code: String,
    /// What it means, for people (e.g. «вскрытие корпуса»).
    pub name: String,
    /// `info`, `warning` or `critical`.
    #[serde(default = "default_event_severity")]
    pub severity: String,
}

fn default_event_severity() -> String {
    "warning".into()
}

/// Limits for some units; a value outside them (in the newest hourly row) is
/// an alert until it is back inside.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Unit names; `*` matches any run of characters (`kotelnaya-*`, `*`).
    pub devices: Vec<String>,
    /// Gas pressure, kPa (absolute, as the corrector reports it).
    #[serde(default)]
    pub p_kpa: Bounds,
    /// Gas temperature, °C.
    #[serde(default)]
    pub t_c: Bounds,
    /// Consumption of the newest hour at standard conditions, m³.
    #[serde(default)]
    pub hourly_m3: Bounds,
}

/// An optional lower and upper bound.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// A maintenance window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceConfig {
    /// Unit names; `*` matches any run of characters.
    pub devices: Vec<String>,
    /// RFC 3339 instants, e.g. `2026-11-25T08:00:00+03:00`.
    pub from: String,
    pub to: String,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            enabled: true,
            evaluate_every: Duration::from_secs(60),
            silent_grace: Duration::from_secs(30 * 60),
            silent_default_interval: Duration::from_secs(24 * 3600),
            digest_threshold: 20,
            notify_retry: Duration::from_secs(60),
            max_per_minute: 30,
            missing_hours: true,
            flap_window: Duration::from_secs(30 * 60),
            min_free_disk: 1 << 30,
            max_ingest_delay: Duration::from_secs(15 * 60),
            limit: Vec::new(),
            maintenance: Vec::new(),
            schedule: Vec::new(),
            event: Vec::new(),
        }
    }
}

/// The ingest pipeline inside `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Parse uploads in this process. Turn off on receivers that only receive
    /// while another Telegaz (or `telegaz reparse`) parses; uploads stay queued.
    pub enabled: bool,
    /// How long a worker holds an upload it took from the queue. Several
    /// receivers share one queue: each upload is parsed by the one that
    /// claimed it; if that one dies, another takes the upload up again once
    /// this much time has passed. Longer than parsing and storing one file.
    #[serde(with = "humantime_serde")]
    pub claim_lease: Duration,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            enabled: true,
            claim_lease: Duration::from_secs(120),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    /// A tracing filter, e.g. `info` or `info,telegaz_ftp=debug`. `RUST_LOG` wins.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// Values given as command-line flags; `None` leaves the lower layers alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "FtpOverrides::is_empty")]
    pub ftp: FtpOverrides,
    #[serde(skip_serializing_if = "WebOverrides::is_empty")]
    pub web: WebOverrides,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct FtpOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passive_ports: Option<PortRange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passive_host: Option<String>,
}

impl FtpOverrides {
    fn is_empty(&self) -> bool {
        self.listen.is_none() && self.passive_ports.is_none() && self.passive_host.is_none()
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct WebOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
}

impl WebOverrides {
    fn is_empty(&self) -> bool {
        self.listen.is_none()
    }
}

/// Top-level keys an environment variable may set. Other `TELEGAZ_*` variables
/// (`TELEGAZ_CONFIG`, test settings) are not configuration keys.
const ENV_SECTIONS: &[&str] = &[
    "data_dir",
    "database_url",
    "sqlite_session_group",
    "ftp",
    "tcp",
    "web",
    "login_policy",
    "log",
    "ingest",
    "smtp",
    "delivery",
    "delivery_policy",
    "alerts",
    "storage",
];

/// The SMTP password is taken from the environment as it is: figment would read
/// `123456` as a number and `true` as a boolean.
const ENV_SMTP_PASSWORD: &str = "TELEGAZ_SMTP__PASSWORD";

impl Config {
    /// Load all layers. `file` is the `--config` flag.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Self::figment(file, overrides)?
            .extract::<Config>()
            .map_err(|e| ConfigError::Figment(Box::new(e)))
            .and_then(|c| c.validated())
    }

    fn figment(file: Option<&Path>, overrides: &Overrides) -> Result<Figment, ConfigError> {
        let env_file = std::env::var_os("TELEGAZ_CONFIG").map(PathBuf::from);
        let mut fig = Figment::from(Serialized::defaults(Config::default()));
        for (var, key) in storage::ENV_AWS {
            if let Ok(value) = std::env::var(var) {
                fig = fig.merge(Serialized::default(key, value));
            }
        }
        match file.map(Path::to_owned).or(env_file) {
            Some(path) => {
                if !path.is_file() {
                    return Err(ConfigError::MissingFile(path));
                }
                fig = fig.merge(Toml::file_exact(path));
            }
            None => {
                let default = Path::new("telegaz.toml");
                if default.is_file() {
                    fig = fig.merge(Toml::file_exact(default));
                }
            }
        }
        let env = Env::prefixed("TELEGAZ_").split("__").filter(|key| {
            let first = key.as_str().split('.').next().unwrap_or("");
            ENV_SECTIONS.iter().any(|s| s.eq_ignore_ascii_case(first))
                && !key.as_str().eq_ignore_ascii_case("smtp.password")
                && !storage::ENV_SECRETS
                    .iter()
                    .any(|(_, k)| key.as_str().eq_ignore_ascii_case(k))
        });
        fig = fig.merge(env);
        // Taken as it is (figment would read `7` as a number).
        if let Ok(id) = std::env::var("TELEGAZ_RECEIVER_ID") {
            fig = fig.merge(Serialized::default("receiver_id", id));
        }
        if let Ok(password) = std::env::var(ENV_SMTP_PASSWORD) {
            fig = fig.merge(Serialized::default("smtp.password", password));
        }
        for (var, key) in storage::ENV_SECRETS {
            if let Ok(value) = std::env::var(var) {
                fig = fig.merge(Serialized::default(key, value));
            }
        }
        Ok(fig.merge(Serialized::defaults(overrides.clone())))
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("telegaz.db").display()))
    }

    /// The spool directory.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }

    pub fn ftp_listen(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("ftp.listen", &self.ftp.listen)
    }

    pub fn web_listen(&self) -> Result<SocketAddr, ConfigError> {
        parse_addr("web.listen", &self.web.listen)
    }

    /// The raw-TCP listener address, when raw-TCP reception is on.
    pub fn tcp_listen(&self) -> Result<Option<SocketAddr>, ConfigError> {
        self.tcp
            .listen
            .as_deref()
            .map(|l| parse_addr("tcp.listen", l))
            .transpose()
    }

    fn validate_tls_and_tcp(&self) -> Result<(), ConfigError> {
        let tls = &self.ftp.tls;
        match (&tls.certificate, &tls.key) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid(
                    "ftp.tls.certificate is set but ftp.tls.key is not: give both PEM files".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid(
                    "ftp.tls.key is set but ftp.tls.certificate is not: give both PEM files".into(),
                ));
            }
            _ => {}
        }
        if tls.required == TlsRequired::All && tls.files().is_none() {
            return Err(ConfigError::Invalid(
                "ftp.tls.required = \"all\" needs ftp.tls.certificate and ftp.tls.key".into(),
            ));
        }
        self.tcp_listen()?;
        let tcp = &self.tcp;
        if tcp.idle_timeout.is_zero() || tcp.login_timeout.is_zero() || tcp.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "tcp.idle_timeout, tcp.login_timeout and tcp.max_connections must be greater than zero"
                    .into(),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        for s in &tcp.by_address {
            if !seen.insert(s.address) {
                return Err(ConfigError::Invalid(format!(
                    "tcp.by_address names {} twice: one address identifies one device",
                    s.address
                )));
            }
        }
        Ok(())
    }

    fn validated(self) -> Result<Config, ConfigError> {
        if let Some(id) = &self.receiver_id {
            check_receiver_id(id)?;
        }
        self.ftp_listen()?;
        self.web_listen()?;
        self.validate_tls_and_tcp()?;
        let ftp = &self.ftp;
        let positive = [
            ("ftp.max_file_size", ftp.max_file_size == 0),
            ("ftp.max_connections", ftp.max_connections == 0),
            (
                "ftp.max_connections_per_address",
                ftp.max_connections_per_address == 0,
            ),
            ("ftp.stall_timeout", ftp.stall_timeout.is_zero()),
            ("ftp.idle_timeout", ftp.idle_timeout.is_zero()),
            ("ftp.login_timeout", ftp.login_timeout.is_zero()),
            (
                "ftp.data_connect_timeout",
                ftp.data_connect_timeout.is_zero(),
            ),
            ("ftp.database_wait", ftp.database_wait.is_zero()),
            ("ingest.claim_lease", self.ingest.claim_lease.is_zero()),
        ];
        for (key, bad) in positive {
            if bad {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be greater than zero"
                )));
            }
        }
        if !(1..=4096).contains(&self.sqlite_session_group) {
            return Err(ConfigError::Invalid(format!(
                "sqlite_session_group is {}; it must be 1 to 4096 (1: every start and end of an upload is its own transaction)",
                self.sqlite_session_group
            )));
        }
        if ftp.max_command_line < 512 {
            return Err(ConfigError::Invalid(
                "ftp.max_command_line must be at least 512 bytes (paths need room)".into(),
            ));
        }
        if let Some(host) = &ftp.passive_host
            && (host.trim().is_empty() || host.contains(char::is_whitespace))
        {
            return Err(ConfigError::Invalid(format!(
                "ftp.passive_host {host:?} must be an IP address or a DNS name"
            )));
        }
        if self.login_policy.max_failures_per_login_and_address == 0 {
            return Err(ConfigError::Invalid(
                "login_policy.max_failures_per_login_and_address must be at least 1".into(),
            ));
        }
        if self.login_policy.max_block_for < self.login_policy.block_for {
            return Err(ConfigError::Invalid(
                "login_policy.max_block_for must be at least login_policy.block_for".into(),
            ));
        }
        if ftp.listen_backlog == 0 {
            return Err(ConfigError::Invalid(
                "ftp.listen_backlog must be at least 1 (4096 is a good value; the kernel caps it at net.core.somaxconn)"
                    .into(),
            ));
        }
        if ftp.max_commands_before_login < 2 || ftp.max_command_rate_before_login == 0 {
            return Err(ConfigError::Invalid(
                "ftp.max_commands_before_login must be at least 2 (USER and PASS) and \
                 ftp.max_command_rate_before_login at least 1"
                    .into(),
            ));
        }
        validate_delivery(&self.smtp, &self.delivery, &self.delivery_policy)
            .map_err(ConfigError::Invalid)?;
        self.web
            .rate_limit
            .validate()
            .map_err(ConfigError::Invalid)?;
        self.storage
            .validate(self.ftp.max_file_size)
            .map_err(ConfigError::Invalid)?;
        Ok(self)
    }
}

/// A secret value (the SMTP password): never in `Debug` output, logs or
/// serialised configuration.
#[derive(Clone)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(SecretString::from(value.into()))
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        self.expose() == other.expose()
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// How the connection to the mail server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain SMTP, nothing encrypted: only for a relay on the same host or network.
    None,
    /// Plain connection upgraded with STARTTLS, which is required (default; port 587).
    Starttls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
}

/// The mail server that reports are sent through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Host name or address of the mail server; empty: no mail server.
    pub host: String,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// The sender, `telegaz@example.ru` or `Telegaz <telegaz@example.ru>`.
    pub from: String,
    /// Login, when the server wants one (then `password` too).
    pub username: Option<String>,
    /// Password for `username`. Prefer `TELEGAZ_SMTP__PASSWORD` to writing it in a file.
    #[serde(skip_serializing)]
    pub password: Option<Secret>,
    /// Extra CA certificate (PEM) to trust besides the system's, for a server
    /// whose certificate an internal CA issued.
    pub ca_file: Option<PathBuf>,
    /// The whole conversation with the server for one message (connecting,
    /// TLS, login, sending) must finish within this time.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: None,
            tls: SmtpTls::Starttls,
            from: String::new(),
            username: None,
            password: None,
            ca_file: None,
            timeout: Duration::from_secs(60),
        }
    }
}

impl SmtpConfig {
    /// The port in effect.
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(match self.tls {
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
        })
    }

    /// A mail server is configured.
    pub fn is_configured(&self) -> bool {
        !self.host.trim().is_empty()
    }
}

/// The attached report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeliveryFormat {
    #[serde(rename = "xlsx")]
    Xlsx,
    /// CSV as Russian Excel opens it: Windows-1251, `;`, decimal comma.
    #[serde(rename = "csv-1251")]
    Csv1251,
}

/// A row per gas day or per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportRows {
    Daily,
    Hourly,
}

/// One scheduled delivery: after each gas day, its report for these devices to these recipients.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// Identifies the delivery (letters, digits, `.`, `_`, `-`); keep it stable:
    /// what was sent is recorded under it.
    pub name: String,
    /// Device names (as in `telegaz device list`).
    pub devices: Vec<String>,
    /// E-mail addresses, `a@example.ru` or `Name <a@example.ru>`.
    pub recipients: Vec<String>,
    #[serde(default = "DeliveryConfig::default_format")]
    pub format: DeliveryFormat,
    #[serde(default = "DeliveryConfig::default_rows")]
    pub rows: ReportRows,
    /// Wait this long after the gas day has ended (the devices' contract hour)
    /// before sending, so that the units have uploaded it.
    #[serde(default = "DeliveryConfig::default_delay", with = "humantime_serde")]
    pub delay: Duration,
    /// Subject; `{name}`, `{gas_day}` (ДД.ММ.ГГГГ), `{gas_day_iso}` and
    /// `{devices}` are replaced.
    #[serde(default)]
    pub subject: Option<String>,
}

impl DeliveryConfig {
    /// Used when a delivery has no `subject`.
    pub const DEFAULT_SUBJECT: &str = "Газовые сутки {gas_day}: {devices}";
    /// The placeholders a subject may use.
    pub const PLACEHOLDERS: &[&str] = &["name", "gas_day", "gas_day_iso", "devices"];

    fn default_format() -> DeliveryFormat {
        DeliveryFormat::Xlsx
    }
    fn default_rows() -> ReportRows {
        ReportRows::Daily
    }
    fn default_delay() -> Duration {
        Duration::from_secs(30 * 60)
    }
}

/// Retries and catch-up of the delivery scheduler.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliveryPolicyConfig {
    /// Waits between attempts: after the first failure the first wait, and so
    /// on; when they are used up the delivery is `failed`. So there are at
    /// most `len + 1` attempts.
    #[serde(with = "duration_list")]
    pub retry: Vec<Duration>,
    /// How many of the most recent gas days that are due are sent when their
    /// report is missing (after a stop of the server, or a new delivery).
    pub catch_up_days: u32,
    /// How often the scheduler looks for due deliveries.
    #[serde(with = "humantime_serde")]
    pub check_every: Duration,
}

impl Default for DeliveryPolicyConfig {
    fn default() -> Self {
        let m = |n: u64| Duration::from_secs(n * 60);
        DeliveryPolicyConfig {
            retry: vec![m(1), m(5), m(30), m(120), m(360)],
            catch_up_days: 1,
            check_every: Duration::from_secs(60),
        }
    }
}

/// A list of durations written like `["1m", "5m"]`.
mod duration_list {
    use std::time::Duration;

    use humantime_serde::Serde;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(v: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        v.iter()
            .map(|d| Serde::from(*d))
            .collect::<Vec<_>>()
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<Serde<Duration>>::deserialize(d)?
            .into_iter()
            .map(Serde::into_inner)
            .collect())
    }
}

/// The longest `delay` after the gas day.
const MAX_DELIVERY_DELAY: Duration = Duration::from_secs(7 * 24 * 3600);

fn looks_like_address(s: &str) -> bool {
    let addr = match (s.rfind('<'), s.rfind('>')) {
        (Some(a), Some(b)) if a < b => &s[a + 1..b],
        _ => s,
    };
    let addr = addr.trim();
    match addr.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !addr.contains(char::is_whitespace)
                && !domain.contains('@')
        }
        None => false,
    }
}

/// Placeholders `{x}` in a subject that are not known.
fn unknown_placeholders(subject: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = subject;
    while let Some(i) = rest.find('{') {
        let after = &rest[i + 1..];
        match after.find('}') {
            Some(j) => {
                let key = &after[..j];
                if !DeliveryConfig::PLACEHOLDERS.contains(&key) {
                    out.push(format!("{{{key}}}"));
                }
                rest = &after[j + 1..];
            }
            None => {
                out.push(rest[i..].to_string());
                break;
            }
        }
    }
    out
}

fn validate_delivery(
    smtp: &SmtpConfig,
    deliveries: &[DeliveryConfig],
    policy: &DeliveryPolicyConfig,
) -> Result<(), String> {
    if smtp.username.is_some() != smtp.password.is_some() {
        return Err("smtp.username and smtp.password go together: set both (the password preferably as TELEGAZ_SMTP__PASSWORD) or neither".into());
    }
    if smtp.is_configured() && smtp.host.trim().contains(char::is_whitespace) {
        return Err(format!(
            "smtp.host {:?} must be a host name or an address",
            smtp.host
        ));
    }
    if smtp.port == Some(0) {
        return Err("smtp.port must not be 0".into());
    }
    if smtp.timeout.is_zero() {
        return Err("smtp.timeout must be greater than zero".into());
    }
    if !smtp.from.is_empty() && !looks_like_address(&smtp.from) {
        return Err(format!(
            "smtp.from = {:?} is not an e-mail address (e.g. telegaz@example.ru or \"Telegaz <telegaz@example.ru>\")",
            smtp.from
        ));
    }
    if policy.check_every.is_zero() {
        return Err("delivery_policy.check_every must be greater than zero".into());
    }
    if !(1..=31).contains(&policy.catch_up_days) {
        return Err("delivery_policy.catch_up_days must be between 1 and 31".into());
    }
    if policy.retry.len() > 50 || policy.retry.iter().any(Duration::is_zero) {
        return Err(
            "delivery_policy.retry must be at most 50 waits, each greater than zero (e.g. [\"1m\", \"5m\", \"30m\"])"
                .into(),
        );
    }
    if deliveries.is_empty() {
        return Ok(());
    }
    if !smtp.is_configured() {
        return Err("deliveries are configured ([[delivery]]) but smtp.host is not: name the mail server in [smtp]".into());
    }
    if smtp.from.trim().is_empty() {
        return Err("deliveries are configured ([[delivery]]) but smtp.from is not: set the sender address in [smtp]".into());
    }
    let mut names = std::collections::BTreeSet::new();
    for d in deliveries {
        let name = &d.name;
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return Err(format!(
                "delivery name {name:?} must be 1 to 64 letters, digits, '.', '_' or '-' (e.g. \"daily-kotelnaya\")"
            ));
        }
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(format!(
                "two deliveries are named {name:?}: give each [[delivery]] its own name"
            ));
        }
        if d.devices.is_empty() || d.devices.iter().any(|x| x.trim().is_empty()) {
            return Err(format!(
                "delivery {name}: devices must list at least one device name"
            ));
        }
        if d.recipients.is_empty() {
            return Err(format!(
                "delivery {name}: recipients must list at least one e-mail address"
            ));
        }
        if let Some(bad) = d.recipients.iter().find(|r| !looks_like_address(r)) {
            return Err(format!(
                "delivery {name}: recipient {bad:?} is not an e-mail address"
            ));
        }
        if d.delay > MAX_DELIVERY_DELAY {
            return Err(format!("delivery {name}: delay must be at most 7 days"));
        }
        if let Some(subject) = &d.subject {
            if subject.contains(['\r', '\n']) {
                return Err(format!("delivery {name}: subject must be one line"));
            }
            let unknown = unknown_placeholders(subject);
            if !unknown.is_empty() {
                return Err(format!(
                    "delivery {name}: subject has unknown placeholders {}; known: {{name}}, {{gas_day}}, {{gas_day_iso}}, {{devices}}",
                    unknown.join(", ")
                ));
            }
        }
    }
    Ok(())
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "{key} = {value:?} is not ADDRESS:PORT (e.g. 0.0.0.0:2121 or [::]:2121)"
        ))
    })
}

/// A receiver id: 1 to 64 letters, digits, `.`, `_` or `-`.
pub fn check_receiver_id(id: &str) -> Result<(), ConfigError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid(format!(
            "receiver_id {id:?} must be 1 to 64 letters, digits, '.', '_' or '-' \
             (e.g. the host name); every receiver on one database needs its own"
        )))
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    fn load(overrides: &Overrides) -> Result<Config, String> {
        Config::load(None, overrides).map_err(|e| e.to_string())
    }

    /// Each file is refused with a message that contains its needle.
    fn assert_each_rejected(cases: &[(String, &str)]) {
        for (file, needle) in cases {
            Jail::expect_with(|jail| {
                jail.create_file("telegaz.toml", file)?;
                let e = load(&Overrides::default()).unwrap_err();
                assert!(e.contains(needle), "{file}\n→ {e}");
                Ok(())
            });
        }
    }

    #[test]
    fn defaults_work_without_any_file() {
        Jail::expect_with(|_jail| {
            let c = load(&Overrides::default())?;
            assert_eq!(c.ftp.listen, "0.0.0.0:2121");
            assert_eq!(c.ftp.max_file_size, 16 * 1024 * 1024);
            assert_eq!(c.ftp.stall_timeout, Duration::from_secs(120));
            assert_eq!(c.data_dir, PathBuf::from("./telegaz-data"));
            assert_eq!(c.database_url(), "sqlite://./telegaz-data/telegaz.db");
            Ok(())
        });
    }

    #[test]
    fn file_then_env_then_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "telegaz.toml",
                r#"
                data_dir = "/srv/tg"
                [ftp]
                listen = "0.0.0.0:21"
                passive_host = "ftp.example.net"
                stall_timeout = "30s"
                max_file_size = 1000
                "#,
            )?;
            let c = load(&Overrides::default())?;
            assert_eq!(c.ftp.listen, "0.0.0.0:21");
            assert_eq!(c.ftp.stall_timeout, Duration::from_secs(30));
            assert_eq!(c.ftp.passive_host.as_deref(), Some("ftp.example.net"));

            jail.set_env("TELEGAZ_FTP__LISTEN", "127.0.0.1:2200");
            jail.set_env("TELEGAZ_FTP__PASSIVE_PORTS", "40000-40010");
            jail.set_env("TELEGAZ_DATA_DIR", "/var/lib/telegaz");
            jail.set_env("TELEGAZ_TEST_POSTGRES_URL", "postgres://ignored");
            let c = load(&Overrides::default())?;
            assert_eq!(c.ftp.listen, "127.0.0.1:2200");
            assert_eq!(c.ftp.passive_ports, PortRange::new(40000, 40010).unwrap());
            assert_eq!(c.data_dir, PathBuf::from("/var/lib/telegaz"));
            assert_eq!(
                c.ftp.max_file_size, 1000,
                "file values stay when env is silent"
            );

            let flags = Overrides {
                ftp: FtpOverrides {
                    listen: Some("127.0.0.1:3000".into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let c = load(&flags)?;
            assert_eq!(c.ftp.listen, "127.0.0.1:3000");
            assert_eq!(c.data_dir, PathBuf::from("/var/lib/telegaz"));
            Ok(())
        });
    }

    #[test]
    fn sqlite_session_group_from_file_and_env_and_checked() {
        Jail::expect_with(|jail| {
            assert_eq!(load(&Overrides::default())?.sqlite_session_group, 16);
            jail.create_file("telegaz.toml", "sqlite_session_group = 64\n")?;
            assert_eq!(load(&Overrides::default())?.sqlite_session_group, 64);
            jail.set_env("TELEGAZ_SQLITE_SESSION_GROUP", "512");
            assert_eq!(load(&Overrides::default())?.sqlite_session_group, 512);
            for bad in ["0", "4097"] {
                jail.set_env("TELEGAZ_SQLITE_SESSION_GROUP", bad);
                let e = load(&Overrides::default()).unwrap_err();
                assert!(
                    e.contains("sqlite_session_group") && e.contains("1 to 4096"),
                    "{e}"
                );
            }
            Ok(())
        });
    }

    #[test]
    fn ftps_and_raw_tcp_settings() {
        Jail::expect_with(|jail| {
            let c = load(&Overrides::default())?;
            assert_eq!(c.ftp.tls.files(), None, "FTPS is off by default");
            assert_eq!(
                c.tcp_listen().map_err(|e| e.to_string())?,
                None,
                "raw TCP is off by default"
            );
            jail.create_file(
                "telegaz.toml",
                r#"
                [ftp.tls]
                certificate = "/etc/telegaz/cert.pem"
                key = "/etc/telegaz/key.pem"
                required = "all"
                [tcp]
                listen = "0.0.0.0:2200"
                idle_timeout = "45s"
                [[tcp.by_address]]
                address = "192.0.2.10"
                device = "unit-17"
                "#,
            )?;
            let c = load(&Overrides::default())?;
            assert_eq!(c.ftp.tls.required, TlsRequired::All);
            assert_eq!(
                c.ftp.tls.files(),
                Some((
                    Path::new("/etc/telegaz/cert.pem"),
                    Path::new("/etc/telegaz/key.pem")
                ))
            );
            assert_eq!(
                c.tcp_listen().map_err(|e| e.to_string())?,
                Some(
                    "0.0.0.0:2200"
                        .parse()
                        .map_err(|e: std::net::AddrParseError| e.to_string())?
                )
            );
            assert_eq!(c.tcp.idle_timeout, Duration::from_secs(45));
            assert_eq!(c.tcp.by_address[0].device, "unit-17");

            let bad = |jail: &mut Jail, toml: &str, want: &str| -> figment::error::Result<()> {
                jail.create_file("telegaz.toml", toml)?;
                let e = load(&Overrides::default()).unwrap_err();
                assert!(e.contains(want), "{e}");
                Ok(())
            };
            bad(
                jail,
                "[ftp.tls]\ncertificate = \"c.pem\"\n",
                "ftp.tls.key is not",
            )?;
            bad(
                jail,
                "[ftp.tls]\nrequired = \"all\"\n",
                "needs ftp.tls.certificate",
            )?;
            bad(jail, "[ftp.tls]\nrequired = \"some\"\n", "required")?;
            bad(jail, "[tcp]\nlisten = \"nowhere\"\n", "tcp.listen")?;
            bad(
                jail,
                "[[tcp.by_address]]\naddress = \"10.0.0.1\"\ndevice = \"a\"\n[[tcp.by_address]]\naddress = \"10.0.0.1\"\ndevice = \"b\"\n",
                "twice",
            )?;
            Ok(())
        });
    }

    #[test]
    fn typos_and_bad_values_are_explained() {
        Jail::expect_with(|jail| {
            jail.create_file("telegaz.toml", "[ftp]\nlisen = \"x\"\n")?;
            let e = load(&Overrides::default()).unwrap_err();
            assert!(e.contains("lisen"), "{e}");
            jail.create_file("telegaz.toml", "[ftp]\nlisten = \"nowhere\"\n")?;
            let e = load(&Overrides::default()).unwrap_err();
            assert!(e.contains("ADDRESS:PORT"), "{e}");
            jail.create_file("telegaz.toml", "[ftp]\npassive_ports = \"9-3\"\n")?;
            let e = load(&Overrides::default()).unwrap_err();
            assert!(e.contains("9-3"), "{e}");
            jail.create_file("telegaz.toml", "[ftp]\nmax_file_size = 0\n")?;
            let e = load(&Overrides::default()).unwrap_err();
            assert!(e.contains("max_file_size"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn smtp_and_deliveries_from_file_and_env() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "telegaz.toml",
                r#"
                [smtp]
                host = "mail.example.ru"
                from = "Telegaz <telegaz@example.ru>"
                username = "telegaz"

                [[delivery]]
                name = "daily-kotelnaya"
                devices = ["kotelnaya-1", "kotelnaya-2"]
                recipients = ["dispatcher@example.ru", "Иванов <ivanov@example.ru>"]

                [[delivery]]
                name = "hourly"
                devices = ["shrp-7"]
                recipients = ["a@example.ru"]
                format = "csv-1251"
                rows = "hourly"
                delay = "2h"
                subject = "{name}: {devices} за {gas_day}"

                [delivery_policy]
                retry = ["10s", "1m"]
                catch_up_days = 3
                "#,
            )?;
            // A password that figment would otherwise read as a number.
            jail.set_env("TELEGAZ_SMTP__PASSWORD", "007123");
            jail.set_env("TELEGAZ_SMTP__PORT", "2525");
            let c = load(&Overrides::default())?;
            assert_eq!(c.smtp.host, "mail.example.ru");
            assert_eq!(c.smtp.port(), 2525);
            assert_eq!(c.smtp.tls, SmtpTls::Starttls);
            assert_eq!(c.smtp.password.as_ref().map(Secret::expose), Some("007123"));
            let debug = format!("{c:?}");
            assert!(!debug.contains("007123"), "{debug}");
            assert!(debug.contains("REDACTED"), "{debug}");
            assert_eq!(c.delivery.len(), 2);
            let d = &c.delivery[0];
            assert_eq!(d.format, DeliveryFormat::Xlsx);
            assert_eq!(d.rows, ReportRows::Daily);
            assert_eq!(d.delay, Duration::from_secs(1800));
            assert_eq!(d.subject, None);
            let h = &c.delivery[1];
            assert_eq!(h.format, DeliveryFormat::Csv1251);
            assert_eq!(h.rows, ReportRows::Hourly);
            assert_eq!(h.delay, Duration::from_secs(7200));
            assert_eq!(
                c.delivery_policy.retry,
                [Duration::from_secs(10), Duration::from_secs(60)]
            );
            assert_eq!(c.delivery_policy.catch_up_days, 3);
            Ok(())
        });
    }

    #[test]
    fn alerts_and_notifiers_from_file_without_secrets_in_debug() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "telegaz.toml",
                r#"
                [alerts]
                silent_grace = "45m"
                digest_threshold = 50

                [[notifier]]
                name = "dispatchers"
                type = "telegram"
                token = "123456:SECRET-TOKEN"
                chat_id = "-100200300"
                "#,
            )?;
            jail.set_env("TELEGAZ_ALERTS__EVALUATE_EVERY", "30s");
            let c = load(&Overrides::default())?;
            assert_eq!(c.alerts.silent_grace, Duration::from_secs(45 * 60));
            assert_eq!(c.alerts.evaluate_every, Duration::from_secs(30));
            assert_eq!(c.alerts.digest_threshold, 50);
            assert!(c.alerts.enabled);
            assert_eq!(c.notifier.len(), 1);
            assert_eq!(
                c.notifier[0].0.get("chat_id").and_then(|v| v.as_str()),
                Some("-100200300")
            );
            let debug = format!("{c:?}");
            assert!(!debug.contains("SECRET-TOKEN"), "{debug}");
            assert!(debug.contains("dispatchers"), "{debug}");
            Ok(())
        });
    }

    #[test]
    fn smtp_defaults_and_ports() {
        let mut smtp = SmtpConfig::default();
        assert!(!smtp.is_configured());
        assert_eq!(smtp.tls, SmtpTls::Starttls);
        assert_eq!(smtp.port(), 587);
        smtp.tls = SmtpTls::Tls;
        assert_eq!(smtp.port(), 465);
        smtp.tls = SmtpTls::None;
        assert_eq!(smtp.port(), 25);
        let p = DeliveryPolicyConfig::default();
        assert_eq!(p.retry.len(), 5);
        assert_eq!(p.catch_up_days, 1);
    }

    #[test]
    fn bad_delivery_settings_are_explained() {
        let smtp = "[smtp]\nhost = \"mail\"\nfrom = \"t@example.ru\"\n";
        let delivery = |extra: &str| {
            format!(
                "{smtp}[[delivery]]\nname = \"d1\"\ndevices = [\"u\"]\nrecipients = [\"a@example.ru\"]\n{extra}"
            )
        };
        let cases = [
            (
                "[[delivery]]\nname = \"d\"\ndevices = [\"u\"]\nrecipients = [\"a@b\"]\n".to_string(),
                "smtp.host",
            ),
            (
                "[smtp]\nhost = \"mail\"\n[[delivery]]\nname = \"d\"\ndevices = [\"u\"]\nrecipients = [\"a@b\"]\n"
                    .to_string(),
                "smtp.from",
            ),
            (delivery("format = \"pdf\""), "pdf"),
            (delivery("subjekt = \"x\""), "subjekt"),
            (delivery("subject = \"{device}\""), "{device}"),
            (delivery("delay = \"8d\""), "delay"),
            (
                format!("{smtp}[[delivery]]\nname = \"d 1\"\ndevices = [\"u\"]\nrecipients = [\"a@b\"]\n"),
                "letters, digits",
            ),
            (
                format!("{smtp}[[delivery]]\nname = \"d\"\ndevices = []\nrecipients = [\"a@b\"]\n"),
                "at least one device",
            ),
            (
                format!("{smtp}[[delivery]]\nname = \"d\"\ndevices = [\"u\"]\nrecipients = [\"nobody\"]\n"),
                "\"nobody\" is not an e-mail address",
            ),
            (
                format!("{}{}", delivery(""), delivery("").replace(smtp, "")),
                "two deliveries",
            ),
            (
                "[smtp]\nhost = \"mail\"\nusername = \"u\"\n".to_string(),
                "go together",
            ),
            (
                "[delivery_policy]\nretry = [\"0s\"]\n".to_string(),
                "delivery_policy.retry",
            ),
            (
                "[delivery_policy]\ncatch_up_days = 0\n".to_string(),
                "catch_up_days",
            ),
        ];
        assert_each_rejected(&cases);
    }

    #[test]
    fn s3_storage_from_file_and_env_with_secrets_kept_out_of_debug() {
        Jail::expect_with(|jail| {
            let c = load(&Overrides::default())?;
            assert_eq!(c.storage.raw, RawStorageKind::Local, "local by default");
            jail.create_file(
                "telegaz.toml",
                r#"
                [storage]
                raw = "s3"
                retry_interval = "5s"
                [storage.s3]
                endpoint = "http://127.0.0.1:9000"
                bucket = "telegaz-raw"
                prefix = "site-a/"
                access_key_id = "from-file"
                secret_access_key = "file-secret"
                "#,
            )?;
            let c = load(&Overrides::default())?;
            assert_eq!(c.storage.raw, RawStorageKind::S3);
            assert_eq!(c.storage.retry_interval, Duration::from_secs(5));
            assert_eq!(c.storage.s3.region, "us-east-1");
            assert!(c.storage.s3.path_style);
            assert_eq!(c.storage.s3.access_key_id.as_deref(), Some("from-file"));
            jail.set_env("TELEGAZ_STORAGE__S3__BUCKET", "other-bucket");
            jail.set_env("TELEGAZ_STORAGE__S3__ACCESS_KEY_ID", "123456");
            jail.set_env("TELEGAZ_STORAGE__S3__SECRET_ACCESS_KEY", "000111");
            jail.set_env("TELEGAZ_STORAGE__S3__PATH_STYLE", "false");
            let c = load(&Overrides::default())?;
            assert_eq!(c.storage.s3.bucket, "other-bucket");
            assert!(!c.storage.s3.path_style);
            assert_eq!(c.storage.s3.access_key_id.as_deref(), Some("123456"));
            assert_eq!(
                c.storage.s3.secret_access_key.as_ref().map(Secret::expose),
                Some("000111"),
                "a numeric-looking secret is taken as it is"
            );
            let debug = format!("{c:?}");
            assert!(!debug.contains("000111"), "{debug}");
            let shown = toml::to_string(&c).unwrap();
            assert!(!shown.contains("000111"), "{shown}");
            Ok(())
        });
    }

    #[test]
    fn aws_variables_are_below_the_file() {
        Jail::expect_with(|jail| {
            jail.set_env("AWS_ACCESS_KEY_ID", "aws-key");
            jail.set_env("AWS_SECRET_ACCESS_KEY", "aws-secret");
            jail.create_file(
                "telegaz.toml",
                "[storage]\nraw = \"s3\"\n[storage.s3]\nendpoint = \"https://s3.example.ru\"\nbucket = \"raw\"\n",
            )?;
            let c = load(&Overrides::default())?;
            assert_eq!(c.storage.s3.access_key_id.as_deref(), Some("aws-key"));
            assert_eq!(
                c.storage.s3.secret_access_key.as_ref().map(Secret::expose),
                Some("aws-secret")
            );
            jail.set_env("TELEGAZ_STORAGE__S3__ACCESS_KEY_ID", "telegaz-key");
            let c = load(&Overrides::default())?;
            assert_eq!(c.storage.s3.access_key_id.as_deref(), Some("telegaz-key"));
            Ok(())
        });
    }

    #[test]
    fn bad_storage_settings_are_explained() {
        let s3 = |extra: &str| {
            format!(
                "[storage]\nraw = \"s3\"\n[storage.s3]\nendpoint = \"http://127.0.0.1:9000\"\nbucket = \"raw\"\n{extra}"
            )
        };
        let cases = [
            ("[storage]\nraw = \"ftp\"\n".to_string(), "ftp"),
            (
                "[storage]\nraw = \"s3\"\n".to_string(),
                "storage.s3.endpoint",
            ),
            (
                s3("").replace("http://127.0.0.1:9000", "s3.example.ru"),
                "http://",
            ),
            (
                s3("").replace("\"raw\"\n", "\"Raw_Files\"\n"),
                "storage.s3.bucket",
            ),
            (s3("region = \"\""), "storage.s3.region"),
            (s3("access_key_id = \"k\""), "go together"),
            (s3("timeout = \"0s\""), "storage.s3.timeout"),
            (s3("buckit = \"x\""), "buckit"),
            (s3("[ftp]\nmax_file_size = 6000000000"), "5 GiB"),
            (
                "[storage]\nretry_interval = \"0s\"\n".to_string(),
                "retry_interval",
            ),
        ];
        assert_each_rejected(&cases);
    }

    #[test]
    fn web_rate_limits_from_file_and_env_and_bad_ones_refused() {
        Jail::expect_with(|jail| {
            let c = load(&Overrides::default())?;
            let d = &c.web.rate_limit;
            assert!(d.requests_per_second > 0.0 && d.burst > 0, "on by default");
            assert!(d.sign_in_per_minute > 0.0 && d.bad_token_failures > 0);
            assert!(d.trusted_proxies.is_empty(), "no proxy trusted by default");
            assert!(
                d.unlimited_scrapers
                    .iter()
                    .any(|n| n.contains(&"127.0.0.1".parse::<IpAddr>().unwrap()))
            );
            jail.create_file(
                "telegaz.toml",
                r#"
                [web.rate_limit]
                requests_per_second = 0.5
                burst = 3
                sign_in_per_minute = 2
                bad_token_block = "2s"
                trusted_proxies = ["10.1.0.0/16"]
                unlimited_scrapers = []
                "#,
            )?;
            jail.set_env("TELEGAZ_WEB__RATE_LIMIT__SIGN_IN_BURST", "4");
            let c = load(&Overrides::default())?;
            let r = &c.web.rate_limit;
            assert_eq!(r.requests_per_second, 0.5);
            assert_eq!(r.burst, 3);
            assert_eq!(r.sign_in_per_minute, 2.0);
            assert_eq!(r.sign_in_burst, 4);
            assert_eq!(r.bad_token_block, Duration::from_secs(2));
            assert_eq!(r.trusted_proxies, vec!["10.1.0.0/16".parse().unwrap()]);
            assert!(r.unlimited_scrapers.is_empty());
            Ok(())
        });
        let cases: Vec<(String, &str)> = vec![
            (
                "[web.rate_limit]\nrequests_per_second = -1".into(),
                "web.rate_limit.requests_per_second",
            ),
            (
                "[web.rate_limit]\nburst = 0".into(),
                "web.rate_limit.burst must be at least 1",
            ),
            (
                "[web.rate_limit]\nsign_in_per_minute = 1e-9".into(),
                "use 0 to turn the limit off",
            ),
            (
                "[web.rate_limit]\nbad_token_block = \"0s\"".into(),
                "web.rate_limit.bad_token_block",
            ),
            (
                "[web.rate_limit]\nmax_clients = 0".into(),
                "web.rate_limit.max_clients",
            ),
            (
                "[web.rate_limit]\ntrusted_proxies = [\"proxy\"]".into(),
                "trusted_proxies",
            ),
        ];
        assert_each_rejected(&cases);
        // Turned off, zero bursts are fine.
        Jail::expect_with(|jail| {
            jail.create_file(
                "telegaz.toml",
                "[web.rate_limit]\nrequests_per_second = 0\nburst = 0",
            )?;
            load(&Overrides::default())?;
            Ok(())
        });
    }

    #[test]
    fn missing_explicit_file_is_an_error() {
        let e = Config::load(
            Some(Path::new("/nonexistent/telegaz.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::MissingFile(_)));
    }

    #[test]
    fn receiver_id_is_checked() {
        Jail::expect_with(|jail| {
            assert_eq!(load(&Overrides::default())?.receiver_id, None);
            jail.set_env("TELEGAZ_RECEIVER_ID", "rx-a.example_1");
            assert_eq!(
                load(&Overrides::default())?.receiver_id.as_deref(),
                Some("rx-a.example_1")
            );
            jail.set_env("TELEGAZ_RECEIVER_ID", "7");
            assert_eq!(
                load(&Overrides::default())?.receiver_id.as_deref(),
                Some("7")
            );
            jail.set_env("TELEGAZ_RECEIVER_ID", "a b");
            let e = load(&Overrides::default()).unwrap_err();
            assert!(e.contains("receiver_id"), "{e}");
            Ok(())
        });
        assert!(check_receiver_id("").is_err());
        assert!(check_receiver_id(&"x".repeat(65)).is_err());
        assert!(check_receiver_id(&"x".repeat(64)).is_ok());
    }
}
