//! Two independent deadlocks, each with a task stuck behind it: what a
//! diagnosis must tell apart (the cycle is the cause, the tasks behind it
//! are its consequences, and each is attributed to its own cycle).
//!
//! - Cycle 1, on two `tokio::sync::Mutex`es: `pick` holds `shelf` and waits
//!   for `cart`; `pack` holds `cart` and waits for `shelf`. Behind it,
//!   `restock` waits for `shelf` (held by `pick`).
//! - Cycle 2, on two bounded `mpsc` channels of capacity 1, both full:
//!   `billing` waits to send to `shipping`, which waits to send to
//!   `billing`; each owns the receiver the other needs drained. Behind it,
//!   `report` awaits the `JoinHandle` of `billing`.
//!
//! `Barrier`s make both cycles deterministic. Runtime: multi_thread, 2
//! workers.

use std::sync::Arc;

use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::mpsc::{channel, Receiver, Sender};
use tokio::sync::{Barrier, Mutex};

type Shelf = Arc<Mutex<Vec<&'static str>>>;
type Cart = Arc<Mutex<Vec<&'static str>>>;

async fn pick(shelf: Shelf, cart: Cart, barrier: Arc<Barrier>) {
    let mut s = park!(0, shelf.lock()).await; hold!("shelf");
    let item = s.pop().unwrap_or("widget");
    park!(0, barrier.wait()).await;
    let mut c = park!(0, cart.lock()).await; hold!("cart");
    c.push(item);
}

async fn pack(shelf: Shelf, cart: Cart, barrier: Arc<Barrier>) {
    let mut c = park!(0, cart.lock()).await; hold!("cart");
    c.clear();
    park!(0, barrier.wait()).await;
    let s = park!(0, shelf.lock()).await; hold!("shelf");
    drop(s);
}

async fn restock(shelf: Shelf, started: Arc<Barrier>) {
    park!(0, started.wait()).await;
    let mut s = park!(0, shelf.lock()).await; hold!("shelf");
    s.push("gadget");
}

/// Sends two invoices to shipping (the second finds the channel full)
/// before it would read shipping's notes.
async fn billing(to_shipping: Sender<u32>, mut from_shipping: Receiver<u32>, barrier: Arc<Barrier>) {
    park!(0, to_shipping.send(1)).await.unwrap();
    park!(0, barrier.wait()).await;
    park!(0, to_shipping.send(2)).await.unwrap();
    while let Some(_note) = from_shipping.recv().await {}
}

async fn shipping(to_billing: Sender<u32>, mut from_billing: Receiver<u32>, barrier: Arc<Barrier>) {
    park!(0, to_billing.send(10)).await.unwrap();
    park!(0, barrier.wait()).await;
    park!(0, to_billing.send(20)).await.unwrap();
    while let Some(_invoice) = from_billing.recv().await {}
}

async fn report(billing: tokio::task::JoinHandle<()>) {
    park!(0, billing).await.ok();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let shelf: Shelf = Arc::new(Mutex::new(vec!["widget"]));
    let cart: Cart = Arc::new(Mutex::new(Vec::new()));
    let b1 = Arc::new(Barrier::new(2));
    let started = Arc::new(Barrier::new(2));
    let b2 = Arc::new(Barrier::new(2));
    let (to_shipping, from_billing) = channel::<u32>(1);
    let (to_billing, from_shipping) = channel::<u32>(1);

    let a = spawn_named("pick", pick(shelf.clone(), cart.clone(), b1.clone()));
    let b = spawn_named("pack", pack(shelf.clone(), cart.clone(), b1.clone()));
    let c = spawn_named("restock", restock(shelf.clone(), started.clone()));
    let d = spawn_named("billing", billing(to_shipping, from_shipping, b2.clone()));
    let e = spawn_named("shipping", shipping(to_billing, from_billing, b2.clone()));
    let (a_id, b_id, c_id) = (scenarios::id_u64(a.id()), scenarios::id_u64(b.id()), scenarios::id_u64(c.id()));
    let (d_id, e_id) = (scenarios::id_u64(d.id()), scenarios::id_u64(e.id()));
    // pick and pack are in their cycle (their 3rd park!) before restock
    // asks for the shelf.
    scenarios::wait_parked(&[(a.id(), 3), (b.id(), 3)]).await;
    started.wait().await;
    let f = spawn_named("report", report(d));
    let f_id = scenarios::id_u64(f.id());
    scenarios::wait_parked(&[(c.id(), 2), (e.id(), 3), (f.id(), 1)]).await;
    scenarios::wait_named(&[("billing", 3)]).await;

    let (shelf_holder, shelf_line) = scenarios::holder("shelf").unwrap();
    let (cart_holder, cart_line) = scenarios::holder("cart").unwrap();
    assert_eq!((shelf_holder, cart_holder), (a_id, b_id));
    scenarios::annotate(a_id, "waits_on", json!({"kind": "mutex", "name": "cart"}));
    scenarios::annotate(b_id, "waits_on", json!({"kind": "mutex", "name": "shelf"}));
    scenarios::annotate(c_id, "waits_on", json!({"kind": "mutex", "name": "shelf"}));
    scenarios::annotate(d_id, "waits_on", json!({"kind": "mpsc", "name": "to_shipping"}));
    scenarios::annotate(e_id, "waits_on", json!({"kind": "mpsc", "name": "to_billing"}));
    scenarios::annotate(f_id, "waits_on", json!({"kind": "join", "name": "billing"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            // Each deadlock: "tasks" its cycle, "blocked" the task stuck
            // behind it and the task that one waits for.
            "diagnoses": [
                {"kind": "deadlock", "tasks": [a_id, b_id], "blocked": [{"task": c_id, "waits_for": a_id}]},
                {"kind": "deadlock", "tasks": [d_id, e_id], "blocked": [{"task": f_id, "waits_for": d_id}]},
            ],
            "resources": [
                {"kind": "mutex", "name": "shelf", "held_by": [a_id], "waited_by": [b_id, c_id], "held_line": shelf_line},
                {"kind": "mutex", "name": "cart", "held_by": [b_id], "waited_by": [a_id], "held_line": cart_line},
            ],
        }),
    );
    std::future::pending::<()>().await;
}
