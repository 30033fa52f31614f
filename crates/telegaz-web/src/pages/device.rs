//! One device: its settings and state, charts of hourly consumption,
//! pressure and temperature with the events of the range marked on them,
//! hourly and gas-day tables, the event log, its newest uploads and the
//! completeness of its data, for a range of gas days.

use std::collections::BTreeMap;

use askama::Template;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp};
use serde::Deserialize;
use telegaz_delivery::{LoadError, load_report_data};
use telegaz_domain::gasday::{self, Flag, GasDay, HourlyVolume};
use telegaz_domain::{ArchiveKind, Check, Decimal, Device, EventRecord, Upload};
use telegaz_reports::{DayCompleteness, DeviceData, Period};
use telegaz_store::UploadFilter;

use super::fleet::{UnitState, fmt_time, unit_state};
use super::{Common, html};
use crate::Ctx;
use crate::auth::{Auth, urlencode};
use crate::chart::{self, Frame, Marker, Sample};
use crate::error::WebError;
use crate::i18n::{Lang, lookup};

/// Phrases of the device page: (key, Russian, English).
pub(crate) const PHRASES: &[(&str, &str, &str)] = &[
    ("device_range", "Период (газовые сутки)", "Range (gas days)"),
    (
        "period_note",
        "Газовые сутки начинаются в контрактный час и называются по дате начала.",
        "A gas day starts at the contract hour and is named by the date it starts on.",
    ),
    (
        "hourly_consumption",
        "Часовой расход, м³ (ст. у.)",
        "Hourly consumption, m³ (std)",
    ),
    ("pressure_kpa", "Давление, кПа", "Pressure, kPa"),
    ("temperature_c", "Температура, °C", "Temperature, °C"),
    ("hourly_data", "Часовые данные", "Hourly data"),
    ("hour_end", "Конец часа", "Hour end"),
    ("vb_m3", "Vb, м³ (ст. у.)", "Vb, m³ (std)"),
    ("vm_m3", "Vm, м³ (раб. у.)", "Vm, m³ (actual)"),
    ("p_kpa", "P, кПа", "P, kPa"),
    ("t_c", "T, °C", "T, °C"),
    ("flags", "Признаки", "Flags"),
    ("gas_days", "Газовые сутки", "Gas days"),
    ("hours", "Часов", "Hours"),
    ("day_complete", "Полные", "Complete"),
    ("day_final", "Закрыты", "Final"),
    (
        "device_daily",
        "По суточной записи прибора, м³",
        "Device's own daily value, m³",
    ),
    ("events", "События", "Events"),
    ("event_code", "Код события", "Event code"),
    ("check_ok", "в норме", "ok"),
    (
        "newest_uploads",
        "Последние 20 файлов",
        "The 20 newest uploads",
    ),
    ("missing_hours", "Пропущенные часы", "Missing hours"),
    (
        "missing_readings",
        "Нет записей архива на",
        "No archive readings at",
    ),
    ("expected_hours", "Часов в сутках", "Hours in the day"),
    ("present_hours", "Часов с данными", "Hours with data"),
    ("pending_hours", "Ещё не наступило", "Not yet ended"),
    ("no_gaps", "пропусков нет", "no gaps"),
    ("to_report", "Отчёт по устройству", "Report for this device"),
    ("config_sheet", "Карта настройки", "Configuration sheet"),
    (
        "edit_in_registry",
        "Изменить в реестре",
        "Edit in the registry",
    ),
    (
        "hourly_paged",
        "Таблица разбита на страницы по 168 часов (неделя).",
        "The table is split into pages of 168 hours (a week).",
    ),
    (
        "no_events",
        "Событий за период нет.",
        "No events in this range.",
    ),
    ("no_uploads", "Файлов нет.", "No uploads."),
    (
        "range_reversed",
        "Начало периода позже его конца.",
        "The range starts after it ends.",
    ),
    (
        "range_too_long",
        "Период длиннее 366 газовых суток; выберите период короче.",
        "The range is longer than 366 gas days; choose a shorter one.",
    ),
    (
        "bad_date",
        "Дата записывается как ГГГГ-ММ-ДД.",
        "Dates are written YYYY-MM-DD.",
    ),
    (
        "bad_time_zone",
        "У устройства неизвестный часовой пояс; исправьте его в реестре.",
        "The device has an unknown time zone; fix it in the registry.",
    ),
    (
        "flag_counter_decreased",
        "счётчик уменьшился",
        "counter decreased",
    ),
    (
        "flag_daily_mismatch",
        "расхождение с суточной записью прибора",
        "differs from the device's daily record",
    ),
    (
        "flag_missing_hours",
        "нет данных за часть часов",
        "some hours missing",
    ),
    (
        "flag_conflicting_readings",
        "противоречивые записи",
        "conflicting readings",
    ),
    (
        "flag_implausible_value",
        "неправдоподобно большие значения",
        "implausibly large values",
    ),
];

/// The longest range the page shows, in gas days.
const MAX_DAYS: i64 = 366;
/// The default range, in gas days (ending with the current one).
const DEFAULT_DAYS: i64 = 7;
/// Hourly table rows per page (a week).
const HOURS_PER_PAGE: usize = 168;
/// Uploads listed.
const UPLOADS: u32 = 20;

#[derive(Debug, Deserialize, Default)]
pub(crate) struct DeviceQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Page of the hourly table.
    pub hpage: Option<usize>,
}

/// The gas days shown, both included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Range {
    pub first: Date,
    pub last: Date,
}

fn parse_date(s: Option<&str>, lang: Lang) -> Result<Option<Date>, WebError> {
    match s.map(str::trim).filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s
            .parse::<Date>()
            .map(Some)
            .map_err(|_| WebError::BadRequest(lookup(lang, "bad_date").to_owned())),
    }
}

/// The requested range: `from`..=`to`, by default the last week of gas days
/// ending with `today`; reversed or too long ranges are refused.
pub(crate) fn parse_range(q: &DeviceQuery, today: Date, lang: Lang) -> Result<Range, WebError> {
    let bad = |key| WebError::BadRequest(lookup(lang, key).to_owned());
    let to = parse_date(q.to.as_deref(), lang)?;
    let from = parse_date(q.from.as_deref(), lang)?;
    let last = to.unwrap_or(today);
    let first = match from {
        Some(d) => d,
        None => last
            .checked_sub(Span::new().days(DEFAULT_DAYS - 1))
            .map_err(|_| bad("bad_date"))?,
    };
    if first > last {
        return Err(bad("range_reversed"));
    }
    if i64::from((last - first).get_days()) + 1 > MAX_DAYS {
        return Err(bad("range_too_long"));
    }
    if last.tomorrow().is_err() {
        return Err(bad("bad_date"));
    }
    Ok(Range { first, last })
}

/// The gas day under way at `now` for a device.
fn current_gas_day(tz: &TimeZone, contract_hour: i8, now: Timestamp) -> Date {
    (tz.to_datetime(now) - SignedDuration::from_hours(i64::from(contract_hour))).date()
}

fn flag_key(f: Flag) -> &'static str {
    match f {
        Flag::CounterDecreased => "flag_counter_decreased",
        Flag::DailyMismatch => "flag_daily_mismatch",
        Flag::MissingHours => "flag_missing_hours",
        Flag::ConflictingReadings => "flag_conflicting_readings",
        Flag::ImplausibleValue => "flag_implausible_value",
    }
}

fn flags_text(flags: &[Flag], lang: Lang) -> String {
    flags
        .iter()
        .map(|f| lookup(lang, flag_key(*f)))
        .collect::<Vec<_>>()
        .join("; ")
}

fn opt(v: Option<Decimal>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| v.to_string())
}

fn fmt_dt(t: DateTime) -> String {
    t.strftime("%Y-%m-%d %H:%M").to_string()
}

pub(crate) struct HourRow {
    pub end: String,
    pub vb: String,
    pub vm: String,
    pub p: String,
    pub t: String,
    pub flags: String,
}

pub(crate) struct DayRow {
    pub gas_day: String,
    pub vb: String,
    pub vm: String,
    pub hours: u32,
    pub complete: bool,
    pub is_final: bool,
    pub device_vb: String,
    pub flags: String,
}

pub(crate) struct EventRow {
    pub time: String,
    pub code: String,
    pub check: String,
    pub failed: bool,
}

pub(crate) struct UploadRow {
    pub id: i64,
    pub name: String,
    pub received: String,
    pub size: u64,
    pub status: String,
    pub ingest: String,
    pub format: String,
    pub records: String,
    pub reason: String,
}

pub(crate) struct GapRow {
    pub gas_day: String,
    pub expected: u32,
    pub present: u32,
    pub pending: u32,
    /// Missing hour ends, consecutive ones joined into ranges.
    pub missing: Vec<String>,
    pub missing_readings: Vec<String>,
}

fn hour_row(h: &HourlyVolume, lang: Lang) -> HourRow {
    HourRow {
        end: fmt_dt(h.hour_end_local),
        vb: opt(h.vb_m3),
        vm: opt(h.vm_m3),
        p: opt(h.p_kpa),
        t: opt(h.t_c),
        flags: flags_text(&h.flags, lang),
    }
}

fn day_row(d: &GasDay, lang: Lang) -> DayRow {
    DayRow {
        gas_day: d.gas_day.to_string(),
        vb: if d.hours > 0 || d.complete {
            d.vb_m3.to_string()
        } else {
            "—".into()
        },
        vm: if d.hours > 0 || d.complete {
            d.vm_m3.to_string()
        } else {
            "—".into()
        },
        hours: d.hours,
        complete: d.complete,
        is_final: d.is_final,
        device_vb: opt(d.device_vb_m3),
        flags: flags_text(&d.flags, lang),
    }
}

fn event_row(e: &EventRecord, lang: Lang) -> EventRow {
    let (check, failed) = match &e.check {
        Check::Ok => (lookup(lang, "check_ok").to_owned(), false),
        Check::Failed(text) => (text.clone(), true),
        Check::Absent => ("—".to_owned(), false),
    };
    EventRow {
        time: e.local_time.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        code: format!("0x{:04X}", e.code),
        check,
        failed,
    }
}

fn upload_row(u: &Upload) -> UploadRow {
    let ingest = u.ingest.as_ref();
    UploadRow {
        id: u.id.0,
        name: u.original_name.clone(),
        received: fmt_time(&u.received_at.or(Some(u.started_at))),
        size: u.size,
        status: u.status.as_str().to_owned(),
        ingest: ingest.map_or_else(String::new, |i| i.status.as_str().to_owned()),
        format: ingest.and_then(|i| i.format.clone()).unwrap_or_default(),
        records: ingest.map_or_else(String::new, |i| i.records.total.to_string()),
        reason: ingest
            .and_then(|i| i.reason.clone())
            .or_else(|| u.reason.clone())
            .unwrap_or_default(),
    }
}

/// Consecutive hour ends (an hour apart) joined into `a – b` ranges.
pub(crate) fn hour_ranges(ends: &[DateTime]) -> Vec<String> {
    let fmt = |t: DateTime| t.strftime("%d.%m %H:%M").to_string();
    let mut runs: Vec<(DateTime, DateTime)> = Vec::new();
    for &t in ends {
        match runs.last_mut() {
            Some((_, last)) if t.duration_since(*last) == SignedDuration::from_hours(1) => {
                *last = t;
            }
            _ => runs.push((t, t)),
        }
    }
    runs.into_iter()
        .map(|(a, b)| {
            if a == b {
                fmt(a)
            } else {
                format!("{} – {}", fmt(a), fmt(b))
            }
        })
        .collect()
}

fn gap_row(d: &DayCompleteness) -> GapRow {
    GapRow {
        gas_day: d.gas_day.to_string(),
        expected: d.expected_hours,
        present: d.present_hours,
        pending: d.pending_hours,
        missing: hour_ranges(&d.missing_hour_ends),
        missing_readings: hour_ranges(&d.missing_readings),
    }
}

/// Usable interval readings in `(start, end]`, one per time (the first wins).
fn readings_in(data: &DeviceData, start: DateTime, end: DateTime) -> BTreeMap<DateTime, usize> {
    let mut by_time = BTreeMap::new();
    for (i, r) in data.records.iter().enumerate() {
        if r.kind == ArchiveKind::Interval
            && r.check.usable()
            && r.local_time > start
            && r.local_time <= end
        {
            by_time.entry(r.local_time).or_insert(i);
        }
    }
    by_time
}

/// What the page shows of a device's data in a range.
pub(crate) struct Computed {
    pub hours: Vec<HourlyVolume>,
    pub days: Vec<GasDay>,
    pub events: Vec<EventRecord>,
    pub vb_chart: String,
    pub p_chart: String,
    pub t_chart: String,
}

/// The start and end (local) of a range of gas days.
fn bounds(range: Range, contract_hour: i8) -> (DateTime, DateTime) {
    let start = range.first.at(contract_hour, 0, 0, 0);
    let end = range
        .last
        .tomorrow()
        .unwrap_or(range.last)
        .at(contract_hour, 0, 0, 0);
    (start, end)
}

/// Hours, gas days, events and charts of a range (pure: no I/O).
pub(crate) fn compute(data: &DeviceData, range: Range, now: Timestamp, lang: Lang) -> Computed {
    let (start, end) = bounds(range, data.contract_hour);
    let hours: Vec<HourlyVolume> = gasday::hourly(&data.records, &data.time_zone)
        .into_iter()
        .filter(|h| h.hour_end_local > start && h.hour_end_local <= end)
        .collect();
    let now_local = data.time_zone.to_datetime(now);
    let days: Vec<GasDay> = gasday::daily(
        &data.records,
        &data.time_zone,
        data.contract_hour,
        now_local,
    )
    .into_iter()
    .filter(|d| d.gas_day >= range.first && d.gas_day <= range.last)
    .collect();
    let mut events: Vec<EventRecord> = data
        .events
        .iter()
        .filter(|e| e.local_time >= start && e.local_time <= end)
        .cloned()
        .collect();
    events.sort_by_key(|e| e.local_time);
    let markers: Vec<Marker> = events
        .iter()
        .map(|e| Marker {
            t: e.local_time,
            label: format!(
                "0x{:04X} — {}",
                e.code,
                e.local_time.strftime("%Y-%m-%d %H:%M:%S")
            ),
        })
        .collect();
    let frame = |id, key, unit| Frame {
        id,
        title: lookup(lang, key),
        unit,
        from: start,
        to: end,
        step: SignedDuration::from_hours(1),
        no_data: lookup(lang, "no_data"),
        markers: &markers,
    };
    let vb: Vec<Sample> = hours
        .iter()
        .map(|h| Sample {
            t: h.hour_end_local,
            v: h.vb_m3,
        })
        .collect();
    let readings = readings_in(data, start, end);
    let series = |pick: fn(&telegaz_domain::Quantities) -> Option<Decimal>| -> Vec<Sample> {
        readings
            .iter()
            .filter_map(|(t, i)| data.records.get(*i).map(|r| (t, r)))
            .map(|(t, r)| Sample {
                t: *t,
                v: pick(&r.quantities),
            })
            .collect()
    };
    let unit_m3 = if lang == Lang::Ru { "м³" } else { "m³" };
    let unit_kpa = if lang == Lang::Ru { "кПа" } else { "kPa" };
    Computed {
        vb_chart: chart::bar_chart(&frame("chart-vb", "hourly_consumption", unit_m3), &vb),
        p_chart: chart::line_chart(
            &frame("chart-p", "pressure_kpa", unit_kpa),
            &series(|q| q.p_kpa),
        ),
        t_chart: chart::line_chart(&frame("chart-t", "temperature_c", "°C"), &series(|q| q.t_c)),
        hours,
        days,
        events,
    }
}

#[derive(Template)]
#[template(path = "device.html")]
struct DeviceTemplate {
    c: Common,
    name: String,
    title: String,
    login: String,
    time_zone: String,
    contract_hour: i8,
    enabled: bool,
    state: UnitState,
    last_contact: String,
    from: String,
    to: String,
    vb_chart: String,
    p_chart: String,
    t_chart: String,
    hour_rows: Vec<HourRow>,
    hours_total: usize,
    hpage: usize,
    hpages: usize,
    day_rows: Vec<DayRow>,
    event_rows: Vec<EventRow>,
    upload_rows: Vec<UploadRow>,
    gap_rows: Vec<GapRow>,
}

impl DeviceTemplate {
    fn yes_no(&self, b: &bool) -> &'static str {
        self.c.t(if *b { "yes" } else { "no" })
    }

    fn report_link(&self) -> String {
        format!("/reports?device={}", urlencode(&self.name))
    }

    fn hpage_link(&self, page: usize) -> String {
        format!(
            "/devices/{}?from={}&to={}&hpage={page}#hours",
            urlencode(&self.name),
            self.from,
            self.to
        )
    }
}

fn load_error(e: LoadError, lang: Lang) -> WebError {
    match e {
        LoadError::NoDevice(name) => WebError::NotFound(format!("device {name}")),
        LoadError::BadTimeZone { .. } => {
            WebError::BadRequest(lookup(lang, "bad_time_zone").to_owned())
        }
        LoadError::OutOfRange(_) => WebError::BadRequest(lookup(lang, "bad_date").to_owned()),
        LoadError::Store(e) => e.into(),
    }
}

async fn state_of(
    ctx: &Ctx,
    device: &Device,
    now: Timestamp,
) -> Result<(UnitState, String), WebError> {
    let activity = ctx
        .db
        .device_activity(Some(device.id))
        .await?
        .into_iter()
        .find(|a| a.device_id == device.id);
    let s = &ctx.settings;
    let state = unit_state(device, activity.as_ref(), now, s.late_after, s.silent_after);
    let last = fmt_time(&activity.as_ref().and_then(|a| a.last_contact()));
    Ok((state, last))
}

async fn render(
    ctx: &Ctx,
    auth: &Auth,
    name: &str,
    q: &DeviceQuery,
    here: &str,
) -> Result<Response, WebError> {
    let lang = auth.lang;
    let device = ctx
        .db
        .device_by_name(name)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("device {name}")))?;
    let tz = TimeZone::get(&device.time_zone)
        .map_err(|_| WebError::BadRequest(lookup(lang, "bad_time_zone").to_owned()))?;
    let now = Timestamp::now();
    let range = parse_range(q, current_gas_day(&tz, device.contract_hour, now), lang)?;
    let data = load_report_data(
        ctx.db.as_ref(),
        &[device.name.to_string()],
        range.first,
        range.last,
    )
    .await
    .map_err(|e| load_error(e, lang))?;
    let gaps = telegaz_reports::completeness(
        &data,
        &Period::Range {
            from: range.first,
            to: range.last,
        },
        now,
    )
    .map_err(|e| WebError::BadRequest(e.to_string()))?;
    let Some(data) = data.into_iter().next() else {
        return Err(WebError::NotFound(format!("device {name}")));
    };
    let computed = compute(&data, range, now, lang);
    let uploads = ctx
        .db
        .list_uploads(&UploadFilter {
            device_id: Some(device.id),
            limit: Some(UPLOADS),
            ..UploadFilter::default()
        })
        .await?;
    let (state, last_contact) = state_of(ctx, &device, now).await?;
    let hours_total = computed.hours.len();
    let hpages = hours_total.div_ceil(HOURS_PER_PAGE).max(1);
    let hpage = q.hpage.unwrap_or(1).clamp(1, hpages);
    html(&DeviceTemplate {
        c: Common::new(auth, here),
        name: device.name.to_string(),
        title: device.title.clone(),
        login: device.login.to_string(),
        time_zone: device.time_zone.clone(),
        contract_hour: device.contract_hour,
        enabled: device.enabled,
        state,
        last_contact,
        from: range.first.to_string(),
        to: range.last.to_string(),
        hour_rows: computed
            .hours
            .iter()
            .skip((hpage - 1) * HOURS_PER_PAGE)
            .take(HOURS_PER_PAGE)
            .map(|h| hour_row(h, lang))
            .collect(),
        hours_total,
        hpage,
        hpages,
        day_rows: computed.days.iter().map(|d| day_row(d, lang)).collect(),
        event_rows: computed.events.iter().map(|e| event_row(e, lang)).collect(),
        upload_rows: uploads.iter().map(upload_row).collect(),
        gap_rows: gaps.iter().map(gap_row).collect(),
        vb_chart: computed.vb_chart,
        p_chart: computed.p_chart,
        t_chart: computed.t_chart,
    })
}

async fn page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Path(name): Path<String>,
    Query(q): Query<DeviceQuery>,
    uri: axum::http::Uri,
) -> Response {
    match render(&ctx, &auth, &name, &q, &uri.to_string()).await {
        Ok(r) => r,
        Err(e) => e.respond(false, auth.lang).into_response(),
    }
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new().route("/devices/{name}", get(page))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date(s: &str) -> Date {
        s.parse().unwrap_or_else(|e| unreachable!("{s}: {e}"))
    }

    fn q(from: &str, to: &str) -> DeviceQuery {
        DeviceQuery {
            from: Some(from.into()),
            to: Some(to.into()),
            hpage: None,
        }
    }

    #[test]
    fn ranges_default_to_a_week_and_refuse_nonsense() {
        let today = date("2026-11-25");
        let r = parse_range(&DeviceQuery::default(), today, Lang::Ru);
        assert!(
            matches!(r, Ok(Range { first, last }) if first == date("2026-11-19") && last == today)
        );
        let r = parse_range(&q("2026-01-14", "2026-01-16"), today, Lang::Ru);
        assert!(matches!(r, Ok(Range { first, .. }) if first == date("2026-01-14")));
        assert!(parse_range(&q("", ""), today, Lang::Ru).is_ok());
        for (from, to) in [
            ("2026-01-16", "2026-01-14"),
            ("2025-01-01", "2026-01-02"),
            ("14.01.2026", "2026-01-16"),
        ] {
            assert!(
                matches!(
                    parse_range(&q(from, to), today, Lang::Ru),
                    Err(WebError::BadRequest(_))
                ),
                "{from}..{to}"
            );
        }
        assert!(parse_range(&q("2025-01-01", "2026-01-01"), today, Lang::Ru).is_ok());
    }

    #[test]
    fn consecutive_missing_hours_become_ranges() {
        let t = |s: &str| -> DateTime { s.parse().unwrap_or_else(|e| unreachable!("{e}")) };
        let ends = [
            t("2026-01-15T20:00"),
            t("2026-01-15T21:00"),
            t("2026-01-15T23:00"),
        ];
        assert_eq!(
            hour_ranges(&ends),
            vec!["15.01 20:00 – 15.01 21:00", "15.01 23:00"]
        );
        assert!(hour_ranges(&[]).is_empty());
    }
}
