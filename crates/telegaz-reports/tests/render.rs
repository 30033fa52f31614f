//! Renderers: CSV (byte for byte), XLSX read back, JSON, HTML.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Cursor;
use std::str::FromStr;

use calamine::{Data, Reader, Xlsx, open_workbook_from_rs};
use encoding_rs::WINDOWS_1251;
use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, EventRecord, Quantities};
use telegaz_reports::{DeviceData, Period, Report, Rows, build, render};

const NAME: &str = "ГРП \"Северная\"; ввод 1";

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

/// Gas day 14.01.2026 complete (25 readings, 1,25 m³ an hour), the 15th with
/// only its first reading; an alarm 12:00:00–12:30:15 on the 14th.
fn device(name: &str) -> DeviceData {
    let start = date(2026, 1, 14).at(10, 0, 0, 0);
    let records = (0..=24i64)
        .map(|i| ArchiveRecord {
            kind: ArchiveKind::Interval,
            record_no: Some(1000 + i as u64),
            local_time: start + SignedDuration::from_hours(i),
            utc_offset_seconds: None,
            quantities: Quantities {
                vb: Some(dec("100.0000") + Decimal::new(12500 * i, 4)),
                vm: Some(dec("90.000") + Decimal::new(1000 * i, 3)),
                p_kpa: Some(dec("104.10")),
                t_c: Some(dec("-1.50")),
                ..Quantities::default()
            },
            status: vec!["0".into()],
            event_code: Some(0x8104),
            check: Check::Ok,
            line: i as u32 + 1,
        })
        .collect();
    let ev = |t: DateTime, code| EventRecord {
        record_no: None,
        local_time: t,
        utc_offset_seconds: None,
        code,
        check: Check::Ok,
        line: 0,
    };
    DeviceData {
        name: name.into(),
        time_zone: TimeZone::get("Europe/Moscow").unwrap(),
        contract_hour: 10,
        records,
        events: vec![
            ev(date(2026, 1, 14).at(12, 0, 0, 0), 0x2007),
            ev(date(2026, 1, 14).at(12, 30, 15, 0), 0x0007),
        ],
    }
}

fn now() -> Timestamp {
    "2026-01-20T08:00:00Z".parse().unwrap()
}

fn report(devices: &[DeviceData]) -> Report {
    let period: Period = "range:2026-01-14..2026-01-15".parse().unwrap();
    build(devices, &period, Rows::Daily, now()).unwrap()
}

#[test]
fn csv_1251_byte_for_byte() {
    let bytes = render::csv_1251(&report(&[device(NAME)]));
    let expected = concat!(
        "Устройство;Газовые сутки;Начало;Окончание;Vст, м3;Vраб, м3;P ср., кПа;T ср., °C;",
        "Счётчик Vст на начало, м3;Счётчик Vст на конец, м3;Счётчик Vраб на начало, м3;Счётчик Vраб на конец, м3;",
        "Часов в периоде;Часов с данными;Часов без данных;Время НС, ч:мм:сс;Данные полные;Окончательные;",
        "Vст по суточной записи прибора, м3;Признаки\r\n",
        "\"ГРП \"\"Северная\"\"; ввод 1\";14.01.2026;14.01.2026 10:00;15.01.2026 10:00;30,0000;24,000;104,10;-1,50;",
        "100,0000;130,0000;90,000;114,000;24;24;0;0:30:15;да;да;;\r\n",
        "\"ГРП \"\"Северная\"\"; ввод 1\";15.01.2026;15.01.2026 10:00;16.01.2026 10:00;;;;;",
        "130,0000;;114,000;;24;0;24;0:00:00;нет;да;;нет данных за часть часов\r\n",
        "\"ГРП \"\"Северная\"\"; ввод 1\";Итого;14.01.2026 10:00;16.01.2026 10:00;30,0000;24,000;104,10;-1,50;",
        "100,0000;;90,000;;48;24;24;0:30:15;нет;да;;нет данных за часть часов\r\n",
    );
    let (decoded, had_errors) = WINDOWS_1251.decode_without_bom_handling(&bytes);
    assert!(!had_errors);
    assert_eq!(decoded, expected);
    // Byte for byte: Windows-1251 (not UTF-8), CRLF only.
    let (want, _, unmappable) = WINDOWS_1251.encode(expected);
    assert!(!unmappable);
    assert_eq!(bytes, want.into_owned());
    assert!(std::str::from_utf8(&bytes).is_err(), "not UTF-8");
    assert_eq!(
        &bytes[..3],
        &[0xD3, 0xF1, 0xF2],
        "«Уст» in Windows-1251, no BOM"
    );
    assert_eq!(
        bytes.windows(2).filter(|w| w == b"\r\n").count(),
        bytes.iter().filter(|b| **b == b'\n').count()
    );
}

#[test]
fn csv_utf8_for_programs() {
    let text = String::from_utf8(render::csv_utf8(&report(&[device(NAME)]))).unwrap();
    let expected = concat!(
        "device,gas_day,start_local,end_local,vb_m3,vm_m3,p_mean_kpa,t_mean_c,vb_start_m3,vb_end_m3,",
        "vm_start_m3,vm_end_m3,expected_hours,hours_with_data,missing_hours,abnormal_s,complete,final,device_vb_m3,flags\r\n",
        "\"ГРП \"\"Северная\"\"; ввод 1\",2026-01-14,2026-01-14T10:00:00,2026-01-15T10:00:00,30.0000,24.000,104.10,-1.50,",
        "100.0000,130.0000,90.000,114.000,24,24,0,1815,true,true,,\r\n",
        "\"ГРП \"\"Северная\"\"; ввод 1\",2026-01-15,2026-01-15T10:00:00,2026-01-16T10:00:00,,,,,",
        "130.0000,,114.000,,24,0,24,0,false,true,,missing_hours\r\n",
        "\"ГРП \"\"Северная\"\"; ввод 1\",total,2026-01-14T10:00:00,2026-01-16T10:00:00,30.0000,24.000,104.10,-1.50,",
        "100.0000,,90.000,,48,24,24,1815,false,true,,missing_hours\r\n",
    );
    assert_eq!(text, expected);
}

/// Days since Excel's epoch (1899-12-30) plus the fraction of the day.
fn excel_serial(t: DateTime) -> f64 {
    let days = (t.date() - date(1899, 12, 30)).get_days() as f64;
    let secs = t
        .time()
        .duration_since(jiff::civil::time(0, 0, 0, 0))
        .as_secs_f64();
    days + secs / 86_400.0
}

#[test]
fn xlsx_reads_back() {
    let devices = [device(NAME), device("Котельная/2")];
    let bytes = render::xlsx(&report(&devices)).unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    assert_eq!(
        wb.sheet_names(),
        vec![
            "ГРП \"Северная\"; ввод 1".to_string(),
            "Котельная_2".to_string()
        ]
    );
    for sheet in wb.sheet_names() {
        let range = wb.worksheet_range(&sheet).unwrap();
        let cell = |r: u32, c: u32| range.get_value((r, c)).cloned().unwrap_or(Data::Empty);
        // Title lines.
        match cell(0, 0) {
            Data::String(s) => assert!(s.starts_with("Отчёт о потреблении газа: "), "{s}"),
            other => panic!("title: {other:?}"),
        }
        match cell(1, 0) {
            Data::String(s) => {
                assert!(s.contains("14.01.2026 – 15.01.2026"), "{s}");
                assert!(s.contains("Europe/Moscow") && s.contains("10:00"), "{s}");
            }
            other => panic!("period: {other:?}"),
        }
        // Headers with units, row 5.
        let headers: Vec<String> = (0..19)
            .map(|c| match cell(4, c) {
                Data::String(s) => s,
                other => panic!("header {c}: {other:?}"),
            })
            .collect();
        assert_eq!(headers[0], "Газовые сутки");
        assert_eq!(headers[3], "Vст, м³");
        assert_eq!(headers[4], "Vраб, м³");
        assert_eq!(headers[5], "P ср., кПа");
        assert_eq!(headers[6], "T ср., °C");
        assert_eq!(headers[7], "Счётчик Vст на начало, м³");
        assert_eq!(headers[14], "Время НС, ч:мм:сс");

        // The first gas day: dates are date cells, figures are numbers.
        let day = cell(5, 0);
        let Data::DateTime(x) = &day else {
            panic!("gas day: {day:?}")
        };
        assert!(x.is_datetime());
        assert_eq!(x.as_f64(), excel_serial(date(2026, 1, 14).at(0, 0, 0, 0)));
        let Data::DateTime(x) = cell(5, 2) else {
            panic!("end")
        };
        assert!((x.as_f64() - excel_serial(date(2026, 1, 15).at(10, 0, 0, 0))).abs() < 1e-9);
        assert_eq!(cell(5, 3), Data::Float(30.0));
        assert_eq!(cell(5, 4), Data::Float(24.0));
        assert_eq!(cell(5, 5), Data::Float(104.1));
        assert_eq!(cell(5, 6), Data::Float(-1.5));
        assert_eq!(cell(5, 7), Data::Float(100.0));
        assert_eq!(cell(5, 8), Data::Float(130.0));
        assert_eq!(cell(5, 11), Data::Float(24.0));
        assert_eq!(cell(5, 12), Data::Float(24.0));
        assert_eq!(cell(5, 13), Data::Float(0.0));
        let Data::DateTime(x) = cell(5, 14) else {
            panic!("abnormal time")
        };
        assert!(x.is_duration());
        assert!((x.as_f64() * 86_400.0 - 1815.0).abs() < 1e-6);
        assert_eq!(cell(5, 15), Data::String("да".into()));
        // The second gas day: no volume (blank), 24 missing hours.
        assert_eq!(cell(6, 3), Data::Empty);
        assert_eq!(cell(6, 7), Data::Float(130.0));
        assert_eq!(cell(6, 13), Data::Float(24.0));
        assert_eq!(
            cell(6, 18),
            Data::String("нет данных за часть часов".into())
        );
        // The totals row.
        assert_eq!(cell(7, 0), Data::String("Итого".into()));
        assert_eq!(cell(7, 3), Data::Float(30.0));
        assert_eq!(cell(7, 4), Data::Float(24.0));
        assert_eq!(cell(7, 7), Data::Float(100.0));
        assert_eq!(cell(7, 8), Data::Empty);
        assert_eq!(cell(7, 11), Data::Float(48.0));
        assert_eq!(cell(7, 12), Data::Float(24.0));
        assert_eq!(cell(7, 13), Data::Float(24.0));
        assert_eq!(range.height(), 8);
    }
}

#[test]
fn xlsx_hourly_numbers_are_exact_to_the_digit() {
    let period: Period = "day:2026-01-14".parse().unwrap();
    let r = build(&[device("x")], &period, Rows::Hourly, now()).unwrap();
    let bytes = render::xlsx(&r).unwrap();
    let mut wb: Xlsx<_> = open_workbook_from_rs(Cursor::new(bytes)).unwrap();
    let range = wb.worksheet_range("x").unwrap();
    assert_eq!(range.height(), 5 + 24 + 1);
    for row in 5..29u32 {
        assert_eq!(range.get_value((row, 3)), Some(&Data::Float(1.25)));
    }
    assert_eq!(range.get_value((29, 3)), Some(&Data::Float(30.0)));
}

#[test]
fn json_keeps_exact_decimals() {
    let r = report(&[device(NAME)]);
    let v: serde_json::Value = serde_json::from_slice(&render::json(&r)).unwrap();
    assert_eq!(v["rows"], "daily");
    assert_eq!(v["period"]["period"], "range:2026-01-14..2026-01-15");
    assert_eq!(v["generated_at"], "2026-01-20T08:00:00Z");
    let dev = &v["devices"][0];
    assert_eq!(dev["name"], NAME);
    assert_eq!(dev["rows"][0]["vb_m3"], "30.0000");
    assert_eq!(dev["rows"][0]["final"], true);
    assert_eq!(dev["rows"][0]["abnormal_seconds"], 1815);
    assert_eq!(dev["rows"][1]["vb_m3"], serde_json::Value::Null);
    assert_eq!(dev["rows"][1]["flags"][0], "missing_hours");
    assert_eq!(dev["totals"]["vb_m3"], "30.0000");
    assert_eq!(dev["totals"]["gas_days"], 2);
}

#[test]
fn html_is_a_printable_self_contained_page() {
    let page = render::html(&report(&[device(NAME), device("<b>x</b>")]));
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.contains("<html lang=\"ru\">"));
    assert!(page.contains("@media print"));
    assert!(page.contains("@page { size: A4 landscape"));
    assert!(!page.to_lowercase().contains("<script"));
    assert!(!page.contains("src="));
    assert!(!page.contains("href="));
    assert!(!page.contains("<link"));
    for h in [
        "Газовые сутки",
        "Vст, м³",
        "P ср., кПа",
        "T ср., °C",
        "Время НС, ч:мм:сс",
        "Итого",
    ] {
        assert!(page.contains(h), "{h}");
    }
    assert!(page.contains("ГРП &quot;Северная&quot;; ввод 1"));
    assert!(page.contains("&lt;b&gt;x&lt;/b&gt;"));
    assert!(!page.contains("<b>x"));
    assert!(page.contains("<td class=\"num\">30,0000</td>"));
    assert!(page.contains("<td class=\"num\">0:30:15</td>"));
    assert!(page.contains("<td class=\"dt\">14.01.2026 10:00</td>"));
}
