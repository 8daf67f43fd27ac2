//! A programmable webhook receiver on loopback for the dispatcher tests.
#![allow(unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use tokio::sync::{mpsc, watch};

/// One request the receiver got.
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// How to answer the n-th request (0-based).
pub enum Reply {
    Status(u16, Vec<(&'static str, &'static str)>),
    /// Never answer.
    Hang,
}

impl Reply {
    pub fn status(code: u16) -> Reply {
        Reply::Status(code, Vec::new())
    }

    pub fn header(self, name: &'static str, value: &'static str) -> Reply {
        match self {
            Reply::Status(code, mut headers) => {
                headers.push((name, value));
                Reply::Status(code, headers)
            }
            Reply::Hang => Reply::Hang,
        }
    }
}

type Responder = Arc<dyn Fn(usize) -> Reply + Send + Sync>;

#[derive(Clone)]
struct AppState {
    responder: Responder,
    count: Arc<AtomicUsize>,
    seen: mpsc::UnboundedSender<Received>,
    gate: Option<watch::Receiver<bool>>,
}

pub struct TestReceiver {
    addr: SocketAddr,
    requests: mpsc::UnboundedReceiver<Received>,
}

async fn handle(State(state): State<AppState>, headers: HeaderMap, body: Bytes) -> Response {
    let n = state.count.fetch_add(1, Ordering::SeqCst);
    let _ = state.seen.send(Received {
        headers,
        body,
        at: Instant::now(),
    });
    if let Some(mut gate) = state.gate.clone() {
        let _ = gate.wait_for(|open| *open).await;
        return StatusCode::OK.into_response();
    }
    match (state.responder)(n) {
        Reply::Status(code, headers) => {
            let mut response = StatusCode::from_u16(code).unwrap().into_response();
            for (name, value) in headers {
                response.headers_mut().insert(name, value.parse().unwrap());
            }
            response
        }
        Reply::Hang => std::future::pending().await,
    }
}

impl TestReceiver {
    pub async fn start(responder: impl Fn(usize) -> Reply + Send + Sync + 'static) -> TestReceiver {
        TestReceiver::serve(Arc::new(responder), None).await
    }

    /// Answers 200, but only once `gate` is true.
    pub async fn start_with_gate(gate: watch::Receiver<bool>) -> TestReceiver {
        TestReceiver::serve(Arc::new(|_| Reply::status(200)), Some(gate)).await
    }

    async fn serve(responder: Responder, gate: Option<watch::Receiver<bool>>) -> TestReceiver {
        let (seen, requests) = mpsc::unbounded_channel();
        let state = AppState {
            responder,
            count: Arc::new(AtomicUsize::new(0)),
            seen,
            gate,
        };
        let app = Router::new().route("/hook", post(handle)).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TestReceiver { addr, requests }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port())
    }

    /// The next request, or a panic after 10 seconds.
    pub async fn next(&mut self) -> Received {
        tokio::time::timeout(Duration::from_secs(10), self.requests.recv())
            .await
            .expect("a request within 10 s")
            .expect("receiver running")
    }

    pub fn try_next(&mut self) -> Option<Received> {
        self.requests.try_recv().ok()
    }
}
