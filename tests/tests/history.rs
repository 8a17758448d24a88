//! Operating a fleet: the login history in the store, the list of
//! servers, and the Prometheus metrics — two real otpgated on a real
//! PostgreSQL, the real module under pamtester, the real CLI, and the
//! metrics read over HTTP and parsed by Debian's prometheus_client.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::fleet::{self, Fleet, Postgres, Server};
use otpgate_tests::sshd::free_port;
use otpgate_tests::*;
use std::io::Write as _;
use std::time::Duration;

/// A long store_timeout (test binaries share the machine) unless `extra`
/// sets one.
fn timeout(extra: &str) -> &'static str {
    if extra.contains("store_timeout") {
        ""
    } else {
        "store_timeout = 20\n"
    }
}

/// Two servers named srv-a and srv-b (A with metrics on `port`).
fn named_fleet(port: u16, extra: &str) -> Fleet {
    let pg = Postgres::start();
    let a = Server::start(
        &pg,
        &format!(
            "{}server_name = \"srv-a\"\nmetrics_listen = \"127.0.0.1:{port}\"\n{extra}",
            timeout(extra)
        ),
    );
    let b = Server::start(
        &pg,
        &format!("{}server_name = \"srv-b\"\n{extra}", timeout(extra)),
    );
    Fleet::from_servers(pg, a, b)
}

/// [`named_fleet`] with A's metrics port and a user enrolled there.
fn enrolled_fleet(extra: &str) -> (u16, Fleet, TestUser) {
    let port = free_port();
    let f = named_fleet(port, extra);
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    (port, f, u)
}

/// `audit --logins --json` of `args` on `world`, as root.
fn history(world: &World, args: &[&str]) -> Vec<serde_json::Value> {
    let mut all = vec!["audit", "--logins", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cli_ok(&world.otpgate(&all, ""))).unwrap()
}

/// Waits until `user` has `n` rows in the history (the module reports a
/// decision without waiting; the daemon writes it a moment later).
fn wait_for_rows(world: &World, user: &str, n: usize) -> Vec<serde_json::Value> {
    let mut rows = Vec::new();
    let found = wait_until(Duration::from_secs(20), || {
        rows = history(world, &["--user", user]);
        rows.len() >= n
    });
    assert!(found, "{n} rows for {user} expected, got {rows:#?}");
    rows
}

/// The metrics of the daemon on `port`, parsed by prometheus_client:
/// one line per sample, `NAME{labels as JSON} VALUE`.
fn scrape(port: u16) -> String {
    let script = format!(
        "import json, urllib.request\n\
         from prometheus_client.parser import text_string_to_metric_families\n\
         text = urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=10).read().decode()\n\
         for family in text_string_to_metric_families(text):\n\
         \x20   for s in family.samples:\n\
         \x20       print(s.name, json.dumps(s.labels, sort_keys=True), s.value)\n"
    );
    let out = run_ok(
        std::process::Command::new("/usr/bin/python3").args(["-c", &script]),
        "reading and parsing the metrics",
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The value of one sample in [`scrape`]'s output.
fn sample(scraped: &str, name: &str, labels: &str) -> f64 {
    scraped
        .lines()
        .find_map(|l| {
            l.strip_prefix(&format!("{name} {labels} "))
                .map(|v| v.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} {labels} in\n{scraped}"))
}

/// `otpgate_requests_refused_total{reason}` in [`scrape`]'s output.
fn refused(scraped: &str, reason: &str) -> f64 {
    sample(
        scraped,
        "otpgate_requests_refused_total",
        &format!(r#"{{"reason": "{reason}"}}"#),
    )
}

/// `otpgate_logins_total{result, method}` in [`scrape`]'s output.
fn logins(scraped: &str, result: &str, method: &str) -> f64 {
    sample(
        scraped,
        "otpgate_logins_total",
        &format!(r#"{{"method": "{method}", "result": "{result}"}}"#),
    )
}

#[test]
fn logins_on_two_servers_are_in_the_history_the_servers_listed_and_the_metrics_count_them() {
    let (port, mut f, u) = enrolled_fleet("");
    let code = code_at(RFC_SECRET, T0);
    f.a.world.login(&u.name, &code, T0).assert_ok();
    f.b.world
        .login(&u.name, "000000", T0)
        .assert_denied("wrong code");
    f.b.world
        .login(&u.name, &code, T0)
        .assert_denied("code already used");

    // Newest first, each with the server that decided and the method.
    let rows = wait_for_rows(&f.a.world, &u.name, 3);
    let seen: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["server"].as_str().unwrap().to_string(),
                r["result"].as_str().unwrap().to_string(),
                r["method"].as_str().unwrap_or("-").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String, String)> = [
        ("srv-b", "replay", "totp"),
        ("srv-b", "wrong_code", "-"),
        ("srv-a", "accepted", "totp"),
    ]
    .iter()
    .map(|(s, r, m)| (s.to_string(), r.to_string(), m.to_string()))
    .collect();
    assert_eq!(seen, expected, "{rows:#?}");
    assert!(rows.iter().all(|r| r["service"] == "otpgate-test"));
    // Never a code in the store.
    assert!(!f.pg.dump().contains(&code));
    // The table says the same in words, on the other server too.
    let table = cli_ok(
        &f.b.world
            .otpgate(&["audit", "--logins", "--since", "1h"], ""),
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains(&u.name) && l.contains("srv-a") && l.contains("accepted")),
        "{table}"
    );

    // Server A's metrics count A's decisions (B's are B's).
    let scraped = scrape(port);
    assert_eq!(logins(&scraped, "accepted", "totp"), 1.0, "{scraped}");
    assert_eq!(logins(&scraped, "wrong_code", "none"), 0.0);
    assert_eq!(sample(&scraped, "otpgate_login_seconds_count", "{}"), 1.0);
    assert_eq!(sample(&scraped, "otpgate_store_up", "{}"), 1.0);
    assert_eq!(refused(&scraped, "unavailable"), 0.0);
    assert!(sample(&scraped, "otpgate_pool_connections", r#"{"state": "idle"}"#) >= 1.0);

    // Both servers are listed, up; B stopped shows as stopped.
    let servers = |world: &World| -> Vec<serde_json::Value> {
        serde_json::from_str(&cli_ok(
            &world.otpgate(&["audit", "--servers", "--json"], ""),
        ))
        .unwrap()
    };
    let listed = servers(&f.a.world);
    let status = |list: &[serde_json::Value], name: &str| {
        list.iter()
            .find(|s| s["name"] == name)
            .map(|s| s["status"].as_str().unwrap().to_string())
    };
    assert_eq!(
        status(&listed, "srv-a").as_deref(),
        Some("up"),
        "{listed:#?}"
    );
    assert_eq!(status(&listed, "srv-b").as_deref(), Some("up"));
    assert!(
        listed
            .iter()
            .all(|s| s["version"] == env!("CARGO_PKG_VERSION"))
    );
    drop(f.b.daemon.take()); // SIGTERM
    let listed = servers(&f.a.world);
    assert_eq!(
        status(&listed, "srv-b").as_deref(),
        Some("stopped"),
        "{listed:#?}"
    );
    let table = cli_ok(&f.a.world.otpgate(&["audit", "--servers"], ""));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("srv-b") && l.contains("stopped")),
        "{table}"
    );
    assert!(table.contains("1 stopped or not seen"), "{table}");
}

#[test]
fn a_user_reads_only_their_own_history_and_root_everyones() {
    let f = named_fleet(free_port(), "");
    let u = f.user();
    let v = f.user();
    for who in [&u, &v] {
        f.a.world.enroll(&who.name, RFC_SECRET);
        f.a.world
            .login(&who.name, &code_at(RFC_SECRET, T0), T0)
            .assert_ok();
    }
    wait_for_rows(&f.a.world, &u.name, 1);
    wait_for_rows(&f.a.world, &v.name, 1);
    let own =
        f.a.world
            .otpgate_as(&u, &["audit", "--logins", "--json"], "");
    let own: Vec<serde_json::Value> = serde_json::from_str(&cli_ok(&own)).unwrap();
    assert_eq!(own.len(), 1, "{own:#?}");
    assert_eq!(own[0]["user"], u.name.as_str());
    let other =
        f.a.world
            .otpgate_as(&u, &["audit", "--logins", "--user", &v.name], "");
    let said = String::from_utf8_lossy(&other.stderr);
    assert!(!other.status.success(), "{said}");
    assert!(
        said.contains(&v.name) && !said.contains("accepted"),
        "{said}"
    );
    // The daemon itself refuses, whatever a client sends: another's
    // history, everyone's, a made-up decision.
    let asked = fleet::ask(
        &f.a.socket(),
        u.uid,
        &[
            &format!(r#"{{"op":"history","user":"{}","since":0}}"#, v.name),
            r#"{"op":"history","user":null,"since":0}"#,
            &format!(
                r#"{{"op":"record","micros":1,"events":[{{"user":"{}","service":"sshd","rhost":null,"method":"totp","result":"accepted"}}]}}"#,
                u.name
            ),
        ],
    );
    assert_eq!(asked.len(), 3, "{asked:?}");
    assert!(
        asked[0].contains("denied") && asked[0].contains("own account"),
        "{asked:?}"
    );
    assert!(
        asked[1].contains("denied") && asked[1].contains("--user"),
        "{asked:?}"
    );
    assert!(
        asked[2].contains("denied") && asked[2].contains("login decision"),
        "{asked:?}"
    );
    // The list of servers is root's.
    let servers = f.a.world.otpgate_as(&u, &["audit", "--servers"], "");
    assert!(!servers.status.success());
    assert!(String::from_utf8_lossy(&servers.stderr).contains("root"));
    // Root sees both.
    let all = history(&f.a.world, &[]);
    for who in [&u, &v] {
        assert!(
            all.iter().any(|r| r["user"] == who.name.as_str()),
            "{all:#?}"
        );
    }
}

#[test]
fn rows_older_than_login_history_days_are_pruned() {
    let f = named_fleet(free_port(), "login_history_days = 1");
    let u = f.user();
    f.a.world.enroll(&u.name, RFC_SECRET);
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_ok();
    wait_for_rows(&f.a.world, &u.name, 1);
    f.pg.psql(&format!(
        "INSERT INTO otpgate_logins (at, user_name, server, service, result) VALUES \
         (now() - interval '2 days', '{0}', 'old', 'sshd', 'accepted'), \
         (now() - interval '20 hours', '{0}', 'recent', 'sshd', 'accepted')",
        u.name
    ));
    assert_eq!(history(&f.a.world, &["--user", &u.name]).len(), 3);
    // Pruning runs when a daemon starts (and hourly).
    let mut b = f.b;
    drop(b.daemon.take());
    b.daemon = Some(fleet::Daemon::start(&b.world));
    let mut rows = Vec::new();
    let pruned = wait_until(Duration::from_secs(20), || {
        rows = history(&f.a.world, &["--user", &u.name]);
        rows.len() == 2
    });
    assert!(pruned, "{rows:#?}");
    assert!(rows.iter().all(|r| r["server"] != "old"), "{rows:#?}");
    // --since narrows what is shown.
    assert_eq!(
        history(&f.a.world, &["--user", &u.name, "--since", "1h"]).len(),
        1
    );
    let bad =
        f.a.world
            .otpgate(&["audit", "--logins", "--since", "soon"], "");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("e.g. 24h"));
}

#[test]
fn a_failing_history_table_or_a_stalled_scraper_never_delays_or_denies_a_login() {
    let (port, f, u) = enrolled_fleet("");
    // Every insert into the history now fails; a scraper connects and
    // says nothing, another sends half a request.
    f.pg.psql("ALTER TABLE otpgate_logins ADD CONSTRAINT refuse_all CHECK (false) NOT VALID");
    let _silent = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut half = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    half.write_all(b"GET /metr").unwrap();
    for k in 0..3 {
        let t = T0 + 30 * k;
        f.a.world
            .login(&u.name, &code_at(RFC_SECRET, t), t)
            .assert_ok();
    }
    let daemon = f.a.daemon();
    assert!(
        wait_until(Duration::from_secs(20), || daemon
            .logged()
            .contains("login history: cannot write")),
        "{}",
        daemon.logged()
    );
    assert!(history(&f.a.world, &["--user", &u.name]).is_empty());
    // Metrics still answer, and counted every login.
    assert_eq!(logins(&scrape(port), "accepted", "totp"), 3.0);
    // The table takes rows again: what waited in memory is written.
    f.pg.psql("ALTER TABLE otpgate_logins DROP CONSTRAINT refuse_all");
    let rows = wait_for_rows(&f.a.world, &u.name, 3);
    assert!(rows.iter().all(|r| r["result"] == "accepted"), "{rows:#?}");
}

#[test]
fn history_views_need_fleet_mode_and_say_so() {
    let w = World::new();
    let out = w.otpgate(&["audit", "--logins"], "");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        said.contains("fleet mode") && said.contains("auth log"),
        "{said}"
    );
    let out = w.otpgate(&["audit", "--servers"], "");
    assert!(String::from_utf8_lossy(&out.stderr).contains("fleet mode"));
}

#[test]
fn when_the_database_goes_away_the_metrics_say_so_and_the_decision_is_counted() {
    let (port, f, u) = enrolled_fleet("store_timeout = 2");
    assert_eq!(sample(&scrape(port), "otpgate_store_up", "{}"), 1.0);
    f.pg.stop_server();
    let denied = f.a.world.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    denied.assert_denied("two-factor service unavailable");
    let scraped = scrape(port);
    assert_eq!(sample(&scraped, "otpgate_store_up", "{}"), 0.0, "{scraped}");
    assert!(refused(&scraped, "unavailable") >= 1.0);
    assert_eq!(logins(&scraped, "unavailable", "none"), 1.0, "{scraped}");
    // Back: the next heartbeat or request says so.
    f.pg.start_server();
    f.a.world
        .login(&u.name, &code_at(RFC_SECRET, T0 + 30), T0 + 30)
        .assert_ok();
    assert_eq!(sample(&scrape(port), "otpgate_store_up", "{}"), 1.0);
}

/// The README's scrape config and alert rules, as written: promtool
/// checks them, and its rule tests show each alert firing on the series
/// otpgated serves (and not before).
#[test]
fn the_readme_scrape_config_and_alert_rules_work_as_written() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let after = readme
        .split("<!-- tested: tests/tests/history.rs checks these blocks with promtool -->")
        .nth(1)
        .expect("the marked blocks in README.md");
    let blocks: Vec<&str> = after
        .split("```yaml\n")
        .skip(1)
        .take(2)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    let dir = std::path::PathBuf::from(format!("/tmp/otpgate-e2e-{}", unique("prom")));
    std::fs::create_dir_all(&dir).unwrap();
    let rules = dir.join("otpgate.rules.yml");
    std::fs::write(&rules, blocks[1]).unwrap();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!("{}rule_files:\n  - otpgate.rules.yml\n", blocks[0]),
    )
    .unwrap();
    std::fs::write(
        dir.join("test.yml"),
        r#"rule_files:
  - otpgate.rules.yml
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'otpgate_store_up{instance="web1:9813", job="otpgate"}'
        values: '1 1 0 0 0 0'
      - series: 'otpgate_store_up{instance="web2:9813", job="otpgate"}'
        values: '1 1 1 1 1 1'
      - series: 'otpgate_requests_refused_total{instance="web2:9813", job="otpgate", reason="unavailable"}'
        values: '0 0 0 3 3 3'
      - series: 'otpgate_requests_refused_total{instance="web1:9813", job="otpgate", reason="denied"}'
        values: '0 5 9 9 9 9'
    alert_rule_test:
      - eval_time: 2m
        alertname: OtpgateStoreDown
        exp_alerts: []
      - eval_time: 4m
        alertname: OtpgateStoreDown
        exp_alerts:
          - exp_labels: {severity: critical, instance: "web1:9813", job: otpgate}
            exp_annotations:
              summary: "otpgated on web1:9813 cannot reach the database: its 2FA logins are denied"
      - eval_time: 2m
        alertname: OtpgateRefusingUnavailable
        exp_alerts: []
      - eval_time: 4m
        alertname: OtpgateRefusingUnavailable
        exp_alerts:
          - exp_labels: {severity: warning, instance: "web2:9813", job: otpgate, reason: unavailable}
            exp_annotations:
              summary: "otpgated on web2:9813 refused requests as unavailable in the last 5 minutes"
"#,
    )
    .unwrap();
    for args in [
        vec!["check", "config", "prometheus.yml"],
        vec!["test", "rules", "test.yml"],
    ] {
        let out = std::process::Command::new("promtool")
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_statement_the_database_refuses_is_told_apart_from_a_database_away() {
    let (port, f, u) = enrolled_fleet("");
    // The database is up but refuses every state write (as with a role
    // missing a privilege, or a full disk).
    f.pg.psql("ALTER TABLE otpgate_states ADD CONSTRAINT refuse_all CHECK (false) NOT VALID");
    let denied = f.a.world.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    // The module's log line names it; the user hears "unavailable".
    denied.assert_denied("the fleet database refused a statement");
    assert!(denied.said("two-factor service unavailable"), "{denied:#?}");
    let daemon = f.a.daemon();
    assert!(
        daemon.logged().contains("the database refused a statement")
            && daemon.logged().contains("check the role's privileges")
            && !daemon.logged().contains("database unavailable"),
        "{}",
        daemon.logged()
    );
    let scraped = scrape(port);
    assert_eq!(sample(&scraped, "otpgate_store_up", "{}"), 1.0, "{scraped}");
    assert_eq!(refused(&scraped, "database"), 1.0);
    assert_eq!(refused(&scraped, "unavailable"), 0.0);
}
