//! Evaluation: which conditions hold now, and the alerts that follow.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use telegaz_domain::{Alert, AlertKind, Device, DeviceId, NotificationEvent, Severity};
use telegaz_store::{AlertFilter, Database, DeviceActivity, NewAlert, NewNotification, StoreError};

use crate::Clock;

/// How alerts are raised.
#[derive(Debug, Clone)]
pub struct AlertSettings {
    /// How often conditions are evaluated.
    pub evaluate_every: Duration,
    /// Added to a unit's usual interval before it counts as silent.
    pub silent_grace: Duration,
    /// The interval assumed for a unit whose schedule cannot be learned yet
    /// (fewer than three uploads).
    pub silent_default_interval: Duration,
    /// This many units going silent (or coming back) in one evaluation are
    /// told in one digest instead of a message each.
    pub digest_threshold: usize,
    /// The notifiers every notification goes to (by name).
    pub notifiers: Vec<String>,
    /// Value limits per unit.
    pub limits: Vec<LimitRule>,
    /// Maintenance windows: no new alerts for the units named.
    pub maintenance: Vec<Maintenance>,
    /// The server's own health: free space where the spool is, ingest backlog.
    pub server: ServerHealth,
    /// Alert on hours missing in a unit's last final gas day.
    pub missing_hours: bool,
    /// A condition that comes back within this time after it was resolved
    /// is flapping: its alert opens and resolves without notifications.
    pub flap_window: Duration,
    /// Upload intervals set per unit (name patterns), instead of learned.
    pub schedules: Vec<(Vec<String>, Duration)>,
    /// Event codes the built-in list does not know: code → (meaning, severity).
    pub event_codes: HashMap<u16, (String, Severity)>,
}

/// When the server itself needs attention.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerHealth {
    /// The spool directory (its file system's free space is watched).
    pub spool_dir: Option<std::path::PathBuf>,
    /// Less free space than this is an alert.
    pub min_free_bytes: u64,
    /// An upload waiting this long for ingest is an alert (ingest stopped or
    /// cannot keep up).
    pub max_ingest_delay: Duration,
}

impl Default for ServerHealth {
    fn default() -> Self {
        ServerHealth {
            spool_dir: None,
            min_free_bytes: 1 << 30,
            max_ingest_delay: Duration::from_secs(15 * 60),
        }
    }
}

/// Free bytes for unprivileged users on the file system holding `path`.
#[cfg(unix)]
fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let st = rustix::fs::statvfs(path).ok()?;
    st.f_bavail.checked_mul(st.f_frsize)
}

#[cfg(not(unix))]
fn free_bytes(_path: &std::path::Path) -> Option<u64> {
    None
}

fn gib(bytes: u64) -> String {
    format!("{:.1} ГиБ", bytes as f64 / f64::from(1u32 << 30))
}

/// An optional lower and upper bound.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Bounds {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Bounds {
    /// The bound a value breaks, if any: ("ниже"/"выше", the bound).
    fn broken(&self, v: f64) -> Option<(&'static str, f64)> {
        match (self.min, self.max) {
            (Some(min), _) if v < min => Some(("ниже", min)),
            (_, Some(max)) if v > max => Some(("выше", max)),
            _ => None,
        }
    }
}

/// Limits for the units whose names match `devices` (`*` is a wildcard).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LimitRule {
    pub devices: Vec<String>,
    pub p_kpa: Bounds,
    pub t_c: Bounds,
    pub hourly_m3: Bounds,
}

/// A maintenance window for the units whose names match `devices`.
#[derive(Debug, Clone, PartialEq)]
pub struct Maintenance {
    pub devices: Vec<String>,
    pub from: Timestamp,
    pub to: Timestamp,
}

/// `*` matches any run of characters; everything else itself.
pub(crate) fn name_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    if parts.len() == 1 {
        return pattern == name;
    }
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for m in middle {
        match rest.find(m) {
            Some(i) => rest = &rest[i + m.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

fn matches_any(patterns: &[String], name: &str) -> bool {
    patterns.iter().any(|p| name_matches(p, name))
}

impl Default for AlertSettings {
    fn default() -> Self {
        AlertSettings {
            evaluate_every: Duration::from_secs(60),
            silent_grace: Duration::from_secs(30 * 60),
            silent_default_interval: Duration::from_secs(24 * 3600),
            digest_threshold: 20,
            notifiers: Vec::new(),
            limits: Vec::new(),
            maintenance: Vec::new(),
            server: ServerHealth::default(),
            missing_hours: true,
            flap_window: Duration::from_secs(30 * 60),
            schedules: Vec::new(),
            event_codes: HashMap::new(),
        }
    }
}

/// The kinds of alert the engine raises and resolves itself.
const MANAGED: [AlertKind; 6] = [
    AlertKind::MissingHours,
    AlertKind::Silent,
    AlertKind::CorrectorEvent,
    AlertKind::UploadProblem,
    AlertKind::Limit,
    AlertKind::ServerHealth,
];

/// Uploads of a unit that its schedule is learned from.
const HISTORY: u32 = 11;

/// What one evaluation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    pub opened: usize,
    pub resolved: usize,
    /// Digests queued (instead of one message per unit).
    pub digests: usize,
    /// Notifications queued, digests included.
    pub notifications: usize,
    /// Units whose changed state was published.
    pub states_published: usize,
    /// Openings and resolutions not told because the condition flaps.
    pub quiet: usize,
}

impl Evaluation {
    /// Count one opening or resolution by how it is told; true when it goes
    /// into the digest.
    fn tally(&mut self, in_digest: bool, flapping: bool) -> bool {
        if in_digest {
            return true;
        }
        if flapping {
            self.quiet += 1;
        } else {
            self.notifications += 1;
        }
        false
    }
}

/// A condition that holds now.
#[derive(Debug, Clone)]
struct Condition {
    key: String,
    kind: AlertKind,
    severity: Severity,
    /// None for the server's own conditions.
    device_id: Option<DeviceId>,
    device: Option<String>,
    title: String,
    text: String,
}

/// A unit's event-log conditions, as of its last upload then.
type EventsSeen = (Option<Timestamp>, Vec<Condition>);

/// What was last published of a unit (so that only changes go out).
type Published = (
    Option<Timestamp>,
    Option<jiff::civil::DateTime>,
    Vec<String>,
);

/// Derives alerts from the store.
pub struct Engine {
    db: Arc<dyn Database>,
    clock: Arc<dyn Clock>,
    settings: AlertSettings,
    publishers: Vec<Arc<dyn crate::StatePublisher>>,
    published: std::sync::Mutex<HashMap<DeviceId, Published>>,
    /// Each unit's event-log conditions, kept until it uploads again (the
    /// log only changes with an upload; a restart reads every unit once).
    event_cache: std::sync::Mutex<HashMap<DeviceId, EventsSeen>>,
    /// Each unit's missing-hours condition, as of (its last upload, the gas day).
    gap_cache: std::sync::Mutex<HashMap<DeviceId, GapsSeen>>,
    /// Told directly when the database keeps failing.
    emergency: Vec<Arc<dyn crate::Sender>>,
}

/// Failed evaluations in a row after which the database counts as failing.
pub const DATABASE_FAILURES: u32 = 3;

/// A unit's missing-hours condition for a gas day, as of its last upload then.
type GapsSeen = (Option<Timestamp>, jiff::civil::Date, Option<Condition>);

fn to_signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// `3 ч 05 мин`, for people.
fn human(d: SignedDuration) -> String {
    let mins = d.as_secs().max(0) / 60;
    let (days, hours, mins) = (mins / 1440, (mins / 60) % 24, mins % 60);
    match (days, hours) {
        (0, 0) => format!("{mins} мин"),
        (0, h) => format!("{h} ч {mins:02} мин"),
        (d, h) => format!("{d} сут {h} ч"),
    }
}

fn moscow(t: Timestamp) -> String {
    let tz = jiff::tz::TimeZone::get("Europe/Moscow").unwrap_or(jiff::tz::TimeZone::UTC);
    tz.to_datetime(t).strftime("%d.%m.%Y %H:%M МСК").to_string()
}

/// A unit's usual interval between uploads: the median gap between its
/// newest uploads, when there are at least three.
pub(crate) fn learned_interval(times_newest_first: &[Timestamp]) -> Option<SignedDuration> {
    if times_newest_first.len() < 3 {
        return None;
    }
    let mut gaps: Vec<SignedDuration> = times_newest_first
        .windows(2)
        .filter_map(|w| match w {
            [newer, older] => Some(newer.duration_since(*older)),
            _ => None,
        })
        .filter(|g| g.is_positive())
        .collect();
    if gaps.is_empty() {
        return None;
    }
    gaps.sort();
    gaps.get(gaps.len() / 2).copied()
}

fn status_alarm(words: &[String]) -> Option<&String> {
    words.iter().find(|w| {
        let w = w.trim();
        let value = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => w.parse::<u64>().ok(),
        };
        !w.is_empty() && value != Some(0)
    })
}

impl Engine {
    pub fn new(db: Arc<dyn Database>, clock: Arc<dyn Clock>, settings: AlertSettings) -> Self {
        Engine {
            db,
            clock,
            settings,
            publishers: Vec::new(),
            published: std::sync::Mutex::new(HashMap::new()),
            event_cache: std::sync::Mutex::new(HashMap::new()),
            gap_cache: std::sync::Mutex::new(HashMap::new()),
            emergency: Vec::new(),
        }
    }

    /// Tell these notifiers directly when the database keeps failing.
    pub fn with_emergency(mut self, senders: Vec<Arc<dyn crate::Sender>>) -> Self {
        self.emergency = senders;
        self
    }

    /// Publish every unit's latest state there whenever it changes.
    pub fn with_publishers(mut self, publishers: Vec<Arc<dyn crate::StatePublisher>>) -> Self {
        self.publishers = publishers;
        self
    }

    /// Publish the state of the units whose contact, newest reading or open
    /// alerts changed since the last time (all of them after a start; the
    /// MQTT messages are retained, so that is harmless). A publisher that
    /// fails is logged; the units are tried again at the next evaluation.
    async fn publish_states(
        &self,
        devices: &[Device],
        activity: &HashMap<DeviceId, DeviceActivity>,
    ) -> Result<usize, StoreError> {
        if self.publishers.is_empty() {
            return Ok(0);
        }
        let open = self
            .db
            .list_alerts(&AlertFilter {
                active: true,
                ..AlertFilter::default()
            })
            .await?;
        let mut sent = 0;
        for d in devices {
            let a = activity.get(&d.id);
            let mut kinds: Vec<String> = open
                .iter()
                .filter(|x| x.device_id == Some(d.id))
                .map(|x| x.kind.as_str().to_owned())
                .collect();
            kinds.sort();
            kinds.dedup();
            let now: Published = (
                a.and_then(DeviceActivity::last_contact),
                a.and_then(|a| a.newest_reading),
                kinds.clone(),
            );
            let unchanged = match self.published.lock() {
                Ok(p) => p.get(&d.id) == Some(&now),
                Err(_) => false,
            };
            if unchanged {
                continue;
            }
            let newest = match now.1 {
                Some(t) => self
                    .db
                    .readings(&telegaz_store::ReadingFilter {
                        device_id: d.id,
                        kind: Some(telegaz_domain::ArchiveKind::Interval),
                        from: Some(t),
                        to: Some(t),
                    })
                    .await?
                    .into_iter()
                    .next(),
                None => None,
            };
            let state = crate::DeviceState {
                device: d.name.to_string(),
                title: d.title.clone(),
                enabled: d.enabled,
                last_contact: now.0,
                newest,
                alerts: kinds,
            };
            let mut all_ok = true;
            for p in &self.publishers {
                if let Err(e) = p.publish(&state).await {
                    all_ok = false;
                    tracing::warn!(publisher = p.name(), device = %d.name, error = %e, "unit state not published; trying again at the next evaluation");
                }
            }
            if all_ok {
                sent += 1;
                if let Ok(mut p) = self.published.lock() {
                    p.insert(d.id, now);
                }
            }
        }
        Ok(sent)
    }

    pub fn settings(&self) -> &AlertSettings {
        &self.settings
    }

    fn conditions(
        &self,
        now: Timestamp,
        devices: &[Device],
        activity: &HashMap<DeviceId, DeviceActivity>,
        times: &HashMap<DeviceId, Vec<Timestamp>>,
    ) -> Vec<Condition> {
        let mut out = Vec::new();
        for d in devices.iter().filter(|d| d.enabled) {
            let Some(a) = activity.get(&d.id) else {
                continue;
            };
            let label = if d.title.is_empty() {
                d.name.to_string()
            } else {
                format!("{} ({})", d.name, d.title)
            };
            // A unit never heard from is not expected yet: it cannot be silent.
            if let Some(last) = a.last_contact() {
                let set = self
                    .settings
                    .schedules
                    .iter()
                    .find(|(patterns, _)| matches_any(patterns, d.name.as_str()))
                    .map(|(_, every)| to_signed(*every));
                let learned = set.or_else(|| times.get(&d.id).and_then(|t| learned_interval(t)));
                let interval = learned.unwrap_or(to_signed(self.settings.silent_default_interval));
                let quiet = now.duration_since(last);
                if quiet > interval.saturating_add(to_signed(self.settings.silent_grace)) {
                    out.push(Condition {
                        key: format!("silent:{}", d.id),
                        kind: AlertKind::Silent,
                        severity: Severity::Warning,
                        device_id: Some(d.id),
                        device: Some(d.name.to_string()),
                        title: format!("Узел {} молчит", d.name),
                        text: format!(
                            "Узел {label}: нет связи с {} ({} назад); обычный интервал передачи {}{}.",
                            moscow(last),
                            human(quiet),
                            human(interval),
                            if learned.is_some() { "" } else { " (по умолчанию)" }
                        ),
                    });
                }
            }
            if let Some(word) = status_alarm(&a.newest_status) {
                let when = a.newest_reading.map(|t| t.to_string()).unwrap_or_default();
                out.push(Condition {
                    key: format!("corrector_alarm:{}", d.id),
                    kind: AlertKind::CorrectorEvent,
                    severity: Severity::Critical,
                    device_id: Some(d.id),
                    device: Some(d.name.to_string()),
                    title: format!("Авария корректора на узле {}", d.name),
                    text: format!(
                        "Узел {label}: в последней часовой записи ({when}) слово состояния {word}."
                    ),
                });
            }
            // A transfer cut off and not retried within the grace period.
            if a.last_upload_partial
                && a.last_upload_at
                    .is_some_and(|t| now.duration_since(t) > to_signed(self.settings.silent_grace))
            {
                out.push(Condition {
                    key: format!("partial:{}", d.id),
                    kind: AlertKind::UploadProblem,
                    severity: Severity::Warning,
                    device_id: Some(d.id),
                    device: Some(d.name.to_string()),
                    title: format!("Передача с узла {} оборвалась", d.name),
                    text: format!(
                        "Узел {label}: последняя передача файла оборвалась и не повторена (начата {}). Принятая часть сохранена.",
                        a.last_upload_at.map(moscow).unwrap_or_default()
                    ),
                });
            }
            if a.problem_uploads > 0 {
                out.push(Condition {
                    key: format!("upload_problem:{}", d.id),
                    kind: AlertKind::UploadProblem,
                    severity: Severity::Warning,
                    device_id: Some(d.id),
                    device: Some(d.name.to_string()),
                    title: format!("Файлы узла {} не разобраны", d.name),
                    text: format!(
                        "Узел {label}: файлов в карантине или с ошибкой разбора: {}. Проверьте их в разделе «Файлы».",
                        a.problem_uploads
                    ),
                });
            }
        }
        out
    }

    /// Values of the units with limits that are outside them, from each
    /// unit's newest hourly row (and the row an hour before, for the hour's
    /// consumption).
    async fn limit_conditions(
        &self,
        devices: &[Device],
        activity: &HashMap<DeviceId, DeviceActivity>,
    ) -> Result<Vec<Condition>, StoreError> {
        let mut out = Vec::new();
        if self.settings.limits.is_empty() {
            return Ok(out);
        }
        for d in devices.iter().filter(|d| d.enabled) {
            let rules: Vec<&LimitRule> = self
                .settings
                .limits
                .iter()
                .filter(|r| matches_any(&r.devices, d.name.as_str()))
                .collect();
            let Some(newest) = activity.get(&d.id).and_then(|a| a.newest_reading) else {
                continue;
            };
            if rules.is_empty() {
                continue;
            }
            let rows = self
                .db
                .readings(&telegaz_store::ReadingFilter {
                    device_id: d.id,
                    kind: Some(telegaz_domain::ArchiveKind::Interval),
                    from: Some(newest - SignedDuration::from_hours(1)),
                    to: Some(newest),
                })
                .await?;
            let usable = |t| {
                rows.iter().find(|r| {
                    // Rows whose check is not good are never used for values.
                    r.local_time == t && !matches!(r.check, telegaz_domain::Check::Failed(_))
                })
            };
            let Some(last) = usable(newest) else {
                continue;
            };
            let before = usable(newest - SignedDuration::from_hours(1));
            let q = &last.quantities;
            let hour = match (q.vb, before.and_then(|b| b.quantities.vb)) {
                (Some(now), Some(then)) if now >= then => Some(now - then),
                _ => None,
            };
            let values: [(&str, &str, &str, Option<telegaz_domain::Decimal>); 3] = [
                ("p", "Давление", "кПа", q.p_kpa),
                ("t", "Температура", "°C", q.t_c),
                ("hourly", "Часовой расход", "м³", hour),
            ];
            for (code, what, unit, value) in values {
                let Some(value) = value else { continue };
                let v = value.to_string().parse::<f64>().unwrap_or(f64::NAN);
                for r in &rules {
                    let bounds = match code {
                        "p" => r.p_kpa,
                        "t" => r.t_c,
                        _ => r.hourly_m3,
                    };
                    if let Some((side, bound)) = bounds.broken(v) {
                        out.push(Condition {
                            key: format!("limit:{}:{code}", d.id),
                            kind: AlertKind::Limit,
                            severity: Severity::Warning,
                            device_id: Some(d.id),
                            device: Some(d.name.to_string()),
                            title: format!("{what} на узле {} вне пределов", d.name),
                            text: format!(
                                "Узел {}: {} {value} {unit} {side} предела {bound} {unit} (запись {}).",
                                d.name,
                                what.to_lowercase(),
                                last.local_time
                            ),
                        });
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    /// Raised corrector events not cleared yet, and a clock set back within a
    /// day, from each unit's event log of the last 62 days.
    async fn event_conditions(
        &self,
        now: Timestamp,
        devices: &[Device],
        activity: &HashMap<DeviceId, DeviceActivity>,
    ) -> Result<Vec<Condition>, StoreError> {
        let mut out = Vec::new();
        for d in devices.iter().filter(|d| d.enabled) {
            let Some(a) = activity.get(&d.id) else {
                continue;
            };
            let Ok(tz) = jiff::tz::TimeZone::get(&d.time_zone) else {
                continue;
            };
            let local_now = tz.to_datetime(now);
            let cached = match self.event_cache.lock() {
                Ok(c) => c
                    .get(&d.id)
                    .filter(|(seen, conds)| {
                        // The clock condition ends with time, not with an upload.
                        *seen == a.last_upload_at && conds.iter().all(|c| !c.key.ends_with(":8004"))
                    })
                    .map(|(_, conds)| conds.clone()),
                Err(_) => None,
            };
            if let Some(conds) = cached {
                out.extend(conds);
                continue;
            }
            let log = self
                .db
                .events(&telegaz_store::ReadingFilter {
                    device_id: d.id,
                    kind: None,
                    from: Some(local_now - SignedDuration::from_hours(62 * 24)),
                    to: None,
                })
                .await?;
            let conds: Vec<Condition> =
                crate::events::holding(&log, local_now, &self.settings.event_codes)
                    .into_iter()
                    .map(|e| Condition {
                        key: format!("event:{}:{:04x}", d.id, e.code),
                        kind: AlertKind::CorrectorEvent,
                        severity: e.severity,
                        device_id: Some(d.id),
                        device: Some(d.name.to_string()),
                        title: format!("Событие корректора на узле {}: {}", d.name, e.what),
                        text: format!(
                            "Узел {}: {} с {} (журнал событий корректора).",
                            d.name, e.what, e.since
                        ),
                    })
                    .collect();
            if let Ok(mut c) = self.event_cache.lock() {
                c.insert(d.id, (a.last_upload_at, conds.clone()));
            }
            out.extend(conds);
        }
        Ok(out)
    }

    /// Hours missing in the archive of each unit's last final gas day (the
    /// one that ended at today's contract hour): what to ask it to send again.
    /// Read again only when the unit uploads or the gas day changes.
    async fn gap_conditions(
        &self,
        now: Timestamp,
        devices: &[Device],
        activity: &HashMap<DeviceId, DeviceActivity>,
    ) -> Result<Vec<Condition>, StoreError> {
        let mut out = Vec::new();
        if !self.settings.missing_hours {
            return Ok(out);
        }
        for d in devices.iter().filter(|d| d.enabled) {
            // A unit that never sent a reading has no archive to have gaps in.
            let Some(a) = activity.get(&d.id).filter(|a| a.newest_reading.is_some()) else {
                continue;
            };
            let Ok(tz) = jiff::tz::TimeZone::get(&d.time_zone) else {
                continue;
            };
            let local_now = tz.to_datetime(now);
            let current =
                (local_now - SignedDuration::from_hours(i64::from(d.contract_hour))).date();
            let Ok(day) = current.yesterday() else {
                continue;
            };
            let cached = match self.gap_cache.lock() {
                Ok(c) => c
                    .get(&d.id)
                    .filter(|(seen, seen_day, _)| *seen == a.last_upload_at && *seen_day == day)
                    .map(|(_, _, cond)| cond.clone()),
                Err(_) => None,
            };
            if let Some(cond) = cached {
                out.extend(cond);
                continue;
            }
            let start = day.at(d.contract_hour, 0, 0, 0);
            let records = self
                .db
                .readings(&telegaz_store::ReadingFilter {
                    device_id: d.id,
                    kind: Some(telegaz_domain::ArchiveKind::Interval),
                    from: Some(start - SignedDuration::from_hours(2)),
                    to: Some(current.at(d.contract_hour, 0, 0, 0)),
                })
                .await?;
            let data = telegaz_reports::DeviceData {
                name: d.name.to_string(),
                time_zone: tz,
                contract_hour: d.contract_hour,
                records,
                events: Vec::new(),
            };
            let missing =
                telegaz_reports::completeness(&[data], &telegaz_reports::Period::GasDay(day), now)
                    .ok()
                    .and_then(|days| days.into_iter().next())
                    .map(|c| c.missing_readings)
                    .unwrap_or_default();
            let cond = (!missing.is_empty()).then(|| {
                let shown: Vec<String> = missing
                    .iter()
                    .take(24)
                    .map(|t| t.strftime("%H:%M").to_string())
                    .collect();
                Condition {
                    key: format!("missing_hours:{}", d.id),
                    kind: AlertKind::MissingHours,
                    severity: Severity::Info,
                    device_id: Some(d.id),
                    device: Some(d.name.to_string()),
                    title: format!("Пропуски в архиве узла {}", d.name),
                    text: format!(
                        "Узел {}: за газовые сутки {day} нет часовых записей на {} ч ({}). Запросите повторную передачу архива.",
                        d.name,
                        missing.len(),
                        shown.join(", ")
                    ),
                }
            });
            if let Ok(mut c) = self.gap_cache.lock() {
                c.insert(d.id, (a.last_upload_at, day, cond.clone()));
            }
            out.extend(cond);
        }
        Ok(out)
    }

    /// The server's own conditions: little free space for the spool, an
    /// ingest backlog older than allowed.
    async fn server_conditions(&self, now: Timestamp) -> Result<Vec<Condition>, StoreError> {
        let mut out = Vec::new();
        let h = &self.settings.server;
        if let Some(dir) = &h.spool_dir
            && let Some(free) = free_bytes(dir)
            && free < h.min_free_bytes
        {
            out.push(Condition {
                key: "server:disk".into(),
                kind: AlertKind::ServerHealth,
                severity: Severity::Critical,
                device_id: None,
                device: None,
                title: "Мало места на диске сервера".into(),
                text: format!(
                    "Свободно {} в {} (порог {}). Когда место кончится, файлы от узлов перестанут приниматься.",
                    gib(free),
                    dir.display(),
                    gib(h.min_free_bytes)
                ),
            });
        }
        let (waiting, oldest) = self.db.ingest_backlog().await?;
        if let Some(oldest) = oldest
            && now.duration_since(oldest) > to_signed(h.max_ingest_delay)
        {
            out.push(Condition {
                key: "server:ingest_backlog".into(),
                kind: AlertKind::ServerHealth,
                severity: Severity::Warning,
                device_id: None,
                device: None,
                title: "Разбор файлов отстаёт".into(),
                text: format!(
                    "В очереди разбора {waiting} файлов; старейший ждёт {}. Проверьте, что разбор включён (ingest.enabled) и журнал сервера.",
                    human(now.duration_since(oldest))
                ),
            });
        }
        Ok(out)
    }

    /// Whether a condition that holds (again) at `at` flaps: an alert with
    /// its key was resolved less than `flap_window` before.
    async fn flapping(&self, key: &str, at: Timestamp) -> Result<bool, StoreError> {
        Ok(self
            .db
            .last_resolved_before(key, at)
            .await?
            .is_some_and(|t| at.duration_since(t) < to_signed(self.settings.flap_window)))
    }

    fn in_maintenance(&self, device: &str, now: Timestamp) -> bool {
        self.settings
            .maintenance
            .iter()
            .any(|m| m.from <= now && now < m.to && matches_any(&m.devices, device))
    }

    fn notice(&self, event: NotificationEvent, c: &Condition, at: Timestamp) -> NewNotification {
        let (title, text) = match event {
            NotificationEvent::Resolved => (
                format!("Восстановлено: {}", c.title),
                format!("Состояние нормализовалось ({}).", moscow(at)),
            ),
            _ => (c.title.clone(), c.text.clone()),
        };
        NewNotification {
            event,
            kind: c.kind,
            severity: c.severity,
            device: c.device.clone(),
            title,
            text,
            at,
            devices: c.device.clone().into_iter().collect(),
            notifiers: self.settings.notifiers.clone(),
        }
    }

    fn digest(
        &self,
        event: NotificationEvent,
        devices: Vec<String>,
        at: Timestamp,
    ) -> NewNotification {
        let opened = event == NotificationEvent::Opened;
        let title = if opened {
            format!("Нет связи с {} узлами", devices.len())
        } else {
            format!("Связь восстановлена с {} узлами", devices.len())
        };
        let mut shown: Vec<&str> = devices.iter().map(String::as_str).take(50).collect();
        if devices.len() > shown.len() {
            shown.push("…");
        }
        let text = format!(
            "{} ({}). Возможна авария сети оператора связи. Узлы: {}.",
            title,
            moscow(at),
            shown.join(", ")
        );
        NewNotification {
            event: NotificationEvent::Digest,
            kind: AlertKind::Silent,
            severity: if opened {
                Severity::Critical
            } else {
                Severity::Info
            },
            device: None,
            title,
            text,
            at,
            devices,
            notifiers: self.settings.notifiers.clone(),
        }
    }

    /// Queue one digest for the units that went silent (or came back) together.
    async fn queue_digest(
        &self,
        event: NotificationEvent,
        mut devices: Vec<String>,
        now: Timestamp,
        result: &mut Evaluation,
    ) -> Result<(), StoreError> {
        if devices.is_empty() {
            return Ok(());
        }
        devices.sort();
        self.db
            .enqueue_notification(&self.digest(event, devices, now))
            .await?;
        result.digests += 1;
        result.notifications += 1;
        Ok(())
    }

    /// Evaluate once: open the alerts whose condition began, resolve those
    /// whose condition is over, queue their notifications.
    pub async fn evaluate(&self) -> Result<Evaluation, StoreError> {
        let now = self.clock.now();
        let devices = self.db.list_devices().await?;
        let activity = telegaz_store::activity_by_device(&*self.db).await?;
        let times: HashMap<DeviceId, Vec<Timestamp>> = self
            .db
            .recent_upload_times(HISTORY)
            .await?
            .into_iter()
            .collect();
        let mut conditions = self.conditions(now, &devices, &activity, &times);
        conditions.extend(self.limit_conditions(&devices, &activity).await?);
        conditions.extend(self.server_conditions(now).await?);
        conditions.extend(self.event_conditions(now, &devices, &activity).await?);
        conditions.extend(self.gap_conditions(now, &devices, &activity).await?);
        let active = self
            .db
            .list_alerts(&AlertFilter {
                active: true,
                ..AlertFilter::default()
            })
            .await?;
        let active_keys: HashSet<&str> = active.iter().map(|a| a.key.as_str()).collect();
        let mut result = Evaluation::default();

        // A unit in maintenance opens no alert (and resolves none that holds).
        let new: Vec<&Condition> = conditions
            .iter()
            .filter(|c| !active_keys.contains(c.key.as_str()))
            .filter(|c| {
                c.device
                    .as_deref()
                    .is_none_or(|d| !self.in_maintenance(d, now))
            })
            .collect();
        let new_silent = new.iter().filter(|c| c.kind == AlertKind::Silent).count();
        let digest_opened = new_silent >= self.settings.digest_threshold.max(2);
        let mut digest_devices = Vec::new();
        for c in new {
            let in_digest = digest_opened && c.kind == AlertKind::Silent;
            let flapping = self.flapping(&c.key, now).await?;
            let notice =
                (!in_digest && !flapping).then(|| self.notice(NotificationEvent::Opened, c, now));
            let alert = NewAlert {
                key: c.key.clone(),
                kind: c.kind,
                severity: c.severity,
                device_id: c.device_id,
                title: c.title.clone(),
                detail: c.text.clone(),
                opened_at: now,
            };
            if self.db.open_alert(&alert, notice.as_ref()).await?.is_some() {
                result.opened += 1;
                if result.tally(in_digest, flapping) {
                    digest_devices.extend(c.device.clone());
                }
                tracing::warn!(alert = %c.key, device = c.device.as_deref().unwrap_or(""), kind = %c.kind, "alert opened");
                metrics::counter!("telegaz_alerts_opened_total", "kind" => c.kind.as_str())
                    .increment(1);
            }
        }
        self.queue_digest(NotificationEvent::Opened, digest_devices, now, &mut result)
            .await?;

        let holding: HashSet<&str> = conditions.iter().map(|c| c.key.as_str()).collect();
        let over: Vec<&Alert> = active
            .iter()
            .filter(|a| MANAGED.contains(&a.kind) && !holding.contains(a.key.as_str()))
            .collect();
        let over_silent = over.iter().filter(|a| a.kind == AlertKind::Silent).count();
        let digest_resolved = over_silent >= self.settings.digest_threshold.max(2);
        let mut back = Vec::new();
        for a in over {
            let in_digest = digest_resolved && a.kind == AlertKind::Silent;
            let device = a.device.clone();
            let condition = Condition {
                key: a.key.clone(),
                kind: a.kind,
                severity: a.severity,
                device_id: a.device_id,
                device: device.clone(),
                title: a.title.clone(),
                text: a.detail.clone(),
            };
            let flapping = self.flapping(&a.key, a.opened_at).await?;
            let notice = (!in_digest && !flapping)
                .then(|| self.notice(NotificationEvent::Resolved, &condition, now));
            self.db.resolve_alert(a.id, now, notice.as_ref()).await?;
            result.resolved += 1;
            if result.tally(in_digest, flapping) {
                back.extend(device);
            }
            tracing::info!(alert = %a.key, "alert resolved");
            metrics::counter!("telegaz_alerts_resolved_total", "kind" => a.kind.as_str())
                .increment(1);
        }
        self.queue_digest(NotificationEvent::Resolved, back, now, &mut result)
            .await?;
        result.states_published = self.publish_states(&devices, &activity).await?;
        Ok(result)
    }

    /// Evaluate every `evaluate_every` until `shutdown` changes. A failed
    /// evaluation is logged and tried again at the next turn.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            failures = self.evaluate_once(failures).await;
            tokio::select! {
                _ = tokio::time::sleep(self.settings.evaluate_every) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One turn of [`Engine::run`]: evaluate, and when the database keeps
    /// failing ([`DATABASE_FAILURES`] turns in a row) tell the emergency
    /// notifiers directly (the outbox is in the database), and again when it
    /// works again. Returns the failures in a row so far.
    pub async fn evaluate_once(&self, failures: u32) -> u32 {
        match self.evaluate().await {
            Ok(e) => {
                if e.opened + e.resolved > 0 {
                    tracing::info!(
                        opened = e.opened,
                        resolved = e.resolved,
                        digests = e.digests,
                        "alerts evaluated"
                    );
                }
                if failures >= DATABASE_FAILURES {
                    self.tell_directly(
                        NotificationEvent::Resolved,
                        "Восстановлено: база данных Телегаз снова доступна".into(),
                        "Оценка тревог снова работает.".into(),
                    )
                    .await;
                }
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "alert evaluation failed; trying again at the next turn");
                metrics::counter!("telegaz_alerts_evaluation_errors_total").increment(1);
                let failures = failures.saturating_add(1);
                if failures == DATABASE_FAILURES {
                    self.tell_directly(
                        NotificationEvent::Opened,
                        "Ошибка базы данных Телегаз".into(),
                        format!("Тревоги не оцениваются: {e}. Проверьте сервер и его журнал."),
                    )
                    .await;
                }
                failures
            }
        }
    }

    /// Send a server-health notification past the database (best effort).
    async fn tell_directly(&self, event: NotificationEvent, title: String, text: String) {
        let at = self.clock.now();
        let n = telegaz_domain::Notification {
            // Not in the outbox: an id of its own, from the time.
            id: -at.as_second(),
            event,
            alert_id: None,
            kind: AlertKind::ServerHealth,
            severity: Severity::Critical,
            device: None,
            title,
            text,
            at,
            devices: Vec::new(),
        };
        for s in &self.emergency {
            if let Err(e) = s.send(&n).await {
                tracing::error!(notifier = s.name(), error = %e, "cannot tell about the database");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap_or(Timestamp::UNIX_EPOCH)
    }

    #[test]
    fn the_schedule_is_the_median_gap_of_the_newest_uploads() {
        let hourly = [
            t("2026-11-25T10:00:00Z"),
            t("2026-11-25T09:00:00Z"),
            t("2026-11-25T08:00:00Z"),
            t("2026-11-25T05:00:00Z"),
        ];
        assert_eq!(
            learned_interval(&hourly),
            Some(SignedDuration::from_hours(1))
        );
        assert_eq!(
            learned_interval(&hourly[..2]),
            None,
            "too few to learn from"
        );
    }

    #[test]
    fn status_words_that_say_alarm() {
        assert!(status_alarm(&["0".into(), "0x0000".into()]).is_none());
        assert_eq!(
            status_alarm(&["0".into(), "0x2000".into()]).map(String::as_str),
            Some("0x2000")
        );
        assert!(status_alarm(&["".into()]).is_none());
    }

    #[test]
    fn unit_name_patterns() {
        assert!(name_matches("kotelnaya-*", "kotelnaya-12"));
        assert!(name_matches("*", "anything"));
        assert!(name_matches("*-7", "shrp-7"));
        assert!(name_matches("a*b*c", "a-x-b-y-c"));
        assert!(name_matches("unit-1", "unit-1"));
        assert!(!name_matches("unit-1", "unit-10"));
        assert!(!name_matches("kotelnaya-*", "shrp-7"));
        assert!(!name_matches("a*bc", "abc-bc-x"));
    }

    #[test]
    fn bounds_say_which_side_is_broken() {
        let b = Bounds {
            min: Some(95.0),
            max: Some(115.0),
        };
        assert_eq!(b.broken(120.0), Some(("выше", 115.0)));
        assert_eq!(b.broken(90.0), Some(("ниже", 95.0)));
        assert_eq!(b.broken(100.0), None);
        assert_eq!(Bounds::default().broken(1e9), None);
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human(SignedDuration::from_mins(45)), "45 мин");
        assert_eq!(human(SignedDuration::from_mins(185)), "3 ч 05 мин");
        assert_eq!(human(SignedDuration::from_hours(50)), "2 сут 2 ч");
    }
}
