//! A future that returns Pending without registering its waker.
//!
//! `poller` awaits a hand-written `poll_fn` that always says Pending and
//! never stores `cx.waker()`: no waker for the task exists anywhere, so
//! nothing can ever wake it (a lost wakeup of the second kind). `waiter`
//! is the control: it waits on a `Notify` that main keeps and could
//! notify, so its waker is stored in the Notify's waiter list.
//!
//! Diagnoses: lost-wakeup for `poller` only.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::task::Poll;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;

async fn poller() {
    park!(0, std::future::poll_fn(|_cx| Poll::<()>::Pending)).await;
}

async fn waiter(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let notify = Arc::new(Notify::new());
    let p = spawn_named("poller", poller());
    let w = spawn_named("waiter", waiter(notify.clone()));
    scenarios::wait_parked(&[(p.id(), 1), (w.id(), 1)]).await;
    let [p_id, w_id] = [p.id(), w.id()].map(scenarios::id_u64);
    scenarios::annotate(w_id, "waits_on", json!({"kind": "notify", "name": "wake"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [{"kind": "lost-wakeup", "tasks": [p_id]}],
            "resources": [],
        }),
    );
    let _keep = (p, w, notify);
    std::future::pending::<()>().await;
}
