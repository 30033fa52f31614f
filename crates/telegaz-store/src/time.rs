//! Timestamps as fixed-width UTC text, so that text order is time order.

use jiff::Timestamp;

use crate::StoreError;

pub(crate) fn to_text(ts: Timestamp) -> String {
    let micros = ts.as_microsecond();
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let whole = Timestamp::from_second(secs).unwrap_or(Timestamp::UNIX_EPOCH);
    format!("{}.{frac:06}Z", whole.strftime("%Y-%m-%dT%H:%M:%S"))
}

pub(crate) fn from_text(s: &str) -> Result<Timestamp, StoreError> {
    s.parse::<Timestamp>()
        .map_err(|e| StoreError::Corrupt(format!("timestamp {s:?}: {e}")))
}

/// A nullable timestamp column of a row (`what` names the row in errors).
pub(crate) fn opt_time(
    row: &sqlx::sqlite::SqliteRow,
    col: &str,
    what: &str,
) -> Result<Option<Timestamp>, StoreError> {
    use sqlx::Row;
    row.try_get::<Option<String>, _>(col)
        .map_err(|e| StoreError::Corrupt(format!("{what} row: {e}")))?
        .as_deref()
        .map(from_text)
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_and_round_trip() {
        let t: Timestamp = "2026-11-25T10:00:00.5Z".parse().unwrap();
        let s = to_text(t);
        assert_eq!(s, "2026-11-25T10:00:00.500000Z");
        assert_eq!(from_text(&s).unwrap(), t);
        let early: Timestamp = "2026-11-25T09:59:59.999999Z".parse().unwrap();
        assert!(to_text(early) < s);
    }
}
