//! reqwest 0.13 clients (HTTP/1.1, no TLS) waiting on a slow axum server in
//! the same program.
//!
//! The server (axum 0.8, `axum::serve`): `GET /prices/{symbol}` -> `price`
//! -> `quote` waits for the pricing engine's `Notify`, nobody notifies;
//! `GET /reports/{name}` -> `report` -> `render` sleeps for an hour;
//! `GET /export` answers at once with a body that streams from the
//! `export_rows` task: it sends the header row, then waits for the
//! warehouse's next batch (a `Notify` nobody notifies).
//!
//! The clients share one `reqwest::Client` (its pool opens a connection per
//! request in flight): two price watchers in `fetch_price`'s `send()`, a
//! report fetcher in `send()`, and an exporter that got the response head
//! and waits in `text()` for a body that never ends. Each handler registers
//! the connection task it runs in.
//!
//! Runtime: multi_thread, 2 workers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::Router;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{mpsc, Notify};
use tokio_stream::wrappers::ReceiverStream;

#[derive(Clone, Default)]
struct AppState {
    /// Signalled when the pricing engine has new prices; never, here.
    prices_ready: Arc<Notify>,
    /// Signalled when the warehouse has the next batch of rows; never, here.
    next_batch: Arc<Notify>,
}

async fn quote(state: &AppState, symbol: &str) -> String {
    park!(1, state.prices_ready.notified()).await;
    format!("{symbol} 101.25")
}

async fn price(State(state): State<AppState>, Path(symbol): Path<String>) -> String {
    stacks::register_current(&format!("GET /prices/{symbol}"), "handler", "/prices/{symbol}");
    park!(0, quote(&state, &symbol)).await
}

async fn render(name: &str) -> String {
    park!(1, tokio::time::sleep(Duration::from_secs(3600))).await;
    format!("report {name}")
}

async fn report(Path(name): Path<String>) -> String {
    stacks::register_current(&format!("GET /reports/{name}"), "handler", "/reports/{name}");
    park!(0, render(&name)).await
}

/// Streams the export, batch by batch, into the response body.
async fn export_rows(state: AppState, rows: mpsc::Sender<Result<Bytes, Infallible>>) {
    park!(0, rows.send(Ok(Bytes::from_static(b"id,symbol,quantity\n")))).await.ok();
    park!(0, state.next_batch.notified()).await;
}

async fn export(State(state): State<AppState>) -> Body {
    let (tx, rx) = mpsc::channel(4);
    spawn_named("export_rows", export_rows(state, tx));
    Body::from_stream(ReceiverStream::new(rx))
}

/// The accept loop: axum::serve, spawned as a task of its own.
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    park!(0, axum::serve(listener, app)).await.expect("axum::serve");
}

async fn fetch_price(client: &reqwest::Client, base: &str, symbol: &str) -> reqwest::Result<String> {
    let response = park!(1, client.get(format!("{base}/prices/{symbol}")).send()).await?;
    response.error_for_status()?.text().await
}

/// Keeps a price up to date.
async fn price_watcher(client: reqwest::Client, base: String, symbol: &'static str) {
    let price = park!(0, fetch_price(&client, &base, symbol)).await;
    drop(price);
}

async fn report_fetcher(client: reqwest::Client, base: String) {
    let response = park!(0, client.get(format!("{base}/reports/daily")).send()).await;
    drop(response);
}

async fn exporter(client: reqwest::Client, base: String) {
    let response = park!(0, client.get(format!("{base}/export")).send()).await.expect("GET /export");
    let csv = park!(0, response.text()).await;
    drop(csv);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    stacks::check_tokio_version();
    let path = scenarios::truth_path();
    let state = AppState::default();
    let app = Router::new()
        .route("/prices/{symbol}", get(price))
        .route("/reports/{name}", get(report))
        .route("/export", get(export))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let server = spawn_named("axum::serve", serve(listener, app));

    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let clients = vec![
        ("GET /prices/ACME", spawn_named("client GET /prices/ACME", price_watcher(client.clone(), base.clone(), "ACME"))),
        ("GET /prices/BOLT", spawn_named("client GET /prices/BOLT", price_watcher(client.clone(), base.clone(), "BOLT"))),
        ("GET /reports/daily", spawn_named("client GET /reports/daily", report_fetcher(client.clone(), base.clone()))),
        ("GET /export", spawn_named("client GET /export", exporter(client.clone(), base.clone()))),
    ];

    // Parks: price and quote 2, report and render 2, export_rows 2 (the
    // header row, then the next batch); the price watchers 2 (price_watcher,
    // fetch_price), the report fetcher 1, the exporter 2 (send, text); the
    // server 1.
    let expected = [
        ("GET /prices/ACME", 2),
        ("GET /prices/BOLT", 2),
        ("GET /reports/daily", 2),
        ("export_rows", 2),
        ("axum::serve", 1),
        ("client GET /prices/ACME", 2),
        ("client GET /prices/BOLT", 2),
        ("client GET /reports/daily", 1),
        ("client GET /export", 2),
    ];
    scenarios::wait_named(&expected).await;
    for (request, c) in &clients {
        scenarios::annotate(scenarios::id_u64(c.id()), "role", json!("client"));
        scenarios::annotate(scenarios::id_u64(c.id()), "request", json!(request));
    }
    scenarios::annotate(scenarios::id_u64(server.id()), "role", json!("server"));
    scenarios::annotate(scenarios::task_id("export_rows").unwrap(), "role", json!("producer"));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http1",
            "in_flight": 3,
            // main keeps the Notifies; the clients wait for the server's sockets.
            "diagnoses": [],
        }),
    );
    let _keep = (state, client, clients, server);
    std::future::pending::<()>().await;
}
