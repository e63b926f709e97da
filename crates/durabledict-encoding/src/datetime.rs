//! Python's `datetime` values: [`Date`], [`Time`], [`DateTime`], [`TimeDelta`] and the fixed
//! offset [`TimeZone`], each holding exactly what CPython's object holds (microseconds, `fold`,
//! the offset and the zone's name), with the ranges CPython enforces.

use std::fmt;

/// A value outside the range its Python type allows (a month 13, a `timedelta` beyond
/// 999,999,999 days, an offset of a day or more, a `Decimal` that is not a number).
///
/// ```
/// use durabledict_encoding::Date;
///
/// assert!(Date::new(2024, 2, 29).is_ok());
/// let err = Date::new(2023, 2, 29).unwrap_err();
/// assert_eq!(err.to_string(), "day 29 is out of range for 2023-02");
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeError(pub(crate) String);

impl fmt::Display for RangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RangeError {}

fn out_of_range(what: impl Into<String>) -> RangeError {
    RangeError(what.into())
}

/// `datetime.date`: a year 1 to 9999, a month and a day of that month.
///
/// ```
/// use durabledict_encoding::Date;
///
/// let date = Date::new(2024, 2, 29)?;
/// assert_eq!((date.year(), date.month(), date.day()), (2024, 2, 29));
/// assert_eq!(date.to_string(), "2024-02-29"); // as Python's date.isoformat()
/// # Ok::<(), durabledict_encoding::RangeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: u16,
    month: u8,
    day: u8,
}

impl Date {
    /// The date, if Python's `date(year, month, day)` accepts it.
    pub fn new(year: u16, month: u8, day: u8) -> Result<Self, RangeError> {
        if !(1..=9999).contains(&year) {
            return Err(out_of_range(format!(
                "year {year} is out of range 1..=9999"
            )));
        }
        if !(1..=12).contains(&month) {
            return Err(out_of_range(format!(
                "month {month} is out of range 1..=12"
            )));
        }
        let leap =
            year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
        let days = [
            31,
            if leap { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ];
        if day == 0 || day > days[usize::from(month - 1)] {
            return Err(out_of_range(format!(
                "day {day} is out of range for {year:04}-{month:02}"
            )));
        }
        Ok(Date { year, month, day })
    }

    /// The year, 1 to 9999.
    pub fn year(&self) -> u16 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// The 4 bytes CPython pickles a `date` as.
    pub(crate) fn state(&self) -> [u8; 4] {
        let [hi, lo] = self.year.to_be_bytes();
        [hi, lo, self.month, self.day]
    }

    /// Reads [`state`](Self::state) (the first 4 bytes of a `datetime`'s too); the fold bit in
    /// the month byte is the caller's to strip.
    pub(crate) fn from_state(state: &[u8]) -> Result<Self, RangeError> {
        match state {
            [hi, lo, month, day, ..] => Date::new(u16::from_be_bytes([*hi, *lo]), *month, *day),
            _ => Err(out_of_range("a date state shorter than 4 bytes")),
        }
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }
}

/// `datetime.time`: a time of day to the microsecond, with Python's `fold` (which of two
/// equal wall times at a clock change) and an optional fixed-offset zone.
///
/// ```
/// use durabledict_encoding::{Time, TimeDelta, TimeZone};
///
/// let plus_one = TimeZone::new(TimeDelta::new(0, 3600, 0)?, None)?;
/// let time = Time::new(13, 5, 0, 250_000)?.with_tzinfo(Some(plus_one));
/// assert_eq!(time.to_string(), "13:05:00.250000+01:00"); // as Python's time.isoformat()
/// # Ok::<(), durabledict_encoding::RangeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    hour: u8,
    minute: u8,
    second: u8,
    microsecond: u32,
    fold: bool,
    tzinfo: Option<TimeZone>,
}

impl Time {
    /// The naive time (no zone, `fold` 0), if Python's `time(...)` accepts it.
    pub fn new(hour: u8, minute: u8, second: u8, microsecond: u32) -> Result<Self, RangeError> {
        for (value, max, what) in [
            (hour, 23, "hour"),
            (minute, 59, "minute"),
            (second, 59, "second"),
        ] {
            if value > max {
                return Err(out_of_range(format!(
                    "{what} {value} is out of range 0..={max}"
                )));
            }
        }
        if microsecond > 999_999 {
            return Err(out_of_range(format!(
                "microsecond {microsecond} is out of range 0..=999999"
            )));
        }
        Ok(Time {
            hour,
            minute,
            second,
            microsecond,
            fold: false,
            tzinfo: None,
        })
    }

    /// The same time with Python's `fold` set (`true` is `fold=1`).
    #[must_use]
    pub fn with_fold(mut self, fold: bool) -> Self {
        self.fold = fold;
        self
    }

    /// The same time in the zone `tzinfo` (or naive with `None`).
    #[must_use]
    pub fn with_tzinfo(mut self, tzinfo: Option<TimeZone>) -> Self {
        self.tzinfo = tzinfo;
        self
    }

    /// The hour, 0 to 23.
    pub fn hour(&self) -> u8 {
        self.hour
    }

    /// The minute, 0 to 59.
    pub fn minute(&self) -> u8 {
        self.minute
    }

    /// The second, 0 to 59.
    pub fn second(&self) -> u8 {
        self.second
    }

    /// The microsecond, 0 to 999,999.
    pub fn microsecond(&self) -> u32 {
        self.microsecond
    }

    /// Python's `fold` (`true` is 1).
    pub fn fold(&self) -> bool {
        self.fold
    }

    /// The zone, if the time is aware.
    pub fn tzinfo(&self) -> Option<&TimeZone> {
        self.tzinfo.as_ref()
    }

    /// The 6 bytes CPython pickles a `time` as (without its zone); the fold is the top bit
    /// of the hour, as CPython writes it with protocols 4 and 5 and reads it with any.
    pub(crate) fn state(&self) -> [u8; 6] {
        let [_, a, b, c] = self.microsecond.to_be_bytes();
        [
            self.hour | if self.fold { 0x80 } else { 0 },
            self.minute,
            self.second,
            a,
            b,
            c,
        ]
    }

    /// Reads [`state`](Self::state)'s 6 bytes (also the last 6 of a `datetime`'s).
    pub(crate) fn from_state(state: [u8; 6], fold: bool) -> Result<Self, RangeError> {
        let [h, m, s, a, b, c] = state;
        Ok(Time::new(h, m, s, u32::from_be_bytes([0, a, b, c]))?.with_fold(fold))
    }
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}:{:02}", self.hour, self.minute, self.second)?;
        if self.microsecond != 0 {
            write!(f, ".{:06}", self.microsecond)?;
        }
        if let Some(tz) = &self.tzinfo {
            tz.write_offset(f)?;
        }
        Ok(())
    }
}

/// `datetime.datetime`: a [`Date`] and a [`Time`] (with its `fold` and optional zone).
///
/// ```
/// use durabledict_encoding::{Date, DateTime, Time, TimeZone};
///
/// let at = DateTime::new(Date::new(2024, 3, 1)?, Time::new(9, 30, 0, 5)?)
///     .with_tzinfo(Some(TimeZone::utc()));
/// assert_eq!(at.to_string(), "2024-03-01T09:30:00.000005+00:00"); // as Python's isoformat()
/// # Ok::<(), durabledict_encoding::RangeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTime {
    date: Date,
    time: Time,
}

impl DateTime {
    /// The date at the time (naive when `time` has no zone).
    pub fn new(date: Date, time: Time) -> Self {
        DateTime { date, time }
    }

    /// The same date and time in the zone `tzinfo` (or naive with `None`).
    #[must_use]
    pub fn with_tzinfo(mut self, tzinfo: Option<TimeZone>) -> Self {
        self.time.tzinfo = tzinfo;
        self
    }

    /// The date.
    pub fn date(&self) -> Date {
        self.date
    }

    /// The time of day, with the `fold` and the zone.
    pub fn time(&self) -> &Time {
        &self.time
    }

    /// The zone, if the date-time is aware.
    pub fn tzinfo(&self) -> Option<&TimeZone> {
        self.time.tzinfo()
    }

    /// The 10 bytes CPython pickles a `datetime` as (without its zone); the fold is the top
    /// bit of the month.
    pub(crate) fn state(&self) -> [u8; 10] {
        let [y0, y1, month, day] = self.date.state();
        let [h, m, s, a, b, c] = self.time.state();
        let month = month | if self.time.fold { 0x80 } else { 0 };
        [y0, y1, month, day, h & 0x7F, m, s, a, b, c]
    }

    pub(crate) fn from_state(state: [u8; 10]) -> Result<Self, RangeError> {
        let fold = state[2] & 0x80 != 0;
        let date = Date::from_state(&[state[0], state[1], state[2] & 0x7F, state[3]])?;
        let time = Time::from_state(
            [state[4], state[5], state[6], state[7], state[8], state[9]],
            fold,
        )?;
        Ok(DateTime { date, time })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}T{}", self.date, self.time)
    }
}

/// `datetime.timedelta`, normalized as Python keeps it: `days` (within ±999,999,999),
/// `seconds` (0 to 86,399) and `microseconds` (0 to 999,999).
///
/// ```
/// use durabledict_encoding::TimeDelta;
///
/// // timedelta(seconds=-1) is timedelta(days=-1, seconds=86399)
/// let delta = TimeDelta::new(0, -1, 0)?;
/// assert_eq!((delta.days(), delta.seconds(), delta.microseconds()), (-1, 86_399, 0));
/// assert_eq!(delta.total_microseconds(), -1_000_000);
/// # Ok::<(), durabledict_encoding::RangeError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeDelta {
    days: i32,
    seconds: u32,
    microseconds: u32,
}

/// Python's `timedelta.max.days`.
const MAX_DAYS: i64 = 999_999_999;

impl TimeDelta {
    /// `timedelta(days, seconds, microseconds)`, normalized as Python does.
    pub fn new(days: i64, seconds: i64, microseconds: i64) -> Result<Self, RangeError> {
        let total = i128::from(days) * 86_400_000_000
            + i128::from(seconds) * 1_000_000
            + i128::from(microseconds);
        Self::from_total(total)
    }

    /// The `timedelta` of `total` microseconds.
    pub fn from_microseconds(total: i64) -> Result<Self, RangeError> {
        Self::from_total(i128::from(total))
    }

    fn from_total(total: i128) -> Result<Self, RangeError> {
        let days = total.div_euclid(86_400_000_000);
        let rest = total.rem_euclid(86_400_000_000);
        if days.abs() > i128::from(MAX_DAYS) {
            return Err(out_of_range(format!(
                "a timedelta of {days} days is beyond ±{MAX_DAYS}"
            )));
        }
        Ok(TimeDelta {
            days: days as i32,
            seconds: (rest / 1_000_000) as u32,
            microseconds: (rest % 1_000_000) as u32,
        })
    }

    /// Days, within ±999,999,999.
    pub fn days(&self) -> i32 {
        self.days
    }

    /// Seconds, 0 to 86,399.
    pub fn seconds(&self) -> u32 {
        self.seconds
    }

    /// Microseconds, 0 to 999,999.
    pub fn microseconds(&self) -> u32 {
        self.microseconds
    }

    /// The whole duration in microseconds. Python's extreme `timedelta`s (beyond about
    /// ±106,751,991 days) do not fit an `i64` and saturate.
    pub fn total_microseconds(&self) -> i64 {
        let total = i128::from(self.days) * 86_400_000_000
            + i128::from(self.seconds) * 1_000_000
            + i128::from(self.microseconds);
        i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
    }

    fn total_i128(&self) -> i128 {
        i128::from(self.days) * 86_400_000_000
            + i128::from(self.seconds) * 1_000_000
            + i128::from(self.microseconds)
    }
}

impl fmt::Display for TimeDelta {
    /// As Python's `str(timedelta)`: `-1 day, 23:59:59.000001`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.days != 0 {
            let plural = if self.days.abs() == 1 { "" } else { "s" };
            write!(f, "{} day{plural}, ", self.days)?;
        }
        let s = self.seconds;
        write!(f, "{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)?;
        if self.microseconds != 0 {
            write!(f, ".{:06}", self.microseconds)?;
        }
        Ok(())
    }
}

/// `datetime.timezone`: a fixed offset from UTC (strictly within ±24 hours, to the
/// microsecond), with the name given to `timezone(offset, name)` if any. `timezone.utc` is
/// [`TimeZone::utc`].
///
/// ```
/// use durabledict_encoding::{TimeDelta, TimeZone};
///
/// let est = TimeZone::new(TimeDelta::new(0, -5 * 3600, 0)?, Some("EST".into()))?;
/// assert_eq!(est.offset().days(), -1);
/// assert_eq!(est.name(), Some("EST"));
/// assert!(TimeZone::new(TimeDelta::new(1, 0, 0)?, None).is_err());
/// # Ok::<(), durabledict_encoding::RangeError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeZone {
    offset: TimeDelta,
    name: Option<String>,
}

impl TimeZone {
    /// `timezone(offset)` or `timezone(offset, name)`.
    pub fn new(offset: TimeDelta, name: Option<String>) -> Result<Self, RangeError> {
        if offset.total_i128().abs() >= 86_400_000_000 {
            return Err(out_of_range(format!(
                "a timezone offset must be strictly between -24 and 24 hours, not {offset}"
            )));
        }
        Ok(TimeZone { offset, name })
    }

    /// `timezone.utc`.
    pub fn utc() -> Self {
        TimeZone {
            offset: TimeDelta {
                days: 0,
                seconds: 0,
                microseconds: 0,
            },
            name: None,
        }
    }

    /// The offset from UTC.
    pub fn offset(&self) -> TimeDelta {
        self.offset
    }

    /// The name given to `timezone(offset, name)`.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The offset in microseconds, within ±86,399,999,999.
    pub fn offset_microseconds(&self) -> i64 {
        self.offset.total_microseconds()
    }

    /// The offset as Python's `isoformat()` appends it: `+01:00`, `-05:30:15.000001`.
    pub(crate) fn write_offset(&self, f: &mut impl fmt::Write) -> fmt::Result {
        let total = self.offset_microseconds();
        let sign = if total < 0 { '-' } else { '+' };
        let total = total.unsigned_abs();
        let (seconds, micros) = (total / 1_000_000, total % 1_000_000);
        write!(f, "{sign}{:02}:{:02}", seconds / 3600, seconds / 60 % 60)?;
        if seconds % 60 != 0 || micros != 0 {
            write!(f, ":{:02}", seconds % 60)?;
        }
        if micros != 0 {
            write!(f, ".{micros:06}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TimeZone {
    /// The offset as `isoformat()` writes it (`+01:00`), whatever the name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_offset(f)
    }
}
