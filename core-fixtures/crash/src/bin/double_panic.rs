//! A panic while panicking: `import_batch` panics, and while that panic
//! unwinds the async fn's locals, the `Drop` of its `Journal` guard panics
//! too. A panic escaping a destructor during unwinding cannot be caught:
//! the Rust runtime prints "panic in a destructor during cleanup" and
//! aborts (SIGABRT), before tokio's `catch_unwind` around the poll is ever
//! reached. Built with the `dev` profile (panic = "unwind": the first panic
//! must unwind for the second to happen).
//!
//! `importer` awaits `import_batch`, which opens a `Journal`, waits for the
//! batch (a oneshot main sends once the other tasks are parked), then
//! panics on a duplicate key. Idle bystanders: `heartbeat` (an hour's sleep
//! in a loop), `index_builder` (a `Notify`).
//!
//! Truth: `"crash"` {kind "double_panic", SIGABRT, message/file/line of the
//! first panic (in import_batch), task = importer, thread = its worker,
//! chain importer -> import_batch, `"second"` {message, file, line,
//! function} of the panic in `Journal::drop`, `"abort_message"`: the
//! runtime's own third message}; importer is `"state": "running"`.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use crash::step;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{oneshot, Notify};

/// What the Rust runtime panics with when a destructor panics during
/// unwinding (core::panicking::panic_in_cleanup).
const IN_CLEANUP: &str = "panic in a destructor during cleanup";

/// Undo log of one batch; rolls back when dropped during a panic.
struct Journal {
    batch: u32,
}

impl Drop for Journal {
    fn drop(&mut self) {
        if std::thread::panicking() {
            panic!("journal: rollback of batch {} failed", self.batch);
        }
    }
}

async fn import_batch(batch: u32, rows: oneshot::Receiver<Vec<u32>>) -> usize {
    let journal = Journal { batch };
    let rows = step!(1, rows).await.unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    for (i, key) in rows.iter().enumerate() {
        if !seen.insert(*key) {
            let first = format!("import: row {i} of batch {batch} repeats key {key}");
            let second = format!("journal: rollback of batch {} failed", journal.batch);
            let drop_fn = format!("<{} as core::ops::drop::Drop>::drop", std::any::type_name::<Journal>());
            let drop_site = crash::site!("panic!(\"journal: rollback", in drop_fn);
            crash::expect_panic(&second, Some(&drop_site));
            crash::expect_panic(IN_CLEANUP, None);
            crash::record(crash::Crash {
                kind: "double_panic",
                signal: "SIGABRT",
                message: Some(first.clone()),
                site: crash::site!("panic!(\"{first}\")"),
                extra: json!({
                    "second": {"message": second, "file": drop_site.file, "line": drop_site.line, "function": drop_site.function},
                    "abort_message": IN_CLEANUP,
                }),
            });
            panic!("{first}");
        }
    }
    drop(journal);
    rows.len()
}

async fn importer(rows: oneshot::Receiver<Vec<u32>>) {
    let n = step!(0, import_batch(3, rows)).await;
    println!("imported {n}");
}

async fn heartbeat() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

async fn index_builder(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    crash::init(env!("CARGO_BIN_NAME"));
    let n = Arc::new(Notify::new());
    let (rows_tx, rows_rx) = oneshot::channel();
    let hb = spawn_named("heartbeat", heartbeat());
    let ib = spawn_named("index_builder", index_builder(n.clone()));
    let im = spawn_named("importer", importer(rows_rx));
    crash::will_crash(im.id());
    scenarios::wait_parked(&[(hb.id(), 1), (ib.id(), 1), (im.id(), 2)]).await;
    // Row 3 repeats the key of row 1.
    rows_tx.send(vec![11, 42, 7, 42, 9]).unwrap();
    let _keep = (n, hb, ib, im);
    std::future::pending::<()>().await;
}
