//! Declarative text profiles: an operator describes a CSV-like text export in
//! a TOML file, and Telegaz reads such files without new code.
//!
//! A [`Profile`] is made with [`Profile::from_toml`] (the name is the file
//! stem and shows up as `profile:<name>` in [`ParsedFile::format`]);
//! [`Profile::parse`] turns a file's bytes into a [`ParsedFile`] or refuses it
//! with an [`Unrecognised`] reason that says where the file and the profile
//! disagree. [`builtin`] returns the profiles shipped with Telegaz.
//!
//! # The TOML schema
//!
//! Unknown keys are errors everywhere, so a typo never goes unnoticed.
//!
//! ```toml
//! description = "Vendor CSV export"   # optional, for people
//! model = "TC220"                      # optional: FileMeta.model of every file read
//! kind = "interval"                    # interval (default) | daily | monthly
//!
//! [bind]                               # optional; without it the profile binds
//! devices = ["bpek-*"]                 # nothing and is only tried in generic
//! file_names = ["export_*.csv"]        # detection. `*` and `?`, case ignored.
//!
//! [format]
//! encoding = "windows-1251"            # utf-8 | windows-1251 (cp1251) | koi8-r | ibm866 (cp866);
//!                                      # a byte-order mark in the file overrides it
//! delimiter = ";"                      # one character: ";", ",", "\t", "|", …
//! decimal_separator = ","              # "," or "."
//! header_line = 1                      # optional: line holding the column names
//! skip_lines = 1                       # optional: lines before the data
//!                                      # (default: header_line, or 0)
//! require_final_newline = true         # optional, see "Cut-off files" below
//!
//! [timestamp]
//! date = "Дата"                        # a column: number counted from 1, or header text
//! date_format = "%d.%m.%Y"             # strftime-style (jiff): %d %m %Y %y %H %M %S %I %p …
//! time = "Время"
//! time_format = "%H:%M"                # "24:00" is read as midnight of the next day
//! # or, one column holding both:
//! # datetime = 1
//! # datetime_format = "%d.%m.%Y %H:%M:%S"
//! marks = "end"                        # end (default) | start of the interval
//! interval = "1h"                      # added to start timestamps; default 1h
//!                                      # (1 day for daily, 1 month for monthly)
//!
//! [[columns]]                          # one entry per column read
//! column = "Vст, м3"                   # number counted from 1, or header text
//! quantity = "vb"                      # see below
//! unit = "m3"                          # see below
//! # ok = ["0"]                         # status/check only: texts that mean "good"
//! ```
//!
//! Quantities and units (values are converted exactly, in decimal, into the
//! model's units):
//!
//! | quantity | meaning | `unit` |
//! |---|---|---|
//! | `vb`, `vbt`, `vm`, `vo`, `vb_disturbed`, `vm_disturbed` | volume counters | `m3` (default) |
//! | `p` | pressure | required: `kPa`, `bar` (×100), `MPa` (×1000), `kgf/cm2` (×98.0665) |
//! | `t` | temperature | required: `°C` (or `C`), `K` (−273.15) |
//! | `k`, `c` | compressibility, conversion factor | none |
//! | `flow` | flow | `m3/h` (default) |
//! | `status` | status text, kept in `ArchiveRecord::status` (may repeat) | none |
//! | `check` | the row's check; needs `ok = [...]` | none |
//!
//! A `status` column with `ok = [...]`, or a `check` column, decides the
//! row's [`Check`](telegaz_domain::Check): `Ok` when every such cell is one
//! of its `ok` texts (case ignored), `Failed(text)` otherwise. Without them
//! rows carry `Check::Absent`.
//!
//! # How files are read
//!
//! - Each line is one row; quoted fields (`"a;b"`, `"say ""hi"""`) may hold the
//!   delimiter but not a line break. Blank lines and lines of bare delimiters
//!   are skipped. Line numbers are 1-based and kept in `ArchiveRecord::line`.
//! - Header texts match exactly after trimming. With a header, every row must
//!   have as many fields as the header (one trailing empty field is tolerated).
//! - An empty numeric cell means the quantity is absent from that row.
//! - A row that does not fit (column count, number, impossible date) is
//!   skipped with a warning naming its line and column. If no row fits, or
//!   more than half of the data rows do not, the whole file is refused
//!   (quarantined), never half-imported. At most 100 warnings are kept,
//!   followed by a count of the rest.
//! - Cut-off files: with `require_final_newline = true` (the default) a last
//!   line without a line break is taken as cut off mid-row: it is not imported
//!   and the file is marked `truncated`. With `false`, such a line is read
//!   when it fits and is taken as cut off only when it does not.
//! - Timestamps are normalised to the END of the interval (`marks = "start"`
//!   adds `interval`). UTC offsets are not read: the device's time zone decides.

mod fields;
mod glob;
mod parse;
mod profile;
mod units;

#[cfg(test)]
mod tests;

pub use profile::{Profile, ProfileError};
use telegaz_domain::{ParsedFile, Unrecognised};

/// The profiles shipped with Telegaz: (name, TOML text).
const BUILTIN: &[(&str, &str)] = &[(
    "vendor-csv-cp1251",
    include_str!("../profiles/vendor-csv-cp1251.toml"),
)];

/// The shipped profiles as text: (name, TOML), for showing and copying.
pub fn builtin_sources() -> &'static [(&'static str, &'static str)] {
    BUILTIN
}

/// Profiles shipped with Telegaz (from `profiles/*.toml` in this crate).
pub fn builtin() -> Vec<Profile> {
    BUILTIN
        .iter()
        .filter_map(|(name, text)| Profile::from_toml(name, text).ok())
        .collect()
}

impl Profile {
    /// Read a file with this profile.
    ///
    /// Returns [`Unrecognised`] when the file does not match: the header lacks
    /// a named column, no row fits, or more than half of the data rows do not
    /// fit. The reason names the line and column of the first misfit.
    pub fn parse(&self, bytes: &[u8]) -> Result<ParsedFile, Unrecognised> {
        parse::parse(self, bytes)
    }
}
