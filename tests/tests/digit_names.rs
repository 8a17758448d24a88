//! All-digit account names (LDAP/SSSD directories of employee or student
//! numbers; `useradd --badname`) through the real module and the real CLI.
//! The accounts exist only in libnss-wrapper's files, so no system user is
//! made: `47001` whose uid is 47001, `47002` whose uid is 5000, and
//! `owner47002` whose uid is 47002. A state file named after one of them
//! must never be taken for another's.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;

const OTHER_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// A world whose accounts come from nss_wrapper's passwd and group files.
struct Directory {
    w: World,
    passwd: PathBuf,
    group: PathBuf,
}

impl Directory {
    fn new(accounts: &[(&str, u32)]) -> Self {
        let w = World::new();
        w.set_config("max_failures = 3\n");
        let passwd = w.dir.join("passwd");
        let group = w.dir.join("group");
        // root too: the CLI and the module look up who runs them.
        let (mut p, mut g) = (
            "root:x:0:0::/root:/bin/sh\n".to_string(),
            "root:x:0:\n".to_string(),
        );
        for (name, uid) in accounts {
            let home = w.dir.join(format!("home-{name}"));
            std::fs::create_dir_all(&home).unwrap();
            std::os::unix::fs::chown(&home, Some(*uid), Some(*uid)).unwrap();
            std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
            p.push_str(&format!(
                "{name}:x:{uid}:{uid}::{}:/bin/sh\n",
                home.display()
            ));
            g.push_str(&format!("{name}:x:{uid}:\n"));
        }
        std::fs::write(&passwd, p).unwrap();
        std::fs::write(&group, g).unwrap();
        Self { w, passwd, group }
    }

    fn nss(&self, cmd: &mut Command, extra_preload: &str) {
        cmd.env(
            "LD_PRELOAD",
            format!("libnss_wrapper.so {extra_preload}").trim(),
        )
        .env("NSS_WRAPPER_PASSWD", &self.passwd)
        .env("NSS_WRAPPER_GROUP", &self.group);
    }

    fn enroll(&self, user: &str, secret: &str) {
        let mut cmd = Command::new(cli_path());
        cmd.arg("--config").arg(&self.w.config).args([
            "enroll",
            "--user",
            user,
            "--secret",
            "-",
            "--no-confirm",
            "--recovery-codes",
            "0",
        ]);
        self.nss(&mut cmd, "");
        let out = run_with_stdin(&mut cmd, secret.as_bytes());
        assert!(
            out.status.success(),
            "enroll {user}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn login(&self, user: &str, code: &str, at: u64) -> PamRun {
        let mut cmd = Command::new("pamtester");
        cmd.args(["otpgate-test", user, "authenticate"]);
        self.w.pam_env(&mut cmd, at);
        self.nss(&mut cmd, &format!("libpam_wrapper.so {FAKETIME_LIB}"));
        let _pam = pam_lock();
        PamRun::from(run_with_stdin(&mut cmd, format!("{code}\n").as_bytes()))
    }
}

#[test]
fn an_account_named_after_its_own_uid_remembers_used_codes_and_failures() {
    let d = Directory::new(&[("47001", 47001)]);
    d.enroll("47001", RFC_SECRET);
    let code = code_at(RFC_SECRET, T0);
    d.login("47001", &code, T0).assert_ok();
    // Every later login must still find the code used: the state is
    // never taken for an old file, converted and deleted.
    for round in 0..3 {
        let again = d.login("47001", &code, T0 + round);
        again.assert_denied("already used");
    }
    // Wrong codes add up to the lockout, however many logins in between.
    for i in 0..3 {
        d.login("47001", &wrong_code(RFC_SECRET, T0 + 30), T0 + 30 + i)
            .assert_denied("wrong code");
    }
    let locked = d.login("47001", &code_at(RFC_SECRET, T0 + 60), T0 + 60);
    locked.assert_denied("locked");
    let names: Vec<String> = std::fs::read_dir(&d.w.state)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".state"))
        .collect();
    assert_eq!(names, ["uid=47001.state"], "one current file");
}

#[test]
fn an_all_digit_name_never_takes_another_uids_state() {
    let d = Directory::new(&[("owner47002", 47002), ("47002", 5000)]);
    d.enroll("owner47002", RFC_SECRET);
    d.enroll("47002", OTHER_SECRET);
    let owners = code_at(RFC_SECRET, T0);
    d.login("owner47002", &owners, T0).assert_ok();
    d.login("47002", &code_at(OTHER_SECRET, T0), T0).assert_ok();
    // The owner's used code stays used: the account *named* 47002 did
    // not take (and delete) uid 47002's state as its own old file.
    d.login("owner47002", &owners, T0 + 1)
        .assert_denied("already used");
    // The owner's lockout is the owner's alone.
    for i in 0..3 {
        d.login("owner47002", &wrong_code(RFC_SECRET, T0 + 30), T0 + 30 + i)
            .assert_denied("wrong code");
    }
    d.login("owner47002", &code_at(RFC_SECRET, T0 + 60), T0 + 60)
        .assert_denied("locked");
    d.login("47002", &code_at(OTHER_SECRET, T0 + 60), T0 + 60)
        .assert_ok();
    d.login("owner47002", &code_at(RFC_SECRET, T0 + 90), T0 + 90)
        .assert_denied("locked");
}

#[test]
fn a_state_file_of_the_release_before_goes_to_its_uid_only() {
    let d = Directory::new(&[("owner47004", 47004), ("47004", 5004)]);
    d.enroll("owner47004", RFC_SECRET);
    d.enroll("47004", OTHER_SECRET);
    let owners = code_at(RFC_SECRET, T0);
    d.login("owner47004", &owners, T0).assert_ok();
    // uid 47004's state as the release before named it (`UID.state`).
    let current = d.w.state.join("uid=47004.state");
    let old_name = d.w.state.join("47004.state");
    std::fs::rename(&current, &old_name).unwrap();
    d.login("47004", &code_at(OTHER_SECRET, T0), T0).assert_ok();
    assert!(
        old_name.exists(),
        "user 47004 leaves uid 47004's file alone"
    );
    // Its uid takes it over at its next login, the used code still used.
    d.login("owner47004", &owners, T0 + 1)
        .assert_denied("already used");
    assert!(!old_name.exists() && current.exists());
}
