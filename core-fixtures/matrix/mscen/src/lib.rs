//! Truth recording for the version-matrix scenarios: a miniature of
//! `core-fixtures/scenarios/src/lib.rs` that builds on rustc 1.63 and on
//! every tokio from 1.20 on, with no dependency but tokio.
//!
//! A scenario makes a [`Task`] handle per task ([`task`]), spawns it with
//! [`spawn`], passes the handle to the task's async fns, which mark the awaits
//! they park on with [`park!`]; it waits for everything to settle with
//! [`wait_parked`], then calls [`write_truth`], which writes `truth.json`,
//! prints `READY` and returns; the program then blocks forever so
//! `matrix-capture` can dump its core.
//!
//! Tasks carry their [`Task`] handle (a `Copy` index into the registry)
//! instead of asking tokio who they are: `tokio::task::try_id()` and
//! `JoinHandle::id()` are only stable from tokio 1.41 on. The tokio id is
//! recorded when it is available (`cfg(mscen_task_id)`, set by build.rs) and
//! is `null` otherwise; a task is then identified by its `function`.
//!
//! The registry lives in ordinary heap memory behind a `std::sync::Mutex`,
//! never inside the futures (only the one-word handle is), so it hardly
//! changes the shape of the tasks taskscope has to decode.

use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// tokio version pinned in the workspace Cargo.lock (build.rs).
pub const TOKIO_VERSION: &str = env!("MSCEN_TOKIO_VERSION");
/// `rustc -V` of the compiler that built this program (build.rs).
pub const RUSTC_VERSION: &str = env!("MSCEN_RUSTC_VERSION");
/// Cargo's profile directory name: `debug` or `release` (build.rs).
pub const PROFILE: &str = env!("MSCEN_PROFILE");
/// The RUSTFLAGS the program was built with, space-separated (build.rs).
pub const RUSTFLAGS: &str = env!("MSCEN_RUSTFLAGS");

/// How long to let tasks run into `Pending` after their last recorded park.
pub const SETTLE: Duration = Duration::from_millis(300);

// ------------------------------------------------------------------ JSON

/// A JSON value, written by hand (no serde: the matrix builds offline from
/// Debian's registry, which has tokio but should need nothing else).
#[derive(Clone, Debug)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// `Json::Str` of anything string-like.
    pub fn str(s: &str) -> Json {
        Json::Str(s.to_string())
    }

    /// An object from `(key, value)` pairs, in that order.
    pub fn obj(pairs: Vec<(&str, Json)>) -> Json {
        Json::Obj(pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
    }

    fn write(&self, out: &mut String, indent: usize) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Json::Str(s) => escape(s, out),
            Json::Arr(items) => {
                if items.is_empty() {
                    out.push_str("[]");
                    return;
                }
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    pad(out, indent + 1);
                    item.write(out, indent + 1);
                }
                out.push('\n');
                pad(out, indent);
                out.push(']');
            }
            Json::Obj(pairs) => {
                if pairs.is_empty() {
                    out.push_str("{}");
                    return;
                }
                out.push('{');
                for (i, (k, v)) in pairs.iter().enumerate() {
                    out.push_str(if i == 0 { "\n" } else { ",\n" });
                    pad(out, indent + 1);
                    escape(k, out);
                    out.push_str(": ");
                    v.write(out, indent + 1);
                }
                out.push('\n');
                pad(out, indent);
                out.push('}');
            }
        }
    }
}

fn pad(out: &mut String, indent: usize) {
    for _ in 0..indent {
        out.push_str("  ");
    }
}

/// Append `s` to `out` as a JSON string literal.
fn escape(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

// ------------------------------------------------------------- registry

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

struct Rec {
    name: String,
    /// tokio's task id, when this tokio exposes it (see the crate docs).
    id: Option<u64>,
    /// `type_name` of the spawned future, as this rustc spells it.
    future_type: String,
    /// chain[level] = the most recent park at that level.
    chain: Vec<Await>,
    /// Concurrent branches of a `join!` (see [`branch!`]), in order of first
    /// record: (function, chain with absolute levels).
    branches: Vec<(String, Vec<(usize, Await)>)>,
    /// Number of `park!`/`mark!`/`branch!` calls executed so far.
    parks: usize,
    /// Extra keys of the task's truth entry (see [`annotate`]).
    extra: Vec<(String, Json)>,
}

static REGISTRY: Mutex<Vec<Rec>> = Mutex::new(Vec::new());

fn with_registry<R>(f: impl FnOnce(&mut Vec<Rec>) -> R) -> R {
    let mut guard = REGISTRY.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut guard)
}

/// A task of the scenario: an index into the registry. Async fns take it as
/// an argument so that [`park!`] knows whose chain it records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Task(usize);

/// Register a task called `name` (not spawned yet: see [`spawn`]).
pub fn task(name: &str) -> Task {
    with_registry(|r| {
        r.push(Rec {
            name: name.to_string(),
            id: None,
            future_type: String::new(),
            chain: Vec::new(),
            branches: Vec::new(),
            parks: 0,
            extra: Vec::new(),
        });
        Task(r.len() - 1)
    })
}

/// `std::any::type_name` of a value (`type_name_of_val` is rustc >= 1.76).
pub fn type_name_of<T>(_: &T) -> &'static str {
    std::any::type_name::<T>()
}

/// `tokio::spawn(fut)` as task `t`, recording the future's type name (taken
/// right before it is handed to tokio) and, when available, tokio's id.
pub fn spawn<F>(t: Task, fut: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let future_type = type_name_of(&fut).to_string();
    let handle = tokio::spawn(fut);
    let id = handle_id(&handle);
    with_registry(|r| {
        r[t.0].future_type = future_type;
        r[t.0].id = id;
    });
    handle
}

/// tokio's id of the task behind `handle`, if this tokio has stable ids.
#[cfg(mscen_task_id)]
pub fn handle_id<T>(handle: &tokio::task::JoinHandle<T>) -> Option<u64> {
    Some(handle.id().to_string().parse().expect("tokio::task::Id displays as an integer"))
}

/// tokio's id of the task behind `handle`, if this tokio has stable ids.
#[cfg(not(mscen_task_id))]
pub fn handle_id<T>(_handle: &tokio::task::JoinHandle<T>) -> Option<u64> {
    None
}

/// The async fn a future type belongs to, in `helpers.future_function` form:
/// `a::f::{{closure}}` -> `a::f`. rustc < 1.67 wraps an async fn's generator
/// in `core::future::from_generator::GenFuture<...>`; that wrapper is
/// dropped first, so every rustc gives the same name.
pub fn future_function(future_type: &str) -> String {
    let mut t = future_type;
    if let Some(start) = t.find("GenFuture<") {
        if t.ends_with('>') {
            t = &t[start + "GenFuture<".len()..t.len() - 1];
        }
    }
    t.strip_suffix("::{{closure}}").unwrap_or(t).to_string()
}

/// Turn the `type_name` of a marker fn declared where a macro was expanded
/// (`crate::f::{{closure}}::__mscen_here`, or without the `{{closure}}` on
/// some rustc versions) into the name of the enclosing async fn: drop
/// `::__mscen_here`, then one trailing `::{{closure}}`. An async fn `f`
/// gives `crate::f`; an async block in `main` gives `crate::main::{{closure}}`.
#[doc(hidden)]
pub fn fn_path(marker: &str) -> String {
    let p = marker.strip_suffix("::__mscen_here").unwrap_or(marker);
    p.strip_suffix("::{{closure}}").unwrap_or(p).to_string()
}

/// Implementation detail: the enclosing function, as [`fn_path`] names it.
#[doc(hidden)]
#[macro_export]
macro_rules! __here_fn {
    () => {{
        fn __mscen_here() {}
        $crate::fn_path($crate::type_name_of(&__mscen_here))
    }};
}

/// Implementation detail of [`park!`]/[`mark!`].
#[doc(hidden)]
pub fn record_await(t: Task, level: usize, line: u32, file: &'static str, function: String, macro_name: Option<&'static str>) {
    with_registry(|r| {
        let rec = &mut r[t.0];
        assert!(
            level <= rec.chain.len(),
            "park!({level}) at {file}:{line} but task {} only has {} levels",
            rec.name,
            rec.chain.len()
        );
        rec.chain.truncate(level);
        rec.chain.push(Await { line, file, function, macro_name });
        rec.parks += 1;
    });
}

/// Implementation detail of [`branch!`].
#[doc(hidden)]
pub fn record_branch(t: Task, level: usize, line: u32, file: &'static str, function: String) {
    with_registry(|r| {
        let rec = &mut r[t.0];
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

/// `park!(t, level, fut)` records that task `t` awaits at `line!()` of
/// `file!()`, nesting `level`, in the enclosing function, and evaluates to
/// `fut` unchanged. Write the `.await` on the same line:
///
/// ```ignore
/// let guard = park!(t, 0, mutex.lock()).await;
/// ```
///
/// Level 0 is the spawned async fn itself, level 1 an async fn it awaits,
/// and so on. Recording level L replaces chain[L] and drops deeper levels.
#[macro_export]
macro_rules! park {
    ($t:expr, $level:expr, $fut:expr) => {{
        $crate::record_await($t, $level, line!(), file!(), $crate::__here_fn!(), None);
        $fut
    }};
}

/// `mark!(t, level, "join")` on the line *just before* a `tokio::join!(`
/// call: records chain[level] with the line of the macro call
/// (`line!() + 1`) and `"macro": "join"`. The await is inside the macro, so
/// the decoder may place it in tokio's macro source rather than on that line.
#[macro_export]
macro_rules! mark {
    ($t:expr, $level:expr, $macro_name:literal) => {
        $crate::record_await($t, $level, line!() + 1, file!(), $crate::__here_fn!(), Some($macro_name))
    };
}

/// `branch!(t, level, fut)`: like [`park!`], for an await inside an async fn
/// that runs as one branch of a `join!`; recorded under the task's
/// `"branches"` (keyed by the enclosing function), not in `chain`. `level`
/// is absolute: a branch fn called by the macro at level 0 is level 1.
#[macro_export]
macro_rules! branch {
    ($t:expr, $level:expr, $fut:expr) => {{
        $crate::record_branch($t, $level, line!(), file!(), $crate::__here_fn!());
        $fut
    }};
}

/// Merge `key: value` into task `t`'s truth entry (overriding a default).
pub fn annotate(t: Task, key: &str, value: Json) {
    with_registry(|r| {
        let extra = &mut r[t.0].extra;
        extra.retain(|(k, _)| k != key);
        extra.push((key.to_string(), value));
    });
}

/// How `t` is named in scenario facts (`cycle`, `diagnoses`): its tokio id
/// when this tokio exposes ids, else its name.
pub fn key(t: Task) -> Json {
    with_registry(|r| match r[t.0].id {
        Some(id) => Json::Int(id as i64),
        None => Json::Str(r[t.0].name.clone()),
    })
}

/// [`key`] of each task.
pub fn keys(ts: &[Task]) -> Json {
    Json::Arr(ts.iter().map(|t| key(*t)).collect())
}

/// Wait until every `(task, n)` has executed at least `n` parks -- each
/// scenario knows that its task's n-th park is the await it stays stuck in
/// -- then sleep [`SETTLE`] more so the awaited futures have really returned
/// `Pending`. Panics after 30 s.
pub async fn wait_parked(expected: &[(Task, usize)]) {
    let start = Instant::now();
    loop {
        let missing = with_registry(|r| expected.iter().filter(|(t, n)| r[t.0].parks < *n).count());
        if missing == 0 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{missing} tasks never reached their final park");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(SETTLE).await;
}

/// The truth path: argv[1].
pub fn truth_path() -> String {
    std::env::args().nth(1).expect("usage: SCENARIO /path/to/truth.json")
}

fn await_json(level: usize, a: &Await) -> Json {
    let mut v = vec![
        ("level", Json::Int(level as i64)),
        ("line", Json::Int(a.line as i64)),
        ("file", Json::str(a.file)),
        ("function", Json::Str(a.function.clone())),
    ];
    if let Some(m) = a.macro_name {
        v.push(("macro", Json::str(m)));
    }
    Json::obj(v)
}

fn task_json(rec: &Rec) -> Json {
    let mut v = vec![
        ("name".to_string(), Json::Str(rec.name.clone())),
        ("id".to_string(), rec.id.map_or(Json::Null, |i| Json::Int(i as i64))),
        ("future_type".to_string(), Json::Str(rec.future_type.clone())),
        ("function".to_string(), Json::Str(future_function(&rec.future_type))),
        ("state".to_string(), Json::str("idle")),
        ("file".to_string(), rec.chain.first().map_or(Json::Null, |a| Json::str(a.file))),
        (
            "chain".to_string(),
            Json::Arr(rec.chain.iter().enumerate().map(|(l, a)| await_json(l, a)).collect()),
        ),
    ];
    if !rec.branches.is_empty() {
        let branches = rec
            .branches
            .iter()
            .map(|(f, chain)| {
                Json::obj(vec![
                    ("function", Json::Str(f.clone())),
                    ("file", chain.first().map_or(Json::Null, |(_, a)| Json::str(a.file))),
                    ("chain", Json::Arr(chain.iter().map(|(l, a)| await_json(*l, a)).collect())),
                ])
            })
            .collect();
        v.push(("branches".to_string(), Json::Arr(branches)));
    }
    for (k, x) in &rec.extra {
        match v.iter_mut().find(|(key, _)| key == k) {
            Some(slot) => slot.1 = x.clone(),
            None => v.push((k.clone(), x.clone())),
        }
    }
    Json::Obj(v)
}

/// Write truth.json to `path` (through a temporary file), print `READY` on
/// stdout and flush.
///
/// The standard keys come first: `schema`, `scenario`, `tokio_version`,
/// `rustc_version`, `profile`, `rustflags`, `flavor` (`"multi_thread"` or
/// `"current_thread"`: the scenario says which runtime it built, since
/// `Handle::runtime_flavor` is tokio >= 1.23), `ids` (whether task ids were
/// recorded), `pid`, `tasks`; then `facts` (e.g. `cycle`, `diagnoses`).
pub fn write_truth(path: &str, scenario: &str, flavor: &str, facts: Vec<(&str, Json)>) {
    let (tasks, ids) = with_registry(|r| (Json::Arr(r.iter().map(task_json).collect()), r.iter().all(|t| t.id.is_some())));
    let mut truth = vec![
        ("schema", Json::str("taskscope-matrix-truth/1")),
        ("scenario", Json::str(scenario)),
        ("tokio_version", Json::str(TOKIO_VERSION)),
        ("rustc_version", Json::str(RUSTC_VERSION)),
        ("profile", Json::str(PROFILE)),
        ("rustflags", Json::str(RUSTFLAGS)),
        ("flavor", Json::str(flavor)),
        ("ids", Json::Bool(ids)),
        ("pid", Json::Int(std::process::id() as i64)),
        ("tasks", tasks),
    ];
    truth.extend(facts);
    let mut text = String::new();
    Json::obj(truth).write(&mut text, 0);
    text.push('\n');
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, text).expect("write truth");
    std::fs::rename(&tmp, path).expect("rename truth");
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
}
