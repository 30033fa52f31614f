//! Gas-day reports: hourly and daily volumes per device for a gas day, a month
//! or a range of gas days, the completeness of the data, and renderers (CSV
//! for programs, CSV for Russian Excel, XLSX, JSON, printable HTML).
//!
//! This crate is pure: it takes what the parsers produced ([`ArchiveRecord`],
//! [`EventRecord`]) and the device's time zone and contract hour, and returns
//! values. Reading the database and writing files is the caller's job.
//!
//! # The figures
//!
//! The hour and gas-day arithmetic is [`telegaz_domain::gasday`]'s
//! ([`hourly`](telegaz_domain::gasday::hourly),
//! [`daily`](telegaz_domain::gasday::daily)); this crate lays its results
//! out over the requested period and adds what a report needs:
//!
//! - **Periods.** A period is a run of whole gas days: [`Period::GasDay`] one
//!   day, [`Period::Month`] the gas days that *start* in that month (1st
//!   contract hour → 1st of the next month's contract hour), [`Period::Range`]
//!   the gas days `from..=to`. Each device uses its own contract hour and time
//!   zone, so the same period may cover different instants for two devices.
//! - **Rows.** [`Rows::Daily`]: one row per gas day. [`Rows::Hourly`]: one row
//!   per hour, keyed by the hour's end (local time of the device, as in the
//!   archive). Every hour of the period gets a row, with or without data.
//! - **Volumes.** A gas day whose counter is known at both contract hours is
//!   *complete*: its volume is the counter difference. Its hourly rows then add
//!   up to it exactly: where readings are missing inside such a day, the
//!   missing hours are one row spanning the gap (from the reading before it to
//!   the reading after it), carrying the counter difference over the gap and
//!   the flag [`Flag::GapVolume`]; the hours of the gap count as missing. A day
//!   that is not complete shows the sum of the hours that are known (as
//!   [`gasday::daily`](telegaz_domain::gasday::daily) does); its missing
//!   hours are rows without volume. So in every case the hourly rows of a gas
//!   day add up exactly (as decimals) to its daily row, and the daily rows to
//!   the totals.
//! - **Counters** at the start and end of a row are the usable interval
//!   readings at exactly those times; blank when there is none.
//! - **Mean pressure and temperature** of a row: the arithmetic mean of the
//!   values recorded with the usable interval readings that end inside the row
//!   (`start < t <= end`), rounded half away from zero to as many decimals as
//!   the most precise of those values. Not weighted by volume.
//! - **Hours**: `expected_hours` are the clock hours of the row (23 or 25 on a
//!   DST change, counted in real time; a repeated local hour in autumn is one
//!   row, because archives key readings by local time); `hours_with_data` those
//!   with a volume; `missing_hours` those that have ended (by `now_utc`) but have
//!   no volume. Hours that have not ended yet are neither.
//! - **Final**: a gas day (and each of its hours) is final once the next day's
//!   contract hour has passed, as in `gasday::daily`.
//! - **Totals** per device: volumes and hours are the sums of the gas days
//!   (so the counter difference over the period when every day is complete);
//!   counters at the period's first and last contract hour; means over all
//!   readings of the period; `device_vb_m3` the sum of the days' device
//!   volumes when every day has one.
//! - **No data**: a device with no record and no event at all in the period
//!   gets empty rows and [`Flag::NoData`]; when that is true of every device,
//!   [`build`] refuses with [`ReportError::NoData`] instead of producing a
//!   report that looks valid but says nothing.
//!
//! Limits: interval readings are expected on the clock hour. A reading off
//! the hour (a clock a few minutes off) still gives its hour's volume (the
//! row ends at that reading, so no volume is lost), but it does not fill the
//! clock hour next to it, which counts as missing. `gasday` finds a day's
//! counter difference only over readings exactly at the contract hours.
//!
//! # Time in an abnormal state («нештатная ситуация», НС) — inferred
//!
//! Nothing public defines which status bits or event codes mean an abnormal
//! state for these devices; this rule is inferred from DOMAIN.md and the event
//! sample, and documented here so a person can check it:
//!
//! 1. **Status words.** An interval reading (usable check) with any non-zero
//!    status word marks *the hour ending at that reading* as abnormal. A status
//!    word is read as hexadecimal with a `0x` prefix, decimal otherwise; a word
//!    that is neither (unknown text) counts as non-zero, empty as zero.
//! 2. **Event log.** Codes pair as raised `0x2xxx` / cleared `0x0xxx` with the
//!    same low 12 bits (`0x2007`/`0x0007` pressure limit, `0x2106`/`0x0106`
//!    no valid pressure in the sample). The state lasts from the raise to the
//!    clear. A raise with no clear after it lasts until `now_utc` (the row is
//!    flagged [`Flag::AlarmNotCleared`]); a clear with no raise before it is
//!    not counted (its start is unknown) and is flagged
//!    [`Flag::AlarmStartUnknown`]. Other codes (`0x8xxx` records, clock set,
//!    parameter changes, unknown prefixes) are not abnormal states. Events with
//!    a failed check are ignored.
//!
//! The union of these intervals is intersected with each row; the result is
//! `abnormal_seconds`. Rows partition their day, so rows add up to the day and
//! days to the totals.
//!
//! # Flags
//!
//! See [`Flag`]. CRC errors are rows (archive or event log) whose check failed,
//! timed inside the row; their values were not used.
//!
//! [`ArchiveRecord`]: telegaz_domain::ArchiveRecord
//! [`EventRecord`]: telegaz_domain::EventRecord

mod abnormal;
mod engine;
mod period;
pub mod render;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::Serialize;
use telegaz_domain::{ArchiveRecord, Decimal, EventRecord};

pub use abnormal::status_nonzero;
pub use engine::{build, completeness};
pub use period::Period;

/// Everything known about one device that a report needs.
#[derive(Debug, Clone)]
pub struct DeviceData {
    /// The name shown in the report (sheet name, column, heading).
    pub name: String,
    /// The device's time zone: its archive times are local times in it.
    pub time_zone: TimeZone,
    /// The hour (0..=23, local) at which its gas day starts.
    pub contract_hour: i8,
    /// Archive records (any order; duplicates allowed).
    pub records: Vec<ArchiveRecord>,
    /// Event-log rows (any order).
    pub events: Vec<EventRecord>,
}

/// One row per hour or one row per gas day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rows {
    Hourly,
    Daily,
}

impl std::str::FromStr for Rows {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "hourly" | "hour" | "hours" => Ok(Rows::Hourly),
            "daily" | "day" | "days" => Ok(Rows::Daily),
            other => Err(format!(
                "unknown row kind {other:?}: expected \"hourly\" or \"daily\""
            )),
        }
    }
}

/// Something a person should know about a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// Archive or event-log rows with a failed check (e.g. `CRC Error`) fall
    /// inside this row; their values were not used.
    CrcError,
    /// A counter went down (reset, replacement, wrap): no volume where it did.
    CounterDecreased,
    /// The device's own daily record disagrees with the gas day's volume
    /// (see `device_vb_m3`).
    DailyMismatch,
    /// Hours that have ended have no volume.
    MissingHours,
    /// The same reading time appears with different values; the first usable
    /// one was used.
    ConflictingReadings,
    /// The volume of this row spans missing hours: it is the counter difference
    /// over the gap, not a measured hourly volume.
    GapVolume,
    /// An alarm was raised (event `0x2xxx`) in this row and not cleared in the
    /// data: it is counted as abnormal until the report's time.
    AlarmNotCleared,
    /// An alarm was cleared (event `0x0xxx`) in this row with no raise before
    /// it in the data: its start is unknown, and it is not counted.
    AlarmStartUnknown,
    /// The device has no records at all in the period.
    NoData,
    /// Values too large to add up (no real counter is); not used.
    ImplausibleValue,
}

impl Flag {
    /// A stable code (as in JSON).
    pub fn code(self) -> &'static str {
        match self {
            Flag::CrcError => "crc_error",
            Flag::CounterDecreased => "counter_decreased",
            Flag::DailyMismatch => "daily_mismatch",
            Flag::MissingHours => "missing_hours",
            Flag::ConflictingReadings => "conflicting_readings",
            Flag::GapVolume => "gap_volume",
            Flag::AlarmNotCleared => "alarm_not_cleared",
            Flag::AlarmStartUnknown => "alarm_start_unknown",
            Flag::NoData => "no_data",
            Flag::ImplausibleValue => "implausible_value",
        }
    }

    /// The text shown to a person.
    pub fn russian(self) -> &'static str {
        match self {
            Flag::CrcError => "ошибка CRC в записи",
            Flag::CounterDecreased => "счётчик уменьшился",
            Flag::DailyMismatch => "расхождение с суточной записью прибора",
            Flag::MissingHours => "нет данных за часть часов",
            Flag::ConflictingReadings => "противоречивые записи",
            Flag::GapVolume => "объём за пропуск по счётчику",
            Flag::AlarmNotCleared => "НС не снята",
            Flag::AlarmStartUnknown => "начало НС неизвестно",
            Flag::NoData => "нет данных за период",
            Flag::ImplausibleValue => "неправдоподобно большие значения",
        }
    }
}

/// The figures of a row or of a device's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Values {
    /// Standard volume, m³. `None`: no hour of the row has a volume.
    pub vb_m3: Option<Decimal>,
    /// Working (measured) volume, m³.
    pub vm_m3: Option<Decimal>,
    /// Mean pressure, kPa.
    pub p_mean_kpa: Option<Decimal>,
    /// Mean temperature, °C.
    pub t_mean_c: Option<Decimal>,
    /// Vb counter at the start of the row, m³.
    pub vb_start_m3: Option<Decimal>,
    /// Vb counter at the end of the row, m³.
    pub vb_end_m3: Option<Decimal>,
    /// Vm counter at the start of the row, m³.
    pub vm_start_m3: Option<Decimal>,
    /// Vm counter at the end of the row, m³.
    pub vm_end_m3: Option<Decimal>,
    /// Clock hours in the row.
    pub expected_hours: u32,
    /// Hours with a volume.
    pub hours_with_data: u32,
    /// Hours that have ended but have no volume.
    pub missing_hours: u32,
    /// Seconds in an abnormal state (see the crate documentation).
    pub abnormal_seconds: i64,
    /// The volume is a counter difference between readings at both ends of the
    /// row (for a gas day: `complete` in the sense of `gasday::daily`; for the
    /// totals: every gas day complete).
    pub complete: bool,
    /// The gas day (for the totals: the last one) has ended.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// Daily rows: the device's own daily volume (difference of its daily
    /// records at both contract hours), when it has them.
    pub device_vb_m3: Option<Decimal>,
    pub flags: Vec<Flag>,
}

/// One row of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The gas day the row belongs to.
    pub gas_day: Date,
    /// Start of the row, local time of the device (exclusive).
    pub start_local: DateTime,
    /// End of the row, local time (for hourly rows: the hour end, as in the archive).
    pub end_local: DateTime,
    #[serde(flatten)]
    pub values: Values,
}

/// The totals of a device over the period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Totals {
    /// Start of the period (the first gas day's contract hour), local time.
    pub start_local: DateTime,
    /// End of the period (the contract hour after the last gas day), local time.
    pub end_local: DateTime,
    /// Gas days in the period.
    pub gas_days: u32,
    /// Complete gas days.
    pub complete_days: u32,
    #[serde(flatten)]
    pub values: Values,
}

/// A device's part of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceReport {
    pub name: String,
    /// IANA name of the device's time zone (or its offset when it has none).
    pub time_zone: String,
    pub contract_hour: i8,
    pub rows: Vec<Row>,
    pub totals: Totals,
}

/// The requested period, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeriodInfo {
    /// As requested (`day:…`, `month:…`, `range:…`).
    pub period: Period,
    /// For people, in Russian (e.g. `январь 2026`).
    pub label: String,
    pub first_gas_day: Date,
    pub last_gas_day: Date,
    pub gas_days: u32,
}

/// A report: per device, rows and totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub period: PeriodInfo,
    pub rows: Rows,
    pub generated_at: Timestamp,
    pub devices: Vec<DeviceReport>,
}

/// The completeness of one device's gas day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCompleteness {
    pub device: String,
    pub gas_day: Date,
    pub start_local: DateTime,
    pub end_local: DateTime,
    /// Clock hours of the gas day.
    pub expected_hours: u32,
    /// Hours with a volume.
    pub present_hours: u32,
    /// Hours that have not ended yet (by `now_utc`).
    pub pending_hours: u32,
    /// Ends (local time) of the hours that have ended but have no volume.
    pub missing_hour_ends: Vec<DateTime>,
    /// Hour ends (local time) that have passed with no usable interval reading:
    /// what to ask the unit to send again. (An hour also lacks a volume when
    /// the reading an hour before it is missing, so this list can be shorter
    /// than `missing_hour_ends`.)
    pub missing_readings: Vec<DateTime>,
    /// The counter is known at both contract hours.
    pub complete: bool,
    #[serde(rename = "final")]
    pub is_final: bool,
}

/// Why a report cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error(
        "unknown period {input:?}: {reason}; expected day:YYYY-MM-DD, month:YYYY-MM or range:YYYY-MM-DD..YYYY-MM-DD"
    )]
    BadPeriod { input: String, reason: String },
    #[error("reversed range: {from} is after {to} (write range:{to}..{from})")]
    ReversedRange { from: Date, to: Date },
    #[error("period {period} has {days} gas days; one report covers at most {max}")]
    PeriodTooLong { period: String, days: i64, max: i64 },
    #[error("date out of range: {0}")]
    OutOfRange(String),
    #[error("no devices: a report needs at least one device")]
    NoDevices,
    #[error("device {name:?}: {reason}")]
    BadDevice { name: String, reason: String },
    #[error("no readings for {devices} in {period}: nothing to report")]
    NoData { devices: String, period: String },
    #[error("device {name:?}: the volumes are too large to add up exactly")]
    Overflow { name: String },
}

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("XLSX: {0}")]
    Xlsx(#[from] rust_xlsxwriter::XlsxError),
}
