//! `otpgate enroll`: secret, QR code, confirmation, recovery codes.

use crate::fail;
use crate::qr::{self, QrTarget};
use crate::term;
use clap::Args;
use otpgate_core::admin::escape::for_terminal;
use otpgate_core::admin::{self, Caller, EnrollOptions, NewEnrollment};
use otpgate_core::config::Config;
use otpgate_core::otp::recovery::RecoveryCode;
use otpgate_core::otp::secret::Secret;
use otpgate_core::otp::uri;
use otpgate_core::otp::{Algorithm, TotpParams};
use otpgate_core::store::Store;
use otpgate_core::sys::account::Account;
use otpgate_core::sys::clock::Clock;
use otpgate_os::clock::SystemClock;
use otpgate_os::nss::Nss;
use std::io::IsTerminal;
use std::path::Path;
use zeroize::Zeroizing;

#[derive(Args, Debug)]
pub struct EnrollArgs {
    /// Enroll this user instead of yourself (root only).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Use this base32 secret instead of generating one; "-" reads it from
    /// standard input (preferred: arguments are visible in `ps`).
    #[arg(long, value_name = "BASE32|-")]
    secret: Option<String>,
    /// Do not ask for a code to confirm the app works (root only, for provisioning).
    #[arg(long)]
    no_confirm: bool,
    /// Code length, 6 to 8 (default from the config: 6).
    #[arg(long, value_name = "N")]
    digits: Option<u8>,
    /// Seconds per code, 10 to 300 (default from the config: 30).
    #[arg(long, value_name = "SECONDS")]
    period: Option<u64>,
    /// HMAC hash: SHA1, SHA256 or SHA512 (default from the config: SHA1).
    #[arg(long, value_name = "NAME", value_parser = parse_algorithm)]
    algorithm: Option<Algorithm>,
    /// Replace an existing enrollment (asks for a current code unless root).
    #[arg(long)]
    force: bool,
    /// Number of recovery codes to generate (0 for none; default from the config).
    #[arg(long, value_name = "N")]
    recovery_codes: Option<usize>,
    /// Where the QR code goes: terminal (default), none, png=PATH or svg=PATH.
    #[arg(long, value_name = "WHERE", value_parser = qr::parse_target, default_value = "terminal")]
    qr: QrTarget,
    /// Print the key URI, secret and recovery codes as JSON on stdout
    /// (sensitive: for provisioning tools; everything else goes to stderr).
    #[arg(long)]
    json: bool,
}

pub fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s)
        .ok_or_else(|| format!("unknown algorithm {s:?}; use SHA1, SHA256 or SHA512"))
}

pub fn read_secret(arg: &str) -> Result<Secret, String> {
    let text = if arg == "-" {
        term::read_line(if term::interactive() {
            "Secret (base32): "
        } else {
            ""
        })?
        .ok_or("no secret on standard input")?
    } else {
        Zeroizing::new(arg.to_string())
    };
    Secret::from_base32(&text).map_err(|e| format!("--secret: {e}"))
}

pub fn now() -> Result<u64, String> {
    SystemClock
        .now()
        .ok_or_else(|| "the system clock is set before 1970".to_string())
}

/// Asks the terminal for a current code (to authorise a change).
pub fn ask_current_code() -> Result<Option<Zeroizing<String>>, String> {
    term::read_line("Current code from your app: ")
}

/// Asks for a current code of the existing enrollment before a non-root
/// user may change it. Root is not asked.
pub fn require_code_or_root(
    caller: &Caller,
    config: &Config,
    store: &dyn Store,
    account: &Account,
    what: &str,
) -> fail::Result<()> {
    Ok(admin::require_code_or_root(
        caller,
        config,
        store,
        account,
        ask_current_code,
        now()?,
        what,
    )?)
}

/// Refuses to replace an enrollment without `--force`, and with it asks a
/// user (not root) for a current code of the enrollment being replaced.
pub fn authorize_replace(
    caller: &Caller,
    config: &Config,
    store: &dyn Store,
    account: &Account,
    force: bool,
) -> fail::Result<()> {
    if admin::check_replace(store, account, force)? {
        require_code_or_root(caller, config, store, account, "replacing the enrollment")?;
    }
    Ok(())
}

/// Prints recovery codes with the advice that goes with them.
pub fn print_recovery_codes(out: &mut dyn std::io::Write, codes: &[RecoveryCode]) {
    if codes.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nRecovery codes: each works once, instead of a code from your app (for a lost phone)."
    );
    let _ = writeln!(
        out,
        "Store them somewhere safe now (a password manager or on paper): they are not shown again."
    );
    for code in codes {
        let _ = writeln!(out, "    {}", code.display().as_str());
    }
}

pub fn run(config_path: Option<&Path>, args: &EnrollArgs) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    let account = admin::target_account(&Nss, &caller, args.user.as_deref(), "enroll")?;
    admin::check_no_confirm(
        &caller,
        args.no_confirm,
        "run `otpgate enroll` without it and type a code from your app",
    )?;
    let store = otpgate_os::store::open(&config);
    store.check_writable(&account)?;
    authorize_replace(&caller, &config, store.as_ref(), &account, args.force)?;
    let secret = args.secret.as_deref().map(read_secret).transpose()?;
    let opts = EnrollOptions {
        algorithm: args.algorithm,
        digits: args.digits,
        period: args.period,
        recovery_codes: args.recovery_codes.unwrap_or(config.recovery_codes),
    };
    let new = NewEnrollment::prepare(
        &config,
        secret,
        &opts,
        now()?,
        &otpgate_os::random::OsRandom,
    )?;
    let issuer = config.effective_issuer(otpgate_os::hostname());
    let key_uri = uri::totp_uri(&issuer, &account.name, new.secret(), &new.params);

    // The screen: to stdout, or to stderr when stdout carries the JSON.
    let mut screen: Box<dyn std::io::Write> = if args.json {
        Box::new(std::io::stderr())
    } else {
        Box::new(std::io::stdout())
    };
    let key = KeyView {
        issuer: &issuer,
        account: &account.name,
        secret: new.secret(),
        params: &new.params,
        uri: &key_uri,
    };
    show_key(&mut *screen, &args.qr, args.json, &key)?;

    if !args.no_confirm {
        confirm_totp(new.secret(), &new.params, config.window, "not enrolled")?;
    }

    store.save(&account, &new.enrollment)?;
    let location = store.location(&account)?;
    if args.json {
        let codes: Vec<String> = new
            .recovery_codes
            .iter()
            .map(|c| c.display().to_string())
            .collect();
        let doc = serde_json::json!({
            "user": account.name,
            "secret_file": location,
            "issuer": issuer,
            "uri": key_uri.as_str(),
            "secret": new.secret().to_base32().as_str(),
            "algorithm": new.params.algorithm().as_str(),
            "digits": new.params.digits(),
            "period": new.params.period(),
            "recovery_codes": codes,
        });
        outln!("{doc}");
    } else {
        outln!("\nEnrolled {} ({}).", account.name, for_terminal(&location));
        print_recovery_codes(&mut std::io::stdout(), &new.recovery_codes);
    }
    Ok(())
}

/// A new TOTP key as the user sees it.
pub struct KeyView<'a> {
    pub issuer: &'a str,
    pub account: &'a str,
    pub secret: &'a Secret,
    pub params: &'a TotpParams,
    pub uri: &'a str,
}

/// Shows the QR code (or writes it to a file), the account, the grouped key
/// and the URI, with a warning for settings many apps ignore.
pub fn show_key(
    screen: &mut dyn std::io::Write,
    qr_target: &QrTarget,
    json: bool,
    key: &KeyView,
) -> fail::Result<()> {
    let w = |screen: &mut dyn std::io::Write, s: &str| {
        let _ = writeln!(screen, "{s}");
    };
    let written = |p: &Path| {
        format!(
            "QR code written to {} (it holds the secret: delete it after scanning).",
            p.display()
        )
    };
    match qr_target {
        QrTarget::Terminal => {
            let matrix = qr::Matrix::encode(key.uri)?;
            let ansi =
                std::io::stdout().is_terminal() && !json && std::env::var_os("NO_COLOR").is_none();
            w(screen, "Scan this QR code with your authenticator app:\n");
            let _ = write!(screen, "{}", matrix.to_terminal(ansi));
        }
        QrTarget::Png(p) => {
            qr::write_private(p, &qr::Matrix::encode(key.uri)?.to_png(8)?)?;
            w(screen, &written(p));
        }
        QrTarget::Svg(p) => {
            qr::write_private(p, qr::Matrix::encode(key.uri)?.to_svg(8).as_bytes())?;
            w(screen, &written(p));
        }
        QrTarget::None => {}
    }
    w(
        screen,
        &format!("\nAccount: {}:{}", key.issuer, key.account),
    );
    w(
        screen,
        &format!(
            "Key (time-based, enter by hand if you cannot scan): {}",
            uri::grouped(key.secret).as_str()
        ),
    );
    w(screen, &format!("Key URI: {}", key.uri));
    if !key.params.is_default() {
        w(
            screen,
            &format!(
                "Warning: {} / {} digits / {} s is not SHA1 / 6 / 30. Google Authenticator and Microsoft Authenticator may ignore these settings and show wrong codes; Aegis and FreeOTP honour them.",
                key.params.algorithm(),
                key.params.digits(),
                key.params.period()
            ),
        );
    }
    Ok(())
}

/// Asks for a code from the app (3 tries) until one matches the new key.
pub fn confirm_totp(
    secret: &Secret,
    params: &TotpParams,
    window: u32,
    failed: &str,
) -> fail::Result<()> {
    let confirmed = term::confirm(
        |attempt, tries| format!("\nCode from your app ({attempt} of {tries}): "),
        |code| {
            Ok(
                if otpgate_core::otp::typed_code_matches(secret, params, code, now()?, window) {
                    term::Try::Accepted(())
                } else {
                    term::Try::Refused("That code is not valid. Check that the app's clock is right and that you added this account.".into())
                },
            )
        },
    )?;
    confirmed.ok_or_else(|| {
        format!("{failed}: no valid code was entered, and nothing was written. Try again").into()
    })
}
