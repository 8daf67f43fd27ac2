//! The `nopos-webhooks` binary, end to end (feature `cli`).
#![cfg(feature = "cli")]
