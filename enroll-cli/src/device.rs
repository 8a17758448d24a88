//! `otpgate device add|list|remove`: several authenticators per user.

use crate::enroll::{self, KeyView, now, read_secret, require_code_or_root};
use crate::fail;
use crate::qr::{self, QrTarget};
use crate::term;
use clap::{Args, Subcommand};
use otpgate_core::admin::escape::for_terminal;
use otpgate_core::admin::report;
use otpgate_core::admin::{self, Caller};
use otpgate_core::enrollment::devices;
use otpgate_core::enrollment::{Device, DeviceKind, Enrollment};
use otpgate_core::otp::secret::Secret;
use otpgate_core::otp::uri;
use otpgate_core::otp::{Algorithm, TotpParams};
use otpgate_core::store::Store;
use otpgate_core::sys::account::Account;
use otpgate_core::sys::clock::format_utc;
use otpgate_os::nss::Nss;
use std::path::Path;

#[derive(Subcommand)]
pub enum DeviceCommand {
    /// Add an authenticator: another phone app (TOTP), a hardware token (--hotp), a YubiKey touch (--yubico-otp).
    #[command(
        after_help = "Examples:\n  otpgate device add backup-phone\n  otpgate device add token --hotp --secret - < key.txt\n  sudo otpgate device add token1 --user alice --hotp --secret - --no-confirm --counter 0\n  ykman otp yubiotp 1 --serial-public-id --generate-private-id --generate-key   # prints the ids and the key\n  otpgate device add yubikey --yubico-otp --public-id vvccccbhhlkr --private-id 5c2a8f10e3b4 --secret - < aes-key.hex\n  sudo otpgate device add yk --user alice --yubico-otp --public-id … --private-id … --secret - --no-confirm --counter 3"
    )]
    Add(AddArgs),
    /// List the authenticators of an enrollment.
    List {
        /// Act for this user (root only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove an authenticator (asks a current code unless root).
    #[command(after_help = "Example:\n  otpgate device remove old-phone")]
    Remove {
        /// The device's name (see `otpgate device list`).
        name: String,
        /// Act for this user (root only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
}

#[derive(Args)]
pub struct AddArgs {
    /// A name for the device: 1-32 letters, digits, '.', '_' or '-'.
    name: String,
    /// Act for this user (root only).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// A counter-based (RFC 4226 HOTP) hardware token, e.g. a YubiKey OATH-HOTP slot.
    #[arg(long, conflicts_with = "yubico_otp")]
    hotp: bool,
    /// A YubiKey slot in Yubico OTP mode, validated here with the slot's AES
    /// key (32 hex digits, given with --secret -): one touch types a code.
    #[arg(long, requires_all = ["public_id", "private_id", "secret"])]
    yubico_otp: bool,
    /// Codes sent by e-mail to this address (press Enter at the prompt to get one).
    #[arg(long, value_name = "ADDRESS", conflicts_with_all = ["hotp", "yubico_otp", "sms"])]
    email: Option<String>,
    /// Codes sent by SMS to this number, in E.164 form (+4915112345678).
    #[arg(long, value_name = "+NUMBER", conflicts_with_all = ["hotp", "yubico_otp"])]
    sms: Option<String>,
    /// Yubico OTP: the key's public id, 12 modhex characters (the start of what it types).
    #[arg(long, value_name = "MODHEX", requires = "yubico_otp")]
    public_id: Option<String>,
    /// Yubico OTP: the slot's private id, 12 hex digits.
    #[arg(long, value_name = "HEX", requires = "yubico_otp")]
    private_id: Option<String>,
    /// The device's base32 secret ("-": from stdin). Required for --hotp;
    /// for a TOTP app a new one is generated when omitted. With
    /// --yubico-otp: the slot's AES key, 32 hex digits (use "-").
    #[arg(long, value_name = "BASE32|-")]
    secret: Option<String>,
    /// HOTP: the token's current counter (default 0). Yubico OTP: refuse
    /// OTPs with a usage counter below N.
    #[arg(long, value_name = "N", default_value_t = 0)]
    counter: u64,
    /// Code length, 6 to 8.
    #[arg(long, value_name = "N")]
    digits: Option<u8>,
    /// TOTP: seconds per code.
    #[arg(long, value_name = "SECONDS")]
    period: Option<u64>,
    /// HMAC hash: SHA1, SHA256 or SHA512.
    #[arg(long, value_name = "NAME", value_parser = enroll::parse_algorithm)]
    algorithm: Option<Algorithm>,
    /// Where the QR code goes (TOTP): terminal, none, png=PATH or svg=PATH.
    #[arg(long, value_name = "WHERE", value_parser = qr::parse_target, default_value = "terminal")]
    qr: QrTarget,
    /// Do not ask for a code from the new device (root only).
    #[arg(long)]
    no_confirm: bool,
}

fn enrolled(store: &dyn Store, account: &Account) -> fail::Result<Enrollment> {
    store.load(account)?.ok_or_else(|| {
        format!(
            "{} is not enrolled; run `otpgate enroll` first, then add more devices",
            account.name
        )
        .into()
    })
}

pub fn run(config_path: Option<&Path>, cmd: &DeviceCommand) -> fail::Result<()> {
    let caller = otpgate_os::caller(&Nss)?;
    let config = otpgate_os::config::load_for_command(config_path)?;
    match cmd {
        DeviceCommand::List { user, json } => {
            let account = admin::target_account(&Nss, &caller, user.as_deref(), "list devices")?;
            let store = otpgate_os::store::open(&config);
            enrolled(store.as_ref(), &account)?;
            let at = report::ReportTime::of(&config, crate::enroll::now()?);
            let mut r = report::user_report(store.as_ref(), &account, at);
            r.apply_methods(&config);
            if *json {
                outln!("{}", serde_json::to_string_pretty(&r.devices)?);
            } else {
                outln!(
                    "{:<16} {:<5} {:<7} {:<7} {:<8} ADDED",
                    "NAME",
                    "TYPE",
                    "HASH",
                    "DIGITS",
                    "PERIOD"
                );
                for d in &r.devices {
                    let period = d.period.map_or("-".to_string(), |p| format!("{p} s"));
                    outln!(
                        "{:<16} {:<5} {:<7} {:<7} {:<8} {}{}",
                        for_terminal(&d.name),
                        d.kind,
                        for_terminal(&d.algorithm),
                        d.digits,
                        period,
                        format_utc(d.created),
                        if d.enabled {
                            ""
                        } else {
                            "  (disabled by policy: methods)"
                        }
                    );
                }
            }
            Ok(())
        }
        DeviceCommand::Remove { name, user } => {
            let account = admin::target_account(&Nss, &caller, user.as_deref(), "remove devices")?;
            let store = otpgate_os::store::open(&config);
            let mut enrollment = enrolled(store.as_ref(), &account)?;
            devices::remove(&mut enrollment, name)?;
            require_code_or_root(
                &caller,
                &config,
                store.as_ref(),
                &account,
                "removing a device",
            )?;
            store.save(&account, &enrollment)?;
            outln!(
                "Removed device \"{name}\" of {}; its codes no longer work.",
                account.name
            );
            Ok(())
        }
        DeviceCommand::Add(args) => add(&caller, &config, args),
    }
}

fn add(caller: &Caller, config: &otpgate_core::config::Config, args: &AddArgs) -> fail::Result<()> {
    let account = admin::target_account(&Nss, caller, args.user.as_deref(), "add devices")?;
    admin::check_no_confirm(
        caller,
        args.no_confirm,
        "confirm with a code from the new device instead",
    )?;
    let store = otpgate_os::store::open(config);
    let mut enrollment = enrolled(store.as_ref(), &account)?;
    devices::check_new_name(&enrollment, &args.name)?;
    // Proof of an existing device before a new one is shown or accepted.
    require_code_or_root(caller, config, store.as_ref(), &account, "adding a device")?;
    let now = now()?;
    let algorithm = args.algorithm.unwrap_or(config.algorithm);
    let digits = args.digits.unwrap_or(config.digits);
    let device = if args.email.is_some() || args.sms.is_some() {
        sent_device(config, args, now)?
    } else if args.yubico_otp {
        yubikey(args, now)?
    } else if args.hotp {
        let secret = match args.secret.as_deref() {
            Some(s) => read_secret(s)?,
            None => return Err("an HOTP token comes with its secret: pass --secret - and paste the token's base32 key".into()),
        };
        TotpParams::new(algorithm, digits, 30)?;
        let mut initial = args.counter;
        if !args.no_confirm {
            initial = confirm_hotp(
                &secret,
                algorithm,
                digits,
                args.counter,
                config.hotp_lookahead,
            )?;
        }
        Device {
            name: args.name.clone(),
            secret,
            kind: DeviceKind::Hotp {
                algorithm,
                digits,
                initial,
            },
            created: now,
        }
    } else {
        let params = TotpParams::new(algorithm, digits, args.period.unwrap_or(config.period))?;
        let secret = match args.secret.as_deref() {
            Some(s) => read_secret(s)?,
            None => Secret::generate(&otpgate_os::random::OsRandom)?,
        };
        let issuer = config.effective_issuer(otpgate_os::hostname());
        let key_uri = uri::totp_uri(&issuer, &account.name, &secret, &params);
        let key = KeyView {
            issuer: &issuer,
            account: &account.name,
            secret: &secret,
            params: &params,
            uri: &key_uri,
        };
        enroll::show_key(&mut std::io::stdout(), &args.qr, false, &key)?;
        if !args.no_confirm {
            enroll::confirm_totp(&secret, &params, config.window, "device not added")?;
        }
        Device {
            name: args.name.clone(),
            secret,
            kind: DeviceKind::Totp(params),
            created: now,
        }
    };
    devices::add(&mut enrollment, device)?;
    store.save(&account, &enrollment)?;
    outln!(
        "Added device \"{}\" for {}: its codes now work at login.",
        args.name,
        account.name
    );
    Ok(())
}

/// An e-mail or SMS device, confirmed with a code sent there unless root
/// said --no-confirm.
fn sent_device(
    config: &otpgate_core::config::Config,
    args: &AddArgs,
    now: u64,
) -> fail::Result<Device> {
    use otpgate_core::otp::sent::Target;
    let kind = match (&args.email, &args.sms) {
        (Some(a), _) => DeviceKind::Email(Target::email(a).map_err(|e| format!("--email: {e}"))?),
        (_, Some(n)) => DeviceKind::Sms(Target::phone(n).map_err(|e| format!("--sms: {e}"))?),
        _ => return Err("--email or --sms is needed".to_string().into()),
    };
    if !args.no_confirm {
        let code = devices::send_confirmation(
            config,
            &otpgate_os::send::Programs,
            &otpgate_os::random::OsRandom,
            kind,
        )
        .map_err(|why| {
            format!("device not added: the confirmation code could not be sent ({why})")
        })?;
        let to = kind.target().map(|t| t.masked()).unwrap_or_default();
        let confirmed = term::confirm(
            |attempt, tries| format!("Code sent to {to} ({attempt} of {tries}): "),
            |typed| {
                Ok(
                    if otpgate_core::otp::sent::confirmation_matches(&code, typed) {
                        term::Try::Accepted(())
                    } else {
                        term::Try::Refused("That is not the code that was sent.".into())
                    },
                )
            },
        )?;
        if confirmed.is_none() {
            return Err(
                "device not added: the code sent was not typed back, and nothing was written"
                    .into(),
            );
        }
    }
    Ok(Device {
        name: args.name.clone(),
        secret: Secret::generate(&otpgate_os::random::OsRandom)?,
        kind,
        created: now,
    })
}

/// A YubiKey slot from the arguments and the AES key on stdin, confirmed
/// by a touch unless root said --no-confirm.
fn yubikey(args: &AddArgs, now: u64) -> fail::Result<Device> {
    let key = match args.secret.as_deref() {
        Some("-") => term::read_line(if term::interactive() {
            "AES key (32 hex digits): "
        } else {
            ""
        })?
        .ok_or("no AES key on standard input")?,
        Some(_) => {
            return Err(
                "pass the AES key on standard input (--secret -), not on the command line where `ps` shows it"
                    .into(),
            );
        }
        None => return Err("--yubico-otp needs the slot's AES key: --secret - and the 32 hex digits on standard input".into()),
    };
    let counter = u32::try_from(args.counter).map_err(|_| "--counter is too large".to_string())?;
    let (mut kind, secret) = devices::yubico_kind(
        args.public_id.as_deref().unwrap_or_default(),
        args.private_id.as_deref().unwrap_or_default(),
        &key,
        counter,
    )?;
    if !args.no_confirm {
        let confirmed = term::confirm(
            |attempt, tries| format!("Touch the YubiKey to type a code ({attempt} of {tries}): "),
            |otp| {
                Ok(match devices::confirm_yubico(kind, &secret, otp) {
                    Ok(k) => term::Try::Accepted(k),
                    Err(why) => term::Try::Refused(why.to_string()),
                })
            },
        )?;
        kind = confirmed
            .ok_or("device not added: no valid touch of the key, and nothing was written")?;
    }
    Ok(Device {
        name: args.name.clone(),
        secret,
        kind,
        created: now,
    })
}

/// Asks for a code from the token and returns the counter after it.
fn confirm_hotp(
    secret: &Secret,
    algorithm: Algorithm,
    digits: u8,
    start: u64,
    lookahead: u32,
) -> fail::Result<u64> {
    let confirmed = term::confirm(
        |attempt, tries| format!("Code from the token (press its button) ({attempt} of {tries}): "),
        |code| {
            Ok(
                match devices::hotp_counter(secret, algorithm, digits, start, lookahead, code) {
                    Some(c) => term::Try::Accepted(c + 1),
                    None => term::Try::Refused(format!(
                        "That code does not match the secret within {lookahead} presses of counter {start}; check the secret and --counter."
                    )),
                },
            )
        },
    )?;
    confirmed.ok_or_else(|| {
        "device not added: no matching code from the token, and nothing was written".into()
    })
}
