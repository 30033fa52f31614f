//! A generated month: a device in Asia/Yekaterinburg with contract hour 6,
//! with a gap, a counter reset, two CRC-error rows, a device daily record that
//! disagrees, an alarm in the event log and a status word. Every figure is
//! checked against the generator's ground truth.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::str::FromStr;

use jiff::civil::{Date, DateTime, date};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use rust_decimal::RoundingStrategy;
use telegaz_domain::{ArchiveKind, ArchiveRecord, Check, Decimal, EventRecord, Quantities};
use telegaz_reports::{DeviceData, Flag, Period, Row, Rows, build, completeness};

const CH: i8 = 6;

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn at(day: i8, h: i8) -> DateTime {
    date(2026, 2, day).at(h, 0, 0, 0)
}

/// The generator's ground truth.
struct Truth {
    /// Per hour end: the true standard and working volume of the hour.
    inc: BTreeMap<DateTime, (Decimal, Decimal)>,
    /// Per interval reading time: the counters (Vb, Vm) written.
    counters: BTreeMap<DateTime, (Decimal, Decimal)>,
    /// Per reading time: p, T.
    pt: BTreeMap<DateTime, (Decimal, Decimal)>,
}

fn record(
    kind: ArchiveKind,
    t: DateTime,
    vb: Decimal,
    vm: Decimal,
    p: Decimal,
    temp: Decimal,
) -> ArchiveRecord {
    ArchiveRecord {
        kind,
        record_no: None,
        local_time: t,
        utc_offset_seconds: None,
        quantities: Quantities {
            vb: Some(vb),
            vbt: Some(vb),
            vm: Some(vm),
            vo: Some(vm),
            p_kpa: Some(p),
            t_c: Some(temp),
            ..Quantities::default()
        },
        status: vec!["0".into(), "0".into(), "0".into()],
        event_code: Some(if kind == ArchiveKind::Daily {
            0x8103
        } else {
            0x8104
        }),
        check: Check::Ok,
        line: 0,
    }
}

fn event(t: DateTime, code: u16) -> EventRecord {
    EventRecord {
        record_no: None,
        local_time: t,
        utc_offset_seconds: None,
        code,
        check: Check::Ok,
        line: 0,
    }
}

const GAP: [(i8, i8); 3] = [(10, 13), (10, 14), (10, 15)];
const RESET: (i8, i8) = (15, 20);
const CRC: [(i8, i8); 2] = [(20, 8), (22, 6)];
/// The device's daily record at this contract hour is 1.5 m³ too high.
const BAD_DAILY: i8 = 5;

fn generate() -> (DeviceData, Truth) {
    let start = at(1, CH);
    let end = date(2026, 3, 1).at(CH, 0, 0, 0);
    let mut truth = Truth {
        inc: BTreeMap::new(),
        counters: BTreeMap::new(),
        pt: BTreeMap::new(),
    };
    let mut records = Vec::new();
    let (mut vb, mut vm) = (dec("10000.0000"), dec("9500.0000"));
    let mut t = start;
    let mut i: i64 = 0;
    while t <= end {
        if t > start {
            let dvb = dec("10.0000") + Decimal::new((i * 7919) % 5000, 4) + Decimal::new(i % 9, 0);
            let dvm = dvb - Decimal::new(5 + i % 3, 1);
            truth.inc.insert(t, (dvb, dvm));
            if (t.day(), t.hour()) == RESET && t.month() == 2 {
                // A new counter: it starts from zero and counts this hour.
                vb = Decimal::new(0, 4);
                vm = Decimal::new(0, 4);
            }
            vb += dvb;
            vm += dvm;
        }
        let p = dec("104.1000") + Decimal::new(i % 4 * 125, 4);
        let temp = dec("-5.25") + Decimal::new(i % 6 * 50, 2);
        let key = (t.day(), t.hour());
        let in_feb = t.month() == 2;
        if !(in_feb && GAP.contains(&key)) {
            let mut r = record(ArchiveKind::Interval, t, vb, vm, p, temp);
            if in_feb && CRC.contains(&key) {
                r.check = Check::Failed("CRC Error".into());
                r.quantities.vb = Some(dec("99999999.9999"));
                r.quantities.p_kpa = Some(dec("9999.9999"));
            } else {
                truth.counters.insert(t, (vb, vm));
                truth.pt.insert(t, (p, temp));
            }
            // Status words: pressure sensor fault in the hours ending 3rd
            // 11:00 and 7th 09:00.
            if in_feb && (key == (3, 11) || key == (7, 9)) {
                r.status[1] = "0x0004".into();
            }
            records.push(r);
        }
        if t.hour() == CH && t.minute() == 0 {
            let mut dvb = vb;
            if in_feb && t.day() == BAD_DAILY {
                dvb += dec("1.5");
            }
            records.push(record(ArchiveKind::Daily, t, dvb, vm, p, temp));
        }
        t += SignedDuration::from_hours(1);
        i += 1;
    }
    // An alarm from 3rd 10:20 to 11:50 (0x2007 / 0x0007), a clock setting
    // (0x8004, not abnormal) and an event with a failed check (ignored).
    let mut bad_event = event(date(2026, 2, 25).at(12, 30, 0, 0), 0x2005);
    bad_event.check = Check::Failed("CRC Error".into());
    let events = vec![
        event(date(2026, 2, 3).at(10, 20, 0, 0), 0x2007),
        event(date(2026, 2, 3).at(11, 50, 0, 0), 0x0007),
        event(date(2026, 2, 12).at(9, 0, 0, 0), 0x8004),
        bad_event,
    ];
    // Archive order does not matter.
    records.reverse();
    (
        DeviceData {
            name: "Котельная №5".into(),
            time_zone: TimeZone::get("Asia/Yekaterinburg").unwrap(),
            contract_hour: CH,
            records,
            events,
        },
        truth,
    )
}

fn now() -> Timestamp {
    "2026-03-10T00:00:00Z".parse().unwrap()
}

fn gas_day_bounds(d: i8) -> (DateTime, DateTime) {
    let day = date(2026, 2, d);
    (day.at(CH, 0, 0, 0), day.tomorrow().unwrap().at(CH, 0, 0, 0))
}

/// Hour ends of gas day `d` that have no volume.
fn missing(d: i8) -> Vec<DateTime> {
    match d {
        10 => vec![at(10, 13), at(10, 14), at(10, 15), at(10, 16)],
        15 => vec![at(15, 20)],
        20 => vec![at(20, 8), at(20, 9)],
        21 => vec![at(22, 6)],
        22 => vec![at(22, 7)],
        _ => vec![],
    }
}

fn complete(d: i8) -> bool {
    // 15th: counter reset; 21st/22nd: the reading at 22nd 06:00 failed its check.
    !matches!(d, 15 | 21 | 22)
}

fn mean(values: impl Iterator<Item = Decimal>) -> Option<Decimal> {
    let v: Vec<Decimal> = values.collect();
    if v.is_empty() {
        return None;
    }
    let scale = v.iter().map(|x| x.scale()).max().unwrap();
    let sum: Decimal = v.iter().sum();
    let mut m = (sum / Decimal::from(v.len()))
        .round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
    m.rescale(scale);
    Some(m)
}

#[test]
fn monthly_daily_report() {
    let (dev, truth) = generate();
    let period: Period = "month:2026-02".parse().unwrap();
    let report = build(std::slice::from_ref(&dev), &period, Rows::Daily, now()).unwrap();
    assert_eq!(report.period.gas_days, 28);
    assert_eq!(report.period.label, "февраль 2026");
    let dr = &report.devices[0];
    assert_eq!(dr.time_zone, "Asia/Yekaterinburg");
    assert_eq!(dr.rows.len(), 28);

    for (row, d) in dr.rows.iter().zip(1i8..) {
        let (start, end) = gas_day_bounds(d);
        let v = &row.values;
        let ctx = format!("gas day {d}: {v:?}");
        assert_eq!(row.gas_day, date(2026, 2, d), "{ctx}");
        assert_eq!((row.start_local, row.end_local), (start, end));
        let gone = missing(d);
        let hours: Vec<_> = truth
            .inc
            .range((
                std::ops::Bound::Excluded(start),
                std::ops::Bound::Included(end),
            ))
            .collect();
        assert_eq!(hours.len(), 24);
        // Complete days: every hour's volume (the gap's too, by the counter);
        // others: the hours that have a volume.
        let counted = |t: &DateTime| complete(d) || !gone.contains(t);
        let want_vb: Decimal = hours
            .iter()
            .filter(|(t, _)| counted(t))
            .map(|(_, x)| x.0)
            .sum();
        let want_vm: Decimal = hours
            .iter()
            .filter(|(t, _)| counted(t))
            .map(|(_, x)| x.1)
            .sum();
        assert_eq!(v.vb_m3, Some(want_vb), "{ctx}");
        assert_eq!(v.vm_m3, Some(want_vm), "{ctx}");
        assert!(want_vb > Decimal::ZERO);
        assert_eq!(v.complete, complete(d), "{ctx}");
        assert_eq!(v.expected_hours, 24);
        assert_eq!(v.hours_with_data as usize, 24 - gone.len(), "{ctx}");
        assert_eq!(v.missing_hours as usize, gone.len(), "{ctx}");
        assert!(v.is_final);
        // Counters at the ends: the readings, where usable.
        assert_eq!(
            v.vb_start_m3,
            truth.counters.get(&start).map(|c| c.0),
            "{ctx}"
        );
        assert_eq!(v.vb_end_m3, truth.counters.get(&end).map(|c| c.0), "{ctx}");
        assert_eq!(
            v.vm_start_m3,
            truth.counters.get(&start).map(|c| c.1),
            "{ctx}"
        );
        assert_eq!(v.vm_end_m3, truth.counters.get(&end).map(|c| c.1), "{ctx}");
        // Means over the usable readings of the day.
        let pts: Vec<_> = truth
            .pt
            .range((
                std::ops::Bound::Excluded(start),
                std::ops::Bound::Included(end),
            ))
            .map(|(_, x)| *x)
            .collect();
        assert_eq!(v.p_mean_kpa, mean(pts.iter().map(|x| x.0)), "{ctx}");
        assert_eq!(v.t_mean_c, mean(pts.iter().map(|x| x.1)), "{ctx}");
        // Abnormal time: 3rd: the hour ending 11:00 (status) ∪ 10:20–11:50
        // (event) = 10:00–11:50; 7th: the hour ending 09:00 (status).
        let abnormal = match d {
            3 => 110 * 60,
            7 => 3600,
            _ => 0,
        };
        assert_eq!(v.abnormal_seconds, abnormal, "{ctx}");
        // The device's own daily volume and the flags.
        let mut flags = Vec::new();
        match d {
            // 25th: an event-log row with a failed check.
            20 | 21 | 25 => flags.push(Flag::CrcError),
            _ => {}
        }
        if d == 15 {
            flags.push(Flag::CounterDecreased);
        }
        // Daily records: 5th is 1.5 too high (4th and 5th disagree); 21st and
        // 22nd have partial volumes; 15th has none (the reset).
        if matches!(d, 4 | 5 | 21 | 22) {
            flags.push(Flag::DailyMismatch);
        }
        if !gone.is_empty() {
            flags.push(Flag::MissingHours);
        }
        if matches!(d, 10 | 20) {
            flags.push(Flag::GapVolume);
        }
        flags.sort();
        assert_eq!(v.flags, flags, "{ctx}");
        let device_vb = match d {
            4 => Some(want_vb + dec("1.5")),
            5 => Some(want_vb - dec("1.5")),
            15 => None,
            21 => Some(want_vb + truth.inc[&at(22, 6)].0),
            22 => Some(want_vb + truth.inc[&at(22, 7)].0),
            _ => Some(want_vb),
        };
        assert_eq!(v.device_vb_m3, device_vb, "{ctx}");
    }

    // Totals.
    let t = &dr.totals;
    let total_vb: Decimal = dr.rows.iter().map(|r| r.values.vb_m3.unwrap()).sum();
    assert_eq!(t.values.vb_m3, Some(total_vb));
    assert_eq!(t.gas_days, 28);
    assert_eq!(t.complete_days, 25);
    assert!(!t.values.complete);
    assert_eq!(t.values.expected_hours, 672);
    assert_eq!(t.values.hours_with_data, 672 - 9);
    assert_eq!(t.values.missing_hours, 9);
    assert_eq!(t.values.abnormal_seconds, 110 * 60 + 3600);
    assert_eq!(
        (t.start_local, t.end_local),
        (at(1, CH), date(2026, 3, 1).at(CH, 0, 0, 0))
    );
    assert_eq!(t.values.vb_start_m3, Some(dec("10000.0000")));
    assert_eq!(
        t.values.vb_end_m3,
        truth.counters.get(&t.end_local).map(|c| c.0)
    );
    assert_eq!(
        t.values.flags,
        vec![
            Flag::CrcError,
            Flag::CounterDecreased,
            Flag::DailyMismatch,
            Flag::MissingHours,
            Flag::GapVolume
        ]
    );
    // The total is what was consumed, less the hours that cannot be known.
    let unknown: Decimal = [at(15, 20), at(22, 6), at(22, 7)]
        .iter()
        .map(|t| truth.inc[t].0)
        .sum();
    let consumed: Decimal = truth.inc.values().map(|x| x.0).sum();
    assert_eq!(total_vb, consumed - unknown);
}

fn day_rows(rows: &[Row], d: i8) -> Vec<&Row> {
    rows.iter()
        .filter(|r| r.gas_day == date(2026, 2, d))
        .collect()
}

#[test]
fn monthly_hourly_report() {
    let (dev, truth) = generate();
    let period: Period = "month:2026-02".parse().unwrap();
    let daily = build(std::slice::from_ref(&dev), &period, Rows::Daily, now()).unwrap();
    let hourly = build(std::slice::from_ref(&dev), &period, Rows::Hourly, now()).unwrap();
    let rows = &hourly.devices[0].rows;
    // One row per hour, but a gap inside a complete day is one row.
    assert_eq!(rows.len(), 672 - 3 - 1);
    for day in &daily.devices[0].rows {
        let hs: Vec<_> = rows.iter().filter(|r| r.gas_day == day.gas_day).collect();
        let sum = |f: fn(&Row) -> Option<Decimal>| hs.iter().filter_map(|r| f(r)).sum::<Decimal>();
        assert_eq!(
            Some(sum(|r| r.values.vb_m3)),
            day.values.vb_m3,
            "{}",
            day.gas_day
        );
        assert_eq!(
            Some(sum(|r| r.values.vm_m3)),
            day.values.vm_m3,
            "{}",
            day.gas_day
        );
        let n = |f: fn(&Row) -> u32| hs.iter().map(|r| f(r)).sum::<u32>();
        assert_eq!(n(|r| r.values.hours_with_data), day.values.hours_with_data);
        assert_eq!(n(|r| r.values.missing_hours), day.values.missing_hours);
        assert_eq!(n(|r| r.values.expected_hours), 24);
        assert_eq!(
            hs.iter().map(|r| r.values.abnormal_seconds).sum::<i64>(),
            day.values.abnormal_seconds
        );
    }
    assert_eq!(hourly.devices[0].totals, daily.devices[0].totals);
    // No negative volume anywhere; measured hours are the true volumes.
    for r in rows {
        assert!(r.values.vb_m3.is_none_or(|v| v >= Decimal::ZERO), "{r:?}");
        assert!(r.values.vm_m3.is_none_or(|v| v >= Decimal::ZERO), "{r:?}");
        if r.values.hours_with_data == 1 {
            assert_eq!(r.values.vb_m3, Some(truth.inc[&r.end_local].0), "{r:?}");
            assert_eq!(r.values.vm_m3, Some(truth.inc[&r.end_local].1), "{r:?}");
            assert_eq!(
                r.end_local.duration_since(r.start_local),
                SignedDuration::from_hours(1)
            );
        }
    }

    // The gap on the 10th: 12:00 → 16:00 as one row with the counter
    // difference; three readings are missing, four hours lack a volume.
    let d10 = day_rows(rows, 10);
    assert_eq!(d10.len(), 21);
    let gap = d10.iter().find(|r| r.end_local == at(10, 16)).unwrap();
    assert_eq!(gap.start_local, at(10, 12));
    let want: Decimal = (13..=16).map(|h| truth.inc[&at(10, h)].0).sum();
    assert_eq!(gap.values.vb_m3, Some(want));
    assert_eq!(gap.values.vb_start_m3, Some(truth.counters[&at(10, 12)].0));
    assert_eq!(gap.values.vb_end_m3, Some(truth.counters[&at(10, 16)].0));
    assert_eq!(
        (
            gap.values.expected_hours,
            gap.values.hours_with_data,
            gap.values.missing_hours
        ),
        (4, 0, 4)
    );
    assert_eq!(gap.values.flags, vec![Flag::MissingHours, Flag::GapVolume]);
    assert!(gap.values.complete);

    // The CRC error on the 20th at 08:00: 07:00 → 09:00 as one row.
    let d20 = day_rows(rows, 20);
    assert_eq!(d20.len(), 23);
    let gap = d20.iter().find(|r| r.end_local == at(20, 9)).unwrap();
    assert_eq!(gap.start_local, at(20, 7));
    assert_eq!(
        gap.values.flags,
        vec![Flag::CrcError, Flag::MissingHours, Flag::GapVolume]
    );
    assert_eq!(
        gap.values.vb_m3,
        Some(truth.inc[&at(20, 8)].0 + truth.inc[&at(20, 9)].0)
    );
    // The bad row's values were not used for the means either.
    assert!(gap.values.p_mean_kpa.unwrap() < dec("200"));

    // The reset on the 15th: the hour ending 20:00 has no volume, is flagged,
    // and the day is not complete, so missing hours are rows of their own.
    let d15 = day_rows(rows, 15);
    assert_eq!(d15.len(), 24);
    let reset = d15.iter().find(|r| r.end_local == at(15, 20)).unwrap();
    assert_eq!(reset.values.vb_m3, None);
    assert_eq!(
        reset.values.flags,
        vec![Flag::CounterDecreased, Flag::MissingHours]
    );
    assert!(reset.values.vb_start_m3.unwrap() > reset.values.vb_end_m3.unwrap());

    // The CRC error at the contract hour on the 22nd: the 21st's last hour and
    // the 22nd's first hour have no volume; the flag is on the row it ends.
    let last21 = day_rows(rows, 21).last().copied().unwrap();
    assert_eq!(last21.end_local, at(22, 6));
    assert_eq!(
        last21.values.flags,
        vec![Flag::CrcError, Flag::MissingHours]
    );
    let first22 = day_rows(rows, 22)[0];
    assert_eq!(first22.end_local, at(22, 7));
    assert_eq!(first22.values.flags, vec![Flag::MissingHours]);

    // Abnormal time on the 3rd: 10:00–11:00 from the status word (covering
    // 10:20–11:00 of the alarm), 11:00–11:50 from the alarm.
    let d3 = day_rows(rows, 3);
    let ab = |h: i8| {
        d3.iter()
            .find(|r| r.end_local == at(3, h))
            .unwrap()
            .values
            .abnormal_seconds
    };
    assert_eq!((ab(10), ab(11), ab(12), ab(13)), (0, 3600, 50 * 60, 0));
    // Hours: the means of one reading each.
    let r = d3.iter().find(|r| r.end_local == at(3, 12)).unwrap();
    assert_eq!(r.values.p_mean_kpa, Some(truth.pt[&at(3, 12)].0));
    assert_eq!(r.values.t_mean_c, Some(truth.pt[&at(3, 12)].1));
}

#[test]
fn monthly_completeness() {
    let (dev, _) = generate();
    let period: Period = "month:2026-02".parse().unwrap();
    let c = completeness(&[dev], &period, now()).unwrap();
    assert_eq!(c.len(), 28);
    for (day, d) in c.iter().zip(1i8..) {
        assert_eq!(day.device, "Котельная №5");
        assert_eq!(day.gas_day, date(2026, 2, d));
        assert_eq!(day.expected_hours, 24);
        assert_eq!(day.missing_hour_ends, missing(d), "gas day {d}");
        assert_eq!(day.present_hours as usize, 24 - missing(d).len());
        assert_eq!(day.pending_hours, 0);
        assert_eq!(day.complete, complete(d));
        assert!(day.is_final);
        let readings: Vec<DateTime> = match d {
            10 => GAP.iter().map(|&(d, h)| at(d, h)).collect(),
            20 => vec![at(20, 8)],
            21 => vec![at(22, 6)],
            _ => vec![],
        };
        assert_eq!(day.missing_readings, readings, "gas day {d}");
    }
}

#[test]
fn a_month_in_progress() {
    let (dev, _) = generate();
    // 2026-02-10 12:30 local (+05): the 10th's gas day has begun at 06:00.
    let now: Timestamp = "2026-02-10T07:30:00Z".parse().unwrap();
    let mut dev = dev;
    dev.records.retain(|r| r.local_time <= at(10, 12));
    let period: Period = "month:2026-02".parse().unwrap();
    let report = build(std::slice::from_ref(&dev), &period, Rows::Daily, now).unwrap();
    let rows = &report.devices[0].rows;
    let d10 = &rows[9].values;
    assert!(!d10.is_final && !d10.complete);
    assert_eq!((d10.hours_with_data, d10.missing_hours), (6, 0));
    assert!(!d10.flags.contains(&Flag::MissingHours));
    // Days after today: nothing due, nothing missing, no volume.
    let d20 = &rows[19].values;
    assert_eq!(
        (d20.vb_m3, d20.hours_with_data, d20.missing_hours),
        (None, 0, 0)
    );
    assert!(d20.flags.is_empty(), "{:?}", d20.flags);
    assert!(!rows[8].values.flags.contains(&Flag::MissingHours));
    assert!(rows[8].values.is_final);
    let c = completeness(&[dev], &Period::GasDay(date(2026, 2, 10)), now).unwrap();
    assert_eq!(c[0].pending_hours, 18);
    assert!(c[0].missing_hour_ends.is_empty());
}

#[test]
fn days_are_the_devices_own() {
    // The same instant, two devices: gas days in their own time zone and hour.
    let (a, _) = generate();
    let mut b = a.clone();
    b.name = "Москва".into();
    b.time_zone = TimeZone::get("Europe/Moscow").unwrap();
    b.contract_hour = 10;
    let report = build(
        &[a, b],
        &Period::GasDay(date(2026, 2, 2)),
        Rows::Daily,
        now(),
    )
    .unwrap();
    assert_eq!(report.devices[0].rows[0].start_local, at(2, 6));
    assert_eq!(report.devices[1].rows[0].start_local, at(2, 10));
    assert_eq!(report.devices[1].rows[0].end_local, at(3, 10));
    let _: Date = report.period.first_gas_day;
}
