//! Lines of a readout (clean text, or the payload reassembled from a serial
//! capture) → archive records and events.
//!
//! A row is a run of parenthesised fields. Its structure is found by shape:
//!
//! - the time stamp is the first of the first three fields shaped
//!   `YYYY-MM-DD,HH:MM:SS`; the fields before it are record numbers (the last
//!   one, the archive's own number, becomes `record_no`);
//! - the last field is the check when it is text (`CRC Ok`, `CRC Error`);
//! - the field before the check is the event code when it reads `0x…`;
//! - the fields between the time stamp and the event code are values, mapped
//!   by the header rows or a known layout (`layout.rs`).
//!
//! A row with no value fields is an event-log row (`(101)(time)(0x2007)(CRC Ok)`).
//! Rows are independent of each other: one bad row is skipped with a warning
//! and never spoils the others.

use std::collections::BTreeMap;

use telegaz_domain::{
    ArchiveKind, ArchiveRecord, Check, EventRecord, FileMeta, ParsedFile, Quantities, Unrecognised,
};

use crate::fields::{self, Ident, MAX_LINE};
use crate::layout::{self, AddressRole, Col, Conversion, Quantity, Role};
use crate::warnings::Warnings;

/// Event code of an interval (hourly) record.
pub(crate) const EVENT_INTERVAL: u16 = 0x8104;
/// Event code of a daily record (gas-day boundary).
pub(crate) const EVENT_DAILY: u16 = 0x8103;
/// Event code taken for a monthly record. Guessed from the numbering of the
/// two known ones (0x8104 period, 0x8103 day); not confirmed by a document.
pub(crate) const EVENT_MONTHLY: u16 = 0x8102;

/// How a line ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEnd {
    /// A line break (or the end of the last block of an answer) follows.
    Newline,
    /// The content ends here: a row that is not complete is cut off.
    CutOff,
    /// Data after this line was lost (a serial block was rejected).
    Gap,
}

/// One line to read.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Line<'a> {
    pub text: &'a [u8],
    /// 1-based line number in the text (or in the reassembled payload).
    pub no: u32,
    pub end: LineEnd,
    /// LIS-200 archive number the rows come from, when the content says it
    /// (the `R3` request of a serial capture): 1/2 monthly, 3 interval,
    /// 4 event log, 7 daily.
    pub archive: Option<u32>,
    /// The bytes were verified by a block check (always true for clean text).
    pub verified: bool,
}

/// Column header rows seen so far (archive attributes 4 and 3).
#[derive(Debug, Clone, Default)]
struct Header {
    addresses: Option<Vec<String>>,
    units: Option<Vec<String>>,
}

impl Header {
    fn len(&self) -> usize {
        self.addresses
            .as_ref()
            .or(self.units.as_ref())
            .map_or(0, Vec::len)
    }
}

/// What a row is, by its event code and archive.
enum RowKind {
    Archive(ArchiveKind),
    Event,
    /// An archive row with another event code (a snapshot written on an
    /// event, not at a period boundary).
    Other(u16),
}

/// Reads lines one by one and collects what they say.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    records: Vec<ArchiveRecord>,
    events: Vec<EventRecord>,
    pub(crate) meta: FileMeta,
    pub(crate) truncated: bool,
    pub(crate) warnings: Warnings,
    header: Option<Header>,
    other_codes: BTreeMap<u16, usize>,
}

impl Collector {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records the device model (the first one seen wins).
    pub(crate) fn set_model(&mut self, model: String, whence: &str) {
        match &self.meta.model {
            None => self.meta.model = Some(model),
            Some(m) if *m == model => {}
            Some(m) => {
                let first = m.clone();
                self.warnings.once(&format!("model {model}"), || {
                    format!("{whence}: identifies the device as {model}, earlier as {first}; kept {first}")
                });
            }
        }
    }

    /// Records the device serial number (the first one seen wins).
    pub(crate) fn set_serial(&mut self, serial: String) {
        if self.meta.serial.is_none() {
            self.meta.serial = Some(serial);
        }
    }

    /// Reads one line.
    pub(crate) fn feed(&mut self, line: Line<'_>) {
        let text = line.text.trim_ascii();
        let Some(&first) = text.first() else {
            return;
        };
        if text.len() > MAX_LINE {
            if line.end == LineEnd::CutOff && first == b'(' {
                self.truncated = true;
            }
            self.warnings.push(format!(
                "line {}: {} bytes long, longer than any LIS-200 row ({MAX_LINE}): skipped",
                line.no,
                text.len()
            ));
            return;
        }
        if let Some(code) = fields::error_reply(text) {
            self.warnings.push(format!(
                "line {}: the device replied #{code:04} ({})",
                line.no,
                fields::error_meaning(code)
            ));
            return;
        }
        match first {
            b'/' => self.identification(text, &line),
            b'(' => self.row(text, &line),
            other => self.warnings.push(format!(
                "line {}: not a LIS-200 row (starts with {}): skipped",
                line.no,
                fields::describe_byte(other)
            )),
        }
    }

    fn identification(&mut self, text: &[u8], line: &Line<'_>) {
        match fields::identification(text) {
            Ident::SignOn => {}
            Ident::Device { model } => self.set_model(model, &format!("line {}", line.no)),
            Ident::Other => self.warnings.push(format!(
                "line {}: starts with '/' but is not an IEC 62056-21 identification: skipped",
                line.no
            )),
        }
    }

    fn row(&mut self, text: &[u8], line: &Line<'_>) {
        let fields = match fields::split_fields(text) {
            Ok(f) => f,
            Err(reason) => return self.reject(line, false, &reason),
        };
        if fields.iter().all(|f| layout::is_address(f)) {
            return self.address_header(fields);
        }
        if self.unit_header(&fields) {
            return;
        }
        // A row that ends with its check field is complete; one that does not,
        // at the very end of the content, is taken as cut off.
        let complete = fields.last().is_some_and(|f| fields::is_check_text(f));
        if line.end != LineEnd::Newline && !complete {
            return self.reject(line, false, "the row ends before its check field");
        }
        if let Err(reason) = self.data_row(&fields, line) {
            self.reject(line, complete, &reason);
        }
    }

    /// Says why a row was skipped; a row cut off at the end marks the file truncated.
    fn reject(&mut self, line: &Line<'_>, complete: bool, reason: &str) {
        let no = line.no;
        let message = match line.end {
            LineEnd::CutOff if !complete => {
                self.truncated = true;
                format!(
                    "line {no}: the last row is cut off ({reason}); the rows before it are kept"
                )
            }
            LineEnd::Gap if !complete => {
                format!("line {no}: row broken by a rejected serial block ({reason}): skipped")
            }
            _ => format!("line {no}: {reason}: row skipped"),
        };
        self.warnings.push(message);
    }

    fn address_header(&mut self, fields: Vec<&str>) {
        let addresses = fields.iter().map(|f| f.trim().to_owned()).collect();
        match &mut self.header {
            Some(h) if h.addresses.is_none() && h.len() == fields.len() => {
                h.addresses = Some(addresses);
            }
            _ => {
                self.header = Some(Header {
                    addresses: Some(addresses),
                    units: None,
                });
            }
        }
    }

    /// Takes the row as the unit-text header when it looks like one: short
    /// texts, no numbers, codes or time stamps, and either right after an
    /// address header of the same width or with at least one known unit.
    fn unit_header(&mut self, fields: &[&str]) -> bool {
        let unit_like = |f: &&str| {
            let f = f.trim();
            f.chars().count() <= 16
                && !fields::is_number(f)
                && fields::parse_code(f).is_none()
                && !fields::is_datetime_shape(f)
        };
        if !fields.iter().all(unit_like) {
            return false;
        }
        let units: Vec<String> = fields.iter().map(|f| f.trim().to_owned()).collect();
        match &mut self.header {
            Some(h) if h.units.is_none() && h.len() == fields.len() => {
                h.units = Some(units);
                true
            }
            _ if fields.iter().any(|f| layout::is_known_unit(f)) => {
                self.header = Some(Header {
                    addresses: None,
                    units: Some(units),
                });
                true
            }
            _ => false,
        }
    }

    fn data_row(&mut self, fields: &[&str], line: &Line<'_>) -> Result<(), String> {
        let n = fields.len();
        let time_at = fields
            .iter()
            .take(3)
            .position(|f| fields::is_datetime_shape(f))
            .ok_or("no time stamp among the first three fields")?;
        let mut record_no = None;
        for f in fields.get(..time_at).unwrap_or_default() {
            record_no = Some(
                fields::parse_uint(f)
                    .ok_or_else(|| format!("record number {f:?} is not a whole number"))?,
            );
        }
        let time_text = fields.get(time_at).copied().unwrap_or_default();
        let local_time = fields::parse_datetime(time_text)?;

        let check_text = fields.last().copied().filter(|f| fields::is_check_text(f));
        let mut values_end = if check_text.is_some() { n - 1 } else { n };
        let code = match values_end.checked_sub(1) {
            Some(i) if i > time_at => fields.get(i).and_then(|f| fields::parse_code(f)),
            _ => None,
        };
        if code.is_some() {
            values_end -= 1;
        }
        let values = fields.get(time_at + 1..values_end).unwrap_or_default();
        let check = match (check_text, line.verified) {
            (Some(c), true) if fields::check_is_ok(c) => Check::Ok,
            (Some(c), true) => Check::Failed(c.trim().to_owned()),
            (None, true) => Check::Absent,
            (c, false) => Check::Failed(format!(
                "not verified: the serial capture ends before the block check{}",
                c.map(|c| format!(" (row says {})", c.trim()))
                    .unwrap_or_default()
            )),
        };

        match self.kind(code, line.archive, values.is_empty()) {
            RowKind::Event => {
                let code = code.ok_or("event-log row without an event code")?;
                self.events.push(EventRecord {
                    record_no,
                    local_time,
                    utc_offset_seconds: None,
                    code,
                    check,
                    line: line.no,
                });
            }
            RowKind::Other(code) => {
                let count = self.other_codes.entry(code).or_default();
                *count = count.saturating_add(1);
            }
            RowKind::Archive(kind) => {
                let roles = self.roles(n, time_at, values.len())?;
                let mut quantities = Quantities::default();
                let mut status = Vec::new();
                let mut utc_offset_seconds = None;
                for (k, (&role, &raw)) in roles.iter().zip(values).enumerate() {
                    let field_no = time_at + 2 + k;
                    match role {
                        Role::Qty(q, conv) => {
                            set_quantity(&mut quantities, q, conv, raw, field_no)?;
                        }
                        Role::UtcOffsetMinutes => {
                            utc_offset_seconds = Some(utc_offset(raw, field_no)?);
                        }
                        Role::Status => status.push(raw.trim().to_owned()),
                        Role::Ignore => {}
                    }
                }
                self.records.push(ArchiveRecord {
                    kind,
                    record_no,
                    local_time,
                    utc_offset_seconds,
                    quantities,
                    status,
                    event_code: code,
                    check,
                    line: line.no,
                });
            }
        }
        Ok(())
    }

    /// Archive kind by the archive number (when known) and the event code.
    fn kind(&mut self, code: Option<u16>, archive: Option<u32>, no_values: bool) -> RowKind {
        match archive {
            Some(4) => return RowKind::Event,
            Some(1 | 2) if !no_values => return RowKind::Archive(ArchiveKind::Monthly),
            Some(7) if !no_values => return RowKind::Archive(ArchiveKind::Daily),
            _ => {}
        }
        if no_values {
            return RowKind::Event;
        }
        match code {
            Some(EVENT_INTERVAL) => RowKind::Archive(ArchiveKind::Interval),
            Some(EVENT_DAILY) => RowKind::Archive(ArchiveKind::Daily),
            Some(EVENT_MONTHLY) => RowKind::Archive(ArchiveKind::Monthly),
            Some(other) => RowKind::Other(other),
            None => {
                self.warnings.once("no event code", || {
                    "rows without an event code were taken as interval rows".into()
                });
                RowKind::Archive(ArchiveKind::Interval)
            }
        }
    }

    /// Roles of the `count` value fields of a row with `n` fields and the time
    /// stamp at `time_at`.
    fn roles(&mut self, n: usize, time_at: usize, count: usize) -> Result<Vec<Role>, String> {
        let family = self.meta.model.as_deref().and_then(layout::family_of);
        let known = layout::known(n, time_at, family).filter(|l| l.values.len() == count);
        let header = self.header.as_ref().filter(|h| h.len() == n);
        let units = header.and_then(|h| h.units.as_deref());
        let unit_at = |i: usize| units.and_then(|u| u.get(i)).map(String::as_str);
        let first = time_at + 1;

        if let Some(addresses) = header.and_then(|h| h.addresses.as_deref()) {
            let mut roles = Vec::with_capacity(count);
            let mut notes = Vec::new();
            for i in first..first + count {
                let address = addresses.get(i).map_or("", String::as_str);
                let key = layout::address_key(address);
                let unit = unit_at(i).unwrap_or("");
                let role = match layout::address_role(key) {
                    Some(AddressRole::Qty(q)) => {
                        // The header's unit first; without one, the unit the
                        // known layout prints at this place, if it agrees.
                        let fallback =
                            known
                                .and_then(|l| l.values.get(i - first))
                                .and_then(|c| match c {
                                    Col::Qty(lq, u) if *lq == q => Some(*u),
                                    _ => None,
                                });
                        let unit = if unit.is_empty() {
                            fallback.unwrap_or("")
                        } else {
                            unit
                        };
                        match conversion(q, unit) {
                            Some(c) => Role::Qty(q, c),
                            None => {
                                notes.push((
                                    format!("unit {n} {i} {unit}"),
                                    unit_note(i + 1, Some(address), q, unit),
                                ));
                                Role::Ignore
                            }
                        }
                    }
                    Some(AddressRole::UtcOffsetMinutes) => Role::UtcOffsetMinutes,
                    None if unit.is_empty() => Role::Status,
                    None => {
                        notes.push((
                            format!("address {n} {i} {address}"),
                            format!(
                                "field {} (address {address}, unit {unit}) is not a quantity this parser knows: ignored",
                                i + 1
                            ),
                        ));
                        Role::Ignore
                    }
                };
                roles.push(role);
            }
            for (key, note) in notes {
                self.warnings.once(&key, || note);
            }
            return Ok(roles);
        }

        let Some(layout) = known else {
            return Err(format!(
                "{n} fields with the time stamp in field {}: no column header and no known layout",
                time_at + 1
            ));
        };
        match family {
            None => self.warnings.once(&format!("layout {}", layout.name), || {
                format!(
                    "no column header rows: fields read as the known {} layout ({} fields), chosen by their number",
                    layout.name, layout.fields
                )
            }),
            Some(f) if f != layout.family => {
                self.warnings.once(&format!("layout {}", layout.name), || {
                    format!(
                        "rows of {} fields read as the {} layout although the device identifies as {}",
                        layout.fields,
                        layout.name,
                        self.meta.model.as_deref().unwrap_or("?")
                    )
                })
            }
            Some(_) => {}
        }
        let mut roles = Vec::with_capacity(count);
        for (k, col) in layout.values.iter().enumerate() {
            let i = first + k;
            let role = match *col {
                Col::Status => Role::Status,
                Col::Qty(q, default_unit) => {
                    let unit = unit_at(i).filter(|u| !u.is_empty()).unwrap_or(default_unit);
                    match conversion(q, unit) {
                        Some(c) => Role::Qty(q, c),
                        None => {
                            let note = unit_note(i + 1, None, q, unit);
                            self.warnings.once(&format!("unit {n} {i} {unit}"), || note);
                            Role::Ignore
                        }
                    }
                }
            };
            roles.push(role);
        }
        Ok(roles)
    }

    /// The parse result; a file with no rows at all is not recognised.
    pub(crate) fn finish(mut self, format: &str) -> Result<ParsedFile, Unrecognised> {
        if !self.other_codes.is_empty() {
            let total: usize = self.other_codes.values().sum();
            let mut codes: Vec<String> = self
                .other_codes
                .iter()
                .take(10)
                .map(|(c, k)| format!("0x{c:04X} ×{k}"))
                .collect();
            if self.other_codes.len() > 10 {
                codes.push("…".into());
            }
            self.warnings.summary(format!(
                "{total} archive rows with event codes other than 0x8104 (hourly), 0x8103 (daily) \
                 and 0x8102 (monthly) were not kept, as they are not period boundaries: {}",
                codes.join(", ")
            ));
        }
        if self.records.is_empty() && self.events.is_empty() {
            let detail: Vec<&str> = self.warnings.first(3).collect();
            let reason = if detail.is_empty() {
                "no LIS-200 archive or event-log rows found".to_owned()
            } else {
                format!("no usable LIS-200 rows: {}", detail.join("; "))
            };
            return Err(Unrecognised::new(reason));
        }
        Ok(ParsedFile {
            format: format.to_owned(),
            records: self.records,
            events: self.events,
            meta: self.meta,
            truncated: self.truncated,
            warnings: self.warnings.into_vec(),
        })
    }
}

/// The conversion for a quantity in a unit; a pressure needs a stated unit.
fn conversion(q: Quantity, unit: &str) -> Option<Conversion> {
    if q == Quantity::P && unit.trim().is_empty() {
        return None;
    }
    layout::unit_conversion(q, unit)
}

fn unit_note(field_no: usize, address: Option<&str>, q: Quantity, unit: &str) -> String {
    let at = address
        .map(|a| format!(" (address {a})"))
        .unwrap_or_default();
    if unit.is_empty() {
        format!(
            "field {field_no}{at}: {} has no unit stated and none can be assumed: ignored",
            q.name()
        )
    } else {
        format!(
            "field {field_no}{at}: unit {unit:?} is not known for {}: ignored",
            q.name()
        )
    }
}

fn set_quantity(
    quantities: &mut Quantities,
    q: Quantity,
    conv: Conversion,
    raw: &str,
    field_no: usize,
) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Ok(());
    }
    let value = fields::parse_decimal(raw)
        .ok_or_else(|| format!("field {field_no} ({}) {raw:?} is not a number", q.name()))?;
    let value = conv
        .apply(value)
        .ok_or_else(|| format!("field {field_no} ({}) {raw:?} is out of range", q.name()))?;
    let slot = match q {
        Quantity::Vb => &mut quantities.vb,
        Quantity::VbT => &mut quantities.vbt,
        Quantity::Vm => &mut quantities.vm,
        Quantity::Vo => &mut quantities.vo,
        Quantity::P => &mut quantities.p_kpa,
        Quantity::T => &mut quantities.t_c,
        Quantity::K => &mut quantities.k,
        Quantity::C => &mut quantities.c,
    };
    slot.get_or_insert(value);
    Ok(())
}

/// A UTC offset field in minutes, at most ±18 h.
fn utc_offset(raw: &str, field_no: usize) -> Result<i32, String> {
    raw.trim()
        .parse::<i32>()
        .ok()
        .filter(|m| m.abs() <= 18 * 60)
        .map(|m| m * 60)
        .ok_or_else(|| format!("field {field_no} (UTC offset) {raw:?} is not a number of minutes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use telegaz_domain::Decimal;

    fn read(lines: &[&str]) -> Collector {
        let mut c = Collector::new();
        for (i, l) in lines.iter().enumerate() {
            c.feed(Line {
                text: l.as_bytes(),
                no: i as u32 + 1,
                end: LineEnd::Newline,
                archive: None,
                verified: true,
            });
        }
        c
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    const TC_ROW: &str = "(13484)(2026-01-14,11:00:00)(4982.6473)(4982.6473)(4990.2284)(4990.2284)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)";

    #[test]
    fn tc_row_by_known_layout() {
        let c = read(&[TC_ROW]);
        let r = &c.records[0];
        assert_eq!(r.kind, ArchiveKind::Interval);
        assert_eq!(r.record_no, Some(13484));
        assert_eq!(r.local_time, jiff::civil::date(2026, 1, 14).at(11, 0, 0, 0));
        assert_eq!(r.quantities.vb, Some(d("4982.6473")));
        assert_eq!(r.quantities.vm, Some(d("4990.2284")));
        assert_eq!(r.quantities.t_c, Some(d("11.21")));
        assert_eq!(r.quantities.p_kpa, Some(d("104.5110")));
        assert_eq!(r.quantities.k, Some(d("1.0017")));
        assert_eq!(r.status, vec!["0", "0", "0"]);
        assert_eq!(r.event_code, Some(0x8104));
        assert_eq!(r.check, Check::Ok);
        assert_eq!(r.line, 1);
        assert_eq!(r.utc_offset_seconds, None);
        assert!(c.warnings.first(1).any(|w| w.contains("ТС2xx")));
    }

    #[test]
    fn header_rows_map_columns_and_units() {
        let c = read(&[
            "(1:400.0)(2:300.0)(4:300.0)(7:310.0)(6:310.0)(1:40F.0)(9:999.0)(3:1.0)(0:A82.0)(0:A83.0)",
            "()(m3)(m3)(MPa)(K)()(m3/h)()()()",
            "(2026-01-14,11:00:00)(10.5)(9.5)(0.4)(293.15)(180)(3.3)(0x0010)(0x8104)(CRC Ok)",
        ]);
        let r = &c.records[0];
        assert_eq!(r.record_no, None);
        assert_eq!(r.quantities.vb, Some(d("10.5")));
        assert_eq!(r.quantities.vm, Some(d("9.5")));
        assert_eq!(r.quantities.p_kpa, Some(d("400")));
        assert_eq!(r.quantities.t_c, Some(d("20")));
        assert_eq!(r.utc_offset_seconds, Some(180 * 60));
        assert_eq!(r.status, vec!["0x0010"]);
        assert!(c.warnings.first(5).any(|w| w.contains("9:999")));
    }

    #[test]
    fn pressure_without_a_unit_is_not_guessed() {
        let c = read(&[
            "(1:400.0)(2:300.0)(7:310.0)(0:A82.0)(0:A83.0)",
            "(2026-01-14,11:00:00)(10.5)(3.2)(0x8104)(CRC Ok)",
        ]);
        assert_eq!(c.records[0].quantities.p_kpa, None);
        assert_eq!(c.records[0].quantities.vb, Some(d("10.5")));
        assert!(c.warnings.first(5).any(|w| w.contains("no unit stated")));
    }

    #[test]
    fn event_rows_and_other_codes() {
        let row_8203 = TC_ROW.replace("0x8104", "0x8203");
        let c = read(&["(101)(2026-01-14,13:05:12)(0x2007)(CRC Ok)", &row_8203]);
        assert_eq!(c.events.len(), 1);
        assert_eq!(c.events[0].code, 0x2007);
        assert_eq!(c.events[0].record_no, Some(101));
        assert!(c.records.is_empty());
        let parsed = c.finish("t").unwrap();
        assert!(parsed.warnings.iter().any(|w| w.contains("0x8203 ×1")));
    }

    #[test]
    fn kinds_by_code_and_archive() {
        let mut c = Collector::new();
        assert!(matches!(
            c.kind(Some(0x8103), None, false),
            RowKind::Archive(ArchiveKind::Daily)
        ));
        assert!(matches!(
            c.kind(Some(0x8102), None, false),
            RowKind::Archive(ArchiveKind::Monthly)
        ));
        assert!(matches!(
            c.kind(Some(0x8104), Some(1), false),
            RowKind::Archive(ArchiveKind::Monthly)
        ));
        assert!(matches!(
            c.kind(Some(0x8104), Some(4), false),
            RowKind::Event
        ));
        assert!(matches!(
            c.kind(None, None, false),
            RowKind::Archive(ArchiveKind::Interval)
        ));
    }

    #[test]
    fn bad_rows_are_skipped_with_reasons() {
        let c = read(&[
            "(1)(2026-02-30,11:00:00)(0x2007)(CRC Ok)",
            "(x)(2026-01-14,11:00:00)(0x2007)(CRC Ok)",
            "(1)(2)(3)",
            "garbage",
            "(1)(2026-01-14,11:00:00)(1)(2)(0x8104)(CRC Ok)",
            &TC_ROW.replace("4982.6473", "49x2.6473"),
        ]);
        assert!(c.records.is_empty() && c.events.is_empty());
        let w: Vec<&str> = c.warnings.first(10).collect();
        assert!(
            w[0].starts_with("line 1: date 2026-02-30 does not exist"),
            "{w:?}"
        );
        assert!(w[1].contains("record number"), "{w:?}");
        assert!(w[2].contains("no time stamp"), "{w:?}");
        assert!(w[3].contains("not a LIS-200 row"), "{w:?}");
        assert!(w[4].contains("no known layout"), "{w:?}");
        assert!(
            w.iter()
                .any(|w| w.starts_with("line 6: field 3 (Vb) \"49x2.6473\" is not a number")),
            "{w:?}"
        );
        let err = c.finish("t").unwrap_err();
        assert!(
            err.reason
                .contains("line 1: date 2026-02-30 does not exist")
        );
    }

    #[test]
    fn unverified_rows_are_flagged() {
        let mut c = Collector::new();
        c.feed(Line {
            text: TC_ROW.as_bytes(),
            no: 1,
            end: LineEnd::Newline,
            archive: Some(3),
            verified: false,
        });
        assert!(matches!(&c.records[0].check, Check::Failed(t) if t.contains("not verified")));
    }
}
