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
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,relro,-z,now");
    println!("cargo:rustc-link-lib=static=gcc_eh");
    println!("cargo:rerun-if-changed=build.rs");
}
