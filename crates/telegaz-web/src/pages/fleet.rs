//! The fleet overview: every unit with its last contact, newest data, state
//! and yesterday's gas-day volume; search, filter, sort and paging, so that
//! it stays usable with 10,000 units.

use std::collections::HashMap;

use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use telegaz_domain::{Decimal, Device};
use telegaz_store::{DeviceActivity, ReadingFilter};

use super::{Common, html};
use crate::Ctx;
use crate::auth::Auth;
use crate::error::WebError;

/// A unit's state, most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UnitState {
    Silent,
    Never,
    Alarm,
    Quarantined,
    Late,
    Ok,
    Disabled,
}

impl UnitState {
    pub const ALL: [UnitState; 7] = [
        UnitState::Silent,
        UnitState::Never,
        UnitState::Alarm,
        UnitState::Quarantined,
        UnitState::Late,
        UnitState::Ok,
        UnitState::Disabled,
    ];

    pub fn code(self) -> &'static str {
        match self {
            UnitState::Silent => "silent",
            UnitState::Never => "never",
            UnitState::Alarm => "alarm",
            UnitState::Quarantined => "quarantined",
            UnitState::Late => "late",
            UnitState::Ok => "ok",
            UnitState::Disabled => "disabled",
        }
    }

    pub fn phrase_key(self) -> &'static str {
        match self {
            UnitState::Silent => "state_silent",
            UnitState::Never => "state_never",
            UnitState::Alarm => "state_alarm",
            UnitState::Quarantined => "state_quarantined",
            UnitState::Late => "state_late",
            UnitState::Ok => "state_ok",
            UnitState::Disabled => "state_disabled",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<UnitState> {
        UnitState::ALL.into_iter().find(|x| x.code() == s)
    }
}

/// The state of one unit at `now`.
pub(crate) fn unit_state(
    device: &Device,
    activity: Option<&DeviceActivity>,
    now: Timestamp,
    late_after: std::time::Duration,
    silent_after: std::time::Duration,
) -> UnitState {
    if !device.enabled {
        return UnitState::Disabled;
    }
    let Some(last) = activity.and_then(DeviceActivity::last_contact) else {
        return UnitState::Never;
    };
    let quiet = now.duration_since(last);
    let over =
        |d: std::time::Duration| SignedDuration::try_from(d).is_ok_and(|limit| quiet > limit);
    if over(silent_after) {
        return UnitState::Silent;
    }
    if activity.is_some_and(|a| {
        a.newest_status
            .iter()
            .any(|w| telegaz_reports::status_nonzero(w))
    }) {
        return UnitState::Alarm;
    }
    if activity.is_some_and(|a| a.problem_uploads > 0) {
        return UnitState::Quarantined;
    }
    if over(late_after) {
        return UnitState::Late;
    }
    UnitState::Ok
}

/// One line of the overview.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct UnitRow {
    pub name: String,
    pub title: String,
    pub login: String,
    pub state: UnitState,
    pub last_contact: Option<Timestamp>,
    pub newest_data: Option<DateTime>,
    pub problem_uploads: u64,
    /// Standard volume of the device's previous gas day.
    pub yesterday: Option<YesterdayVolume>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct YesterdayVolume {
    pub gas_day: Date,
    pub vb_m3: Option<Decimal>,
    pub hours: u32,
    pub complete: bool,
    pub is_final: bool,
}

#[derive(Debug, Deserialize, Default)]
pub(crate) struct FleetQuery {
    pub q: Option<String>,
    pub state: Option<String>,
    pub sort: Option<String>,
    pub page: Option<usize>,
    pub per: Option<usize>,
}

pub(crate) struct FleetPage {
    pub rows: Vec<UnitRow>,
    pub total: usize,
    pub matching: usize,
    pub page: usize,
    pub pages: usize,
    pub per: usize,
    pub counts: Vec<(UnitState, usize)>,
}

/// Everything the fleet page and `GET /api/v1/fleet` show.
pub(crate) async fn fleet(ctx: &Ctx, query: &FleetQuery) -> Result<FleetPage, WebError> {
    let now = Timestamp::now();
    let devices = ctx.db.list_devices().await?;
    let activity = telegaz_store::activity_by_device(&*ctx.db).await?;
    let s = &ctx.settings;
    let mut all: Vec<(UnitState, &Device, Option<&DeviceActivity>)> = devices
        .iter()
        .map(|d| {
            let a = activity.get(&d.id);
            (unit_state(d, a, now, s.late_after, s.silent_after), d, a)
        })
        .collect();
    let mut counts: HashMap<UnitState, usize> = HashMap::new();
    for (state, _, _) in &all {
        *counts.entry(*state).or_default() += 1;
    }
    let needle = query.q.as_deref().unwrap_or("").trim().to_lowercase();
    let wanted = query.state.as_deref().and_then(UnitState::parse);
    all.retain(|(state, d, _)| {
        wanted.is_none_or(|w| w == *state)
            && (needle.is_empty()
                || d.name.as_str().to_lowercase().contains(&needle)
                || d.login.as_str().to_lowercase().contains(&needle)
                || d.title.to_lowercase().contains(&needle))
    });
    match query.sort.as_deref() {
        Some("contact") => all.sort_by(|a, b| {
            let ca = a.2.and_then(DeviceActivity::last_contact);
            let cb = b.2.and_then(DeviceActivity::last_contact);
            ca.cmp(&cb).then_with(|| a.1.name.cmp(&b.1.name))
        }),
        Some("state") => all.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name))),
        _ => all.sort_by(|a, b| a.1.name.cmp(&b.1.name)),
    }
    let per = query.per.unwrap_or(50).clamp(1, 500);
    let matching = all.len();
    let pages = matching.div_ceil(per).max(1);
    let page = query.page.unwrap_or(1).clamp(1, pages);
    let mut rows = Vec::with_capacity(per);
    for (state, d, a) in all.into_iter().skip((page - 1) * per).take(per) {
        rows.push(UnitRow {
            name: d.name.to_string(),
            title: d.title.clone(),
            login: d.login.to_string(),
            state,
            last_contact: a.and_then(DeviceActivity::last_contact),
            newest_data: a.and_then(|a| a.newest_reading),
            problem_uploads: a.map_or(0, |a| a.problem_uploads),
            yesterday: yesterday_volume(ctx, d, now).await?,
        });
    }
    let mut counts: Vec<(UnitState, usize)> = counts.into_iter().collect();
    counts.sort();
    Ok(FleetPage {
        rows,
        total: devices.len(),
        matching,
        page,
        pages,
        per,
        counts,
    })
}

/// The device's previous gas day, from its hourly readings (only computed
/// for the rows on the page).
async fn yesterday_volume(
    ctx: &Ctx,
    d: &Device,
    now: Timestamp,
) -> Result<Option<YesterdayVolume>, WebError> {
    let Ok(tz) = TimeZone::get(&d.time_zone) else {
        return Ok(None);
    };
    let now_local = tz.to_datetime(now);
    let current = (now_local - SignedDuration::from_hours(i64::from(d.contract_hour))).date();
    let Ok(yesterday) = current.yesterday() else {
        return Ok(None);
    };
    let start = yesterday.at(d.contract_hour, 0, 0, 0);
    let records = ctx
        .db
        .readings(&ReadingFilter {
            device_id: d.id,
            kind: None,
            from: Some(start - SignedDuration::from_hours(2)),
            to: Some(current.at(d.contract_hour, 0, 0, 0)),
        })
        .await?;
    if records.is_empty() {
        return Ok(None);
    }
    let days = telegaz_domain::gasday::daily(&records, &tz, d.contract_hour, now_local);
    Ok(days
        .into_iter()
        .find(|g| g.gas_day == yesterday)
        .map(|g| YesterdayVolume {
            gas_day: g.gas_day,
            vb_m3: (g.hours > 0).then_some(g.vb_m3),
            hours: g.hours,
            complete: g.complete,
            is_final: g.is_final,
        }))
}

#[derive(Template)]
#[template(path = "fleet.html")]
struct FleetTemplate {
    c: Common,
    f: FleetPage,
    q: String,
    state: String,
    sort: String,
}

impl FleetTemplate {
    fn states(&self) -> Vec<(&'static str, &'static str, usize)> {
        UnitState::ALL
            .iter()
            .map(|s| {
                let n = self
                    .f
                    .counts
                    .iter()
                    .find(|(x, _)| x == s)
                    .map_or(0, |(_, n)| *n);
                (s.code(), s.phrase_key(), n)
            })
            .collect()
    }

    fn page_link(&self, page: usize) -> String {
        format!(
            "/?q={}&state={}&sort={}&per={}&page={page}",
            crate::auth::urlencode(&self.q),
            crate::auth::urlencode(&self.state),
            crate::auth::urlencode(&self.sort),
            self.f.per
        )
    }
}

pub(crate) fn fmt_time(t: &Option<Timestamp>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

pub(crate) fn fmt_local(t: &Option<DateTime>) -> String {
    t.map(|t| t.strftime("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

async fn page(
    State(ctx): State<Ctx>,
    auth: Auth,
    Query(query): Query<FleetQuery>,
    uri: axum::http::Uri,
) -> Result<Response, WebError> {
    let f = fleet(&ctx, &query).await?;
    html(&FleetTemplate {
        c: Common::new(&auth, &uri.to_string()),
        f,
        q: query.q.unwrap_or_default(),
        state: query.state.unwrap_or_default(),
        sort: query.sort.unwrap_or_default(),
    })
}

pub(crate) fn routes() -> Router<Ctx> {
    Router::new().route("/", get(page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use telegaz_domain::{DeviceId, DeviceName};

    fn device(enabled: bool) -> Device {
        Device {
            id: DeviceId(1),
            name: DeviceName::parse("u").unwrap_or_else(|e| unreachable!("{e}")),
            login: DeviceName::parse("u").unwrap_or_else(|e| unreachable!("{e}")),
            password_hash: String::new(),
            enabled,
            allowed_networks: vec![],
            time_zone: "Europe/Moscow".into(),
            contract_hour: 10,
            title: String::new(),
            tls_required: false,
            created_at: Timestamp::UNIX_EPOCH,
        }
    }

    fn activity(hours_ago: i64, status: &[&str], problems: u64) -> DeviceActivity {
        let now: Timestamp = "2026-11-25T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        DeviceActivity {
            device_id: DeviceId(1),
            last_upload_at: Some(now - SignedDuration::from_hours(hours_ago)),
            last_login_at: None,
            newest_reading: None,
            newest_status: status.iter().map(|s| (*s).to_owned()).collect(),
            problem_uploads: problems,
            last_upload_partial: false,
        }
    }

    #[test]
    fn states_follow_contact_alarms_and_problems() {
        let now: Timestamp = "2026-11-25T12:00:00Z"
            .parse()
            .unwrap_or(Timestamp::UNIX_EPOCH);
        let late = Duration::from_secs(26 * 3600);
        let silent = Duration::from_secs(72 * 3600);
        let st = |d: &Device, a: Option<&DeviceActivity>| unit_state(d, a, now, late, silent);
        assert_eq!(st(&device(true), None), UnitState::Never);
        assert_eq!(st(&device(false), None), UnitState::Disabled);
        assert_eq!(
            st(&device(true), Some(&activity(1, &["0"], 0))),
            UnitState::Ok
        );
        assert_eq!(
            st(&device(true), Some(&activity(30, &["0"], 0))),
            UnitState::Late
        );
        assert_eq!(
            st(&device(true), Some(&activity(100, &["0x2000"], 3))),
            UnitState::Silent
        );
        assert_eq!(
            st(&device(true), Some(&activity(1, &["0", "0x2000"], 3))),
            UnitState::Alarm
        );
        assert_eq!(
            st(&device(true), Some(&activity(1, &["0"], 2))),
            UnitState::Quarantined
        );
    }
}
