//! Quantities a column can map to, their units, and the exact conversions
//! into the model's units (m³, kPa, °C, m³/h).

use serde::Deserialize;
use telegaz_domain::{Decimal, Quantities};

/// What a `[[columns]]` entry maps its column to (`quantity = "…"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Quantity {
    Vb,
    Vbt,
    Vm,
    Vo,
    VbDisturbed,
    VmDisturbed,
    P,
    T,
    K,
    C,
    Flow,
    Status,
    Check,
}

impl Quantity {
    /// The name as written in a profile.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Quantity::Vb => "vb",
            Quantity::Vbt => "vbt",
            Quantity::Vm => "vm",
            Quantity::Vo => "vo",
            Quantity::VbDisturbed => "vb_disturbed",
            Quantity::VmDisturbed => "vm_disturbed",
            Quantity::P => "p",
            Quantity::T => "t",
            Quantity::K => "k",
            Quantity::C => "c",
            Quantity::Flow => "flow",
            Quantity::Status => "status",
            Quantity::Check => "check",
        }
    }

    /// Whether the column holds a number (everything but `status` and `check`).
    pub(crate) fn is_numeric(self) -> bool {
        !matches!(self, Quantity::Status | Quantity::Check)
    }

    /// Resolve the `unit` key of a column mapped to this quantity.
    ///
    /// `Ok(None)` is returned for the text quantities (`status`, `check`),
    /// which take no unit. The error text lists what is allowed.
    pub(crate) fn unit(self, given: Option<&str>) -> Result<Option<Unit>, String> {
        let given = given.map(str::trim);
        let (what, allowed, default): (&str, &[(&str, Unit)], Option<Unit>) = match self {
            Quantity::Vb
            | Quantity::Vbt
            | Quantity::Vm
            | Quantity::Vo
            | Quantity::VbDisturbed
            | Quantity::VmDisturbed => ("volume", VOLUME_UNITS, Some(Unit::CubicMetre)),
            // Pressure and temperature units differ between devices: the
            // profile must say which one the column holds.
            Quantity::P => ("pressure", PRESSURE_UNITS, None),
            Quantity::T => ("temperature", TEMPERATURE_UNITS, None),
            Quantity::Flow => ("flow", FLOW_UNITS, Some(Unit::CubicMetrePerHour)),
            Quantity::K | Quantity::C => {
                return match given {
                    None => Ok(Some(Unit::One)),
                    Some(u) => Err(format!(
                        "{:?} is dimensionless: remove `unit` (got {u:?})",
                        self.as_str()
                    )),
                };
            }
            Quantity::Status | Quantity::Check => {
                return match given {
                    None => Ok(None),
                    Some(u) => Err(format!(
                        "{:?} is text and takes no `unit` (got {u:?})",
                        self.as_str()
                    )),
                };
            }
        };
        let names = allowed
            .iter()
            .map(|(name, _)| *name)
            .collect::<Vec<_>>()
            .join(", ");
        match given {
            None => default.map(Some).ok_or_else(|| {
                format!(
                    "`unit` is required for {what} ({:?}); allowed: {names}",
                    self.as_str()
                )
            }),
            Some(u) => allowed
                .iter()
                .find(|(name, _)| *name == u)
                .map(|(_, unit)| Some(*unit))
                .ok_or_else(|| format!("{u:?} is not a {what} unit; allowed: {names}")),
        }
    }

    /// The slot of a numeric quantity in the model; `None` for text quantities.
    pub(crate) fn slot(self, q: &mut Quantities) -> Option<&mut Option<Decimal>> {
        Some(match self {
            Quantity::Vb => &mut q.vb,
            Quantity::Vbt => &mut q.vbt,
            Quantity::Vm => &mut q.vm,
            Quantity::Vo => &mut q.vo,
            Quantity::VbDisturbed => &mut q.vb_disturbed,
            Quantity::VmDisturbed => &mut q.vm_disturbed,
            Quantity::P => &mut q.p_kpa,
            Quantity::T => &mut q.t_c,
            Quantity::K => &mut q.k,
            Quantity::C => &mut q.c,
            Quantity::Flow => &mut q.flow_m3h,
            Quantity::Status | Quantity::Check => return None,
        })
    }
}

const VOLUME_UNITS: &[(&str, Unit)] = &[("m3", Unit::CubicMetre), ("m³", Unit::CubicMetre)];
const FLOW_UNITS: &[(&str, Unit)] = &[
    ("m3/h", Unit::CubicMetrePerHour),
    ("m³/h", Unit::CubicMetrePerHour),
];
const PRESSURE_UNITS: &[(&str, Unit)] = &[
    ("kPa", Unit::KiloPascal),
    ("bar", Unit::Bar),
    ("MPa", Unit::MegaPascal),
    ("kgf/cm2", Unit::KgfPerSquareCm),
    ("kgf/cm²", Unit::KgfPerSquareCm),
];
const TEMPERATURE_UNITS: &[(&str, Unit)] = &[
    ("°C", Unit::Celsius),
    ("C", Unit::Celsius),
    ("K", Unit::Kelvin),
];

/// A unit a column may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    CubicMetre,
    CubicMetrePerHour,
    KiloPascal,
    Bar,
    MegaPascal,
    KgfPerSquareCm,
    Celsius,
    Kelvin,
    /// Dimensionless (K, C).
    One,
}

impl Unit {
    /// Convert a value in this unit into the model's unit, exactly.
    ///
    /// `None` when the result does not fit a `Decimal`.
    pub(crate) fn to_model(self, v: Decimal) -> Option<Decimal> {
        match self {
            Unit::CubicMetre
            | Unit::CubicMetrePerHour
            | Unit::KiloPascal
            | Unit::Celsius
            | Unit::One => Some(v),
            Unit::Bar => v.checked_mul(Decimal::ONE_HUNDRED),
            Unit::MegaPascal => v.checked_mul(Decimal::ONE_THOUSAND),
            // 1 kgf/cm² = 98.0665 kPa exactly (by definition of the kilogram-force).
            Unit::KgfPerSquareCm => v.checked_mul(Decimal::new(980_665, 4)),
            Unit::Kelvin => v.checked_sub(Decimal::new(27_315, 2)),
        }
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
    fn conversions_are_exact() {
        assert_eq!(Unit::Bar.to_model(d("12.9437")), Some(d("1294.37")));
        assert_eq!(Unit::MegaPascal.to_model(d("0.10451")), Some(d("104.51")));
        assert_eq!(Unit::KgfPerSquareCm.to_model(d("1")), Some(d("98.0665")));
        assert_eq!(
            Unit::KgfPerSquareCm.to_model(d("1.0657")),
            Some(d("104.50946905"))
        );
        assert_eq!(Unit::Kelvin.to_model(d("284.36")), Some(d("11.21")));
        assert_eq!(Unit::Kelvin.to_model(d("0")), Some(d("-273.15")));
        assert_eq!(Unit::KiloPascal.to_model(d("104.51")), Some(d("104.51")));
        assert_eq!(Unit::Celsius.to_model(d("-5.5")), Some(d("-5.5")));
        assert_eq!(
            Unit::CubicMetre.to_model(d("4982.6473")),
            Some(d("4982.6473"))
        );
        assert_eq!(Unit::Bar.to_model(Decimal::MAX), None);
    }

    #[test]
    fn units_per_quantity() {
        assert_eq!(Quantity::Vb.unit(None), Ok(Some(Unit::CubicMetre)));
        assert_eq!(Quantity::Vm.unit(Some("m³")), Ok(Some(Unit::CubicMetre)));
        assert_eq!(Quantity::P.unit(Some("bar")), Ok(Some(Unit::Bar)));
        assert_eq!(
            Quantity::P.unit(Some("kgf/cm2")),
            Ok(Some(Unit::KgfPerSquareCm))
        );
        assert_eq!(Quantity::T.unit(Some("K")), Ok(Some(Unit::Kelvin)));
        assert_eq!(Quantity::K.unit(None), Ok(Some(Unit::One)));
        assert_eq!(Quantity::Status.unit(None), Ok(None));

        let err = Quantity::P.unit(None).unwrap_err();
        assert!(err.contains("required") && err.contains("kgf/cm2"), "{err}");
        let err = Quantity::P.unit(Some("psi")).unwrap_err();
        assert!(err.contains("\"psi\"") && err.contains("MPa"), "{err}");
        let err = Quantity::Vb.unit(Some("l")).unwrap_err();
        assert!(err.contains("m3"), "{err}");
        assert!(Quantity::K.unit(Some("1")).is_err());
        assert!(Quantity::Status.unit(Some("m3")).is_err());
    }
}
