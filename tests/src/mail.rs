//! A real MTA for the e-mail code tests: Debian's postfix, delivering to
//! local mailboxes (/var/mail/USER), started by the tests if it is not
//! running. It listens on loopback only.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// Makes sure postfix runs, local-only; once per test process.
pub fn ensure_mta() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        assert!(
            std::path::Path::new("/usr/sbin/postfix").exists(),
            "postfix is not installed (apt-get install postfix)"
        );
        let conf = Command::new("postconf")
            .args([
                "-e",
                "inet_interfaces = loopback-only",
                "mydestination = $myhostname, localhost.localdomain, localhost",
            ])
            .status()
            .expect("postconf");
        assert!(conf.success());
        let running = Command::new("postfix")
            .arg("status")
            .output()
            .expect("postfix status")
            .status
            .success();
        let st = Command::new("postfix")
            .arg(if running { "reload" } else { "start" })
            .output()
            .expect("postfix start");
        assert!(
            st.status.success(),
            "postfix start: {}",
            String::from_utf8_lossy(&st.stderr)
        );
    });
}

/// The local mailbox of `user`.
pub fn mailbox(user: &str) -> PathBuf {
    PathBuf::from("/var/mail").join(user)
}

/// The shell command printing the newest code mailed to `user` once one
/// more than `seen` arrived (for expect scripts and for the tests).
pub fn codes_in(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let rest = l
                .split_once(" is ")
                .filter(|(head, _)| head.contains("code"))?
                .1;
            let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (code.len() == 6).then_some(code)
        })
        .collect()
}

/// Waits until `user`'s mailbox holds more than `seen` codes; the newest.
pub fn wait_for_code(user: &str, seen: usize) -> Option<String> {
    let mut found = None;
    crate::wait_until(Duration::from_secs(30), || {
        let text = std::fs::read_to_string(mailbox(user)).unwrap_or_default();
        let codes = codes_in(&text);
        if codes.len() > seen {
            found = codes.last().cloned();
            true
        } else {
            false
        }
    });
    found
}

/// How many codes `user` was mailed so far.
pub fn codes_mailed(user: &str) -> usize {
    codes_in(&std::fs::read_to_string(mailbox(user)).unwrap_or_default()).len()
}
