//! Truth recording for the executor fixtures, independent of any executor.
//!
//! A program names each task before spawning it with [`named`], which gives
//! the task its ordinal ([`Tid`], 1-based, in spawn order) and records the
//! `type_name` of the future handed to the executor. The task's async fns
//! take the `Tid` as an argument (an ordinary `u32` worker number in the
//! state machine: no executor has a task id we could ask for) and mark the
//! awaits they park on with [`park!`], the resources they hold with
//! [`hold!`], and keep an [`Anchor`] (a 16-byte local with a magic number)
//! alive across their final await, so tests can find each task's future in
//! memory with no executor-specific knowledge.
//!
//! Resources are registered with [`resource`] (their `type_name` and
//! address), threads with [`thread_role`]. Once every task has reached its
//! last park ([`wait_parked`]), [`write_truth`] writes truth.json, prints
//! `READY` and returns; the program then calls [`block_forever`] so the
//! capture script can dump its core.
//!
//! truth.json (`"schema": "taskscope-truth/1"`):
//!
//! - `scenario` (the bin), `executor` ("smol" | "async-std" |
//!   "futures-localpool" | "futures-threadpool" | "handrolled" |
//!   "async-task"), `executor_versions` ({crate: version} from Cargo.lock),
//!   `build` ("debug"), `pid`, `anchor_magic`;
//! - `tasks`, in spawn order: `id` (1-based ordinal), `name`, `future_type`
//!   (`type_name` of the spawned future: `crate::f::{{closure}}`),
//!   `function` (its async fn, `crate::f`), `state` ("idle"), `file`,
//!   `chain` (outermost first: `level`, `function`, `file`, `line` of the
//!   `park!(..).await` it is parked in), `anchor` (address of its
//!   [`Anchor`]), `anchor_region` (the /proc/self/maps entry holding it:
//!   `start`, `end`, `perms`, `path`), `waits_on` (resource name or null),
//!   `holds` (resource names), plus whatever [`annotate`] added;
//! - `cycle`: null, or `[{"task", "waits_for", "held_by"}]` in cycle order;
//! - `resources`: `name`, `kind` ("mutex" | "channel" | "oneshot" | "timer"
//!   | "event"), `type` (`type_name`), `address`, `region`, `held_by` and
//!   `waited_by` (task ids, from the tasks' `holds`/`waits_on`), `note`;
//! - `threads`: every thread of the process: `tid`, `name` (comm), `role`.
//!
//! All of this is bookkeeping for the test oracle: it lives in ordinary heap
//! memory behind a `std::sync::Mutex`, never inside the futures, so it does
//! not change the shape of the tasks taskscope has to decode (beyond the
//! `Tid` argument and the anchor, both plain integers).

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

include!(concat!(env!("OUT_DIR"), "/locked.rs"));

/// First word of every [`Anchor`]: "TSKANCHR" as a little-endian u64.
pub const ANCHOR_MAGIC: u64 = u64::from_le_bytes(*b"TSKANCHR");

/// How long to let tasks run into `Pending` after their last recorded park.
pub const SETTLE: Duration = Duration::from_millis(300);

/// How long [`wait_parked`] waits for the tasks before giving up.
pub const PARK_TIMEOUT: Duration = Duration::from_secs(30);

/// A task's ordinal in the truth: 1-based, in spawn ([`named`]) order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Tid(pub u32);

/// A marker a task keeps in its outermost async fn across its final await:
/// `[ANCHOR_MAGIC, task id]`, 16 bytes. [`Anchor::record`] stores its
/// address (inside the task's future, wherever the executor put it);
/// [`Anchor::keep`] after the await makes it live across the await, so it
/// is a field of the state machine rather than a stack slot.
#[repr(C)]
pub struct Anchor {
    pub magic: u64,
    pub task: u64,
}

impl Anchor {
    pub fn new(t: Tid) -> Anchor {
        Anchor { magic: ANCHOR_MAGIC, task: t.0 as u64 }
    }

    /// Record where this anchor lives (call it where it will stay: inside
    /// the running async fn, before the await).
    #[inline(never)]
    pub fn record(&self) {
        let addr = self as *const Anchor as u64;
        let t = self.task as u32;
        with_registry(|r| {
            let rec = r.task_mut(Tid(t));
            assert!(rec.anchor.is_none(), "task {t}: anchor recorded twice");
            rec.anchor = Some(addr);
        });
    }

    /// Use the anchor after the await (it then lives across it).
    #[inline(never)]
    pub fn keep(&self) {
        std::hint::black_box(self);
        assert_eq!(self.magic, ANCHOR_MAGIC);
    }
}

/// One recorded await.
#[derive(Clone)]
struct Await {
    line: u32,
    file: &'static str,
    /// Path of the enclosing async fn (see [`fn_path`]).
    function: String,
    /// The resource this await waits on, if any.
    waits_on: Option<&'static str>,
}

#[derive(Default)]
struct TaskRec {
    name: String,
    future_type: String,
    function: String,
    /// chain[level] = the most recent park at that level (outermost first).
    chain: Vec<Await>,
    parks: usize,
    holds: Vec<&'static str>,
    anchor: Option<u64>,
    extra: serde_json::Map<String, Value>,
}

struct ResourceRec {
    name: &'static str,
    kind: &'static str,
    type_name: &'static str,
    address: u64,
    note: Option<&'static str>,
}

#[derive(Default)]
struct Registry {
    tasks: Vec<TaskRec>,
    resources: Vec<ResourceRec>,
    /// Kernel thread id -> role, for threads that said what they are.
    roles: BTreeMap<u64, String>,
}

impl Registry {
    fn task_mut(&mut self, t: Tid) -> &mut TaskRec {
        let n = self.tasks.len();
        self.tasks
            .get_mut((t.0 as usize).wrapping_sub(1))
            .unwrap_or_else(|| panic!("unknown task {} ({} registered)", t.0, n))
    }
}

static REGISTRY: Mutex<Option<Registry>> = Mutex::new(None);

/// Set once the truth is written: later records are ignored (nothing may
/// contend for `REGISTRY` while the core is dumped).
static FROZEN: AtomicBool = AtomicBool::new(false);

fn with_registry<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(guard.get_or_insert_with(Registry::default))
}

/// `type_name` of a future of an async fn `f` (`crate::f::{{closure}}`) or
/// of a marker fn declared inside it (`crate::f::{{closure}}::__here`) ->
/// the async fn's path, `crate::f`.
#[doc(hidden)]
pub fn fn_path(name: &str) -> String {
    let p = name.strip_suffix("::__taskscope_here").unwrap_or(name);
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

/// Register the next task as `name` and build its future with `make` (given
/// the task's [`Tid`]); records the future's `type_name` (and the async fn
/// it is the future of) and returns the future unchanged, to be spawned.
///
/// ```ignore
/// let task = ex.spawn(truth::named("transfer a->b", |t| transfer(t, a, b)));
/// ```
pub fn named<F: std::future::Future>(name: &str, make: impl FnOnce(Tid) -> F) -> F {
    let t = with_registry(|r| {
        r.tasks.push(TaskRec { name: name.to_string(), ..TaskRec::default() });
        Tid(r.tasks.len() as u32)
    });
    let fut = make(t);
    let ty = std::any::type_name_of_val(&fut);
    with_registry(|r| {
        let rec = r.task_mut(t);
        rec.future_type = ty.to_string();
        rec.function = fn_path(ty);
    });
    fut
}

/// Implementation detail of [`park!`].
#[doc(hidden)]
pub fn record_await(t: Tid, level: usize, line: u32, file: &'static str, function: String, waits_on: Option<&'static str>) {
    if FROZEN.load(Ordering::Relaxed) {
        return;
    }
    with_registry(|r| {
        let rec = r.task_mut(t);
        assert!(
            level <= rec.chain.len(),
            "park!({level}) at {file}:{line} but task {} only has {} levels",
            t.0,
            rec.chain.len()
        );
        rec.chain.truncate(level);
        rec.chain.push(Await { line, file, function, waits_on });
        rec.parks += 1;
    });
}

/// `park!(t, level, fut)` records that task `t` is about to await `fut` on
/// this line, at nesting `level` (0: the task's outermost async fn, 1: an
/// async fn it awaits, ...), and evaluates to `fut` unchanged. Write the
/// `.await` on the same line. `park!(t, level, "resource" => fut)` also
/// records that the await waits on the named resource.
///
/// ```ignore
/// let guard = park!(t, 0, "mutex_b" => mutex_b.lock()).await;
/// ```
#[macro_export]
macro_rules! park {
    ($t:expr, $level:expr, $res:expr => $fut:expr) => {{
        $crate::record_await($t, $level, line!(), file!(), $crate::__here_fn!(), Some($res));
        $fut
    }};
    ($t:expr, $level:expr, $fut:expr) => {{
        $crate::record_await($t, $level, line!(), file!(), $crate::__here_fn!(), None);
        $fut
    }};
}

/// Implementation detail of [`hold!`].
#[doc(hidden)]
pub fn record_hold(t: Tid, resource: &'static str) {
    if FROZEN.load(Ordering::Relaxed) {
        return;
    }
    with_registry(|r| {
        let rec = r.task_mut(t);
        if !rec.holds.contains(&resource) {
            rec.holds.push(resource);
        }
    });
}

/// `hold!(t, "mutex_a")`: task `t` now holds the named resource (a mutex
/// guard, or the sending end of a channel: whatever would wake the tasks
/// waiting on it).
#[macro_export]
macro_rules! hold {
    ($t:expr, $resource:expr) => {
        $crate::record_hold($t, $resource)
    };
}

/// Register a resource: its `type_name` and address. `address` is where the
/// object named by the type is: the mutex itself, the receiving end a task
/// awaits (inside its future), the timer, the event.
pub fn resource<T: ?Sized>(name: &'static str, kind: &'static str, obj: &T, note: &'static str) {
    assert!(
        matches!(kind, "mutex" | "channel" | "oneshot" | "timer" | "event"),
        "unknown resource kind {kind}"
    );
    let type_name = std::any::type_name::<T>();
    let address = obj as *const T as *const u8 as u64;
    with_registry(|r| {
        assert!(r.resources.iter().all(|x| x.name != name), "resource {name} registered twice");
        r.resources.push(ResourceRec {
            name,
            kind,
            type_name,
            address,
            note: if note.is_empty() { None } else { Some(note) },
        });
    });
}

/// Merge `key: value` into task `t`'s truth entry.
pub fn annotate(t: Tid, key: &str, value: Value) {
    with_registry(|r| {
        r.task_mut(t).extra.insert(key.to_string(), value);
    });
}

/// Kernel thread id of the calling thread (from `/proc/thread-self`).
pub fn gettid() -> u64 {
    let link = std::fs::read_link("/proc/thread-self").expect("read /proc/thread-self");
    link.file_name().and_then(|s| s.to_str()).and_then(|s| s.parse().ok()).expect("tid in /proc/thread-self")
}

/// Say what the calling thread is (e.g. "executor worker"): its entry in
/// the truth's `threads` gets this `role`.
pub fn thread_role(role: &str) {
    let tid = gettid();
    with_registry(|r| {
        r.roles.insert(tid, role.to_string());
    });
}

/// Number of parks task `t` has executed so far.
pub fn parks(t: Tid) -> usize {
    with_registry(|r| r.task_mut(t).parks)
}

/// Whether every `(task, n)` has executed at least `n` parks (each program
/// knows that its task's n-th park is the await it stays in).
pub fn all_parked(expected: &[(Tid, usize)]) -> bool {
    with_registry(|r| expected.iter().all(|&(t, n)| r.task_mut(t).parks >= n))
}

/// Block the calling thread until [`all_parked`], then sleep [`SETTLE`] so
/// the awaited futures have really returned `Pending`. Panics after
/// [`PARK_TIMEOUT`], naming the tasks that did not get there.
pub fn wait_parked(expected: &[(Tid, usize)]) {
    let start = Instant::now();
    while !all_parked(expected) {
        if start.elapsed() > PARK_TIMEOUT {
            let late: Vec<String> = with_registry(|r| {
                expected
                    .iter()
                    .filter_map(|&(t, n)| {
                        let rec = r.task_mut(t);
                        (rec.parks < n).then(|| format!("task {} {:?} ({} of {n} parks)", t.0, rec.name, rec.parks))
                    })
                    .collect()
            });
            panic!("tasks never reached their final park: {}", late.join(", "));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(SETTLE);
}

/// The truth path: argv[1].
pub fn truth_path() -> String {
    std::env::args().nth(1).expect("usage: PROGRAM /path/to/truth.json")
}

/// Versions (from this workspace's Cargo.lock) of the crates `crates`, as
/// linked into the program: a breadth-first walk of the dependency graph
/// from each of `crates` that is a direct dependency of this package, in
/// order; a crate gets the version the first walk that reaches it finds
/// nearest to its root (so `["async-std", "async-channel"]` reports
/// async-std's own async-channel 1.x, not the 2.x this package depends on).
/// Panics if a crate is not reached.
pub fn locked_versions(crates: &[&str]) -> serde_json::Map<String, Value> {
    let find = |dep: &str| -> Option<usize> {
        let mut it = dep.splitn(2, ' ');
        let (name, version) = (it.next().unwrap(), it.next());
        LOCKED.iter().position(|p| p.0 == name && version.map_or(true, |v| p.1 == v))
    };
    let me = LOCKED.iter().position(|p| p.0 == env!("CARGO_PKG_NAME")).expect("this package in Cargo.lock");
    let mut found: BTreeMap<&str, &str> = BTreeMap::new();
    for root in crates {
        let Some(start) = LOCKED[me].2.iter().find(|d| d.split(' ').next() == Some(*root)).and_then(|d| find(d)) else {
            continue;
        };
        let mut queue = std::collections::VecDeque::from([start]);
        let mut seen = vec![false; LOCKED.len()];
        while let Some(i) = queue.pop_front() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            found.entry(LOCKED[i].0).or_insert(LOCKED[i].1);
            queue.extend(LOCKED[i].2.iter().filter_map(|d| find(d)));
        }
    }
    crates
        .iter()
        .map(|c| {
            let v = found.get(c).unwrap_or_else(|| panic!("{c} is not a dependency of the program's crates"));
            (c.to_string(), json!(v))
        })
        .collect()
}

/// The mapping of /proc/self/maps containing `addr`: start, end, perms,
/// pathname ("" for anonymous memory, "[heap]", "[stack]", a file).
fn region_of(maps: &str, addr: u64) -> Value {
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms)) = (f.next(), f.next()) else { continue };
        let path = f.nth(3).unwrap_or("");
        let Some((a, b)) = range.split_once('-') else { continue };
        let (a, b) = (u64::from_str_radix(a, 16).unwrap(), u64::from_str_radix(b, 16).unwrap());
        if a <= addr && addr < b {
            return json!({"start": a, "end": b, "perms": perms, "path": path});
        }
    }
    Value::Null
}

/// Every thread of the process (from /proc/self/task): tid, name (comm),
/// role (set with [`thread_role`], null for threads the executor or its
/// reactor started on their own).
fn threads_json(roles: &BTreeMap<u64, String>) -> Vec<Value> {
    let mut tids: Vec<u64> = std::fs::read_dir("/proc/self/task")
        .expect("read /proc/self/task")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    tids.sort();
    tids.into_iter()
        .map(|tid| {
            let comm = std::fs::read_to_string(format!("/proc/self/task/{tid}/comm")).unwrap_or_default();
            json!({"tid": tid, "name": comm.trim_end(), "role": roles.get(&tid)})
        })
        .collect()
}

/// What a program tells [`write_truth`] besides what the registry knows.
pub struct Truth<'a> {
    /// The bin name (`env!("CARGO_BIN_NAME")`).
    pub scenario: &'a str,
    /// "smol" | "async-std" | "futures-localpool" | "futures-threadpool" |
    /// "handrolled" | "async-task".
    pub executor: &'a str,
    /// Crates whose Cargo.lock version goes into `executor_versions` (see
    /// [`locked_versions`]; the first ones should be direct dependencies).
    pub crates: &'a [&'a str],
    /// The deadlock, if any: (task, resource it waits for), in cycle order;
    /// each resource must be held by the next task (the last one's by the
    /// first).
    pub cycle: &'a [(Tid, &'static str)],
    /// Extra top-level keys (an object, or null).
    pub extra: Value,
}

/// Write truth.json to `path`, print `READY` on stdout and flush. Checks
/// the truth's own consistency first (every task registered its future,
/// anchor and chain; every resource a task holds or waits on is registered;
/// the cycle closes) and panics if it does not hold.
pub fn write_truth(path: &str, truth: Truth) {
    thread_role_default("main");
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let scenario = truth.scenario;
    let doc = with_registry(|r| {
        FROZEN.store(true, Ordering::Relaxed);
        let known = |n: &str| r.resources.iter().any(|x| x.name == n);
        let mut tasks = Vec::new();
        for (i, t) in r.tasks.iter().enumerate() {
            let id = i + 1;
            assert!(!t.future_type.is_empty(), "task {id} {:?}: no future type", t.name);
            assert!(!t.chain.is_empty(), "task {id} {:?}: never parked", t.name);
            let anchor = t.anchor.unwrap_or_else(|| panic!("task {id} {:?}: no anchor", t.name));
            let waits_on = t.chain.last().and_then(|a| a.waits_on);
            for res in t.holds.iter().copied().chain(waits_on) {
                assert!(known(res), "task {id}: resource {res:?} not registered");
            }
            let chain: Vec<Value> = t
                .chain
                .iter()
                .enumerate()
                .map(|(level, a)| json!({"level": level, "function": a.function, "file": a.file, "line": a.line}))
                .collect();
            let mut v = json!({
                "id": id,
                "name": t.name,
                "future_type": t.future_type,
                "function": t.function,
                "state": "idle",
                "file": t.chain[0].file,
                "chain": chain,
                "anchor": anchor,
                "anchor_region": region_of(&maps, anchor),
                "waits_on": waits_on,
                "holds": t.holds,
            });
            for (k, x) in &t.extra {
                v[k.as_str()] = x.clone();
            }
            tasks.push(v);
        }
        let ids_where = |f: &dyn Fn(&TaskRec) -> bool| -> Vec<usize> {
            r.tasks.iter().enumerate().filter(|(_, t)| f(t)).map(|(i, _)| i + 1).collect()
        };
        let resources: Vec<Value> = r
            .resources
            .iter()
            .map(|x| {
                json!({
                    "name": x.name,
                    "kind": x.kind,
                    "type": x.type_name,
                    "address": x.address,
                    "region": region_of(&maps, x.address),
                    "held_by": ids_where(&|t| t.holds.contains(&x.name)),
                    "waited_by": ids_where(&|t| t.chain.last().and_then(|a| a.waits_on) == Some(x.name)),
                    "note": x.note,
                })
            })
            .collect();
        let cycle = if truth.cycle.is_empty() {
            Value::Null
        } else {
            let n = truth.cycle.len();
            let entries: Vec<Value> = truth
                .cycle
                .iter()
                .enumerate()
                .map(|(i, &(t, res))| {
                    let next = truth.cycle[(i + 1) % n].0;
                    let rec = &r.tasks[t.0 as usize - 1];
                    assert_eq!(rec.chain.last().and_then(|a| a.waits_on), Some(res), "cycle: task {} does not wait on {res}", t.0);
                    assert!(r.tasks[next.0 as usize - 1].holds.contains(&res), "cycle: task {} does not hold {res}", next.0);
                    json!({"task": t.0, "waits_for": res, "held_by": next.0})
                })
                .collect();
            json!(entries)
        };
        let versions = locked_versions(truth.crates);
        let mut doc = json!({
            "schema": "taskscope-truth/1",
            "scenario": scenario,
            "executor": truth.executor,
            "executor_versions": versions,
            "build": if cfg!(debug_assertions) { "debug" } else { "release" },
            "pid": std::process::id(),
            "anchor_magic": ANCHOR_MAGIC,
            "tasks": tasks,
            "cycle": cycle,
            "resources": resources,
            "threads": threads_json(&r.roles),
        });
        if let Value::Object(extra) = &truth.extra {
            for (k, v) in extra {
                doc[k.as_str()] = v.clone();
            }
        }
        doc
    });
    let tmp = format!("{path}.tmp");
    let mut text = serde_json::to_string_pretty(&doc).unwrap();
    text.push('\n');
    std::fs::write(&tmp, text).expect("write truth");
    std::fs::rename(&tmp, path).expect("rename truth");
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
}

fn thread_role_default(role: &str) {
    let tid = gettid();
    with_registry(|r| {
        r.roles.entry(tid).or_insert_with(|| role.to_string());
    });
}

/// Park the calling thread forever (the capture script kills the process).
pub fn block_forever() -> ! {
    loop {
        std::thread::park();
    }
}
