//! LIS-200 / IEC 62056-21 archive readouts from ТС210/215/220 and
//! ЕК220/260/270/280/290 gas-volume correctors.
//!
//! Two shapes of content are read:
//!
//! - **clean readout text** (`lis200-text`): rows of parenthesised fields, one
//!   per line, optionally preceded by the archive's column header rows;
//! - **a raw serial capture** (`lis200-serial`) of both directions of the
//!   exchange, with control bytes, blocks and block checks (see `serial.rs`).
//!
//! ```text
//! (13484)(2026-01-14,11:00:00)(4982.6473)(4982.6473)(4990.2284)(4990.2284)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)
//! (101)(2026-01-14,13:05:12)(0x2007)(CRC Ok)
//! ```
//!
//! # What is known and what is guessed
//!
//! Known (DOMAIN.md, the samples and `expected.json`): the row structure
//! (record numbers, time stamp, values, status words, event code, check); event
//! 0x8104 = hourly interval record, 0x8103 = daily record; the ТС2xx and ЕК2xx
//! column orders; Vb and Vm positions (their hourly differences match
//! `expected.json`); LIS-200 addresses 2:300 Vb, 4:300 Vm, 7:310 p, 6:310 T,
//! 8:310 K, 5:310 C; the IEC 62056-21 framing and BCC.
//!
//! Guessed, and documented where used: 0x8102 = monthly record; 2:302 = VbT and
//! 4:302 = Vo (from the sample header, called illustrative there); that ТС2xx
//! rows without a header print p in kPa and ЕК2xx rows in bar; that a header
//! field with an unknown address and no unit is a status word.
//!
//! # What the parser does with doubtful content
//!
//! - A row that cannot be read (bad syntax, impossible date, a value that is
//!   not a number, an unknown layout) is skipped with a warning naming its line.
//! - A row whose check is not `CRC Ok` is kept with [`Check::Failed`].
//! - A cut-off last row is skipped, the file is marked `truncated`, and the
//!   rows before it are kept.
//! - Archive rows with other event codes (snapshots written on an event, not at
//!   a period boundary) are not kept; a summary warning counts them by code.
//! - Values are exact decimals as printed; pressure is converted to kPa and
//!   temperature to °C exactly (`1 bar = 100 kPa`, `T[°C] = T[K] − 273.15`).
//! - At most 100 warnings are kept word for word; the rest are counted.
//! - Content with no usable row at all is [`Unrecognised`], with the first
//!   reasons in its text.
//!
//! [`Check::Failed`]: telegaz_domain::Check::Failed

mod fields;
mod layout;
mod rows;
mod serial;
mod warnings;

use telegaz_domain::{ParsedFile, Unrecognised};

use crate::fields::Lines;
use crate::rows::{Collector, Line, LineEnd};

/// How much of the start of a file [`looks_like`] reads.
const SNIFF: usize = 4096;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parse a clean LIS-200 readout or a raw serial capture.
///
/// Content with SOH or STX bytes is read as a serial capture (format
/// `lis200-serial`), anything else as clean text (`lis200-text`).
pub fn parse(bytes: &[u8]) -> Result<ParsedFile, Unrecognised> {
    if bytes.trim_ascii().is_empty() {
        return Err(Unrecognised::new(
            "empty file: no LIS-200 archive or event-log rows",
        ));
    }
    let seven_bit = serial::strip_even_parity(bytes);
    if serial::is_capture(&seven_bit) {
        serial::parse(&seven_bit)
    } else {
        parse_text(bytes)
    }
}

/// Cheap check used by format detection: does this look like LIS-200 content
/// (clean text or serial capture)?
///
/// Reads at most the first 4 KiB. Clean text must start with `(` or `/` and
/// hold a parenthesised time stamp; a capture must start with a sign-on, hold a
/// command frame, or hold a data block with a time stamp.
pub fn looks_like(bytes: &[u8]) -> bool {
    let head = bytes.get(..SNIFF).unwrap_or(bytes);
    let head = serial::strip_even_parity(head);
    if serial::looks_like(&head) {
        return true;
    }
    let text = head.strip_prefix(UTF8_BOM).unwrap_or(&head);
    matches!(text.trim_ascii_start().first(), Some(b'(' | b'/')) && fields::has_datetime_field(text)
}

/// Clean readout text: every line is read on its own.
fn parse_text(bytes: &[u8]) -> Result<ParsedFile, Unrecognised> {
    let bytes = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let mut out = Collector::new();
    let mut no = 0u32;
    for l in Lines::new(bytes) {
        no = no.saturating_add(1);
        out.feed(Line {
            text: l.text,
            no,
            end: if l.terminated {
                LineEnd::Newline
            } else {
                LineEnd::CutOff
            },
            archive: None,
            verified: true,
        });
    }
    out.finish("lis200-text")
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegaz_domain::{ArchiveKind, Check};

    const ROW: &str = "(13484)(2026-01-14,11:00:00)(4982.6473)(4982.6473)(4990.2284)(4990.2284)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)";

    #[test]
    fn empty_and_blank_input() {
        for input in [&b""[..], b"   \r\n\r\n"] {
            let err = parse(input).unwrap_err();
            assert!(err.reason.starts_with("empty file"), "{err}");
            assert!(!looks_like(input));
        }
    }

    #[test]
    fn clean_text_with_identification() {
        let text = format!("/ELS6TC220\r\n{ROW}\r\n");
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.format, "lis200-text");
        assert_eq!(p.meta.model.as_deref(), Some("TC220"));
        assert_eq!(p.records.len(), 1);
        assert_eq!(p.records[0].line, 2);
        assert_eq!(p.records[0].kind, ArchiveKind::Interval);
        assert!(!p.truncated);
        // The layout was chosen by the model, so nothing to warn about.
        assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    }

    #[test]
    fn last_line_without_break_is_fine_when_complete() {
        let p = parse(ROW.as_bytes()).unwrap();
        assert_eq!(p.records.len(), 1);
        assert!(!p.truncated);
    }

    #[test]
    fn cut_row_marks_truncated() {
        let text = format!("{ROW}\r\n{}", &ROW[..60]);
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.records.len(), 1);
        assert!(p.truncated);
        assert!(
            p.warnings
                .iter()
                .any(|w| w.starts_with("line 2: the last row is cut off"))
        );
    }

    #[test]
    fn failed_check_is_kept_and_flagged() {
        let text = ROW.replace("CRC Ok", "CRC Error");
        let p = parse(text.as_bytes()).unwrap();
        assert_eq!(p.records[0].check, Check::Failed("CRC Error".into()));
    }

    #[test]
    fn looks_like_text_and_not_csv() {
        assert!(looks_like(ROW.as_bytes()));
        assert!(looks_like(
            b"(101)(2026-01-14,13:05:12)(0x2007)(CRC Ok)\r\n"
        ));
        assert!(!looks_like(
            "Дата;Время;Vb\r\n14.01.2026;11:00;4982,6473".as_bytes()
        ));
        assert!(!looks_like(b"(((((((((("));
    }
}
