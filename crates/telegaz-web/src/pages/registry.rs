//! The device registry: add, edit, disable a unit; a strong password
//! generated and shown once; password rotation; a printable configuration
//! sheet with everything to enter in «Газсеть: Сервис».

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use telegaz_auth::NetworkAllowList;
use telegaz_domain::{AuditKind, Device, DeviceName, NewAuditEvent, Role};
use telegaz_store::{DeviceUpdate, NewDevice};

use super::{Common, html};
use crate::auth::Auth;
use crate::error::WebError;
use crate::{Ctx, SheetInfo};

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("registry_title", "Реестр устройств", "Device registry"),
    (
        "add_device",
        "Зарегистрировать устройство",
        "Register a device",
    ),
    (
        "device_name_hint",
        "латинские буквы, цифры и - _ . @ (так его вводит модем)",
        "latin letters, digits and - _ . @ (as the modem types it)",
    ),
    (
        "login_hint",
        "если отличается от имени",
        "if not the same as the name",
    ),
    ("time_zone", "Часовой пояс", "Time zone"),
    ("contract_hour", "Контрактный час", "Contract hour"),
    (
        "networks",
        "Разрешённые сети (CIDR)",
        "Allowed networks (CIDR)",
    ),
    (
        "networks_hint",
        "через запятую; пусто — любые адреса",
        "comma-separated; empty: any address",
    ),
    ("any_address", "любые адреса", "any address"),
    ("edit", "Изменить", "Edit"),
    ("edit_device", "Настройки устройства", "Device settings"),
    ("saved", "Сохранено.", "Saved."),
    ("rotate_password", "Сменить пароль", "Rotate password"),
    (
        "rotate_confirm",
        "Сменить пароль устройства? Старый перестанет действовать сразу.",
        "Rotate the device password? The old one stops working at once.",
    ),
    (
        "password_once",
        "Пароль показан один раз: распечатайте лист настройки или запишите пароль сейчас.",
        "The password is shown once: print the configuration sheet or write the password down now.",
    ),
    ("sheet", "Лист настройки", "Configuration sheet"),
    (
        "sheet_title",
        "Лист настройки БПЭК для «Газсеть: Сервис»",
        "БПЭК configuration sheet for «Газсеть: Сервис»",
    ),
    (
        "sheet_intro",
        "Введите эти значения в программе «Газсеть: Сервис» на вкладке настроек FTP.",
        "Enter these values in «Газсеть: Сервис», on the FTP settings tab.",
    ),
    ("sheet_server", "Адрес FTP-сервера", "FTP server address"),
    (
        "sheet_server_missing",
        "________________ (уточните у администратора Телегаз)",
        "________________ (ask the Telegaz administrator)",
    ),
    ("sheet_port", "Порт FTP", "FTP port"),
    (
        "sheet_password_blank",
        "________________ (выдан при регистрации; при утере — смените пароль)",
        "________________ (given at registration; if lost, rotate it)",
    ),
    (
        "sheet_passive",
        "Пассивный режим (PASV)",
        "Passive mode (PASV)",
    ),
    (
        "sheet_passive_value",
        "включить; порты данных сервера",
        "on; server data ports",
    ),
    ("sheet_dir", "Каталог на сервере", "Directory on the server"),
    (
        "sheet_dir_value",
        "/ (корневой; подкаталоги допускаются)",
        "/ (root; subdirectories are fine)",
    ),
    ("sheet_apn", "Точка доступа (APN)", "Access point (APN)"),
    ("sheet_schedule", "Расписание передачи", "Upload schedule"),
    (
        "sheet_second",
        "Второй (резервный) сервер",
        "Second (reserve) server",
    ),
    ("sheet_second_none", "не используется", "not used"),
    (
        "sheet_clock",
        "Часы корректора: часовой пояс / контрактный час",
        "Corrector clock: time zone / contract hour",
    ),
    ("print", "Печать", "Print"),
    ("disable", "Отключить", "Disable"),
    ("enable", "Включить", "Enable"),
    ("yes", "да", "yes"),
    ("no", "нет", "no"),
];

#[derive(Template)]
#[template(path = "registry.html")]
struct ListPage {
    c: Common,
    devices: Vec<Device>,
}

async fn list(
    State(ctx): State<Ctx>,
    auth: Auth,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let devices = ctx.db.list_devices().await?;
    html(&ListPage {
        c: Common::new(&auth, &uri.to_string()),
        devices,
    })
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    name: String,
    #[serde(default)]
    login: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    contract_hour: String,
    #[serde(default)]
    networks: String,
}

fn parse_networks(text: &str) -> Result<Vec<String>, WebError> {
    let items: Vec<&str> = text
        .split([',', ' ', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    NetworkAllowList::parse(&items)
        .map(|l| l.to_strings())
        .map_err(|e| WebError::BadRequest(e.to_string()))
}

fn parse_tz(text: &str) -> Result<Option<String>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    jiff::tz::TimeZone::get(text).map_err(|_| {
        WebError::BadRequest(format!(
            "{text:?} is not a known time zone; use an IANA name such as Europe/Moscow or Asia/Yekaterinburg"
        ))
    })?;
    Ok(Some(text.to_owned()))
}

fn parse_hour(text: &str) -> Result<Option<i8>, WebError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    match text.parse::<i8>() {
        Ok(h) if (0..=23).contains(&h) => Ok(Some(h)),
        _ => Err(WebError::BadRequest(format!(
            "the contract hour must be a whole hour from 0 to 23, not {text:?}"
        ))),
    }
}

fn bounded_title(text: &str) -> Result<String, WebError> {
    let t = text.trim();
    if t.chars().count() > 200 {
        return Err(WebError::BadRequest(
            "the title is longer than 200 characters".into(),
        ));
    }
    Ok(t.to_owned())
}

pub(crate) async fn hash(pw: &SecretString) -> Result<String, WebError> {
    let pw = pw.clone();
    tokio::task::spawn_blocking(move || telegaz_auth::hash_password(&pw))
        .await
        .map_err(|e| WebError::Internal(format!("password hashing task: {e}")))?
        .map_err(|e| WebError::Internal(e.to_string()))
}

async fn audit(ctx: &Ctx, auth: &Auth, device: &Device, detail: String) -> Result<(), WebError> {
    let mut e = NewAuditEvent::new(AuditKind::DeviceChanged, "ok");
    e.device_id = Some(device.id);
    e.login = Some(device.login.to_string());
    e.detail = format!("web, by {}: {detail}", auth.user.name);
    ctx.db.insert_audit(&[e]).await?;
    Ok(())
}

#[derive(Template)]
#[template(path = "sheet.html")]
struct SheetPage<'a> {
    c: Common,
    d: Device,
    s: &'a SheetInfo,
    password: Option<String>,
}

fn sheet(
    auth: &Auth,
    ctx: &Ctx,
    d: Device,
    password: Option<&SecretString>,
    here: &str,
) -> Result<Response, WebError> {
    let mut response = html(&SheetPage {
        c: Common::new(auth, here),
        d,
        s: &ctx.settings.sheet,
        password: password.map(|p| p.expose_secret().to_owned()),
    })?;
    // A page with a password must not be kept by any cache (it is no-store anyway).
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn add(
    State(ctx): State<Ctx>,
    auth: Auth,
    Form(form): Form<AddForm>,
) -> Result<Response, WebError> {
    auth.require(Role::Operator)?;
    let name =
        DeviceName::parse(form.name.trim()).map_err(|e| WebError::BadRequest(e.to_string()))?;
    let login = match form.login.trim() {
        "" => name.clone(),
        l => DeviceName::parse(l).map_err(|e| WebError::BadRequest(e.to_string()))?,
    };
    let update = DeviceUpdate {
        title: Some(bounded_title(&form.title)?),
        time_zone: parse_tz(&form.time_zone)?,
        contract_hour: parse_hour(&form.contract_hour)?,
        ..DeviceUpdate::default()
    };
    let networks = parse_networks(&form.networks)?;
    let password = telegaz_auth::generate_password();
    let device = ctx
        .db
        .create_device(NewDevice {
            name,
            login,
            password_hash: hash(&password).await?,
            allowed_networks: networks,
        })
        .await?;
    let device = ctx.db.update_device(device.id, update).await?;
    audit(
        &ctx,
        &auth,
        &device,
        format!("device {} added", device.name),
    )
    .await?;
    tracing::info!(device = %device.name, user = %auth.user.name, "device registered from the web UI");
    let here = format!("/registry/{}", device.name);
    sheet(&auth, &ctx, device, Some(&password), &here)
}

async fn find(ctx: &Ctx, name: &str) -> Result<Device, WebError> {
    ctx.db
        .device_by_name(name)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("device {name:?}")))
}

#[derive(Template)]
#[template(path = "device_edit.html")]
struct EditPage {
    c: Common,
    d: Device,
    saved: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct SavedQuery {
    saved: Option<u8>,
}

async fn edit_page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<SavedQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let d = find(&ctx, &name).await?;
    html(&EditPage {
        c: Common::new(&auth, &uri.to_string()),
        d,
        saved: q.saved == Some(1),
    })
}

#[derive(Deserialize)]
pub(crate) struct EditForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    time_zone: String,
    #[serde(default)]
    contract_hour: String,
    #[serde(default)]
    networks: String,
    /// Checkbox: present when ticked.
    enabled: Option<String>,
}

async fn edit(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(name): Path<String>,
    Form(form): Form<EditForm>,
) -> Result<Response, WebError> {
    auth.require(Role::Operator)?;
    let d = find(&ctx, &name).await?;
    let update = DeviceUpdate {
        title: Some(bounded_title(&form.title)?),
        time_zone: parse_tz(&form.time_zone)?,
        contract_hour: parse_hour(&form.contract_hour)?,
        allowed_networks: Some(parse_networks(&form.networks)?),
        enabled: Some(form.enabled.is_some()),
        ..DeviceUpdate::default()
    };
    let after = ctx.db.update_device(d.id, update).await?;
    let mut changes = Vec::new();
    if after.title != d.title {
        changes.push("title".to_owned());
    }
    if after.time_zone != d.time_zone {
        changes.push(format!("time zone {} -> {}", d.time_zone, after.time_zone));
    }
    if after.contract_hour != d.contract_hour {
        changes.push(format!(
            "contract hour {} -> {}",
            d.contract_hour, after.contract_hour
        ));
    }
    if after.allowed_networks != d.allowed_networks {
        changes.push(format!("networks [{}]", after.allowed_networks.join(", ")));
    }
    if after.enabled != d.enabled {
        changes.push(if after.enabled { "enabled" } else { "disabled" }.to_owned());
    }
    if !changes.is_empty() {
        audit(&ctx, &auth, &after, changes.join("; ")).await?;
    }
    Ok(Redirect::to(&format!("/registry/{}?saved=1", after.name)).into_response())
}

async fn rotate(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    auth.require(Role::Operator)?;
    let d = find(&ctx, &name).await?;
    let password = telegaz_auth::generate_password();
    let update = DeviceUpdate {
        password_hash: Some(hash(&password).await?),
        ..DeviceUpdate::default()
    };
    let d = ctx.db.update_device(d.id, update).await?;
    audit(&ctx, &auth, &d, "password rotated".into()).await?;
    let here = format!("/registry/{}", d.name);
    sheet(&auth, &ctx, d, Some(&password), &here)
}

async fn sheet_page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let d = find(&ctx, &name).await?;
    sheet(&auth, &ctx, d, None, &uri.to_string())
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/registry", get(list).post(add))
        .route("/registry/{name}", get(edit_page).post(edit))
        .route("/registry/{name}/password", post(rotate))
        .route("/devices/{name}/sheet", get(sheet_page))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_are_checked_with_clear_messages() {
        assert_eq!(parse_hour(" 6 ").ok(), Some(Some(6)));
        assert_eq!(parse_hour("").ok(), Some(None));
        assert!(parse_hour("24").is_err());
        assert!(parse_hour("x").is_err());
        assert_eq!(
            parse_tz("Asia/Yekaterinburg").ok(),
            Some(Some("Asia/Yekaterinburg".into()))
        );
        assert!(parse_tz("Mars/Olympus").is_err());
        assert_eq!(
            parse_networks("10.0.0.0/8, 192.0.2.1").ok(),
            Some(vec!["10.0.0.0/8".to_owned(), "192.0.2.1/32".to_owned()])
        );
        assert!(parse_networks("not-a-net").is_err());
        assert!(bounded_title(&"я".repeat(201)).is_err());
    }
}
