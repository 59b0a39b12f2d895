//! An actix-web-style server: every worker thread runs its own
//! `current_thread` runtime with a `LocalSet`, and all of its tasks are
//! `spawn_local` tasks (not in any runtime's OwnedTasks).
//!
//! Main is the "system" thread (a current_thread runtime + LocalSet too,
//! with one local task `system_monitor` on a `Notify`, and `supervisor`
//! awaiting its spawn_local JoinHandle: `"joins"`). Workers `worker-0`
//! and `worker-1` each accept on their own 127.0.0.1 listener in a local
//! task `accept{N}`; a real client (a plain `std::thread` with a
//! `TcpStream`) writes an HTTP request per connection and waits for the
//! answer, which the handler `request{N}.{K}` withholds: it has read the
//! request and waits (in the nested `load_answer`) on an `Rc<Notify>` nobody
//! notifies. `worker-2`'s only handler `request2.0` blocks its thread in
//! `std::thread::sleep` inside its poll (a slow synchronous handler): it is
//! running, and worker-2's thread is inside its LocalSet (task::local's
//! CURRENT thread-local is set there).
//!
//! Every LocalSet lives on its thread's stack (`rt.block_on(local.run_until
//! (..))`) and no thread is inside one except worker-2.
//!
//! Truth per task: `"home": "local_set"`, `"home_thread"` (the kernel tid of
//! the thread that owns the LocalSet), `"thread_name"`, `"runtime_flavor"`.
//! Top level `"local_sets"`: per thread, its tid, name and task ids.

use std::io::{Read, Write};
use std::rc::Rc;
use std::sync::mpsc;
use std::time::Duration;

use scenarios::{park, spawn_local_named};
use serde_json::json;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::LocalSet;

/// Requests sent to worker N (worker 2's first one blocks the thread).
const REQUESTS: [usize; 3] = [2, 1, 1];

fn mark_home() {
    scenarios::annotate_self("home", json!("local_set"));
    scenarios::annotate_self("home_thread", json!(scenarios::gettid()));
    scenarios::annotate_self("thread_name", json!(std::thread::current().name()));
    scenarios::annotate_self("runtime_flavor", json!("current_thread"));
}

/// The answer the handler waits for (withheld: nobody notifies).
async fn load_answer(gate: &Notify) {
    park!(1, gate.notified()).await;
}

/// One request: read it, then wait for the answer.
async fn handle(mut sock: TcpStream, gate: Rc<Notify>, blocking: bool) {
    mark_home();
    let mut buf = [0u8; 256];
    let _n = park!(0, sock.read(&mut buf)).await;
    if blocking {
        // A synchronous call in the handler: the worker's thread is stuck.
        scenarios::running!(); std::thread::sleep(Duration::from_secs(3600));
    }
    park!(0, load_answer(&gate)).await;
    drop(sock);
}

/// The worker's accept loop, a local task.
async fn accept_loop(listener: TcpListener, n: usize) {
    mark_home();
    let gate = Rc::new(Notify::new());
    let mut k = 0;
    loop {
        let (sock, _) = park!(0, listener.accept()).await.expect("accept");
        let blocking = n == 2 && k == 0;
        spawn_local_named(&format!("request{n}.{k}"), handle(sock, gate.clone(), blocking));
        k += 1;
    }
}

/// The `system` thread's own local task.
async fn monitor(stop: Rc<Notify>) {
    mark_home();
    park!(0, stop.notified()).await;
}

/// Awaits the monitor's JoinHandle (a spawn_local JoinHandle).
async fn supervise(monitor: tokio::task::JoinHandle<()>) {
    mark_home();
    park!(0, monitor).await.unwrap();
}

fn worker(n: usize, ready: mpsc::Sender<(usize, std::net::SocketAddr, u64)>) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        spawn_local_named(&format!("accept{n}"), accept_loop(listener, n));
        ready.send((n, addr, scenarios::gettid())).unwrap();
        std::future::pending::<()>().await;
    });
}

/// A client: one connection, one request, waits for the answer forever.
fn client(addr: std::net::SocketAddr, path: String) {
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    unreachable!("the server never answers");
}

fn main() {
    let path = scenarios::truth_path();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let local = LocalSet::new();
    local.block_on(&rt, async move {
        let stop = Rc::new(Notify::new());
        let mon = spawn_local_named("system_monitor", monitor(stop.clone()));
        let mon_id = mon.id();
        let sup = spawn_local_named("supervisor", supervise(mon));
        scenarios::annotate(scenarios::id_u64(sup.id()), "joins", json!(scenarios::id_u64(mon_id)));
        let (tx, rx) = mpsc::channel();
        for n in 0..REQUESTS.len() {
            let tx = tx.clone();
            std::thread::Builder::new().name(format!("worker-{n}")).spawn(move || worker(n, tx)).unwrap();
        }
        let mut workers: Vec<(usize, std::net::SocketAddr, u64)> =
            (0..REQUESTS.len()).map(|_| rx.recv().unwrap()).collect();
        workers.sort();
        for &(n, addr, _) in &workers {
            for k in 0..REQUESTS[n] {
                let p = format!("/orders/{n}/{k}");
                std::thread::Builder::new().name(format!("client{n}.{k}")).spawn(move || client(addr, p)).unwrap();
                // One connection at a time, so request N.K is connection K.
                let name = format!("request{n}.{k}");
                let parks = if n == 2 && k == 0 { 1 } else { 3 };
                scenarios::wait_named(&[(name.as_str(), parks)]).await;
            }
            let acc = format!("accept{n}");
            scenarios::wait_named(&[(acc.as_str(), REQUESTS[n] + 1)]).await;
        }
        scenarios::wait_parked(&[(mon_id, 1), (sup.id(), 1)]).await;
        // The blocking handler has marked itself running (worker-2's thread
        // sleeps in its poll from then on).
        let start = std::time::Instant::now();
        while scenarios::task_id("request2.0").and_then(|id| scenarios::annotation(id, "thread")).is_none() {
            assert!(start.elapsed() < Duration::from_secs(30), "request2.0 never blocked");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(scenarios::SETTLE).await;
        let mut sets = vec![json!({
            "thread": scenarios::gettid(), "thread_name": "main",
            "tasks": [scenarios::id_u64(mon_id), scenarios::id_u64(sup.id())],
        })];
        for &(n, _, tid) in &workers {
            let mut ids = vec![scenarios::task_id(&format!("accept{n}")).unwrap()];
            for k in 0..REQUESTS[n] {
                ids.push(scenarios::task_id(&format!("request{n}.{k}")).unwrap());
            }
            sets.push(json!({"thread": tid, "thread_name": format!("worker-{n}"), "tasks": ids}));
        }
        scenarios::write_truth(
            &path,
            json!({
                "scenario": env!("CARGO_BIN_NAME"),
                "local_sets": sets,
                "in_flight": REQUESTS.iter().sum::<usize>(),
            }),
        );
        std::future::pending::<()>().await;
    });
}
