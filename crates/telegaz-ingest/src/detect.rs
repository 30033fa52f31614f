//! Which parser reads a file: profiles bound to the device or the file name
//! first, then the recognisers of known formats, then unbound profiles.

use telegaz_domain::{ParsedFile, Unrecognised};
use telegaz_profile::Profile;

/// The profiles in force: the shipped ones and the operator's.
#[derive(Debug, Clone, Default)]
pub struct Profiles {
    pub list: Vec<Profile>,
}

impl Profiles {
    pub fn new(list: Vec<Profile>) -> Self {
        Self { list }
    }
}

/// The profiles in force, shared between the ingest worker and whoever edits
/// them (the web UI): replacing them takes effect from the next file on.
#[derive(Debug, Clone, Default)]
pub struct SharedProfiles(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Profiles>>>);

impl SharedProfiles {
    pub fn new(profiles: Profiles) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(profiles),
        )))
    }

    /// The profiles now in force.
    pub fn current(&self) -> std::sync::Arc<Profiles> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn replace(&self, profiles: Profiles) {
        let new = std::sync::Arc::new(profiles);
        match self.0.write() {
            Ok(mut guard) => *guard = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// A profile file that could not be loaded, with the reason.
#[derive(Debug, Clone)]
pub struct ProfileLoadError {
    pub path: std::path::PathBuf,
    pub error: String,
}

/// The operator's profiles (`DIR/*.toml`, in name order) followed by the
/// shipped ones. A file that does not load is reported and skipped: it must
/// not stop the receiver.
pub fn load_profile_dir(dir: &std::path::Path) -> (Profiles, Vec<ProfileLoadError>) {
    let mut list = Vec::new();
    let mut errors = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
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
                Err(error) => errors.push(ProfileLoadError { path, error }),
            }
        }
    }
    list.extend(telegaz_profile::builtin());
    (Profiles::new(list), errors)
}

/// One parser's verdict, kept for the quarantine reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub parser: String,
    pub reason: String,
}

fn why_not(attempts: &[Attempt]) -> Unrecognised {
    if attempts.is_empty() {
        return Unrecognised::new(
            "not a known format: not LIS-200 text or a serial capture, and no profile applies; \
             describe the format in a profile (see the README) and run `telegaz reparse`",
        );
    }
    let tried: Vec<String> = attempts
        .iter()
        .map(|a| format!("{}: {}", a.parser, a.reason))
        .collect();
    Unrecognised::new(format!(
        "not understood ({}); fix or add a profile and run `telegaz reparse`",
        tried.join("; ")
    ))
}

/// Detect the format of `bytes` and parse them.
pub fn detect_and_parse(
    bytes: &[u8],
    file_name: &str,
    device: &str,
    profiles: &Profiles,
) -> Result<ParsedFile, Unrecognised> {
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Unrecognised::new("the file is empty"));
    }
    let mut attempts = Vec::new();
    // 1. Profiles bound to this device or file name: the operator said so.
    for p in profiles.list.iter().filter(|p| p.binds(device, file_name)) {
        match p.parse(bytes) {
            Ok(parsed) => return Ok(parsed),
            Err(e) => attempts.push(Attempt {
                parser: format!("profile {}", p.name()),
                reason: e.reason,
            }),
        }
    }
    // 2. Known formats.
    if telegaz_lis200::looks_like(bytes) {
        match telegaz_lis200::parse(bytes) {
            Ok(parsed) => return Ok(parsed),
            Err(e) => attempts.push(Attempt {
                parser: "LIS-200".into(),
                reason: e.reason,
            }),
        }
    }
    // 3. Unbound profiles, in order.
    for p in profiles.list.iter().filter(|p| !p.binds(device, file_name)) {
        if let Ok(parsed) = p.parse(bytes) {
            return Ok(parsed);
        }
    }
    Err(why_not(&attempts))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_files_are_refused_with_a_reason() {
        let p = Profiles::default();
        assert_eq!(
            detect_and_parse(b"", "a.txt", "u", &p).unwrap_err().reason,
            "the file is empty"
        );
        assert!(detect_and_parse(b"  \r\n\r\n", "a.txt", "u", &p).is_err());
    }

    #[test]
    fn unknown_content_says_what_to_do() {
        let p = Profiles::new(telegaz_profile::builtin());
        let e = detect_and_parse(b"hello world\n", "a.txt", "u", &p).unwrap_err();
        assert!(e.reason.contains("reparse"), "{}", e.reason);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..4096)) {
            let p = Profiles::new(telegaz_profile::builtin());
            let _ = detect_and_parse(&bytes, "x.csv", "u", &p);
        }
    }
}
