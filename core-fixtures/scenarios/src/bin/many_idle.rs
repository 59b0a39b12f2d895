//! A server with 10,000 idle sessions.
//!
//! Each `session(i)` task waits on its own `oneshot::Receiver` for a shutdown
//! / reply message that never comes (main keeps every `Sender` alive). Models
//! a large, healthy-but-idle task population: taskscope must list all of them
//! quickly and must not report a deadlock.
//!
//! Runtime: multi_thread, 2 workers.

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::oneshot;

/// 10,000 by default; the benchmark scenario `many_idle_100k` sets
/// SESSIONS=100000 in the environment.
fn sessions() -> usize {
    std::env::var("SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// One client session, idle until its reply arrives.
async fn session(i: usize, reply: oneshot::Receiver<String>) {
    let msg = park!(0, reply).await;
    println!("session {i} got {msg:?}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let n = sessions();
    let mut senders = Vec::with_capacity(n);
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        let (tx, rx) = oneshot::channel::<String>();
        senders.push(tx);
        handles.push(spawn_named(&format!("session-{i}"), session(i, rx)));
    }

    let expected: Vec<_> = handles.iter().map(|h| (h.id(), 1)).collect();
    scenarios::wait_parked(&expected).await;

    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "resources": [
                {"kind": "oneshot", "name": "session replies", "count": n,
                 "note": "every sender is alive in main; nothing is ever sent"},
            ],
        }),
    );
    let _keep = (senders, handles);
    std::future::pending::<()>().await;
}
