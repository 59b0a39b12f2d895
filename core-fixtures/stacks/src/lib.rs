//! Shared plumbing of the service-stack fixtures (issue 8): HTTP clients
//! over loopback and truth registration of tasks that tokio spawned for
//! hyper/axum (connection and HTTP/2 stream tasks), which the program never
//! gets a `JoinHandle` of.
//!
//! The truth bookkeeping itself is `scenarios` (../scenarios): `park!`,
//! `hold!`, `wait_named`, `write_truth`. A handler runs inside the task
//! hyper polls it from, so `tokio::task::try_id()` inside the handler is
//! that task's id, and every `park!` of the handler lands in its chain.

/// The gRPC service of the tonic fixtures: the code tonic-build generates
/// from proto/market.proto (proto/market.v1.rs, checked in: no protoc to
/// build), included from OUT_DIR where tonic-build writes it.
pub mod market {
    tonic::include_proto!("market.v1");
}

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpStream;

/// The request body every client sends.
pub type Body = Empty<Bytes>;

/// Panics unless this workspace links the tokio version the truth helpers
/// report (they read ../Cargo.lock, this workspace has its own).
pub fn check_tokio_version() {
    assert_eq!(
        env!("STACKS_TOKIO_VERSION"),
        scenarios::TOKIO_VERSION,
        "core-fixtures/stacks/Cargo.lock and core-fixtures/Cargo.lock pin different tokio versions"
    );
}

/// Register the task the caller runs in (a hyper connection or HTTP/2
/// stream task) in the truth under `name`, with `role` and `route`.
/// Its future type is hyper's, which the program cannot name: null.
pub fn register_current(name: &str, role: &str, route: &str) -> u64 {
    let id = tokio::task::try_id().expect("register_current outside a tokio task");
    scenarios::register(name, id, "");
    let id = scenarios::id_u64(id);
    scenarios::annotate(id, "future_type", Value::Null);
    scenarios::annotate(id, "role", json!(role));
    scenarios::annotate(id, "route", json!(route));
    id
}

/// An HTTP/1.1 client connection (hyper's own client) over `stream`; its
/// connection driver runs in a task of its own.
pub async fn h1_client(stream: TcpStream) -> http1::SendRequest<Body> {
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.expect("http1 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// An HTTP/2 client connection with prior knowledge (h2c); the driver runs
/// in a task of its own.
pub async fn h2_client(stream: TcpStream) -> http2::SendRequest<Body> {
    let (sender, conn) =
        http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await.expect("http2 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender
}

/// A request with an empty body for `uri` (a path; HTTP/2 needs a full URI).
pub fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header(hyper::header::HOST, "127.0.0.1")
        .body(Empty::new())
        .expect("request")
}

/// Connect to a server on loopback.
pub async fn connect(addr: std::net::SocketAddr) -> TcpStream {
    assert!(addr.ip().is_loopback(), "fixtures only talk over loopback");
    TcpStream::connect(addr).await.expect("connect to the fixture server")
}

/// Wait until each handler task (named by its request, with how many parks
/// it makes), every client (one park: `send_request`) and the server (one)
/// have parked, then record the clients' and the server's roles.
pub async fn settle_clients<C, S>(
    handler_parks: &[(&str, usize)],
    requests: &[(&str, &str)],
    clients: &[tokio::task::JoinHandle<C>],
    server: &tokio::task::JoinHandle<S>,
) {
    let mut expected: Vec<(String, usize)> =
        handler_parks.iter().map(|&(n, k)| (n.to_string(), k)).collect();
    expected.push(("axum::serve".into(), 1));
    expected.extend(requests.iter().map(|(m, p)| (format!("client {m} {p}"), 1)));
    let expected_ref: Vec<(&str, usize)> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    scenarios::wait_named(&expected_ref).await;
    for (c, (m, p)) in clients.iter().zip(requests) {
        scenarios::annotate(scenarios::id_u64(c.id()), "role", json!("client"));
        scenarios::annotate(scenarios::id_u64(c.id()), "request", json!(format!("{m} {p}")));
    }
    scenarios::annotate(scenarios::id_u64(server.id()), "role", json!("server"));
}
