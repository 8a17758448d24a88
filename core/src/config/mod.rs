//! `/etc/otpgate/config.toml`: strict parsing, range checks, module-argument
//! overrides, and the built-in defaults used when the file is absent.

pub mod args;
pub mod conninfo;
mod error;
mod method;
mod validate;

use error::err;
pub use error::{ConfigError, ConfigProblem};
pub use method::{Method, UnknownMethod};
pub mod pamfile;

use crate::otp::{Algorithm, DIGITS_RANGE, PERIOD_RANGE, TotpParams};
use crate::policy::{Cidr, Enforce};
use crate::sys::paths;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where the module and the CLI look when not told otherwise.
pub const DEFAULT_PATH: &str = "/etc/otpgate/config.toml";
/// A config file larger than this is refused (it is not a config file).
pub const MAX_CONFIG_SIZE: u64 = 256 * 1024;
/// How many times `prompts` may ask for the code within one login.
pub const PROMPTS_RANGE: std::ops::RangeInclusive<u8> = 1..=5;
/// Largest accepted `window` (steps on each side of now).
pub const MAX_WINDOW: u32 = 10;

/// Seconds a login may wait for the daemon and the database (`store_timeout`).
pub const STORE_TIMEOUT_RANGE: std::ops::RangeInclusive<u64> = 1..=30;

/// Where enrollments and login state live (`store`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// Files on this server (secret files by `secret_path`, state in `state_dir`).
    #[default]
    Files,
    /// Fleet mode: PostgreSQL behind `otpgated`, reached over `daemon_socket`.
    Postgresql,
}

/// Every setting, with its built-in default. Unknown keys are errors, so a
/// typo such as `nulok = true` is reported instead of silently ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// HMAC hash for new enrollments.
    pub algorithm: Algorithm,
    /// Code length for new enrollments.
    pub digits: u8,
    /// Seconds per code for new enrollments.
    pub period: u64,
    /// Time steps accepted before and after the current one (clock drift).
    pub window: u32,
    /// Name shown in the authenticator app; empty means this host's name.
    pub issuer: String,
    /// Where each user's secret file lives; `%u` user name, `%h` home directory.
    pub secret_path: String,
    /// Root-owned directory for login state (replay, used recovery codes, counters).
    pub state_dir: PathBuf,
    /// Let users without a secret file pass (logged) instead of denying them.
    pub nullok: bool,
    /// The prompt shown before reading the code.
    pub prompt: String,
    /// Times the code is asked for within one login when a wrong one is
    /// typed (1–5): a typo at `sudo` does not cost the password again.
    pub prompts: u8,
    /// The one prompt of split mode (`forward_pass`): password and code together.
    pub forward_pass_prompt: String,
    /// Log the reason for each step of each decision.
    pub debug: bool,
    /// Recovery codes made at enrollment and by `otpgate recovery-codes`.
    pub recovery_codes: usize,
    /// "all": everyone must use a second factor; "enrolled": only enrolled users.
    pub enforce: Enforce,
    /// Members of these groups must use a second factor whatever `enforce` says.
    pub enforce_groups: Vec<String>,
    /// `otpgate audit` leaves out system accounts: uids from 1 up to this
    /// one (exclusive) are not listed (root and members of
    /// `enforce_groups` always are). Debian's UID_MIN is 1000.
    pub audit_min_uid: u32,
    /// `otpgate audit` leaves out members of these groups (service
    /// accounts with a login shell, say).
    pub audit_exclude_groups: Vec<String>,
    /// Days an unenrolled user who must use 2FA may still log in, counted from
    /// the first login attempt the module sees. 0: no grace.
    pub grace_period_days: u32,
    /// Members of these groups are never asked (logged).
    pub exempt_groups: Vec<String>,
    /// Logins from these networks (CIDRs matched against PAM_RHOST) are never asked (logged).
    pub exempt_networks: Vec<Cidr>,
    /// After a good code from a remote address, the same user from the same
    /// address is not asked again for this many minutes. 0: off.
    pub remember_minutes: u32,
    /// Wrong codes within `failure_window` seconds that lock the second factor. 0: no lockout.
    pub max_failures: u32,
    /// Seconds over which wrong codes are counted.
    pub failure_window: u64,
    /// Seconds the second factor stays locked after `max_failures` wrong codes.
    pub lockout_seconds: u64,
    /// HOTP counters accepted ahead of the expected one (button presses not used to log in).
    pub hotp_lookahead: u32,
    /// "files" (this server only) or "postgresql" (fleet mode, through otpgated).
    pub store: StoreKind,
    /// Fleet mode: libpq connection string (keyword/value or URL), read by otpgated.
    pub database: String,
    /// Fleet mode: root-only file holding the database password ("": none).
    pub database_password_file: String,
    /// Fleet mode: root-only file with the 32-byte key (base64) that encrypts
    /// the OTP secrets in the database; the same on every host.
    pub secret_key_file: PathBuf,
    /// Fleet mode: the Unix socket otpgated listens on.
    pub daemon_socket: PathBuf,
    /// Fleet mode: otpgated's own root-only directory, where it remembers
    /// the newest row it has seen of each account (so a row written back
    /// from the past, or deleted, is refused).
    pub daemon_state_dir: PathBuf,
    /// Fleet mode: seconds a login waits for the daemon and the database (1–30).
    pub store_timeout: u64,
    /// Fleet mode: the most connections one otpgated opens to the database
    /// (1–64); a request waits for a free one within `store_timeout`.
    pub database_pool_size: u32,
    /// Fleet mode: seconds an idle database connection stays open (1–3600).
    pub database_idle_timeout: u64,
    /// Fleet mode: this server's name in the login history and in `otpgate
    /// audit --servers` ("": the host name).
    pub server_name: String,
    /// Fleet mode: days the login history is kept (0–3650; 0: none is kept).
    pub login_history_days: u32,
    /// Fleet mode: "ADDRESS:PORT" otpgated serves Prometheus metrics on
    /// (`/metrics`); a loopback or private address only. "": off.
    pub metrics_listen: String,
    /// The kinds of authenticator accepted (a per-service module argument:
    /// `methods=totp,recovery`). A device of another kind is neither asked
    /// for nor accepted.
    pub methods: Vec<Method>,
    /// E-mail codes: the local MTA's sendmail interface, run as
    /// `COMMAND -i -- ADDRESS` with the message on stdin (never a shell).
    pub mail_command: PathBuf,
    /// SMS codes: an administrator's gateway program (absolute, root-owned,
    /// not writable by group or others), run as `COMMAND NUMBER` with the
    /// message on stdin, as nobody, with an empty environment, killed after
    /// 10 s. "": no SMS.
    pub sms_command: PathBuf,
    /// Codes sent to one user within 15 minutes, at most.
    pub send_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::SHA1,
            digits: 6,
            period: 30,
            window: 1,
            issuer: String::new(),
            secret_path: "%h/.config/otpgate/secret.toml".into(),
            state_dir: PathBuf::from("/var/lib/otpgate"),
            nullok: false,
            prompt: "Verification code: ".into(),
            prompts: 1,
            forward_pass_prompt: "Password and verification code: ".into(),
            debug: false,
            recovery_codes: crate::otp::recovery::DEFAULT_COUNT,
            enforce: Enforce::All,
            enforce_groups: Vec::new(),
            audit_min_uid: 1000,
            audit_exclude_groups: Vec::new(),
            grace_period_days: 0,
            exempt_groups: Vec::new(),
            exempt_networks: Vec::new(),
            remember_minutes: 0,
            max_failures: 5,
            failure_window: 300,
            lockout_seconds: 900,
            hotp_lookahead: 10,
            store: StoreKind::Files,
            database: String::new(),
            database_password_file: String::new(),
            secret_key_file: PathBuf::from("/etc/otpgate/secret.key"),
            daemon_socket: PathBuf::from("/run/otpgate/otpgated.sock"),
            daemon_state_dir: PathBuf::from("/var/lib/otpgated"),
            store_timeout: 5,
            database_pool_size: 4,
            database_idle_timeout: 60,
            server_name: String::new(),
            login_history_days: 90,
            metrics_listen: String::new(),
            methods: Method::DEFAULT.to_vec(),
            mail_command: PathBuf::from("/usr/sbin/sendmail"),
            sms_command: PathBuf::new(),
            send_limit: 3,
        }
    }
}

/// Where a config comes from: the default path may be absent (built-in
/// defaults apply); a path given explicitly must exist, because a typo in
/// `config=` must not silently drop the policy the administrator wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Default,
    Explicit(PathBuf),
}

impl Source {
    pub fn path(&self) -> &Path {
        match self {
            Self::Default => Path::new(DEFAULT_PATH),
            Self::Explicit(p) => p,
        }
    }
}

message_error! {
    /// A `metrics_listen` that otpgated may not serve on, and what to write.
    MetricsAddressError
}

impl Config {
    /// Where otpgated serves its metrics (`None`: off). Only a loopback or
    /// private address: the metrics name no user, but say how many logins
    /// fail, which is nobody else's business.
    pub fn metrics_address(&self) -> Result<Option<std::net::SocketAddr>, MetricsAddressError> {
        if self.metrics_listen.is_empty() {
            return Ok(None);
        }
        let addr: std::net::SocketAddr = self.metrics_listen.parse().map_err(|_| {
            MetricsAddressError(format!(
                "{:?} is not ADDRESS:PORT; write e.g. \"127.0.0.1:9813\" or \"[::1]:9813\"",
                self.metrics_listen
            ))
        })?;
        let private = match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.is_loopback() || ip.is_private(),
            std::net::IpAddr::V6(ip) => ip.is_loopback() || (ip.segments()[0] & 0xfe00) == 0xfc00,
        };
        if !private {
            return Err(MetricsAddressError(format!(
                "{addr}: metrics are served on a loopback or private address only \
                 (127.0.0.1, 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, ::1, fc00::/7)"
            )));
        }
        Ok(Some(addr))
    }

    /// Parses and validates config text. `source` names the file in errors.
    pub fn parse(text: &str, source: &str) -> Result<Self, ConfigError> {
        let config: Config = crate::toml_comments::from_str(text)
            .map_err(|e| err(source, ConfigProblem::Syntax(tidy_toml_error(&e, text))))?;
        config.validate(source)?;
        Ok(config)
    }

    /// Applies `key=value` overrides (PAM module arguments) on top of this
    /// config, with the same type and range checks as the file.
    pub fn with_overrides(
        &self,
        overrides: &[(String, String)],
        source: &str,
    ) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Ok(self.clone());
        }
        let mut table = toml::Table::try_from(self)
            .map_err(|e| err(source, ConfigProblem::Syntax(e.to_string())))?;
        for (key, value) in overrides {
            if !table.contains_key(key) {
                return Err(err(
                    source,
                    ConfigProblem::Syntax(format!(
                        "unknown option `{key}`; known options: config, {}",
                        table.keys().cloned().collect::<Vec<_>>().join(", ")
                    )),
                ));
            }
            let parsed = value
                .parse::<toml::Value>()
                .ok()
                .or_else(|| {
                    format!("v = {value}")
                        .parse::<toml::Table>()
                        .ok()
                        .and_then(|t| t.get("v").cloned())
                })
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            let parsed = match (&table[key], parsed) {
                (toml::Value::String(_), v @ toml::Value::String(_)) => v,
                (toml::Value::String(_), _) => toml::Value::String(value.clone()),
                (toml::Value::Array(_), v @ toml::Value::Array(_)) => v,
                // PAM arguments cannot hold TOML arrays: take a comma list.
                (toml::Value::Array(_), _) => toml::Value::Array(
                    value
                        .split(',')
                        .filter(|v| !v.is_empty())
                        .map(|v| toml::Value::String(v.to_string()))
                        .collect(),
                ),
                (_, v) => v,
            };
            table.insert(key.clone(), parsed);
        }
        let text = toml::to_string(&table)
            .map_err(|e| err(source, ConfigProblem::Syntax(e.to_string())))?;
        Self::parse(&text, source)
    }

    /// Checks what cannot be checked from the text alone: that the named
    /// groups exist. Done at login too (a deleted group denies, fail closed).
    pub fn check_system(
        &self,
        directory: &dyn crate::directory::Directory,
    ) -> Result<(), crate::policy::GroupError> {
        use crate::policy::check_groups;
        check_groups(directory, "enforce_groups", &self.enforce_groups)?;
        check_groups(directory, "exempt_groups", &self.exempt_groups)?;
        check_groups(
            directory,
            "audit_exclude_groups",
            &self.audit_exclude_groups,
        )
    }

    /// Whether `methods` allows `method`.
    pub fn allows(&self, method: Method) -> bool {
        self.methods.contains(&method)
    }

    /// The parameters new enrollments get.
    pub fn totp_params(&self) -> TotpParams {
        TotpParams::new(self.algorithm, self.digits, self.period).unwrap_or(TotpParams::DEFAULT)
    }

    /// The issuer name to show in apps: the configured one, or this host's name.
    /// `issuer`, or else this server's name `host` (`:` would end the
    /// issuer in an otpauth label), or else "otpgate".
    pub fn effective_issuer(&self, host: Option<String>) -> String {
        if !self.issuer.is_empty() {
            return self.issuer.clone();
        }
        host.map(|h| h.replace(':', "-"))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "otpgate".into())
    }

    /// The effective settings as TOML, for `otpgate check-config`.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }
}

/// toml's messages carry a source excerpt spread over several lines; a log
/// line needs one line, so name the line and quote it instead.
fn tidy_toml_error(e: &toml::de::Error, text: &str) -> String {
    let mut msg = e.message().trim().replace('\n', " ");
    if let Some(span) = e.span() {
        let start = span.start.min(text.len());
        let line_no = text[..start].matches('\n').count() + 1;
        let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
        msg = format!("line {line_no} `{line}`: {msg}");
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_method_typo_is_refused_in_the_file_and_in_module_arguments() {
        let e = Config::parse("methods = [\"totp\", \"yubikey\"]\n", "t")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"yubikey\" is not a method; known: totp, hotp"),
            "{e}"
        );
        let o = Config::default()
            .with_overrides(&[("methods".into(), "totp,yubikey".into())], "pam")
            .unwrap_err()
            .to_string();
        assert!(o.contains("\"yubikey\" is not a method"), "{o}");
        let ok = Config::default()
            .with_overrides(&[("methods".into(), "totp,recovery".into())], "pam")
            .unwrap();
        assert_eq!(ok.methods, [Method::Totp, Method::Recovery]);
    }

    #[test]
    fn empty_text_gives_safe_defaults() {
        let c = Config::parse("", "t").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.totp_params(), TotpParams::DEFAULT);
        assert_eq!(c.window, 1);
        assert!(!c.nullok);
    }

    #[test]
    fn shipped_config_is_the_defaults_but_for_a_safe_roll_out() {
        let text = include_str!("../../../config/config.toml");
        let shipped = Config::parse(text, "config.toml").unwrap();
        assert_eq!(shipped.enforce, Enforce::Enrolled);
        assert_eq!(
            Config {
                enforce: Enforce::All,
                ..shipped
            },
            Config::default()
        );
    }

    #[test]
    fn shipped_config_names_every_key() {
        let table = toml::Table::try_from(Config::default()).unwrap();
        for (name, text) in [
            ("config.toml", include_str!("../../../config/config.toml")),
            (
                "config.example.toml",
                include_str!("../../../config/config.example.toml"),
            ),
        ] {
            for key in table.keys() {
                // Set, or (in the shipped file) commented out at its default.
                let set = format!("{key} =");
                let shown = format!("#{key} =");
                assert!(
                    text.lines()
                        .any(|l| l.starts_with(&set) || l.starts_with(&shown)),
                    "config/{name} lacks `{key}`"
                );
            }
        }
    }

    #[test]
    fn the_documented_example_says_what_the_shipped_config_does() {
        let shipped = Config::parse(include_str!("../../../config/config.toml"), "c").unwrap();
        let example =
            Config::parse(include_str!("../../../config/config.example.toml"), "e").unwrap();
        assert_eq!(shipped, example);
        assert!(include_str!("../../../config/config.toml").len() < 1500);
        // Each commented-out key shows its built-in default.
        let uncommented: String = include_str!("../../../config/config.toml")
            .lines()
            .filter_map(|l| l.strip_prefix('#'))
            .filter(|l| l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let defaults = Config::parse(&uncommented, "c").unwrap();
        assert_eq!(defaults, Config::default());
    }

    #[test]
    fn unknown_key_is_named() {
        let e = Config::parse("nulok = true\n", "/etc/otpgate/config.toml").unwrap_err();
        assert_eq!(e.source, "/etc/otpgate/config.toml");
        assert!(e.to_string().contains("nulok"), "{e}");
        assert!(
            e.to_string().contains("nullok"),
            "should list the known keys: {e}"
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let e = Config::parse("digits = \"six\"\n", "c").unwrap_err();
        assert!(
            e.to_string().contains("digits") || e.to_string().contains("byte 9"),
            "{e}"
        );
        assert!(
            e.to_string().contains("integer") || e.to_string().contains("u8"),
            "{e}"
        );
    }

    #[test]
    fn out_of_range_values_say_what_is_allowed() {
        for (text, key, allowed) in [
            ("digits = 12", "digits", "6 to 8"),
            ("period = 5", "period", "10 to 300"),
            ("window = 50", "window", "0 to 10"),
            ("secret_path = \"relative\"", "secret_path", "absolute"),
            ("state_dir = \"var/lib\"", "state_dir", "absolute"),
            ("prompt = \"\"", "prompt", "1 to 200"),
            (
                "forward_pass_prompt = \"\"",
                "forward_pass_prompt",
                "1 to 200",
            ),
            ("prompts = 0", "prompts", "1 to 5"),
            ("prompts = 6", "prompts", "1 to 5"),
            ("issuer = \"a:b\"", "issuer", "':'"),
            ("algorithm = \"MD5\"", "algorithm", "SHA1"),
        ] {
            let e = Config::parse(text, "c").unwrap_err().to_string();
            assert!(e.contains(key) || key == "algorithm", "{text}: {e}");
            assert!(e.contains(allowed), "{text}: {e}");
        }
    }

    #[test]
    fn syntax_errors_and_duplicates_are_refused() {
        assert!(Config::parse("digits = ", "c").is_err());
        assert!(Config::parse("digits = 6\ndigits = 7\n", "c").is_err());
        // A byte-order mark after the first line, even after comments only,
        // is refused on its own line (toml allows one only first).
        let e = Config::parse("# policy\n\u{feff}digits = 8\n", "c").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(Config::parse("\u{feff}# policy\ndigits = 8\n", "c").is_ok());
    }

    #[test]
    fn overrides_apply_with_the_same_checks() {
        let base = Config::default();
        let c = base
            .with_overrides(
                &[
                    ("window".into(), "2".into()),
                    ("nullok".into(), "true".into()),
                ],
                "args",
            )
            .unwrap();
        assert_eq!((c.window, c.nullok), (2, true));
        let c = base
            .with_overrides(
                &[
                    ("prompt".into(), "Code:".into()),
                    ("issuer".into(), "true".into()),
                ],
                "args",
            )
            .unwrap();
        assert_eq!((c.prompt.as_str(), c.issuer.as_str()), ("Code:", "true"));
        assert!(
            base.with_overrides(&[("window".into(), "99".into())], "args")
                .is_err()
        );
        assert!(
            base.with_overrides(&[("nullok".into(), "maybe".into())], "args")
                .is_err()
        );
        let e = base
            .with_overrides(&[("bogus".into(), "1".into())], "args")
            .unwrap_err();
        assert!(e.to_string().contains("bogus"), "{e}");
    }

    #[test]
    fn policy_keys_are_checked() {
        let c = Config::parse(
            "enforce = \"enrolled\"\nenforce_groups = [\"root\"]\nexempt_networks = [\"10.0.0.0/8\", \"2001:db8::/32\"]\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.enforce, Enforce::Enrolled);
        assert_eq!(c.exempt_networks.len(), 2);
        let dir = crate::directory::Table::default().with_group("root", 0, &[]);
        assert!(c.check_system(&dir).is_ok());
        for (text, want) in [
            ("enforce = \"some\"", "enforce"),
            ("exempt_networks = [\"10.0.0.0/40\"]", "exempt_networks"),
            ("max_failures = 5000", "max_failures"),
            ("max_failures = 3\nlockout_seconds = 0", "lockout_seconds"),
        ] {
            let e = Config::parse(text, "c").unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let c = Config::parse("exempt_groups = [\"no-such-group-og\"]", "c").unwrap();
        assert!(
            c.check_system(&dir)
                .unwrap_err()
                .to_string()
                .contains("no-such-group-og")
        );
        let c = Config::default()
            .with_overrides(
                &[("exempt_networks".into(), "10.0.0.0/8,192.0.2.0/24".into())],
                "args",
            )
            .unwrap();
        let shown: Vec<String> = c.exempt_networks.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["10.0.0.0/8", "192.0.2.0/24"]);
    }

    #[test]
    fn effective_issuer_falls_back_to_host_name() {
        let c = Config::default();
        assert_eq!(c.effective_issuer(Some("web:1".into())), "web-1");
        assert_eq!(c.effective_issuer(None), "otpgate");
        let c = Config {
            issuer: "Acme".into(),
            ..Config::default()
        };
        assert_eq!(c.effective_issuer(Some("web1".into())), "Acme");
    }
}
