//! The delivery core under a virtual clock: no sleeps, no sockets. The simulator jumps straight
//! to each `poll_timeout()`, so a 14.6-hour schedule runs in microseconds.

use http::{HeaderMap, HeaderValue, StatusCode, header};
use nopos_webhooks::{
    AttemptOutcome, CustomHeaderError, CustomHeaders, DeliveryEvent, DeliveryId, DeliveryMachine,
    DeliveryState, DeliveryStatus, DisableReason, Endpoint, EndpointId, EndpointRecord,
    EndpointUrl, Envelope, ErrorClass, Event, EventFilter, EventId, EventType, Jitter,
    MAX_RETRY_AFTER, OutcomeError, ReplayError, RequestError, RetrySchedule, Scheme, Secret,
    SecretSet, SerializedEvent, TransportError, UrlError, Verifier, build_request,
};
use proptest::prelude::*;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const T0: OffsetDateTime = datetime!(2024-11-10 10:30 UTC);

fn delivery_id(seed: u8) -> DeliveryId {
    DeliveryId::from_parts(T0, [seed; 10])
}

fn machine(schedule: RetrySchedule) -> DeliveryMachine {
    DeliveryMachine::new(
        T0,
        delivery_id(1),
        EventId::from_parts(T0, [2; 10]),
        EndpointId::from_parts(T0, [3; 10]),
        schedule,
    )
}

fn status(at: OffsetDateTime, code: u16) -> AttemptOutcome {
    response(at, code, &[])
}

fn response(at: OffsetDateTime, code: u16, headers: &[(&str, &str)]) -> AttemptOutcome {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    AttemptOutcome::from_parts(
        at,
        Duration::ZERO,
        StatusCode::from_u16(code).unwrap(),
        &map,
        b"body",
    )
}

/// The result of running a machine to its end.
struct Run {
    /// Each attempt's start, relative to T0.
    offsets: Vec<Duration>,
    events: Vec<DeliveryEvent>,
    machine: DeliveryMachine,
}

/// Drives `machine` with a virtual clock until it stops asking to be woken: jump to
/// `poll_timeout()`, start the attempt, answer it with `respond(attempt number, now)`.
fn simulate(
    mut machine: DeliveryMachine,
    mut respond: impl FnMut(u32, OffsetDateTime) -> AttemptOutcome,
) -> Run {
    let mut now = T0;
    let mut offsets = Vec::new();
    let mut events = Vec::new();
    while let Some(due) = machine.poll_timeout() {
        assert!(offsets.len() < 1000, "the machine does not terminate");
        // One millisecond early is too early.
        if due > now {
            assert!(
                machine
                    .poll_transmit(due - Duration::milliseconds(1))
                    .is_none()
            );
        }
        now = now.max(due);
        let attempt = machine.poll_transmit(now).expect("due attempt starts");
        assert_eq!(attempt.started_at, now);
        assert_eq!(attempt.attempt as usize, offsets.len() + 1);
        assert!(
            machine.poll_transmit(now).is_none(),
            "one attempt at a time"
        );
        offsets.push(now - T0);
        let outcome = respond(attempt.attempt, now);
        machine
            .handle_outcome(now, attempt.attempt, &outcome)
            .unwrap();
        events.extend(std::iter::from_fn(|| machine.poll_event()));
    }
    Run {
        offsets,
        events,
        machine,
    }
}

fn minutes(m: i64) -> Duration {
    Duration::minutes(m)
}

const DEFAULT_OFFSETS: [Duration; 5] = [
    Duration::ZERO,
    Duration::minutes(5),
    Duration::minutes(35),
    Duration::minutes(155),
    Duration::minutes(875),
];

#[test]
fn always_failing_endpoint_follows_the_announced_schedule() {
    let run = simulate(machine(RetrySchedule::default()), |_, now| status(now, 500));
    assert_eq!(run.offsets, DEFAULT_OFFSETS);
    assert_eq!(run.offsets[4], Duration::hours(14) + minutes(35));
    let state = run.machine.state();
    assert_eq!(state.status, DeliveryStatus::Failed);
    assert_eq!(state.attempts, 5);
    assert_eq!(state.finished_at, Some(T0 + DEFAULT_OFFSETS[4]));
    let last = state.last_attempt.as_ref().unwrap();
    assert_eq!(
        (last.attempt, last.status, last.error),
        (5, Some(500), Some(ErrorClass::ServerError))
    );
    assert_eq!(last.excerpt, "body");
    assert_eq!(run.events, [DeliveryEvent::Exhausted { attempts: 5 }]);
    assert_eq!(run.machine.poll_timeout(), None);
}

#[test]
fn transport_failures_follow_the_schedule_too() {
    let errors = [
        TransportError::Timeout,
        TransportError::Connect,
        TransportError::Dns,
        TransportError::Tls,
        TransportError::BlockedAddress,
    ];
    let run = simulate(machine(RetrySchedule::default()), |n, now| {
        AttemptOutcome::transport_failure(now, Duration::ZERO, errors[n as usize - 1])
    });
    assert_eq!(run.offsets, DEFAULT_OFFSETS);
    let last = run.machine.state().last_attempt.clone().unwrap();
    assert_eq!(
        (last.status, last.error),
        (None, Some(ErrorClass::BlockedAddress))
    );
}

#[test]
fn mixed_outcomes_fail_fail_succeed() {
    let run = simulate(machine(RetrySchedule::default()), |n, now| {
        status(now, if n < 3 { 502 } else { 204 })
    });
    assert_eq!(run.offsets, DEFAULT_OFFSETS[..3]);
    assert_eq!(run.machine.state().status, DeliveryStatus::Delivered);
    assert_eq!(run.events, [DeliveryEvent::Delivered { attempt: 3 }]);
    assert_eq!(
        run.machine.state().last_attempt.as_ref().unwrap().error,
        None
    );
}

#[test]
fn redirects_are_failures() {
    let run = simulate(machine(RetrySchedule::default()), |n, now| {
        if n == 1 {
            response(now, 301, &[("location", "https://elsewhere.example/")])
        } else {
            status(now, 200)
        }
    });
    assert_eq!(run.offsets, DEFAULT_OFFSETS[..2]);
    assert_eq!(run.events, [DeliveryEvent::Delivered { attempt: 2 }]);
}

#[test]
fn gone_stops_and_disables_the_endpoint() {
    let run = simulate(machine(RetrySchedule::default()), |_, now| status(now, 410));
    assert_eq!(run.offsets, [Duration::ZERO]);
    assert_eq!(run.machine.state().status, DeliveryStatus::Failed);
    assert_eq!(
        run.events,
        [
            DeliveryEvent::GaveUp { attempt: 1 },
            DeliveryEvent::DisableEndpoint {
                reason: DisableReason::Gone
            }
        ]
    );
}

#[test]
fn retry_after_seconds_delays_but_never_advances() {
    // Later than the schedule: honoured exactly.
    let run = simulate(machine(RetrySchedule::default()), |n, now| match n {
        1 => response(now, 429, &[("retry-after", "3600")]),
        _ => status(now, 200),
    });
    assert_eq!(run.offsets, [Duration::ZERO, Duration::hours(1)]);

    // Earlier than the schedule: the schedule wins.
    let run = simulate(machine(RetrySchedule::default()), |n, now| match n {
        1 => response(now, 503, &[("retry-after", "10")]),
        _ => status(now, 200),
    });
    assert_eq!(run.offsets, [Duration::ZERO, minutes(5)]);

    // Only 429 and 503 are honoured.
    let run = simulate(machine(RetrySchedule::default()), |n, now| match n {
        1 => response(now, 500, &[("retry-after", "3600")]),
        _ => status(now, 200),
    });
    assert_eq!(run.offsets, [Duration::ZERO, minutes(5)]);
}

#[test]
fn retry_after_http_date() {
    let run = simulate(machine(RetrySchedule::default()), |n, now| match n {
        // T0 + 2 h = Sun, 10 Nov 2024 12:30:00 GMT
        1 => response(
            now,
            503,
            &[("retry-after", "Sun, 10 Nov 2024 12:30:00 GMT")],
        ),
        _ => status(now, 200),
    });
    assert_eq!(run.offsets, [Duration::ZERO, Duration::hours(2)]);

    // A date in the past, or an unparseable one, leaves the schedule alone.
    for value in ["Sun, 10 Nov 2024 09:00:00 GMT", "tomorrow-ish"] {
        let run = simulate(machine(RetrySchedule::default()), |n, now| match n {
            1 => response(now, 429, &[("retry-after", value)]),
            _ => status(now, 200),
        });
        assert_eq!(run.offsets, [Duration::ZERO, minutes(5)], "{value}");
    }
}

#[test]
fn retry_after_is_capped() {
    for value in ["999999999", "Fri, 31 Dec 2100 23:59:59 GMT"] {
        let run = simulate(machine(RetrySchedule::default()), |n, now| match n {
            1 => response(now, 429, &[("retry-after", value)]),
            _ => status(now, 200),
        });
        assert_eq!(run.offsets, [Duration::ZERO, MAX_RETRY_AFTER], "{value}");
    }
    // The cap never pulls an attempt before the schedule: from attempt 5 of a long schedule.
    let long = RetrySchedule::new([Duration::ZERO, Duration::days(2)]).unwrap();
    let run = simulate(machine(long), |n, now| match n {
        1 => response(now, 429, &[("retry-after", "999999999")]),
        _ => status(now, 200),
    });
    assert_eq!(run.offsets, [Duration::ZERO, Duration::days(2)]);
}

#[test]
fn retry_after_on_the_last_attempt_still_ends_the_delivery() {
    let run = simulate(machine(RetrySchedule::default()), |_, now| {
        response(now, 429, &[("retry-after", "60")])
    });
    assert_eq!(run.offsets.len(), 5);
    assert_eq!(run.machine.state().status, DeliveryStatus::Failed);
}

#[test]
fn jitter_stays_within_bounds_and_is_reproducible() {
    let schedule = RetrySchedule::default()
        .with_jitter(Jitter::Proportional { percent: 10 })
        .unwrap();
    let first = simulate(machine(schedule.clone()), |_, now| status(now, 500));
    let second = simulate(machine(schedule.clone()), |_, now| status(now, 500));
    assert_eq!(
        first.offsets, second.offsets,
        "same delivery id, same times"
    );
    assert_eq!(
        first.offsets[0],
        Duration::ZERO,
        "the first attempt is never jittered"
    );
    let mut any_jitter = false;
    for (i, pair) in first.offsets.windows(2).enumerate() {
        let delay = RetrySchedule::DEFAULT_DELAYS[i + 1];
        let gap = pair[1] - pair[0];
        assert!(
            gap >= delay && gap <= delay + delay / 10,
            "attempt {}: {gap}",
            i + 2
        );
        any_jitter |= gap != delay;
    }
    assert!(any_jitter);

    // Another delivery spreads differently.
    let other = DeliveryMachine::new(
        T0,
        delivery_id(9),
        EventId::from_parts(T0, [2; 10]),
        EndpointId::from_parts(T0, [3; 10]),
        schedule,
    );
    let other = simulate(other, |_, now| status(now, 500));
    assert_ne!(other.offsets, first.offsets);

    // A fixed maximum.
    let fixed = RetrySchedule::default()
        .with_jitter(Jitter::UpTo(Duration::seconds(30)))
        .unwrap();
    let run = simulate(machine(fixed), |_, now| status(now, 500));
    for (i, pair) in run.offsets.windows(2).enumerate() {
        let delay = RetrySchedule::DEFAULT_DELAYS[i + 1];
        let gap = pair[1] - pair[0];
        assert!(gap >= delay && gap <= delay + Duration::seconds(30));
    }
}

#[test]
fn lease_expiry_writes_the_attempt_off_and_retries() {
    let mut m = machine(RetrySchedule::default());
    let lost = m.poll_transmit(T0).unwrap();
    // The worker dies; the store notices the expired lease a minute later.
    let noticed = T0 + minutes(1);
    m.handle_lease_expired(noticed);
    assert_eq!(m.state().status, DeliveryStatus::RetryScheduled);
    assert_eq!(m.poll_timeout(), Some(noticed + minutes(5)));
    let record = m.state().last_attempt.clone().unwrap();
    assert_eq!(
        (record.attempt, record.error, record.latency_ms),
        (1, Some(ErrorClass::LeaseExpired), 60_000)
    );
    // The dead worker's late outcome is refused.
    assert_eq!(
        m.handle_outcome(noticed, lost.attempt, &status(noticed, 200)),
        Err(OutcomeError::NotInFlight)
    );
    // Expiring again is a no-op.
    m.handle_lease_expired(noticed);
    assert_eq!(m.state().attempts, 1);

    let next = m.poll_transmit(noticed + minutes(5)).unwrap();
    assert_eq!(next.attempt, 2);
    assert_eq!(
        m.handle_outcome(noticed, 1, &status(noticed, 200)),
        Err(OutcomeError::WrongAttempt {
            in_flight: 2,
            got: 1
        })
    );
    m.handle_outcome(noticed + minutes(5), 2, &status(noticed, 200))
        .unwrap();
    assert_eq!(m.state().status, DeliveryStatus::Delivered);
}

#[test]
fn lease_expiry_on_every_attempt_still_terminates() {
    let mut m = machine(RetrySchedule::default());
    let mut now = T0;
    while let Some(due) = m.poll_timeout() {
        now = now.max(due);
        m.poll_transmit(now).unwrap();
        now += minutes(2);
        m.handle_lease_expired(now);
    }
    assert_eq!(m.state().status, DeliveryStatus::Failed);
    assert_eq!(m.state().attempts, 5);
    assert_eq!(
        m.poll_event(),
        Some(DeliveryEvent::Exhausted { attempts: 5 })
    );
}

#[test]
fn pause_and_resume_keep_the_delivery() {
    let mut m = machine(RetrySchedule::default());
    let a = m.poll_transmit(T0).unwrap();
    m.handle_outcome(T0, a.attempt, &status(T0, 500)).unwrap();
    assert_eq!(m.poll_timeout(), Some(T0 + minutes(5)));

    // Disabled while waiting: paused, nothing due, no matter how long.
    m.handle_endpoint_disabled(T0 + minutes(1));
    assert_eq!(m.state().status, DeliveryStatus::Paused);
    assert_eq!(m.poll_timeout(), None);
    assert!(m.poll_transmit(T0 + Duration::days(30)).is_none());
    assert_eq!(m.state().next_attempt_at, Some(T0 + minutes(5)), "kept");

    // Re-enabled before the kept time: due then.
    m.handle_endpoint_enabled(T0 + minutes(2));
    assert_eq!(m.state().status, DeliveryStatus::RetryScheduled);
    assert_eq!(m.poll_timeout(), Some(T0 + minutes(5)));

    // Disabled again, re-enabled days later: due at once.
    m.handle_endpoint_disabled(T0 + minutes(3));
    let later = T0 + Duration::days(3);
    m.handle_endpoint_enabled(later);
    assert_eq!(m.poll_timeout(), Some(later));

    // Disabled while in flight: a failure pauses, keeping the next attempt time.
    let b = m.poll_transmit(later).unwrap();
    m.handle_endpoint_disabled(later);
    assert_eq!(m.state().status, DeliveryStatus::InFlight);
    m.handle_outcome(later, b.attempt, &status(later, 500))
        .unwrap();
    assert_eq!(m.state().status, DeliveryStatus::Paused);
    assert_eq!(m.state().next_attempt_at, Some(later + minutes(30)));

    // Disabled while in flight, but the attempt delivers: delivered.
    m.handle_endpoint_enabled(later);
    let due = m.poll_timeout().unwrap();
    let c = m.poll_transmit(due).unwrap();
    m.handle_endpoint_disabled(due);
    m.handle_outcome(due, c.attempt, &status(due, 200)).unwrap();
    assert_eq!(m.state().status, DeliveryStatus::Delivered);

    // A brand-new delivery paused before its first attempt resumes as pending.
    let mut fresh = machine(RetrySchedule::default());
    fresh.handle_endpoint_disabled(T0);
    fresh.handle_endpoint_enabled(T0 + minutes(1));
    assert_eq!(fresh.state().status, DeliveryStatus::Pending);
    assert_eq!(fresh.poll_timeout(), Some(T0 + minutes(1)));
}

#[test]
fn endpoint_deletion_cancels() {
    let mut m = machine(RetrySchedule::default());
    let a = m.poll_transmit(T0).unwrap();
    m.handle_endpoint_deleted(T0);
    assert_eq!(m.state().status, DeliveryStatus::Cancelled);
    assert_eq!(m.poll_event(), Some(DeliveryEvent::Cancelled));
    assert_eq!(m.poll_timeout(), None);
    assert_eq!(
        m.handle_outcome(T0, a.attempt, &status(T0, 200)),
        Err(OutcomeError::NotInFlight)
    );
    assert_eq!(m.handle_replay(T0), Err(ReplayError::Cancelled));

    // A delivered delivery stays delivered.
    let mut done = simulate(machine(RetrySchedule::default()), |_, now| status(now, 200)).machine;
    done.handle_endpoint_deleted(T0);
    assert_eq!(done.state().status, DeliveryStatus::Delivered);
    assert_eq!(done.poll_event(), None);
}

#[test]
fn replay_gives_a_fresh_round_with_continuing_attempt_numbers() {
    let run = simulate(machine(RetrySchedule::default()), |_, now| status(now, 500));
    let mut m = run.machine;
    assert_eq!(m.state().status, DeliveryStatus::Failed);
    let replay_at = T0 + Duration::days(2);
    m.handle_replay(replay_at).unwrap();
    assert_eq!(m.state().status, DeliveryStatus::Pending);
    assert_eq!(m.state().replays, 1);
    assert_eq!(m.poll_timeout(), Some(replay_at));
    let mut attempts = Vec::new();
    let mut now = replay_at;
    while let Some(due) = m.poll_timeout() {
        now = now.max(due);
        let a = m.poll_transmit(now).unwrap();
        attempts.push((a.attempt, now - replay_at));
        m.handle_outcome(now, a.attempt, &status(now, 500)).unwrap();
    }
    let numbers: Vec<u32> = attempts.iter().map(|(n, _)| *n).collect();
    let offsets: Vec<Duration> = attempts.iter().map(|(_, o)| *o).collect();
    assert_eq!(numbers, [6, 7, 8, 9, 10]);
    assert_eq!(offsets, DEFAULT_OFFSETS);
    assert_eq!(
        m.poll_event(),
        Some(DeliveryEvent::Exhausted { attempts: 10 })
    );

    // Delivered deliveries can be replayed too; unfinished ones cannot.
    let mut ok = simulate(machine(RetrySchedule::default()), |_, now| status(now, 200)).machine;
    ok.handle_replay(T0 + minutes(1)).unwrap();
    assert_eq!(
        ok.handle_replay(T0 + minutes(1)),
        Err(ReplayError::NotFinished)
    );
    assert_eq!(ok.poll_transmit(T0 + minutes(1)).unwrap().attempt, 2);
}

#[test]
fn state_survives_a_round_trip_through_storage_at_every_step() {
    let schedule = RetrySchedule::default()
        .with_jitter(Jitter::UpTo(Duration::minutes(1)))
        .unwrap();
    let uninterrupted = simulate(machine(schedule.clone()), |n, now| {
        status(now, if n < 4 { 500 } else { 200 })
    });

    // The same run, saved to JSON and reloaded between every step.
    let reload = |m: DeliveryMachine| {
        let json = serde_json::to_string(m.state()).unwrap();
        let state: DeliveryState = serde_json::from_str(&json).unwrap();
        assert_eq!(&state, m.state());
        DeliveryMachine::from_state(state, schedule.clone())
    };
    let mut m = reload(machine(schedule.clone()));
    let mut now = T0;
    let mut offsets = Vec::new();
    while let Some(due) = m.poll_timeout() {
        now = now.max(due);
        let a = m.poll_transmit(now).unwrap();
        m = reload(m);
        offsets.push(now - T0);
        let code = if a.attempt < 4 { 500 } else { 200 };
        m.handle_outcome(now, a.attempt, &status(now, code))
            .unwrap();
        m = reload(m);
    }
    assert_eq!(offsets, uninterrupted.offsets);
    assert_eq!(m.state(), uninterrupted.machine.state());
}

// ---------------------------------------------------------------------------------------------
// Property tests

fn arb_schedule() -> impl Strategy<Value = RetrySchedule> {
    (
        prop::collection::vec(0i64..100_000, 1..12),
        prop_oneof![
            Just(Jitter::None),
            (0u8..=100).prop_map(|percent| Jitter::Proportional { percent }),
            (0i64..10_000).prop_map(|s| Jitter::UpTo(Duration::seconds(s))),
        ],
    )
        .prop_map(|(delays, jitter)| {
            RetrySchedule::new(delays.into_iter().map(Duration::seconds))
                .unwrap()
                .with_jitter(jitter)
                .unwrap()
        })
}

#[derive(Debug, Clone)]
enum Step {
    Respond {
        code: u16,
        retry_after: Option<u32>,
        latency_s: i64,
    },
    Transport(TransportError),
    LeaseExpires,
    /// Disable the endpoint now and re-enable it this many seconds later.
    Pause(i64),
}

fn arb_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (
            prop::sample::select(vec![200u16, 204, 301, 400, 404, 410, 429, 500, 503, 101]),
            prop::option::of(0u32..200_000),
            0i64..120,
        )
            .prop_map(|(code, retry_after, latency_s)| Step::Respond { code, retry_after, latency_s }),
        1 => prop::sample::select(vec![TransportError::Timeout, TransportError::Connect, TransportError::Other])
            .prop_map(Step::Transport),
        1 => Just(Step::LeaseExpires),
        1 => (0i64..1_000_000).prop_map(Step::Pause),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever happens, attempts never start before they are due, there are never more than
    /// the schedule allows, and the delivery reaches a final state.
    #[test]
    fn attempts_are_never_early_and_the_machine_terminates(
        schedule in arb_schedule(),
        steps in prop::collection::vec(arb_step(), 0..64),
        early_by in 1i64..10_000,
    ) {
        let max = schedule.max_attempts();
        let mut m = machine(schedule);
        let mut steps = steps.into_iter();
        let mut now = T0;
        let mut iterations = 0;
        loop {
            iterations += 1;
            prop_assert!(iterations <= 4 * 64 + 4 * max as usize, "no progress");
            let Some(due) = m.poll_timeout() else {
                if m.state().status == DeliveryStatus::Paused {
                    now += Duration::seconds(1);
                    m.handle_endpoint_enabled(now);
                    continue;
                }
                break;
            };
            // Polling early never starts an attempt.
            let early = due - Duration::milliseconds(early_by);
            if early >= now {
                prop_assert!(m.poll_transmit(early).is_none());
            }
            now = now.max(due);
            let attempt = m.poll_transmit(now).unwrap();
            prop_assert!(attempt.started_at >= due);
            prop_assert!(attempt.attempt <= max);
            match steps.next().unwrap_or(Step::Respond { code: 500, retry_after: None, latency_s: 0 }) {
                Step::Respond { code, retry_after, latency_s } => {
                    let ra = retry_after.map(|s| s.to_string());
                    let headers: Vec<(&str, &str)> = ra.iter().map(|v| ("retry-after", v.as_str())).collect();
                    now += Duration::seconds(latency_s);
                    m.handle_outcome(now, attempt.attempt, &response(attempt.started_at, code, &headers)).unwrap();
                    if let Some(next) = m.state().next_attempt_at {
                        prop_assert!(next >= now);
                        prop_assert!(next <= now + Duration::days(31) + MAX_RETRY_AFTER);
                    }
                }
                Step::Transport(error) => {
                    m.handle_outcome(now, attempt.attempt, &AttemptOutcome::transport_failure(now, Duration::ZERO, error)).unwrap();
                }
                Step::LeaseExpires => {
                    now += Duration::seconds(90);
                    m.handle_lease_expired(now);
                }
                Step::Pause(seconds) => {
                    m.handle_endpoint_disabled(now);
                    m.handle_outcome(now, attempt.attempt, &status(now, 500)).unwrap();
                    now += Duration::seconds(seconds);
                    m.handle_endpoint_enabled(now);
                }
            }
            while m.poll_event().is_some() {}
        }
        let state = m.state();
        prop_assert!(state.status.is_final(), "{:?}", state.status);
        prop_assert!(state.attempts >= 1 && state.attempts <= max);
        if state.status == DeliveryStatus::Failed && state.attempts < max {
            // Only a 410 ends a delivery early.
            prop_assert_eq!(state.last_attempt.as_ref().unwrap().error, Some(ErrorClass::Gone));
        }
    }

    /// Jitter is between zero and its maximum, the same on every call, and never pulls an
    /// attempt before the schedule.
    #[test]
    fn jitter_is_bounded_and_deterministic(
        schedule in arb_schedule(),
        seed in any::<[u8; 10]>(),
        position in 1u32..14,
        attempt in 1u32..1000,
    ) {
        let id = DeliveryId::from_parts(T0, seed);
        let jitter = schedule.jitter(position, &id, attempt);
        prop_assert!(jitter >= Duration::ZERO);
        prop_assert!(jitter <= schedule.max_jitter(position));
        prop_assert_eq!(jitter, schedule.jitter(position, &id, attempt));
        match schedule.delay(position) {
            Some(delay) => {
                let due = schedule.due_at(T0, position, &id, attempt).unwrap();
                prop_assert!(due >= T0 + delay);
                prop_assert!(due <= T0 + delay + schedule.max_jitter(position));
            }
            None => prop_assert!(schedule.due_at(T0, position, &id, attempt).is_none()),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Endpoints and request building

fn endpoint(secrets: SecretSet) -> Endpoint {
    Endpoint::new(
        EndpointId::from_parts(T0, [3; 10]),
        EndpointUrl::parse("https://your-app.com/webhooks/nopos").unwrap(),
        EventFilter::parse(["transaction.completed", "inventory.*"]).unwrap(),
        secrets,
        T0,
    )
}

fn serialized_event() -> SerializedEvent {
    let envelope = Envelope::new(
        EventId::from_parts(T0, [2; 10]),
        T0,
        Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap(),
    );
    SerializedEvent::from_envelope(&envelope).unwrap()
}

#[test]
fn request_has_exactly_the_design_headers_and_verifies() {
    let chosen = Secret::new("your_webhook_secret").unwrap();
    let endpoint = endpoint(SecretSet::new(chosen.clone()));
    let event = serialized_event();
    let mut m = machine(RetrySchedule::default());
    let first = m.poll_transmit(T0).unwrap();
    m.handle_outcome(T0, 1, &status(T0, 500)).unwrap();
    let at = T0 + minutes(5);
    let attempt = m.poll_transmit(at).unwrap();
    let request = build_request(&endpoint, &attempt, &event).unwrap();

    assert_eq!(request.method(), http::Method::POST);
    assert_eq!(request.uri(), "https://your-app.com/webhooks/nopos");
    let h = request.headers();
    let mut names: Vec<&str> = h.keys().map(http::HeaderName::as_str).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "content-type",
            "user-agent",
            "x-nopos-delivery-attempt",
            "x-nopos-delivery-id",
            "x-nopos-event-id",
            "x-nopos-event-type",
            "x-nopos-signature",
        ]
    );
    assert_eq!(h.len(), names.len(), "one value per header");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(
        h["user-agent"],
        format!("nopos-webhooks/{}", env!("CARGO_PKG_VERSION")).as_str()
    );
    assert_eq!(h["x-nopos-event-id"], event.id().as_str());
    assert_eq!(h["x-nopos-event-type"], "transaction.completed");
    assert_eq!(h["x-nopos-delivery-id"], first.delivery_id.as_str());
    assert_eq!(h["x-nopos-delivery-attempt"], "2");
    assert!(
        h["x-nopos-signature"]
            .to_str()
            .unwrap()
            .starts_with(&format!("t={},v1=", at.unix_timestamp()))
    );
    // The body is the shared buffer, not a copy.
    assert_eq!(request.body().as_ptr(), event.body().as_ptr());

    let verified = Verifier::new([chosen])
        .verify(request.headers(), request.body(), at)
        .unwrap();
    assert_eq!(verified.scheme, Scheme::NoPos);
    assert!(
        Verifier::new([Secret::new("someone_elses_secret").unwrap()])
            .verify(request.headers(), request.body(), at)
            .is_err()
    );
}

#[test]
fn standard_webhooks_headers_and_rotation() {
    let old = Secret::new("your_webhook_secret").unwrap();
    let new = Secret::generate();
    let mut secrets = SecretSet::new(old.clone());
    secrets.rotate(new.clone(), T0, Duration::hours(24));
    let mut headers = CustomHeaders::new();
    headers.insert("Authorization", "Bearer token").unwrap();
    let endpoint = endpoint(secrets).with_headers(headers);
    let event = serialized_event();
    let mut m = machine(RetrySchedule::default());
    let attempt = m.poll_transmit(T0).unwrap();
    let request = build_request(&endpoint, &attempt, &event).unwrap();
    let h = request.headers();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        assert!(h.contains_key(name), "{name}");
    }
    assert_eq!(h["webhook-id"], event.id().as_str());
    assert_eq!(h["authorization"], "Bearer token");
    assert!(h["authorization"].is_sensitive());
    assert_eq!(h.len(), 7 + 3 + 1);
    // Newest first, both valid during the grace period.
    assert_eq!(
        h["x-nopos-signature"]
            .to_str()
            .unwrap()
            .matches("v1=")
            .count(),
        2
    );
    for secret in [old, new.clone()] {
        assert!(
            Verifier::new([secret])
                .verify(h, request.body(), T0)
                .is_ok()
        );
    }
    let standard_only = Verifier::for_scheme(Scheme::StandardWebhooks, [new]);
    assert!(standard_only.verify(h, request.body(), T0).is_ok());
}

#[test]
fn request_refuses_foreign_attempts() {
    let endpoint = endpoint(SecretSet::new(Secret::generate()));
    let event = serialized_event();
    let mut other_endpoint = DeliveryMachine::new(
        T0,
        delivery_id(1),
        event.id().clone(),
        EndpointId::from_parts(T0, [4; 10]),
        RetrySchedule::default(),
    );
    let attempt = other_endpoint.poll_transmit(T0).unwrap();
    assert!(matches!(
        build_request(&endpoint, &attempt, &event),
        Err(RequestError::EndpointMismatch { .. })
    ));
    let mut other_event = DeliveryMachine::new(
        T0,
        delivery_id(1),
        EventId::from_parts(T0, [5; 10]),
        endpoint.id.clone(),
        RetrySchedule::default(),
    );
    let attempt = other_event.poll_transmit(T0).unwrap();
    assert!(matches!(
        build_request(&endpoint, &attempt, &event),
        Err(RequestError::EventMismatch { .. })
    ));
}

#[test]
fn reserved_custom_headers_are_refused() {
    let mut headers = CustomHeaders::new();
    for name in [
        "content-type",
        "Content-Type",
        "user-agent",
        "x-nopos-event-id",
        "x-nopos-event-type",
        "x-nopos-delivery-id",
        "x-nopos-delivery-attempt",
        "x-nopos-signature",
        "x-nopos-future-header",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
    ] {
        assert!(
            matches!(
                headers.insert(name, "forged"),
                Err(CustomHeaderError::Reserved { .. })
            ),
            "{name}"
        );
        assert!(nopos_webhooks::is_reserved_header(
            &name.to_ascii_lowercase()
        ));
    }
    assert!(headers.is_empty());
    headers.insert("x-tenant", "acme").unwrap();
    assert!(!nopos_webhooks::is_reserved_header("authorization"));
    // Stored records are checked again on the way back in.
    let json = r#"{"x-nopos-signature":"t=1,v1=00"}"#;
    assert!(serde_json::from_str::<CustomHeaders>(json).is_err());
}

#[test]
fn url_validation_errors() {
    let cases = [
        ("ftp://example.com/", UrlError::UnsupportedScheme),
        ("ws://example.com/", UrlError::UnsupportedScheme),
        ("/webhooks", UrlError::MissingScheme),
        ("example.com/webhooks", UrlError::MissingScheme),
        ("https://user:pass@example.com/", UrlError::UserInfo),
        ("https://@example.com/", UrlError::UserInfo),
        ("https://example.com/#frag", UrlError::Fragment),
        ("https://:443/", UrlError::MissingHost),
        ("https://example.com:0/", UrlError::InvalidPort),
        ("https://exa mple.com/", UrlError::Malformed),
        ("https://example.com:99999/", UrlError::InvalidPort),
        ("https://[::1]:65536/", UrlError::InvalidPort),
    ];
    for (text, expected) in cases {
        assert_eq!(EndpointUrl::parse(text), Err(expected), "{text}");
    }
    assert!(matches!(
        EndpointUrl::parse("https://exa$mple.com/"),
        Err(UrlError::InvalidHost(_))
    ));
    assert_eq!(
        EndpointUrl::parse(&format!("https://e.com/{}", "a".repeat(3000))),
        Err(UrlError::TooLong)
    );
    // Serde validates too.
    assert!(serde_json::from_str::<EndpointUrl>(r#""ftp://x.com/""#).is_err());
    let url: EndpointUrl = serde_json::from_str(r#""HTTPS://X.com/a?b=c""#).unwrap();
    assert_eq!(url.as_str(), "https://x.com/a?b=c");
}

#[test]
fn subscriptions_match_exact_family_and_everything() {
    let endpoint = endpoint(SecretSet::new(Secret::generate()));
    assert!(endpoint.subscribes_to(&EventType::TRANSACTION_COMPLETED));
    assert!(endpoint.subscribes_to(&EventType::INVENTORY_LOW_STOCK));
    assert!(endpoint.subscribes_to(&EventType::from_static("inventory.counted")));
    assert!(!endpoint.subscribes_to(&EventType::TRANSACTION_REFUNDED));
    let all = EventFilter::parse(["*"]).unwrap();
    assert!(all.matches(&EventType::from_static("acme.gift_card.issued")));
}

#[test]
fn endpoint_records_round_trip_without_leaking_secrets() {
    let secret = Secret::new("your_webhook_secret").unwrap();
    let mut secrets = SecretSet::new(secret);
    secrets.rotate(Secret::generate(), T0, Duration::hours(24));
    let mut endpoint = endpoint(secrets)
        .with_description("till 1")
        .with_retry_schedule(RetrySchedule::new([Duration::ZERO, minutes(1)]).unwrap());
    endpoint.disable(T0 + minutes(1), DisableReason::Failing { since: T0 });
    // The first reason sticks.
    endpoint.disable(T0 + minutes(2), DisableReason::Manual);

    let record = endpoint.to_record();
    assert!(!format!("{record:?}").contains("your_webhook_secret"));
    assert!(!format!("{endpoint:?}").contains("your_webhook_secret"));
    let json = serde_json::to_string(&record).unwrap();
    assert!(
        json.contains("your_webhook_secret"),
        "stores need the secret"
    );
    let back: EndpointRecord = serde_json::from_str(&json).unwrap();
    let restored = back.into_endpoint(T0).unwrap();
    assert_eq!(restored, endpoint);
    assert!(!restored.is_enabled());

    // After the grace period the old secret is gone.
    let later: EndpointRecord = serde_json::from_str(&json).unwrap();
    let later = later.into_endpoint(T0 + Duration::hours(25)).unwrap();
    assert_eq!(later.secrets.entries().len(), 1);

    let mut enabled = restored;
    enabled.enable();
    assert!(enabled.is_enabled());
}
