//! Prints one envelope for every event type in the catalogue, as it goes on the wire.
//!
//! ```text
//! cargo run --example catalogue
//! ```

use nopos_webhooks::{CATALOGUE, Envelope, Event, EventId};
use time::OffsetDateTime;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = OffsetDateTime::now_utc();
    for info in CATALOGUE {
        let Some(sample) = Event::sample(info.event_type) else {
            continue;
        };
        let envelope = Envelope::new(EventId::generate(now), now, sample);
        let body = envelope.to_bytes()?;
        println!("# {} — {}", info.event_type, info.description);
        println!("{}", String::from_utf8_lossy(&body));
    }
    Ok(())
}
