//! Alerts in the browser: what holds now (or everything), acknowledge, and
//! how the notifications about them went (failures and retries included).

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use telegaz_domain::{Alert, AlertKind, Role};
use telegaz_store::NotificationSend;

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("alerts_title", "Тревоги", "Alerts"),
    ("alerts_active", "действующие", "active"),
    ("alerts_all", "все", "all"),
    ("acknowledge", "Принять", "Acknowledge"),
    ("acknowledged_by", "Принял", "Acknowledged by"),
    ("opened", "Возникла", "Opened"),
    ("resolved", "Завершилась", "Resolved"),
    ("severity", "Важность", "Severity"),
    ("no_alerts", "Тревог нет.", "No alerts."),
    ("notifications_title", "Уведомления", "Notifications"),
    ("notifier", "Канал", "Channel"),
    (
        "notifiers_configured",
        "Каналы уведомлений",
        "Notification channels",
    ),
    (
        "no_notifiers",
        "Каналы уведомлений не настроены ([[notifier]] в файле настроек): тревоги видны только здесь и в API.",
        "No notification channels are configured ([[notifier]] in the configuration file): alerts are shown here and in the API only.",
    ),
    ("alert_silent", "молчит", "silent"),
    (
        "alert_corrector_event",
        "авария корректора",
        "corrector alarm",
    ),
    (
        "alert_upload_problem",
        "файлы не разобраны",
        "files not understood",
    ),
    ("alert_missing_hours", "пропуски в архиве", "missing hours"),
    ("alert_limit", "выход за пределы", "out of limits"),
    ("alert_server_health", "состояние сервера", "server health"),
];

pub(crate) fn kind_key(k: &AlertKind) -> &'static str {
    match k {
        AlertKind::Silent => "alert_silent",
        AlertKind::CorrectorEvent => "alert_corrector_event",
        AlertKind::UploadProblem => "alert_upload_problem",
        AlertKind::MissingHours => "alert_missing_hours",
        AlertKind::Limit => "alert_limit",
        AlertKind::ServerHealth => "alert_server_health",
    }
}

pub(crate) fn time(t: &Option<jiff::Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

#[derive(Deserialize, Default)]
pub(crate) struct AlertsQuery {
    all: Option<u8>,
    device: Option<String>,
    kind: Option<String>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    c: Common,
    alerts: Vec<Alert>,
    sends: Vec<NotificationSend>,
    all: bool,
    notifiers: Vec<(String, String)>,
}

async fn page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(q): Query<AlertsQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let all = q.all == Some(1);
    let f = crate::api::alerts::filter(
        &ctx,
        !all,
        q.device.as_deref(),
        q.kind.as_deref(),
        None,
        500,
    )
    .await
    .map_err(|e| e.0)?;
    html(&AlertsPage {
        c: Common::new(&auth, &uri.to_string()),
        alerts: ctx.db.list_alerts(&f).await?,
        sends: ctx.db.notification_sends(100).await?,
        all,
        notifiers: ctx.settings.notifiers.clone(),
    })
}

async fn acknowledge(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(id): Path<i64>,
) -> Result<Response, WebError> {
    auth.require(Role::Operator)?;
    ctx.db
        .acknowledge_alert(id, auth.user.name.as_str(), jiff::Timestamp::now())
        .await?;
    tracing::info!(alert = id, user = %auth.user.name, "alert acknowledged");
    Ok(Redirect::to("/alerts").into_response())
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/alerts", get(page))
        .route("/alerts/{id}/ack", post(acknowledge))
}
