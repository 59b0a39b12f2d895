//! Async backtraces through `futures` / `tracing` combinators: one task per
//! combinator, every leaf parked on its own `Notify` nobody notifies.
//!
//! - `joinall`: `futures::future::join_all` of `leaf_a`, `leaf_b`, `leaf_c`.
//!   Three distinct async fns have three distinct future types, so they are
//!   boxed (`FutureExt::boxed`, `Pin<Box<dyn Future<Output = ()> + Send>>`)
//!   to fit in one `Vec`; with <= 30 futures `JoinAll` is its "small" kind
//!   (a boxed slice of `MaybeDone`). chain[0] is the `join_all(..).await`
//!   line (no `"macro"`: a plain await), the leaves are under `"branches"`.
//! - `unordered`: a `FuturesUnordered` of the (boxed) `unord_a`, `unord_b`,
//!   `unord_c`, then `futs.next().await`. `"branches"` + `"children": 3`.
//! - `mapped` / `thened` / `fused` / `either`: `leaf().map(..)`,
//!   `leaf().then(..)`, `leaf().fuse()`, `Either::Left(leaf())` awaited;
//!   chain[0] is the await line, chain[1] is `leaf`'s park.
//! - `instrumented`: `leaf().instrument(tracing::info_span!("work"))` (no
//!   subscriber is installed, so the span is disabled but the
//!   `Instrumented` wrapper is still there). Levels 0 and 1.
//! - `joinset_count`: `JoinSet::join_next()` over `count_child0..2`
//!   (spawned on the JoinSet, registered by hand, each on a `Notify`).
//!   `"children": 3` (a count here) and `"children_ids"` (their task ids).
//!
//! Every Notify is kept alive by main. Runtime: multi_thread, 2 workers.

use std::sync::Arc;

use futures::future::{join_all, Either, FutureExt};
use futures::stream::{FuturesUnordered, StreamExt};
use scenarios::{branch, park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};
use tracing::Instrument;

type Signal = Arc<Notify>;

// ---- joinall: futures::future::join_all of three async fns ------------------

async fn leaf_a(n: Signal) {
    branch!(1, n.notified()).await;
}

async fn leaf_b(n: Signal) {
    branch!(1, n.notified()).await;
}

async fn leaf_c(n: Signal) {
    branch!(1, n.notified()).await;
}

async fn joinall(na: Signal, nb: Signal, nc: Signal) {
    let done = park!(0, join_all(vec![leaf_a(na).boxed(), leaf_b(nb).boxed(), leaf_c(nc).boxed()])).await;
    println!("joined {}", done.len());
}

// ---- unordered: FuturesUnordered + StreamExt::next -------------------------

async fn unord_a(n: Signal) -> u32 {
    branch!(1, n.notified()).await;
    0
}

async fn unord_b(n: Signal) -> u32 {
    branch!(1, n.notified()).await;
    1
}

async fn unord_c(n: Signal) -> u32 {
    branch!(1, n.notified()).await;
    2
}

async fn unordered(na: Signal, nb: Signal, nc: Signal) {
    let mut futs = FuturesUnordered::new();
    futs.push(unord_a(na).boxed());
    futs.push(unord_b(nb).boxed());
    futs.push(unord_c(nc).boxed());
    while let Some(v) = park!(0, futs.next()).await {
        println!("unordered got {v}");
    }
}

// ---- one leaf, wrapped by map / then / fuse / Either / Instrumented ---------

async fn leaf(n: Signal) {
    park!(1, n.notified()).await;
}

async fn mapped(n: Signal) {
    let v = park!(0, leaf(n).map(|x| x)).await;
    println!("mapped {v:?}");
}

async fn thened(n: Signal) {
    park!(0, leaf(n).then(|_| async {})).await;
}

async fn fused(n: Signal) {
    park!(0, leaf(n).fuse()).await;
}

async fn either(n: Signal) {
    let e: Either<_, std::future::Ready<()>> = Either::Left(leaf(n));
    park!(0, e).await;
}

async fn instrumented(n: Signal) {
    park!(0, leaf(n).instrument(tracing::info_span!("work"))).await;
}

// ---- joinset_count: JoinSet::join_next with 3 children ---------------------

async fn count_child(n: Signal, k: u32) -> u32 {
    park!(0, n.notified()).await;
    k
}

async fn joinset_count(n: Signal) {
    let mut set = JoinSet::new();
    for k in 0..3 {
        let fut = count_child(n.clone(), k);
        let ty = std::any::type_name_of_val(&fut);
        let handle = set.spawn(fut);
        scenarios::register(&format!("count_child{k}"), handle.id(), ty);
    }
    while let Some(r) = park!(0, set.join_next()).await {
        println!("child done {r:?}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let signals: Vec<Signal> = (0..12).map(|_| Arc::new(Notify::new())).collect();
    let s = |k: usize| signals[k].clone();

    let joinall_h = spawn_named("joinall", joinall(s(0), s(1), s(2)));
    let unordered_h = spawn_named("unordered", unordered(s(3), s(4), s(5)));
    let mapped_h = spawn_named("mapped", mapped(s(6)));
    let thened_h = spawn_named("thened", thened(s(7)));
    let fused_h = spawn_named("fused", fused(s(8)));
    let either_h = spawn_named("either", either(s(9)));
    let instrumented_h = spawn_named("instrumented", instrumented(s(10)));
    let joinset_h = spawn_named("joinset_count", joinset_count(s(11)));

    // Parks executed when each task reaches its final await: the level-0
    // park plus one per branch (joinall, unordered) or per level.
    scenarios::wait_parked(&[
        (joinall_h.id(), 4),
        (unordered_h.id(), 4),
        (mapped_h.id(), 2),
        (thened_h.id(), 2),
        (fused_h.id(), 2),
        (either_h.id(), 2),
        (instrumented_h.id(), 2),
        (joinset_h.id(), 1),
    ])
    .await;
    scenarios::wait_named(&[("count_child0", 1), ("count_child1", 1), ("count_child2", 1)]).await;

    let id = |h: &JoinHandle<()>| scenarios::id_u64(h.id());
    scenarios::annotate(id(&unordered_h), "children", json!(3));
    let children: Vec<u64> = (0..3).map(|k| scenarios::task_id(&format!("count_child{k}")).unwrap()).collect();
    scenarios::annotate(id(&joinset_h), "children", json!(children.len()));
    scenarios::annotate(id(&joinset_h), "children_ids", json!(children));

    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "resources": [],
        }),
    );
    let _keep = (signals, joinall_h, unordered_h, mapped_h, thened_h, fused_h, either_h, instrumented_h, joinset_h);
    std::future::pending::<()>().await;
}
