//! Which field of a row holds which quantity, and in which unit.
//!
//! Two sources, in this order:
//!
//! 1. **Header rows** read from the archive itself: attribute 4 gives one
//!    LIS-200 address per column (`(3:A80.0)(1:400.0)(2:300.0)…`), attribute 3
//!    the unit texts (`()()(m3)…(bar)(C)…`). An address maps to a quantity by
//!    [`address_role`]; the unit text decides the conversion.
//! 2. **A known layout** chosen by the identified model (`TC…` / `EK…`) or,
//!    when the model is unknown, by the number of fields and the position of
//!    the time stamp ([`TC2XX`], [`EK2XX`]).
//!
//! The structural fields — record numbers before the time stamp, the time
//! stamp, the event code and the check at the end — are found by their shape
//! (see `rows.rs`); this module maps only the value fields between them.

use telegaz_domain::Decimal;

/// A quantity a value field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quantity {
    /// Standard volume counter.
    Vb,
    /// Total standard volume counter.
    VbT,
    /// Measured (working) volume counter.
    Vm,
    /// Original / total measured counter.
    Vo,
    /// Pressure.
    P,
    /// Temperature.
    T,
    /// Compressibility ratio.
    K,
    /// Conversion factor.
    C,
}

impl Quantity {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Quantity::Vb => "Vb",
            Quantity::VbT => "VbT",
            Quantity::Vm => "Vm",
            Quantity::Vo => "Vo",
            Quantity::P => "p",
            Quantity::T => "T",
            Quantity::K => "K",
            Quantity::C => "C",
        }
    }
}

/// How a printed value becomes the normalised one (m³, kPa, °C).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Conversion {
    Same,
    /// Multiply by this factor (exact decimal).
    Scale(Decimal),
    /// Add this offset (exact decimal).
    Shift(Decimal),
}

impl Conversion {
    /// Applies the conversion; `None` on overflow.
    pub(crate) fn apply(self, v: Decimal) -> Option<Decimal> {
        match self {
            Conversion::Same => Some(v),
            Conversion::Scale(f) => v.checked_mul(f),
            Conversion::Shift(d) => v.checked_add(d),
        }
    }
}

/// What a value field is used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Qty(Quantity, Conversion),
    /// UTC offset of the row in minutes (address 1:40F).
    UtcOffsetMinutes,
    /// A status word, kept as printed.
    Status,
    /// Not used (a warning said why).
    Ignore,
}

/// A value field of a known layout: a quantity with the unit the layout
/// prints it in, or a status word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    Qty(Quantity, &'static str),
    Status,
}

/// Device families with known layouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// ТС210 / ТС215 / ТС220.
    Tc,
    /// ЕК220 / ЕК260 / ЕК270 / ЕК280 / ЕК290.
    Ek,
}

/// The family of an identified model (`TC220` → ТС, `EK270` → ЕК).
pub(crate) fn family_of(model: &str) -> Option<Family> {
    let m = model.trim().to_ascii_uppercase();
    if m.starts_with("TC") {
        Some(Family::Tc)
    } else if m.starts_with("EK") {
        Some(Family::Ek)
    } else {
        None
    }
}

/// A known row layout.
#[derive(Debug)]
pub(crate) struct Layout {
    pub name: &'static str,
    pub family: Family,
    /// Number of fields in a row.
    pub fields: usize,
    /// Index of the time stamp (the fields before it are record numbers).
    pub time: usize,
    /// The value fields after the time stamp, before the event code and check.
    pub values: &'static [Col],
}

use Col::{Qty, Status};
use Quantity::{C, K, P, T, Vb, VbT, Vm, Vo};

/// ТС210/215/220 interval archive row, 14 fields:
/// `(no)(time)(Vb)(VbT)(Vm)(Vo)(T)(p)(K)(St)(St)(St)(event)(check)`.
///
/// Known: the order comes from DOMAIN.md and the samples; Vb and Vm are
/// confirmed by `expected.json` (hourly differences of fields 3 and 5).
/// T is the field of about 3–15 and p the one of about 104 in the samples,
/// i.e. T in °C and p in kPa absolute. Guessed: that all firmware prints p in
/// kPa (the header rows, when present, take precedence).
pub(crate) const TC2XX: Layout = Layout {
    name: "ТС2xx",
    family: Family::Tc,
    fields: 14,
    time: 1,
    values: &[
        Qty(Vb, "m3"),
        Qty(VbT, "m3"),
        Qty(Vm, "m3"),
        Qty(Vo, "m3"),
        Qty(T, "C"),
        Qty(P, "kPa"),
        Qty(K, ""),
        Status,
        Status,
        Status,
    ],
};

/// ЕК2xx interval archive row, 18 fields:
/// `(global no)(archive no)(time)(Vb)(VbT)(Vm)(Vo)(p)(T)(K)(C)(St2)(St4)(St7)(St6)(StSy)(event)(check)`.
///
/// Known: the order from DOMAIN.md and the EK270 sample, whose header rows say
/// p in bar and T in °C; Vb and Vm confirmed by `expected.json`. Guessed: that
/// ЕК2xx without header rows print p in bar as well.
pub(crate) const EK2XX: Layout = Layout {
    name: "ЕК2xx",
    family: Family::Ek,
    fields: 18,
    time: 2,
    values: &[
        Qty(Vb, "m3"),
        Qty(VbT, "m3"),
        Qty(Vm, "m3"),
        Qty(Vo, "m3"),
        Qty(P, "bar"),
        Qty(T, "C"),
        Qty(K, ""),
        Qty(C, ""),
        Status,
        Status,
        Status,
        Status,
        Status,
    ],
};

const LAYOUTS: [&Layout; 2] = [&TC2XX, &EK2XX];

/// The known layout for a row shape, preferring the model's family.
pub(crate) fn known(fields: usize, time: usize, family: Option<Family>) -> Option<&'static Layout> {
    let fits = |l: &&&Layout| l.fields == fields && l.time == time;
    LAYOUTS
        .iter()
        .filter(fits)
        .find(|l| family.is_none_or(|f| l.family == f))
        .or_else(|| LAYOUTS.iter().find(fits))
        .copied()
}

/// What a LIS-200 address in a header row means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AddressRole {
    Qty(Quantity),
    UtcOffsetMinutes,
}

/// The LIS-200 address of a header field without its attribute:
/// `2:300.0` → `2:300`, `6:310_1.0` → `6:310_1`.
pub(crate) fn address_key(field: &str) -> &str {
    let f = field.trim();
    match f.rsplit_once('.') {
        Some((key, attr)) if !attr.is_empty() && attr.bytes().all(|c| c.is_ascii_digit()) => key,
        _ => f,
    }
}

/// Whether a field has the shape of a LIS-200 address with attribute,
/// e.g. `2:300.0`, `6:310_1.0`, `3:A80.0`.
pub(crate) fn is_address(field: &str) -> bool {
    let Some((instance, rest)) = field.trim().split_once(':') else {
        return false;
    };
    let key = address_key(rest);
    (1..=3).contains(&instance.len())
        && instance.bytes().all(|c| c.is_ascii_digit())
        && (1..=12).contains(&key.len())
        && key.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_')
}

/// The quantity at a LIS-200 address (instance:address, attribute removed).
///
/// Known (DOMAIN.md "useful addresses"): 2:300 Vb, 4:300 Vm, 7:310 p,
/// 6:310 T, 8:310 K, 5:310 C, 1:40F UTC offset in minutes. From the EK270
/// sample header (illustrative there, and consistent with `expected.json`):
/// 2:302 VbT, 4:302 Vo, 6:310_1 T. Everything else is not a quantity.
pub(crate) fn address_role(key: &str) -> Option<AddressRole> {
    let q = match key.to_ascii_uppercase().as_str() {
        "2:300" => Vb,
        "2:302" => VbT,
        "4:300" => Vm,
        "4:302" => Vo,
        "7:310" => P,
        "6:310" | "6:310_1" => T,
        "8:310" => K,
        "5:310" => C,
        "1:40F" => return Some(AddressRole::UtcOffsetMinutes),
        _ => return None,
    };
    Some(AddressRole::Qty(q))
}

/// Whether a header field is a unit text this parser knows (for any quantity).
pub(crate) fn is_known_unit(text: &str) -> bool {
    [Vb, P, T]
        .iter()
        .any(|&q| unit_conversion(q, text).is_some())
        && !text.trim().is_empty()
}

/// How to normalise a value of `q` printed in `unit`. `None`: the unit is not
/// known for this quantity. An empty unit means the device did not say: then
/// volumes are m³, temperatures °C and factors are plain, but a pressure has
/// no default (the caller must know it from a layout).
pub(crate) fn unit_conversion(q: Quantity, unit: &str) -> Option<Conversion> {
    let u = unit.trim().to_lowercase().replace(['°', ' '], "");
    let dec = |m: i64, scale: u32| Decimal::new(m, scale);
    match q {
        Vb | VbT | Vm | Vo => match u.as_str() {
            "" | "m3" | "m³" | "m^3" | "м3" | "м³" => Some(Conversion::Same),
            _ => None,
        },
        P => match u.as_str() {
            "kpa" | "кпа" => Some(Conversion::Same),
            "bar" | "бар" => Some(Conversion::Scale(dec(100, 0))),
            "mbar" | "мбар" => Some(Conversion::Scale(dec(1, 1))),
            "mpa" | "мпа" => Some(Conversion::Scale(dec(1000, 0))),
            "pa" | "па" => Some(Conversion::Scale(dec(1, 3))),
            "kgf/cm2" | "кгс/см2" => Some(Conversion::Scale(dec(980665, 4))),
            _ => None,
        },
        T => match u.as_str() {
            // `с` is the Cyrillic letter, as in «°С».
            "" | "c" | "degc" | "с" => Some(Conversion::Same),
            "k" | "к" => Some(Conversion::Shift(dec(-27315, 2))),
            _ => None,
        },
        K | C => Some(Conversion::Same),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn pressure_units_convert_exactly() {
        let bar = unit_conversion(P, "bar").unwrap();
        assert_eq!(bar.apply(d("12.9402")), Some(d("1294.02")));
        let mpa = unit_conversion(P, "MPa").unwrap();
        assert_eq!(mpa.apply(d("0.101325")), Some(d("101.325")));
        assert_eq!(unit_conversion(P, "kPa"), Some(Conversion::Same));
        assert_eq!(unit_conversion(P, ""), None);
        assert_eq!(unit_conversion(P, "psi"), None);
    }

    #[test]
    fn kelvin_becomes_celsius() {
        let k = unit_conversion(T, "K").unwrap();
        assert_eq!(k.apply(d("293.15")), Some(d("20.00")));
        assert_eq!(unit_conversion(T, "°C"), Some(Conversion::Same));
        assert_eq!(unit_conversion(T, "C"), Some(Conversion::Same));
        assert_eq!(unit_conversion(T, "F"), None);
    }

    #[test]
    fn overflow_is_none_not_a_panic() {
        let bar = unit_conversion(P, "bar").unwrap();
        assert_eq!(bar.apply(Decimal::MAX), None);
    }

    #[test]
    fn addresses() {
        assert_eq!(address_key("2:300.0"), "2:300");
        assert_eq!(address_key("6:310_1.0"), "6:310_1");
        assert_eq!(address_key("3:A80"), "3:A80");
        assert!(is_address("3:A80.0"));
        assert!(is_address("6:310_1.0"));
        assert!(!is_address("2026-01-14,11:00:00"));
        assert!(!is_address("m3"));
        assert!(!is_address(""));
        assert_eq!(address_role("2:300"), Some(AddressRole::Qty(Vb)));
        assert_eq!(address_role("4:300"), Some(AddressRole::Qty(Vm)));
        assert_eq!(address_role("1:40f"), Some(AddressRole::UtcOffsetMinutes));
        assert_eq!(address_role("3:A80"), None);
    }

    #[test]
    fn layouts_by_shape_and_family() {
        assert_eq!(known(14, 1, None).map(|l| l.name), Some("ТС2xx"));
        assert_eq!(known(18, 2, None).map(|l| l.name), Some("ЕК2xx"));
        assert_eq!(
            known(18, 2, Some(Family::Tc)).map(|l| l.name),
            Some("ЕК2xx")
        );
        assert!(known(14, 2, None).is_none());
        assert_eq!(family_of("TC220"), Some(Family::Tc));
        assert_eq!(family_of("ek270"), Some(Family::Ek));
        assert_eq!(family_of("ABC"), None);
        for l in LAYOUTS {
            assert_eq!(l.fields, l.time + 1 + l.values.len() + 2, "{}", l.name);
        }
    }
}
