//! A chain of tasks each awaiting the next one's `JoinHandle`.
//!
//! `stage0` awaits the JoinHandle of `stage1`, which awaits `stage2`'s, ...
//! down to `stage4`, which waits on a `tokio::sync::Notify` that nobody will
//! ever notify (e.g. a shutdown signal that was never wired up). Not a
//! deadlock cycle, but a wait chain: taskscope should be able to follow
//! stage0 -> stage1 -> ... -> stage4 -> Notify.
//!
//! The deepest stage is spawned first so each handle can be passed up.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

async fn stage4(shutdown: Arc<Notify>) -> u32 {
    park!(0, shutdown.notified()).await;
    4
}

async fn stage3(next: JoinHandle<u32>) -> u32 {
    park!(0, next).await.unwrap() + 3
}

async fn stage2(next: JoinHandle<u32>) -> u32 {
    park!(0, next).await.unwrap() + 2
}

async fn stage1(next: JoinHandle<u32>) -> u32 {
    park!(0, next).await.unwrap() + 1
}

async fn stage0(next: JoinHandle<u32>) -> u32 {
    park!(0, next).await.unwrap()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let shutdown = Arc::new(Notify::new());

    let h4 = spawn_named("stage4", stage4(shutdown.clone()));
    let ids4 = h4.id();
    let h3 = spawn_named("stage3", stage3(h4));
    let ids3 = h3.id();
    let h2 = spawn_named("stage2", stage2(h3));
    let ids2 = h2.id();
    let h1 = spawn_named("stage1", stage1(h2));
    let ids1 = h1.id();
    let h0 = spawn_named("stage0", stage0(h1));
    let ids0 = h0.id();

    let ids = [ids0, ids1, ids2, ids3, ids4];
    let expected: Vec<_> = ids.iter().map(|&id| (id, 1)).collect();
    scenarios::wait_parked(&expected).await;

    let n: Vec<u64> = ids.iter().map(|&id| scenarios::id_u64(id)).collect();
    let mut resources: Vec<_> = (0..4)
        .map(|k| json!({"kind": "join", "name": format!("stage{}", k + 1), "target": n[k + 1], "waited_by": [n[k]]}))
        .collect();
    resources.push(json!({"kind": "notify", "name": "shutdown", "waited_by": [n[4]]}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "resources": resources,
        }),
    );
    let _keep = (h0, shutdown);
    std::future::pending::<()>().await;
}
