//! XLSX: one worksheet per device.

use std::collections::{BTreeSet, HashMap};

use rust_xlsxwriter::{ExcelDateTime, Format, FormatAlign, FormatBorder, Workbook, Worksheet};

use super::{
    COLUMNS, Cell, flags_ru, row_cells, rows_label_ru, ru_date, ru_datetime, totals_cells,
};
use crate::{DeviceReport, RenderError, Report};

/// The row (0-based) of the column headers; data starts on the next one.
pub(crate) const HEADER_ROW: u32 = 4;

/// The report as an XLSX workbook, **one worksheet per device**, named after
/// the device (characters Excel forbids in sheet names replaced by `_`, cut to
/// 31 characters, made unique with ` (2)`, …).
///
/// Each sheet: row 1 a title with the device name, row 2 the period, the row
/// kind, the contract hour and time zone, row 3 when the report was made;
/// row 5 the column headers with units (see [`crate::render`]); then one row
/// per hour or gas day; then a bold totals row (`Итого` in the first column).
/// Dates and times are date cells (`ДД.ММ.ГГГГ`, `ДД.ММ.ГГГГ ЧЧ:ММ`),
/// volumes, counters, means and hours are number cells showing the figure's
/// own decimals, the abnormal time is a duration cell (`[ч]:мм:сс`, a number of
/// days, as Excel keeps durations), `да`/`нет` and flags are text. Headers are
/// frozen and repeated on printed pages; the page is A4 landscape, one page
/// wide.
pub fn xlsx(report: &Report) -> Result<Vec<u8>, RenderError> {
    let mut wb = Workbook::new();
    let mut used = BTreeSet::new();
    for dev in &report.devices {
        let name = sheet_name(&dev.name, &mut used);
        let ws = wb.add_worksheet();
        ws.set_name(name)?;
        sheet(ws, report, dev)?;
    }
    Ok(wb.save_to_buffer()?)
}

fn sheet_name(device: &str, used: &mut BTreeSet<String>) -> String {
    let clean: String = device
        .chars()
        .map(|c| {
            if matches!(c, '[' | ']' | ':' | '*' | '?' | '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim().trim_matches('\'').to_string();
    let base = if clean.is_empty() {
        "Устройство".to_string()
    } else {
        clean
    };
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let mut name = cut(&base, 31);
    let mut i = 2;
    while used.contains(&name.to_lowercase()) {
        let suffix = format!(" ({i})");
        name = format!("{}{suffix}", cut(&base, 31 - suffix.chars().count()));
        i += 1;
    }
    used.insert(name.to_lowercase());
    name
}

struct Formats {
    title: Format,
    header: Format,
    text: [Format; 2],
    date: [Format; 2],
    datetime: [Format; 2],
    integer: [Format; 2],
    duration: [Format; 2],
    numbers: HashMap<(u32, usize), Format>,
}

impl Formats {
    fn new() -> Formats {
        let base = |bold: bool| {
            let f = Format::new().set_border(FormatBorder::Thin);
            if bold { f.set_bold() } else { f }
        };
        let pair = |num: &str| {
            [
                base(false).set_num_format(num),
                base(true).set_num_format(num),
            ]
        };
        Formats {
            title: Format::new().set_bold().set_font_size(13),
            header: base(true)
                .set_text_wrap()
                .set_align(FormatAlign::Center)
                .set_align(FormatAlign::VerticalCenter)
                .set_background_color(0xE7E6E6),
            text: [base(false), base(true)],
            date: pair("dd.mm.yyyy"),
            datetime: pair("dd.mm.yyyy hh:mm"),
            integer: pair("0"),
            duration: pair("[h]:mm:ss"),
            numbers: HashMap::new(),
        }
    }

    fn number(&mut self, scale: u32, bold: usize) -> &Format {
        self.numbers.entry((scale, bold)).or_insert_with(|| {
            let num = if scale == 0 {
                "0".to_string()
            } else {
                format!("0.{}", "0".repeat(scale as usize))
            };
            let f = Format::new()
                .set_border(FormatBorder::Thin)
                .set_num_format(num);
            if bold == 1 { f.set_bold() } else { f }
        })
    }
}

fn excel_datetime(t: jiff::civil::DateTime) -> Option<ExcelDateTime> {
    ExcelDateTime::from_ymd(
        u16::try_from(t.year()).ok()?,
        u8::try_from(t.month()).ok()?,
        u8::try_from(t.day()).ok()?,
    )
    .ok()?
    .and_hms(
        u16::try_from(t.hour()).ok()?,
        u8::try_from(t.minute()).ok()?,
        f64::from(t.second()),
    )
    .ok()
}

fn excel_date(d: jiff::civil::Date) -> Option<ExcelDateTime> {
    ExcelDateTime::from_ymd(
        u16::try_from(d.year()).ok()?,
        u8::try_from(d.month()).ok()?,
        u8::try_from(d.day()).ok()?,
    )
    .ok()
}

fn write_cell(
    ws: &mut Worksheet,
    f: &mut Formats,
    row: u32,
    col: u16,
    cell: &Cell<'_>,
    bold: usize,
) -> Result<(), RenderError> {
    match cell {
        Cell::Empty => {
            ws.write_blank(row, col, &f.text[bold])?;
        }
        Cell::Text(t) => {
            ws.write_string_with_format(row, col, *t, &f.text[bold])?;
        }
        Cell::Date(d) => match excel_date(*d) {
            Some(x) => {
                ws.write_datetime_with_format(row, col, x, &f.date[bold])?;
            }
            None => {
                ws.write_string_with_format(row, col, ru_date(*d), &f.text[bold])?;
            }
        },
        Cell::DateTime(t) => match excel_datetime(*t) {
            Some(x) => {
                ws.write_datetime_with_format(row, col, x, &f.datetime[bold])?;
            }
            None => {
                ws.write_string_with_format(row, col, ru_datetime(*t), &f.text[bold])?;
            }
        },
        Cell::Dec(d) => match d.to_string().parse::<f64>() {
            Ok(x) => {
                let fmt = f.number(d.scale(), bold);
                ws.write_number_with_format(row, col, x, fmt)?;
            }
            Err(_) => {
                ws.write_string_with_format(row, col, d.to_string(), &f.text[bold])?;
            }
        },
        Cell::Int(i) => {
            // Hour counts: far below 2^53.
            #[allow(clippy::cast_precision_loss)]
            let x = *i as f64;
            ws.write_number_with_format(row, col, x, &f.integer[bold])?;
        }
        Cell::Duration(s) => {
            #[allow(clippy::cast_precision_loss)]
            let days = *s as f64 / 86_400.0;
            ws.write_number_with_format(row, col, days, &f.duration[bold])?;
        }
        Cell::Bool(b) => {
            ws.write_string_with_format(row, col, if *b { "да" } else { "нет" }, &f.text[bold])?;
        }
        Cell::Flags(flags) => {
            ws.write_string_with_format(row, col, flags_ru(flags), &f.text[bold])?;
        }
    }
    Ok(())
}

fn sheet(ws: &mut Worksheet, report: &Report, dev: &DeviceReport) -> Result<(), RenderError> {
    let mut f = Formats::new();
    let p = &report.period;
    ws.write_string_with_format(
        0,
        0,
        format!("Отчёт о потреблении газа: {}", dev.name),
        &f.title,
    )?;
    ws.write_string(
        1,
        0,
        format!(
            "Период: {} ({} – {}); строки: {}; газовые сутки с {:02}:00 местного времени ({})",
            p.label,
            ru_date(p.first_gas_day),
            ru_date(p.last_gas_day),
            rows_label_ru(report),
            dev.contract_hour,
            dev.time_zone
        ),
    )?;
    let generated = jiff::tz::TimeZone::UTC.to_datetime(report.generated_at);
    ws.write_string(2, 0, format!("Сформирован: {} UTC", ru_datetime(generated)))?;

    for (col, c) in COLUMNS.iter().enumerate() {
        let col = u16::try_from(col).unwrap_or(u16::MAX);
        ws.write_string_with_format(HEADER_ROW, col, c.ru, &f.header)?;
        ws.set_column_width(col, c.width)?;
    }
    ws.set_row_height(HEADER_ROW, 45)?;
    let mut row = HEADER_ROW + 1;
    for r in &dev.rows {
        for (col, cell) in row_cells(r).iter().enumerate() {
            write_cell(
                ws,
                &mut f,
                row,
                u16::try_from(col).unwrap_or(u16::MAX),
                cell,
                0,
            )?;
        }
        row += 1;
    }
    for (col, cell) in totals_cells(&dev.totals, "Итого").iter().enumerate() {
        write_cell(
            ws,
            &mut f,
            row,
            u16::try_from(col).unwrap_or(u16::MAX),
            cell,
            1,
        )?;
    }
    ws.set_freeze_panes(HEADER_ROW + 1, 1)?;
    ws.set_repeat_rows(HEADER_ROW, HEADER_ROW)?;
    ws.set_landscape();
    ws.set_paper_size(9);
    ws.set_print_fit_to_pages(1, 0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sheet_names_are_valid_and_unique() {
        let mut used = BTreeSet::new();
        assert_eq!(sheet_name("Котельная [1]/2", &mut used), "Котельная _1__2");
        assert_eq!(
            sheet_name("котельная [1]/2", &mut used),
            "котельная _1__2 (2)"
        );
        assert_eq!(sheet_name("", &mut used), "Устройство");
        let long = "Ж".repeat(40);
        let a = sheet_name(&long, &mut used);
        let b = sheet_name(&long, &mut used);
        assert_eq!(a.chars().count(), 31);
        assert_eq!(b.chars().count(), 31);
        assert!(b.ends_with(" (2)"));
    }
}
