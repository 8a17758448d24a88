//! Who must use a second factor, and who is exempt: enforcement mode and
//! groups, exempt groups and networks (CIDRs matched against PAM_RHOST).

use crate::directory::Directory;
use crate::sys::account::{Account, LookupError};
use serde::{Deserialize, Serialize};

use std::net::IpAddr;

/// `enforce` in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Enforce {
    /// Everyone must use a second factor (unenrolled users are denied).
    #[default]
    All,
    /// Only enrolled users (and members of `enforce_groups`) are asked.
    Enrolled,
}

/// An IPv4 or IPv6 network, `addr/prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

message_error! {
    /// Text that is not an IP address or `addr/prefix` network.
    CidrError
}

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, CidrError> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().map_err(|_| {
            CidrError(format!(
                "\"{s}\" is not an IP address or CIDR network (e.g. 10.0.0.0/8, 2001:db8::/32)"
            ))
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|n| *n <= max).ok_or_else(|| {
                CidrError(format!("\"{s}\": the prefix length must be 0 to {max}"))
            })?,
            None => max,
        };
        Ok(Self {
            addr: addr.to_canonical(),
            prefix,
        })
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// Parsed once, when the config is read: a login compares addresses, it
/// never parses network strings.
impl Serialize for Cidr {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl Cidr {
    /// Whether `ip` lies in this network (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// PAM_RHOST as an address: `None` for a host name (which never matches a
/// network: names can be spoofed through reverse DNS) or an empty value.
pub fn rhost_ip(rhost: Option<&str>) -> Option<IpAddr> {
    let h = rhost?.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    let h = h.split('%').next().unwrap_or(h);
    h.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// Whether an unenrolled user must use a second factor, and why (for the
/// log and for `otpgate disable`'s warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub required: bool,
    pub why: String,
}

/// Whether an unenrolled user in `groups` must use a second factor. One rule
/// for the login flow, `otpgate disable` and `otpgate audit`.
pub fn second_factor_required(config: &crate::config::Config, groups: &[String]) -> Requirement {
    let in_group = config.enforce_groups.iter().find(|g| groups.contains(g));
    let (required, why) = match (in_group, config.enforce, config.nullok) {
        (Some(g), _, _) => (
            true,
            format!("member of enforced group \"{}\"", g.escape_debug()),
        ),
        (None, Enforce::All, false) => (true, "enforce = \"all\"".to_string()),
        (None, Enforce::All, true) => (false, "nullok is set".to_string()),
        (None, Enforce::Enrolled, _) => (false, "enforce = \"enrolled\"".to_string()),
    };
    Requirement { required, why }
}

/// A group the policy names that does not exist, or could not be looked up:
/// every login is denied until it is fixed (a typo must not silently change
/// who is asked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupError {
    Missing {
        key: &'static str,
        group: String,
    },
    Lookup {
        key: &'static str,
        error: LookupError,
    },
}

impl std::fmt::Display for GroupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { key, group } => write!(
                f,
                "key `{key}`: group \"{group}\" does not exist; create it or fix the name"
            ),
            Self::Lookup { key, error } => write!(f, "key `{key}`: {error}"),
        }
    }
}

impl std::error::Error for GroupError {}

/// The account's group names, looked up only when the policy names groups
/// (a lookup failure must deny, so it is not done for nothing).
pub fn groups_if_needed(
    config: &crate::config::Config,
    directory: &dyn Directory,
    account: &Account,
) -> Result<Vec<String>, LookupError> {
    if config.exempt_groups.is_empty() && config.enforce_groups.is_empty() {
        Ok(Vec::new())
    } else {
        directory.groups_of(account)
    }
}

/// Why this login is exempt from the second factor (an exempt group, or a
/// remote address in an exempt network), if it is.
pub fn exemption(
    config: &crate::config::Config,
    groups: &[String],
    rhost: Option<&str>,
) -> Option<String> {
    if let Some(g) = exempt_group(config, groups) {
        return Some(format!("member of exempt group \"{}\"", g.escape_debug()));
    }
    let ip = rhost_ip(rhost)?;
    config
        .exempt_networks
        .iter()
        .find(|net| net.contains(ip))
        .map(|net| format!("remote address in exempt network {net}"))
}

/// The exempt group `groups` hits, if any.
pub fn exempt_group<'c>(
    config: &'c crate::config::Config,
    groups: &[String],
) -> Option<&'c String> {
    config.exempt_groups.iter().find(|g| groups.contains(g))
}

/// Checks that every configured group exists (a typo must not silently
/// change who is asked).
pub fn check_groups(
    directory: &dyn Directory,
    key: &'static str,
    groups: &[String],
) -> Result<(), GroupError> {
    for g in groups {
        match directory.group_exists(g) {
            Ok(true) => {}
            Ok(false) => {
                return Err(GroupError::Missing {
                    key,
                    group: g.clone(),
                });
            }
            Err(error) => return Err(GroupError::Lookup { key, error }),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv4_networks() {
        let n: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(n.contains(ip("10.1.2.3")));
        assert!(!n.contains(ip("10.2.0.1")));
        assert!(
            n.contains(ip("::ffff:10.1.9.9")),
            "IPv4-mapped IPv6 matches"
        );
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("203.0.113.1")));
        assert!(!all.contains(ip("2001:db8::1")));
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
    }

    #[test]
    fn ipv6_networks() {
        let n: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(n.contains(ip("2001:db8:1::5")));
        assert!(!n.contains(ip("2001:db9::1")));
        assert!(!n.contains(ip("10.0.0.1")));
    }

    #[test]
    fn bad_networks_are_refused() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "example.com",
            "10.0.0/8",
            "",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
        // The message says what is wrong and shows the form that works.
        let e = "example.com".parse::<Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"example.com\" is not an IP address or CIDR network (e.g. 10.0.0.0/8, 2001:db8::/32)"
        );
        let e = "10.0.0.0/33".parse::<Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"10.0.0.0/33\": the prefix length must be 0 to 32"
        );
        let e = "2001:db8::/129".parse::<Cidr>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "\"2001:db8::/129\": the prefix length must be 0 to 128"
        );
    }

    #[test]
    fn rhost_names_never_become_addresses() {
        assert_eq!(rhost_ip(Some("192.0.2.1")), Some(ip("192.0.2.1")));
        assert_eq!(rhost_ip(Some("[2001:db8::1]")), Some(ip("2001:db8::1")));
        assert_eq!(rhost_ip(Some("fe80::1%eth0")), Some(ip("fe80::1")));
        assert_eq!(rhost_ip(Some("::ffff:192.0.2.1")), Some(ip("192.0.2.1")));
        assert_eq!(rhost_ip(Some("10.0.0.1.evil.example")), None);
        assert_eq!(rhost_ip(Some("")), None);
        assert_eq!(rhost_ip(None), None);
    }

    #[test]
    fn who_must_use_a_second_factor() {
        use crate::config::Config;
        let groups = vec!["admins".to_string()];
        let all = Config::default();
        assert!(second_factor_required(&all, &[]).required);
        let nullok = Config {
            nullok: true,
            ..Config::default()
        };
        assert!(!second_factor_required(&nullok, &[]).required);
        let enrolled = Config {
            enforce: Enforce::Enrolled,
            ..Config::default()
        };
        assert!(!second_factor_required(&enrolled, &groups).required);
        let grouped = Config {
            enforce_groups: groups.clone(),
            nullok: true,
            ..enrolled.clone()
        };
        let r = second_factor_required(&grouped, &groups);
        assert!(r.required && r.why.contains("admins"), "{}", r.why);
        let exempt = Config {
            exempt_groups: groups.clone(),
            ..Config::default()
        };
        assert_eq!(
            exempt_group(&exempt, &groups).map(String::as_str),
            Some("admins")
        );
        assert_eq!(exempt_group(&exempt, &[]), None);
    }

    #[test]
    fn groups_come_from_the_directory_and_a_failed_lookup_denies() {
        use crate::config::Config;
        use crate::directory::{Directory, Table};
        let dir = Table::default()
            .with_user("alice", 1000)
            .with_group("alice", 1000, &[])
            .with_group("admins", 50, &["alice"])
            .with_group("ops", 51, &[]);
        let alice = dir.user("alice").unwrap().unwrap();
        let config = Config {
            enforce_groups: vec!["admins".into()],
            ..Config::default()
        };
        let groups = groups_if_needed(&config, &dir, &alice).unwrap();
        assert_eq!(groups, ["alice", "admins"]);
        assert!(second_factor_required(&config, &groups).required);
        // No group in the policy: no lookup, so a broken directory costs nothing.
        let broken = Table::default().broken();
        assert_eq!(
            groups_if_needed(&Config::default(), &broken, &alice).unwrap(),
            Vec::<String>::new()
        );
        assert!(groups_if_needed(&config, &broken, &alice).is_err());
        assert!(check_groups(&dir, "enforce_groups", &["admins".into(), "ops".into()]).is_ok());
        let missing = check_groups(&dir, "enforce_groups", &["no-such-group-og".into()]);
        assert!(matches!(missing, Err(GroupError::Missing { .. })));
        let down = check_groups(&broken, "exempt_groups", &["ops".into()]);
        assert!(matches!(down, Err(GroupError::Lookup { .. })));
    }
}
