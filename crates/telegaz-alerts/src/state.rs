//! Each unit's latest state, published where dashboards can subscribe to it
//! (MQTT, retained): last contact, the newest hourly reading, open alerts.

use async_trait::async_trait;
use jiff::Timestamp;
use serde::Serialize;
use telegaz_domain::ArchiveRecord;

use crate::SendError;

/// A unit's latest state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceState {
    pub device: String,
    pub title: String,
    pub enabled: bool,
    pub last_contact: Option<Timestamp>,
    /// The newest hourly row (exact decimals, as the corrector printed them).
    pub newest: Option<ArchiveRecord>,
    /// Kinds of the alerts open on the unit (`silent`, `limit`, …).
    pub alerts: Vec<String>,
}

/// Somewhere to publish units' states to.
#[async_trait]
pub trait StatePublisher: Send + Sync {
    fn name(&self) -> &str;
    async fn publish(&self, state: &DeviceState) -> Result<(), SendError>;
}
