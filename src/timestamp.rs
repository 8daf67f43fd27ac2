//! RFC 3339 timestamps for serde, as `time::serde::rfc3339` writes and reads them, without its
//! per-value costs.
//!
//! Every stored delivery state, attempt record and health carries several timestamps, and the SQL
//! stores encode a state on every claim and every outcome, so the general-purpose formatter (a
//! `String` per value, then a UTF-8 check) showed up in the dispatcher's profile. This module
//! writes UTC times into a stack buffer and reads the `…Z` form directly; anything else (an
//! offset other than UTC, a leap second, an unusual shape) goes through the `time` crate, so the
//! text written and the values accepted are exactly those of `time::serde::rfc3339` (property
//! tests below compare the two).

use serde::{Deserialize, Deserializer, Serializer};
use time::format_description::well_known::Rfc3339;
use time::{Date, Month, OffsetDateTime, Time, UtcOffset};

/// "00" to "99", for writing decimal numbers two digits at a time.
pub(crate) const DIGIT_PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
    2021222324252627282930313233343536373839\
    4041424344454647484950515253545556575859\
    6061626364656667686970717273747576777879\
    8081828384858687888990919293949596979899";

/// The longest UTC form: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`.
const MAX_UTC_LEN: usize = 30;

/// A stack buffer being filled.
struct Writer {
    buf: [u8; MAX_UTC_LEN],
    len: usize,
}

impl Writer {
    fn byte(&mut self, byte: u8) {
        self.buf[self.len] = byte;
        self.len += 1;
    }

    /// `value` as exactly `digits` decimal digits, zero-padded, two at a time from the right
    /// (divisions by constants, which compile to multiplications).
    fn digits(&mut self, mut value: u32, digits: usize) {
        let end = self.len + digits;
        let mut at = end;
        while at >= self.len + 2 {
            let pair = (value % 100) as usize * 2;
            value /= 100;
            at -= 2;
            self.buf[at..at + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
        }
        if at > self.len {
            // A value modulo 10: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            let digit = (value % 10) as u8;
            self.buf[at - 1] = b'0' + digit;
        }
        self.len = end;
    }
}

/// Formats a UTC time whose year has four digits into `writer`; `false` for anything else
/// (left to the `time` crate).
fn format_utc(at: OffsetDateTime, writer: &mut Writer) -> bool {
    if at.offset() != UtcOffset::UTC || !(0..10_000).contains(&at.year()) {
        return false;
    }
    writer.digits(at.year().unsigned_abs(), 4);
    writer.byte(b'-');
    writer.digits(u32::from(u8::from(at.month())), 2);
    writer.byte(b'-');
    writer.digits(u32::from(at.day()), 2);
    writer.byte(b'T');
    writer.digits(u32::from(at.hour()), 2);
    writer.byte(b':');
    writer.digits(u32::from(at.minute()), 2);
    writer.byte(b':');
    writer.digits(u32::from(at.second()), 2);
    let mut nanos = at.nanosecond();
    if nanos != 0 {
        // As many digits as needed, trailing zeros dropped (as the `time` crate writes them).
        let mut digits = 9;
        while nanos.is_multiple_of(10) {
            nanos /= 10;
            digits -= 1;
        }
        writer.byte(b'.');
        writer.digits(nanos, digits);
    }
    writer.byte(b'Z');
    true
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.f…]Z` with 1–9 fraction digits; `None` for anything else,
/// including invalid values (left to the `time` crate, which then gives the error).
fn parse_utc(text: &[u8]) -> Option<OffsetDateTime> {
    let digits = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = text.get(range)?;
        part.iter().try_fold(0u32, |value, &b| {
            b.is_ascii_digit().then(|| value * 10 + u32::from(b - b'0'))
        })
    };
    let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
    if text.len() < 20
        || text.last() != Some(&b'Z')
        || separators.iter().any(|&(at, sep)| text[at] != sep)
    {
        return None;
    }
    let year = i32::try_from(digits(0..4)?).ok()?;
    let month = Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    let hour = u8::try_from(digits(11..13)?).ok()?;
    let minute = u8::try_from(digits(14..16)?).ok()?;
    let second = u8::try_from(digits(17..19)?).ok()?;
    let nanos = match text.len() - 1 {
        19 => 0,
        end if text[19] == b'.' && (21..=29).contains(&end) => {
            let fraction = digits(20..end)?;
            let missing = u32::try_from(29 - end).ok()?;
            fraction * 10u32.pow(missing)
        }
        _ => return None,
    };
    let date = Date::from_calendar_date(year, month, day).ok()?;
    let time = Time::from_hms_nano(hour, minute, second, nanos).ok()?;
    Some(date.with_time(time).assume_utc())
}

/// Writes `at` as RFC 3339 (`with = "crate::timestamp"`).
///
/// # Errors
/// As `time::serde::rfc3339`: a year outside 0–9999 or an offset RFC 3339 cannot write.
pub(crate) fn serialize<S: Serializer>(
    at: &OffsetDateTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut writer = Writer {
        buf: [0; MAX_UTC_LEN],
        len: 0,
    };
    if format_utc(*at, &mut writer) {
        // Only ASCII digits and separators were written.
        if let Ok(text) = std::str::from_utf8(&writer.buf[..writer.len]) {
            return serializer.serialize_str(text);
        }
    }
    time::serde::rfc3339::serialize(at, serializer)
}

/// Reads an RFC 3339 time.
///
/// # Errors
/// As `time::serde::rfc3339`.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<OffsetDateTime, D::Error> {
    let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// Parses an RFC 3339 time: the fast path, else the `time` crate.
fn parse(text: &str) -> Result<OffsetDateTime, time::error::Parse> {
    match parse_utc(text.as_bytes()) {
        Some(at) => Ok(at),
        None => OffsetDateTime::parse(text, &Rfc3339),
    }
}

/// The same for `Option<OffsetDateTime>` (`with = "crate::timestamp::option"`).
pub(crate) mod option {
    use serde::{Deserialize, Deserializer, Serializer};
    use time::OffsetDateTime;

    /// Writes `Some` as RFC 3339, `None` as null.
    ///
    /// # Errors
    /// As [`super::serialize`].
    #[allow(clippy::ref_option)] // the signature serde's `with` requires
    pub(crate) fn serialize<S: Serializer>(
        at: &Option<OffsetDateTime>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => super::serialize(at, serializer),
            None => serializer.serialize_none(),
        }
    }

    /// Reads an RFC 3339 time or null.
    ///
    /// # Errors
    /// As [`super::deserialize`].
    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<OffsetDateTime>, D::Error> {
        let text = <Option<std::borrow::Cow<'de, str>>>::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::format_description::well_known::Rfc3339;
    use time::{OffsetDateTime, UtcOffset};

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Fast(#[serde(with = "super")] OffsetDateTime);

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Reference(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct FastOption(#[serde(with = "super::option")] Option<OffsetDateTime>);

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct ReferenceOption(#[serde(with = "time::serde::rfc3339::option")] Option<OffsetDateTime>);

    fn any_time() -> impl Strategy<Value = OffsetDateTime> {
        // Years 0000–9999 (all `time` represents without its `large-dates` feature), any
        // nanosecond, UTC and other offsets. An offset that would take the local date past
        // either end keeps UTC: `to_offset` panics there. (The range used to reach 400 days
        // past the end, and about one run in seventy drew a second there and panicked.)
        (
            -377_705_116_800i64..=253_402_300_799,
            0u32..1_000_000_000,
            prop_oneof![Just(0i32), -86_399i32..86_400],
        )
            .prop_map(|(secs, nanos, offset)| {
                let at = OffsetDateTime::from_unix_timestamp(secs).unwrap()
                    + time::Duration::nanoseconds(i64::from(nanos));
                at.checked_to_offset(UtcOffset::from_whole_seconds(offset).unwrap())
                    .unwrap_or(at)
            })
    }

    proptest! {
        #[test]
        fn writes_what_the_time_crate_writes(at in any_time()) {
            let fast = serde_json::to_string(&Fast(at));
            let reference = serde_json::to_string(&Reference(at));
            prop_assert_eq!(fast.as_ref().ok(), reference.as_ref().ok());
            prop_assert_eq!(fast.is_err(), reference.is_err());
            prop_assert_eq!(
                serde_json::to_string(&FastOption(Some(at))).ok(),
                serde_json::to_string(&ReferenceOption(Some(at))).ok()
            );
        }

        #[test]
        fn reads_what_it_writes(at in any_time()) {
            if let Ok(json) = serde_json::to_string(&Reference(at)) {
                let back: Fast = serde_json::from_str(&json).unwrap();
                prop_assert_eq!(back.0, at);
            }
        }

        #[test]
        fn accepts_and_refuses_what_the_time_crate_does(text in time_like_text()) {
            let ours = super::parse(&text).ok();
            let theirs = OffsetDateTime::parse(&text, &Rfc3339).ok();
            prop_assert_eq!(ours, theirs, "{}", text);
        }
    }

    /// Strings near the RFC 3339 shape: valid ones, out-of-range fields, odd lengths, offsets,
    /// lower-case separators, leap seconds.
    fn time_like_text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[0-9]{4}-[0-1][0-9]-[0-3][0-9][Tt ][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,11})?([Zz]|[+-][0-2][0-9]:[0-6][0-9])?",
            "[0-9:.TZ+-]{0,32}",
        ]
    }

    #[test]
    fn examples() {
        for (text, ok) in [
            ("2024-11-10T10:30:00Z", true),
            ("2024-11-10T10:30:00.5Z", true),
            ("2024-11-10T10:30:00.123456789Z", true),
            ("2024-11-10T10:30:00.1234567891Z", true),
            ("2024-11-10T10:30:00.Z", false),
            ("2024-02-30T10:30:00Z", false),
            ("2024-11-10T24:00:00Z", false),
            ("2016-12-31T23:59:60Z", true),
            ("2024-11-10T10:30:00+01:00", true),
            ("2024-11-10t10:30:00z", true),
        ] {
            assert_eq!(super::parse(text).is_ok(), ok, "{text}");
            assert_eq!(
                super::parse(text).ok(),
                OffsetDateTime::parse(text, &Rfc3339).ok(),
                "{text}"
            );
        }
    }
}
