//! The management API on a real loopback server (feature `server`).
#![cfg(feature = "server")]
