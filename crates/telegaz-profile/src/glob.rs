//! Simple glob patterns for bindings: `*` matches any run of characters
//! (including none), `?` exactly one; everything else matches itself,
//! ignoring letter case.

/// A validated binding pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    chars: Vec<char>,
}

impl Pattern {
    /// The longest pattern accepted (device names have at most 64 characters,
    /// file names rarely more than 255).
    pub(crate) const MAX_LEN: usize = 256;

    pub(crate) fn new(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("a pattern must not be empty".to_owned());
        }
        if text.chars().count() > Self::MAX_LEN {
            return Err(format!(
                "a pattern must not be longer than {} characters",
                Self::MAX_LEN
            ));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{text:?} contains control characters"));
        }
        Ok(Self {
            chars: text.chars().collect(),
        })
    }

    /// Whether `text` matches the whole pattern.
    ///
    /// Iterative matching with one backtracking point (the last `*`): at most
    /// pattern length × text length steps, no recursion.
    pub(crate) fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let pat = &self.chars;
        let (mut p, mut t) = (0, 0);
        // Position of the last `*` seen and the text position it resumes from.
        let mut star: Option<(usize, usize)> = None;
        while let Some(&c) = text.get(t) {
            match pat.get(p) {
                Some('*') => {
                    star = Some((p, t));
                    p += 1;
                }
                Some(&pc) if pc == '?' || same_letter(pc, c) => {
                    p += 1;
                    t += 1;
                }
                _ => match star {
                    Some((sp, st)) => {
                        p = sp + 1;
                        t = st + 1;
                        star = Some((sp, st + 1));
                    }
                    None => return false,
                },
            }
        }
        pat.get(p..)
            .is_some_and(|rest| rest.iter().all(|&c| c == '*'))
    }
}

fn same_letter(a: char, b: char) -> bool {
    a == b || a.to_lowercase().eq(b.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Pattern::new(p).unwrap().matches(t)
    }

    #[test]
    fn globs() {
        assert!(m("*.csv", "export_cp1251.csv"));
        assert!(m("*.csv", "EXPORT.CSV"));
        assert!(m("export_*", "export_cp1251.csv"));
        assert!(!m("export_*", "my_export_cp1251.csv"));
        assert!(m("bpek-??", "bpek-01"));
        assert!(!m("bpek-??", "bpek-1"));
        assert!(m("*", ""));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxaxxbxxc"));
        assert!(m("Отчёт_*.csv", "отчёт_1.csv"));
        assert!(m("exact", "exact"));
        assert!(!m("exact", "exact1"));
        assert!(!m("a?", "a"));
    }

    #[test]
    fn bad_patterns() {
        assert!(Pattern::new("").is_err());
        assert!(Pattern::new("  ").is_err());
        assert!(Pattern::new("a\nb").is_err());
        assert!(Pattern::new(&"x".repeat(300)).is_err());
    }

    #[test]
    fn pathological_pattern_terminates() {
        let p = Pattern::new(&"*a".repeat(100)).unwrap();
        assert!(!p.matches(&"a".repeat(99)));
        assert!(p.matches(&"a".repeat(100)));
    }
}
