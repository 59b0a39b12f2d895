//! A plain hyper 1.x server and a tower stack, four requests in flight.
//!
//! Two listeners. On the first, each connection is
//! `hyper::server::conn::http1::Builder::serve_connection` with a
//! `service_fn` calling `route`: `GET /users/{id}` -> `get_user` -> `lookup`
//! waits for a `Notify` nobody notifies; `POST /upload` -> `upload` waits on
//! a `oneshot` whose Sender main keeps. On the second, connections serve a
//! `tower::ServiceBuilder` stack, `buffer(8)` -> `concurrency_limit(4)` ->
//! `timeout(1 h)` -> `service_fn(report)`, through hyper-util's
//! `TowerToHyperService`: `report` -> `build_report` waits for a `Notify`.
//! The Buffer's worker is a task tower spawns.
//!
//! The program spawns every connection task itself (`serve_plain`,
//! `serve_tower`), so their chains start in this file; the accept loops
//! accept a bounded number of connections, and the clients (hyper's HTTP/1
//! client) connect one after another so connection N is client N.
//!
//! Runtime: multi_thread, 2 workers.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Notify};
use tower::{BoxError, ServiceBuilder};

type Reply = Result<Response<Full<Bytes>>, Infallible>;

#[derive(Clone, Default)]
struct AppState {
    /// Signalled when the user directory answers; never, in this program.
    directory: Arc<Notify>,
    /// Signalled when report data is ready; never, in this program.
    report_data: Arc<Notify>,
    /// Acknowledgement senders of the uploads in progress; main keeps them.
    acks: Arc<std::sync::Mutex<Vec<oneshot::Sender<()>>>>,
}

fn text(body: String) -> Response<Full<Bytes>> {
    Response::new(Full::new(Bytes::from(body)))
}

async fn lookup(state: &AppState, id: u32) -> String {
    park!(3, state.directory.notified()).await;
    format!("user {id}")
}

async fn get_user(state: AppState, id: u32) -> Reply {
    let name = park!(2, lookup(&state, id)).await;
    Ok(text(name))
}

async fn upload(state: AppState) -> Reply {
    let (tx, rx) = oneshot::channel();
    state.acks.lock().unwrap().push(tx);
    park!(2, rx).await.ok();
    Ok(text("stored".into()))
}

/// The plain service: a hand-written router.
async fn route(req: Request<Incoming>, state: AppState) -> Reply {
    let path = req.uri().path().to_string();
    if let Some(id) = path.strip_prefix("/users/") {
        park!(1, get_user(state, id.parse().unwrap_or(0))).await
    } else if path == "/upload" {
        park!(1, upload(state)).await
    } else {
        Ok(text("not found".into()))
    }
}

async fn build_report(state: &AppState, name: &str) -> String {
    park!(2, state.report_data.notified()).await;
    format!("report {name}")
}

/// The service at the bottom of the tower stack.
async fn report(req: Request<Incoming>, state: AppState) -> Reply {
    let name = req.uri().path().trim_start_matches("/reports/").to_string();
    let body = park!(1, build_report(&state, &name)).await;
    Ok(text(body))
}

async fn serve_plain(stream: TcpStream, state: AppState) {
    let svc = service_fn(move |req| route(req, state.clone()));
    park!(0, http1::Builder::new().serve_connection(TokioIo::new(stream), svc)).await.ok();
}

async fn serve_tower<S>(stream: TcpStream, svc: S)
where
    S: tower::Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let svc = TowerToHyperService::new(svc);
    park!(0, http1::Builder::new().serve_connection(TokioIo::new(stream), svc)).await.ok();
}

/// Accepts `n` plain connections; the (n+1)-th accept is where it stays.
async fn accept_plain(listener: TcpListener, state: AppState, n: usize) {
    for i in 0..=n {
        let (stream, _) = park!(0, listener.accept()).await.expect("accept");
        spawn_named(&format!("plain conn {i}"), serve_plain(stream, state.clone()));
    }
}

/// Accepts `n` connections for the tower stack; the (n+1)-th accept stays.
async fn accept_tower<S>(listener: TcpListener, svc: S, n: usize)
where
    S: tower::Service<Request<Incoming>, Response = Response<Full<Bytes>>, Error = BoxError> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    for i in 0..=n {
        let (stream, _) = park!(0, listener.accept()).await.expect("accept");
        spawn_named(&format!("tower conn {i}"), serve_tower(stream, svc.clone()));
    }
}

/// One client request on a connected stream; stays in `send_request`.
async fn client(stream: TcpStream, method: &'static str, path: &'static str) {
    let mut sender = stacks::h1_client(stream).await;
    let resp = park!(0, sender.send_request(stacks::request(method, path))).await;
    drop(resp);
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    stacks::check_tokio_version();
    let path = scenarios::truth_path();
    let state = AppState::default();
    let plain = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let towered = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let (plain_addr, tower_addr) = (plain.local_addr().unwrap(), towered.local_addr().unwrap());

    let report_state = state.clone();
    let stack = ServiceBuilder::new()
        .buffer(8)
        .concurrency_limit(4)
        .timeout(Duration::from_secs(3600))
        .service(tower::service_fn(move |req| report(req, report_state.clone())));

    let plain_requests = [("GET", "/users/7"), ("POST", "/upload")];
    let tower_requests = [("GET", "/reports/daily"), ("GET", "/reports/weekly")];
    let acc_plain = spawn_named("accept plain", accept_plain(plain, state.clone(), plain_requests.len()));
    let acc_tower = spawn_named("accept tower", accept_tower(towered, stack, tower_requests.len()));

    // Connect one after another: the accept queue is FIFO, so connection i
    // of each listener carries request i.
    let mut clients = Vec::new();
    for (addr, requests) in [(plain_addr, &plain_requests), (tower_addr, &tower_requests)] {
        for &(m, p) in requests.iter() {
            let stream = stacks::connect(addr).await;
            clients.push((format!("{m} {p}"), spawn_named(&format!("client {m} {p}"), client(stream, m, p))));
        }
    }

    // Parks: plain conn 0 (GET /users/7) serve_plain, route, get_user, lookup:
    // 4; plain conn 1 (POST /upload) 3; tower conns serve_tower, report,
    // build_report: 3; accept loops n + 1; clients 1.
    let mut expected: Vec<(String, usize)> = vec![
        ("plain conn 0".into(), 4),
        ("plain conn 1".into(), 3),
        ("tower conn 0".into(), 3),
        ("tower conn 1".into(), 3),
        ("accept plain".into(), plain_requests.len() + 1),
        ("accept tower".into(), tower_requests.len() + 1),
    ];
    expected.extend(clients.iter().map(|(r, _)| (format!("client {r}"), 1)));
    let expected_ref: Vec<(&str, usize)> = expected.iter().map(|(n, k)| (n.as_str(), *k)).collect();
    scenarios::wait_named(&expected_ref).await;

    for (r, c) in &clients {
        scenarios::annotate(scenarios::id_u64(c.id()), "role", json!("client"));
        scenarios::annotate(scenarios::id_u64(c.id()), "request", json!(r));
    }
    let conns = [("plain conn 0", plain_requests[0]), ("plain conn 1", plain_requests[1]),
                 ("tower conn 0", tower_requests[0]), ("tower conn 1", tower_requests[1])];
    for (name, (m, p)) in conns {
        let id = scenarios::task_id(name).unwrap();
        scenarios::annotate(id, "role", json!("handler"));
        scenarios::annotate(id, "request", json!(format!("{m} {p}")));
        scenarios::annotate(id, "stack", json!(if name.starts_with("tower") { "tower" } else { "hyper" }));
    }
    for acc in [&acc_plain, &acc_tower] {
        scenarios::annotate(scenarios::id_u64(acc.id()), "role", json!("server"));
    }
    assert_eq!(state.acks.lock().unwrap().len(), 1, "one upload in progress");
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "protocol": "http1",
            "in_flight": 4,
            // main keeps the Notifies and the ack Sender: nobody is stuck for good.
            "diagnoses": [],
        }),
    );
    let _keep = (state, clients, acc_plain, acc_tower);
    std::future::pending::<()>().await;
}
