//! Fleet mode end to end: a real PostgreSQL started here, two otpgated
//! processes standing for two servers (each its own config, socket and
//! PAM service), the real module under pamtester, the real CLI.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::fleet::{self, Fleet, Postgres, Server};
use otpgate_tests::*;
use std::time::{Duration, Instant};

#[test]
fn enroll_on_one_server_log_in_on_another_and_a_code_works_once_fleet_wide() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    // Nothing was written to files on either server.
    assert!(!u.secret_file().exists());
    assert!(!f.a.world.state.exists() && !f.b.world.state.exists());
    let code = code_at(RFC_SECRET, T0);
    f.b.world.login(&u.name, &code, T0).assert_ok();
    let again = f.a.world.login(&u.name, &code, T0);
    again.assert_denied("code already used");
    assert!(again.said("already used"));
    // The next code works on A.
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    // status on B shows the enrollment made on A.
    let status = cli_ok(&f.b.world.otpgate(&["status", "--user", &u.name], ""));
    assert!(
        status.contains("Enrolled since:") && status.contains("Stored in:       the fleet store"),
        "{status}"
    );
    // audit on B lists it.
    let audit = cli_ok(&f.b.world.otpgate(&["audit"], ""));
    assert!(
        audit
            .lines()
            .any(|l| l.starts_with(&u.name) && l.contains("yes")),
        "{audit}"
    );
}

#[test]
fn enrolling_in_the_fleet_says_where_in_plain_words() {
    let f = Fleet::new("");
    let u = f.user();
    let out = cli_ok(&f.a.world.otpgate(
        &[
            "enroll",
            "--user",
            &u.name,
            "--secret",
            "-",
            "--no-confirm",
            "--recovery-codes",
            "0",
        ],
        RFC_SECRET,
    ));
    let line = out
        .lines()
        .find(|l| l.starts_with("Enrolled "))
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        line.contains(&format!(
            "(the fleet store, user \"{}\", through otpgated at ",
            u.name
        )),
        "{line}"
    );
    assert_eq!(
        line.matches('(').count(),
        1,
        "no nested parentheses: {line}"
    );
}

#[test]
fn one_code_raced_on_two_servers_is_accepted_exactly_once() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    // A login first, so the race is over an existing state row (the
    // compare-and-set), not only over its creation.
    f.b.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    let code = code_at(RFC_SECRET, T0 + 30);
    let (ok, failed) =
        f.a.world
            .thread_race_on("otpgate-test,on-b", &u.name, &code, 32, T0 + 30);
    assert_eq!((ok, failed), (1, 31), "one code, 32 logins on two servers");
    // Both daemons served the race (each logged nothing alarming).
    assert!(!f.a.daemon().logged().contains("unavailable"));
    assert!(!f.b.daemon().logged().contains("unavailable"));
}

#[test]
fn one_recovery_code_raced_on_two_servers_is_accepted_exactly_once() {
    let f = Fleet::new("max_failures = 100\n");
    let u = f.user();
    let codes = f.a.world.enroll_with_recovery(&u.name, 3);
    f.b.world.login(&u.name, &codes[2], T0).assert_ok();
    let (ok, failed) =
        f.a.world
            .thread_race_on("otpgate-test,on-b", &u.name, &codes[0], 6, T0);
    assert_eq!((ok, failed), (1, 5));
    let again = f.b.world.login(&u.name, &codes[0], T0 + 60);
    again.assert_denied("recovery code already used");
    f.b.world.login(&u.name, &codes[1], T0 + 60).assert_ok();
}

#[test]
fn failures_count_once_each_and_a_lockout_holds_on_every_server() {
    let f = Fleet::new("max_failures = 100\n");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let wrong = wrong_code(RFC_SECRET, T0);
    // One failure first, so the race is over an existing state row.
    f.a.world
        .login(&u.name, &wrong, T0)
        .assert_denied("wrong code");
    let (ok, failed) =
        f.a.world
            .thread_race_on("otpgate-test,on-b", &u.name, &wrong, 10, T0);
    assert_eq!((ok, failed), (0, 10));
    for d in [f.a.daemon(), f.b.daemon()] {
        assert!(!d.logged().contains("unavailable"), "{}", d.logged());
    }
    let state = fleet::state_of(&f.pg, &u.name).expect("a state row");
    assert_eq!(
        fleet::failures_in(&state),
        11,
        "one failure, then ten racing ones: each counted\nA: {}\nB: {}\n{state}",
        f.a.daemon().logged(),
        f.b.daemon().logged()
    );

    // A lockout reached on A and B together holds on both.
    let g = Fleet::new("max_failures = 3\n");
    let v = g.user();
    g.a.world.enroll(&v.name, RFC_SECRET);
    g.a.world
        .login(&v.name, &wrong, T0)
        .assert_denied("wrong code");
    g.b.world
        .login(&v.name, &wrong, T0)
        .assert_denied("wrong code");
    g.a.world
        .login(&v.name, &wrong, T0)
        .assert_denied("wrong code");
    let locked = g.b.world.login(&v.name, &code_at(RFC_SECRET, T0), T0);
    locked.assert_denied("locked out until");
    assert!(locked.said("Too many wrong codes"));
    // An unlock on B ends it on A.
    cli_ok(
        &g.b.world
            .otpgate(&["reset", "--user", &v.name, "--unlock"], ""),
    );
    g.a.world
        .login(&v.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    // A reset on A removes the enrollment everywhere.
    cli_ok(&g.a.world.otpgate(&["reset", "--user", &v.name], ""));
    let gone =
        g.b.world
            .login(&v.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30);
    gone.assert_denied("not enrolled");
    // The state went too: forgotten as an empty state at a newer version
    // (rows are never deleted, so no older state can be written back).
    let left = fleet::state_of(&g.pg, &v.name).expect("an empty state row");
    assert_eq!(
        otpgate_core::store::state::UserState::parse(left.trim().as_bytes()).unwrap(),
        otpgate_core::store::state::UserState::default(),
        "{left}"
    );
}

#[test]
fn a_database_dump_holds_no_secret_and_rows_cannot_be_swapped() {
    let f = Fleet::new("");
    let alice = f.user();
    let bob = f.user();
    let codes =
        f.a.world
            .enroll_secret_with_recovery(&alice.name, Some(RFC_SECRET), 2);
    let bob_secret = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    f.a.world.enroll(&bob.name, bob_secret);
    let dump = f.pg.dump();
    assert!(
        dump.contains(&alice.name),
        "the dump is of the right database"
    );
    for secret in [
        RFC_SECRET,
        bob_secret,
        "12345678901234567890",
        "3132333435363738",
    ] {
        assert!(!dump.contains(secret), "the dump shows a secret ({secret})");
    }
    for c in &codes {
        assert!(!dump.contains(c.as_str()), "the dump shows a recovery code");
    }
    // Copy alice's sealed enrollment onto bob's row: it must not open.
    f.pg.psql(&format!(
        "UPDATE otpgate_enrollments b SET nonce = a.nonce, sealed = a.sealed, enrollment_id = a.enrollment_id \
         FROM otpgate_enrollments a WHERE a.user_name = '{}' AND b.user_name = '{}'",
        alice.name, bob.name
    ));
    let swapped = f.b.world.login(&bob.name, &code_at(RFC_SECRET, T0), T0);
    swapped.assert_denied("cannot be used");
    assert!(!swapped.success);
    // alice is untouched.
    f.b.world
        .login(&alice.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
}

#[test]
fn a_stopped_database_denies_fast_and_clearly_and_the_daemon_recovers_by_itself() {
    let f = Fleet::new("store_timeout = 3\n");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    f.pg.stop_server();
    let start = Instant::now();
    let down = f.a.world.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    let took = start.elapsed();
    down.assert_code(PamCode::AuthInfoUnavail);
    assert!(
        down.said(otpgate_core::auth::SERVICE_UNAVAILABLE),
        "{down:#?}"
    );
    down.assert_logged("two-factor service unavailable");
    assert!(
        !down.prompted(),
        "no code is asked when it cannot be checked"
    );
    assert!(took < Duration::from_secs(3 + 2), "denied in {took:?}");
    assert!(f.a.daemon().logged().contains("database unavailable"));
    // The CLI says so too.
    let out = f.a.world.otpgate(&["status", "--user", &u.name], "");
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("Problem:         two-factor service unavailable"),
        "{out:?}"
    );
    assert_eq!(out.status.code(), Some(1), "a problem is not an exit 0");
    assert_cli_error(
        &f.a.world.otpgate(&["reset", "--user", &u.name], ""),
        "two-factor service unavailable",
    );
    // Back: the same daemons serve again, no restart; the code was not
    // used while the database was away.
    f.pg.start_server();
    f.b.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    assert!(f.a.daemon().logged().contains("database reachable again"));
}

#[test]
fn a_black_holed_database_denies_within_store_timeout() {
    // A server that accepts connections and never answers.
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = hole.local_addr().unwrap().port();
    let held = std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in hole.incoming().take(8) {
            kept.push(s);
        }
        kept.len()
    });
    let world = Server::configure(
        &format!("host=127.0.0.1 port={port} dbname=otpgate user=otpgate sslmode=disable"),
        "store_timeout = 2\n",
    );
    let _daemon = fleet::Daemon::start(&world);
    let u = TestUser::new(&world);
    let start = Instant::now();
    let run = world.login(&u.name, "123456", T0);
    let took = start.elapsed();
    run.assert_code(PamCode::AuthInfoUnavail);
    assert!(run.said(otpgate_core::auth::SERVICE_UNAVAILABLE));
    assert!(took < Duration::from_secs(2 + 2), "denied in {took:?}");
    let check = fleet::check(&world);
    assert!(!check.status.success());
    assert!(
        String::from_utf8_lossy(&check.stderr).contains("did not answer within 2 s"),
        "{check:?}"
    );
    drop(held);
}

#[test]
fn a_killed_daemon_denies_at_once_and_the_other_server_goes_on() {
    let mut f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    f.a.daemon.take().unwrap().kill();
    let start = Instant::now();
    let run = f.a.world.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "{:?}",
        start.elapsed()
    );
    run.assert_code(PamCode::AuthInfoUnavail);
    run.assert_logged("is the daemon running?");
    assert!(run.said(otpgate_core::auth::SERVICE_UNAVAILABLE));
    f.b.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    // Started again on the stale socket, it serves; the code used on B
    // stays used.
    f.a.daemon = Some(fleet::Daemon::start(&f.a.world));
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("already used");
}

#[test]
fn a_non_root_process_cannot_ask_for_another_users_login_or_state() {
    let f = Fleet::new("");
    let alice = f.user();
    let mallory = f.user();
    f.a.world.enroll(&alice.name, RFC_SECRET);
    let before = fleet::state_of(&f.pg, &alice.name);
    let sock = f.a.socket();
    let answers = fleet::ask(
        &sock,
        mallory.uid,
        &[
            &format!(r#"{{"op":"load","user":"{}"}}"#, alice.name),
            &format!(r#"{{"op":"read_state","user":"{}"}}"#, alice.name),
            &format!(
                r#"{{"op":"write_state","user":"{}","version":0,"state":"version = 2\n","repair":false}}"#,
                alice.name
            ),
            &format!(r#"{{"op":"remove","user":"{}"}}"#, alice.name),
            r#"{"op":"list"}"#,
            &format!(
                r#"{{"op":"write_state","user":"{}","version":0,"state":"version = 2\n","repair":false}}"#,
                mallory.name
            ),
        ],
    );
    assert_eq!(answers.len(), 6, "{answers:?}");
    for (i, a) in answers.iter().enumerate().take(4) {
        let why = if i == 2 {
            "login decision"
        } else {
            "own account"
        };
        assert!(a.contains(r#""kind":"denied""#) && a.contains(why), "{a}");
    }
    assert!(answers[4].contains("only root"), "{}", answers[4]);
    assert!(answers[5].contains("login decision"), "{}", answers[5]);
    assert!(!answers.iter().any(|a| a.contains(RFC_SECRET)));
    assert_eq!(
        fleet::state_of(&f.pg, &alice.name),
        before,
        "nothing changed"
    );
    assert!(
        f.a.daemon()
            .logged()
            .contains(&format!("to uid {}", mallory.uid))
    );
    // Root may; alice's enrollment is still there and works.
    let root = fleet::ask(
        &sock,
        0,
        &[&format!(r#"{{"op":"load","user":"{}"}}"#, alice.name)],
    );
    assert!(root[0].contains(RFC_SECRET), "{root:?}");
    f.a.world
        .login(&alice.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
}

#[test]
fn a_user_enrolls_themself_and_changes_need_a_current_code_checked_by_the_daemon() {
    let f = Fleet::new("");
    let u = f.user();
    // First enrollment as the user: no code needed; B sees it.
    let out =
        f.a.world
            .otpgate_as(&u, &["enroll", "--secret", "-", "--no-confirm"], RFC_SECRET);
    // --no-confirm is root's: the user confirms with a code instead.
    assert_cli_error(&out, "--no-confirm");
    let now = real_now();
    let out = f.a.world.otpgate_as(
        &u,
        &[
            "enroll",
            "--secret",
            "-",
            "--qr",
            "none",
            "--recovery-codes",
            "0",
        ],
        &format!("{RFC_SECRET}\n{}\n", code_at(RFC_SECRET, now)),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = cli_ok(&f.b.world.otpgate(&["status", "--user", &u.name], ""));
    assert!(status.contains("Enrolled since:"), "{status}");
    // Replacing it needs a current code; a wrong one is refused by the daemon.
    let wrong = wrong_code(RFC_SECRET, real_now());
    let out =
        f.b.world
            .otpgate_as(&u, &["disable"], &format!("{wrong}\n"));
    assert_cli_error(&out, "code");
    assert!(
        cli_ok(&f.a.world.otpgate(&["status", "--user", &u.name], "")).contains("Enrolled since:")
    );
    // Asking the daemon directly to save without a proof is refused.
    let fake = fleet::ask(
        &f.a.socket(),
        u.uid,
        &[&format!(r#"{{"op":"remove","user":"{}"}}"#, u.name)],
    );
    assert!(fake[0].contains("needs a current code"), "{fake:?}");
    // With a current code it works, on either server.
    let out = f.b.world.otpgate_as(
        &u,
        &["disable"],
        &format!("{}\n", code_at(RFC_SECRET, real_now())),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = cli_ok(&f.a.world.otpgate(&["status", "--user", &u.name], ""));
    assert!(status.contains("Enrolled:        no"), "{status}");
}

#[test]
fn garbage_huge_and_stalled_clients_get_an_error_and_others_are_served() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let sock = f.a.socket();
    assert!(fleet::ask_raw(&sock, b"GET / HTTP/1.0\r\n\r\n").contains("bad magic"));
    let mut huge = b"OTPG\x00\x01".to_vec();
    huge.extend_from_slice(&u32::MAX.to_be_bytes());
    assert!(fleet::ask_raw(&sock, &huge).contains("over the limit"));
    let mut future = b"OTPG\x00\x07".to_vec();
    future.extend_from_slice(&2u32.to_be_bytes());
    future.extend_from_slice(b"{}");
    assert!(fleet::ask_raw(&sock, &future).contains("version 7"));
    let bad_json = protocol_frame(br#"{"op":"load","user":"x","evil":1}"#);
    assert!(fleet::ask_raw(&sock, &bad_json).contains("bad_request"));
    let cut = protocol_frame(br#"{"op":"ping"}"#);
    assert!(fleet::ask_raw(&sock, &cut[..cut.len() - 3]).contains("cut"));
    // Stalled clients (half a header, then nothing) hold connections open
    // while a login goes through.
    let stalled: Vec<_> = (0..20)
        .map(|_| {
            let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
            std::io::Write::write_all(&mut s, b"OTP").unwrap();
            s
        })
        .collect();
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    drop(stalled);
    assert!(f.a.daemon().logged().contains("bad magic"));
}

fn protocol_frame(payload: &[u8]) -> Vec<u8> {
    otpgate_core::fleet::protocol::frame(payload).unwrap()
}

#[test]
fn tls_with_certificate_verification() {
    let pg = Postgres::start_tls();
    let ca = pg.ca.clone().unwrap();
    let good = format!(
        "host=localhost port={} dbname=otpgate user=otpgate sslmode=verify-full sslrootcert={}",
        pg.port,
        ca.display()
    );
    let world = Server::configure(&good, "");
    let check = fleet::check(&world);
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    let daemon = fleet::Daemon::start(&world);
    let u = TestUser::new(&world);
    world.enroll(&u.name, RFC_SECRET);
    world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    let ssl = pg.psql("SELECT count(*) FROM pg_stat_ssl WHERE ssl");
    assert!(
        ssl.trim().parse::<u32>().unwrap() >= 1,
        "the daemon's connection is TLS"
    );
    drop(daemon);
    // Another CA: refused, and said why.
    let other = ca.with_file_name("other-ca.crt");
    let wrong = Server::configure(
        &good.replace(&ca.display().to_string(), &other.display().to_string()),
        "",
    );
    let check = fleet::check(&wrong);
    assert!(!check.status.success());
    let err = String::from_utf8_lossy(&check.stderr);
    assert!(err.contains("certificate verify failed"), "{err}");
    assert_eq!(
        err.matches("certificate verify failed").count(),
        1,
        "OpenSSL's stack once, not three times: {err}"
    );
    assert!(
        err.contains(&format!(
            "did not verify against sslrootcert={}",
            other.display()
        )) && err.contains("set sslrootcert"),
        "{err}"
    );
    // No sslrootcert at all: the system's CAs do not know it; say so.
    let none = Server::configure(
        &good.replace(&format!(" sslrootcert={}", ca.display()), ""),
        "",
    );
    let err = String::from_utf8_lossy(&fleet::check(&none).stderr).into_owned();
    assert!(
        err.contains("did not verify against the system's CAs (no sslrootcert)")
            && err.contains("set sslrootcert in `database`"),
        "{err}"
    );
    // A name the certificate does not have: refused under verify-full.
    let name = Server::configure(
        &format!(
            "host=127.0.0.1 hostaddr=127.0.0.1 port={} dbname=otpgate user=otpgate sslmode=verify-full sslrootcert={}",
            pg.port,
            ca.display()
        )
        .replace("host=127.0.0.1 hostaddr", "host=otpgate-db.invalid hostaddr"),
        "",
    );
    let check = fleet::check(&name);
    assert!(
        !check.status.success(),
        "a wrong host name must fail verify-full"
    );
}

#[test]
fn check_says_what_is_wrong() {
    let pg = Postgres::start();
    let world = Server::configure(&pg.conninfo(), "");
    let ok = fleet::check(&world);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("will migrate it"));
    let daemon = fleet::Daemon::start(&world);
    drop(daemon);
    let ok = String::from_utf8_lossy(&fleet::check(&world).stdout).into_owned();
    assert!(ok.contains("version 3 (current)"), "{ok}");
    // An empty store cannot show the key is the fleet's: said so.
    assert!(ok.contains("key: loaded, but not checked yet"), "{ok}");
    // No password file, where the database asks for one.
    let text = std::fs::read_to_string(&world.config).unwrap();
    let no_pw: String = text
        .lines()
        .filter(|l| !l.starts_with("database_password_file"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&world.config, &no_pw).unwrap();
    let bad = fleet::check(&world);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("name it in database_password_file"),
        "{bad:?}"
    );
    std::fs::write(&world.config, text).unwrap();
    // A wrong password.
    fleet::write_root_only(&world.dir.join("db.password"), "nope\n");
    let bad = fleet::check(&world);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("password authentication failed"));
    // A key file others can read.
    fleet::write_root_only(
        &world.dir.join("db.password"),
        &format!("{}\n", fleet::PASSWORD),
    );
    std::fs::set_permissions(
        world.dir.join("secret.key"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let bad = fleet::check(&world);
    assert!(String::from_utf8_lossy(&bad.stderr).contains("chmod 600"));
    // Another host's key cannot open the store's enrollments.
    let u = TestUser::new(&world);
    fleet::write_root_only(
        &world.dir.join("secret.key"),
        &format!("{}\n", fleet::FLEET_KEY),
    );
    {
        let _d = fleet::Daemon::start(&world);
        world.enroll(&u.name, RFC_SECRET);
    }
    fleet::write_root_only(
        &world.dir.join("secret.key"),
        "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=\n",
    );
    let bad = fleet::check(&world);
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("copy the secret_key_file"),
        "{bad:?}"
    );
    // No fleet keys: otpgated refuses to start, saying what to set.
    world.set_config("");
    let bad = fleet::check(&world);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("`database` is not set"),
        "{bad:?}"
    );
}

#[test]
fn a_state_written_from_a_stale_version_is_refused_by_the_database() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let write = |version: u64, failures: &str| {
        format!(
            r#"{{"op":"write_state","user":"{}","version":{version},"state":"version = 2\nfailures = [{failures}]\n","repair":false}}"#,
            u.name
        )
    };
    let answers = fleet::ask(
        &f.a.socket(),
        0,
        &[
            &write(0, "1"),
            &write(0, "2"),
            &write(1, "3"),
            &write(1, "4"),
        ],
    );
    assert_eq!(
        answers,
        [
            r#"{"re":"written","written":true}"#,
            r#"{"re":"written","written":false}"#,
            r#"{"re":"written","written":true}"#,
            r#"{"re":"written","written":false}"#,
        ],
        "only a write from the version read wins"
    );
    let state = fleet::state_of(&f.pg, &u.name).unwrap();
    assert!(state.contains("failures = [3]"), "{state}");
}

#[test]
fn migrate_moves_files_into_the_store_once_and_no_used_code_comes_back() {
    let pg = Postgres::start();
    let w = World::new();
    let alice = TestUser::new(&w);
    let bob = TestUser::new(&w);
    let carol = TestUser::new(&w);
    // carol already has another enrollment in the store (another server;
    // made first: homes are shared here, and the fleet refuses an account
    // whose file on "this" server was not migrated).
    let other = Server::start(&pg, "");
    other
        .world
        .enroll(&carol.name, "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    drop(other);
    let codes = w.enroll_secret_with_recovery(&alice.name, Some(RFC_SECRET), 3);
    w.enroll(&bob.name, RFC_SECRET);
    w.enroll(&carol.name, RFC_SECRET);
    w.login(&alice.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    w.login(&alice.name, &codes[0], T0).assert_ok();

    Server::switch(&w, &pg.conninfo(), "");
    let _daemon = fleet::Daemon::start(&w);
    let dry = w.otpgate(&["migrate", "--dry-run"], "");
    let text = String::from_utf8_lossy(&dry.stdout);
    assert!(
        text.contains(&format!("{}: would be moved", alice.name)),
        "{text}"
    );
    assert!(text.contains("dry run: nothing was changed"), "{text}");
    assert!(
        !_daemon.logged().contains("import for user"),
        "a dry run is not logged as an import: {}",
        _daemon.logged()
    );
    assert_eq!(
        pg.psql("SELECT count(*) FROM otpgate_enrollments").trim(),
        "1",
        "a dry run changes nothing"
    );
    let out = w.otpgate(&["migrate"], "");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{}: moved into the fleet store", bob.name)),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{}: the fleet store has another enrollment",
            carol.name
        )),
        "{text}"
    );
    // migrate walks every account of this machine: judge this test's own
    // three (other tests' users may be enrolled at the same time).
    assert!(
        text.contains(&format!("{}: moved into the fleet store", alice.name)),
        "{text}"
    );
    assert_cli_error(&out, "were not moved");
    let again = w.otpgate(&["migrate"], "");
    let text = String::from_utf8_lossy(&again.stdout);
    for user in [&alice, &bob] {
        assert!(
            text.contains(&format!(
                "{}: already in the fleet store; merged this server's used codes",
                user.name
            )),
            "{text}"
        );
    }
    assert!(
        text.contains(&format!(
            "{}: the fleet store has another enrollment",
            carol.name
        )),
        "{text}"
    );
    assert!(
        !again.status.success(),
        "a conflict is still a non-zero exit"
    );
    assert_eq!(
        _daemon
            .logged()
            .matches(&format!("import for user \"{}\"", alice.name))
            .count(),
        1,
        "imported once, logged once: {}",
        _daemon.logged()
    );

    // Moved with its state: the used code and recovery code stay used.
    w.login(&alice.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("already used");
    w.login(&alice.name, &codes[0], T0 + 30)
        .assert_denied("recovery code already used");
    w.login(&alice.name, &codes[1], T0 + 30).assert_ok();
    w.login(&alice.name, &code_at(RFC_SECRET, T0 + 60), T0 + 60)
        .assert_ok();
    w.login(&bob.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    // carol logs in with the store's enrollment, not her file's.
    w.login(&carol.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("wrong code");
    // The files were left in place.
    assert!(alice.secret_file().exists());
}

#[test]
fn devices_and_recovery_codes_are_managed_in_the_store() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let token = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let out = f.a.world.add_device(&u.name, "token", token, &["--hotp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    f.b.world.login(&u.name, &hotp_at(token, 0), T0).assert_ok();
    f.a.world
        .login(&u.name, &hotp_at(token, 0), T0)
        .assert_denied("already used");
    let list = cli_ok(
        &f.b.world
            .otpgate(&["device", "list", "--user", &u.name], ""),
    );
    assert!(list.contains("token") && list.contains("default"), "{list}");
    let codes = recovery_codes_in(&cli_ok(
        &f.b.world
            .otpgate(&["recovery-codes", "--user", &u.name, "--count", "2"], ""),
    ));
    assert_eq!(codes.len(), 2);
    f.a.world.login(&u.name, &codes[0], T0).assert_ok();
    cli_ok(
        &f.a.world
            .otpgate(&["device", "remove", "token", "--user", &u.name], ""),
    );
    f.b.world
        .login(&u.name, &hotp_at(token, 1), T0)
        .assert_denied("wrong code");
    let status = cli_ok(&f.b.world.otpgate(&["status", "--user", &u.name], ""));
    assert!(status.contains("1 of 2 left"), "{status}");
}

#[test]
fn a_real_sshd_on_server_b_accepts_an_enrollment_made_on_server_a() {
    use otpgate_tests::sshd::Sshd;
    let f = Fleet::new("");
    let u = f.user();
    u.set_password("fleet-Passw0rd");
    f.a.world.enroll(&u.name, RFC_SECRET);
    let line = format!(
        "auth required {} config={}",
        otpgate_tests::sshd::module_under_test().display(),
        f.b.world.config.display()
    );
    let sshd = Sshd::start(
        &f.b.world,
        "fleet",
        &["auth requisite pam_unix.so", &line],
        "",
    );
    let code = code_at(RFC_SECRET, real_now());
    let run = sshd.ssh(
        &u.name,
        None,
        &[
            ("Password:", "fleet-Passw0rd"),
            ("Verification code:", &code),
        ],
    );
    assert!(run.logged_in, "{run:#?}\n{}", sshd.log());
    // The same code on server A's module is refused: used fleet-wide.
    f.a.world
        .login(&u.name, &code, real_now())
        .assert_denied("already used");
}

#[test]
fn socket_activation_passes_the_listening_socket_to_the_daemon() {
    let pg = Postgres::start();
    let world = Server::configure(&pg.conninfo(), "");
    let u = TestUser::new(&world);
    let sock = fleet::socket_of(&world);
    // systemd's own tool, as otpgated.socket would: it listens, and starts
    // the daemon with the socket as fd 3 on the first connection.
    let mut activator = std::process::Command::new("systemd-socket-activate")
        .arg("-l")
        .arg(&sock)
        .arg(fleet::daemon_path())
        .arg("--config")
        .arg(&world.config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (package systemd)");
    assert!(wait_until(Duration::from_secs(10), || sock.exists()));
    world.enroll(&u.name, RFC_SECRET);
    world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    let _ = activator.kill();
    let out = activator.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("listening on the socket systemd passed"),
        "{err}"
    );
}

#[test]
fn servers_in_their_own_network_namespaces_share_the_store_and_a_cut_link_fails_closed() {
    let pg = Postgres::start();
    let (na, nb) = (fleet::Netns::new(), fleet::Netns::new());
    let over = |ns: &fleet::Netns| {
        format!(
            "host={} port={} dbname=otpgate user=otpgate sslmode=disable",
            ns.host_ip, pg.port
        )
    };
    let a = Server::configure(&over(&na), "store_timeout = 2\n");
    let b = Server::configure(&over(&nb), "store_timeout = 2\n");
    let da = fleet::Daemon::start_in(&a, &na);
    let _db = fleet::Daemon::start_in(&b, &nb);
    let u = TestUser::new(&a);
    a.enroll(&u.name, RFC_SECRET);
    b.login(&u.name, &code_at(RFC_SECRET, T0), T0).assert_ok();
    a.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("already used");
    // Server A's link is cut: its pooled connection and any new one see
    // nothing come back. Denied within store_timeout; B goes on.
    na.link(false);
    let start = Instant::now();
    let cut = a.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30);
    let took = start.elapsed();
    cut.assert_code(PamCode::AuthInfoUnavail);
    assert!(cut.said(otpgate_core::auth::SERVICE_UNAVAILABLE));
    assert!(took < Duration::from_secs(2 + 2), "denied in {took:?}");
    b.login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    // The link back: A serves again without a restart.
    na.link(true);
    assert!(
        wait_until(Duration::from_secs(10), || {
            a.login(&u.name, &code_at(RFC_SECRET, T0 + 60), T0 + 60)
                .success
        }),
        "A did not recover: {}",
        da.logged()
    );
    assert!(da.logged().contains("database unavailable"));
}

#[test]
fn a_daemon_that_goes_away_mid_login_is_a_denial_never_a_sigpipe() {
    use otpgate_core::fleet::protocol::{self, Response};
    // A "daemon" that answers the first request with an enrollment and
    // then closes: the module's next request is written to a closed socket.
    let world = Server::configure("host=127.0.0.1 dbname=otpgate", "");
    let u = TestUser::new(&world);
    let listener = std::os::unix::net::UnixListener::bind(fleet::socket_of(&world)).unwrap();
    let enrollment = otpgate_core::enrollment::Enrollment::new(
        otpgate_core::otp::secret::Secret::from_base32(RFC_SECRET).unwrap(),
        otpgate_core::otp::TotpParams::DEFAULT,
        T0,
        &otpgate_os::random::OsRandom,
    )
    .unwrap()
    .to_toml()
    .unwrap();
    let fake = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        protocol::read_frame(&mut conn).unwrap();
        let answer = Response::Enrollment {
            enrollment: Some(enrollment),
            removed: false,
        };
        std::io::Write::write_all(&mut conn, &protocol::encode(&answer).unwrap()).unwrap();
    });
    // SIGPIPE at its default action, as in a host process that does not
    // ignore it: a write(2) to the closed socket would kill pamtester.
    let mut cmd = std::process::Command::new("env");
    cmd.args([
        "--default-signal=PIPE",
        "pamtester",
        "otpgate-test",
        &u.name,
        "authenticate",
    ]);
    world.pam_env(&mut cmd, T0);
    let code = format!("{}\n", code_at(RFC_SECRET, T0));
    let run = PamRun::from(run_pam_app(&mut cmd, code.as_bytes()));
    fake.join().unwrap();
    // pamtester lived to print its verdict: the module returned a denial.
    run.assert_code(PamCode::AuthInfoUnavail);
    run.assert_logged("two-factor service unavailable");
}

#[test]
fn a_yubikey_added_on_one_server_logs_in_on_another_once() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let (public, private, key) = (
        "vvccccbhhlkr",
        "5c2a8f10e3b4",
        "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    );
    f.a.world
        .add_yubikey(&u.name, "yk", (public, private), key, 1);
    let t = yubico_otps(public, private, key, 1, 0, 2);
    f.b.world.login(&u.name, &t[1], T0).assert_ok();
    f.a.world
        .login(&u.name, &t[1], T0)
        .assert_denied("replay refused");
    f.a.world
        .login(&u.name, &t[0], T0)
        .assert_denied("replay refused");
    assert!(!f.pg.dump().contains(key), "the AES key is sealed too");
}

#[test]
fn an_emailed_code_works_on_the_server_that_sent_it_once_and_sends_are_counted_fleet_wide() {
    use otpgate_tests::mail::{codes_in, fetch_from, login_with_sent_code, mailbox, mta};
    let _mta = mta();
    let f = Fleet::new("methods = [\"totp\", \"recovery\", \"email\"]\n");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    let address = format!("{}@localhost", u.name);
    let _ = std::fs::remove_file(mailbox(&u.name));
    let out = f.a.world.otpgate(
        &[
            "device",
            "add",
            "mail",
            "--user",
            &u.name,
            "--email",
            &address,
            "--no-confirm",
        ],
        "",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Added on A, sent and typed on B.
    login_with_sent_code(&f.b.world, &u.name, &fetch_from(&mailbox(&u.name), 0), T0).assert_ok();
    // The same code in a login on A (another request): refused.
    let code = codes_in(&std::fs::read_to_string(mailbox(&u.name)).unwrap())
        .pop()
        .unwrap();
    f.a.world
        .login(&u.name, &code, T0 + 1)
        .assert_denied("wrong code");
    // Two more sends from A use up the fleet's send_limit (3)...
    for n in 1..3 {
        login_with_sent_code(&f.a.world, &u.name, "echo 000000", T0 + 1 + n)
            .assert_denied("wrong code");
    }
    // ...so B sends no fourth.
    let run = f.b.world.login(&u.name, "", T0 + 5);
    assert!(run.said("Too many codes were sent: wait until"), "{run:#?}");
    assert_eq!(
        codes_in(&std::fs::read_to_string(mailbox(&u.name)).unwrap()).len(),
        3
    );
    // The address is sealed with the rest of the enrollment.
    assert!(!f.pg.dump().contains(&address));
}

#[test]
fn a_socket_answered_by_a_non_root_process_is_never_believed() {
    // A local user who got to bind `daemon_socket` (the daemon stopped, a
    // path in a directory they can write) answers every request with "not
    // enrolled": under enforce = "enrolled" that would let anyone in with
    // no code. The module asks the kernel who listens, and denies.
    let world = Server::configure("host=127.0.0.1 dbname=otpgate", "enforce = \"enrolled\"\n");
    let dir = world.dir.join("nobody");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::chown(&dir, Some(65534), Some(65534)).unwrap();
    let socket = dir.join("otpgated.sock");
    let config = std::fs::read_to_string(&world.config).unwrap();
    let config = config.replace(
        &format!("daemon_socket = \"{}\"", fleet::socket_of(&world).display()),
        &format!("daemon_socket = \"{}\"", socket.display()),
    );
    assert!(config.contains(&*socket.to_string_lossy()));
    std::fs::write(&world.config, config).unwrap();
    let fake = r#"
import json, os, socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o666); s.listen(16)
answers = {"ping": {"re": "ok"}, "load": {"re": "enrollment", "enrollment": None},
           "read_state": {"re": "state", "version": 0, "state": None},
           "write_state": {"re": "written", "written": True}}
while True:
    c, _ = s.accept()
    try:
        while True:
            h = c.recv(10, socket.MSG_WAITALL)
            if len(h) < 10: break
            n = struct.unpack(">I", h[6:10])[0]
            op = json.loads(c.recv(n, socket.MSG_WAITALL)).get("op")
            body = json.dumps(answers.get(op, {"re": "ok"})).encode()
            c.sendall(b"OTPG" + struct.pack(">HI", 1, len(body)) + body)
    except OSError:
        pass
    c.close()
"#;
    let mut child = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "/usr/bin/python3",
            "-c",
            fake,
        ])
        .arg(&socket)
        .spawn()
        .unwrap();
    struct Stop(std::process::Child);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _stop = {
        let up = wait_until(Duration::from_secs(20), || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
                || child.try_wait().ok().flatten().is_some()
        });
        assert!(
            up && child.try_wait().unwrap().is_none(),
            "the fake daemon runs"
        );
        Stop(child)
    };
    let u = TestUser::new(&world);
    let run = world.login(&u.name, "", T0);
    run.assert_code(PamCode::AuthInfoUnavail);
    run.assert_logged("runs as uid 65534, not as root");
}
