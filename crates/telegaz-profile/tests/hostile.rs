//! Property tests: no input, however hostile, makes a profile panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use telegaz_profile::{Profile, builtin};

/// A header-less profile reading columns by number, so that arbitrary bytes
/// reach the row parser instead of stopping at the header.
const BY_NUMBER: &str = r#"
[format]
encoding = "utf-8"
delimiter = ";"
decimal_separator = ","
require_final_newline = false

[timestamp]
datetime = 1
datetime_format = "%d.%m.%Y %H:%M"
marks = "start"

[[columns]]
column = 2
quantity = "vb"
[[columns]]
column = 3
quantity = "p"
unit = "kgf/cm2"
[[columns]]
column = 4
quantity = "t"
unit = "K"
[[columns]]
column = 5
quantity = "check"
ok = ["0"]
"#;

/// Pieces that make near-valid files more likely.
fn piece() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        any::<Vec<u8>>(),
        Just(b"14.01.2026 11:00;1,5;1;300;0\n".to_vec()),
        Just(b"\"".to_vec()),
        Just(b";".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"24:00".to_vec()),
        Just(b"\xEF\xBB\xBF".to_vec()),
        Just(b"\xFF\xFE".to_vec()),
        Just(
            "Дата;Время;Vст, м3;Vраб, м3;P, кПа;T, °C;Kсж;Статус\r\n"
                .as_bytes()
                .to_vec()
        ),
        Just(b"\xc4\xe0\xf2\xe0;\xc2\xf0\xe5\xec\xff\r\n14.01.2026;11:00;4982,6473".to_vec()),
    ]
}

/// Fragments of profile TOML, so that generated texts get past the TOML
/// reader often enough to exercise validation.
fn toml_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        Just("[format]\n".to_owned()),
        Just("[timestamp]\n".to_owned()),
        Just("[[columns]]\n".to_owned()),
        Just("[bind]\ndevices = [\"*\"]\n".to_owned()),
        Just("encoding = \"koi8-r\"\n".to_owned()),
        Just("delimiter = \"\\t\"\n".to_owned()),
        Just("decimal_separator = \".\"\n".to_owned()),
        Just("header_line = 3\nskip_lines = 2\n".to_owned()),
        Just("datetime = 1\ndatetime_format = \"%s\"\n".to_owned()),
        Just("date = \"x\"\ndate_format = \"%d%m%Y%%%Q\"\n".to_owned()),
        Just("time = 2\ntime_format = \"%H%l%p\"\n".to_owned()),
        Just("interval = \"P1Y2M3DT4H\"\nmarks = \"start\"\n".to_owned()),
        Just("column = 99999999999\nquantity = \"p\"\nunit = \"MPa\"\n".to_owned()),
        Just("column = -3\n".to_owned()),
        Just("ok = [\"\"]\n".to_owned()),
        (0u32..20).prop_map(|n| format!("column = {n}\n")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(parts in prop::collection::vec(piece(), 0..40)) {
        let bytes: Vec<u8> = parts.concat();
        let by_number = Profile::from_toml("by-number", BY_NUMBER).unwrap();
        for p in builtin().iter().chain([&by_number]) {
            if let Ok(f) = p.parse(&bytes) {
                prop_assert!(!f.records.is_empty());
                prop_assert!(f.warnings.len() <= 101);
            }
        }
    }

    #[test]
    fn arbitrary_profile_text_never_panics(parts in prop::collection::vec(toml_piece(), 0..30)) {
        let text = parts.concat();
        if let Ok(p) = Profile::from_toml("fuzz", &text) {
            // Whatever was accepted must also read files without panicking.
            let _ = p.parse(b"1;2;3;4;5\n14.01.2026 11:00;1,5;1;300;0\n");
            let _ = p.binds("dev", "file.csv");
        }
    }

    #[test]
    fn mutated_valid_profiles_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, toml_piece()), 1..6),
        file in prop::collection::vec(piece(), 0..10),
    ) {
        // Start from a valid profile and delete, replace or insert lines, so
        // that most of the generated texts reach validation, not just the TOML reader.
        let mut lines: Vec<String> = BY_NUMBER.lines().map(str::to_owned).collect();
        for (at, op, text) in edits {
            let i = at.index(lines.len() + 1);
            match op {
                0 if i < lines.len() => { lines.remove(i); }
                1 if i < lines.len() => lines[i] = text,
                _ => lines.insert(i, text),
            }
        }
        if let Ok(p) = Profile::from_toml("mutant", &lines.join("\n")) {
            let _ = p.parse(&file.concat());
        }
    }

    #[test]
    fn arbitrary_strings_never_panic_in_from_toml(text in any::<String>()) {
        let _ = Profile::from_toml("fuzz", &text);
    }
}

#[test]
fn big_hostile_inputs() {
    let by_number = Profile::from_toml("by-number", BY_NUMBER).unwrap();
    let mut inputs: Vec<Vec<u8>> = vec![
        vec![b'('; 200_000],
        vec![b'"'; 200_001],
        vec![b';'; 200_000],
        vec![b'\n'; 200_000],
        vec![0xFF; 200_000],
        vec![0; 200_000],
    ];
    let mut field = b"14.01.2026 11:00;".to_vec();
    field.extend(std::iter::repeat_n(b'1', 100_000));
    field.push(b'\n');
    inputs.push(field);
    for input in &inputs {
        for p in builtin().iter().chain([&by_number]) {
            if let Err(e) = p.parse(input) {
                assert!(e.reason.len() < 4_000, "{}", e.reason.len());
            }
        }
    }
}
