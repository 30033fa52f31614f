//! Writes an [`Archive`] as the clean LIS-200 readout text of a ТС220, the
//! shape `telegaz_lis200::parse` reads (the known ТС2xx layout):
//!
//! ```text
//! /ELS6TC220
//! (13484)(2026-01-14,11:00:00)(4982.6473)(4982.6473)(4990.2284)(4990.2284)(11.21)(104.5110)(1.0017)(0)(0)(0)(0x8104)(CRC Ok)
//! (101)(2026-01-14,13:05:12)(0x2007)(CRC Ok)
//! ```
//!
//! Fields of an archive row: record number, time (end of the interval, local),
//! Vb, VbT (= Vb), Vm, Vo (= Vm), T, p, K, three status words, event code,
//! check. Event-log rows follow the archive rows.

use std::fmt::Write as _;

use jiff::civil::DateTime;

use crate::model::{Archive, Event, Row};

/// The identification line of a ТС220 (IEC 62056-21 `/XXXZ Ident`).
pub const IDENT_TC220: &str = "/ELS6TC220";

fn time(t: DateTime) -> String {
    t.strftime("%Y-%m-%d,%H:%M:%S").to_string()
}

/// One archive row, without the line end.
pub fn row_line(r: &Row) -> String {
    let [s1, s2, s3] = r.status;
    format!(
        "({})({})({})({})({})({})({})({})({})({s1})({s2})({s3})(0x{:04X})(CRC Ok)",
        r.record_no,
        time(r.time),
        r.vb,
        r.vb,
        r.vm,
        r.vm,
        r.t_c,
        r.p_kpa,
        r.k,
        r.event_code()
    )
}

/// One event-log row, without the line end.
pub fn event_line(e: &Event) -> String {
    format!(
        "({})({})(0x{:04X})(CRC Ok)",
        e.record_no,
        time(e.time),
        e.code
    )
}

/// The readout text: the identification line, the archive rows, the event
/// log; CR LF line ends as the corrector sends them.
pub fn write(archive: &Archive) -> Vec<u8> {
    let mut s = String::with_capacity(archive.rows.len() * 130 + 64);
    let _ = write!(s, "{IDENT_TC220}\r\n");
    for r in &archive.rows {
        let _ = write!(s, "{}\r\n", row_line(r));
    }
    for e in &archive.events {
        let _ = write!(s, "{}\r\n", event_line(e));
    }
    s.into_bytes()
}

/// A file that is not an archive: what a modem sometimes uploads after a
/// failed read of its corrector (it ends up in quarantine).
pub fn junk() -> Vec<u8> {
    b"AT+CSQ\r\n+CSQ: 11,99\r\nOK\r\nAT#RDARCH=3\r\nERROR\r\n+CME ERROR: 30\r\nno answer from the corrector\r\n"
        .to_vec()
}
