//! The retry schedule: how many attempts a delivery gets and how long to wait between them.

use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::DeliveryId;

/// The most attempts a schedule may have. Past a few dozen, retries only add load to a receiver
/// that is not coming back; replays exist for the rest.
pub const MAX_SCHEDULE_ATTEMPTS: usize = 50;
/// The longest single delay (and jitter) a schedule may have: 30 days.
pub const MAX_SCHEDULE_DELAY: Duration = Duration::days(30);

/// Random extra delay added to retries, so that deliveries that failed together (an endpoint
/// outage) do not all retry in the same second.
///
/// The extra delay is derived from the delivery id and the attempt number (see
/// [`RetrySchedule::jitter`]), never from a random generator: runs are reproducible and a
/// restarted dispatcher computes the same times. Jitter only ever **adds** time; an attempt is
/// never earlier than the schedule says. The first attempt is never jittered, so new events go
/// out at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No jitter: attempts land exactly on the schedule.
    #[default]
    None,
    /// Up to `percent` % of the attempt's scheduled delay (at most 100).
    Proportional {
        /// The largest extra delay, as a percentage of the scheduled delay.
        percent: u8,
    },
    /// Up to a fixed duration (at most [`MAX_SCHEDULE_DELAY`]).
    UpTo(Duration),
}

/// Why a schedule is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScheduleError {
    /// No attempts: every delivery needs at least one.
    #[error("retry schedule has no attempts")]
    NoAttempts,
    /// More than [`MAX_SCHEDULE_ATTEMPTS`] attempts.
    #[error("retry schedule has more than {MAX_SCHEDULE_ATTEMPTS} attempts")]
    TooManyAttempts,
    /// A delay is negative.
    #[error("retry delay {index} is negative")]
    NegativeDelay {
        /// Its position in the list, from 0.
        index: usize,
    },
    /// A delay is longer than [`MAX_SCHEDULE_DELAY`].
    #[error("retry delay {index} is longer than 30 days")]
    DelayTooLong {
        /// Its position in the list, from 0.
        index: usize,
    },
    /// Proportional jitter over 100 %, or a negative or too long fixed jitter.
    #[error("jitter must be at most 100 percent or between 0 and 30 days")]
    InvalidJitter,
}

/// When each attempt of a delivery is due.
///
/// A schedule is a list of delays, one per attempt: the first is counted from the moment the
/// delivery is created, each next one from the moment the previous attempt's outcome was
/// handled. Delays have millisecond precision.
///
/// # Default
/// The announcement's schedule, 5 attempts: immediately, then 5 minutes, 30 minutes, 2 hours and
/// 12 hours after the previous failure. With instant failures the attempts land 0, 5 min,
/// 35 min, 2 h 35 min and 14 h 35 min after the event. No jitter.
///
/// ```
/// use nopos_webhooks::{Jitter, RetrySchedule};
/// use time::Duration;
///
/// let schedule = RetrySchedule::default();
/// assert_eq!(schedule.max_attempts(), 5);
/// assert_eq!(schedule.delay(2), Some(Duration::minutes(5)));
/// assert_eq!(schedule.delay(6), None);
///
/// let quick = RetrySchedule::new([Duration::ZERO, Duration::seconds(10)])?
///     .with_jitter(Jitter::Proportional { percent: 20 })?;
/// assert_eq!(quick.max_attempts(), 2);
/// # Ok::<(), nopos_webhooks::ScheduleError>(())
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "ScheduleRepr", into = "ScheduleRepr")]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    jitter: Jitter,
}

impl RetrySchedule {
    /// The default delays: `0`, `5 min`, `30 min`, `2 h`, `12 h`.
    pub const DEFAULT_DELAYS: [Duration; 5] = [
        Duration::ZERO,
        Duration::minutes(5),
        Duration::minutes(30),
        Duration::hours(2),
        Duration::hours(12),
    ];

    /// A schedule with one attempt per delay, without jitter. Delays are truncated to whole
    /// milliseconds.
    ///
    /// # Errors
    /// [`ScheduleError`] for an empty or too long list, or a negative or too long delay.
    pub fn new(delays: impl IntoIterator<Item = Duration>) -> Result<RetrySchedule, ScheduleError> {
        let mut list = Vec::new();
        for (index, delay) in delays.into_iter().enumerate() {
            if list.len() == MAX_SCHEDULE_ATTEMPTS {
                return Err(ScheduleError::TooManyAttempts);
            }
            if delay.is_negative() {
                return Err(ScheduleError::NegativeDelay { index });
            }
            if delay > MAX_SCHEDULE_DELAY {
                return Err(ScheduleError::DelayTooLong { index });
            }
            list.push(Duration::milliseconds(whole_millis(delay).cast_signed()));
        }
        if list.is_empty() {
            return Err(ScheduleError::NoAttempts);
        }
        Ok(RetrySchedule {
            delays: list,
            jitter: Jitter::None,
        })
    }

    /// The same schedule with `jitter`. A fixed jitter is truncated to whole milliseconds.
    ///
    /// # Errors
    /// [`ScheduleError::InvalidJitter`] for more than 100 % or a negative or too long duration.
    pub fn with_jitter(mut self, jitter: Jitter) -> Result<RetrySchedule, ScheduleError> {
        self.jitter = match jitter {
            Jitter::None => Jitter::None,
            Jitter::Proportional { percent } if percent <= 100 => jitter,
            Jitter::UpTo(max) if !max.is_negative() && max <= MAX_SCHEDULE_DELAY => {
                Jitter::UpTo(Duration::milliseconds(whole_millis(max).cast_signed()))
            }
            Jitter::Proportional { .. } | Jitter::UpTo(_) => {
                return Err(ScheduleError::InvalidJitter);
            }
        };
        Ok(self)
    }

    /// The number of attempts a delivery gets.
    pub fn max_attempts(&self) -> u32 {
        // At most MAX_SCHEDULE_ATTEMPTS, so the conversion cannot fail.
        u32::try_from(self.delays.len()).unwrap_or(u32::MAX)
    }

    /// The delays, one per attempt.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The jitter setting.
    pub fn jitter_setting(&self) -> Jitter {
        self.jitter
    }

    /// The scheduled delay before attempt `position` (1-based, within the schedule), without
    /// jitter; `None` past the last attempt.
    pub fn delay(&self, position: u32) -> Option<Duration> {
        let index = usize::try_from(position.checked_sub(1)?).ok()?;
        self.delays.get(index).copied()
    }

    /// The largest jitter attempt `position` can get.
    pub fn max_jitter(&self, position: u32) -> Duration {
        if position <= 1 {
            return Duration::ZERO;
        }
        let Some(delay) = self.delay(position) else {
            return Duration::ZERO;
        };
        match self.jitter {
            Jitter::None => Duration::ZERO,
            Jitter::Proportional { percent } => Duration::milliseconds(
                (whole_millis(delay) * u64::from(percent) / 100).cast_signed(),
            ),
            Jitter::UpTo(max) => max,
        }
    }

    /// The extra delay of attempt `position` (1-based, within the schedule) of `delivery`,
    /// whose overall attempt number is `attempt`: between zero and
    /// [`max_jitter`](Self::max_jitter), in whole milliseconds.
    ///
    /// The value is `h × (max + 1) / 2⁶⁴` milliseconds, with `h` the first 8 bytes (big-endian)
    /// of SHA-256 over `nopos-webhooks/jitter/v1`, a zero byte, the delivery id, a zero byte and
    /// the attempt number as 4 big-endian bytes. It is the same on every run and every machine,
    /// and spread evenly over the range.
    pub fn jitter(&self, position: u32, delivery: &DeliveryId, attempt: u32) -> Duration {
        let max = whole_millis(self.max_jitter(position));
        if max == 0 {
            return Duration::ZERO;
        }
        let digest = Sha256::new()
            .chain_update(b"nopos-webhooks/jitter/v1\0")
            .chain_update(delivery.as_str().as_bytes())
            .chain_update([0])
            .chain_update(attempt.to_be_bytes())
            .finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let h = u128::from(u64::from_be_bytes(first));
        let extra = (h * (u128::from(max) + 1)) >> 64;
        Duration::milliseconds(i64::try_from(extra).unwrap_or(i64::MAX))
    }

    /// When attempt `position` (1-based, within the schedule) is due: `base` (the delivery's
    /// creation, or the handling of the previous attempt's outcome) plus its delay and jitter.
    /// `None` past the last attempt.
    pub fn due_at(
        &self,
        base: OffsetDateTime,
        position: u32,
        delivery: &DeliveryId,
        attempt: u32,
    ) -> Option<OffsetDateTime> {
        let delay = self.delay(position)?;
        Some(base.saturating_add(delay + self.jitter(position, delivery, attempt)))
    }
}

/// Milliseconds of a non-negative duration (validated by the callers), saturating.
fn whole_millis(duration: Duration) -> u64 {
    u64::try_from(duration.whole_milliseconds()).unwrap_or(0)
}

impl Default for RetrySchedule {
    fn default() -> RetrySchedule {
        RetrySchedule {
            delays: RetrySchedule::DEFAULT_DELAYS.to_vec(),
            jitter: Jitter::None,
        }
    }
}

impl fmt::Debug for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetrySchedule")
            .field("delays", &self.delays)
            .field("jitter", &self.jitter)
            .finish()
    }
}

/// The stored form: delays and jitter in milliseconds, validated again on the way in.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScheduleRepr {
    delays_ms: Vec<u64>,
    #[serde(default)]
    jitter: JitterRepr,
}

#[derive(Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
enum JitterRepr {
    #[default]
    None,
    Proportional {
        percent: u8,
    },
    UpTo {
        max_ms: u64,
    },
}

/// Milliseconds into a duration; values beyond `i64` become invalid (negative) on purpose.
fn duration_ms(ms: u64) -> Duration {
    Duration::milliseconds(i64::try_from(ms).unwrap_or(-1))
}

impl TryFrom<ScheduleRepr> for RetrySchedule {
    type Error = ScheduleError;

    fn try_from(repr: ScheduleRepr) -> Result<RetrySchedule, ScheduleError> {
        let jitter = match repr.jitter {
            JitterRepr::None => Jitter::None,
            JitterRepr::Proportional { percent } => Jitter::Proportional { percent },
            JitterRepr::UpTo { max_ms } => Jitter::UpTo(duration_ms(max_ms)),
        };
        RetrySchedule::new(repr.delays_ms.into_iter().map(duration_ms))?.with_jitter(jitter)
    }
}

impl From<RetrySchedule> for ScheduleRepr {
    fn from(schedule: RetrySchedule) -> ScheduleRepr {
        ScheduleRepr {
            delays_ms: schedule.delays.iter().map(|d| whole_millis(*d)).collect(),
            jitter: match schedule.jitter {
                Jitter::None => JitterRepr::None,
                Jitter::Proportional { percent } => JitterRepr::Proportional { percent },
                Jitter::UpTo(max) => JitterRepr::UpTo {
                    max_ms: whole_millis(max),
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn validation() {
        assert_eq!(RetrySchedule::new([]), Err(ScheduleError::NoAttempts));
        assert_eq!(
            RetrySchedule::new([Duration::ZERO, Duration::seconds(-1)]),
            Err(ScheduleError::NegativeDelay { index: 1 })
        );
        assert_eq!(
            RetrySchedule::new([Duration::days(31)]),
            Err(ScheduleError::DelayTooLong { index: 0 })
        );
        assert_eq!(
            RetrySchedule::new(vec![Duration::ZERO; MAX_SCHEDULE_ATTEMPTS + 1]),
            Err(ScheduleError::TooManyAttempts)
        );
        assert!(RetrySchedule::new(vec![Duration::ZERO; MAX_SCHEDULE_ATTEMPTS]).is_ok());
        let s = RetrySchedule::default();
        assert_eq!(
            s.clone().with_jitter(Jitter::Proportional { percent: 101 }),
            Err(ScheduleError::InvalidJitter)
        );
        assert_eq!(
            s.with_jitter(Jitter::UpTo(Duration::seconds(-1))),
            Err(ScheduleError::InvalidJitter)
        );
    }

    #[test]
    fn serde_round_trip_and_validation() {
        let s = RetrySchedule::default()
            .with_jitter(Jitter::UpTo(Duration::seconds(30)))
            .unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"delays_ms":[0,300000,1800000,7200000,43200000],"jitter":{"kind":"up_to","max_ms":30000}}"#
        );
        assert_eq!(serde_json::from_str::<RetrySchedule>(&json).unwrap(), s);
        assert!(serde_json::from_str::<RetrySchedule>(r#"{"delays_ms":[]}"#).is_err());
        assert!(
            serde_json::from_str::<RetrySchedule>(r#"{"delays_ms":[18446744073709551615]}"#)
                .is_err()
        );
    }

    #[test]
    fn jitter_is_deterministic_and_bounded() {
        let s = RetrySchedule::default()
            .with_jitter(Jitter::Proportional { percent: 10 })
            .unwrap();
        let id = DeliveryId::from_parts(datetime!(2024-11-10 10:30 UTC), [3; 10]);
        assert_eq!(s.jitter(1, &id, 1), Duration::ZERO);
        assert_eq!(s.max_jitter(2), Duration::seconds(30));
        let j = s.jitter(2, &id, 2);
        assert_eq!(j, s.jitter(2, &id, 2));
        assert!(j >= Duration::ZERO && j <= Duration::seconds(30));
        assert_ne!(j, s.jitter(2, &id, 7), "different attempts spread");
    }
}
