//! The order service of `axum_h1` on axum 0.8 over HTTP/2 (h2c, prior
//! knowledge: axum::serve's hyper-util auto builder sees the HTTP/2 preface),
//! four streams in flight on one connection.
//!
//! `GET /orders/{id}` -> `get_order` -> `load_order` -> `fetch_row` waits
//! for a `Notify` nobody notifies; `POST /checkout` waits on a `oneshot`
//! whose Sender main keeps; `GET /reports/{name}` sleeps for an hour in
//! `render_report`.
//!
//! The client is hyper's HTTP/2 client over one TcpStream; each request is
//! sent by its own client task on a clone of the one `SendRequest`. hyper's
//! HTTP/2 server runs every stream (an `H2Stream`) as a task of its own, so
//! each handler registers the stream task it runs in.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::Router;
use hyper::client::conn::http2::SendRequest;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{oneshot, Notify};

#[derive(Clone, Default)]
struct AppState {
    /// Signalled when a row is ready; never, in this program.
    row_ready: Arc<Notify>,
    /// Receipt senders of the checkouts in progress; main keeps them.
    receipts: Arc<std::sync::Mutex<Vec<oneshot::Sender<String>>>>,
}

async fn fetch_row(state: &AppState, id: u32) -> String {
    park!(2, state.row_ready.notified()).await;
    format!("order {id}")
}

async fn load_order(state: &AppState, id: u32) -> String {
    let row = park!(1, fetch_row(state, id)).await;
    row.to_uppercase()
}

async fn get_order(State(state): State<AppState>, Path(id): Path<u32>) -> String {
    stacks::register_current(&format!("GET /orders/{id}"), "handler", "/orders/{id}");
    park!(0, load_order(&state, id)).await
}

async fn checkout(State(state): State<AppState>) -> String {
    stacks::register_current("POST /checkout", "handler", "/checkout");
    let (tx, rx) = oneshot::channel();
    state.receipts.lock().unwrap().push(tx);
    park!(0, rx).await.unwrap_or_default()
}

async fn render_report(name: &str) -> String {
    park!(1, tokio::time::sleep(Duration::from_secs(3600))).await;
    format!("report {name}")
}

async fn report(Path(name): Path<String>) -> String {
    stacks::register_current(&format!("GET /reports/{name}"), "handler", "/reports/{name}");
    park!(0, render_report(&name)).await
}

/// The accept loop: axum::serve, spawned as a task of its own.
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    park!(0, axum::serve(listener, app)).await.expect("axum::serve");
}

/// One request on a stream of the shared HTTP/2 connection; stays in
/// `send_request`.
async fn client(mut sender: SendRequest<stacks::Body>, method: &'static str, uri: String) {
    let resp = park!(0, sender.send_request(stacks::request(method, &uri))).await;
    drop(resp);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    stacks::check_tokio_version();
    let path = scenarios::truth_path();
    let state = AppState::default();
    let app = Router::new()
        .route("/orders/{id}", get(get_order))
        .route("/checkout", post(checkout))
        .route("/reports/{name}", get(report))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let server = spawn_named("axum::serve", serve(listener, app));

    let sender = stacks::h2_client(stacks::connect(addr).await).await;
    let requests = [("GET", "/orders/1"), ("GET", "/orders/2"), ("POST", "/checkout"), ("GET", "/reports/daily")];
    let clients: Vec<_> = requests
        .iter()
        .map(|&(m, p)| {
            let uri = format!("http://{addr}{p}");
            spawn_named(&format!("client {m} {p}"), client(sender.clone(), m, uri))
        })
        .collect();

    // Parks per stream task: get_order 3, checkout 1, report 2; each client
    // 1 (send_request), the server 1.
    let handler_parks = [
        ("GET /orders/1", 3),
        ("GET /orders/2", 3),
        ("POST /checkout", 1),
        ("GET /reports/daily", 2),
    ];
    stacks::settle_clients(&handler_parks, &requests, &clients, &server).await;
    assert_eq!(state.receipts.lock().unwrap().len(), 1, "one checkout in progress");
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http2",
            "in_flight": 4,
            // main keeps the Notify and the receipt Sender: nobody is stuck for good.
            "diagnoses": [],
        }),
    );
    let _keep = (state, sender, clients, server);
    std::future::pending::<()>().await;
}
