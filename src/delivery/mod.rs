//! Delivery: the emitter's decisions about sending one event to one endpoint.
//!
//! This module owns the retry schedule ([`RetrySchedule`]), the meaning of attempt outcomes
//! ([`AttemptOutcome`]), the per-delivery state machine ([`DeliveryMachine`]), endpoint health
//! ([`EndpointHealth`]) and the exact request of an attempt ([`build_request`]). It is sans-IO:
//! it never sends a request, never sleeps and never reads the clock; the built-in dispatcher and
//! any custom one feed it times and outcomes and carry out what it says, so both make the same,
//! tested decisions (DESIGN §4).

mod health;
mod machine;
mod outcome;
mod request;
mod schedule;

pub use health::{EndpointHealth, HealthPolicy};
pub use machine::{
    AttemptToSend, DeliveryEvent, DeliveryId, DeliveryMachine, DeliveryState, DeliveryStatus,
    OutcomeError, ReplayError,
};
pub use outcome::{
    AttemptOutcome, AttemptRecord, AttemptResult, ErrorClass, MAX_EXCERPT_BYTES, MAX_RETRY_AFTER,
    OutcomeClass, RetryAfter, TransportError, body_excerpt,
};
pub use request::{
    NOPOS_DELIVERY_ATTEMPT, NOPOS_DELIVERY_ID, NOPOS_EVENT_ID, NOPOS_EVENT_TYPE, NOPOS_USER_AGENT,
    RequestError, SerializedEvent, build_request,
};
pub use schedule::{
    Jitter, MAX_SCHEDULE_ATTEMPTS, MAX_SCHEDULE_DELAY, RetrySchedule, ScheduleError,
};
