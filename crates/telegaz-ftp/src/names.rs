//! Client bytes to names and back. Embedded clients send UTF-8, Windows-1251 or
//! worse; a name is decoded for reading and its exact bytes kept.

use encoding_rs::WINDOWS_1251;
use telegaz_domain::FileName;

/// How a session's client encodes names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameEncoding {
    Utf8,
    Cp1251,
}

/// Decode raw name bytes: UTF-8 when valid, else Windows-1251 (the encoding of
/// Russian-language firmware), which maps every byte to a character.
pub fn decode(raw: &[u8]) -> (FileName, NameEncoding) {
    match std::str::from_utf8(raw) {
        Ok(s) => (FileName::utf8(s), NameEncoding::Utf8),
        Err(_) => {
            let (text, _) = WINDOWS_1251.decode_without_bom_handling(raw);
            (
                FileName {
                    display: text.into_owned(),
                    raw: raw.to_vec(),
                },
                NameEncoding::Cp1251,
            )
        }
    }
}

/// Encode a name for a client in the given encoding (LIST, NLST, PWD, 257).
pub fn encode(name: &str, enc: NameEncoding) -> Vec<u8> {
    match enc {
        NameEncoding::Utf8 => name.as_bytes().to_vec(),
        NameEncoding::Cp1251 => {
            let (bytes, _, _) = WINDOWS_1251.encode(name);
            bytes.into_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cp1251_names_round_trip() {
        let raw = [0xee, 0xf2, 0xf7, 0xe5, 0xf2, b'.', b't', b'x', b't'];
        let (name, enc) = decode(&raw);
        assert_eq!(enc, NameEncoding::Cp1251);
        assert_eq!(name.display, "отчет.txt");
        assert_eq!(name.raw, raw);
        assert_eq!(encode(&name.display, enc), raw);
    }

    #[test]
    fn utf8_names_stay_utf8() {
        let (name, enc) = decode("отчет.txt".as_bytes());
        assert_eq!(enc, NameEncoding::Utf8);
        assert!(!name.was_transcoded());
    }
}
