//! The ban list of device logins (administrators only): bans in force (or
//! every one), lift one, add one.

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use serde::Deserialize;
use telegaz_domain::{Ban, Role, Timestamp};
use telegaz_store::BanFilter;

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::bans::{BanRequest, create, lift};
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("bans_title", "Блокировки", "Bans"),
    (
        "bans_intro",
        "Входы устройств (FTP, TCP) с этих адресов или под этими логинами отклоняются без проверки пароля. Блокировки после неудачных входов ставятся сами и растут при повторах.",
        "Device logins (FTP, TCP) from these addresses or with these logins are refused without a password check. Blocks after failed logins are made automatically and grow with repeats.",
    ),
    ("bans_active", "Действующие", "In force"),
    (
        "bans_all",
        "Все, с истёкшими и снятыми",
        "All, expired and lifted too",
    ),
    ("ban_address", "Адрес", "Address"),
    ("ban_until", "До", "Until"),
    ("ban_forever", "до снятия", "until lifted"),
    ("ban_by", "Кем", "By"),
    ("ban_repeat", "Повтор", "Repeat"),
    ("ban_lift", "Снять", "Lift"),
    ("ban_lifted", "снята", "lifted"),
    ("ban_expired", "истекла", "expired"),
    ("ban_in_force", "действует", "in force"),
    ("ban_add", "Заблокировать", "Add a ban"),
    (
        "ban_for",
        "Срок (30m, 12h, 7d; пусто — до снятия)",
        "For (30m, 12h, 7d; empty: until lifted)",
    ),
    ("no_bans", "Блокировок нет.", "No bans."),
    ("any_login", "любой", "any"),
];

#[derive(Template)]
#[template(path = "bans.html")]
struct BansPage {
    c: Common,
    bans: Vec<Row>,
    all: bool,
}

/// A ban and whether it is in force now.
struct Row {
    ban: Ban,
    live: bool,
}

#[derive(Deserialize, Default)]
pub(crate) struct BansQuery {
    #[serde(default)]
    all: Option<String>,
}

async fn page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(q): Query<BansQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    auth.require(Role::Admin)?;
    let all = q.all.as_deref().is_some_and(|a| !a.is_empty() && a != "0");
    let now = Timestamp::now();
    let bans = ctx
        .db
        .list_bans(&BanFilter {
            active_at: (!all).then_some(now),
            limit: Some(500),
        })
        .await?;
    html(&BansPage {
        c: Common::new(&auth, &uri.to_string()),
        bans: bans
            .into_iter()
            .map(|ban| Row {
                live: ban.active_at(now),
                ban,
            })
            .collect(),
        all,
    })
}

#[derive(Deserialize)]
pub(crate) struct AddForm {
    #[serde(default)]
    address: String,
    #[serde(default)]
    login: String,
    #[serde(default, rename = "for")]
    duration: String,
    #[serde(default)]
    reason: String,
}

async fn add(
    State(ctx): State<Ctx>,
    auth: Auth,
    Form(form): Form<AddForm>,
) -> Result<Response, WebError> {
    auth.require(Role::Admin)?;
    let by = format!("web:{}", auth.user.name);
    create(
        &ctx,
        BanRequest {
            address: Some(&form.address),
            login: Some(&form.login),
            duration: Some(&form.duration),
            reason: Some(&form.reason),
        },
        &by,
    )
    .await?;
    Ok(Redirect::to("/bans").into_response())
}

async fn lift_one(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    auth.require(Role::Admin)?;
    lift(&ctx, id, &format!("web:{}", auth.user.name)).await?;
    Ok(Redirect::to("/bans").into_response())
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/bans", get(page).post(add))
        .route("/bans/{id}/lift", post(lift_one))
}
