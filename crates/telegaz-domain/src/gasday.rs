//! Gas-day arithmetic: hourly consumption from counter readings, and gas days.
//!
//! - The consumption of an hour is the difference of two consecutive counter
//!   readings exactly one hour apart (in real time: the device's time zone
//!   decides across DST changes). A reading without a predecessor gives no hour.
//! - A counter that goes down (reset, replacement, wrap) never yields negative
//!   consumption: the hour is flagged and has no volume.
//! - Rows whose check failed are never used.
//! - A gas day runs from its contract hour to the next day's contract hour and
//!   is named by the date on which it starts. It is `complete` when the counter
//!   is known at both boundaries; its volume is then the counter difference,
//!   otherwise the sum of the hours that are known. It is `final` once the
//!   next day's contract hour has passed.
//! - Where the device's own daily records exist at both boundaries, their
//!   difference is compared with the computed volume; a mismatch is flagged.

use std::collections::BTreeMap;

use jiff::SignedDuration;
use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use serde::Serialize;

use crate::archive::{ArchiveKind, ArchiveRecord, Decimal};

/// Something a person should know about an hour or a gas day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Flag {
    /// The counter went down (reset, replacement or wrap): no volume for this hour.
    CounterDecreased,
    /// The device's daily record disagrees with the hours.
    DailyMismatch,
    /// Some hours of the gas day are missing.
    MissingHours,
    /// The same reading time appears with different values; the first usable one was used.
    ConflictingReadings,
    /// Values too large to add up (no real counter is): not used.
    ImplausibleValue,
}

/// One hour of consumption.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourlyVolume {
    /// End of the hour, local time of the device.
    pub hour_end_local: DateTime,
    pub vb_m3: Option<Decimal>,
    pub vm_m3: Option<Decimal>,
    /// Pressure and temperature recorded with the reading at the end of the hour.
    pub p_kpa: Option<Decimal>,
    pub t_c: Option<Decimal>,
    pub flags: Vec<Flag>,
}

/// One gas day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GasDay {
    /// The date on which the gas day starts (at the contract hour).
    pub gas_day: Date,
    pub vb_m3: Decimal,
    pub vm_m3: Decimal,
    /// Hours with a volume.
    pub hours: u32,
    /// The counter is known at both boundaries.
    pub complete: bool,
    /// The next day's contract hour has passed.
    #[serde(rename = "final")]
    pub is_final: bool,
    /// The device's own daily volume, when its daily records bound the day.
    pub device_vb_m3: Option<Decimal>,
    pub flags: Vec<Flag>,
}

/// Seconds between two local times in `tz` (None if either does not exist).
fn seconds_between(tz: &TimeZone, a: DateTime, b: DateTime) -> Option<i64> {
    let ta = tz.to_ambiguous_timestamp(a).compatible().ok()?;
    let tb = tz.to_ambiguous_timestamp(b).compatible().ok()?;
    Some(tb.as_second() - ta.as_second())
}

/// Usable interval readings by time; the first usable reading of a time wins,
/// and a time with differing readings is remembered.
fn readings(
    records: &[ArchiveRecord],
    kind: ArchiveKind,
) -> (BTreeMap<DateTime, &ArchiveRecord>, Vec<DateTime>) {
    let mut by_time: BTreeMap<DateTime, &ArchiveRecord> = BTreeMap::new();
    let mut conflicts = Vec::new();
    for r in records
        .iter()
        .filter(|r| r.kind == kind && r.check.usable())
    {
        match by_time.get(&r.local_time) {
            None => {
                by_time.insert(r.local_time, r);
            }
            Some(prev) if prev.quantities != r.quantities => conflicts.push(r.local_time),
            Some(_) => {}
        }
    }
    (by_time, conflicts)
}

/// The consumption between two counter readings: `(volume, decreased, overflow)`.
fn diff(a: Option<Decimal>, b: Option<Decimal>) -> (Option<Decimal>, bool, bool) {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => match b.checked_sub(a) {
            Some(v) => (Some(v), false, false),
            None => (None, false, true),
        },
        (Some(_), Some(_)) => (None, true, false),
        _ => (None, false, false),
    }
}

/// Sum without overflow (None if the values are implausibly large).
fn checked_sum(mut values: impl Iterator<Item = Decimal>) -> Option<Decimal> {
    values.try_fold(Decimal::ZERO, |acc, v| acc.checked_add(v))
}

/// Hourly consumption from interval readings (any order, duplicates allowed).
pub fn hourly(records: &[ArchiveRecord], tz: &TimeZone) -> Vec<HourlyVolume> {
    let (by_time, conflicts) = readings(records, ArchiveKind::Interval);
    let mut out = Vec::new();
    let mut prev: Option<&ArchiveRecord> = None;
    for (&t, &r) in &by_time {
        if let Some(p) = prev
            && seconds_between(tz, p.local_time, t) == Some(3600)
        {
            let (vb, vb_down, vb_big) = diff(p.quantities.vb, r.quantities.vb);
            let (vm, vm_down, vm_big) = diff(p.quantities.vm, r.quantities.vm);
            let mut flags = Vec::new();
            if vb_down || vm_down {
                flags.push(Flag::CounterDecreased);
            }
            if vb_big || vm_big {
                flags.push(Flag::ImplausibleValue);
            }
            if conflicts.contains(&t) || conflicts.contains(&p.local_time) {
                flags.push(Flag::ConflictingReadings);
            }
            if vb.is_some() || vm.is_some() || !flags.is_empty() {
                out.push(HourlyVolume {
                    hour_end_local: t,
                    vb_m3: vb,
                    vm_m3: vm,
                    p_kpa: r.quantities.p_kpa,
                    t_c: r.quantities.t_c,
                    flags,
                });
            }
        }
        prev = Some(r);
    }
    out
}

/// The gas day an hour ending at `hour_end` belongs to.
pub fn gas_day_of(hour_end: DateTime, contract_hour: i8) -> Date {
    let start = hour_end - SignedDuration::from_hours(1 + i64::from(contract_hour));
    start.date()
}

/// Gas days from interval (and, when present, daily) records.
pub fn daily(
    records: &[ArchiveRecord],
    tz: &TimeZone,
    contract_hour: i8,
    now_local: DateTime,
) -> Vec<GasDay> {
    let hours = hourly(records, tz);
    let (by_time, _) = readings(records, ArchiveKind::Interval);
    let (device_daily, _) = readings(records, ArchiveKind::Daily);
    let mut days: BTreeMap<Date, Vec<&HourlyVolume>> = BTreeMap::new();
    for h in &hours {
        days.entry(gas_day_of(h.hour_end_local, contract_hour))
            .or_default()
            .push(h);
    }
    let boundary = |d: Date| d.at(contract_hour, 0, 0, 0);
    days.into_iter()
        .map(|(day, hs)| {
            let start = boundary(day);
            let end = day.tomorrow().map(boundary).unwrap_or(start);
            let with_volume: Vec<&&HourlyVolume> =
                hs.iter().filter(|h| h.vb_m3.is_some()).collect();
            let mut flags: Vec<Flag> = hs.iter().flat_map(|h| h.flags.iter().copied()).collect();
            let (sum_vb, sum_vm) = match (
                checked_sum(with_volume.iter().filter_map(|h| h.vb_m3)),
                checked_sum(hs.iter().filter_map(|h| h.vm_m3)),
            ) {
                (Some(b), Some(m)) => (b, m),
                _ => {
                    flags.push(Flag::ImplausibleValue);
                    (Decimal::ZERO, Decimal::ZERO)
                }
            };
            let expected_hours = seconds_between(tz, start, end).map_or(24, |s| s / 3600);
            let counter_at = |t: DateTime| by_time.get(&t).and_then(|r| r.quantities.vb);
            let counter_vm_at = |t: DateTime| by_time.get(&t).and_then(|r| r.quantities.vm);
            // Complete only if the counter never went down between the boundaries,
            // gaps included (a reset inside a gap would hide in the difference).
            let monotonic = by_time
                .range(start..=end)
                .filter_map(|(_, r)| r.quantities.vb)
                .collect::<Vec<_>>()
                .windows(2)
                .all(|w| w[1] >= w[0]);
            let complete_counters = match (counter_at(start), counter_at(end)) {
                (Some(a), Some(b)) if monotonic && !flags.contains(&Flag::ImplausibleValue) => {
                    b.checked_sub(a)
                }
                _ => None,
            };
            if !monotonic && !flags.contains(&Flag::CounterDecreased) {
                flags.push(Flag::CounterDecreased);
            }
            let (vb, vm, complete) = match complete_counters {
                Some(v) => {
                    let vm = match (counter_vm_at(start), counter_vm_at(end)) {
                        (Some(x), Some(y)) if y >= x => y.checked_sub(x).unwrap_or(sum_vm),
                        _ => sum_vm,
                    };
                    (v, vm, true)
                }
                None => (sum_vb, sum_vm, false),
            };
            if (with_volume.len() as i64) < expected_hours {
                flags.push(Flag::MissingHours);
            }
            let device_vb = match (
                device_daily.get(&start).and_then(|r| r.quantities.vb),
                device_daily.get(&end).and_then(|r| r.quantities.vb),
            ) {
                (Some(a), Some(b)) if b >= a => b.checked_sub(a),
                _ => None,
            };
            if let Some(d) = device_vb
                && d != vb
            {
                flags.push(Flag::DailyMismatch);
            }
            flags.sort();
            flags.dedup();
            GasDay {
                gas_day: day,
                vb_m3: vb,
                vm_m3: vm,
                hours: with_volume.len() as u32,
                complete,
                is_final: now_local >= end,
                device_vb_m3: device_vb,
                flags,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::archive::{Check, Quantities};
    use std::str::FromStr;

    fn rec(kind: ArchiveKind, t: DateTime, vb: &str, check: Check) -> ArchiveRecord {
        ArchiveRecord {
            kind,
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
            check,
            line: 0,
        }
    }

    fn at(d: i8, h: i8) -> DateTime {
        jiff::civil::date(2026, 1, d).at(h, 0, 0, 0)
    }

    fn dec(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn hours_are_differences_one_hour_apart() {
        let tz = TimeZone::UTC;
        let rs = vec![
            rec(ArchiveKind::Interval, at(14, 11), "100.0001", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 12), "100.1002", Check::Ok),
            // gap: 13:00 missing
            rec(ArchiveKind::Interval, at(14, 14), "101.0000", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 15), "101.5000", Check::Ok),
        ];
        let h = hourly(&rs, &tz);
        assert_eq!(h.len(), 2);
        assert_eq!(h[0].hour_end_local, at(14, 12));
        assert_eq!(h[0].vb_m3, Some(dec("0.1001")));
        assert_eq!(h[1].hour_end_local, at(14, 15));
        assert_eq!(h[1].vb_m3, Some(dec("0.5000")));
    }

    #[test]
    fn order_and_duplicates_do_not_matter() {
        let tz = TimeZone::UTC;
        let mut rs = vec![
            rec(ArchiveKind::Interval, at(14, 11), "1", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 12), "3", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 13), "6", Check::Ok),
        ];
        let a = hourly(&rs, &tz);
        rs.reverse();
        rs.push(rs[0].clone());
        assert_eq!(hourly(&rs, &tz), a);
    }

    #[test]
    fn a_decreasing_counter_is_flagged_never_negative() {
        let tz = TimeZone::UTC;
        let rs = vec![
            rec(ArchiveKind::Interval, at(14, 11), "99999.9", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 12), "0.4", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 13), "1.0", Check::Ok),
        ];
        let h = hourly(&rs, &tz);
        assert_eq!(h[0].vb_m3, None);
        assert_eq!(h[0].flags, vec![Flag::CounterDecreased]);
        assert_eq!(h[1].vb_m3, Some(dec("0.6")));
        let d = daily(&rs, &tz, 10, at(20, 0));
        assert!(d.iter().all(|g| g.vb_m3 >= Decimal::ZERO));
        assert!(d[0].flags.contains(&Flag::CounterDecreased));
        assert!(!d[0].complete);
    }

    #[test]
    fn a_reset_hidden_in_a_gap_makes_the_day_incomplete() {
        let tz = TimeZone::UTC;
        let mut rs = vec![rec(ArchiveKind::Interval, at(14, 10), "1000", Check::Ok)];
        rs.push(rec(ArchiveKind::Interval, at(14, 11), "1001", Check::Ok));
        // 12:00-20:00 missing; the counter was reset meanwhile and ends higher.
        rs.push(rec(ArchiveKind::Interval, at(14, 20), "5", Check::Ok));
        rs.push(rec(ArchiveKind::Interval, at(14, 21), "6", Check::Ok));
        rs.push(rec(ArchiveKind::Interval, at(15, 10), "2000", Check::Ok));
        let d = daily(&rs, &tz, 10, at(20, 0));
        assert!(!d[0].complete, "{:?}", d[0]);
        assert!(d[0].flags.contains(&Flag::CounterDecreased));
        assert_eq!(d[0].vb_m3, dec("2"), "the sum of the known hours");
    }

    #[test]
    fn huge_values_never_panic() {
        let tz = TimeZone::UTC;
        let max = Decimal::MAX.to_string();
        let min = Decimal::MIN.to_string();
        let rs = vec![
            rec(ArchiveKind::Interval, at(14, 11), &min, Check::Ok),
            rec(ArchiveKind::Interval, at(14, 12), &max, Check::Ok),
            rec(ArchiveKind::Interval, at(14, 13), &max, Check::Ok),
            rec(ArchiveKind::Daily, at(14, 10), &min, Check::Ok),
            rec(ArchiveKind::Daily, at(15, 10), &max, Check::Ok),
        ];
        let h = hourly(&rs, &tz);
        assert!(h[0].flags.contains(&Flag::ImplausibleValue), "{h:?}");
        let _ = daily(&rs, &tz, 10, at(20, 0));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_counters_never_panic_or_go_negative(
            values in proptest::collection::vec((0i64..48, proptest::num::i64::ANY, 0u32..29), 0..60)
        ) {
            let tz = TimeZone::UTC;
            let rs: Vec<ArchiveRecord> = values
                .iter()
                .map(|(h, m, scale)| {
                    let t = at(14, 0) + SignedDuration::from_hours(*h);
                    let v = Decimal::new(*m, *scale).to_string();
                    rec(ArchiveKind::Interval, t, &v, Check::Ok)
                })
                .collect();
            for h in hourly(&rs, &tz) {
                proptest::prop_assert!(h.vb_m3.is_none_or(|v| v >= Decimal::ZERO));
            }
            for d in daily(&rs, &tz, 10, at(20, 0)) {
                proptest::prop_assert!(d.vb_m3 >= Decimal::ZERO);
            }
        }
    }

    #[test]
    fn failed_checks_are_not_used() {
        let tz = TimeZone::UTC;
        let rs = vec![
            rec(ArchiveKind::Interval, at(14, 11), "1", Check::Ok),
            rec(
                ArchiveKind::Interval,
                at(14, 12),
                "500",
                Check::Failed("CRC Error".into()),
            ),
            rec(ArchiveKind::Interval, at(14, 13), "3", Check::Ok),
        ];
        assert!(hourly(&rs, &tz).is_empty());
    }

    #[test]
    fn gas_days_run_from_the_contract_hour() {
        assert_eq!(gas_day_of(at(15, 10), 10), jiff::civil::date(2026, 1, 14));
        assert_eq!(gas_day_of(at(15, 11), 10), jiff::civil::date(2026, 1, 15));
        assert_eq!(gas_day_of(at(15, 0), 10), jiff::civil::date(2026, 1, 14));
        assert_eq!(gas_day_of(at(15, 1), 0), jiff::civil::date(2026, 1, 15));
    }

    #[test]
    fn a_complete_day_uses_the_counters_and_is_final_after_the_next_contract_hour() {
        let tz = TimeZone::UTC;
        let mut rs = Vec::new();
        let start = at(14, 10);
        for i in 0..=24i64 {
            let t = start + SignedDuration::from_hours(i);
            rs.push(rec(
                ArchiveKind::Interval,
                t,
                &format!("{}.25", 1000 + i * 2),
                Check::Ok,
            ));
        }
        rs.push(rec(ArchiveKind::Daily, at(14, 10), "1000.25", Check::Ok));
        rs.push(rec(ArchiveKind::Daily, at(15, 10), "1048.25", Check::Ok));
        let d = daily(&rs, &tz, 10, at(15, 9));
        assert_eq!(d.len(), 1);
        let g = &d[0];
        assert_eq!(g.gas_day, jiff::civil::date(2026, 1, 14));
        assert!(g.complete);
        assert_eq!(g.hours, 24);
        assert_eq!(g.vb_m3, dec("48"));
        assert_eq!(g.device_vb_m3, Some(dec("48")));
        assert!(g.flags.is_empty(), "{:?}", g.flags);
        assert!(!g.is_final, "before the next contract hour");
        assert!(daily(&rs, &tz, 10, at(15, 10))[0].is_final);

        // The device's own daily record disagreeing is flagged.
        rs.push(rec(ArchiveKind::Daily, at(15, 10), "1049.25", Check::Ok));
        let rs2: Vec<_> = rs
            .iter()
            .filter(|r| !(r.kind == ArchiveKind::Daily && r.quantities.vb == Some(dec("1048.25"))))
            .cloned()
            .collect();
        assert!(
            daily(&rs2, &tz, 10, at(16, 0))[0]
                .flags
                .contains(&Flag::DailyMismatch)
        );
    }

    #[test]
    fn an_incomplete_day_sums_the_known_hours() {
        let tz = TimeZone::UTC;
        let rs = vec![
            rec(ArchiveKind::Interval, at(14, 11), "10", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 12), "12.5", Check::Ok),
            rec(ArchiveKind::Interval, at(14, 13), "13", Check::Ok),
        ];
        let d = daily(&rs, &tz, 10, at(20, 0));
        assert_eq!(d[0].vb_m3, dec("3"));
        assert_eq!(d[0].hours, 2);
        assert!(!d[0].complete);
        assert!(d[0].flags.contains(&Flag::MissingHours));
    }

    #[test]
    fn hours_across_a_dst_change_use_real_time() {
        let tz = TimeZone::get("Europe/Berlin").unwrap();
        // 2026-03-29 02:00 local does not exist: 01:00 -> 03:00 is one real hour.
        let t1 = jiff::civil::date(2026, 3, 29).at(1, 0, 0, 0);
        let t2 = jiff::civil::date(2026, 3, 29).at(3, 0, 0, 0);
        let rs = vec![
            rec(ArchiveKind::Interval, t1, "1", Check::Ok),
            rec(ArchiveKind::Interval, t2, "2", Check::Ok),
        ];
        let h = hourly(&rs, &tz);
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].vb_m3, Some(dec("1")));
    }
}
