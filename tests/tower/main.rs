#![cfg(feature = "tower")]
//! The tower layer in front of a plain tower service: refusals by status and error code, the
//! verified body and event passed on, duplicates marked, failed attempts forgotten.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full};
use nopos_webhooks::tower::{ResponseBody, VerifyLayer, VerifyService};
use nopos_webhooks::{
    Envelope, Event, EventId, EventPayload, EventType, MemoryDeduplicator, Secret, VerifiedEvent,
    Verifier, WebhookReceiver, signature,
};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use tower::{Layer, Service, ServiceExt, service_fn};

const SECRET: &str = "your_webhook_secret";

fn secret() -> Secret {
    Secret::new(SECRET).unwrap()
}

/// What the inner service saw: the body it received and the event in the extensions.
#[derive(Default)]
struct Seen {
    calls: Vec<(Bytes, VerifiedEvent)>,
    /// Status codes to answer with, front first; `200` when empty.
    answers: VecDeque<StatusCode>,
}

type Inner = Arc<Mutex<Seen>>;

fn service(
    receiver: WebhookReceiver,
    seen: &Inner,
) -> VerifyService<
    impl Service<
        Request<Full<Bytes>>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future: Send + 'static,
    > + Clone
    + Send
    + Sync
    + 'static,
> {
    let seen = Arc::clone(seen);
    VerifyLayer::new(receiver).layer(service_fn(move |request: Request<Full<Bytes>>| {
        let seen = Arc::clone(&seen);
        async move {
            let event = request
                .extensions()
                .get::<VerifiedEvent>()
                .expect("the layer sets the event")
                .clone();
            let body = request.into_body().collect().await?.to_bytes();
            let mut seen = seen.lock().unwrap();
            let status = seen.answers.pop_front().unwrap_or(StatusCode::OK);
            seen.calls.push((body, event));
            let mut response = Response::new(Full::new(Bytes::from("OK")));
            *response.status_mut() = status;
            Ok::<_, Infallible>(response)
        }
    }))
}

fn receiver(verifier: Verifier) -> WebhookReceiver {
    WebhookReceiver::new(verifier).with_deduplicator(MemoryDeduplicator::default())
}

fn sale() -> (EventId, Bytes) {
    let now = OffsetDateTime::now_utc();
    let event = Event::sample(&EventType::TRANSACTION_COMPLETED).unwrap();
    let envelope = Envelope::new(EventId::generate(now), now, event);
    (envelope.id.clone(), envelope.to_bytes().unwrap())
}

fn signed_request<B>(body: B, raw: &[u8], id: &EventId, at: OffsetDateTime) -> Request<B> {
    let mut request = Request::post("/webhooks/nopos").body(body).unwrap();
    signature::sign([&secret()], id.as_str(), at, raw)
        .unwrap()
        .insert_into(request.headers_mut());
    request
}

async fn call<S, B>(service: S, request: Request<B>) -> (StatusCode, String)
where
    S: Service<Request<B>, Response = Response<ResponseBody<Full<Bytes>>>, Error = Infallible>,
{
    let response = service.oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

fn code(body: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(body).unwrap();
    json["error"]["code"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn passes_the_verified_body_and_event_on() {
    let seen = Inner::default();
    let svc = service(receiver(Verifier::new([secret()])), &seen);
    let (id, body) = sale();
    let now = OffsetDateTime::now_utc();
    let (status, text) = call(
        svc,
        signed_request(Full::new(body.clone()), &body, &id, now),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "OK"));
    let seen = seen.lock().unwrap();
    let (passed, event) = &seen.calls[0];
    assert_eq!(passed, &body, "the inner service gets the exact bytes");
    assert_eq!(event.envelope.id, id);
    assert!(!event.duplicate);
    assert!(matches!(
        event.envelope.data,
        Event::TransactionCompleted(_)
    ));
}

#[tokio::test]
async fn refusals_have_status_and_code_and_never_reach_the_service() {
    let seen = Inner::default();
    let svc = service(receiver(Verifier::new([secret()])), &seen);
    let (id, body) = sale();
    let now = OffsetDateTime::now_utc();

    // Signed over the real body, sent with another.
    let mut request = signed_request(Full::new(Bytes::from_static(b"{}")), &body, &id, now);
    let (status, text) = call(svc.clone(), request).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "invalid_signature")
    );
    assert!(!text.contains(SECRET));

    request = Request::new(Full::new(body.clone()));
    let (status, text) = call(svc.clone(), request).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "missing_signature")
    );

    request = signed_request(
        Full::new(body.clone()),
        &body,
        &id,
        now - Duration::hours(1),
    );
    let (status, text) = call(svc.clone(), request).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "timestamp_too_old")
    );

    request = signed_request(
        Full::new(body.clone()),
        &body,
        &id,
        now + Duration::hours(1),
    );
    let (status, text) = call(svc.clone(), request).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::UNAUTHORIZED, "timestamp_too_new")
    );

    let bad_json = Bytes::from_static(b"{\"id\":");
    request = signed_request(Full::new(bad_json.clone()), &bad_json, &id, now);
    let (status, text) = call(svc.clone(), request).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_payload")
    );

    assert!(seen.lock().unwrap().calls.is_empty());
}

/// A body that arrives in chunks and declares no length, like a chunked upload.
struct Chunked(VecDeque<Bytes>);

impl Body for Chunked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[tokio::test]
async fn oversized_bodies_are_413_declared_or_streamed() {
    let seen = Inner::default();
    let verifier = Verifier::new([secret()]).max_body_size(100);
    let (id, _) = sale();
    let now = OffsetDateTime::now_utc();
    let big = Bytes::from(vec![b' '; 101]);
    let svc = service(receiver(verifier.clone()), &seen);
    let (status, text) = call(svc, signed_request(Full::new(big.clone()), &big, &id, now)).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );

    // The streamed body goes through a layer over a service that takes any body.
    let chunks = Chunked(std::iter::repeat_n(Bytes::from(vec![b' '; 30]), 4).collect());
    let svc =
        VerifyLayer::new(receiver(verifier)).layer(service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        }));
    let (status, text) = call(svc, signed_request(chunks, &big, &id, now)).await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large")
    );
    assert!(seen.lock().unwrap().calls.is_empty());
}

#[tokio::test]
async fn duplicates_are_marked_and_failures_forgotten() {
    let seen = Inner::default();
    let svc = service(receiver(Verifier::new([secret()])), &seen);
    let (id, body) = sale();
    let now = OffsetDateTime::now_utc();
    let request = || signed_request(Full::new(body.clone()), &body, &id, now);

    // The first attempt fails inside the service: the id is forgotten, the retry is new.
    seen.lock()
        .unwrap()
        .answers
        .push_back(StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        call(svc.clone(), request()).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(call(svc.clone(), request()).await.0, StatusCode::OK);
    // The next one is a duplicate, passed on marked.
    assert_eq!(call(svc.clone(), request()).await.0, StatusCode::OK);
    let seen = seen.lock().unwrap();
    let duplicates: Vec<bool> = seen.calls.iter().map(|(_, e)| e.duplicate).collect();
    assert_eq!(duplicates, vec![false, false, true]);
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GiftCardIssued {
    card_id: String,
}

impl EventPayload for GiftCardIssued {
    const EVENT_TYPE: EventType = EventType::from_static("acme.gift_card.issued");
}

#[tokio::test]
async fn custom_event_types() {
    let now = OffsetDateTime::now_utc();
    let id = EventId::generate(now);
    let envelope = Envelope::new(
        id.clone(),
        now,
        GiftCardIssued {
            card_id: "gc_1".into(),
        },
    );
    let body = envelope.to_bytes().unwrap();
    let svc = VerifyLayer::new(receiver(Verifier::new([secret()])))
        .event_type::<GiftCardIssued>()
        .layer(service_fn(|request: Request<Full<Bytes>>| async move {
            let event = request
                .extensions()
                .get::<VerifiedEvent<GiftCardIssued>>()
                .unwrap();
            let card = event.envelope.data.card_id.clone();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(card))))
        }));
    let (status, text) = call(
        svc.clone(),
        signed_request(Full::new(body.clone()), &body, &id, now),
    )
    .await;
    assert_eq!((status, text.as_str()), (StatusCode::OK, "gc_1"));
    // Another type under the same signature is a JSON-level refusal.
    let (id, sale) = sale();
    let (status, text) = call(
        svc,
        signed_request(Full::new(sale.clone()), &sale, &id, now),
    )
    .await;
    assert_eq!(
        (status, code(&text).as_str()),
        (StatusCode::BAD_REQUEST, "invalid_payload")
    );
}

#[tokio::test]
async fn serves_over_real_http() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let seen = Inner::default();
    let svc = service(receiver(Verifier::new([secret()])), &seen);
    let app = axum::Router::new().fallback_service(svc);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let (id, body) = sale();
    let now = OffsetDateTime::now_utc();
    let signed = signature::sign([&secret()], id.as_str(), now, &body).unwrap();
    for (headers, expected) in [
        (signed.nopos().to_str().unwrap(), "200"),
        ("t=1,v1=00", "401"),
    ] {
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let head = format!(
            "POST /webhooks/nopos HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\
             content-length: {}\r\nx-nopos-signature: {headers}\r\n\r\n",
            body.len()
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&body).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(
            reply.starts_with(&format!("HTTP/1.1 {expected} ")),
            "{reply}"
        );
    }
    assert_eq!(seen.lock().unwrap().calls.len(), 1);
}
