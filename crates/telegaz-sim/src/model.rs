//! What a simulated ТС220 corrector measures, hour by hour.
//!
//! Every hour of a unit is a pure function of its parameters, its seed and
//! the hour's index since the unit's epoch, so any stretch of its history can
//! be generated again with the same values (a re-run uploads duplicates, never
//! conflicts). Counters are kept as whole ten-thousandths of a cubic metre,
//! so the printed values and their differences are exact.
//!
//! - p (kPa absolute): a per-unit level between 101.5 and 108.5 with a slow
//!   drift of about ±1.2 kPa over days and a little noise;
//! - T (°C): a per-unit mean with a daily sinusoid (coldest at 03:00, warmest
//!   at 15:00);
//! - K: a per-unit constant near 1.0017;
//! - C = (p / 101.325) · (293.15 / (T + 273.15)) / K, the conversion factor of
//!   the hour; the standard volume of an hour is ΔVb = ΔVm · C;
//! - ΔVm (m³) follows a daily profile (night low, morning and evening peaks)
//!   scaled up when it is cold, never negative;
//! - a daily record (event 0x8103) follows the hourly row at the contract hour,
//!   with the same values, as the ТС220 writes it;
//! - now and then an alarm is raised and cleared in the event log
//!   (0x2xxx / 0x0xxx pairs), and rarely the clock is set (0x8004).

use jiff::SignedDuration;
use jiff::civil::DateTime;
use telegaz_domain::Decimal;

use crate::rng::Rng;

/// Event code of an hourly row.
pub const EVENT_HOURLY: u16 = 0x8104;
/// Event code of a daily row.
pub const EVENT_DAILY: u16 = 0x8103;

/// Standard pressure, kPa (ГОСТ 2939).
const P_STANDARD: f64 = 101.325;
/// Standard temperature, K.
const T_STANDARD: f64 = 293.15;

/// Share of the daily mean consumption in each hour of the day (hour ending
/// at index + 1), a boiler house with heating and hot water.
const PROFILE: [f64; 24] = [
    0.70, 0.65, 0.62, 0.62, 0.66, 0.80, 1.05, 1.30, 1.35, 1.20, 1.08, 1.02, 1.00, 0.98, 0.96, 1.00,
    1.08, 1.20, 1.30, 1.32, 1.25, 1.10, 0.95, 0.81,
];

/// Alarms the event log may show: (raised, cleared).
const ALARMS: [(u16, u16); 4] = [
    (0x2007, 0x0007), // pressure alarm limit
    (0x2006, 0x0006), // temperature alarm limit
    (0x2106, 0x0106), // no valid pressure
    (0x2502, 0x0502), // warning limit
];
const EVENT_CLOCK_SET: u16 = 0x8004;

/// How one unit behaves. [`UnitParams::from_seed`] makes plausible ones.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitParams {
    pub seed: u64,
    /// Hour (0-23) of the gas-day boundary, when the daily row is written.
    pub contract_hour: u8,
    /// Mean working flow, m³/h.
    pub base_flow_m3h: f64,
    /// Pressure level, kPa absolute.
    pub p_kpa: f64,
    /// Mean temperature, °C.
    pub t_mean_c: f64,
    /// Half the daily temperature swing, °C.
    pub t_swing_c: f64,
    /// Compressibility ratio in ten-thousandths (10017 = 1.0017).
    pub k_e4: i64,
    /// Counters at the epoch, ten-thousandths of m³.
    pub vb0_e4: u64,
    pub vm0_e4: u64,
    /// Record number of the first row.
    pub first_record: u64,
    /// Record number of the first event-log row.
    pub first_event: u64,
    /// Chance per hour that an alarm episode starts.
    pub event_rate: f64,
    /// From this local time on, the first status word of every row is
    /// non-zero (the unit is in an abnormal state).
    pub alarm_from: Option<DateTime>,
}

impl UnitParams {
    /// Plausible, different parameters for unit `index` of a fleet.
    pub fn from_seed(seed: u64, index: u64) -> Self {
        let mut r = Rng::stream(seed, 1, index);
        let vb0 = 100_000_000 + r.below(9_000_000_000);
        Self {
            seed: r.next_u64(),
            contract_hour: 10,
            base_flow_m3h: r.range(8.0, 60.0),
            p_kpa: r.range(101.5, 108.5),
            t_mean_c: r.range(4.0, 12.0),
            t_swing_c: r.range(2.5, 6.0),
            k_e4: 9985 + r.below(40) as i64,
            vb0_e4: vb0,
            vm0_e4: vb0 - vb0 / 20 + r.below(1_000_000),
            first_record: 1 + r.below(20_000),
            first_event: 1 + r.below(500),
            event_rate: 0.004,
            alarm_from: None,
        }
    }
}

/// Which archive a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowKind {
    Hourly,
    Daily,
}

/// One archive row, with the values exactly as they are printed.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub kind: RowKind,
    pub record_no: u64,
    /// Local time of the end of the interval.
    pub time: DateTime,
    /// Standard volume counter, m³ (4 decimals).
    pub vb: Decimal,
    /// Working volume counter, m³ (4 decimals).
    pub vm: Decimal,
    /// Mean pressure of the hour, kPa absolute (4 decimals).
    pub p_kpa: Decimal,
    /// Mean temperature of the hour, °C (2 decimals).
    pub t_c: Decimal,
    /// Compressibility ratio (4 decimals).
    pub k: Decimal,
    /// Conversion factor the hour was computed with (not printed by a ТС220).
    pub c: f64,
    /// The three status words.
    pub status: [u16; 3],
}

impl Row {
    pub fn event_code(&self) -> u16 {
        match self.kind {
            RowKind::Hourly => EVENT_HOURLY,
            RowKind::Daily => EVENT_DAILY,
        }
    }
}

/// One event-log row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub record_no: u64,
    pub time: DateTime,
    pub code: u16,
}

/// Rows and events of one stretch of time, in the order a readout prints them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Archive {
    pub rows: Vec<Row>,
    pub events: Vec<Event>,
}

impl Archive {
    /// The hourly rows.
    pub fn hourly(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.kind == RowKind::Hourly)
    }

    /// The daily rows.
    pub fn daily(&self) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(|r| r.kind == RowKind::Daily)
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.events.is_empty()
    }

    pub fn extend(&mut self, other: Archive) {
        self.rows.extend(other.rows);
        self.events.extend(other.events);
    }

    /// Local time of the newest row.
    pub fn last_time(&self) -> Option<DateTime> {
        self.rows.last().map(|r| r.time)
    }
}

/// A unit's corrector: generates its rows hour after hour from its epoch.
#[derive(Debug, Clone)]
pub struct Unit {
    params: UnitParams,
    epoch: DateTime,
    /// Index of the next hour to generate (0: the hour ending at the epoch).
    hour: i64,
    vb: u64,
    vm: u64,
    record_no: u64,
    event_no: u64,
    last: Option<Row>,
}

fn dec(v: i64, scale: u32) -> Decimal {
    Decimal::new(v, scale)
}

fn e4(v: u64) -> Decimal {
    Decimal::new(i64::try_from(v).unwrap_or(i64::MAX), 4)
}

impl Unit {
    /// A unit whose first row is the hour ending at `epoch` (whole hours).
    pub fn new(params: UnitParams, epoch: DateTime) -> Self {
        let epoch = floor_hour(epoch);
        Self {
            vb: params.vb0_e4,
            vm: params.vm0_e4,
            record_no: params.first_record,
            event_no: params.first_event,
            params,
            epoch,
            hour: 0,
            last: None,
        }
    }

    pub fn params(&self) -> &UnitParams {
        &self.params
    }

    /// Local time of the next hourly row.
    pub fn next_time(&self) -> DateTime {
        self.time_of(self.hour)
    }

    /// The newest row generated so far.
    pub fn last_row(&self) -> Option<&Row> {
        self.last.as_ref()
    }

    fn time_of(&self, hour: i64) -> DateTime {
        self.epoch
            .checked_add(SignedDuration::from_hours(hour))
            .unwrap_or(self.epoch)
    }

    /// The next `hours` hours.
    pub fn generate(&mut self, hours: u32) -> Archive {
        let mut out = Archive::default();
        for _ in 0..hours {
            self.step(&mut out);
        }
        out
    }

    /// Every hour up to and including `until` (nothing if it is before the next one).
    pub fn generate_until(&mut self, until: DateTime) -> Archive {
        let mut out = Archive::default();
        while self.next_time() <= until {
            self.step(&mut out);
        }
        out
    }

    /// Advances to `until` like [`Unit::generate_until`], keeping nothing.
    pub fn skip_until(&mut self, until: DateTime) {
        while self.next_time() <= until {
            let mut scratch = Archive::default();
            self.step(&mut scratch);
        }
    }

    fn step(&mut self, out: &mut Archive) {
        let p = &self.params;
        let h = self.hour;
        let time = self.time_of(h);
        let mut r = Rng::stream(p.seed, 2, h as u64);
        let hf = h as f64;
        let tau = std::f64::consts::TAU;
        let phase = (p.seed % 1000) as f64;
        // Mean of the hour that ends at `time`: the middle of the hour.
        let hod = f64::from(time.hour()) - 0.5;
        let t = p.t_mean_c + p.t_swing_c * (tau * (hod - 9.0) / 24.0).sin() + r.range(-0.3, 0.3);
        let pk = p.p_kpa
            + 0.8 * (tau * hf / (24.0 * 7.3) + phase).sin()
            + 0.3 * (tau * hf / (24.0 * 1.9) + phase * 0.7).sin()
            + r.range(-0.15, 0.15);
        let t_e2 = (t * 100.0).round() as i64;
        let p_e4 = (pk * 10_000.0).round() as i64;
        // The factor from the printed (rounded) values, as the corrector would.
        let (t_p, p_p, k_p) = (
            t_e2 as f64 / 100.0,
            p_e4 as f64 / 10_000.0,
            p.k_e4 as f64 / 10_000.0,
        );
        let c = (p_p / P_STANDARD) * (T_STANDARD / (t_p + 273.15)) / k_p;
        let slot = usize::try_from(time.hour() - 1).unwrap_or(23);
        let shape = PROFILE.get(slot).copied().unwrap_or(1.0);
        let heating = (1.0 + 0.04 * (12.0 - t_p)).max(0.3);
        let flow = (p.base_flow_m3h * shape * heating * r.range(0.92, 1.08)).max(0.0);
        let dvm = (flow * 10_000.0).round().max(0.0) as u64;
        let dvb = (dvm as f64 * c).round().max(0.0) as u64;
        self.vm = self.vm.saturating_add(dvm);
        self.vb = self.vb.saturating_add(dvb);

        let alarm = p.alarm_from.is_some_and(|from| time >= from);
        let row = Row {
            kind: RowKind::Hourly,
            record_no: self.record_no,
            time,
            vb: e4(self.vb),
            vm: e4(self.vm),
            p_kpa: dec(p_e4, 4),
            t_c: dec(t_e2, 2),
            k: dec(p.k_e4, 4),
            c,
            status: [if alarm { 8 } else { 0 }, 0, 0],
        };
        self.record_no += 1;

        // Events during the hour (between the previous row and this one).
        let start = time
            .checked_sub(SignedDuration::from_hours(1))
            .unwrap_or(time);
        if r.chance(p.event_rate) {
            let (raised, cleared) = ALARMS
                .get(r.below(ALARMS.len() as u64) as usize)
                .copied()
                .unwrap_or(ALARMS[0]);
            let at = r.below(30 * 60) as i64 + 60;
            let lasts = r.below(24 * 60) as i64 + 5 * 60;
            for (code, secs) in [(raised, at), (cleared, at + lasts)] {
                out.events.push(Event {
                    record_no: self.event_no,
                    time: start
                        .checked_add(SignedDuration::from_secs(secs))
                        .unwrap_or(start),
                    code,
                });
                self.event_no += 1;
            }
        } else if r.chance(p.event_rate / 8.0) {
            let secs = r.below(3_000) as i64 + 300;
            out.events.push(Event {
                record_no: self.event_no,
                time: start
                    .checked_add(SignedDuration::from_secs(secs))
                    .unwrap_or(start),
                code: EVENT_CLOCK_SET,
            });
            self.event_no += 1;
        }

        out.rows.push(row.clone());
        if time.hour() == i8::try_from(p.contract_hour).unwrap_or(10) {
            let daily = Row {
                kind: RowKind::Daily,
                record_no: self.record_no,
                ..row.clone()
            };
            self.record_no += 1;
            out.rows.push(daily);
        }
        self.last = Some(row);
        self.hour += 1;
    }
}

/// `t` rounded down to the whole hour.
pub fn floor_hour(t: DateTime) -> DateTime {
    t.with()
        .minute(0)
        .second(0)
        .subsec_nanosecond(0)
        .build()
        .unwrap_or(t)
}
