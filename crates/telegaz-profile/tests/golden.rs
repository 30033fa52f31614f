//! Golden test: the shipped profile reads the sample vendor export, and the
//! hourly volumes (differences of consecutive counters one hour apart) equal
//! the ground truth in `samples/expected.json`, exactly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::str::FromStr;

use jiff::SignedDuration;
use jiff::civil::DateTime;
use telegaz_domain::Decimal;

const SAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/samples/csv/export_cp1251.csv"
);
const EXPECTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../testdata/samples/expected.json"
);

fn decimal(v: &serde_json::Value) -> Decimal {
    let serde_json::Value::Number(n) = v else {
        panic!("not a number: {v}");
    };
    Decimal::from_str(&n.to_string()).unwrap()
}

#[test]
fn sample_csv_hourly_volumes_match_expected() {
    let profile = telegaz_profile::builtin()
        .into_iter()
        .find(|p| p.name() == "vendor-csv-cp1251")
        .expect("the shipped profile");
    let bytes = std::fs::read(SAMPLE).unwrap();
    let parsed = profile.parse(&bytes).unwrap();
    assert_eq!(parsed.format, "profile:vendor-csv-cp1251");
    assert!(!parsed.truncated);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);

    // Hourly volume = counter difference between a record and the one an hour before.
    let mut hourly: Vec<(DateTime, Decimal, Decimal)> = Vec::new();
    for pair in parsed.records.windows(2) {
        let (prev, cur) = (&pair[0], &pair[1]);
        let gap = prev.local_time.duration_until(cur.local_time);
        if gap != SignedDuration::from_hours(1) {
            continue;
        }
        let vb = cur.quantities.vb.unwrap() - prev.quantities.vb.unwrap();
        let vm = cur.quantities.vm.unwrap() - prev.quantities.vm.unwrap();
        hourly.push((cur.local_time, vb, vm));
    }

    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(EXPECTED).unwrap()).unwrap();
    let entry = expected
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["file"] == "export_cp1251.csv")
        .expect("an entry for export_cp1251.csv");
    let want = entry["hourly"].as_array().unwrap();

    assert_eq!(hourly.len(), want.len(), "number of hours");
    for ((time, vb, vm), w) in hourly.iter().zip(want) {
        let want_time: DateTime = w["hour_end_local"].as_str().unwrap().parse().unwrap();
        assert_eq!(*time, want_time);
        // Exact at 4 decimals: the counters have 4, so the differences are exact.
        for (got, key) in [(vb, "vb_m3"), (vm, "vm_m3")] {
            assert_eq!(got.round_dp(4), *got, "{time} {key}: more than 4 decimals");
            assert_eq!(*got, decimal(&w[key]), "{time} {key}");
        }
    }
}
