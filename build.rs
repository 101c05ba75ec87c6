//! Links `berth-shim` as a position-dependent executable.
//!
//! A hundred monitors stay resident, one per container. A PIE has its pointer-bearing read-only
//! data (vtables, static tables: 256 kB here) rewritten by the dynamic loader at every start, so each
//! monitor holds its own dirty copy. Linked at a fixed address the linker resolves those pointers
//! once and every monitor shares the same clean file pages. The monitor keeps ASLR for its heap,
//! stack and libraries; `berth` itself (the network-facing daemon) stays a PIE.
fn main() {
    println!("cargo:rustc-link-arg-bin=berth-shim=-no-pie");
}
