//! A three-task deadlock cycle mixing two `tokio::sync::Mutex`es and a
//! bounded `mpsc` channel.
//!
//! - `ledger` (A) holds the `accounts` mutex and waits to send on the full
//!   `mpsc::channel(1)` `audit_log`, whose only receiver is owned by B.
//! - `auditor` (B) owns the `audit_log` receiver but, before it starts
//!   draining it, waits for the `reports` mutex.
//! - `reporter` (C) holds `reports` and waits for `accounts`.
//!
//! A waits on B (only B can free channel capacity), B on C (reports), C on A
//! (accounts): `cycle = [A, B, C]`, diagnosed as one deadlock. A `Barrier(3)`
//! makes sure A holds accounts and has filled the channel, and C holds
//! reports, before anyone asks for the second resource.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;

use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::sync::{Barrier, Mutex};

type Accounts = Arc<Mutex<Vec<i64>>>;
type Reports = Arc<Mutex<Vec<String>>>;

/// A: post to the accounts, then log each posting to the audit channel.
async fn ledger(accounts: Accounts, audit: Sender<String>, barrier: Arc<Barrier>) {
    let mut acc = park!(0, accounts.lock()).await; hold!("accounts");
    acc.push(100);
    park!(0, audit.send("posted 100".to_string())).await.unwrap();
    park!(0, barrier.wait()).await;
    acc.push(-40);
    park!(0, audit.send("posted -40".to_string())).await.unwrap();
}

/// B: needs the reports lock to file what it audits, then drains the log.
async fn auditor(mut audit: Receiver<String>, reports: Reports, barrier: Arc<Barrier>) {
    park!(0, barrier.wait()).await;
    let mut rep = park!(0, reports.lock()).await; hold!("reports");
    while let Some(line) = audit.recv().await {
        rep.push(line);
    }
}

/// C: holds the reports lock while it reads the accounts.
async fn reporter(reports: Reports, accounts: Accounts, barrier: Arc<Barrier>) {
    let mut rep = park!(0, reports.lock()).await; hold!("reports");
    park!(0, barrier.wait()).await;
    let acc = park!(0, accounts.lock()).await; hold!("accounts");
    rep.push(format!("balance {}", acc.iter().sum::<i64>()));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let accounts: Accounts = Arc::new(Mutex::new(Vec::new()));
    let reports: Reports = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(3));
    let audit_line = line!() + 1;
    let (audit_tx, audit_rx) = channel::<String>(1);

    let a = spawn_named("ledger", ledger(accounts.clone(), audit_tx, barrier.clone()));
    let b = spawn_named("auditor", auditor(audit_rx, reports.clone(), barrier.clone()));
    let c = spawn_named("reporter", reporter(reports.clone(), accounts.clone(), barrier.clone()));

    // ledger's 4th park! (second send), auditor's 2nd (reports lock) and
    // reporter's 3rd (accounts lock) are where they stay.
    scenarios::wait_parked(&[(a.id(), 4), (b.id(), 2), (c.id(), 3)]).await;

    let (a_id, b_id, c_id) = (scenarios::id_u64(a.id()), scenarios::id_u64(b.id()), scenarios::id_u64(c.id()));
    let (acc_holder, acc_line) = scenarios::holder("accounts").unwrap();
    let (rep_holder, rep_line) = scenarios::holder("reports").unwrap();
    assert_eq!((acc_holder, rep_holder), (a_id, c_id));
    scenarios::annotate(a_id, "waits_on", json!({"kind": "mpsc", "name": "audit_log"}));
    scenarios::annotate(b_id, "waits_on", json!({"kind": "mutex", "name": "reports"}));
    scenarios::annotate(c_id, "waits_on", json!({"kind": "mutex", "name": "accounts"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            // ledger waits on auditor (channel capacity), auditor on reporter
            // (reports), reporter on ledger (accounts).
            "cycle": [a_id, b_id, c_id],
            "diagnoses": [{"kind": "deadlock", "tasks": [a_id, b_id, c_id]}],
            "resources": [
                {"kind": "mutex", "name": "accounts", "held_by": [a_id], "waited_by": [c_id], "held_line": acc_line},
                {"kind": "mutex", "name": "reports", "held_by": [c_id], "waited_by": [b_id], "held_line": rep_line},
                // held_by = the task owning the Receiver; waited_by = blocked senders.
                {"kind": "mpsc", "name": "audit_log", "held_by": [b_id], "waited_by": [a_id], "held_line": audit_line,
                 "capacity": 1, "queued": 1, "senders": [a_id], "receiver": b_id},
            ],
        }),
    );
    std::future::pending::<()>().await;
}
