//! YubiKey touch codes (Yubico OTP) validated offline, end to end: OTPs
//! made by an independent implementation (Debian's python3-yubiotp), the
//! real module under pamtester, the real CLI, a real sshd.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::*;

const PUBLIC: &str = "vvccccbhhlkr";
const PRIVATE: &str = "5c2a8f10e3b4";
const AES: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn touches(usage: u16, session: u8, n: usize) -> Vec<String> {
    yubico_otps(PUBLIC, PRIVATE, AES, usage, session, n)
}

/// A user with an app and a YubiKey added by root (no touch, counter 1).
fn user_with_key(w: &World) -> TestUser {
    let u = w.enrolled_user();
    w.add_yubikey(&u.name, "yubikey", (PUBLIC, PRIVATE), AES, 1);
    u
}

#[test]
fn a_touch_logs_in_once_and_older_touches_are_refused() {
    let w = World::new();
    let u = user_with_key(&w);
    let t = touches(1, 0, 3);
    // The second touch first: accepted; the first is older now.
    let run = w.login(&u.name, &t[1], T0);
    run.assert_ok();
    run.assert_logged("device=\"yubikey\"");
    let again = w.login(&u.name, &t[1], T0 + 1);
    again.assert_denied("code already used (replay refused)");
    assert!(again.said(auth_text::CODE_USED));
    w.login(&u.name, &t[0], T0 + 2)
        .assert_denied("code already used (replay refused)");
    w.login(&u.name, &t[2], T0 + 3).assert_ok();
    // Plugged in again: a higher usage counter, session from 0.
    w.login(&u.name, &touches(2, 0, 1)[0], T0 + 4).assert_ok();
    // Before the starting counter: refused.
    w.login(&u.name, &touches(0, 5, 1)[0], T0 + 5)
        .assert_denied("replay refused");
    // Typed in upper case (Caps Lock): the same touch.
    let caps = touches(3, 0, 1)[0].to_ascii_uppercase();
    w.login(&u.name, &caps, T0 + 6).assert_ok();
    // The app still works beside it.
    w.login(&u.name, &code_at(RFC_SECRET, T0 + 60), T0 + 60)
        .assert_ok();
}

#[test]
fn wrong_key_id_crc_or_private_id_are_refused_and_change_nothing_else() {
    let w = World::new();
    let u = user_with_key(&w);
    let good = touches(5, 0, 1).remove(0);
    let cases = [
        // Another key (not enrolled).
        (
            yubico_otps("vvccccdddddd", PRIVATE, AES, 5, 1, 1).remove(0),
            "no YubiKey with this public id is enrolled",
        ),
        // Right public id, another AES key: the CRC fails.
        (
            yubico_otps(PUBLIC, PRIVATE, "00112233445566778899aabbccddeeff", 6, 0, 1).remove(0),
            "bad CRC",
        ),
        // Right key, another private id inside.
        (
            yubico_otps(PUBLIC, "000000000000", AES, 6, 0, 1).remove(0),
            "private id does not match",
        ),
        // One character changed.
        (
            {
                let mut b = good.clone().into_bytes();
                b[30] = if b[30] == b'c' { b'b' } else { b'c' };
                String::from_utf8(b).unwrap()
            },
            "bad CRC",
        ),
    ];
    for (otp, why) in &cases {
        let run = w.login(&u.name, otp, T0);
        run.assert_denied(why);
        assert!(run.said(auth_text::WRONG_CODE), "{run:#?}");
        assert!(
            !run.syslog.iter().any(|l| l.contains(otp.as_str())),
            "the OTP is never logged"
        );
    }
    // Each counted as a failure; the key's memory untouched: a touch from
    // before all of them still logs in.
    w.login(&u.name, &good, T0).assert_ok();
}

#[test]
fn adding_a_key_is_confirmed_by_a_touch_which_is_then_used() {
    let w = World::new();
    let u = w.enrolled_user();
    let t = touches(7, 0, 2);
    let add_as = |public: &str, stdin: &str| {
        w.otpgate(
            &[
                "device",
                "add",
                "yk",
                "--user",
                &u.name,
                "--yubico-otp",
                "--public-id",
                public,
                "--private-id",
                PRIVATE,
                "--secret",
                "-",
            ],
            stdin,
        )
    };
    let add = |stdin: &str| add_as(PUBLIC, stdin);
    // Three bad touches: nothing written.
    let before = std::fs::read(u.secret_file()).unwrap();
    let bad = yubico_otps(PUBLIC, PRIVATE, "00112233445566778899aabbccddeeff", 7, 0, 1).remove(0);
    let out = add(&format!("{AES}\n{bad}\n{bad}\n{bad}\n"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(
        err.matches("bad CRC); check the AES key").count(),
        3,
        "{err}"
    );
    assert!(
        err.lines()
            .last()
            .unwrap()
            .starts_with("otpgate: device not added"),
        "{err}"
    );
    assert_eq!(std::fs::read(u.secret_file()).unwrap(), before);
    // A bad AES key or ids: a clear error before any touch.
    assert_cli_error(&add("not-hex\n"), "32 hexadecimal digits");
    assert_cli_error(&add_as("abc", AES), "--public-id");
    // A good touch: added, and that touch is used up.
    let out = add(&format!("{AES}\n{}\n", t[0]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    w.login(&u.name, &t[0], T0).assert_denied("replay refused");
    w.login(&u.name, &t[1], T0).assert_ok();
    let status = cli_ok(&w.otpgate(&["status", "--user", &u.name], ""));
    assert!(
        status.contains(&format!(
            "Device:          yk (YubiKey, Yubico OTP, public id {PUBLIC})"
        )),
        "{status}"
    );
    // The AES key is stored like any secret, never the hex from stdin in clear.
    let file = std::fs::read_to_string(u.secret_file()).unwrap();
    assert!(
        file.contains("type = \"yubico-otp\"") && !file.contains(AES),
        "{file}"
    );
}

#[test]
fn methods_leave_the_key_out_and_status_says_so() {
    let w = World::new();
    let u = user_with_key(&w);
    let t = touches(9, 0, 2);
    // Per service: sudo-like line without YubiKey OTPs.
    w.set_stack(
        "no-yubikey",
        &[
            "auth required pam_permit.so",
            &w.module_line("methods=totp,recovery"),
        ],
    );
    let run = w.pam("no-yubikey", &u.name, &[&t[0]], T0, None);
    run.assert_denied("YubiKey OTPs are not allowed here");
    w.login(&u.name, &t[0], T0).assert_ok();
    // In the config: status and device list show it disabled.
    w.set_config("methods = [\"totp\", \"recovery\"]\n");
    w.login(&u.name, &t[1], T0)
        .assert_denied("not allowed here");
    let status = cli_ok(&w.otpgate(&["status", "--user", &u.name], ""));
    assert!(status.contains("disabled by policy (methods)"), "{status}");
    let list = cli_ok(&w.otpgate(&["device", "list", "--user", &u.name], ""));
    assert!(list.contains("disabled by policy"), "{list}");
    // Nothing allowed for this user at all: a clear refusal.
    w.set_config("methods = [\"hotp\"]\n");
    let none = w.login(&u.name, &code_at(RFC_SECRET, T0), T0);
    none.assert_denied("no device or recovery code of this user is allowed");
    assert!(none.said(auth_text::NO_METHOD));
    // A typo in methods is a config error that denies everyone.
    w.set_config("methods = [\"totp\", \"yubikey\"]\n");
    w.login(&u.name, &code_at(RFC_SECRET, T0), T0)
        .assert_denied("\\\"yubikey\\\" is not a method");
}

#[test]
fn a_real_sshd_login_with_a_touch() {
    use otpgate_tests::sshd::{Sshd, module_under_test};
    let w = World::new();
    let u = user_with_key(&w);
    let line = format!(
        "auth required {} config={}",
        module_under_test().display(),
        w.config.display()
    );
    let sshd = Sshd::start(&w, "yubikey", &["auth required pam_permit.so", &line], "");
    let t = touches(11, 0, 1);
    let run = sshd.ssh(&u.name, None, &[("Verification code:", &t[0])]);
    assert!(run.logged_in, "{run:#?}\n{}", sshd.log());
    let again = sshd.ssh(&u.name, None, &[("Verification code:", &t[0])]);
    assert!(!again.logged_in, "{again:#?}");
}

mod auth_text {
    pub use otpgate_tests::otpgate_core::auth::{CODE_USED, NO_METHOD, WRONG_CODE};
}
