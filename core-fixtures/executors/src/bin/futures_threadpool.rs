//! A two-stage relay on the futures crate's `futures::executor::ThreadPool`
//! (2 worker threads, tasks spawned with `spawn_ok`).
//!
//! - `relay left` and `relay right` (`relay`) each wait for a token on their
//!   inbox, a `futures::channel::mpsc` channel, and would pass it on to the
//!   other's inbox; each holds the Sender of the other's inbox and nobody
//!   injects the first token -- a channel cycle.
//! - `shutdown waiter` (`await_ack`, then the nested `ack_of`) waits on a
//!   `futures::channel::oneshot::Receiver` for the relay's acknowledgement;
//!   `relay left` keeps the Sender (it would ack after its first token).

use futures::channel::{mpsc, oneshot};
use futures::executor::ThreadPool;
use futures::{SinkExt, StreamExt};
use serde_json::json;
use truth::{hold, park, Anchor, Tid};

/// What circulates between the relays.
struct Token {
    hops: u32,
    #[allow(dead_code)] // nobody injects a token: never read
    payload: Vec<u8>,
}

/// Pass tokens from `inbox` to `next`; ack once, after the first token.
async fn relay(t: Tid, side: &'static str, mut inbox: mpsc::Receiver<Token>, mut next: mpsc::Sender<Token>, names: (&'static str, &'static str), mut ack: Option<oneshot::Sender<u32>>) {
    let anchor = Anchor::new(t);
    anchor.record();
    hold!(t, names.1);
    if ack.is_some() {
        hold!(t, "ack");
    }
    truth::resource(names.0, "channel", &inbox, "mpsc::Receiver in this relay's future; the other relay holds the Sender");
    let mut forwarded = 0;
    while let Some(mut token) = park!(t, 0, names.0 => inbox.next()).await {
        token.hops += 1;
        if let Some(ack) = ack.take() {
            let _ = ack.send(token.hops);
        }
        if next.send(token).await.is_err() {
            break;
        }
        forwarded += 1;
    }
    anchor.keep();
    println!("{side}: forwarded {forwarded}");
}

/// Wait until the relay acknowledges.
async fn await_ack(t: Tid, ack: oneshot::Receiver<u32>) {
    let anchor = Anchor::new(t);
    anchor.record();
    let hops = park!(t, 0, ack_of(t, ack)).await;
    anchor.keep();
    println!("acked after {hops} hops");
}

async fn ack_of(t: Tid, mut ack: oneshot::Receiver<u32>) -> u32 {
    truth::resource("ack", "oneshot", &ack, "oneshot::Receiver in ack_of's future (inside the waiter's); relay left keeps the Sender");
    park!(t, 1, "ack" => &mut ack).await.unwrap_or(0)
}

fn main() {
    let path = truth::truth_path();
    let pool = ThreadPool::builder()
        .pool_size(2)
        .name_prefix("pool-worker-")
        .after_start(|_| truth::thread_role("executor worker"))
        .create()
        .expect("ThreadPool");
    let (left_tx, left_rx) = mpsc::channel::<Token>(4);
    let (right_tx, right_rx) = mpsc::channel::<Token>(4);
    let (ack_tx, ack_rx) = oneshot::channel::<u32>();

    let f = truth::named("relay left", |t| relay(t, "left", left_rx, right_tx, ("left inbox", "right inbox"), Some(ack_tx)));
    pool.spawn_ok(f);
    let f = truth::named("relay right", |t| relay(t, "right", right_rx, left_tx, ("right inbox", "left inbox"), None));
    pool.spawn_ok(f);
    let f = truth::named("shutdown waiter", |t| await_ack(t, ack_rx));
    pool.spawn_ok(f);

    truth::wait_parked(&[(Tid(1), 1), (Tid(2), 1), (Tid(3), 2)]);
    truth::write_truth(
        &path,
        truth::Truth {
            scenario: env!("CARGO_BIN_NAME"),
            executor: "futures-threadpool",
            crates: &["futures", "futures-executor", "futures-util", "futures-channel", "futures-task"],
            cycle: &[(Tid(1), "left inbox"), (Tid(2), "right inbox")],
            extra: json!({"pool_size": 2}),
        },
    );
    let _keep = &pool;
    truth::block_forever();
}
