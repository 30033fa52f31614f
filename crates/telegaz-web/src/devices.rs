//! Registering and changing devices, for the web UI and the REST API alike:
//! one set of checks, one way of hashing passwords, one audit record per
//! change saying who made it and how.

use secrecy::SecretString;
use telegaz_auth::NetworkAllowList;
use telegaz_domain::{AuditKind, Device, DeviceName, NewAuditEvent, Role};
use telegaz_store::{DeviceUpdate, NewDevice};

use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

/// Longest title accepted (characters).
pub(crate) const MAX_TITLE: usize = 500;

fn bad(message: impl Into<String>) -> WebError {
    WebError::BadRequest(message.into())
}

pub(crate) fn check_title(title: &str) -> Result<(), WebError> {
    if title.chars().count() > MAX_TITLE {
        return Err(bad(format!(
            "the title is longer than {MAX_TITLE} characters"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(bad(
            "the title may not contain control characters (line breaks, tabs)",
        ));
    }
    Ok(())
}

pub(crate) fn check_networks(networks: &[String]) -> Result<Vec<String>, WebError> {
    NetworkAllowList::parse(networks)
        .map(|n| n.to_strings())
        .map_err(|e| bad(e.to_string()))
}

pub(crate) fn check_zone(zone: &str) -> Result<(), WebError> {
    jiff::tz::TimeZone::get(zone).map(|_| ()).map_err(|_| {
        bad(format!(
            "{zone:?} is not a time zone this system knows; use an IANA name such as Europe/Moscow or Asia/Yekaterinburg"
        ))
    })
}

pub(crate) fn check_hour(hour: i64) -> Result<i8, WebError> {
    i8::try_from(hour)
        .ok()
        .filter(|h| (0..=23).contains(h))
        .ok_or_else(|| bad(format!("the contract hour {hour} is not an hour (0 to 23)")))
}

/// The password to set: the one given (checked), or a strong generated one.
fn password_or_generated(pw: Option<String>) -> Result<(SecretString, bool), WebError> {
    match pw {
        Some(pw) if pw.is_empty() => Err(bad(
            "the password is empty; leave it out to have one generated",
        )),
        Some(pw) if pw.chars().count() > 128 => {
            Err(bad("the password is longer than 128 characters"))
        }
        Some(pw) => Ok((SecretString::from(pw), false)),
        None => Ok((telegaz_auth::generate_password(), true)),
    }
}

/// Hash a password (argon2id) off the async threads.
pub(crate) async fn hash(pw: &SecretString) -> Result<String, WebError> {
    hash_with(pw, telegaz_auth::hash_password).await
}

/// A device password's hash: cheap argon2id parameters for a generated one
/// (it is long and random), the memory-hard default for one a person chose.
async fn hash_device_password(pw: &SecretString, generated: bool) -> Result<String, WebError> {
    hash_with(pw, move |p| {
        telegaz_auth::hash_device_password(p, generated)
    })
    .await
}

async fn hash_with(
    pw: &SecretString,
    f: impl FnOnce(&SecretString) -> Result<String, telegaz_auth::PasswordError> + Send + 'static,
) -> Result<String, WebError> {
    let pw = pw.clone();
    tokio::task::spawn_blocking(move || f(&pw))
        .await
        .map_err(|e| WebError::Internal(format!("password hashing task: {e}")))?
        .map_err(|e| WebError::Internal(format!("password hashing: {e}")))
}

fn networks_text(networks: &[String]) -> String {
    if networks.is_empty() {
        "any address".to_owned()
    } else {
        networks.join(", ")
    }
}

/// Record who changed what on a device, and how (`via`: the web UI, the API).
async fn audit(
    ctx: &Ctx,
    auth: &Auth,
    via: &str,
    device: &Device,
    what: &str,
) -> Result<(), WebError> {
    let mut e = NewAuditEvent::new(AuditKind::DeviceChanged, "ok");
    e.device_id = Some(device.id);
    e.login = Some(device.login.to_string());
    e.detail = format!("{what} (by {} via {via})", auth.user.name);
    ctx.db.insert_audit(&[e]).await?;
    tracing::info!(device = %device.name, user = %auth.user.name, via, change = %what, "device changed");
    Ok(())
}

/// A unit to register.
#[derive(Default)]
pub(crate) struct Registration {
    pub name: String,
    pub login: Option<String>,
    pub title: Option<String>,
    pub networks: Vec<String>,
    pub time_zone: Option<String>,
    pub contract_hour: Option<i64>,
    pub password: Option<String>,
}

/// A registered unit and its password; `generated` when Telegaz made it up
/// (it is then shown once).
pub(crate) struct Registered {
    pub device: Device,
    pub password: SecretString,
    pub generated: bool,
}

pub(crate) async fn register(
    ctx: &Ctx,
    auth: &Auth,
    via: &str,
    r: Registration,
) -> Result<Registered, WebError> {
    auth.require(Role::Operator)?;
    let name = DeviceName::parse(r.name.trim()).map_err(|e| bad(e.to_string()))?;
    let login = match r.login.as_deref().map(str::trim).filter(|l| !l.is_empty()) {
        Some(l) => DeviceName::parse(l).map_err(|e| bad(e.to_string()))?,
        None => name.clone(),
    };
    if let Some(t) = &r.title {
        check_title(t)?;
    }
    let networks = check_networks(&r.networks)?;
    if let Some(z) = &r.time_zone {
        check_zone(z)?;
    }
    let contract_hour = r.contract_hour.map(check_hour).transpose()?;
    let (password, generated) = password_or_generated(r.password)?;
    let device = ctx
        .db
        .create_device(NewDevice {
            name,
            login,
            password_hash: hash_device_password(&password, generated).await?,
            allowed_networks: networks,
        })
        .await?;
    let update = DeviceUpdate {
        title: r.title,
        time_zone: r.time_zone,
        contract_hour,
        ..DeviceUpdate::default()
    };
    let device =
        if update.title.is_some() || update.time_zone.is_some() || update.contract_hour.is_some() {
            ctx.db.update_device(device.id, update).await?
        } else {
            device
        };
    let what = format!(
        "device {} added (login {}, allowed from {}, time zone {}, gas day from {:02}:00)",
        device.name,
        device.login,
        networks_text(&device.allowed_networks),
        device.time_zone,
        device.contract_hour
    );
    audit(ctx, auth, via, &device, &what).await?;
    Ok(Registered {
        device,
        password,
        generated,
    })
}

/// Changes to a unit; `None` leaves a setting as it is.
#[derive(Default)]
pub(crate) struct Change {
    pub title: Option<String>,
    pub enabled: Option<bool>,
    pub networks: Option<Vec<String>>,
    pub time_zone: Option<String>,
    pub contract_hour: Option<i64>,
}

impl Change {
    pub(crate) fn is_empty(&self) -> bool {
        self.title.is_none()
            && self.enabled.is_none()
            && self.networks.is_none()
            && self.time_zone.is_none()
            && self.contract_hour.is_none()
    }
}

/// Apply the changes that differ from the unit's settings, checked first
/// (nothing is changed when any value is bad), audited as one record.
pub(crate) async fn change(
    ctx: &Ctx,
    auth: &Auth,
    via: &str,
    device: &Device,
    c: Change,
) -> Result<Device, WebError> {
    auth.require(Role::Operator)?;
    let mut changes = Vec::new();
    let mut update = DeviceUpdate::default();
    if let Some(t) = c.title {
        check_title(&t)?;
        if t != device.title {
            changes.push(format!("title set to {t:?}"));
            update.title = Some(t);
        }
    }
    if let Some(n) = c.networks {
        let n = check_networks(&n)?;
        if n != device.allowed_networks {
            changes.push(format!("allowed networks: {}", networks_text(&n)));
            update.allowed_networks = Some(n);
        }
    }
    if let Some(z) = c.time_zone {
        check_zone(&z)?;
        if z != device.time_zone {
            changes.push(format!("time zone {} -> {z}", device.time_zone));
            update.time_zone = Some(z);
        }
    }
    if let Some(h) = c.contract_hour {
        let h = check_hour(h)?;
        if h != device.contract_hour {
            changes.push(format!(
                "gas day from {:02}:00 -> {h:02}:00",
                device.contract_hour
            ));
            update.contract_hour = Some(h);
        }
    }
    if let Some(e) = c.enabled
        && e != device.enabled
    {
        changes.push(if e { "enabled" } else { "disabled" }.to_owned());
        update.enabled = Some(e);
    }
    if changes.is_empty() {
        return Ok(device.clone());
    }
    let after = ctx.db.update_device(device.id, update).await?;
    audit(ctx, auth, via, &after, &changes.join("; ")).await?;
    Ok(after)
}

/// Set a new password (the one given, or a generated one shown once).
pub(crate) async fn new_password(
    ctx: &Ctx,
    auth: &Auth,
    via: &str,
    device: &Device,
    password: Option<String>,
) -> Result<Registered, WebError> {
    auth.require(Role::Operator)?;
    let (password, generated) = password_or_generated(password)?;
    let device = ctx
        .db
        .update_device(
            device.id,
            DeviceUpdate {
                password_hash: Some(hash_device_password(&password, generated).await?),
                ..DeviceUpdate::default()
            },
        )
        .await?;
    audit(ctx, auth, via, &device, "password changed").await?;
    Ok(Registered {
        device,
        password,
        generated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_checked_with_clear_messages() {
        assert_eq!(check_hour(6).ok(), Some(6));
        assert!(check_hour(24).is_err());
        assert!(check_hour(-1).is_err());
        assert!(check_zone("Asia/Yekaterinburg").is_ok());
        assert!(check_zone("Mars/Olympus").is_err());
        assert_eq!(
            check_networks(&["10.0.0.0/8".into(), "192.0.2.1".into()]).ok(),
            Some(vec!["10.0.0.0/8".to_owned(), "192.0.2.1/32".to_owned()])
        );
        assert!(check_networks(&["not-a-net".into()]).is_err());
        assert!(check_title(&"я".repeat(MAX_TITLE + 1)).is_err());
        assert!(check_title("a\nb").is_err());
        assert!(
            check_title("<script>alert(1)</script>").is_ok(),
            "markup is text, escaped when shown"
        );
        assert!(password_or_generated(Some(String::new())).is_err());
        assert!(password_or_generated(None).is_ok_and(|(_, generated)| generated));
    }
}
