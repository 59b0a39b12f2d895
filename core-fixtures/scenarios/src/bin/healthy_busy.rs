//! Negative control: a busy, healthy program. Nothing is stuck.
//!
//! - `cruncher0..3` loop forever: a little arithmetic, then
//!   `tokio::task::yield_now()`.
//! - `pinger` loops on a 1 ms `tokio::time::sleep`.
//! - `ping` and `pong` bounce a counter over two `mpsc::channel(1)`s.
//!
//! The core is dumped at an arbitrary moment, so each task may be running,
//! notified or idle, and a running task may be anywhere in its loop. Truth:
//! every task has `"state": null` and `"dynamic": true` (top-level
//! `"dynamic": true` too); `"possible_lines"` lists the level-0 await lines
//! it can be suspended at, and `chain` is just the last one it recorded. `diagnoses` is `[]`: a correct analysis
//! flags nothing.
//!
//! Runtime: multi_thread, 2 workers.

use std::hint::black_box;
use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::mpsc::{channel, Receiver, Sender};

async fn cruncher(seed: u64) {
    let mut x = seed;
    loop {
        for _ in 0..1000 {
            x = black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407));
        }
        park!(0, tokio::task::yield_now()).await;
    }
}

async fn pinger() {
    loop {
        park!(0, tokio::time::sleep(Duration::from_millis(1))).await;
    }
}

async fn ping(tx: Sender<u64>, mut rx: Receiver<u64>) {
    let mut n = 0;
    loop {
        park!(0, tx.send(n)).await.unwrap();
        n = park!(0, rx.recv()).await.unwrap() + 1;
    }
}

async fn pong(tx: Sender<u64>, mut rx: Receiver<u64>) {
    loop {
        let n = park!(0, rx.recv()).await.unwrap();
        park!(0, tx.send(n + 1)).await.unwrap();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let mut handles: Vec<_> = (0..4).map(|k| spawn_named(&format!("cruncher{k}"), cruncher(k))).collect();
    handles.push(spawn_named("pinger", pinger()));
    let (a_tx, a_rx) = channel(1);
    let (b_tx, b_rx) = channel(1);
    handles.push(spawn_named("ping", ping(a_tx, b_rx)));
    handles.push(spawn_named("pong", pong(b_tx, a_rx)));

    // Everyone has gone round its loop a good number of times.
    let expected: Vec<_> = handles.iter().map(|h| (h.id(), 50)).collect();
    scenarios::wait_parked(&expected).await;

    for h in &handles {
        let id = scenarios::id_u64(h.id());
        scenarios::annotate(id, "state", json!(null));
        scenarios::annotate(id, "dynamic", json!(true));
        scenarios::annotate(id, "possible_lines", json!(scenarios::seen_lines(id)));
    }
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [],
            "resources": [],
            "dynamic": true,
        }),
    );
    let _keep = handles;
    std::future::pending::<()>().await;
}
