//! What both backends do the same way with a parsed file's records.

use std::collections::HashMap;
use std::hash::Hash;

use telegaz_domain::RecordCounts;

/// Split a file's rows into the first of each key and the later rows with a
/// key seen before: a repeat with the same values counts as a duplicate, one
/// with other values as a conflict (returned second, to be recorded).
pub(crate) fn first_of_each_key<'a, T, K: Eq + Hash>(
    rows: &'a [T],
    key: impl Fn(&'a T) -> K,
    same_values: impl Fn(&T, &T) -> bool,
    counts: &mut RecordCounts,
) -> (Vec<&'a T>, Vec<&'a T>) {
    let mut first: HashMap<K, &'a T> = HashMap::with_capacity(rows.len());
    let mut unique = Vec::with_capacity(rows.len());
    let mut conflicts = Vec::new();
    for row in rows {
        match first.get(&key(row)) {
            None => {
                first.insert(key(row), row);
                unique.push(row);
            }
            Some(earlier) if same_values(row, earlier) => counts.duplicate += 1,
            Some(_) => {
                counts.conflicting += 1;
                conflicts.push(row);
            }
        }
    }
    (unique, conflicts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_duplicates_or_conflicts() {
        let rows = [(1, "a"), (2, "b"), (1, "a"), (2, "c"), (3, "d")];
        let mut counts = RecordCounts::default();
        let (unique, conflicts) = first_of_each_key(&rows, |r| r.0, |a, b| a.1 == b.1, &mut counts);
        assert_eq!(unique, vec![&(1, "a"), &(2, "b"), &(3, "d")]);
        assert_eq!(conflicts, vec![&(2, "c")]);
        assert_eq!((counts.duplicate, counts.conflicting), (1, 1));
    }
}
