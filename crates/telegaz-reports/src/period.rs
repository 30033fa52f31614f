//! Report periods: a gas day, a month of gas days, a range of gas days.

use std::fmt;

use jiff::civil::Date;
use serde::{Serialize, Serializer};

use crate::ReportError;

/// The most gas days one report covers (three years and a day).
pub(crate) const MAX_GAS_DAYS: i64 = 1097;

/// A run of whole gas days. A gas day is named by the date on which it starts
/// (at the device's contract hour).
///
/// Written (and parsed with [`str::parse`]) as `day:2026-01-14`,
/// `month:2026-01` or `range:2026-01-01..2026-01-31` (both ends included).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Period {
    /// One gas day.
    GasDay(Date),
    /// The gas days that start in this month.
    Month { year: i16, month: i8 },
    /// The gas days `from..=to`.
    Range { from: Date, to: Date },
}

const RU_MONTHS: [&str; 12] = [
    "январь",
    "февраль",
    "март",
    "апрель",
    "май",
    "июнь",
    "июль",
    "август",
    "сентябрь",
    "октябрь",
    "ноябрь",
    "декабрь",
];

pub(crate) fn ru_date(d: Date) -> String {
    format!("{:02}.{:02}.{:04}", d.day(), d.month(), d.year())
}

impl Period {
    /// The first and last gas day, checked: not reversed, not too long, and
    /// with a next day (the end of the last gas day) that exists.
    pub fn gas_days(&self) -> Result<(Date, Date), ReportError> {
        let (first, last) = match *self {
            Period::GasDay(d) => (d, d),
            Period::Month { year, month } => {
                let first = Date::new(year, month, 1).map_err(|e| {
                    ReportError::OutOfRange(format!("month {year:04}-{month:02}: {e}"))
                })?;
                (first, first.last_of_month())
            }
            Period::Range { from, to } => {
                if from > to {
                    return Err(ReportError::ReversedRange { from, to });
                }
                (from, to)
            }
        };
        last.tomorrow()
            .map_err(|e| ReportError::OutOfRange(format!("the day after {last}: {e}")))?;
        let days = (last - first).get_days() as i64 + 1;
        if days > MAX_GAS_DAYS {
            return Err(ReportError::PeriodTooLong {
                period: self.to_string(),
                days,
                max: MAX_GAS_DAYS,
            });
        }
        Ok((first, last))
    }

    /// For people, in Russian.
    pub fn label_ru(&self) -> String {
        match *self {
            Period::GasDay(d) => format!("газовые сутки {}", ru_date(d)),
            Period::Month { year, month } => {
                let name = usize::try_from(month)
                    .ok()
                    .and_then(|m| m.checked_sub(1))
                    .and_then(|i| RU_MONTHS.get(i));
                match name {
                    Some(name) => format!("{name} {year}"),
                    None => format!("{month:02}.{year:04}"),
                }
            }
            Period::Range { from, to } => {
                format!("газовые сутки с {} по {}", ru_date(from), ru_date(to))
            }
        }
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Period::GasDay(d) => write!(f, "day:{d}"),
            Period::Month { year, month } => write!(f, "month:{year:04}-{month:02}"),
            Period::Range { from, to } => write!(f, "range:{from}..{to}"),
        }
    }
}

impl Serialize for Period {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn parse_date(input: &str, s: &str) -> Result<Date, ReportError> {
    let bad = |reason: String| ReportError::BadPeriod {
        input: input.to_string(),
        reason,
    };
    let well_formed = s.len() == 10
        && s.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    if !well_formed {
        return Err(bad(format!("{s:?} is not a date YYYY-MM-DD")));
    }
    s.parse::<Date>()
        .map_err(|e| bad(format!("{s:?} is not a valid date ({e})")))
}

impl std::str::FromStr for Period {
    type Err = ReportError;

    fn from_str(input: &str) -> Result<Self, ReportError> {
        let bad = |reason: &str| ReportError::BadPeriod {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let s = input.trim();
        let Some((kind, rest)) = s.split_once(':') else {
            return Err(bad("no kind before ':'"));
        };
        let rest = rest.trim();
        match kind.trim().to_ascii_lowercase().as_str() {
            "day" => {
                let p = Period::GasDay(parse_date(input, rest)?);
                p.gas_days()?;
                Ok(p)
            }
            "month" => {
                let parsed = rest.split_once('-').and_then(|(y, m)| {
                    let digits =
                        |x: &str, n: usize| x.len() == n && x.bytes().all(|b| b.is_ascii_digit());
                    if digits(y, 4) && digits(m, 2) {
                        Some((y.parse::<i16>().ok()?, m.parse::<i8>().ok()?))
                    } else {
                        None
                    }
                });
                let Some((year, month)) = parsed else {
                    return Err(bad("the month is not YYYY-MM"));
                };
                if !(1..=12).contains(&month) {
                    return Err(bad("the month number is not 01..12"));
                }
                let p = Period::Month { year, month };
                p.gas_days()?;
                Ok(p)
            }
            "range" => {
                let Some((a, b)) = rest.split_once("..") else {
                    return Err(bad("a range is FROM..TO"));
                };
                let from = parse_date(input, a.trim())?;
                let to = parse_date(input, b.trim())?;
                let p = Period::Range { from, to };
                p.gas_days()?;
                Ok(p)
            }
            _ => Err(bad("unknown kind (day, month or range)")),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use jiff::civil::date;

    #[test]
    fn parses_and_displays() {
        for s in [
            "day:2026-01-14",
            "month:2026-01",
            "range:2026-01-01..2026-01-31",
        ] {
            let p: Period = s.parse().unwrap();
            assert_eq!(p.to_string(), s);
        }
        assert_eq!(
            "month:2026-02"
                .parse::<Period>()
                .unwrap()
                .gas_days()
                .unwrap(),
            (date(2026, 2, 1), date(2026, 2, 28))
        );
        assert_eq!(
            " Day: 2026-01-14 ".parse::<Period>().unwrap(),
            Period::GasDay(date(2026, 1, 14))
        );
    }

    #[test]
    fn rejects_with_reasons() {
        for s in [
            "",
            "2026-01-14",
            "week:2026-01",
            "day:2026-1-14",
            "day:2026-02-30",
            "month:2026-13",
            "month:2026",
            "range:2026-01-01",
            "range:2026-01-01..2026-13-01",
        ] {
            let e = s.parse::<Period>().unwrap_err();
            let text = e.to_string();
            assert!(text.contains("expected day:YYYY-MM-DD"), "{s}: {text}");
        }
        let e = "range:2026-01-31..2026-01-01"
            .parse::<Period>()
            .unwrap_err();
        assert!(matches!(e, ReportError::ReversedRange { .. }), "{e}");
        let e = "range:2020-01-01..2026-01-01"
            .parse::<Period>()
            .unwrap_err();
        assert!(matches!(e, ReportError::PeriodTooLong { .. }), "{e}");
        let e = "day:9999-12-31".parse::<Period>().unwrap_err();
        assert!(matches!(e, ReportError::OutOfRange(_)), "{e}");
    }

    #[test]
    fn russian_labels() {
        assert_eq!(
            Period::Month {
                year: 2026,
                month: 1
            }
            .label_ru(),
            "январь 2026"
        );
        assert_eq!(
            Period::GasDay(date(2026, 1, 14)).label_ru(),
            "газовые сутки 14.01.2026"
        );
    }
}
