//! Renderers of a [`Report`].
//!
//! Every table has the same columns, in this order (Russian header, CSV-UTF-8
//! header):
//!
//! | Russian | CSV-UTF-8 | what |
//! |---|---|---|
//! | Устройство | `device` | device name (CSV only: XLSX and HTML have one table per device) |
//! | Газовые сутки | `gas_day` | the gas day (`Итого` / `total` on the totals row) |
//! | Начало | `start_local` | start of the row, device's local time |
//! | Окончание | `end_local` | end of the row (for hours: the hour end, as in the archive) |
//! | Vст, м³ | `vb_m3` | standard volume |
//! | Vраб, м³ | `vm_m3` | working volume |
//! | P ср., кПа | `p_mean_kpa` | mean pressure |
//! | T ср., °C | `t_mean_c` | mean temperature |
//! | Счётчик Vст на начало, м³ | `vb_start_m3` | Vb counter at the start |
//! | Счётчик Vст на конец, м³ | `vb_end_m3` | Vb counter at the end |
//! | Счётчик Vраб на начало, м³ | `vm_start_m3` | Vm counter at the start |
//! | Счётчик Vраб на конец, м³ | `vm_end_m3` | Vm counter at the end |
//! | Часов в периоде | `expected_hours` | clock hours |
//! | Часов с данными | `hours_with_data` | hours with a volume |
//! | Часов без данных | `missing_hours` | hours ended without a volume |
//! | Время НС, ч:мм:сс | `abnormal_s` | time in an abnormal state (CSV-UTF-8: seconds) |
//! | Данные полные | `complete` | volume is a counter difference at both ends |
//! | Окончательные | `final` | the gas day has ended |
//! | Vст по суточной записи прибора, м³ | `device_vb_m3` | the device's own daily volume |
//! | Признаки | `flags` | flags (Russian text; CSV-UTF-8: codes joined by `\|`) |
//!
//! Each device's rows are followed by its totals row.
//!
//! - [`csv_utf8`]: for programs. UTF-8 without BOM, `,` separated, `.`
//!   decimal point, ISO 8601 dates and times, English snake_case headers,
//!   booleans `true`/`false`, CRLF line ends (RFC 4180).
//! - [`csv_1251`]: for Russian Excel. Windows-1251, `;` separated, decimal
//!   comma, `ДД.ММ.ГГГГ` and `ДД.ММ.ГГГГ ЧЧ:ММ`, Russian headers (`м3` for
//!   `м³`, which Windows-1251 lacks), `да`/`нет`, CRLF. Characters
//!   Windows-1251 lacks become `?`.
//! - [`xlsx`]: one worksheet per device (see [`xlsx`] for the layout).
//! - [`json`]: the [`Report`] as serialised (decimals as strings, exact).
//! - [`html`]: one self-contained printable page.
//!
//! Numbers keep the exact decimal digits of the figures (no float formatting),
//! except in XLSX number cells, which are binary floats by the format's nature.

mod csv;
mod html;
mod xlsx;

use jiff::civil::{Date, DateTime};
use telegaz_domain::Decimal;

use crate::{Flag, Report, Row, Totals, Values};

pub use csv::{csv_1251, csv_utf8};
pub use html::html;
pub use xlsx::xlsx;

/// The report as pretty-printed JSON (UTF-8).
pub fn json(report: &Report) -> Vec<u8> {
    match serde_json::to_vec_pretty(report) {
        Ok(mut v) => {
            v.push(b'\n');
            v
        }
        // Serialising plain derived structures does not fail; say so if it did.
        Err(e) => serde_json::json!({ "error": e.to_string() })
            .to_string()
            .into_bytes(),
    }
}

/// A table cell, before a renderer formats it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell<'a> {
    Empty,
    Text(&'a str),
    Date(Date),
    DateTime(DateTime),
    Dec(Decimal),
    Int(i64),
    /// Seconds.
    Duration(i64),
    Bool(bool),
    Flags(&'a [Flag]),
}

pub(crate) struct Column {
    pub ru: &'static str,
    pub en: &'static str,
    /// Width in XLSX, characters.
    pub width: f64,
}

/// The device column (CSV only).
pub(crate) const DEVICE: Column = Column {
    ru: "Устройство",
    en: "device",
    width: 16.0,
};

/// The columns of every table, after the device column.
pub(crate) const COLUMNS: [Column; 19] = [
    Column {
        ru: "Газовые сутки",
        en: "gas_day",
        width: 12.0,
    },
    Column {
        ru: "Начало",
        en: "start_local",
        width: 16.0,
    },
    Column {
        ru: "Окончание",
        en: "end_local",
        width: 16.0,
    },
    Column {
        ru: "Vст, м³",
        en: "vb_m3",
        width: 12.0,
    },
    Column {
        ru: "Vраб, м³",
        en: "vm_m3",
        width: 12.0,
    },
    Column {
        ru: "P ср., кПа",
        en: "p_mean_kpa",
        width: 10.0,
    },
    Column {
        ru: "T ср., °C",
        en: "t_mean_c",
        width: 9.0,
    },
    Column {
        ru: "Счётчик Vст на начало, м³",
        en: "vb_start_m3",
        width: 14.0,
    },
    Column {
        ru: "Счётчик Vст на конец, м³",
        en: "vb_end_m3",
        width: 14.0,
    },
    Column {
        ru: "Счётчик Vраб на начало, м³",
        en: "vm_start_m3",
        width: 14.0,
    },
    Column {
        ru: "Счётчик Vраб на конец, м³",
        en: "vm_end_m3",
        width: 14.0,
    },
    Column {
        ru: "Часов в периоде",
        en: "expected_hours",
        width: 9.0,
    },
    Column {
        ru: "Часов с данными",
        en: "hours_with_data",
        width: 9.0,
    },
    Column {
        ru: "Часов без данных",
        en: "missing_hours",
        width: 9.0,
    },
    Column {
        ru: "Время НС, ч:мм:сс",
        en: "abnormal_s",
        width: 10.0,
    },
    Column {
        ru: "Данные полные",
        en: "complete",
        width: 9.0,
    },
    Column {
        ru: "Окончательные",
        en: "final",
        width: 9.0,
    },
    Column {
        ru: "Vст по суточной записи прибора, м³",
        en: "device_vb_m3",
        width: 14.0,
    },
    Column {
        ru: "Признаки",
        en: "flags",
        width: 40.0,
    },
];

fn opt(d: Option<Decimal>) -> Cell<'static> {
    d.map_or(Cell::Empty, Cell::Dec)
}

fn cells<'a>(first: Cell<'a>, start: DateTime, end: DateTime, v: &'a Values) -> Vec<Cell<'a>> {
    vec![
        first,
        Cell::DateTime(start),
        Cell::DateTime(end),
        opt(v.vb_m3),
        opt(v.vm_m3),
        opt(v.p_mean_kpa),
        opt(v.t_mean_c),
        opt(v.vb_start_m3),
        opt(v.vb_end_m3),
        opt(v.vm_start_m3),
        opt(v.vm_end_m3),
        Cell::Int(i64::from(v.expected_hours)),
        Cell::Int(i64::from(v.hours_with_data)),
        Cell::Int(i64::from(v.missing_hours)),
        Cell::Duration(v.abnormal_seconds),
        Cell::Bool(v.complete),
        Cell::Bool(v.is_final),
        opt(v.device_vb_m3),
        Cell::Flags(&v.flags),
    ]
}

pub(crate) fn row_cells(r: &Row) -> Vec<Cell<'_>> {
    cells(Cell::Date(r.gas_day), r.start_local, r.end_local, &r.values)
}

pub(crate) fn totals_cells<'a>(t: &'a Totals, label: &'a str) -> Vec<Cell<'a>> {
    cells(Cell::Text(label), t.start_local, t.end_local, &t.values)
}

/// `ДД.ММ.ГГГГ`.
pub(crate) fn ru_date(d: Date) -> String {
    crate::period::ru_date(d)
}

/// `ДД.ММ.ГГГГ ЧЧ:ММ`, with `:СС` when the seconds are not zero.
pub(crate) fn ru_datetime(t: DateTime) -> String {
    let mut s = format!("{} {:02}:{:02}", ru_date(t.date()), t.hour(), t.minute());
    if t.second() != 0 {
        s.push_str(&format!(":{:02}", t.second()));
    }
    s
}

/// `Ч:ММ:СС` (hours may exceed 24).
pub(crate) fn hms(seconds: i64) -> String {
    let s = seconds.max(0);
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A decimal with a comma.
pub(crate) fn dec_comma(d: Decimal) -> String {
    d.to_string().replace('.', ",")
}

pub(crate) fn flags_ru(flags: &[Flag]) -> String {
    flags
        .iter()
        .map(|f| f.russian())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn rows_label_ru(report: &Report) -> &'static str {
    match report.rows {
        crate::Rows::Hourly => "часовые",
        crate::Rows::Daily => "суточные",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(hms(0), "0:00:00");
        assert_eq!(hms(39 * 60 + 48), "0:39:48");
        assert_eq!(hms(30 * 3600 + 5), "30:00:05");
        assert_eq!(
            ru_datetime(jiff::civil::date(2026, 1, 4).at(9, 5, 0, 0)),
            "04.01.2026 09:05"
        );
    }
}
