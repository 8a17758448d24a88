//! Fleet mode at scale: a bounded pool per otpgated, a real PgBouncer in
//! transaction pooling mode between the daemons and PostgreSQL, and a
//! flood of logins waiting at the prompt. Every login is decided; none is
//! refused for want of a connection; the database sees at most what the
//! pool (or the pooler) allows.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::fleet::{Fleet, PgBouncer, Postgres, Server};
use otpgate_tests::*;
use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

/// `n` users of `world`'s machine, each enrolled with the RFC key.
fn enrolled_users(world: &World, n: usize) -> Vec<TestUser> {
    (0..n)
        .map(|_| {
            let u = TestUser::new(world);
            world.enroll(&u.name, RFC_SECRET);
            u
        })
        .collect()
}

/// Samples the otpgate role's connections to `pg` while `work` runs;
/// returns work's result and the most seen at once.
fn with_connection_peak<T>(pg: &Postgres, work: impl FnOnce() -> T) -> (T, usize) {
    let done = AtomicBool::new(false);
    let peak = AtomicUsize::new(0);
    let result = std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(pg.otpgate_connections(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let r = work();
        done.store(true, Ordering::SeqCst);
        r
    });
    (result, peak.load(Ordering::SeqCst))
}

/// 64 logins of 64 users at once (threads released together, each with
/// its own PAM handle), half on server A, half on server B; how many
/// were accepted.
fn sixty_four_logins(f: &Fleet, users: &[TestUser]) -> usize {
    let names: Vec<&str> = users.iter().map(|u| u.name.as_str()).collect();
    let (ok, failed) = f.a.world.thread_race_on(
        "otpgate-test,on-b",
        &names.join(","),
        &code_at(RFC_SECRET, T0),
        64,
        T0,
    );
    assert_eq!(ok + failed, 64);
    ok
}

#[test]
fn a_bounded_pool_decides_every_login_on_a_small_database() {
    // As measured before the pool: max_connections = 20 refused 47 of 64.
    // (Set before the daemons start: its restart is not what is tested.)
    let pg = Postgres::start();
    pg.set_max_connections(20);
    let extra = "store_timeout = 20\ndatabase_pool_size = 4\ndatabase_idle_timeout = 2\n";
    let (a, b) = (Server::start(&pg, extra), Server::start(&pg, extra));
    let f = Fleet::from_servers(pg, a, b);
    let users = enrolled_users(&f.a.world, 64);
    let (ok, peak) = with_connection_peak(&f.pg, || sixty_four_logins(&f, &users));
    assert_eq!(ok, 64, "every login decided and accepted");
    assert!(peak <= 8, "two daemons × database_pool_size 4, seen {peak}");
    for d in [f.a.daemon(), f.b.daemon()] {
        assert!(!d.logged().contains("unavailable"), "{}", d.logged());
    }
    // At rest, after database_idle_timeout, no connection is held.
    assert!(
        wait_until(Duration::from_secs(20), || f.pg.otpgate_connections() == 0),
        "idle connections closed: {} left",
        f.pg.otpgate_connections()
    );
}

#[test]
fn through_pgbouncer_in_transaction_mode_every_login_works_and_a_code_once() {
    let pg = Postgres::start();
    // The schema first, straight to PostgreSQL (its migration takes an
    // advisory lock in one transaction; through the pooler works too).
    let bouncer = PgBouncer::start(&pg, 5);
    let extra = "store_timeout = 20\ndatabase_pool_size = 8\n";
    let a = Server::start_on(&bouncer.conninfo(), extra);
    let b = Server::start_on(&bouncer.conninfo(), extra);
    let f = Fleet::from_servers(pg, a, b);
    let users = enrolled_users(&f.a.world, 64);
    let (ok, peak) = with_connection_peak(&f.pg, || sixty_four_logins(&f, &users));
    assert_eq!(ok, 64, "no 'prepared statement does not exist'");
    assert!(
        peak <= 5,
        "PostgreSQL sees at most pgbouncer's pool: {peak}"
    );
    // One code raced over both servers: accepted exactly once.
    let u = &users[0];
    let code = code_at(RFC_SECRET, T0 + 30);
    let (won, lost) =
        f.a.world
            .thread_race_on("otpgate-test,on-b", &u.name, &code, 32, T0 + 30);
    assert_eq!((won, lost), (1, 31));
    // The login history is written and read through the pooler too: the
    // earlier login and the race's 32 decisions (1 accepted, 31 refused as
    // replays until the replays locked the account).
    let mut raced = Vec::new();
    let written = wait_until(Duration::from_secs(30), || {
        let out = cli_ok(
            &f.a.world
                .otpgate(&["audit", "--logins", "--json", "--user", &u.name], ""),
        );
        raced = serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap();
        raced.len() >= 33
    });
    assert!(written, "{raced:#?}");
    let count = |result: &str| raced.iter().filter(|r| r["result"] == result).count();
    assert_eq!(
        (count("accepted"), count("replay") + count("locked")),
        (2, 31),
        "{raced:#?}"
    );
    assert!(count("replay") >= 5, "{raced:#?}");
    for d in [f.a.daemon(), f.b.daemon()] {
        assert!(
            !d.logged().contains("does not exist") && !d.logged().contains("unavailable"),
            "{}",
            d.logged()
        );
    }
}

#[test]
fn logins_waiting_at_the_prompt_hold_nothing_and_a_real_login_is_decided() {
    let pg = Postgres::start();
    let server = Server::start(&pg, "store_timeout = 20\n");
    let w = &server.world;
    let waiting_user = w.enrolled_user();
    let sockets = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| std::fs::read_link(e.unwrap().path()).ok())
            .filter(|t| t.to_string_lossy().starts_with("socket:"))
            .count()
    };
    let daemon_pid = server.daemon().child.id();
    let before = sockets(daemon_pid);
    // 40 logins (as from `su` prompts) sit at the prompt, nobody typing:
    // expect gives each a terminal, says when all have prompted (each has
    // asked the daemon by then), and answers only when told to.
    let good = code_at(RFC_SECRET, T0);
    let script = format!(
        r#"set timeout 60
log_user 0
for {{set i 0}} {{$i < 40}} {{incr i}} {{
  spawn pamtester otpgate-test {user} authenticate
  set ids($i) $spawn_id
  expect -i $spawn_id -re {{Verification code: }} {{}} timeout {{ puts "TIMEOUT $i"; exit 3 }}
}}
puts "ALL-WAITING"
flush stdout
expect_user -re "go\n"
for {{set i 0}} {{$i < 40}} {{incr i}} {{
  if {{$i == 0}} {{ send -i $ids($i) "{good}\r" }} else {{ send -i $ids($i) "000000\r" }}
  expect -i $ids($i) eof
  set r [wait -i $ids($i)]
  puts "RESULT $i [lindex $r 3]"
}}
"#,
        user = waiting_user.name
    );
    let mut cmd = Command::new("expect");
    cmd.arg("-c").arg(&script);
    w.pam_env(&mut cmd, T0);
    let _pam = pam_lock();
    // Stopped (with its 40 pamtesters, on its terminals) if an assertion
    // below fails: never left waiting.
    struct Expect(std::process::Child);
    impl Drop for Expect {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut child = Expect(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut out = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ALL-WAITING", "{line}");
    let during = sockets(daemon_pid);
    assert!(
        during < before + 5,
        "40 waiting logins hold daemon connections: {before} sockets before, {during} now"
    );
    // Meanwhile another user's login is decided at once.
    let other = w.enrolled_user();
    let mut login = Command::new("pamtester");
    login.args(["otpgate-test", &other.name, "authenticate"]);
    w.pam_env(&mut login, T0);
    let start = std::time::Instant::now();
    let run = PamRun::from(run_with_stdin(&mut login, format!("{good}\n").as_bytes()));
    run.assert_ok();
    assert!(start.elapsed() < Duration::from_secs(10));
    // The waiting ones are decided too, each by its answer.
    std::io::Write::write_all(child.0.stdin.as_mut().unwrap(), b"go\n").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    child.0.wait().unwrap();
    assert!(rest.contains("RESULT 0 0\n"), "the right code: {rest}");
    assert_eq!(rest.matches(" 1\n").count(), 39, "the wrong ones: {rest}");
}

#[test]
fn a_failover_to_the_synchronous_standby_loses_no_accepted_code_nor_a_lockout() {
    let primary = Postgres::start();
    let standby = primary.start_standby();
    let both = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} dbname=otpgate user=otpgate sslmode=disable \
         target_session_attrs=read-write",
        primary.port, standby.port
    );
    let extra = "store_timeout = 5\nmax_failures = 5\n";
    let a = Server::start_on(&both, extra);
    let b = Server::start_on(&both, extra);
    let u = TestUser::new(&a.world);
    let v = TestUser::new(&a.world);
    let codes = a
        .world
        .enroll_secret_with_recovery(&u.name, Some(RFC_SECRET), 3);
    a.world.enroll(&v.name, RFC_SECRET);
    // Accepted before the failover, on both servers.
    let used = code_at(RFC_SECRET, T0);
    a.world.login(&u.name, &used, T0).assert_ok();
    b.world.login(&u.name, &codes[0], T0).assert_ok();
    for i in 0..5 {
        b.world
            .login(&v.name, &wrong_code(RFC_SECRET, T0), T0 + i)
            .assert_denied("wrong code");
    }
    // The failover: the standby promoted, the old primary gone.
    standby.promote();
    primary.stop_server();
    let start = std::time::Instant::now();
    // Each daemon finds the new primary by itself (the CLI's status is
    // decided, not "unavailable"), within store_timeout and a few seconds.
    for server in [&a, &b] {
        assert!(
            wait_until(Duration::from_secs(15), || {
                server
                    .world
                    .otpgate(&["status", "--user", &u.name], "")
                    .status
                    .success()
            }),
            "{}",
            server.daemon().logged()
        );
    }
    assert!(
        start.elapsed() < Duration::from_secs(5 + 10),
        "{:?}",
        start.elapsed()
    );
    // Nothing accepted before is accepted again; the lockout holds.
    a.world
        .login(&u.name, &used, T0 + 10)
        .assert_denied("already used");
    b.world
        .login(&u.name, &used, T0 + 10)
        .assert_denied("already used");
    a.world
        .login(&u.name, &codes[0], T0 + 11)
        .assert_denied("recovery code already used");
    a.world
        .login(&v.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_denied("locked");
    // And the new primary takes new decisions.
    b.world.login(&u.name, &codes[1], T0 + 12).assert_ok();
    a.world
        .login(&u.name, &codes[1], T0 + 13)
        .assert_denied("recovery code already used");
    // The login history goes on on the new primary: the decisions after
    // the failover are there, with the server and method that made them.
    let mut rows = Vec::new();
    let written = wait_until(Duration::from_secs(30), || {
        let out = cli_ok(&a.world.otpgate(
            &[
                "audit", "--logins", "--json", "--user", &u.name, "--since", "1h",
            ],
            "",
        ));
        rows = serde_json::from_str::<Vec<serde_json::Value>>(&out).unwrap();
        rows.iter()
            .any(|r| r["result"] == "accepted" && r["method"] == "recovery")
            && rows
                .iter()
                .any(|r| r["result"] == "replay" && r["method"] == "recovery")
    });
    assert!(written, "{rows:#?}");
}

/// A database restart (a minor upgrade, a config change) while the
/// daemons hold pooled connections: the next logins are decided, not
/// refused on a connection the restart broke.
#[test]
fn a_database_restart_refuses_no_login_after_it() {
    let f = Fleet::new("");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    for (k, server) in [&f.a, &f.b].into_iter().enumerate() {
        let t = T0 + 30 * k as u64;
        server
            .world
            .login(&u.name, &code_at(RFC_SECRET, t), t)
            .assert_ok();
    }
    f.pg.stop_server();
    f.pg.start_server();
    for (k, server) in [&f.a, &f.b].into_iter().enumerate() {
        let t = T0 + 60 + 30 * k as u64;
        server
            .world
            .login(&u.name, &code_at(RFC_SECRET, t), t)
            .assert_ok();
    }
}
