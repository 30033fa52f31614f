//! Telegaz configuration, in layers (later ones win):
//!
//! 1. built-in defaults, which work without any file;
//! 2. a TOML file (`--config FILE`, else `TELEGAZ_CONFIG`, else `./telegaz.toml` if present);
//! 3. `TELEGAZ_*` environment variables, sections separated by `__`
//!    (`TELEGAZ_FTP__LISTEN=0.0.0.0:21`, `TELEGAZ_DATA_DIR=/var/lib/telegaz`);
//! 4. command-line flags.

mod port_range;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use port_range::{InvalidPortRange, PortRange};

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
    pub ftp: FtpConfig,
    pub web: WebConfig,
    pub login_policy: LoginPolicyConfig,
    pub log: LogConfig,
    pub ingest: IngestConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./telegaz-data"),
            database_url: None,
            ftp: FtpConfig::default(),
            web: WebConfig::default(),
            login_policy: LoginPolicyConfig::default(),
            log: LogConfig::default(),
            ingest: IngestConfig::default(),
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
    /// Longest command line accepted (bytes); longer lines get 500.
    pub max_command_line: usize,
    /// Text of the 220 greeting.
    pub greeting: String,
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
            max_command_line: 4096,
            greeting: "Telegaz FTP ready".into(),
        }
    }
}

/// The HTTP listener (metrics and health now; the UI later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    pub listen: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8080".into(),
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
    #[serde(with = "humantime_serde")]
    pub block_for: Duration,
}

impl Default for LoginPolicyConfig {
    fn default() -> Self {
        LoginPolicyConfig {
            max_failures_per_login_and_address: 5,
            max_failures_per_address: 30,
            window: Duration::from_secs(15 * 60),
            block_for: Duration::from_secs(10 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The ingest pipeline inside `serve`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Parse uploads in this process. Turn off on receivers that only receive
    /// while another Telegaz (or `telegaz reparse`) parses; uploads stay queued.
    pub enabled: bool,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig { enabled: true }
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
    "ftp",
    "web",
    "login_policy",
    "log",
    "ingest",
];

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
        });
        Ok(fig
            .merge(env)
            .merge(Serialized::defaults(overrides.clone())))
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

    fn validated(self) -> Result<Config, ConfigError> {
        self.ftp_listen()?;
        self.web_listen()?;
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
        ];
        for (key, bad) in positive {
            if bad {
                return Err(ConfigError::Invalid(format!(
                    "{key} must be greater than zero"
                )));
            }
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
        Ok(self)
    }
}

fn parse_addr(key: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::Invalid(format!(
            "{key} = {value:?} is not ADDRESS:PORT (e.g. 0.0.0.0:2121 or [::]:2121)"
        ))
    })
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail closures return figment::Error
mod tests {
    use super::*;
    use figment::Jail;

    fn load(overrides: &Overrides) -> Result<Config, String> {
        Config::load(None, overrides).map_err(|e| e.to_string())
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
    fn missing_explicit_file_is_an_error() {
        let e = Config::load(
            Some(Path::new("/nonexistent/telegaz.toml")),
            &Overrides::default(),
        )
        .unwrap_err();
        assert!(matches!(e, ConfigError::MissingFile(_)));
    }
}
