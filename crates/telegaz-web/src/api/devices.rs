//! Devices: list, show, register, change, new password.

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use telegaz_domain::Device;
use telegaz_store::DeviceActivity;

use super::{ApiJson, ApiPath, ApiResult, bad_request, find_device, local};
use crate::auth::Auth;
use crate::pages::fleet::{UnitState, unit_state};
use crate::{Ctx, devices};

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
    let activity = ctx.db.device_activity(Some(d.id)).await?;
    let a = activity.iter().find(|a| a.device_id == d.id);
    Ok(to_json(ctx, d, a, Timestamp::now()))
}

pub(crate) async fn list(State(ctx): State<Ctx>) -> ApiResult<Json<serde_json::Value>> {
    let devices = ctx.db.list_devices().await?;
    let activity = telegaz_store::activity_by_device(&*ctx.db).await?;
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
    let r = devices::register(
        &ctx,
        &auth,
        "the API",
        devices::Registration {
            name: body.name,
            login: body.login,
            title: body.title,
            networks: body.allowed_networks.unwrap_or_default(),
            time_zone: body.time_zone,
            contract_hour: body.contract_hour,
            password: body.password,
        },
    )
    .await?;
    let mut out = serde_json::json!({ "device": with_state(&ctx, &r.device).await? });
    if r.generated {
        out["password"] = r.password.expose_secret().into();
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
    let device = find_device(&ctx, &name).await?;
    let change = devices::Change {
        title: body.title,
        enabled: body.enabled,
        networks: body.allowed_networks,
        time_zone: body.time_zone,
        contract_hour: body.contract_hour,
    };
    if change.is_empty() {
        return Err(bad_request(
            "nothing to change: give title, enabled, allowed_networks, time_zone or contract_hour",
        ));
    }
    let device = devices::change(&ctx, &auth, "the API", &device, change).await?;
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
    let body: PasswordBody = if body.iter().all(u8::is_ascii_whitespace) {
        PasswordBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| bad_request(format!("bad JSON body: {e}")))?
    };
    let device = find_device(&ctx, &name).await?;
    let r = devices::new_password(&ctx, &auth, "the API", &device, body.password).await?;
    let device = r.device;
    let mut out = serde_json::json!({
        "device": device.name.as_str(),
        "login": device.login.as_str(),
        "password_changed": true,
    });
    if r.generated {
        out["password"] = r.password.expose_secret().into();
    }
    Ok(Json(out))
}
