//! Delivery analytics: what `GET /v1/webhooks/{id}/stats` computes from an endpoint's attempt log.
//!
//! Pure functions over [`AttemptRecord`]s, so the numbers are tested without a server.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::AttemptRecord;

/// The default analytics window: the last 24 hours.
pub const DEFAULT_STATS_WINDOW_SECS: u64 = 24 * 60 * 60;
/// The longest analytics window: 30 days.
pub const MAX_STATS_WINDOW_SECS: u64 = 30 * 24 * 60 * 60;

/// Attempt counts, success rate and latency percentiles of one endpoint over a window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(super) struct AttemptStats {
    /// Attempts started in the window, retries and replays included (the test tool's sends are
    /// not stored, so not counted).
    pub(super) attempts: u64,
    /// Attempts answered with a 2xx.
    pub(super) delivered: u64,
    /// Every other attempt.
    pub(super) failed: u64,
    /// `delivered / attempts`, rounded to four decimals; `null` without attempts.
    pub(super) success_rate: Option<f64>,
    /// Latency percentiles of the attempts that got an HTTP response (transport failures have
    /// no meaningful latency: a refused connection is instant, a timeout is the timeout).
    pub(super) latency_ms: Latency,
    /// Failed attempts by error class (`server_error`, `timeout`, `connect`, …).
    pub(super) errors: BTreeMap<String, u64>,
    /// Attempts by response status code.
    pub(super) status_codes: BTreeMap<u16, u64>,
}

/// Nearest-rank latency percentiles in milliseconds; `null` without answered attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(super) struct Latency {
    pub(super) p50: Option<u64>,
    pub(super) p95: Option<u64>,
}

pub(super) fn compute(records: &[AttemptRecord]) -> AttemptStats {
    let attempts = records.len() as u64;
    let delivered = records.iter().filter(|r| r.error.is_none()).count() as u64;
    let mut latencies: Vec<u64> = records
        .iter()
        .filter(|r| r.status.is_some())
        .map(|r| r.latency_ms)
        .collect();
    latencies.sort_unstable();
    let mut errors = BTreeMap::new();
    let mut status_codes = BTreeMap::new();
    for record in records {
        if let Some(class) = record.error {
            let name = serde_json::to_value(class)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_else(|| "other".to_owned());
            *errors.entry(name).or_insert(0) += 1;
        }
        if let Some(status) = record.status {
            *status_codes.entry(status).or_insert(0) += 1;
        }
    }
    #[allow(clippy::cast_precision_loss, reason = "counts far below 2^52")]
    let success_rate =
        (attempts > 0).then(|| (delivered as f64 / attempts as f64 * 10_000.0).round() / 10_000.0);
    AttemptStats {
        attempts,
        delivered,
        failed: attempts - delivered,
        success_rate,
        latency_ms: Latency {
            p50: percentile(&latencies, 50),
            p95: percentile(&latencies, 95),
        },
        errors,
        status_codes,
    }
}

/// The nearest-rank percentile of sorted values: the smallest value at or above `percent` % of
/// them.
fn percentile(sorted: &[u64], percent: usize) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (percent * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AttemptOutcome, TransportError};
    use http::{HeaderMap, StatusCode};
    use time::{Duration, macros::datetime};

    fn answered(status: u16, ms: i64) -> AttemptRecord {
        AttemptOutcome::from_parts(
            datetime!(2024-11-10 10:30 UTC),
            Duration::milliseconds(ms),
            StatusCode::from_u16(status).unwrap(),
            &HeaderMap::new(),
            b"",
        )
        .record(1)
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let values: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&values, 50), Some(50));
        assert_eq!(percentile(&values, 95), Some(95));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2], 50), Some(1));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn counts_rates_and_latencies() {
        let mut records: Vec<AttemptRecord> = (1..=18).map(|ms| answered(200, ms * 10)).collect();
        records.push(answered(500, 1000));
        records.push(
            AttemptOutcome::transport_failure(
                datetime!(2024-11-10 10:30 UTC),
                Duration::seconds(30),
                TransportError::Timeout,
            )
            .record(1),
        );
        let stats = compute(&records);
        assert_eq!(stats.attempts, 20);
        assert_eq!(stats.delivered, 18);
        assert_eq!(stats.failed, 2);
        assert_eq!(stats.success_rate, Some(0.9));
        assert_eq!(stats.latency_ms.p50, Some(100));
        assert_eq!(stats.latency_ms.p95, Some(1000));
        assert_eq!(stats.errors["server_error"], 1);
        assert_eq!(stats.errors["timeout"], 1);
        assert_eq!(stats.status_codes[&200], 18);

        let empty = compute(&[]);
        assert_eq!(empty.success_rate, None);
        assert_eq!(empty.latency_ms.p50, None);
    }
}
