//! Truth recording shared by the scenario binaries.
//!
//! Each scenario spawns tasks with [`spawn_named`], marks the awaits it parks
//! on with [`park!`], waits for everything to settle with [`wait_parked`],
//! then calls [`write_truth`], which writes `truth.json`, prints `READY` and
//! returns; the binary then blocks forever so `capture` can dump its core.
//!
//! Everything here is bookkeeping for the test oracle: it lives in ordinary
//! heap memory behind a `std::sync::Mutex`, never inside the futures, so it
//! does not change the shape of the tasks taskscope has to decode.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Value};

/// Version of tokio in the workspace Cargo.lock (set by build.rs).
pub const TOKIO_VERSION: &str = env!("SCENARIOS_TOKIO_VERSION");

/// How long to let tasks run into `Pending` after their last recorded park.
pub const SETTLE: Duration = Duration::from_millis(300);

#[derive(Default)]
struct TaskRec {
    /// Registration order, used to keep output stable.
    order: Option<usize>,
    name: Option<String>,
    future_type: Option<String>,
    /// chain[level] = (line, file) of the most recent park at that level.
    chain: Vec<(u32, &'static str)>,
    /// Number of `park!` calls the task has executed so far.
    parks: usize,
}

#[derive(Default)]
struct Registry {
    tasks: HashMap<u64, TaskRec>,
    registered: usize,
    /// Named resources a task holds: name -> (task id, line it was taken on).
    holds: HashMap<String, (u64, u32)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// Integer value of a tokio task id (its `Display` form).
pub fn id_u64(id: tokio::task::Id) -> u64 {
    id.to_string().parse().expect("tokio::task::Id displays as an integer")
}

/// Record a spawned task. Normally called through [`spawn_named`].
pub fn register(name: &str, id: tokio::task::Id, future_type: &str) {
    let id = id_u64(id);
    with_registry(|r| {
        let order = r.registered;
        r.registered += 1;
        let rec = r.tasks.entry(id).or_default();
        assert!(rec.name.is_none(), "task {id} registered twice");
        rec.order = Some(order);
        rec.name = Some(name.to_string());
        rec.future_type = Some(future_type.to_string());
    });
}

/// `tokio::spawn(fut)`, recording the task's id, `name` and the type name of
/// the future (taken right before it is handed to tokio).
pub fn spawn_named<F>(name: &str, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future_type = std::any::type_name_of_val(&fut);
    let handle = tokio::spawn(fut);
    register(name, handle.id(), future_type);
    handle
}

/// Implementation detail of [`park!`]: record that the current task is about
/// to await at `line` of `file`, at nesting `level`.
#[doc(hidden)]
pub fn record_park(level: usize, line: u32, file: &'static str) {
    let id = id_u64(tokio::task::try_id().expect("park! used outside a tokio task"));
    with_registry(|r| {
        let rec = r.tasks.entry(id).or_default();
        assert!(
            level <= rec.chain.len(),
            "park!({level}) at {file}:{line} but task {id} only has {} levels",
            rec.chain.len()
        );
        rec.chain.truncate(level);
        rec.chain.push((line, file));
        rec.parks += 1;
    });
}

/// `park!(level, fut)` records `(task id, level, line!(), file!())` and
/// evaluates to `fut` unchanged. Write the `.await` on the same line:
///
/// ```ignore
/// let guard = park!(0, mutex.lock()).await;
/// ```
///
/// Level 0 is the spawned async fn itself, level 1 an async fn it awaits, and
/// so on. Recording level L replaces chain[L] and drops deeper levels.
#[macro_export]
macro_rules! park {
    ($level:expr, $fut:expr) => {{
        $crate::record_park($level, line!(), file!());
        $fut
    }};
}

/// Implementation detail of [`hold!`].
#[doc(hidden)]
pub fn record_hold(resource: &str, line: u32) {
    let id = id_u64(tokio::task::try_id().expect("hold! used outside a tokio task"));
    with_registry(|r| {
        r.holds.insert(resource.to_string(), (id, line));
    });
}

/// `hold!("inventory")` records that the current task now holds the named
/// resource, taken on this line. Put it on the same line as the acquiring
/// await: `let g = park!(0, m.lock()).await; hold!("inventory");`
#[macro_export]
macro_rules! hold {
    ($resource:expr) => {
        $crate::record_hold($resource, line!())
    };
}

/// `(task id, line)` recorded by [`hold!`] for `resource`.
pub fn holder(resource: &str) -> Option<(u64, u32)> {
    with_registry(|r| r.holds.get(resource).copied())
}

/// Wait until every `(task, n)` has executed at least `n` `park!` calls --
/// each scenario knows that its task's n-th `park!` is the await it stays
/// stuck in -- then sleep [`SETTLE`] more so the awaited futures have really
/// returned `Pending`. Panics after 30 s.
pub async fn wait_parked(expected: &[(tokio::task::Id, usize)]) {
    let expected: Vec<(u64, usize)> = expected.iter().map(|&(id, n)| (id_u64(id), n)).collect();
    let start = std::time::Instant::now();
    loop {
        let missing = with_registry(|r| {
            expected
                .iter()
                .filter(|(id, n)| r.tasks.get(id).map_or(0, |t| t.parks) < *n)
                .count()
        });
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{missing} tasks never reached their final park"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(SETTLE).await;
}

/// The truth path: argv[1].
pub fn truth_path() -> String {
    std::env::args()
        .nth(1)
        .expect("usage: SCENARIO /path/to/truth.json")
}

fn tasks_json(r: &Registry) -> Vec<Value> {
    let mut named: Vec<(&u64, &TaskRec)> = r.tasks.iter().filter(|(_, t)| t.name.is_some()).collect();
    named.sort_by_key(|(_, t)| t.order);
    named
        .into_iter()
        .map(|(id, t)| {
            let chain: Vec<Value> = t
                .chain
                .iter()
                .enumerate()
                .map(|(level, (line, _))| json!({"level": level, "line": line}))
                .collect();
            json!({
                "id": id,
                "name": t.name,
                "future_type": t.future_type,
                "state": "idle",
                "file": t.chain.first().map(|(_, file)| *file),
                "chain": chain,
            })
        })
        .collect()
}

/// Write truth.json to `path`, print `READY` on stdout and flush.
///
/// `extra` must be an object with `"scenario"` (the bin name; `"_release"` is
/// appended in release builds) and may carry `"cycle"` and `"resources"`.
/// `tokio`/`flavor` are filled in from the current runtime (null if none).
pub fn write_truth(path: &str, extra: Value) {
    let base = extra["scenario"].as_str().expect("extra.scenario missing");
    let scenario = if cfg!(debug_assertions) {
        base.to_string()
    } else {
        format!("{base}_release")
    };
    let flavor = match tokio::runtime::Handle::try_current() {
        Ok(h) => match h.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => Some("current_thread"),
            tokio::runtime::RuntimeFlavor::MultiThread => Some("multi_thread"),
            other => panic!("unexpected runtime flavor {other:?}"),
        },
        Err(_) => None,
    };
    let tasks = with_registry(|r| tasks_json(r));
    let truth = json!({
        "schema": "taskscope-truth/1",
        "scenario": scenario,
        "tokio": flavor.map(|_| TOKIO_VERSION),
        "flavor": flavor,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "pid": std::process::id(),
        "tasks": tasks,
        "cycle": extra.get("cycle").cloned().unwrap_or(Value::Null),
        "resources": extra.get("resources").cloned().unwrap_or(json!([])),
    });
    let tmp = format!("{path}.tmp");
    let mut text = serde_json::to_string_pretty(&truth).unwrap();
    text.push('\n');
    std::fs::write(&tmp, text).expect("write truth");
    std::fs::rename(&tmp, path).expect("rename truth");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
}
