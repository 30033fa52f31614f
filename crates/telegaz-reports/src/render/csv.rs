//! CSV: one for programs (UTF-8), one for Russian Excel (Windows-1251).

use encoding_rs::WINDOWS_1251;

use super::{
    COLUMNS, Cell, DEVICE, dec_comma, flags_ru, hms, row_cells, ru_date, ru_datetime, totals_cells,
};
use crate::Report;

/// Quote a field when it holds the separator, a quote or a line end.
fn field(out: &mut String, text: &str, sep: char) {
    if text.contains([sep, '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

fn table(
    report: &Report,
    sep: char,
    header: fn(&super::Column) -> &'static str,
    total_label: &str,
    format: fn(&Cell<'_>) -> String,
) -> String {
    let mut out = String::new();
    let line = |out: &mut String, fields: &mut dyn Iterator<Item = String>| {
        for (i, f) in fields.enumerate() {
            if i > 0 {
                out.push(sep);
            }
            field(out, &f, sep);
        }
        out.push_str("\r\n");
    };
    line(
        &mut out,
        &mut std::iter::once(&DEVICE)
            .chain(COLUMNS.iter())
            .map(|c| header(c).to_string()),
    );
    for dev in &report.devices {
        for r in &dev.rows {
            line(
                &mut out,
                &mut std::iter::once(dev.name.clone()).chain(row_cells(r).iter().map(format)),
            );
        }
        line(
            &mut out,
            &mut std::iter::once(dev.name.clone())
                .chain(totals_cells(&dev.totals, total_label).iter().map(format)),
        );
    }
    out
}

fn utf8_cell(c: &Cell<'_>) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Text(t) => (*t).to_string(),
        Cell::Date(d) => d.to_string(),
        Cell::DateTime(t) => t.to_string(),
        Cell::Dec(d) => d.to_string(),
        Cell::Int(i) | Cell::Duration(i) => i.to_string(),
        Cell::Bool(b) => b.to_string(),
        Cell::Flags(f) => f.iter().map(|f| f.code()).collect::<Vec<_>>().join("|"),
    }
}

fn ru_cell(c: &Cell<'_>) -> String {
    match c {
        Cell::Empty => String::new(),
        Cell::Text(t) => (*t).to_string(),
        Cell::Date(d) => ru_date(*d),
        Cell::DateTime(t) => ru_datetime(*t),
        Cell::Dec(d) => dec_comma(*d),
        Cell::Int(i) => i.to_string(),
        Cell::Duration(s) => hms(*s),
        Cell::Bool(b) => if *b { "да" } else { "нет" }.to_string(),
        Cell::Flags(f) => flags_ru(f),
    }
}

/// CSV for programs: UTF-8 (no BOM), `,`, `.` decimal point, ISO 8601 dates
/// and local times, English headers, abnormal time in seconds, flags as codes
/// joined by `|`, CRLF. Totals rows say `total` in `gas_day`.
pub fn csv_utf8(report: &Report) -> Vec<u8> {
    table(report, ',', |c| c.en, "total", utf8_cell).into_bytes()
}

/// CSV for Russian Excel: Windows-1251, `;`, decimal comma, CRLF, Russian
/// headers with units (`м3`), dates `ДД.ММ.ГГГГ`, times `ДД.ММ.ГГГГ ЧЧ:ММ`,
/// abnormal time `Ч:ММ:СС`, `да`/`нет`. Totals rows say `Итого`.
pub fn csv_1251(report: &Report) -> Vec<u8> {
    encode_1251(&table(report, ';', |c| c.ru, "Итого", ru_cell))
}

/// Windows-1251, with `³`/`²` written as `3`/`2` and anything else it lacks as `?`.
fn encode_1251(text: &str) -> Vec<u8> {
    let text = text.replace('³', "3").replace('²', "2");
    let (bytes, _, had_errors) = WINDOWS_1251.encode(&text);
    if !had_errors {
        return bytes.into_owned();
    }
    let mut out = Vec::with_capacity(text.len());
    let mut buf = [0u8; 4];
    for ch in text.chars() {
        let (bytes, _, bad) = WINDOWS_1251.encode(ch.encode_utf8(&mut buf));
        if bad {
            out.push(b'?');
        } else {
            out.extend_from_slice(&bytes);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_and_encoding() {
        let mut s = String::new();
        field(&mut s, "a;b \"c\"", ';');
        assert_eq!(s, "\"a;b \"\"c\"\"\"");
        assert_eq!(encode_1251("м³ ё°"), vec![0xEC, b'3', b' ', 0xB8, 0xB0]);
        assert_eq!(encode_1251("a😀b"), b"a?b".to_vec());
    }
}
