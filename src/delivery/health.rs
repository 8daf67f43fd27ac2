//! Endpoint health: when an endpoint has failed for long enough to be disabled.
//!
//! The health record is plain data that the stores persist next to the endpoint (DESIGN §4:
//! health lives in storage, not in process memory), so a restarted dispatcher, or one of many,
//! makes the same decision.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use super::outcome::{AttemptOutcome, OutcomeClass};
use crate::DisableReason;

/// When an endpoint is disabled automatically.
///
/// # Default
/// After it has failed every attempt for 5 days ([`HealthPolicy::DEFAULT_DISABLE_AFTER`]), or
/// at once when it answers 410 Gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HealthPolicy {
    disable_after: Duration,
}

impl HealthPolicy {
    /// The default failing period before an endpoint is disabled: 5 days.
    pub const DEFAULT_DISABLE_AFTER: Duration = Duration::days(5);

    /// A policy that disables an endpoint once it has failed every attempt for `period`
    /// (negative values count as zero: disable at the first failure).
    pub fn disable_after(period: Duration) -> HealthPolicy {
        HealthPolicy {
            disable_after: period.max(Duration::ZERO),
        }
    }

    /// The failing period.
    pub fn period(&self) -> Duration {
        self.disable_after
    }
}

impl Default for HealthPolicy {
    fn default() -> HealthPolicy {
        HealthPolicy::disable_after(HealthPolicy::DEFAULT_DISABLE_AFTER)
    }
}

/// The health of one endpoint: since when every attempt has failed.
///
/// Feed it every attempt outcome for the endpoint; it says when to disable the endpoint. Any
/// delivered attempt resets it. Reset it too when an operator re-enables the endpoint, or the
/// next failure would disable it again at once.
///
/// ```
/// use nopos_webhooks::{AttemptOutcome, EndpointHealth, HealthPolicy, TransportError, DisableReason};
/// use time::{Duration, macros::datetime};
///
/// let policy = HealthPolicy::default();
/// let mut health = EndpointHealth::default();
/// let t0 = datetime!(2024-11-10 10:30 UTC);
/// let fail = |at| AttemptOutcome::transport_failure(at, Duration::ZERO, TransportError::Connect);
///
/// assert_eq!(health.handle_outcome(t0, &fail(t0), &policy), None);
/// let t5 = t0 + Duration::days(5);
/// assert_eq!(
///     health.handle_outcome(t5, &fail(t5), &policy),
///     Some(DisableReason::Failing { since: t0 }),
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointHealth {
    /// The first failure after the last success; `None` while healthy.
    #[serde(default, with = "crate::timestamp::option")]
    pub failing_since: Option<OffsetDateTime>,
    /// Failures since the last success.
    #[serde(default)]
    pub consecutive_failures: u32,
    /// The last delivered attempt.
    #[serde(default, with = "crate::timestamp::option")]
    pub last_success_at: Option<OffsetDateTime>,
    /// The last failed attempt.
    #[serde(default, with = "crate::timestamp::option")]
    pub last_failure_at: Option<OffsetDateTime>,
}

impl EndpointHealth {
    /// A healthy endpoint with no history.
    pub fn new() -> EndpointHealth {
        EndpointHealth::default()
    }

    /// Records one attempt outcome, handled at `now`, and returns why the endpoint must be
    /// disabled, if it must: [`DisableReason::Gone`] for a 410, [`DisableReason::Failing`] once
    /// the failing period has passed. It keeps returning the reason for every further failure
    /// until a success or [`reset`](Self::reset); disabling twice is harmless.
    pub fn handle_outcome(
        &mut self,
        now: OffsetDateTime,
        outcome: &AttemptOutcome,
        policy: &HealthPolicy,
    ) -> Option<DisableReason> {
        match outcome.class() {
            OutcomeClass::Delivered => {
                self.failing_since = None;
                self.consecutive_failures = 0;
                self.last_success_at = Some(now);
                None
            }
            OutcomeClass::Gone => {
                self.record_failure(now);
                Some(DisableReason::Gone)
            }
            OutcomeClass::Failed => {
                let since = self.record_failure(now);
                (now - since >= policy.disable_after).then_some(DisableReason::Failing { since })
            }
        }
    }

    /// Whether the last attempts failed.
    pub fn is_failing(&self) -> bool {
        self.failing_since.is_some()
    }

    /// Forgets the current failure streak (an operator re-enabled the endpoint).
    pub fn reset(&mut self) {
        self.failing_since = None;
        self.consecutive_failures = 0;
    }

    fn record_failure(&mut self, now: OffsetDateTime) -> OffsetDateTime {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_failure_at = Some(now);
        *self.failing_since.get_or_insert(now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransportError;
    use http::{HeaderMap, StatusCode};
    use time::macros::datetime;

    #[test]
    fn success_resets_and_gone_disables_at_once() {
        let policy = HealthPolicy::disable_after(Duration::days(1));
        let t0 = datetime!(2024-11-10 10:30 UTC);
        let fail = AttemptOutcome::transport_failure(t0, Duration::ZERO, TransportError::Dns);
        let ok =
            AttemptOutcome::from_parts(t0, Duration::ZERO, StatusCode::OK, &HeaderMap::new(), b"");
        let gone = AttemptOutcome::from_parts(
            t0,
            Duration::ZERO,
            StatusCode::GONE,
            &HeaderMap::new(),
            b"",
        );
        let mut h = EndpointHealth::new();
        assert_eq!(h.handle_outcome(t0, &fail, &policy), None);
        assert_eq!(
            h.handle_outcome(t0 + Duration::hours(23), &fail, &policy),
            None
        );
        assert_eq!(
            h.handle_outcome(t0 + Duration::hours(23), &ok, &policy),
            None
        );
        assert!(!h.is_failing());
        assert_eq!(
            h.handle_outcome(t0 + Duration::hours(30), &fail, &policy),
            None
        );
        assert_eq!(
            h.handle_outcome(t0 + Duration::hours(54), &fail, &policy),
            Some(DisableReason::Failing {
                since: t0 + Duration::hours(30)
            })
        );
        h.reset();
        assert_eq!(
            h.handle_outcome(t0 + Duration::hours(55), &fail, &policy),
            None
        );
        assert_eq!(
            h.handle_outcome(t0 + Duration::hours(55), &gone, &policy),
            Some(DisableReason::Gone)
        );
        let json = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<EndpointHealth>(&json).unwrap(), h);
        assert_eq!(
            serde_json::from_str::<EndpointHealth>("{}").unwrap(),
            EndpointHealth::new()
        );
    }
}
