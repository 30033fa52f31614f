//! Splitting one line into fields: a delimiter, and `"`-quoted fields that may
//! contain the delimiter (`"a;b"`) and doubled quotes (`"say ""hi"""`).
//!
//! A record is one line: a quoted field does not continue on the next line.
//! An unterminated quote is an error for that line only, so one stray `"`
//! cannot swallow the rest of a file.

use std::borrow::Cow;

/// A line that cannot be split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SplitError {
    /// 1-based column where the problem is.
    pub column: usize,
    pub message: &'static str,
}

/// Split `line` at `delimiter`. Unquoted fields are returned as they are
/// (callers trim); quoted fields without their quotes.
pub(crate) fn split(line: &str, delimiter: char) -> Result<Vec<Cow<'_, str>>, SplitError> {
    let is_pad = |c: char| (c == ' ' || c == '\t') && c != delimiter;
    let mut fields = Vec::new();
    let mut rest = line;
    loop {
        let column = fields.len() + 1;
        let start = rest.trim_start_matches(is_pad);
        if let Some(quoted) = start.strip_prefix('"') {
            let mut value = String::new();
            let mut s = quoted;
            loop {
                let Some(i) = s.find('"') else {
                    return Err(SplitError {
                        column,
                        message: "a quoted field has no closing quote",
                    });
                };
                value.push_str(s.get(..i).unwrap_or_default());
                s = s.get(i + 1..).unwrap_or_default();
                match s.strip_prefix('"') {
                    Some(after) => {
                        value.push('"');
                        s = after;
                    }
                    None => break,
                }
            }
            let after = s.trim_start_matches(is_pad);
            fields.push(Cow::Owned(value));
            if after.is_empty() {
                return Ok(fields);
            }
            match after.strip_prefix(delimiter) {
                Some(next) => rest = next,
                None => {
                    return Err(SplitError {
                        column,
                        message: "text follows the closing quote of a quoted field",
                    });
                }
            }
        } else {
            match rest.split_once(delimiter) {
                Some((field, next)) => {
                    fields.push(Cow::Borrowed(field));
                    rest = next;
                }
                None => {
                    fields.push(Cow::Borrowed(rest));
                    return Ok(fields);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str, d: char) -> Vec<String> {
        split(line, d)
            .unwrap()
            .into_iter()
            .map(|f| f.into_owned())
            .collect()
    }

    #[test]
    fn plain() {
        assert_eq!(ok("a;b;;c", ';'), ["a", "b", "", "c"]);
        assert_eq!(ok("", ';'), [""]);
        assert_eq!(ok("a;", ';'), ["a", ""]);
        assert_eq!(ok("a\tb", '\t'), ["a", "b"]);
        assert_eq!(ok("a b", ' '), ["a", "b"]);
    }

    #[test]
    fn quoted() {
        assert_eq!(ok(r#""a;b";c"#, ';'), ["a;b", "c"]);
        assert_eq!(ok(r#" "x" ;"y""z";"""#, ';'), ["x", r#"y"z"#, ""]);
        assert_eq!(ok(r#""1,5","2,5""#, ','), ["1,5", "2,5"]);
        // A quote inside an unquoted field is kept as it is.
        assert_eq!(ok(r#"ab"c;d"#, ';'), [r#"ab"c"#, "d"]);
    }

    #[test]
    fn bad_quotes() {
        let e = split(r#"a;"b;c"#, ';').unwrap_err();
        assert_eq!(e.column, 2);
        let e = split(r#""a"x;b"#, ';').unwrap_err();
        assert_eq!(e.column, 1);
    }

    #[test]
    fn many_quotes_are_linear() {
        let line = "\"".repeat(200_001);
        assert!(split(&line, ';').is_err());
        let line = "\"".repeat(200_000);
        assert_eq!(split(&line, ';').unwrap().len(), 1);
    }
}
