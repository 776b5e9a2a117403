//! The operator's commands: `postie queue list | show | retry | purge`, and
//! what a worker needs to know to sleep.

use std::collections::HashMap;
use std::time::SystemTime;

use rusqlite::{OptionalExtension, Row, params};

use super::super::message::SUMMARY_COLUMNS;
use super::super::message::{
    AttemptKind, AttemptRecord, RecipientCounts, RecipientDetail, RecipientState,
};
use super::super::time::{from_ms, to_ms};
use super::super::{Counts, Detail, ListFilter, MessageId, ReplyRecord, State, Summary, Which};
use super::{Sqlite, db, immediate};
use postie::error::{Error, ErrorKind, Result};
use postie::wording::{Action, say};

fn summary(r: &Row<'_>) -> rusqlite::Result<Summary> {
    let state = parse_state(&r.get::<_, String>(2)?);
    let when = |i| -> rusqlite::Result<Option<SystemTime>> {
        Ok(r.get::<_, Option<i64>>(i)?.map(from_ms))
    };
    Ok(Summary {
        id: MessageId(r.get(0)?),
        account: r.get(1)?,
        state,
        mail_from: r.get(3)?,
        size: r.get::<_, i64>(4)?.max(0) as u64,
        attempts: r.get::<_, i64>(5)?.clamp(0, u32::MAX.into()) as u32,
        queued_at: from_ms(r.get(6)?),
        next_attempt_at: when(7)?.filter(|_| state == State::Queued),
        lease_until: when(8)?.filter(|_| state == State::Delivering),
        last_reply: ReplyRecord::from_columns(r.get(9)?, r.get(10)?, r.get(11)?),
        subject: r.get(12)?,
        message_id: r.get(13)?,
        source: r.get(14)?,
        counts: RecipientCounts {
            pending: r.get(15)?,
            sent: r.get(16)?,
            failed: r.get(17)?,
        },
        paused: r.get(18)?,
    })
}

fn parse_state(s: &str) -> State {
    s.parse().unwrap_or(State::Queued)
}

impl Sqlite {
    /// Messages matching `filter`, oldest first.
    pub(super) fn list(&self, filter: &ListFilter) -> Result<Vec<Summary>> {
        let conn = self.conn();
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS} FROM messages m
             WHERE (?1 IS NULL OR m.state = ?1) AND (?2 IS NULL OR m.account = ?2)
               AND (?4 IS NULL OR m.batch = ?4)
             ORDER BY m.id LIMIT ?3"
        );
        let limit = filter
            .limit
            .map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let mut stmt = conn.prepare_cached(&sql).map_err(db)?;
        stmt.query_map(
            params![
                filter.state.map(State::as_str),
                filter.account,
                limit,
                filter.batch
            ],
            summary,
        )
        .and_then(|rows| rows.collect())
        .map_err(db)
    }

    /// The items batch `batch` took, in the outbox or purged since: item
    /// key → message id.
    pub(super) fn batch_items(&self, batch: &str) -> Result<HashMap<String, MessageId>> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT item, msg FROM batch_purged WHERE batch = ?1
                 UNION ALL
                 SELECT batch_item, id FROM messages WHERE batch = ?1",
            )
            .map_err(db)?;
        stmt.query_map([batch], |r| Ok((r.get(0)?, MessageId(r.get(1)?))))
            .and_then(|rows| rows.collect())
            .map_err(db)
    }

    /// Everything about one message, or `None` when there is no such id.
    pub(super) fn show(&self, id: MessageId) -> Result<Option<Detail>> {
        let mut conn = self.conn();
        // One read transaction: a consistent picture while workers write.
        let tx = conn.transaction().map_err(db)?;
        let sql = format!(
            "SELECT {SUMMARY_COLUMNS}, m.explanation, m.body_file, m.eight_bit, m.smtputf8,
                    m.finished_at, m.body IS NOT NULL
             FROM messages m WHERE m.id = ?1"
        );
        let head = tx
            .query_row(&sql, [id.0], |r| {
                Ok((
                    summary(r)?,
                    r.get::<_, Option<String>>(19)?,
                    r.get::<_, String>(20)?,
                    r.get::<_, bool>(21)?,
                    r.get::<_, bool>(22)?,
                    r.get::<_, Option<i64>>(23)?,
                    r.get::<_, bool>(24)?,
                ))
            })
            .optional()
            .map_err(db)?;
        let Some((summary, explanation, body_file, eight_bit, smtputf8, finished, in_row)) = head
        else {
            return Ok(None);
        };
        let recipients = tx
            .prepare_cached(
                "SELECT address, state, code, enhanced, text, updated_at FROM recipients
                 WHERE msg = ?1 ORDER BY position",
            )
            .and_then(|mut s| {
                s.query_map([id.0], |r| {
                    Ok(RecipientDetail {
                        address: r.get(0)?,
                        state: RecipientState::parse(&r.get::<_, String>(1)?),
                        reply: ReplyRecord::from_columns(r.get(2)?, r.get(3)?, r.get(4)?),
                        updated_at: r.get::<_, Option<i64>>(5)?.map(from_ms),
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db)?;
        let history = tx
            .prepare_cached(
                "SELECT at, kind, code, enhanced, text, explanation FROM attempts
                 WHERE msg = ?1 ORDER BY id",
            )
            .and_then(|mut s| {
                s.query_map([id.0], |r| {
                    Ok(AttemptRecord {
                        at: from_ms(r.get(0)?),
                        kind: AttemptKind::parse(&r.get::<_, String>(1)?),
                        reply: ReplyRecord::from_columns(r.get(2)?, r.get(3)?, r.get(4)?),
                        explanation: r.get(5)?,
                        host: None,
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(db)?;
        Ok(Some(Detail {
            summary,
            recipients,
            history,
            explanation,
            body_path: (!in_row).then(|| self.body_path(&body_file)),
            eight_bit,
            smtputf8,
            finished_at: finished.map(from_ms),
        }))
    }

    /// Make failed and queued messages due now, and resume their accounts.
    /// A failed message gets its failed recipients back as pending and a new
    /// give-up window; recipients that were sent are never sent again.
    /// Returns how many messages were queued.
    pub(super) fn retry(&self, which: Which, now: SystemTime) -> Result<usize> {
        let id = match which {
            Which::One(id) => Some(id.0),
            Which::All => None,
        };
        let now_ms = to_ms(now);
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        const PICK: &str = "state IN ('queued', 'failed') AND (?1 IS NULL OR id = ?1)";
        tx.execute(
            &format!(
                "DELETE FROM paused_accounts
                 WHERE account IN (SELECT account FROM messages WHERE {PICK})"
            ),
            params![id],
        )
        .map_err(db)?;
        tx.execute(
            "UPDATE recipients SET state = 'pending', updated_at = ?2
             WHERE state = 'failed'
               AND msg IN (SELECT id FROM messages WHERE state = 'failed' AND (?1 IS NULL OR id = ?1))",
            params![id, now_ms],
        )
        .map_err(db)?;
        let n = tx
            .execute(
                &format!(
                    "UPDATE messages
                     SET window_start = CASE WHEN state = 'failed' THEN ?2 ELSE window_start END,
                         state = 'queued', next_attempt_at = ?2, finished_at = NULL
                     WHERE {PICK}"
                ),
                params![id, now_ms],
            )
            .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(n)
    }

    /// Delete a message and its body. False when there is no such id.
    /// Refused while a worker holds a live lease on it: it may be on the
    /// wire right now.
    pub(super) fn purge(&self, id: MessageId) -> Result<bool> {
        let now = to_ms(SystemTime::now());
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let row: Option<(String, Option<i64>, String)> = tx
            .query_row(
                "SELECT state, lease_until, body_file FROM messages WHERE id = ?1",
                [id.0],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((state, lease_until, body_file)) = row else {
            return Ok(false);
        };
        if state == "delivering" && lease_until.is_some_and(|u| u > now) {
            return Err(Error::new(
                ErrorKind::Transient,
                format!(
                    "message {id} is being delivered right now; purge it once the attempt \
                     has ended ({})",
                    say(&Action::ShowMessage { id: id.to_string() })
                ),
            ));
        }
        tx.execute("DELETE FROM messages WHERE id = ?1", [id.0])
            .map_err(db)?;
        tx.commit().map_err(db)?;
        // After the COMMIT: if this fails, the file is an orphan that the
        // clean-up at open removes.
        let path = self.body_path(&body_file);
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("outbox: cannot remove {}: {e}", path.display());
        }
        Ok(true)
    }

    /// Delete the messages in `state` (sent or failed: finished ones) that
    /// finished before `finished_before`, with their stored copies; returns
    /// how many. Retention (`[relay] keep_sent`) and `queue purge --sent`.
    pub(super) fn purge_finished(&self, state: State, finished_before: SystemTime) -> Result<u64> {
        if !matches!(state, State::Sent | State::Failed) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("only sent or failed messages are purged by age, not {state} ones"),
            ));
        }
        let before = to_ms(finished_before);
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let files: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "SELECT body_file FROM messages
                     WHERE state = ?1 AND finished_at IS NOT NULL AND finished_at < ?2",
                )
                .map_err(db)?;
            stmt.query_map(rusqlite::params![state.as_str(), before], |r| r.get(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<String>>>())
                .map_err(db)?
        };
        tx.execute(
            "DELETE FROM messages
             WHERE state = ?1 AND finished_at IS NOT NULL AND finished_at < ?2",
            rusqlite::params![state.as_str(), before],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        drop(conn);
        // After the COMMIT, as in `purge`: a file left is an orphan that
        // the clean-up at open removes.
        for f in &files {
            let path = self.body_path(f);
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!("outbox: cannot remove {}: {e}", path.display());
            }
        }
        Ok(files.len() as u64)
    }

    /// How many messages are in each state.
    pub(super) fn counts(&self) -> Result<Counts> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached("SELECT state, COUNT(*) FROM messages GROUP BY state")
            .map_err(db)?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(db)?;
        let mut c = Counts::default();
        for (state, n) in rows {
            match parse_state(&state) {
                State::Queued => c.queued = n,
                State::Delivering => c.delivering = n,
                State::Sent => c.sent = n,
                State::Failed => c.failed = n,
            }
        }
        Ok(c)
    }

    /// When a worker next has something to claim: the earliest due time of
    /// a queued message, or lease expiry of a delivering one, ignoring
    /// accounts paused until resumed. `None`: nothing to wait for.
    pub(super) fn next_due(&self) -> Result<Option<SystemTime>> {
        let conn = self.conn();
        let t: Option<i64> = conn
            .query_row(
                "SELECT MIN(CASE WHEN p.until IS NULL
                                 THEN (CASE m.state WHEN 'queued' THEN m.next_attempt_at
                                                    ELSE m.lease_until END)
                                 ELSE max(p.until, CASE m.state WHEN 'queued'
                                      THEN m.next_attempt_at ELSE m.lease_until END) END)
                 FROM messages m LEFT JOIN paused_accounts p ON p.account = m.account
                 WHERE m.state IN ('queued', 'delivering')
                   AND (p.account IS NULL OR p.until IS NOT NULL)",
                [],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(t.map(from_ms))
    }
}
