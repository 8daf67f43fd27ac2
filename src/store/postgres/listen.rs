//! Wake-ups for [`Store::wait_for_work`](crate::store::Store::wait_for_work): PostgreSQL
//! `LISTEN/NOTIFY` with a polling backstop.
//!
//! This module owns the store's one listener connection: a background task, started on first
//! use, that turns notifications for the store's schema into wake-ups of local waiters and
//! reconnects when the connection drops. The connection is its own, opened with the store pool's
//! options, so listening never takes a connection from the pool (which may be small, or the
//! application's). Notifications are an optimisation only: a waiter also
//! wakes after the polling interval, so a lost notification delays work but never loses it.

use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgListener, PgPoolOptions};
use tokio::sync::{Mutex, Notify};
use tokio::task::JoinHandle;

use super::sql::WORK_CHANNEL;

/// How long the listener task waits between reconnection attempts while they fail.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The listener task and the waiters it wakes.
pub(super) struct Wakeups {
    notify: Arc<Notify>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Wakeups {
    pub(super) fn new() -> Wakeups {
        Wakeups {
            notify: Arc::new(Notify::new()),
            task: Mutex::new(None),
        }
    }

    /// Starts the listener task unless it is running; returns once `LISTEN` is in effect.
    pub(super) async fn start(&self, pool: &PgPool, schema: &str) -> Result<(), sqlx::Error> {
        let mut task = self.task.lock().await;
        if task.as_ref().is_some_and(|running| !running.is_finished()) {
            return Ok(());
        }
        // A one-connection pool of its own, which the listener also reconnects through.
        let own = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(pool.connect_options().as_ref().clone());
        let mut listener = PgListener::connect_with(&own).await?;
        listener.listen(WORK_CHANNEL).await?;
        *task = Some(tokio::spawn(forward(
            listener,
            schema.to_owned(),
            Arc::clone(&self.notify),
        )));
        Ok(())
    }

    /// Resolves on the next notification for this schema (or one that arrived since the last
    /// wait), or after `backstop`.
    pub(super) async fn wait(&self, pool: &PgPool, schema: &str, backstop: Duration) {
        let notified = self.notify.notified();
        // Without a listener (database unreachable) waiting is plain polling.
        let _ = self.start(pool, schema).await;
        let _ = tokio::time::timeout(backstop, notified).await;
    }
}

impl Drop for Wakeups {
    fn drop(&mut self) {
        if let Some(task) = self.task.get_mut().take() {
            task.abort();
        }
    }
}

/// Wakes every current waiter, and the next one to come if none is waiting.
fn wake(notify: &Notify) {
    notify.notify_waiters();
    notify.notify_one();
}

async fn forward(mut listener: PgListener, schema: String, notify: Arc<Notify>) {
    let mut failed_before = false;
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                failed_before = false;
                // One channel serves every schema in the database; the payload says whose.
                if notification.payload() == schema {
                    wake(&notify);
                }
            }
            // The connection dropped and was re-established (and subscribed again): whatever was
            // sent meanwhile was missed, so have the waiters look.
            Ok(None) => {
                failed_before = false;
                wake(&notify);
            }
            Err(sqlx::Error::PoolClosed) => {
                wake(&notify);
                return;
            }
            // The server ended the session (its last word arrives as an error) or reconnecting
            // failed. Retry at once the first time, which reconnects; then pace the retries
            // while the database stays unreachable.
            Err(_) => {
                wake(&notify);
                if failed_before {
                    tokio::time::sleep(RECONNECT_DELAY).await;
                }
                failed_before = true;
            }
        }
    }
}
