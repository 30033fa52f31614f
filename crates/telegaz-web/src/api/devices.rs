//! Devices: list, show, register, change, new password.

use std::collections::HashMap;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use telegaz_auth::NetworkAllowList;
use telegaz_domain::{AuditKind, Device, DeviceName, NewAuditEvent};
use telegaz_store::{DeviceActivity, DeviceUpdate, NewDevice};

use super::{ApiError, ApiJson, ApiPath, ApiResult, bad_request, find_device, local};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;
use crate::pages::fleet::{UnitState, unit_state};
use telegaz_domain::Role;

/// Longest title accepted (characters).
const MAX_TITLE: usize = 500;

/// A device as the API shows it (never its password hash).
#[derive(Debug, Serialize)]
pub(crate) struct DeviceJson {
    id: i64,
    name: String,
    login: String,
    title: String,
    enabled: bool,
    allowed_networks: Vec<String>,
    time_zone: String,
    contract_hour: i8,
    created_at: Timestamp,
    state: UnitState,
    last_contact: Option<Timestamp>,
    /// Local time of the newest hourly reading.
    newest_data: Option<String>,
    /// Uploads whose ingest ended quarantined or failed.
    problem_uploads: u64,
}

fn to_json(ctx: &Ctx, d: &Device, a: Option<&DeviceActivity>, now: Timestamp) -> DeviceJson {
    let s = &ctx.settings;
    DeviceJson {
        id: d.id.0,
        name: d.name.to_string(),
        login: d.login.to_string(),
        title: d.title.clone(),
        enabled: d.enabled,
        allowed_networks: d.allowed_networks.clone(),
        time_zone: d.time_zone.clone(),
        contract_hour: d.contract_hour,
        created_at: d.created_at,
        state: unit_state(d, a, now, s.late_after, s.silent_after),
        last_contact: a.and_then(DeviceActivity::last_contact),
        newest_data: a.and_then(|a| a.newest_reading).map(local),
        problem_uploads: a.map_or(0, |a| a.problem_uploads),
    }
}

async fn with_state(ctx: &Ctx, d: &Device) -> ApiResult<DeviceJson> {
    let activity = ctx.db.device_activity().await?;
    let a = activity.iter().find(|a| a.device_id == d.id);
    Ok(to_json(ctx, d, a, Timestamp::now()))
}

pub(crate) async fn list(State(ctx): State<Ctx>) -> ApiResult<Json<serde_json::Value>> {
    let devices = ctx.db.list_devices().await?;
    let activity: HashMap<_, _> = ctx
        .db
        .device_activity()
        .await?
        .into_iter()
        .map(|a| (a.device_id, a))
        .collect();
    let now = Timestamp::now();
    let rows: Vec<DeviceJson> = devices
        .iter()
        .map(|d| to_json(&ctx, d, activity.get(&d.id), now))
        .collect();
    Ok(Json(serde_json::json!({ "devices": rows })))
}

pub(crate) async fn one(
    State(ctx): State<Ctx>,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<DeviceJson>> {
    let d = find_device(&ctx, &name).await?;
    Ok(Json(with_state(&ctx, &d).await?))
}

fn check_title(title: &str) -> ApiResult<()> {
    if title.chars().count() > MAX_TITLE {
        return Err(bad_request(format!(
            "the title is longer than {MAX_TITLE} characters"
        )));
    }
    if title.chars().any(char::is_control) {
        return Err(bad_request(
            "the title may not contain control characters (line breaks, tabs)",
        ));
    }
    Ok(())
}

fn check_networks(networks: &[String]) -> ApiResult<Vec<String>> {
    NetworkAllowList::parse(networks)
        .map(|n| n.to_strings())
        .map_err(|e| bad_request(e.to_string()))
}

fn check_zone(zone: &str) -> ApiResult<()> {
    jiff::tz::TimeZone::get(zone).map(|_| ()).map_err(|_| {
        bad_request(format!(
            "{zone:?} is not a time zone this system knows; use an IANA name such as Europe/Moscow"
        ))
    })
}

fn check_hour(hour: i64) -> ApiResult<i8> {
    i8::try_from(hour)
        .ok()
        .filter(|h| (0..=23).contains(h))
        .ok_or_else(|| bad_request(format!("contract_hour {hour} is not an hour (0..=23)")))
}

fn check_password(pw: Option<String>) -> ApiResult<(SecretString, bool)> {
    match pw {
        Some(pw) if pw.is_empty() => Err(bad_request(
            "the password is empty; leave it out to have one generated",
        )),
        Some(pw) if pw.chars().count() > 128 => {
            Err(bad_request("the password is longer than 128 characters"))
        }
        Some(pw) => Ok((SecretString::from(pw), false)),
        None => Ok((telegaz_auth::generate_password(), true)),
    }
}

async fn hash(pw: &SecretString) -> ApiResult<String> {
    let pw = pw.clone();
    tokio::task::spawn_blocking(move || telegaz_auth::hash_password(&pw))
        .await
        .map_err(|e| ApiError(WebError::Internal(format!("password hashing task: {e}"))))?
        .map_err(|e| ApiError(WebError::Internal(format!("password hashing: {e}"))))
}

/// Record who changed what on a device.
async fn audit(ctx: &Ctx, auth: &Auth, device: &Device, what: &str) -> ApiResult<()> {
    let mut e = NewAuditEvent::new(AuditKind::DeviceChanged, "ok");
    e.device_id = Some(device.id);
    e.login = Some(device.login.to_string());
    e.detail = format!("{what} (by {} via the API)", auth.user.name);
    ctx.db.insert_audit(&[e]).await?;
    tracing::info!(device = %device.name, user = %auth.user.name, change = %what, "device changed through the API");
    Ok(())
}

fn networks_text(networks: &[String]) -> String {
    if networks.is_empty() {
        "any address".to_owned()
    } else {
        networks.join(", ")
    }
}

/// `POST /devices`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewDeviceBody {
    name: String,
    login: Option<String>,
    title: Option<String>,
    allowed_networks: Option<Vec<String>>,
    time_zone: Option<String>,
    contract_hour: Option<i64>,
    password: Option<String>,
}

pub(crate) async fn create(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiJson(body): ApiJson<NewDeviceBody>,
) -> ApiResult<Response> {
    // The route layer checked it already; say it here too.
    auth.require(Role::Operator)?;
    let name = DeviceName::parse(&body.name).map_err(|e| bad_request(e.to_string()))?;
    let login = match &body.login {
        Some(l) => DeviceName::parse(l).map_err(|e| bad_request(e.to_string()))?,
        None => name.clone(),
    };
    if let Some(t) = &body.title {
        check_title(t)?;
    }
    let networks = check_networks(body.allowed_networks.as_deref().unwrap_or(&[]))?;
    if let Some(z) = &body.time_zone {
        check_zone(z)?;
    }
    let contract_hour = body.contract_hour.map(check_hour).transpose()?;
    let (password, generated) = check_password(body.password)?;
    let device = ctx
        .db
        .create_device(NewDevice {
            name,
            login,
            password_hash: hash(&password).await?,
            allowed_networks: networks,
        })
        .await?;
    let update = DeviceUpdate {
        title: body.title.clone(),
        time_zone: body.time_zone.clone(),
        contract_hour,
        ..Default::default()
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
    audit(&ctx, &auth, &device, &what).await?;
    let mut out = serde_json::json!({ "device": with_state(&ctx, &device).await? });
    if generated {
        out["password"] = password.expose_secret().into();
    }
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `PATCH /devices/{name}`: the fields given are changed.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DevicePatch {
    title: Option<String>,
    enabled: Option<bool>,
    allowed_networks: Option<Vec<String>>,
    time_zone: Option<String>,
    contract_hour: Option<i64>,
}

pub(crate) async fn update(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<DevicePatch>,
) -> ApiResult<Json<DeviceJson>> {
    // The route layer checked it already; say it here too.
    auth.require(Role::Operator)?;
    let device = find_device(&ctx, &name).await?;
    let mut changes = Vec::new();
    let mut update = DeviceUpdate::default();
    if let Some(t) = body.title {
        check_title(&t)?;
        changes.push(format!("title set to {t:?}"));
        update.title = Some(t);
    }
    if let Some(e) = body.enabled {
        changes.push(if e { "enabled" } else { "disabled" }.to_owned());
        update.enabled = Some(e);
    }
    if let Some(n) = body.allowed_networks {
        let n = check_networks(&n)?;
        changes.push(format!("allowed networks: {}", networks_text(&n)));
        update.allowed_networks = Some(n);
    }
    if let Some(z) = body.time_zone {
        check_zone(&z)?;
        changes.push(format!("time zone {z}"));
        update.time_zone = Some(z);
    }
    if let Some(h) = body.contract_hour {
        let h = check_hour(h)?;
        changes.push(format!("gas day from {h:02}:00"));
        update.contract_hour = Some(h);
    }
    if changes.is_empty() {
        return Err(bad_request(
            "nothing to change: give title, enabled, allowed_networks, time_zone or contract_hour",
        ));
    }
    let device = ctx.db.update_device(device.id, update).await?;
    audit(&ctx, &auth, &device, &changes.join("; ")).await?;
    Ok(Json(with_state(&ctx, &device).await?))
}

/// `POST /devices/{name}/password`: body optional.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    password: Option<String>,
}

pub(crate) async fn rotate_password(
    State(ctx): State<Ctx>,
    auth: Auth,
    ApiPath(name): ApiPath<String>,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    // The route layer checked it already; say it here too.
    auth.require(Role::Operator)?;
    let body: PasswordBody = if body.iter().all(u8::is_ascii_whitespace) {
        PasswordBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("bad JSON body: {e}")))?
    };
    let device = find_device(&ctx, &name).await?;
    let (password, generated) = check_password(body.password)?;
    let device = ctx
        .db
        .update_device(
            device.id,
            DeviceUpdate {
                password_hash: Some(hash(&password).await?),
                ..Default::default()
            },
        )
        .await?;
    audit(&ctx, &auth, &device, "password changed").await?;
    let mut out = serde_json::json!({
        "device": device.name.as_str(),
        "login": device.login.as_str(),
        "password_changed": true,
    });
    if generated {
        out["password"] = password.expose_secret().into();
    }
    Ok(Json(out))
}
