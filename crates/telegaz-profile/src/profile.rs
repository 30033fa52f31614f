//! The TOML schema, its validation, and the validated [`Profile`].

use std::fmt;

use encoding_rs::Encoding;
use jiff::Span;
use jiff::civil::{Date, DateTime, Time};
use serde::Deserialize;
use telegaz_domain::ArchiveKind;

use crate::glob::Pattern;
use crate::units::{Quantity, Unit};

/// Why a profile was refused. The text names the profile, the key that is
/// wrong and what is allowed there.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The text is not TOML, or does not have the shape of a profile (an
    /// unknown key, a wrong type, a missing key). The message comes from the
    /// TOML reader and gives the line and column.
    #[error("profile {profile:?}: {message}")]
    Syntax { profile: String, message: String },
    /// A key has a value that is not allowed.
    #[error("profile {profile:?}: {key}: {message}")]
    Invalid {
        profile: String,
        /// Where in the profile (e.g. `format.delimiter`, `[[columns]] #3 (column "P, кПа"), unit`).
        key: String,
        message: String,
    },
}

// ---------------------------------------------------------------------------
// The TOML shape (what serde reads). Unknown keys are errors everywhere.
// ---------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    description: Option<String>,
    model: Option<String>,
    kind: Option<ArchiveKind>,
    #[serde(default)]
    bind: RawBind,
    format: RawFormat,
    timestamp: RawTimestamp,
    #[serde(default)]
    columns: Vec<RawColumn>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBind {
    #[serde(default)]
    devices: Vec<String>,
    #[serde(default)]
    file_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFormat {
    encoding: String,
    delimiter: String,
    decimal_separator: String,
    header_line: Option<u32>,
    skip_lines: Option<u32>,
    require_final_newline: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimestamp {
    datetime: Option<ColumnRef>,
    datetime_format: Option<String>,
    date: Option<ColumnRef>,
    date_format: Option<String>,
    time: Option<ColumnRef>,
    time_format: Option<String>,
    marks: Option<Marks>,
    interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawColumn {
    column: ColumnRef,
    quantity: Quantity,
    unit: Option<String>,
    ok: Option<Vec<String>>,
}

/// Which end of its interval a row's timestamp marks (`timestamp.marks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Marks {
    Start,
    End,
}

/// A column, by 1-based number or by its header text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ColumnRef {
    /// 1-based column number.
    Index(usize),
    /// Header text, trimmed; matched exactly against the trimmed header fields.
    Name(String),
}

impl ColumnRef {
    /// The largest column number accepted.
    const MAX_INDEX: u64 = 10_000;
}

impl fmt::Display for ColumnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnRef::Index(i) => write!(f, "{i}"),
            ColumnRef::Name(n) => write!(f, "{n:?}"),
        }
    }
}

impl<'de> Deserialize<'de> for ColumnRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ColumnRef;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a column number counted from 1, or the column's header text")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ColumnRef, E> {
                match u64::try_from(v) {
                    Ok(v) => self.visit_u64(v),
                    Err(_) => Err(E::custom(format!(
                        "column {v}: column numbers count from 1"
                    ))),
                }
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ColumnRef, E> {
                if v == 0 {
                    return Err(E::custom("column 0: column numbers count from 1"));
                }
                if v > ColumnRef::MAX_INDEX {
                    return Err(E::custom(format!(
                        "column {v}: at most {} columns are supported",
                        ColumnRef::MAX_INDEX
                    )));
                }
                usize::try_from(v)
                    .map(ColumnRef::Index)
                    .map_err(|_| E::custom("column number too large"))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ColumnRef, E> {
                let name = v.trim();
                if name.is_empty() {
                    return Err(E::custom(
                        "an empty header text; give the column's header text or its number",
                    ));
                }
                Ok(ColumnRef::Name(name.to_owned()))
            }
        }
        d.deserialize_any(Visitor)
    }
}

// ---------------------------------------------------------------------------
// The validated profile.
// ---------------------------------------------------------------------------

/// A parsed and validated text profile: how to read one kind of CSV-like
/// export. See the crate documentation for the TOML schema.
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) name: String,
    pub(crate) format_name: String,
    pub(crate) description: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) kind: ArchiveKind,
    pub(crate) devices: Vec<Pattern>,
    pub(crate) file_names: Vec<Pattern>,
    pub(crate) format: Format,
    pub(crate) timestamp: Timestamp,
    pub(crate) columns: Vec<Column>,
}

/// `[format]`, validated.
#[derive(Debug, Clone)]
pub(crate) struct Format {
    pub encoding: &'static Encoding,
    pub delimiter: char,
    pub decimal_separator: char,
    /// 1-based line holding the column names.
    pub header_line: Option<usize>,
    /// Lines before the data (the header line included).
    pub skip_lines: usize,
    pub require_final_newline: bool,
}

/// `[timestamp]`, validated.
#[derive(Debug, Clone)]
pub(crate) struct Timestamp {
    pub source: TimeSource,
    pub marks: Marks,
    /// Length of the interval, added to start timestamps.
    pub interval: Span,
}

/// Where a row's date and time are.
#[derive(Debug, Clone)]
pub(crate) enum TimeSource {
    /// One column holding both.
    Combined { column: ColumnRef, format: String },
    /// A date column and a time column.
    Split {
        date: ColumnRef,
        date_format: String,
        time: ColumnRef,
        time_format: String,
    },
}

/// One `[[columns]]` entry, validated.
#[derive(Debug, Clone)]
pub(crate) struct Column {
    pub at: ColumnRef,
    pub quantity: Quantity,
    /// The unit of a numeric quantity; `None` for status and check.
    pub unit: Option<Unit>,
    /// For `status` and `check`: the texts meaning "all good". When given,
    /// the column decides the row's [`telegaz_domain::Check`].
    pub ok: Option<Vec<String>>,
}

/// The encodings a profile may name, with accepted spellings.
const ENCODINGS: &[(&str, &Encoding)] = &[
    ("utf-8", encoding_rs::UTF_8),
    ("utf8", encoding_rs::UTF_8),
    ("windows-1251", encoding_rs::WINDOWS_1251),
    ("cp1251", encoding_rs::WINDOWS_1251),
    ("koi8-r", encoding_rs::KOI8_R),
    ("koi8r", encoding_rs::KOI8_R),
    ("ibm866", encoding_rs::IBM866),
    ("cp866", encoding_rs::IBM866),
];

/// Sample values the date/time formats must be able to write and read back.
fn sample_datetime() -> DateTime {
    DateTime::constant(2026, 1, 14, 13, 0, 0, 0)
}

impl Profile {
    /// Parse and validate a profile; `name` is the file stem, used in
    /// [`telegaz_domain::ParsedFile::format`] as `profile:<name>`.
    pub fn from_toml(name: &str, text: &str) -> Result<Profile, ProfileError> {
        let invalid = |key: &str, message: String| ProfileError::Invalid {
            profile: name.to_owned(),
            key: key.to_owned(),
            message,
        };
        let name_trimmed = name.trim();
        if name_trimmed.is_empty()
            || name.chars().any(char::is_control)
            || name.chars().count() > 200
        {
            return Err(invalid(
                "name",
                "a profile name (the file stem) must be 1 to 200 characters without control characters".to_owned(),
            ));
        }
        let raw: RawProfile = toml::from_str(text).map_err(|e| ProfileError::Syntax {
            profile: name.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;

        let kind = raw.kind.unwrap_or(ArchiveKind::Interval);
        let format = validate_format(&raw.format, &invalid)?;
        let timestamp = validate_timestamp(&raw.timestamp, kind, &invalid)?;
        let columns = validate_columns(&raw.columns, &invalid)?;

        let mut uses_names = matches!(
            &timestamp.source,
            TimeSource::Combined {
                column: ColumnRef::Name(_),
                ..
            }
        );
        if let TimeSource::Split { date, time, .. } = &timestamp.source {
            uses_names |= matches!(date, ColumnRef::Name(_)) || matches!(time, ColumnRef::Name(_));
        }
        uses_names |= columns.iter().any(|c| matches!(c.at, ColumnRef::Name(_)));
        if uses_names && format.header_line.is_none() {
            return Err(invalid(
                "format.header_line",
                "columns are referenced by header text, so the profile must say on which line the header is (e.g. header_line = 1), or reference columns by number".to_owned(),
            ));
        }

        let patterns = |key: &str, list: &[String]| -> Result<Vec<Pattern>, ProfileError> {
            list.iter()
                .map(|p| Pattern::new(p).map_err(|m| invalid(key, m)))
                .collect()
        };
        let devices = patterns("bind.devices", &raw.bind.devices)?;
        let file_names = patterns("bind.file_names", &raw.bind.file_names)?;

        let text_key = |key: &str, v: Option<String>| -> Result<Option<String>, ProfileError> {
            match v {
                Some(s) if s.chars().count() > 1000 => {
                    Err(invalid(key, "at most 1000 characters".to_owned()))
                }
                Some(s) if s.trim().is_empty() => Ok(None),
                other => Ok(other),
            }
        };
        Ok(Profile {
            name: name.to_owned(),
            format_name: format!("profile:{name}"),
            description: text_key("description", raw.description)?,
            model: text_key("model", raw.model)?,
            kind,
            devices,
            file_names,
            format,
            timestamp,
            columns,
        })
    }

    /// The profile's name (its file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The profile's `description`, if it has one.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// The archive the rows belong to (`kind`, default interval).
    pub fn kind(&self) -> ArchiveKind {
        self.kind
    }

    /// Whether the profile has any bindings at all. A profile without them
    /// binds nothing and is only tried in generic detection.
    pub fn has_bindings(&self) -> bool {
        !self.devices.is_empty() || !self.file_names.is_empty()
    }

    /// Whether the profile is bound to this device name or file name.
    ///
    /// `device` is matched against `bind.devices`, `file_name` (its last path
    /// component) against `bind.file_names`; `*` and `?` are wildcards and
    /// letter case is ignored. A profile with no bindings binds nothing.
    pub fn binds(&self, device: &str, file_name: &str) -> bool {
        let base = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
        self.devices.iter().any(|p| p.matches(device))
            || self.file_names.iter().any(|p| p.matches(base))
    }
}

type Invalid<'a> = dyn Fn(&str, String) -> ProfileError + 'a;

fn single_char(v: &str) -> Option<char> {
    let mut chars = v.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

fn validate_format(raw: &RawFormat, invalid: &Invalid<'_>) -> Result<Format, ProfileError> {
    let wanted = raw.encoding.trim().to_ascii_lowercase();
    let encoding = ENCODINGS
        .iter()
        .find(|(label, _)| *label == wanted)
        .map(|(_, e)| *e)
        .ok_or_else(|| {
            invalid(
                "format.encoding",
                format!(
                    "{:?} is not supported; allowed: \"utf-8\", \"windows-1251\" (cp1251), \"koi8-r\", \"ibm866\" (cp866)",
                    raw.encoding
                ),
            )
        })?;

    let delimiter = single_char(&raw.delimiter)
        .filter(|c| !matches!(c, '"' | '\r' | '\n') && !c.is_alphanumeric())
        .ok_or_else(|| {
            invalid(
                "format.delimiter",
                format!(
                    "{:?} is not allowed: give one character that is not a letter, digit, quote or line break, e.g. \";\", \",\" or \"\\t\"",
                    raw.delimiter
                ),
            )
        })?;

    let decimal_separator = single_char(&raw.decimal_separator)
        .filter(|c| matches!(c, ',' | '.'))
        .ok_or_else(|| {
            invalid(
                "format.decimal_separator",
                format!(
                    "{:?} is not allowed: give \",\" or \".\"",
                    raw.decimal_separator
                ),
            )
        })?;

    let to_usize = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
    let header_line = match raw.header_line {
        Some(0) => {
            return Err(invalid(
                "format.header_line",
                "lines count from 1 (header_line = 1 is the first line)".to_owned(),
            ));
        }
        other => other.map(to_usize),
    };
    let skip_lines = match (raw.skip_lines.map(to_usize), header_line) {
        (Some(skip), Some(h)) if skip < h => {
            return Err(invalid(
                "format.skip_lines",
                format!(
                    "{skip} lines are skipped but the header is on line {h}: skip_lines must be at least header_line (or leave it out)"
                ),
            ));
        }
        (Some(skip), _) => skip,
        (None, h) => h.unwrap_or(0),
    };

    Ok(Format {
        encoding,
        delimiter,
        decimal_separator,
        header_line,
        skip_lines,
        require_final_newline: raw.require_final_newline.unwrap_or(true),
    })
}

/// Check a date/time format by writing a sample with it and reading it back.
fn check_format(
    key: &str,
    format: Option<&String>,
    what: Part,
    invalid: &Invalid<'_>,
) -> Result<String, ProfileError> {
    let Some(format) = format else {
        return Err(invalid(
            key,
            format!(
                "missing: give the {} format, e.g. {:?} (strftime-style: %d day, %m month, %Y year, %H hour, %M minute, %S second)",
                what.as_str(),
                what.example()
            ),
        ));
    };
    if format.trim().is_empty() || format.len() > 100 {
        return Err(invalid(
            key,
            "give a format of 1 to 100 characters".to_owned(),
        ));
    }
    let sample = sample_datetime();
    let written = jiff::fmt::strtime::format(format.as_bytes(), sample).map_err(|e| {
        invalid(
            key,
            format!("{format:?} is not a usable {} format: {e}", what.as_str()),
        )
    })?;
    let back_ok = match what {
        Part::Date => Date::strptime(format, &written).ok() == Some(sample.date()),
        Part::Time => Time::strptime(format, &written).ok() == Some(sample.time()),
        Part::DateTime => DateTime::strptime(format, &written).ok() == Some(sample),
    };
    if !back_ok {
        return Err(invalid(
            key,
            format!(
                "{format:?} cannot hold a whole {} (writing {sample} with it gives {written:?}, which does not read back); {}",
                what.as_str(),
                what.needs()
            ),
        ));
    }
    Ok(format.clone())
}

#[derive(Debug, Clone, Copy)]
enum Part {
    Date,
    Time,
    DateTime,
}

impl Part {
    fn as_str(self) -> &'static str {
        match self {
            Part::Date => "date",
            Part::Time => "time",
            Part::DateTime => "date and time",
        }
    }
    fn example(self) -> &'static str {
        match self {
            Part::Date => "%d.%m.%Y",
            Part::Time => "%H:%M",
            Part::DateTime => "%d.%m.%Y %H:%M:%S",
        }
    }
    fn needs(self) -> &'static str {
        match self {
            Part::Date => "a date format needs the year, month and day",
            Part::Time => "a time format needs the hour (%H, or %I with %p)",
            Part::DateTime => "a date-and-time format needs the year, month, day and hour",
        }
    }
}

fn validate_timestamp(
    raw: &RawTimestamp,
    kind: ArchiveKind,
    invalid: &Invalid<'_>,
) -> Result<Timestamp, ProfileError> {
    let source = match (&raw.datetime, &raw.date, &raw.time) {
        (Some(column), None, None) => {
            for (key, present) in [
                ("timestamp.date_format", raw.date_format.is_some()),
                ("timestamp.time_format", raw.time_format.is_some()),
            ] {
                if present {
                    return Err(invalid(
                        key,
                        "not used with timestamp.datetime (one column with date and time): give timestamp.datetime_format instead".to_owned(),
                    ));
                }
            }
            TimeSource::Combined {
                column: column.clone(),
                format: check_format(
                    "timestamp.datetime_format",
                    raw.datetime_format.as_ref(),
                    Part::DateTime,
                    invalid,
                )?,
            }
        }
        (Some(_), _, _) => {
            return Err(invalid(
                "timestamp.datetime",
                "give either timestamp.datetime (one column holding date and time) or timestamp.date and timestamp.time (two columns), not both".to_owned(),
            ));
        }
        (None, Some(date), Some(time)) => {
            if raw.datetime_format.is_some() {
                return Err(invalid(
                    "timestamp.datetime_format",
                    "only used with timestamp.datetime; with separate date and time columns give date_format and time_format".to_owned(),
                ));
            }
            TimeSource::Split {
                date: date.clone(),
                date_format: check_format(
                    "timestamp.date_format",
                    raw.date_format.as_ref(),
                    Part::Date,
                    invalid,
                )?,
                time: time.clone(),
                time_format: check_format(
                    "timestamp.time_format",
                    raw.time_format.as_ref(),
                    Part::Time,
                    invalid,
                )?,
            }
        }
        (None, None, _) => {
            return Err(invalid(
                "timestamp.date",
                "missing: give the column holding the date (its number counted from 1, or its header text) together with timestamp.time, or timestamp.datetime for one column holding both".to_owned(),
            ));
        }
        (None, Some(_), None) => {
            return Err(invalid(
                "timestamp.time",
                "missing: give the column holding the time of day (its number counted from 1, or its header text), or use timestamp.datetime for one column holding date and time".to_owned(),
            ));
        }
    };

    let interval = match &raw.interval {
        None => match kind {
            ArchiveKind::Interval => Span::new().hours(1),
            ArchiveKind::Daily => Span::new().days(1),
            ArchiveKind::Monthly => Span::new().months(1),
        },
        Some(text) => {
            let bad = || {
                invalid(
                    "timestamp.interval",
                    format!(
                        "{text:?} is not a positive duration; examples: \"1h\", \"30m\", \"1 day\", \"1 month\""
                    ),
                )
            };
            let span: Span = text.trim().parse().map_err(|_| bad())?;
            if !span.is_positive() {
                return Err(bad());
            }
            // Reject spans that cannot be added to an ordinary date.
            if sample_datetime().checked_add(span).is_err() {
                return Err(bad());
            }
            span
        }
    };

    Ok(Timestamp {
        source,
        marks: raw.marks.unwrap_or(Marks::End),
        interval,
    })
}

fn validate_columns(raw: &[RawColumn], invalid: &Invalid<'_>) -> Result<Vec<Column>, ProfileError> {
    if !raw.iter().any(|c| c.quantity.is_numeric()) {
        return Err(invalid(
            "columns",
            "no numeric quantity is mapped: add [[columns]] entries with column = … and quantity = one of vb, vbt, vm, vo, vb_disturbed, vm_disturbed, p, t, k, c, flow".to_owned(),
        ));
    }
    let mut columns: Vec<Column> = Vec::with_capacity(raw.len());
    for (i, c) in raw.iter().enumerate() {
        let key = |sub: &str| format!("[[columns]] #{} (column {}), {sub}", i + 1, c.column);
        let unit = c
            .quantity
            .unit(c.unit.as_deref())
            .map_err(|m| invalid(&key("unit"), m))?;
        if c.quantity.is_numeric()
            && let Some(prev) = columns.iter().position(|p| p.quantity == c.quantity)
        {
            return Err(invalid(
                &key("quantity"),
                format!(
                    "{:?} is already mapped by [[columns]] #{}; each quantity may be mapped once",
                    c.quantity.as_str(),
                    prev + 1
                ),
            ));
        }
        let ok = match (&c.ok, c.quantity) {
            (None, Quantity::Check) => {
                return Err(invalid(
                    &key("ok"),
                    "missing: a check column needs the texts that mean the row is good, e.g. ok = [\"CRC Ok\"]".to_owned(),
                ));
            }
            (Some(_), q) if q.is_numeric() => {
                return Err(invalid(
                    &key("ok"),
                    "only for quantity \"status\" or \"check\"".to_owned(),
                ));
            }
            (Some(list), _) if list.is_empty() || list.iter().any(|s| s.trim().is_empty()) => {
                return Err(invalid(
                    &key("ok"),
                    "give one or more non-empty texts that mean the row is good".to_owned(),
                ));
            }
            (ok, _) => ok.as_ref().map(|list| {
                list.iter()
                    .map(|s| s.trim().to_lowercase())
                    .collect::<Vec<_>>()
            }),
        };
        columns.push(Column {
            at: c.column.clone(),
            quantity: c.quantity,
            unit,
            ok,
        });
    }
    Ok(columns)
}
