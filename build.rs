//! Embeds every `providers/*.toml` into the binary (the list is generated so adding a
//! provider is adding a file), and lays out a release binary for a small idle footprint.

use std::fmt::Write;

fn main() {
    embed_providers();
    link_for_a_small_footprint();
}

/// An idle server's resident memory is mostly its binary's code pages: the kernel maps
/// code 64 KiB around each page touched, and the code run at start-up and when idle is
/// scattered through 23 MB of it, so about 17 MB was resident. Release binaries linked by
/// LLD (the default linker on x86-64 Linux) put that code first, in the order
/// `link/startup-order.txt` lists it (`link/generate.sh` rewrites the list), and pack
/// their relocations (1.5 MB the loader would read at every start, down to 25 KB).
fn link_for_a_small_footprint() {
    println!("cargo:rerun-if-changed=link/startup-order.txt");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let lld_default = std::env::var("TARGET").is_ok_and(|t| t == "x86_64-unknown-linux-gnu");
    if !(release && lld_default) {
        return;
    }
    let order = std::path::Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
        .join("link/startup-order.txt");
    println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    println!(
        "cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // Functions renamed or gone since the list was made are simply not placed first.
    println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
}

fn embed_providers() {
    println!("cargo:rerun-if-changed=providers");
    let mut files: Vec<_> = std::fs::read_dir("providers")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    let mut out = String::from("[\n");
    for f in files {
        let _ = writeln!(
            out,
            "    ({f:?}, include_str!(concat!(env!(\"CARGO_MANIFEST_DIR\"), \"/providers/{f}\"))),"
        );
    }
    out.push(']');
    let dest =
        std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_default()).join("providers.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
