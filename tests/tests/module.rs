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
