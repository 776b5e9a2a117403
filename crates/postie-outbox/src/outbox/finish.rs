//! Recording an attempt, the same for every store: recipients, the attempt
//! row, and the message's next state from the retry policy, all inside one
//! transaction of the store ([`FinishTx`]).

use std::time::SystemTime;

use super::delivery::{Claim, Disposition, FailureClass, Outcome, RecipientResult};
use super::message::{AttemptKind, RecipientCounts};
use super::policy::{Decision, RetryPolicy, decide};
use super::time::{from_ms, plus_ms, to_ms};
use super::{MessageId, ReplyRecord};
use postie::error::Result;

/// What a store does inside the transaction that records an attempt.
pub(super) trait FinishTx {
    /// The message's attempts so far and the start of its give-up window
    /// (ms), when `claim` still holds its lease.
    fn leased(&mut self, claim: &Claim) -> Result<Option<(i64, i64)>>;
    /// Set a pending recipient's state (`sent`, `pending`, `failed`) and
    /// reply.
    fn set_recipient(
        &mut self,
        id: MessageId,
        address: &str,
        state: &str,
        reply: &ReplyRecord,
        now_ms: i64,
    ) -> Result<()>;
    /// Add a row to the message's history.
    fn insert_attempt(
        &mut self,
        id: MessageId,
        now_ms: i64,
        kind: AttemptKind,
        reply: Option<&ReplyRecord>,
        explanation: Option<&str>,
    ) -> Result<()>;
    /// A probe after an expiring pause got through: sending resumes.
    fn end_probe_pause(&mut self, account: &str) -> Result<()>;
    /// The message's recipients by state.
    fn counts(&mut self, id: MessageId) -> Result<RecipientCounts>;
    /// The failed recipients, in envelope order.
    fn failed_recipients(&mut self, id: MessageId) -> Result<Vec<String>>;
    /// Pause `account` (see `Store::pause_account`); true when it was not
    /// paused before.
    fn pause(
        &mut self,
        account: &str,
        reason: &str,
        now_ms: i64,
        until: Option<i64>,
    ) -> Result<bool>;
    /// The pending recipients fail, with `reply` when the attempt had one
    /// (else each keeps its own last reply).
    fn give_up(&mut self, id: MessageId, reply: Option<&ReplyRecord>, now_ms: i64) -> Result<()>;
    /// The message's new state; its lease ends.
    fn update_message(&mut self, id: MessageId, u: &MessageUpdate<'_>) -> Result<()>;
}

/// The message row after an attempt.
pub(super) struct MessageUpdate<'a> {
    pub state: &'static str,
    pub attempts: u32,
    /// `None`: keep the due time.
    pub next_attempt: Option<i64>,
    pub finished: Option<i64>,
    pub reply: Option<&'a ReplyRecord>,
    pub explanation: Option<&'a str>,
}

/// What one outcome means before the policy has its say.
struct Attempt {
    kind: AttemptKind,
    reply: Option<ReplyRecord>,
    explanation: Option<String>,
    /// How to retry what is still pending.
    class: FailureClass,
    /// Some recipient was accepted: the account's credentials work.
    accepted_any: bool,
    /// The server's own wait before a retry (`Retry-After`).
    not_before: Option<std::time::Duration>,
}

/// Record the outcome of a claimed attempt in `tx` and decide what follows
/// (see `Store::finish`). The caller commits.
pub(super) fn finish_in(
    tx: &mut impl FinishTx,
    claim: &Claim,
    outcome: Outcome,
    now: SystemTime,
    policy: &RetryPolicy,
) -> Result<Disposition> {
    let jitter: f64 = rand::random();
    let now_ms = to_ms(now);
    let Some((attempts, window_start)) = tx.leased(claim)? else {
        return Ok(Disposition::LeaseLost);
    };
    let attempts = u32::try_from(attempts.saturating_add(1)).unwrap_or(u32::MAX);
    let attempt = apply(tx, claim.id, outcome, now_ms)?;
    tx.insert_attempt(
        claim.id,
        now_ms,
        attempt.kind,
        attempt.reply.as_ref(),
        attempt.explanation.as_deref(),
    )?;
    if attempt.accepted_any {
        tx.end_probe_pause(&claim.account)?;
    }

    let mut explanation = attempt.explanation.clone();
    let mut next_attempt = None;
    let counts = tx.counts(claim.id)?;
    let disposition = if counts.pending == 0 {
        finalize(tx, claim.id, counts)?
    } else {
        let window_start = from_ms(window_start);
        match decide(policy, attempt.class, attempts, window_start, now, jitter) {
            Decision::RetryAt(t) => {
                // No sooner than the server asked (still within give_up_after).
                let t = match attempt.not_before.and_then(|w| now.checked_add(w)) {
                    Some(asked) if asked > t => {
                        let end = window_start.checked_add(policy.give_up_after);
                        end.map_or(asked, |d| asked.min(d.max(t)))
                    }
                    _ => t,
                };
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
                let newly = tx.pause(&claim.account, &reason, now_ms, until)?;
                Disposition::Paused {
                    account: claim.account.clone(),
                    newly,
                }
            }
            Decision::GiveUp => {
                tx.give_up(claim.id, attempt.reply.as_ref(), now_ms)?;
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
                let counts = tx.counts(claim.id)?;
                finalize(tx, claim.id, counts)?
            }
        }
    };
    let (state, finished) = match &disposition {
        Disposition::Sent | Disposition::PartlyFailed { .. } => ("sent", Some(now_ms)),
        Disposition::Failed => ("failed", Some(now_ms)),
        _ => ("queued", None),
    };
    tx.update_message(
        claim.id,
        &MessageUpdate {
            state,
            attempts,
            next_attempt,
            finished,
            reply: attempt.reply.as_ref(),
            explanation: explanation.as_deref(),
        },
    )?;
    Ok(disposition)
}

/// Update the recipients from the outcome; say what kind of attempt it was.
fn apply(tx: &mut impl FinishTx, id: MessageId, outcome: Outcome, now_ms: i64) -> Result<Attempt> {
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
                not_before: None,
            });
        }
        Outcome::Throttled { wait, explanation } => {
            return Ok(Attempt {
                kind: AttemptKind::Transient,
                reply: None,
                explanation: Some(explanation),
                class: FailureClass::Transient,
                accepted_any: false,
                not_before: Some(wait),
            });
        }
        Outcome::Transaction(list) => (list, FailureClass::Transient, None, None::<String>),
    };
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
        tx.set_recipient(id, &r.address, state, &rec, now_ms)?;
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
        not_before: None,
    })
}

/// No recipient is pending: sent if anyone got it, else failed.
fn finalize(tx: &mut impl FinishTx, id: MessageId, counts: RecipientCounts) -> Result<Disposition> {
    if counts.sent == 0 {
        return Ok(Disposition::Failed);
    }
    if counts.failed == 0 {
        return Ok(Disposition::Sent);
    }
    Ok(Disposition::PartlyFailed {
        failed: tx.failed_recipients(id)?,
    })
}

/// The explanation of an attempt that was interrupted: its worker stopped
/// before it reported.
pub(super) const INTERRUPTED: &str = "the worker delivering it stopped before it reported; \
     the message may have reached the server, so a duplicate is possible";
