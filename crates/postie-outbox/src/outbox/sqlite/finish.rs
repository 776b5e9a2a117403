//! Recording an attempt in SQLite: the shared rules of `finish_in`, over
//! one IMMEDIATE transaction.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, Transaction, params};

use super::super::delivery::{Claim, Disposition, Outcome};
use super::super::finish::{FinishTx, MessageUpdate, finish_in};
use super::super::message::{AttemptKind, RecipientCounts};
use super::super::policy::RetryPolicy;
use super::super::time::{from_ms, to_ms};
use super::super::{MessageId, ReplyRecord};
use super::pause::pause_in;
use super::{Sqlite, db, immediate};
use postie::error::Result;

impl Sqlite {
    pub(super) fn finish_many(
        &self,
        attempts: Vec<(Claim, Outcome)>,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Vec<Disposition>> {
        let mut conn = self.conn();
        let mut tx = immediate(&mut conn)?;
        let mut out = Vec::with_capacity(attempts.len());
        for (claim, outcome) in attempts {
            out.push(finish_in(&mut tx, &claim, outcome, now, policy)?);
        }
        // A lost lease changed nothing: no commit (and no fsync) for it.
        if out.iter().any(|d| *d != Disposition::LeaseLost) {
            tx.commit().map_err(db)?;
        }
        Ok(out)
    }

    /// When each message of `account` that reached the server (some
    /// recipient accepted) was sent since `since`, oldest first, with the
    /// recipients it reached: for a worker that keeps a provider's daily
    /// limits.
    pub(super) fn sent_since(
        &self,
        account: &str,
        since: SystemTime,
    ) -> Result<Vec<(SystemTime, u32)>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT a.at, (SELECT COUNT(*) FROM recipients r
                               WHERE r.msg = a.msg AND r.state = 'sent' AND r.updated_at = a.at)
                 FROM attempts a JOIN messages m ON m.id = a.msg
                 WHERE m.account = ?1 AND a.at >= ?2 AND a.kind IN ('delivered', 'partial')
                 ORDER BY a.at",
            )
            .map_err(db)?;
        stmt.query_map(params![account, to_ms(since)], |r| {
            Ok((
                from_ms(r.get::<_, i64>(0)?),
                u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(db)
    }
}

impl FinishTx for Transaction<'_> {
    fn leased(&mut self, claim: &Claim) -> Result<Option<(i64, i64)>> {
        self.query_row(
            "SELECT attempts, window_start FROM messages
             WHERE id = ?1 AND state = 'delivering' AND lease_token = ?2",
            params![claim.id.0, claim.lease_token],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(db)
    }

    fn set_recipient(
        &mut self,
        id: MessageId,
        address: &str,
        state: &str,
        rec: &ReplyRecord,
        now_ms: i64,
    ) -> Result<()> {
        self.prepare_cached(
            "UPDATE recipients SET state = ?3, code = ?4, enhanced = ?5, text = ?6, updated_at = ?7
             WHERE msg = ?1 AND address = ?2 AND state = 'pending'",
        )
        .and_then(|mut s| {
            s.execute(params![
                id.0,
                address,
                state,
                rec.code,
                rec.enhanced,
                rec.text,
                now_ms
            ])
        })
        .map_err(db)?;
        Ok(())
    }

    fn insert_attempt(
        &mut self,
        id: MessageId,
        now_ms: i64,
        kind: AttemptKind,
        reply: Option<&ReplyRecord>,
        explanation: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "INSERT INTO attempts (msg, at, kind, code, enhanced, text, explanation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                id.0,
                now_ms,
                kind.as_str(),
                reply.map(|r| r.code),
                reply.and_then(|r| r.enhanced.as_deref()),
                reply.map(|r| r.text.as_str()),
                explanation
            ],
        )
        .map_err(db)?;
        Ok(())
    }

    fn end_probe_pause(&mut self, account: &str) -> Result<()> {
        self.execute(
            "DELETE FROM paused_accounts WHERE account = ?1 AND until IS NOT NULL",
            [account],
        )
        .map_err(db)?;
        Ok(())
    }

    fn counts(&mut self, id: MessageId) -> Result<RecipientCounts> {
        counts(self, id)
    }

    fn failed_recipients(&mut self, id: MessageId) -> Result<Vec<String>> {
        let mut stmt = self
            .prepare_cached(
                "SELECT address FROM recipients WHERE msg = ?1 AND state = 'failed' ORDER BY position",
            )
            .map_err(db)?;
        stmt.query_map([id.0], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(db)
    }

    fn pause(
        &mut self,
        account: &str,
        reason: &str,
        now_ms: i64,
        until: Option<i64>,
    ) -> Result<bool> {
        pause_in(self, account, reason, now_ms, until)
    }

    fn give_up(&mut self, id: MessageId, reply: Option<&ReplyRecord>, now_ms: i64) -> Result<()> {
        match reply {
            Some(r) => self.execute(
                "UPDATE recipients SET state = 'failed', code = ?2, enhanced = ?3, text = ?4,
                     updated_at = ?5
                 WHERE msg = ?1 AND state = 'pending'",
                params![id.0, r.code, r.enhanced, r.text, now_ms],
            ),
            None => self.execute(
                "UPDATE recipients SET state = 'failed', updated_at = ?2
                 WHERE msg = ?1 AND state = 'pending'",
                params![id.0, now_ms],
            ),
        }
        .map_err(db)?;
        Ok(())
    }

    fn update_message(&mut self, id: MessageId, u: &MessageUpdate<'_>) -> Result<()> {
        self.execute(
            "UPDATE messages
             SET state = ?2, attempts = ?3, lease_until = NULL, lease_token = NULL,
                 next_attempt_at = COALESCE(?4, next_attempt_at), finished_at = ?5,
                 last_code = ?6, last_enhanced = ?7, last_text = ?8, explanation = ?9
             WHERE id = ?1",
            params![
                id.0,
                u.state,
                u.attempts,
                u.next_attempt,
                u.finished,
                u.reply.map(|r| r.code),
                u.reply.and_then(|r| r.enhanced.as_deref()),
                u.reply.map(|r| r.text.as_str()),
                u.explanation
            ],
        )
        .map_err(db)?;
        Ok(())
    }
}

pub(super) fn counts(tx: &Transaction<'_>, id: MessageId) -> Result<RecipientCounts> {
    tx.query_row(
        "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'sent'), 0),
                COALESCE(SUM(state = 'failed'), 0)
         FROM recipients WHERE msg = ?1",
        [id.0],
        |r| {
            Ok(RecipientCounts {
                pending: r.get(0)?,
                sent: r.get(1)?,
                failed: r.get(2)?,
            })
        },
    )
    .map_err(db)
}
