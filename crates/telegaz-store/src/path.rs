//! Virtual paths in a device's namespace are stored as (parent, name) pairs.

/// Split an absolute normalised path into its parent directory and last name.
/// `"/a.txt"` → `("/", "a.txt")`; `"/x/y/b"` → `("/x/y", "b")`; `"/"` → `None`.
pub fn split_path(path: &str) -> Option<(&str, &str)> {
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let idx = trimmed.rfind('/')?;
    let name = &trimmed[idx + 1..];
    if name.is_empty() {
        return None;
    }
    let parent = if idx == 0 { "/" } else { &trimmed[..idx] };
    Some((parent, name))
}

/// The inverse of [`split_path`].
pub fn join_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_joins() {
        assert_eq!(split_path("/a.txt"), Some(("/", "a.txt")));
        assert_eq!(split_path("/x/y/b"), Some(("/x/y", "b")));
        assert_eq!(split_path("/"), None);
        assert_eq!(join_path("/", "a"), "/a");
        assert_eq!(join_path("/x", "a"), "/x/a");
    }
}
