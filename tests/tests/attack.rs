//! Issue 6: adversarial input through the real module. Each case shows a
//! clear log line and that nothing was let in or lost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::os::unix::fs::{PermissionsExt, symlink};

const OTHER: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Swaps `path` between the real file and a symlink to `decoy` as fast as it
/// can (atomic renames) while logins run; a module that followed the link
/// even once would accept the decoy's code.
fn race_symlink_swaps(
    w: &World,
    u: &TestUser,
    path: &std::path::Path,
    decoy: &std::path::Path,
    attempts: usize,
) {
    let real = path.with_extension("real");
    let link = path.with_extension("link");
    std::fs::copy(path, &real).unwrap();
    let _ = std::fs::remove_file(&link);
    symlink(decoy, &link).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let tmp_real = path.with_extension("swap-real");
            let tmp_link = path.with_extension("swap-link");
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = std::fs::hard_link(&real, &tmp_real);
                let _ = std::fs::rename(&tmp_real, path);
                let _ = std::os::unix::fs::symlink(decoy, &tmp_link);
                let _ = std::fs::rename(&tmp_link, path);
            }
        });
        let mut successes = 0;
        let mut symlink_denials = 0;
        for i in 0..attempts {
            let at = T0 + 30 * i as u64;
            let run = w.login(&u.name, &code_at(OTHER, at), at);
            successes += usize::from(run.success);
            symlink_denials += usize::from(run.syslog.iter().any(|l| l.contains("symbolic link")));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(successes, 0, "a symlinked decoy was followed");
        assert!(
            symlink_denials > 0,
            "the race never hit the link; the test proves nothing"
        );
    });
}

#[test]
fn symlink_swapped_in_for_the_secret_file_is_never_followed() {
    let w = World::new();
    let u = w.enrolled_user();
    // The decoy: a valid file with a secret the attacker knows, owned by the user.
    let decoy = u.home.join("decoy.toml");
    std::fs::copy(u.secret_file(), &decoy).unwrap();
    let text = std::fs::read_to_string(&decoy)
        .unwrap()
        .replace("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", OTHER);
    std::fs::write(&decoy, text).unwrap();
    std::os::unix::fs::chown(&decoy, Some(u.uid), Some(u.gid)).unwrap();
    race_symlink_swaps(&w, &u, &u.secret_file(), &decoy, 60);
}

#[test]
fn symlink_swapped_in_for_the_directory_is_never_followed() {
    let w = World::new();
    let u = w.enrolled_user();
    let dir = u.home.join(".config/otpgate");
    let decoy_dir = u.home.join("decoy-dir");
    std::fs::create_dir(&decoy_dir).unwrap();
    let text = std::fs::read_to_string(u.secret_file())
        .unwrap()
        .replace("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", OTHER);
    std::fs::write(decoy_dir.join("secret.toml"), text).unwrap();
    std::fs::set_permissions(
        decoy_dir.join("secret.toml"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    for p in [&decoy_dir, &decoy_dir.join("secret.toml")] {
        std::os::unix::fs::chown(p, Some(u.uid), Some(u.gid)).unwrap();
    }
    // Swap the directory itself: rename the real dir aside and a link in.
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let stop = AtomicBool::new(false);
    let in_flight = AtomicBool::new(false);
    let swaps_during_logins = AtomicUsize::new(0);
    let aside = u.home.join(".config/otpgate-real");
    let link = u.home.join(".config/otpgate-link");
    symlink(&decoy_dir, &link).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::rename(&dir, &aside);
                let swapped = std::fs::rename(&link, &dir).is_ok();
                if swapped && in_flight.load(Ordering::SeqCst) {
                    swaps_during_logins.fetch_add(1, Ordering::SeqCst);
                }
                let _ = std::fs::rename(&dir, &link);
                let _ = std::fs::rename(&aside, &dir);
            }
        });
        let mut successes = 0;
        let mut link_denials = 0;
        for i in 0..60u64 {
            let at = T0 + 30 * i;
            in_flight.store(true, Ordering::SeqCst);
            let run = w.login(&u.name, &code_at(OTHER, at), at);
            in_flight.store(false, Ordering::SeqCst);
            successes += usize::from(run.success);
            link_denials += usize::from(run.syslog.iter().any(|l| l.contains("symbolic link")));
        }
        stop.store(true, Ordering::SeqCst);
        assert_eq!(successes, 0, "a symlinked decoy directory was followed");
        assert!(
            swaps_during_logins.load(Ordering::SeqCst) > 0,
            "the link was never in place while a login ran; the test proves nothing"
        );
        assert!(
            link_denials > 0,
            "no login ever met the link; the test proves nothing"
        );
    });
}

#[test]
fn world_writable_or_huge_or_duplicated_files_are_refused() {
    let w = World::new();
    let u = w.enrolled_user();
    let code = code_at(RFC_SECRET, T0);
    std::fs::set_permissions(u.secret_file(), std::fs::Permissions::from_mode(0o666)).unwrap();
    w.login(&u.name, &code, T0).assert_denied("has mode 0666");
    std::fs::set_permissions(u.secret_file(), std::fs::Permissions::from_mode(0o600)).unwrap();

    let good = std::fs::read_to_string(u.secret_file()).unwrap();
    std::fs::write(u.secret_file(), format!("{good}digits = 6\n")).unwrap();
    w.login(&u.name, &code, T0).assert_denied("duplicate key");

    // 100 MB (sparse): refused from its size, without reading it.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(u.secret_file())
        .unwrap();
    f.set_len(100 * 1024 * 1024).unwrap();
    drop(f);
    let started = std::time::Instant::now();
    let run = w.login(&u.name, &code, T0);
    run.assert_denied("104857600 bytes, larger than the 65536-byte limit");
    assert!(started.elapsed() < std::time::Duration::from_secs(10));

    std::fs::write(u.secret_file(), &good).unwrap();
    w.login(&u.name, &code, T0).assert_ok();
}

#[test]
fn hostile_user_names_are_denied_without_touching_files() {
    let w = World::new();
    for name in [
        "../../etc/passwd",
        "a/b",
        "a b",
        "..",
        ".",
        "root\nforged log line",
        "%s%s%n",
    ] {
        let run = w.login(name, "123456", T0);
        assert!(!run.success, "{name:?}");
        run.assert_logged("unknown user");
        assert!(
            run.syslog.iter().all(|l| !l.contains("forged log line\n")),
            "log injection"
        );
    }
    // Non-UTF-8 bytes in the user name.
    use std::os::unix::ffi::OsStrExt;
    let mut cmd = std::process::Command::new("pamtester");
    cmd.arg("otpgate-test")
        .arg(std::ffi::OsStr::from_bytes(b"bad\xff\xfename"))
        .arg("authenticate");
    w.pam_env(&mut cmd, T0);
    let run = PamRun::from(run_pam_app(&mut cmd, b"123456\n"));
    assert!(!run.success);
    run.assert_logged("could not get the user name");
    assert!(
        !w.state.exists() || std::fs::read_dir(&w.state).unwrap().count() == 0,
        "no state for hostile names"
    );
}

#[test]
fn unreadable_home_denies_and_says_why() {
    let w = World::new();
    let u = w.enrolled_user();
    std::fs::set_permissions(&u.home, std::fs::Permissions::from_mode(0o000)).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("permission denied");
    std::fs::set_permissions(&u.home, std::fs::Permissions::from_mode(0o755)).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
}

#[test]
fn pam_user_unset_means_the_module_asks_and_fails_closed() {
    let w = World::new();
    let u = w.enrolled_user();
    // PAM asks for the user name through the conversation; the helper answers
    // every prompt with the same text, which is then no valid account.
    let run = w.pamconv("-", "reply", Some(&code_at(RFC_SECRET, T0)), T0);
    assert!(!run.success);
    assert!(
        run.stdout.contains("prompt: login:") || run.stdout.contains("prompt:"),
        "{run:#?}"
    );
    run.assert_logged("unknown user");
    let run = w.pamconv("-", "null-resp", None, T0);
    assert!(!run.success);
    run.assert_logged("could not get the user name");
    let _ = u;
}
