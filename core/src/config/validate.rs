//! The checks a parsed config must pass: every value in range and of the
//! right form, and the fleet keys consistent with `store`.

use super::error::{err, value};
use super::*;

impl Config {
    /// Checks every value: in range, of the right form, consistent (the
    /// built-in defaults pass it too). `source` names the file in errors.
    pub fn validate(&self, source: &str) -> Result<(), ConfigError> {
        if !DIGITS_RANGE.contains(&self.digits) {
            return Err(value(
                source,
                "digits",
                format!(
                    "{} is out of range; allowed: {} to {}",
                    self.digits,
                    DIGITS_RANGE.start(),
                    DIGITS_RANGE.end()
                ),
            ));
        }
        if !PERIOD_RANGE.contains(&self.period) {
            return Err(value(
                source,
                "period",
                format!(
                    "{} is out of range; allowed: {} to {} seconds",
                    self.period,
                    PERIOD_RANGE.start(),
                    PERIOD_RANGE.end()
                ),
            ));
        }
        if self.window > MAX_WINDOW {
            return Err(value(
                source,
                "window",
                format!(
                    "{} is out of range; allowed: 0 to {MAX_WINDOW} steps on each side of now",
                    self.window
                ),
            ));
        }
        if self.issuer.contains(':')
            || self.issuer.chars().any(char::is_control)
            || self.issuer.len() > 64
        {
            return Err(value(
                source,
                "issuer",
                "must be at most 64 characters, without ':' or control characters",
            ));
        }
        paths::check_template(&self.secret_path)
            .map_err(|e| value(source, "secret_path", e.to_string()))?;
        paths::check_plain_absolute(&self.state_dir)
            .map_err(|e| value(source, "state_dir", e.to_string()))?;
        if self.recovery_codes > crate::otp::recovery::MAX_COUNT {
            return Err(value(
                source,
                "recovery_codes",
                format!(
                    "{} is out of range; allowed: 0 to {}",
                    self.recovery_codes,
                    crate::otp::recovery::MAX_COUNT
                ),
            ));
        }
        for (key, got, max) in [
            ("grace_period_days", u64::from(self.grace_period_days), 3650),
            ("remember_minutes", u64::from(self.remember_minutes), 10_080),
            ("max_failures", u64::from(self.max_failures), 1000),
            ("failure_window", self.failure_window, 86_400),
            ("lockout_seconds", self.lockout_seconds, 604_800),
            ("hotp_lookahead", u64::from(self.hotp_lookahead), 100),
        ] {
            if got > max {
                return Err(value(
                    source,
                    key,
                    format!("{got} is out of range; allowed: 0 to {max}"),
                ));
            }
        }
        if self.max_failures > 0 && (self.failure_window == 0 || self.lockout_seconds == 0) {
            return Err(err(source, ConfigProblem::LockoutNeedsWindow));
        }
        for (key, text) in [
            ("prompt", &self.prompt),
            ("forward_pass_prompt", &self.forward_pass_prompt),
        ] {
            if text.is_empty() || text.len() > 200 || text.contains('\0') {
                return Err(value(source, key, "must be 1 to 200 characters"));
            }
        }
        self.validate_store(source)?;
        paths::check_plain_absolute(&self.mail_command)
            .map_err(|e| value(source, "mail_command", e.to_string()))?;
        if !self.sms_command.as_os_str().is_empty() {
            paths::check_plain_absolute(&self.sms_command)
                .map_err(|e| value(source, "sms_command", e.to_string()))?;
        }
        if !(1..=20).contains(&self.send_limit) {
            return Err(value(
                source,
                "send_limit",
                format!(
                    "{} is out of range; allowed: 1 to 20 codes per 15 minutes",
                    self.send_limit
                ),
            ));
        }
        if self.methods.is_empty() {
            return Err(value(
                source,
                "methods",
                "allows nothing, so nobody could log in; name at least one of totp, hotp, yubico-otp, recovery",
            ));
        }
        if !PROMPTS_RANGE.contains(&self.prompts) {
            return Err(value(
                source,
                "prompts",
                format!(
                    "{} is out of range; allowed: {} to {} tries within one login",
                    self.prompts,
                    PROMPTS_RANGE.start(),
                    PROMPTS_RANGE.end()
                ),
            ));
        }
        Ok(())
    }

    /// The fleet keys: checked in files mode too, so a half-written switch
    /// to PostgreSQL is caught before `store` is flipped.
    pub(super) fn validate_store(&self, source: &str) -> Result<(), ConfigError> {
        if !STORE_TIMEOUT_RANGE.contains(&self.store_timeout) {
            return Err(value(
                source,
                "store_timeout",
                format!(
                    "{} is out of range; allowed: {} to {} seconds",
                    self.store_timeout,
                    STORE_TIMEOUT_RANGE.start(),
                    STORE_TIMEOUT_RANGE.end()
                ),
            ));
        }
        if !(1..=64).contains(&self.database_pool_size) {
            return Err(value(
                source,
                "database_pool_size",
                format!(
                    "{} is out of range; allowed: 1 to 64 connections per otpgated \
                     (servers × database_pool_size must fit PostgreSQL's max_connections, or use a pooler)",
                    self.database_pool_size
                ),
            ));
        }
        if !(1..=3600).contains(&self.database_idle_timeout) {
            return Err(value(
                source,
                "database_idle_timeout",
                format!(
                    "{} is out of range; allowed: 1 to 3600 seconds",
                    self.database_idle_timeout
                ),
            ));
        }
        if self.login_history_days > 3650 {
            return Err(value(
                source,
                "login_history_days",
                format!(
                    "{} is out of range; allowed: 0 (keep none) to 3650 days",
                    self.login_history_days
                ),
            ));
        }
        if self.server_name.len() > 64
            || self
                .server_name
                .chars()
                .any(|c| !(c.is_ascii_alphanumeric() || "-._".contains(c)))
        {
            return Err(value(
                source,
                "server_name",
                format!(
                    "{:?}: use at most 64 letters, digits, '-', '.' and '_' (\"\": the host name)",
                    self.server_name
                ),
            ));
        }
        self.metrics_address()
            .map_err(|why| value(source, "metrics_listen", why.0))?;
        if self.store == StoreKind::Postgresql && self.database.trim().is_empty() {
            return Err(value(
                source,
                "database",
                "must be set when store = \"postgresql\"; give a libpq connection string such as \
                 \"host=db1.example.com dbname=otpgate user=otpgate sslmode=verify-full\"",
            ));
        }
        if !self.database.trim().is_empty() {
            conninfo::ConnInfo::parse(&self.database)
                .map_err(|e| value(source, "database", e.0))?;
        }
        if !self.database_password_file.is_empty() {
            paths::check_plain_absolute(Path::new(&self.database_password_file))
                .map_err(|e| value(source, "database_password_file", e.to_string()))?;
        }
        paths::check_plain_absolute(&self.secret_key_file)
            .map_err(|e| value(source, "secret_key_file", e.to_string()))?;
        paths::check_plain_absolute(&self.daemon_socket)
            .map_err(|e| value(source, "daemon_socket", e.to_string()))?;
        paths::check_plain_absolute(&self.daemon_state_dir)
            .map_err(|e| value(source, "daemon_state_dir", e.to_string()))?;
        if self.daemon_socket.as_os_str().len() > 100 {
            return Err(value(
                source,
                "daemon_socket",
                "is longer than a Unix socket path may be (100 bytes); choose a shorter path",
            ));
        }
        Ok(())
    }
}
