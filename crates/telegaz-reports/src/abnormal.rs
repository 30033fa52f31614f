//! Time in an abnormal state, from status words and the event log. The rule
//! is inferred (see the crate documentation).

use std::collections::BTreeMap;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::{SignedDuration, Timestamp};
use telegaz_domain::{ArchiveRecord, EventRecord};

/// A local time as an instant: the stated UTC offset when the content gave
/// one, the device's time zone otherwise.
pub(crate) fn instant(
    tz: &TimeZone,
    t: DateTime,
    offset_seconds: Option<i32>,
) -> Option<Timestamp> {
    match offset_seconds.and_then(|s| Offset::from_seconds(s).ok()) {
        Some(off) => off.to_timestamp(t).ok(),
        None => tz.to_ambiguous_timestamp(t).compatible().ok(),
    }
}

/// Whether a status word as printed says something is wrong: hexadecimal with
/// `0x`, decimal otherwise; unknown text counts as non-zero, empty as zero.
pub fn status_nonzero(word: &str) -> bool {
    let w = word.trim();
    if w.is_empty() {
        return false;
    }
    let parsed = match w.strip_prefix("0x").or_else(|| w.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => w.parse::<u64>().ok(),
    };
    parsed != Some(0)
}

/// The abnormal intervals of a device, merged, plus the event times that
/// deserve a flag.
#[derive(Debug, Default)]
pub(crate) struct Abnormal {
    /// Disjoint, sorted `[start, end)` intervals.
    intervals: Vec<(Timestamp, Timestamp)>,
    /// Local times of raises without a clear after them.
    pub(crate) not_cleared: Vec<DateTime>,
    /// Local times of clears without a raise before them.
    pub(crate) start_unknown: Vec<DateTime>,
}

const RAISED: u16 = 0x2000;
const CLEARED: u16 = 0x0000;

impl Abnormal {
    /// `readings`: the usable interval readings of the device by local time.
    pub(crate) fn collect(
        tz: &TimeZone,
        readings: &BTreeMap<DateTime, &ArchiveRecord>,
        events: &[EventRecord],
        now_utc: Timestamp,
    ) -> Abnormal {
        let mut raw: Vec<(Timestamp, Timestamp)> = Vec::new();
        for (&t, r) in readings {
            if r.status.iter().any(|w| status_nonzero(w))
                && let Some(end) = instant(tz, t, r.utc_offset_seconds)
                && let Ok(start) = end.checked_sub(SignedDuration::from_hours(1))
            {
                raw.push((start, end));
            }
        }

        let mut usable: Vec<(Timestamp, &EventRecord)> = events
            .iter()
            .filter(|e| e.check.usable())
            .filter_map(|e| Some((instant(tz, e.local_time, e.utc_offset_seconds)?, e)))
            .collect();
        usable.sort_by_key(|(ts, e)| (*ts, e.record_no));
        let mut out = Abnormal::default();
        // Per alarm (low 12 bits): when it was raised and still is.
        let mut open: BTreeMap<u16, (Timestamp, DateTime)> = BTreeMap::new();
        for (ts, e) in usable {
            let key = e.code & 0x0FFF;
            match e.code & 0xF000 {
                RAISED => {
                    open.entry(key).or_insert((ts, e.local_time));
                }
                CLEARED => match open.remove(&key) {
                    Some((start, _)) => raw.push((start, ts)),
                    None => out.start_unknown.push(e.local_time),
                },
                _ => {}
            }
        }
        for (start, local) in open.into_values() {
            raw.push((start, now_utc.max(start)));
            out.not_cleared.push(local);
        }

        raw.retain(|(a, b)| a < b);
        raw.sort();
        for (a, b) in raw {
            match out.intervals.last_mut() {
                Some((_, end)) if a <= *end => *end = (*end).max(b),
                _ => out.intervals.push((a, b)),
            }
        }
        out.not_cleared.sort();
        out.start_unknown.sort();
        out
    }

    /// Seconds of `[start, end)` in an abnormal state.
    pub(crate) fn seconds_within(&self, start: Timestamp, end: Timestamp) -> i64 {
        // Disjoint and sorted: skip those that end before `start`.
        let first = self.intervals.partition_point(|(_, b)| *b <= start);
        self.intervals[first..]
            .iter()
            .take_while(|(a, _)| *a < end)
            .map(|(a, b)| (*b).min(end).as_second() - (*a).max(start).as_second())
            .filter(|s| *s > 0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jiff::civil::date;
    use telegaz_domain::Check;

    fn ev(t: DateTime, code: u16) -> EventRecord {
        EventRecord {
            record_no: None,
            local_time: t,
            utc_offset_seconds: None,
            code,
            check: Check::Ok,
            line: 0,
        }
    }

    #[test]
    fn status_words() {
        assert!(!status_nonzero("0"));
        assert!(!status_nonzero("0x0000"));
        assert!(!status_nonzero(""));
        assert!(status_nonzero("0x0010"));
        assert!(status_nonzero("12"));
        assert!(status_nonzero("alarm"));
    }

    #[test]
    fn events_pair_raise_and_clear() {
        let tz = TimeZone::UTC;
        let d = date(2026, 1, 14);
        let events = vec![
            ev(d.at(13, 5, 12, 0), 0x2007),
            ev(d.at(13, 45, 0, 0), 0x0007),
            ev(d.at(14, 0, 0, 0), 0x0106),
            ev(d.at(15, 0, 0, 0), 0x8004),
            ev(d.at(20, 0, 0, 0), 0x2106),
        ];
        let now = tz.to_timestamp(d.at(21, 0, 0, 0)).unwrap();
        let a = Abnormal::collect(&tz, &BTreeMap::new(), &events, now);
        let ts = |h: i8| tz.to_timestamp(d.at(h, 0, 0, 0)).unwrap();
        assert_eq!(a.seconds_within(ts(13), ts(14)), 39 * 60 + 48);
        assert_eq!(a.seconds_within(ts(14), ts(20)), 0);
        assert_eq!(a.seconds_within(ts(20), ts(23)), 3600);
        assert_eq!(a.start_unknown, vec![d.at(14, 0, 0, 0)]);
        assert_eq!(a.not_cleared, vec![d.at(20, 0, 0, 0)]);
    }
}
