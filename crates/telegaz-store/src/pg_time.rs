//! jiff times in PostgreSQL columns: `TIMESTAMPTZ` ⇄ [`Timestamp`] (an
//! instant) and `TIMESTAMP` ⇄ [`DateTime`] (a device's wall-clock time).
//!
//! Both travel as microseconds since 2000-01-01 00:00 (PostgreSQL's epoch) in
//! the binary protocol; the text form is read too, for completeness.

use jiff::Timestamp;
use jiff::civil::DateTime;
use sqlx::Postgres;
use sqlx::decode::Decode;
use sqlx::encode::{Encode, IsNull};
use sqlx::error::BoxDynError;
use sqlx::postgres::types::Oid;
use sqlx::postgres::{PgArgumentBuffer, PgHasArrayType, PgTypeInfo, PgValueFormat, PgValueRef};
use sqlx::types::Type;

/// PostgreSQL's epoch, 2000-01-01T00:00:00Z, in microseconds since the Unix epoch.
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// The built-in types' fixed OIDs (`pg_type.oid`).
const TIMESTAMP: Oid = Oid(1114);
const TIMESTAMP_ARRAY: Oid = Oid(1115);
const TIMESTAMPTZ: Oid = Oid(1184);
const TIMESTAMPTZ_ARRAY: Oid = Oid(1185);

/// An instant in a `TIMESTAMPTZ` column (microsecond precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgTime(pub Timestamp);

/// A wall-clock time in a `TIMESTAMP` column (microsecond precision).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PgLocal(pub DateTime);

/// PostgreSQL's epoch as a wall-clock time.
const PG_EPOCH_CIVIL: DateTime = jiff::civil::date(2000, 1, 1).at(0, 0, 0, 0);

impl PgLocal {
    fn to_micros(self) -> Result<i64, BoxDynError> {
        Ok(i64::try_from(
            self.0.duration_since(PG_EPOCH_CIVIL).as_micros(),
        )?)
    }

    fn from_micros(micros: i64) -> Result<Self, BoxDynError> {
        Ok(PgLocal(
            PG_EPOCH_CIVIL.checked_add(jiff::SignedDuration::from_micros(micros))?,
        ))
    }
}

fn micros_to_timestamp(pg_micros: i64) -> Result<Timestamp, BoxDynError> {
    let unix = pg_micros
        .checked_add(PG_EPOCH_MICROS)
        .ok_or("timestamp out of range")?;
    Ok(Timestamp::from_microsecond(unix)?)
}

fn timestamp_to_micros(t: Timestamp) -> Result<i64, BoxDynError> {
    Ok(t.as_microsecond()
        .checked_sub(PG_EPOCH_MICROS)
        .ok_or("timestamp out of range")?)
}

impl Type<Postgres> for PgTime {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid() == Some(TIMESTAMPTZ)
    }
}

impl PgHasArrayType for PgTime {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMPTZ_ARRAY)
    }
}

impl Encode<'_, Postgres> for PgTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(timestamp_to_micros(self.0)?, buf)
    }

    fn size_hint(&self) -> usize {
        std::mem::size_of::<i64>()
    }
}

impl<'r> Decode<'r, Postgres> for PgTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => {
                let micros: i64 = Decode::<Postgres>::decode(value)?;
                Ok(PgTime(micros_to_timestamp(micros)?))
            }
            // `2026-11-25 10:00:00.5+00`: jiff reads ISO 8601 with a space.
            PgValueFormat::Text => Ok(PgTime(value.as_str()?.parse()?)),
        }
    }
}

impl Type<Postgres> for PgLocal {
    fn type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMP)
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        ty.oid() == Some(TIMESTAMP)
    }
}

impl PgHasArrayType for PgLocal {
    fn array_type_info() -> PgTypeInfo {
        PgTypeInfo::with_oid(TIMESTAMP_ARRAY)
    }
}

impl Encode<'_, Postgres> for PgLocal {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        Encode::<Postgres>::encode(self.to_micros()?, buf)
    }

    fn size_hint(&self) -> usize {
        std::mem::size_of::<i64>()
    }
}

impl<'r> Decode<'r, Postgres> for PgLocal {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        match value.format() {
            PgValueFormat::Binary => PgLocal::from_micros(Decode::<Postgres>::decode(value)?),
            PgValueFormat::Text => Ok(PgLocal(value.as_str()?.parse()?)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_line_up() {
        let t: Timestamp = "2000-01-01T00:00:00Z".parse().unwrap();
        assert_eq!(timestamp_to_micros(t).unwrap(), 0);
        let t: Timestamp = "2026-11-25T10:00:00.123456Z".parse().unwrap();
        assert_eq!(
            micros_to_timestamp(timestamp_to_micros(t).unwrap()).unwrap(),
            t
        );
        let local = PgLocal(jiff::civil::date(1999, 12, 31).at(23, 0, 0, 0));
        assert_eq!(local.to_micros().unwrap(), -3_600_000_000);
        let last = jiff::civil::date(9999, 12, 31).at(23, 59, 59, 999_999_000);
        for t in [jiff::civil::date(1, 1, 1).at(0, 0, 0, 0), last, local.0] {
            let back = PgLocal::from_micros(PgLocal(t).to_micros().unwrap()).unwrap();
            assert_eq!(back.0, t);
        }
    }

    #[test]
    fn text_forms_parse() {
        let t: Timestamp = "2026-11-25 10:00:00.5+00".parse().unwrap();
        assert_eq!(t, "2026-11-25T10:00:00.5Z".parse().unwrap());
        let d: DateTime = "2026-01-14 11:00:00".parse().unwrap();
        assert_eq!(d, jiff::civil::date(2026, 1, 14).at(11, 0, 0, 0));
    }
}
