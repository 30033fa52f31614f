//! Reports and completeness: the same engine and renderers as `telegaz report`.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use telegaz_delivery::LoadError;
use telegaz_reports::{DeviceData, Period, ReportError, Rows, render};

use super::{ApiError, ApiResult, bad_request, query_pairs};
use crate::Ctx;
use crate::error::WebError;

/// The most devices one report covers.
const MAX_DEVICES: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Json,
    Csv,
    Csv1251,
    Xlsx,
    Html,
}

impl Format {
    fn parse(s: &str) -> ApiResult<Format> {
        Ok(match s {
            "json" => Format::Json,
            "csv" => Format::Csv,
            "csv-1251" => Format::Csv1251,
            "xlsx" => Format::Xlsx,
            "html" => Format::Html,
            other => {
                return Err(bad_request(format!(
                    "unknown format {other:?} (json, csv, csv-1251, xlsx, html)"
                )));
            }
        })
    }

    fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Csv1251 => "text/csv; charset=windows-1251",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            Format::Html => "text/html; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Csv | Format::Csv1251 => "csv",
            Format::Xlsx => "xlsx",
            Format::Html => "html",
        }
    }
}

/// What a report request asks for.
struct Request {
    devices: Vec<String>,
    period: Period,
    rows: Rows,
    format: Format,
}

fn parse_request(query: Option<&str>, report: bool) -> ApiResult<Request> {
    let mut devices: Vec<String> = Vec::new();
    let mut period = None;
    let mut rows = Rows::Daily;
    let mut format = Format::Json;
    for (key, value) in query_pairs(query)? {
        match key.as_str() {
            "device" => {
                if !devices.contains(&value) {
                    devices.push(value);
                }
            }
            "period" => period = Some(value),
            "rows" if report => {
                rows = match value.as_str() {
                    "hourly" => Rows::Hourly,
                    "daily" => Rows::Daily,
                    other => {
                        return Err(bad_request(format!(
                            "unknown rows {other:?} (hourly, daily)"
                        )));
                    }
                }
            }
            "format" if report => format = Format::parse(&value)?,
            // The language switch of the whole site.
            "lang" => {}
            other => return Err(bad_request(format!("unknown parameter {other:?}"))),
        }
    }
    if devices.is_empty() {
        return Err(bad_request("give at least one device=NAME"));
    }
    if devices.len() > MAX_DEVICES {
        return Err(bad_request(format!(
            "{} devices; one request covers at most {MAX_DEVICES}",
            devices.len()
        )));
    }
    let period = period.ok_or_else(|| {
        bad_request("give period=day:YYYY-MM-DD, month:YYYY-MM or range:YYYY-MM-DD..YYYY-MM-DD")
    })?;
    let period: Period = period.parse().map_err(report_error)?;
    Ok(Request {
        devices,
        period,
        rows,
        format,
    })
}

fn report_error(e: ReportError) -> ApiError {
    let message = e.to_string();
    ApiError(match e {
        ReportError::BadPeriod { .. }
        | ReportError::ReversedRange { .. }
        | ReportError::PeriodTooLong { .. }
        | ReportError::OutOfRange(_)
        | ReportError::NoDevices => WebError::BadRequest(message),
        ReportError::BadDevice { .. }
        | ReportError::NoData { .. }
        | ReportError::Overflow { .. } => WebError::Unprocessable(message),
    })
}

fn load_error(e: LoadError) -> ApiError {
    ApiError(match e {
        LoadError::NoDevice(name) => WebError::NotFound(format!("device {name:?}")),
        LoadError::BadTimeZone { .. } => WebError::Unprocessable(e.to_string()),
        LoadError::OutOfRange(_) => WebError::BadRequest(e.to_string()),
        LoadError::Store(s) => s.into(),
    })
}

async fn load(ctx: &Ctx, r: &Request) -> ApiResult<Vec<DeviceData>> {
    let (first, last) = r.period.gas_days().map_err(report_error)?;
    telegaz_delivery::load_report_data(&*ctx.db, &r.devices, first, last)
        .await
        .map_err(load_error)
}

/// A file name made by the server from the period only.
fn file_name(period: &Period, format: Format) -> String {
    let stem: String = period
        .to_string()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("telegaz-report-{stem}.{}", format.extension())
}

/// `GET /reports`.
pub(crate) async fn report(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    make_report(&ctx, query.as_deref()).await
}

/// A report file from a query string (`device=…&period=…&rows=…&format=…`),
/// for the API and for the web UI's download link alike.
pub(crate) async fn make_report(ctx: &Ctx, query: Option<&str>) -> ApiResult<Response> {
    let r = parse_request(query, true)?;
    let data = load(ctx, &r).await?;
    let report = telegaz_reports::build(&data, &r.period, r.rows, jiff::Timestamp::now())
        .map_err(report_error)?;
    let bytes = match r.format {
        Format::Json => render::json(&report),
        Format::Csv => render::csv_utf8(&report),
        Format::Csv1251 => render::csv_1251(&report),
        Format::Xlsx => render::xlsx(&report)
            .map_err(|e| ApiError(WebError::Internal(format!("rendering XLSX: {e}"))))?,
        Format::Html => render::html(&report).into_bytes(),
    };
    let inline = matches!(r.format, Format::Json | Format::Html);
    let disposition = format!(
        "{}; filename=\"{}\"",
        if inline { "inline" } else { "attachment" },
        file_name(&r.period, r.format)
    );
    let mut response = (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(r.format.content_type()),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .unwrap_or_else(|_| HeaderValue::from_static("attachment")),
            ),
        ],
        bytes,
    )
        .into_response();
    if r.format == Format::Html {
        // The printable page carries its stylesheet inline and no script at all.
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
            ),
        );
    }
    Ok(response)
}

/// The completeness of the devices' gas days in the period of a query string.
pub(crate) async fn completeness_days(
    ctx: &Ctx,
    query: Option<&str>,
) -> ApiResult<(Period, Vec<telegaz_reports::DayCompleteness>)> {
    let r = parse_request(query, false)?;
    let data = load(ctx, &r).await?;
    let days = telegaz_reports::completeness(&data, &r.period, jiff::Timestamp::now())
        .map_err(report_error)?;
    Ok((r.period, days))
}

/// `GET /completeness`.
pub(crate) async fn completeness(
    State(ctx): State<Ctx>,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<Value>> {
    let (period, days) = completeness_days(&ctx, query.as_deref()).await?;
    Ok(Json(json!({ "period": period.to_string(), "days": days })))
}
