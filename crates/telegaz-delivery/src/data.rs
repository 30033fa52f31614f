//! What a report needs from the database: each device's readings and events
//! around the requested gas days, with its time zone and contract hour.

use jiff::civil::Date;
use jiff::tz::TimeZone;
use telegaz_reports::DeviceData;
use telegaz_store::{Database, ReadingFilter, StoreError};

/// Why a report's data cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("no device named {0:?}; see `telegaz device list`")]
    NoDevice(String),
    #[error(
        "device {name} has an unknown time zone {tz:?}; fix it with `telegaz device set {name} --tz ZONE`"
    )]
    BadTimeZone { name: String, tz: String },
    #[error("gas day {0} is out of range")]
    OutOfRange(Date),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A device's gas-day settings.
#[derive(Debug, Clone)]
pub struct DaySettings {
    pub time_zone: TimeZone,
    pub contract_hour: i8,
}

/// The settings of a named device; `None` when there is no such device.
pub async fn day_settings(db: &dyn Database, name: &str) -> Result<Option<DaySettings>, LoadError> {
    let Some(d) = db.device_by_name(name).await? else {
        return Ok(None);
    };
    let time_zone = TimeZone::get(&d.time_zone).map_err(|_| LoadError::BadTimeZone {
        name: d.name.to_string(),
        tz: d.time_zone.clone(),
    })?;
    Ok(Some(DaySettings {
        time_zone,
        contract_hour: d.contract_hour,
    }))
}

/// Load the devices' data for the gas days `first..=last` (each device with its
/// own contract hour), with two hours before the first for the first hourly
/// difference.
pub async fn load_report_data(
    db: &dyn Database,
    devices: &[String],
    first: Date,
    last: Date,
) -> Result<Vec<DeviceData>, LoadError> {
    let mut out = Vec::with_capacity(devices.len());
    for name in devices {
        let d = db
            .device_by_name(name)
            .await?
            .ok_or_else(|| LoadError::NoDevice(name.clone()))?;
        let tz = TimeZone::get(&d.time_zone).map_err(|_| LoadError::BadTimeZone {
            name: name.clone(),
            tz: d.time_zone.clone(),
        })?;
        let end = last.tomorrow().map_err(|_| LoadError::OutOfRange(last))?;
        let filter = ReadingFilter {
            device_id: d.id,
            kind: None,
            from: Some(first.at(d.contract_hour, 0, 0, 0) - jiff::SignedDuration::from_hours(2)),
            to: Some(end.at(d.contract_hour, 0, 0, 0)),
        };
        out.push(DeviceData {
            name: d.name.to_string(),
            time_zone: tz,
            contract_hour: d.contract_hour,
            records: db.readings(&filter).await?,
            events: db.events(&filter).await?,
        });
    }
    Ok(out)
}
