//! Barry's story: a task blocks its worker thread.
//!
//! `resize_images` awaits once (a short `sleep`), then calls
//! `std::thread::sleep(3600 s)` inside its poll -- a blocking call on a
//! runtime worker. Its state is RUNNING on that worker thread. Truth:
//! `"state": "running"`, `"thread"` = the worker's kernel tid, `chain[0].line`
//! = the line of the `std::thread::sleep` call (what the worker's native stack
//! shows, not an await), and `"last_await_line"` = the await it passed before
//! blocking (the state machine's discriminant still points there). Diagnosis
//! blocked-worker.
//!
//! `api0..api2` are ordinary idle tasks on `Notify`s; `ticker` sleeps in a
//! loop. The other worker keeps running the runtime.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;

async fn resize_images() {
    park!(0, tokio::time::sleep(Duration::from_millis(10))).await;
    scenarios::running!(); std::thread::sleep(Duration::from_secs(3600));
}

async fn api(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

async fn ticker() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let n = Arc::new(Notify::new());
    let apis: Vec<_> = (0..3).map(|k| spawn_named(&format!("api{k}"), api(n.clone()))).collect();
    let t = spawn_named("ticker", ticker());
    let mut expected: Vec<_> = apis.iter().map(|h| (h.id(), 1)).collect();
    expected.push((t.id(), 1));
    scenarios::wait_parked(&expected).await;

    let mut all: Vec<u64> = apis.iter().map(|h| scenarios::id_u64(h.id())).collect();
    for &id in &all {
        scenarios::annotate(id, "waits_on", json!({"kind": "notify", "name": "requests"}));
    }
    let t_id = scenarios::id_u64(t.id());
    scenarios::annotate(t_id, "waits_on", json!({"kind": "sleep", "name": "ticker_sleep"}));
    all.push(t_id);

    // Once a worker blocks, the runtime can stall: the blocked worker was the
    // one that fired the timer, the other worker stays parked, and nobody
    // drives the timer for main's `sleep`s. So the truth is written by a plain
    // thread that watches the registry.
    let handle = tokio::runtime::Handle::current();
    let writer = std::thread::spawn(move || {
        let _enter = handle.enter();
        let start = std::time::Instant::now();
        let b_id = loop {
            if let Some(id) = scenarios::task_id("resize_images") {
                if thread_of(id).is_some() {
                    break id;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "resize_images never blocked");
            std::thread::sleep(Duration::from_millis(5));
        };
        std::thread::sleep(scenarios::SETTLE);
        scenarios::write_truth(
            &path,
            json!({
                "scenario": env!("CARGO_BIN_NAME"),
                "cycle": null,
                "diagnoses": [{"kind": "blocked-worker", "tasks": [b_id], "thread": thread_of(b_id)}],
                "resources": [
                    {"kind": "notify", "name": "requests", "held_by": &all[..3], "held_by_main": true, "waited_by": &all[..3], "held_line": null},
                    {"kind": "sleep", "name": "ticker_sleep", "held_by": [], "waited_by": [t_id], "held_line": null},
                ],
            }),
        );
    });
    let b = spawn_named("resize_images", resize_images());
    let _keep = (n, apis, t, b, writer);
    std::future::pending::<()>().await;
}

fn thread_of(id: u64) -> Option<u64> {
    scenarios::annotation(id, "thread").and_then(|v| v.as_u64())
}
