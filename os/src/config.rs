//! Reading the config file: link-free, owned by root (or the caller), not
//! writable by others.

use crate::fs::{self, FsError, Trust};
use otpgate_core::admin::{Effective, Error, ServiceCheck};
use otpgate_core::config::args::ModuleArgs;
use otpgate_core::config::{Config, ConfigError, ConfigProblem, MAX_CONFIG_SIZE, Source};
use otpgate_core::directory::Directory;
use std::path::Path;
use zeroize::Zeroizing;

/// Loads the config from `source`, checking that the file is safe to trust
/// (root-owned, not writable by others, not a link).
pub fn load(source: &Source) -> Result<Config, ConfigError> {
    let path = source.path();
    let shown = path.to_string_lossy();
    let euid = rustix::process::geteuid().as_raw();
    match read_config_file(path, Trust { owner: euid }) {
        Ok(bytes) => match std::str::from_utf8(&bytes) {
            Ok(text) => Config::parse(text, &shown),
            Err(_) => Err(ConfigError::new(
                &shown,
                ConfigProblem::Read(FsError::BadPath {
                    path: path.into(),
                    why: "is not valid UTF-8 text".into(),
                }),
            )),
        },
        Err(FsError::NotFound { .. }) if *source == Source::Default => {
            let config = Config::default();
            config.validate("built-in defaults")?;
            Ok(config)
        }
        Err(e) => Err(ConfigError::new(&shown, ConfigProblem::Read(e))),
    }
}

/// A line's module arguments made into its config: the file they name (or
/// the default), the overrides, the groups checked.
pub fn load_checked(args: &ModuleArgs, directory: &dyn Directory) -> Result<Config, ConfigError> {
    args.configure(load(&args.source)?, directory)
}

/// The config for a command (`--config PATH` or the default).
pub fn load_for_command(path: Option<&Path>) -> Result<Config, Error> {
    let source = path.map_or(Source::Default, |p| Source::Explicit(p.to_path_buf()));
    Ok(load(&source)?)
}

/// The config a login through a PAM service really runs with (see
/// [`otpgate_core::admin::effective_args`]).
pub fn effective(
    directory: &dyn Directory,
    path: Option<&Path>,
    service: Option<&ServiceCheck>,
) -> Result<Effective, Error> {
    let args = otpgate_core::admin::effective_args(path, service)?;
    let config = load_checked(&args, directory)?;
    Ok(Effective {
        config,
        source: args.source,
    })
}

fn read_config_file(path: &Path, trust: Trust) -> Result<Zeroizing<Vec<u8>>, FsError> {
    let (dir, name) = fs::split(path)?;
    fs::SafeDir::open(dir, trust)?.read_config(name, MAX_CONFIG_SIZE)
}

/// A PAM service file's text, at most [`otpgate_core::config::pamfile::MAX_PAM_FILE`]
/// bytes (for `check-config --service`).
pub fn read_pam_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut text = String::new();
    file.take(otpgate_core::config::pamfile::MAX_PAM_FILE)
        .read_to_string(&mut text)
        .map_err(|e| e.to_string())?;
    Ok(text)
}
