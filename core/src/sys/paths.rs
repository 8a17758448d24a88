//! Path templates (`%u`, `%h`) and the file names otpgate derives from user names.

use std::path::{Component, Path, PathBuf};

/// Why a path template, a path or a user name cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    TemplateNotAbsolute(String),
    UnknownEscape { template: String, escape: char },
    LoneEscape(String),
    UserHasSlash,
    HomeNotUtf8,
    NotAbsolute(PathBuf),
    DotComponent(PathBuf),
    NoFileName(PathBuf),
    BadUserName(UserNameError),
}

/// Why a user name is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserNameError {
    Empty,
    TooLong,
    NotAnAccountName,
    SlashOrControl,
}

impl std::fmt::Display for UserNameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Empty => "the user name is empty",
            Self::TooLong => "the user name is longer than 256 bytes",
            Self::NotAnAccountName => "the user name is not a valid account name",
            Self::SlashOrControl => "the user name contains '/' or a control character",
        })
    }
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::TemplateNotAbsolute(t) => write!(
                f,
                "\"{t}\" must be an absolute path or start with %h (the user's home)"
            ),
            Self::UnknownEscape { template, escape } => write!(
                f,
                "unknown escape %{escape} in \"{template}\"; use %u (user), %h (home) or %%"
            ),
            Self::LoneEscape(t) => write!(f, "\"{t}\" ends with a lone %"),
            Self::UserHasSlash => f.write_str("the user name contains '/'"),
            Self::HomeNotUtf8 => f.write_str("the home directory is not valid UTF-8"),
            Self::NotAbsolute(p) => write!(f, "{} is not an absolute path", p.display()),
            Self::DotComponent(p) => {
                write!(f, "{} contains a \".\" or \"..\" component", p.display())
            }
            Self::NoFileName(p) => write!(f, "{} does not name a file", p.display()),
            Self::BadUserName(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for PathError {}
impl std::error::Error for UserNameError {}

/// Checks a template's syntax without a user: only `%u`, `%h` and `%%`, and
/// the result must be absolute (start with `/` or `%h`).
pub fn check_template(template: &str) -> Result<(), PathError> {
    if !(template.starts_with('/') || template.starts_with("%h")) {
        return Err(PathError::TemplateNotAbsolute(template.to_string()));
    }
    expand(template, "user", Path::new("/home/user")).map(|_| ())
}

/// Expands `%u` (user name), `%h` (home directory) and `%%` in a path template.
///
/// The result must be absolute and must not contain `.` or `..` components,
/// so that a template (or a strange home directory) cannot walk out of where
/// the administrator meant.
pub fn expand(template: &str, user: &str, home: &Path) -> Result<PathBuf, PathError> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut chars = template.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') if user.contains('/') => return Err(PathError::UserHasSlash),
            Some('u') => out.push_str(user),
            Some('h') => match home.to_str() {
                Some(h) => out.push_str(h),
                None => return Err(PathError::HomeNotUtf8),
            },
            Some('%') => out.push('%'),
            Some(escape) => {
                return Err(PathError::UnknownEscape {
                    template: template.to_string(),
                    escape,
                });
            }
            None => return Err(PathError::LoneEscape(template.to_string())),
        }
    }
    let path = PathBuf::from(out);
    check_plain_absolute(&path)?;
    Ok(path)
}

/// An absolute path made only of normal components.
pub fn check_plain_absolute(path: &Path) -> Result<(), PathError> {
    if !path.is_absolute() {
        return Err(PathError::NotAbsolute(path.to_path_buf()));
    }
    for component in path.components() {
        match component {
            Component::RootDir | Component::Normal(_) => {}
            _ => return Err(PathError::DotComponent(path.to_path_buf())),
        }
    }
    if path.file_name().is_none() {
        return Err(PathError::NoFileName(path.to_path_buf()));
    }
    Ok(())
}

/// Checks that a PAM user name can be used in a path and a log line.
///
/// Names with `/`, control characters, or that are `.`/`..` are refused outright:
/// no real account has them, and they are how path-traversal attacks start.
pub fn check_user_name(name: &str) -> Result<(), UserNameError> {
    if name.is_empty() {
        return Err(UserNameError::Empty);
    }
    if name.len() > 256 {
        return Err(UserNameError::TooLong);
    }
    if name == "." || name == ".." || name.starts_with('-') {
        return Err(UserNameError::NotAnAccountName);
    }
    if name.chars().any(|c| c == '/' || c.is_control()) {
        return Err(UserNameError::SlashOrControl);
    }
    Ok(())
}

/// The state-file stem for a user: the name itself when it is made of
/// `[A-Za-z0-9._-]` and does not start with `.`, otherwise percent-encoded,
/// so that no name can collide with another or escape the state directory.
pub fn state_stem(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for (i, b) in user.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Whether `path` lies inside `dir` (component-wise, not by string prefix).
pub fn is_inside(path: &Path, dir: &Path) -> bool {
    dir != Path::new("/") && path.starts_with(dir) && path != dir
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_user_and_home() {
        let p = expand(
            "%h/.config/otpgate/secret.toml",
            "alice",
            Path::new("/home/alice"),
        );
        assert_eq!(
            p.unwrap(),
            PathBuf::from("/home/alice/.config/otpgate/secret.toml")
        );
        let p = expand(
            "/var/lib/otpgate/%u.toml",
            "alice",
            Path::new("/home/alice"),
        );
        assert_eq!(p.unwrap(), PathBuf::from("/var/lib/otpgate/alice.toml"));
        let p = expand("/srv/100%%/%u", "bob", Path::new("/x"));
        assert_eq!(p.unwrap(), PathBuf::from("/srv/100%/bob"));
    }

    #[test]
    fn refuses_bad_templates() {
        assert!(check_template("relative/%u").is_err());
        assert!(check_template("/x/%q").is_err());
        assert!(check_template("/x/%").is_err());
        assert!(check_template("/x/../%u").is_err());
        assert!(check_template("/var/lib/otpgate/%u.toml").is_ok());
        assert!(check_template("%h/.config/otpgate/secret.toml").is_ok());
    }

    #[test]
    fn traversal_through_user_or_home_is_refused() {
        assert!(expand("/var/lib/otpgate/%u/secret", "..", Path::new("/h")).is_err());
        assert!(expand("/var/lib/otpgate/%u.toml", "../../etc/x", Path::new("/h")).is_err());
        assert!(expand("%h/x", "a", Path::new("relative")).is_err());
        assert!(expand("%h/x", "a", Path::new("/home/../etc")).is_err());
    }

    #[test]
    fn user_names_are_checked() {
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "../etc",
            "a\nb",
            "-rf",
            &"x".repeat(300),
        ] {
            assert!(check_user_name(bad).is_err(), "{bad:?}");
        }
        for good in [
            "alice",
            "bob.smith",
            "a b",
            "user@example.com",
            "DOMAIN\\user",
        ] {
            assert!(check_user_name(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn state_stems_are_safe_and_distinct() {
        assert_eq!(state_stem("alice"), "alice");
        assert_eq!(state_stem("a.b-c_d"), "a.b-c_d");
        assert_eq!(state_stem(".hidden"), "%2Ehidden");
        assert_eq!(state_stem("a b"), "a%20b");
        assert_eq!(state_stem("a%20b"), "a%2520b");
        assert_ne!(state_stem("a b"), state_stem("a%20b"));
    }

    #[test]
    fn inside_is_component_wise() {
        assert!(is_inside(Path::new("/home/al/x"), Path::new("/home/al")));
        assert!(!is_inside(
            Path::new("/home/alice/x"),
            Path::new("/home/al")
        ));
        assert!(!is_inside(Path::new("/etc/x"), Path::new("/")));
    }
}
