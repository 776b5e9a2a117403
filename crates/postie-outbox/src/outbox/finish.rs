//! Recording an attempt: recipients, the attempt row, and the message's next
//! state from the retry policy, all in one transaction.

use std::time::SystemTime;

use rusqlite::{OptionalExtension, Transaction, params};

use super::delivery::{Claim, Disposition, FailureClass, Outcome, RecipientResult};
use super::message::{AttemptKind, RecipientCounts};
use super::pause::pause_in;
use super::policy::{Decision, RetryPolicy, decide};
use super::time::{from_ms, plus_ms, to_ms};
use super::{MessageId, Outbox, ReplyRecord, db, immediate};
use postie::error::Result;

/// What one outcome means before the policy has its say.
struct Attempt {
    kind: AttemptKind,
    reply: Option<ReplyRecord>,
    explanation: Option<String>,
    /// How to retry what is still pending.
    class: FailureClass,
    /// Some recipient was accepted: the account's credentials work.
    accepted_any: bool,
}

impl Outbox {
    /// Record the outcome of a claimed attempt and decide what follows.
    /// Only the holder of the current lease may do so: a stale claim gets
    /// [`Disposition::LeaseLost`] and changes nothing. A lease that ran out
    /// but was not claimed again still counts: the result is real.
    pub fn finish(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Disposition> {
        let jitter: f64 = rand::random();
        let now_ms = to_ms(now);
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        let row: Option<(i64, i64)> = tx
            .query_row(
                "SELECT attempts, window_start FROM messages
                 WHERE id = ?1 AND state = 'delivering' AND lease_token = ?2",
                params![claim.id.0, claim.lease_token],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(db)?;
        let Some((attempts, window_start)) = row else {
            return Ok(Disposition::LeaseLost);
        };
        let attempts = u32::try_from(attempts.saturating_add(1)).unwrap_or(u32::MAX);
        let attempt = apply(&tx, claim.id, outcome, now_ms)?;
        tx.execute(
            "INSERT INTO attempts (msg, at, kind, code, enhanced, text, explanation)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                claim.id.0,
                now_ms,
                attempt.kind.as_str(),
                attempt.reply.as_ref().map(|r| r.code),
                attempt.reply.as_ref().and_then(|r| r.enhanced.as_deref()),
                attempt.reply.as_ref().map(|r| r.text.as_str()),
                attempt.explanation
            ],
        )
        .map_err(db)?;
        if attempt.accepted_any {
            // A probe after an expiring pause got through: sending resumes.
            tx.execute(
                "DELETE FROM paused_accounts WHERE account = ?1 AND until IS NOT NULL",
                [&claim.account],
            )
            .map_err(db)?;
        }

        let mut explanation = attempt.explanation.clone();
        let mut next_attempt = None;
        let counts = counts(&tx, claim.id)?;
        let disposition = if counts.pending == 0 {
            finalize(&tx, claim.id, counts)?
        } else {
            let window_start = from_ms(window_start);
            match decide(policy, attempt.class, attempts, window_start, now, jitter) {
                Decision::RetryAt(t) => {
                    // Report the time as stored (milliseconds).
                    let ms = to_ms(t);
                    next_attempt = Some(ms);
                    Disposition::RetryAt(from_ms(ms))
                }
                Decision::PauseAccount => {
                    next_attempt = Some(now_ms);
                    let reason = attempt
                        .explanation
                        .clone()
                        .or_else(|| {
                            attempt
                                .reply
                                .as_ref()
                                .map(|r| format!("{} {}", r.code, r.text))
                        })
                        .unwrap_or_else(|| "the server refused the credentials".into());
                    let until = policy.credentials_pause.map(|d| plus_ms(now, d));
                    let newly = pause_in(&tx, &claim.account, &reason, now_ms, until)?;
                    Disposition::Paused {
                        account: claim.account.clone(),
                        newly,
                    }
                }
                Decision::GiveUp => {
                    give_up(&tx, claim.id, attempt.reply.as_ref(), now_ms)?;
                    if attempt.class != FailureClass::Permanent {
                        let note = format!(
                            "gave up after {attempts} attempt(s): not delivered within {} hours \
                             of being queued (RFC 5321 4.5.4.1)",
                            policy.give_up_after.as_secs() / 3600
                        );
                        explanation = Some(match explanation {
                            Some(e) if !e.is_empty() => format!("{e}\n{note}"),
                            _ => note,
                        });
                    }
                    finalize(&tx, claim.id, self::counts(&tx, claim.id)?)?
                }
            }
        };
        let (state, finished) = match &disposition {
            Disposition::Sent | Disposition::PartlyFailed { .. } => ("sent", Some(now_ms)),
            Disposition::Failed => ("failed", Some(now_ms)),
            _ => ("queued", None),
        };
        tx.execute(
            "UPDATE messages
             SET state = ?2, attempts = ?3, lease_until = NULL, lease_token = NULL,
                 next_attempt_at = COALESCE(?4, next_attempt_at), finished_at = ?5,
                 last_code = ?6, last_enhanced = ?7, last_text = ?8, explanation = ?9
             WHERE id = ?1",
            params![
                claim.id.0,
                state,
                attempts,
                next_attempt,
                finished,
                attempt.reply.as_ref().map(|r| r.code),
                attempt.reply.as_ref().and_then(|r| r.enhanced.as_deref()),
                attempt.reply.as_ref().map(|r| r.text.as_str()),
                explanation
            ],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(disposition)
    }

    /// When each message of `account` that reached the server (some
    /// recipient accepted) was sent since `since`, oldest first, with the
    /// recipients it reached: for a worker that keeps a provider's daily
    /// limits.
    pub fn sent_since(&self, account: &str, since: SystemTime) -> Result<Vec<(SystemTime, u32)>> {
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

/// Update the recipients from the outcome; say what kind of attempt it was.
fn apply(tx: &Transaction<'_>, id: MessageId, outcome: Outcome, now_ms: i64) -> Result<Attempt> {
    let (list, class, reply, explanation) = match outcome {
        Outcome::Failed {
            class,
            reply,
            explanation,
        } => {
            let kind = match class {
                FailureClass::Transient => AttemptKind::Transient,
                FailureClass::Quota => AttemptKind::Quota,
                FailureClass::Credentials => AttemptKind::Credentials,
                FailureClass::Permanent => AttemptKind::Permanent,
            };
            let explanation = (!explanation.is_empty()).then_some(explanation);
            return Ok(Attempt {
                kind,
                reply,
                explanation,
                class,
                accepted_any: false,
            });
        }
        Outcome::Transaction(list) => (list, FailureClass::Transient, None, None::<String>),
    };
    let mut stmt = tx
        .prepare_cached(
            "UPDATE recipients SET state = ?3, code = ?4, enhanced = ?5, text = ?6, updated_at = ?7
             WHERE msg = ?1 AND address = ?2 AND state = 'pending'",
        )
        .map_err(db)?;
    let (mut accepted, mut refused) = (0, 0);
    let mut first_refusal: Option<ReplyRecord> = reply;
    let mut last_accept = None;
    for r in list {
        let (state, rec) = match r.result {
            RecipientResult::Accepted(rec) => ("sent", rec),
            RecipientResult::TempFailed(rec) => ("pending", rec),
            RecipientResult::PermFailed(rec) => ("failed", rec),
        };
        if state == "sent" {
            accepted += 1;
            last_accept = Some(rec.clone());
        } else {
            refused += 1;
            first_refusal.get_or_insert_with(|| rec.clone());
        }
        stmt.execute(params![
            id.0,
            r.address,
            state,
            rec.code,
            rec.enhanced,
            rec.text,
            now_ms
        ])
        .map_err(db)?;
    }
    let kind = match (accepted, refused) {
        (_, 0) if accepted > 0 => AttemptKind::Delivered,
        (0, _) => AttemptKind::Refused,
        _ => AttemptKind::Partial,
    };
    Ok(Attempt {
        kind,
        reply: first_refusal.or(last_accept),
        explanation,
        class,
        accepted_any: accepted > 0,
    })
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

/// The pending recipients fail, with `reply` when the attempt had one (else
/// each keeps its own last reply).
fn give_up(
    tx: &Transaction<'_>,
    id: MessageId,
    reply: Option<&ReplyRecord>,
    now_ms: i64,
) -> Result<()> {
    match reply {
        Some(r) => tx.execute(
            "UPDATE recipients SET state = 'failed', code = ?2, enhanced = ?3, text = ?4,
                 updated_at = ?5
             WHERE msg = ?1 AND state = 'pending'",
            params![id.0, r.code, r.enhanced, r.text, now_ms],
        ),
        None => tx.execute(
            "UPDATE recipients SET state = 'failed', updated_at = ?2
             WHERE msg = ?1 AND state = 'pending'",
            params![id.0, now_ms],
        ),
    }
    .map_err(db)?;
    Ok(())
}

/// No recipient is pending: sent if anyone got it, else failed.
fn finalize(tx: &Transaction<'_>, id: MessageId, counts: RecipientCounts) -> Result<Disposition> {
    if counts.sent == 0 {
        return Ok(Disposition::Failed);
    }
    if counts.failed == 0 {
        return Ok(Disposition::Sent);
    }
    let mut stmt = tx
        .prepare_cached(
            "SELECT address FROM recipients WHERE msg = ?1 AND state = 'failed' ORDER BY position",
        )
        .map_err(db)?;
    let failed = stmt
        .query_map([id.0], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(db)?;
    Ok(Disposition::PartlyFailed { failed })
}
