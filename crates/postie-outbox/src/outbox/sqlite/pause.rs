//! Paused accounts: their messages stay queued and are not claimed. A
//! credentials failure pauses the account once, with its reason, so the
//! user hears about it once rather than for every message, and postie does
//! not keep logging in with credentials the server refuses (providers lock
//! accounts that do).

use std::time::SystemTime;

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::Paused;
use super::super::time::{from_ms, to_ms};
use super::{Sqlite, db, immediate};
use postie::error::Result;

impl Sqlite {
    /// Pause `account` until it is resumed. True when it was not paused
    /// before (the caller should tell the user).
    pub(super) fn pause_account(
        &self,
        account: &str,
        reason: &str,
        now: SystemTime,
    ) -> Result<bool> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let newly = pause_in(&tx, account, reason, to_ms(now), None)?;
        tx.commit().map_err(db)?;
        Ok(newly)
    }

    /// Resume `account`: its queued messages are claimed again as they fall
    /// due. True when it was paused.
    pub(super) fn resume_account(&self, account: &str) -> Result<bool> {
        let conn = self.conn();
        let n = conn
            .execute("DELETE FROM paused_accounts WHERE account = ?1", [account])
            .map_err(db)?;
        Ok(n > 0)
    }

    /// The paused accounts, longest paused first.
    pub(super) fn paused(&self) -> Result<Vec<Paused>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT account, reason, since, until FROM paused_accounts ORDER BY since, account",
            )
            .map_err(db)?;
        stmt.query_map([], |r| {
            Ok(Paused {
                account: r.get(0)?,
                reason: r.get(1)?,
                since: from_ms(r.get(2)?),
                until: r.get::<_, Option<i64>>(3)?.map(from_ms),
            })
        })
        .and_then(|rows| rows.collect())
        .map_err(db)
    }
}

/// Pause inside a transaction. An account already paused keeps its first
/// reason and time (what the user was told); an expiring pause is renewed to
/// `until`, a pause without end stays without end.
pub(super) fn pause_in(
    tx: &Transaction<'_>,
    account: &str,
    reason: &str,
    now_ms: i64,
    until: Option<i64>,
) -> Result<bool> {
    let existing: Option<Option<i64>> = tx
        .query_row(
            "SELECT until FROM paused_accounts WHERE account = ?1",
            [account],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    match existing {
        None => {
            tx.execute(
                "INSERT INTO paused_accounts (account, reason, since, until) VALUES (?1, ?2, ?3, ?4)",
                params![account, reason, now_ms, until],
            )
            .map_err(db)?;
            Ok(true)
        }
        Some(None) => Ok(false),
        Some(Some(_)) => {
            tx.execute(
                "UPDATE paused_accounts SET until = ?2 WHERE account = ?1",
                params![account, until],
            )
            .map_err(db)?;
            Ok(false)
        }
    }
}
