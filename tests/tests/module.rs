//! The built `pam_otpgate.so` as libpam sees it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::process::Command;

/// The module exports the six PAM hooks and nothing else: no Rust symbol
/// leaks into the host process's namespace.
#[test]
fn the_module_exports_exactly_the_six_pam_hooks() {
    let out = Command::new("nm")
        .args(["-D", "--defined-only"])
        .arg(module_path())
        .output()
        .expect("running nm (binutils)");
    assert!(out.status.success());
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(2).map(str::to_string))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "pam_sm_acct_mgmt",
            "pam_sm_authenticate",
            "pam_sm_chauthtok",
            "pam_sm_close_session",
            "pam_sm_open_session",
            "pam_sm_setcred",
        ]
    );
}

/// A panic inside the module, with the statically linked unwinder
/// (pam-module/build.rs), is caught at the FFI boundary and becomes
/// PAM_ABORT: the host process neither crashes nor lets anyone in. Built
/// here as the release module is, with the test-only `test-panic` feature.
#[test]
fn a_panic_in_the_module_is_a_denial_not_a_crash() {
    let dir = workspace().join("target/test-panic");
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--release", "-p", "pam-otpgate"])
        .args(["--features", "test-panic", "--target-dir"])
        .arg(&dir)
        .current_dir(workspace())
        .status()
        .expect("running cargo build");
    assert!(status.success());
    let module = dir.join("release/libpam_otpgate.so");
    let needed = Command::new("readelf")
        .arg("-d")
        .arg(&module)
        .output()
        .unwrap();
    let needed = String::from_utf8_lossy(&needed.stdout);
    assert!(
        !needed.contains("libgcc_s"),
        "the unwinder must be linked statically: {needed}"
    );
    // pam-module/build.rs: DT_RELR and full RELRO (read-only GOT, BIND_NOW).
    assert!(needed.contains("(RELR)"), "no DT_RELR: {needed}");
    assert!(
        needed.contains("BIND_NOW"),
        "not linked with -z now: {needed}"
    );
    let headers = Command::new("readelf")
        .arg("-lW")
        .arg(&module)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&headers.stdout).contains("GNU_RELRO"),
        "no RELRO segment"
    );
    let w = World::new();
    let u = w.enrolled_user();
    let line = |extra: &str| {
        format!(
            "auth required {} config={} {extra}",
            module.display(),
            w.config.display()
        )
    };
    w.set_stack(
        "panics",
        &["auth required pam_permit.so", &line("otpgate-test-panic")],
    );
    w.set_stack("works", &["auth required pam_permit.so", &line("")]);
    let run = w.pam("panics", &u.name, &[&code_at(RFC_SECRET, T0)], T0, None);
    assert!(!run.success);
    run.assert_code(PamCode::Abort);
    assert!(run.stderr.contains("on purpose"), "{run:#?}");
    w.pam("works", &u.name, &[&code_at(RFC_SECRET, T0)], T0, None)
        .assert_ok();
}
