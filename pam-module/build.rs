//! Link flags for the PAM module only. Every login dlopen()s the module, so
//! what the loader must do for it is paid at every login.
//!
//! * `-z pack-relative-relocs` stores the module's (many) relative
//!   relocations as DT_RELR, which glibc ≥ 2.36 (Debian 12) applies far
//!   faster.
//! * `-z relro` and `-z now` make the GOT read-only after loading (full
//!   RELRO), as Debian's hardening flags do for shared objects.
//! * The unwinder is linked statically (libgcc_eh) instead of loading
//!   libgcc_s: loading and resolving it was about 80 k instructions of every
//!   login, and a module should add no shared library to its host. The
//!   library comes before std's `-lgcc_s` on the link line, so with
//!   `--as-needed` the dynamic one is never recorded. Panics are still
//!   caught and turned into PAM_ABORT (tests/tests/module.rs builds a module
//!   that panics and checks, and checks these flags on the built module).
//! * `--symbol-ordering-file` (lld, Rust's default linker on x86_64 Linux)
//!   puts the functions a login runs (`hot-functions.txt`, written by
//!   `scripts/hot-functions.sh`) together at the start of .text. The kernel
//!   maps a file's pages around each page touched (fault-around, 64 KiB),
//!   so login code spread over the whole 1.2 MB put nearly all of it in
//!   every login's memory; together, about 500 KiB. Names the build does
//!   not have (a stale list) are skipped silently: the link never fails
//!   for it, and tests/tests/package.rs reports the stale list. Set
//!   `OTPGATE_NO_HOT_ORDER=1` to link with a linker other than lld.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,relro,-z,now");
    println!("cargo:rustc-link-lib=static=gcc_eh");
    if std::env::var_os("OTPGATE_NO_HOT_ORDER").is_none() {
        let order = concat!(env!("CARGO_MANIFEST_DIR"), "/hot-functions.txt");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-cdylib-link-arg=-Wl,--no-warn-symbol-ordering");
    }
    println!("cargo:rerun-if-changed=hot-functions.txt");
    println!("cargo:rerun-if-env-changed=OTPGATE_NO_HOT_ORDER");
    println!("cargo:rerun-if-changed=build.rs");
}
