//! Module arguments: `config=PATH`, the flags `debug` and `nullok`, the
//! split-mode flags `forward_pass` and `forwarded_code`, and `key=value` for
//! any config key, as the PAM module receives them (libpam splits the line;
//! see [`super::pamfile`]).

use crate::config::{Config, ConfigError, ConfigProblem, Source};
use crate::sys::paths;
use std::path::PathBuf;

/// Module arguments, split into the config source, the line's role and overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleArgs {
    pub source: Source,
    pub mode: Mode,
    pub overrides: Vec<(String, String)>,
}

/// What one `pam_otpgate.so` line does in its stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Ask for the code (the usual line, after the password module).
    #[default]
    Prompt,
    /// Split mode, first line: ask once for password and code, hand the
    /// password on as PAM_AUTHTOK, keep the code for [`Mode::ForwardedCode`].
    ForwardPass,
    /// Split mode, second line (after the password module): verify the
    /// code the first line kept, without prompting.
    ForwardedCode,
}

impl Mode {
    /// The module argument that selects this mode, if any.
    pub fn argument(self) -> Option<&'static str> {
        match self {
            Self::Prompt => None,
            Self::ForwardPass => Some("forward_pass"),
            Self::ForwardedCode => Some("forwarded_code"),
        }
    }
}

impl ModuleArgs {
    /// `config=PATH`, the flags `debug` and `nullok`, and `key=value` for any
    /// config key. Anything else is an error (fail closed on a typo).
    pub fn parse(args: &[&str]) -> Result<Self, ConfigError> {
        let mut source = Source::Default;
        let mut mode = Mode::Prompt;
        let mut overrides = Vec::new();
        for arg in args {
            match arg.split_once('=') {
                Some(("config", path)) => {
                    paths::check_plain_absolute(std::path::Path::new(path)).map_err(|error| {
                        ConfigError::new(
                            "module arguments",
                            ConfigProblem::ConfigPath {
                                path: path.to_string(),
                                error,
                            },
                        )
                    })?;
                    source = Source::Explicit(PathBuf::from(path));
                }
                Some((key, value)) => overrides.push((key.to_string(), value.to_string())),
                None if *arg == "debug" || *arg == "nullok" => {
                    overrides.push((arg.to_string(), "true".into()));
                }
                None if *arg == "forward_pass" || *arg == "forwarded_code" => {
                    let this = if *arg == "forward_pass" {
                        Mode::ForwardPass
                    } else {
                        Mode::ForwardedCode
                    };
                    if mode != Mode::Prompt && mode != this {
                        return Err(ConfigError::new(
                            "module arguments",
                            ConfigProblem::TwoModes,
                        ));
                    }
                    mode = this;
                }
                None => {
                    return Err(ConfigError::new(
                        "module arguments",
                        ConfigProblem::UnknownArgument(arg.to_string()),
                    ));
                }
            }
        }
        Ok(Self {
            source,
            mode,
            overrides,
        })
    }

    /// The config file's settings (`base`, read from [`Self::source`])
    /// with the overrides applied, then what the text alone cannot show (the
    /// groups it names exist). The one "effective config" of a login: the
    /// module and `otpgate check-config --service` both use it.
    pub fn configure(
        &self,
        base: Config,
        directory: &dyn crate::directory::Directory,
    ) -> Result<Config, ConfigError> {
        let config = if self.overrides.is_empty() {
            base
        } else {
            base.with_overrides(&self.overrides, "module arguments")?
        };
        config.check_system(directory).map_err(|e| {
            ConfigError::new(
                &self.source.path().display().to_string(),
                ConfigProblem::Groups(e),
            )
        })?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_arguments_are_strict() {
        let a = ModuleArgs::parse(&["config=/etc/otpgate/sudo.toml", "debug", "window=0"]).unwrap();
        assert_eq!(a.source, Source::Explicit("/etc/otpgate/sudo.toml".into()));
        assert_eq!(a.overrides.len(), 2);
        assert_eq!(a.mode, Mode::Prompt);
        assert!(ModuleArgs::parse(&["nulok"]).is_err());
        let a = ModuleArgs::parse(&["forward_pass", "prompts=2"]).unwrap();
        assert_eq!((a.mode, a.overrides.len()), (Mode::ForwardPass, 1));
        let a = ModuleArgs::parse(&["forwarded_code"]).unwrap();
        assert_eq!(a.mode, Mode::ForwardedCode);
        let e = ModuleArgs::parse(&["forward_pass", "forwarded_code"]).unwrap_err();
        assert!(e.to_string().contains("two otpgate lines"), "{e}");
        assert!(ModuleArgs::parse(&["config=relative.toml"]).is_err());
    }
}
