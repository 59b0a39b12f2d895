//! Truth recording for the crash fixtures.
//!
//! A crash fixture parks a few tasks (`scenarios::park!`), drives one task
//! down a chain of async fns ([`step!`] at each await, so the chain is known)
//! to the line that crashes, and right before that line calls [`record`]:
//! it waits until every other thread of the process is asleep in the kernel,
//! writes `truth.json` (the tasks, as `scenarios::write_truth` writes them,
//! plus a `"crash"` object and the `"threads"`), fsyncs it, and returns; the
//! next statement crashes. Nothing runs between the truth and the crash but
//! the crash itself.
//!
//! Panics are checked against the truth as they happen: [`init`] installs a
//! panic hook that compares each panic's message and location with the ones
//! [`record`] (and [`expect_panic`]) announced, prints `crash-check: ok ...`
//! or `crash-check: MISMATCH ...` to stderr (run.log; capture-crash fails on
//! a mismatch), then runs the default hook (for a second or third panic,
//! prints its message without the forced backtrace).

pub use scenarios;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

static TRUTH_PATH: OnceLock<String> = OnceLock::new();
static SCENARIO: OnceLock<&'static str> = OnceLock::new();

/// Read the truth path (argv[1]), check this workspace's tokio is the one
/// the truth helpers report, and install the panic check. Call first in
/// `main` with `env!("CARGO_BIN_NAME")`.
pub fn init(scenario: &'static str) {
    assert_eq!(
        env!("CRASH_TOKIO_VERSION"),
        scenarios::TOKIO_VERSION,
        "core-fixtures/crash/Cargo.lock and core-fixtures/Cargo.lock pin different tokio versions"
    );
    TRUTH_PATH.set(scenarios::truth_path()).expect("crash::init called twice");
    SCENARIO.set(scenario).unwrap();
    install_panic_check();
}

// ------------------------------------------------------------------ chains

/// One frame of a crash chain: the line in `function` (an await, or the
/// crash itself for the innermost one).
#[derive(Clone, Debug)]
struct Frame {
    line: u32,
    function: String,
}

/// task id -> its frames so far (level = index), as recorded by [`step!`].
static STEPS: Mutex<BTreeMap<u64, Vec<Frame>>> = Mutex::new(BTreeMap::new());

/// Implementation detail of [`step!`].
#[doc(hidden)]
pub fn record_step(level: usize, line: u32, function: String) {
    let id = scenarios::id_u64(tokio::task::try_id().expect("step! outside a tokio task"));
    let mut steps = STEPS.lock().unwrap();
    let chain = steps.entry(id).or_default();
    assert!(level <= chain.len(), "step!({level}) at line {line}: the task only has {} levels", chain.len());
    chain.truncate(level);
    chain.push(Frame { line, function });
}

/// `step!(level, fut)`: `scenarios::park!(level, fut)` that also keeps the
/// await (line and enclosing fn) for the chain of a crash in this task.
/// Write the `.await` on the same line.
#[macro_export]
macro_rules! step {
    ($level:expr, $fut:expr) => {{
        $crate::record_step($level, line!(), $crate::scenarios::__here_fn!());
        $crate::scenarios::park!($level, $fut)
    }};
}

/// The innermost await [`step!`] recorded for task `id`: (function, line).
pub fn innermost_step(id: tokio::task::Id) -> Option<(String, u32)> {
    let steps = STEPS.lock().unwrap();
    steps.get(&scenarios::id_u64(id)).and_then(|c| c.last()).map(|f| (f.function.clone(), f.line))
}

// ------------------------------------------------------------------- sites

/// A source location: `file` as `file!()` has it, the 1-based `line`, and
/// the enclosing function in `scenarios::fn_path` form.
#[derive(Clone, Debug)]
pub struct Site {
    pub file: &'static str,
    pub line: u32,
    pub function: String,
}

impl Site {
    /// The site of the one line of `source` (the text of `file`) that
    /// contains `needle`, not counting comments and the `site!` calls that
    /// name it.
    /// Panics unless exactly one line does.
    pub fn find(file: &'static str, source: &str, needle: &str, function: String) -> Site {
        let hits: Vec<usize> = source
            .lines()
            .enumerate()
            .filter(|(_, l)| l.contains(needle) && !l.contains("site!(") && !l.trim_start().starts_with("//"))
            .map(|(i, _)| i + 1)
            .collect();
        assert!(hits.len() == 1, "{file}: {needle:?} is on lines {hits:?}, expected exactly one");
        Site { file, line: hits[0] as u32, function }
    }
}

/// `site!("needle")`: the [`Site`] of the one line of the calling source
/// file that contains `needle` (the file's text is `include_str!`ed, so the
/// line is that of the code being compiled), in the calling function.
/// `site!("needle", in "path::to::fn")` names the function explicitly (a
/// site in another function than the caller, e.g. a `Drop` impl).
///
/// The crash line is found this way rather than with `line!()` because a
/// site is often recorded before its function runs (a panic in `drop`), and
/// because the needle is the crashing call itself: the truth cannot drift
/// from the code that crashes.
#[macro_export]
macro_rules! site {
    ($needle:expr) => {
        $crate::Site::find(
            file!(),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", file!())),
            $needle,
            $crate::scenarios::__here_fn!(),
        )
    };
    ($needle:expr, in $function:expr) => {
        $crate::Site::find(
            file!(),
            include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/", file!())),
            $needle,
            ::std::string::String::from($function),
        )
    };
}

// ------------------------------------------------------------- panic check

/// A panic the truth announces: its message and, unless None, location.
struct Expected {
    message: String,
    file: Option<&'static str>,
    line: Option<u32>,
}

static EXPECTED: Mutex<Vec<Expected>> = Mutex::new(Vec::new());
static PANICS_SEEN: AtomicUsize = AtomicUsize::new(0);

/// Announce the next panic (after those [`record`] announced): `message`,
/// at `site` (None: anywhere, e.g. the runtime's own abort panic in core).
pub fn expect_panic(message: &str, site: Option<&Site>) {
    EXPECTED.lock().unwrap().push(Expected {
        message: message.to_string(),
        file: site.map(|s| s.file),
        line: site.map(|s| s.line),
    });
}

fn install_panic_check() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let n = PANICS_SEEN.fetch_add(1, Ordering::SeqCst);
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(|s| s.as_str()))
            .unwrap_or("<non-string payload>");
        let (file, line) = info.location().map_or(("?", 0), |l| (l.file(), l.line()));
        // try_lock: never block or panic inside the hook.
        let verdict = match EXPECTED.try_lock() {
            Ok(expected) => match expected.get(n) {
                None => format!("MISMATCH: panic {} ({message:?} at {file}:{line}) is not in the truth", n + 1),
                Some(e) if e.message != message => {
                    format!("MISMATCH: panic {} says {message:?}, the truth {:?}", n + 1, e.message)
                }
                Some(e) if e.file.is_some_and(|f| f != file) || e.line.is_some_and(|l| l != line) => format!(
                    "MISMATCH: panic {} is at {file}:{line}, the truth says {}:{}",
                    n + 1,
                    e.file.unwrap_or("?"),
                    e.line.unwrap_or(0)
                ),
                Some(_) => format!("ok: panic {} ({message:?} at {file}:{line}) is the truth's", n + 1),
            },
            Err(_) => format!("MISMATCH: panic {} while the expectations are locked", n + 1),
        };
        eprintln!("crash-check: {verdict}");
        if n == 0 {
            default(info);
        } else {
            // The default hook prints a full backtrace for a panic during a
            // panic whatever RUST_BACKTRACE says; symbolizing it leaves
            // ~40 MB of parsed debug info on the heap (a 46 MB core instead
            // of 5). Print what it prints, without the backtrace.
            let name = std::thread::current().name().map(str::to_string).unwrap_or_default();
            let loc = info.location().map_or("?".into(), |l| l.to_string());
            eprintln!("\nthread '{name}' ({}) panicked at {loc}:\n{message}", scenarios::gettid());
        }
    }));
}

// ----------------------------------------------------------------- threads

fn syscall_name(nr: i64) -> Option<&'static str> {
    // x86-64 numbers of the calls an idle tokio program sleeps in.
    Some(match nr {
        7 => "poll",
        35 => "nanosleep",
        202 => "futex",
        230 => "clock_nanosleep",
        232 => "epoll_wait",
        281 => "epoll_pwait",
        441 => "epoll_pwait2",
        _ => return None,
    })
}

/// (tid, comm, state letter, syscall number or -1 if running) of every
/// thread of this process.
fn threads() -> Vec<(u64, String, char, i64)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc/self/task").expect("read /proc/self/task") {
        let entry = entry.unwrap();
        let Some(tid) = entry.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else { continue };
        let dir = entry.path();
        let (Ok(stat), Ok(comm)) = (std::fs::read_to_string(dir.join("stat")), std::fs::read_to_string(dir.join("comm")))
        else {
            continue; // the thread exited meanwhile
        };
        // "tid (comm) S ...": the comm may contain spaces and parentheses.
        let state = stat.rfind(')').and_then(|i| stat[i + 1..].trim_start().chars().next()).unwrap_or('?');
        let syscall = std::fs::read_to_string(dir.join("syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|w| w.parse::<i64>().ok()))
            .unwrap_or(-1);
        out.push((tid, comm.trim_end().to_string(), state, syscall));
    }
    out.sort();
    out
}

/// Wait until every other thread of the process has been asleep in the
/// kernel (state S) for five checks in a row, 10 ms apart, and return the
/// threads as truth entries. After 30 s, print a MISMATCH and go on.
pub fn wait_others_asleep() -> Value {
    let me = scenarios::gettid();
    let start = Instant::now();
    let mut quiet = 0;
    loop {
        let all = threads();
        let awake: Vec<_> = all.iter().filter(|t| t.0 != me && t.2 != 'S').collect();
        quiet = if awake.is_empty() { quiet + 1 } else { 0 };
        let timed_out = start.elapsed() > Duration::from_secs(30);
        if timed_out {
            eprintln!("crash-check: MISMATCH: threads still awake after 30 s: {awake:?}");
        }
        if quiet >= 5 || timed_out {
            let list: Vec<Value> = all
                .iter()
                .map(|(tid, name, _, nr)| {
                    let mut v = json!({"tid": tid, "name": name, "crashing": *tid == me});
                    if *tid != me {
                        v["syscall"] = json!(nr);
                        v["syscall_name"] = json!(syscall_name(*nr));
                    }
                    v
                })
                .collect();
            return Value::Array(list);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ------------------------------------------------------------------- truth

/// What is about to happen. `kind`: "panic", "abort", "segv" or
/// "double_panic"; `signal`: "SIGABRT" or "SIGSEGV"; `message`: the panic
/// message (None for abort/segv); `site`: the crashing line; `extra`: an
/// object of more keys for the `"crash"` entry.
pub struct Crash {
    pub kind: &'static str,
    pub signal: &'static str,
    pub message: Option<String>,
    pub site: Site,
    pub extra: Value,
}

/// Record the crash the caller is about to have on its next statement:
/// wait for the other threads to sleep, then write and fsync truth.json.
///
/// `"crash"`: kind, signal, message, file, line, function (the innermost
/// Rust function, the site's), task (`tokio::task::try_id()` here, null on
/// a plain thread), thread (this kernel tid), chain (`[{"function",
/// "line"}]` outermost first: the [`step!`] awaits of the outer async fns
/// of this task, then the site in its own function), plus `extra`. A task of the truth's `"tasks"` that crashes is
/// `"state": "running"` on this thread with that chain (levels 0..n).
/// A panic (kind "panic"/"double_panic") is announced to the panic check.
pub fn record(crash: Crash) {
    let path = TRUTH_PATH.get().expect("crash::init not called");
    let tid = scenarios::gettid();
    let task = tokio::task::try_id().map(scenarios::id_u64);
    let mut frames = task.and_then(|id| STEPS.lock().unwrap().get(&id).cloned()).unwrap_or_default();
    // The site's function has resumed past its last await: the site takes
    // its level. (A plain fn the innermost async fn called is one deeper.)
    if let Some(level) = frames.iter().rposition(|f| f.function == crash.site.function) {
        frames.truncate(level);
    }
    frames.push(Frame { line: crash.site.line, function: crash.site.function.clone() });

    if let (Some(m), "panic" | "double_panic") = (&crash.message, crash.kind) {
        EXPECTED.lock().unwrap().insert(0, Expected { message: m.clone(), file: Some(crash.site.file), line: Some(crash.site.line) });
    }

    let threads = wait_others_asleep();

    if let Some(id) = task.filter(|&id| scenarios::annotation(id, "crashes").is_some()) {
        let chain: Vec<Value> = frames
            .iter()
            .enumerate()
            .map(|(level, f)| json!({"level": level, "line": f.line, "function": f.function}))
            .collect();
        scenarios::annotate(id, "state", json!("running"));
        scenarios::annotate(id, "thread", json!(tid));
        scenarios::annotate(id, "file", json!(crash.site.file));
        scenarios::annotate(id, "last_await_line", json!(frames.first().filter(|_| frames.len() > 1).map(|f| f.line)));
        scenarios::annotate(id, "chain", Value::Array(chain));
    }

    let mut entry = json!({
        "kind": crash.kind,
        "signal": crash.signal,
        "message": crash.message,
        "file": crash.site.file,
        "line": crash.site.line,
        "function": crash.site.function,
        "task": task,
        "thread": tid,
        "chain": frames.iter().map(|f| json!({"function": f.function, "line": f.line})).collect::<Vec<_>>(),
    });
    for (k, v) in crash.extra.as_object().expect("Crash::extra must be an object") {
        entry[k.as_str()] = v.clone();
    }
    scenarios::write_truth(
        path,
        json!({
            "scenario": SCENARIO.get().unwrap(),
            "cycle": null,
            "resources": [],
            "panic_strategy": if cfg!(panic = "abort") { "abort" } else { "unwind" },
            "crash": entry,
            "threads": threads,
        }),
    );
    // A crash does not lose what is in the page cache, but a crash of the
    // machine would: sync the file and its directory before crashing.
    std::fs::File::open(path).and_then(|f| f.sync_all()).expect("fsync truth.json");
    if let Some(dir) = std::path::Path::new(path).parent() {
        let _ = std::fs::File::open(dir).and_then(|d| d.sync_all());
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "crash: truth written; {} at {}:{} now", crash.kind, crash.site.file, crash.site.line);
}

/// Mark task `id` as the one that will crash (its truth entry becomes
/// running on the crashing thread, see [`record`]).
pub fn will_crash(id: tokio::task::Id) {
    scenarios::annotate(scenarios::id_u64(id), "crashes", json!(true));
}
