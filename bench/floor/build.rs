//! The real module's link flags (pam-module/build.rs), without the
//! function ordering: static unwinder, DT_RELR, full RELRO.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,relro,-z,now");
    println!("cargo:rustc-link-lib=static=gcc_eh");
    println!("cargo:rerun-if-changed=build.rs");
}
