//! Reading back the text the `datetime` types' [`Display`](std::fmt::Display) writes, which is
//! Python's `isoformat()`: `2026-12-01`, `10:00:00.250000+01:00`,
//! `2026-12-01T10:00:00.250000+01:00`, and an offset `+01:00` for a [`TimeZone`].
//!
//! What `isoformat()` does not write is not in the text, so it is not read: `fold` (0 here)
//! and a zone's name (none).

use std::str::FromStr;

use crate::datetime::{Date, DateTime, RangeError, Time, TimeDelta, TimeZone};

fn syntax(what: &str, text: &str) -> RangeError {
    let shown: String = text.chars().take(60).collect();
    RangeError(format!("not a {what} in Python's isoformat(): {shown:?}"))
}

/// Exactly `n` ASCII digits at the start of `text`, and what follows.
fn digits(text: &str, n: usize) -> Option<(u32, &str)> {
    let head = text.get(..n)?;
    if !head.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((head.parse().ok()?, &text[n..]))
}

/// Hour, minute, second and microsecond, as read (not yet checked against their ranges).
type Clock = (u32, u32, u32, u32);

/// `HH:MM[:SS[.f…]]` (1 to 6 fraction digits), and the rest of `text`.
fn clock(text: &str) -> Option<(Clock, &str)> {
    let (hour, rest) = digits(text, 2)?;
    let (minute, mut rest) = digits(rest.strip_prefix(':')?, 2)?;
    let (mut second, mut micro) = (0, 0);
    if let Some(after) = rest.strip_prefix(':') {
        let (s, after) = digits(after, 2)?;
        second = s;
        rest = after;
        if let Some(after) = rest.strip_prefix('.') {
            let n = after.bytes().take_while(u8::is_ascii_digit).count();
            if !(1..=6).contains(&n) {
                return None;
            }
            let (fraction, after) = digits(after, n)?;
            micro = fraction * 10u32.pow(6 - n as u32);
            rest = after;
        }
    }
    Some(((hour, minute, second, micro), rest))
}

/// An offset `±HH:MM[:SS[.ffffff]]` or `Z`, as the whole of `text`.
fn offset(text: &str) -> Option<Result<TimeZone, RangeError>> {
    if text == "Z" {
        return Some(Ok(TimeZone::utc()));
    }
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let ((hours, minutes, seconds, micros), rest) = clock(rest)?;
    if !rest.is_empty() || minutes > 59 || seconds > 59 {
        return None;
    }
    let total = i64::from(hours) * 3_600_000_000
        + i64::from(minutes) * 60_000_000
        + i64::from(seconds) * 1_000_000
        + i64::from(micros);
    Some(TimeDelta::from_microseconds(sign * total).and_then(|delta| TimeZone::new(delta, None)))
}

fn range(value: u32, what: &str) -> Result<u8, RangeError> {
    u8::try_from(value).map_err(|_| RangeError(format!("{what} {value} is out of range")))
}

impl FromStr for Date {
    type Err = RangeError;

    /// `YYYY-MM-DD`, as `date.isoformat()` writes it.
    ///
    /// ```
    /// use durabledict_encoding::Date;
    ///
    /// assert_eq!("2024-02-29".parse::<Date>()?, Date::new(2024, 2, 29)?);
    /// assert!("2023-02-29".parse::<Date>().is_err());
    /// # Ok::<(), durabledict_encoding::RangeError>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, RangeError> {
        let parsed = (|| {
            let (year, rest) = digits(text, 4)?;
            let (month, rest) = digits(rest.strip_prefix('-')?, 2)?;
            let (day, rest) = digits(rest.strip_prefix('-')?, 2)?;
            rest.is_empty().then_some((year, month, day))
        })();
        let (year, month, day) = parsed.ok_or_else(|| syntax("date", text))?;
        Date::new(
            u16::try_from(year).map_err(|_| syntax("date", text))?,
            range(month, "month")?,
            range(day, "day")?,
        )
    }
}

impl FromStr for Time {
    type Err = RangeError;

    /// `HH:MM[:SS[.ffffff]]` and an optional offset (`±HH:MM[:SS[.ffffff]]` or `Z`), as
    /// `time.isoformat()` writes it; `fold` is 0 and the zone has no name.
    ///
    /// ```
    /// use durabledict_encoding::Time;
    ///
    /// let time: Time = "13:05:00.250000+01:00".parse()?;
    /// assert_eq!(time.to_string(), "13:05:00.250000+01:00");
    /// assert_eq!("13:05".parse::<Time>()?, Time::new(13, 5, 0, 0)?);
    /// # Ok::<(), durabledict_encoding::RangeError>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, RangeError> {
        let ((hour, minute, second, micro), rest) =
            clock(text).ok_or_else(|| syntax("time", text))?;
        let tzinfo = if rest.is_empty() {
            None
        } else {
            Some(offset(rest).ok_or_else(|| syntax("time", text))??)
        };
        Ok(Time::new(
            range(hour, "hour")?,
            range(minute, "minute")?,
            range(second, "second")?,
            micro,
        )?
        .with_tzinfo(tzinfo))
    }
}

impl FromStr for DateTime {
    type Err = RangeError;

    /// A date and a time joined by `T` (or a space), as `datetime.isoformat()` writes them.
    ///
    /// ```
    /// use durabledict_encoding::DateTime;
    ///
    /// let at: DateTime = "2026-12-01T10:00:00.250000+01:00".parse()?;
    /// assert_eq!(at.to_string(), "2026-12-01T10:00:00.250000+01:00");
    /// assert!(at.tzinfo().is_some());
    /// assert!("2026-12-01 10:00".parse::<DateTime>()?.tzinfo().is_none());
    /// # Ok::<(), durabledict_encoding::RangeError>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, RangeError> {
        let (date, time) = match (text.get(..10), text.get(10..11), text.get(11..)) {
            (Some(date), Some("T" | " "), Some(time)) => (date, time),
            _ => return Err(syntax("datetime", text)),
        };
        let date: Date = date.parse().map_err(|_| syntax("datetime", text))?;
        Ok(DateTime::new(date, time.parse()?))
    }
}

impl FromStr for TimeZone {
    type Err = RangeError;

    /// An offset `±HH:MM[:SS[.ffffff]]` (or `Z`, UTC), as [`TimeZone`]'s `Display` writes it;
    /// the zone has no name.
    ///
    /// ```
    /// use durabledict_encoding::TimeZone;
    ///
    /// let zone: TimeZone = "-05:30".parse()?;
    /// assert_eq!(zone.offset_microseconds(), -(5 * 3600 + 30 * 60) * 1_000_000);
    /// assert!("+24:00".parse::<TimeZone>().is_err());
    /// # Ok::<(), durabledict_encoding::RangeError>(())
    /// ```
    fn from_str(text: &str) -> Result<Self, RangeError> {
        offset(text).ok_or_else(|| syntax("timezone offset", text))?
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn what_display_writes_reads_back() {
        for text in [
            "0001-01-01T00:00:00",
            "9999-12-31T23:59:59.999999-23:59:59.999999",
            "2026-12-01T10:00:00.000001+00:00",
            "2026-12-01T10:00:00+05:30:15",
        ] {
            assert_eq!(text.parse::<DateTime>().unwrap().to_string(), text);
        }
        assert_eq!(
            "10:00:00.5Z".parse::<Time>().unwrap().to_string(),
            "10:00:00.500000+00:00"
        );
    }

    #[test]
    fn malformed_text_is_refused() {
        for text in [
            "",
            "2026-1-01T10:00",
            "2026-12-01X10:00",
            "2026-12-01T10",
            "2026-12-01T10:00:00.1234567",
            "2026-12-01T10:00:00.",
            "2026-12-01T24:00",
            "2026-12-01T10:00+1",
            "2026-12-01T10:00+01:60",
            "2026-12-01T10:00+24:00",
            "2026-12-01T10:00:00 ",
            "２０２６-12-01T10:00",
        ] {
            assert!(text.parse::<DateTime>().is_err(), "{text}");
        }
        assert!("0000-01-01".parse::<Date>().is_err());
    }
}
