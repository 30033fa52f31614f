//! Edge cases: DST, a counter that goes down across a gap, conflicting rows,
//! readings off the hour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, Quantities, gasday};
use telegaz_reports::{DeviceData, Flag, Period, Rows, build, completeness};

fn rec(t: DateTime, vb: &str) -> ArchiveRecord {
    ArchiveRecord {
        kind: ArchiveKind::Interval,
        record_no: None,
        local_time: t,
        utc_offset_seconds: None,
        quantities: Quantities {
            vb: Some(Decimal::from_str(vb).unwrap()),
            vm: Some(Decimal::from_str(vb).unwrap()),
            ..Quantities::default()
        },
        status: vec![],
        event_code: None,
        check: Check::Ok,
        line: 0,
    }
}

fn dev(tz: &str, records: Vec<ArchiveRecord>) -> DeviceData {
    DeviceData {
        name: "d".into(),
        time_zone: TimeZone::get(tz).unwrap(),
        contract_hour: 10,
        records,
        events: vec![],
    }
}

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

#[test]
fn a_short_gas_day_at_the_dst_change() {
    // Europe/Berlin, 2026-03-29 02:00 → 03:00: the gas day of the 28th has 23 hours.
    let tz = TimeZone::get("Europe/Berlin").unwrap();
    let start = tz.to_timestamp(date(2026, 3, 28).at(10, 0, 0, 0)).unwrap();
    let records: Vec<_> = (0..=23)
        .map(|i| {
            let t = tz.to_datetime(start + SignedDuration::from_hours(i));
            rec(t, &format!("{}.5", 100 + i * 2))
        })
        .collect();
    let d = dev("Europe/Berlin", records);
    let p = Period::GasDay(date(2026, 3, 28));
    let r = build(std::slice::from_ref(&d), &p, Rows::Daily, now()).unwrap();
    let v = &r.devices[0].rows[0].values;
    assert_eq!(v.expected_hours, 23);
    assert_eq!(v.hours_with_data, 23);
    assert_eq!(v.missing_hours, 0);
    assert!(v.complete);
    assert_eq!(v.vb_m3, Some(dec("46")));
    let h = build(std::slice::from_ref(&d), &p, Rows::Hourly, now()).unwrap();
    let rows = &h.devices[0].rows;
    assert_eq!(rows.len(), 23);
    assert!(rows.iter().all(|r| r.values.vb_m3 == Some(dec("2"))));
    assert!(rows.iter().all(|r| r.end_local.hour() != 2));
    let c = completeness(&[d], &p, now()).unwrap();
    assert_eq!(c[0].expected_hours, 23);
    assert!(c[0].missing_hour_ends.is_empty());
}

#[test]
fn a_counter_that_goes_down_across_a_gap_is_never_complete() {
    // 10:00 → 13:00 every hour, then nothing until 16:00, where the counter
    // (replaced meanwhile) is lower; the day still ends higher than it began.
    let day = date(2026, 1, 14);
    let mut records = vec![
        rec(day.at(10, 0, 0, 0), "100"),
        rec(day.at(11, 0, 0, 0), "110"),
        rec(day.at(12, 0, 0, 0), "120"),
        rec(day.at(13, 0, 0, 0), "130"),
        rec(day.at(16, 0, 0, 0), "5"),
    ];
    let mut v = 5;
    for h in 17..=34 {
        v += 10;
        let t = day.at(0, 0, 0, 0) + SignedDuration::from_hours(h);
        records.push(rec(t, &v.to_string()));
    }
    // 10:00 next day: 175 + 10 = 185 ≥ 100.
    let d = dev("Asia/Yekaterinburg", records);
    let p = Period::GasDay(day);
    let r = build(std::slice::from_ref(&d), &p, Rows::Daily, now()).unwrap();
    let v = &r.devices[0].rows[0].values;
    assert!(!v.complete);
    assert!(v.flags.contains(&Flag::CounterDecreased), "{:?}", v.flags);
    // The known hours: 3 before the gap, 18 after it.
    assert_eq!(v.hours_with_data, 21);
    assert_eq!(v.vb_m3, Some(dec("210")));
    // gasday agrees: not complete (the reset hides in the gap), the known hours' sum.
    let g = gasday::daily(&d.records, &d.time_zone, 10, d.time_zone.to_datetime(now()));
    assert!(!g[0].complete && g[0].vb_m3 == dec("210"), "{:?}", g[0]);
    let h = build(std::slice::from_ref(&d), &p, Rows::Hourly, now()).unwrap();
    let rows = &h.devices[0].rows;
    assert_eq!(rows.len(), 24);
    let at16 = rows
        .iter()
        .find(|r| r.end_local == day.at(16, 0, 0, 0))
        .unwrap();
    assert_eq!(at16.values.vb_m3, None);
    assert!(at16.values.flags.contains(&Flag::CounterDecreased));
}

#[test]
fn conflicting_readings_are_flagged() {
    let day = date(2026, 1, 14);
    let mut records: Vec<_> = (10..=20)
        .map(|h| rec(day.at(h, 0, 0, 0), &format!("{h}0")))
        .collect();
    records.push(rec(day.at(15, 0, 0, 0), "999"));
    let d = dev("UTC", records);
    let r = build(&[d], &Period::GasDay(day), Rows::Hourly, now()).unwrap();
    let at15 = r.devices[0]
        .rows
        .iter()
        .find(|r| r.end_local == day.at(15, 0, 0, 0))
        .unwrap();
    assert_eq!(at15.values.vb_m3, Some(dec("10")));
    assert!(at15.values.flags.contains(&Flag::ConflictingReadings));
}

#[test]
fn readings_off_the_hour_keep_their_volume() {
    // A clock a few minutes off: hours still exist (one hour apart), off the grid.
    let day = date(2026, 1, 14);
    let records: Vec<_> = (11..=14)
        .map(|h| rec(day.at(h, 4, 0, 0), &format!("{h}.5")))
        .collect();
    let d = dev("UTC", records);
    let daily = build(
        std::slice::from_ref(&d),
        &Period::GasDay(day),
        Rows::Daily,
        now(),
    )
    .unwrap();
    let hourly = build(&[d], &Period::GasDay(day), Rows::Hourly, now()).unwrap();
    assert_eq!(daily.devices[0].rows[0].values.vb_m3, Some(dec("3")));
    assert_eq!(daily.devices[0].rows[0].values.hours_with_data, 3);
    let sum: Decimal = hourly.devices[0]
        .rows
        .iter()
        .filter_map(|r| r.values.vb_m3)
        .sum();
    assert_eq!(sum, dec("3"));
    assert!(
        hourly.devices[0]
            .rows
            .iter()
            .any(|r| r.end_local == day.at(12, 4, 0, 0))
    );
}
