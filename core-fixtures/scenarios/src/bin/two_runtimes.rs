//! Two runtimes in one process: the main multi-thread runtime and a
//! current-thread runtime on a dedicated "background" thread (a common
//! pattern for isolating slow work).
//!
//! `api` runs on the main runtime and waits on a Notify; `compactor` runs on
//! the background runtime and waits on a Notify too. Task ids are global in
//! tokio, so both sets are listed together; the truth records, per task,
//! which runtime flavor it runs on.
//!
//! Runtimes: multi_thread (2 workers) + current_thread.

use std::sync::Arc;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;

async fn api(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

async fn compactor(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let n = Arc::new(Notify::new());
    let a = spawn_named("api", api(n.clone()));

    // The background runtime lives on its own thread, inside block_on.
    let (tx, rx) = std::sync::mpsc::channel();
    let n2 = n.clone();
    std::thread::Builder::new()
        .name("background".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let c = spawn_named("compactor", compactor(n2));
                tx.send(c.id()).unwrap();
                std::future::pending::<()>().await;
            });
        })
        .unwrap();
    let c_id = rx.recv().unwrap();
    scenarios::wait_parked(&[(a.id(), 1), (c_id, 1)]).await;
    let (a_id, c_id) = (scenarios::id_u64(a.id()), scenarios::id_u64(c_id));
    scenarios::annotate(a_id, "runtime_flavor", json!("multi_thread"));
    scenarios::annotate(c_id, "runtime_flavor", json!("current_thread"));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [],
            "runtimes": ["multi_thread", "current_thread"],
        }),
    );
    let _keep = (a, n);
    std::future::pending::<()>().await;
}
