//! Fleet mode, trust round 3: the database stores, the key decides.
//! Someone who can write PostgreSQL but does not hold `secret_key_file`
//! (a database administrator, a compromised database host, a backup
//! restored over live data) edits the tables here with psql, as they
//! would; the real module, CLI and two otpgated must deny service and
//! nothing else: no login without a code, no removed device, revoked
//! recovery set or used code that works again on a server that saw newer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_core::fleet::protocol::{self, Request};
use otpgate_tests::fleet::{self, Fleet, Server};
use otpgate_tests::*;

const LAPTOP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";

/// Keeps a copy of `user`'s row of `table` in the database (as an
/// attacker's or a backup's copy) under `name`.
fn save_row(f: &Fleet, table: &str, user: &str, name: &str) {
    f.pg.psql(&format!(
        "CREATE TABLE {name} AS SELECT * FROM {table} WHERE user_name = '{user}'"
    ));
    assert_eq!(
        f.pg.psql(&format!("SELECT count(*) FROM {name}")).trim(),
        "1"
    );
}

/// Writes the saved copy back over the live row.
fn write_back(f: &Fleet, table: &str, user: &str, name: &str) {
    f.pg.psql(&format!(
        "BEGIN; DELETE FROM {table} WHERE user_name = '{user}'; \
         INSERT INTO {table} SELECT * FROM {name}; COMMIT"
    ));
}

fn assert_refused(run: &PamRun, why: &str) {
    run.assert_code(PamCode::AuthInfoUnavail);
    run.assert_logged(why);
}

#[test]
fn an_older_enrollment_row_written_back_revives_nothing_where_a_newer_was_seen() {
    let f = Fleet::new("max_failures = 100\n");
    let u = f.user();
    let old_codes =
        f.a.world
            .enroll_secret_with_recovery(&u.name, Some(RFC_SECRET), 3);
    assert!(
        f.a.world
            .add_device(&u.name, "laptop", LAPTOP_SECRET, &[])
            .status
            .success()
    );
    // Server B sees the enrollment with the laptop and the first set.
    f.b.world
        .login(&u.name, &code_at(LAPTOP_SECRET, T0), T0)
        .assert_ok();
    save_row(&f, "otpgate_enrollments", &u.name, "backup_enrollment");
    // The laptop is lost: removed, and a new recovery set made.
    cli_ok(
        &f.a.world
            .otpgate(&["device", "remove", "laptop", "--user", &u.name], ""),
    );
    cli_ok(
        &f.a.world
            .otpgate(&["recovery-codes", "--user", &u.name], ""),
    );
    f.b.world
        .login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    // The old row goes back into the database.
    write_back(&f, "otpgate_enrollments", &u.name, "backup_enrollment");
    for reply in [code_at(LAPTOP_SECRET, T0 + 60), old_codes[1].clone()] {
        let run = f.b.world.login(&u.name, &reply, T0 + 60);
        assert_refused(&run, "older than one this server has seen");
        run.assert_logged("otpgate accept-restore --user");
    }
    // Server A saw the newer row too.
    assert_refused(
        &f.a.world
            .login(&u.name, &code_at(LAPTOP_SECRET, T0 + 90), T0 + 90),
        "written back from the past",
    );
    // After a restore the administrator made, one command on the server
    // accepts it, and what the restored row holds works there again.
    let out = cli_ok(
        &f.b.world
            .otpgate(&["accept-restore", "--user", &u.name], ""),
    );
    assert!(
        out.contains("now accepts what the fleet store holds"),
        "{out}"
    );
    f.b.world
        .login(&u.name, &code_at(LAPTOP_SECRET, T0 + 120), T0 + 120)
        .assert_ok();
    // Only root may say so.
    let refused = f.b.world.otpgate_as(&u, &["accept-restore"], "");
    assert!(!refused.status.success());
}

#[test]
fn a_deleted_enrollment_row_never_lets_anyone_in_without_a_code() {
    let f = Fleet::new("enforce = \"enrolled\"\n");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    f.b.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    f.pg.psql(&format!(
        "DELETE FROM otpgate_enrollments WHERE user_name = '{}'",
        u.name
    ));
    let run = f.b.world.login(&u.name, "", T0 + 30);
    assert_refused(&run, "no enrollment row");
    run.assert_logged("it was deleted");
    // A removal made with the key (otpgate reset) stands in its place: the
    // user is then not enrolled, as the administrator decided.
    let v = f.user();
    f.a.world.enroll(&v.name, RFC_SECRET);
    f.b.world
        .login(&v.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    cli_ok(&f.a.world.otpgate(&["reset", "--user", &v.name], ""));
    f.b.world.login(&v.name, "", T0 + 30).assert_ok();
}

#[test]
fn an_edited_state_row_is_refused_and_an_older_or_deleted_one_too() {
    let f = Fleet::new("remember_minutes = 60\nmax_failures = 100\n");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let first = code_at(RFC_SECRET, T0);
    f.a.world
        .pam("otpgate-test", &u.name, &[&first], T0, Some("192.0.2.10"))
        .assert_ok();
    // Remembered: the same address is not asked again.
    f.a.world
        .pam("otpgate-test", &u.name, &[], T0 + 60, Some("192.0.2.10"))
        .assert_ok();
    // The attacker rewrites the remembered address to their own.
    f.pg.psql(&format!(
        "UPDATE otpgate_states SET state = replace(state, '192.0.2.10', '203.0.113.66') WHERE user_name = '{}'",
        u.name
    ));
    let run =
        f.a.world
            .pam("otpgate-test", &u.name, &[], T0 + 90, Some("203.0.113.66"));
    assert_refused(&run, "was not written with the key");
    // Even on a server that never saw this account's state.
    assert_refused(
        &f.b.world.login(&u.name, &first, T0 + 90),
        "was not written with the key",
    );
    // Used-code memory wiped: refused the same way.
    f.pg.psql(&format!(
        "UPDATE otpgate_states SET state = E'version = 2\\n' WHERE user_name = '{}'",
        u.name
    ));
    assert_refused(
        &f.a.world.login(&u.name, &first, T0 + 90),
        "was not written with the key",
    );
    // The way out the message names: `reset` forgets the state with the
    // enrollment (a state alone forgotten would free used codes), and the
    // user enrolls again.
    run_refused_names_reset(&f, &u.name);
    cli_ok(&f.a.world.otpgate(&["reset", "--user", &u.name], ""));
    f.a.world.enroll(&u.name, RFC_SECRET);
    let second = code_at(RFC_SECRET, T0 + 120);
    f.a.world.login(&u.name, &second, T0 + 120).assert_ok();
    // A genuine older state written back: refused where newer was seen.
    save_row(&f, "otpgate_states", &u.name, "backup_state");
    let third = code_at(RFC_SECRET, T0 + 150);
    f.a.world.login(&u.name, &third, T0 + 150).assert_ok();
    write_back(&f, "otpgate_states", &u.name, "backup_state");
    let replay = f.a.world.login(&u.name, &third, T0 + 160);
    assert_refused(&replay, "older than one this server has seen");
    // Deleted: refused too.
    f.pg.psql(&format!(
        "DELETE FROM otpgate_states WHERE user_name = '{}'",
        u.name
    ));
    assert_refused(
        &f.a.world.login(&u.name, &third, T0 + 170),
        "no login state row",
    );
}

fn run_refused_names_reset(f: &Fleet, user: &str) {
    let out =
        f.a.world
            .otpgate(&["reset", "--user", user, "--unlock"], "");
    assert_cli_error(&out, &format!("run `otpgate reset --user {user}`"));
}

#[test]
fn after_a_reset_a_login_that_read_the_old_state_cannot_write_over_the_new() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    // A login read the state at this version, then was slow to decide.
    let read = fleet::ask(
        &f.a.socket(),
        0,
        &[&format!(r#"{{"op":"read_state","user":"{}"}}"#, u.name)],
    );
    let old_version: u64 = read[0]
        .split(r#""version":"#)
        .nth(1)
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{read:?}"));
    // Meanwhile: reset, a new enrollment, a login with it.
    cli_ok(&f.a.world.otpgate(&["reset", "--user", &u.name], ""));
    f.a.world.enroll(&u.name, LAPTOP_SECRET);
    f.a.world
        .login(&u.name, &code_at(LAPTOP_SECRET, T0), T0)
        .assert_ok();
    // The slow login's write, from the version it read, is refused.
    let write = fleet::ask(
        &f.a.socket(),
        0,
        &[&format!(
            r#"{{"op":"write_state","user":"{}","version":{old_version},"state":"version = 2\n","repair":false}}"#,
            u.name
        )],
    );
    assert!(write[0].contains(r#""written":false"#), "{write:?}");
    f.a.world
        .login(&u.name, &code_at(LAPTOP_SECRET, T0), T0)
        .assert_denied("already used");
}

/// An enrollment text with `n` TOTP devices besides the primary one.
fn enrollment_with_devices(n: usize) -> String {
    let mut text = String::from(
        "version = 1\nenrollment_id = \"0123456789abcdef0123456789abcdef\"\n\
         created = 1700000000\nsecret = \"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\"\n\
         algorithm = \"SHA1\"\ndigits = 6\nperiod = 30\n",
    );
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    for i in 0..n {
        let tail = [alphabet[(i / 32) % 32], alphabet[i % 32]];
        text.push_str(&format!(
            "\n[[devices]]\nname = \"d{i}\"\ntype = \"totp\"\ncreated = 1700000000\nalgorithm = \"SHA1\"\ndigits = 6\nperiod = 30\nsecret = \"KRSXG5DJNZTSA43FMNZGK5BAMFXGIZ{}\"\n",
            String::from_utf8_lossy(&tail)
        ));
    }
    text
}

#[test]
fn the_daemon_refuses_more_devices_or_bytes_than_files_mode_allows_before_working_on_them() {
    let f = Fleet::new("");
    let u = f.user();
    let ask = |text: String| {
        let request = Request::Save {
            user: u.name.clone(),
            enrollment: zeroize::Zeroizing::new(text),
        };
        let start = std::time::Instant::now();
        let answer = fleet::ask_raw(&f.a.socket(), &protocol::encode(&request).unwrap());
        (answer, start.elapsed())
    };
    // Ten devices in all is the cap: nine besides the primary one pass.
    let (ok, _) = ask(enrollment_with_devices(9));
    assert!(!ok.contains("error"), "{ok}");
    let (many, _) = ask(enrollment_with_devices(10));
    assert!(many.contains("at most 10 devices per user"), "{many}");
    // Thousands of devices (as seen: 7,000 in 867 KB, 0.55 s of CPU per
    // save; 5,500 here fill most of a frame) are refused
    // from their size, before any parsing.
    let (huge, took) = ask(enrollment_with_devices(5_500));
    assert!(huge.contains("larger than 65536 bytes"), "{huge}");
    assert!(took < std::time::Duration::from_millis(500), "{took:?}");
    // The store still holds the nine-device enrollment.
    let status = cli_ok(
        &f.b.world
            .otpgate(&["device", "list", "--user", &u.name], ""),
    );
    assert!(status.contains("d8") && !status.contains("d9"), "{status}");
}

#[test]
fn an_enrollment_left_in_files_is_refused_in_fleet_mode_until_migrated() {
    let pg = fleet::Postgres::start();
    let w = World::new();
    w.set_config("enforce = \"enrolled\"\n");
    let u = TestUser::new(&w);
    w.enroll(&u.name, RFC_SECRET);
    // The README's first step done as before: store = "postgresql" and
    // otpgated started, migrate not run yet.
    Server::switch(&w, &pg.conninfo(), "enforce = \"enrolled\"\n");
    let _daemon = fleet::Daemon::start(&w);
    let run = w.login(&u.name, "", T0);
    run.assert_code(PamCode::AuthInfoUnavail);
    run.assert_logged("not in the fleet store");
    run.assert_logged("otpgate migrate");
    // Someone never enrolled anywhere is not asked (enforce = "enrolled").
    let nobody = TestUser::new(&w);
    w.login(&nobody.name, "", T0).assert_ok();
    // After migrate the code is asked and works.
    // (migrate walks every account of the machine: this test judges its
    // own user's line; other tests' accounts may fail to move meanwhile.)
    let out = w.otpgate(&["migrate"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{}: moved into the fleet store", u.name)),
        "{text}"
    );
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
}

#[test]
fn migrate_to_a_fleet_config_while_the_module_still_reads_files() {
    let pg = fleet::Postgres::start();
    // This server, in files mode the whole time the migration runs.
    let w = World::new();
    w.set_config("enforce = \"enrolled\"\n");
    let u = TestUser::new(&w);
    let codes = w.enroll_secret_with_recovery(&u.name, Some(RFC_SECRET), 3);
    w.login(&u.name, &codes[0], T0).assert_ok();
    // The fleet config beside it, and its otpgated.
    let fleet = Server::start(&pg, "enforce = \"enrolled\"\n");
    let moved = w.otpgate(
        &["migrate", "--to", fleet.world.config.to_str().unwrap()],
        "",
    );
    let text = String::from_utf8_lossy(&moved.stdout);
    assert!(
        text.contains(&format!("{}: moved into the fleet store", u.name)),
        "{text}"
    );
    assert!(text.contains("this server still uses them"), "{text}");
    // Files mode still asks for the code meanwhile.
    w.login(&u.name, &wrong_code(RFC_SECRET, T0), T0)
        .assert_denied("wrong code");
    // In the fleet: enrolled, the recovery code used here still used.
    fleet
        .world
        .login(&u.name, &codes[0], T0 + 30)
        .assert_denied("recovery code already used");
    fleet.world.login(&u.name, &codes[1], T0 + 30).assert_ok();
}

#[test]
fn migrate_on_a_second_server_merges_its_used_codes_into_the_store() {
    let pg = fleet::Postgres::start();
    // One enrollment (one secret file: homes are shared here) used on two
    // servers, each with its own state directory.
    let x = World::new();
    let y = World::new();
    let u = TestUser::new(&x);
    let codes = x.enroll_secret_with_recovery(&u.name, Some(RFC_SECRET), 4);
    x.login(&u.name, &codes[0], T0).assert_ok();
    y.login(&u.name, &codes[1], T0).assert_ok();
    y.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    let fleet = Server::start(&pg, "");
    for (w, done) in [
        (&x, "moved into the fleet store"),
        (
            &y,
            "already in the fleet store; merged this server's used codes",
        ),
    ] {
        let out = w.otpgate(
            &["migrate", "--to", fleet.world.config.to_str().unwrap()],
            "",
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(&format!("{}: {done}", u.name)), "{text}");
    }
    // Server Y's used codes count in the fleet, though X moved first.
    fleet
        .world
        .login(&u.name, &codes[1], T0 + 60)
        .assert_denied("recovery code already used");
    fleet
        .world
        .login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 60)
        .assert_denied("already used");
    fleet
        .world
        .login(&u.name, &codes[0], T0 + 60)
        .assert_denied("recovery code already used");
    fleet.world.login(&u.name, &codes[2], T0 + 60).assert_ok();
}

/// Rewrites `store = …` in a world's config.
fn set_store(w: &World, kind: &str) {
    let text = std::fs::read_to_string(&w.config).unwrap();
    let text = text.replace("store = \"postgresql\"", &format!("store = \"{kind}\""));
    let text = text.replace("store = \"files\"", &format!("store = \"{kind}\""));
    assert!(text.contains(&format!("store = \"{kind}\"")));
    std::fs::write(&w.config, text).unwrap();
}

#[test]
fn the_readme_order_never_refuses_a_login_nor_lets_one_in_without_a_code() {
    let pg = fleet::Postgres::start();
    let w = World::new();
    w.set_config("enforce = \"enrolled\"\n");
    let u = TestUser::new(&w);
    let codes = w.enroll_secret_with_recovery(&u.name, Some(RFC_SECRET), 3);
    // The fleet keys added, `store` still "files"; otpgated started.
    Server::switch(&w, &pg.conninfo(), "enforce = \"enrolled\"\n");
    set_store(&w, "files");
    let _daemon = fleet::Daemon::start(&w);
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    w.login(&u.name, "", T0).assert_denied("empty code");
    // migrate while the module reads files.
    let out = w.otpgate(&["migrate"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{}: moved into the fleet store", u.name)),
        "{text}"
    );
    assert!(text.contains("this server still uses them"), "{text}");
    // A recovery code and an app code used before the switch...
    w.login(&u.name, &codes[0], T0 + 30).assert_ok();
    let late = code_at(RFC_SECRET, T0 + 30);
    w.login(&u.name, &late, T0 + 30).assert_ok();
    // ...the switch, and migrate once more, as the README says.
    set_store(&w, "postgresql");
    w.login(&u.name, "", T0 + 60).assert_denied("empty code");
    let again = w.otpgate(&["migrate"], "");
    assert!(
        String::from_utf8_lossy(&again.stdout).contains(&format!(
            "{}: already in the fleet store; merged this server's used codes",
            u.name
        )),
        "{again:?}"
    );
    w.login(&u.name, &codes[0], T0 + 60)
        .assert_denied("recovery code already used");
    w.login(&u.name, &late, T0 + 30)
        .assert_denied("already used");
    w.login(&u.name, &codes[1], T0 + 60).assert_ok();
}
