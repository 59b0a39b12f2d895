//! Exposes the tokio version pinned in the workspace Cargo.lock as
//! `SCENARIOS_TOKIO_VERSION`, so truth.json records exactly what was linked.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let lock = manifest.parent().unwrap().join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    let mut version = String::new();
    let mut in_tokio = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            in_tokio = false;
        } else if line == "name = \"tokio\"" {
            in_tokio = true;
        } else if in_tokio {
            if let Some(v) = line.strip_prefix("version = \"") {
                version = v.trim_end_matches('"').to_string();
                break;
            }
        }
    }
    if version.is_empty() {
        println!("cargo:warning=could not find tokio in {}", lock.display());
    }
    println!("cargo:rustc-env=SCENARIOS_TOKIO_VERSION={version}");
}
