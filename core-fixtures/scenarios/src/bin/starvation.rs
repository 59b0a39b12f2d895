//! Starvation on a current_thread runtime: one task never yields.
//!
//! `waiter0..2` park on a `Notify`. Then `hog` is spawned: it wakes all the
//! waiters (`notify_waiters`, so they become NOTIFIED and sit in the run
//! queue) and then spins on an `AtomicBool` with `std::hint::spin_loop` for up
//! to an hour without ever returning `Pending`. The only runtime thread (the
//! main thread, inside `block_on`) is stuck in hog's poll, so the waiters are
//! never polled again -- and neither is main's own future.
//!
//! Hence the READY handshake is done by a plain `std::thread` (spawned before
//! the hog) that watches the registry, then writes the truth with the
//! runtime's `Handle` entered.
//!
//! Truth: hog is `"state": "running"` on `"thread"` = the main thread's tid,
//! with `chain[0].line` = the spin loop line (the whole loop is on one line)
//! and `"last_await_line": null` (its state machine is still unresumed); the waiters are
//! `"state": "notified"` at their `notified().await` line. Diagnosis
//! starvation: `"tasks": [hog]`, `"starved": [waiters]`.
//!
//! Runtime: current_thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;

static STOP: AtomicBool = AtomicBool::new(false);

async fn waiter(n: Arc<Notify>) {
    park!(0, n.notified()).await;
    println!("woken");
}

async fn hog(n: Arc<Notify>) {
    n.notify_waiters();
    let start = Instant::now();
    // The whole spin loop is on the running!() line, so the hog's native frame
    // is on that line whatever instruction it is at.
    scenarios::running!(); while !STOP.load(Ordering::Relaxed) && start.elapsed() < Duration::from_secs(3600) { std::hint::spin_loop(); }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = scenarios::truth_path();
    let n = Arc::new(Notify::new());
    let waiters: Vec<_> = (0..3).map(|k| spawn_named(&format!("waiter{k}"), waiter(n.clone()))).collect();
    let expected: Vec<_> = waiters.iter().map(|h| (h.id(), 1)).collect();
    scenarios::wait_parked(&expected).await;
    let w_ids: Vec<u64> = waiters.iter().map(|h| scenarios::id_u64(h.id())).collect();
    for &id in &w_ids {
        scenarios::annotate(id, "state", json!("notified"));
        scenarios::annotate(id, "waits_on", json!({"kind": "notify", "name": "go"}));
    }

    let handle = tokio::runtime::Handle::current();
    let writer = std::thread::spawn(move || {
        let _enter = handle.enter();
        let start = Instant::now();
        let hog_id = loop {
            if let Some(id) = scenarios::task_id("hog") {
                if scenarios::annotation(id, "thread").is_some() {
                    break id;
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "hog never started");
            std::thread::sleep(Duration::from_millis(5));
        };
        std::thread::sleep(scenarios::SETTLE);
        // Everyone holds a clone of the Notify: the waiters and the hog.
        let held_by: Vec<u64> = w_ids.iter().copied().chain([hog_id]).collect();
        scenarios::write_truth(
            &path,
            json!({
                "scenario": env!("CARGO_BIN_NAME"),
                "cycle": null,
                "diagnoses": [{"kind": "starvation", "tasks": [hog_id], "starved": w_ids}],
                "resources": [
                    {"kind": "notify", "name": "go", "held_by": held_by, "held_by_main": true,
                     "waited_by": [], "notified": w_ids, "held_line": null},
                ],
            }),
        );
    });
    let h = spawn_named("hog", hog(n.clone()));
    let _keep = (n, waiters, h, writer);
    std::future::pending::<()>().await;
}
