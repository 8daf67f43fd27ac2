//! The envelope and the event catalogue through bytes: round trips, forward compatibility, exact
//! money and malformed input.

use nopos_webhooks::{
    CATALOGUE, DataError, EncodeError, Envelope, EnvelopeError, Event, EventId, EventPayload,
    EventType, Money, TransactionCompleted, WebhookEvent,
};
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use time::macros::datetime;

const ANNOUNCEMENT: &str = r#"{
  "id": "evt_1234567890",
  "type": "transaction.completed",
  "created_at": "2024-11-10T10:30:00Z",
  "data": {
    "transaction_id": "txn_9876543210",
    "amount": 125.50,
    "status": "completed",
    "customer_id": "cust_123456"
  }
}"#;

fn id() -> EventId {
    EventId::from_parts(datetime!(2024-11-10 10:30 UTC), [1; 10])
}

#[test]
fn every_event_type_round_trips_through_bytes() {
    assert_eq!(CATALOGUE.len(), 13);
    for info in CATALOGUE {
        let sample = Event::sample(info.event_type).expect("every catalogue type has a sample");
        assert_eq!(&sample.event_type(), info.event_type);
        assert!(sample.is_known());
        let envelope = Envelope::new(id(), datetime!(2024-11-10 10:30 UTC), sample);
        let bytes = envelope.to_bytes().unwrap();
        let parsed = Envelope::<Event>::from_slice(&bytes).unwrap();
        assert_eq!(parsed, envelope, "{}", info.event_type);
        // Serializing the parsed value gives the same bytes: one canonical encoding.
        assert_eq!(parsed.to_bytes().unwrap(), bytes);
    }
    assert!(Event::sample(&EventType::from_static("acme.unknown")).is_none());
}

#[test]
fn announcement_payload_parses_exactly() {
    let envelope = Envelope::<Event>::from_slice(ANNOUNCEMENT.as_bytes()).unwrap();
    assert_eq!(envelope.id.as_str(), "evt_1234567890");
    assert_eq!(envelope.created_at, datetime!(2024-11-10 10:30 UTC));
    let Event::TransactionCompleted(sale) = &envelope.data else {
        panic!("expected transaction.completed, got {:?}", envelope.data);
    };
    assert_eq!(sale.amount, "125.50".parse::<Money>().unwrap());
    assert_eq!(sale.amount.units(), 12550);
    assert_eq!(sale.amount.scale(), 2);
    assert_eq!(sale.customer_id.as_deref(), Some("cust_123456"));
    assert_eq!(sale.transaction_id, "txn_9876543210");
    assert_eq!(sale.status, "completed");

    let bytes = envelope.to_bytes().unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert_eq!(
        text,
        r#"{"id":"evt_1234567890","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{"transaction_id":"txn_9876543210","amount":125.50,"status":"completed","customer_id":"cust_123456"}}"#
    );
}

#[test]
fn typed_single_payload_parses_and_checks_the_type() {
    let sale = Envelope::<TransactionCompleted>::from_slice(ANNOUNCEMENT.as_bytes()).unwrap();
    assert_eq!(sale.data.amount.to_string(), "125.50");
    let other = ANNOUNCEMENT.replace("transaction.completed", "payment.succeeded");
    match Envelope::<TransactionCompleted>::from_slice(other.as_bytes()) {
        Err(EnvelopeError::Data(DataError::UnexpectedType { expected, found })) => {
            assert_eq!(expected, EventType::TRANSACTION_COMPLETED);
            assert_eq!(found, EventType::PAYMENT_SUCCEEDED);
        }
        other => panic!("expected a type mismatch, got {other:?}"),
    }
}

#[test]
fn money_stays_exact_through_the_wire() {
    let a: Money = "0.10".parse().unwrap();
    let b: Money = "0.20".parse().unwrap();
    assert_eq!(a.checked_add(b).unwrap().to_string(), "0.30");
    assert_eq!(a.checked_add(b).unwrap(), "0.3".parse().unwrap());
    let price: Money = "19.99".parse().unwrap();
    assert_eq!(price.checked_mul_int(3).unwrap().to_string(), "59.97");

    for amount in [
        "125.50",
        "0.30",
        "59.97",
        "9007199254740.99",
        "-12.34",
        "0.000001",
        "12345678901234567890123456.78",
        "0",
    ] {
        let body = ANNOUNCEMENT.replace("125.50", amount);
        let envelope = Envelope::<Event>::from_slice(body.as_bytes()).unwrap();
        let Event::TransactionCompleted(sale) = &envelope.data else {
            panic!("wrong variant")
        };
        assert_eq!(sale.amount.to_string(), amount);
        let again = envelope.to_bytes().unwrap();
        let needle = format!(r#""amount":{amount},"#);
        assert!(
            std::str::from_utf8(&again).unwrap().contains(&needle),
            "{amount} did not survive"
        );
    }
    // Exponent forms and quoted amounts are read exactly too.
    for (wire, expected) in [
        ("1.2550e2", "125.50"),
        ("12550E-2", "125.50"),
        ("\"125.50\"", "125.50"),
    ] {
        let body = ANNOUNCEMENT.replace("125.50", wire);
        let envelope = Envelope::<TransactionCompleted>::from_slice(body.as_bytes()).unwrap();
        assert_eq!(envelope.data.amount.to_string(), expected, "{wire}");
    }
}

#[test]
fn money_rejects_what_it_cannot_hold_exactly() {
    for bad in [
        "", "-", "1.", ".5", "1e", "abc", "1.2.3", "0x10", "1,5", "+1",
    ] {
        assert!(bad.parse::<Money>().is_err(), "{bad:?} should be rejected");
    }
    assert!("1e400".parse::<Money>().is_err());
    assert!(
        "1234567890123456789012345678901234567890"
            .parse::<Money>()
            .is_err()
    );
    assert!("0.0000000000000000001".parse::<Money>().is_err());
    let body = ANNOUNCEMENT.replace("125.50", "true");
    assert!(matches!(
        Envelope::<Event>::from_slice(body.as_bytes()),
        Err(EnvelopeError::Data(DataError::Invalid { .. }))
    ));
}

#[test]
fn unknown_type_is_kept_with_its_raw_data() {
    let body = br#"{"id":"evt_1","type":"giftcard.issued","created_at":"2024-11-10T10:30:00Z","data":{"card":"gc_1","amount":10.00}}"#;
    let envelope = Envelope::<Event>::from_slice(body).unwrap();
    let Event::Unknown(unknown) = &envelope.data else {
        panic!("expected Unknown")
    };
    assert_eq!(unknown.event_type().as_str(), "giftcard.issued");
    assert_eq!(unknown.data().get(), r#"{"card":"gc_1","amount":10.00}"#);
    assert!(!envelope.data.is_known());
    // Re-serializing keeps the raw data byte for byte.
    assert_eq!(&envelope.to_bytes().unwrap()[..], &body[..]);
}

#[test]
fn unknown_fields_are_ignored() {
    let body = ANNOUNCEMENT
        .replace(
            r#""status": "completed","#,
            r#""status": "completed", "future_field": {"nested": [1, 2]}, "loyalty_tier": "gold","#,
        )
        .replace(
            r#""id": "evt_1234567890","#,
            r#""id": "evt_1234567890", "livemode": true,"#,
        );
    let envelope = Envelope::<Event>::from_slice(body.as_bytes()).unwrap();
    assert!(matches!(envelope.data, Event::TransactionCompleted(_)));
}

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct GiftCardIssued {
    card_id: String,
    balance: Money,
}

impl EventPayload for GiftCardIssued {
    const EVENT_TYPE: EventType = EventType::from_static("acme.gift_card.issued");
}

#[test]
fn custom_events_work_like_built_in_ones() {
    let card = GiftCardIssued {
        card_id: "gc_1".into(),
        balance: "50.00".parse().unwrap(),
    };
    let envelope = Envelope::new(id(), datetime!(2024-11-10 10:30 UTC), card);
    assert_eq!(envelope.event_type(), "acme.gift_card.issued");
    let bytes = envelope.to_bytes().unwrap();
    assert_eq!(
        Envelope::<GiftCardIssued>::from_slice(&bytes).unwrap(),
        envelope
    );

    // A receiver that parses the catalogue sees it as unknown and can still get the typed value.
    let as_event = Envelope::<Event>::from_slice(&bytes).unwrap();
    let Event::Unknown(unknown) = as_event.data else {
        panic!("custom types are unknown to the catalogue")
    };
    assert_eq!(unknown.parse::<GiftCardIssued>().unwrap(), envelope.data);
    assert!(unknown.parse::<TransactionCompleted>().is_err());
}

#[derive(Serialize, Deserialize)]
struct NotAnObject(String);

impl EventPayload for NotAnObject {
    const EVENT_TYPE: EventType = EventType::from_static("acme.scalar");
}

#[test]
fn payloads_that_are_not_objects_are_refused_when_encoding() {
    let envelope = Envelope::new(
        id(),
        datetime!(2024-11-10 10:30 UTC),
        NotAnObject("x".into()),
    );
    assert!(matches!(
        envelope.to_bytes(),
        Err(EncodeError::DataNotObject)
    ));
}

#[test]
fn created_at_is_utc_with_z() {
    let at = datetime!(2024-11-10 11:30 +01:00);
    let envelope = Envelope::new(id(), at, Event::sample(&EventType::PAYMENT_FAILED).unwrap());
    let text = String::from_utf8(envelope.to_bytes().unwrap().to_vec()).unwrap();
    assert!(
        text.contains(r#""created_at":"2024-11-10T10:30:00Z""#),
        "{text}"
    );
    // An offset on the wire is accepted and normalized.
    let body = ANNOUNCEMENT.replace("2024-11-10T10:30:00Z", "2024-11-10T05:30:00-05:00");
    let parsed = Envelope::<Event>::from_slice(body.as_bytes()).unwrap();
    assert_eq!(parsed.created_at, datetime!(2024-11-10 10:30 UTC));
    assert_eq!(parsed.created_at.offset(), time::UtcOffset::UTC);
}

fn malformed(body: &[u8]) -> EnvelopeError {
    match Envelope::<Event>::from_slice(body) {
        Ok(envelope) => panic!("accepted malformed envelope: {envelope:?}"),
        Err(err) => err,
    }
}

#[test]
fn malformed_envelopes_get_typed_errors() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "missing id",
            ANNOUNCEMENT
                .replace(r#""id": "evt_1234567890","#, "")
                .into_bytes(),
        ),
        (
            "id without prefix",
            ANNOUNCEMENT
                .replace("evt_1234567890", "1234567890")
                .into_bytes(),
        ),
        (
            "id with a dot",
            ANNOUNCEMENT
                .replace("evt_1234567890", "evt_12.34")
                .into_bytes(),
        ),
        (
            "missing type",
            ANNOUNCEMENT
                .replace(r#""type": "transaction.completed","#, "")
                .into_bytes(),
        ),
        (
            "bad type",
            ANNOUNCEMENT
                .replace("transaction.completed", "Transaction Completed")
                .into_bytes(),
        ),
        (
            "bad created_at",
            ANNOUNCEMENT
                .replace("2024-11-10T10:30:00Z", "yesterday")
                .into_bytes(),
        ),
        (
            "created_at without zone",
            ANNOUNCEMENT
                .replace("2024-11-10T10:30:00Z", "2024-11-10T10:30:00")
                .into_bytes(),
        ),
        (
            "created_at as number",
            ANNOUNCEMENT
                .replace(r#""2024-11-10T10:30:00Z""#, "1731234600")
                .into_bytes(),
        ),
        (
            "id as number",
            ANNOUNCEMENT
                .replace(r#""evt_1234567890""#, "42")
                .into_bytes(),
        ),
        (
            "duplicate id",
            ANNOUNCEMENT
                .replace(
                    r#""id": "evt_1234567890","#,
                    r#""id": "evt_1", "id": "evt_2","#,
                )
                .into_bytes(),
        ),
        (
            "missing data",
            br#"{"id":"evt_1","type":"a.b","created_at":"2024-11-10T10:30:00Z"}"#.to_vec(),
        ),
        ("not an object", b"[1,2,3]".to_vec()),
        ("empty", Vec::new()),
        ("truncated", ANNOUNCEMENT.as_bytes()[..60].to_vec()),
        ("trailing garbage", format!("{ANNOUNCEMENT} x").into_bytes()),
    ];
    for (name, body) in cases {
        assert!(
            matches!(malformed(&body), EnvelopeError::Malformed(_)),
            "{name}"
        );
    }

    for data in ["[]", "\"x\"", "null", "42"] {
        let body = ANNOUNCEMENT.replace(
            &ANNOUNCEMENT[ANNOUNCEMENT.find("{\n    \"transaction_id").unwrap()
                ..ANNOUNCEMENT.rfind('}').unwrap()],
            data,
        );
        assert!(
            matches!(malformed(body.as_bytes()), EnvelopeError::DataNotObject),
            "data {data}"
        );
    }

    // Wrong field types inside a known payload.
    for (from, to) in [
        (r#""completed""#, "17"),
        (r#""txn_9876543210""#, "null"),
        ("125.50", r#"{"value":1}"#),
    ] {
        let body = ANNOUNCEMENT.replacen(from, to, 1);
        assert!(
            matches!(
                malformed(body.as_bytes()),
                EnvelopeError::Data(DataError::Invalid { .. })
            ),
            "{from} -> {to}"
        );
    }
    // A required field missing from the payload.
    let body = ANNOUNCEMENT.replace(r#""transaction_id": "txn_9876543210","#, "");
    assert!(matches!(
        malformed(body.as_bytes()),
        EnvelopeError::Data(DataError::Invalid { .. })
    ));
}

#[test]
fn invalid_utf8_is_an_error() {
    let mut body = ANNOUNCEMENT.as_bytes().to_vec();
    let at = body.windows(6).position(|w| w == b"cust_1").unwrap();
    body[at] = 0xff;
    assert!(matches!(malformed(&body), EnvelopeError::Malformed(_)));
    let mut body = ANNOUNCEMENT.as_bytes().to_vec();
    let at = body.windows(3).position(|w| w == b"evt").unwrap();
    body[at] = 0xc3;
    assert!(matches!(malformed(&body), EnvelopeError::Malformed(_)));
}

#[test]
fn ten_megabytes_of_nesting_is_an_error_not_a_crash() {
    let depth = 5 * 1024 * 1024;
    let nested = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    assert_eq!(nested.len(), 10 * 1024 * 1024);
    // As the whole body.
    assert!(matches!(
        malformed(nested.as_bytes()),
        EnvelopeError::Malformed(_)
    ));
    // Inside a known payload's field.
    let body = ANNOUNCEMENT.replace(r#""completed""#, &nested);
    assert!(Envelope::<Event>::from_slice(body.as_bytes()).is_err());
    // As the data of an unknown type: refused by the recursion limit too, not kept.
    let object_nest = format!("{{\"a\":{}1{}}}", "[".repeat(depth), "]".repeat(depth));
    let body = format!(
        r#"{{"id":"evt_1","type":"acme.deep","created_at":"2024-11-10T10:30:00Z","data":{object_nest}}}"#
    );
    assert!(matches!(
        Envelope::<Event>::from_slice(body.as_bytes()),
        Err(EnvelopeError::Data(DataError::TooDeep { .. }))
    ));
    // Nesting up to the limit is kept; brackets inside strings do not count.
    let ok_nest = format!(
        "{{\"s\":\"[[[[\",\"a\":{}1{}}}",
        "[".repeat(127),
        "]".repeat(127)
    );
    let body = format!(
        r#"{{"id":"evt_1","type":"acme.deep","created_at":"2024-11-10T10:30:00Z","data":{ok_nest}}}"#
    );
    assert!(matches!(
        Envelope::<Event>::from_slice(body.as_bytes()).unwrap().data,
        Event::Unknown(_)
    ));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Envelope::<Event>::from_slice(&bytes);
        let _ = Envelope::<TransactionCompleted>::from_slice(&bytes);
    }

    #[test]
    fn mutated_envelopes_never_panic(
        position in 0usize..ANNOUNCEMENT.len(),
        byte in any::<u8>(),
        cut in 0usize..ANNOUNCEMENT.len(),
    ) {
        let mut body = ANNOUNCEMENT.as_bytes().to_vec();
        body[position] = byte;
        let _ = Envelope::<Event>::from_slice(&body);
        let _ = Envelope::<Event>::from_slice(&body[..cut]);
    }

    #[test]
    fn any_decimal_round_trips(units in any::<i64>(), scale in 0u8..=18) {
        let money = Money::from_minor_units(i128::from(units), scale).unwrap();
        let text = money.to_string();
        let parsed: Money = text.parse().unwrap();
        prop_assert_eq!(parsed.units(), money.units());
        prop_assert_eq!(parsed.scale(), money.scale());
        let json = serde_json::to_string(&money).unwrap();
        prop_assert_eq!(&json, &text);
        let back: Money = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back.to_string(), text);
    }

    #[test]
    fn money_order_matches_value(a in any::<i64>(), sa in 0u8..=6, b in any::<i64>(), sb in 0u8..=6) {
        let x = Money::from_minor_units(i128::from(a), sa).unwrap();
        let y = Money::from_minor_units(i128::from(b), sb).unwrap();
        // Compare exactly as rationals: a/10^sa vs b/10^sb.
        let lhs = i128::from(a) * 10i128.pow(u32::from(sb));
        let rhs = i128::from(b) * 10i128.pow(u32::from(sa));
        prop_assert_eq!(x.cmp(&y), lhs.cmp(&rhs));
        prop_assert_eq!(x == y, lhs == rhs);
    }
}
