//! Issue 14: a real OpenVPN server and client from Debian on loopback, the
//! server's openvpn-plugin-auth-pam running the shipped `config/pam.d/openvpn`
//! stack (split mode, pam_unix as the password step). The client can send
//! only one password (auth-user-pass): password and code together.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use otpgate_tests::openvpn::OpenVpnServer;
use otpgate_tests::*;

const PASSWORD: &str = "Vpn-Passw0rd";

#[test]
fn openvpn_clients_send_password_and_code_in_one_password() {
    let w = World::new();
    let u = w.enrolled_user();
    u.set_password(PASSWORD);
    let fresh = TestUser::new(&w);
    fresh.set_password(PASSWORD);
    w.set_config("enforce = \"enrolled\"\n");
    let lines = w.shipped_stack("openvpn");
    let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
    let server = OpenVpnServer::start(&w, &refs);
    let state = || std::fs::read(w.state_file(&u)).ok();

    // A wrong password with the right code: refused, nothing looked at.
    let before = state();
    let code = code_at(RFC_SECRET, real_now());
    assert!(!server.connect(&u.name, &format!("wrong{code}")));
    assert_eq!(state(), before, "no state written: {}", server.log());
    // The password alone: refused after the password step.
    assert!(!server.connect(&u.name, PASSWORD));
    // Password and code: connected.
    let code = code_at(RFC_SECRET, real_now());
    assert!(
        server.connect(&u.name, &format!("{PASSWORD}{code}")),
        "{}",
        server.log()
    );
    assert!(server.log().contains("result=accepted method=code"));
    // The same code again: a replay, refused.
    assert!(!server.connect(&u.name, &format!("{PASSWORD}{code}")));
    // Not enrolled under enforce = "enrolled": the password alone.
    assert!(server.connect(&fresh.name, PASSWORD), "{}", server.log());
}
