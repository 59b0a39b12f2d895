//! Alan's shop: the classic AB-BA deadlock on two `tokio::sync::Mutex`es.
//!
//! `checkout` takes the inventory lock, then (inside the nested async fn
//! `reserve_payment`) waits for the payments lock. `refund` takes the
//! payments lock, then waits for the inventory lock. A `Barrier` makes sure
//! both first locks are held before either task asks for its second, so the
//! deadlock is deterministic. A `heartbeat` task sleeps for an hour in a loop:
//! parked, but not part of the deadlock.
//!
//! Runtime: current_thread -- the same story as `mutex_deadlock`, but every
//! task lives in the single scheduler's local run queue / owned list.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::{Barrier, Mutex};

type Inventory = Arc<Mutex<HashMap<String, u32>>>;
type Payments = Arc<Mutex<Vec<(String, i64)>>>;

/// Reserve the payment for an order; needs the payments lock.
async fn reserve_payment(payments: &Payments, order: &str, cents: i64) {
    let mut ledger = park!(1, payments.lock()).await; hold!("payments");
    ledger.push((order.to_string(), cents));
}

/// Take stock out of inventory, then charge for it.
async fn checkout(inventory: Inventory, payments: Payments, barrier: Arc<Barrier>) {
    let mut stock = park!(0, inventory.lock()).await; hold!("inventory");
    *stock.entry("widget".to_string()).or_default() -= 1;
    park!(0, barrier.wait()).await;
    park!(0, reserve_payment(&payments, "order-1", 1999)).await;
    drop(stock);
}

/// Refund a payment, then put the item back into inventory.
async fn refund(inventory: Inventory, payments: Payments, barrier: Arc<Barrier>) {
    let mut ledger = park!(0, payments.lock()).await; hold!("payments");
    ledger.push(("order-0".to_string(), -1999));
    park!(0, barrier.wait()).await;
    let mut stock = park!(0, inventory.lock()).await; hold!("inventory");
    *stock.entry("widget".to_string()).or_default() += 1;
}

/// Unrelated background task, idle most of the time.
async fn heartbeat() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let path = scenarios::truth_path();
    let inventory: Inventory = Arc::new(Mutex::new(HashMap::from([("widget".to_string(), 10)])));
    let payments: Payments = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(2));

    let ck = spawn_named("checkout", checkout(inventory.clone(), payments.clone(), barrier.clone()));
    let rf = spawn_named("refund", refund(inventory.clone(), payments.clone(), barrier.clone()));
    let hb = spawn_named("heartbeat", heartbeat());

    // checkout's 4th park! (the payments lock inside reserve_payment), refund's
    // 3rd (the inventory lock) and heartbeat's 1st are where they stay stuck.
    scenarios::wait_parked(&[(ck.id(), 4), (rf.id(), 3), (hb.id(), 1)]).await;

    let (ck_id, rf_id) = (scenarios::id_u64(ck.id()), scenarios::id_u64(rf.id()));
    let (inv_holder, inv_line) = scenarios::holder("inventory").unwrap();
    let (pay_holder, pay_line) = scenarios::holder("payments").unwrap();
    assert_eq!((inv_holder, pay_holder), (ck_id, rf_id));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            // checkout waits for payments (held by refund), refund for inventory.
            "cycle": [ck_id, rf_id],
            "resources": [
                {"kind": "mutex", "name": "inventory", "held_by": ck_id, "waited_by": [rf_id], "held_line": inv_line},
                {"kind": "mutex", "name": "payments", "held_by": rf_id, "waited_by": [ck_id], "held_line": pay_line},
            ],
        }),
    );
    std::future::pending::<()>().await;
}
