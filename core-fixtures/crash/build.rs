//! Compiles csrc/ledger.c (the C code segv_ffi calls) with the cc crate, and
//! exposes the tokio version pinned in this workspace's Cargo.lock as
//! `CRASH_TOKIO_VERSION`: the truth helpers (../scenarios) report the one in
//! ../Cargo.lock, and `crash::init` makes sure both agree.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=csrc/ledger.c");
    cc::Build::new().file("csrc/ledger.c").warnings(true).compile("ledger");

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
    println!("cargo:rustc-env=CRASH_TOKIO_VERSION={version}");
}
