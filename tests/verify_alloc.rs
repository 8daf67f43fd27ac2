//! `Verifier::verify` allocates nothing: a counting global allocator proves it for every scheme,
//! on success and on each failure path.
//!
//! Only allocations made on this test's own thread, inside [`allocations_during`], are counted, so
//! the test harness (other threads, output capture) cannot disturb the count.
#![allow(unsafe_code)] // Implementing `GlobalAlloc` is unsafe by definition.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use nopos_webhooks::signature::{sign, sign_nopos};
use nopos_webhooks::{Scheme, Secret, Verifier, VerifyError};
use time::{Duration, OffsetDateTime};

/// Forwards to the system allocator and counts allocations while this thread asks it to.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn record_allocation() {
    // `try_with`: the allocator can run while thread-locals are being torn down.
    let counting = COUNTING.try_with(Cell::get).unwrap_or(false);
    if counting {
        let _ = ALLOCATIONS.try_with(|count| count.set(count.get() + 1));
    }
}

// SAFETY: every call is forwarded unchanged to `System`, which upholds `GlobalAlloc`'s contract;
// the counting touches only const-initialized thread-locals, which never allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as this method.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as this method.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        record_allocation();
        // SAFETY: same contract as this method.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as this method.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f`, returning its result and the number of heap allocations it made on this thread.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (usize, R) {
    ALLOCATIONS.with(|count| count.set(0));
    COUNTING.with(|counting| counting.set(true));
    let result = f();
    COUNTING.with(|counting| counting.set(false));
    (ALLOCATIONS.with(Cell::get), result)
}

const BODY: &[u8] = br#"{"id":"evt_1","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{"amount":125.50}}"#;

fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(1_731_234_600).unwrap()
}

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    headers
}

fn body_mac(secret: &str) -> [u8; 32] {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(BODY);
    mac.finalize().into_bytes().into()
}

/// One verification to run under the counter, with the result it must give.
struct Case {
    name: &'static str,
    verifier: Verifier,
    headers: HeaderMap,
    body: Vec<u8>,
    now: OffsetDateTime,
    expected: Result<Scheme, VerifyError>,
}

fn cases() -> Vec<Case> {
    let secret = Secret::from_random_bytes(&zeroize::Zeroizing::new([42; 24]));
    let other = Secret::generate();
    let verifier = Verifier::new([other.clone(), secret.clone()]);
    let mut signed = HeaderMap::new();
    sign([&secret], "evt_1", now(), BODY)
        .unwrap()
        .insert_into(&mut signed);
    let nopos_value = signed["x-nopos-signature"].to_str().unwrap().to_owned();
    let id = signed["webhook-id"].to_str().unwrap().to_owned();
    let ts = signed["webhook-timestamp"].to_str().unwrap().to_owned();
    let standard_sig = signed["webhook-signature"].to_str().unwrap().to_owned();
    let nopos = map(&[("x-nopos-signature", &nopos_value)]);
    let standard = map(&[
        ("webhook-id", &id),
        ("webhook-timestamp", &ts),
        ("webhook-signature", &standard_sig),
    ]);
    let wrong_hex = format!("v1={}", "0".repeat(64));
    let crowded_nopos = format!("t={ts},{}", [wrong_hex.as_str(); 9].join(","));
    let crowded_good = format!("{crowded_nopos},{}", nopos_value.split_once(',').unwrap().1);
    let wrong_b64 = format!("v1,{}=", "A".repeat(43));

    let stripe_secret = "whsec_stripe_test_secret";
    let stripe = Verifier::for_scheme(
        Scheme::Stripe,
        [Secret::from_provider(stripe_secret).unwrap()],
    );
    let stripe_value = sign_nopos(
        [&Secret::from_provider(stripe_secret).unwrap()],
        now(),
        BODY,
    )
    .unwrap()
    .to_str()
    .unwrap()
    .to_owned();
    let github_secret = "github-webhook-secret";
    let github = Verifier::for_scheme(
        Scheme::GitHub,
        [Secret::from_provider(github_secret).unwrap()],
    );
    let github_value = format!("sha256={}", hex::encode(body_mac(github_secret)));
    let shopify_secret = "shpss_shopify_app_secret";
    let shopify = Verifier::for_scheme(
        Scheme::Shopify,
        [Secret::from_provider(shopify_secret).unwrap()],
    );
    let shopify_value = base64::engine::general_purpose::STANDARD.encode(body_mac(shopify_secret));

    let case = |name, verifier: &Verifier, headers, expected| Case {
        name,
        verifier: verifier.clone(),
        headers,
        body: BODY.to_vec(),
        now: now(),
        expected,
    };
    let malformed = |scheme| Err(VerifyError::MalformedHeader { scheme });
    let no_match = |scheme| Err(VerifyError::NoMatchingSignature { scheme });
    let too_old = |scheme| Err(VerifyError::TimestampTooOld { scheme });
    let too_new = |scheme| Err(VerifyError::TimestampTooNew { scheme });
    let mut cases = vec![
        // Success, every scheme.
        case("nopos", &verifier, nopos.clone(), Ok(Scheme::NoPos)),
        case(
            "standard webhooks",
            &verifier,
            standard.clone(),
            Ok(Scheme::StandardWebhooks),
        ),
        case(
            "both families",
            &verifier,
            signed.clone(),
            Ok(Scheme::NoPos),
        ),
        case(
            "nopos, match after more signatures than the buffer holds",
            &verifier,
            map(&[("x-nopos-signature", &crowded_good)]),
            Ok(Scheme::NoPos),
        ),
        case(
            "standard, match after more signatures than the buffer holds",
            &verifier,
            map(&[
                ("webhook-id", &id),
                ("webhook-timestamp", &ts),
                (
                    "webhook-signature",
                    &format!("{} {standard_sig}", [wrong_b64.as_str(); 9].join(" ")),
                ),
            ]),
            Ok(Scheme::StandardWebhooks),
        ),
        case(
            "stripe",
            &stripe,
            map(&[("stripe-signature", &stripe_value)]),
            Ok(Scheme::Stripe),
        ),
        case(
            "github",
            &github,
            map(&[("x-hub-signature-256", &github_value)]),
            Ok(Scheme::GitHub),
        ),
        case(
            "shopify",
            &shopify,
            map(&[("x-shopify-hmac-sha256", &shopify_value)]),
            Ok(Scheme::Shopify),
        ),
        // Failure paths.
        case(
            "missing signature",
            &verifier,
            map(&[("content-type", "application/json")]),
            Err(VerifyError::MissingSignature),
        ),
        case(
            "nopos without timestamp",
            &verifier,
            map(&[("x-nopos-signature", &wrong_hex)]),
            malformed(Scheme::NoPos),
        ),
        case(
            "nopos without a well-formed signature",
            &verifier,
            map(&[("x-nopos-signature", &format!("t={ts},v1=zz"))]),
            malformed(Scheme::NoPos),
        ),
        case(
            "nopos, no signature matches",
            &verifier,
            map(&[("x-nopos-signature", &crowded_nopos)]),
            no_match(Scheme::NoPos),
        ),
        case(
            "standard without webhook-id",
            &verifier,
            map(&[
                ("webhook-timestamp", &ts),
                ("webhook-signature", &standard_sig),
            ]),
            malformed(Scheme::StandardWebhooks),
        ),
        case(
            "standard, no signature matches",
            &verifier,
            map(&[
                ("webhook-id", "evt_2"),
                ("webhook-timestamp", &ts),
                ("webhook-signature", &standard_sig),
            ]),
            no_match(Scheme::StandardWebhooks),
        ),
        case(
            "stripe, no signature matches",
            &stripe,
            map(&[("stripe-signature", &nopos_value)]),
            no_match(Scheme::Stripe),
        ),
        case(
            "github without its prefix",
            &github,
            map(&[("x-hub-signature-256", &hex::encode(body_mac(github_secret)))]),
            malformed(Scheme::GitHub),
        ),
        case(
            "github, no signature matches",
            &github,
            map(&[("x-hub-signature-256", &format!("sha256={}", "0".repeat(64)))]),
            no_match(Scheme::GitHub),
        ),
        case(
            "shopify, not base64",
            &shopify,
            map(&[("x-shopify-hmac-sha256", "not base64!")]),
            malformed(Scheme::Shopify),
        ),
        case(
            "shopify, no signature matches",
            &shopify,
            map(&[("x-shopify-hmac-sha256", &format!("{}=", "A".repeat(43)))]),
            no_match(Scheme::Shopify),
        ),
    ];
    for (scheme, headers) in [
        (Scheme::NoPos, &nopos),
        (Scheme::StandardWebhooks, &standard),
    ] {
        cases.push(Case {
            now: now() + Duration::minutes(10),
            ..case("too old", &verifier, headers.clone(), too_old(scheme))
        });
        cases.push(Case {
            now: now() - Duration::minutes(10),
            ..case("too new", &verifier, headers.clone(), too_new(scheme))
        });
    }
    cases.push(Case {
        body: vec![b' '; verifier.body_limit() + 1],
        ..case(
            "body too large",
            &verifier,
            signed.clone(),
            Err(VerifyError::BodyTooLarge {
                size: verifier.body_limit() + 1,
                limit: verifier.body_limit(),
            }),
        )
    });
    cases
}

#[test]
fn the_counter_sees_allocations() {
    let (count, vec) = allocations_during(|| vec![1u8; 100]);
    assert!(count >= 1, "the counting allocator is not in use");
    drop(vec);
    let (count, ()) = allocations_during(|| ());
    assert_eq!(count, 0);
}

#[test]
fn verify_allocates_nothing_on_any_path() {
    for case in cases() {
        // The first call is counted too: nothing is allocated lazily either.
        let (count, result) =
            allocations_during(|| case.verifier.verify(&case.headers, &case.body, case.now));
        assert_eq!(
            result.map(|verified| verified.scheme),
            case.expected,
            "{}",
            case.name
        );
        assert_eq!(count, 0, "{}: {count} allocations", case.name);
    }
}
