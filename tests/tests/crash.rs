//! Issue 6: concurrency and crash safety: 64 parallel logins (64 threads
//! with their own PAM handles in one process, so pam_wrapper's per-process
//! directories — at most 62 at once — do not limit them), SIGKILL in the
//! middle of writes, a full disk.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;
use std::io::BufRead;
use std::process::{Command, Stdio};

#[test]
fn sixty_four_parallel_logins_with_one_code_succeed_once() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 1000\n");
    assert_eq!(
        w.thread_race(&u.name, &code_at(RFC_SECRET, T0), 64, T0),
        (1, 63)
    );
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    let failures = state.lines().find(|l| l.starts_with("failures")).unwrap();
    assert_eq!(
        failures.matches(&T0.to_string()).count(),
        63,
        "every loser counted once: {state}"
    );
}

#[test]
fn sixty_four_parallel_wrong_codes_are_each_counted_once() {
    let w = World::new();
    let u = w.enrolled_user();
    w.set_config("max_failures = 1000\nfailure_window = 3600\n");
    assert_eq!(
        w.thread_race(&u.name, &wrong_code(RFC_SECRET, T0), 64, T0),
        (0, 64)
    );
    let state = std::fs::read_to_string(w.state_file(&u)).unwrap();
    let failures = state.lines().find(|l| l.starts_with("failures")).unwrap();
    assert_eq!(failures.matches(&T0.to_string()).count(), 64, "{state}");
}

#[test]
fn sixty_four_parallel_logins_with_one_recovery_code_succeed_once() {
    let w = World::new();
    let u = TestUser::new(&w);
    w.set_config("max_failures = 1000\n");
    let codes = w.enroll_with_recovery(&u.name, 3);
    assert_eq!(w.thread_race(&u.name, &codes[1], 64, T0), (1, 63));
    let status = cli_ok(&w.otpgate(&["status", "--user", &u.name], ""));
    assert!(status.contains("2 of 3 left"), "{status}");
}

fn writer_path() -> std::path::PathBuf {
    module_path().with_file_name("state_writer")
}

#[test]
fn sigkill_during_writes_never_corrupts_or_loses_anything() {
    let w = World::new();
    let u = w.enrolled_user();
    // Build the helper (cargo builds bin targets of this package with the tests).
    assert!(
        writer_path().exists(),
        "{} missing",
        writer_path().display()
    );
    let ids = [
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
    ];
    let mut seed: u64 = u64::from(std::process::id()) ^ 0x9E37_79B9_7F4A_7C15;
    let mut last_seen = 0u64;
    for round in 0..300 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let wait_for = 1 + (seed >> 33) % 4;
        let mut child = Command::new(writer_path())
            .arg(&w.config)
            .arg(&u.name)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut completed = 0;
        for _ in 0..wait_for {
            match lines.next() {
                Some(Ok(_)) => completed += 1,
                _ => break,
            }
        }
        // Killed somewhere inside the next state or enrollment write.
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        assert_eq!(
            completed, wait_for,
            "round {round}: the writer died on its own"
        );
        // Everything the writer reported before it died (it may have run ahead of our reads).
        let reported = completed + lines.map_while(Result::ok).count() as u64;

        let state = std::fs::read(w.state_file(&u)).unwrap();
        let parsed = otpgate_core::store::state::UserState::parse(&state).unwrap_or_else(|e| {
            panic!(
                "round {round}: state corrupt: {e}: {}",
                String::from_utf8_lossy(&state)
            )
        });
        let n = parsed.last_success.unwrap();
        assert!(
            n >= reported,
            "round {round}: a completed write was lost ({n} < {reported})"
        );
        assert!(
            n <= reported + 1,
            "round {round}: {n} is more than one write past {reported}"
        );
        let file = std::fs::read(u.secret_file()).unwrap();
        let e = otpgate_core::enrollment::Enrollment::parse(&file)
            .unwrap_or_else(|e| panic!("round {round}: enrollment corrupt or lost: {e}"));
        assert!(ids.contains(&e.id.as_str()), "round {round}: {}", e.id);
        last_seen = n;
    }
    assert!(last_seen > 0);
    // What a killed writer can leave: the state's one fixed temporary name
    // (replaced by the next locked write) and at most one uniquely named
    // temporary of the secret file (removed by later writes). Nothing else.
    let state_tmp = format!(".uid={}.state.tmp", u.uid);
    let state_names = names_in(&w.state);
    let allowed = [
        format!("uid={}.state", u.uid),
        format!("{}.lock", u.uid),
        state_tmp.clone(),
    ];
    assert!(
        state_names.iter().all(|n| allowed.contains(n)),
        "unexpected files in the state directory: {state_names:?}"
    );
    let secret_dir = u.secret_file().parent().unwrap().to_path_buf();
    let secret_names = names_in(&secret_dir);
    let temps: Vec<&String> = secret_names
        .iter()
        .filter(|n| n.starts_with(".secret.toml.tmp-"))
        .collect();
    assert!(temps.len() <= 1, "{secret_names:?}");
    assert_eq!(
        secret_names.len(),
        1 + temps.len(),
        "only the secret file and a temporary: {secret_names:?}"
    );
    // The next login's locked write replaces a stale temporary file.
    let at = T0 + 3600;
    w.login(&u.name, &code_at(RFC_SECRET, at), at);
    assert!(
        !names_in(&w.state).contains(&state_tmp),
        "{:?}",
        names_in(&w.state)
    );
}

/// The names of the entries of `dir`, sorted.
fn names_in(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A tiny tmpfs, unmounted on drop.
struct TinyFs(std::path::PathBuf);

impl Drop for TinyFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn disk_full_denies_with_a_clear_log_line_and_keeps_the_old_state() {
    let w = World::new();
    let u = w.enrolled_user();
    let mnt = w.dir.join("tiny");
    std::fs::create_dir(&mnt).unwrap();
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=256k,mode=0755", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(st.success(), "mounting a tmpfs needs root");
    let _tiny = TinyFs(mnt.clone());
    w.set_config(&format!("state_dir = \"{}/state\"\n", mnt.display()));
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    let state_file = mnt.join("state").join(format!("uid={}.state", u.uid));
    let before = std::fs::read(&state_file).unwrap();

    // Fill the file system to the last byte.
    let filler = mnt.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    use std::io::Write;
    while f.write_all(&block).is_ok() {}
    let _ = f.write_all(&[0]);
    drop(f);

    let run = w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30);
    run.assert_denied("No space left on device");
    assert_eq!(
        std::fs::read(&state_file).unwrap(),
        before,
        "the old state is intact"
    );
    assert_eq!(
        names_in(&mnt.join("state")),
        [format!("{}.lock", u.uid), format!("uid={}.state", u.uid)],
        "a failed write removes its temporary file"
    );

    std::fs::remove_file(&filler).unwrap();
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
}
