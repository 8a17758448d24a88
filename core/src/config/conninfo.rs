//! The `database` key: a libpq connection string, keyword/value
//! (`host=db1 port=5432 dbname=otpgate sslmode=verify-full`) or URL
//! (`postgresql://otpgate@db1:5432/otpgate?sslmode=verify-full`), parsed
//! once, strictly, into the parameters the daemon connects with.
//!
//! Only the keywords otpgated honours are accepted, so a typo
//! (`sslmode=verify_full`, `sslrootcrt=…`) is an error at `--check` and at
//! start instead of a silently unverified connection. A password in the
//! string is refused: it belongs in the root-only `database_password_file`,
//! never in a world-readable config.

/// Keywords otpgated understands (libpq's names and meanings).
pub const KEYWORDS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "connect_timeout",
    "application_name",
    "options",
    "keepalives",
    "keepalives_idle",
    "target_session_attrs",
];

/// libpq's `sslmode` values otpgated implements.
pub const SSL_MODES: &[&str] = &["disable", "prefer", "require", "verify-ca", "verify-full"];

/// A parsed connection string: keyword, value pairs in their order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnInfo {
    pub params: Vec<(String, String)>,
}

message_error! {
    /// Why the `database` connection string is refused, and what to write.
    ConnInfoError
}

impl ConnInfo {
    /// Parses `text` (keyword/value or URL form) and checks every keyword
    /// and the values otpgated interprets itself.
    pub fn parse(text: &str) -> Result<Self, ConnInfoError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ConnInfoError(
                "is empty; give a libpq connection string such as \
                 \"host=db1.example.com dbname=otpgate user=otpgate sslmode=verify-full\""
                    .into(),
            ));
        }
        let params = if let Some(rest) = text
            .strip_prefix("postgresql://")
            .or_else(|| text.strip_prefix("postgres://"))
        {
            parse_url(rest).map_err(ConnInfoError)?
        } else {
            parse_pairs(text).map_err(ConnInfoError)?
        };
        let info = Self { params };
        info.check().map_err(ConnInfoError)?;
        Ok(info)
    }

    /// The last value given for `key` (libpq: a later one wins).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The effective `sslmode` (libpq's default is `prefer`).
    pub fn sslmode(&self) -> &str {
        self.get("sslmode").unwrap_or("prefer")
    }

    fn check(&self) -> Result<(), String> {
        for (key, value) in &self.params {
            match key.as_str() {
                "password" | "passfile" => {
                    return Err(format!(
                        "`{key}` does not belong in the connection string (the config is world-readable); \
                         put the password in the root-only file `database_password_file` names"
                    ));
                }
                k if !KEYWORDS.contains(&k) => {
                    return Err(format!(
                        "unknown keyword `{key}`; otpgated understands: {}",
                        KEYWORDS.join(", ")
                    ));
                }
                "sslmode" if !SSL_MODES.contains(&value.as_str()) => {
                    return Err(format!(
                        "sslmode={value} is not supported; use one of {}",
                        SSL_MODES.join(", ")
                    ));
                }
                "port" | "connect_timeout" | "keepalives" | "keepalives_idle"
                    if value.split(',').any(|v| v.parse::<u32>().is_err()) =>
                {
                    return Err(format!("{key}={value} is not a number"));
                }
                "sslrootcert" | "sslcert" | "sslkey" if !value.starts_with('/') => {
                    return Err(format!(
                        "{key}={value}: give an absolute path (the daemon's working directory is /)"
                    ));
                }
                _ => {}
            }
        }
        if self.get("dbname").is_none() && self.get("user").is_none() {
            return Err("names neither `dbname` nor `user`; name the database, \
                 e.g. \"host=db1.example.com dbname=otpgate user=otpgate\""
                .into());
        }
        Ok(())
    }
}

/// libpq's keyword/value form: `key = value` pairs separated by white
/// space; a value may be single-quoted, with `\'` and `\\` inside.
fn parse_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!(
                "`{key}` has no `=value`; write keyword=value pairs"
            ));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    None => return Err(format!("the quoted value of `{key}` is not closed")),
                    Some('\'') => break,
                    Some('\\') => match chars.next() {
                        Some(c) => value.push(c),
                        None => return Err(format!("the quoted value of `{key}` is not closed")),
                    },
                    Some(c) => value.push(c),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    match chars.next() {
                        Some(c) => value.push(c),
                        None => value.push('\\'),
                    }
                } else {
                    value.push(c);
                }
            }
        }
        out.push((key, value));
    }
}

/// `[user[:password]@][host][:port][/dbname][?key=value&…]`, percent-decoded.
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, dbname) = main.split_once('/').unwrap_or((main, ""));
    let hostport = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            if !password.is_empty() {
                out.push(("password".into(), decode(password)?));
            }
            if !user.is_empty() {
                out.push(("user".into(), decode(user)?));
            }
            hostport
        }
        None => authority,
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("an IPv6 host in brackets is not closed")?;
        (h, after.strip_prefix(':').unwrap_or(""))
    } else {
        hostport.split_once(':').unwrap_or((hostport, ""))
    };
    if !host.is_empty() {
        out.push(("host".into(), decode(host)?));
    }
    if !port.is_empty() {
        out.push(("port".into(), decode(port)?));
    }
    if !dbname.is_empty() {
        out.push(("dbname".into(), decode(dbname)?));
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` in the URL's query has no `=value`"))?;
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}

fn decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("`{s}` has a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{s}` is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        ConnInfo::parse(text).unwrap().params
    }

    fn p(k: &str, v: &str) -> (String, String) {
        (k.to_string(), v.to_string())
    }

    #[test]
    fn keyword_value_form_with_quotes_and_spaces() {
        assert_eq!(
            pairs("host=db1 port = 5433  dbname='my db' user=o\\ tp application_name='it\\'s'"),
            vec![
                p("host", "db1"),
                p("port", "5433"),
                p("dbname", "my db"),
                p("user", "o tp"),
                p("application_name", "it's")
            ]
        );
    }

    #[test]
    fn url_form_is_percent_decoded() {
        assert_eq!(
            pairs(
                "postgresql://otp%40gate@[::1]:5432/otp%2Fdb?sslmode=verify-full&sslrootcert=/etc/ca.pem"
            ),
            vec![
                p("user", "otp@gate"),
                p("host", "::1"),
                p("port", "5432"),
                p("dbname", "otp/db"),
                p("sslmode", "verify-full"),
                p("sslrootcert", "/etc/ca.pem")
            ]
        );
        let info = ConnInfo::parse("postgres://db1/otpgate").unwrap();
        assert_eq!(info.get("host"), Some("db1"));
        assert_eq!(info.sslmode(), "prefer");
    }

    #[test]
    fn a_password_in_the_string_is_refused_with_the_way_out() {
        for text in [
            "host=db dbname=o password=hunter2",
            "postgresql://u:hunter2@db/o",
            "host=db dbname=o passfile=/root/.pgpass",
        ] {
            let e = ConnInfo::parse(text).unwrap_err();
            assert!(e.0.contains("database_password_file"), "{text}: {e}");
            assert!(
                !e.0.contains("hunter2"),
                "the password is never repeated: {e}"
            );
        }
    }

    #[test]
    fn typos_and_bad_values_are_errors() {
        for (text, want) in [
            (
                "host=db dbname=o sslmode=verify_full",
                "sslmode=verify_full",
            ),
            (
                "host=db dbname=o sslrootcrt=/x",
                "unknown keyword `sslrootcrt`",
            ),
            ("host=db dbname=o port=fivefourthree", "not a number"),
            ("host=db dbname=o sslrootcert=ca.pem", "absolute path"),
            ("host=db", "neither `dbname` nor `user`"),
            ("host db", "no `=value`"),
            ("dbname='open", "not closed"),
            ("", "is empty"),
            ("postgresql://db/o?sslmode", "no `=value`"),
            ("postgresql://db/o%zz", "%-escape"),
        ] {
            let e = ConnInfo::parse(text).unwrap_err();
            assert!(e.0.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn the_last_value_wins_as_in_libpq() {
        let info = ConnInfo::parse("dbname=a sslmode=disable sslmode=verify-full").unwrap();
        assert_eq!(info.sslmode(), "verify-full");
    }
}
