//! Leases in SQLite: delivery workers claim due messages, keep their leases
//! alive, and hand back what they will not send. The outcome of an attempt
//! is recorded by `finish`.
//!
//! Every worker, in any process, claims through one UPDATE inside an
//! IMMEDIATE transaction, so two workers never hold the same message. A
//! lease that runs out (the worker crashed or hung) makes the message
//! claimable again, with a new token; the old worker's report is then
//! refused ([`Disposition::LeaseLost`]) instead of overwriting the new one's.

use std::time::{Duration, SystemTime};

use rusqlite::{Transaction, params};

use super::super::MessageId;
use super::super::delivery::{Claim, Scope, StoredBody};
use super::super::finish::INTERRUPTED;
use super::super::message::AttemptKind;
use super::super::time::{from_ms, plus_ms, to_ms};
use super::{Sqlite, db, immediate};
use postie::error::Result;

/// Due: queued and its time has come, or leased to a worker that stopped
/// renewing. `m` is the messages table.
const DUE: &str = "((m.state = 'queued' AND m.next_attempt_at <= :now)
                   OR (m.state = 'delivering' AND m.lease_until <= :now))";

impl Sqlite {
    /// `Store::claim_in`.
    pub(super) fn claim_in(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
        scope: &Scope<'_>,
        token_prefix: &str,
    ) -> Result<Vec<Claim>> {
        let Scope { account, batch } = *scope;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (now_ms, until_ms) = (to_ms(now), plus_ms(now, lease));
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        // One statement picks and leases: nothing can slip in between.
        // The window function keeps probes to one message per account.
        let sql = format!(
            "UPDATE messages
             SET state = 'delivering',
                 lease_until = :until,
                 lease_token = :prefix || lower(hex(randomblob(16))),
                 reclaimed = (state = 'delivering'),
                 attempts = attempts + (state = 'delivering')
             WHERE id IN (
                 SELECT id FROM (
                     SELECT m.id, m.queued_at, p.account IS NOT NULL AS probe,
                            row_number() OVER (PARTITION BY m.account
                                               ORDER BY m.queued_at, m.id) AS nth
                     FROM messages m
                     LEFT JOIN paused_accounts p ON p.account = m.account
                     WHERE {DUE}
                       AND (:account IS NULL OR m.account = :account)
                       AND (:batch IS NULL OR m.batch = :batch)
                       AND (p.account IS NULL OR (p.until IS NOT NULL AND p.until <= :now)))
                 WHERE NOT probe OR nth = 1
                 ORDER BY queued_at, id
                 LIMIT :limit)
             RETURNING id, account, mail_from, body_file, size, eight_bit, smtputf8,
                       attempts, queued_at, lease_token, reclaimed, body"
        );
        let mut claims = Vec::new();
        let mut reclaimed = Vec::new();
        {
            let mut stmt = tx.prepare_cached(&sql).map_err(db)?;
            let mut rows = stmt
                .query(rusqlite::named_params! {
                    ":now": now_ms,
                    ":until": until_ms,
                    ":prefix": token_prefix,
                    ":account": account,
                    ":batch": batch,
                    ":limit": i64::try_from(limit).unwrap_or(i64::MAX),
                })
                .map_err(db)?;
            while let Some(r) = rows.next().map_err(db)? {
                let body_file: String = r.get(3).map_err(db)?;
                let claim = Claim {
                    id: MessageId(r.get(0).map_err(db)?),
                    account: r.get(1).map_err(db)?,
                    mail_from: r.get(2).map_err(db)?,
                    recipients: Vec::new(),
                    body: match r.get::<_, Option<Vec<u8>>>(11).map_err(db)? {
                        Some(bytes) => StoredBody::Row(bytes.into()),
                        None => StoredBody::File(self.body_path(&body_file)),
                    },
                    size: r.get::<_, i64>(4).map_err(db)?.max(0) as u64,
                    eight_bit: r.get(5).map_err(db)?,
                    smtputf8: r.get(6).map_err(db)?,
                    attempts: r.get::<_, i64>(7).map_err(db)?.clamp(0, u32::MAX.into()) as u32,
                    queued_at: from_ms(r.get(8).map_err(db)?),
                    lease_token: r.get(9).map_err(db)?,
                    lease_until: from_ms(until_ms),
                };
                if r.get::<_, bool>(10).map_err(db)? {
                    reclaimed.push(claim.id);
                }
                claims.push(claim);
            }
        }
        for id in reclaimed {
            record_interrupted(&tx, id, now_ms)?;
        }
        for c in &mut claims {
            c.recipients = pending(&tx, c.id)?;
            // A probe holds the pause for as long as its lease: other
            // claims in the meantime do not send a second probe.
            tx.execute(
                "UPDATE paused_accounts SET until = ?2
                 WHERE account = ?1 AND until IS NOT NULL AND until <= ?3",
                params![c.account, until_ms, now_ms],
            )
            .map_err(db)?;
        }
        tx.commit().map_err(db)?;
        // RETURNING gives no order.
        claims.sort_by_key(|c| (c.queued_at, c.id));
        Ok(claims)
    }

    /// Extend a lease to `now + lease` while a long send is under way.
    /// False when the lease was lost (nothing changed).
    pub(super) fn renew(&self, claim: &Claim, now: SystemTime, lease: Duration) -> Result<bool> {
        let conn = self.conn();
        let n = conn
            .execute(
                "UPDATE messages SET lease_until = ?3
                 WHERE id = ?1 AND state = 'delivering' AND lease_token = ?2",
                params![claim.id.0, claim.lease_token, plus_ms(now, lease)],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Give a claimed message back untouched, due as before, no attempt
    /// counted (the worker did not try it). False when the lease was lost.
    pub(super) fn release(&self, claim: &Claim) -> Result<bool> {
        let conn = self.conn();
        let n = conn
            .execute(
                "UPDATE messages SET state = 'queued', lease_until = NULL, lease_token = NULL
                 WHERE id = ?1 AND state = 'delivering' AND lease_token = ?2",
                params![claim.id.0, claim.lease_token],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Give a claimed message back, due at `until`, with `reason` as its
    /// explanation, no attempt counted: the worker chose not to try it
    /// (a daily sending limit it keeps itself). False when the lease was lost.
    pub(super) fn postpone(&self, claim: &Claim, until: SystemTime, reason: &str) -> Result<bool> {
        let conn = self.conn();
        let n = conn
            .execute(
                "UPDATE messages SET state = 'queued', lease_until = NULL, lease_token = NULL,
                     next_attempt_at = ?3, window_start = MAX(window_start, ?3),
                     explanation = ?4
                 WHERE id = ?1 AND state = 'delivering' AND lease_token = ?2",
                params![claim.id.0, claim.lease_token, to_ms(until), reason],
            )
            .map_err(db)?;
        Ok(n == 1)
    }

    /// Return to the queue, due now, every message leased with a token that
    /// starts with `token_prefix`: its worker is known to be gone, so there
    /// is no need to wait for the leases to run out. Each counts as an
    /// interrupted attempt (the message may have reached the server).
    pub(super) fn release_holder(&self, token_prefix: &str) -> Result<usize> {
        if token_prefix.is_empty() {
            return Ok(0);
        }
        let now = to_ms(SystemTime::now());
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let ids: Vec<i64> = {
            let mut stmt = tx
                .prepare(
                    "UPDATE messages
                     SET state = 'queued', lease_until = NULL, lease_token = NULL,
                         next_attempt_at = ?2, attempts = attempts + 1
                     WHERE state = 'delivering'
                       AND substr(lease_token, 1, length(?1)) = ?1
                     RETURNING id",
                )
                .map_err(db)?;
            stmt.query_map(params![token_prefix, now], |r| r.get(0))
                .and_then(|rows| rows.collect::<rusqlite::Result<_>>())
                .map_err(db)?
        };
        for &id in &ids {
            record_interrupted(&tx, MessageId(id), now)?;
        }
        tx.commit().map_err(db)?;
        Ok(ids.len())
    }
}

/// The pending recipients of a message, in envelope order.
pub(super) fn pending(tx: &Transaction<'_>, id: MessageId) -> Result<Vec<String>> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT address FROM recipients WHERE msg = ?1 AND state = 'pending' ORDER BY position",
        )
        .map_err(db)?;
    stmt.query_map([id.0], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(db)
}

fn record_interrupted(tx: &Transaction<'_>, id: MessageId, now_ms: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO attempts (msg, at, kind, explanation) VALUES (?1, ?2, ?3, ?4)",
        params![id.0, now_ms, AttemptKind::Interrupted.as_str(), INTERRUPTED],
    )
    .map_err(db)?;
    Ok(())
}
