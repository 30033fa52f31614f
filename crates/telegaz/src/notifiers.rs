//! The `[[notifier]]` tables of the configuration, as senders of alert
//! notifications.

use std::sync::Arc;

use telegaz_alerts::Sender;
use telegaz_config::Config;

/// Build every configured notifier (none yet in this build: the tables are
/// refused with a clear message rather than ignored).
pub fn build(config: &Config) -> anyhow::Result<Vec<Arc<dyn Sender>>> {
    if let Some(first) = config.notifier.first() {
        anyhow::bail!(
            "[[notifier]] {first:?}: notifiers are not available in this build yet; remove the table"
        );
    }
    Ok(Vec::new())
}
