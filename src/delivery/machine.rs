//! The delivery state machine: one event to one endpoint, from creation to a final state.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::outcome::{AttemptOutcome, AttemptRecord, MAX_RETRY_AFTER, OutcomeClass};
use super::schedule::RetrySchedule;
use crate::id::prefixed_id;
use crate::{DisableReason, EndpointId, EventId};

prefixed_id!(
    /// A delivery id: `dlv_` followed by a token. A delivery is one event to one endpoint; the id
    /// is sent as `x-nopos-delivery-id` and stays the same across retries and replays.
    ///
    /// ```
    /// use nopos_webhooks::DeliveryId;
    /// use time::macros::datetime;
    ///
    /// let id = DeliveryId::from_parts(datetime!(2024-11-10 10:30 UTC), [7; 10]);
    /// assert!(id.as_str().starts_with("dlv_"));
    /// ```
    DeliveryId,
    "dlv_"
);

/// Where a delivery is in its life.
///
/// ```text
///  Pending ──► InFlight ──► Delivered
///     ▲  │        │  └────► Failed      (exhausted, or 410 Gone)   ── replay ──► Pending
///     │  │        ▼
///     │  │   RetryScheduled ──► InFlight …
///     │  ▼        ▼
///     └─ Paused ◄─┘  (endpoint disabled; resumed when it is enabled)
///  any non-final state ──► Cancelled (endpoint deleted)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeliveryStatus {
    /// Waiting for its first attempt (of the current round, after a replay).
    Pending,
    /// An attempt is being made; a worker holds the delivery.
    InFlight,
    /// An attempt failed; the next one is due at `next_attempt_at`.
    RetryScheduled,
    /// The endpoint is disabled; the delivery waits, with its next attempt time kept, until the
    /// endpoint is enabled again.
    Paused,
    /// Final: an attempt got a 2xx.
    Delivered,
    /// Final: every attempt failed, or the endpoint answered 410 Gone. Kept for inspection and
    /// replay.
    Failed,
    /// Final: the endpoint was deleted.
    Cancelled,
}

impl DeliveryStatus {
    /// The status as stored: `pending`, `in_flight`, `retry_scheduled`, `paused`, `delivered`,
    /// `failed`, `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::InFlight => "in_flight",
            DeliveryStatus::RetryScheduled => "retry_scheduled",
            DeliveryStatus::Paused => "paused",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Whether no more attempts will be made (without a replay).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            DeliveryStatus::Delivered | DeliveryStatus::Failed | DeliveryStatus::Cancelled
        )
    }
}

/// The persisted state of one delivery: a plain serde struct that any store can save, and from
/// which [`DeliveryMachine::from_state`] resumes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryState {
    /// This delivery.
    pub id: DeliveryId,
    /// The event delivered.
    pub event_id: EventId,
    /// The endpoint it goes to.
    pub endpoint_id: EndpointId,
    /// Where it is.
    pub status: DeliveryStatus,
    /// When it was created (the fan-out of the event).
    #[serde(with = "crate::timestamp")]
    pub created_at: OffsetDateTime,
    /// Attempts started over the delivery's whole life, replays included; the last attempt's
    /// number.
    pub attempts: u32,
    /// Attempts started before the current round: 0, or the value of `attempts` at the last
    /// replay. `attempts - round_start` is the position in the retry schedule.
    #[serde(default)]
    pub round_start: u32,
    /// How many times it was replayed.
    #[serde(default)]
    pub replays: u32,
    /// When the next attempt is due, while pending, scheduled or paused.
    #[serde(default, with = "crate::timestamp::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When the attempt in flight started.
    #[serde(default, with = "crate::timestamp::option")]
    pub in_flight_since: Option<OffsetDateTime>,
    /// The endpoint was disabled while an attempt was in flight: pause after it, unless it
    /// delivers.
    #[serde(default)]
    pub pause_requested: bool,
    /// The last finished attempt.
    #[serde(default)]
    pub last_attempt: Option<AttemptRecord>,
    /// When it reached a final state.
    #[serde(default, with = "crate::timestamp::option")]
    pub finished_at: Option<OffsetDateTime>,
}

/// An attempt the dispatcher must make now, from [`DeliveryMachine::poll_transmit`]. Build the
/// request with [`crate::build_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttemptToSend {
    /// The delivery.
    pub delivery_id: DeliveryId,
    /// The event to send.
    pub event_id: EventId,
    /// The endpoint to send it to.
    pub endpoint_id: EndpointId,
    /// The attempt number, 1-based, for `x-nopos-delivery-attempt`.
    pub attempt: u32,
    /// When the attempt starts; sign with this time.
    pub started_at: OffsetDateTime,
}

impl AttemptToSend {
    /// An attempt outside any state machine, such as a test delivery from a management API.
    pub fn new(
        delivery_id: DeliveryId,
        event_id: EventId,
        endpoint_id: EndpointId,
        attempt: u32,
        started_at: OffsetDateTime,
    ) -> AttemptToSend {
        AttemptToSend {
            delivery_id,
            event_id,
            endpoint_id,
            attempt,
            started_at,
        }
    }
}

/// Something the dispatcher must act on, from [`DeliveryMachine::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeliveryEvent {
    /// The event arrived on this attempt.
    Delivered {
        /// The attempt number.
        attempt: u32,
    },
    /// The last attempt of the schedule failed; the delivery is failed.
    Exhausted {
        /// Attempts made over the delivery's life.
        attempts: u32,
    },
    /// The endpoint answered 410 Gone; the delivery is failed without further attempts.
    GaveUp {
        /// The attempt number.
        attempt: u32,
    },
    /// Disable the endpoint, and pause its other deliveries.
    DisableEndpoint {
        /// Why.
        reason: DisableReason,
    },
    /// The endpoint was deleted; the delivery is cancelled.
    Cancelled,
}

/// Why [`DeliveryMachine::handle_outcome`] refused an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutcomeError {
    /// No attempt is in flight: the lease expired (and the attempt was written off), the
    /// endpoint was deleted, or the outcome was already handled. Drop the outcome.
    #[error("no attempt is in flight")]
    NotInFlight,
    /// The outcome is for another attempt than the one in flight: a stale worker.
    #[error("outcome is for attempt {got}, but attempt {in_flight} is in flight")]
    WrongAttempt {
        /// The attempt in flight.
        in_flight: u32,
        /// The attempt the outcome was for.
        got: u32,
    },
}

/// Why [`DeliveryMachine::handle_replay`] refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The delivery is still pending, in flight, scheduled or paused: it will be attempted
    /// anyway.
    #[error("delivery is not finished")]
    NotFinished,
    /// The delivery was cancelled because its endpoint was deleted.
    #[error("delivery was cancelled")]
    Cancelled,
}

/// The sans-IO state machine of one delivery.
///
/// It reads no clock and does no IO: feed it what happened with `handle_*(now, …)`, and ask what
/// to do with `poll_*`. A dispatcher's loop:
///
/// 1. load the [`DeliveryState`] and the endpoint's [`RetrySchedule`], and
///    [`from_state`](Self::from_state);
/// 2. [`poll_transmit`](Self::poll_transmit) when [`poll_timeout`](Self::poll_timeout) has
///    passed; send the request; [`handle_outcome`](Self::handle_outcome);
/// 3. drain [`poll_event`](Self::poll_event), and save [`state`](Self::state) together with the
///    attempt record and any endpoint change, in one transaction.
///
/// ```
/// use nopos_webhooks::{
///     AttemptOutcome, DeliveryId, DeliveryMachine, DeliveryStatus, EndpointId, EventId,
///     RetrySchedule, TransportError,
/// };
/// use time::{Duration, macros::datetime};
///
/// let t0 = datetime!(2024-11-10 10:30 UTC);
/// let mut machine = DeliveryMachine::new(
///     t0,
///     DeliveryId::from_parts(t0, [1; 10]),
///     EventId::from_parts(t0, [2; 10]),
///     EndpointId::from_parts(t0, [3; 10]),
///     RetrySchedule::default(),
/// );
/// let attempt = machine.poll_transmit(t0).expect("first attempt is due at once");
/// let timeout = AttemptOutcome::transport_failure(t0, Duration::seconds(30), TransportError::Timeout);
/// let now = t0 + Duration::seconds(30);
/// machine.handle_outcome(now, attempt.attempt, &timeout)?;
/// assert_eq!(machine.state().status, DeliveryStatus::RetryScheduled);
/// assert_eq!(machine.poll_timeout(), Some(now + Duration::minutes(5)));
/// assert!(machine.poll_transmit(now + Duration::minutes(4)).is_none());
/// # Ok::<(), nopos_webhooks::OutcomeError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DeliveryMachine {
    state: DeliveryState,
    schedule: RetrySchedule,
    events: VecDeque<DeliveryEvent>,
}

impl DeliveryMachine {
    /// A new delivery created at `now`, pending its first attempt (due at `now` with the default
    /// schedule).
    pub fn new(
        now: OffsetDateTime,
        id: DeliveryId,
        event_id: EventId,
        endpoint_id: EndpointId,
        schedule: RetrySchedule,
    ) -> DeliveryMachine {
        let next = schedule.due_at(now, 1, &id, 1).unwrap_or(now);
        let state = DeliveryState {
            id,
            event_id,
            endpoint_id,
            status: DeliveryStatus::Pending,
            created_at: now,
            attempts: 0,
            round_start: 0,
            replays: 0,
            next_attempt_at: Some(next),
            in_flight_since: None,
            pause_requested: false,
            last_attempt: None,
            finished_at: None,
        };
        DeliveryMachine::from_state(state, schedule)
    }

    /// Resumes a saved delivery with its endpoint's current schedule. A schedule shortened
    /// since the last attempt ends the delivery at its next failure.
    pub fn from_state(state: DeliveryState, schedule: RetrySchedule) -> DeliveryMachine {
        DeliveryMachine {
            state,
            schedule,
            events: VecDeque::new(),
        }
    }

    /// The state to persist.
    pub fn state(&self) -> &DeliveryState {
        &self.state
    }

    /// The state to persist, consuming the machine.
    pub fn into_state(self) -> DeliveryState {
        self.state
    }

    /// The schedule in use.
    pub fn schedule(&self) -> &RetrySchedule {
        &self.schedule
    }

    /// When to call [`poll_transmit`](Self::poll_transmit) next: the due time of the next
    /// attempt while the delivery is pending or scheduled (possibly already past), `None` while
    /// an attempt is in flight (the store's lease decides when to call
    /// [`handle_lease_expired`](Self::handle_lease_expired)), while paused, and once final.
    ///
    /// Call it after creating or loading the machine and after every `handle_*`.
    pub fn poll_timeout(&self) -> Option<OffsetDateTime> {
        match self.state.status {
            // A stored state missing its due time is due at once rather than stuck forever.
            DeliveryStatus::Pending | DeliveryStatus::RetryScheduled => {
                Some(self.state.next_attempt_at.unwrap_or(self.state.created_at))
            }
            _ => None,
        }
    }

    /// Starts the next attempt if it is due at `now`: the delivery goes in flight and the
    /// attempt to send is returned. `None` when nothing is due (too early, in flight, paused or
    /// final).
    ///
    /// Call it when [`poll_timeout`](Self::poll_timeout) has passed; save the state (the claim)
    /// before sending.
    pub fn poll_transmit(&mut self, now: OffsetDateTime) -> Option<AttemptToSend> {
        let due = self.poll_timeout()?;
        if now < due {
            return None;
        }
        self.state.attempts = self.state.attempts.saturating_add(1);
        self.state.status = DeliveryStatus::InFlight;
        self.state.in_flight_since = Some(now);
        self.state.next_attempt_at = None;
        self.state.pause_requested = false;
        Some(AttemptToSend {
            delivery_id: self.state.id.clone(),
            event_id: self.state.event_id.clone(),
            endpoint_id: self.state.endpoint_id.clone(),
            attempt: self.state.attempts,
            started_at: now,
        })
    }

    /// Something the dispatcher must act on ([`DeliveryEvent`]), oldest first.
    ///
    /// Call it after every `handle_*` until it returns `None`, before saving the state.
    pub fn poll_event(&mut self) -> Option<DeliveryEvent> {
        self.events.pop_front()
    }

    /// The outcome of attempt `attempt`, handled at `now`:
    /// - 2xx: delivered (final);
    /// - 410: failed at once (final), and the endpoint must be disabled;
    /// - anything else: the next attempt is scheduled after the schedule's delay (plus jitter),
    ///   and no earlier than a 429/503 `Retry-After` capped at [`MAX_RETRY_AFTER`]; after the
    ///   last attempt of the schedule, failed (final). If the endpoint was disabled meanwhile,
    ///   the delivery pauses instead.
    ///
    /// # Errors
    /// [`OutcomeError`] when no attempt, or another attempt, is in flight; the state is
    /// unchanged.
    pub fn handle_outcome(
        &mut self,
        now: OffsetDateTime,
        attempt: u32,
        outcome: &AttemptOutcome,
    ) -> Result<(), OutcomeError> {
        if self.state.status != DeliveryStatus::InFlight {
            return Err(OutcomeError::NotInFlight);
        }
        if attempt != self.state.attempts {
            return Err(OutcomeError::WrongAttempt {
                in_flight: self.state.attempts,
                got: attempt,
            });
        }
        self.state.last_attempt = Some(outcome.record(attempt));
        self.state.in_flight_since = None;
        match outcome.class() {
            OutcomeClass::Delivered => {
                self.finish(now, DeliveryStatus::Delivered);
                self.events.push_back(DeliveryEvent::Delivered { attempt });
            }
            OutcomeClass::Gone => {
                self.finish(now, DeliveryStatus::Failed);
                self.events.push_back(DeliveryEvent::GaveUp { attempt });
                self.events.push_back(DeliveryEvent::DisableEndpoint {
                    reason: DisableReason::Gone,
                });
            }
            OutcomeClass::Failed => {
                let not_before = outcome
                    .retry_after()
                    .map(|ra| ra.not_before(now).min(now.saturating_add(MAX_RETRY_AFTER)));
                self.schedule_retry(now, not_before);
            }
        }
        Ok(())
    }

    /// Gives an in-flight attempt back unsent, as a worker shutting down before it sent the
    /// request does: the attempt does not count, and the delivery is due again at `now` (or
    /// paused, if its endpoint was disabled meanwhile).
    ///
    /// Call it only when the request was never sent; an attempt that may have reached the endpoint
    /// must be settled with [`DeliveryMachine::handle_outcome`] or
    /// [`DeliveryMachine::handle_lease_expired`].
    pub fn handle_released(&mut self, now: OffsetDateTime) {
        if self.state.status != DeliveryStatus::InFlight {
            return;
        }
        self.state.attempts = self.state.attempts.saturating_sub(1);
        self.state.in_flight_since = None;
        self.state.next_attempt_at = Some(now);
        self.state.status = if self.state.pause_requested {
            DeliveryStatus::Paused
        } else if self.state.attempts == self.state.round_start {
            DeliveryStatus::Pending
        } else {
            DeliveryStatus::RetryScheduled
        };
        self.state.pause_requested = false;
    }

    /// The worker making the attempt in flight lost its lease at `now` (it died or stalled).
    ///
    /// The attempt is written off as a failure ([`crate::ErrorClass::LeaseExpired`]) and counts
    /// against the schedule like any other failure, so a delivery that crashes every worker
    /// that tries it still ends. It may have reached the receiver; the retry makes that a
    /// duplicate, which at-least-once delivery allows. No-op unless an attempt is in flight.
    pub fn handle_lease_expired(&mut self, now: OffsetDateTime) {
        if self.state.status != DeliveryStatus::InFlight {
            return;
        }
        let started = self.state.in_flight_since.take().unwrap_or(now);
        self.state.last_attempt = Some(AttemptRecord::lease_expired(
            self.state.attempts,
            started,
            now,
        ));
        self.schedule_retry(now, None);
    }

    /// The endpoint was disabled at `now`: a waiting delivery pauses, keeping its next attempt
    /// time; one in flight pauses after its outcome unless it delivers. Nothing is dropped.
    /// No-op for paused and final deliveries.
    pub fn handle_endpoint_disabled(&mut self, _now: OffsetDateTime) {
        match self.state.status {
            DeliveryStatus::Pending | DeliveryStatus::RetryScheduled => {
                self.state.status = DeliveryStatus::Paused;
            }
            DeliveryStatus::InFlight => self.state.pause_requested = true,
            _ => {}
        }
    }

    /// The endpoint was enabled again at `now`: a paused delivery resumes, due at its kept
    /// time or at once if that has passed. No-op otherwise.
    pub fn handle_endpoint_enabled(&mut self, now: OffsetDateTime) {
        match self.state.status {
            DeliveryStatus::Paused => {
                self.state.status = if self.state.attempts == self.state.round_start {
                    DeliveryStatus::Pending
                } else {
                    DeliveryStatus::RetryScheduled
                };
                let kept = self.state.next_attempt_at.unwrap_or(now);
                self.state.next_attempt_at = Some(kept.max(now));
            }
            DeliveryStatus::InFlight => self.state.pause_requested = false,
            _ => {}
        }
    }

    /// The endpoint was deleted at `now`: a delivery that is not final is cancelled (an outcome
    /// arriving later for an attempt in flight is refused). Final deliveries keep their state.
    pub fn handle_endpoint_deleted(&mut self, now: OffsetDateTime) {
        if !self.state.status.is_final() {
            self.state.in_flight_since = None;
            self.finish(now, DeliveryStatus::Cancelled);
            self.events.push_back(DeliveryEvent::Cancelled);
        }
    }

    /// Replays a delivered or failed delivery at `now` (a manual retry): it becomes pending
    /// with a **fresh round of the whole schedule**, its first attempt due per the schedule's
    /// first delay. Attempt numbers keep counting up across rounds, so attempt records never
    /// collide and receivers see that it is a repeat. If the endpoint is disabled, call
    /// [`handle_endpoint_disabled`](Self::handle_endpoint_disabled) after this.
    ///
    /// # Errors
    /// [`ReplayError`] for a delivery that is not finished or was cancelled; the state is
    /// unchanged.
    pub fn handle_replay(&mut self, now: OffsetDateTime) -> Result<(), ReplayError> {
        match self.state.status {
            DeliveryStatus::Delivered | DeliveryStatus::Failed => {}
            DeliveryStatus::Cancelled => return Err(ReplayError::Cancelled),
            _ => return Err(ReplayError::NotFinished),
        }
        let next_attempt = self.state.attempts.saturating_add(1);
        self.state.round_start = self.state.attempts;
        self.state.replays = self.state.replays.saturating_add(1);
        self.state.status = DeliveryStatus::Pending;
        self.state.finished_at = None;
        self.state.next_attempt_at = Some(
            self.schedule
                .due_at(now, 1, &self.state.id, next_attempt)
                .unwrap_or(now),
        );
        Ok(())
    }

    /// After a failed attempt: the next one, or the end.
    fn schedule_retry(&mut self, now: OffsetDateTime, not_before: Option<OffsetDateTime>) {
        let position = self.state.attempts.saturating_sub(self.state.round_start);
        let next_attempt = self.state.attempts.saturating_add(1);
        let due = if position < self.schedule.max_attempts() {
            self.schedule
                .due_at(now, position + 1, &self.state.id, next_attempt)
        } else {
            None
        };
        let Some(due) = due else {
            self.finish(now, DeliveryStatus::Failed);
            self.events.push_back(DeliveryEvent::Exhausted {
                attempts: self.state.attempts,
            });
            return;
        };
        self.state.next_attempt_at = Some(not_before.map_or(due, |nb| due.max(nb)));
        self.state.status = if self.state.pause_requested {
            DeliveryStatus::Paused
        } else {
            DeliveryStatus::RetryScheduled
        };
        self.state.pause_requested = false;
    }

    fn finish(&mut self, now: OffsetDateTime, status: DeliveryStatus) {
        self.state.status = status;
        self.state.finished_at = Some(now);
        self.state.next_attempt_at = None;
        self.state.pause_requested = false;
    }
}
