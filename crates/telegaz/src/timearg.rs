//! Times on the command line: `2026-11-25T10:00:00Z`, `2026-11-25T10:00:00+03:00`,
//! `2026-11-25` (midnight UTC), or a span back from now: `30m`, `2h`, `7d`.

use jiff::{Span, Timestamp, ToSpan};

pub fn parse(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(t) = s.parse::<Timestamp>() {
        return Ok(t);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return d
            .to_zoned_datetime(jiff::tz::TimeZone::UTC)
            .map(|z| z.timestamp())
            .map_err(|e| e.to_string());
    }
    if let Some((num, unit)) = s.find(|c: char| !c.is_ascii_digit()).map(|i| s.split_at(i))
        && let Ok(n) = num.parse::<i64>()
    {
        let span: Option<Span> = match unit {
            "s" => Some(n.seconds()),
            "m" | "min" => Some(n.minutes()),
            "h" => Some(n.hours()),
            "d" => Some((n * 24).hours()),
            _ => None,
        };
        if let Some(span) = span {
            return Timestamp::now()
                .checked_sub(span)
                .map_err(|e| e.to_string());
        }
    }
    Err(format!(
        "{s:?} is not a time: use 2026-11-25T10:00:00Z, 2026-11-25, or a span back from now such as 30m, 2h, 7d"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_all_forms() {
        assert_eq!(
            parse("2026-11-25T10:00:00Z").unwrap(),
            "2026-11-25T10:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            parse("2026-11-25").unwrap(),
            "2026-11-25T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        let t = parse("2h").unwrap();
        let diff = Timestamp::now().as_second() - t.as_second();
        assert!((7199..=7201).contains(&diff), "{diff}");
        assert!(parse("yesterday").is_err());
        assert!(parse("5 parsecs").is_err());
    }
}
