//! A large service at rest: N tasks (env TASKS, default 10,000) of a
//! realistic mix, with one AB-BA deadlock hidden in the middle.
//!
//! Tasks are spawned in blocks of 60 (the kind of each task, its share):
//!
//! | kind          | share | suspended at                                              |
//! |---------------|-------|-----------------------------------------------------------|
//! | `session`     | 40 %  | its own `oneshot::Receiver` (main keeps every Sender)      |
//! | `sleeper`     | 20 %  | `tokio::time::sleep` of an hour                            |
//! | `lock_waiter` | 10 %  | `Mutex::lock()` of a mutex a `lock_holder` holds (3 each)  |
//! | `mpsc_reader` | 15 %  | `Receiver::recv()` of its own channel (main keeps Senders) |
//! | `join_head`   | 3.3 % | the JoinHandle of a `join_mid`                             |
//! | `join_mid`    | 3.3 % | the JoinHandle of a `join_tail`                            |
//! | `join_tail`   | 3.3 % | the shared `Notify` (main keeps it; nobody notifies)       |
//! | `lock_holder` | 3.3 % | the shared `Notify`, holding an `OwnedMutexGuard`          |
//! | `notify_idle` | 1.7 % | the shared `Notify`; also fills the last, partial block    |
//! | `deadlock_a`, `deadlock_b` | 1 each | the other's Mutex: `cycle = [a, b]`, spawned after half the blocks |
//!
//! A lock holder's guard is taken by main (`try_lock_owned`) before the
//! holder and its waiters are spawned, so who holds which mutex does not
//! depend on which worker polls first. The deadlock is made deterministic
//! by a `Barrier`, as in `mutex_deadlock`.
//!
//! The truth is compact (`scenarios::write_truth_kinds`): each task as
//! `{"id", "kind"}`, and per kind its count, future type, state, await line
//! and `waits_on` (the resource kind of taskscope's graph); `lock_groups`
//! (`[holder, waiter, waiter, waiter]` per mutex) and `join_chains`
//! (`[head, mid, tail]`); `cycle`, `diagnoses` and `resources` for the
//! deadlock. `mixed_10k`, `mixed_100k` and
//! `mixed_1m` in `core-fixtures/capture` are this program with TASKS set.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use scenarios::{hold, park_kind, spawn_kind};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Barrier, Mutex, Notify, OwnedMutexGuard};
use tokio::task::JoinHandle;

/// 10,000 by default; the capture names mixed_100k and mixed_1m set TASKS.
fn tasks() -> usize {
    std::env::var("TASKS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// A client session waiting for its reply.
async fn session(reply: oneshot::Receiver<u64>) {
    let _ = park_kind!("session", reply).await;
}

/// A periodic job between runs.
async fn sleeper() {
    park_kind!("sleeper", tokio::time::sleep(Duration::from_secs(3600))).await;
}

/// Holds a shard's lock while it waits for a signal that does not come.
async fn lock_holder(guard: OwnedMutexGuard<u64>, wake: Arc<Notify>) {
    park_kind!("lock_holder", wake.notified()).await;
    drop(guard);
}

/// Wants the shard's lock.
async fn lock_waiter(shard: Arc<Mutex<u64>>) {
    let mut n = park_kind!("lock_waiter", shard.lock()).await;
    *n += 1;
}

/// A consumer of its own queue.
async fn mpsc_reader(mut rx: mpsc::Receiver<u64>) {
    let _ = park_kind!("mpsc_reader", rx.recv()).await;
}

/// The last stage of a pipeline of three tasks.
async fn join_tail(wake: Arc<Notify>) -> u64 {
    park_kind!("join_tail", wake.notified()).await;
    3
}

async fn join_mid(next: JoinHandle<u64>) -> u64 {
    park_kind!("join_mid", next).await.unwrap_or(0) + 2
}

async fn join_head(next: JoinHandle<u64>) -> u64 {
    park_kind!("join_head", next).await.unwrap_or(0) + 1
}

/// A background task waiting to be told to do something.
async fn notify_idle(wake: Arc<Notify>) {
    park_kind!("notify_idle", wake.notified()).await;
}

/// The hidden AB-BA pair: `deadlock_a` takes `left` then wants `right`,
/// `deadlock_b` takes `right` then wants `left`.
async fn deadlock_a(left: Arc<Mutex<u64>>, right: Arc<Mutex<u64>>, barrier: Arc<Barrier>) {
    let mut l = left.lock().await; hold!("left");
    barrier.wait().await;
    let r = park_kind!("deadlock_a", right.lock()).await;
    *l += *r;
}

async fn deadlock_b(left: Arc<Mutex<u64>>, right: Arc<Mutex<u64>>, barrier: Arc<Barrier>) {
    let mut r = right.lock().await; hold!("right");
    barrier.wait().await;
    let l = park_kind!("deadlock_b", left.lock()).await;
    *r += *l;
}

const BLOCK: usize = 60;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let n = tasks();
    assert!(n >= BLOCK + 2, "TASKS must be at least {}", BLOCK + 2);
    let blocks = (n - 2) / BLOCK;
    let rest = n - 2 - blocks * BLOCK;

    let wake = Arc::new(Notify::new());
    let mut replies: Vec<oneshot::Sender<u64>> = Vec::with_capacity(blocks * 24);
    let mut queues: Vec<mpsc::Sender<u64>> = Vec::with_capacity(blocks * 9);
    let mut dl = (0, 0);
    // [holder, waiter, waiter, waiter] and [head, mid, tail], by task id.
    let mut lock_groups: Vec<[u64; 4]> = Vec::with_capacity(blocks * 2);
    let mut join_chains: Vec<[u64; 3]> = Vec::with_capacity(blocks * 2);
    let left = Arc::new(Mutex::new(0u64));
    let right = Arc::new(Mutex::new(0u64));
    let barrier = Arc::new(Barrier::new(2));

    for b in 0..blocks {
        if b == blocks / 2 {
            let a = spawn_kind("deadlock_a", deadlock_a(left.clone(), right.clone(), barrier.clone()));
            let bb = spawn_kind("deadlock_b", deadlock_b(left.clone(), right.clone(), barrier.clone()));
            dl = (scenarios::id_u64(a.id()), scenarios::id_u64(bb.id()));
        }
        for _ in 0..2 {
            let shard = Arc::new(Mutex::new(0u64));
            let guard = shard.clone().try_lock_owned().expect("a new mutex is free");
            let mut g = [0; 4];
            g[0] = scenarios::id_u64(spawn_kind("lock_holder", lock_holder(guard, wake.clone())).id());
            for w in &mut g[1..] {
                *w = scenarios::id_u64(spawn_kind("lock_waiter", lock_waiter(shard.clone())).id());
            }
            lock_groups.push(g);
        }
        for _ in 0..2 {
            let tail = spawn_kind("join_tail", join_tail(wake.clone()));
            let t = scenarios::id_u64(tail.id());
            let mid = spawn_kind("join_mid", join_mid(tail));
            let m = scenarios::id_u64(mid.id());
            let h = scenarios::id_u64(spawn_kind("join_head", join_head(mid)).id());
            join_chains.push([h, m, t]);
        }
        for _ in 0..24 {
            let (tx, rx) = oneshot::channel();
            replies.push(tx);
            spawn_kind("session", session(rx));
        }
        for _ in 0..12 {
            spawn_kind("sleeper", sleeper());
        }
        for _ in 0..9 {
            let (tx, rx) = mpsc::channel(1);
            queues.push(tx);
            spawn_kind("mpsc_reader", mpsc_reader(rx));
        }
        spawn_kind("notify_idle", notify_idle(wake.clone()));
    }
    for _ in 0..rest {
        spawn_kind("notify_idle", notify_idle(wake.clone()));
    }

    scenarios::wait_kinds(Duration::from_secs(600)).await;

    let (left_holder, left_line) = scenarios::holder("left").unwrap();
    let (right_holder, right_line) = scenarios::holder("right").unwrap();
    assert_eq!((left_holder, right_holder), dl);
    scenarios::write_truth_kinds(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            // deadlock_a waits for right (held by deadlock_b), b for left.
            "cycle": [dl.0, dl.1],
            "diagnoses": [{"kind": "deadlock", "tasks": [dl.0, dl.1]}],
            "resources": [
                {"kind": "mutex", "name": "left", "held_by": [dl.0], "waited_by": [dl.1], "held_line": left_line},
                {"kind": "mutex", "name": "right", "held_by": [dl.1], "waited_by": [dl.0], "held_line": right_line},
            ],
            "lock_groups": lock_groups,
            "join_chains": join_chains,
            "kinds": {
                "session": {"waits_on": "oneshot"},
                "sleeper": {"waits_on": "sleep"},
                "lock_holder": {"waits_on": "notify", "holds": "mutex"},
                "lock_waiter": {"waits_on": "mutex"},
                "mpsc_reader": {"waits_on": "mpsc"},
                "join_tail": {"waits_on": "notify"},
                "join_mid": {"waits_on": "joinhandle", "joins": "join_tail"},
                "join_head": {"waits_on": "joinhandle", "joins": "join_mid"},
                "notify_idle": {"waits_on": "notify"},
                "deadlock_a": {"waits_on": "mutex"},
                "deadlock_b": {"waits_on": "mutex"},
            },
        }),
    );
    let _keep = (replies, queues, wake, left, right);
    std::future::pending::<()>().await;
}
