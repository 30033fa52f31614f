//! A parsed file's records encoded for their rows, once, by whoever parsed
//! the file.

use std::sync::Arc;

use telegaz_domain::{ArchiveRecord, ParsedFile};

use crate::{Result, StoreError};

/// A parsed file with its records encoded for storage (the JSON of the
/// quantities, status words and check; the key columns). The ingest worker
/// makes it in the task that parsed the file, on another core than the
/// database writer's, so that storing a file only binds values.
///
/// The records cannot change once encoded; warnings can still be added.
#[derive(Debug)]
pub struct PreparedFile {
    parsed: ParsedFile,
    rows: Vec<Encoded>,
}

impl PreparedFile {
    /// Encode the records of `parsed`.
    pub fn new(parsed: ParsedFile) -> Result<Self> {
        // One shared text per archive kind, not one per row.
        let mut kinds: Vec<(&'static str, Arc<str>)> = Vec::new();
        let rows = parsed
            .records
            .iter()
            .map(|r| {
                let name = r.kind.as_str();
                let text = match kinds.iter().find(|(k, _)| *k == name) {
                    Some((_, t)) => Arc::clone(t),
                    None => {
                        let t: Arc<str> = Arc::from(name);
                        kinds.push((name, Arc::clone(&t)));
                        t
                    }
                };
                Encoded::new(r, text)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(PreparedFile { parsed, rows })
    }

    pub fn parsed(&self) -> &ParsedFile {
        &self.parsed
    }

    /// Add a warning (a thing a person may want to know about the file).
    pub fn warn(&mut self, warning: String) {
        self.parsed.warnings.push(warning);
    }

    pub fn into_parsed(self) -> ParsedFile {
        self.parsed
    }

    /// The records' rows, in the order of [`ParsedFile::records`].
    pub(crate) fn rows(&self) -> &[Encoded] {
        &self.rows
    }
}

pub(crate) fn json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("encoding a record: {e}")))
}

fn shared_json<T: serde::Serialize>(v: &T) -> Result<Arc<str>> {
    json(v).map(Arc::from)
}

/// `2026-01-14T11:00:00`: fixed width, so that text order is time order.
pub(crate) fn local_text(t: jiff::civil::DateTime) -> String {
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        t.month(),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// One record, encoded for its row in either backend. The JSON texts come
/// from one serializer, so that equal values have equal texts (and equal
/// JSONB).
///
/// The texts are shared (`Arc<str>`): sqlx takes a bound text as its own,
/// and a `String` or `&str` is copied into a fresh allocation for that,
/// while an `Arc<str>` is only counted once more: five allocations and
/// copies a row fewer, freed on the writer thread before. (Less work by
/// construction; the ingest benchmark could not tell it from its noise.)
#[derive(Debug)]
pub(crate) struct Encoded {
    pub(crate) kind: &'static str,
    /// `kind` as a shared text, for binding.
    pub(crate) kind_text: Arc<str>,
    pub(crate) local: jiff::civil::DateTime,
    /// [`local_text`] of `local`, as SQLite stores it.
    pub(crate) local_text: Arc<str>,
    /// `-1` when the device gave none (part of the key, so never NULL).
    pub(crate) record_no: i64,
    pub(crate) utc_offset: Option<i32>,
    pub(crate) quantities: Arc<str>,
    pub(crate) status: Arc<str>,
    pub(crate) event_code: Option<i32>,
    pub(crate) checked: Arc<str>,
    pub(crate) line: i32,
}

impl Encoded {
    fn new(r: &ArchiveRecord, kind_text: Arc<str>) -> Result<Self> {
        Ok(Encoded {
            kind: r.kind.as_str(),
            kind_text,
            local: r.local_time,
            local_text: Arc::from(local_text(r.local_time)),
            record_no: r
                .record_no
                .and_then(|n| i64::try_from(n).ok())
                .unwrap_or(-1),
            utc_offset: r.utc_offset_seconds,
            quantities: shared_json(&r.quantities)?,
            status: shared_json(&r.status)?,
            event_code: r.event_code.map(i32::from),
            checked: shared_json(&r.check)?,
            line: i32::try_from(r.line).unwrap_or(i32::MAX),
        })
    }
}
