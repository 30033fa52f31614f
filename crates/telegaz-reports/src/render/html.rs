//! A self-contained printable HTML page.

use std::fmt::Write as _;

use super::{
    COLUMNS, Cell, dec_comma, flags_ru, hms, row_cells, rows_label_ru, ru_date, ru_datetime,
    totals_cells,
};
use crate::{Flag, Report};

const STYLE: &str = r#"
body { font-family: "PT Sans", "Segoe UI", Arial, sans-serif; font-size: 10pt; margin: 1.5em; color: #000; }
h1 { font-size: 14pt; margin: 0 0 .3em; }
h2 { font-size: 12pt; margin: 1.2em 0 .2em; }
p.meta { margin: .1em 0; color: #333; }
table { border-collapse: collapse; width: 100%; margin-top: .4em; }
th, td { border: 1px solid #999; padding: 2px 4px; vertical-align: top; }
th { background: #e7e6e6; font-weight: bold; text-align: center; font-size: 8.5pt; }
td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
td.dt { white-space: nowrap; }
td.flags { font-size: 8.5pt; min-width: 14em; }
tr.total td { font-weight: bold; background: #f3f3f3; }
tr.flagged td.flags { color: #a00; }
.legend { font-size: 8.5pt; color: #333; margin-top: 1.5em; }
.legend dt { font-weight: bold; }
@media print {
  @page { size: A4 landscape; margin: 10mm; }
  body { margin: 0; font-size: 8pt; }
  th, td { font-size: 7.5pt; padding: 1px 3px; }
  thead { display: table-header-group; }
  tr { break-inside: avoid; page-break-inside: avoid; }
  section.device + section.device { break-before: page; page-break-before: always; }
  th, tr.total td { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
}
"#;

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn td(out: &mut String, c: &Cell<'_>) {
    let (class, text) = match c {
        Cell::Empty => ("", String::new()),
        Cell::Text(t) => ("", esc(t)),
        Cell::Date(d) => ("dt", ru_date(*d)),
        Cell::DateTime(t) => ("dt", ru_datetime(*t)),
        Cell::Dec(d) => ("num", dec_comma(*d)),
        Cell::Int(i) => ("num", i.to_string()),
        Cell::Duration(s) => ("num", hms(*s)),
        Cell::Bool(b) => ("", if *b { "да" } else { "нет" }.to_string()),
        Cell::Flags(f) => ("flags", esc(&flags_ru(f))),
    };
    if class.is_empty() {
        let _ = write!(out, "<td>{text}</td>");
    } else {
        let _ = write!(out, "<td class=\"{class}\">{text}</td>");
    }
}

fn tr(out: &mut String, class: &str, cells: &[Cell<'_>], flagged: bool) {
    let mut classes: Vec<&str> = Vec::new();
    if !class.is_empty() {
        classes.push(class);
    }
    if flagged {
        classes.push("flagged");
    }
    if classes.is_empty() {
        out.push_str("<tr>");
    } else {
        let _ = write!(out, "<tr class=\"{}\">", classes.join(" "));
    }
    for c in cells {
        td(out, c);
    }
    out.push_str("</tr>\n");
}

const ALL_FLAGS: [Flag; 10] = [
    Flag::CrcError,
    Flag::CounterDecreased,
    Flag::DailyMismatch,
    Flag::MissingHours,
    Flag::ConflictingReadings,
    Flag::GapVolume,
    Flag::AlarmNotCleared,
    Flag::AlarmStartUnknown,
    Flag::NoData,
    Flag::ImplausibleValue,
];

fn flag_help(f: Flag) -> &'static str {
    match f {
        Flag::CrcError => {
            "в период попали записи архива или журнала с ошибкой контрольной суммы; их значения не использованы"
        }
        Flag::CounterDecreased => {
            "показания счётчика уменьшились (сброс, замена, переполнение); за этот час объём не считается"
        }
        Flag::DailyMismatch => {
            "объём за сутки по часовому архиву не равен объёму по суточным записям прибора"
        }
        Flag::MissingHours => "за часть прошедших часов нет данных",
        Flag::ConflictingReadings => {
            "на одно время есть разные записи; использована первая исправная"
        }
        Flag::GapVolume => {
            "объём за несколько часов без данных: разность показаний счётчика до и после пропуска"
        }
        Flag::AlarmNotCleared => {
            "нештатная ситуация началась и в данных не снята; учтена до момента формирования отчёта"
        }
        Flag::AlarmStartUnknown => {
            "снятие нештатной ситуации без её начала в данных; время не учтено"
        }
        Flag::NoData => "за период нет ни одной записи прибора",
        Flag::ImplausibleValue => "значения слишком велики для счётчика и не использованы",
    }
}

/// The report as one HTML page: no scripts, no external resources, Russian
/// headers, a stylesheet for screen and print (A4 landscape, headers repeated
/// on each page, each device from a new page), a legend of the flags and of the
/// abnormal-state rule.
pub fn html(report: &Report) -> String {
    let p = &report.period;
    let mut out = String::new();
    let title = format!("Отчёт о потреблении газа — {}", p.label);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"ru\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        esc(&title),
        esc(&title)
    );
    let generated = jiff::tz::TimeZone::UTC.to_datetime(report.generated_at);
    let _ = writeln!(
        out,
        "<p class=\"meta\">Газовые сутки с {} по {} ({}); строки: {}. Сформирован {} UTC.</p>",
        ru_date(p.first_gas_day),
        ru_date(p.last_gas_day),
        p.gas_days,
        rows_label_ru(report),
        ru_datetime(generated)
    );
    for dev in &report.devices {
        let _ = writeln!(
            out,
            "<section class=\"device\">\n<h2>{}</h2>\n<p class=\"meta\">Газовые сутки начинаются в {:02}:00 местного времени прибора ({}). Время в таблице — местное время прибора.</p>",
            esc(&dev.name),
            dev.contract_hour,
            esc(&dev.time_zone)
        );
        out.push_str("<table>\n<thead><tr>");
        for c in &COLUMNS {
            let _ = write!(out, "<th>{}</th>", esc(c.ru));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for r in &dev.rows {
            tr(&mut out, "", &row_cells(r), !r.values.flags.is_empty());
        }
        tr(
            &mut out,
            "total",
            &totals_cells(&dev.totals, "Итого"),
            !dev.totals.values.flags.is_empty(),
        );
        out.push_str("</tbody>\n</table>\n</section>\n");
    }
    out.push_str("<dl class=\"legend\">\n");
    out.push_str("<dt>Время НС</dt><dd>Время в нештатной ситуации (правило выведено из описаний приборов, не из спецификации): часы, в конце которых слово состояния в часовом архиве не равно нулю, и интервалы между событиями журнала 0x2xxx (начало) и 0x0xxx (окончание) с теми же младшими 12 битами.</dd>\n");
    out.push_str("<dt>Данные полные</dt><dd>Объём — разность показаний счётчика на начало и конец; иначе — сумма известных часов.</dd>\n");
    out.push_str("<dt>Окончательные</dt><dd>Газовые сутки закончились (наступил контрактный час следующих суток).</dd>\n");
    for f in ALL_FLAGS {
        let _ = writeln!(
            out,
            "<dt>{}</dt><dd>{}</dd>",
            esc(f.russian()),
            esc(flag_help(f))
        );
    }
    out.push_str("</dl>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
