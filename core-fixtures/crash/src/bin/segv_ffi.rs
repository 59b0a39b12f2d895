//! A SIGSEGV in C code called from a task: `post_entry` asks the C ledger
//! (csrc/ledger.c, built by build.rs with the cc crate) for the entry of a
//! SKU it does not have, gets NULL, does not check, and hands it to
//! `ledger_post`, whose first store faults. The fault is in C, two frames
//! below the Rust async fn (`dev` profile).
//!
//! `ledger` awaits `post_entry`, which waits for the amount to post (a
//! oneshot main sends once the other tasks are parked). Idle bystanders:
//! `heartbeat` (an hour's sleep in a loop), `reconciler` (a `Notify`),
//! `journal` (an mpsc `recv` whose sender main keeps).
//!
//! Truth: `"crash"` {kind "segv", SIGSEGV, message null, the Rust line of
//! the `ledger_post` call, task = ledger, thread = its worker, chain
//! ledger -> post_entry, `"c_function": "ledger_post"`, `"c_file"`,
//! `"fault_address"` (the offset of the field ledger_post stores to first:
//! the address in the SIGSEGV's siginfo)}; ledger is `"state": "running"`
//! with that chain.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use crash::step;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};

/// `struct ledger_entry` of csrc/ledger.c (opaque here).
#[repr(C)]
struct LedgerEntry {
    _private: [u8; 0],
}

extern "C" {
    fn ledger_lookup(sku: i64) -> *mut LedgerEntry;
    fn ledger_post(entry: *mut LedgerEntry, cents: i64);
    static ledger_fault_offset: usize;
}

/// Post an amount to the ledger entry of `sku`.
async fn post_entry(sku: i64, amount: oneshot::Receiver<i64>) -> i64 {
    let cents = step!(1, amount).await.unwrap_or(0);
    let entry = unsafe { ledger_lookup(sku) };
    crash::record(crash::Crash {
        kind: "segv",
        signal: "SIGSEGV",
        message: None,
        site: crash::site!("ledger_post(entry, cents)"),
        extra: json!({
            "c_function": "ledger_post",
            "c_file": "csrc/ledger.c",
            "fault_address": unsafe { ledger_fault_offset },
            "entry_pointer": entry as usize,
        }),
    });
    unsafe { ledger_post(entry, cents) };
    cents
}

async fn ledger(amount: oneshot::Receiver<i64>) {
    let posted = step!(0, post_entry(4, amount)).await;
    println!("posted {posted}");
}

async fn heartbeat() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

async fn reconciler(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

async fn journal(mut lines: mpsc::Receiver<String>) {
    while let Some(l) = park!(0, lines.recv()).await {
        println!("{l}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    crash::init(env!("CARGO_BIN_NAME"));
    let n = Arc::new(Notify::new());
    let (journal_tx, journal_rx) = mpsc::channel(8);
    let (amount_tx, amount_rx) = oneshot::channel();
    let hb = spawn_named("heartbeat", heartbeat());
    let rc = spawn_named("reconciler", reconciler(n.clone()));
    let jn = spawn_named("journal", journal(journal_rx));
    let lg = spawn_named("ledger", ledger(amount_rx));
    crash::will_crash(lg.id());
    scenarios::wait_parked(&[(hb.id(), 1), (rc.id(), 1), (jn.id(), 1), (lg.id(), 2)]).await;
    // The amount arrives; SKU 4 has no ledger entry.
    amount_tx.send(1999).unwrap();
    let _keep = (n, journal_tx, hb, rc, jn, lg);
    std::future::pending::<()>().await;
}
