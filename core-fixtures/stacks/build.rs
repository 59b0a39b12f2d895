//! Exposes the tokio version pinned in this workspace's Cargo.lock as
//! `STACKS_TOKIO_VERSION`: the truth helpers (../scenarios) report the one
//! in ../Cargo.lock, and `stacks::check_tokio_version` makes sure both agree.
//!
//! Also puts the gRPC code of proto/market.proto where tonic-build would
//! write it, `$OUT_DIR/market.v1.rs` (`tonic::include_proto!` includes it
//! from there): proto/market.v1.rs is that generated code, checked in, so
//! building needs no protoc.
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let generated = manifest.join("proto/market.v1.rs");
    println!("cargo:rerun-if-changed={}", generated.display());
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("market.v1.rs");
    std::fs::copy(&generated, &out).expect("copy proto/market.v1.rs to OUT_DIR");

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
