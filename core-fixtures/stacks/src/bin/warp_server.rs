//! An order service on warp 0.4 (hyper 1, HTTP/1.1), three requests in
//! flight.
//!
//! Filters: `GET /orders/{id}` -> `get_order` -> `fetch_order`, which waits
//! for the database's `Notify` (a row is ready), nobody notifies;
//! `POST /orders` (body up to 4 KiB) -> `create_order` -> `charge`, which
//! waits for the payment processor's receipt on a `oneshot` whose Sender
//! main keeps; `GET /health` answers at once. Every route is behind the
//! `with_db` filter and a `recover` for rejections; `warp::serve` runs on a
//! listener bound by the program.
//!
//! Clients are hyper's HTTP/1 client, one connection per request (the POST
//! with a body and its Content-Length), in the same process: `/health` first (answered; its connection stays open,
//! idle), then three requests that stay in flight. Each in-flight handler
//! runs inside the connection task warp spawned, and registers it.
//!
//! Runtime: multi_thread, 2 workers.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper::{header, Request};
use hyper_util::rt::TokioIo;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{oneshot, Notify};
use warp::http::StatusCode;
use warp::{Filter, Rejection, Reply};

#[derive(Clone, Default)]
struct Db {
    /// Signalled when a row is ready; never, in this program.
    row_ready: Arc<Notify>,
    /// Receipt senders of the charges in progress; main keeps them.
    receipts: Arc<std::sync::Mutex<Vec<oneshot::Sender<String>>>>,
}

fn with_db(db: Db) -> impl Filter<Extract = (Db,), Error = Infallible> + Clone {
    warp::any().map(move || db.clone())
}

async fn fetch_order(db: &Db, id: u32) -> String {
    park!(1, db.row_ready.notified()).await;
    format!("order {id}")
}

async fn get_order(id: u32, db: Db) -> Result<impl Reply, Rejection> {
    stacks::register_current(&format!("GET /orders/{id}"), "handler", "/orders/{id}");
    let order = park!(0, fetch_order(&db, id)).await;
    Ok(order)
}

async fn charge(db: &Db, item: &str) -> Option<String> {
    let (tx, rx) = oneshot::channel();
    db.receipts.lock().unwrap().push(tx);
    let receipt = park!(1, rx).await.ok()?;
    Some(format!("{item}: {receipt}"))
}

async fn create_order(body: Bytes, db: Db) -> Result<impl Reply, Rejection> {
    stacks::register_current("POST /orders", "handler", "/orders");
    let item = String::from_utf8_lossy(&body).into_owned();
    match park!(0, charge(&db, &item)).await {
        Some(receipt) => Ok(warp::reply::with_status(receipt, StatusCode::CREATED)),
        None => Ok(warp::reply::with_status("payment failed".to_string(), StatusCode::PAYMENT_REQUIRED)),
    }
}

fn health() -> &'static str {
    "ok"
}

async fn handle_rejection(err: Rejection) -> Result<impl Reply, Infallible> {
    let status = if err.is_not_found() { StatusCode::NOT_FOUND } else { StatusCode::BAD_REQUEST };
    Ok(warp::reply::with_status(format!("{err:?}"), status))
}

/// The accept loop: warp::serve, spawned as a task of its own.
async fn serve(listener: tokio::net::TcpListener, db: Db) {
    let get = warp::get().and(warp::path!("orders" / u32)).and(with_db(db.clone())).and_then(get_order);
    let create = warp::post()
        .and(warp::path!("orders"))
        .and(warp::body::content_length_limit(4096))
        .and(warp::body::bytes())
        .and(with_db(db))
        .and_then(create_order);
    let health = warp::get().and(warp::path!("health")).map(health);
    let routes = get.or(create).or(health).recover(handle_rejection);
    park!(0, warp::serve(routes).incoming(listener).run()).await;
}

/// One client request on its own connection; stays in `send_request`.
async fn client(addr: std::net::SocketAddr, method: &'static str, path: &'static str) {
    let mut sender = stacks::h1_client(stacks::connect(addr).await).await;
    let resp = park!(0, sender.send_request(stacks::request(method, path))).await;
    drop(resp);
}

/// Orders `item`: a POST with a body, on its own connection (hyper's HTTP/1
/// client, its driver in a task of its own); stays in `send_request`.
async fn order_client(addr: std::net::SocketAddr, item: &'static str) {
    let io = TokioIo::new(stacks::connect(addr).await);
    let (mut sender, conn) = http1::handshake::<_, Full<Bytes>>(io).await.expect("http1 handshake");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = Request::post("/orders")
        .header(header::HOST, "127.0.0.1")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Full::new(Bytes::from_static(item.as_bytes())))
        .expect("request");
    let resp = park!(0, sender.send_request(request)).await;
    drop(resp);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    stacks::check_tokio_version();
    let path = scenarios::truth_path();
    let db = Db::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let server = spawn_named("warp::serve", serve(listener, db.clone()));

    // A request that completes: its connection stays open, idle.
    let mut health_conn = stacks::h1_client(stacks::connect(addr).await).await;
    let resp = health_conn.send_request(stacks::request("GET", "/health")).await.expect("GET /health");
    assert!(resp.status().is_success(), "GET /health: {}", resp.status());

    let requests = [("GET", "/orders/1"), ("GET", "/orders/2"), ("POST", "/orders")];
    let clients = vec![
        spawn_named("client GET /orders/1", client(addr, "GET", "/orders/1")),
        spawn_named("client GET /orders/2", client(addr, "GET", "/orders/2")),
        spawn_named("client POST /orders", order_client(addr, "2 x widget")),
    ];

    // Parks: each handler 2 (itself, then fetch_order or charge); each client
    // 1 (send_request), the server 1.
    let mut expected: Vec<(String, usize)> = vec![
        ("GET /orders/1".into(), 2),
        ("GET /orders/2".into(), 2),
        ("POST /orders".into(), 2),
        ("warp::serve".into(), 1),
    ];
    expected.extend(requests.iter().map(|(m, p)| (format!("client {m} {p}"), 1)));
    let expected_ref: Vec<(&str, usize)> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    scenarios::wait_named(&expected_ref).await;
    for (c, (m, p)) in clients.iter().zip(requests) {
        scenarios::annotate(scenarios::id_u64(c.id()), "role", json!("client"));
        scenarios::annotate(scenarios::id_u64(c.id()), "request", json!(format!("{m} {p}")));
    }
    scenarios::annotate(scenarios::id_u64(server.id()), "role", json!("server"));
    assert_eq!(db.receipts.lock().unwrap().len(), 1, "one charge in progress");
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http1",
            "in_flight": 3,
            // main keeps the Notify and the receipt Sender: nobody is stuck for good.
            "diagnoses": [],
        }),
    );
    let _keep = (db, health_conn, clients, server);
    std::future::pending::<()>().await;
}
