//! Text profiles: the shipped ones and the operator's TOML files in `<data_dir>/profiles/`.

use telegaz_config::Config;
use telegaz_ingest::Profiles;
use telegaz_profile::Profile;

/// Load the profiles. A profile that does not load is reported and skipped:
/// it must not stop the receiver (files it would have read are quarantined and
/// can be re-parsed once it is fixed).
pub fn load(config: &Config) -> Profiles {
    let mut list = Vec::new();
    let dir = config.data_dir.join("profiles");
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut paths: Vec<_> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            match std::fs::read_to_string(&path)
                .map_err(|e| e.to_string())
                .and_then(|text| Profile::from_toml(&name, &text).map_err(|e| e.to_string()))
            {
                Ok(p) => list.push(p),
                Err(e) => {
                    tracing::error!(profile = %path.display(), error = %e, "profile skipped: fix it and run `telegaz reparse --status quarantined`")
                }
            }
        }
    }
    list.extend(telegaz_profile::builtin());
    Profiles::new(list)
}
