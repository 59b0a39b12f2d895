//! A panic inside a `spawn_blocking` closure, built with panic = "abort"
//! (profile `abort`): SIGABRT on a thread of tokio's blocking pool, while
//! the task that spawned the job is idle, awaiting its `JoinHandle`.
//!
//! `settle` hands a batch of ledger rows to `reconcile_batch` on the
//! blocking pool and awaits the JoinHandle. The job first waits (a std
//! mpsc) until main has seen every task park, then sums the rows and
//! panics when the running balance goes negative. Idle bystanders:
//! `heartbeat` (an hour's sleep in a loop), `audit_tail` (a `Notify`).
//!
//! Truth: `"crash"` {kind "panic", SIGABRT, the formatted message, the
//! `panic!` line in `reconcile_batch`, task = the blocking job's id (as
//! `tokio::task::try_id()` gives it in the closure: blocking tasks are not
//! in the scheduler's task list, so it is not among `"tasks"`), thread = the
//! blocking-pool thread, chain [reconcile_batch], `"blocking": true`,
//! `"awaited_by"` {task, function, line} = settle at its JoinHandle await}.
//! settle is an idle task of `"tasks"` with `"joins_blocking"` = the job id.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use crash::step;
use scenarios::{park, spawn_named};
use serde_json::{json, Value};
use tokio::sync::Notify;

/// Sum a batch of ledger deltas; a balance below zero is a bug upstream.
fn reconcile_batch(batch: u32, rows: &[i64], go: std::sync::mpsc::Receiver<Value>) -> i64 {
    let awaited_by = go.recv().expect("main went away");
    let mut balance = 0;
    for (row, delta) in rows.iter().enumerate() {
        balance += delta;
        if balance < 0 {
            let message = format!("reconcile: batch {batch} goes negative at row {row} (balance {balance})");
            crash::record(crash::Crash {
                kind: "panic",
                signal: "SIGABRT",
                message: Some(message.clone()),
                site: crash::site!("panic!(\"{message}\")"),
                extra: json!({"blocking": true, "awaited_by": awaited_by}),
            });
            panic!("{message}");
        }
    }
    balance
}

async fn settle(batch: u32, rows: Vec<i64>, go: std::sync::mpsc::Receiver<Value>) -> i64 {
    let job = tokio::task::spawn_blocking(move || reconcile_batch(batch, &rows, go));
    scenarios::annotate_self("joins_blocking", json!(scenarios::id_u64(job.id())));
    let balance = step!(0, job).await.expect("reconcile_batch failed");
    println!("batch {batch} settled: {balance}");
    balance
}

async fn heartbeat() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

async fn audit_tail(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    crash::init(env!("CARGO_BIN_NAME"));
    let n = Arc::new(Notify::new());
    let (go_tx, go_rx) = std::sync::mpsc::channel();
    let hb = spawn_named("heartbeat", heartbeat());
    let at = spawn_named("audit_tail", audit_tail(n.clone()));
    let st = spawn_named("settle", settle(17, vec![120, -40, 35, -150, 60], go_rx));
    scenarios::wait_parked(&[(hb.id(), 1), (at.id(), 1), (st.id(), 1)]).await;
    let (function, line) = crash::innermost_step(st.id()).expect("settle recorded its await");
    let awaited_by = json!({"task": scenarios::id_u64(st.id()), "function": function, "line": line});
    // Let the job run: it panics on the blocking thread.
    go_tx.send(awaited_by).unwrap();
    let _keep = (n, hb, at, st);
    std::future::pending::<()>().await;
}
