//! A tokio Mutex held by a plain OS thread, not by a task.
//!
//! `maintenance` is a `std::thread` that takes `db.blocking_lock()` and then
//! sleeps in `std::thread::sleep` with the guard in a local: synchronous code
//! on a thread stack. `query` (a task) waits for the same lock. The holder
//! is found among the thread's stack-frame locals (gdb's unwinder), so the
//! graph says "held by thread <tid>"; nothing is a cycle (the thread could
//! wake up and release), so the diagnoses are empty.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Mutex;

async fn query(db: Arc<Mutex<Vec<u32>>>) -> usize {
    let rows = park!(0, db.lock()).await;
    rows.len()
}

fn maintenance(db: Arc<Mutex<Vec<u32>>>, ready: std::sync::mpsc::Sender<(u64, u32)>) {
    let guard_line = line!() + 1;
    let mut guard = db.blocking_lock();
    guard.push(1);
    ready.send((scenarios::gettid(), guard_line)).unwrap();
    loop {
        std::thread::sleep(Duration::from_secs(3600));
        if guard.len() > 1_000_000 {
            break;
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let db = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let db2 = db.clone();
    std::thread::Builder::new()
        .name("maintenance".into())
        .spawn(move || maintenance(db2, tx))
        .unwrap();
    let (thread, guard_line) = rx.recv().unwrap();
    let q = spawn_named("query", query(db.clone()));
    scenarios::wait_parked(&[(q.id(), 1)]).await;
    let q_id = scenarios::id_u64(q.id());
    scenarios::annotate(q_id, "waits_on", json!({"kind": "mutex", "name": "db"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [],
            "resources": [
                {"kind": "mutex", "name": "db", "held_by": [], "held_by_thread": thread,
                 "waited_by": [q_id], "held_line": guard_line, "held_local": "guard"},
            ],
        }),
    );
    let _keep = q;
    std::future::pending::<()>().await;
}
