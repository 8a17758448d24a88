//! Verifying a reply: the pure decision (is this code valid and fresh, is
//! this recovery code unused) and the locked read–decide–write around it.

use super::login::Login;
use super::messages::locked_message;
use super::{Level, Outcome};
use crate::config::Config;
use crate::enrollment::{DeviceKind, Enrollment};

use crate::lockout::Limits;
use crate::otp;
use crate::otp::input::{self, Input};
use crate::otp::recovery::{self, RecoveryCode};
use crate::policy;
use crate::store::StoreExt;
use crate::store::state::{Method, UserState};
use crate::sys::account::Account;
use crate::sys::clock::format_utc;

pub use super::verdict::Verdict;

/// How far beyond the look-ahead an HOTP code may be and still start a
/// resynchronisation.
pub const HOTP_RESYNC_WINDOW: u64 = 100;

/// Maps version-1 state (filed under device names and the file's
/// `enrollment_id`) onto this enrollment's secrets, once: a device's memory
/// moves to its secret's fingerprint if the name and creation time still
/// match, used recovery codes of the current set move to that set. Anything
/// else belonged to devices or sets that no longer exist.
pub fn adopt_legacy(enrollment: &Enrollment, state: &mut UserState) {
    let Some(legacy) = state.legacy.take() else {
        return;
    };
    for device in &enrollment.devices {
        let Some(old) = legacy.devices.get(&device.name) else {
            continue;
        };
        if old.created.is_some_and(|c| c != device.created) {
            continue;
        }
        let mem = state
            .devices
            .entry(device.secret.fingerprint())
            .or_default();
        let old = old.memory();
        mem.last_step = mem.last_step.max(old.last_step);
        mem.next_counter = mem.next_counter.max(old.next_counter);
        mem.resync_pending = mem.resync_pending.or(old.resync_pending);
    }
    if let Some(set) = &enrollment.recovery {
        for hash in legacy
            .used_recovery
            .iter()
            .filter(|h| set.hashes.contains(h))
        {
            if !state.recovery_used(&set.salt, hash) {
                state.use_recovery(&set.salt, hash, state.last_success.unwrap_or(0));
            }
        }
    }
}

/// How far from the expected code a device's code may be: TOTP steps on each
/// side of now (clock drift), HOTP presses ahead of the expected counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tolerance {
    pub window: u32,
    pub hotp_lookahead: u32,
}

impl Tolerance {
    /// The tolerance a config sets.
    pub fn of(config: &Config) -> Self {
        Self {
            window: config.window,
            hotp_lookahead: config.hotp_lookahead,
        }
    }
}

/// Decides on a classified code against an enrollment and the user's state,
/// updating the state for an accepted one. Pure: no I/O, fully unit-tested.
///
/// Replay memory is looked up by each device's secret fingerprint, never by
/// a name or id from the user's file.
pub fn decide(
    enrollment: &Enrollment,
    state: &mut UserState,
    code: &str,
    now: u64,
    tolerance: Tolerance,
) -> Verdict {
    let Tolerance {
        window,
        hotp_lookahead: lookahead,
    } = tolerance;
    let mut replayed = None;
    let mut resync = None;
    for device in &enrollment.devices {
        let Some(digits) = device.kind.digits() else {
            continue;
        };
        if usize::from(digits) != code.len() {
            continue;
        }
        let fingerprint = device.secret.fingerprint();
        let mut mem = state.devices.get(&fingerprint).cloned().unwrap_or_default();
        match device.kind {
            DeviceKind::Totp(params) => {
                if let Some(step) =
                    otp::find_totp_step(&device.secret, &params, code, now, window, mem.last_step)
                {
                    mem.last_step = Some(step);
                    state.devices.insert(fingerprint, mem);
                    return accept(state, &device.name, step, now);
                }
                if replayed.is_none()
                    && otp::find_totp_step(&device.secret, &params, code, now, window, None)
                        .is_some()
                {
                    replayed = Some(device.name.clone());
                }
            }
            DeviceKind::Hotp {
                algorithm,
                digits,
                initial,
            } => {
                let next = mem.next_counter.unwrap_or(initial).max(initial);
                let hotp = otp::Hotp::new(&device.secret, algorithm, digits);
                let matches = |c: u64| {
                    hotp.as_ref()
                        .is_some_and(|h| otp::codes_equal(code, &h.code(c)))
                };
                let ahead = next.saturating_add(u64::from(lookahead));
                let pending = mem.resync_pending.take();
                let found = (next..=ahead)
                    .find(|c| matches(*c))
                    .or_else(|| pending.map(|p| p.saturating_add(1)).filter(|c| matches(*c)));
                if let Some(c) = found {
                    mem.next_counter = Some(c.saturating_add(1));
                    state.devices.insert(fingerprint, mem);
                    return accept(state, &device.name, c, now);
                }
                // Every range below is at most HOTP_RESYNC_WINDOW long, so a
                // hostile counter cannot make a login compute more HMACs.
                let beyond = ahead.saturating_add(1)..=ahead.saturating_add(HOTP_RESYNC_WINDOW);
                let recent = next.saturating_sub(HOTP_RESYNC_WINDOW).max(initial)..next;
                if let Some(c) = beyond.into_iter().find(|c| matches(*c)) {
                    mem.resync_pending = Some(c);
                    state.devices.insert(fingerprint, mem);
                    resync = Some(device.name.clone());
                } else {
                    if pending.is_some() {
                        // A pending resync is used up by any other code.
                        state.devices.insert(fingerprint, mem);
                    }
                    if recent.into_iter().any(matches) {
                        replayed.get_or_insert_with(|| device.name.clone());
                    }
                }
            }
            // Types no digits (skipped above); sent codes are checked
            // against the pending one.
            DeviceKind::YubicoOtp { .. } | DeviceKind::Email(_) | DeviceKind::Sms(_) => {}
        }
    }
    match (resync, replayed) {
        (Some(device), _) => Verdict::ResyncNeeded { device },
        (None, Some(device)) => Verdict::Replayed { device },
        (None, None) => Verdict::Wrong,
    }
}

/// Decides on a Yubico OTP: routed by its public id to the user's key with
/// that id, decrypted with its AES key, CRC and private id checked, and its
/// (usage, session) counters strictly above the last accepted pair (kept
/// under the key's fingerprint, like a TOTP step). Pure, like [`decide`].
pub fn decide_yubico(
    enrollment: &Enrollment,
    state: &mut UserState,
    otp: &str,
    now: u64,
) -> Verdict {
    use crate::otp::yubico;
    let Some(public) = yubico::public_id(otp) else {
        return Verdict::WrongOtp("not a Yubico OTP");
    };
    let mut fault = "no YubiKey with this public id is enrolled";
    for device in &enrollment.devices {
        let DeviceKind::YubicoOtp {
            public_id,
            private_id,
            initial,
        } = device.kind
        else {
            continue;
        };
        if yubico::modhex_encode(&public_id) != public {
            continue;
        }
        let Ok(key) = <[u8; 16]>::try_from(device.secret.as_bytes()).map(zeroize::Zeroizing::new)
        else {
            fault = "the YubiKey's stored AES key is not 16 bytes";
            continue;
        };
        let touch = match yubico::open(otp, &key, &private_id) {
            Ok(t) => t,
            Err(yubico::OtpFault::Crc) => {
                fault = "the Yubico OTP does not decrypt with the key's AES key (bad CRC)";
                continue;
            }
            Err(yubico::OtpFault::PrivateId) => {
                fault = "the Yubico OTP's private id does not match the key's";
                continue;
            }
            Err(yubico::OtpFault::Shape) => continue,
        };
        let fingerprint = device.secret.fingerprint();
        let mut mem = state.devices.get(&fingerprint).cloned().unwrap_or_default();
        let last = mem.last_step.unwrap_or(0).max(u64::from(initial));
        let order = u64::from(touch.order());
        if order <= last {
            return Verdict::Replayed {
                device: device.name.clone(),
            };
        }
        mem.last_step = Some(order);
        state.devices.insert(fingerprint, mem);
        return accept(state, &device.name, order, now);
    }
    Verdict::WrongOtp(fault)
}

fn accept(state: &mut UserState, device: &str, matched: u64, now: u64) -> Verdict {
    state.last_success = Some(now);
    state.last_method = Some(Method::Device(device.to_string()));
    Verdict::Device {
        name: device.to_string(),
        matched,
    }
}

/// Marks a recovery code (identified by its stored hash) as used, filed
/// under its set: used codes are remembered by what was used.
pub fn decide_recovery(
    enrollment: &Enrollment,
    state: &mut UserState,
    matched_hash: Option<&str>,
    now: u64,
) -> Verdict {
    let (Some(set), Some(hash)) = (&enrollment.recovery, matched_hash) else {
        return Verdict::Wrong;
    };
    if state.recovery_used(&set.salt, hash) {
        return Verdict::RecoveryUsed;
    }
    state.use_recovery(&set.salt, hash, now);
    state.last_success = Some(now);
    state.last_method = Some(Method::RecoveryCode);
    Verdict::Recovery {
        remaining: recovery::remaining(set, &state.used_in_set(&set.salt)),
    }
}

/// The stored hash a typed recovery (or imported scratch) code matches.
/// Called under the lock and only after the lockout check, so a locked
/// user's guesses cost no hash at all.
fn recovery_hash(
    enrollment: &Enrollment,
    input: &Input,
) -> Result<Option<String>, crate::otp::OtpError> {
    let code = match input {
        Input::Recovery(code) => Some(code.clone()),
        Input::Code(digits) => RecoveryCode::from_scratch(digits),
        _ => None,
    };
    match (&enrollment.recovery, code) {
        (Some(set), Some(code)) => recovery::find(set, &code),
        _ => Ok(None),
    }
}

/// Whether a code sent by e-mail or SMS waits for this very request.
fn sent_pending(st: &UserState, request: &str) -> bool {
    !request.is_empty() && st.pending.as_ref().is_some_and(|p| p.request == request)
}

/// Checks a typed code against the one sent for this request (used once,
/// three tries, until it expires). A code sent for another login never
/// gets here.
pub fn decide_sent(
    enrollment: &Enrollment,
    st: &mut UserState,
    request: &str,
    code: &str,
    now: u64,
) -> Verdict {
    use crate::otp::sent;
    let device_of = |fp: &str| {
        enrollment
            .devices
            .iter()
            .find(|d| d.kind.target().is_some() && d.secret.fingerprint() == fp)
    };
    let name = st
        .pending
        .as_ref()
        .and_then(|p| device_of(&p.device))
        .map(|d| d.name.clone());
    match sent::check(
        &mut st.pending,
        |fp| device_of(fp).map(|d| d.secret.clone()),
        request,
        code,
        now,
    ) {
        sent::Check::Accepted => accept(st, name.as_deref().unwrap_or("sent"), 0, now),
        sent::Check::Expired => Verdict::SentExpired,
        sent::Check::Wrong | sent::Check::NonePending => Verdict::Wrong,
    }
}

/// The part of `enrollment` that `methods` allows: devices of the allowed
/// kinds, and recovery codes if "recovery" is allowed. Borrowed when
/// everything is allowed (the usual case: no copy).
pub fn allowed<'a>(
    config: &Config,
    enrollment: &'a Enrollment,
) -> std::borrow::Cow<'a, Enrollment> {
    let devices_ok = enrollment
        .devices
        .iter()
        .all(|d| config.allows(d.kind.method()));
    let recovery_ok =
        enrollment.recovery.is_none() || config.allows(crate::config::Method::Recovery);
    if devices_ok && recovery_ok {
        return std::borrow::Cow::Borrowed(enrollment);
    }
    let mut only = enrollment.clone();
    only.devices.retain(|d| config.allows(d.kind.method()));
    if !config.allows(crate::config::Method::Recovery) {
        only.recovery = None;
    }
    std::borrow::Cow::Owned(only)
}

/// Checks one classified reply under the user's lock: the lockout first,
/// then the devices, then (only if needed) one recovery-code hash.
fn check_reply(
    config: &Config,
    enrollment: &Enrollment,
    st: &mut UserState,
    input: &Input,
    request: &str,
    now: u64,
) -> Verdict {
    if let Some(until) = st.locked_at(now) {
        return Verdict::Locked { until };
    }
    let recovery = |st: &mut UserState| match recovery_hash(enrollment, input) {
        Ok(hash) => decide_recovery(enrollment, st, hash.as_deref(), now),
        Err(e) => Verdict::RecoveryBroken(e.to_string()),
    };
    if enrollment.devices.is_empty() && enrollment.recovery.is_none() {
        return Verdict::NoMethod;
    }
    match input {
        Input::Empty => Verdict::Unusable("empty code"),
        Input::Invalid(why) => Verdict::Unusable(why),
        Input::Code(code) if sent_pending(st, request) => {
            decide_sent(enrollment, st, request, code, now)
        }
        Input::Code(code) => match decide(enrollment, st, code, now, Tolerance::of(config)) {
            Verdict::Wrong if enrollment.recovery.is_some() => recovery(st),
            v => v,
        },
        Input::Recovery(_) => recovery(st),
        Input::YubicoOtp(_) if !config.allows(crate::config::Method::YubicoOtp) => {
            Verdict::WrongOtp("YubiKey OTPs are not allowed here (`methods`)")
        }
        Input::YubicoOtp(otp) => decide_yubico(enrollment, st, otp, now),
    }
}

/// What one checked reply came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Checked {
    pub outcome: Outcome,
    /// A refusal after which the user may try again in the same login
    /// (never after a lockout began or an error).
    pub may_retry: bool,
}

/// Checks the reply under the store's exclusivity, counts a failure or
/// remembers the address, and reports the verdict.
impl Login<'_> {
    /// (`now`: the time the reply is checked at.)
    pub(super) fn verify(
        &mut self,
        account: &Account,
        enrollment: &Enrollment,
        reply: &[u8],
        now: u64,
    ) -> Checked {
        let (config, store, req) = (self.config, self.store, self.req);
        let input = input::classify(reply);
        let remember_ip = policy::rhost_ip(req.rhost).filter(|_| config.remember_minutes > 0);
        // Only needed to remember an address (a hash of every device's secret).
        let credentials = remember_ip.map(|_| enrollment.credentials_fingerprint());
        let mut lock_started = None;
        let usable = allowed(config, enrollment);
        let this = &*self;
        let verdict = store.update(account, |st| {
            st.clamp(now, Limits::of(config));
            adopt_legacy(enrollment, st);
            let request = if st.pending.is_some() {
                this.request()
            } else {
                ""
            };
            let verdict = check_reply(config, &usable, st, &input, request, now);
            if verdict.accepted() {
                st.clear_failures();
                if let (Some(ip), Some(credentials)) = (remember_ip, &credentials) {
                    st.remember(req.service, &ip.to_string(), credentials, now);
                }
            } else if verdict.counts_as_failure() {
                lock_started = st.record_failure(
                    now,
                    config.max_failures,
                    config.failure_window,
                    config.lockout_seconds,
                );
            }
            verdict
        });
        let verdict = match verdict {
            Ok(v) => v,
            Err(e) => {
                return Checked {
                    outcome: self.store_failed(&e),
                    may_retry: false,
                };
            }
        };
        let (result, method) = verdict.history(&input, enrollment);
        self.event(result, method);
        let may_retry = verdict.may_retry() && lock_started.is_none();
        let outcome = self.report(verdict, &input);
        if let Some(until) = lock_started {
            self.error(&locked_message(until));
            self.line(
                Level::Warning,
                &format!(
                    "lockout: {} wrong codes within {} s; locked until {}",
                    config.max_failures,
                    config.failure_window,
                    format_utc(until)
                ),
            );
        }
        Checked { outcome, may_retry }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::enrollment::Device;
    use crate::otp::TotpParams;
    use crate::otp::secret::Secret;

    const NOW: u64 = 1_800_000_000;

    fn decide10(e: &Enrollment, st: &mut UserState, code: &str, now: u64, window: u32) -> Verdict {
        decide(
            e,
            st,
            code,
            now,
            Tolerance {
                window,
                hotp_lookahead: 10,
            },
        )
    }

    fn enrollment(id: &str) -> Enrollment {
        let secret = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        let mut e = Enrollment::new(
            secret,
            TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap();
        e.id = id.into();
        e
    }

    fn code(at: u64) -> String {
        let s = Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap();
        otp::totp(&s, &TotpParams::DEFAULT, at).to_string()
    }

    #[test]
    fn accepts_a_fresh_code_once_and_records_it() {
        let e = enrollment("0123456789abcdef");
        let mut st = UserState::default();
        let v = decide10(&e, &mut st, &code(NOW), NOW, 1);
        assert_eq!(
            v,
            Verdict::Device {
                name: "default".into(),
                matched: NOW / 30
            }
        );
        let fp = e.devices[0].secret.fingerprint();
        assert_eq!(st.devices[&fp].last_step, Some(NOW / 30));
        assert_eq!(st.last_success, Some(NOW));
        assert_eq!(
            decide10(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        assert_eq!(
            decide10(&e, &mut st, &code(NOW - 30), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        assert_eq!(decide10(&e, &mut st, "000000", NOW, 1), Verdict::Wrong);
    }

    #[test]
    fn window_zero_accepts_only_the_current_step() {
        let e = enrollment("0123456789abcdef");
        let mut st = UserState::default();
        assert_eq!(
            decide10(&e, &mut st, &code(NOW - 30), NOW, 0),
            Verdict::Wrong
        );
        assert!(matches!(
            decide10(&e, &mut st, &code(NOW), NOW, 0),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn replay_memory_follows_the_secret_not_ids_or_names() {
        let mut st = UserState::default();
        assert!(matches!(
            decide10(&enrollment("aaaaaaaaaaaaaaaa"), &mut st, &code(NOW), NOW, 1),
            Verdict::Device { .. }
        ));
        // The same secret under another id and device name: still used.
        let mut renamed = enrollment("bbbbbbbbbbbbbbbb");
        renamed.devices[0].name = "phone".into();
        renamed.devices[0].created = 99;
        let v = decide10(&renamed, &mut st, &code(NOW), NOW, 1);
        assert_eq!(
            v,
            Verdict::Replayed {
                device: "phone".into()
            }
        );
        // A genuinely new secret starts clean.
        let fresh = Secret::from_bytes(vec![3; 20]).unwrap();
        let mut new = enrollment("cccccccccccccccc");
        new.devices[0].secret = fresh.clone();
        let fresh_code = otp::totp(&fresh, &TotpParams::DEFAULT, NOW).to_string();
        assert!(matches!(
            decide10(&new, &mut st, &fresh_code, NOW, 1),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn version_one_memory_is_adopted_by_name_and_creation_time() {
        let mut e = enrollment("0123456789abcdef");
        let (codes, set) =
            recovery::generate_set(&crate::sys::random::test::COUNTER, 2, 1).unwrap();
        e.recovery = Some(set.clone());
        let mut st = UserState::parse(
            format!(
                "version = 1\nenrollment_id = \"x\"\nused_recovery = [\"{}\"]\n\
                 [devices.default]\ncreated = 1\nlast_step = {}\n",
                set.hashes[0],
                NOW / 30
            )
            .as_bytes(),
        )
        .unwrap();
        adopt_legacy(&e, &mut st);
        assert!(st.legacy.is_none());
        assert_eq!(
            decide10(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Replayed {
                device: "default".into()
            }
        );
        let h0 = recovery::find(&set, &codes[0]).unwrap();
        assert_eq!(
            decide_recovery(&e, &mut st, h0.as_deref(), NOW),
            Verdict::RecoveryUsed
        );
    }

    #[test]
    fn extra_devices_are_tried_and_named() {
        let mut e = enrollment("0123456789abcdef");
        let other = Secret::from_bytes(vec![9; 20]).unwrap();
        let other_code = otp::totp(&other, &TotpParams::DEFAULT, NOW).to_string();
        e.devices.push(Device {
            name: "backup".into(),
            secret: other,
            kind: DeviceKind::Totp(TotpParams::DEFAULT),
            created: 1,
        });
        let mut st = UserState::default();
        assert_eq!(
            decide10(&e, &mut st, &other_code, NOW, 1),
            Verdict::Device {
                name: "backup".into(),
                matched: NOW / 30
            }
        );
        // The primary's code for the same step is still fresh: devices are independent.
        assert!(matches!(
            decide10(&e, &mut st, &code(NOW), NOW, 1),
            Verdict::Device { .. }
        ));
    }

    /// A 6-digit SHA1 HOTP token named "tok" starting at `initial`.
    fn hotp_token(secret: &Secret, initial: u64) -> Device {
        Device {
            name: "tok".into(),
            secret: secret.clone(),
            kind: DeviceKind::Hotp {
                algorithm: otp::Algorithm::SHA1,
                digits: 6,
                initial,
            },
            created: 1,
        }
    }

    #[test]
    fn hotp_counters_at_the_top_of_the_range_cannot_overflow_or_hang() {
        let mut e = enrollment("0123456789abcdef");
        let secret = Secret::from_bytes(vec![7; 20]).unwrap();
        for initial in [u64::MAX, u64::MAX - 5, u64::MAX - 200] {
            e.devices.truncate(1);
            e.devices.push(hotp_token(&secret, initial));
            let mut st = UserState::default();
            let v = decide10(&e, &mut st, "000000", NOW, 1);
            assert!(
                matches!(v, Verdict::Wrong | Verdict::ResyncNeeded { .. }),
                "{v:?}"
            );
            let code = otp::hotp(&secret, otp::Algorithm::SHA1, 6, initial).to_string();
            let v = decide10(&e, &mut st, &code, NOW, 1);
            assert!(matches!(v, Verdict::Device { .. }), "{initial}: {v:?}");
        }
    }

    #[test]
    fn hotp_replay_check_looks_back_a_bounded_distance() {
        let mut e = enrollment("0123456789abcdef");
        let secret = Secret::from_bytes(vec![7; 20]).unwrap();
        e.devices.push(hotp_token(&secret, 0));
        let mut st = UserState::default();
        st.devices.insert(
            secret.fingerprint(),
            crate::store::state::DeviceState {
                next_counter: Some(u64::MAX / 2),
                ..Default::default()
            },
        );
        // Without a bound this would compute 2^63 HMACs.
        assert_eq!(decide10(&e, &mut st, "000000", NOW, 1), Verdict::Wrong);
    }

    #[test]
    fn recovery_codes_work_once() {
        let mut e = enrollment("0123456789abcdef");
        let (codes, set) =
            recovery::generate_set(&crate::sys::random::test::COUNTER, 2, 1).unwrap();
        e.recovery = Some(set);
        let mut st = UserState::default();
        let h0 = recovery::find(e.recovery.as_ref().unwrap(), &codes[0]).unwrap();
        assert_eq!(
            decide_recovery(&e, &mut st, h0.as_deref(), NOW),
            Verdict::Recovery { remaining: 1 }
        );
        assert_eq!(
            decide_recovery(&e, &mut st, h0.as_deref(), NOW),
            Verdict::RecoveryUsed
        );
        assert_eq!(decide_recovery(&e, &mut st, None, NOW), Verdict::Wrong);
    }
}

#[cfg(test)]
mod yubico_tests {
    use super::*;
    use crate::enrollment::Device;
    use crate::otp::TotpParams;
    use crate::otp::secret::Secret;
    use crate::otp::yubico::make;

    const KEY: [u8; 16] = [0x42; 16];
    const PUBLIC: [u8; 6] = [1, 2, 3, 4, 5, 6];
    const PRIVATE: [u8; 6] = [9, 8, 7, 6, 5, 4];

    fn with_key(initial: u32) -> Enrollment {
        let mut e = Enrollment::new(
            Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
            TotpParams::DEFAULT,
            1,
            &crate::sys::random::test::COUNTER,
        )
        .unwrap();
        e.devices.push(Device {
            name: "yubikey".into(),
            secret: Secret::from_bytes(KEY.to_vec()).unwrap(),
            kind: DeviceKind::YubicoOtp {
                public_id: PUBLIC,
                private_id: PRIVATE,
                initial,
            },
            created: 1,
        });
        e
    }

    #[test]
    fn a_touch_is_accepted_once_and_only_newer_ones_after_it() {
        let e = with_key(0);
        let mut st = UserState::default();
        let first = make(&KEY, &PUBLIC, &PRIVATE, 3, 0);
        assert!(
            matches!(decide_yubico(&e, &mut st, &first, 10), Verdict::Device { ref name, .. } if name == "yubikey")
        );
        assert!(
            matches!(
                decide_yubico(&e, &mut st, &first, 11),
                Verdict::Replayed { .. }
            ),
            "replayed"
        );
        let older = make(&KEY, &PUBLIC, &PRIVATE, 2, 9);
        assert!(
            matches!(
                decide_yubico(&e, &mut st, &older, 12),
                Verdict::Replayed { .. }
            ),
            "an older session"
        );
        let next_touch = make(&KEY, &PUBLIC, &PRIVATE, 3, 1);
        assert!(matches!(
            decide_yubico(&e, &mut st, &next_touch, 13),
            Verdict::Device { .. }
        ));
        let replug = make(&KEY, &PUBLIC, &PRIVATE, 4, 0);
        assert!(matches!(
            decide_yubico(&e, &mut st, &replug, 14),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn the_starting_counter_refuses_what_came_before_it() {
        let e = with_key(5 << 8);
        let mut st = UserState::default();
        let old = make(&KEY, &PUBLIC, &PRIVATE, 5, 0);
        assert!(matches!(
            decide_yubico(&e, &mut st, &old, 10),
            Verdict::Replayed { .. }
        ));
        let new = make(&KEY, &PUBLIC, &PRIVATE, 5, 1);
        assert!(matches!(
            decide_yubico(&e, &mut st, &new, 10),
            Verdict::Device { .. }
        ));
    }

    #[test]
    fn wrong_public_id_key_or_private_id_is_a_wrong_otp_with_the_reason() {
        let e = with_key(0);
        let mut st = UserState::default();
        for (otp, why) in [
            (
                make(&KEY, &[6; 6], &PRIVATE, 3, 0),
                "no YubiKey with this public id",
            ),
            (make(&[1; 16], &PUBLIC, &PRIVATE, 3, 0), "bad CRC"),
            (make(&KEY, &PUBLIC, &[0; 6], 3, 0), "private id"),
        ] {
            let v = decide_yubico(&e, &mut st, &otp, 10);
            assert!(
                matches!(v, Verdict::WrongOtp(w) if w.contains(why)),
                "{v:?}"
            );
        }
        assert_eq!(st, UserState::default(), "nothing recorded");
    }

    #[test]
    fn methods_leave_out_devices_and_recovery_codes() {
        let e = with_key(0);
        let mut config = Config::default();
        assert!(matches!(
            allowed(&config, &e),
            std::borrow::Cow::Borrowed(_)
        ));
        config.methods = vec![crate::config::Method::Totp];
        let only = allowed(&config, &e);
        assert_eq!(only.devices.len(), 1);
        let mut st = UserState::default();
        let otp = make(&KEY, &PUBLIC, &PRIVATE, 3, 0);
        let input = crate::otp::input::classify(otp.as_bytes());
        assert!(matches!(
            check_reply(&config, &only, &mut st, &input, "r", 10),
            Verdict::WrongOtp(_)
        ));
        config.methods = vec![crate::config::Method::Recovery];
        let none = allowed(&config, &e);
        assert!(matches!(
            check_reply(&config, &none, &mut st, &input, "r", 10),
            Verdict::NoMethod
        ));
    }
}
