//! A small ledger service on smol 2.x: a `smol::Executor` run by two
//! worker threads (`smol::block_on(ex.run(..))`).
//!
//! - `transfer alice->bob` and `transfer bob->alice` (`transfer`, then the
//!   nested `credit`) each lock their source account, an
//!   `async_lock::Mutex<Account>`, meet at an `async_lock::Barrier`, and
//!   then wait in `credit` for the other's account: an AB-BA deadlock.
//! - `audit` waits on the `reports` `async_channel` for the reports the
//!   `reporter` would send; the reporter (holding the only Sender) sleeps
//!   in a `smol::Timer::after(1h)` first.
//! - `worker 1` waits for jobs on the `jobs` channel (main keeps the Sender
//!   and never sends); `config watcher` waits on an `event_listener::Event`
//!   nobody notifies.
//!
//! Tasks' `smol::Task` handles stay in a Vec in main (dropping one cancels
//! its task).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use event_listener::Event;
use serde_json::json;
use smol::channel::{Receiver, Sender};
use smol::lock::{Barrier, Mutex};
use smol::{Executor, Timer};
use truth::{hold, park, Anchor, Tid};

/// An account of the ledger.
struct Account {
    owner: &'static str,
    balance: i64,
    history: Vec<i64>,
}

/// What the reporter sends the auditor.
struct Report {
    period: u64,
    transfers: usize,
}

/// A unit of background work (main never submits one: worker 1 stays idle).
#[allow(dead_code)]
enum Job {
    Reindex(u64),
    Compact,
}

/// Live configuration; `changed` is notified on reload.
struct Config {
    version: AtomicU64,
    changed: Event,
}

/// Move `amount` from `from` to `to`: debit the source under its lock, wait
/// until the other transfer holds its source too, then credit.
async fn transfer(t: Tid, from: Arc<Mutex<Account>>, to: Arc<Mutex<Account>>, names: (&'static str, &'static str), amount: i64, barrier: Arc<Barrier>) {
    let anchor = Anchor::new(t);
    anchor.record();
    let mut src = park!(t, 0, names.0 => from.lock()).await; hold!(t, names.0);
    src.balance -= amount;
    src.history.push(-amount);
    park!(t, 0, barrier.wait()).await;
    let entries = park!(t, 0, credit(t, &to, names.1, amount)).await;
    anchor.keep();
    println!("{} -> {}: {entries} entries", src.owner, names.1);
}

/// Credit `amount` to `to` (locks it).
async fn credit(t: Tid, to: &Mutex<Account>, name: &'static str, amount: i64) -> usize {
    let mut dst = park!(t, 1, name => to.lock()).await; hold!(t, name);
    dst.balance += amount;
    dst.history.push(amount);
    dst.history.len()
}

/// Sum up the reports until the reporter hangs up.
async fn audit(t: Tid, reports: Receiver<Report>) {
    let anchor = Anchor::new(t);
    anchor.record();
    truth::resource("reports", "channel", &reports, "Receiver in audit's future; the reporter holds the only Sender");
    let mut transfers = 0;
    while let Ok(report) = park!(t, 0, "reports" => reports.recv()).await {
        transfers += report.transfers;
        println!("period {}: {transfers} transfers", report.period);
    }
    anchor.keep();
    println!("audit done: {transfers} transfers");
}

/// Send a report every `interval` (the first one after an hour).
async fn reporter(t: Tid, reports: Sender<Report>, interval: Duration) {
    let anchor = Anchor::new(t);
    anchor.record();
    hold!(t, "reports");
    let mut period = 0;
    let mut tick = Timer::after(interval);
    truth::resource("heartbeat", "timer", &tick, "smol::Timer in the reporter's future, due in an hour");
    park!(t, 0, "heartbeat" => &mut tick).await;
    period += 1;
    let _ = reports.send(Report { period, transfers: 0 }).await;
    anchor.keep();
}

/// Run background jobs until the queue closes.
async fn worker(t: Tid, jobs: Receiver<Job>) {
    let anchor = Anchor::new(t);
    anchor.record();
    truth::resource("jobs", "channel", &jobs, "Receiver in worker 1's future; main keeps the Sender and never sends");
    let mut done = 0;
    while let Ok(job) = park!(t, 0, "jobs" => jobs.recv()).await {
        done += match job {
            Job::Reindex(n) => n,
            Job::Compact => 1,
        };
    }
    anchor.keep();
    println!("worker done: {done} units");
}

/// Reload the configuration whenever it changes.
async fn watch_config(t: Tid, config: Arc<Config>) {
    let anchor = Anchor::new(t);
    anchor.record();
    let mut seen = config.version.load(Ordering::Acquire);
    loop {
        let listener = config.changed.listen();
        let now = config.version.load(Ordering::Acquire);
        if now != seen {
            seen = now;
            continue;
        }
        park!(t, 0, "config changed" => listener).await;
        if config.version.load(Ordering::Acquire) == u64::MAX {
            break;
        }
    }
    anchor.keep();
}

fn main() {
    let path = truth::truth_path();
    let ex = Arc::new(Executor::new());
    let alice = Arc::new(Mutex::new(Account { owner: "alice", balance: 100, history: Vec::new() }));
    let bob = Arc::new(Mutex::new(Account { owner: "bob", balance: 50, history: Vec::new() }));
    truth::resource("alice", "mutex", &*alice, "alice's account");
    truth::resource("bob", "mutex", &*bob, "bob's account");
    let barrier = Arc::new(Barrier::new(2));
    let (report_tx, report_rx) = smol::channel::bounded::<Report>(8);
    let (job_tx, job_rx) = smol::channel::unbounded::<Job>();
    let config = Arc::new(Config { version: AtomicU64::new(1), changed: Event::new() });
    truth::resource("config changed", "event", &config.changed, "Event in an Arc (main and config watcher); nobody notifies it");

    let mut tasks: Vec<smol::Task<()>> = Vec::new();
    let (a, b) = (alice.clone(), bob.clone());
    let bar = barrier.clone();
    let t1 = truth::named("transfer alice->bob", |t| transfer(t, a, b, ("alice", "bob"), 30, bar));
    let (a, b) = (alice.clone(), bob.clone());
    let bar = barrier.clone();
    let t2 = truth::named("transfer bob->alice", |t| transfer(t, b, a, ("bob", "alice"), 20, bar));
    let t3 = truth::named("audit", |t| audit(t, report_rx));
    let t4 = truth::named("reporter", |t| reporter(t, report_tx, Duration::from_secs(3600)));
    let t5 = truth::named("worker 1", |t| worker(t, job_rx));
    let t6 = truth::named("config watcher", |t| watch_config(t, config.clone()));
    tasks.push(ex.spawn(t1));
    tasks.push(ex.spawn(t2));
    tasks.push(ex.spawn(t3));
    tasks.push(ex.spawn(t4));
    tasks.push(ex.spawn(t5));
    tasks.push(ex.spawn(t6));

    let workers: Vec<_> = (1..=2)
        .map(|i| {
            let ex = ex.clone();
            std::thread::Builder::new()
                .name(format!("smol-worker-{i}"))
                .spawn(move || {
                    truth::thread_role("executor worker");
                    smol::block_on(ex.run(smol::future::pending::<()>()));
                })
                .expect("spawn worker thread")
        })
        .collect();

    // Parks: each transfer 4 (lock source, barrier, credit, credit's lock);
    // the others 1.
    let ids: Vec<Tid> = (1..=6).map(Tid).collect();
    truth::wait_parked(&[(ids[0], 4), (ids[1], 4), (ids[2], 1), (ids[3], 1), (ids[4], 1), (ids[5], 1)]);
    truth::write_truth(
        &path,
        truth::Truth {
            scenario: env!("CARGO_BIN_NAME"),
            executor: "smol",
            crates: &["smol", "async-executor", "async-task", "async-io", "async-lock", "async-channel", "event-listener"],
            cycle: &[(ids[0], "bob"), (ids[1], "alice")],
            extra: json!({"worker_threads": workers.len()}),
        },
    );
    let _keep = (&tasks, &job_tx, &alice, &bob, &workers);
    truth::block_forever();
}
