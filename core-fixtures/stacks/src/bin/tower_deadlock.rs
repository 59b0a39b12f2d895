//! A deadlock through a tower middleware's resource, in an axum 0.8 program
//! (HTTP/1.1).
//!
//! The `payments` service is a tower stack,
//! `ServiceBuilder::new().concurrency_limit(1).service_fn(..)` over the
//! `charge` async fn, kept (Clone) in the axum state. tower 0.5's
//! `ConcurrencyLimit` takes a permit of its `Semaphore` in `poll_ready` (a
//! tokio-util `PollSemaphore`, whose acquire is a `ReusableBoxFuture`) and
//! keeps it, a tokio `OwnedSemaphorePermit`, in the
//! `tower::limit::concurrency::future::ResponseFuture` (`_permit`) while the
//! call is in flight. One permit: one charge at a time.
//!
//! `POST /charge` (`create_charge`) calls `payments` with `oneshot`: inside
//! `charge`, holding the only permit, it books the charge in the `ledger`
//! `tokio::sync::Mutex` and waits to lock it. `POST /settle` (`settle`)
//! locks `ledger` first, then calls `payments` for a settlement fee and
//! waits in `Oneshot`'s `poll_ready` for the permit `charge` holds. A
//! `Barrier` (both parties: `charge` once it holds the permit, `settle` once
//! it holds the ledger) makes the order deterministic.
//!
//! Each handler runs inside the connection task axum::serve spawned and
//! registers it. Clients: hyper's HTTP/1 client, one connection per
//! request, in the same process.
//!
//! Runtime: multi_thread, 2 workers.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::post;
use axum::Router;
use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::{Barrier, Mutex};
use tower::{ServiceBuilder, ServiceExt};

/// The book of charges and settlements.
type Ledger = Arc<Mutex<Vec<(String, i64)>>>;

/// A charge of `cents` to `account`.
struct Charge {
    account: String,
    cents: i64,
}

/// What `AppState` needs of the payments service (the stack's type has a
/// closure in it: the state is generic over it, as the handlers are).
trait Payments:
    tower::Service<Charge, Response = u64, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}
impl<P> Payments for P where
    P: tower::Service<Charge, Response = u64, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static
{
}

#[derive(Clone)]
struct AppState<P> {
    /// `concurrency_limit(1)` over `charge`.
    payments: P,
    ledger: Ledger,
    /// Two parties: `charge` holding the permit, `settle` holding the ledger.
    barrier: Arc<Barrier>,
}

/// The service at the bottom of the payments stack: runs inside the
/// ConcurrencyLimit's ResponseFuture, so with its permit.
async fn charge(ledger: Ledger, barrier: Arc<Barrier>, req: Charge) -> Result<u64, Infallible> {
    hold!("payments concurrency limit");
    park!(1, barrier.wait()).await;
    let mut book = park!(1, ledger.lock()).await; hold!("ledger");
    book.push((req.account, req.cents));
    Ok(book.len() as u64)
}

async fn create_charge<P: Payments>(State(state): State<AppState<P>>) -> String {
    stacks::register_current("POST /charge", "handler", "/charge");
    let req = Charge { account: "acct-42".to_string(), cents: 1999 };
    let receipt = park!(0, state.payments.clone().oneshot(req)).await;
    format!("charged: {:?}", receipt)
}

async fn settle<P: Payments>(State(state): State<AppState<P>>) -> String {
    stacks::register_current("POST /settle", "handler", "/settle");
    let mut book = park!(0, state.ledger.lock()).await; hold!("ledger");
    book.push(("settlement".to_string(), 0));
    park!(0, state.barrier.wait()).await;
    let fee = Charge { account: "settlement-fee".to_string(), cents: 25 };
    let receipt = park!(0, state.payments.clone().oneshot(fee)).await;
    drop(book);
    format!("settled: {:?}", receipt)
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
    let ledger: Ledger = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(2));
    let (l, b) = (ledger.clone(), barrier.clone());
    let payments = ServiceBuilder::new()
        .concurrency_limit(1)
        .service_fn(move |req| charge(l.clone(), b.clone(), req));
    let state = AppState { payments, ledger, barrier };
    let app = Router::new()
        .route("/charge", post(create_charge))
        .route("/settle", post(settle))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let server = spawn_named("axum::serve", serve(listener, app));

    let requests = [("POST", "/charge"), ("POST", "/settle")];
    let clients: Vec<_> = requests
        .iter()
        .map(|&(m, p)| spawn_named(&format!("client {m} {p}"), client(addr, m, p)))
        .collect();

    // Parks per handler task: create_charge's oneshot, then charge's barrier
    // and ledger lock (3); settle's ledger lock, barrier, oneshot (3); each
    // client 1 (send_request), the server 1.
    let handler_parks = [("POST /charge", 3), ("POST /settle", 3)];
    stacks::settle_clients(&handler_parks, &requests, &clients, &server).await;

    let id = |name: &str| scenarios::task_id(name).unwrap();
    let (charge_id, settle_id) = (id("POST /charge"), id("POST /settle"));
    let (led_holder, led_line) = scenarios::holder("ledger").unwrap();
    let (permit_holder, _) = scenarios::holder("payments concurrency limit").unwrap();
    assert_eq!((led_holder, permit_holder), (settle_id, charge_id));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http1",
            "in_flight": 2,
            // create_charge (in charge, holding the only permit) waits for the
            // ledger settle holds; settle waits in poll_ready for that permit.
            "diagnoses": [
                {"kind": "deadlock", "tasks": [charge_id, settle_id]},
            ],
            "resources": [
                {"kind": "mutex", "name": "ledger", "held_by": [settle_id], "waited_by": [charge_id], "held_line": led_line},
                // The permit is not a local of user code: tower keeps it in the
                // ResponseFuture of create_charge's call (taken in poll_ready).
                {"kind": "semaphore", "name": "payments concurrency limit", "permits": 1,
                 "held_by": [charge_id], "waited_by": [settle_id],
                 "held_in": "tower::limit::concurrency::future::ResponseFuture._permit"},
            ],
        }),
    );
    let _keep = (state, clients, server);
    std::future::pending::<()>().await;
}
