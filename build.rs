//! Links `berth` and `berth-shim` as position-dependent executables; `berthd` stays a PIE.
//!
//! A PIE has its pointer-bearing read-only data (vtables, static tables) rewritten by the dynamic
//! loader at every start, page by page, copy on write. For `berth-shim` that is 256 kB of dirty
//! pages in each of a hundred resident monitors; linked at a fixed address, every monitor shares
//! the same clean file pages. For `berth` it is about 29,000 relocations over 540 kB: 0.6 ms of
//! the 2.1 ms a `berth --version` takes on the reference VM, paid by every CLI call
//! (BENCHMARKS.md). Both keep ASLR for their heap, stack and libraries. `berthd`, the long-lived
//! process that listens on the network and unpacks images from registries, keeps its image's
//! address randomised too.
fn main() {
    println!("cargo:rustc-link-arg-bin=berth=-no-pie");
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
}
