//! A replicated key-value store on a custom executor built on async-task 4.x:
//! `async_task::spawn(future, schedule)`, where `schedule` pushes the
//! `Runnable` into a `std::sync::mpsc` run queue that one worker thread
//! drains (`runnable.run()`). Main keeps every task's `async_task::Task`
//! handle in a Vec (dropping one would cancel its task).
//!
//! - `replicate primary` and `replicate replica` (`replicate`, then the
//!   nested `copy_into`) each lock their own store, an
//!   `async_lock::Mutex<Store>`, meet at an `async_lock::Barrier`, then wait
//!   in `copy_into` for the other's store: an AB-BA deadlock.
//! - `ingest` waits on the `writes` `async_channel`; main keeps the Sender
//!   and never sends.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::mpsc;
use std::sync::Arc;

use async_channel::Receiver;
use async_lock::{Barrier, Mutex};
use async_task::{Runnable, Task};
use serde_json::json;
use truth::{hold, park, Anchor, Tid};

/// The run queue: `Runnable`s the worker thread polls.
struct RunQueue {
    tx: mpsc::Sender<Runnable>,
}

impl RunQueue {
    /// Spawn `future` onto the queue; the caller keeps the handle.
    fn spawn<F>(&self, future: F) -> Task<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let tx = self.tx.clone();
        let schedule = move |runnable: Runnable| {
            let _ = tx.send(runnable);
        };
        let (runnable, task) = async_task::spawn(future, schedule);
        runnable.schedule();
        task
    }
}

/// One copy of the data.
struct Store {
    name: &'static str,
    data: BTreeMap<String, Vec<u8>>,
    version: u64,
}

/// A write the ingest task applies.
struct Write {
    key: String,
    value: Vec<u8>,
}

/// Bring `theirs` up to `mine`: lock mine, wait until the other replication
/// holds its own store, then copy into theirs.
async fn replicate(t: Tid, mine: Arc<Mutex<Store>>, theirs: Arc<Mutex<Store>>, names: (&'static str, &'static str), barrier: Arc<Barrier>) -> u64 {
    let anchor = Anchor::new(t);
    anchor.record();
    let mut src = park!(t, 0, names.0 => mine.lock()).await; hold!(t, names.0);
    src.version += 1;
    park!(t, 0, barrier.wait()).await;
    let copied = park!(t, 0, copy_into(t, &theirs, names.1, &src.data)).await;
    anchor.keep();
    println!("{}: copied {copied}", src.name);
    src.version
}

async fn copy_into(t: Tid, theirs: &Mutex<Store>, name: &'static str, data: &BTreeMap<String, Vec<u8>>) -> usize {
    let mut dst = park!(t, 1, name => theirs.lock()).await; hold!(t, name);
    for (k, v) in data {
        dst.data.insert(k.clone(), v.clone());
    }
    data.len()
}

/// Apply incoming writes to the primary.
async fn ingest(t: Tid, writes: Receiver<Write>, primary: Arc<Mutex<Store>>) -> u64 {
    let anchor = Anchor::new(t);
    anchor.record();
    truth::resource("writes", "channel", &writes, "async_channel::Receiver in ingest's future; main keeps the Sender and never sends");
    let mut applied = 0;
    while let Ok(w) = park!(t, 0, "writes" => writes.recv()).await {
        primary.lock().await.data.insert(w.key, w.value);
        applied += 1;
    }
    anchor.keep();
    applied
}

fn main() {
    let path = truth::truth_path();
    let (tx, rx) = mpsc::channel::<Runnable>();
    let queue = RunQueue { tx };
    let store = |name| Store { name, data: BTreeMap::from([(format!("{name}/config"), vec![1, 2, 3])]), version: 0 };
    let primary = Arc::new(Mutex::new(store("primary")));
    let replica = Arc::new(Mutex::new(store("replica")));
    truth::resource("primary", "mutex", &*primary, "async_lock::Mutex in an Arc");
    truth::resource("replica", "mutex", &*replica, "async_lock::Mutex in an Arc");
    let barrier = Arc::new(Barrier::new(2));
    let (writes_tx, writes_rx) = async_channel::unbounded::<Write>();

    let mut handles: Vec<Task<u64>> = Vec::new();
    let (p, r, b) = (primary.clone(), replica.clone(), barrier.clone());
    handles.push(queue.spawn(truth::named("replicate primary", |t| replicate(t, p, r, ("primary", "replica"), b))));
    let (p, r, b) = (primary.clone(), replica.clone(), barrier.clone());
    handles.push(queue.spawn(truth::named("replicate replica", |t| replicate(t, r, p, ("replica", "primary"), b))));
    let p = primary.clone();
    handles.push(queue.spawn(truth::named("ingest", |t| ingest(t, writes_rx, p))));

    let worker = std::thread::Builder::new()
        .name("async-task-run".to_string())
        .spawn(move || {
            truth::thread_role("executor worker");
            for runnable in rx {
                runnable.run();
            }
        })
        .expect("spawn worker thread");

    // Parks: each replication 4 (own lock, barrier, copy_into, its lock);
    // ingest 1.
    truth::wait_parked(&[(Tid(1), 4), (Tid(2), 4), (Tid(3), 1)]);
    truth::write_truth(
        &path,
        truth::Truth {
            scenario: env!("CARGO_BIN_NAME"),
            executor: "async-task",
            crates: &["async-task", "async-lock", "async-channel", "event-listener"],
            cycle: &[(Tid(1), "replica"), (Tid(2), "primary")],
            extra: json!({}),
        },
    );
    let _keep = (&handles, &queue, &writes_tx, &worker);
    truth::block_forever();
}
