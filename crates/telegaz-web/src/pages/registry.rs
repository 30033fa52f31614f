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
use telegaz_domain::{Device, Role};

use super::{Common, html};
use crate::auth::Auth;
use crate::error::WebError;
use crate::{Ctx, SheetInfo, devices};

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

/// Networks as typed in the form: separated by commas, spaces or lines.
fn network_items(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n', '\r', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

fn hour_field(text: &str) -> Result<Option<i64>, WebError> {
    optional(text)
        .map(|t| {
            t.parse::<i64>().map_err(|_| {
                WebError::BadRequest(format!(
                    "the contract hour must be a whole hour from 0 to 23, not {t:?}"
                ))
            })
        })
        .transpose()
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
    let r = devices::register(
        &ctx,
        &auth,
        "the web UI",
        devices::Registration {
            name: form.name,
            login: optional(&form.login),
            title: optional(&form.title),
            networks: network_items(&form.networks),
            time_zone: optional(&form.time_zone),
            contract_hour: hour_field(&form.contract_hour)?,
            password: None,
        },
    )
    .await?;
    let here = format!("/registry/{}", r.device.name);
    sheet(&auth, &ctx, r.device, Some(&r.password), &here)
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
    let change = devices::Change {
        title: Some(form.title.trim().to_owned()),
        enabled: Some(form.enabled.is_some()),
        networks: Some(network_items(&form.networks)),
        time_zone: optional(&form.time_zone),
        contract_hour: hour_field(&form.contract_hour)?,
    };
    let after = devices::change(&ctx, &auth, "the web UI", &d, change).await?;
    Ok(Redirect::to(&format!("/registry/{}?saved=1", after.name)).into_response())
}

async fn rotate(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(name): Path<String>,
) -> Result<Response, WebError> {
    auth.require(Role::Operator)?;
    let d = find(&ctx, &name).await?;
    let r = devices::new_password(&ctx, &auth, "the web UI", &d, None).await?;
    let here = format!("/registry/{}", r.device.name);
    sheet(&auth, &ctx, r.device, Some(&r.password), &here)
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
    fn form_fields_are_read_as_typed() {
        assert_eq!(
            network_items("10.0.0.0/8, 192.0.2.1\n 198.51.100.0/24"),
            vec!["10.0.0.0/8", "192.0.2.1", "198.51.100.0/24"]
        );
        assert_eq!(optional("  "), None);
        assert_eq!(hour_field(" 6 ").ok(), Some(Some(6)));
        assert_eq!(hour_field("").ok(), Some(None));
        assert!(hour_field("x").is_err());
    }
}
