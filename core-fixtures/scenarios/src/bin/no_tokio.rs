//! A plain Rust program with no tokio at all: main plus one worker thread
//! sleeping in `std::thread::sleep`. taskscope must say "no tokio runtime"
//! cleanly instead of failing. Truth: tokio/flavor null, tasks [].
//!
//! This binary deliberately does not use the `scenarios` library (which
//! links tokio); it writes the same truth schema by hand.

use std::io::Write;
use std::time::Duration;

use serde_json::json;

fn worker() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn main() {
    let path = std::env::args().nth(1).expect("usage: no_tokio /path/to/truth.json");
    let _worker = std::thread::Builder::new().name("sleeper".into()).spawn(worker).unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let scenario = if cfg!(debug_assertions) { "no_tokio" } else { "no_tokio_release" };
    let truth = json!({
        "schema": "taskscope-truth/1",
        "scenario": scenario,
        "tokio": null,
        "flavor": null,
        "build": if cfg!(debug_assertions) { "debug" } else { "release" },
        "pid": std::process::id(),
        "tasks": [],
        "cycle": null,
        "resources": [],
    });
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&truth).unwrap() + "\n").unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY").unwrap();
    out.flush().unwrap();
    drop(out);

    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
