//! Writes `$OUT_DIR/locked.rs`: every package of this workspace's Cargo.lock
//! with its version and dependencies, so truth.json records exactly which
//! executor crates were linked (`truth::Truth::crates`).
use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let lock = manifest.join("Cargo.lock");
    println!("cargo:rerun-if-changed={}", lock.display());
    let text = std::fs::read_to_string(&lock).unwrap_or_default();
    // (name, version, dependencies as written: "name" or "name version")
    let mut pkgs: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut in_deps = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "[[package]]" {
            pkgs.push(Default::default());
            in_deps = false;
        } else if let Some(p) = pkgs.last_mut() {
            if in_deps {
                if line == "]" {
                    in_deps = false;
                } else {
                    p.2.push(line.trim_end_matches(',').trim_matches('"').to_string());
                }
            } else if let Some(n) = line.strip_prefix("name = \"") {
                p.0 = n.trim_end_matches('"').to_string();
            } else if let Some(v) = line.strip_prefix("version = \"") {
                p.1 = v.trim_end_matches('"').to_string();
            } else if line == "dependencies = [" {
                in_deps = true;
            }
        }
    }
    if !pkgs.iter().any(|p| p.0 == "futures") {
        println!("cargo:warning=no futures package in {}", lock.display());
    }
    let mut out = String::from("/// (name, version, dependencies) of every package of Cargo.lock.\npub const LOCKED: &[(&str, &str, &[&str])] = &[\n");
    for (n, v, d) in &pkgs {
        out.push_str(&format!("    ({n:?}, {v:?}, &{d:?}),\n"));
    }
    out.push_str("];\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("locked.rs");
    std::fs::write(dest, out).unwrap();
}
