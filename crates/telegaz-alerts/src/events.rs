//! Corrector events from the event log: raised (0x2xxx) until cleared
//! (0x0xxx with the same low bits), and the clock set back (0x8004), which
//! counts for a day.

use jiff::SignedDuration;
use jiff::civil::DateTime;
use telegaz_domain::{EventRecord, Severity};

/// An event condition that holds at `now` (local time of the device).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EventCondition {
    pub code: u16,
    pub since: DateTime,
    pub severity: Severity,
    pub what: String,
}

/// Codes the operator described: code → (meaning, severity).
pub(crate) type Known = std::collections::HashMap<u16, (String, Severity)>;

/// What a code means, as far as it is known (see DOMAIN.md).
pub(crate) fn describe(code: u16) -> String {
    let known = match code {
        0x2005 => Some("коэффициент коррекции не вычисляется"),
        0x2006 => Some("аварийный предел температуры"),
        0x2007 => Some("аварийный предел давления"),
        0x2105 => Some("нет достоверного значения температуры"),
        0x2106 => Some("нет достоверного значения давления"),
        0x2501..=0x2507 => Some("предупредительный предел"),
        0x8004 => Some("часы корректора переведены назад"),
        _ => None,
    };
    match known {
        Some(text) => format!("{text} (0x{code:04X})"),
        None => format!("событие 0x{code:04X}"),
    }
}

/// Which event conditions hold at `now`: the raised ones not cleared since,
/// a clock set back within the last day, and codes the operator described
/// (`known`: raised ones until cleared, others for a day). Rows whose check
/// failed are not trusted.
pub(crate) fn holding(events: &[EventRecord], now: DateTime, known: &Known) -> Vec<EventCondition> {
    let mut sorted: Vec<&EventRecord> = events
        .iter()
        .filter(|e| !matches!(e.check, telegaz_domain::Check::Failed(_)))
        .collect();
    sorted.sort_by_key(|e| (e.local_time, e.record_no));
    let mut raised: std::collections::BTreeMap<u16, (u16, DateTime)> = Default::default();
    let mut clock: Option<DateTime> = None;
    let mut one_off: std::collections::BTreeMap<u16, DateTime> = Default::default();
    for e in sorted {
        match e.code & 0xF000 {
            0x2000 => {
                raised.insert(e.code & 0x0FFF, (e.code, e.local_time));
            }
            0x0000 => {
                raised.remove(&(e.code & 0x0FFF));
            }
            _ if e.code == 0x8004 => clock = Some(e.local_time),
            _ if known.contains_key(&e.code) => {
                one_off.insert(e.code, e.local_time);
            }
            _ => {}
        }
    }
    let mut out: Vec<EventCondition> = raised
        .into_values()
        .map(|(code, since)| match known.get(&code) {
            Some((name, severity)) => EventCondition {
                code,
                since,
                severity: *severity,
                what: format!("{name} (0x{code:04X})"),
            },
            None => EventCondition {
                code,
                since,
                severity: if code & 0x0F00 == 0x0500 {
                    Severity::Warning
                } else {
                    Severity::Critical
                },
                what: describe(code),
            },
        })
        .collect();
    for (code, at) in one_off {
        if now.duration_since(at) < SignedDuration::from_hours(24)
            && let Some((name, severity)) = known.get(&code)
        {
            out.push(EventCondition {
                code,
                since: at,
                severity: *severity,
                what: format!("{name} (0x{code:04X})"),
            });
        }
    }
    if let Some(at) = clock
        && now.duration_since(at) < SignedDuration::from_hours(24)
    {
        out.push(EventCondition {
            code: 0x8004,
            since: at,
            severity: Severity::Warning,
            what: describe(0x8004),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use telegaz_domain::Check;

    fn ev(code: u16, day: i8, hour: i8) -> EventRecord {
        EventRecord {
            record_no: None,
            local_time: jiff::civil::date(2026, 11, day).at(hour, 0, 0, 0),
            utc_offset_seconds: None,
            code,
            check: Check::Ok,
            line: 1,
        }
    }

    #[test]
    fn raised_until_cleared_and_the_clock_for_a_day() {
        let now = jiff::civil::date(2026, 11, 25).at(12, 0, 0, 0);
        let log = [
            ev(0x2007, 24, 8),
            ev(0x0007, 24, 9),
            ev(0x2106, 25, 1),
            ev(0x2503, 25, 2),
            ev(0x8004, 25, 3),
        ];
        let none = Known::new();
        let h = holding(&log, now, &none);
        let codes: Vec<u16> = h.iter().map(|c| c.code).collect();
        assert_eq!(codes, vec![0x2106, 0x2503, 0x8004], "{h:?}");
        assert_eq!(h[0].severity, Severity::Critical);
        assert_eq!(h[1].severity, Severity::Warning);
        assert!(h[0].what.contains("давления"));
        // A day later the clock event no longer counts.
        let later = jiff::civil::date(2026, 11, 26).at(4, 0, 0, 0);
        assert!(!holding(&log, later, &none).iter().any(|c| c.code == 0x8004));
        // Out of order in the file: time decides.
        let shuffled = [ev(0x0007, 24, 9), ev(0x2007, 24, 8)];
        assert!(holding(&shuffled, now, &none).is_empty());
        // A row whose check failed is not trusted.
        let mut bad = ev(0x2005, 25, 5);
        bad.check = Check::Failed("CRC Err".into());
        assert!(holding(&[bad], now, &none).is_empty());
    }

    #[test]
    fn codes_the_operator_names_are_used() {
        let now = jiff::civil::date(2026, 11, 25).at(12, 0, 0, 0);
        let mut known = Known::new();
        known.insert(0x2103, ("вскрытие корпуса".into(), Severity::Critical));
        known.insert(0x8105, ("батарея разряжена".into(), Severity::Warning));
        let h = holding(
            &[ev(0x2103, 25, 1), ev(0x8105, 25, 2), ev(0x8106, 25, 3)],
            now,
            &known,
        );
        let what: Vec<&str> = h.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(
            what,
            vec!["вскрытие корпуса (0x2103)", "батарея разряжена (0x8105)"]
        );
        assert_eq!(h[1].severity, Severity::Warning);
        // A one-off code counts for a day.
        let later = jiff::civil::date(2026, 11, 26).at(3, 0, 0, 0);
        assert!(
            !holding(&[ev(0x8105, 25, 2)], later, &known)
                .iter()
                .any(|c| c.code == 0x8105)
        );
    }
}
