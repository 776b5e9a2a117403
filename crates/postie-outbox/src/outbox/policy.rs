//! When to try a message again: a pure function of the failure, the
//! attempts so far and the clock readings it is given. No clock and no
//! randomness inside, so every case is a table row in the tests.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use postie::config::RelayConfig;
use postie::error::{Error, ErrorKind, Result};

use super::FailureClass;

/// How the outbox retries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Wait after the first transient failure.
    pub first_retry: Duration,
    /// The longest wait between two transient attempts.
    pub max_interval: Duration,
    /// Each transient failure multiplies the wait by this (at least 1).
    pub factor: f64,
    /// Give up this long after a message was queued. RFC 5321 4.5.4.1
    /// suggests at least 4-5 days.
    pub give_up_after: Duration,
    /// Wait after a quota failure. Gmail's `550 5.4.5` limit is a rolling
    /// 24-hour window: retrying within minutes only burns attempts.
    pub quota_wait: Duration,
    /// After a credentials failure the account is paused. `None`: until an
    /// operator resumes it (`postie queue retry`, a new login). `Some(d)`:
    /// after `d` one message of the account is tried, as a probe; if it
    /// fails the same way the pause is renewed, and the user is not told again.
    pub credentials_pause: Option<Duration>,
}

impl RetryPolicy {
    /// The policy with the `[relay]` settings that change it
    /// (`give_up_after`, `retry_first`, `retry_max`: durations like `"5d"`).
    pub fn from_config(relay: &RelayConfig) -> Result<RetryPolicy> {
        let mut policy = RetryPolicy::default();
        if let Some(d) = dur("give_up_after", &relay.give_up_after)? {
            policy.give_up_after = d;
        }
        if let Some(d) = dur("retry_first", &relay.retry_first)? {
            policy.first_retry = d;
        }
        if let Some(d) = dur("retry_max", &relay.retry_max)? {
            policy.max_interval = d;
        }
        Ok(policy)
    }
}

/// `[relay] key = "5d"` as a duration, or what is wrong with it.
fn dur(key: &str, v: &Option<String>) -> Result<Option<Duration>> {
    v.as_ref()
        .map(|t| {
            humantime::parse_duration(t).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "[relay] {key} = \"{t}\" is not a duration like \"5d\" or \"30s\": {e}"
                    ),
                )
            })
        })
        .transpose()
}

/// How long a deliverer holds what it claims: `[relay] lease`, else
/// [`LEASE`](crate::delivery::LEASE); at least [`MIN_LEASE`].
pub fn claim_lease(relay: &RelayConfig) -> Result<Duration> {
    let lease = dur("lease", &relay.lease)?.unwrap_or(crate::delivery::LEASE);
    if lease < MIN_LEASE {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "[relay] lease = \"{}\" is too short: at least {} (it is renewed every third of it while a message is sent)",
                relay.lease.as_deref().unwrap_or_default(),
                humantime::format_duration(MIN_LEASE)
            ),
        ));
    }
    Ok(lease)
}

/// The shortest `[relay] lease`.
pub const MIN_LEASE: Duration = Duration::from_secs(3);

/// How long sent messages are kept: `[relay] keep_sent`, else 7 days.
pub fn keep_sent(relay: &RelayConfig) -> Result<Duration> {
    Ok(dur("keep_sent", &relay.keep_sent)?.unwrap_or(KEEP_SENT))
}

/// The default of `[relay] keep_sent`.
pub const KEEP_SENT: Duration = Duration::from_secs(7 * 24 * 3600);

impl Default for RetryPolicy {
    fn default() -> RetryPolicy {
        RetryPolicy {
            first_retry: Duration::from_secs(60),
            max_interval: Duration::from_secs(3600),
            factor: 2.0,
            give_up_after: Duration::from_secs(5 * 24 * 3600),
            quota_wait: Duration::from_secs(3 * 3600),
            credentials_pause: None,
        }
    }
}

/// What to do with a message whose attempt failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Queue it again, due at this time.
    RetryAt(SystemTime),
    /// Stop: the pending recipients fail.
    GiveUp,
    /// Keep it queued and pause its account: retrying cannot help until the
    /// credentials change, and repeated failed logins get accounts locked.
    PauseAccount,
}

/// Decide what follows a failed attempt. `attempts` counts the attempts so
/// far, the one that just failed included; `window_start` is when the
/// message was queued (or retried by an operator); `jitter` in `0..=1`
/// spreads retries of messages that failed together.
///
/// A retry is never scheduled past the give-up deadline: the last one lands
/// on it, so a message gets its whole window, and a failure at or after the
/// deadline gives up.
pub fn decide(
    policy: &RetryPolicy,
    class: FailureClass,
    attempts: u32,
    window_start: SystemTime,
    now: SystemTime,
    jitter: f64,
) -> Decision {
    let wait = match class {
        FailureClass::Permanent => return Decision::GiveUp,
        FailureClass::Credentials => return Decision::PauseAccount,
        FailureClass::Quota => policy.quota_wait,
        FailureClass::Transient => backoff(policy, attempts, jitter),
    };
    let deadline = window_start.checked_add(policy.give_up_after);
    if deadline.is_some_and(|d| now >= d) {
        return Decision::GiveUp;
    }
    let at = now.checked_add(wait);
    Decision::RetryAt(match (at, deadline) {
        (Some(at), Some(d)) => at.min(d),
        (Some(at), None) => at,
        (None, Some(d)) => d,
        (None, None) => now,
    })
}

/// `min(first * factor^(attempts-1), max)`, scaled into `[0.5, 1.0]` of
/// itself by `jitter`: the cap still holds, and no retry comes sooner than
/// half the nominal wait.
fn backoff(policy: &RetryPolicy, attempts: u32, jitter: f64) -> Duration {
    let exp = i32::try_from(attempts.saturating_sub(1).min(1024)).unwrap_or(1024);
    let max = policy.max_interval.as_secs_f64();
    let nominal = policy.first_retry.as_secs_f64() * policy.factor.max(1.0).powi(exp);
    let nominal = if nominal.is_finite() {
        nominal.min(max)
    } else {
        max
    };
    let jitter = if jitter.is_finite() {
        jitter.clamp(0.0, 1.0)
    } else {
        1.0
    };
    Duration::try_from_secs_f64(nominal * (0.5 + 0.5 * jitter)).unwrap_or(policy.max_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60;
    const HOUR: u64 = 3600;
    const DAY: u64 = 24 * HOUR;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    fn secs_after(d: Decision, now: SystemTime) -> u64 {
        match d {
            Decision::RetryAt(t) => t.duration_since(now).unwrap().as_secs(),
            other => panic!("expected RetryAt, got {other:?}"),
        }
    }

    #[test]
    fn the_lease_is_two_minutes_unless_set_and_never_under_three_seconds() {
        let mut relay = RelayConfig::default();
        assert_eq!(claim_lease(&relay).unwrap(), crate::delivery::LEASE);
        relay.lease = Some("10m".into());
        assert_eq!(claim_lease(&relay).unwrap(), Duration::from_secs(600));
        relay.lease = Some("3s".into());
        assert_eq!(claim_lease(&relay).unwrap(), MIN_LEASE);
        relay.lease = Some("500ms".into());
        let e = claim_lease(&relay).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.message().contains("at least 3s"), "{}", e.message());
        relay.lease = Some("soon".into());
        assert!(
            claim_lease(&relay)
                .unwrap_err()
                .message()
                .contains("\"soon\"")
        );
    }

    #[test]
    fn transient_backoff_grows_then_caps() {
        let p = RetryPolicy::default();
        // (attempts, jitter, expected wait in seconds)
        let table = [
            (1, 1.0, MIN),
            (2, 1.0, 2 * MIN),
            (3, 1.0, 4 * MIN),
            (4, 1.0, 8 * MIN),
            (6, 1.0, 32 * MIN),
            (7, 1.0, HOUR),
            (50, 1.0, HOUR),
            (u32::MAX, 1.0, HOUR),
            (1, 0.0, MIN / 2),
            (7, 0.0, HOUR / 2),
            (3, 0.5, 3 * MIN),
        ];
        for (attempts, jitter, want) in table {
            let d = decide(&p, FailureClass::Transient, attempts, at(0), at(10), jitter);
            assert_eq!(
                secs_after(d, at(10)),
                want,
                "attempts {attempts} jitter {jitter}"
            );
        }
    }

    #[test]
    fn jitter_stays_within_half_and_full_wait() {
        let p = RetryPolicy::default();
        for jitter in [
            -3.0,
            0.0,
            0.1,
            0.37,
            0.999,
            1.0,
            7.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            for attempts in 1..12 {
                let nominal = (MIN << (attempts - 1)).min(HOUR);
                let d = decide(&p, FailureClass::Transient, attempts, at(0), at(0), jitter);
                let wait = secs_after(d, at(0));
                assert!(
                    (nominal / 2..=nominal).contains(&wait),
                    "attempts {attempts} jitter {jitter}: {wait}s not in [{}, {nominal}]",
                    nominal / 2
                );
            }
        }
    }

    #[test]
    fn give_up_at_the_deadline() {
        let p = RetryPolicy::default();
        let deadline = 5 * DAY;
        // Just before the deadline: the retry is clamped onto it.
        let d = decide(
            &p,
            FailureClass::Transient,
            40,
            at(0),
            at(deadline - 60),
            1.0,
        );
        assert_eq!(d, Decision::RetryAt(at(deadline)));
        for now in [deadline, deadline + 1, 30 * DAY] {
            for class in [FailureClass::Transient, FailureClass::Quota] {
                assert_eq!(
                    decide(&p, class, 3, at(0), at(now), 0.5),
                    Decision::GiveUp,
                    "{class:?} at {now}"
                );
            }
        }
    }

    #[test]
    fn quota_waits_hours_without_jitter() {
        let p = RetryPolicy::default();
        for jitter in [0.0, 1.0] {
            let d = decide(&p, FailureClass::Quota, 1, at(0), at(100), jitter);
            assert_eq!(secs_after(d, at(100)), 3 * HOUR);
        }
        // Within three hours of the deadline it waits for the deadline only.
        let late = 5 * DAY - HOUR;
        let d = decide(&p, FailureClass::Quota, 9, at(0), at(late), 0.0);
        assert_eq!(d, Decision::RetryAt(at(5 * DAY)));
    }

    #[test]
    fn credentials_pause_and_permanent_is_final() {
        let p = RetryPolicy::default();
        for (attempts, now) in [(1, 0), (9, 6 * DAY)] {
            assert_eq!(
                decide(&p, FailureClass::Credentials, attempts, at(0), at(now), 0.5),
                Decision::PauseAccount
            );
            assert_eq!(
                decide(&p, FailureClass::Permanent, attempts, at(0), at(now), 0.5),
                Decision::GiveUp
            );
        }
    }

    #[test]
    fn odd_policies_do_not_panic() {
        let p = RetryPolicy {
            first_retry: Duration::from_secs(u64::MAX),
            max_interval: Duration::from_secs(u64::MAX),
            factor: f64::NAN,
            give_up_after: Duration::from_secs(u64::MAX),
            ..RetryPolicy::default()
        };
        let d = decide(&p, FailureClass::Transient, 3, at(0), at(0), 0.5);
        assert!(matches!(d, Decision::RetryAt(_)));
        let zero = RetryPolicy {
            factor: 0.1,
            give_up_after: Duration::ZERO,
            ..RetryPolicy::default()
        };
        assert_eq!(
            decide(&zero, FailureClass::Transient, 1, at(0), at(0), 0.5),
            Decision::GiveUp
        );
    }
}
