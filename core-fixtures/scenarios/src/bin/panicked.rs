//! A task that owns a future which panicked when it was polled.
//!
//! `holder` builds `Pin<Box<dyn Future<Output = u32> + Send>>` from the async
//! fn `explodes`, polls it once by hand (`std::future::poll_fn` inside
//! `std::panic::catch_unwind(AssertUnwindSafe(..))`), so the panic unwinds
//! out of the coroutine and leaves it in its "panicked"/poisoned state. The
//! task keeps the box alive across its final await on a `Notify` nobody
//! notifies. `"panicked_future_fn"` names the async fn whose state machine is
//! poisoned; the task itself is an ordinary idle task. `bystander` is a plain
//! idle task for contrast.
//!
//! The panic message ("explodes: boom", no backtrace) goes to run.log.
//!
//! Runtime: multi_thread, 2 workers.

use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;

async fn explodes(n: u32) -> u32 {
    if n > 0 {
        panic!("explodes: boom");
    }
    tokio::task::yield_now().await;
    n
}

async fn holder(n: Arc<Notify>) {
    let mut fut: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(explodes(1));
    let polled = park!(0, std::future::poll_fn(|cx| {
        let r = catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx)));
        Poll::Ready(r.is_err())
    }))
    .await;
    assert!(polled, "explodes did not panic");
    park!(0, n.notified()).await;
    drop(fut);
}

async fn bystander(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    // Print just the message: the default hook with RUST_BACKTRACE set would
    // symbolize a backtrace and leave ~60 MB of parsed debug info on the heap.
    std::panic::set_hook(Box::new(|info| eprintln!("{info}")));
    let n = Arc::new(Notify::new());
    let h = spawn_named("holder", holder(n.clone()));
    let b = spawn_named("bystander", bystander(n.clone()));
    scenarios::wait_parked(&[(h.id(), 2), (b.id(), 1)]).await;

    let h_id = scenarios::id_u64(h.id());
    scenarios::annotate(h_id, "panicked_future_fn", json!(std::any::type_name_of_val(&explodes)));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "resources": [],
            "panicked": [{"task": h_id, "future_fn": std::any::type_name_of_val(&explodes), "local": "fut"}],
        }),
    );
    let _keep = (n, h, b);
    std::future::pending::<()>().await;
}
