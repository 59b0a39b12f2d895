//! The matrix's scale case: SESSIONS (default 2000) idle tasks. Each
//! `session(i)` awaits its own `oneshot::Receiver`, except every tenth, a
//! `watcher(i)` awaiting its own `Notify`; main keeps every `Sender` and
//! `Notify` alive, so nothing is diagnosed.
//!
//! Truth: every task with its id (when tokio has ids) and line; `count`.
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;

use mscen::{park, Json, Task};
use tokio::sync::{oneshot, Notify};

fn sessions() -> usize {
    std::env::var("SESSIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
}

/// One client session, idle until its reply arrives.
async fn session(t: Task, i: usize, reply: oneshot::Receiver<String>) {
    let msg = park!(t, 0, reply).await;
    println!("session {i} got {msg:?}");
}

/// Waits for a change notification that never comes.
async fn watcher(t: Task, i: usize, changed: Arc<Notify>) {
    park!(t, 0, changed.notified()).await;
    println!("watcher {i} notified");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = mscen::truth_path();
    let n = sessions();
    let mut senders = Vec::with_capacity(n);
    let mut notifies = Vec::new();
    let mut handles = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        if i % 10 == 9 {
            let t = mscen::task(&format!("watcher-{i}"));
            let changed = Arc::new(Notify::new());
            notifies.push(changed.clone());
            handles.push(mscen::spawn(t, watcher(t, i, changed)));
            tasks.push(t);
        } else {
            let t = mscen::task(&format!("session-{i}"));
            let (tx, rx) = oneshot::channel::<String>();
            senders.push(tx);
            handles.push(mscen::spawn(t, session(t, i, rx)));
            tasks.push(t);
        }
    }
    let expected: Vec<(Task, usize)> = tasks.iter().map(|t| (*t, 1)).collect();
    mscen::wait_parked(&expected).await;

    mscen::write_truth(
        &path,
        env!("CARGO_BIN_NAME"),
        "multi_thread",
        vec![("count", Json::Int(n as i64)), ("cycle", Json::Null), ("diagnoses", Json::Arr(vec![]))],
    );
    let _keep = (senders, notifies, handles);
    std::future::pending::<()>().await;
}
