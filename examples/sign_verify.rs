//! Signs a delivery body the way an emitter does, then verifies it the way a receiver does.
//!
//! ```text
//! cargo run --example sign_verify
//! ```

use nopos_webhooks::{Envelope, Event, EventId, EventType, Secret, SecretSet, Verifier, signature};
use time::{Duration, OffsetDateTime};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let now = OffsetDateTime::now_utc();

    // Emitter: one endpoint mid-rotation, the announcement's secret and a newly generated one.
    let old = Secret::new("your_webhook_secret")?;
    let mut secrets = SecretSet::new(old.clone());
    let new = Secret::generate();
    secrets.rotate(new.clone(), now, SecretSet::DEFAULT_GRACE_PERIOD);

    let event = Event::sample(&EventType::TRANSACTION_COMPLETED).ok_or("no sample")?;
    let envelope = Envelope::new(EventId::generate(now), now, event);
    let body = envelope.to_bytes()?;
    let signed = signature::sign(secrets.active(now), envelope.id.as_str(), now, &body)?;

    let mut headers = http::HeaderMap::new();
    signed.insert_into(&mut headers);
    for (name, value) in signed.iter() {
        println!("{name}: {}", value.to_str()?);
    }
    println!();

    // Receivers with the old secret, the new one, or both: all verify during the grace period.
    for (who, verifier) in [
        ("old secret", Verifier::new([old.clone()])),
        ("new secret", Verifier::new([new.clone()])),
        ("both", Verifier::new([new, old])),
    ] {
        let verified = verifier.verify(&headers, &body, now)?;
        println!("{who:>10}: verified with {} signature", verified.scheme);
    }

    // The same delivery ten minutes later is a replay, and a changed body never verifies.
    let verifier = Verifier::new([secrets.current().clone()]);
    let late = verifier.verify(&headers, &body, now + Duration::minutes(10));
    println!(
        "  replayed: {}",
        late.map_or_else(|e| e.to_string(), |_| "accepted".into())
    );
    let mut tampered = body.to_vec();
    tampered[10] ^= 1;
    let forged = verifier.verify(&headers, &tampered, now);
    println!(
        "  tampered: {}",
        forged.map_or_else(|e| e.to_string(), |_| "accepted".into())
    );

    let parsed = Envelope::<Event>::from_slice(&body)?;
    println!("\nparsed {} {}", parsed.event_type(), parsed.id);
    Ok(())
}
