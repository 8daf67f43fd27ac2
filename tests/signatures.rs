//! Signatures: the shared test vectors in both directions, verification rules, and properties.

use http::{HeaderMap, HeaderName, HeaderValue};
use nopos_webhooks::signature::{self, sign, sign_nopos, sign_standard};
use nopos_webhooks::{Scheme, Secret, SecretSet, Verifier, VerifyError};
use proptest::prelude::*;
use serde_json::Value;
use time::{Duration, OffsetDateTime};

fn vectors() -> Value {
    serde_json::from_str(include_str!("vectors/signatures.json")).unwrap()
}

fn body_of(vector: &Value) -> Vec<u8> {
    match vector.get("a_times") {
        Some(n) => vec![b'a'; usize::try_from(n.as_u64().unwrap()).unwrap()],
        None => vector["body"].as_str().unwrap().as_bytes().to_vec(),
    }
}

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap()
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

#[test]
fn standard_webhooks_vectors_sign_and_verify() {
    let vectors = vectors();
    let cases = vectors["standard_webhooks"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let secret = Secret::new(case["secret"].as_str().unwrap()).unwrap();
        assert!(secret.is_standard_webhooks());
        let id = case["id"].as_str().unwrap();
        let ts = case["timestamp"].as_i64().unwrap();
        let body = body_of(case);
        let expected = case["signature"].as_str().unwrap();

        let [h_id, h_ts, h_sig] = sign_standard([&secret], id, at(ts), &body).unwrap();
        assert_eq!(h_id, id);
        assert_eq!(h_ts.to_str().unwrap(), ts.to_string());
        assert_eq!(h_sig, expected, "signing {id} with {} bytes", body.len());

        let map = headers(&[
            ("Webhook-Id", id),
            ("Webhook-Timestamp", &ts.to_string()),
            ("Webhook-Signature", expected),
        ]);
        let verified = Verifier::new([secret])
            .max_body_size(2 << 20)
            .verify(&map, &body, at(ts))
            .unwrap();
        assert_eq!(verified.scheme, Scheme::StandardWebhooks);
        assert_eq!(verified.timestamp, Some(ts));
    }
}

#[test]
fn nopos_vectors_sign_and_verify() {
    let vectors = vectors();
    for case in vectors["nopos"].as_array().unwrap() {
        let secrets: Vec<Secret> = case["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| Secret::new(s.as_str().unwrap()).unwrap())
            .collect();
        let ts = case["timestamp"].as_i64().unwrap();
        let body = body_of(case);
        let expected = case["header"].as_str().unwrap();
        assert_eq!(sign_nopos(&secrets, at(ts), &body).unwrap(), expected);

        // Any one of the secrets verifies the header on its own (receiver mid-rotation).
        for (i, secret) in secrets.iter().enumerate() {
            let map = headers(&[("X-NoPOS-Signature", expected)]);
            let verified = Verifier::new([secret.clone()])
                .verify(&map, &body, at(ts))
                .unwrap_or_else(|e| panic!("secret {i}: {e}"));
            assert_eq!(verified.scheme, Scheme::NoPos);
        }
    }
}

#[test]
fn stripe_vector_signs_and_verifies() {
    let vectors = vectors();
    let case = &vectors["stripe"][0];
    let secret = Secret::from_provider(case["secret"].as_str().unwrap()).unwrap();
    let ts = case["timestamp"].as_i64().unwrap();
    let body = body_of(case);
    let expected = case["header"].as_str().unwrap();
    // Same construction as NoPOS: the NoPOS signer produces Stripe's header.
    assert_eq!(sign_nopos([&secret], at(ts), &body).unwrap(), expected);
    let map = headers(&[("Stripe-Signature", expected)]);
    let verifier = Verifier::for_scheme(Scheme::Stripe, [secret]);
    assert_eq!(
        verifier.verify(&map, &body, at(ts)).unwrap().scheme,
        Scheme::Stripe
    );
    // A Stripe-only verifier ignores NoPOS headers.
    let map = headers(&[("x-nopos-signature", expected)]);
    assert_eq!(
        verifier.verify(&map, &body, at(ts)),
        Err(VerifyError::MissingSignature)
    );
}

#[test]
fn github_and_shopify_vectors_verify() {
    let vectors = vectors();
    for (scheme, key, header) in [
        (Scheme::GitHub, "github", "X-Hub-Signature-256"),
        (Scheme::Shopify, "shopify", "X-Shopify-Hmac-Sha256"),
    ] {
        let case = &vectors[key][0];
        let secret = Secret::from_provider(case["secret"].as_str().unwrap()).unwrap();
        let body = body_of(case);
        let map = headers(&[(header, case["header"].as_str().unwrap())]);
        let verifier = Verifier::for_scheme(scheme, [secret]);
        // No timestamp in these schemes: any `now` works.
        let verified = verifier.verify(&map, &body, at(0)).unwrap();
        assert_eq!(verified.scheme, scheme);
        assert_eq!(verified.timestamp, None);
        let mut tampered = body.clone();
        tampered.push(b' ');
        assert_eq!(
            verifier.verify(&map, &tampered, at(0)),
            Err(VerifyError::NoMatchingSignature { scheme })
        );
    }
}

const BODY: &[u8] = br#"{"id":"evt_1","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{"amount":125.50}}"#;

fn now() -> OffsetDateTime {
    at(1_731_234_600)
}

fn signed(secrets: &[&Secret], when: OffsetDateTime) -> HeaderMap {
    let mut map = HeaderMap::new();
    sign(secrets.iter().copied(), "evt_1", when, BODY)
        .unwrap()
        .insert_into(&mut map);
    map
}

#[test]
fn each_failure_has_its_own_error() {
    let secret = Secret::generate();
    let verifier = Verifier::new([secret.clone()]);
    let map = signed(&[&secret], now());
    assert!(verifier.verify(&map, BODY, now()).is_ok());

    assert_eq!(
        verifier.verify(&HeaderMap::new(), BODY, now()),
        Err(VerifyError::MissingSignature)
    );
    let mut tampered = BODY.to_vec();
    tampered[50] ^= 1;
    assert!(matches!(
        verifier.verify(&map, &tampered, now()),
        Err(VerifyError::NoMatchingSignature { .. })
    ));
    let wrong = Verifier::new([Secret::generate()]);
    assert!(matches!(
        wrong.verify(&map, BODY, now()),
        Err(VerifyError::NoMatchingSignature {
            scheme: Scheme::NoPos
        })
    ));
    assert!(matches!(
        verifier.verify(&map, BODY, now() + Duration::seconds(301)),
        Err(VerifyError::TimestampTooOld { .. })
    ));
    assert!(matches!(
        verifier.verify(&map, BODY, now() - Duration::seconds(301)),
        Err(VerifyError::TimestampTooNew { .. })
    ));
    // Exactly at the edge of the window is accepted.
    assert!(
        verifier
            .verify(&map, BODY, now() + Duration::seconds(300))
            .is_ok()
    );
    assert!(
        verifier
            .verify(&map, BODY, now() - Duration::seconds(300))
            .is_ok()
    );
    assert_eq!(
        verifier.clone().max_body_size(10).verify(&map, BODY, now()),
        Err(VerifyError::BodyTooLarge {
            size: BODY.len(),
            limit: 10
        })
    );
    for bad in [
        "",
        "garbage",
        "t=,v1=00",
        "v1=abc",
        "t=now,v1=ab",
        "t=1731234600",
    ] {
        let map = headers(&[("x-nopos-signature", bad)]);
        assert_eq!(
            verifier.verify(&map, BODY, now()),
            Err(VerifyError::MalformedHeader {
                scheme: Scheme::NoPos
            }),
            "{bad:?}"
        );
    }
    // A Standard Webhooks header set without its id is malformed.
    let mut map = signed(&[&secret], now());
    map.remove("x-nopos-signature");
    map.remove("webhook-id");
    assert_eq!(
        verifier.verify(&map, BODY, now()),
        Err(VerifyError::MalformedHeader {
            scheme: Scheme::StandardWebhooks
        })
    );
}

#[test]
fn errors_never_contain_secrets_or_expected_signatures() {
    let secret = Secret::new("a_very_secret_value_123").unwrap();
    let map = signed(&[&secret], now());
    let good = map["x-nopos-signature"].to_str().unwrap().to_owned();
    let expected_hex = good.split("v1=").nth(1).unwrap().to_owned();
    let mut tampered = BODY.to_vec();
    tampered.push(b'\n');
    let err = Verifier::new([secret])
        .verify(&map, &tampered, now())
        .unwrap_err();
    for text in [err.to_string(), format!("{err:?}")] {
        assert!(!text.contains("a_very_secret"));
        assert!(!text.contains(&expected_hex[..16]));
    }
}

#[test]
fn both_header_families_verify_on_their_own() {
    let secret = Secret::generate();
    let verifier = Verifier::new([secret.clone()]);
    let full = signed(&[&secret], now());
    assert!(full.contains_key("webhook-signature"));

    let mut nopos_only = full.clone();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        nopos_only.remove(name);
    }
    assert_eq!(
        verifier.verify(&nopos_only, BODY, now()).unwrap().scheme,
        Scheme::NoPos
    );

    let mut standard_only = full.clone();
    standard_only.remove("x-nopos-signature");
    assert_eq!(
        verifier.verify(&standard_only, BODY, now()).unwrap().scheme,
        Scheme::StandardWebhooks
    );

    // A broken NoPOS header does not hide a valid Standard Webhooks signature.
    let mut mixed = full;
    mixed.insert("x-nopos-signature", HeaderValue::from_static("t=1,v1=00"));
    assert_eq!(
        verifier.verify(&mixed, BODY, now()).unwrap().scheme,
        Scheme::StandardWebhooks
    );
}

#[test]
fn rotation_signs_with_every_active_secret_and_either_verifies() {
    let old = Secret::new("old_secret_value_here").unwrap();
    let new = Secret::generate();
    let mut set = SecretSet::new(old.clone());
    set.rotate(new.clone(), now(), SecretSet::DEFAULT_GRACE_PERIOD);

    let active: Vec<&Secret> = set.active(now()).collect();
    let map = signed(&active, now());
    let value = map["x-nopos-signature"].to_str().unwrap();
    assert_eq!(value.matches("v1=").count(), 2);
    // Only the whsec_ secret signs Standard Webhooks.
    assert_eq!(
        map["webhook-signature"]
            .to_str()
            .unwrap()
            .matches("v1,")
            .count(),
        1
    );

    for receiver in [
        vec![old.clone()],
        vec![new.clone()],
        vec![Secret::generate(), old.clone()],
    ] {
        let verified = Verifier::new(receiver.clone())
            .verify(&map, BODY, now())
            .unwrap();
        assert_eq!(verified.secret_index, receiver.len() - 1);
    }

    // After the grace period only the new secret signs.
    let later = now() + Duration::hours(25);
    let active: Vec<&Secret> = set.active(later).collect();
    let map = signed(&active, later);
    assert!(Verifier::new([old]).verify(&map, BODY, later).is_err());
    assert!(Verifier::new([new]).verify(&map, BODY, later).is_ok());
}

#[test]
fn whitespace_case_and_unknown_entries_are_tolerated() {
    let secret = Secret::new("your_webhook_secret").unwrap();
    let good = sign_nopos([&secret], now(), BODY).unwrap();
    let good = good.to_str().unwrap();
    let v1 = good.split("v1=").nth(1).unwrap();
    let messy = format!(
        " t=1731234600 ,  v0=deadbeef, v2=abc,v1=nothex ,v1={}, v1={v1} ",
        v1.to_uppercase()
    );
    let map = headers(&[("X-NOPOS-SIGNATURE", &messy)]);
    assert!(Verifier::new([secret]).verify(&map, BODY, now()).is_ok());
}

#[test]
fn timestamp_check_can_be_widened_or_skipped_explicitly() {
    let secret = Secret::generate();
    let map = signed(&[&secret], now());
    let week_later = now() + Duration::days(7);
    let strict = Verifier::new([secret.clone()]);
    assert!(strict.verify(&map, BODY, week_later).is_err());
    assert!(
        strict
            .clone()
            .tolerance(Duration::days(8))
            .verify(&map, BODY, week_later)
            .is_ok()
    );
    assert!(
        strict
            .dangerous_skip_timestamp_check()
            .verify(&map, BODY, week_later)
            .is_ok()
    );
}

#[test]
fn invalid_message_ids_are_refused() {
    let secret = Secret::generate();
    for id in ["", "evt.1", "evt 1", "évt"] {
        assert!(sign([&secret], id, now(), BODY).is_err(), "{id:?}");
    }
    let user = Secret::new("your_webhook_secret").unwrap();
    assert!(sign_standard([&user], "evt_1", now(), BODY).is_err());
    assert!(sign_nopos([], now(), BODY).is_err());
}

fn secret_strategy() -> impl Strategy<Value = Secret> {
    prop_oneof![
        any::<[u8; 24]>().prop_map(|b| Secret::from_random_bytes(&zeroize::Zeroizing::new(b))),
        "[!-~]{16,64}".prop_map(|s| Secret::new(&s).unwrap()),
    ]
}

proptest! {
    #[test]
    fn sign_then_verify_round_trips(
        body in proptest::collection::vec(any::<u8>(), 0..4096),
        secret in secret_strategy(),
        unix in 0i64..4_000_000_000,
        skew in -300i64..=300,
    ) {
        let when = at(unix);
        let mut map = HeaderMap::new();
        sign([&secret], "evt_x", when, &body).unwrap().insert_into(&mut map);
        let verifier = Verifier::new([secret.clone()]).max_body_size(1 << 20);
        let verified = verifier.verify(&map, &body, at(unix + skew)).unwrap();
        prop_assert_eq!(verified.timestamp, Some(unix));
        if secret.is_standard_webhooks() {
            map.remove("x-nopos-signature");
            let verified = verifier.verify(&map, &body, at(unix + skew)).unwrap();
            prop_assert_eq!(verified.scheme, Scheme::StandardWebhooks);
        }
    }

    #[test]
    fn any_single_bit_flip_fails(
        body in proptest::collection::vec(any::<u8>(), 1..512),
        secret in secret_strategy(),
        bit in any::<usize>(),
        which in 0u8..3,
    ) {
        let value = sign_nopos([&secret], now(), &body).unwrap();
        let mut header = value.as_bytes().to_vec();
        let mut body = body;
        match which {
            0 => {
                let i = bit % (body.len() * 8);
                body[i / 8] ^= 1 << (i % 8);
            }
            1 => {
                // A bit of the timestamp digits ("t=" + 10 digits).
                let i = 2 + (bit / 8) % 10;
                header[i] ^= 1 << (bit % 8);
            }
            _ => {
                // A bit of the hex signature after "t=…,v1=".
                let start = header.len() - 64;
                let i = start + (bit / 8) % 64;
                header[i] ^= 1 << (bit % 8);
            }
        }
        let mut map = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_bytes(&header) {
            map.insert("x-nopos-signature", v);
        }
        let verifier = Verifier::new([secret]).dangerous_skip_timestamp_check();
        prop_assert!(verifier.verify(&map, &body, now()).is_err());
    }

    #[test]
    fn header_parsers_never_panic(
        values in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let names = [
            "x-nopos-signature", "webhook-id", "webhook-timestamp", "webhook-signature",
            "stripe-signature", "x-hub-signature-256", "x-shopify-hmac-sha256",
        ];
        let mut map = HeaderMap::new();
        for (i, value) in values.iter().enumerate() {
            if let Ok(v) = HeaderValue::from_bytes(value) {
                map.append(names[i % names.len()], v);
            }
        }
        let verifier = Verifier::new([Secret::new("your_webhook_secret").unwrap()])
            .accept(Scheme::Stripe).accept(Scheme::GitHub).accept(Scheme::Shopify);
        let _ = verifier.verify(&map, &body, now());
    }
}

#[test]
fn signature_module_reexports_header_names() {
    assert_eq!(signature::NOPOS_SIGNATURE, "x-nopos-signature");
    assert_eq!(signature::WEBHOOK_SIGNATURE, "webhook-signature");
}

#[test]
fn a_matching_signature_after_many_wrong_ones_still_verifies() {
    // Verifiers decode the first few signatures once into a buffer; the rest must still count.
    let secret = Secret::generate();
    let map = signed(&[&secret], now());
    let nopos = map["x-nopos-signature"].to_str().unwrap();
    let (t, good) = nopos.split_once(',').unwrap();
    let wrong_hex = format!("v1={}", "0".repeat(64));
    let many_nopos = format!("{t},{}", [wrong_hex.as_str(); 9].join(",")) + "," + good;
    let standard = map["webhook-signature"].to_str().unwrap();
    let wrong_b64 = format!("v1,{}=", "A".repeat(43));
    let many_standard = [wrong_b64.as_str(); 9].join(" ") + " " + standard;
    let id = map["webhook-id"].to_str().unwrap();
    let ts = map["webhook-timestamp"].to_str().unwrap();
    let verifier = Verifier::new([Secret::generate(), secret.clone()]);
    for (pairs, scheme) in [
        (
            vec![("x-nopos-signature", many_nopos.as_str())],
            Scheme::NoPos,
        ),
        (
            vec![
                ("webhook-id", id),
                ("webhook-timestamp", ts),
                ("webhook-signature", many_standard.as_str()),
            ],
            Scheme::StandardWebhooks,
        ),
    ] {
        let verified = verifier.verify(&headers(&pairs), BODY, now()).unwrap();
        assert_eq!((verified.scheme, verified.secret_index), (scheme, 1));
        let without_good = headers(&[(pairs[pairs.len() - 1].0, "v1=00")]);
        assert!(verifier.verify(&without_good, BODY, now()).is_err());
    }
    // GitHub sends one signature per header; several header values count the same way.
    let github_secret = Secret::from_provider("github-webhook-secret").unwrap();
    let mut github = HeaderMap::new();
    for _ in 0..9 {
        github.append(
            "x-hub-signature-256",
            HeaderValue::from_str(&format!("sha256={}", "0".repeat(64))).unwrap(),
        );
    }
    let mac = {
        use hmac::{Hmac, KeyInit, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"github-webhook-secret").unwrap();
        mac.update(BODY);
        hex::encode(mac.finalize().into_bytes())
    };
    github.append(
        "x-hub-signature-256",
        HeaderValue::from_str(&format!("sha256={mac}")).unwrap(),
    );
    let verified = Verifier::for_scheme(Scheme::GitHub, [github_secret])
        .verify(&github, BODY, now())
        .unwrap();
    assert_eq!(verified.scheme, Scheme::GitHub);
}

#[test]
fn standard_webhooks_headers_are_found_among_many_and_repeats_are_refused() {
    // Small maps are scanned once, large ones searched by hash: both must read the same headers.
    let secret = Secret::generate();
    let verifier = Verifier::new([secret.clone()]);
    let mut standard = signed(&[&secret], now());
    standard.remove("x-nopos-signature");
    for filler in [0, 5, 40] {
        let mut map = HeaderMap::new();
        for i in 0..filler {
            let name = HeaderName::from_bytes(format!("x-filler-{i}").as_bytes()).unwrap();
            map.insert(name, HeaderValue::from(i));
        }
        map.extend(standard.clone());
        let verified = verifier.verify(&map, BODY, now()).unwrap();
        assert_eq!(verified.scheme, Scheme::StandardWebhooks, "{filler}");

        // A second signature header with a wrong signature: the good one still counts.
        let mut two_signatures = map.clone();
        two_signatures.append(
            "webhook-signature",
            HeaderValue::from_str(&format!("v1,{}=", "A".repeat(43))).unwrap(),
        );
        assert!(
            verifier.verify(&two_signatures, BODY, now()).is_ok(),
            "{filler}"
        );

        // Two ids or two timestamps are ambiguous.
        for name in ["webhook-id", "webhook-timestamp"] {
            let mut repeated = map.clone();
            let value = repeated[name].clone();
            repeated.append(name, value);
            assert_eq!(
                verifier.verify(&repeated, BODY, now()),
                Err(VerifyError::MalformedHeader {
                    scheme: Scheme::StandardWebhooks
                }),
                "{filler} {name}"
            );
        }
    }
}

#[test]
fn timestamps_with_leading_zeros_are_signed_in_plain_decimal() {
    // Verification signs the timestamp as plain decimal whatever digits carried it; the received
    // digits are only reused when they already are exactly that.
    let secret = Secret::generate();
    let verifier = Verifier::new([secret.clone()]);
    let map = signed(&[&secret], now());
    let nopos = map["x-nopos-signature"]
        .to_str()
        .unwrap()
        .replacen("t=", "t=00", 1);
    let nopos_only = headers(&[("x-nopos-signature", &nopos)]);
    assert_eq!(
        verifier.verify(&nopos_only, BODY, now()).unwrap().scheme,
        Scheme::NoPos
    );
    let mut standard = map.clone();
    standard.remove("x-nopos-signature");
    let padded = format!("0{}", standard["webhook-timestamp"].to_str().unwrap());
    standard.insert("webhook-timestamp", HeaderValue::from_str(&padded).unwrap());
    assert_eq!(
        verifier.verify(&standard, BODY, now()).unwrap().scheme,
        Scheme::StandardWebhooks
    );
}
