//! An order desk on a hand-rolled executor in the style of the async book
//! ("Build an Executor"): a `Task` is its boxed future behind a
//! `std::sync::Mutex<Option<..>>` plus the queue it reschedules itself on;
//! its waker is `Waker::from(Arc<Task>)` (`std::task::Wake`); one thread
//! runs the queue. Nothing else keeps a task: once it is Pending, its
//! `Arc<Task>` lives only in the wakers it left with what it awaits.
//!
//! - `place order` (`place_order`, then the nested `reserve`) locks
//!   `orders`, a `futures::lock::Mutex<Orders>`, hears from `restock` that
//!   it holds `stock` (a `futures::channel::oneshot` handshake), then waits
//!   in `reserve` for `stock`; `restock` locks `stock`, hears from
//!   `place order`, then waits for `orders`: an AB-BA deadlock.
//! - `notify customer` waits on a `futures::channel::oneshot` for the
//!   shipment `place order` would confirm (it keeps the Sender).

use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex as StdMutex};
use std::task::{Context, Wake, Waker};

use futures::channel::oneshot;
use futures::lock::Mutex;
use serde_json::json;
use truth::{hold, park, Anchor, Tid};

/// A spawned future and the queue it goes back on when woken.
struct Task {
    future: StdMutex<Option<Pin<Box<dyn Future<Output = ()> + Send + 'static>>>>,
    queue: Sender<Arc<Task>>,
}

impl Wake for Task {
    fn wake(self: Arc<Self>) {
        let queue = self.queue.clone();
        let _ = queue.send(self);
    }
}

/// Hands out tasks onto the run queue.
#[derive(Clone)]
struct Spawner {
    queue: Sender<Arc<Task>>,
}

impl Spawner {
    fn spawn(&self, future: impl Future<Output = ()> + Send + 'static) {
        let task = Arc::new(Task { future: StdMutex::new(Some(Box::pin(future))), queue: self.queue.clone() });
        self.queue.send(task).expect("run queue closed");
    }
}

/// Polls whatever is woken, forever.
struct Executor {
    ready: Receiver<Arc<Task>>,
}

impl Executor {
    fn run(&self) {
        while let Ok(task) = self.ready.recv() {
            let mut slot = task.future.lock().unwrap();
            if let Some(mut future) = slot.take() {
                let waker = Waker::from(task.clone());
                let mut cx = Context::from_waker(&waker);
                if future.as_mut().poll(&mut cx).is_pending() {
                    *slot = Some(future);
                }
            }
        }
    }
}

fn new_executor() -> (Executor, Spawner) {
    let (queue, ready) = channel();
    (Executor { ready }, Spawner { queue })
}

struct Orders {
    open: Vec<(u32, &'static str, u32)>,
}

struct Stock {
    items: Vec<(&'static str, u32)>,
}

/// "I hold my lock": told to the other side once, heard once.
struct Handshake {
    tell: oneshot::Sender<()>,
    hear: oneshot::Receiver<()>,
}

/// Record an order, then reserve its stock (holding the orders lock).
async fn place_order(t: Tid, orders: Arc<Mutex<Orders>>, stock: Arc<Mutex<Stock>>, hs: Handshake, shipped: oneshot::Sender<u32>) {
    let anchor = Anchor::new(t);
    anchor.record();
    hold!(t, "shipment");
    let mut book = park!(t, 0, "orders" => orders.lock()).await; hold!(t, "orders");
    book.open.push((1001, "widget", 3));
    let _ = hs.tell.send(());
    let _ = park!(t, 0, hs.hear).await;
    let reserved = park!(t, 0, reserve(t, &stock, "widget", 3)).await;
    anchor.keep();
    if reserved {
        let _ = shipped.send(1001);
    }
    book.open.retain(|o| o.0 != 1001);
}

async fn reserve(t: Tid, stock: &Mutex<Stock>, item: &str, n: u32) -> bool {
    let mut stock = park!(t, 1, "stock" => stock.lock()).await; hold!(t, "stock");
    match stock.items.iter_mut().find(|(i, _)| *i == item) {
        Some((_, have)) if *have >= n => {
            *have -= n;
            true
        }
        _ => false,
    }
}

/// Restock, then flag the open orders it can fill (holding the stock lock).
async fn restock(t: Tid, orders: Arc<Mutex<Orders>>, stock: Arc<Mutex<Stock>>, hs: Handshake) {
    let anchor = Anchor::new(t);
    anchor.record();
    let mut shelf = park!(t, 0, "stock" => stock.lock()).await; hold!(t, "stock");
    shelf.items.push(("widget", 10));
    let _ = hs.tell.send(());
    let _ = park!(t, 0, hs.hear).await;
    let book = park!(t, 0, "orders" => orders.lock()).await;
    anchor.keep();
    println!("restock: {} open orders, {} items", book.open.len(), shelf.items.len());
}

/// Tell the customer when the order ships.
async fn notify(t: Tid, mut shipped: oneshot::Receiver<u32>) {
    let anchor = Anchor::new(t);
    anchor.record();
    truth::resource("shipment", "oneshot", &shipped, "oneshot::Receiver in notify's future; place order keeps the Sender");
    match park!(t, 0, "shipment" => &mut shipped).await {
        Ok(order) => println!("order {order} shipped"),
        Err(_) => println!("order cancelled"),
    }
    anchor.keep();
}

fn main() {
    let path = truth::truth_path();
    let (executor, spawner) = new_executor();
    let orders = Arc::new(Mutex::new(Orders { open: Vec::new() }));
    let stock = Arc::new(Mutex::new(Stock { items: vec![("gadget", 4)] }));
    truth::resource("orders", "mutex", &*orders, "futures::lock::Mutex in an Arc");
    truth::resource("stock", "mutex", &*stock, "futures::lock::Mutex in an Arc");
    let (a_tx, a_rx) = oneshot::channel();
    let (b_tx, b_rx) = oneshot::channel();
    let (ship_tx, ship_rx) = oneshot::channel::<u32>();

    let (o, s) = (orders.clone(), stock.clone());
    spawner.spawn(truth::named("place order", |t| place_order(t, o, s, Handshake { tell: a_tx, hear: b_rx }, ship_tx)));
    let (o, s) = (orders.clone(), stock.clone());
    spawner.spawn(truth::named("restock", |t| restock(t, o, s, Handshake { tell: b_tx, hear: a_rx })));
    spawner.spawn(truth::named("notify customer", |t| notify(t, ship_rx)));

    let runner = std::thread::Builder::new()
        .name("handrolled-exec".to_string())
        .spawn(move || {
            truth::thread_role("executor worker");
            executor.run();
        })
        .expect("spawn executor thread");

    // Parks: place order 4 (orders, handshake, reserve, reserve's lock),
    // restock 3 (stock, handshake, orders), notify 1.
    truth::wait_parked(&[(Tid(1), 4), (Tid(2), 3), (Tid(3), 1)]);
    truth::write_truth(
        &path,
        truth::Truth {
            scenario: env!("CARGO_BIN_NAME"),
            executor: "handrolled",
            crates: &["futures", "futures-util", "futures-channel"],
            cycle: &[(Tid(1), "stock"), (Tid(2), "orders")],
            extra: json!({"task_struct": "handrolled::Task"}),
        },
    );
    let _keep = (&spawner, &runner, &orders, &stock);
    truth::block_forever();
}
