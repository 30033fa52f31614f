//! Row syntax: lines, parenthesised fields and the scalar forms inside them.
//!
//! Everything here is strict and bounded: a field is `(` text `)` with no
//! parenthesis inside, numbers are plain decimals as printed, times are
//! `YYYY-MM-DD,HH:MM:SS`. Nothing here allocates more than the row it reads.

use jiff::civil::{Date, DateTime, Time};
use telegaz_domain::Decimal;

/// The longest line read as a row. Real rows are about 100–200 bytes; a
/// longer line is garbage and is skipped before it is split into fields.
pub(crate) const MAX_LINE: usize = 4096;
/// The most fields a row may have (real layouts have up to about 25).
pub(crate) const MAX_FIELDS: usize = 64;

/// One line of text and where it starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LineSpan<'a> {
    /// Byte offset of the line in the text it was cut from.
    pub start: usize,
    /// The line without its terminator.
    pub text: &'a [u8],
    /// A line break (CR, LF or CR LF) follows the line.
    pub terminated: bool,
}

/// Lines of a byte text; CR LF, LF and a lone CR each end a line.
pub(crate) struct Lines<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = LineSpan<'a>;

    fn next(&mut self) -> Option<LineSpan<'a>> {
        let rest = self.bytes.get(self.pos..).filter(|r| !r.is_empty())?;
        let start = self.pos;
        match rest.iter().position(|&c| c == b'\n' || c == b'\r') {
            Some(k) => {
                let crlf = rest.get(k) == Some(&b'\r') && rest.get(k + 1) == Some(&b'\n');
                self.pos += k + if crlf { 2 } else { 1 };
                Some(LineSpan {
                    start,
                    text: rest.get(..k).unwrap_or_default(),
                    terminated: true,
                })
            }
            None => {
                self.pos = self.bytes.len();
                Some(LineSpan {
                    start,
                    text: rest,
                    terminated: false,
                })
            }
        }
    }
}

/// Splits `(a)(b)(c)` into `["a", "b", "c"]`. Spaces and tabs between fields
/// are tolerated; anything else outside a field is an error.
pub(crate) fn split_fields(text: &[u8]) -> Result<Vec<&str>, String> {
    let mut fields = Vec::new();
    let mut rest = text;
    while let Some((&first, tail)) = rest.split_first() {
        match first {
            b' ' | b'\t' => rest = tail,
            b'(' => {
                let number = fields.len() + 1;
                let close = tail
                    .iter()
                    .position(|&c| c == b')' || c == b'(')
                    .filter(|&k| tail.get(k) == Some(&b')'))
                    .ok_or_else(|| format!("field {number} is not closed"))?;
                let (inside, after) = tail.split_at(close);
                let inside = std::str::from_utf8(inside)
                    .map_err(|_| format!("field {number} is not text"))?;
                if inside.chars().any(char::is_control) {
                    return Err(format!("field {number} holds control characters"));
                }
                if fields.len() == MAX_FIELDS {
                    return Err(format!("more than {MAX_FIELDS} fields"));
                }
                fields.push(inside);
                rest = after.get(1..).unwrap_or_default();
            }
            other => {
                return Err(format!(
                    "unexpected {} after field {}",
                    describe_byte(other),
                    fields.len()
                ));
            }
        }
    }
    if fields.is_empty() {
        return Err("no fields".into());
    }
    Ok(fields)
}

/// A byte as a person reads it in a message.
pub(crate) fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", char::from(b))
    } else {
        format!("byte 0x{b:02X}")
    }
}

/// Whether a field has the shape of a LIS-200 time stamp
/// (`2026-01-14,11:00:00`; a space or `T` is accepted in place of the comma).
/// The values are not checked here.
pub(crate) fn is_datetime_shape(s: &str) -> bool {
    let b = s.trim().as_bytes();
    b.len() == 19
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => matches!(c, b',' | b' ' | b'T'),
            13 | 16 => c == b':',
            _ => c.is_ascii_digit(),
        })
}

/// Whether the bytes hold a parenthesised time stamp field somewhere
/// (`(2026-01-14,11:00:00)`), as every archive and event-log row does.
pub(crate) fn has_datetime_field(b: &[u8]) -> bool {
    b.windows(21).any(|w| {
        matches!(w, [b'(', .., b')'])
            && w.get(1..20)
                .and_then(|inner| std::str::from_utf8(inner).ok())
                .is_some_and(is_datetime_shape)
    })
}

/// Parses a time stamp, saying precisely what is wrong with it.
pub(crate) fn parse_datetime(s: &str) -> Result<DateTime, String> {
    let s = s.trim();
    if !is_datetime_shape(s) {
        return Err(format!("{s:?} is not a time stamp (YYYY-MM-DD,HH:MM:SS)"));
    }
    let num = |from: usize, to: usize| -> i16 {
        s.get(from..to)
            .and_then(|x| x.parse::<i16>().ok())
            .unwrap_or(-1)
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let date_text = s.get(..10).unwrap_or(s);
    let time_text = s.get(11..).unwrap_or(s);
    if !(1980..=2199).contains(&year) {
        return Err(format!(
            "date {date_text}: year {year} is not plausible for a corrector clock"
        ));
    }
    let small = |v: i16| i8::try_from(v).unwrap_or(-1);
    let date = Date::new(year, small(month), small(day))
        .map_err(|_| format!("date {date_text} does not exist"))?;
    let time = Time::new(small(hour), small(minute), small(second), 0)
        .map_err(|_| format!("time {time_text} does not exist"))?;
    Ok(date.to_datetime(time))
}

/// A plain decimal as printed (`-12.5`, `4982.6473`): optional minus,
/// digits, optional point and digits. No exponents, separators or `+`.
pub(crate) fn parse_decimal(s: &str) -> Option<Decimal> {
    let s = s.trim();
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    if s.len() > 40 || !digits(int) || !frac.is_none_or(digits) {
        return None;
    }
    Decimal::from_str_exact(s).ok()
}

/// Whether a field is a plain number (as [`parse_decimal`] reads it).
pub(crate) fn is_number(s: &str) -> bool {
    parse_decimal(s).is_some()
}

/// A record number: digits only.
pub(crate) fn parse_uint(s: &str) -> Option<u64> {
    let s = s.trim();
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// An event code as printed, `0x8104` (one to four hex digits).
pub(crate) fn parse_code(s: &str) -> Option<u16> {
    let hex = s.trim().strip_prefix("0x")?;
    if hex.is_empty() || hex.len() > 4 || !hex.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u16::from_str_radix(hex, 16).ok()
}

/// Whether a field reads like the check column (`CRC Ok`, `CRC Error`, …):
/// text with letters that is not a number, an event code or a time stamp.
pub(crate) fn is_check_text(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty()
        && s.chars().any(char::is_alphabetic)
        && parse_code(s).is_none()
        && !is_datetime_shape(s)
}

/// Whether a check field says the row is good.
pub(crate) fn check_is_ok(s: &str) -> bool {
    s.trim().eq_ignore_ascii_case("CRC Ok")
}

/// An IEC 62056-21 / LIS-200 error reply in place of data: `#0103` or
/// `(#0103)`. Returns the error number.
pub(crate) fn error_reply(text: &[u8]) -> Option<u16> {
    let t = text.trim_ascii();
    let t = t
        .strip_prefix(b"(")
        .and_then(|t| t.strip_suffix(b")"))
        .unwrap_or(t);
    let digits = t.strip_prefix(b"#")?;
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// What a LIS-200 error number means, where known (DOMAIN.md).
pub(crate) fn error_meaning(code: u16) -> &'static str {
    match code {
        103 => "archive empty",
        104 | 105 => "archive limit not found",
        109 => "entry overwritten while reading",
        110 => "CRC error in a record",
        201 => "wrong password",
        _ => "unknown error",
    }
}

/// What a line starting with `/` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ident {
    /// `/?!` or `/?address!`: the reader's sign-on request.
    SignOn,
    /// `/XXXZident`: the device's identification; `model` is the
    /// identification text (`/ELS6TC220` → `TC220`).
    Device { model: String },
    /// Starts with `/` but is neither.
    Other,
}

/// Reads an IEC 62056-21 sign-on or identification line (without CR LF).
/// The identification is `/`, three letters (manufacturer), one baud-rate
/// character, optional `\W` enhanced-mode pairs, then the identification text.
pub(crate) fn identification(line: &[u8]) -> Ident {
    let line = line.trim_ascii();
    let Some(rest) = line.strip_prefix(b"/") else {
        return Ident::Other;
    };
    if let Some(address) = rest.strip_prefix(b"?").and_then(|r| r.strip_suffix(b"!")) {
        return if address.len() <= 32 && address.iter().all(u8::is_ascii_alphanumeric) {
            Ident::SignOn
        } else {
            Ident::Other
        };
    }
    let (Some(maker), Some(&baud)) = (rest.get(..3), rest.get(3)) else {
        return Ident::Other;
    };
    if !maker.iter().all(u8::is_ascii_alphabetic) || !baud.is_ascii_alphanumeric() {
        return Ident::Other;
    }
    let mut ident = rest.get(4..).unwrap_or_default();
    while let Some(after) = ident.strip_prefix(b"\\") {
        ident = after.get(1..).unwrap_or_default();
    }
    let ident = ident.trim_ascii();
    if ident.is_empty() || ident.len() > 32 || !ident.iter().all(|c| c.is_ascii_graphic()) {
        return Ident::Other;
    }
    Ident::Device {
        model: String::from_utf8_lossy(ident).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &str) -> Vec<(usize, &str, bool)> {
        Lines::new(s.as_bytes())
            .map(|l| {
                (
                    l.start,
                    std::str::from_utf8(l.text).unwrap_or("?"),
                    l.terminated,
                )
            })
            .collect()
    }

    #[test]
    fn lines_end_at_cr_lf_and_both() {
        assert_eq!(
            lines("a\r\nb\nc\rd"),
            vec![
                (0, "a", true),
                (3, "b", true),
                (5, "c", true),
                (7, "d", false)
            ]
        );
        assert_eq!(lines(""), vec![]);
        assert_eq!(lines("x\r"), vec![(0, "x", true)]);
    }

    #[test]
    fn fields_split_strictly() {
        assert_eq!(
            split_fields(b"(1)(2026-01-14,11:00:00)()(CRC Ok)"),
            Ok(vec!["1", "2026-01-14,11:00:00", "", "CRC Ok"])
        );
        assert_eq!(split_fields(b"(1) (2)"), Ok(vec!["1", "2"]));
        assert_eq!(split_fields(b"(1)(2"), Err("field 2 is not closed".into()));
        assert_eq!(split_fields(b"(1(2)"), Err("field 1 is not closed".into()));
        assert_eq!(
            split_fields(b"(1)x"),
            Err("unexpected 'x' after field 1".into())
        );
        assert!(split_fields(b"").is_err());
        let many = "(1)".repeat(MAX_FIELDS + 1);
        assert!(split_fields(many.as_bytes()).is_err());
    }

    #[test]
    fn time_stamps_are_checked() {
        assert_eq!(
            parse_datetime("2026-01-14,11:00:00"),
            Ok(jiff::civil::date(2026, 1, 14).at(11, 0, 0, 0))
        );
        assert_eq!(
            parse_datetime("2026-02-30,11:00:00"),
            Err("date 2026-02-30 does not exist".into())
        );
        assert_eq!(
            parse_datetime("2026-02-03,24:00:00"),
            Err("time 24:00:00 does not exist".into())
        );
        assert!(parse_datetime("0000-01-01,00:00:00").is_err());
        assert!(parse_datetime("2026-01-14 11:00").is_err());
        assert!(!is_datetime_shape("2026-01-14,11:00:0x"));
        assert!(has_datetime_field(b"xx(1)(2026-01-14,11:00:00)(2)"));
        assert!(!has_datetime_field(b"(2026-01-14,11:00:00"));
    }

    #[test]
    fn decimals_are_plain_and_exact() {
        assert_eq!(
            parse_decimal("4982.6473").map(|d| d.to_string()),
            Some("4982.6473".into())
        );
        assert_eq!(
            parse_decimal("-1.50").map(|d| d.to_string()),
            Some("-1.50".into())
        );
        for bad in [
            "", "-", ".5", "5.", "1_000", "1e3", "+1", "0x10", "1.2.3", "nan",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad}");
        }
        assert_eq!(parse_decimal(&"9".repeat(41)), None);
        assert_eq!(parse_decimal(&"9".repeat(35)), None, "beyond 96 bits");
    }

    #[test]
    fn codes_checks_and_errors() {
        assert_eq!(parse_code("0x8104"), Some(0x8104));
        assert_eq!(parse_code("0x2"), Some(2));
        assert_eq!(parse_code("8104"), None);
        assert_eq!(parse_code("0x18104"), None);
        assert!(is_check_text("CRC Ok"));
        assert!(is_check_text("CRC Error"));
        assert!(!is_check_text("0x8104"));
        assert!(!is_check_text("12.5"));
        assert!(check_is_ok("crc ok"));
        assert_eq!(error_reply(b"#0103"), Some(103));
        assert_eq!(error_reply(b"(#0103)\r\n"), Some(103));
        assert_eq!(error_reply(b"(0103)"), None);
        assert_eq!(error_meaning(103), "archive empty");
    }

    #[test]
    fn identification_lines() {
        assert_eq!(identification(b"/?!"), Ident::SignOn);
        assert_eq!(identification(b"/?12345678!"), Ident::SignOn);
        assert_eq!(
            identification(b"/ELS6TC220"),
            Ident::Device {
                model: "TC220".into()
            }
        );
        assert_eq!(
            identification(b"/ELS5\\2EK260"),
            Ident::Device {
                model: "EK260".into()
            }
        );
        assert_eq!(identification(b"/EL"), Ident::Other);
        assert_eq!(identification(b"/?\x02!"), Ident::Other);
        assert_eq!(identification(b"/ELS6"), Ident::Other);
    }
}
