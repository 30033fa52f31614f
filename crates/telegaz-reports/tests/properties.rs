//! build() never panics, and its figures hold together, on arbitrary records.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::civil::{DateTime, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, EventRecord, Quantities};
use telegaz_reports::{DeviceData, Period, Rows, build, completeness, render};

fn base() -> DateTime {
    // Around the DST change in Europe/Berlin (2026-03-29).
    date(2026, 3, 26).at(0, 0, 0, 0)
}

fn decimal() -> impl Strategy<Value = Option<Decimal>> {
    prop_oneof![
        1 => Just(None),
        8 => (0i64..10_000_000_000_000, 0u32..5).prop_map(|(m, s)| Some(Decimal::new(m, s))),
    ]
}

fn record() -> impl Strategy<Value = ArchiveRecord> {
    (
        0i64..(24 * 8),
        prop_oneof![6 => Just(0i8), 1 => 0i8..60],
        decimal(),
        decimal(),
        decimal(),
        prop_oneof![4 => Just(ArchiveKind::Interval), 1 => Just(ArchiveKind::Daily), 1 => Just(ArchiveKind::Monthly)],
        prop_oneof![6 => Just(Check::Ok), 1 => Just(Check::Failed("CRC Error".into())), 1 => Just(Check::Absent)],
        prop::collection::vec(prop_oneof![Just("0".to_string()), Just("0x0010".to_string()), Just("?".to_string()), Just(String::new())], 0..3),
        prop::option::of(-18_000i32..18_000),
    )
        .prop_map(|(h, m, vb, vm, p, kind, check, status, off)| ArchiveRecord {
            kind,
            record_no: None,
            local_time: base() + SignedDuration::from_hours(h) + SignedDuration::from_mins(i64::from(m)),
            utc_offset_seconds: off,
            quantities: Quantities {
                vb,
                vm,
                p_kpa: p,
                t_c: p,
                ..Quantities::default()
            },
            status,
            event_code: None,
            check,
            line: 0,
        })
}

fn event() -> impl Strategy<Value = EventRecord> {
    (
        0i64..(60 * 24 * 8),
        prop_oneof![
            Just(0x2007u16),
            Just(0x0007),
            Just(0x2106),
            Just(0x0106),
            Just(0x8004),
            any::<u16>()
        ],
        prop_oneof![4 => Just(Check::Ok), 1 => Just(Check::Failed("x".into()))],
    )
        .prop_map(|(m, code, check)| EventRecord {
            record_no: None,
            local_time: base() + SignedDuration::from_mins(m),
            utc_offset_seconds: None,
            code,
            check,
            line: 0,
        })
}

fn device() -> impl Strategy<Value = DeviceData> {
    (
        prop::collection::vec(record(), 0..120),
        prop::collection::vec(event(), 0..6),
        prop_oneof![
            Just("UTC"),
            Just("Europe/Berlin"),
            Just("Asia/Yekaterinburg")
        ],
        prop_oneof![30 => 0i8..24, 1 => Just(-1i8), 1 => Just(24i8)],
        // Monotone counters (the usual case) or not.
        any::<bool>(),
        // Hourly readings one after another (the usual case) or scattered.
        prop::option::of(0i64..48),
    )
        .prop_map(|(mut records, events, tz, ch, monotone, dense)| {
            if let Some(first) = dense {
                for (i, r) in records.iter_mut().enumerate() {
                    if r.local_time.minute() == 0 {
                        r.local_time = base() + SignedDuration::from_hours(first + i as i64);
                    }
                }
            }
            if monotone {
                records.sort_by_key(|r| r.local_time);
                let mut acc = Decimal::ZERO;
                for r in &mut records {
                    acc += r.quantities.vb.unwrap_or_default() % Decimal::from(1000);
                    r.quantities.vb = Some(acc);
                    r.quantities.vm = Some(acc);
                }
            }
            DeviceData {
                name: "dev".into(),
                time_zone: TimeZone::get(tz).unwrap(),
                contract_hour: ch,
                records,
                events,
            }
        })
}

fn period() -> impl Strategy<Value = Period> {
    prop_oneof![
        (0i64..10).prop_map(|d| Period::GasDay(date(2026, 3, 24) + jiff::Span::new().days(d))),
        Just(Period::Month {
            year: 2026,
            month: 3
        }),
        Just(Period::Month {
            year: 2026,
            month: 4
        }),
        (0i64..10, 0i64..6).prop_map(|(a, n)| {
            let from = date(2026, 3, 22) + jiff::Span::new().days(a);
            Period::Range {
                from,
                to: from + jiff::Span::new().days(n),
            }
        }),
    ]
}

fn sum(v: impl Iterator<Item = Option<Decimal>>) -> Option<Decimal> {
    v.flatten()
        .fold(None, |a, x| Some(a.unwrap_or(Decimal::ZERO) + x))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn build_never_panics_and_adds_up(
        devices in prop_oneof![1 => Just(Vec::new()), 12 => prop::collection::vec(device(), 1..3)],
        period in period(),
        now_h in 0i64..(24 * 12),
    ) {
        let now: Timestamp = Timestamp::from_second(1_774_224_000).unwrap() + SignedDuration::from_hours(now_h);
        let daily = build(&devices, &period, Rows::Daily, now);
        let hourly = build(&devices, &period, Rows::Hourly, now);
        let _ = completeness(&devices, &period, now);
        match (daily, hourly) {
            (Ok(daily), Ok(hourly)) => {
                for ((dd, hd), dev) in daily.devices.iter().zip(&hourly.devices).zip(&devices) {
                    let on_the_hour = dev.records.iter().all(|r| r.local_time.minute() == 0);
                    prop_assert_eq!(&dd.totals, &hd.totals);
                    prop_assert_eq!(dd.totals.values.vb_m3, sum(dd.rows.iter().map(|r| r.values.vb_m3)));
                    for day in &dd.rows {
                        let hs: Vec<_> = hd.rows.iter().filter(|r| r.gas_day == day.gas_day).collect();
                        prop_assert_eq!(sum(hs.iter().map(|r| r.values.vb_m3)), day.values.vb_m3);
                        prop_assert_eq!(sum(hs.iter().map(|r| r.values.vm_m3)), day.values.vm_m3);
                        prop_assert_eq!(hs.iter().map(|r| r.values.missing_hours).sum::<u32>(), day.values.missing_hours);
                        prop_assert_eq!(hs.iter().map(|r| r.values.hours_with_data).sum::<u32>(), day.values.hours_with_data);
                        prop_assert!(day.values.missing_hours <= day.values.expected_hours);
                        // Readings off the hour give hours off the clock grid:
                        // they have data, but do not fill a clock hour.
                        if on_the_hour {
                            prop_assert!(day.values.hours_with_data + day.values.missing_hours <= day.values.expected_hours);
                        }
                    }
                    for r in dd.rows.iter().chain(&hd.rows) {
                        prop_assert!(r.values.vb_m3.is_none_or(|v| v >= Decimal::ZERO));
                        prop_assert!(r.values.vm_m3.is_none_or(|v| v >= Decimal::ZERO));
                        prop_assert!(r.values.abnormal_seconds >= 0);
                    }
                }
                for r in [&daily, &hourly] {
                    let _ = render::csv_utf8(r);
                    let _ = render::csv_1251(r);
                    let _ = render::html(r);
                    let json: serde_json::Value = serde_json::from_slice(&render::json(r)).unwrap();
                    prop_assert!(json.is_object());
                }
            }
            (Err(a), Err(b)) => prop_assert_eq!(a, b),
            (a, b) => prop_assert!(false, "daily {:?} vs hourly {:?}", a.map(|_| ()), b.map(|_| ())),
        }
    }
}

#[test]
fn xlsx_renders_arbitrary_reports() {
    // Fewer cases: writing a workbook is slower.
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(20));
    runner
        .run(
            &(prop::collection::vec(device(), 1..3), period()),
            |(devices, period)| {
                let now: Timestamp = "2026-04-20T00:00:00Z".parse().unwrap();
                if let Ok(r) = build(&devices, &period, Rows::Hourly, now) {
                    prop_assert!(render::xlsx(&r).is_ok());
                }
                Ok(())
            },
        )
        .unwrap();
}
