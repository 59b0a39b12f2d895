//! An order service on axum 0.8 over HTTP/1.1, with four requests in flight.
//!
//! Routes (all behind the `audit` middleware, an `axum::middleware::from_fn`):
//! `GET /orders/{id}` -> `get_order` -> `load_order` -> `fetch_row`, which
//! waits for a `Notify` (the "database" signalling a row) nobody notifies;
//! `POST /checkout` waits for a payment receipt on a `oneshot` whose Sender
//! is parked in the state; `GET /reports/{name}` renders for an hour
//! (`tokio::time::sleep`); `GET /health` answers at once.
//!
//! Clients are hyper's HTTP/1 client, one connection per request, in the
//! same process: `/health` first (answered, its connection stays open and
//! idle), then four requests that stay in flight. Each in-flight handler runs
//! inside the connection task axum::serve spawned; it registers that task
//! (`stacks::register_current`) so the truth has its id and chain. main
//! keeps the state (the Notify, the oneshot Senders), so nobody is
//! deadlocked: every waiter could still be woken.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
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

/// Request middleware: every request passes through here.
async fn audit(req: Request, next: Next) -> Response {
    park!(0, next.run(req)).await
}

async fn fetch_row(state: &AppState, id: u32) -> String {
    park!(3, state.row_ready.notified()).await;
    format!("order {id}")
}

async fn load_order(state: &AppState, id: u32) -> String {
    let row = park!(2, fetch_row(state, id)).await;
    row.to_uppercase()
}

async fn get_order(State(state): State<AppState>, Path(id): Path<u32>) -> String {
    stacks::register_current(&format!("GET /orders/{id}"), "handler", "/orders/{id}");
    park!(1, load_order(&state, id)).await
}

async fn checkout(State(state): State<AppState>) -> String {
    stacks::register_current("POST /checkout", "handler", "/checkout");
    let (tx, rx) = oneshot::channel();
    state.receipts.lock().unwrap().push(tx);
    park!(1, rx).await.unwrap_or_default()
}

async fn render_report(name: &str) -> String {
    park!(2, tokio::time::sleep(Duration::from_secs(3600))).await;
    format!("report {name}")
}

async fn report(Path(name): Path<String>) -> String {
    stacks::register_current(&format!("GET /reports/{name}"), "handler", "/reports/{name}");
    park!(1, render_report(&name)).await
}

async fn health() -> &'static str {
    "ok"
}

/// The accept loop: axum::serve, spawned as a task of its own.
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    park!(0, axum::serve(listener, app)).await.expect("axum::serve");
}

/// One client request on its own connection; stays in `send_request`.
async fn client(addr: std::net::SocketAddr, method: &'static str, path: &'static str) {
    let mut sender = stacks::h1_client(stacks::connect(addr).await).await;
    let resp = park!(0, sender.send_request(stacks::request(method, path))).await;
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
        .route("/health", get(health))
        .layer(middleware::from_fn(audit))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let server = spawn_named("axum::serve", serve(listener, app));

    // A request that completes: its connection stays open, idle.
    let mut health_conn = stacks::h1_client(stacks::connect(addr).await).await;
    let resp = health_conn.send_request(stacks::request("GET", "/health")).await.expect("GET /health");
    assert!(resp.status().is_success(), "GET /health: {}", resp.status());

    let requests = [("GET", "/orders/1"), ("GET", "/orders/2"), ("POST", "/checkout"), ("GET", "/reports/daily")];
    let clients: Vec<_> = requests
        .iter()
        .map(|&(m, p)| spawn_named(&format!("client {m} {p}"), client(addr, m, p)))
        .collect();

    // Parks per handler task: audit, then get_order 3 more, checkout 1,
    // report 2; each client 1 (send_request), the server 1.
    let handler_parks = [
        ("GET /orders/1", 4),
        ("GET /orders/2", 4),
        ("POST /checkout", 2),
        ("GET /reports/daily", 3),
    ];
    stacks::settle_clients(&handler_parks, &requests, &clients, &server).await;
    assert_eq!(state.receipts.lock().unwrap().len(), 1, "one checkout in progress");
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http1",
            "in_flight": 4,
            // main keeps the Notify and the receipt Sender: nobody is stuck for good.
            "diagnoses": [],
        }),
    );
    let _keep = (state, health_conn, clients, server);
    std::future::pending::<()>().await;
}
