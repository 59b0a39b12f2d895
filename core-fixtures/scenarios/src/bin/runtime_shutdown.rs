//! A worker inside `block_in_place`, and a runtime caught in its shutdown
//! (issue 12).
//!
//! Main runtime (multi_thread, 2 workers): `sync_io` awaits once, then calls
//! `tokio::task::block_in_place` and blocks in it (`std::thread::sleep`):
//! running, `"block_in_place": true`, its thread and line. `idler` is an
//! idle task on a Notify.
//!
//! Thread `doomed` builds a current_thread runtime, spawns `stuck_drop`
//! (holds a value whose `Drop` blocks forever) and `victim0..2` (idle on a
//! Notify, each holding a value whose `Drop` records that it ran), and
//! drops the runtime: its shutdown closes the task list and drops the tasks
//! one by one until it reaches `stuck_drop`, whose drop never returns.
//! With `DOOMED_FLAVOR=multi_thread` (`runtime_shutdown_mt`) the doomed
//! runtime is multi_thread with one worker, and the drops run there.
//! Truth `"shutdown_runtime"`: `"thread"` (the tid of the thread in the
//! blocking drop: doomed, or the doomed runtime's worker), `"flavor"`, `"dropping"` (the
//! task whose drop blocks: taken off the list, RUNNING and CANCELLED),
//! `"remaining"` (victims still in the list, not yet dropped), `"dropped"`.
//! These tasks are not in `"tasks"` (which lists the main runtime's).

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use scenarios::{park, spawn_named};
use serde_json::json;
use tokio::sync::Notify;

static DROPPED: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());
static STUCK: AtomicBool = AtomicBool::new(false);
static DOOMED_TID: Mutex<u64> = Mutex::new(0);

struct Tracked(u64);
impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.lock().unwrap().insert(self.0);
    }
}

struct StuckOnDrop;
impl Drop for StuckOnDrop {
    fn drop(&mut self) {
        *DOOMED_TID.lock().unwrap() = scenarios::gettid();
        STUCK.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_secs(3600));
    }
}

async fn victim(gate: Arc<Notify>) {
    let _t = Tracked(scenarios::id_u64(tokio::task::id()));
    park!(0, gate.notified()).await;
}

async fn stuck_drop(gate: Arc<Notify>) {
    let _s = StuckOnDrop;
    park!(0, gate.notified()).await;
}

async fn sync_io() {
    park!(0, tokio::time::sleep(Duration::from_millis(1))).await;
    scenarios::annotate_self("block_in_place", json!(true));
    tokio::task::block_in_place(|| {
        scenarios::running!(); std::thread::sleep(Duration::from_secs(3600));
    });
}

async fn idler(gate: Arc<Notify>) {
    park!(0, gate.notified()).await;
}

fn doomed(ids: Arc<Mutex<Vec<(String, u64)>>>) {
    // DOOMED_FLAVOR=multi_thread (capture's runtime_shutdown_mt): a
    // multi_thread runtime with one worker, whose shutdown drops the tasks
    // on that worker thread.
    let rt = if std::env::var("DOOMED_FLAVOR").as_deref() == Ok("multi_thread") {
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap()
    } else {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    };
    let gate = Arc::new(Notify::new());
    rt.block_on(async {
        let mut hs = vec![("stuck_drop".to_string(), tokio::spawn(stuck_drop(gate.clone())))];
        for i in 0..3 {
            hs.push((format!("victim{i}"), tokio::spawn(victim(gate.clone()))));
        }
        let want: Vec<_> = hs.iter().map(|(_, h)| (h.id(), 1)).collect();
        scenarios::wait_parked(&want).await;
        *ids.lock().unwrap() = hs.iter().map(|(n, h)| (n.clone(), scenarios::id_u64(h.id()))).collect();
    });
    drop(rt); // never returns: stuck_drop's drop blocks
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let path = scenarios::truth_path();
    let gate = Arc::new(Notify::new());
    let id = spawn_named("idler", idler(gate.clone()));
    let sio = spawn_named("sync_io", sync_io());
    scenarios::wait_parked(&[(id.id(), 1), (sio.id(), 1)]).await;
    let ids = Arc::new(Mutex::new(Vec::new()));
    let ids2 = ids.clone();
    std::thread::Builder::new().name("doomed".into()).spawn(move || doomed(ids2)).unwrap();
    let start = std::time::Instant::now();
    while !STUCK.load(Ordering::SeqCst)
        || scenarios::annotation(scenarios::id_u64(sio.id()), "thread").is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(30), "never reached the stuck drop / block_in_place");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(scenarios::SETTLE).await;
    let ids = ids.lock().unwrap().clone();
    let dropped = DROPPED.lock().unwrap().clone();
    let victims: Vec<u64> = ids.iter().filter(|(n, _)| n.starts_with("victim")).map(|(_, i)| *i).collect();
    let remaining: Vec<u64> = victims.iter().copied().filter(|i| !dropped.contains(i)).collect();
    let dropped: Vec<u64> = victims.iter().copied().filter(|i| dropped.contains(i)).collect();
    let stuck = ids.iter().find(|(n, _)| n == "stuck_drop").unwrap().1;
    scenarios::write_truth(
        &path,
        json!({
            "scenario": env!("CARGO_BIN_NAME"),
            "shutdown_runtime": {"thread": *DOOMED_TID.lock().unwrap(), "dropping": stuck,
                                  "flavor": std::env::var("DOOMED_FLAVOR").unwrap_or("current_thread".into()),
                                  "remaining": remaining, "dropped": dropped},
        }),
    );
    std::future::pending::<()>().await;
}
