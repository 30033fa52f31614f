//! Text profiles: the shipped ones and the operator's TOML files in `<data_dir>/profiles/`.

use telegaz_config::Config;
use telegaz_ingest::Profiles;

/// Load the profiles. A profile that does not load is reported and skipped:
/// it must not stop the receiver (files it would have read are quarantined and
/// can be re-parsed once it is fixed).
pub fn load(config: &Config) -> Profiles {
    let (profiles, errors) = telegaz_ingest::load_profile_dir(&config.data_dir.join("profiles"));
    for e in errors {
        tracing::error!(profile = %e.path.display(), error = %e.error, "profile skipped: fix it and run `telegaz reparse --status quarantined`");
    }
    profiles
}
