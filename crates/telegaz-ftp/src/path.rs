//! Virtual paths. A device's files live in a namespace that exists only in the
//! database; these paths are never handed to the file system, so no spelling of
//! `..`, absolute paths, encodings or links can reach outside it. Resolution still
//! clamps `..` at the root and refuses names no client should send. A
//! backslash is a separator, as DOS-style clients mean it.

use std::fmt;

/// Limits on what a client may name.
pub const MAX_COMPONENT_BYTES: usize = 255;
pub const MAX_PATH_BYTES: usize = 1024;
pub const MAX_DEPTH: usize = 16;

/// An absolute, normalised path in a device's namespace: `/`, `/a`, `/a/b.txt`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VPath(String);

/// Why a path was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("file names may not contain control characters")]
    ControlCharacter,
    #[error("a file name is longer than {MAX_COMPONENT_BYTES} bytes")]
    ComponentTooLong,
    #[error("the path is longer than {MAX_PATH_BYTES} bytes")]
    TooLong,
    #[error("the path is nested deeper than {MAX_DEPTH} directories")]
    TooDeep,
    #[error("a file name is required")]
    Empty,
}

impl VPath {
    pub fn root() -> Self {
        VPath("/".into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// Resolve a client-supplied argument against the current directory.
    pub fn resolve(cwd: &VPath, arg: &str) -> Result<VPath, PathError> {
        if arg.chars().any(|c| c.is_control()) {
            return Err(PathError::ControlCharacter);
        }
        // Some embedded clients write DOS-style paths: `\` separates too.
        let mut parts: Vec<&str> = if arg.starts_with(['/', '\\']) {
            Vec::new()
        } else {
            cwd.components().collect()
        };
        for comp in arg.split(['/', '\\']) {
            match comp {
                "" | "." => {}
                ".." => {
                    parts.pop();
                }
                name => {
                    if name.len() > MAX_COMPONENT_BYTES {
                        return Err(PathError::ComponentTooLong);
                    }
                    parts.push(name);
                }
            }
            if parts.len() > MAX_DEPTH {
                return Err(PathError::TooDeep);
            }
        }
        let path = format!("/{}", parts.join("/"));
        if path.len() > MAX_PATH_BYTES {
            return Err(PathError::TooLong);
        }
        Ok(VPath(path))
    }

    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/').filter(|c| !c.is_empty())
    }

    /// The last component, or `None` for the root.
    pub fn file_name(&self) -> Option<&str> {
        self.components().last()
    }

    /// The parent directory (the root is its own parent).
    pub fn parent(&self) -> VPath {
        match self.0.rfind('/') {
            Some(0) | None => VPath::root(),
            Some(i) => VPath(self.0[..i].to_owned()),
        }
    }

    /// A child of this directory. `name` must be a single valid component.
    pub fn join(&self, name: &str) -> Result<VPath, PathError> {
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(PathError::Empty);
        }
        VPath::resolve(self, name)
    }
}

impl fmt::Display for VPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> VPath {
        VPath(s.into())
    }

    #[test]
    fn resolves_relative_absolute_and_dots() {
        let cwd = p("/arch/2026");
        assert_eq!(
            VPath::resolve(&cwd, "a.txt").unwrap(),
            p("/arch/2026/a.txt")
        );
        assert_eq!(VPath::resolve(&cwd, "/x").unwrap(), p("/x"));
        assert_eq!(VPath::resolve(&cwd, "../b").unwrap(), p("/arch/b"));
        assert_eq!(
            VPath::resolve(&cwd, "./c//d/").unwrap(),
            p("/arch/2026/c/d")
        );
        assert_eq!(VPath::resolve(&cwd, "").unwrap(), cwd);
    }

    #[test]
    fn backslashes_separate_like_slashes() {
        let cwd = p("/arch");
        assert_eq!(VPath::resolve(&cwd, "..\\..\\x.bin").unwrap(), p("/x.bin"));
        assert_eq!(VPath::resolve(&cwd, "\\in\\a.txt").unwrap(), p("/in/a.txt"));
        assert_eq!(VPath::resolve(&cwd, "d\\e").unwrap(), p("/arch/d/e"));
    }

    #[test]
    fn dot_dot_never_climbs_above_the_root() {
        let cwd = p("/a");
        assert_eq!(
            VPath::resolve(&cwd, "../../../../etc/passwd").unwrap(),
            p("/etc/passwd")
        );
        assert_eq!(VPath::resolve(&VPath::root(), "..").unwrap(), VPath::root());
    }

    #[test]
    fn percent_encoding_is_not_decoded() {
        let root = VPath::root();
        assert_eq!(VPath::resolve(&root, "%2e%2e/x").unwrap(), p("/%2e%2e/x"));
    }

    #[test]
    fn refuses_control_characters_and_oversize() {
        let root = VPath::root();
        assert_eq!(
            VPath::resolve(&root, "a\0b"),
            Err(PathError::ControlCharacter)
        );
        assert_eq!(
            VPath::resolve(&root, "a\nb"),
            Err(PathError::ControlCharacter)
        );
        assert_eq!(
            VPath::resolve(&root, &"x".repeat(256)),
            Err(PathError::ComponentTooLong)
        );
        assert_eq!(
            VPath::resolve(&root, &"a/".repeat(17)),
            Err(PathError::TooDeep)
        );
    }

    #[test]
    fn parent_and_name() {
        assert_eq!(p("/a/b").parent(), p("/a"));
        assert_eq!(p("/a").parent(), VPath::root());
        assert_eq!(VPath::root().parent(), VPath::root());
        assert_eq!(p("/a/b").file_name(), Some("b"));
        assert_eq!(VPath::root().file_name(), None);
    }

    proptest! {
        #[test]
        fn any_input_resolves_to_a_normalised_absolute_path(
            cwd in "(/[a-z.]{1,5}){0,4}",
            arg in "\\PC{0,80}",
        ) {
            let cwd = VPath::resolve(&VPath::root(), &cwd).unwrap();
            if let Ok(v) = VPath::resolve(&cwd, &arg) {
                let s = v.as_str();
                prop_assert!(s.starts_with('/'));
                prop_assert!(!s.contains("//"));
                prop_assert!(v.components().all(|c| c != ".." && c != "."));
                prop_assert!(s == "/" || !s.ends_with('/'));
                prop_assert!(s.len() <= MAX_PATH_BYTES);
            }
        }
    }
}
