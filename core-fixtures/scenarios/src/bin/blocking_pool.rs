//! spawn_blocking work, queued and running (issue 12): a multi_thread
//! runtime (2 workers) whose blocking pool may run 2 threads
//! (`max_blocking_threads(2)`). `compress` and `resolve` closures run on
//! the two blocking threads, each stuck in a synchronous call
//! (`std::thread::sleep`, a `std::sync::mpsc` recv); `checksum` and
//! `thumbnail` are queued behind them in the pool's queue. Async tasks
//! await the JoinHandles: `uploader` awaits `compress`'s, `lookup` awaits
//! `resolve`'s, `reporter` awaits `checksum`'s (a queued one).
//!
//! Truth per blocking task: `"home": "blocking_pool"`, `"blocking":
//! "running"|"queued"`, `"closure_type"` (type_name of the closure), the
//! running ones `"thread"` (the blocking thread's tid), `"thread_name"` and
//! `"line"` (the blocking call), the queued ones `"state": "notified"` (a
//! queued task is scheduled, not yet run). Async tasks: `"joins"`. Top level
//! `"blocking_pool": {"threads", "idle", "queued"}`.

use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::{json, Value};
use tokio::task::JoinHandle;

static RUNNING: Mutex<Vec<(u64, u64, String, u32)>> = Mutex::new(Vec::new());

fn started(line: u32) {
    let id = scenarios::id_u64(tokio::task::try_id().expect("inside a blocking task"));
    let name = std::thread::current().name().unwrap_or("").to_string();
    RUNNING.lock().unwrap().push((id, scenarios::gettid(), name, line));
}

async fn uploader(jh: JoinHandle<u64>) {
    park!(0, jh).await.unwrap();
}

async fn lookup(jh: JoinHandle<u64>) {
    park!(0, jh).await.unwrap();
}

async fn reporter(jh: JoinHandle<u64>) {
    park!(0, jh).await.unwrap();
}

fn blocking_truth(id: u64, name: &str, closure_type: &str, running: bool) -> Value {
    let mut v = json!({"id": id, "name": name, "home": "blocking_pool", "closure_type": closure_type,
                       "blocking": if running { "running" } else { "queued" },
                       "state": if running { "running" } else { "notified" }});
    if running {
        let r = RUNNING.lock().unwrap();
        let (_, tid, tname, line) = r.iter().find(|e| e.0 == id).expect("running blocking task started").clone();
        v["thread"] = json!(tid);
        v["thread_name"] = json!(tname);
        v["line"] = json!(line);
    }
    v
}

fn main() {
    let path = scenarios::truth_path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .thread_name("pool")
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let (_keep_tx, rx) = mpsc::channel::<u64>();
        let rx = Arc::new(Mutex::new(rx));
        let lines = [line!() + 1, line!() + 6, line!() + 11, line!() + 12];
        let compress = move || -> u64 {
            started(line!() + 1);
            std::thread::sleep(Duration::from_secs(3600));
            1
        };
        let resolve = move || -> u64 {
            started(line!() + 1);
            let v = rx.lock().unwrap().recv().unwrap_or(0);
            v
        };
        let checksum = || -> u64 { 3 };
        let thumbnail = || -> u64 { 4 };
        let types = [
            std::any::type_name_of_val(&compress),
            std::any::type_name_of_val(&resolve),
            std::any::type_name_of_val(&checksum),
            std::any::type_name_of_val(&thumbnail),
        ];
        let c = tokio::task::spawn_blocking(compress);
        let r = tokio::task::spawn_blocking(resolve);
        // both blocking threads are busy before the next two are queued
        let start = std::time::Instant::now();
        while RUNNING.lock().unwrap().len() < 2 {
            assert!(start.elapsed() < Duration::from_secs(30), "blocking closures never started");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let k = tokio::task::spawn_blocking(checksum);
        let t = tokio::task::spawn_blocking(thumbnail);
        let ids: Vec<u64> = [&c, &r, &k, &t].iter().map(|h| scenarios::id_u64(h.id())).collect();
        let up = spawn_named("uploader", uploader(c));
        let lk = spawn_named("lookup", lookup(r));
        let rp = spawn_named("reporter", reporter(k));
        scenarios::annotate(scenarios::id_u64(up.id()), "joins", json!(ids[0]));
        scenarios::annotate(scenarios::id_u64(lk.id()), "joins", json!(ids[1]));
        scenarios::annotate(scenarios::id_u64(rp.id()), "joins", json!(ids[2]));
        scenarios::wait_parked(&[(up.id(), 1), (lk.id(), 1), (rp.id(), 1)]).await;
        let names = ["compress", "resolve", "checksum", "thumbnail"];
        let blocking: Vec<Value> = (0..4)
            .map(|i| {
                let mut v = blocking_truth(ids[i], names[i], types[i], i < 2);
                v["closure_line"] = json!(lines[i]);
                v
            })
            .collect();
        scenarios::write_truth(
            &path,
            json!({
                "scenario": env!("CARGO_BIN_NAME"),
                "blocking_tasks": blocking,
                "blocking_pool": {"threads": 2, "idle": 0, "queued": 2},
                "thumbnail_handle_dropped": false,
            }),
        );
        std::future::pending::<()>().await;
        drop(t);
    });
}
