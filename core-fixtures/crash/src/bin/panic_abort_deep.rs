//! A panic three async fns deep, built with panic = "abort" (profile
//! `abort`): the process dies of SIGABRT inside the panic machinery, on the
//! worker thread that was polling the task, with the task's state machines
//! still in memory.
//!
//! `checkout` awaits `load_cart`, which awaits `price_of`, which awaits the
//! price feed (a oneshot main answers once the other tasks are parked) and
//! then calls `.expect(..)` on the `None` it got. Idle bystanders:
//! `heartbeat` (an hour's sleep in a loop), `session_reaper` (a `Notify`),
//! `order_listener` (an mpsc `recv` whose sender main keeps).
//!
//! Truth: `"crash"` {kind "panic", SIGABRT, the message, the expect line,
//! task = checkout, thread = its worker, chain checkout -> load_cart ->
//! price_of}; checkout is `"state": "running"` with that chain.
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use crash::step;
use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};

const NO_QUOTE: &str = "price feed returned no quote for SKU-42";

/// The price of one item, from the price feed.
async fn price_of(sku: &str, feed: oneshot::Receiver<Option<u64>>) -> u64 {
    let quote = step!(2, feed).await.unwrap_or(None);
    crash::record(crash::Crash {
        kind: "panic",
        signal: "SIGABRT",
        message: Some(NO_QUOTE.to_string()),
        site: crash::site!("quote.expect(NO_QUOTE)"),
        extra: json!({"sku": sku}),
    });
    let price = quote.expect(NO_QUOTE);
    price * 2
}

/// Load the cart and price its items.
async fn load_cart(cart: Vec<&'static str>, feed: oneshot::Receiver<Option<u64>>) -> u64 {
    let mut total = 0;
    let first = cart[0];
    total += step!(1, price_of(first, feed)).await;
    total + cart.len() as u64
}

async fn checkout(feed: oneshot::Receiver<Option<u64>>) {
    let cart = vec!["SKU-42", "SKU-7"];
    let total = step!(0, load_cart(cart, feed)).await;
    println!("total {total}");
}

async fn heartbeat() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
    }
}

async fn session_reaper(n: Arc<Notify>) {
    park!(0, n.notified()).await;
}

async fn order_listener(mut orders: mpsc::Receiver<u64>) {
    while let Some(o) = park!(0, orders.recv()).await {
        println!("order {o}");
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    crash::init(env!("CARGO_BIN_NAME"));
    let n = Arc::new(Notify::new());
    let (orders_tx, orders_rx) = mpsc::channel(8);
    let (feed_tx, feed_rx) = oneshot::channel();
    let hb = spawn_named("heartbeat", heartbeat());
    let sr = spawn_named("session_reaper", session_reaper(n.clone()));
    let ol = spawn_named("order_listener", order_listener(orders_rx));
    let ck = spawn_named("checkout", checkout(feed_rx));
    crash::will_crash(ck.id());
    scenarios::wait_parked(&[(hb.id(), 1), (sr.id(), 1), (ol.id(), 1), (ck.id(), 3)]).await;
    // The feed answers: no quote. checkout crashes in price_of.
    feed_tx.send(None).unwrap();
    let _keep = (n, orders_tx, hb, sr, ol, ck);
    std::future::pending::<()>().await;
}
