//! The ingest pipeline: every complete upload is detected, parsed, validated
//! and stored by a background worker; what is not understood is quarantined
//! with a reason and can be re-processed later (`telegaz reparse`).
//!
//! The queue lives in the database (`ingest` rows, written with the upload
//! itself), so a crash while parsing leaves the upload pending and it is redone
//! after restart. Parsers run on the blocking pool: one that fails or panics
//! marks its upload `failed` and never holds up the others. An upload that
//! made the worker die [`MAX_ATTEMPTS`] times is marked failed.

mod detect;
mod worker;

pub use detect::{
    Attempt, ProfileLoadError, Profiles, SharedProfiles, detect_and_parse, load_profile_dir,
};
pub use worker::{DEFAULT_CLAIM_LEASE, GROUP_BYTES, GROUP_UPLOADS, IngestError, Ingestor, Outcome};

/// Attempts before an upload is marked failed (a crash during parsing counts).
pub const MAX_ATTEMPTS: u32 = 3;
