//! The matrix's lost wakeups (after `core-fixtures/scenarios/src/bin/lost_wakeup.rs`).
//!
//! - `orphan_rx` awaits a `oneshot::Receiver` whose `Sender` sits in a
//!   `Box::leak`ed struct: the sender is alive (the channel is not closed,
//!   so the receiver never returns `Err`), but nothing reachable references
//!   it. The channel is made and the sender leaked on a short-lived
//!   `std::thread`, so no stale copy of the pointer survives on a live stack.
//! - `lonely_notify` awaits a `Notify` that lives only inside its own future.
//! - Controls, not diagnosed: `kept_rx` awaits a `oneshot::Receiver` whose
//!   `Sender` is owned by `sender_keeper` (in an hour-long sleep loop, so it
//!   could still send).
//!
//! Truth: `lost-wakeup` diagnoses for `orphan_rx` and for `lonely_notify`.
//! Runtime: multi_thread, 2 workers.

use std::time::Duration;

use mscen::{park, Json, Task};
use tokio::sync::{oneshot, Notify};

/// What a forgotten connection handle might look like.
#[allow(dead_code)]
struct PendingReply {
    request_id: u64,
    reply: oneshot::Sender<String>,
}

async fn orphan_rx(t: Task, rx: oneshot::Receiver<String>) {
    let r = park!(t, 0, rx).await;
    println!("got {r:?}");
}

async fn lonely_notify(t: Task) {
    let n = Notify::new();
    park!(t, 0, n.notified()).await;
}

async fn kept_rx(t: Task, rx: oneshot::Receiver<String>) {
    let r = park!(t, 0, rx).await;
    println!("got {r:?}");
}

/// Owns `_reply` (kept in its future across the await) and could send on it.
async fn sender_keeper(t: Task, _reply: oneshot::Sender<String>) {
    loop {
        park!(t, 0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = mscen::truth_path();
    let orphan = std::thread::spawn(|| {
        let (tx, rx) = oneshot::channel::<String>();
        let _: &'static mut PendingReply = Box::leak(Box::new(PendingReply { request_id: 42, reply: tx }));
        rx
    })
    .join()
    .unwrap();
    let (o, l, k, s) = (mscen::task("orphan_rx"), mscen::task("lonely_notify"), mscen::task("kept_rx"), mscen::task("sender_keeper"));
    let ho = mscen::spawn(o, orphan_rx(o, orphan));
    let hl = mscen::spawn(l, lonely_notify(l));
    let (tx, rx) = oneshot::channel::<String>();
    let hk = mscen::spawn(k, kept_rx(k, rx));
    let hs = mscen::spawn(s, sender_keeper(s, tx));
    mscen::wait_parked(&[(o, 1), (l, 1), (k, 1), (s, 1)]).await;

    let lost = |t: Task| Json::obj(vec![("kind", Json::str("lost-wakeup")), ("tasks", mscen::keys(&[t]))]);
    mscen::write_truth(
        &path,
        env!("CARGO_BIN_NAME"),
        "multi_thread",
        vec![("cycle", Json::Null), ("diagnoses", Json::Arr(vec![lost(o), lost(l)]))],
    );
    let _keep = (ho, hl, hk, hs);
    std::future::pending::<()>().await;
}
