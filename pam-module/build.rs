//! Link flags for the PAM module only.
//!
//! `-z pack-relative-relocs` stores the module's (many) relative relocations
//! as DT_RELR, which glibc ≥ 2.36 (Debian 12) applies far faster: every login
//! dlopen()s the module, so this is most of its load cost. `-z relro` and
//! `-z now` make the GOT read-only after loading (full RELRO), as Debian's
//! hardening flags do for shared objects.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,pack-relative-relocs");
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,relro,-z,now");
}
