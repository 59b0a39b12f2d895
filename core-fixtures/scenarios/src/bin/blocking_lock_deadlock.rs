//! A deadlock through a plain thread's `blocking_lock` (issue 12): the
//! synchronous wait is an edge of the graph like a task's await.
//!
//! `settle` (a task) holds the `orders` tokio Mutex across an await and
//! waits for `ledger`. The plain `std::thread` `reconciler` took
//! `ledger.blocking_lock()` (a guard in a local of its frame) and then
//! blocks in `orders.blocking_lock()` (a `block_on` of `Mutex::lock` on
//! that thread). Neither can go on: `cycle = [settle, thread reconciler]`.
//! `bystander` idles on a Notify, keeping the Sender of an mpsc channel
//! whose Receiver the plain thread `drain` waits on in `blocking_recv`; the
//! plain thread `bridge` is in `Handle::block_on` of a future waiting on
//! that Notify; `writer` is in `blocking_write` of a RwLock the task
//! `reader` holds a read guard of; `pusher` in `blocking_send` on a full
//! channel whose Receiver the task `consumer` keeps. None is a deadlock
//! (`"thread_waits"`).
//!
//! Truth: `"diagnoses": [{"kind": "deadlock", "tasks": [settle],
//! "threads": [reconciler's tid]}]`; resources with `held_by_thread` /
//! `waited_by_thread`, the lines of the guards and of the blocking wait.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::{mpsc, Arc};

use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::{Mutex, Notify};

type Orders = Arc<Mutex<Vec<u32>>>;
type Ledger = Arc<Mutex<Vec<i64>>>;

async fn settle(orders: Orders, ledger: Ledger, go: mpsc::Sender<()>) {
    let mut o = park!(0, orders.lock()).await; hold!("orders");
    o.push(1);
    go.send(()).unwrap();
    let mut l = park!(0, ledger.lock()).await;
    l.push(-1);
}

async fn bystander(n: Arc<Notify>, tx: tokio::sync::mpsc::Sender<u32>) {
    park!(0, n.notified()).await;
    drop(tx);
}

/// A plain thread in `blocking_recv` on a channel whose Sender `bystander`
/// keeps: a synchronous wait, not a deadlock (the Notify could wake it).
fn drain(mut rx: tokio::sync::mpsc::Receiver<u32>, ready: mpsc::Sender<u64>) {
    ready.send(scenarios::gettid()).unwrap();
    let _ = rx.blocking_recv();
}

/// Holds a read guard of `config` across an await on the Notify.
async fn reader(config: Arc<tokio::sync::RwLock<u32>>, n: Arc<Notify>) {
    let _g = park!(0, config.read()).await; hold!("config");
    park!(0, n.notified()).await;
}

/// Keeps the Receiver of a full channel without reading it.
async fn consumer(rx: tokio::sync::mpsc::Receiver<u32>, n: Arc<Notify>) {
    park!(0, n.notified()).await;
    drop(rx);
}

/// A plain thread in `blocking_write` of a RwLock a task reads.
fn writer(config: Arc<tokio::sync::RwLock<u32>>, ready: mpsc::Sender<u64>) {
    ready.send(scenarios::gettid()).unwrap();
    *config.blocking_write() += 1;
}

/// A plain thread in `blocking_send` on a full channel.
fn pusher(tx: tokio::sync::mpsc::Sender<u32>, ready: mpsc::Sender<u64>) {
    tx.blocking_send(1).unwrap();
    ready.send(scenarios::gettid()).unwrap();
    let _ = tx.blocking_send(2);
}

/// A plain thread in `Handle::block_on` of a future waiting on a Notify.
fn bridge(h: tokio::runtime::Handle, n: Arc<Notify>, ready: mpsc::Sender<u64>) {
    ready.send(scenarios::gettid()).unwrap();
    h.block_on(async move { n.notified().await });
}

struct Lines {
    ledger_guard: u32,
    orders_wait: u32,
}

fn reconciler(orders: Orders, ledger: Ledger, held: mpsc::Sender<(u64, Lines)>, go: mpsc::Receiver<()>) {
    let ledger_guard = line!() + 1;
    let mut l = ledger.blocking_lock();
    l.push(0);
    let orders_wait = line!() + 3;
    held.send((scenarios::gettid(), Lines { ledger_guard, orders_wait })).unwrap();
    go.recv().unwrap();
    let mut o = orders.blocking_lock();
    o.push(0);
    drop((l, o));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let orders: Orders = Arc::new(Mutex::new(Vec::new()));
    let ledger: Ledger = Arc::new(Mutex::new(Vec::new()));
    let (held_tx, held_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel();
    let (o2, l2) = (orders.clone(), ledger.clone());
    std::thread::Builder::new()
        .name("reconciler".into())
        .spawn(move || reconciler(o2, l2, held_tx, go_rx))
        .unwrap();
    let (tid, lines) = held_rx.recv().unwrap();
    let n = Arc::new(Notify::new());
    let s = spawn_named("settle", settle(orders.clone(), ledger.clone(), go_tx));
    let (tx, rx) = tokio::sync::mpsc::channel::<u32>(1);
    let b = spawn_named("bystander", bystander(n.clone(), tx));
    let (dtx, drx) = mpsc::channel();
    let (btx, brx) = mpsc::channel();
    std::thread::Builder::new().name("drain".into()).spawn(move || drain(rx, dtx)).unwrap();
    let (h, n2) = (tokio::runtime::Handle::current(), n.clone());
    std::thread::Builder::new().name("bridge".into()).spawn(move || bridge(h, n2, btx)).unwrap();
    let (drain_tid, bridge_tid) = (drx.recv().unwrap(), brx.recv().unwrap());
    let config = Arc::new(tokio::sync::RwLock::new(0u32));
    let rd = spawn_named("reader", reader(config.clone(), n.clone()));
    scenarios::wait_parked(&[(rd.id(), 2)]).await;
    let (wtx, wrx) = mpsc::channel();
    let c2 = config.clone();
    std::thread::Builder::new().name("writer".into()).spawn(move || writer(c2, wtx)).unwrap();
    let (ftx, frx) = tokio::sync::mpsc::channel::<u32>(1);
    let cs = spawn_named("consumer", consumer(frx, n.clone()));
    let (ptx, prx) = mpsc::channel();
    std::thread::Builder::new().name("pusher".into()).spawn(move || pusher(ftx, ptx)).unwrap();
    let (writer_tid, pusher_tid) = (wrx.recv().unwrap(), prx.recv().unwrap());
    scenarios::wait_parked(&[(cs.id(), 1)]).await;
    scenarios::wait_parked(&[(s.id(), 2), (b.id(), 1)]).await;
    // the thread is in orders.blocking_lock() by now (it only waited for go)
    let s_id = scenarios::id_u64(s.id());
    let (_, orders_line) = scenarios::holder("orders").unwrap();
    scenarios::annotate(s_id, "waits_on", json!({"kind": "mutex", "name": "ledger"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [{"kind": "deadlock", "tasks": [s_id], "threads": [tid]}],
            // synchronous waits of plain threads that are no deadlock
            "thread_waits": [
                {"thread": drain_tid, "name": "drain", "kind": "mpsc", "side": "recv",
                 "sender_held_by": scenarios::id_u64(b.id())},
                {"thread": bridge_tid, "name": "bridge", "kind": "notify"},
                {"thread": writer_tid, "name": "writer", "kind": "rwlock", "side": "write",
                 "held_by": scenarios::id_u64(rd.id())},
                {"thread": pusher_tid, "name": "pusher", "kind": "mpsc", "side": "send",
                 "receiver_held_by": scenarios::id_u64(cs.id())},
            ],
            "resources": [
                {"kind": "mutex", "name": "orders", "held_by": [s_id], "held_line": orders_line,
                 "waited_by": [], "waited_by_thread": tid, "wait_line": lines.orders_wait},
                {"kind": "mutex", "name": "ledger", "held_by": [], "held_by_thread": tid,
                 "held_line": lines.ledger_guard, "held_local": "l", "waited_by": [s_id]},
            ],
        }),
    );
    std::future::pending::<()>().await;
    drop((s, b, rd, cs, config));
}
