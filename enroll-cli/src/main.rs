//! `otpgate`: enroll, inspect and administer two-factor authentication for
//! shell logins. A thin layer over `otpgate_core`: parse flags, talk to the
//! terminal, print results; every rule lives in the core crate.

mod enroll;
mod term;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "otpgate",
    version,
    about = "Two-factor authentication (TOTP codes and recovery codes) for SSH and sudo",
    after_help = "Examples:\n  otpgate enroll                      set up your phone app (QR code)\n  sudo otpgate enroll --user alice --secret - --no-confirm < secret.txt\n  otpgate status\n\nSee otpgate(1), pam_otpgate(8) and otpgate.toml(5)."
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
    /// Enroll: create a secret for your authenticator app and recovery codes.
    #[command(
        after_help = "Examples:\n  otpgate enroll\n  otpgate enroll --qr png=/tmp/qr.png\n  sudo otpgate enroll --user alice --secret - --no-confirm --json < secret.txt"
    )]
    Enroll(enroll::EnrollArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Enroll(args) => enroll::run(cli.config.as_deref(), args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("otpgate: {message}");
            ExitCode::FAILURE
        }
    }
}
