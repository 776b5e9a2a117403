//! Per-account sending limits (`[accounts.NAME.limits]`, or the provider's
//! published figures) as a pure rule over the sends of the last 24 hours,
//! and the reservations a store that several hosts share keeps, so that the
//! fleet together stays under them.

use std::time::{Duration, SystemTime};

use postie::provider::Limits;

/// The rolling window of the daily limits.
pub const DAY: Duration = Duration::from_secs(24 * 3600);

/// When a daily limit stands in the way of one more send to `recipients`
/// recipients: the time the account may send again, and which limit it is.
/// `window`: the account's sends (time, recipients reached) of the last 24
/// hours, oldest first.
pub fn limit_wait(
    window: &[(SystemTime, u32)],
    limits: &Limits,
    recipients: u32,
    now: SystemTime,
) -> Option<(SystemTime, &'static str)> {
    if let Some(limit) = limits.per_day
        && window.len() as u64 >= u64::from(limit)
    {
        // The send that has to leave the window for one more to fit (a
        // limit of 0, refused by the config, would wait a day).
        let at = window
            .len()
            .checked_sub(limit as usize)
            .and_then(|i| window.get(i))
            .map_or(now + DAY, |(t, _)| *t + DAY);
        return Some((at, "daily sending limit"));
    }
    let limit = u64::from(limits.recipients_per_day?);
    let want = u64::from(recipients).min(limit);
    let mut used: u64 = window.iter().map(|(_, n)| u64::from(*n)).sum();
    if used + want <= limit {
        return None;
    }
    // The time enough of the oldest sends leave the window.
    for (t, n) in window {
        used -= u64::from(*n);
        if used + want <= limit {
            return Some((*t + DAY, "daily recipient limit"));
        }
    }
    Some((now + DAY, "daily recipient limit"))
}

/// A store's answer to "may this account send now?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Yes: start at `at` (later than now when `per_minute` paces the
    /// account); the send counts from now on, under `id` (see
    /// [`super::Store::settle`]).
    Granted {
        /// The reservation.
        id: i64,
        /// When to start the send.
        at: SystemTime,
    },
    /// No: a daily limit is reached until `until`.
    Deferred {
        /// When the account may send again.
        until: SystemTime,
        /// Which limit.
        which: &'static str,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_limits_wait_for_the_oldest_send_to_leave_the_window() {
        let now = SystemTime::now();
        let ago = |s: u64| now - Duration::from_secs(s);
        let window = [(ago(3600), 2), (ago(60), 3)];
        let per_day = Limits {
            per_day: Some(2),
            ..Limits::default()
        };
        assert_eq!(
            limit_wait(&window, &per_day, 1, now),
            Some((ago(3600) + DAY, "daily sending limit"))
        );
        let recipients = Limits {
            recipients_per_day: Some(6),
            ..Limits::default()
        };
        assert_eq!(limit_wait(&window, &recipients, 1, now), None);
        assert_eq!(
            limit_wait(&window, &recipients, 2, now),
            Some((ago(3600) + DAY, "daily recipient limit"))
        );
        assert_eq!(limit_wait(&[], &Limits::default(), 100, now), None);
    }
}
