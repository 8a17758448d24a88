//! `otpgate enroll`.

use crate::term;
use clap::Args;
use otpgate_core::admin::{self, Caller, EnrollOptions, NewEnrollment};
use otpgate_core::clock::{Clock, SystemClock};
use otpgate_core::otp::Algorithm;
use otpgate_core::recovery;
use otpgate_core::secret::Secret;
use otpgate_core::store::Location;
use std::path::Path;

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
    /// Replace an existing enrollment.
    #[arg(long)]
    force: bool,
    /// Number of recovery codes to generate (0 for none).
    #[arg(long, value_name = "N", default_value_t = recovery::DEFAULT_COUNT)]
    recovery_codes: usize,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s)
        .ok_or_else(|| format!("unknown algorithm {s:?}; use SHA1, SHA256 or SHA512"))
}

fn read_secret(arg: &str) -> Result<Secret, String> {
    let text = if arg == "-" {
        term::read_line(if term::interactive() {
            "Secret (base32): "
        } else {
            ""
        })?
        .ok_or("no secret on standard input")?
    } else {
        zeroize::Zeroizing::new(arg.to_string())
    };
    Secret::from_base32(&text).map_err(|e| format!("--secret: {e}"))
}

pub fn run(config_path: Option<&Path>, args: &EnrollArgs) -> Result<(), String> {
    let caller = Caller::current()?;
    let config = admin::load_config(config_path)?;
    let account = admin::target_account(&caller, args.user.as_deref(), "enroll")?;
    if args.no_confirm && !caller.is_root() {
        return Err("--no-confirm is for administrators (root); run `otpgate enroll` without it and type a code from your app".into());
    }
    let location = Location::of(&config, &account).map_err(|e| e.to_string())?;
    admin::check_replace(&location, args.force, &account.name)?;
    let secret = args.secret.as_deref().map(read_secret).transpose()?;
    let now = SystemClock
        .now()
        .ok_or("the system clock is set before 1970")?;
    let opts = EnrollOptions {
        algorithm: args.algorithm,
        digits: args.digits,
        period: args.period,
        recovery_codes: args.recovery_codes,
    };
    let new = NewEnrollment::prepare(&config, secret, &opts, now)?;

    if !args.no_confirm {
        println!(
            "Secret for {}: {}",
            account.name,
            new.secret().to_base32().as_str()
        );
        let mut confirmed = false;
        for attempt in 1..=3 {
            let Some(code) = term::read_line("Code from your app: ")? else {
                break;
            };
            let now = SystemClock
                .now()
                .ok_or("the system clock is set before 1970")?;
            if new.confirms(&code, now, config.window) {
                confirmed = true;
                break;
            }
            eprintln!(
                "That code is not valid ({attempt} of 3). Check the app's clock and the account you added."
            );
        }
        if !confirmed {
            return Err("not enrolled: no valid code was entered; nothing was written. Run `otpgate enroll` again".into());
        }
    }

    location.save(&new.enrollment).map_err(|e| e.to_string())?;
    println!("Enrolled {} ({}).", account.name, location.path.display());
    if !new.recovery_codes.is_empty() {
        println!(
            "Recovery codes (each works once; store them somewhere safe, they are not shown again):"
        );
        for code in &new.recovery_codes {
            println!("  {}", code.display().as_str());
        }
    }
    Ok(())
}
