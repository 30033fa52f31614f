//! Reading a file with a profile.

use std::borrow::Cow;
use std::str::FromStr;

use jiff::ToSpan;
use jiff::civil::{Date, DateTime, Time};
use telegaz_domain::{
    ArchiveRecord, Check, Decimal, FileMeta, ParsedFile, Quantities, Unrecognised,
};

use crate::fields::{self, SplitError};
use crate::profile::{Column, ColumnRef, Marks, Profile, TimeSource};
use crate::units::Quantity;

/// How many warnings a parsed file keeps; the rest are counted.
pub(crate) const MAX_WARNINGS: usize = 100;
/// The longest text quoted in a message.
const EXCERPT_CHARS: usize = 40;
/// The longest field read as a number.
const MAX_NUMBER_LEN: usize = 64;
/// The longest status or check text kept.
const MAX_STATUS_CHARS: usize = 256;

/// Warnings, bounded: the first [`MAX_WARNINGS`] are kept, the rest counted.
#[derive(Debug, Default)]
struct Warnings {
    kept: Vec<String>,
    dropped: usize,
}

impl Warnings {
    fn push(&mut self, w: String) {
        if self.kept.len() < MAX_WARNINGS {
            self.kept.push(w);
        } else {
            self.dropped += 1;
        }
    }

    fn finish(mut self) -> Vec<String> {
        if self.dropped > 0 {
            self.kept
                .push(format!("… and {} more warnings not shown", self.dropped));
        }
        self.kept
    }
}

/// `'text'`, cut to a readable length, control characters escaped.
pub(crate) fn quote(text: &str) -> String {
    format!("'{}'", excerpt(text))
}

/// `text` cut to a readable length, control characters escaped.
fn excerpt(text: &str) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == EXCERPT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a line holds nothing (whitespace, NUL padding, a DOS end-of-file mark).
fn is_blank(line: &str) -> bool {
    line.chars()
        .all(|c| c.is_whitespace() || c == '\0' || c == '\u{1a}')
}

/// A resolved column: 0-based index and the label used in messages.
#[derive(Debug)]
struct At {
    index: usize,
    label: String,
}

#[derive(Debug)]
enum TimeAt<'p> {
    Combined {
        at: At,
        format: &'p str,
    },
    Split {
        date: At,
        date_format: &'p str,
        time: At,
        time_format: &'p str,
    },
}

/// The header as found in the file.
#[derive(Debug)]
struct Header {
    line: usize,
    width: usize,
    trailing_empty: bool,
}

/// The profile's columns resolved against one file.
#[derive(Debug)]
struct Layout<'p> {
    header: Option<Header>,
    /// Without a header: the fewest fields a row must have.
    min_fields: usize,
    time: TimeAt<'p>,
    columns: Vec<(At, &'p Column)>,
}

/// Latin letters that look like Cyrillic ones, for a hint when a header
/// text is not found.
fn fold_lookalikes(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            'A' => 'А',
            'B' => 'В',
            'C' => 'С',
            'E' => 'Е',
            'H' => 'Н',
            'K' => 'К',
            'M' => 'М',
            'O' => 'О',
            'P' => 'Р',
            'T' => 'Т',
            'X' => 'Х',
            'a' => 'а',
            'c' => 'с',
            'e' => 'е',
            'o' => 'о',
            'p' => 'р',
            'x' => 'х',
            'y' => 'у',
            other => other,
        })
        .collect()
}

fn resolve<'p>(
    profile: &'p Profile,
    header: Option<(usize, &[Cow<'_, str>])>,
) -> Result<Layout<'p>, String> {
    let locate = |r: &ColumnRef, fallback: &str| -> Result<At, String> {
        match (r, header) {
            (ColumnRef::Index(i), None) => Ok(At {
                index: i.saturating_sub(1),
                label: fallback.to_owned(),
            }),
            (ColumnRef::Index(i), Some((line, fields))) => {
                let text = fields.get(i.saturating_sub(1)).ok_or_else(|| {
                    format!(
                        "the profile reads column {i} ({fallback}), but the header on line {line} has only {} columns",
                        fields.len()
                    )
                })?;
                let text = text.trim();
                Ok(At {
                    index: i.saturating_sub(1),
                    label: if text.is_empty() {
                        fallback.to_owned()
                    } else {
                        excerpt(text)
                    },
                })
            }
            (ColumnRef::Name(name), Some((line, fields))) => {
                let found: Vec<usize> = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.trim() == name)
                    .map(|(i, _)| i)
                    .take(2)
                    .collect();
                match found.as_slice() {
                    [index] => Ok(At {
                        index: *index,
                        label: excerpt(name),
                    }),
                    [] => Err(missing_header(name, line, fields, fallback)),
                    _ => Err(format!(
                        "the header on line {line} has more than one column named {}, so the profile's reference ({fallback}) is ambiguous; reference the column by number",
                        quote(name)
                    )),
                }
            }
            // Validation makes header_line required when names are used.
            (ColumnRef::Name(name), None) => Err(format!(
                "the profile references column {} ({fallback}) by header text but has no header line",
                quote(name)
            )),
        }
    };

    let time = match &profile.timestamp.source {
        TimeSource::Combined { column, format } => TimeAt::Combined {
            at: locate(column, "date and time")?,
            format,
        },
        TimeSource::Split {
            date,
            date_format,
            time,
            time_format,
        } => TimeAt::Split {
            date: locate(date, "date")?,
            date_format,
            time: locate(time, "time")?,
            time_format,
        },
    };
    let columns = profile
        .columns
        .iter()
        .map(|c| Ok((locate(&c.at, c.quantity.as_str())?, c)))
        .collect::<Result<Vec<_>, String>>()?;

    let mut max_index = columns.iter().map(|(at, _)| at.index).max().unwrap_or(0);
    match &time {
        TimeAt::Combined { at, .. } => max_index = max_index.max(at.index),
        TimeAt::Split { date, time, .. } => max_index = max_index.max(date.index).max(time.index),
    }
    Ok(Layout {
        header: header.map(|(line, fields)| Header {
            line,
            width: fields.len(),
            trailing_empty: fields.len() > 1 && fields.last().is_some_and(|f| f.trim().is_empty()),
        }),
        min_fields: max_index + 1,
        time,
        columns,
    })
}

fn missing_header(name: &str, line: usize, fields: &[Cow<'_, str>], what: &str) -> String {
    let mut msg = format!(
        "the header on line {line} has no column named {} (wanted for {what})",
        quote(name)
    );
    let wanted = fold_lookalikes(name);
    if let Some(similar) = fields
        .iter()
        .map(|f| f.trim())
        .find(|f| fold_lookalikes(f) == wanted)
    {
        msg.push_str(&format!(
            "; the header has {}, which differs only in Latin/Cyrillic look-alike letters: write it exactly as in the file",
            quote(similar)
        ));
        return msg;
    }
    let shown: Vec<String> = fields.iter().take(20).map(|f| quote(f.trim())).collect();
    msg.push_str(&format!("; it has: {}", shown.join(", ")));
    if fields.len() > shown.len() {
        msg.push_str(&format!(" and {} more", fields.len() - shown.len()));
    }
    msg
}

/// Parse one date/time text, accepting `24:00` (end of the day) as midnight
/// of the next day.
fn with_24<T>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, jiff::Error>,
) -> Result<(T, bool), jiff::Error> {
    match parse(text) {
        Ok(v) => Ok((v, false)),
        Err(e) => {
            // "24" standing alone as a number, followed by ':' (24:00, 24:00:00).
            let bytes = text.as_bytes();
            let at = text
                .match_indices("24:")
                .map(|(i, _)| i)
                .find(|&i| i == 0 || bytes.get(i - 1).is_some_and(|b| !b.is_ascii_digit()));
            let Some(i) = at else { return Err(e) };
            let replaced = format!(
                "{}00{}",
                text.get(..i).unwrap_or_default(),
                text.get(i + 2..).unwrap_or_default()
            );
            parse(&replaced).map(|v| (v, true)).map_err(|_| e)
        }
    }
}

struct RowError {
    message: String,
}

/// Everything needed to read rows of one file.
struct Reader<'p> {
    profile: &'p Profile,
    layout: Layout<'p>,
    /// The decoder met bytes that are not valid in the encoding (they became U+FFFD).
    decode_errors: bool,
    encoding_name: &'static str,
}

impl Reader<'_> {
    fn cell<'f>(
        &self,
        fields: &'f [Cow<'_, str>],
        at: &At,
        line_no: usize,
    ) -> Result<&'f str, RowError> {
        fields
            .get(at.index)
            .map(|f| f.trim())
            .ok_or_else(|| RowError {
                message: format!(
                    "line {line_no}, column {} ({}): missing (the row has {} columns)",
                    at.index + 1,
                    at.label,
                    fields.len()
                ),
            })
    }

    fn err(line_no: usize, at: &At, msg: String) -> RowError {
        RowError {
            message: format!(
                "line {line_no}, column {} ({}): {msg}",
                at.index + 1,
                at.label
            ),
        }
    }

    fn check_width(&self, fields: &[Cow<'_, str>], line_no: usize) -> Result<(), RowError> {
        let n = fields.len();
        match &self.layout.header {
            Some(h) => {
                let fits = n == h.width
                    || (n == h.width + 1 && fields.last().is_some_and(|f| f.trim().is_empty()))
                    || (n + 1 == h.width && h.trailing_empty);
                if fits {
                    Ok(())
                } else {
                    Err(RowError {
                        message: format!(
                            "line {line_no}: {n} columns where the header on line {} has {}",
                            h.line, h.width
                        ),
                    })
                }
            }
            None if n < self.layout.min_fields => Err(RowError {
                message: format!(
                    "line {line_no}: {n} columns, but the profile reads column {}",
                    self.layout.min_fields
                ),
            }),
            None => Ok(()),
        }
    }

    fn local_time(&self, fields: &[Cow<'_, str>], line_no: usize) -> Result<DateTime, RowError> {
        let (dt, next_day) = match &self.layout.time {
            TimeAt::Combined { at, format } => {
                let text = self.cell(fields, at, line_no)?;
                let (dt, next_day) =
                    with_24(text, |s| DateTime::strptime(format, s)).map_err(|e| {
                        Self::err(
                            line_no,
                            at,
                            format!(
                                "{} is not a date and time in the format {format:?} ({e})",
                                quote(text)
                            ),
                        )
                    })?;
                if next_day && dt.time() != Time::midnight() {
                    return Err(Self::err(
                        line_no,
                        at,
                        format!("{} is past the end of the day", quote(text)),
                    ));
                }
                (dt, next_day)
            }
            TimeAt::Split {
                date,
                date_format,
                time,
                time_format,
            } => {
                let date_text = self.cell(fields, date, line_no)?;
                let d = Date::strptime(date_format, date_text).map_err(|e| {
                    Self::err(
                        line_no,
                        date,
                        format!(
                            "{} is not a date in the format {date_format:?} ({e})",
                            quote(date_text)
                        ),
                    )
                })?;
                let time_text = self.cell(fields, time, line_no)?;
                let (t, next_day) = with_24(time_text, |s| Time::strptime(time_format, s))
                    .map_err(|e| {
                        Self::err(
                            line_no,
                            time,
                            format!(
                                "{} is not a time in the format {time_format:?} ({e})",
                                quote(time_text)
                            ),
                        )
                    })?;
                if next_day && t != Time::midnight() {
                    return Err(Self::err(
                        line_no,
                        time,
                        format!("{} is past the end of the day", quote(time_text)),
                    ));
                }
                (d.to_datetime(t), next_day)
            }
        };
        let out_of_range = |dt: DateTime| RowError {
            message: format!("line {line_no}: the end of the interval at {dt} is out of range"),
        };
        let dt = if next_day {
            dt.checked_add(1.day()).map_err(|_| out_of_range(dt))?
        } else {
            dt
        };
        match self.profile.timestamp.marks {
            Marks::End => Ok(dt),
            Marks::Start => dt
                .checked_add(self.profile.timestamp.interval)
                .map_err(|_| out_of_range(dt)),
        }
    }

    fn row(&self, fields: &[Cow<'_, str>], line_no: usize) -> Result<ArchiveRecord, RowError> {
        self.check_width(fields, line_no)?;
        let local_time = self.local_time(fields, line_no)?;
        let sep = self.profile.format.decimal_separator;
        let mut quantities = Quantities::default();
        let mut status = Vec::new();
        let mut decided = false;
        let mut failed: Option<String> = None;
        for (at, column) in &self.layout.columns {
            let text = self.cell(fields, at, line_no)?;
            match column.quantity {
                Quantity::Status | Quantity::Check => {
                    if text.chars().count() > MAX_STATUS_CHARS {
                        return Err(Self::err(
                            line_no,
                            at,
                            format!(
                                "{} is longer than {MAX_STATUS_CHARS} characters",
                                quote(text)
                            ),
                        ));
                    }
                    if let Some(ok) = &column.ok {
                        decided = true;
                        if failed.is_none() && !ok.contains(&text.to_lowercase()) {
                            failed = Some(text.to_owned());
                        }
                    }
                    if column.quantity == Quantity::Status {
                        status.push(text.to_owned());
                    }
                }
                q => {
                    let value = parse_number(text, sep).map_err(|m| Self::err(line_no, at, m))?;
                    if let (Some(v), Some(unit), Some(slot)) =
                        (value, column.unit, q.slot(&mut quantities))
                    {
                        *slot = Some(unit.to_model(v).ok_or_else(|| {
                            Self::err(
                                line_no,
                                at,
                                format!("{} is out of range after unit conversion", quote(text)),
                            )
                        })?);
                    }
                }
            }
        }
        let check = match (decided, failed) {
            (false, _) => Check::Absent,
            (true, None) => Check::Ok,
            (true, Some(text)) => Check::Failed(text),
        };
        Ok(ArchiveRecord {
            kind: self.profile.kind,
            record_no: None,
            local_time,
            utc_offset_seconds: None,
            quantities,
            status,
            event_code: None,
            check,
            line: u32::try_from(line_no).unwrap_or(u32::MAX),
        })
    }
}

/// Read a number written with `sep` as decimal separator: an optional sign,
/// digits, at most one separator. No exponent, no thousands separators.
/// An empty field is `None` (the quantity is absent from the row).
pub(crate) fn parse_number(text: &str, sep: char) -> Result<Option<Decimal>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if text.len() > MAX_NUMBER_LEN {
        return Err(format!("{} is too long to be a number", quote(text)));
    }
    let not_a_number = || {
        format!(
            "{} is not a number with decimal separator '{sep}'",
            quote(text)
        )
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = match digits.split_once(sep) {
        Some((i, f)) => (i, f),
        None => (digits, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return Err(not_a_number());
    }
    let mut normal = String::with_capacity(text.len() + 2);
    if negative {
        normal.push('-');
    }
    normal.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        normal.push('.');
        normal.push_str(frac);
    }
    Decimal::from_str(&normal)
        .map(Some)
        .map_err(|_| format!("{} is out of range", quote(text)))
}

/// Parse `bytes` with `profile`.
pub(crate) fn parse(profile: &Profile, bytes: &[u8]) -> Result<ParsedFile, Unrecognised> {
    let name = &profile.name;
    let refuse = |why: String| Unrecognised::new(format!("profile {name:?}: {why}"));
    let mut warnings = Warnings::default();

    // A byte-order mark overrides the profile's encoding.
    let declared = profile.format.encoding;
    let (encoding, bom_len) = encoding_rs::Encoding::for_bom(bytes).unwrap_or((declared, 0));
    if encoding != declared {
        warnings.push(format!(
            "the content starts with a {} byte-order mark, which overrides the profile's encoding ({})",
            encoding.name(),
            declared.name()
        ));
    }
    let (text, decode_errors) =
        encoding.decode_without_bom_handling(bytes.get(bom_len..).unwrap_or_default());
    // Rows holding undecodable bytes (now U+FFFD) are skipped one by one,
    // each with its own warning.

    let fmt = &profile.format;
    let mut reader: Option<Reader<'_>> = None;
    if fmt.header_line.is_none() {
        reader = Some(Reader {
            profile,
            layout: resolve(profile, None).map_err(&refuse)?,
            decode_errors,
            encoding_name: encoding.name(),
        });
    }

    let mut records = Vec::new();
    let mut data_rows = 0usize;
    let mut failed = 0usize;
    let mut first_failure: Option<String> = None;
    let mut truncated = false;
    let mut lines_seen = 0usize;

    for (i, piece) in text.split_inclusive('\n').enumerate() {
        let line_no = i + 1;
        lines_seen = line_no;
        let (line, mut terminated) = match piece.strip_suffix('\n') {
            Some(l) => (l, true),
            None => (piece, false),
        };
        let line = match line.strip_suffix('\r') {
            Some(l) => {
                terminated = true;
                l
            }
            None => line,
        };

        if line_no <= fmt.skip_lines {
            if fmt.header_line == Some(line_no) {
                if decode_errors && line.contains('\u{FFFD}') {
                    return Err(refuse(format!(
                        "the header on line {line_no} has bytes that are not valid {}: is format.encoding right?",
                        encoding.name()
                    )));
                }
                let header = fields::split(line, fmt.delimiter).map_err(|e| {
                    refuse(format!(
                        "the header on line {line_no}, column {}: {}",
                        e.column, e.message
                    ))
                })?;
                reader = Some(Reader {
                    profile,
                    layout: resolve(profile, Some((line_no, &header))).map_err(&refuse)?,
                    decode_errors,
                    encoding_name: encoding.name(),
                });
            }
            continue;
        }
        if is_blank(line) {
            continue;
        }
        let Some(reader) = reader.as_ref() else {
            return Err(refuse(format!(
                "no header was read before data line {line_no}"
            )));
        };

        if !terminated && fmt.require_final_newline {
            truncated = true;
            warnings.push(format!(
                "line {line_no} has no line break at its end: the file was cut off mid-row, so the row is not imported"
            ));
            break;
        }

        let outcome = reader.read_line(line, line_no);
        match outcome {
            LineOutcome::Blank => {}
            LineOutcome::Record(record) => {
                data_rows += 1;
                records.push(*record);
            }
            LineOutcome::Failed(message) if !terminated => {
                truncated = true;
                warnings.push(format!(
                    "{message}: the last line has no line break and does not fit, so the file was cut off mid-row; the row is not imported"
                ));
            }
            LineOutcome::Failed(message) => {
                data_rows += 1;
                failed += 1;
                warnings.push(format!("{message}; row skipped"));
                first_failure.get_or_insert(message);
            }
        }
    }

    if reader.is_none() {
        let h = fmt.header_line.unwrap_or(0);
        return Err(refuse(format!(
            "the profile expects the header on line {h}, but the file has only {lines_seen} lines"
        )));
    }
    let first = first_failure.unwrap_or_default();
    if records.is_empty() {
        let cut = if truncated {
            " (the file was cut off before the end of its first row)"
        } else {
            ""
        };
        return Err(refuse(if data_rows == 0 {
            format!("no data rows after line {}{cut}", fmt.skip_lines)
        } else {
            format!("none of the {data_rows} data rows fit the profile; first: {first}")
        }));
    }
    if failed.saturating_mul(2) > data_rows {
        return Err(refuse(format!(
            "{failed} of {data_rows} data rows do not fit the profile, so the file is not imported; first: {first}"
        )));
    }

    Ok(ParsedFile {
        format: profile.format_name.clone(),
        records,
        events: Vec::new(),
        meta: FileMeta {
            model: profile.model.clone(),
            serial: None,
        },
        truncated,
        warnings: warnings.finish(),
    })
}

/// What one data line turned out to be.
enum LineOutcome {
    /// Only delimiters and blanks.
    Blank,
    Record(Box<ArchiveRecord>),
    Failed(String),
}

impl Reader<'_> {
    fn read_line(&self, line: &str, line_no: usize) -> LineOutcome {
        if self.decode_errors && line.contains('\u{FFFD}') {
            return LineOutcome::Failed(format!(
                "line {line_no}: bytes that are not valid {} (is format.encoding right?)",
                self.encoding_name
            ));
        }
        let fields = match fields::split(line, self.profile.format.delimiter) {
            Ok(f) => f,
            Err(SplitError { column, message }) => {
                return LineOutcome::Failed(format!("line {line_no}, column {column}: {message}"));
            }
        };
        if fields.iter().all(|f| is_blank(f)) {
            return LineOutcome::Blank;
        }
        match self.row(&fields, line_no) {
            Ok(record) => LineOutcome::Record(Box::new(record)),
            Err(RowError { message }) => LineOutcome::Failed(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str, sep: char) -> Result<Option<String>, String> {
        parse_number(s, sep).map(|v| v.map(|d| d.to_string()))
    }

    #[test]
    fn numbers() {
        assert_eq!(n("4982,6473", ','), Ok(Some("4982.6473".into())));
        assert_eq!(n(" -1,5 ", ','), Ok(Some("-1.5".into())));
        assert_eq!(n("+2", ','), Ok(Some("2".into())));
        assert_eq!(n(",5", ','), Ok(Some("0.5".into())));
        assert_eq!(n("5,", ','), Ok(Some("5".into())));
        assert_eq!(n("104.51", '.'), Ok(Some("104.51".into())));
        assert_eq!(n("", ','), Ok(None));
        assert_eq!(
            n("4982.6473", ','),
            Err("'4982.6473' is not a number with decimal separator ','".into())
        );
        for bad in ["1,2,3", "1e5", "1_000", "-", ",", "--1", "1 000", "٣"] {
            assert!(n(bad, ',').is_err(), "{bad}");
        }
        assert!(
            n(&"9".repeat(40), '.')
                .unwrap_err()
                .contains("out of range")
        );
        assert!(n(&"9".repeat(100), '.').unwrap_err().contains("too long"));
    }

    #[test]
    fn quoting_is_bounded() {
        assert_eq!(quote("abc"), "'abc'");
        assert_eq!(quote("a\u{1}b"), "'a\\u{1}b'");
        let q = quote(&"x".repeat(1000));
        assert_eq!(q.chars().count(), EXCERPT_CHARS + 3);
    }

    #[test]
    fn end_of_day() {
        let (t, next) = with_24("24:00", |s| Time::strptime("%H:%M", s)).unwrap();
        assert_eq!((t, next), (Time::midnight(), true));
        let (t, next) = with_24("23:00", |s| Time::strptime("%H:%M", s)).unwrap();
        assert_eq!((t, next), (Time::constant(23, 0, 0, 0), false));
        assert!(with_24("25:00", |s| Time::strptime("%H:%M", s)).is_err());
        let (dt, next) = with_24("14.01.2026 24:00", |s| {
            DateTime::strptime("%d.%m.%Y %H:%M", s)
        })
        .unwrap();
        assert_eq!(dt, DateTime::constant(2026, 1, 14, 0, 0, 0, 0));
        assert!(next);
    }
}
