//! Links the unwinder statically (libgcc_eh) instead of loading libgcc_s:
//! loading libgcc_s and resolving its symbols was about 80 k instructions of
//! every login, and a module should add no shared library to its host. The
//! library comes before std's `-lgcc_s` on the link line, so with
//! `--as-needed` the dynamic one is never recorded. Panics are still caught
//! and turned into PAM_ABORT (tests/tests/module.rs builds a module that
//! panics and checks).
fn main() {
    println!("cargo:rustc-link-lib=static=gcc_eh");
    println!("cargo:rerun-if-changed=build.rs");
}
