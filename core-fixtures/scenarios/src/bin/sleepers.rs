//! Negative control: tasks in timers of various lengths. Every one of them
//! will wake up on its own, so the diagnoses are empty.
//!
//! - `sleep_10min`, `sleep_1h`, `sleep_1d`: `tokio::time::sleep` of 600 s,
//!   3600 s and 86400 s.
//! - `sleep_until`: `tokio::time::sleep_until(now + 7 days)`.
//! - `interval_2h`: second `tick()` of a 2 h `tokio::time::interval` (the
//!   first tick completes immediately).
//! - `nested_sleep`: an async fn (`nap`) that sleeps 1800 s, awaited at
//!   level 1.
//!
//! Each `sleep` resource records `"duration_secs"`.
//!
//! Runtime: multi_thread, 2 workers.

use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::time::{interval, sleep, sleep_until, Instant};

async fn sleeper(secs: u64) {
    park!(0, sleep(Duration::from_secs(secs))).await;
}

async fn until(secs: u64) {
    park!(0, sleep_until(Instant::now() + Duration::from_secs(secs))).await;
}

async fn ticker(secs: u64) {
    let mut iv = interval(Duration::from_secs(secs));
    loop {
        park!(0, iv.tick()).await;
    }
}

async fn nap(secs: u64) {
    park!(1, sleep(Duration::from_secs(secs))).await;
}

async fn nested_sleep(secs: u64) {
    park!(0, nap(secs)).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let specs: [(&str, u64, usize); 6] = [
        ("sleep_10min", 600, 1),
        ("sleep_1h", 3600, 1),
        ("sleep_1d", 86400, 1),
        ("sleep_until", 7 * 86400, 1),
        ("interval_2h", 7200, 2),
        ("nested_sleep", 1800, 2),
    ];
    let mut handles = Vec::new();
    for &(name, secs, _) in &specs {
        let h = match name {
            "sleep_until" => spawn_named(name, until(secs)),
            "interval_2h" => spawn_named(name, ticker(secs)),
            "nested_sleep" => spawn_named(name, nested_sleep(secs)),
            _ => spawn_named(name, sleeper(secs)),
        };
        handles.push(h);
    }
    let expected: Vec<_> = handles.iter().zip(&specs).map(|(h, s)| (h.id(), s.2)).collect();
    scenarios::wait_parked(&expected).await;

    let mut resources = Vec::new();
    for (h, &(name, secs, _)) in handles.iter().zip(&specs) {
        let id = scenarios::id_u64(h.id());
        scenarios::annotate(id, "waits_on", json!({"kind": "sleep", "name": name}));
        resources.push(json!({"kind": "sleep", "name": name, "held_by": [], "waited_by": [id],
                              "held_line": null, "duration_secs": secs}));
    }
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "cycle": null,
            "diagnoses": [],
            "resources": resources,
        }),
    );
    let _keep = handles;
    std::future::pending::<()>().await;
}
