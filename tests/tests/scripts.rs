//! The install and test scripts say what they are doing as they go: a
//! long quiet step (apt, compiling cargo-deb) prints how long it has been
//! running, so a newcomer never stares at a silent terminal for minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::process::Command;

fn bash(script: &str) -> std::process::Output {
    Command::new("bash")
        .arg("-c")
        .arg(format!(". scripts/common.sh\n{script}"))
        .current_dir(workspace())
        .output()
        .unwrap()
}

#[test]
fn a_long_quiet_step_says_it_is_still_running_and_keeps_its_exit_status() {
    let out = bash("PROGRESS_EVERY=1 with_progress 'testing the heartbeat' sleep 3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("... still testing the heartbeat (1 s)"),
        "{err}"
    );
    assert!(
        err.contains("... still testing the heartbeat (2 s)"),
        "{err}"
    );
    let failed =
        bash("set -e; PROGRESS_EVERY=1 with_progress failing sh -c 'exit 7'; echo not-reached");
    assert_eq!(failed.status.code(), Some(7));
    assert!(!String::from_utf8_lossy(&failed.stdout).contains("not-reached"));
}

#[test]
fn every_quiet_install_step_in_the_scripts_reports_progress() {
    for script in ["scripts/install.sh", "scripts/test.sh"] {
        let text = std::fs::read_to_string(workspace().join(script)).unwrap();
        for (n, line) in text.lines().enumerate() {
            let calls = line.split_whitespace().next().unwrap_or("");
            assert!(
                calls != "apt_install" && calls != "install_cargo_deb",
                "{script}:{}: `{line}` runs quietly for minutes: wrap it in with_progress",
                n + 1
            );
        }
        assert!(
            text.lines()
                .filter(|l| l.starts_with("with_progress "))
                .count()
                >= 2,
            "{script}"
        );
    }
}
