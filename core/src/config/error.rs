//! Why a config could not be used.

use crate::sys::fs::FsError;
use crate::sys::paths::PathError;

/// A config that could not be used: where it came from (a file, the
/// module arguments, the built-in defaults) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub source: String,
    pub problem: ConfigProblem,
}

/// What is wrong with a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigProblem {
    /// The file is missing, unsafe or unreadable.
    Read(FsError),
    /// Not TOML, an unknown key, or a value of the wrong type.
    Syntax(String),
    /// A key whose value is out of range or of the wrong form.
    Value { key: &'static str, why: String },
    /// `max_failures` without a window or lockout length.
    LockoutNeedsWindow,
    /// A module argument that is no option.
    UnknownArgument(String),
    /// `forward_pass` and `forwarded_code` on one line.
    TwoModes,
    /// `config=PATH` that is not a plain absolute path.
    ConfigPath { path: String, error: PathError },
    /// A group the policy names does not exist or cannot be looked up.
    Groups(crate::policy::GroupError),
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Read(e) => e.fmt(f),
            Self::Syntax(msg) => f.write_str(msg),
            Self::Value { key, why } => write!(f, "key `{key}`: {why}"),
            Self::LockoutNeedsWindow => f.write_str(
                "keys `failure_window` and `lockout_seconds` must be at least 1 when `max_failures` is set",
            ),
            Self::UnknownArgument(arg) => write!(
                f,
                "unknown argument `{arg}`; use config=PATH, debug, nullok, forward_pass, forwarded_code or KEY=VALUE for a config key"
            ),
            Self::TwoModes => f.write_str(
                "`forward_pass` and `forwarded_code` belong on two otpgate lines: the first before the password module, the second after it",
            ),
            Self::ConfigPath { path, error } => write!(f, "config={path}: {error}"),
            Self::Groups(e) => e.fmt(f),
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.problem)
    }
}

impl std::error::Error for ConfigError {}

impl ConfigError {
    pub fn new(source: &str, problem: ConfigProblem) -> Self {
        Self {
            source: source.to_string(),
            problem,
        }
    }
}

pub(super) fn err(source: &str, problem: ConfigProblem) -> ConfigError {
    ConfigError::new(source, problem)
}

pub(super) fn value(source: &str, key: &'static str, why: impl Into<String>) -> ConfigError {
    err(
        source,
        ConfigProblem::Value {
            key,
            why: why.into(),
        },
    )
}
