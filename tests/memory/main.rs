//! The store conformance suite against the in-memory store.
#![cfg(feature = "memory")]

#[path = "../conformance/mod.rs"]
mod conformance;

use nopos_webhooks::store::memory::MemoryStore;

#[allow(clippy::unused_async)] // the suite awaits every opener; durable stores need it
async fn open() -> Option<MemoryStore> {
    Some(MemoryStore::new(conformance::config()))
}

#[allow(clippy::unused_async)]
async fn close(_store: MemoryStore) {}

conformance_suite!(open(), close);
