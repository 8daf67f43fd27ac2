//! Recording a batch of outcomes in a fixed number of statements (`Store::record_attempts`).
//!
//! One by one, an outcome costs about five round trips (lock the endpoint, lock the delivery,
//! write the delivery, log the attempt, write the health), and the dispatcher's single recorder
//! writes every outcome, so that cost bounds a dispatcher's throughput. Here a batch takes two
//! statements whatever its size: one locks all its endpoint rows, then all its delivery rows,
//! and reads them; each item is then settled in memory in the order the one-by-one path takes;
//! one more writes all delivery states, attempt log entries and changed healths.
//!
//! The results are those of recording the items one by one in (endpoint id, delivery id) order:
//! each endpoint's health is carried from item to item as the one-by-one path reads back what
//! the previous item wrote. The one thing that path would see and memory would not is an outcome
//! that disables its endpoint, which pauses the endpoint's other deliveries in the database; the
//! batch then writes what it computed so far, disables the endpoint exactly as the one-by-one
//! path does, and records that endpoint's remaining items one by one from fresh rows. That is
//! rare (a 410, or an endpoint failing past its health period), so correctness is worth more
//! than speed there.

use std::collections::HashMap;

use time::OffsetDateTime;

use super::sql::Statements;
use super::{
    AttemptWrites, DeliveryWrites, LeaseCounts, PostgresStore, backend, column, endpoint_from_json,
    from_json, not_found, to_json,
};
use crate::store::codec::claimed_state;
use crate::store::{Claim, EndpointChange, Recorded, StoreError, settle};
use crate::{AttemptOutcome, Endpoint, EndpointHealth};

/// An endpoint row the batch holds locked.
struct LockedEndpoint {
    endpoint: Endpoint,
    /// As read: written back only when the batch changed it.
    stored_health: EndpointHealth,
    /// After the batch's items so far: what the one-by-one path would read for the next item.
    health: EndpointHealth,
    /// Disabled by one of the batch's items: its rows changed under the batch, so its further
    /// items are recorded one by one, and its health was written with the disable.
    disabled_here: bool,
}

/// A delivery row the batch holds locked.
struct LockedDelivery {
    endpoint_id: String,
    /// The state's text, decoded against the claim when an item settles it (see
    /// [`claimed_state`]).
    state: String,
    /// The lease token; cleared once an item settles the delivery, so that the same claim again
    /// in the batch is refused as a lost lease, as one by one.
    token: Option<String>,
}

/// Changed endpoint healths, as columns for `UNNEST`.
#[derive(Default)]
struct HealthWrites {
    ids: Vec<String>,
    healths: Vec<String>,
}

/// Writes what a batch decided, in one statement.
async fn write_all(
    st: &Statements,
    conn: &mut sqlx::PgConnection,
    writes: DeliveryWrites,
    log: AttemptWrites,
    healths: HealthWrites,
    settled: LeaseCounts,
) -> Result<(), StoreError> {
    writes
        .bind(st.record_writes.query())
        .bind(log.delivery_ids)
        .bind(log.attempts)
        .bind(log.records)
        .bind(healths.ids)
        .bind(healths.healths)
        .bind(settled.ids)
        .bind(settled.counts)
        .execute(conn)
        .await
        .map_err(backend)?;
    Ok(())
}

impl PostgresStore {
    /// Records `batch` on `conn`, inside a transaction; per-item results in the batch's order.
    /// A lost lease fails its item only; any other error fails the call (the caller rolls back).
    pub(super) async fn record_batch_in(
        &self,
        conn: &mut sqlx::PgConnection,
        batch: &[(&Claim, &AttemptOutcome)],
        now: OffsetDateTime,
    ) -> Result<Vec<Result<Recorded, StoreError>>, StoreError> {
        let st = &self.statements;
        // The one-by-one order: endpoint, then delivery. Endpoint ids come out sorted and are
        // locked in that (byte) order, the order every batch takes, then the delivery rows in
        // theirs, so concurrent batches and endpoint changes queue instead of deadlocking.
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by(|&a, &b| {
            let key = |i: usize| {
                let claim = batch[i].0;
                (&claim.state.endpoint_id, &claim.attempt.delivery_id)
            };
            key(a).cmp(&key(b))
        });
        let mut endpoint_ids: Vec<&str> = order
            .iter()
            .map(|&i| batch[i].0.state.endpoint_id.as_str())
            .collect();
        endpoint_ids.dedup();
        let delivery_ids: Vec<&str> = order
            .iter()
            .map(|&i| batch[i].0.attempt.delivery_id.as_str())
            .collect();

        let rows = st
            .lock_batch
            .query()
            .bind(endpoint_ids)
            .bind(delivery_ids)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
        let mut endpoints = HashMap::new();
        let mut deliveries = HashMap::with_capacity(batch.len());
        for row in &rows {
            let id: String = column(row, 1)?;
            if column(row, 0)? {
                let endpoint = endpoint_from_json(&column::<String>(row, 2)?)?;
                let health: EndpointHealth =
                    from_json("endpoint health", &column::<String>(row, 3)?)?;
                endpoints.insert(
                    id,
                    LockedEndpoint {
                        endpoint,
                        stored_health: health.clone(),
                        health,
                        disabled_here: false,
                    },
                );
            } else {
                deliveries.insert(
                    id,
                    LockedDelivery {
                        endpoint_id: column(row, 2)?,
                        state: column(row, 3)?,
                        token: column(row, 4)?,
                    },
                );
            }
        }

        let mut results: Vec<Option<Result<Recorded, StoreError>>> =
            (0..batch.len()).map(|_| None).collect();
        let mut writes = DeliveryWrites::default();
        let mut log = AttemptWrites::default();
        let mut settled = LeaseCounts::default();
        for i in order {
            let (claim, outcome) = batch[i];
            let id = &claim.attempt.delivery_id;
            let endpoint_id = claim.state.endpoint_id.as_str();
            let lost = || StoreError::LeaseLost(id.to_string());
            if endpoints.get(endpoint_id).is_some_and(|e| e.disabled_here) {
                results[i] = Some(
                    match self
                        .record_attempt_in(&mut *conn, claim, outcome, now)
                        .await
                    {
                        Err(err @ StoreError::LeaseLost(_)) => Err(err),
                        Err(err) => return Err(err),
                        Ok(recorded) => Ok(recorded),
                    },
                );
                continue;
            }
            // The checks of the one-by-one path, in its order.
            let delivery = deliveries
                .get_mut(id.as_str())
                .ok_or_else(|| not_found("delivery", id))?;
            if delivery.token.as_deref() != Some(claim.lease.as_str()) {
                results[i] = Some(Err(lost()));
                continue;
            }
            let Some(locked) = endpoints
                .get_mut(endpoint_id)
                .filter(|_| delivery.endpoint_id == endpoint_id)
            else {
                results[i] = Some(Err(lost()));
                continue;
            };
            let settlement = match settle(
                &self.config,
                &locked.endpoint,
                claim,
                claimed_state(&delivery.state, claim)?,
                locked.health.clone(),
                outcome,
                now,
            ) {
                Err(err @ StoreError::LeaseLost(_)) => {
                    results[i] = Some(Err(err));
                    continue;
                }
                Err(err) => return Err(err),
                Ok(settlement) => settlement,
            };
            delivery.token = None;
            settled.add(claim);
            locked.health = settlement.health;
            writes.push(&settlement.state, None)?;
            log.push(id, &settlement.record)?;
            if let Some(reason) = settlement.disable {
                // Disabling pauses the endpoint's unfinished deliveries from their rows as they
                // are now: write the batch so far first, as one by one would have.
                std::mem::take(&mut writes).write(st, &mut *conn).await?;
                std::mem::take(&mut log).write(st, &mut *conn).await?;
                let mut endpoint = locked.endpoint.clone();
                endpoint.disable(now, reason);
                self.write_endpoint(
                    &mut *conn,
                    &endpoint,
                    locked.health.clone(),
                    Some(EndpointChange::Disabled),
                    now,
                )
                .await?;
                locked.disabled_here = true;
            }
            results[i] = Some(Ok(Recorded {
                state: settlement.state,
                endpoint_disabled: settlement.disable,
            }));
        }

        let mut healths = HealthWrites::default();
        for (id, locked) in endpoints {
            if !locked.disabled_here && locked.health != locked.stored_health {
                healths.ids.push(id);
                healths
                    .healths
                    .push(to_json("endpoint health", &locked.health)?);
            }
        }
        write_all(st, conn, writes, log, healths, settled).await?;
        // Every index was filled above.
        Ok(results.into_iter().flatten().collect())
    }
}
