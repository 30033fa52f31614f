//! The report engine: lays `gasday`'s hours and gas days out over a period.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound::{Excluded, Included};

use jiff::civil::{Date, DateTime};
use jiff::{SignedDuration, Timestamp};
use rust_decimal::RoundingStrategy;
use telegaz_domain::gasday::{self, GasDay, HourlyVolume};
use telegaz_domain::{ArchiveKind, ArchiveRecord, Decimal, Quantities};

use crate::abnormal::Abnormal;
use crate::{
    DayCompleteness, DeviceData, DeviceReport, Flag, Period, PeriodInfo, Report, ReportError, Row,
    Rows, Totals, Values,
};

/// Build a report of `devices` over `period`.
///
/// `now_utc` decides which hours have ended (missing vs not yet due) and which
/// gas days are final; it is also the report's `generated_at`.
///
/// Errors: no devices, a bad period (reversed, too long, out of range), a
/// device with a contract hour outside 0..=23, and a period in which no device
/// has any record or event at all ([`ReportError::NoData`]): a report of
/// nothing is refused rather than written as an empty file that looks valid.
/// A device without data next to devices with data is reported with empty
/// rows and [`Flag::NoData`].
pub fn build(
    devices: &[DeviceData],
    period: &Period,
    rows: Rows,
    now_utc: Timestamp,
) -> Result<Report, ReportError> {
    if devices.is_empty() {
        return Err(ReportError::NoDevices);
    }
    let (first, last) = period.gas_days()?;
    let mut out = Vec::with_capacity(devices.len());
    let mut without_data = Vec::new();
    for dev in devices {
        let ctx = Ctx::new(dev, now_utc)?;
        let (report, has_data) = ctx.report(first, last, rows)?;
        if !has_data {
            without_data.push(format!("{:?}", dev.name));
        }
        out.push(report);
    }
    if without_data.len() == devices.len() {
        return Err(ReportError::NoData {
            devices: if without_data.len() == 1 {
                format!("device {}", without_data.join(", "))
            } else {
                format!("devices {}", without_data.join(", "))
            },
            period: if first == last {
                format!("{period} (gas day {first})")
            } else {
                format!("{period} (gas days {first}..{last})")
            },
        });
    }
    Ok(Report {
        period: PeriodInfo {
            period: *period,
            label: period.label_ru(),
            first_gas_day: first,
            last_gas_day: last,
            gas_days: day_count(first, last),
        },
        rows,
        generated_at: now_utc,
        devices: out,
    })
}

/// The completeness of each device's gas days in `period`, device by device,
/// day by day. A period without any data is not an error here: every hour
/// that has ended is then listed as missing.
pub fn completeness(
    devices: &[DeviceData],
    period: &Period,
    now_utc: Timestamp,
) -> Result<Vec<DayCompleteness>, ReportError> {
    if devices.is_empty() {
        return Err(ReportError::NoDevices);
    }
    let (first, last) = period.gas_days()?;
    let mut out = Vec::new();
    for dev in devices {
        let ctx = Ctx::new(dev, now_utc)?;
        for d in days(first, last) {
            out.push(ctx.day(d)?.completeness);
        }
    }
    Ok(out)
}

fn day_count(first: Date, last: Date) -> u32 {
    u32::try_from((last - first).get_days() + 1).unwrap_or(0)
}

fn days(first: Date, last: Date) -> impl Iterator<Item = Date> {
    first
        .series(jiff::Span::new().days(1))
        .take_while(move |d| *d <= last)
}

fn map_flag(f: gasday::Flag) -> Flag {
    match f {
        gasday::Flag::CounterDecreased => Flag::CounterDecreased,
        gasday::Flag::DailyMismatch => Flag::DailyMismatch,
        gasday::Flag::MissingHours => Flag::MissingHours,
        gasday::Flag::ConflictingReadings => Flag::ConflictingReadings,
        gasday::Flag::ImplausibleValue => Flag::ImplausibleValue,
    }
}

/// Sum of the values present; `None` when none is; `Err` on overflow.
fn sum_opt(items: impl IntoIterator<Item = Option<Decimal>>) -> Result<Option<Decimal>, Overflow> {
    let mut acc: Option<Decimal> = None;
    for x in items.into_iter().flatten() {
        acc = Some(match acc {
            None => x,
            Some(a) => a.checked_add(x).ok_or(Overflow)?,
        });
    }
    Ok(acc)
}

/// Later minus earlier counter, when both are known and it did not go down.
fn counter_diff(a: Option<Decimal>, b: Option<Decimal>) -> Option<Decimal> {
    match (a, b) {
        (Some(a), Some(b)) if b >= a => b.checked_sub(a),
        _ => None,
    }
}

struct Overflow;

/// What one gas day gives.
struct DayParts {
    rows: Vec<Row>,
    day: Row,
    completeness: DayCompleteness,
}

/// One device, prepared.
struct Ctx<'a> {
    dev: &'a DeviceData,
    now_utc: Timestamp,
    now_local: DateTime,
    hours: BTreeMap<DateTime, HourlyVolume>,
    days: BTreeMap<Date, GasDay>,
    /// Usable interval readings by local time; the first usable one of a time
    /// wins (the rule of `gasday`).
    readings: BTreeMap<DateTime, &'a ArchiveRecord>,
    /// Reading times at which the Vb or Vm counter is lower than at the
    /// reading before it (however far before).
    decreased: BTreeSet<DateTime>,
    /// Times of archive and event-log rows whose check failed.
    failed: BTreeSet<DateTime>,
    abnormal: Abnormal,
}

impl<'a> Ctx<'a> {
    fn new(dev: &'a DeviceData, now_utc: Timestamp) -> Result<Ctx<'a>, ReportError> {
        if !(0..=23).contains(&dev.contract_hour) {
            return Err(ReportError::BadDevice {
                name: dev.name.clone(),
                reason: format!("contract hour {} is not 0..23", dev.contract_hour),
            });
        }
        let tz = &dev.time_zone;
        let now_local = tz.to_datetime(now_utc);
        let hours = gasday::hourly(&dev.records, tz)
            .into_iter()
            .map(|h| (h.hour_end_local, h))
            .collect();
        let days = gasday::daily(&dev.records, tz, dev.contract_hour, now_local)
            .into_iter()
            .map(|d| (d.gas_day, d))
            .collect();
        let mut readings: BTreeMap<DateTime, &ArchiveRecord> = BTreeMap::new();
        for r in &dev.records {
            if r.kind == ArchiveKind::Interval && r.check.usable() {
                readings.entry(r.local_time).or_insert(r);
            }
        }
        let mut decreased = BTreeSet::new();
        for pick in [|q: &Quantities| q.vb, |q: &Quantities| q.vm] {
            let mut prev: Option<Decimal> = None;
            for (t, r) in &readings {
                if let Some(v) = pick(&r.quantities) {
                    if prev.is_some_and(|p| v < p) {
                        decreased.insert(*t);
                    }
                    prev = Some(v);
                }
            }
        }
        let failed = dev
            .records
            .iter()
            .filter(|r| !r.check.usable())
            .map(|r| r.local_time)
            .chain(
                dev.events
                    .iter()
                    .filter(|e| !e.check.usable())
                    .map(|e| e.local_time),
            )
            .collect();
        let abnormal = Abnormal::collect(tz, &readings, &dev.events, now_utc);
        Ok(Ctx {
            dev,
            now_utc,
            now_local,
            hours,
            days,
            readings,
            decreased,
            failed,
            abnormal,
        })
    }

    fn overflow(&self) -> ReportError {
        ReportError::Overflow {
            name: self.dev.name.clone(),
        }
    }

    fn instant(&self, t: DateTime) -> Result<Timestamp, ReportError> {
        self.dev
            .time_zone
            .to_ambiguous_timestamp(t)
            .compatible()
            .map_err(|e| ReportError::OutOfRange(format!("{t} in the device's time zone: {e}")))
    }

    fn boundary(&self, d: Date) -> DateTime {
        d.at(self.dev.contract_hour, 0, 0, 0)
    }

    /// The clock hour ends in `(start, end]`, counted in real time (a repeated
    /// local hour is one entry).
    fn grid(&self, start: DateTime, end: DateTime) -> Result<Vec<DateTime>, ReportError> {
        let (s, e) = (self.instant(start)?, self.instant(end)?);
        let mut out: Vec<DateTime> = Vec::with_capacity(25);
        let mut t = s;
        // A gas day has at most 25 hours (DST); a few more cost nothing.
        for _ in 0..30 {
            t = match t.checked_add(SignedDuration::from_hours(1)) {
                Ok(t) if t <= e => t,
                _ => break,
            };
            let local = self.dev.time_zone.to_datetime(t);
            if local > start && local <= end && out.last().is_none_or(|l| local > *l) {
                out.push(local);
            }
        }
        Ok(out)
    }

    fn has_volume(&self, hour_end: &DateTime) -> bool {
        self.hours.get(hour_end).is_some_and(|h| h.vb_m3.is_some())
    }

    fn counter(&self, t: DateTime, pick: fn(&Quantities) -> Option<Decimal>) -> Option<Decimal> {
        self.readings.get(&t).and_then(|r| pick(&r.quantities))
    }

    /// Mean of a quantity over the readings in `(s, e]`, rounded half away
    /// from zero to the most decimals among them.
    fn mean(
        &self,
        s: DateTime,
        e: DateTime,
        pick: fn(&Quantities) -> Option<Decimal>,
    ) -> Result<Option<Decimal>, Overflow> {
        let mut sum = Decimal::ZERO;
        let mut n: u64 = 0;
        let mut scale = 0;
        for r in self
            .readings
            .range((Excluded(s), Included(e)))
            .map(|(_, r)| r)
        {
            if let Some(v) = pick(&r.quantities) {
                sum = sum.checked_add(v).ok_or(Overflow)?;
                n += 1;
                scale = scale.max(v.scale());
            }
        }
        if n == 0 {
            return Ok(None);
        }
        let mut m = sum
            .checked_div(Decimal::from(n))
            .ok_or(Overflow)?
            .round_dp_with_strategy(scale, RoundingStrategy::MidpointAwayFromZero);
        m.rescale(scale);
        Ok(Some(m))
    }

    /// The figures of `(s, e]` that do not depend on how volumes were found.
    #[allow(clippy::too_many_arguments)]
    fn values(
        &self,
        s: DateTime,
        e: DateTime,
        (expected, with_data, missing): (u32, u32, u32),
        (vb, vm): (Option<Decimal>, Option<Decimal>),
        complete: bool,
        is_final: bool,
        mut flags: BTreeSet<Flag>,
    ) -> Result<Values, ReportError> {
        let within =
            |set: &BTreeSet<DateTime>| set.range((Excluded(s), Included(e))).next().is_some();
        let within_vec = |v: &[DateTime]| v.iter().any(|t| *t > s && *t <= e);
        if within(&self.failed) {
            flags.insert(Flag::CrcError);
        }
        if within(&self.decreased) {
            flags.insert(Flag::CounterDecreased);
        }
        if within_vec(&self.abnormal.not_cleared) {
            flags.insert(Flag::AlarmNotCleared);
        }
        if within_vec(&self.abnormal.start_unknown) {
            flags.insert(Flag::AlarmStartUnknown);
        }
        if missing > 0 {
            flags.insert(Flag::MissingHours);
        }
        let overflow = |_: Overflow| self.overflow();
        Ok(Values {
            vb_m3: vb,
            vm_m3: vm,
            p_mean_kpa: self.mean(s, e, |q| q.p_kpa).map_err(overflow)?,
            t_mean_c: self.mean(s, e, |q| q.t_c).map_err(overflow)?,
            vb_start_m3: self.counter(s, |q| q.vb),
            vb_end_m3: self.counter(e, |q| q.vb),
            vm_start_m3: self.counter(s, |q| q.vm),
            vm_end_m3: self.counter(e, |q| q.vm),
            expected_hours: expected,
            hours_with_data: with_data,
            missing_hours: missing,
            abnormal_seconds: self
                .abnormal
                .seconds_within(self.instant(s)?, self.instant(e)?),
            complete,
            is_final,
            device_vb_m3: None,
            flags: flags.into_iter().collect(),
        })
    }

    /// Hours of the grid in `(s, e]`: (expected, missing).
    fn grid_hours(&self, grid: &[DateTime], s: DateTime, e: DateTime) -> (u32, u32) {
        let mut expected = 0;
        let mut missing = 0;
        for h in grid.iter().filter(|h| **h > s && **h <= e) {
            expected += 1;
            if *h <= self.now_local && !self.has_volume(h) {
                missing += 1;
            }
        }
        (expected, missing)
    }

    fn day(&self, d: Date) -> Result<DayParts, ReportError> {
        let start = self.boundary(d);
        let next = d
            .tomorrow()
            .map_err(|e| ReportError::OutOfRange(format!("the day after {d}: {e}")))?;
        let end = self.boundary(next);
        let grid = self.grid(start, end)?;
        let gd = self.days.get(&d);
        let is_final = self.now_local >= end;

        // Usable readings with a Vb counter, from one contract hour to the next.
        let chain: Vec<(DateTime, Decimal)> = self
            .readings
            .range(start..=end)
            .filter_map(|(t, r)| Some((*t, r.quantities.vb?)))
            .collect();
        // `gasday` calls a day complete from its boundary counters and its
        // hours; a counter that went down across a gap inside the day is not
        // an hour, so it is checked here too.
        let complete = gd.is_some_and(|g| g.complete)
            && chain.first().map(|c| c.0) == Some(start)
            && chain.last().map(|c| c.0) == Some(end)
            && chain.windows(2).all(|w| w[1].1 >= w[0].1);

        // Rows partition (start, end]: between consecutive Vb readings when
        // the day is complete (a gap becomes one row carrying its counter
        // difference), otherwise one per hour end (and per hour `hourly`
        // found off the clock grid).
        let spans: Vec<(DateTime, DateTime)> = if complete {
            chain.windows(2).map(|w| (w[0].0, w[1].0)).collect()
        } else {
            let mut ends: BTreeSet<DateTime> = grid.iter().copied().collect();
            ends.extend(
                self.hours
                    .range((Excluded(start), Included(end)))
                    .map(|(t, _)| *t),
            );
            let mut prev = start;
            ends.into_iter()
                .map(|e| {
                    let s = prev;
                    prev = e;
                    (s, e)
                })
                .collect()
        };

        let mut rows = Vec::with_capacity(spans.len());
        for (s, e) in spans {
            let hour = self.hours.get(&e);
            let (vb, vm) = if complete {
                (
                    counter_diff(self.counter(s, |q| q.vb), self.counter(e, |q| q.vb)),
                    counter_diff(self.counter(s, |q| q.vm), self.counter(e, |q| q.vm)),
                )
            } else {
                (hour.and_then(|h| h.vb_m3), hour.and_then(|h| h.vm_m3))
            };
            let with_data = u32::from(self.has_volume(&e));
            let (expected, missing) = self.grid_hours(&grid, s, e);
            let mut flags: BTreeSet<Flag> = hour
                .map(|h| h.flags.iter().copied().map(map_flag).collect())
                .unwrap_or_default();
            if complete && with_data == 0 && vb.is_some() {
                flags.insert(Flag::GapVolume);
            }
            let row_complete = vb.is_some()
                && self.counter(s, |q| q.vb).is_some()
                && self.counter(e, |q| q.vb).is_some();
            let values = self.values(
                s,
                e,
                (expected, with_data, missing),
                (vb, vm),
                row_complete,
                is_final,
                flags,
            )?;
            rows.push(Row {
                gas_day: d,
                start_local: s,
                end_local: e,
                values,
            });
        }

        let overflow = |_: Overflow| self.overflow();
        let vb = sum_opt(rows.iter().map(|r| r.values.vb_m3)).map_err(overflow)?;
        let vm = sum_opt(rows.iter().map(|r| r.values.vm_m3)).map_err(overflow)?;
        let with_data: u32 = rows.iter().map(|r| r.values.hours_with_data).sum();
        let (expected, missing) = self.grid_hours(&grid, start, end);
        let mut flags: BTreeSet<Flag> = rows
            .iter()
            .flat_map(|r| r.values.flags.iter().copied())
            .collect();
        if let Some(g) = gd {
            flags.extend(
                g.flags
                    .iter()
                    .filter(|f| **f == gasday::Flag::ConflictingReadings)
                    .copied()
                    .map(map_flag),
            );
        }
        let device_vb = gd.and_then(|g| g.device_vb_m3);
        if device_vb.is_some() && device_vb != vb {
            flags.insert(Flag::DailyMismatch);
        }
        let mut values = self.values(
            start,
            end,
            (expected, with_data, missing),
            (vb, vm),
            complete,
            is_final,
            flags,
        )?;
        values.device_vb_m3 = device_vb;
        let day = Row {
            gas_day: d,
            start_local: start,
            end_local: end,
            values,
        };

        let mut missing_hour_ends = Vec::new();
        let mut missing_readings = Vec::new();
        let mut pending = 0;
        for h in &grid {
            if *h > self.now_local {
                if !self.has_volume(h) {
                    pending += 1;
                }
                continue;
            }
            if !self.has_volume(h) {
                missing_hour_ends.push(*h);
            }
            if !self.readings.contains_key(h) {
                missing_readings.push(*h);
            }
        }
        let completeness = DayCompleteness {
            device: self.dev.name.clone(),
            gas_day: d,
            start_local: start,
            end_local: end,
            expected_hours: expected,
            present_hours: with_data,
            pending_hours: pending,
            missing_hour_ends,
            missing_readings,
            complete,
            is_final,
        };
        Ok(DayParts {
            rows,
            day,
            completeness,
        })
    }

    /// Whether the device has any record or event in `[start, end]`.
    fn has_data(&self, start: DateTime, end: DateTime) -> bool {
        let inside = |t: &DateTime| *t >= start && *t <= end;
        self.dev.records.iter().any(|r| inside(&r.local_time))
            || self.dev.events.iter().any(|e| inside(&e.local_time))
    }

    fn report(
        &self,
        first: Date,
        last: Date,
        rows: Rows,
    ) -> Result<(DeviceReport, bool), ReportError> {
        let start = self.boundary(first);
        let next = last
            .tomorrow()
            .map_err(|e| ReportError::OutOfRange(format!("the day after {last}: {e}")))?;
        let end = self.boundary(next);
        let mut out_rows = Vec::new();
        let mut day_rows = Vec::new();
        for d in days(first, last) {
            let parts = self.day(d)?;
            if rows == Rows::Hourly {
                out_rows.extend(parts.rows);
            }
            day_rows.push(parts.day);
        }
        let overflow = |_: Overflow| self.overflow();
        let vb = sum_opt(day_rows.iter().map(|r| r.values.vb_m3)).map_err(overflow)?;
        let vm = sum_opt(day_rows.iter().map(|r| r.values.vm_m3)).map_err(overflow)?;
        let sum_u32 = |f: fn(&Values) -> u32| day_rows.iter().map(|r| f(&r.values)).sum::<u32>();
        let hours = (
            sum_u32(|v| v.expected_hours),
            sum_u32(|v| v.hours_with_data),
            sum_u32(|v| v.missing_hours),
        );
        let mut flags: BTreeSet<Flag> = day_rows
            .iter()
            .flat_map(|r| r.values.flags.iter().copied())
            .collect();
        let has_data = self.has_data(start, end);
        if !has_data {
            flags.insert(Flag::NoData);
        }
        let complete_days = day_rows.iter().filter(|r| r.values.complete).count();
        let all_complete = complete_days == day_rows.len();
        let is_final = day_rows.last().is_some_and(|r| r.values.is_final);
        let device_vb = if day_rows.iter().all(|r| r.values.device_vb_m3.is_some()) {
            sum_opt(day_rows.iter().map(|r| r.values.device_vb_m3)).map_err(overflow)?
        } else {
            None
        };
        let mut values = self.values(start, end, hours, (vb, vm), all_complete, is_final, flags)?;
        values.device_vb_m3 = device_vb;
        let totals = Totals {
            start_local: start,
            end_local: end,
            gas_days: day_count(first, last),
            complete_days: u32::try_from(complete_days).unwrap_or(u32::MAX),
            values,
        };
        let rows = if rows == Rows::Hourly {
            out_rows
        } else {
            day_rows
        };
        let time_zone = self
            .dev
            .time_zone
            .iana_name()
            .map(str::to_string)
            .unwrap_or_else(|| self.dev.time_zone.to_offset(self.now_utc).to_string());
        Ok((
            DeviceReport {
                name: self.dev.name.clone(),
                time_zone,
                contract_hour: self.dev.contract_hour,
                rows,
                totals,
            },
            has_data,
        ))
    }
}
