//! Signing and verification against the floor (raw SHA-256 of the body) and against the
//! `standardwebhooks` crate, for 64 B, 1 KiB, 16 KiB and 256 KiB bodies.
//!
//! Run with `cargo bench --bench signatures`. After criterion has measured everything, the binary
//! reads criterion's median estimates back and prints a table of ns per operation, the ratio to raw
//! SHA-256 of the same body, and how much faster our verify is than `standardwebhooks` verify
//! (DESIGN §8, issue 3 targets). It then prints the same ratios measured a second way, in short
//! interleaved batches, which load from other processes on a shared machine cannot skew.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderValue};
use nopos_webhooks::signature::{
    NOPOS_SIGNATURE, WEBHOOK_ID, WEBHOOK_SIGNATURE, WEBHOOK_TIMESTAMP, sign_nopos, sign_standard,
};
use nopos_webhooks::{Secret, Verifier};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// Body sizes measured, with the label used in group names and the table.
const SIZES: [(usize, &str); 4] = [
    (64, "64B"),
    (1024, "1KiB"),
    (16 * 1024, "16KiB"),
    (256 * 1024, "256KiB"),
];

/// A fixed `whsec_` secret, so that both header families and `standardwebhooks` sign with it.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const MESSAGE_ID: &str = "evt_01JCDQ8Z6V4Y7K9M2N3P5R7T9W";

/// Benchmark names inside each size's group, in table order.
const SHA256: &str = "sha256";
const NOPOS_SIGN: &str = "nopos_sign";
const NOPOS_VERIFY: &str = "nopos_verify";
const STANDARD_SIGN: &str = "standard_sign";
const STANDARD_VERIFY: &str = "standard_verify";
const STDWH_SIGN: &str = "standardwebhooks_sign";
const STDWH_VERIFY: &str = "standardwebhooks_verify";

/// A JSON-looking ASCII body of exactly `len` bytes (`standardwebhooks` requires UTF-8).
fn body(len: usize) -> Vec<u8> {
    let mut body = br#"{"id":"evt_1","type":"transaction.completed","data":{"note":""#.to_vec();
    let filler = b"abcdefghijklmnopqrstuvwxyz0123456789";
    while body.len() + 3 < len {
        body.push(filler[body.len() % filler.len()]);
    }
    body.extend_from_slice(br#""}}"#);
    body.truncate(len);
    body
}

fn group_name(label: &str) -> String {
    format!("signatures_{label}")
}

fn bench_size(c: &mut Criterion, len: usize, label: &str) {
    let body = body(len);
    assert_eq!(body.len(), len);
    let secret = Secret::new(SECRET).expect("valid secret");
    let verifier = Verifier::new([secret.clone()]);
    let theirs = standardwebhooks::Webhook::new(SECRET).expect("valid secret");

    let mut group = c.benchmark_group(group_name(label));
    group.throughput(Throughput::Bytes(u64::try_from(len).expect("fits")));

    group.bench_function(SHA256, |b| b.iter(|| Sha256::digest(black_box(&body[..]))));

    // Our side reads no clock: sign and verify at one fixed instant.
    let now = OffsetDateTime::from_unix_timestamp(1_731_234_600).expect("valid time");
    group.bench_function(NOPOS_SIGN, |b| {
        b.iter(|| sign_nopos([black_box(&secret)], now, black_box(&body)));
    });
    let mut nopos_headers = HeaderMap::new();
    nopos_headers.insert(
        NOPOS_SIGNATURE,
        sign_nopos([&secret], now, &body).expect("signs"),
    );
    group.bench_function(NOPOS_VERIFY, |b| {
        b.iter(|| {
            let verified = verifier.verify(black_box(&nopos_headers), black_box(&body), now);
            assert!(verified.is_ok());
            verified
        });
    });

    group.bench_function(STANDARD_SIGN, |b| {
        b.iter(|| sign_standard([black_box(&secret)], MESSAGE_ID, now, black_box(&body)));
    });
    let standard_headers = standard_header_map(&secret, now, &body);
    group.bench_function(STANDARD_VERIFY, |b| {
        b.iter(|| {
            let verified = verifier.verify(black_box(&standard_headers), black_box(&body), now);
            assert!(verified.is_ok());
            verified
        });
    });

    bench_standardwebhooks(&mut group, &theirs, &secret, &body);
    group.finish();
}

/// `standardwebhooks` checks the timestamp against the wall clock, so its headers are signed just
/// before each measurement (one measurement is far shorter than its 5-minute window).
fn bench_standardwebhooks(
    group: &mut BenchmarkGroup<'_, WallTime>,
    theirs: &standardwebhooks::Webhook,
    secret: &Secret,
    body: &[u8],
) {
    let timestamp = OffsetDateTime::now_utc().unix_timestamp();
    group.bench_function(STDWH_SIGN, |b| {
        b.iter(|| theirs.sign(MESSAGE_ID, timestamp, black_box(body)));
    });
    group.bench_function(STDWH_VERIFY, |b| {
        let headers = standard_header_map(secret, OffsetDateTime::now_utc(), body);
        b.iter(|| {
            let verified = theirs.verify(black_box(body), black_box(&headers));
            assert!(verified.is_ok());
            verified
        });
    });
}

/// A header map with only the three `webhook-*` headers, as this crate signs them.
fn standard_header_map(secret: &Secret, now: OffsetDateTime, body: &[u8]) -> HeaderMap {
    let [id, ts, sig] = sign_standard([secret], MESSAGE_ID, now, body).expect("signs");
    let mut headers = HeaderMap::new();
    headers.insert(WEBHOOK_ID, id);
    headers.insert(WEBHOOK_TIMESTAMP, ts);
    headers.insert(WEBHOOK_SIGNATURE, sig);
    headers
}

/// Where criterion writes its estimates, resolved as criterion does: `$CRITERION_HOME`, else
/// `$CARGO_TARGET_DIR/criterion`, else this package's `target/criterion`.
fn criterion_home() -> PathBuf {
    if let Some(home) = std::env::var_os("CRITERION_HOME") {
        return PathBuf::from(home);
    }
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/criterion"),
        |dir| PathBuf::from(dir).join("criterion"),
    )
}

/// The median (ns) criterion estimated for one benchmark in this run; `None` when it was not
/// measured in this run (filtered out, or a `--test` run) so a stale value is never shown.
fn median_ns(home: &Path, label: &str, bench: &str, since: SystemTime) -> Option<f64> {
    let path = home
        .join(group_name(label))
        .join(bench)
        .join("new/estimates.json");
    let modified = std::fs::metadata(&path).and_then(|m| m.modified()).ok()?;
    if modified < since {
        return None;
    }
    let estimates: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
    estimates["median"]["point_estimate"].as_f64()
}

/// Prints median ns per operation, the ratio to raw SHA-256 of the same body, and the speed-up of
/// our verify over `standardwebhooks` verify; then whether each issue 3 target is met. Returns the
/// body sizes this run measured.
fn print_table(since: SystemTime) -> Vec<(usize, &'static str)> {
    let home = criterion_home();
    let rows = [
        (SHA256, "raw SHA-256 (sha2)"),
        (NOPOS_SIGN, "nopos sign"),
        (NOPOS_VERIFY, "nopos verify"),
        (STANDARD_SIGN, "standard-webhooks sign"),
        (STANDARD_VERIFY, "standard-webhooks verify"),
        (STDWH_SIGN, "`standardwebhooks` sign"),
        (STDWH_VERIFY, "`standardwebhooks` verify"),
    ];
    let mut checks = Vec::new();
    println!();
    println!("Median ns per operation (criterion), ratio to raw SHA-256 of the same body,");
    println!("and speed-up of our verify over the `standardwebhooks` crate's verify:");
    println!();
    println!("| body | operation | median ns | vs raw SHA-256 | vs `standardwebhooks` verify |");
    println!("|---|---|---:|---:|---:|");
    let mut measured = Vec::new();
    for (len, label) in SIZES {
        let estimate = |bench| median_ns(&home, label, bench, since);
        let floor = estimate(SHA256);
        let theirs_verify = estimate(STDWH_VERIFY);
        if floor.is_some() {
            measured.push((len, label));
        }
        for (bench, name) in rows {
            let Some(ns) = estimate(bench) else {
                continue;
            };
            let ratio = floor.map_or_else(|| "—".to_owned(), |f| format!("{:.2}×", ns / f));
            let speedup = match (bench, theirs_verify) {
                (NOPOS_VERIFY | STANDARD_VERIFY, Some(theirs)) => {
                    format!("{:.1}× faster", theirs / ns)
                }
                _ => String::new(),
            };
            println!("| {label} | {name} | {ns:.1} | {ratio} | {speedup} |");
            checks.extend(target_checks(len, label, bench, ns, floor, theirs_verify));
        }
    }
    if checks.is_empty() {
        println!("\n(no estimates from this run; nothing to compare)");
        return measured;
    }
    println!();
    println!("Targets (issue 3):");
    for check in &checks {
        println!("  {check}");
    }
    measured
}

/// The issue 3 targets that apply to one measurement: at 1 KiB, verify ≤ 1.35× and sign ≤ 1.25×
/// raw SHA-256; from 1 KiB up, verify ≥ 5× faster than `standardwebhooks`.
fn target_checks(
    len: usize,
    label: &str,
    bench: &str,
    ns: f64,
    floor: Option<f64>,
    theirs_verify: Option<f64>,
) -> Vec<String> {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut checks = Vec::new();
    let is_verify = matches!(bench, NOPOS_VERIFY | STANDARD_VERIFY);
    let is_sign = matches!(bench, NOPOS_SIGN | STANDARD_SIGN);
    if let (1024, Some(floor)) = (len, floor) {
        let ratio = ns / floor;
        if is_verify {
            checks.push(format!(
                "{label} {bench} ≤ 1.35× SHA-256: {ratio:.2}× {}",
                verdict(ratio <= 1.35)
            ));
        } else if is_sign {
            checks.push(format!(
                "{label} {bench} ≤ 1.25× SHA-256: {ratio:.2}× {}",
                verdict(ratio <= 1.25)
            ));
        }
    }
    if let (true, true, Some(theirs)) = (len >= 1024, is_verify, theirs_verify) {
        let speedup = theirs / ns;
        checks.push(format!(
            "{label} {bench} ≥ 5× faster than standardwebhooks: {speedup:.1}× {}",
            verdict(speedup >= 5.0)
        ));
    }
    checks
}

/// Times `n` calls of `op`, in ns per call.
fn batch_ns(n: u32, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..n {
        op();
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(n)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Rounds of the paired check: odd, so the median is one of them.
const PAIRED_ROUNDS: usize = 101;

/// For each of `ops` (each times a batch of `n` operations and returns ns per operation), the
/// median over [`PAIRED_ROUNDS`] rounds of its time divided by the mean of raw SHA-256 batches of
/// `body` timed just before and just after it.
fn paired_medians(body: &[u8], n: u32, ops: &mut [Box<dyn FnMut() -> f64 + '_>]) -> Vec<f64> {
    let sha = || {
        batch_ns(n, || {
            black_box(Sha256::digest(black_box(body)));
        })
    };
    let mut ratios = vec![Vec::with_capacity(PAIRED_ROUNDS); ops.len()];
    for _ in 0..PAIRED_ROUNDS {
        for (op, ratios) in ops.iter_mut().zip(&mut ratios) {
            let before = sha();
            let ns = op();
            let after = sha();
            ratios.push(ns / f64::midpoint(before, after));
        }
    }
    ratios.iter_mut().map(|ratios| median(ratios)).collect()
}

/// A cross-check that other work on a shared machine cannot skew: criterion measures each
/// benchmark for seconds, one after the other, so a neighbour's burst can slow one of them and not
/// the raw SHA-256 it is divided by. Here each operation runs in short batches interleaved with raw
/// SHA-256 batches of the same body; each round gives one ratio (the operation over the mean of
/// the SHA-256 batches around it), and the median over rounds is printed.
fn print_paired_ratios(sizes: &[(usize, &str)]) {
    println!();
    println!(
        "Paired check: median over {PAIRED_ROUNDS} rounds of (operation ÷ raw SHA-256), timed in"
    );
    println!("interleaved batches so that load from other processes hits both alike:");
    println!();
    println!(
        "| body | nopos sign | nopos verify | standard-webhooks sign | standard-webhooks verify | `standardwebhooks` verify | our verify vs `standardwebhooks` (nopos / standard) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for &(len, label) in sizes {
        let body = body(len);
        let secret = Secret::new(SECRET).expect("valid secret");
        let verifier = Verifier::new([secret.clone()]);
        let theirs = standardwebhooks::Webhook::new(SECRET).expect("valid secret");
        let now = OffsetDateTime::from_unix_timestamp(1_731_234_600).expect("valid time");
        let mut nopos_headers = HeaderMap::new();
        nopos_headers.insert(
            NOPOS_SIGNATURE,
            sign_nopos([&secret], now, &body).expect("signs"),
        );
        let standard_headers = standard_header_map(&secret, now, &body);
        // Signed at the wall clock for `standardwebhooks`; this check takes a few seconds.
        let their_headers = standard_header_map(&secret, OffsetDateTime::now_utc(), &body);
        // About 50 µs of hashing per SHA-256 batch.
        let n = u32::try_from((64 * 1024 / len).clamp(1, 1000)).expect("small");
        let mut ops: [Box<dyn FnMut() -> f64>; 5] = [
            Box::new(|| {
                batch_ns(n, || {
                    drop(black_box(sign_nopos(
                        [black_box(&secret)],
                        now,
                        black_box(&body),
                    )));
                })
            }),
            Box::new(|| {
                batch_ns(n, || {
                    assert!(
                        verifier
                            .verify(black_box(&nopos_headers), &body, now)
                            .is_ok()
                    );
                })
            }),
            Box::new(|| {
                batch_ns(n, || {
                    drop(black_box(sign_standard([&secret], MESSAGE_ID, now, &body)));
                })
            }),
            Box::new(|| {
                batch_ns(n, || {
                    assert!(
                        verifier
                            .verify(black_box(&standard_headers), &body, now)
                            .is_ok()
                    );
                })
            }),
            Box::new(|| {
                batch_ns(n, || {
                    assert!(theirs.verify(black_box(&body), &their_headers).is_ok());
                })
            }),
        ];
        let medians = paired_medians(&body, n, &mut ops);
        let cells: Vec<String> = medians.iter().map(|m| format!("{m:.2}×")).collect();
        println!(
            "| {label} | {} | {:.1}× / {:.1}× faster |",
            cells.join(" | "),
            medians[4] / medians[1],
            medians[4] / medians[3]
        );
    }
}

/// The least that Standard Webhooks signing of 1 KiB can cost on the crate's required
/// dependencies, as paired ratios to raw SHA-256 (measured as in [`print_paired_ratios`]): the
/// HMAC-SHA256 of `id.timestamp.body` with the `hmac` crate, keyed once as our signer is, and
/// that HMAC plus the three `http::HeaderValue`s the output is made of, built from bytes that need
/// no encoding. Our `sign_standard`, which also encodes the tag and the timestamp and checks the
/// id, runs in the same rounds.
fn print_standard_sign_floor() {
    let body = body(1024);
    let secret = Secret::new(SECRET).expect("valid secret");
    let now = OffsetDateTime::from_unix_timestamp(1_731_234_600).expect("valid time");
    // The key's value does not change the cost: any key up to a block is hashed the same way.
    let mac = Hmac::<Sha256>::new_from_slice(&[7; 24]).expect("any key length");
    let timestamp = b"1731234600";
    let mut signature_bytes = b"v1,".to_vec();
    signature_bytes.resize(b"v1,".len() + 44, b'A');
    let n = 64;
    let hmac = || {
        let mut mac = mac.clone();
        for part in [
            MESSAGE_ID.as_bytes(),
            b".",
            timestamp,
            b".",
            black_box(&body[..]),
        ] {
            mac.update(part);
        }
        mac.finalize().into_bytes()
    };
    let mut ops: [Box<dyn FnMut() -> f64>; 3] = [
        Box::new(|| {
            batch_ns(n, || {
                black_box(hmac());
            })
        }),
        Box::new(|| {
            batch_ns(n, || {
                let tag = black_box(hmac());
                let id = HeaderValue::from_bytes(black_box(MESSAGE_ID.as_bytes()));
                let timestamp = HeaderValue::from_bytes(black_box(timestamp));
                let signature = HeaderValue::try_from(black_box(signature_bytes.clone()));
                drop(black_box((tag, id, timestamp, signature)));
            })
        }),
        Box::new(|| {
            batch_ns(n, || {
                drop(black_box(sign_standard([&secret], MESSAGE_ID, now, &body)));
            })
        }),
    ];
    let medians = paired_medians(&body, n, &mut ops);
    println!();
    println!(
        "Standard Webhooks signing of 1 KiB on the required crates, paired medians to raw SHA-256: \
         HMAC (`hmac`) {:.2}×, HMAC and three `http` header values {:.2}× (the floor), our \
         `sign_standard` {:.2}×",
        medians[0], medians[1], medians[2]
    );
}

fn main() {
    let since = SystemTime::now();
    let mut criterion = Criterion::default().configure_from_args();
    for (len, label) in SIZES {
        bench_size(&mut criterion, len, label);
    }
    criterion.final_summary();
    // `--list`, `--test` and `--profile-time` runs write no fresh estimates; `median_ns` skips
    // stale ones, so this prints only what this run measured.
    let measured = print_table(since);
    if !measured.is_empty() {
        print_paired_ratios(&measured);
        if measured.iter().any(|&(len, _)| len == 1024) {
            print_standard_sign_floor();
        }
    }
}
