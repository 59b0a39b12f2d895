//! The matrix's AB-BA deadlock: `checkout` holds the `inventory`
//! `tokio::sync::Mutex` and waits for `payments` inside the nested async fn
//! `reserve_payment` (a 2-level chain); `refund` holds `payments` and waits
//! for `inventory`. A `Barrier` makes sure both first locks are held before
//! either task asks for its second. `heartbeat` sleeps an hour in a loop:
//! parked, not deadlocked.
//!
//! Truth: `cycle` = [checkout, refund], one `deadlock` diagnosis.
//! Runtime: multi_thread, 2 workers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mscen::{park, Json, Task};
use tokio::sync::{Barrier, Mutex};

type Inventory = Arc<Mutex<HashMap<String, u32>>>;
type Payments = Arc<Mutex<Vec<(String, i64)>>>;

/// Reserve the payment for an order; needs the payments lock.
async fn reserve_payment(t: Task, payments: &Payments, order: &str, cents: i64) {
    let mut ledger = park!(t, 1, payments.lock()).await;
    ledger.push((order.to_string(), cents));
}

/// Take stock out of inventory, then charge for it.
async fn checkout(t: Task, inventory: Inventory, payments: Payments, barrier: Arc<Barrier>) {
    let mut stock = park!(t, 0, inventory.lock()).await;
    *stock.entry("widget".to_string()).or_default() -= 1;
    park!(t, 0, barrier.wait()).await;
    park!(t, 0, reserve_payment(t, &payments, "order-1", 1999)).await;
    drop(stock);
}

/// Refund a payment, then put the item back into inventory.
async fn refund(t: Task, inventory: Inventory, payments: Payments, barrier: Arc<Barrier>) {
    let mut ledger = park!(t, 0, payments.lock()).await;
    ledger.push(("order-0".to_string(), -1999));
    park!(t, 0, barrier.wait()).await;
    let mut stock = park!(t, 0, inventory.lock()).await;
    *stock.entry("widget".to_string()).or_default() += 1;
}

/// Unrelated background task, idle most of the time.
async fn heartbeat(t: Task) {
    loop {
        park!(t, 0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = mscen::truth_path();
    let inventory: Inventory = Arc::new(Mutex::new(HashMap::from([("widget".to_string(), 10)])));
    let payments: Payments = Arc::new(Mutex::new(Vec::new()));
    let barrier = Arc::new(Barrier::new(2));

    let (ck, rf, hb) = (mscen::task("checkout"), mscen::task("refund"), mscen::task("heartbeat"));
    let h1 = mscen::spawn(ck, checkout(ck, inventory.clone(), payments.clone(), barrier.clone()));
    let h2 = mscen::spawn(rf, refund(rf, inventory.clone(), payments.clone(), barrier.clone()));
    let h3 = mscen::spawn(hb, heartbeat(hb));

    // checkout's 4th park (the payments lock inside reserve_payment),
    // refund's 3rd (the inventory lock) and heartbeat's 1st are final.
    mscen::wait_parked(&[(ck, 4), (rf, 3), (hb, 1)]).await;

    mscen::write_truth(
        &path,
        env!("CARGO_BIN_NAME"),
        "multi_thread",
        vec![
            // checkout waits for payments (held by refund), refund for inventory.
            ("cycle", mscen::keys(&[ck, rf])),
            ("diagnoses", Json::Arr(vec![Json::obj(vec![("kind", Json::str("deadlock")), ("tasks", mscen::keys(&[ck, rf]))])])),
        ],
    );
    let _keep = (h1, h2, h3);
    std::future::pending::<()>().await;
}
