#![cfg(feature = "axum")]
//! The axum extractor on real servers on loopback, driven by raw HTTP/1.1 requests: every outcome
//! is checked by its status code and error code, as a NoPOS sender would see it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use nopos_webhooks::tower::VerifyLayer;
use nopos_webhooks::{
    Envelope, Event, EventId, EventType, MemoryDeduplicator, ReceiveError, Secret, SecretSet,
    VerifiedEvent, Verifier, WebhookReceiver, signature,
};
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const SECRET: &str = "your_webhook_secret";

// ---------------------------------------------------------------------------------------------
// The application under test: the announcement's endpoint, recording what it processed.

#[derive(Clone)]
struct App {
    receiver: WebhookReceiver,
    processed: Arc<Mutex<Vec<String>>>,
    /// When set, processing a new event fails (and forgets the id) once.
    fail_next: Arc<Mutex<bool>>,
}

impl FromRef<App> for WebhookReceiver {
    fn from_ref(app: &App) -> WebhookReceiver {
        app.receiver.clone()
    }
}

async fn webhook(State(app): State<App>, event: VerifiedEvent) -> (StatusCode, String) {
    if event.duplicate {
        return (StatusCode::OK, format!("duplicate {}", event.id()));
    }
    if std::mem::take(&mut *app.fail_next.lock().unwrap()) {
        app.receiver.forget(event.id()).await.unwrap();
        return (StatusCode::INTERNAL_SERVER_ERROR, "failed".into());
    }
    let kind = match &event.envelope.data {
        Event::TransactionCompleted(_) => "sale",
        Event::InventoryLowStock(_) => "low stock",
        Event::PaymentSucceeded(_) => "payment",
        Event::Unknown(_) => "unknown",
        _ => "other",
    };
    app.processed
        .lock()
        .unwrap()
        .push(event.envelope.id.to_string());
    (StatusCode::OK, format!("processed {kind}"))
}

struct Server {
    addr: SocketAddr,
    app: App,
}

impl Server {
    async fn start(verifier: Verifier) -> Server {
        Server::start_with(verifier, false).await
    }

    async fn start_with(verifier: Verifier, layered: bool) -> Server {
        let receiver =
            WebhookReceiver::new(verifier).with_deduplicator(MemoryDeduplicator::default());
        let app = App {
            receiver: receiver.clone(),
            processed: Arc::default(),
            fail_next: Arc::default(),
        };
        let mut router = Router::new().route("/webhooks/nopos", post(webhook));
        if layered {
            router = router.route_layer(VerifyLayer::new(receiver));
        }
        let router = router.with_state(app.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Server { addr, app }
    }

    fn processed(&self) -> Vec<String> {
        self.app.processed.lock().unwrap().clone()
    }

    async fn post(&self, headers: &[(String, String)], body: &[u8]) -> Reply {
        send(self.addr, headers, body).await
    }
}

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client over a TCP stream, so the requests are exactly what is written here.

#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: Option<String>,
    body: String,
}

impl Reply {
    /// The `error.code` of a JSON refusal.
    fn code(&self) -> String {
        let json: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {}", self.body));
        json["error"]["code"].as_str().unwrap().to_owned()
    }

    fn assert_refused(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.code(), code, "{self:?}");
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
    }
}

async fn send(addr: SocketAddr, headers: &[(String, String)], body: &[u8]) -> Reply {
    let mut head = format!(
        "POST /webhooks/nopos HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&[name.as_str(), ": ", value, "\r\n"].concat());
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    send_raw(addr, &request).await
}

async fn send_raw(addr: SocketAddr, request: &[u8]) -> Reply {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    // The server may answer and close before reading everything (a refused oversized body), so
    // a failed write is not a test failure; the reply is what counts.
    let _ = stream.write_all(request).await;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let mut content_type = None;
    let mut chunked = false;
    for line in lines {
        let (name, value) = line.split_once(':').unwrap();
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-type" => content_type = Some(value.to_owned()),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            _ => {}
        }
    }
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        content_type,
        body: String::from_utf8(body).unwrap(),
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 2 + size + 2..];
    }
}

// ---------------------------------------------------------------------------------------------
// Deliveries.

fn delivery(event_type: &EventType) -> (EventId, Vec<u8>) {
    let at = now();
    let envelope = Envelope::new(
        EventId::generate(at),
        at,
        Event::sample(event_type).unwrap(),
    );
    (envelope.id.clone(), envelope.to_bytes().unwrap().to_vec())
}

fn sale() -> (EventId, Vec<u8>) {
    delivery(&EventType::TRANSACTION_COMPLETED)
}

/// Headers signed by the crate, as the NoPOS emitter signs them.
fn signed<'a>(
    secrets: impl IntoIterator<Item = &'a Secret> + Clone,
    id: &EventId,
    at: OffsetDateTime,
    body: &[u8],
) -> Vec<(String, String)> {
    signature::sign(secrets, id.as_str(), at, body)
        .unwrap()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect()
}

/// `x-nopos-signature` built by hand from the published construction, independent of the crate.
fn hand_signed_nopos(secret: &str, timestamp: i64, body: &[u8]) -> Vec<(String, String)> {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    let hex = hex::encode(mac.finalize().into_bytes());
    vec![(
        "x-nopos-signature".into(),
        format!("t={timestamp},v1={hex}"),
    )]
}

/// Standard Webhooks headers built by hand from the spec.
fn hand_signed_standard(
    whsec: &str,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> Vec<(String, String)> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(whsec.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = HmacSha256::new_from_slice(&key).unwrap();
    mac.update(format!("{msg_id}.{timestamp}.").as_bytes());
    mac.update(body);
    let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    vec![
        ("webhook-id".into(), msg_id.into()),
        ("webhook-timestamp".into(), timestamp.to_string()),
        ("webhook-signature".into(), format!("v1,{sig}")),
    ]
}

// ---------------------------------------------------------------------------------------------
// Tests.

#[tokio::test]
async fn valid_deliveries_are_processed_for_each_announced_type() {
    let server = Server::start(Verifier::new([secret()])).await;
    for (event_type, kind) in [
        (EventType::TRANSACTION_COMPLETED, "sale"),
        (EventType::INVENTORY_LOW_STOCK, "low stock"),
        (EventType::PAYMENT_SUCCEEDED, "payment"),
    ] {
        let (id, body) = delivery(&event_type);
        let reply = server
            .post(&signed([&secret()], &id, now(), &body), &body)
            .await;
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.body, format!("processed {kind}"));
    }
    assert_eq!(server.processed().len(), 3);
}

#[tokio::test]
async fn hand_built_signatures_verify() {
    let whsec = Secret::generate();
    let server = Server::start(Verifier::new([secret(), whsec.clone()])).await;

    let (_, body) = sale();
    let reply = server
        .post(
            &hand_signed_nopos(SECRET, now().unix_timestamp(), &body),
            &body,
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");

    let (id, body) = sale();
    let headers = hand_signed_standard(
        whsec.expose_secret(),
        id.as_str(),
        now().unix_timestamp(),
        &body,
    );
    let reply = server.post(&headers, &body).await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(server.processed().len(), 2);
}

#[tokio::test]
async fn unknown_event_types_are_accepted() {
    let server = Server::start(Verifier::new([secret()])).await;
    let at = now();
    let body = r#"{"id":"evt_future1","type":"gift_card.issued","created_at":"2024-11-10T10:30:00Z","data":{"card":"gc_1"},"extra":1}"#;
    let id = EventId::try_from("evt_future1").unwrap();
    let reply = server
        .post(
            &signed([&secret()], &id, at, body.as_bytes()),
            body.as_bytes(),
        )
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.body, "processed unknown");
}

#[tokio::test]
async fn tampered_body_is_401_invalid_signature() {
    let server = Server::start(Verifier::new([secret()])).await;
    let (id, body) = sale();
    let headers = signed([&secret()], &id, now(), &body);
    let tampered = String::from_utf8(body).unwrap().replace("125.50", "1.00");
    let reply = server.post(&headers, tampered.as_bytes()).await;
    reply.assert_refused(401, "invalid_signature");
    // Re-serialized JSON (same meaning, different bytes) is refused the same way.
    let (id, body) = sale();
    let headers = signed([&secret()], &id, now(), &body);
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let reserialized = serde_json::to_vec_pretty(&value).unwrap();
    server
        .post(&headers, &reserialized)
        .await
        .assert_refused(401, "invalid_signature");
    assert!(server.processed().is_empty());
}

#[tokio::test]
async fn wrong_secret_is_401_and_leaks_nothing() {
    let server = Server::start(Verifier::new([secret()])).await;
    let (id, body) = sale();
    let wrong = Secret::new("not_the_right_secret").unwrap();
    let at = now();
    let reply = server.post(&signed([&wrong], &id, at, &body), &body).await;
    reply.assert_refused(401, "invalid_signature");
    // The refusal names neither secret nor the signature the server expected.
    let expected = signed([&secret()], &id, at, &body);
    let expected_hex = expected[0].1.split("v1=").nth(1).unwrap();
    assert!(!reply.body.contains(SECRET));
    assert!(!reply.body.contains("not_the_right_secret"));
    assert!(!reply.body.contains(expected_hex));
    assert!(!reply.body.contains(&expected_hex[..16]));
    assert_eq!(
        reply.body,
        r#"{"error":{"code":"invalid_signature","message":"the signature does not match the body"}}"#
    );
}

#[tokio::test]
async fn stale_and_future_timestamps_are_401() {
    let server = Server::start(Verifier::new([secret()])).await;
    let (id, body) = sale();
    let stale = signed([&secret()], &id, now() - Duration::minutes(10), &body);
    server
        .post(&stale, &body)
        .await
        .assert_refused(401, "timestamp_too_old");
    let future = signed([&secret()], &id, now() + Duration::minutes(10), &body);
    server
        .post(&future, &body)
        .await
        .assert_refused(401, "timestamp_too_new");
    // Hand-built, just outside the 300 s window.
    let old = hand_signed_nopos(SECRET, now().unix_timestamp() - 400, &body);
    server
        .post(&old, &body)
        .await
        .assert_refused(401, "timestamp_too_old");
    assert!(server.processed().is_empty());
}

#[tokio::test]
async fn missing_and_malformed_headers_are_401() {
    let server = Server::start(Verifier::new([secret()])).await;
    let (_, body) = sale();
    server
        .post(&[], &body)
        .await
        .assert_refused(401, "missing_signature");
    let unrelated = vec![("x-signature".to_owned(), "abc".to_owned())];
    server
        .post(&unrelated, &body)
        .await
        .assert_refused(401, "missing_signature");
    let t = now().unix_timestamp();
    for value in [
        "garbage".to_owned(),
        "t=abc,v1=00".to_owned(),
        format!("t={t}"),
        format!("t={t},v1=not-hex"),
        "v1=deadbeef".to_owned(),
    ] {
        let headers = vec![("x-nopos-signature".to_owned(), value)];
        server
            .post(&headers, &body)
            .await
            .assert_refused(401, "malformed_signature");
    }
    // Standard Webhooks signature without its companion headers.
    let headers = vec![("webhook-signature".to_owned(), "v1,AAAA".to_owned())];
    server
        .post(&headers, &body)
        .await
        .assert_refused(401, "malformed_signature");
}

#[tokio::test]
async fn malformed_json_with_a_valid_signature_is_400() {
    let server = Server::start(Verifier::new([secret()])).await;
    let id = EventId::try_from("evt_bad").unwrap();
    for body in [
        &b"{not json"[..],
        br#"{"id":"evt_bad","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{"amount":"x"}}"#,
        br#"{"id":"no_prefix","type":"transaction.completed","created_at":"2024-11-10T10:30:00Z","data":{}}"#,
        br#"{"id":"evt_bad","type":"x.y","created_at":"2024-11-10T10:30:00Z","data":[]}"#,
    ] {
        let reply = server.post(&signed([&secret()], &id, now(), body), body).await;
        reply.assert_refused(400, "invalid_payload");
    }
    assert!(server.processed().is_empty());
}

#[tokio::test]
async fn oversized_bodies_are_413_before_they_are_read() {
    const LIMIT: usize = 4096;
    // Default limit (256 KiB): refused from the declared length; the body is never sent.
    let server = Server::start(Verifier::new([secret()])).await;
    let head = format!(
        "POST /webhooks/nopos HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nx-nopos-signature: t=1,v1=00\r\n\r\n",
        server.addr,
        256 * 1024 + 1
    );
    send_raw(server.addr, head.as_bytes())
        .await
        .assert_refused(413, "payload_too_large");

    // A small limit, a signed body one byte over it.
    let server = Server::start(Verifier::new([secret()]).max_body_size(LIMIT)).await;
    let (id, body) = sale();
    let over = pad(&body, LIMIT + 1);
    let headers = signed([&secret()], &id, now(), &over);
    server
        .post(&headers, &over)
        .await
        .assert_refused(413, "payload_too_large");

    // Chunked, with no declared length: refused while reading, at the limit.
    let chunk = vec![b'x'; LIMIT + 100];
    let mut request = format!(
        "POST /webhooks/nopos HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n\
         transfer-encoding: chunked\r\n\r\n{:x}\r\n",
        server.addr,
        chunk.len()
    )
    .into_bytes();
    request.extend_from_slice(&chunk);
    request.extend_from_slice(b"\r\n0\r\n\r\n");
    send_raw(server.addr, &request)
        .await
        .assert_refused(413, "payload_too_large");

    // Exactly at the limit is fine.
    let exact = pad(&body, LIMIT);
    let reply = server
        .post(&signed([&secret()], &id, now(), &exact), &exact)
        .await;
    assert_eq!(reply.status, 200, "{reply:?}");
}

/// `body` (a JSON object) grown to `len` bytes with whitespace before its closing brace.
fn pad(body: &[u8], len: usize) -> Vec<u8> {
    assert!(body.len() < len);
    let mut padded = body[..body.len() - 1].to_vec();
    padded.resize(len - 1, b' ');
    padded.push(b'}');
    padded
}

#[tokio::test]
async fn duplicate_delivery_is_acknowledged_and_processed_once() {
    let server = Server::start(Verifier::new([secret()])).await;
    let (id, body) = sale();
    // First attempt, then a retry of the same event: re-signed later, byte-identical body.
    let first = server
        .post(&signed([&secret()], &id, now(), &body), &body)
        .await;
    assert_eq!((first.status, first.body.as_str()), (200, "processed sale"));
    let retry = server
        .post(
            &signed([&secret()], &id, now() + Duration::seconds(1), &body),
            &body,
        )
        .await;
    assert_eq!(retry.status, 200, "{retry:?}");
    assert_eq!(retry.body, format!("duplicate {id}"));
    assert_eq!(server.processed(), vec![id.to_string()]);
}

#[tokio::test]
async fn a_failed_attempt_is_forgotten_so_the_retry_is_processed() {
    let server = Server::start(Verifier::new([secret()])).await;
    *server.app.fail_next.lock().unwrap() = true;
    let (id, body) = sale();
    let first = server
        .post(&signed([&secret()], &id, now(), &body), &body)
        .await;
    assert_eq!(first.status, 500);
    let retry = server
        .post(&signed([&secret()], &id, now(), &body), &body)
        .await;
    assert_eq!((retry.status, retry.body.as_str()), (200, "processed sale"));
    assert_eq!(server.processed(), vec![id.to_string()]);
}

#[tokio::test]
async fn rotated_secret_old_and_new_both_verify_in_the_grace_period() {
    let old = secret();
    let new = Secret::generate();
    let rotated_at = now();
    let mut emitter = SecretSet::new(old.clone());
    emitter.rotate(new.clone(), rotated_at, SecretSet::DEFAULT_GRACE_PERIOD);

    // During the grace period the emitter signs with both; receivers on either secret (or both)
    // accept.
    let only_old = Server::start(Verifier::new([old.clone()])).await;
    let only_new = Server::start(Verifier::new([new.clone()])).await;
    let both = Server::start(Verifier::new([new.clone(), old.clone()])).await;
    for server in [&only_old, &only_new, &both] {
        let (id, body) = sale();
        let headers = signed(emitter.active(now()), &id, now(), &body);
        let reply = server.post(&headers, &body).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // A receiver holding both accepts a delivery signed with only one of them.
    for secret in [&old, &new] {
        let (id, body) = sale();
        let reply = both.post(&signed([secret], &id, now(), &body), &body).await;
        assert_eq!(reply.status, 200, "{reply:?}");
    }
    // After the grace period the emitter signs with the new secret only: the old-only receiver
    // refuses (it should have been updated), the others accept.
    let after = rotated_at + SecretSet::DEFAULT_GRACE_PERIOD + Duration::minutes(1);
    let active: Vec<Secret> = emitter.active(after).cloned().collect();
    assert_eq!(active, vec![new.clone()]);
    let (id, body) = sale();
    let headers = signed(&active, &id, now(), &body);
    only_old
        .post(&headers, &body)
        .await
        .assert_refused(401, "invalid_signature");
    assert_eq!(only_new.post(&headers, &body).await.status, 200);
    assert_eq!(both.post(&headers, &body).await.status, 200);
}

#[tokio::test]
async fn with_the_layer_on_the_route_the_extractor_does_not_verify_twice() {
    let server = Server::start_with(Verifier::new([secret()]), true).await;
    let (id, body) = sale();
    let headers = signed([&secret()], &id, now(), &body);
    // Were the extractor to check again, the layer's mark would make this a duplicate.
    let reply = server.post(&headers, &body).await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "processed sale"));
    let reply = server.post(&headers, &body).await;
    assert_eq!(reply.body, format!("duplicate {id}"));
    server
        .post(&[], &body)
        .await
        .assert_refused(401, "missing_signature");
    assert_eq!(server.processed().len(), 1);
}

#[tokio::test]
async fn rejections_can_be_handled_by_the_application() {
    async fn custom(result: Result<VerifiedEvent, ReceiveError>) -> (StatusCode, String) {
        match result {
            Ok(_) => (StatusCode::OK, "ok".into()),
            Err(err) => (StatusCode::FORBIDDEN, err.code().into()),
        }
    }
    let receiver = WebhookReceiver::new(Verifier::new([secret()]));
    let router = Router::new()
        .route("/webhooks/nopos", post(custom))
        .with_state(receiver);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let reply = send(addr, &[], b"{}").await;
    assert_eq!(
        (reply.status, reply.body.as_str()),
        (403, "missing_signature")
    );
}
