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

/// One recorded await: where it is and which async fn (or block) it is in.
#[derive(Clone)]
struct Await {
    line: u32,
    file: &'static str,
    /// Function path in `helpers.future_function` form (see [`fn_path`]).
    function: String,
    /// `Some("join")`/`Some("select")` for an entry recorded by [`mark!`].
    macro_name: Option<&'static str>,
}

#[derive(Default)]
struct TaskRec {
    /// Registration order, used to keep output stable.
    order: Option<usize>,
    name: Option<String>,
    future_type: Option<String>,
    /// chain[level] = the most recent park at that level.
    chain: Vec<Await>,
    /// Concurrent branches of a `join!`/`select!` (see [`branch!`]), in order
    /// of first record: (function, chain with absolute levels).
    branches: Vec<(String, Vec<(usize, Await)>)>,
    /// Extra keys merged into the task's truth entry (see [`annotate`]).
    extra: serde_json::Map<String, Value>,
    /// Number of `park!`/`mark!`/`branch!` calls the task has executed so far.
    parks: usize,
    /// Every distinct level-0 line recorded so far (see [`seen_lines`]).
    seen0: std::collections::BTreeSet<u32>,
}

#[derive(Default)]
struct Registry {
    tasks: HashMap<u64, TaskRec>,
    registered: usize,
    /// Named resources a task holds: name -> (task id, line it was taken on).
    holds: HashMap<String, (u64, u32)>,
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Set once the truth is written. Busy scenarios keep running after that;
/// from then on their `park!`s must not contend for `REGISTRY`, or the core
/// may catch a worker in the futex wait of the fixture's own bookkeeping.
static FROZEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

fn frozen() -> bool {
    FROZEN.load(std::sync::atomic::Ordering::Relaxed)
}

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

/// `tokio::task::spawn_local(fut)` (inside a `LocalSet` or a `LocalRuntime`),
/// recording the task like [`spawn_named`]; the future need not be `Send`.
pub fn spawn_local_named<F>(name: &str, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let future_type = std::any::type_name_of_val(&fut);
    let handle = tokio::task::spawn_local(fut);
    register(name, handle.id(), future_type);
    handle
}

/// Turn the `type_name` of a marker fn declared where a macro was expanded
/// (`crate::f::{{closure}}::__taskscope_here`) into the name of the enclosing
/// async fn, the way `tests/helpers.future_function` names a future type:
/// drop `::__taskscope_here`, then one trailing `::{{closure}}`. An async fn
/// `f` gives `crate::f`; an `async move {}` block inside `main` gives
/// `crate::main::{{closure}}`.
#[doc(hidden)]
pub fn fn_path(marker: &str) -> String {
    let p = marker.strip_suffix("::__taskscope_here").unwrap_or(marker);
    p.strip_suffix("::{{closure}}").unwrap_or(p).to_string()
}

/// Implementation detail: the enclosing function, as [`fn_path`] names it.
#[doc(hidden)]
#[macro_export]
macro_rules! __here_fn {
    () => {{
        fn __taskscope_here() {}
        $crate::fn_path(::std::any::type_name_of_val(&__taskscope_here))
    }};
}

/// Implementation detail of [`park!`]: record that the current task is about
/// to await at `line` of `file`, at nesting `level`.
#[doc(hidden)]
pub fn record_park(level: usize, line: u32, file: &'static str) {
    record_await(level, line, file, String::new(), None);
}

/// Implementation detail of [`park!`]/[`mark!`].
#[doc(hidden)]
pub fn record_await(level: usize, line: u32, file: &'static str, function: String, macro_name: Option<&'static str>) {
    if frozen() {
        return;
    }
    let id = id_u64(tokio::task::try_id().expect("park! used outside a tokio task"));
    with_registry(|r| {
        let rec = r.tasks.entry(id).or_default();
        assert!(
            level <= rec.chain.len(),
            "park!({level}) at {file}:{line} but task {id} only has {} levels",
            rec.chain.len()
        );
        rec.chain.truncate(level);
        if level == 0 {
            rec.seen0.insert(line);
        }
        rec.chain.push(Await { line, file, function, macro_name });
        rec.parks += 1;
    });
}

/// Implementation detail of [`branch!`].
#[doc(hidden)]
pub fn record_branch(level: usize, line: u32, file: &'static str, function: String) {
    if frozen() {
        return;
    }
    let id = id_u64(tokio::task::try_id().expect("branch! used outside a tokio task"));
    with_registry(|r| {
        let rec = r.tasks.entry(id).or_default();
        let entry = Await { line, file, function: function.clone(), macro_name: None };
        match rec.branches.iter_mut().find(|(f, _)| *f == function) {
            Some((_, chain)) => {
                chain.retain(|(l, _)| *l < level);
                chain.push((level, entry));
            }
            None => rec.branches.push((function, vec![(level, entry)])),
        }
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
///
/// The entry also records the enclosing function (see [`fn_path`]).
#[macro_export]
macro_rules! park {
    ($level:expr, $fut:expr) => {{
        $crate::record_await($level, line!(), file!(), $crate::__here_fn!(), None);
        $fut
    }};
}

/// `mark!(level, "join")` on the line *just before* a `tokio::join!(` /
/// `tokio::select!` call: records chain[level] with the line of the macro
/// call (`line!() + 1`) and `"macro": "join"` (or `"select"`). The await is
/// inside the macro, so the decoder may place it in tokio's macro source
/// rather than on that line.
///
/// ```ignore
/// scenarios::mark!(0, "join");
/// let (a, b) = tokio::join!(branch_a(n1), branch_b(n2));
/// ```
#[macro_export]
macro_rules! mark {
    ($level:expr, $macro_name:literal) => {
        $crate::record_await($level, line!() + 1, file!(), $crate::__here_fn!(), Some($macro_name))
    };
}

/// `branch!(level, fut)`: like [`park!`], for an await inside an async fn
/// that runs as one branch of a `join!`/`select!`. It is recorded under the
/// task's `"branches"` (keyed by the enclosing function), not in `chain`,
/// because the branches are concurrent. `level` is absolute: a branch fn
/// called by the macro at level 0 is level 1.
#[macro_export]
macro_rules! branch {
    ($level:expr, $fut:expr) => {{
        $crate::record_branch($level, line!(), file!(), $crate::__here_fn!());
        $fut
    }};
}

/// `running!()` marks the current task as RUNNING from here on: its truth
/// entry gets `"state": "running"`, `"thread"` = this kernel thread id,
/// `"file"`/`chain` = this line in the enclosing function, and
/// `"last_await_line"` = the level-0 line of its last `park!` (null if it
/// never parked: its state machine is still "unresumed"). For tasks that
/// block (or spin) inside their poll: write the blocking call on the *same
/// line*, so chain[0].line is what the thread's native stack shows.
///
/// ```ignore
/// scenarios::running!(); std::thread::sleep(Duration::from_secs(3600));
/// ```
#[macro_export]
macro_rules! running {
    () => {
        $crate::record_running(line!(), file!(), $crate::__here_fn!())
    };
}

/// Implementation detail of [`running!`].
#[doc(hidden)]
pub fn record_running(line: u32, file: &'static str, function: String) {
    let id = id_u64(tokio::task::try_id().expect("running! used outside a tokio task"));
    let last = with_registry(|r| r.tasks.get(&id).and_then(|t| t.chain.first().map(|a| a.line)));
    annotate_self("last_await_line", json!(last));
    annotate_self("state", json!("running"));
    annotate_self("thread", json!(gettid()));
    annotate_self("file", json!(file));
    annotate_self("chain", json!([{"level": 0, "line": line, "function": function}]));
}

/// Merge `key: value` into the truth entry of task `id` (overriding the
/// defaults, e.g. `"state"`). Registers nothing else.
pub fn annotate(id: u64, key: &str, value: Value) {
    with_registry(|r| {
        r.tasks.entry(id).or_default().extra.insert(key.to_string(), value);
    });
}

/// [`annotate`] the current task.
pub fn annotate_self(key: &str, value: Value) {
    annotate(id_u64(tokio::task::try_id().expect("annotate_self outside a tokio task")), key, value);
}

/// A value set with [`annotate`]/[`annotate_self`], if any.
pub fn annotation(id: u64, key: &str) -> Option<Value> {
    with_registry(|r| r.tasks.get(&id).and_then(|t| t.extra.get(key).cloned()))
}

/// Every distinct level-0 line task `id` has parked at so far, ascending
/// (for tasks whose current await varies, e.g. busy loops).
pub fn seen_lines(id: u64) -> Vec<u32> {
    with_registry(|r| r.tasks.get(&id).map(|t| t.seen0.iter().copied().collect()).unwrap_or_default())
}

/// Id of the task registered under `name` (first match), if any.
pub fn task_id(name: &str) -> Option<u64> {
    with_registry(|r| r.tasks.iter().find(|(_, t)| t.name.as_deref() == Some(name)).map(|(id, _)| *id))
}

/// Kernel thread id of the calling thread (from `/proc/thread-self`).
pub fn gettid() -> u64 {
    let link = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
    link.file_name().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("tid in /proc/thread-self")
}

/// Implementation detail of [`hold!`].
#[doc(hidden)]
pub fn record_hold(resource: &str, line: u32) {
    if frozen() {
        return;
    }
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

/// [`wait_parked`] by task name, for tasks the caller has no handle of
/// (e.g. `JoinSet` children registered with [`register`]): waits until each
/// `(name, n)` is registered and has executed `n` parks, then [`SETTLE`]s.
pub async fn wait_named(expected: &[(&str, usize)]) {
    let start = std::time::Instant::now();
    loop {
        let missing = with_registry(|r| {
            expected
                .iter()
                .filter(|(name, n)| {
                    !r.tasks.values().any(|t| t.name.as_deref() == Some(*name) && t.parks >= *n)
                })
                .count()
        });
        if missing == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{missing} named tasks never reached their final park");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(SETTLE).await;
}

/// Blocking form of [`wait_parked`] for plain threads (e.g. when the runtime
/// itself is starved): waits for `n` parks of each task id, then [`SETTLE`]s.
pub fn wait_parked_blocking(expected: &[(u64, usize)]) {
    let start = std::time::Instant::now();
    loop {
        let missing = with_registry(|r| {
            expected.iter().filter(|(id, n)| r.tasks.get(id).map_or(0, |t| t.parks) < *n).count()
        });
        if missing == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{missing} tasks never reached their final park");
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(SETTLE);
}

/// The truth path: argv[1].
pub fn truth_path() -> String {
    std::env::args()
        .nth(1)
        .expect("usage: SCENARIO /path/to/truth.json")
}

fn await_json(level: usize, a: &Await) -> Value {
    let mut v = json!({"level": level, "line": a.line});
    if !a.function.is_empty() {
        v["function"] = json!(a.function);
    }
    if let Some(m) = a.macro_name {
        v["macro"] = json!(m);
    }
    v
}

fn tasks_json(r: &Registry, with_waits_on: bool) -> Vec<Value> {
    let mut named: Vec<(&u64, &TaskRec)> = r.tasks.iter().filter(|(_, t)| t.name.is_some()).collect();
    named.sort_by_key(|(_, t)| t.order);
    named
        .into_iter()
        .map(|(id, t)| {
            let chain: Vec<Value> = t.chain.iter().enumerate().map(|(level, a)| await_json(level, a)).collect();
            let mut v = json!({
                "id": id,
                "name": t.name,
                "future_type": t.future_type,
                "state": "idle",
                "file": t.chain.first().map(|a| a.file),
                "chain": chain,
            });
            if !t.branches.is_empty() {
                let branches: Vec<Value> = t
                    .branches
                    .iter()
                    .map(|(f, chain)| {
                        json!({
                            "function": f,
                            "file": chain.first().map(|(_, a)| a.file),
                            "chain": chain.iter().map(|(l, a)| await_json(*l, a)).collect::<Vec<_>>(),
                        })
                    })
                    .collect();
                v["branches"] = json!(branches);
            }
            if with_waits_on {
                v["waits_on"] = Value::Null;
            }
            for (k, x) in &t.extra {
                v[k.as_str()] = x.clone();
            }
            v
        })
        .collect()
}

/// Write truth.json to `path`, print `READY` on stdout and flush.
///
/// `extra` must be an object with `"scenario"` (the bin name; `"_release"` is
/// appended in release builds) and may carry `"cycle"` and `"resources"`.
/// If it carries `"diagnoses"`, every task also gets `"waits_on"` (null unless
/// set with [`annotate`]). Any other keys of `extra` are copied to the top
/// level after the standard ones.
/// `tokio`/`flavor` are filled in from the current runtime (null if none; a
/// plain thread can `Handle::enter()` a runtime to report it).
pub fn write_truth(path: &str, extra: Value) {
    write_truth_file(path, extra);
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
}

/// [`write_truth`] without printing `READY`.
fn write_truth_file(path: &str, extra: Value) {
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
    let has_diagnoses = extra.get("diagnoses").is_some();
    let tasks = with_registry(|r| tasks_json(r, has_diagnoses));
    FROZEN.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut truth = json!({
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
    for (k, v) in extra.as_object().expect("extra must be an object") {
        if !matches!(k.as_str(), "scenario" | "cycle" | "resources") {
            truth[k.as_str()] = v.clone();
        }
    }
    let tmp = format!("{path}.tmp");
    let mut text = serde_json::to_string_pretty(&truth).unwrap();
    text.push('\n');
    std::fs::write(&tmp, text).expect("write truth");
    std::fs::rename(&tmp, path).expect("rename truth");
}

// ------------------------------------------------------------------------
// Compact truth for scale scenarios (`mixed_scale`: up to a million tasks).
//
// The per-task registry above keeps names, chains and type strings for every
// task (hundreds of bytes each, in the dumped heap) and writes one pretty JSON
// object per task; at 1M tasks that would bloat both the core and the truth.
// Here every task belongs to a *kind* that parks at one await: the registry
// keeps per kind the spawned ids, the ids seen at the park (checked equal
// before the truth is written), the future type and the await's line, and
// the truth lists each task as `{"id": N, "kind": K}` plus one record per kind.

struct KindRec {
    order: usize,
    ids: Vec<u64>,
    parked: Vec<u64>,
    future_type: Option<&'static str>,
    park: Option<Await>,
}

static KINDS: Mutex<Option<HashMap<&'static str, KindRec>>> = Mutex::new(None);

fn with_kinds<R>(f: impl FnOnce(&mut HashMap<&'static str, KindRec>) -> R) -> R {
    let mut guard = KINDS.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(HashMap::new))
}

fn kind_entry<'a>(m: &'a mut HashMap<&'static str, KindRec>, kind: &'static str) -> &'a mut KindRec {
    let order = m.len();
    m.entry(kind).or_insert_with(|| KindRec { order, ids: Vec::new(), parked: Vec::new(), future_type: None, park: None })
}

/// `tokio::spawn(fut)` as a task of `kind`: records its id and checks that
/// every task of the kind has the same future type.
pub fn spawn_kind<F>(kind: &'static str, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future_type = std::any::type_name_of_val(&fut);
    let handle = tokio::spawn(fut);
    let id = id_u64(handle.id());
    with_kinds(|m| {
        let k = kind_entry(m, kind);
        assert!(k.future_type.map_or(true, |t| t == future_type), "kind {kind}: two future types");
        k.future_type = Some(future_type);
        k.ids.push(id);
    });
    handle
}

/// Implementation detail of [`park_kind!`]. `function` is only called for
/// the first park of a kind (it allocates).
#[doc(hidden)]
pub fn record_kind_park(kind: &'static str, line: u32, file: &'static str, function: impl FnOnce() -> String) {
    let id = id_u64(tokio::task::try_id().expect("park_kind! used outside a tokio task"));
    with_kinds(|m| {
        let k = kind_entry(m, kind);
        match &k.park {
            Some(a) => assert!(a.line == line && a.file == file, "kind {kind} parks at {file}:{line} and at {}:{}", a.file, a.line),
            None => {
                // function() runs in park_kind!'s closure: one more {{closure}}.
                let f = function();
                let f = f.strip_suffix("::{{closure}}").map(str::to_string).unwrap_or(f);
                k.park = Some(Await { line, file, function: f, macro_name: None })
            }
        }
        k.parked.push(id);
    });
}

/// `park_kind!(kind, fut)`: like [`park!`] at level 0, for the one await a
/// task of `kind` (spawned by [`spawn_kind`]) stays suspended in. Every task
/// of a kind must park on the same line, once.
#[macro_export]
macro_rules! park_kind {
    ($kind:expr, $fut:expr) => {{
        $crate::record_kind_park($kind, line!(), file!(), || $crate::__here_fn!());
        $fut
    }};
}

/// Wait until every task spawned with [`spawn_kind`] has reached its
/// [`park_kind!`] (the parked ids of each kind equal its spawned ids), then
/// [`SETTLE`]. Panics after `limit`.
pub async fn wait_kinds(limit: Duration) {
    let start = std::time::Instant::now();
    loop {
        let missing: usize =
            with_kinds(|m| m.values().map(|k| k.ids.len().saturating_sub(k.parked.len())).sum());
        if missing == 0 {
            break;
        }
        assert!(start.elapsed() < limit, "{missing} tasks never reached their park_kind!");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    with_kinds(|m| {
        for (name, k) in m.iter_mut() {
            let mut a = k.ids.clone();
            a.sort_unstable();
            k.parked.sort_unstable();
            assert!(a == k.parked, "kind {name}: the parked task ids are not the spawned ones");
            k.parked = Vec::new();
        }
    });
    tokio::time::sleep(SETTLE).await;
}

/// [`write_truth`] for scenarios spawned with [`spawn_kind`]: `"tasks"` is
/// every task as `{"id": N, "kind": K}`, ascending by id; `"kinds"` has per
/// kind `count`, `future_type`, `state` ("idle"), `file`, `line` and
/// `function` of its await, merged with `extra["kinds"][K]` (e.g.
/// `waits_on`); the other keys of `extra` are handled as by [`write_truth`].
pub fn write_truth_kinds(path: &str, extra: Value) {
    let mut extra = extra;
    let kind_extra = extra.as_object_mut().and_then(|o| o.remove("kinds")).unwrap_or(json!({}));
    let (kinds, mut all) = with_kinds(|m| {
        let mut names: Vec<(&'static str, &KindRec)> = m.iter().map(|(n, k)| (*n, k)).collect();
        names.sort_by_key(|(_, k)| k.order);
        let mut kinds = serde_json::Map::new();
        let mut all: Vec<(u64, &'static str)> = Vec::new();
        for (name, k) in names {
            let a = k.park.as_ref().unwrap_or_else(|| panic!("kind {name} never parked"));
            let mut v = json!({
                "count": k.ids.len(),
                "future_type": k.future_type,
                "state": "idle",
                "file": a.file,
                "line": a.line,
                "function": a.function,
            });
            if let Some(Value::Object(x)) = kind_extra.get(name) {
                for (key, val) in x {
                    v[key.as_str()] = val.clone();
                }
            }
            kinds.insert(name.to_string(), v);
            all.extend(k.ids.iter().map(|&id| (id, name)));
        }
        (kinds, all)
    });
    all.sort_unstable();
    let mut tasks = String::with_capacity(all.len() * 36 + 16);
    tasks.push('[');
    for (i, (id, kind)) in all.iter().enumerate() {
        use std::fmt::Write as _;
        let sep = if i == 0 { "\n" } else { ",\n" };
        write!(tasks, "{sep}    {{\"id\": {id}, \"kind\": \"{kind}\"}}").unwrap();
    }
    tasks.push_str(if all.is_empty() { "]" } else { "\n  ]" });
    let count = all.len();
    drop(all);
    let obj = extra.as_object_mut().expect("extra must be an object");
    obj.insert("task_count".to_string(), json!(count));
    obj.insert("kinds".to_string(), Value::Object(kinds));
    // write_truth with an empty registry writes "tasks": []; splice the
    // (large) list in as text rather than as a serde Value per task.
    let tmp = format!("{path}.kinds");
    write_truth_file(&tmp, extra);
    let text = std::fs::read_to_string(&tmp).expect("read truth");
    let text = text.replacen("\n  \"tasks\": [],\n", &format!("\n  \"tasks\": {tasks},\n"), 1);
    std::fs::remove_file(&tmp).ok();
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text).expect("write truth");
    std::fs::rename(&tmp, path).expect("rename truth");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
}
