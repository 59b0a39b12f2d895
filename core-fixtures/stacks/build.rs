//! Exposes the tokio version pinned in this workspace's Cargo.lock as
//! `STACKS_TOKIO_VERSION`: the truth helpers (../scenarios) report the one
//! in ../Cargo.lock, and `stacks::check_tokio_version` makes sure both agree.
use std::path::PathBuf;

fn main() {
    let lock = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("Cargo.lock");
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
        } else if let (true, Some(v)) = (in_tokio, line.strip_prefix("version = \"")) {
            version = v.trim_end_matches('"').to_string();
            break;
        }
    }
    println!("cargo:rustc-env=STACKS_TOKIO_VERSION={version}");
}
