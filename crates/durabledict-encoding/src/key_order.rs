//! The order of dict keys and set members: two keys are equal exactly when Python's `==`
//! says so (and Python's `hash` then agrees), so a dict holds the keys Python's would.
//!
//! `Decimal("1.0") == 1 == 1.0 == True == complex(1, 0)`, an aware `datetime` equals the same
//! instant in another zone, `timezone`s equal by offset, `UUID`s by their integer, and `fold`
//! is ignored. Where a dict built here held such keys apart, Python read the same pickle as
//! one key with another value.

use std::borrow::Cow;
use std::cmp::Ordering;

use num_bigint::BigInt;

use crate::datetime::{DateTime, Time, TimeZone};
use crate::decimal::Decimal;
use crate::value::{Complex, HashableValue as H, Uuid};

/// A number's real part, exactly, for ordering.
enum Real<'a> {
    Int(BigInt),
    Float(f64),
    Decimal(&'a Decimal),
}

/// A number as (real part, imaginary part); `None` for a value that is not a number.
fn number(h: &H) -> Option<(Real<'_>, f64)> {
    Some(match h {
        H::Bool(b) => (Real::Int(BigInt::from(u8::from(*b))), 0.0),
        H::I64(i) => (Real::Int(BigInt::from(*i)), 0.0),
        H::Int(n) => (Real::Int(n.clone()), 0.0),
        H::F64(f) => (Real::Float(*f), 0.0),
        H::Decimal(d) => (Real::Decimal(d), 0.0),
        H::Complex(Complex { re, im }) => (Real::Float(*re), *im),
        _ => return None,
    })
}

/// Where a real sits among the classes: -inf, finite, +inf, float NaN, Decimal NaN.
fn class(r: &Real<'_>) -> u8 {
    match r {
        Real::Int(_) => 1,
        Real::Float(f) if f.is_nan() => 3,
        Real::Float(f) if f.is_infinite() => {
            if *f > 0.0 {
                2
            } else {
                0
            }
        }
        Real::Float(_) => 1,
        Real::Decimal(d) if d.is_nan() => 4,
        Real::Decimal(d) if d.is_infinite() => {
            if d.is_negative() {
                0
            } else {
                2
            }
        }
        Real::Decimal(_) => 1,
    }
}

/// A finite real as (negative, coefficient digits without leading zeros, exponent), or
/// `None` for zero.
fn decimal_parts<'a>(r: &'a Real<'_>) -> Option<(bool, Cow<'a, str>, i128)> {
    let (negative, digits, exponent) = match r {
        Real::Int(n) => {
            let text = n.magnitude().to_string();
            (n.sign() == num_bigint::Sign::Minus, Cow::Owned(text), 0i128)
        }
        Real::Float(f) => {
            let bits = f.to_bits();
            let biased = ((bits >> 52) & 0x7ff) as i64;
            let fraction = bits & ((1 << 52) - 1);
            let (mantissa, exp2) = if biased == 0 {
                (fraction, -1074)
            } else {
                (fraction | (1 << 52), biased - 1075)
            };
            let m = BigInt::from(mantissa);
            let (digits, exp10) = if exp2 >= 0 {
                ((m << exp2 as usize).to_string(), 0)
            } else {
                // m / 2^k = m * 5^k / 10^k
                let k = (-exp2) as u32;
                ((m * BigInt::from(5u8).pow(k)).to_string(), -i128::from(k))
            };
            (*f < 0.0, Cow::Owned(digits), exp10)
        }
        Real::Decimal(d) => (
            d.is_negative(),
            Cow::Borrowed(d.coefficient()?),
            i128::from(d.exponent()?),
        ),
    };
    let trimmed = digits.trim_start_matches('0');
    if trimmed.is_empty() {
        return None;
    }
    // Trailing zeros moved into the exponent: 1.50 and 1.5 compare equal.
    let significant = trimmed.trim_end_matches('0');
    let zeros = (trimmed.len() - significant.len()) as i128;
    let (start, end) = (
        digits.len() - trimmed.len(),
        digits.len() - (trimmed.len() - significant.len()),
    );
    let kept = match digits {
        Cow::Borrowed(text) => Cow::Borrowed(&text[start..end]),
        Cow::Owned(text) => Cow::Owned(text[start..end].to_owned()),
    };
    Some((negative, kept, exponent + zeros))
}

/// Two finite reals, exactly.
fn finite_cmp(a: &Real<'_>, b: &Real<'_>) -> Ordering {
    // Two binary numbers compare as they always did, without decimal text.
    match (a, b) {
        (Real::Int(x), Real::Int(y)) => return x.cmp(y),
        (Real::Float(x), Real::Float(y)) => return x.partial_cmp(y).unwrap_or(Ordering::Equal),
        (Real::Int(n), Real::Float(f)) => return int_float_cmp(n, *f),
        (Real::Float(f), Real::Int(n)) => return int_float_cmp(n, *f).reverse(),
        (Real::Int(n), Real::Decimal(d)) => {
            if let Some(order) = int_decimal_by_size(n, d) {
                return order;
            }
        }
        (Real::Decimal(d), Real::Int(n)) => {
            if let Some(order) = int_decimal_by_size(n, d) {
                return order.reverse();
            }
        }
        (Real::Float(f), Real::Decimal(d)) => {
            if let Some(order) = float_decimal_by_size(*f, d) {
                return order;
            }
        }
        (Real::Decimal(d), Real::Float(f)) => {
            if let Some(order) = float_decimal_by_size(*f, d) {
                return order.reverse();
            }
        }
        _ => {}
    }
    let sign = |p: &Option<(bool, Cow<'_, str>, i128)>| match p {
        None => 0i8,
        Some((true, ..)) => -1,
        Some((false, ..)) => 1,
    };
    let (pa, pb) = (decimal_parts(a), decimal_parts(b));
    match sign(&pa).cmp(&sign(&pb)) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    let (Some((negative, da, ea)), Some((_, db, eb))) = (pa, pb) else {
        return Ordering::Equal; // both zero
    };
    // The position of the leading digit first, then the digits from the left.
    let adjusted = |d: &str, e: i128| e + d.len() as i128;
    let magnitude = adjusted(&da, ea)
        .cmp(&adjusted(&db, eb))
        .then_with(|| da.as_bytes().cmp(db.as_bytes()));
    if negative {
        magnitude.reverse()
    } else {
        magnitude
    }
}

/// An integer against a Decimal of another sign or of clearly another size, without writing
/// the integer's digits (a pickle may hold an integer of millions of digits).
fn int_decimal_by_size(n: &BigInt, d: &Decimal) -> Option<Ordering> {
    let digits = d.coefficient()?.trim_start_matches('0');
    let d_sign = if digits.is_empty() {
        0
    } else if d.is_negative() {
        -1
    } else {
        1
    };
    let n_sign = match n.sign() {
        num_bigint::Sign::Minus => -1,
        num_bigint::Sign::NoSign => 0,
        num_bigint::Sign::Plus => 1,
    };
    if n_sign != d_sign || n_sign == 0 {
        return Some(n_sign.cmp(&d_sign));
    }
    // |n| has between floor((bits - 1) * log10(2)) + 1 and ceil(bits * log10(2)) digits; the
    // Decimal's leading digit sits at exponent + its digit count.
    let bits = i128::from(n.bits());
    let (low, high) = ((bits - 1) * 30_102 / 100_000, bits * 30_103 / 100_000 + 1);
    let position = i128::from(d.exponent()?) + digits.len() as i128;
    let magnitude = if position < low {
        Ordering::Greater
    } else if position > high + 1 {
        Ordering::Less
    } else {
        return None;
    };
    Some(if n_sign < 0 {
        magnitude.reverse()
    } else {
        magnitude
    })
}

/// A finite float against a finite Decimal of another sign or of clearly another size,
/// without the float's exact decimal digits (up to 767 of them for a subnormal).
fn float_decimal_by_size(f: f64, d: &Decimal) -> Option<Ordering> {
    let digits = d.coefficient()?.trim_start_matches('0');
    let d_sign: i8 = if digits.is_empty() {
        0
    } else if d.is_negative() {
        -1
    } else {
        1
    };
    let f_sign: i8 = if f == 0.0 {
        0
    } else if f < 0.0 {
        -1
    } else {
        1
    };
    if f_sign != d_sign || f_sign == 0 {
        return Some(f_sign.cmp(&d_sign));
    }
    // |f| < 10^places, within one of log10's rounding either way; |d| < 10^position and
    // |d| >= 10^(position - 1).
    #[allow(clippy::cast_possible_truncation)] // |log10| of a finite float is below 400
    let places = i128::from(f.abs().log10().floor() as i64) + 1;
    let position = i128::from(d.exponent()?) + digits.len() as i128;
    let magnitude = if position < places - 2 {
        Ordering::Greater
    } else if position > places + 2 {
        Ordering::Less
    } else {
        return None;
    };
    Some(if f_sign < 0 {
        magnitude.reverse()
    } else {
        magnitude
    })
}

/// An integer against a finite float, exactly, in binary.
fn int_float_cmp(n: &BigInt, f: f64) -> Ordering {
    let floor = f.floor();
    match n.cmp(&integral_bigint(floor)) {
        // n == floor(f) < f when f has a fraction.
        Ordering::Equal if floor != f => Ordering::Less,
        other => other,
    }
}

/// A finite float with no fraction, as the integer it is exactly.
fn integral_bigint(x: f64) -> BigInt {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i64;
    if biased == 0 {
        return BigInt::from(0);
    }
    let mantissa = BigInt::from((bits & ((1 << 52) - 1)) | (1 << 52));
    let shift = biased - 1075;
    let magnitude = if shift >= 0 {
        mantissa << shift as usize
    } else {
        mantissa >> (-shift) as usize
    };
    if x < 0.0 { -magnitude } else { magnitude }
}

fn real_cmp(a: &Real<'_>, b: &Real<'_>) -> Ordering {
    match class(a).cmp(&class(b)) {
        Ordering::Equal => {}
        unequal => return unequal,
    }
    match (class(a), a, b) {
        (1, ..) => finite_cmp(a, b),
        // Decimal NaNs are never equal to anything in Python, nor to each other: kept apart
        // by their text; float NaNs are one key, as they always were here.
        (4, Real::Decimal(x), Real::Decimal(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn float_cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b)
        .unwrap_or_else(|| a.is_nan().cmp(&b.is_nan()))
}

/// Numbers of any type (`bool`, `int`, `float`, `Decimal`, `complex`), as Python's `==`
/// equates them; `None` when either is not a number.
pub(crate) fn number_cmp(a: &H, b: &H) -> Option<Ordering> {
    let ((ra, ia), (rb, ib)) = (number(a)?, number(b)?);
    Some(real_cmp(&ra, &rb).then_with(|| float_cmp(ia, ib)))
}

/// Microseconds since 0001-01-01 of a naive date and time.
fn local_micros(year: u16, month: u8, day: u8, time: &Time) -> i64 {
    // Days from civil (Howard Hinnant's algorithm), shifted so 0001-01-01 is 0.
    let (y, m) = if month <= 2 {
        (i64::from(year) - 1, i64::from(month) + 9)
    } else {
        (i64::from(year), i64::from(month) - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe;
    days * 86_400_000_000 + clock_micros(time)
}

fn clock_micros(time: &Time) -> i64 {
    (i64::from(time.hour()) * 3600 + i64::from(time.minute()) * 60 + i64::from(time.second()))
        * 1_000_000
        + i64::from(time.microsecond())
}

/// Naive before aware (never equal); naive by their fields, aware by the instant; `fold`
/// and zone names ignored, as Python's `==` ignores them for fixed offsets.
pub(crate) fn datetime_cmp(a: &DateTime, b: &DateTime) -> Ordering {
    let key = |d: &DateTime| {
        let date = d.date();
        let local = local_micros(date.year(), date.month(), date.day(), d.time());
        match d.tzinfo() {
            None => (false, local),
            Some(zone) => (true, local - zone.offset_microseconds()),
        }
    };
    key(a).cmp(&key(b))
}

/// As [`datetime_cmp`], for times of day (an aware time by its clock minus its offset).
pub(crate) fn time_cmp(a: &Time, b: &Time) -> Ordering {
    let key = |t: &Time| match t.tzinfo() {
        None => (false, clock_micros(t)),
        Some(zone) => (true, clock_micros(t) - zone.offset_microseconds()),
    };
    key(a).cmp(&key(b))
}

/// By offset: `timezone(timedelta(hours=1), "A") == timezone(timedelta(hours=1))`.
pub(crate) fn timezone_cmp(a: &TimeZone, b: &TimeZone) -> Ordering {
    a.offset_microseconds().cmp(&b.offset_microseconds())
}

/// By the 128-bit integer: `is_safe` is not compared.
pub(crate) fn uuid_cmp(a: &Uuid, b: &Uuid) -> Ordering {
    a.as_u128().cmp(&b.as_u128())
}
