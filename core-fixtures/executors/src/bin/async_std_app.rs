//! A peer handshake and a cache on async-std 1.13 (`async_std::task::spawn`,
//! async-std's global executor threads).
//!
//! - `peer east` and `peer west` (`peer`) each wait for the other's hello on
//!   their own inbox (an `async_std::channel`) before sending theirs: each
//!   holds the Sender of the other's inbox, neither sends first -- a
//!   channel cycle.
//! - `cache refresher` (`refresh`) locks the cache, an
//!   `async_std::sync::Mutex<Cache>`, and keeps the guard across an await:
//!   in the nested `fetch_upstream` it waits on the `upstream` channel.
//!   `cache reader` (`read_through`, then `lookup`) waits for the cache lock.
//! - `poller` holds the `upstream` Sender and sleeps an hour
//!   (`async_std::task::sleep`) before it would poll and send.
//!
//! Each task also records async-std's own task id (`executor_task_id`).

use std::collections::HashMap;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use async_std::channel::{Receiver, Sender};
use async_std::sync::Mutex;
use async_std::task;
use serde_json::json;
use truth::{hold, park, Anchor, Tid};

/// A handshake message (nobody says Bye: the handshake never gets that far).
#[allow(dead_code)]
enum Hello {
    Hi { from: &'static str, version: u32 },
    Bye,
}

/// The cache the refresher fills from upstream.
struct Cache {
    entries: HashMap<String, u64>,
    generation: u64,
}

/// A batch of fresh entries from upstream.
struct Update {
    entries: Vec<(String, u64)>,
}

fn record_task_id(t: Tid) {
    let id: u64 = task::current().id().to_string().parse().expect("async-std task id is an integer");
    truth::annotate(t, "executor_task_id", json!(id));
}

/// One side of the handshake: wait for the peer's hello, then answer.
async fn peer(t: Tid, me: &'static str, inbox: Receiver<Hello>, to_peer: Sender<Hello>, inbox_name: &'static str, peer_inbox: &'static str) {
    record_task_id(t);
    let anchor = Anchor::new(t);
    anchor.record();
    hold!(t, peer_inbox);
    truth::resource(inbox_name, "channel", &inbox, "Receiver in this peer's future; the other peer holds the Sender");
    let mut greeted = 0;
    while let Ok(msg) = park!(t, 0, inbox_name => inbox.recv()).await {
        match msg {
            Hello::Hi { from, version } => {
                println!("{me}: hello from {from} (v{version})");
                greeted += 1;
                let _ = to_peer.send(Hello::Hi { from: me, version: 2 }).await;
            }
            Hello::Bye => break,
        }
    }
    anchor.keep();
    println!("{me}: {greeted} greetings");
}

/// Take the cache lock and refill the cache from upstream, holding it.
async fn refresh(t: Tid, cache: Arc<Mutex<Cache>>, upstream: Receiver<Update>) {
    record_task_id(t);
    let anchor = Anchor::new(t);
    anchor.record();
    truth::resource("upstream", "channel", &upstream, "Receiver in the refresher's future; the poller holds the Sender");
    let mut guard = park!(t, 0, "cache" => cache.lock()).await; hold!(t, "cache");
    let update = park!(t, 0, fetch_upstream(t, &upstream)).await;
    for (k, v) in update.entries {
        guard.entries.insert(k, v);
    }
    guard.generation += 1;
    anchor.keep();
}

/// The next update from upstream (an empty one if upstream hung up).
async fn fetch_upstream(t: Tid, upstream: &Receiver<Update>) -> Update {
    match park!(t, 1, "upstream" => upstream.recv()).await {
        Ok(u) => u,
        Err(_) => Update { entries: Vec::new() },
    }
}

/// Read a few keys through the cache.
async fn read_through(t: Tid, cache: Arc<Mutex<Cache>>, keys: Vec<&'static str>) {
    record_task_id(t);
    let anchor = Anchor::new(t);
    anchor.record();
    let mut hits = 0;
    for key in keys {
        if park!(t, 0, lookup(t, &cache, key)).await.is_some() {
            hits += 1;
        }
    }
    anchor.keep();
    println!("reader: {hits} hits");
}

async fn lookup(t: Tid, cache: &Mutex<Cache>, key: &str) -> Option<u64> {
    let guard = park!(t, 1, "cache" => cache.lock()).await;
    guard.entries.get(key).copied()
}

/// Poll upstream every `interval` and forward what it returns.
async fn poll(t: Tid, upstream: Sender<Update>, interval: Duration) {
    record_task_id(t);
    let anchor = Anchor::new(t);
    anchor.record();
    hold!(t, "upstream");
    let mut polls = 0u64;
    let sleep = pin!(task::sleep(interval));
    truth::resource("poll interval", "timer", &*sleep, "async_std::task::sleep's future, pinned in the poller's future, due in an hour");
    park!(t, 0, "poll interval" => sleep).await;
    polls += 1;
    let _ = upstream.send(Update { entries: vec![("poll".to_string(), polls)] }).await;
    anchor.keep();
}

fn main() {
    let path = truth::truth_path();
    truth::thread_role("main");
    let (east_tx, east_rx) = async_std::channel::bounded::<Hello>(4);
    let (west_tx, west_rx) = async_std::channel::bounded::<Hello>(4);
    let cache = Arc::new(Mutex::new(Cache { entries: HashMap::new(), generation: 0 }));
    truth::resource("cache", "mutex", &*cache, "async_std::sync::Mutex in an Arc");
    let (up_tx, up_rx) = async_std::channel::unbounded::<Update>();

    let mut handles = Vec::new();
    let f = truth::named("peer east", |t| peer(t, "east", east_rx, west_tx, "east inbox", "west inbox"));
    handles.push(task::spawn(f));
    let f = truth::named("peer west", |t| peer(t, "west", west_rx, east_tx, "west inbox", "east inbox"));
    handles.push(task::spawn(f));
    let c = cache.clone();
    let f = truth::named("cache refresher", |t| refresh(t, c, up_rx));
    handles.push(task::spawn(f));
    // The reader must find the cache locked: let the refresher get there.
    // Its parks: the lock, fetch_upstream, fetch_upstream's recv.
    truth::wait_parked(&[(Tid(3), 3)]);
    let c = cache.clone();
    let f = truth::named("cache reader", |t| read_through(t, c, vec!["users", "groups"]));
    handles.push(task::spawn(f));
    let f = truth::named("poller", |t| poll(t, up_tx, Duration::from_secs(3600)));
    handles.push(task::spawn(f));

    truth::wait_parked(&[(Tid(1), 1), (Tid(2), 1), (Tid(3), 3), (Tid(4), 2), (Tid(5), 1)]);
    truth::write_truth(
        &path,
        truth::Truth {
            scenario: env!("CARGO_BIN_NAME"),
            executor: "async-std",
            crates: &["async-std", "async-global-executor", "async-executor", "async-task", "async-io", "async-lock", "async-channel", "event-listener"],
            cycle: &[(Tid(1), "east inbox"), (Tid(2), "west inbox")],
            extra: json!({}),
        },
    );
    let _keep = (&handles, &cache);
    truth::block_forever();
}
