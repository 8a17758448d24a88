//! `otpgate`: enroll, inspect and administer two-factor authentication for
//! shell logins. A thin layer over `otpgate_core`: parse flags, talk to the
//! terminal, print results; every rule lives in the core crate.

#![forbid(unsafe_code)]

/// `println!` that ignores a closed stdout (`otpgate audit | head`) instead
/// of panicking with a backtrace.
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

mod commands;
mod device;
mod enroll;
mod fail;
mod qr;
mod term;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "otpgate",
    version,
    about = "Two-factor authentication (TOTP codes and recovery codes) for SSH and sudo",
    after_help = "Examples:\n  otpgate enroll                      set up your phone app (QR code)\n  otpgate status                      what is set up, recovery codes left\n  sudo otpgate enroll --user alice --secret - --no-confirm < secret.txt\n  sudo otpgate reset --user alice     lost phone: remove alice's enrollment\n  sudo otpgate audit                  who is enrolled\n\nExit status: 0 done, 1 it could not be done, 2 invalid use (a flag, a value, a user name), 3 not permitted (not root, or no valid current code).\n\nSee otpgate(1), pam_otpgate(8) and otpgate.toml(5)."
)]
struct Cli {
    /// Configuration file to use instead of /etc/otpgate/config.toml.
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Set up two-factor authentication: secret, QR code, confirmation, recovery codes.
    #[command(
        after_help = "Examples:\n  otpgate enroll\n  otpgate enroll --qr png=/tmp/qr.png\n  otpgate enroll --force                 replace your enrollment (asks a current code)\n  sudo otpgate enroll --user alice --secret - --no-confirm --json < secret.txt"
    )]
    Enroll(enroll::EnrollArgs),
    /// Show enrollment, devices, recovery codes left and last use.
    #[command(
        after_help = "Examples:\n  otpgate status\n  sudo otpgate status --user alice --json"
    )]
    Status {
        /// Show this user (root only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make a new set of recovery codes; the old set stops working.
    #[command(
        name = "recovery-codes",
        after_help = "Examples:\n  otpgate recovery-codes                 asks a current code from your app\n  sudo otpgate recovery-codes --user alice --count 5"
    )]
    RecoveryCodes {
        /// Act for this user (root only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// How many codes (default: the config's recovery_codes, 10).
        #[arg(long, value_name = "N")]
        count: Option<usize>,
        /// Print the codes as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove your enrollment (asks a current code unless root).
    #[command(after_help = "Examples:\n  otpgate disable\n  sudo otpgate disable --user alice")]
    Disable {
        /// Act for this user (root only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Lost phone: remove a user's enrollment and login state; or --unlock a lockout (root).
    #[command(
        after_help = "Examples:\n  sudo otpgate reset --user alice            remove alice's enrollment (lost phone)\n  sudo otpgate reset --user alice --unlock   end a lockout, keep the enrollment"
    )]
    Reset {
        /// The user to reset.
        #[arg(long, value_name = "NAME")]
        user: String,
        /// Only clear wrong-code counters and an active lockout.
        #[arg(long)]
        unlock: bool,
    },
    /// One row per login account: enrolled, since, recovery codes, last use, problems (root); fleet mode: the login history, the servers.
    #[command(
        after_help = "Examples:\n  sudo otpgate audit\n  sudo otpgate audit --json | jq '.[] | select(.enrolled == false) | .user'\n  sudo otpgate audit --logins --since 24h\n  otpgate audit --logins              (a user: their own logins)\n  sudo otpgate audit --servers\n\n--logins and --servers need fleet mode (store = \"postgresql\")."
    )]
    Audit {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
        /// Fleet mode: who logged in where, with which method, and who was refused (newest first).
        #[arg(long, conflicts_with = "servers")]
        logins: bool,
        /// With --logins: only this user (a non-root user: only themself).
        #[arg(long, value_name = "NAME", requires = "logins")]
        user: Option<String>,
        /// With --logins: only the last DURATION (e.g. 90m, 24h, 7d).
        #[arg(long, value_name = "DURATION", requires = "logins")]
        since: Option<String>,
        /// Fleet mode: every otpgated, its version and when it last reached the store (root).
        #[arg(long)]
        servers: bool,
    },
    /// Validate a config file and print the effective values.
    #[command(
        name = "check-config",
        after_help = "Examples:\n  otpgate check-config\n  otpgate check-config --quiet /etc/otpgate/sudo.toml\n  otpgate check-config --service sshd\n\nWarnings come first, then the effective values, then one summary line.\nExit status: 0 all is well, 1 an error (the config cannot be used),\n2 warnings (it works, but not as you may think)."
    )]
    CheckConfig {
        /// The file (default: --config or /etc/otpgate/config.toml).
        path: Option<PathBuf>,
        /// Print only problems (errors and warnings); nothing when all is well.
        #[arg(long, short)]
        quiet: bool,
        /// Also apply the module arguments of this PAM service (/etc/pam.d/NAME).
        #[arg(long, value_name = "NAME")]
        service: Option<String>,
        /// Where PAM service files live.
        #[arg(long, value_name = "DIR", default_value = "/etc/pam.d")]
        pam_dir: PathBuf,
    },
    /// Migrate an existing enrollment from another tool.
    #[command(
        after_help = "Examples:\n  otpgate import google-authenticator\n  sudo otpgate import google-authenticator --user alice"
    )]
    Import {
        #[command(subcommand)]
        from: ImportFrom,
    },
    /// Fleet mode: move this server's enrollments and login state into the fleet store (root).
    #[command(
        after_help = "Examples:\n  sudo otpgate migrate --to /etc/otpgate/fleet.toml --dry-run\n  sudo otpgate migrate --to /etc/otpgate/fleet.toml\n\nThe files are read as --config says (secret_path, state_dir), while the module\nstill uses them; the fleet store is the one --to names (store = \"postgresql\",\nits otpgated running). Switch --config to the fleet only afterwards, so no login\nis ever decided without the enrollments. Without --to, --config must name the\nfleet store itself. Accounts already in the store keep their enrollment and get\nthis server's used codes merged in, so it may be run again, on every server."
    )]
    Migrate {
        /// The fleet config to move into (default: --config itself).
        #[arg(long, value_name = "CONFIG")]
        to: Option<PathBuf>,
        /// Only say what would be moved.
        #[arg(long)]
        dry_run: bool,
    },
    /// Fleet mode: after restoring the database from a backup, make this server accept it (root).
    #[command(
        name = "accept-restore",
        after_help = "Examples:\n  sudo otpgate accept-restore --user alice\n  sudo otpgate accept-restore\n\nEach otpgated remembers the newest row it has seen of every account and refuses\nan older or missing one (a backup restored, or someone writing the database\nwithout the key): those users are denied until this is run on the server that\nrefused them. Run it only after a restore you made yourself."
    )]
    AcceptRestore {
        /// Only this account (default: every account).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
    },
    /// Several authenticators per user: add, list, remove.
    #[command(subcommand)]
    Device(device::DeviceCommand),
    /// Print shell completions.
    #[command(after_help = "Example:\n  otpgate completions bash > /etc/bash_completion.d/otpgate")]
    Completions {
        /// bash, zsh or fish.
        shell: Shell,
    },
}

#[derive(Subcommand)]
enum ImportFrom {
    /// Read ~/.google_authenticator (google-authenticator-libpam): the app's entry keeps working.
    #[command(name = "google-authenticator")]
    GoogleAuthenticator {
        /// Import for this user (root only).
        #[arg(long, value_name = "NAME")]
        user: Option<String>,
        /// The file to read (default: the user's ~/.google_authenticator).
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Replace an existing otpgate enrollment.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config.as_deref();
    let result = match &cli.command {
        Command::Enroll(args) => enroll::run(config, args),
        Command::Status { user, json } => commands::status(config, user.as_deref(), *json),
        Command::RecoveryCodes { user, count, json } => {
            commands::recovery_codes(config, user.as_deref(), *count, *json)
        }
        Command::Disable { user } => commands::disable(config, user.as_deref()),
        Command::Reset { user, unlock } => commands::reset(config, user, *unlock),
        Command::Device(cmd) => device::run(config, cmd),
        Command::Audit {
            json,
            logins: true,
            user,
            since,
            ..
        } => commands::audit_logins(config, user.as_deref(), since.as_deref(), *json),
        Command::Audit {
            json,
            servers: true,
            ..
        } => commands::audit_servers(config, *json),
        Command::Audit { json, .. } => commands::audit(config, *json),
        Command::Migrate { to, dry_run } => commands::migrate(config, to.as_deref(), *dry_run),
        Command::AcceptRestore { user } => commands::accept_restore(config, user.as_deref()),
        Command::CheckConfig {
            path,
            quiet,
            service,
            pam_dir,
        } => commands::check_config(config, path.as_deref(), service.as_deref(), pam_dir, *quiet),
        Command::Import {
            from: ImportFrom::GoogleAuthenticator { user, file, force },
        } => commands::import_google(config, user.as_deref(), file.as_deref(), *force),
        Command::Completions { shell } => {
            let shell = match shell {
                Shell::Bash => clap_complete::Shell::Bash,
                Shell::Zsh => clap_complete::Shell::Zsh,
                Shell::Fish => clap_complete::Shell::Fish,
            };
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "otpgate", &mut buf);
            out!("{}", String::from_utf8_lossy(&buf));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(fail) => {
            // One line, and nothing from a file or account acts on the terminal.
            eprintln!(
                "otpgate: {}",
                otpgate_core::admin::escape::for_terminal(&fail.message)
            );
            ExitCode::from(fail.code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The packaged man page and completions are generated from the clap
    /// definition. Run with OTPGATE_REGENERATE=1 to rewrite them.
    #[test]
    fn packaged_man_page_and_completions_are_current() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../packaging");
        let mut files: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
        // One page per command and subcommand, as clap_mangen::generate_to
        // would write them (otpgate.1, otpgate-enroll.1, otpgate-device-add.1…).
        fn pages(
            cmd: clap::Command,
            dir: &std::path::Path,
            out: &mut Vec<(std::path::PathBuf, Vec<u8>)>,
        ) {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()).cloned() {
                pages(sub, dir, out);
            }
            let man = clap_mangen::Man::new(cmd).date("2026-11-22");
            let mut buf = Vec::new();
            man.render(&mut buf).unwrap();
            out.push((dir.join(man.get_filename()), buf));
        }
        let mut cmd = Cli::command().disable_help_subcommand(true);
        cmd.build();
        pages(cmd, &root.join("man"), &mut files);
        for (shell, name) in [
            (clap_complete::Shell::Bash, "otpgate.bash"),
            (clap_complete::Shell::Zsh, "_otpgate"),
            (clap_complete::Shell::Fish, "otpgate.fish"),
        ] {
            let mut buf = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "otpgate", &mut buf);
            files.push((root.join("completions").join(name), buf));
        }
        for (path, want) in files {
            if std::env::var_os("OTPGATE_REGENERATE").is_some() {
                std::fs::write(&path, &want).unwrap();
            }
            let have = std::fs::read(&path).unwrap_or_default();
            assert!(
                have == want,
                "{} is stale: run OTPGATE_REGENERATE=1 cargo test -p otpgate",
                path.display()
            );
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
