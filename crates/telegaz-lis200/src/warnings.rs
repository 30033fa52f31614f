//! A bounded list of warnings: garbage input must not grow memory without bound.

use std::collections::BTreeSet;

/// How many warnings are kept word for word; the rest are only counted.
pub(crate) const KEPT: usize = 100;
/// How many distinct "say this once" keys are remembered.
const ONCE_KEYS: usize = 1000;

#[derive(Debug, Default)]
pub(crate) struct Warnings {
    kept: Vec<String>,
    dropped: usize,
    once: BTreeSet<String>,
    summaries: Vec<String>,
}

impl Warnings {
    /// Adds a warning (kept if fewer than [`KEPT`] are kept, otherwise counted).
    pub(crate) fn push(&mut self, message: String) {
        if self.kept.len() < KEPT {
            self.kept.push(message);
        } else {
            self.dropped += 1;
        }
    }

    /// Adds a warning the first time `key` is seen.
    pub(crate) fn once(&mut self, key: &str, message: impl FnOnce() -> String) {
        if self.once.contains(key) || self.once.len() >= ONCE_KEYS {
            return;
        }
        self.once.insert(key.to_owned());
        self.push(message());
    }

    /// Adds a closing summary; summaries are always kept (the parser adds a
    /// fixed, small number of them).
    pub(crate) fn summary(&mut self, message: String) {
        self.summaries.push(message);
    }

    /// The first `n` warnings, summaries last.
    pub(crate) fn first(&self, n: usize) -> impl Iterator<Item = &str> {
        self.kept
            .iter()
            .chain(&self.summaries)
            .take(n)
            .map(String::as_str)
    }

    pub(crate) fn into_vec(self) -> Vec<String> {
        let mut out = self.kept;
        if self.dropped > 0 {
            out.push(format!(
                "… and {} more warnings like the ones above",
                self.dropped
            ));
        }
        out.extend(self.summaries);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_hundred_and_counts_the_rest() {
        let mut w = Warnings::default();
        for i in 0..250 {
            w.push(format!("w{i}"));
        }
        w.summary("summary".into());
        let v = w.into_vec();
        assert_eq!(v.len(), KEPT + 2);
        assert_eq!(v[0], "w0");
        assert!(v[KEPT].contains("150 more"));
        assert_eq!(v[KEPT + 1], "summary");
    }

    #[test]
    fn once_is_once() {
        let mut w = Warnings::default();
        w.once("k", || "a".into());
        w.once("k", || "b".into());
        assert_eq!(w.into_vec(), vec!["a".to_string()]);
    }
}
