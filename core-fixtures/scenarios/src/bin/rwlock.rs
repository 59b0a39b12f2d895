//! A writer queued behind two readers that hold their read guards across an
//! await.
//!
//! `reader0` and `reader1` take `config.read()` and then, guard in hand, wait
//! on the `reload` `Notify`. `writer` then waits for `config.write()`.
//! `coordinator` owns a clone of `reload` and sleeps in an hour-long loop: it
//! could still notify, so nothing here is provably stuck and the diagnoses
//! are empty. (A waker-graph edge writer -> readers -> reload -> coordinator
//! ends in a sleeping task, not a cycle.)
//!
//! Runtime: multi_thread, 2 workers.

use std::sync::Arc;
use std::time::Duration;

use scenarios::{hold, park, spawn_named};
use serde_json::json;
use tokio::sync::{Notify, RwLock};

type Config = Arc<RwLock<Vec<String>>>;

async fn reader(config: Config, reload: Arc<Notify>, k: usize) -> usize {
    let cfg = park!(0, config.read()).await; hold!(&format!("config_read{k}"));
    park!(0, reload.notified()).await;
    cfg.len()
}

async fn writer(config: Config) {
    let mut cfg = park!(0, config.write()).await;
    cfg.push("reloaded".to_string());
}

async fn coordinator(reload: Arc<Notify>) {
    loop {
        park!(0, tokio::time::sleep(Duration::from_secs(3600))).await;
        reload.notify_waiters();
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let config: Config = Arc::new(RwLock::new(vec!["a=1".to_string()]));
    let reload = Arc::new(Notify::new());

    let c = spawn_named("coordinator", coordinator(reload.clone()));
    let r0 = spawn_named("reader0", reader(config.clone(), reload.clone(), 0));
    let r1 = spawn_named("reader1", reader(config.clone(), reload.clone(), 1));
    // Readers: 2nd park! is the Notify, with the read guard held.
    scenarios::wait_parked(&[(c.id(), 1), (r0.id(), 2), (r1.id(), 2)]).await;
    let w = spawn_named("writer", writer(config.clone()));
    scenarios::wait_parked(&[(w.id(), 1)]).await;

    let [c_id, r0_id, r1_id, w_id] = [c.id(), r0.id(), r1.id(), w.id()].map(scenarios::id_u64);
    let (h0, read_line) = scenarios::holder("config_read0").unwrap();
    let (h1, read_line1) = scenarios::holder("config_read1").unwrap();
    assert_eq!((h0, h1, read_line), (r0_id, r1_id, read_line1));
    scenarios::annotate(c_id, "waits_on", json!({"kind": "sleep", "name": "coordinator_sleep"}));
    scenarios::annotate(r0_id, "waits_on", json!({"kind": "notify", "name": "reload"}));
    scenarios::annotate(r1_id, "waits_on", json!({"kind": "notify", "name": "reload"}));
    scenarios::annotate(w_id, "waits_on", json!({"kind": "rwlock", "name": "config"}));
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [],
            "resources": [
                {"kind": "rwlock", "name": "config", "held_by": [r0_id, r1_id], "waited_by": [w_id], "held_line": read_line,
                 "mode": "read", "waiter_mode": "write"},
                {"kind": "notify", "name": "reload", "held_by": [c_id, r0_id, r1_id], "held_by_main": true,
                 "waited_by": [r0_id, r1_id], "held_line": null},
                {"kind": "sleep", "name": "coordinator_sleep", "held_by": [], "waited_by": [c_id], "held_line": null},
            ],
        }),
    );
    let _keep = (c, r0, r1, w);
    std::future::pending::<()>().await;
}
