//! Futurelock: a mutex owned by a future that its task no longer polls.
//!
//! - `owner` (T2) takes the `state` `tokio::sync::Mutex` and holds it until
//!   main says `release`, then sleeps in an hour-long loop (parked, healthy).
//! - `poller` (T1) pins `state.lock()` outside a `tokio::select!`, whose other
//!   branch is a 200 ms sleep. While T2 holds the lock, the pinned `Acquire`
//!   queues in the mutex's semaphore; the sleep wins, `select!` returns, and
//!   the pinned future stays alive (still queued) in T1's state machine. T1
//!   then awaits `state.lock()` a second time -- a new waiter behind its own
//!   pinned future -- and never polls the pinned one again.
//! - `victim` (T3) then waits for `state` too.
//! - main notifies `release`: T2 drops its guard, and the semaphore hands the
//!   permit to the first waiter, T1's pinned `Acquire`. Nobody will ever poll
//!   it, so T1's second lock and T3's lock wait forever.
//!
//! Truth: the mutex is held by T1 (through the unpolled future created on
//! `"held_line"`, also T1's `"pinned_line"`; the previous owner's
//! `hold!("state")` line is not used), waited by T1 and T3; diagnosis futurelock `[T1, T3]`
//! (T1 owns the stuck future, T3 is collateral). T2 is not involved.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use scenarios::{hold, mark, park, spawn_named};
use serde_json::json;
use tokio::sync::{Mutex, Notify};

type State = Arc<Mutex<u64>>;

async fn owner(state: State, held: Arc<Notify>, release: Arc<Notify>) {
    let mut g = park!(0, state.lock()).await; hold!("state");
    *g += 1;
    held.notify_one();
    park!(0, release.notified()).await;
    drop(g);
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

async fn poller(state: State, held: Arc<Notify>) {
    park!(0, held.notified()).await;
    let mut pinned = std::pin::pin!(state.lock()); hold!("state_pinned");
    mark!(0, "select");
    tokio::select! {
        biased;
        g = &mut pinned => unreachable!("owner still holds the lock: {}", *g),
        _ = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    // `pinned` is still alive and queued; now wait for the lock again.
    let mut g = park!(0, state.lock()).await;
    *g += 1;
    drop(pinned);
}

async fn victim(state: State) {
    let mut g = park!(0, state.lock()).await;
    *g += 1;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let state: State = Arc::new(Mutex::new(0));
    let held = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());

    let t2 = spawn_named("owner", owner(state.clone(), held.clone(), release.clone()));
    let t1 = spawn_named("poller", poller(state.clone(), held.clone()));
    // poller: 1 held, 2 select, 3 second lock.
    scenarios::wait_parked(&[(t2.id(), 2), (t1.id(), 3)]).await;
    let t3 = spawn_named("victim", victim(state.clone()));
    scenarios::wait_parked(&[(t3.id(), 1)]).await;
    release.notify_one();
    // owner: 3 = its first sleep after releasing.
    scenarios::wait_parked(&[(t2.id(), 3)]).await;

    let (t1_id, t2_id, t3_id) = (scenarios::id_u64(t1.id()), scenarios::id_u64(t2.id()), scenarios::id_u64(t3.id()));
    assert!(state.try_lock().is_err(), "the lock should be owned by poller's pinned future");
    assert!(!t1.is_finished() && !t3.is_finished(), "poller or victim got the lock");
    // The line poller created the future that ends up owning the lock.
    let (pin_task, pinned_line) = scenarios::holder("state_pinned").unwrap();
    assert_eq!(pin_task, t1_id);
    scenarios::annotate(t1_id, "pinned_line", json!(pinned_line));
    scenarios::annotate(t1_id, "waits_on", json!({"kind": "mutex", "name": "state"}));
    scenarios::annotate(t3_id, "waits_on", json!({"kind": "mutex", "name": "state"}));
    scenarios::annotate(t2_id, "waits_on", json!({"kind": "sleep", "name": "owner_sleep"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [{"kind": "futurelock", "tasks": [t1_id, t3_id], "holder": t1_id,
                           "description": "poller's pinned state.lock() future (losing select! branch) was granted the mutex but is never polled again; poller's own second lock and victim wait on it forever"}],
            "resources": [
                // held_by: the task whose (unpolled) future owns the permit.
                {"kind": "mutex", "name": "state", "held_by": [t1_id], "waited_by": [t1_id, t3_id],
                 "held_line": pinned_line, "held_by_unpolled_future": true},
                {"kind": "sleep", "name": "owner_sleep", "held_by": [], "waited_by": [t2_id], "held_line": null},
            ],
        }),
    );
    std::future::pending::<()>().await;
}
