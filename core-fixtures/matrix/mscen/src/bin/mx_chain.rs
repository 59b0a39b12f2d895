//! The matrix's await-chain shapes, one task each:
//!
//! - `deep`: `depth0` -> `depth1` -> `depth2` (3 nested async fns), the
//!   innermost awaiting a `Notify`: chain levels 0..2.
//! - `boxed`: awaits a `Pin<Box<dyn Future<Output = ()> + Send>>` made from
//!   the async fn `boxed_inner` (`"boxed_fn"`), which parks at level 1.
//! - `joiner`: `tokio::join!(branch_a(..), branch_b(..))`; both branches park
//!   on a `Notify`. chain[0] is the `join!` line (`"macro": "join"`), the
//!   branch fns are under `"branches"`.
//! - `timeouter`: `tokio::time::timeout(3600 s, timeout_inner(..))`;
//!   `timeout_inner` parks at level 1 (`"timeout_fn"`).
//! - `block`: an `async move {}` block in `main` (function
//!   `mx_chain::main::{{closure}}`), parked on a `Notify`.
//!
//! Every Notify is kept alive by main: nothing is diagnosed.
//! Runtime: multi_thread, 2 workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use mscen::{branch, mark, park, Json, Task};
use tokio::sync::Notify;

type Signal = Arc<Notify>;

async fn depth2(t: Task, n: Signal) -> u32 {
    park!(t, 2, n.notified()).await;
    2
}

async fn depth1(t: Task, n: Signal) -> u32 {
    park!(t, 1, depth2(t, n)).await + 1
}

async fn depth0(t: Task, n: Signal) -> u32 {
    park!(t, 0, depth1(t, n)).await
}

async fn boxed_inner(t: Task, n: Signal) {
    park!(t, 1, n.notified()).await;
}

async fn boxed(t: Task, n: Signal) {
    let fut: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(boxed_inner(t, n));
    park!(t, 0, fut).await;
}

async fn branch_a(t: Task, n: Signal) -> &'static str {
    branch!(t, 1, n.notified()).await;
    "a"
}

async fn branch_b(t: Task, n: Signal) -> &'static str {
    branch!(t, 1, n.notified()).await;
    "b"
}

async fn joiner(t: Task, na: Signal, nb: Signal) {
    mark!(t, 0, "join");
    let (a, b) = tokio::join!(branch_a(t, na), branch_b(t, nb));
    println!("joined {a}{b}");
}

async fn timeout_inner(t: Task, n: Signal) -> u32 {
    park!(t, 1, n.notified()).await;
    5
}

async fn timeouter(t: Task, n: Signal) {
    let r = park!(t, 0, tokio::time::timeout(Duration::from_secs(3600), timeout_inner(t, n))).await;
    println!("timeout result {r:?}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = mscen::truth_path();
    let signals: Vec<Signal> = (0..6).map(|_| Arc::new(Notify::new())).collect();
    let s = |k: usize| signals[k].clone();

    let (d, bx, j, tm, bl) =
        (mscen::task("deep"), mscen::task("boxed"), mscen::task("joiner"), mscen::task("timeouter"), mscen::task("block"));
    let hd = mscen::spawn(d, depth0(d, s(0)));
    let hb = mscen::spawn(bx, boxed(bx, s(1)));
    let hj = mscen::spawn(j, joiner(j, s(2), s(3)));
    let ht = mscen::spawn(tm, timeouter(tm, s(4)));
    let n5 = s(5);
    let hl = mscen::spawn(bl, async move {
        park!(bl, 0, n5.notified()).await;
    });

    // One park per level (deep: 3), the join! mark plus one per branch.
    mscen::wait_parked(&[(d, 3), (bx, 2), (j, 3), (tm, 2), (bl, 1)]).await;

    mscen::annotate(bx, "boxed_fn", Json::str(mscen::type_name_of(&boxed_inner)));
    mscen::annotate(tm, "timeout_fn", Json::str(mscen::type_name_of(&timeout_inner)));
    mscen::write_truth(
        &path,
        env!("CARGO_BIN_NAME"),
        "multi_thread",
        vec![("cycle", Json::Null), ("diagnoses", Json::Arr(vec![]))],
    );
    let _keep = (signals, hd, hb, hj, ht, hl);
    std::future::pending::<()>().await;
}
