//! Reports by gas day in the browser: the form, the file in every format the
//! CLI writes (CSV UTF-8, CSV for Russian Excel, XLSX, JSON, printable HTML),
//! the data-completeness table, and the scheduled deliveries with their state.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;
use telegaz_reports::DayCompleteness;
use telegaz_store::{DeliveryFilter, DeliveryRecord};

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    (
        "reports_title",
        "Отчёты по газовым суткам",
        "Gas-day reports",
    ),
    ("period", "Период", "Period"),
    (
        "period_hint",
        "day:2026-01-14, month:2026-01 или range:2026-01-01..2026-01-31",
        "day:2026-01-14, month:2026-01 or range:2026-01-01..2026-01-31",
    ),
    ("rows", "Строки", "Rows"),
    ("rows_daily", "по газовым суткам", "per gas day"),
    ("rows_hourly", "по часам", "per hour"),
    ("fmt_html", "страница для печати", "printable page"),
    ("fmt_xlsx", "Excel (XLSX)", "Excel (XLSX)"),
    (
        "fmt_csv_1251",
        "CSV для Excel (Windows-1251, ;)",
        "CSV for Russian Excel (Windows-1251, ;)",
    ),
    ("fmt_csv", "CSV (UTF-8)", "CSV (UTF-8)"),
    ("fmt_json", "JSON", "JSON"),
    ("make_report", "Сформировать", "Make the report"),
    ("completeness", "Полнота данных", "Data completeness"),
    ("show_completeness", "Пропущенные часы", "Missing hours"),
    ("gas_day", "Газовые сутки", "Gas day"),
    ("hours_present", "Часов с данными", "Hours with data"),
    ("hours_missing", "Пропущенные часы", "Missing hours"),
    ("deliveries_title", "Рассылка отчётов", "Report deliveries"),
    ("attempts", "Попыток", "Attempts"),
    ("next_attempt", "Следующая попытка", "Next attempt"),
    ("last_error", "Последняя ошибка", "Last error"),
    ("sent_at", "Отправлен", "Sent"),
    (
        "devices_hint",
        "по одному в строке или через запятую",
        "one per line or comma-separated",
    ),
];

#[derive(Template)]
#[template(path = "reports.html")]
struct ReportsPage {
    c: Common,
    devices: Vec<String>,
    chosen: Vec<String>,
    period: String,
    rows: String,
    format: String,
    days: Vec<DayCompleteness>,
    asked_completeness: bool,
}

impl ReportsPage {
    fn is_chosen(&self, name: &str) -> bool {
        self.chosen.iter().any(|c| c == name)
    }
}

async fn page(
    State(ctx): State<Ctx>,
    auth: Auth,
    uri: axum::http::Uri,
    raw: axum::extract::RawQuery,
) -> Result<Response, WebError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(raw.0.as_deref().unwrap_or(""))
            .map_err(|e| WebError::BadRequest(format!("bad query string: {e}")))?;
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let chosen: Vec<String> = pairs
        .iter()
        .filter(|(k, _)| k == "device")
        .map(|(_, v)| v.clone())
        .collect();
    let asked_completeness = pairs.iter().any(|(k, _)| k == "completeness");
    let moscow = jiff::tz::TimeZone::get("Europe/Moscow").unwrap_or(jiff::tz::TimeZone::UTC);
    let period = match get("period") {
        p if p.is_empty() => moscow
            .to_datetime(jiff::Timestamp::now())
            .strftime("month:%Y-%m")
            .to_string(),
        p => p,
    };
    let days = if asked_completeness {
        let query = serde_urlencoded::to_string(
            chosen
                .iter()
                .map(|d| ("device", d.as_str()))
                .chain([("period", period.as_str())])
                .collect::<Vec<_>>(),
        )
        .map_err(|e| WebError::BadRequest(e.to_string()))?;
        crate::api::reports::completeness_days(&ctx, Some(&query))
            .await
            .map_err(|e| e.0)?
            .1
    } else {
        Vec::new()
    };
    html(&ReportsPage {
        c: Common::new(&auth, &uri.to_string()),
        devices: ctx
            .db
            .list_devices()
            .await?
            .into_iter()
            .map(|d| d.name.to_string())
            .collect(),
        chosen,
        period,
        rows: get("rows"),
        format: get("format"),
        days,
        asked_completeness,
    })
}

/// The report file; errors as a page (the API answers them in JSON).
async fn download(
    State(ctx): State<Ctx>,
    _auth: Auth,
    raw: axum::extract::RawQuery,
) -> Result<Response, WebError> {
    crate::api::reports::make_report(&ctx, raw.0.as_deref())
        .await
        .map_err(|e| e.0)
}

#[derive(Deserialize, Default)]
pub(crate) struct DeliveriesQuery {
    name: Option<String>,
}

#[derive(Template)]
#[template(path = "deliveries.html")]
struct DeliveriesPage {
    c: Common,
    records: Vec<DeliveryRecord>,
}

async fn deliveries(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(q): Query<DeliveriesQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let records = ctx
        .db
        .list_deliveries(&DeliveryFilter {
            name: q.name.filter(|n| !n.is_empty()),
            limit: Some(500),
            ..DeliveryFilter::default()
        })
        .await?;
    html(&DeliveriesPage {
        c: Common::new(&auth, &uri.to_string()),
        records,
    })
}

pub(crate) fn opt_time(t: &Option<jiff::Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new()
        .route("/reports", get(page))
        .route("/reports/download", get(download))
        .route("/deliveries", get(deliveries))
}
