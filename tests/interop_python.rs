//! Interop with real third-party verifiers: the Python packages `stripe` and `standardwebhooks`
//! verify headers this crate produced, and this crate verifies headers they produced.
//!
//! The Python side is `tests/interop/verifiers.py`, run with the interpreter at
//! `$NOPOS_WEBHOOKS_PYTHON` (`.ci/run` sets it to the venv it builds from
//! `tests/interop/requirements.txt`), else `.venv/bin/python` in the repository root. Without
//! either the tests print a notice and pass; with `$NOPOS_WEBHOOKS_PYTHON` set, a missing
//! interpreter is a failure.
//!
//! The Python verifiers read the wall clock, so the headers they check are signed at
//! `OffsetDateTime::now_utc()`; everything this crate verifies is checked at the timestamp it was
//! signed with.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use http::{HeaderMap, HeaderName, HeaderValue};
use nopos_webhooks::signature::{sign_nopos, sign_standard};
use nopos_webhooks::{Scheme, Secret, Verifier, VerifyError};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

/// A real envelope with non-ASCII text: both libraries sign the UTF-8 encoding of a `str`.
const BODY: &str = r#"{"id":"evt_01JCDQ8Z6V4Y7K9M2N3P5R7T9W","type":"customer.created","created_at":"2024-11-10T10:30:00Z","data":{"customer_id":"cust_123456","name":"Zoë Café ☕","amount":125.50}}"#;
const MESSAGE_ID: &str = "evt_01JCDQ8Z6V4Y7K9M2N3P5R7T9W";

/// Writes to the real stderr, past the test harness's output capture, so the line shows.
fn notice(message: &str) {
    let _ = writeln!(std::io::stderr(), "interop_python: {message}");
}

/// The interpreter to use, or `None` (after printing why) to skip.
fn python() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NOPOS_WEBHOOKS_PYTHON").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "NOPOS_WEBHOOKS_PYTHON is set to {}, which does not exist",
            path.display()
        );
        return Some(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if venv.exists() {
        return Some(venv);
    }
    notice(
        "skipped: no Python venv (set NOPOS_WEBHOOKS_PYTHON or create .venv with \
         tests/interop/requirements.txt; .ci/run does both)",
    );
    None
}

/// Runs `cases` through tests/interop/verifiers.py and returns one result per case.
fn run_python(python: &Path, cases: &[Value]) -> Vec<Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/verifiers.py");
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", python.display()));
    let request = serde_json::to_vec(&json!({ "cases": cases })).unwrap();
    child.stdin.take().unwrap().write_all(&request).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{} failed ({}):\n{}",
        script.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let response: Value = serde_json::from_slice(&output.stdout).unwrap();
    notice(&format!("ran against {}", response["versions"]));
    let results = response["results"].as_array().unwrap().clone();
    assert_eq!(results.len(), cases.len());
    results
}

fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn text(value: &HeaderValue) -> &str {
    value.to_str().unwrap()
}

fn unix(at: OffsetDateTime) -> i64 {
    at.unix_timestamp()
}

#[test]
fn python_verifiers_accept_what_this_crate_signs() {
    let Some(python) = python() else { return };
    let now = OffsetDateTime::now_utc();
    let generated = Secret::from_random_bytes(&zeroize::Zeroizing::new([0x5a; 24]));
    let previous_generated = Secret::from_random_bytes(&zeroize::Zeroizing::new([0x17; 24]));
    let chosen = Secret::new("your_webhook_secret").unwrap();
    let previous_chosen = Secret::new("previous_webhook_secret").unwrap();
    let tampered = BODY.replace("125.50", "125.51");

    let nopos_generated = sign_nopos([&generated], now, BODY.as_bytes()).unwrap();
    let nopos_rotating = sign_nopos([&chosen, &previous_chosen], now, BODY.as_bytes()).unwrap();
    let stale = sign_nopos([&chosen], now - Duration::minutes(10), BODY.as_bytes()).unwrap();
    let stripe = |header: &HeaderValue, secret: &Secret, payload: &str| {
        json!({
            "op": "stripe_verify",
            "payload": payload,
            "header": text(header),
            "secret": secret.expose_secret(),
            "tolerance": 300,
        })
    };

    let standard = |secrets: &[&Secret]| {
        let [id, ts, sig] =
            sign_standard(secrets.iter().copied(), MESSAGE_ID, now, BODY.as_bytes()).unwrap();
        json!({ "webhook-id": text(&id), "webhook-timestamp": text(&ts), "webhook-signature": text(&sig) })
    };
    let standard_one = standard(&[&generated]);
    let standard_rotating = standard(&[&generated, &previous_generated]);
    let standardwebhooks = |secret: &Secret, payload: &str, headers: &Value| {
        json!({
            "op": "standardwebhooks_verify",
            "secret": secret.expose_secret(),
            "payload": payload,
            "headers": headers,
        })
    };

    // (what, case, whether the Python library must accept it)
    let cases = [
        (
            "stripe: x-nopos-signature, generated whsec_ secret",
            stripe(&nopos_generated, &generated, BODY),
            true,
        ),
        (
            "stripe: two v1 entries during a rotation, current secret",
            stripe(&nopos_rotating, &chosen, BODY),
            true,
        ),
        (
            "stripe: two v1 entries during a rotation, previous secret",
            stripe(&nopos_rotating, &previous_chosen, BODY),
            true,
        ),
        (
            "stripe: changed body",
            stripe(&nopos_generated, &generated, &tampered),
            false,
        ),
        (
            "stripe: wrong secret",
            stripe(&nopos_generated, &chosen, BODY),
            false,
        ),
        (
            "stripe: outside the 300 s tolerance",
            stripe(&stale, &chosen, BODY),
            false,
        ),
        (
            "standardwebhooks: webhook-* headers",
            standardwebhooks(&generated, BODY, &standard_one),
            true,
        ),
        (
            "standardwebhooks: two entries during a rotation, current secret",
            standardwebhooks(&generated, BODY, &standard_rotating),
            true,
        ),
        (
            "standardwebhooks: two entries during a rotation, previous secret",
            standardwebhooks(&previous_generated, BODY, &standard_rotating),
            true,
        ),
        (
            "standardwebhooks: changed body",
            standardwebhooks(&generated, &tampered, &standard_one),
            false,
        ),
        (
            "standardwebhooks: wrong secret",
            standardwebhooks(&previous_generated, BODY, &standard_one),
            false,
        ),
    ];
    let requests: Vec<Value> = cases.iter().map(|(_, case, _)| case.clone()).collect();
    let results = run_python(&python, &requests);
    for ((what, _, accept), result) in cases.iter().zip(&results) {
        assert_eq!(result["ok"].as_bool(), Some(*accept), "{what}: {result}");
    }
}

#[test]
fn this_crate_accepts_what_python_libraries_sign() {
    let Some(python) = python() else { return };
    // Checked at the signed timestamp, so this side does not depend on the clock.
    let signed_at = OffsetDateTime::from_unix_timestamp(1_731_234_600).unwrap();
    let stripe_secret = "whsec_stripe_interop_test_secret_0123";
    let generated = Secret::from_random_bytes(&zeroize::Zeroizing::new([0x5a; 24]));
    // The Standard Webhooks specification's example secret.
    let spec_secret = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();

    let results = run_python(
        &python,
        &[
            json!({ "op": "stripe_sign", "payload": BODY, "secret": stripe_secret, "timestamp": unix(signed_at) }),
            json!({
                "op": "standardwebhooks_sign", "secret": generated.expose_secret(),
                "msg_id": MESSAGE_ID, "timestamp": unix(signed_at), "payload": BODY,
            }),
            json!({
                "op": "standardwebhooks_sign", "secret": spec_secret.expose_secret(),
                "msg_id": MESSAGE_ID, "timestamp": unix(signed_at), "payload": BODY,
            }),
        ],
    );
    let stripe_header = results[0]["header"].as_str().unwrap();
    let standard_signatures = [
        (generated, results[1]["signature"].as_str().unwrap()),
        (spec_secret, results[2]["signature"].as_str().unwrap()),
    ];
    let tampered = BODY.replace("125.50", "125.51");

    // Stripe's header, under Stripe's name, checked by the Stripe profile.
    let stripe = Verifier::for_scheme(
        Scheme::Stripe,
        [Secret::from_provider(stripe_secret).unwrap()],
    );
    let map = header_map(&[("Stripe-Signature", stripe_header)]);
    let verified = stripe.verify(&map, BODY.as_bytes(), signed_at).unwrap();
    assert_eq!(verified.scheme, Scheme::Stripe);
    assert_eq!(verified.timestamp, Some(unix(signed_at)));
    assert_eq!(
        stripe.verify(&map, tampered.as_bytes(), signed_at),
        Err(VerifyError::NoMatchingSignature {
            scheme: Scheme::Stripe
        })
    );
    // The same construction is the NoPOS header: a Stripe-style signer works for NoPOS receivers.
    let nopos = Verifier::new([Secret::new(stripe_secret).unwrap()]);
    let map = header_map(&[("X-Nopos-Signature", stripe_header)]);
    assert_eq!(
        nopos
            .verify(&map, BODY.as_bytes(), signed_at)
            .unwrap()
            .scheme,
        Scheme::NoPos
    );

    for (secret, signature) in standard_signatures {
        let map = header_map(&[
            ("Webhook-Id", MESSAGE_ID),
            ("Webhook-Timestamp", &unix(signed_at).to_string()),
            ("Webhook-Signature", signature),
        ]);
        let verifier = Verifier::new([secret]);
        let verified = verifier.verify(&map, BODY.as_bytes(), signed_at).unwrap();
        assert_eq!(verified.scheme, Scheme::StandardWebhooks);
        assert_eq!(
            verifier.verify(&map, tampered.as_bytes(), signed_at),
            Err(VerifyError::NoMatchingSignature {
                scheme: Scheme::StandardWebhooks
            })
        );
    }
}
