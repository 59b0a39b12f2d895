//! Deadlocks inside axum 0.8 handlers (HTTP/1.1).
//!
//! `POST /transfer/out` (`transfer_out`) takes the `inventory`
//! `tokio::sync::Mutex`, then (in the nested `reserve_payment`) waits for
//! `payments`; `POST /transfer/in` (`transfer_in`) takes `payments`, then
//! waits for `inventory`. A `Barrier` in the state makes the AB-BA deadlock
//! deterministic. `POST /settle` (`settle`) takes the `ledger` Mutex, hands
//! the Sender of a `oneshot` to a `ledger_worker` task it spawns, and awaits
//! the Receiver; the worker first waits for `ledger`, which the handler
//! holds: a second cycle, through a oneshot.
//!
//! Each handler runs inside the connection task axum::serve spawned, so a
//! cycle is between connection tasks (and the worker); each handler
//! registers the task it runs in. Clients: hyper's HTTP/1 client, one
//! connection per request, in the same process.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::{oneshot, Barrier, Mutex};

#[derive(Clone)]
struct AppState {
    inventory: Arc<Mutex<u32>>,
    payments: Arc<Mutex<Vec<i64>>>,
    ledger: Arc<Mutex<Vec<String>>>,
    barrier: Arc<Barrier>,
}

async fn reserve_payment(state: &AppState, cents: i64) {
    let mut ledger = park!(1, state.payments.lock()).await; hold!("payments");
    ledger.push(cents);
}

async fn transfer_out(State(state): State<AppState>) -> &'static str {
    stacks::register_current("POST /transfer/out", "handler", "/transfer/out");
    let mut stock = park!(0, state.inventory.lock()).await; hold!("inventory");
    *stock -= 1;
    park!(0, state.barrier.wait()).await;
    park!(0, reserve_payment(&state, 1999)).await;
    drop(stock);
    "moved out"
}

async fn transfer_in(State(state): State<AppState>) -> &'static str {
    stacks::register_current("POST /transfer/in", "handler", "/transfer/in");
    let mut ledger = park!(0, state.payments.lock()).await; hold!("payments");
    ledger.push(-1999);
    park!(0, state.barrier.wait()).await;
    let mut stock = park!(0, state.inventory.lock()).await; hold!("inventory");
    *stock += 1;
    "moved in"
}

/// Books the settlement, then reports it on `done`; needs the ledger first.
async fn ledger_worker(state: AppState, done: oneshot::Sender<String>) {
    let mut ledger = park!(0, state.ledger.lock()).await; hold!("ledger");
    ledger.push("settled".to_string());
    let _ = done.send("ok".to_string());
}

async fn settle(State(state): State<AppState>) -> String {
    stacks::register_current("POST /settle", "handler", "/settle");
    let mut ledger = park!(0, state.ledger.lock()).await; hold!("ledger");
    ledger.push("settling".to_string());
    let (tx, rx) = oneshot::channel();
    spawn_named("ledger_worker", ledger_worker(state.clone(), tx));
    let receipt = park!(0, rx).await.unwrap_or_default();
    drop(ledger);
    receipt
}

/// The accept loop: axum::serve, spawned as a task of its own.
async fn serve(listener: tokio::net::TcpListener, app: Router) {
    park!(0, axum::serve(listener, app)).await.expect("axum::serve");
}

/// One client request on its own connection; stays in `send_request`.
async fn client(addr: std::net::SocketAddr, path: &'static str) {
    let mut sender = stacks::h1_client(stacks::connect(addr).await).await;
    let resp = park!(0, sender.send_request(stacks::request("POST", path))).await;
    drop(resp);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    stacks::check_tokio_version();
    let path = scenarios::truth_path();
    let state = AppState {
        inventory: Arc::new(Mutex::new(10)),
        payments: Arc::new(Mutex::new(Vec::new())),
        ledger: Arc::new(Mutex::new(Vec::new())),
        barrier: Arc::new(Barrier::new(2)),
    };
    let app = Router::new()
        .route("/transfer/out", post(transfer_out))
        .route("/transfer/in", post(transfer_in))
        .route("/settle", post(settle))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let server = spawn_named("axum::serve", serve(listener, app));

    let requests = ["/transfer/out", "/transfer/in", "/settle"];
    let clients: Vec<_> = requests.iter().map(|&p| spawn_named(&format!("client POST {p}"), client(addr, p))).collect();

    // transfer_out's 4th park! (payments, inside reserve_payment), transfer_in's
    // 3rd (inventory), settle's 2nd (the receipt), the worker's 1st (ledger).
    let mut expected: Vec<(String, usize)> = vec![
        ("POST /transfer/out".into(), 4),
        ("POST /transfer/in".into(), 3),
        ("POST /settle".into(), 2),
        ("ledger_worker".into(), 1),
        ("axum::serve".into(), 1),
    ];
    expected.extend(requests.iter().map(|p| (format!("client POST {p}"), 1)));
    let expected_ref: Vec<(&str, usize)> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    scenarios::wait_named(&expected_ref).await;

    for (i, c) in clients.iter().enumerate() {
        scenarios::annotate(scenarios::id_u64(c.id()), "role", json!("client"));
        scenarios::annotate(scenarios::id_u64(c.id()), "request", json!(format!("POST {}", requests[i])));
    }
    scenarios::annotate(scenarios::id_u64(server.id()), "role", json!("server"));
    let id = |name: &str| scenarios::task_id(name).unwrap();
    let (out_id, in_id, settle_id, worker_id) =
        (id("POST /transfer/out"), id("POST /transfer/in"), id("POST /settle"), id("ledger_worker"));
    scenarios::annotate(worker_id, "role", json!("worker"));
    let (inv_holder, inv_line) = scenarios::holder("inventory").unwrap();
    let (pay_holder, pay_line) = scenarios::holder("payments").unwrap();
    let (led_holder, led_line) = scenarios::holder("ledger").unwrap();
    assert_eq!((inv_holder, pay_holder, led_holder), (out_id, in_id, settle_id));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http1",
            "in_flight": 3,
            // transfer_out waits for payments (held by transfer_in), transfer_in
            // for inventory; settle waits for the receipt whose Sender the
            // worker holds, the worker for the ledger settle holds.
            "diagnoses": [
                {"kind": "deadlock", "tasks": [out_id, in_id]},
                {"kind": "deadlock", "tasks": [settle_id, worker_id]},
            ],
            "resources": [
                {"kind": "mutex", "name": "inventory", "held_by": [out_id], "waited_by": [in_id], "held_line": inv_line},
                {"kind": "mutex", "name": "payments", "held_by": [in_id], "waited_by": [out_id], "held_line": pay_line},
                {"kind": "mutex", "name": "ledger", "held_by": [settle_id], "waited_by": [worker_id], "held_line": led_line},
                // held_by = the task owning the Sender; waited_by = the receiver.
                {"kind": "oneshot", "name": "receipt", "held_by": [worker_id], "waited_by": [settle_id]},
            ],
        }),
    );
    let _keep = (state, clients, server);
    std::future::pending::<()>().await;
}
