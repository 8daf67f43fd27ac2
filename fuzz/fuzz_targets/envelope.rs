//! Envelope parsing: arbitrary bytes must give an envelope or a typed error, never a panic, and an
//! envelope that parses must serialize and parse back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nopos_webhooks::{Envelope, Event};

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = Envelope::<Event>::from_slice(bytes) else {
        return;
    };
    let encoded = envelope
        .to_bytes()
        .expect("a parsed envelope serializes again");
    let reparsed = Envelope::<Event>::from_slice(&encoded).expect("its own output parses");
    assert_eq!(reparsed, envelope);
});
