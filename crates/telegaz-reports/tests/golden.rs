//! Golden tests: the shared LIS-200 samples against `expected.json`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::{Date, DateTime, date};
use jiff::tz::TimeZone;
use telegaz_domain::{Decimal, gasday};
use telegaz_reports::{DeviceData, Flag, Period, Report, Rows, build, completeness};

const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/samples");

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{SAMPLES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The JSON number as written, as a decimal (never through f64 arithmetic).
fn json_decimal(v: &serde_json::Value) -> Decimal {
    match v {
        serde_json::Value::Number(n) => Decimal::from_str(&n.to_string()).unwrap(),
        other => panic!("not a number: {other}"),
    }
}

fn expected(file: &str) -> serde_json::Value {
    let all: serde_json::Value = serde_json::from_slice(&sample("expected.json")).unwrap();
    all.as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == file)
        .unwrap_or_else(|| panic!("{file} not in expected.json"))
        .clone()
}

fn device(file: &str, with_events: bool) -> DeviceData {
    let parsed = telegaz_lis200::parse(&sample(&format!("lis200/{file}"))).unwrap();
    let events = if with_events {
        telegaz_lis200::parse(&sample("lis200/tc220_events.txt"))
            .unwrap()
            .events
    } else {
        Vec::new()
    };
    DeviceData {
        name: file.to_string(),
        time_zone: TimeZone::get("Europe/Moscow").unwrap(),
        contract_hour: 10,
        records: parsed.records,
        events,
    }
}

fn now() -> Timestamp {
    "2026-04-01T00:00:00Z".parse().unwrap()
}

fn d(s: &str) -> Date {
    Date::from_str(s).unwrap()
}

fn dt(s: &str) -> DateTime {
    DateTime::from_str(s).unwrap()
}

fn sum(v: impl Iterator<Item = Option<Decimal>>) -> Option<Decimal> {
    v.flatten()
        .fold(None, |a, x| Some(a.unwrap_or(Decimal::ZERO) + x))
}

/// Daily figures match `expected.json` and `gasday::daily`; the hourly
/// report's rows add up exactly to each daily row; hourly volumes match.
fn check_file(file: &str, with_events: bool) -> (Report, Report) {
    let exp = expected(file);
    assert_eq!(exp["contract_hour"], 10);
    let want_days = exp["daily"].as_array().unwrap();
    let first = d(want_days[0]["gas_day"].as_str().unwrap());
    let last = d(want_days[want_days.len() - 1]["gas_day"].as_str().unwrap());
    let dev = device(file, with_events);
    let period = Period::Range {
        from: first,
        to: last,
    };
    let daily = build(std::slice::from_ref(&dev), &period, Rows::Daily, now()).unwrap();
    let hourly = build(std::slice::from_ref(&dev), &period, Rows::Hourly, now()).unwrap();
    let days = &daily.devices[0].rows;
    assert_eq!(days.len(), want_days.len(), "{file}: gas days");
    let reference = gasday::daily(
        &dev.records,
        &dev.time_zone,
        10,
        dev.time_zone.to_datetime(now()),
    );
    for (row, want) in days.iter().zip(want_days) {
        let v = &row.values;
        assert_eq!(row.gas_day, d(want["gas_day"].as_str().unwrap()), "{file}");
        assert_eq!(
            v.vb_m3,
            Some(json_decimal(&want["vb_m3"])),
            "{file} {}",
            row.gas_day
        );
        assert_eq!(
            i64::from(v.hours_with_data),
            want["hours"].as_i64().unwrap(),
            "{file} {}",
            row.gas_day
        );
        assert_eq!(
            v.complete,
            want["complete"].as_bool().unwrap(),
            "{file} {}",
            row.gas_day
        );
        assert_eq!(v.expected_hours, 24);
        assert_eq!(v.missing_hours, 24 - v.hours_with_data);
        assert_eq!(v.flags.contains(&Flag::MissingHours), v.missing_hours > 0);
        assert!(v.is_final);
        // The same figures as the domain's own gas-day arithmetic.
        let g = reference.iter().find(|g| g.gas_day == row.gas_day).unwrap();
        assert_eq!(v.vb_m3, Some(g.vb_m3));
        assert_eq!(v.vm_m3, Some(g.vm_m3));
        assert_eq!(v.complete, g.complete);
        assert_eq!(v.hours_with_data, g.hours);
        assert_eq!(row.start_local, row.gas_day.at(10, 0, 0, 0));
        assert_eq!(
            row.end_local,
            row.gas_day.tomorrow().unwrap().at(10, 0, 0, 0)
        );

        // The hourly rows of this gas day add up exactly to it.
        let hours: Vec<_> = hourly.devices[0]
            .rows
            .iter()
            .filter(|h| h.gas_day == row.gas_day)
            .collect();
        assert_eq!(hours.len(), 24, "{file} {}", row.gas_day);
        assert_eq!(sum(hours.iter().map(|h| h.values.vb_m3)), v.vb_m3);
        assert_eq!(sum(hours.iter().map(|h| h.values.vm_m3)), v.vm_m3);
        let total = |f: fn(&telegaz_reports::Values) -> u32| {
            hours.iter().map(|h| f(&h.values)).sum::<u32>()
        };
        assert_eq!(total(|v| v.hours_with_data), v.hours_with_data);
        assert_eq!(total(|v| v.missing_hours), v.missing_hours);
        assert_eq!(total(|v| v.expected_hours), v.expected_hours);
        assert_eq!(
            hours.iter().map(|h| h.values.abnormal_seconds).sum::<i64>(),
            v.abnormal_seconds
        );
        assert_eq!(hours.first().unwrap().start_local, row.start_local);
        assert_eq!(hours.last().unwrap().end_local, row.end_local);
        for w in hours.windows(2) {
            assert_eq!(w[0].end_local, w[1].start_local, "rows partition the day");
        }
        // Counters at the day's ends are the hours' first start / last end.
        assert_eq!(v.vb_start_m3, hours.first().unwrap().values.vb_start_m3);
        assert_eq!(v.vb_end_m3, hours.last().unwrap().values.vb_end_m3);
    }

    // Every expected hour is an hourly row with that volume.
    for want in exp["hourly"].as_array().unwrap() {
        let t = dt(want["hour_end_local"].as_str().unwrap());
        let row = hourly.devices[0]
            .rows
            .iter()
            .find(|r| r.end_local == t)
            .unwrap_or_else(|| panic!("{file}: no row for {t}"));
        assert_eq!(
            row.values.vb_m3,
            Some(json_decimal(&want["vb_m3"])),
            "{file} {t}"
        );
        assert_eq!(
            row.values.vm_m3,
            Some(json_decimal(&want["vm_m3"])),
            "{file} {t}"
        );
        assert_eq!(row.values.hours_with_data, 1);
        assert_eq!(row.values.missing_hours, 0);
        assert!(row.values.complete);
        assert_eq!(
            row.values.vb_end_m3.unwrap() - row.values.vb_start_m3.unwrap(),
            row.values.vb_m3.unwrap()
        );
    }

    // Totals: the sum of the days; both reports agree.
    let t = &daily.devices[0].totals;
    assert_eq!(t.values.vb_m3, sum(days.iter().map(|r| r.values.vb_m3)));
    assert_eq!(t.values.vm_m3, sum(days.iter().map(|r| r.values.vm_m3)));
    assert_eq!(t, &hourly.devices[0].totals);
    assert_eq!(t.gas_days, want_days.len() as u32);
    (daily, hourly)
}

#[test]
fn tc220_interval_3days() {
    let (daily, hourly) = check_file("tc220_interval_3days.txt", false);
    let days = &daily.devices[0].rows;
    // 2026-01-15: complete, counters from the archive.
    let v = &days[1].values;
    assert_eq!(v.vb_start_m3, Some(Decimal::from_str("5543.5365").unwrap()));
    assert_eq!(v.vm_start_m3, Some(Decimal::from_str("5516.2115").unwrap()));
    assert_eq!(
        v.vb_end_m3.unwrap() - v.vb_start_m3.unwrap(),
        v.vb_m3.unwrap()
    );
    // The device's daily records (0x8103) agree with the hours.
    assert_eq!(v.device_vb_m3, v.vb_m3);
    assert!(v.flags.is_empty(), "{:?}", v.flags);
    // 2026-01-14: the hour ending 11:00 has no predecessor.
    let first = &days[0].values;
    assert_eq!(first.flags, vec![Flag::MissingHours]);
    assert_eq!(first.vb_start_m3, None);
    let h = &hourly.devices[0].rows[0];
    assert_eq!(h.end_local, dt("2026-01-14T11:00"));
    assert_eq!(h.values.vb_m3, None);
    assert_eq!(h.values.missing_hours, 1);
    // Means of a single reading are that reading.
    let h = &hourly.devices[0].rows[1];
    assert_eq!(h.end_local, dt("2026-01-14T12:00"));
    assert_eq!(
        h.values.p_mean_kpa,
        Some(Decimal::from_str("104.2596").unwrap())
    );
    assert_eq!(h.values.t_mean_c, Some(Decimal::from_str("12.24").unwrap()));
    // No status word is set and there are no events: no abnormal time.
    assert_eq!(daily.devices[0].totals.values.abnormal_seconds, 0);
    // The period's counters.
    let t = &daily.devices[0].totals;
    assert_eq!(t.start_local, dt("2026-01-14T10:00"));
    assert_eq!(t.end_local, dt("2026-01-17T10:00"));
    assert_eq!(t.values.vb_start_m3, None);
    assert_eq!(t.values.vb_end_m3, days[2].values.vb_end_m3);
    assert_eq!(t.complete_days, 2);
    assert!(!t.values.complete);
    assert_eq!(t.values.hours_with_data, 71);
    assert_eq!(t.values.missing_hours, 1);
}

#[test]
fn tc220_with_event_log() {
    let (daily, hourly) = check_file("tc220_interval_3days.txt", true);
    // 0x2007 13:05:12 → 0x0007 13:45:00 and 0x2106 02:00:31 → 0x0106 02:10:02,
    // both in gas day 2026-01-14; 0x8004 (clock set) is not an abnormal state.
    let days = &daily.devices[0].rows;
    assert_eq!(
        days[0].values.abnormal_seconds,
        (39 * 60 + 48) + (9 * 60 + 31)
    );
    assert_eq!(days[1].values.abnormal_seconds, 0);
    let at = |t: &str| {
        hourly.devices[0]
            .rows
            .iter()
            .find(|r| r.end_local == dt(t))
            .unwrap()
            .values
            .abnormal_seconds
    };
    assert_eq!(at("2026-01-14T14:00"), 39 * 60 + 48);
    assert_eq!(at("2026-01-15T03:00"), 9 * 60 + 31);
    assert_eq!(at("2026-01-15T04:00"), 0);
}

#[test]
fn ek270_interval_with_header() {
    check_file("ek270_interval_with_header.txt", false);
}

#[test]
fn tc220_raw_serial_capture() {
    check_file("tc220_raw_serial_capture.bin", false);
}

#[test]
fn completeness_of_the_sample() {
    let dev = device("tc220_interval_3days.txt", false);
    let period = Period::Range {
        from: date(2026, 1, 13),
        to: date(2026, 1, 17),
    };
    // Now: 2026-01-17 12:30 Moscow time.
    let now: Timestamp = "2026-01-17T09:30:00Z".parse().unwrap();
    let c = completeness(&[dev], &period, now).unwrap();
    assert_eq!(c.len(), 5);
    // The 13th: nothing at all; every hour and every reading missing (the
    // archive starts at 14th 11:00, so 14th 10:00 is missing too).
    assert_eq!(c[0].present_hours, 0);
    assert_eq!(c[0].missing_hour_ends.len(), 24);
    assert_eq!(c[0].missing_readings.len(), 24);
    assert!(c[0].is_final);
    // The 14th: the hour ending 11:00 has no volume (no reading at 10:00),
    // but its own reading exists; the one at 10:00 is the 13th's last.
    assert_eq!(c[1].present_hours, 23);
    assert_eq!(c[1].missing_hour_ends, vec![dt("2026-01-14T11:00")]);
    assert!(c[1].missing_readings.is_empty());
    assert!(!c[1].complete);
    assert!(c[2].complete && c[3].complete);
    assert!(c[2].missing_hour_ends.is_empty());
    // The 17th has begun: 10:00 → 12:30 local; the hours ending 11:00 and
    // 12:00 have passed without data, the other 22 are pending.
    assert_eq!(
        c[4].missing_hour_ends,
        vec![dt("2026-01-17T11:00"), dt("2026-01-17T12:00")]
    );
    assert_eq!(c[4].pending_hours, 22);
    assert_eq!(c[4].expected_hours, 24);
    assert!(!c[4].is_final);
}
