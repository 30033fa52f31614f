//! Requests that cannot be answered say why.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use jiff::Timestamp;
use jiff::civil::date;
use jiff::tz::TimeZone;
use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, Quantities};
use telegaz_reports::{DeviceData, Flag, Period, ReportError, Rows, build, completeness};

fn device(name: &str) -> DeviceData {
    let records = (0..3)
        .map(|h| ArchiveRecord {
            kind: ArchiveKind::Interval,
            record_no: None,
            local_time: date(2026, 1, 14).at(11 + h, 0, 0, 0),
            utc_offset_seconds: None,
            quantities: Quantities {
                vb: Some(Decimal::from_str("100.5").unwrap() + Decimal::from(h)),
                ..Quantities::default()
            },
            status: vec![],
            event_code: None,
            check: Check::Ok,
            line: 0,
        })
        .collect();
    DeviceData {
        name: name.into(),
        time_zone: TimeZone::get("Europe/Moscow").unwrap(),
        contract_hour: 10,
        records,
        events: vec![],
    }
}

fn now() -> Timestamp {
    "2026-04-01T00:00:00Z".parse().unwrap()
}

#[test]
fn a_reversed_range() {
    let e = "range:2026-01-31..2026-01-01"
        .parse::<Period>()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "reversed range: 2026-01-31 is after 2026-01-01 (write range:2026-01-01..2026-01-31)"
    );
    let p = Period::Range {
        from: date(2026, 1, 31),
        to: date(2026, 1, 1),
    };
    let e = build(&[device("a")], &p, Rows::Daily, now()).unwrap_err();
    assert!(matches!(e, ReportError::ReversedRange { .. }), "{e}");
    assert!(completeness(&[device("a")], &p, now()).is_err());
}

#[test]
fn unknown_period_syntax() {
    for s in [
        "week:2026-01",
        "2026-01",
        "day:14.01.2026",
        "month:2026-1",
        "range:2026-01-01-2026-01-31",
    ] {
        let e = s.parse::<Period>().unwrap_err();
        assert!(matches!(e, ReportError::BadPeriod { .. }), "{s}: {e}");
        let text = e.to_string();
        assert!(
            text.starts_with(&format!("unknown period {s:?}: ")),
            "{text}"
        );
        assert!(
            text.ends_with(
                "expected day:YYYY-MM-DD, month:YYYY-MM or range:YYYY-MM-DD..YYYY-MM-DD"
            ),
            "{text}"
        );
    }
    assert_eq!(
        "week:2026-01".parse::<Period>().unwrap_err().to_string(),
        "unknown period \"week:2026-01\": unknown kind (day, month or range); expected day:YYYY-MM-DD, month:YYYY-MM or range:YYYY-MM-DD..YYYY-MM-DD"
    );
    assert!("hourly".parse::<Rows>().is_ok());
    assert!(
        "weekly"
            .parse::<Rows>()
            .unwrap_err()
            .contains("\"hourly\" or \"daily\"")
    );
}

#[test]
fn a_month_with_no_data() {
    let p: Period = "month:2026-03".parse().unwrap();
    let e = build(&[device("ГРП-1")], &p, Rows::Daily, now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no readings for device \"ГРП-1\" in month:2026-03 (gas days 2026-03-01..2026-03-31): nothing to report"
    );
    let e = build(&[device("a"), device("b")], &p, Rows::Hourly, now()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "no readings for devices \"a\", \"b\" in month:2026-03 (gas days 2026-03-01..2026-03-31): nothing to report"
    );
    // Completeness of such a month is an answer, not an error: all missing.
    let later: Timestamp = "2026-05-01T00:00:00Z".parse().unwrap();
    let c = completeness(&[device("a")], &p, later).unwrap();
    assert_eq!(c.len(), 31);
    assert!(
        c.iter()
            .all(|d| d.missing_hour_ends.len() == 24 && d.present_hours == 0)
    );
}

#[test]
fn one_device_without_data_among_others_is_flagged() {
    let mut quiet = device("b");
    quiet.records.clear();
    let p = Period::GasDay(date(2026, 1, 14));
    let r = build(&[device("a"), quiet], &p, Rows::Daily, now()).unwrap();
    assert!(!r.devices[0].totals.values.flags.contains(&Flag::NoData));
    assert!(r.devices[1].totals.values.flags.contains(&Flag::NoData));
    assert_eq!(r.devices[1].rows[0].values.vb_m3, None);
    assert_eq!(r.devices[1].rows[0].values.missing_hours, 24);
}

#[test]
fn other_bad_requests() {
    let p = Period::GasDay(date(2026, 1, 14));
    assert_eq!(
        build(&[], &p, Rows::Daily, now()).unwrap_err(),
        ReportError::NoDevices
    );
    assert_eq!(
        completeness(&[], &p, now()).unwrap_err(),
        ReportError::NoDevices
    );
    let mut bad = device("x");
    bad.contract_hour = 24;
    let e = build(&[bad], &p, Rows::Daily, now()).unwrap_err();
    assert_eq!(e.to_string(), "device \"x\": contract hour 24 is not 0..23");
    let e = build(
        &[device("x")],
        &Period::Month {
            year: 2026,
            month: 13,
        },
        Rows::Daily,
        now(),
    )
    .unwrap_err();
    assert!(matches!(e, ReportError::OutOfRange(_)), "{e}");
    let e = "range:2020-01-01..2026-01-01"
        .parse::<Period>()
        .unwrap_err();
    assert!(e.to_string().contains("at most 1097"), "{e}");
}
