//! Sending limits kept for the whole fleet: each send is reserved in
//! `quota_sends` before it starts, under the account's transaction lock, so
//! hosts that send at once for one mailbox count each other's sends, and a
//! `per_minute` account's slots are spaced across hosts.

use std::time::SystemTime;

use postgres::Transaction;

use postie::error::Result;
use postie::provider::Limits;

use super::super::quota::{DAY, Reservation, limit_wait};
use super::super::time::{from_ms, to_ms};
use super::{Postgres, pg};

/// The account's transaction lock (apart from the token and holder locks).
const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended('postie quota ' || $1, 0))";

/// The account's sends of the last day (reserved slots ahead included),
/// oldest first.
fn window(
    tx: &mut Transaction<'_>,
    account: &str,
    now: SystemTime,
) -> Result<Vec<(SystemTime, u32)>> {
    Ok(tx
        .query(
            "SELECT at, recipients FROM quota_sends WHERE account = $1 AND at > $2 ORDER BY at",
            &[&account, &to_ms(now - DAY)],
        )
        .map_err(pg)?
        .iter()
        .map(super::send_row)
        .collect())
}

pub(super) fn reserve(
    s: &Postgres,
    account: &str,
    limits: &Limits,
    recipients: u32,
    now: SystemTime,
) -> Result<Reservation> {
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(pg)?;
    tx.execute(LOCK, &[&account]).map_err(pg)?;
    // Sends older than the window no longer count: forget them.
    tx.execute(
        "DELETE FROM quota_sends WHERE account = $1 AND at <= $2",
        &[&account, &to_ms(now - DAY)],
    )
    .map_err(pg)?;
    let w = window(&mut tx, account, now)?;
    if let Some((until, which)) = limit_wait(&w, limits, recipients, now) {
        tx.commit().map_err(pg)?;
        return Ok(Reservation::Deferred { until, which });
    }
    // The next slot after the last one taken (paced accounts), at most one
    // spacing after now per send already waiting.
    let at = match (limits.spacing(), w.last()) {
        (Some(spacing), Some((last, _))) => (*last + spacing).max(now),
        _ => now,
    };
    let id: i64 = tx
        .query_one(
            "INSERT INTO quota_sends (account, at, recipients, host) VALUES ($1, $2, $3, $4)
             RETURNING id",
            &[&account, &to_ms(at), &i64::from(recipients), &s.host],
        )
        .map_err(pg)?
        .get(0);
    tx.commit().map_err(pg)?;
    Ok(Reservation::Granted {
        id,
        at: from_ms(to_ms(at)),
    })
}

pub(super) fn settle(s: &Postgres, id: i64, accepted: u32) -> Result<()> {
    let mut conn = s.conn()?;
    if accepted == 0 {
        conn.execute("DELETE FROM quota_sends WHERE id = $1", &[&id])
    } else {
        conn.execute(
            "UPDATE quota_sends SET recipients = $2 WHERE id = $1",
            &[&id, &i64::from(accepted)],
        )
    }
    .map_err(pg)?;
    Ok(())
}
