//! Stock reconciliation on the futures crate's single-threaded executor:
//! `futures::executor::LocalPool`, tasks spawned with
//! `LocalSpawner::spawn_local`, the pool run by the main thread with
//! `run_until_stalled()`; then main records the truth and blocks, and the
//! tasks stay in the pool's `FuturesUnordered`.
//!
//! - `reconcile warehouse` and `reconcile storefront` (`reconcile`, then the
//!   nested `apply`) each lock their own inventory, a
//!   `futures::lock::Mutex<Inventory>`, tell the other (a
//!   `futures::channel::oneshot` handshake), and then wait in `apply` for the
//!   other's inventory: an AB-BA deadlock.
//! - `auditor` waits on a `futures::channel::oneshot::Receiver<Summary>`
//!   whose Sender the `collector` keeps; the collector waits for events on
//!   a `futures::channel::mpsc` channel whose Sender main keeps and never
//!   uses.

use std::rc::Rc;

use futures::channel::{mpsc, oneshot};
use futures::executor::LocalPool;
use futures::lock::Mutex;
use futures::task::LocalSpawnExt;
use futures::StreamExt;
use serde_json::json;
use truth::{hold, park, Anchor, Tid};

/// Stock counts of one site.
struct Inventory {
    site: &'static str,
    items: Vec<(&'static str, i64)>,
}

/// The collector's summary for the auditor.
struct Summary {
    events: usize,
}

/// A stock event from the sites.
struct StockEvent {
    item: &'static str,
    delta: i64,
}

/// "I hold my inventory": told to the other reconciler once, heard once.
struct Handshake {
    tell: oneshot::Sender<()>,
    hear: oneshot::Receiver<()>,
}

fn handshakes() -> (Handshake, Handshake) {
    let (a_tx, a_rx) = oneshot::channel();
    let (b_tx, b_rx) = oneshot::channel();
    (Handshake { tell: a_tx, hear: b_rx }, Handshake { tell: b_tx, hear: a_rx })
}

/// Reconcile `mine` against `theirs`: lock mine, wait until the other side
/// holds its own, then apply the difference to theirs.
async fn reconcile(t: Tid, mine: Rc<Mutex<Inventory>>, theirs: Rc<Mutex<Inventory>>, names: (&'static str, &'static str), hs: Handshake) {
    let anchor = Anchor::new(t);
    anchor.record();
    let mut own = park!(t, 0, names.0 => mine.lock()).await; hold!(t, names.0);
    let _ = hs.tell.send(());
    let _ = park!(t, 0, hs.hear).await;
    let total: i64 = own.items.iter().map(|(_, n)| n).sum();
    let applied = park!(t, 0, apply(t, &theirs, names.1, total)).await;
    own.items.push(("reconciled", applied));
    anchor.keep();
    println!("{}: reconciled {applied}", own.site);
}

async fn apply(t: Tid, theirs: &Mutex<Inventory>, name: &'static str, total: i64) -> i64 {
    let mut other = park!(t, 1, name => theirs.lock()).await; hold!(t, name);
    let theirs_total: i64 = other.items.iter().map(|(_, n)| n).sum();
    other.items.push(("adjustment", total - theirs_total));
    total - theirs_total
}

/// Wait for the collector's summary.
async fn audit(t: Tid, mut summary: oneshot::Receiver<Summary>) {
    let anchor = Anchor::new(t);
    anchor.record();
    truth::resource("summary", "oneshot", &summary, "oneshot::Receiver in the auditor's future; the collector keeps the Sender");
    let events = match park!(t, 0, "summary" => &mut summary).await {
        Ok(s) => s.events,
        Err(_) => 0,
    };
    anchor.keep();
    println!("audit: {events} events");
}

/// Collect stock events; send the auditor a summary when the stream ends.
async fn collect(t: Tid, mut events: mpsc::Receiver<StockEvent>, summary: oneshot::Sender<Summary>) {
    let anchor = Anchor::new(t);
    anchor.record();
    hold!(t, "summary");
    truth::resource("stock events", "channel", &events, "mpsc::Receiver in the collector's future; main keeps the Sender and never sends");
    let mut n = 0;
    let mut net = 0;
    while let Some(ev) = park!(t, 0, "stock events" => events.next()).await {
        n += 1;
        net += ev.delta;
        println!("{}: {net}", ev.item);
    }
    anchor.keep();
    let _ = summary.send(Summary { events: n });
}

fn main() {
    let path = truth::truth_path();
    truth::thread_role("main, running the LocalPool");
    let mut pool = LocalPool::new();
    let spawner = pool.spawner();
    let warehouse = Rc::new(Mutex::new(Inventory { site: "warehouse", items: vec![("bolts", 120), ("nuts", 80)] }));
    let storefront = Rc::new(Mutex::new(Inventory { site: "storefront", items: vec![("bolts", 12)] }));
    truth::resource("warehouse", "mutex", &*warehouse, "futures::lock::Mutex in an Rc");
    truth::resource("storefront", "mutex", &*storefront, "futures::lock::Mutex in an Rc");
    let (hs_a, hs_b) = handshakes();
    let (summary_tx, summary_rx) = oneshot::channel::<Summary>();
    let (events_tx, events_rx) = mpsc::channel::<StockEvent>(16);

    let (w, s) = (warehouse.clone(), storefront.clone());
    let f = truth::named("reconcile warehouse", |t| reconcile(t, w, s, ("warehouse", "storefront"), hs_a));
    spawner.spawn_local(f).expect("spawn_local");
    let (w, s) = (warehouse.clone(), storefront.clone());
    let f = truth::named("reconcile storefront", |t| reconcile(t, s, w, ("storefront", "warehouse"), hs_b));
    spawner.spawn_local(f).expect("spawn_local");
    let f = truth::named("auditor", |t| audit(t, summary_rx));
    spawner.spawn_local(f).expect("spawn_local");
    let f = truth::named("collector", |t| collect(t, events_rx, summary_tx));
    spawner.spawn_local(f).expect("spawn_local");

    pool.run_until_stalled();
    // Parks: each reconciler 4 (own lock, handshake, apply, apply's lock);
    // auditor and collector 1. The pool is stalled: every task is Pending.
    let expected = [(Tid(1), 4), (Tid(2), 4), (Tid(3), 1), (Tid(4), 1)];
    assert!(truth::all_parked(&expected), "LocalPool stalled before every task reached its park");
    truth::wait_parked(&expected);
    truth::write_truth(
        &path,
        truth::Truth {
            scenario: env!("CARGO_BIN_NAME"),
            executor: "futures-localpool",
            crates: &["futures", "futures-executor", "futures-util", "futures-channel", "futures-task"],
            cycle: &[(Tid(1), "storefront"), (Tid(2), "warehouse")],
            extra: json!({}),
        },
    );
    let _keep = (&pool, &spawner, &events_tx, &warehouse, &storefront);
    truth::block_forever();
}
