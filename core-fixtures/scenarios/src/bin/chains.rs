//! Async backtraces: one program, one task per shape of await chain.
//!
//! - `deep`: depth0 -> depth1 -> ... -> depth8 (9 nested async fns), the
//!   innermost awaiting a `Notify` nobody notifies. chain has levels 0..8.
//! - `joiner`: `tokio::join!(branch_a(..), branch_b(..))`; both branches park
//!   on a `Notify`. chain[0] is the `join!` line (`"macro": "join"`), the
//!   branch fns are under `"branches"`.
//! - `selector`: `tokio::select!` over `select_wait(..)` (parks on a
//!   `Notify`) and an hour-long `sleep`. chain[0] is the `select!` line
//!   (`"macro": "select"`), `select_wait` is under `"branches"`.
//! - `boxed`: awaits a `Pin<Box<dyn Future<Output = ()> + Send>>` made from
//!   the async fn `boxed_inner` (`"boxed_fn"`), which parks at level 1.
//! - `timeouter`: `tokio::time::timeout(3600 s, timeout_inner(..))`;
//!   `timeout_inner` parks at level 1.
//! - `block`: spawned from an `async move {}` block in `main`; its future type
//!   is `chains::main::{{closure}}::{{closure}}`.
//! - `joinset`: awaits `JoinSet::join_next()`; its 3 children
//!   (`joinset_child0..2`, spawned on the JoinSet and registered by hand)
//!   each park on a `Notify`.
//! - `joinhandle`: awaits the `JoinHandle` of `joined`, which parks on a
//!   `Notify`.
//!
//! Every Notify is kept alive by main. Runtime: multi_thread, 2 workers.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use scenarios::{branch, mark, park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

type Signal = Arc<Notify>;

// ---- deep: nine nested async fns ------------------------------------------

async fn depth8(n: Signal) -> u32 {
    park!(8, n.notified()).await;
    8
}
async fn depth7(n: Signal) -> u32 {
    park!(7, depth8(n)).await + 7
}
async fn depth6(n: Signal) -> u32 {
    park!(6, depth7(n)).await + 6
}
async fn depth5(n: Signal) -> u32 {
    park!(5, depth6(n)).await + 5
}
async fn depth4(n: Signal) -> u32 {
    park!(4, depth5(n)).await + 4
}
async fn depth3(n: Signal) -> u32 {
    park!(3, depth4(n)).await + 3
}
async fn depth2(n: Signal) -> u32 {
    park!(2, depth3(n)).await + 2
}
async fn depth1(n: Signal) -> u32 {
    park!(1, depth2(n)).await + 1
}
async fn depth0(n: Signal) -> u32 {
    park!(0, depth1(n)).await
}

// ---- joiner: tokio::join! of two async fns ---------------------------------

async fn branch_a(n: Signal) -> &'static str {
    branch!(1, n.notified()).await;
    "a"
}

async fn branch_b(n: Signal) -> &'static str {
    branch!(1, n.notified()).await;
    "b"
}

async fn joiner(na: Signal, nb: Signal) {
    scenarios::mark!(0, "join");
    let (a, b) = tokio::join!(branch_a(na), branch_b(nb));
    println!("joined {a}{b}");
}

// ---- selector: tokio::select! of an async fn and a sleep -------------------

async fn select_wait(n: Signal) -> u32 {
    branch!(1, n.notified()).await;
    1
}

async fn selector(n: Signal) {
    mark!(0, "select");
    tokio::select! {
        v = select_wait(n) => println!("notified {v}"),
        _ = tokio::time::sleep(Duration::from_secs(3600)) => println!("timed out"),
    }
}

// ---- boxed: Pin<Box<dyn Future>> --------------------------------------------

async fn boxed_inner(n: Signal) {
    park!(1, n.notified()).await;
}

async fn boxed(n: Signal) {
    let fut: Pin<Box<dyn Future<Output = ()> + Send>> = Box::pin(boxed_inner(n));
    park!(0, fut).await;
}

// ---- timeouter: tokio::time::timeout around an async fn ---------------------

async fn timeout_inner(n: Signal) -> u32 {
    park!(1, n.notified()).await;
    5
}

async fn timeouter(n: Signal) {
    let r = park!(0, tokio::time::timeout(Duration::from_secs(3600), timeout_inner(n))).await;
    println!("timeout result {r:?}");
}

// ---- joinset: JoinSet::join_next with 3 children ----------------------------

async fn joinset_child(n: Signal, k: u32) -> u32 {
    park!(0, n.notified()).await;
    k
}

async fn joinset(n: Signal) {
    let mut set = JoinSet::new();
    for k in 0..3 {
        let fut = joinset_child(n.clone(), k);
        let ty = std::any::type_name_of_val(&fut);
        let handle = set.spawn(fut);
        scenarios::register(&format!("joinset_child{k}"), handle.id(), ty);
    }
    while let Some(r) = park!(0, set.join_next()).await {
        println!("child done {r:?}");
    }
}

// ---- joinhandle: awaiting another task's JoinHandle ------------------------

async fn joined(n: Signal) -> u32 {
    park!(0, n.notified()).await;
    7
}

async fn joinhandle(h: JoinHandle<u32>) {
    let v = park!(0, h).await;
    println!("joined {v:?}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let signals: Vec<Signal> = (0..10).map(|_| Arc::new(Notify::new())).collect();
    let s = |k: usize| signals[k].clone();

    let deep = spawn_named("deep", depth0(s(0)));
    let joiner_h = spawn_named("joiner", joiner(s(1), s(2)));
    let selector_h = spawn_named("selector", selector(s(3)));
    let boxed_h = spawn_named("boxed", boxed(s(4)));
    let timeouter_h = spawn_named("timeouter", timeouter(s(5)));
    let n6 = s(6);
    let block = spawn_named("block", async move {
        park!(0, n6.notified()).await;
    });
    let joinset_h = spawn_named("joinset", joinset(s(7)));
    let joined_h = spawn_named("joined", joined(s(8)));
    let joined_id = joined_h.id();
    let joinhandle_h = spawn_named("joinhandle", joinhandle(joined_h));

    // Parks executed when each task reaches its final await: one per level
    // (deep: 9), the join!/select! mark plus one per branch, ...
    scenarios::wait_parked(&[
        (deep.id(), 9),
        (joiner_h.id(), 3),
        (selector_h.id(), 2),
        (boxed_h.id(), 2),
        (timeouter_h.id(), 2),
        (block.id(), 1),
        (joinset_h.id(), 1),
        (joined_id, 1),
        (joinhandle_h.id(), 1),
    ])
    .await;
    scenarios::wait_named(&[("joinset_child0", 1), ("joinset_child1", 1), ("joinset_child2", 1)]).await;

    let id = |h: &JoinHandle<_>| scenarios::id_u64(h.id());
    scenarios::annotate(id(&boxed_h), "boxed_fn", json!(std::any::type_name_of_val(&boxed_inner)));
    scenarios::annotate(id(&selector_h), "select_other", json!("tokio::time::sleep"));
    scenarios::annotate(id(&timeouter_h), "timeout_fn", json!(std::any::type_name_of_val(&timeout_inner)));
    let children: Vec<u64> = (0..3).map(|k| scenarios::task_id(&format!("joinset_child{k}")).unwrap()).collect();
    scenarios::annotate(id(&joinset_h), "children", json!(children));
    scenarios::annotate(id(&joinhandle_h), "joins", json!(scenarios::id_u64(joined_id)));

    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "resources": [],
        }),
    );
    let _keep = (signals, deep, joiner_h, selector_h, boxed_h, timeouter_h, block, joinset_h, joinhandle_h);
    std::future::pending::<()>().await;
}
