//! What the files say: archive records and events, normalised.
//!
//! Every parser (LIS-200 readouts, serial captures, declarative text profiles)
//! produces a [`ParsedFile`]. Quantities are exact decimals, kept to the digits
//! the device printed: counters are billed, and binary floating point would
//! drift in their differences and sums.

use std::fmt;

use jiff::civil::DateTime;
pub use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Which archive a record comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ArchiveKind {
    /// Interval archive (hourly on the supported correctors). The timestamp is
    /// the end of the interval.
    Interval,
    /// The device's own daily record (written at the contract hour).
    Daily,
    /// The device's own monthly record.
    Monthly,
}

impl ArchiveKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArchiveKind::Interval => "interval",
            ArchiveKind::Daily => "daily",
            ArchiveKind::Monthly => "monthly",
        }
    }
}

impl fmt::Display for ArchiveKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ArchiveKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "interval" => Ok(ArchiveKind::Interval),
            "daily" => Ok(ArchiveKind::Daily),
            "monthly" => Ok(ArchiveKind::Monthly),
            other => Err(format!("unknown archive kind {other:?}")),
        }
    }
}

/// The check a device attached to a row (`CRC Ok` in LIS-200 readouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "check", content = "text")]
pub enum Check {
    /// The row says its check is good.
    Ok,
    /// The row carries a check that is not good (the text as printed). Such
    /// rows are kept but never used for volumes.
    Failed(String),
    /// The format has no per-row check.
    Absent,
}

impl Check {
    /// Whether values from this row may be used for volumes.
    pub fn usable(&self) -> bool {
        !matches!(self, Check::Failed(_))
    }
}

/// The quantities a row may carry. Units are normalised: volumes m³,
/// pressure kPa, temperature °C, flow m³/h. Absent means the row did not have it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quantities {
    /// Standard (base) volume counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vb: Option<Decimal>,
    /// Total standard volume counter (including disturbed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vbt: Option<Decimal>,
    /// Measured (working) volume counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm: Option<Decimal>,
    /// Total measured volume counter ("Vo").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vo: Option<Decimal>,
    /// Disturbed standard volume counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vb_disturbed: Option<Decimal>,
    /// Disturbed measured volume counter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vm_disturbed: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_kpa: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t_c: Option<Decimal>,
    /// Compressibility ratio.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<Decimal>,
    /// Conversion factor.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub c: Option<Decimal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flow_m3h: Option<Decimal>,
}

/// One archive row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    pub kind: ArchiveKind,
    /// The device's record number, when the format has one.
    pub record_no: Option<u64>,
    /// Local time of the device as printed (end of the interval for interval rows).
    pub local_time: DateTime,
    /// UTC offset in seconds when the content states it; otherwise the
    /// device's configured time zone decides.
    pub utc_offset_seconds: Option<i32>,
    pub quantities: Quantities,
    /// Status words as printed (e.g. `0`, `0x0010`), in column order.
    pub status: Vec<String>,
    /// The row's event code (LIS-200: 0x8104 hourly, 0x8103 daily, …).
    pub event_code: Option<u16>,
    pub check: Check,
    /// 1-based line (or row) number in the file, for the raw-file viewer.
    pub line: u32,
}

/// One row of the event log (logbook).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub record_no: Option<u64>,
    pub local_time: DateTime,
    pub utc_offset_seconds: Option<i32>,
    pub code: u16,
    pub check: Check,
    pub line: u32,
}

/// What the content says about the device that produced it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileMeta {
    /// Model as identified (e.g. `TC220`, `EK270`).
    pub model: Option<String>,
    pub serial: Option<String>,
}

/// The result of parsing one file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParsedFile {
    /// Which parser or profile read it (e.g. `lis200-text`, `lis200-serial`, `profile:vendor-csv`).
    pub format: String,
    pub records: Vec<ArchiveRecord>,
    pub events: Vec<EventRecord>,
    pub meta: FileMeta,
    /// The content ended in the middle of a row or block; the rows before it are kept.
    pub truncated: bool,
    /// Things a person may want to know (skipped rows, error replies, …).
    pub warnings: Vec<String>,
}

/// Why a parser did not accept a file. The text is for a person: it says
/// what was expected and where the content differed (line, column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unrecognised {
    pub reason: String,
}

impl Unrecognised {
    pub fn new(reason: impl Into<String>) -> Self {
        Self {
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Unrecognised {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for Unrecognised {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn decimals_are_exact() {
        let a = Decimal::from_str("5543.5365").unwrap();
        let b = Decimal::from_str("4982.6473").unwrap();
        assert_eq!((a - b).to_string(), "560.8892");
        let sum: Decimal = ["0.1", "0.2"]
            .iter()
            .map(|s| Decimal::from_str(s).unwrap())
            .sum();
        assert_eq!(sum.to_string(), "0.3");
    }

    #[test]
    fn failed_checks_are_not_usable() {
        assert!(Check::Ok.usable());
        assert!(Check::Absent.usable());
        assert!(!Check::Failed("CRC Error".into()).usable());
    }

    #[test]
    fn kinds_round_trip() {
        for k in [
            ArchiveKind::Interval,
            ArchiveKind::Daily,
            ArchiveKind::Monthly,
        ] {
            assert_eq!(k.as_str().parse::<ArchiveKind>(), Ok(k));
        }
    }
}
