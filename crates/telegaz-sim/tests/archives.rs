//! What the simulator writes parses back, with telegaz_lis200, to exactly the
//! values it modelled.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::civil::{DateTime, date};
use telegaz_domain::{ArchiveKind, Check, Decimal};
use telegaz_sim::{Unit, UnitParams, accounts, lis200};

fn start() -> DateTime {
    date(2026, 1, 1).at(1, 0, 0, 0)
}

#[test]
fn a_month_parses_back_to_the_modelled_values() {
    let mut params = UnitParams::from_seed(42, 3);
    params.event_rate = 0.02; // enough events in a month to check them
    let mut unit = Unit::new(params.clone(), start());
    let archive = unit.generate(31 * 24);
    let bytes = lis200::write(&archive);
    let parsed = telegaz_lis200::parse(&bytes).unwrap();
    assert_eq!(parsed.format, "lis200-text");
    assert_eq!(parsed.meta.model.as_deref(), Some("TC220"));
    assert!(!parsed.truncated);
    assert!(parsed.warnings.is_empty(), "{:?}", parsed.warnings);

    // Every row, field by field.
    assert_eq!(parsed.records.len(), archive.rows.len());
    for (p, m) in parsed.records.iter().zip(&archive.rows) {
        let kind = match m.kind {
            telegaz_sim::RowKind::Hourly => ArchiveKind::Interval,
            telegaz_sim::RowKind::Daily => ArchiveKind::Daily,
        };
        assert_eq!(p.kind, kind);
        assert_eq!(p.record_no, Some(m.record_no));
        assert_eq!(p.local_time, m.time);
        assert_eq!(p.quantities.vb, Some(m.vb));
        assert_eq!(p.quantities.vbt, Some(m.vb));
        assert_eq!(p.quantities.vm, Some(m.vm));
        assert_eq!(p.quantities.vo, Some(m.vm));
        assert_eq!(p.quantities.p_kpa, Some(m.p_kpa));
        assert_eq!(p.quantities.t_c, Some(m.t_c));
        assert_eq!(p.quantities.k, Some(m.k));
        assert_eq!(p.event_code, Some(m.event_code()));
        assert_eq!(p.check, Check::Ok);
        assert_eq!(p.status, vec!["0", "0", "0"]);
    }

    // Hourly rows: one per hour, consecutive record numbers around the daily rows.
    let hourly: Vec<_> = archive.hourly().collect();
    assert_eq!(hourly.len(), 31 * 24);
    for (i, r) in hourly.iter().enumerate() {
        assert_eq!(r.time, start() + jiff::SignedDuration::from_hours(i as i64));
    }
    for w in archive.rows.windows(2) {
        assert_eq!(w[1].record_no, w[0].record_no + 1);
    }

    // Daily rows at the contract hour, once a day, equal to that hour's row.
    let daily: Vec<_> = archive.daily().collect();
    assert_eq!(daily.len(), 31);
    for d in &daily {
        assert_eq!(d.time.hour(), params.contract_hour as i8);
        assert_eq!((d.time.minute(), d.time.second()), (0, 0));
        let h = hourly.iter().find(|h| h.time == d.time).unwrap();
        assert_eq!((d.vb, d.vm, d.p_kpa, d.t_c), (h.vb, h.vm, h.p_kpa, h.t_c));
    }

    // Consumption = counter differences: never negative, consistent with C.
    let mut day_sums = std::collections::BTreeMap::<i64, f64>::new();
    for w in hourly.windows(2) {
        let dvb = w[1].vb - w[0].vb;
        let dvm = w[1].vm - w[0].vm;
        assert!(dvb >= Decimal::ZERO && dvm >= Decimal::ZERO, "{w:?}");
        let (dvb, dvm): (f64, f64) = (dvb.try_into().unwrap(), dvm.try_into().unwrap());
        assert!(dvm > 0.5, "a boiler house always burns some gas: {dvm}");
        let c = dvb / dvm;
        assert!((c - w[1].c).abs() < 1e-3, "C {c} vs modelled {}", w[1].c);
        *day_sums.entry(i64::from(w[1].time.hour())).or_default() += dvm;
    }
    // The daily profile: the morning peak burns more than the small hours.
    assert!(day_sums[&8] > day_sums[&3] * 1.3, "{day_sums:?}");

    // Plausible physics.
    for r in &hourly {
        let p: f64 = r.p_kpa.try_into().unwrap();
        let t: f64 = r.t_c.try_into().unwrap();
        assert!((100.0..=110.0).contains(&p), "p {p}");
        assert!((-10.0..=25.0).contains(&t), "T {t}");
        assert!((0.95..=1.15).contains(&r.c), "C {}", r.c);
    }
    // T follows the day: 15:00 warmer than 03:00 on average.
    let mean_at = |h: i8| {
        let v: Vec<f64> = hourly
            .iter()
            .filter(|r| r.time.hour() == h)
            .map(|r| r.t_c.try_into().unwrap())
            .collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(mean_at(15) > mean_at(3) + 3.0);

    // Events: the same as modelled, raised/cleared pairs in order.
    assert!(!archive.events.is_empty());
    assert_eq!(parsed.events.len(), archive.events.len());
    for (p, m) in parsed.events.iter().zip(&archive.events) {
        assert_eq!(p.record_no, Some(m.record_no));
        assert_eq!(p.local_time, m.time);
        assert_eq!(p.code, m.code);
        assert_eq!(p.check, Check::Ok);
    }
    for w in archive.events.windows(2) {
        assert_eq!(w[1].record_no, w[0].record_no + 1);
        assert!(w[1].time >= w[0].time);
        if w[0].code & 0xF000 == 0x2000 {
            assert_eq!(
                w[1].code,
                w[0].code & 0x0FFF,
                "a raised alarm is cleared next"
            );
        }
    }
}

#[test]
fn generation_is_deterministic_and_chunking_does_not_matter() {
    let p = UnitParams::from_seed(7, 0);
    let mut a = Unit::new(p.clone(), start());
    let whole = a.generate(72);
    let mut b = Unit::new(p.clone(), start());
    let mut parts = b.generate(5);
    parts.extend(b.generate(30));
    parts.extend(b.generate_until(start() + jiff::SignedDuration::from_hours(71)));
    assert_eq!(whole, parts);
    // Skipping ahead gives the same rows as generating them.
    let mut c = Unit::new(p, start());
    c.skip_until(start() + jiff::SignedDuration::from_hours(47));
    let tail = c.generate(24);
    assert_eq!(
        tail.rows.first(),
        whole.rows.iter().find(|r| r.time == tail.rows[0].time)
    );
    assert_eq!(tail.rows.last(), whole.rows.last());
    // Different units differ.
    let other = Unit::new(UnitParams::from_seed(7, 1), start()).generate(72);
    assert_ne!(whole.rows[0].vb, other.rows[0].vb);
}

#[test]
fn an_alarm_shows_in_the_status_words() {
    let mut p = UnitParams::from_seed(1, 1);
    let from = start() + jiff::SignedDuration::from_hours(10);
    p.alarm_from = Some(from);
    let archive = Unit::new(p, start()).generate(24);
    let parsed = telegaz_lis200::parse(&lis200::write(&archive)).unwrap();
    for r in &parsed.records {
        let expect = if r.local_time >= from { "8" } else { "0" };
        assert_eq!(r.status[0], expect);
    }
}

#[test]
fn junk_is_not_lis200() {
    assert!(telegaz_lis200::parse(&lis200::junk()).is_err());
}

#[test]
fn accounts_round_trip_through_csv() {
    let a = accounts::generate(25, "sim-", 9);
    assert_eq!(a[0].name, "sim-0001");
    assert_eq!(a[24].login, "sim-0025");
    assert_eq!(a, accounts::generate(25, "sim-", 9));
    assert_ne!(a[0].password, a[1].password);
    assert!(a.iter().all(|x| x.password.len() == 16));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("accounts.csv");
    accounts::write_csv(&path, &a).unwrap();
    assert_eq!(accounts::read_csv(&path).unwrap(), a);
    let odd = accounts::parse_csv("# test\nu1,login1,pa,ss\n\nu2,l2,x\n").unwrap();
    assert_eq!(odd[0].password, "pa,ss");
    assert_eq!(odd.len(), 2);
    assert!(accounts::parse_csv("only,two\n").is_err());
    assert!(accounts::parse_csv("name,login,password\n").is_err());
}
