//! `std::process::abort()` two async fns below a task: SIGABRT on the
//! worker thread polling it, no panic machinery involved (built with the
//! `dev` profile, panic = "unwind": abort does not care).
//!
//! `compactor` awaits `compact_segments`, which awaits `flush_index`, which
//! waits for its segment to be sealed (a oneshot main sends once the other
//! tasks are parked), finds the index checksum wrong and aborts. Idle
//! bystanders: `heartbeat` (an hour's sleep in a loop), `wal_writer` (an
//! mpsc `recv` whose sender main keeps), `metrics` (a `Notify`).
//!
//! Truth: `"crash"` {kind "abort", SIGABRT, message null, the abort line,
//! task = compactor, thread = its worker, chain compactor ->
//! compact_segments -> flush_index, `"reason"` (what the program logs to
//! stderr before aborting)}; compactor is `"state": "running"` with that
//! chain.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use crash::step;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};

/// Write the segment's index; the index must match the segment's checksum.
async fn flush_index(segment: u32, sealed: oneshot::Receiver<u32>) -> u32 {
    let checksum = step!(2, sealed).await.unwrap_or(0);
    let expected = segment.wrapping_mul(0x9e37_79b9);
    if checksum != expected {
        let reason = format!("flush_index: segment {segment} index checksum {checksum:#x} != {expected:#x}, aborting");
        crash::record(crash::Crash {
            kind: "abort",
            signal: "SIGABRT",
            message: None,
            site: crash::site!("std::process::abort()"),
            extra: json!({"reason": reason}),
        });
        eprintln!("{reason}");
        std::process::abort();
    }
    checksum
}

async fn compact_segments(first: u32, sealed: oneshot::Receiver<u32>) -> u32 {
    let merged = first + 1;
    let index = step!(1, flush_index(merged, sealed)).await;
    index ^ merged
}

async fn compactor(sealed: oneshot::Receiver<u32>) {
    let r = step!(0, compact_segments(6, sealed)).await;
    println!("compacted: {r}");
}

async fn heartbeat() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

async fn wal_writer(mut records: mpsc::Receiver<Vec<u8>>) {
    while let Some(r) = park!(0, records.recv()).await {
        println!("wal {}", r.len());
    }
}

async fn metrics(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    crash::init(env!("CARGO_BIN_NAME"));
    let n = Arc::new(Notify::new());
    let (wal_tx, wal_rx) = mpsc::channel(8);
    let (sealed_tx, sealed_rx) = oneshot::channel();
    let hb = spawn_named("heartbeat", heartbeat());
    let ww = spawn_named("wal_writer", wal_writer(wal_rx));
    let mt = spawn_named("metrics", metrics(n.clone()));
    let cp = spawn_named("compactor", compactor(sealed_rx));
    crash::will_crash(cp.id());
    scenarios::wait_parked(&[(hb.id(), 1), (ww.id(), 1), (mt.id(), 1), (cp.id(), 3)]).await;
    // Seal the segment with a checksum flush_index does not expect.
    sealed_tx.send(0xdead_beef).unwrap();
    let _keep = (n, wal_tx, hb, ww, mt, cp);
    std::future::pending::<()>().await;
}
