//! Python's `decimal.Decimal`, kept exactly: sign, coefficient digits and exponent, or an
//! infinity, or a quiet or signaling NaN with its payload.

use std::fmt;
use std::str::FromStr;

use crate::datetime::RangeError;

/// The most digits a [`Decimal`]'s coefficient (or a NaN's payload) may have: CPython's limit
/// for reading an `int` from text, so that no value here costs more to convert than an `int`
/// does (a pickle naming `Decimal` with a 10 MB string is refused).
pub const MAX_DECIMAL_DIGITS: usize = crate::unpickle::MAX_DECIMAL_DIGITS;

/// Python's `MAX_EMAX` for 64-bit builds: a `Decimal`'s adjusted exponent (that of its
/// leading digit) is at most this.
const MAX_EXPONENT: i64 = 999_999_999_999_999_999;

/// Python's `MIN_ETINY` for 64-bit builds (`MIN_EMIN - (MAX_PREC - 1)`): the smallest exponent
/// `Decimal(text)` accepts.
const MIN_EXPONENT: i64 = -1_999_999_999_999_999_997;

/// `decimal.Decimal`, exactly as Python holds it: `Decimal("1.50")` keeps its trailing zero
/// (coefficient 150, exponent -2), and `-0`, `Infinity`, `NaN` and `sNaN123` are kept too.
///
/// It is read from and written as the text Python's `str(Decimal)` gives (which is what a
/// pickle holds), so [`FromStr`] accepts what `Decimal(text)` accepts (ASCII only) and
/// [`Display`](fmt::Display) writes what `str()` writes.
///
/// ```
/// use durabledict_encoding::Decimal;
///
/// let d: Decimal = "-1.50E+3".parse()?;
/// assert_eq!((d.is_negative(), d.coefficient(), d.exponent()), (true, Some("150"), Some(1)));
/// assert_eq!(d.to_string(), "-1.50E+3");
/// assert_eq!("0.000001".parse::<Decimal>()?.to_string(), "0.000001");
/// assert_eq!("1e-7".parse::<Decimal>()?.to_string(), "1E-7");
/// assert_eq!("sNaN007".parse::<Decimal>()?.to_string(), "sNaN7");
/// assert!("1,5".parse::<Decimal>().is_err());
/// # Ok::<(), durabledict_encoding::RangeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Decimal {
    negative: bool,
    kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Kind {
    /// `digits` has no leading zeros (but is "0" for zero).
    Finite {
        digits: String,
        exponent: i64,
    },
    Infinity,
    /// `payload` is empty or digits without leading zeros.
    NaN {
        signaling: bool,
        payload: String,
    },
}

impl Decimal {
    /// Whether the sign is negative (`-0` and `-NaN` included).
    pub fn is_negative(&self) -> bool {
        self.negative
    }

    /// The coefficient's digits, for a finite value (`"150"` for `1.50`).
    pub fn coefficient(&self) -> Option<&str> {
        match &self.kind {
            Kind::Finite { digits, .. } => Some(digits),
            _ => None,
        }
    }

    /// The exponent, for a finite value (`-2` for `1.50`).
    pub fn exponent(&self) -> Option<i64> {
        match &self.kind {
            Kind::Finite { exponent, .. } => Some(*exponent),
            _ => None,
        }
    }

    /// Whether this is `Infinity` or `-Infinity`.
    pub fn is_infinite(&self) -> bool {
        self.kind == Kind::Infinity
    }

    /// Whether this is a quiet or signaling NaN.
    pub fn is_nan(&self) -> bool {
        matches!(self.kind, Kind::NaN { .. })
    }

    /// Whether this is a signaling NaN (`sNaN`).
    pub fn is_signaling(&self) -> bool {
        matches!(
            self.kind,
            Kind::NaN {
                signaling: true,
                ..
            }
        )
    }

    /// The number of characters of the coefficient or payload, for size accounting.
    pub(crate) fn digits_len(&self) -> usize {
        match &self.kind {
            Kind::Finite { digits, .. } => digits.len(),
            Kind::Infinity => 0,
            Kind::NaN { payload, .. } => payload.len(),
        }
    }
}

fn syntax(text: &str) -> RangeError {
    let shown: String = text.chars().take(40).collect();
    let more = if text.chars().count() > 40 { "..." } else { "" };
    RangeError(format!("not a Decimal: {shown:?}{more}"))
}

/// Digits with single underscores between them (Python 3.6+), without the underscores.
fn digits(part: &str, whole: &str) -> Result<String, RangeError> {
    if part.starts_with('_') || part.ends_with('_') || part.contains("__") {
        return Err(syntax(whole));
    }
    let out: String = part.chars().filter(|&c| c != '_').collect();
    if !out.bytes().all(|b| b.is_ascii_digit()) {
        return Err(syntax(whole));
    }
    if out.len() > MAX_DECIMAL_DIGITS {
        return Err(RangeError(format!(
            "a Decimal of {} digits (at most {MAX_DECIMAL_DIGITS} are read)",
            out.len()
        )));
    }
    Ok(out)
}

fn strip_zeros(digits: &str) -> &str {
    let stripped = digits.trim_start_matches('0');
    if stripped.is_empty() && !digits.is_empty() {
        "0"
    } else {
        stripped
    }
}

impl FromStr for Decimal {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        let whole = text;
        let s = text.trim_matches(|c: char| c.is_ascii_whitespace());
        let (negative, s) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let lower = s.to_ascii_lowercase();
        if lower == "inf" || lower == "infinity" {
            return Ok(Decimal {
                negative,
                kind: Kind::Infinity,
            });
        }
        for (prefix, signaling) in [("snan", true), ("nan", false)] {
            if let Some(payload) = lower.strip_prefix(prefix) {
                let payload = if payload.is_empty() {
                    String::new()
                } else {
                    let digits = digits(payload, whole)?;
                    match strip_zeros(&digits) {
                        "0" => String::new(),
                        p => p.to_owned(),
                    }
                };
                return Ok(Decimal {
                    negative,
                    kind: Kind::NaN { signaling, payload },
                });
            }
        }
        let (mantissa, exponent) = match s.find(['e', 'E']) {
            Some(at) => {
                let exp = &s[at + 1..];
                let (exp_negative, exp_digits) = match exp.as_bytes().first() {
                    Some(b'-') => (true, &exp[1..]),
                    Some(b'+') => (false, &exp[1..]),
                    _ => (false, exp),
                };
                if exp_digits.is_empty() {
                    return Err(syntax(whole));
                }
                let exp_digits = digits(exp_digits, whole)?;
                // Checked against Python's bounds once the coefficient is known; beyond
                // i64 it is out of range whatever the coefficient.
                let magnitude = strip_zeros(&exp_digits)
                    .parse::<i64>()
                    .ok()
                    .ok_or_else(|| {
                        RangeError(format!("the exponent of {:?} is out of range", whole))
                    })?;
                (&s[..at], if exp_negative { -magnitude } else { magnitude })
            }
            None => (s, 0),
        };
        let (int_part, frac_part) = match mantissa.split_once('.') {
            Some((i, f)) => (i, f),
            None => (mantissa, ""),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(syntax(whole));
        }
        let int_digits = if int_part.is_empty() {
            String::new()
        } else {
            digits(int_part, whole)?
        };
        let frac_digits = if frac_part.is_empty() {
            String::new()
        } else {
            digits(frac_part, whole)?
        };
        let all = int_digits + &frac_digits;
        if all.len() > MAX_DECIMAL_DIGITS {
            return Err(RangeError(format!(
                "a Decimal of {} digits (at most {MAX_DECIMAL_DIGITS} are read)",
                all.len()
            )));
        }
        // As Python's Decimal(text): the leading digit's exponent at most MAX_EMAX, the
        // exponent at least MIN_ETINY (Decimal("12E+999999999999999999") is refused, and one
        // written here would fail every Python reader of the dict).
        let exponent = i128::from(exponent) - frac_digits.len() as i128;
        let adjusted = exponent + strip_zeros(&all).len() as i128 - 1;
        if adjusted > i128::from(MAX_EXPONENT) || exponent < i128::from(MIN_EXPONENT) {
            return Err(RangeError(format!(
                "the exponent of {whole:?} is out of range"
            )));
        }
        let exponent = exponent as i64;
        Ok(Decimal {
            negative,
            kind: Kind::Finite {
                digits: strip_zeros(&all).to_owned(),
                exponent,
            },
        })
    }
}

impl fmt::Display for Decimal {
    /// As Python's `str(Decimal)` (`to_sci_string`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        let (digits, exponent) = match &self.kind {
            Kind::Infinity => return f.write_str("Infinity"),
            Kind::NaN { signaling, payload } => {
                return write!(f, "{}NaN{payload}", if *signaling { "s" } else { "" });
            }
            Kind::Finite { digits, exponent } => (digits.as_str(), *exponent),
        };
        let n = digits.len() as i64;
        let adjusted = exponent + n - 1;
        if exponent <= 0 && adjusted >= -6 {
            if exponent == 0 {
                return f.write_str(digits);
            }
            let point = n + exponent;
            if point > 0 {
                let (a, b) = digits.split_at(point as usize);
                write!(f, "{a}.{b}")
            } else {
                write!(f, "0.{}{digits}", "0".repeat((-point) as usize))
            }
        } else {
            let (first, rest) = digits.split_at(1);
            f.write_str(first)?;
            if !rest.is_empty() {
                write!(f, ".{rest}")?;
            }
            write!(f, "E{}{adjusted}", if adjusted >= 0 { "+" } else { "" })
        }
    }
}
