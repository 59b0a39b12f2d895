//! `#[tokio::main(flavor = "local")]`: a `LocalRuntime` (stable since tokio
//! 1.51), whose `spawn_local` tasks hold `!Send` state (`Rc`) and live in
//! the runtime's own OwnedTasks, bound to the one thread that runs it.
//!
//! `cache_reader` holds an `Rc<RefCell<..>>` across an await on a `Notify`
//! (level 1, inside `refresh`); `session_rc` awaits a oneshot whose Sender
//! main keeps; `sendable` is a plain `tokio::spawn` task (a sleep loop) on
//! the same runtime. Truth per task: `"home": "local_runtime"`,
//! `"home_thread"` (main's tid).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use scenarios::{park, spawn_local_named, spawn_named};
use serde_json::json;
use tokio::sync::{oneshot, Notify};

fn mark_home() {
    scenarios::annotate_self("home", json!("local_runtime"));
    scenarios::annotate_self("home_thread", json!(scenarios::gettid()));
}

async fn refresh(gate: &Notify) {
    park!(1, gate.notified()).await;
}

async fn cache_reader(cache: Rc<RefCell<Vec<u32>>>, gate: Rc<Notify>) {
    mark_home();
    let len = cache.borrow().len();
    park!(0, refresh(&gate)).await;
    cache.borrow_mut().push(len as u32);
}

async fn session_rc(rx: oneshot::Receiver<u32>) {
    mark_home();
    let state = Rc::new(7u32);
    let v = park!(0, rx).await;
    drop((state, v));
}

async fn sendable() {
    mark_home();
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "local")]
async fn main() {
    let path = scenarios::truth_path();
    let cache = Rc::new(RefCell::new(vec![1, 2, 3]));
    let gate = Rc::new(Notify::new());
    let (tx, rx) = oneshot::channel::<u32>();
    let a = spawn_local_named("cache_reader", cache_reader(cache.clone(), gate.clone()));
    let b = spawn_local_named("session_rc", session_rc(rx));
    let c = spawn_named("sendable", sendable());
    scenarios::wait_parked(&[(a.id(), 2), (b.id(), 1), (c.id(), 1)]).await;
    scenarios::write_truth(
        &path,
        json!({"scenario": env!("CARGO_BIN_NAME"), "local_runtime_thread": scenarios::gettid()}),
    );
    std::future::pending::<()>().await;
    drop((tx, cache, gate));
}
