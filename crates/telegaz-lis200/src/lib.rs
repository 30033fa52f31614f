//! LIS-200 / IEC 62056-21 archive readouts (placeholder: being written).

use telegaz_domain::{ParsedFile, Unrecognised};

/// Parse a clean readout or a raw serial capture.
pub fn parse(_bytes: &[u8]) -> Result<ParsedFile, Unrecognised> {
    Err(Unrecognised::new("the LIS-200 parser is not written yet"))
}
