//! Reports by gas day in the browser: the form, the file in every format the
//! CLI writes (CSV UTF-8, CSV for Russian Excel, XLSX, JSON, printable HTML),
//! the data-completeness table, and the scheduled deliveries with their state.

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use telegaz_delivery::LoadError;
use telegaz_reports::{DayCompleteness, Period, ReportError, Rows};
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

/// The formats a report can be made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Csv,
    Csv1251,
    Xlsx,
    Json,
    Html,
}

impl Format {
    pub(crate) fn parse(s: &str) -> Result<Format, WebError> {
        match s {
            "csv" => Ok(Format::Csv),
            "csv-1251" => Ok(Format::Csv1251),
            "xlsx" => Ok(Format::Xlsx),
            "json" => Ok(Format::Json),
            "html" | "" => Ok(Format::Html),
            other => Err(WebError::BadRequest(format!(
                "unknown format {other:?}: use csv, csv-1251, xlsx, json or html"
            ))),
        }
    }
}

pub(crate) fn report_error(e: ReportError) -> WebError {
    match e {
        ReportError::NoData { .. } => WebError::NotFound(e.to_string()),
        ReportError::BadDevice { .. } | ReportError::Overflow { .. } => {
            WebError::Conflict(e.to_string())
        }
        other => WebError::BadRequest(other.to_string()),
    }
}

fn load_error(e: LoadError) -> WebError {
    match e {
        LoadError::NoDevice(_) => WebError::NotFound(e.to_string()),
        LoadError::Store(s) => s.into(),
        other => WebError::BadRequest(other.to_string()),
    }
}

/// Device names from a form or query: repeated, comma- or line-separated.
pub(crate) fn device_list(items: &[String]) -> Vec<String> {
    items
        .iter()
        .flat_map(|s| s.split([',', '\n', ' ', ';']))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A finished report file.
pub(crate) struct ReportFile {
    pub content_type: &'static str,
    pub file_name: String,
    pub bytes: Vec<u8>,
}

/// Build a report exactly as `telegaz report` does.
pub(crate) async fn produce(
    ctx: &Ctx,
    devices: &[String],
    period: &str,
    rows: &str,
    format: Format,
) -> Result<ReportFile, WebError> {
    if devices.is_empty() {
        return Err(report_error(ReportError::NoDevices));
    }
    let period: Period = period.trim().parse().map_err(report_error)?;
    let rows = match rows {
        "hourly" => Rows::Hourly,
        "daily" | "" => Rows::Daily,
        other => {
            return Err(WebError::BadRequest(format!(
                "unknown rows {other:?}: use hourly or daily"
            )));
        }
    };
    let (first, last) = period.gas_days().map_err(report_error)?;
    let data = telegaz_delivery::load_report_data(&*ctx.db, devices, first, last)
        .await
        .map_err(load_error)?;
    let report = telegaz_reports::build(&data, &period, rows, jiff::Timestamp::now())
        .map_err(report_error)?;
    use telegaz_reports::render;
    let stem = format!("telegaz-{}-{}", devices.join("+"), period)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect::<String>();
    let (content_type, ext, bytes) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "csv", render::csv_utf8(&report)),
        Format::Csv1251 => (
            "text/csv; charset=windows-1251",
            "csv",
            render::csv_1251(&report),
        ),
        Format::Xlsx => (
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "xlsx",
            render::xlsx(&report).map_err(|e| WebError::Internal(e.to_string()))?,
        ),
        Format::Json => ("application/json", "json", render::json(&report)),
        Format::Html => (
            "text/html; charset=utf-8",
            "html",
            render::html(&report).into_bytes(),
        ),
    };
    Ok(ReportFile {
        content_type,
        file_name: format!("{stem}.{ext}"),
        bytes,
    })
}

impl ReportFile {
    pub(crate) fn into_response(self, inline: bool) -> Response {
        let mut response = self.bytes.into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        let disposition = if inline { "inline" } else { "attachment" };
        if let Ok(v) =
            HeaderValue::from_str(&format!("{disposition}; filename=\"{}\"", self.file_name))
        {
            h.insert(header::CONTENT_DISPOSITION, v);
        }
        if inline {
            // The printable page carries its own stylesheet inline and no script.
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(
                    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                ),
            );
        }
        response
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct ReportQuery {
    #[serde(default)]
    device: Vec<String>,
    #[serde(default)]
    period: String,
    #[serde(default)]
    rows: String,
    #[serde(default)]
    format: String,
    #[serde(default)]
    completeness: Option<String>,
}

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
    let q: ReportQuery = match raw.0.as_deref() {
        Some(text) => serde_urlencoded::from_str::<Vec<(String, String)>>(text)
            .map(query_from_pairs)
            .map_err(|e| WebError::BadRequest(e.to_string()))?,
        None => ReportQuery::default(),
    };
    let chosen = device_list(&q.device);
    let moscow = jiff::tz::TimeZone::get("Europe/Moscow").unwrap_or(jiff::tz::TimeZone::UTC);
    let default_period = moscow
        .to_datetime(jiff::Timestamp::now())
        .strftime("month:%Y-%m")
        .to_string();
    let period = if q.period.is_empty() {
        default_period
    } else {
        q.period.clone()
    };
    let asked_completeness = q.completeness.is_some();
    let days = if asked_completeness {
        let p: Period = period.trim().parse().map_err(report_error)?;
        let (first, last) = p.gas_days().map_err(report_error)?;
        let data = telegaz_delivery::load_report_data(&*ctx.db, &chosen, first, last)
            .await
            .map_err(load_error)?;
        telegaz_reports::completeness(&data, &p, jiff::Timestamp::now()).map_err(report_error)?
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
        rows: q.rows,
        format: q.format,
        days,
        asked_completeness,
    })
}

/// Repeated `device=` keys, which serde_urlencoded cannot put in a Vec itself.
fn query_from_pairs(pairs: Vec<(String, String)>) -> ReportQuery {
    let mut q = ReportQuery::default();
    for (k, v) in pairs {
        match k.as_str() {
            "device" => q.device.push(v),
            "period" => q.period = v,
            "rows" => q.rows = v,
            "format" => q.format = v,
            "completeness" => q.completeness = Some(v),
            _ => {}
        }
    }
    q
}

pub(crate) fn parse_query(raw: Option<&str>) -> Result<ReportQueryPublic, WebError> {
    let q = match raw {
        Some(text) => serde_urlencoded::from_str::<Vec<(String, String)>>(text)
            .map(query_from_pairs)
            .map_err(|e| WebError::BadRequest(e.to_string()))?,
        None => ReportQuery::default(),
    };
    Ok(ReportQueryPublic {
        devices: device_list(&q.device),
        period: q.period,
        rows: q.rows,
        format: q.format,
    })
}

/// A report request as the download route and the API read it.
pub(crate) struct ReportQueryPublic {
    pub devices: Vec<String>,
    pub period: String,
    pub rows: String,
    pub format: String,
}

async fn download(
    State(ctx): State<Ctx>,
    _auth: Auth,
    raw: axum::extract::RawQuery,
) -> Result<Response, WebError> {
    let q = parse_query(raw.0.as_deref())?;
    let format = Format::parse(&q.format)?;
    let file = produce(&ctx, &q.devices, &q.period, &q.rows, format).await?;
    Ok(file.into_response(format == Format::Html))
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
