//! Exact decimal amounts.
//!
//! This module owns [`Money`]: the decimal type every amount in an event payload uses. It must never
//! round an amount through `f64`: the wire carries `"amount": 125.50` as a JSON number, and a receiver
//! that books a refund needs exactly the digits the emitter sent.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The largest number of fractional digits a [`Money`] keeps.
pub const MAX_MONEY_SCALE: u8 = 18;

/// An exact decimal amount, such as `125.50`.
///
/// The value is `units × 10^-scale`. The scale is kept as written, so `125.50` serializes back as
/// `125.50` and not `125.5`, while comparisons, hashing and arithmetic work on the value
/// (`125.5 == 125.50`).
///
/// On the wire an amount is a JSON number, exactly as in the announcement's payload. When parsing,
/// a JSON string holding a decimal (`"125.50"`) is accepted too, because some producers quote money
/// to protect it from JavaScript's floats. Parsing reads the number's text, never an `f64`.
///
/// The currency is not part of the amount; payloads carry it next to it (`currency`).
///
/// ```
/// use nopos_webhooks::Money;
///
/// let a: Money = "0.10".parse()?;
/// let b: Money = "0.20".parse()?;
/// assert_eq!(a.checked_add(b).unwrap().to_string(), "0.30");
///
/// let price: Money = "19.99".parse()?;
/// assert_eq!(price.checked_mul_int(3).unwrap().to_string(), "59.97");
/// # Ok::<(), nopos_webhooks::MoneyError>(())
/// ```
#[derive(Clone, Copy)]
pub struct Money {
    units: i128,
    scale: u8,
}

/// Why a text is not a valid [`Money`] amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MoneyError {
    /// The text is not a decimal number (`-?digits[.digits][e±digits]`).
    #[error("amount is not a decimal number")]
    Syntax,
    /// The number has more significant digits, or a larger magnitude, than 38 digits hold.
    #[error("amount is out of range")]
    OutOfRange,
    /// The number has more than [`MAX_MONEY_SCALE`] fractional digits.
    #[error("amount has more than {MAX_MONEY_SCALE} fractional digits")]
    TooPrecise,
}

impl Money {
    /// Zero, with no fractional digits.
    pub const ZERO: Money = Money { units: 0, scale: 0 };

    /// An amount from integer minor units and a scale: `Money::from_minor_units(12550, 2)` is `125.50`.
    ///
    /// # Errors
    /// [`MoneyError::TooPrecise`] when `scale` exceeds [`MAX_MONEY_SCALE`].
    pub fn from_minor_units(units: i128, scale: u8) -> Result<Money, MoneyError> {
        if scale > MAX_MONEY_SCALE {
            return Err(MoneyError::TooPrecise);
        }
        Ok(Money { units, scale })
    }

    /// The unscaled integer: `12550` for `125.50`.
    pub fn units(self) -> i128 {
        self.units
    }

    /// The number of fractional digits as written: `2` for `125.50`.
    pub fn scale(self) -> u8 {
        self.scale
    }

    /// Whether the amount is below zero.
    pub fn is_negative(self) -> bool {
        self.units < 0
    }

    /// The same value at a larger scale (`125.5` → `125.50`), or `None` when the scale is smaller
    /// than the current one or the result does not fit.
    pub fn rescale(self, scale: u8) -> Option<Money> {
        if scale < self.scale || scale > MAX_MONEY_SCALE {
            return None;
        }
        let factor = 10i128.checked_pow(u32::from(scale - self.scale))?;
        Some(Money {
            units: self.units.checked_mul(factor)?,
            scale,
        })
    }

    /// Both amounts at the larger of the two scales.
    fn aligned(self, other: Money) -> Option<(i128, i128, u8)> {
        let scale = self.scale.max(other.scale);
        Some((
            self.rescale(scale)?.units,
            other.rescale(scale)?.units,
            scale,
        ))
    }

    /// `self + other`, exactly, at the larger scale; `None` on overflow.
    pub fn checked_add(self, other: Money) -> Option<Money> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Money {
            units: a.checked_add(b)?,
            scale,
        })
    }

    /// `self - other`, exactly, at the larger scale; `None` on overflow.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        let (a, b, scale) = self.aligned(other)?;
        Some(Money {
            units: a.checked_sub(b)?,
            scale,
        })
    }

    /// `self × n` for an integer quantity, exactly; `None` on overflow.
    pub fn checked_mul_int(self, n: i64) -> Option<Money> {
        Some(Money {
            units: self.units.checked_mul(i128::from(n))?,
            scale: self.scale,
        })
    }

    /// The value with trailing fractional zeros removed, for comparing and hashing.
    fn normalized(self) -> Money {
        let mut m = self;
        while m.scale > 0 && m.units % 10 == 0 {
            m.units /= 10;
            m.scale -= 1;
        }
        m
    }
}

impl PartialEq for Money {
    fn eq(&self, other: &Money) -> bool {
        let (a, b) = (self.normalized(), other.normalized());
        a.units == b.units && a.scale == b.scale
    }
}

impl Eq for Money {}

impl Hash for Money {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let n = self.normalized();
        n.units.hash(state);
        n.scale.hash(state);
    }
}

impl PartialOrd for Money {
    fn partial_cmp(&self, other: &Money) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Money {
    fn cmp(&self, other: &Money) -> Ordering {
        // (integer part, fraction widened to MAX_MONEY_SCALE digits): both parts share the
        // value's sign and neither can overflow, whatever the two scales are.
        let key = |m: Money| {
            let pow = 10i128.pow(u32::from(m.scale));
            let widen = 10i128.pow(u32::from(MAX_MONEY_SCALE - m.scale));
            (m.units / pow, (m.units % pow) * widen)
        };
        key(*self).cmp(&key(*other))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.units.unsigned_abs().to_string();
        let scale = usize::from(self.scale);
        let sign = if self.units < 0 { "-" } else { "" };
        if scale == 0 {
            return write!(f, "{sign}{digits}");
        }
        if digits.len() > scale {
            let (int, frac) = digits.split_at(digits.len() - scale);
            write!(f, "{sign}{int}.{frac}")
        } else {
            write!(f, "{sign}0.{digits:0>scale$}")
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Parses a JSON-number-shaped decimal: `-?digits[.digits][(e|E)[+-]digits]`.
    fn from_str(s: &str) -> Result<Money, MoneyError> {
        let bytes = s.as_bytes();
        let (negative, rest) = match bytes.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, bytes),
        };
        let mantissa_end = rest
            .iter()
            .position(|&b| b == b'e' || b == b'E')
            .unwrap_or(rest.len());
        let (mantissa, exponent) = rest.split_at(mantissa_end);
        let (int, frac) = match mantissa.iter().position(|&b| b == b'.') {
            Some(dot) => (&mantissa[..dot], Some(&mantissa[dot + 1..])),
            None => (mantissa, None),
        };
        let all_digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
        if !all_digits(int) || frac.is_some_and(|f| !all_digits(f)) {
            return Err(MoneyError::Syntax);
        }
        let frac = frac.unwrap_or_default();

        let mut units: i128 = 0;
        for &d in int.iter().chain(frac) {
            units = units
                .checked_mul(10)
                .and_then(|u| u.checked_add(i128::from(d - b'0')))
                .ok_or(MoneyError::OutOfRange)?;
        }
        // The scale as written, adjusted by the exponent; kept signed until it is known to fit.
        let mut scale = i64::try_from(frac.len()).map_err(|_| MoneyError::TooPrecise)?;
        if !exponent.is_empty() {
            let exp = &exponent[1..];
            let (exp_negative, exp_digits) = match exp.split_first() {
                Some((b'-', d)) => (true, d),
                Some((b'+', d)) => (false, d),
                _ => (false, exp),
            };
            if !all_digits(exp_digits) {
                return Err(MoneyError::Syntax);
            }
            // Anything beyond four digits is far outside what 38 digits can represent.
            if exp_digits.len() > 4 {
                return Err(if units == 0 {
                    MoneyError::TooPrecise
                } else {
                    MoneyError::OutOfRange
                });
            }
            let e: i64 = exp_digits
                .iter()
                .fold(0, |acc, &d| acc * 10 + i64::from(d - b'0'));
            scale += if exp_negative { e } else { -e };
        }
        if scale < 0 {
            let factor = u32::try_from(-scale)
                .ok()
                .and_then(|p| 10i128.checked_pow(p))
                .ok_or(MoneyError::OutOfRange)?;
            units = units.checked_mul(factor).ok_or(MoneyError::OutOfRange)?;
            scale = 0;
        }
        let scale = u8::try_from(scale)
            .ok()
            .filter(|&s| s <= MAX_MONEY_SCALE)
            .ok_or(MoneyError::TooPrecise)?;
        Ok(Money {
            units: if negative { -units } else { units },
            scale,
        })
    }
}

impl TryFrom<&str> for Money {
    type Error = MoneyError;

    fn try_from(s: &str) -> Result<Money, MoneyError> {
        s.parse()
    }
}

impl From<i64> for Money {
    fn from(n: i64) -> Money {
        Money {
            units: i128::from(n),
            scale: 0,
        }
    }
}

impl Serialize for Money {
    /// Writes the amount as a JSON number with its digits as written (`125.50`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = RawValue::from_string(self.to_string()).map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Money {
    /// Reads a JSON number (or a string holding one) from its text, never through `f64`.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Money, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        let text = raw.get();
        let number = if text.starts_with('"') {
            serde_json::from_str::<String>(text)
                .map_err(|_| D::Error::custom("amount is not a decimal number"))?
        } else {
            text.to_owned()
        };
        number.trim().parse().map_err(D::Error::custom)
    }
}
