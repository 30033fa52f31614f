//! When a gas day's report is due.
//!
//! A gas day `D` of a device runs from `D` at its contract hour to `D + 1` at
//! its contract hour, local time in its time zone. A delivery's report of `D`
//! is due `delay` after the last of its devices has ended `D`; only then is the
//! day final for every device.

use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;

use crate::data::DaySettings;

/// When gas day `day` ends for a device (a local time in a DST gap or fold is
/// taken as jiff's "compatible" instant, as the reports do).
pub fn gas_day_end(device: &DaySettings, day: Date) -> Option<Timestamp> {
    let next = day.tomorrow().ok()?;
    device
        .time_zone
        .to_ambiguous_timestamp(next.at(device.contract_hour, 0, 0, 0))
        .compatible()
        .ok()
}

/// When the report of `day` is due: `delay` after every device has ended it.
pub fn due_at(devices: &[DaySettings], day: Date, delay: Duration) -> Option<Timestamp> {
    let mut end: Option<Timestamp> = None;
    for d in devices {
        let e = gas_day_end(d, day)?;
        end = Some(end.map_or(e, |x| x.max(e)));
    }
    let delay = jiff::SignedDuration::try_from(delay).ok()?;
    end?.checked_add(delay).ok()
}

/// The most recent gas day whose report is due at `now`.
pub fn latest_due_day(devices: &[DaySettings], delay: Duration, now: Timestamp) -> Option<Date> {
    // Local dates are at most a day ahead of UTC, and the delay is at most a week.
    let mut day = jiff::tz::TimeZone::UTC
        .to_datetime(now)
        .date()
        .tomorrow()
        .ok()?;
    for _ in 0..12 {
        if due_at(devices, day, delay).is_some_and(|due| due <= now) {
            return Some(day);
        }
        day = day.yesterday().ok()?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::tz::TimeZone;

    fn dev(tz: &str, hour: i8) -> DaySettings {
        DaySettings {
            time_zone: TimeZone::get(tz).unwrap(),
            contract_hour: hour,
        }
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn date(s: &str) -> Date {
        s.parse().unwrap()
    }

    #[test]
    fn due_after_the_contract_hour_and_the_delay() {
        let moscow = [dev("Europe/Moscow", 10)];
        let half_hour = Duration::from_secs(1800);
        // Gas day 14.01 ends 15.01 10:00 MSK = 07:00 UTC; due at 07:30 UTC.
        assert_eq!(
            due_at(&moscow, date("2026-01-14"), half_hour),
            Some(ts("2026-01-15T07:30:00Z"))
        );
        assert_eq!(
            latest_due_day(&moscow, half_hour, ts("2026-01-15T07:29:59Z")),
            Some(date("2026-01-13"))
        );
        assert_eq!(
            latest_due_day(&moscow, half_hour, ts("2026-01-15T07:30:00Z")),
            Some(date("2026-01-14"))
        );
        assert_eq!(
            latest_due_day(&moscow, half_hour, ts("2026-01-16T07:29:00Z")),
            Some(date("2026-01-14"))
        );
    }

    #[test]
    fn the_last_device_to_end_the_day_decides() {
        let both = [dev("Europe/Moscow", 10), dev("Asia/Yekaterinburg", 12)];
        // Yekaterinburg is UTC+5: 16.01 12:00 local = 07:00 UTC; Moscow 10:00 = 07:00 UTC too.
        assert_eq!(
            due_at(&both, date("2026-01-15"), Duration::ZERO),
            Some(ts("2026-01-16T07:00:00Z"))
        );
        let both = [dev("Europe/Moscow", 10), dev("Asia/Yekaterinburg", 14)];
        assert_eq!(
            due_at(&both, date("2026-01-15"), Duration::ZERO),
            Some(ts("2026-01-16T09:00:00Z"))
        );
    }

    #[test]
    fn a_time_zone_ahead_of_utc_and_a_long_delay() {
        let tokyo = [dev("Asia/Tokyo", 0)];
        // 2026-01-15 00:00 JST = 2026-01-14 15:00 UTC: gas day 14.01 has ended.
        assert_eq!(
            latest_due_day(&tokyo, Duration::ZERO, ts("2026-01-14T15:00:00Z")),
            Some(date("2026-01-14"))
        );
        let moscow = [dev("Europe/Moscow", 10)];
        let three_days = Duration::from_secs(3 * 86400);
        assert_eq!(
            latest_due_day(&moscow, three_days, ts("2026-01-18T07:00:00Z")),
            Some(date("2026-01-14"))
        );
    }

    #[test]
    fn summer_time_days_are_23_and_25_hours() {
        let berlin = [dev("Europe/Berlin", 6)];
        // 29.03.2026: clocks go forward at 02:00; the gas day 28.03 06:00 → 29.03 06:00 CEST.
        assert_eq!(
            due_at(&berlin, date("2026-03-28"), Duration::ZERO),
            Some(ts("2026-03-29T04:00:00Z"))
        );
        assert_eq!(
            due_at(&berlin, date("2026-03-27"), Duration::ZERO),
            Some(ts("2026-03-28T05:00:00Z"))
        );
    }
}
