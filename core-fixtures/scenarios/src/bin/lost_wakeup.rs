//! Lost wakeups: tasks waiting for a signal that nothing reachable can send.
//!
//! - `orphan_rx` awaits a `oneshot::Receiver` whose `Sender` sits in a
//!   `Box::leak`ed struct: the sender is alive (the channel is not closed, so
//!   the receiver never returns `Err`), but no task, no stack and no global
//!   references it. The channel is created and the sender leaked on a
//!   short-lived `std::thread`, so not even a stale copy of the leaked
//!   pointer survives on a live stack.
//! - `lonely_notify` awaits a `Notify` that lives only inside its own future
//!   (no `Arc`, nobody else can reach it).
//! - Controls, not diagnosed: `kept_rx` awaits a `oneshot::Receiver` whose
//!   `Sender` is owned by the `sender_keeper` task (itself in an hour-long
//!   sleep loop, so it could still send).
//!
//! Diagnoses: lost-wakeup for `orphan_rx` and for `lonely_notify`.
//!
//! Runtime: multi_thread, 2 workers.

use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{oneshot, Notify};

/// What a forgotten connection handle might look like.
#[allow(dead_code)]
struct PendingReply {
    request_id: u64,
    reply: oneshot::Sender<String>,
}

async fn orphan_rx(rx: oneshot::Receiver<String>) {
    let r = park!(0, rx).await;
    println!("got {r:?}");
}

async fn lonely_notify() {
    let n = Notify::new();
    park!(0, n.notified()).await;
}

async fn kept_rx(rx: oneshot::Receiver<String>) {
    let r = park!(0, rx).await;
    println!("got {r:?}");
}

/// Owns `_reply` (kept in its future across the await) and could send on it.
async fn sender_keeper(_reply: oneshot::Sender<String>) {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let (leak_line, orphan) = std::thread::spawn(|| {
        let line = line!() + 1;
        let (tx, rx) = oneshot::channel::<String>();
        let _: &'static mut PendingReply = Box::leak(Box::new(PendingReply { request_id: 42, reply: tx }));
        (line, rx)
    })
    .join()
    .unwrap();
    let o = spawn_named("orphan_rx", orphan_rx(orphan));
    let l = spawn_named("lonely_notify", lonely_notify());
    let kept_line = line!() + 1;
    let (tx, rx) = oneshot::channel::<String>();
    let k = spawn_named("kept_rx", kept_rx(rx));
    let s = spawn_named("sender_keeper", sender_keeper(tx));
    scenarios::wait_parked(&[(o.id(), 1), (l.id(), 1), (k.id(), 1), (s.id(), 1)]).await;

    let [o_id, l_id, k_id, s_id] = [o.id(), l.id(), k.id(), s.id()].map(scenarios::id_u64);
    scenarios::annotate(o_id, "waits_on", json!({"kind": "oneshot", "name": "orphan_reply"}));
    scenarios::annotate(l_id, "waits_on", json!({"kind": "notify", "name": "lonely"}));
    scenarios::annotate(k_id, "waits_on", json!({"kind": "oneshot", "name": "kept_reply"}));
    scenarios::annotate(s_id, "waits_on", json!({"kind": "sleep", "name": "keeper_sleep"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [
                {"kind": "lost-wakeup", "tasks": [o_id]},
                {"kind": "lost-wakeup", "tasks": [l_id]},
            ],
            "resources": [
                // held_by = tasks owning the Sender (none: it is leaked).
                {"kind": "oneshot", "name": "orphan_reply", "held_by": [], "waited_by": [o_id], "held_line": leak_line,
                 "sender_leaked": true},
                {"kind": "notify", "name": "lonely", "held_by": [l_id], "waited_by": [l_id], "held_line": null},
                {"kind": "oneshot", "name": "kept_reply", "held_by": [s_id], "waited_by": [k_id], "held_line": kept_line},
                {"kind": "sleep", "name": "keeper_sleep", "held_by": [], "waited_by": [s_id], "held_line": null},
            ],
        }),
    );
    let _keep = (o, l, k, s);
    std::future::pending::<()>().await;
}
