use std::io::{BufRead, IsTerminal};

use anyhow::{Context, bail};
use clap::Subcommand;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use telegaz_auth::NetworkAllowList;
use telegaz_config::Config;
use telegaz_domain::{AuditKind, Device, DeviceName, NewAuditEvent};
use telegaz_store::{Database, DeviceUpdate, NewDevice};

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Register a unit: its own FTP login and password.
    Add {
        /// Device name (latin letters, digits, - _ . @).
        name: String,
        /// FTP password. `-` reads it from standard input. Without it a strong
        /// password is generated and printed once.
        #[arg(long, value_name = "PW")]
        password: Option<String>,
        /// FTP login, if not the same as the name.
        #[arg(long, value_name = "LOGIN")]
        login: Option<String>,
        /// Allow connections only from this network (CIDR); repeat for several.
        #[arg(long = "allow", value_name = "CIDR")]
        allow: Vec<String>,
    },
    /// List devices.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (generated and printed once unless --password is given).
    Passwd {
        name: String,
        #[arg(long, value_name = "PW")]
        password: Option<String>,
    },
    /// Refuse the device's logins from now on.
    Disable { name: String },
    /// Accept the device's logins again.
    Enable { name: String },
    /// Change a device's settings.
    Set {
        name: String,
        /// Allow connections only from these networks (CIDR); repeat for several.
        #[arg(long = "allow", value_name = "CIDR", conflicts_with = "allow_any")]
        allow: Vec<String>,
        /// Allow connections from any address.
        #[arg(long)]
        allow_any: bool,
        /// Time zone of the device's clock (IANA name, e.g. Europe/Moscow, Asia/Yekaterinburg).
        #[arg(long, value_name = "ZONE")]
        tz: Option<String>,
        /// Hour (0-23) at which the device's gas day starts.
        #[arg(long, value_name = "H", value_parser = clap::value_parser!(i8).range(0..=23))]
        contract_hour: Option<i8>,
        /// Free text for people: site, address (shown in the web UI and on reports).
        #[arg(long, value_name = "TEXT")]
        title: Option<String>,
        /// Whether the unit must use FTPS: AUTH TLS before USER and PROT P for
        /// data (needs [ftp.tls]); its raw-TCP connections are refused.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        tls_required: Option<bool>,
    },
}

#[derive(Serialize)]
struct DeviceJson<'a> {
    id: i64,
    name: &'a str,
    login: &'a str,
    enabled: bool,
    allowed_networks: &'a [String],
    time_zone: &'a str,
    contract_hour: i8,
    tls_required: bool,
    created_at: String,
}

fn to_json(d: &Device) -> DeviceJson<'_> {
    DeviceJson {
        id: d.id.0,
        name: d.name.as_str(),
        login: d.login.as_str(),
        enabled: d.enabled,
        allowed_networks: &d.allowed_networks,
        time_zone: &d.time_zone,
        contract_hour: d.contract_hour,
        tls_required: d.tls_required,
        created_at: d.created_at.to_string(),
    }
}

/// The password to set: given, read from stdin (`-`), or generated.
pub(crate) fn password_from(arg: Option<String>) -> anyhow::Result<(SecretString, bool)> {
    match arg.as_deref() {
        Some("-") => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                eprintln!("Password (input is visible), then Enter:");
            }
            let mut line = String::new();
            stdin
                .lock()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let pw = line.trim_end_matches(['\r', '\n']).to_owned();
            Ok((SecretString::from(pw), false))
        }
        Some(pw) => Ok((SecretString::from(pw.to_owned()), false)),
        None => Ok((telegaz_auth::generate_password(), true)),
    }
}

pub(crate) async fn hash(pw: &SecretString) -> anyhow::Result<String> {
    hash_with(pw, telegaz_auth::hash_password).await
}

/// A device password's hash: cheap argon2id parameters for a generated one
/// (it is long and random), the memory-hard default for one a person chose.
pub(crate) async fn hash_device_password(
    pw: &SecretString,
    generated: bool,
) -> anyhow::Result<String> {
    hash_with(pw, move |p| {
        telegaz_auth::hash_device_password(p, generated)
    })
    .await
}

async fn hash_with(
    pw: &SecretString,
    f: impl FnOnce(&SecretString) -> Result<String, telegaz_auth::PasswordError> + Send + 'static,
) -> anyhow::Result<String> {
    let pw = pw.clone();
    tokio::task::spawn_blocking(move || f(&pw))
        .await
        .context("password hashing task failed")?
        .map_err(anyhow::Error::from)
}

async fn find(db: &dyn Database, name: &str) -> anyhow::Result<Device> {
    db.device_by_name(name).await?.with_context(|| {
        format!("no device named {name:?}; `telegaz device list` shows the registered ones")
    })
}

async fn audit(db: &dyn Database, device: &Device, detail: String) -> anyhow::Result<()> {
    let mut e = NewAuditEvent::new(AuditKind::DeviceChanged, "ok");
    e.device_id = Some(device.id);
    e.login = Some(device.login.to_string());
    e.detail = detail;
    db.insert_audit(&[e]).await?;
    Ok(())
}

fn print_password(device: &Device, pw: &SecretString, generated: bool) {
    if generated {
        println!(
            "Generated password for {} (shown once, store it now): {}",
            device.login,
            pw.expose_secret()
        );
    }
}

pub async fn run(config: &Config, cmd: DeviceCommand) -> anyhow::Result<()> {
    let db = crate::cli::open_db(config).await?;
    let db = &*db;
    match cmd {
        DeviceCommand::Add {
            name,
            password,
            login,
            allow,
        } => {
            let name = DeviceName::parse(&name)?;
            let login = match login {
                Some(l) => DeviceName::parse(&l)?,
                None => name.clone(),
            };
            let nets = NetworkAllowList::parse(&allow)?;
            let (pw, generated) = password_from(password)?;
            let device = db
                .create_device(NewDevice {
                    name,
                    login,
                    password_hash: hash_device_password(&pw, generated).await?,
                    allowed_networks: nets.to_strings(),
                })
                .await?;
            audit(db, &device, format!("device {} added", device.name)).await?;
            println!(
                "Added device {} (login {}){}",
                device.name,
                device.login,
                if device.allowed_networks.is_empty() {
                    String::new()
                } else {
                    format!(", allowed from {}", device.allowed_networks.join(", "))
                }
            );
            print_password(&device, &pw, generated);
        }
        DeviceCommand::List { json } => {
            let devices = db.list_devices().await?;
            if json {
                for d in &devices {
                    println!("{}", serde_json::to_string(&to_json(d))?);
                }
            } else if devices.is_empty() {
                println!("No devices yet. Add one with: telegaz device add NAME");
            } else {
                println!(
                    "{:<24} {:<24} {:<8} ALLOWED FROM",
                    "NAME", "LOGIN", "ENABLED"
                );
                for d in &devices {
                    println!(
                        "{:<24} {:<24} {:<8} {}",
                        d.name,
                        d.login,
                        if d.enabled { "yes" } else { "no" },
                        if d.allowed_networks.is_empty() {
                            "any".to_owned()
                        } else {
                            d.allowed_networks.join(",")
                        }
                    );
                }
            }
        }
        DeviceCommand::Passwd { name, password } => {
            let device = find(db, &name).await?;
            let (pw, generated) = password_from(password)?;
            let device = db
                .update_device(
                    device.id,
                    DeviceUpdate {
                        password_hash: Some(hash_device_password(&pw, generated).await?),
                        ..Default::default()
                    },
                )
                .await?;
            audit(db, &device, "password changed".into()).await?;
            println!("Password of {} changed.", device.name);
            print_password(&device, &pw, generated);
        }
        DeviceCommand::Disable { name } => set_enabled(db, &name, false).await?,
        DeviceCommand::Enable { name } => set_enabled(db, &name, true).await?,
        DeviceCommand::Set {
            name,
            allow,
            allow_any,
            tz,
            contract_hour,
            title,
            tls_required,
        } => {
            let device = find(db, &name).await?;
            if allow.is_empty()
                && !allow_any
                && tz.is_none()
                && contract_hour.is_none()
                && title.is_none()
                && tls_required.is_none()
            {
                bail!(
                    "nothing to change: give --allow CIDR (repeatable), --allow-any, --tz ZONE, --contract-hour H, --title TEXT or --tls-required true|false"
                );
            }
            if let Some(zone) = &tz {
                jiff::tz::TimeZone::get(zone).map_err(|e| {
                    anyhow::anyhow!("{zone:?} is not a time zone this system knows ({e}); use an IANA name such as Europe/Moscow")
                })?;
            }
            let networks = if allow.is_empty() && !allow_any {
                None
            } else {
                Some(NetworkAllowList::parse(&allow)?.to_strings())
            };
            let device = db
                .update_device(
                    device.id,
                    DeviceUpdate {
                        allowed_networks: networks.clone(),
                        time_zone: tz.clone(),
                        contract_hour,
                        title: title.clone(),
                        tls_required,
                        ..Default::default()
                    },
                )
                .await?;
            if networks.is_some() {
                let desc = if device.allowed_networks.is_empty() {
                    "any address".to_owned()
                } else {
                    device.allowed_networks.join(", ")
                };
                audit(db, &device, format!("allowed networks: {desc}")).await?;
                println!("{} may now connect from {desc}.", device.name);
            }
            if tz.is_some() || contract_hour.is_some() {
                let desc = format!(
                    "time zone {}, gas day from {:02}:00",
                    device.time_zone, device.contract_hour
                );
                audit(db, &device, desc.clone()).await?;
                println!("{}: {desc}.", device.name);
            }
            if title.is_some() {
                audit(db, &device, "title changed".into()).await?;
                println!("{}: title set.", device.name);
            }
            if let Some(required) = tls_required {
                let desc = if required {
                    "TLS required (AUTH TLS before USER, PROT P for data)"
                } else {
                    "TLS not required"
                };
                audit(db, &device, desc.into()).await?;
                println!("{}: {desc}.", device.name);
            }
        }
    }
    Ok(())
}

async fn set_enabled(db: &dyn Database, name: &str, enabled: bool) -> anyhow::Result<()> {
    let device = find(db, name).await?;
    let device = db
        .update_device(
            device.id,
            DeviceUpdate {
                enabled: Some(enabled),
                ..Default::default()
            },
        )
        .await?;
    let word = if enabled { "enabled" } else { "disabled" };
    audit(db, &device, format!("device {word}")).await?;
    println!("Device {} {word}.", device.name);
    Ok(())
}
