//! Tells the scenarios what they are built with, so truth.json records it:
//! `MSCEN_TOKIO_VERSION` (the tokio pinned in the workspace Cargo.lock),
//! `MSCEN_RUSTC_VERSION` (`rustc -V`), `MSCEN_PROFILE` and `MSCEN_RUSTFLAGS`;
//! and `--cfg mscen_task_id` when that tokio has stable task ids
//! (`JoinHandle::id()`, tokio >= 1.41), so no cell needs `tokio_unstable`.
//! Must build on rustc 1.63.
use std::path::PathBuf;
use std::process::Command;

fn tokio_version(lock: &str) -> String {
    let mut in_tokio = false;
    for line in lock.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            in_tokio = false;
        } else if line == "name = \"tokio\"" {
            in_tokio = true;
        } else if in_tokio && line.starts_with("version = \"") {
            return line["version = \"".len()..].trim_end_matches('"').to_string();
        }
    }
    String::new()
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let lock = manifest.parent().unwrap().join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    println!("cargo:rerun-if-env-changed=RUSTFLAGS");
    let version = tokio_version(&std::fs::read_to_string(&lock).unwrap_or_default());
    if version.is_empty() {
        println!("cargo:warning=could not find tokio in {}", lock.display());
    }
    let minor: u32 = version.split('.').nth(1).and_then(|m| m.parse().ok()).unwrap_or(0);
    println!("cargo:rustc-check-cfg=cfg(mscen_task_id)");
    if version.starts_with("1.") && minor >= 41 {
        println!("cargo:rustc-cfg=mscen_task_id");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let rustc_v = Command::new(&rustc)
        .arg("-V")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let profile = std::env::var("PROFILE").unwrap_or_default();
    let rustflags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default().replace('\u{1f}', " ");
    println!("cargo:rustc-env=MSCEN_TOKIO_VERSION={version}");
    println!("cargo:rustc-env=MSCEN_RUSTC_VERSION={rustc_v}");
    println!("cargo:rustc-env=MSCEN_PROFILE={profile}");
    println!("cargo:rustc-env=MSCEN_RUSTFLAGS={rustflags}");
}
