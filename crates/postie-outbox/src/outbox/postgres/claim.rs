//! Leases in PostgreSQL: claims, renewals, releases, the deliverers that
//! hold them, and the attempts they report.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use postgres::types::Type;
use postgres::{Client, Transaction};

use super::super::delivery::{Claim, Disposition, Outcome, RecipientResult, Scope, StoredBody};
use super::super::finish::{FinishTx, INTERRUPTED, MessageUpdate, finish_in};
use super::super::message::{AttemptKind, RecipientCounts};
use super::super::policy::RetryPolicy;
use super::super::time::{from_ms, plus_ms, to_ms};
use super::super::{Holder, MessageId, ReplyRecord};
use super::{Postgres, pg};
use postie::error::Result;

/// Pick due messages and lease them, in one statement. `{due}`: which
/// messages and in which order, each with an index of its own that gives
/// that order (see `claim_sql`). `$6`: take the messages of a paused
/// account (`$3`, a probe); else paused accounts are skipped. `SKIP
/// LOCKED`: rows another host is leasing right now are passed over, never
/// waited for.
const CLAIM: &str = "
WITH due AS (
    SELECT m.id FROM messages m
    WHERE {due}
      AND ($3::text IS NULL OR m.account = $3)
      AND ($4::text IS NULL OR m.batch = $4)
      AND ($6 OR NOT EXISTS (SELECT 1 FROM paused_accounts p WHERE p.account = m.account))
    ORDER BY {order}
    LIMIT $5
    FOR UPDATE OF m SKIP LOCKED)
UPDATE messages m
SET state = 'delivering',
    lease_until = $2,
    lease_token = $7 || replace(gen_random_uuid()::text, '-', ''),
    reclaimed = (m.state = 'delivering'),
    attempts = m.attempts + CASE WHEN m.state = 'delivering' THEN 1 ELSE 0 END
FROM due WHERE m.id = due.id
RETURNING m.id, m.account, m.mail_from, m.size, m.eight_bit, m.smtputf8, m.attempts,
          m.queued_at, m.lease_token, m.reclaimed";

/// The parameters of [`CLAIM`], typed: each statement is then one round
/// trip (no separate prepare).
fn claim_params<'a>(
    now_ms: &'a i64,
    until_ms: &'a i64,
    account: &'a Option<&'a str>,
    batch: &'a Option<&'a str>,
    limit: &'a i64,
    probe: &'a bool,
    token_prefix: &'a &'a str,
) -> Vec<(&'a (dyn postgres::types::ToSql + Sync), Type)> {
    vec![
        (now_ms, Type::INT8),
        (until_ms, Type::INT8),
        (account, Type::TEXT),
        (batch, Type::TEXT),
        (limit, Type::INT8),
        (probe, Type::BOOL),
        (token_prefix, Type::TEXT),
    ]
}

/// The claim of messages whose lease ran out (their deliverer hung or
/// died), then the claim of queued messages that are due, oldest due first.
/// Two statements rather than one with `OR`: each walks its own partial
/// index in order and stops at `LIMIT`, so a claim costs the same with ten
/// messages queued or a million.
fn claim_sql() -> &'static [String; 2] {
    static SQL: std::sync::OnceLock<[String; 2]> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let q = |due: &str, order: &str| CLAIM.replace("{due}", due).replace("{order}", order);
        [
            q(
                "m.state = 'delivering' AND m.lease_until <= $1",
                "m.lease_until, m.id",
            ),
            q(
                "m.state = 'queued' AND m.next_attempt_at <= $1",
                "m.next_attempt_at, m.id",
            ),
        ]
    })
}

pub(super) fn claim_in(
    s: &Postgres,
    now: SystemTime,
    lease: Duration,
    limit: usize,
    scope: &Scope<'_>,
    token_prefix: &str,
) -> Result<Vec<Claim>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let (now_ms, until_ms) = (to_ms(now), plus_ms(now, lease));
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(pg)?;
    let mut rows = Vec::new();
    // Probes: one message of each account whose pause has run out. The
    // pause row is locked, so two hosts never probe one account at once,
    // and its `until` moves to the lease's end.
    let probes: Vec<String> = tx
        .query_typed(
            "SELECT account FROM paused_accounts
             WHERE until IS NOT NULL AND until <= $1 AND ($2::text IS NULL OR account = $2)
             ORDER BY since FOR UPDATE SKIP LOCKED",
            &[(&now_ms, Type::INT8), (&scope.account, Type::TEXT)],
        )
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for account in probes {
        if rows.len() >= limit {
            break;
        }
        let mut got = Vec::new();
        for sql in claim_sql() {
            if got.is_empty() {
                got = tx
                    .query_typed(
                        sql.as_str(),
                        &claim_params(
                            &now_ms,
                            &until_ms,
                            &Some(account.as_str()),
                            &scope.batch,
                            &1,
                            &true,
                            &token_prefix,
                        ),
                    )
                    .map_err(pg)?;
            }
        }
        if !got.is_empty() {
            tx.execute(
                "UPDATE paused_accounts SET until = $2 WHERE account = $1",
                &[&account, &until_ms],
            )
            .map_err(pg)?;
        }
        rows.extend(got);
    }
    for sql in claim_sql() {
        if rows.len() >= limit {
            break;
        }
        let rest = (limit - rows.len()) as i64;
        rows.extend(
            tx.query_typed(
                sql.as_str(),
                &claim_params(
                    &now_ms,
                    &until_ms,
                    &scope.account,
                    &scope.batch,
                    &rest,
                    &false,
                    &token_prefix,
                ),
            )
            .map_err(pg)?,
        );
    }
    if rows.is_empty() {
        tx.commit().map_err(pg)?;
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let reclaimed: Vec<i64> = rows
        .iter()
        .filter(|r| r.get::<_, bool>(9))
        .map(|r| r.get(0))
        .collect();
    if !reclaimed.is_empty() {
        tx.execute(
            "INSERT INTO attempts (msg, at, kind, explanation, host)
             SELECT unnest($1::bigint[]), $2, $3, $4, $5",
            &[
                &reclaimed,
                &now_ms,
                &AttemptKind::Interrupted.as_str(),
                &INTERRUPTED,
                &s.host,
            ],
        )
        .map_err(pg)?;
    }
    let mut recipients: HashMap<i64, Vec<String>> = HashMap::new();
    for r in tx
        .query_typed(
            "SELECT msg, address FROM recipients WHERE msg = ANY($1) AND state = 'pending'
             ORDER BY msg, position",
            &[(&ids, Type::INT8_ARRAY)],
        )
        .map_err(pg)?
    {
        recipients.entry(r.get(0)).or_default().push(r.get(1));
    }
    let mut bodies: HashMap<i64, Vec<u8>> = tx
        .query_typed(
            "SELECT msg, body FROM bodies WHERE msg = ANY($1)",
            &[(&ids, Type::INT8_ARRAY)],
        )
        .map_err(pg)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    tx.commit().map_err(pg)?;
    let mut claims: Vec<Claim> = rows
        .iter()
        .map(|r| {
            let id: i64 = r.get(0);
            Claim {
                id: MessageId(id),
                account: r.get(1),
                mail_from: r.get(2),
                recipients: recipients.remove(&id).unwrap_or_default(),
                body: StoredBody::Row(bodies.remove(&id).unwrap_or_default().into()),
                size: r.get::<_, i64>(3).max(0) as u64,
                eight_bit: r.get(4),
                smtputf8: r.get(5),
                attempts: r.get::<_, i64>(6).clamp(0, u32::MAX.into()) as u32,
                queued_at: from_ms(r.get(7)),
                lease_token: r.get(8),
                lease_until: from_ms(until_ms),
            }
        })
        .collect();
    claims.sort_by_key(|c| (c.queued_at, c.id));
    Ok(claims)
}

/// Run one statement on the leased row; true when it still held the lease.
fn on_lease(
    s: &Postgres,
    claim: &Claim,
    sql: &str,
    extra: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<bool> {
    let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        vec![&claim.id.0, &claim.lease_token];
    params.extend_from_slice(extra);
    let n = s.conn()?.execute(sql, &params).map_err(pg)?;
    Ok(n == 1)
}

pub(super) fn renew(s: &Postgres, claim: &Claim, now: SystemTime, lease: Duration) -> Result<bool> {
    on_lease(
        s,
        claim,
        "UPDATE messages SET lease_until = $3
         WHERE id = $1 AND state = 'delivering' AND lease_token = $2",
        &[&plus_ms(now, lease)],
    )
}

pub(super) fn release(s: &Postgres, claim: &Claim) -> Result<bool> {
    on_lease(
        s,
        claim,
        "UPDATE messages SET state = 'queued', lease_until = NULL, lease_token = NULL
         WHERE id = $1 AND state = 'delivering' AND lease_token = $2",
        &[],
    )
}

pub(super) fn postpone(
    s: &Postgres,
    claim: &Claim,
    until: SystemTime,
    reason: &str,
) -> Result<bool> {
    on_lease(
        s,
        claim,
        "UPDATE messages SET state = 'queued', lease_until = NULL, lease_token = NULL,
             next_attempt_at = $3, window_start = GREATEST(window_start, $3),
             explanation = $4
         WHERE id = $1 AND state = 'delivering' AND lease_token = $2",
        &[&to_ms(until), &reason],
    )
}

pub(super) fn release_holder(s: &Postgres, token_prefix: &str) -> Result<usize> {
    if token_prefix.is_empty() {
        return Ok(0);
    }
    let now = to_ms(SystemTime::now());
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(pg)?;
    let n = release_in(&mut tx, token_prefix, now, &s.host)?;
    tx.commit().map_err(pg)?;
    Ok(n)
}

fn release_in(tx: &mut Transaction<'_>, token_prefix: &str, now: i64, host: &str) -> Result<usize> {
    let ids: Vec<i64> = tx
        .query(
            "UPDATE messages
             SET state = 'queued', lease_until = NULL, lease_token = NULL,
                 next_attempt_at = $2, attempts = attempts + 1
             WHERE state = 'delivering' AND starts_with(lease_token, $1)
             RETURNING id",
            &[&token_prefix, &now],
        )
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !ids.is_empty() {
        tx.execute(
            "INSERT INTO attempts (msg, at, kind, explanation, host)
             SELECT unnest($1::bigint[]), $2, $3, $4, $5",
            &[
                &ids,
                &now,
                &AttemptKind::Interrupted.as_str(),
                &INTERRUPTED,
                &host,
            ],
        )
        .map_err(pg)?;
    }
    Ok(ids.len())
}

/// A deliverer's session: it holds its advisory lock for as long as it
/// lives. Dropped, the connection closes and the lock goes with it.
struct Session {
    /// `None` only while dropped.
    client: Mutex<Option<Client>>,
    prefix: String,
}

impl Drop for Session {
    fn drop(&mut self) {
        let client = self.client.lock().unwrap_or_else(|e| e.into_inner()).take();
        let prefix = std::mem::take(&mut self.prefix);
        super::off_runtime(move || {
            if let Some(mut c) = client {
                let _ = c.execute("DELETE FROM holders WHERE prefix = $1", &[&prefix]);
            }
        });
    }
}

/// Register a deliverer on its own connection, holding a session advisory
/// lock, then recover the leases of deliverers whose lock can be taken:
/// their sessions ended, so their hosts are gone.
pub(super) fn register_holder(s: &Postgres) -> Result<Holder> {
    // The server notices a host that vanished (power, network) by TCP
    // keepalives within about 25 s, ends the session and frees the lock;
    // a process that dies closes its socket at once.
    let mut config = s.target.config.clone();
    config.options(&format!(
        "{} -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3",
        s.target.config.get_options().unwrap_or_default()
    ));
    let mut client = config
        .connect(s.target.tls()?)
        .map_err(|e| super::unreachable_db(&s.target, &e.to_string()))?;
    let prefix = Holder::new_prefix();
    let key: i64 = rand::random();
    client
        .execute("SELECT pg_advisory_lock($1)", &[&key])
        .map_err(pg)?;
    client
        .execute(
            "INSERT INTO holders (prefix, host, lock_key, since) VALUES ($1, $2, $3, $4)",
            &[&prefix, &s.host, &key, &to_ms(SystemTime::now())],
        )
        .map_err(pg)?;
    // On a pooled connection: in this session the new lock is held, and a
    // session takes its own advisory locks again, so it would find itself dead.
    let recovered = recover(s, &mut *s.conn()?)?;
    if recovered > 0 {
        tracing::info!(
            "returned {recovered} message(s) leased by deliverers that stopped to the queue"
        );
    }
    Ok(Holder::new(
        prefix.clone(),
        Session {
            client: Mutex::new(Some(client)),
            prefix,
        },
    ))
}

/// Return the leases of deliverers whose sessions ended. Each dead
/// holder's lock is taken (in this session) while its leases are released,
/// so two hosts never recover the same one twice. `client` must hold no
/// holder's lock: advisory locks are re-entrant within a session.
pub(super) fn recover(s: &Postgres, client: &mut Client) -> Result<usize> {
    let holders: Vec<(String, i64)> = client
        .query("SELECT prefix, lock_key FROM holders", &[])
        .map_err(pg)?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut recovered = 0;
    let now = to_ms(SystemTime::now());
    for (prefix, key) in holders {
        let free: bool = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .map_err(pg)?
            .get(0);
        if !free {
            continue;
        }
        let r = (|| -> Result<usize> {
            let mut tx = client.transaction().map_err(pg)?;
            let n = release_in(&mut tx, &prefix, now, &s.host)?;
            tx.execute("DELETE FROM holders WHERE prefix = $1", &[&prefix])
                .map_err(pg)?;
            tx.commit().map_err(pg)?;
            Ok(n)
        })();
        let _ = client.execute("SELECT pg_advisory_unlock($1)", &[&key]);
        recovered += r?;
    }
    Ok(recovered)
}

/// One attempt, by the rules every store shares (`finish_in`).
pub(super) fn finish(
    s: &Postgres,
    claim: &Claim,
    outcome: Outcome,
    now: SystemTime,
    policy: &RetryPolicy,
) -> Result<Disposition> {
    let mut conn = s.conn()?;
    let tx = conn.transaction().map_err(pg)?;
    let mut f = Finishing { tx, host: &s.host };
    let disposition = finish_in(&mut f, claim, outcome, now, policy)?;
    if disposition != Disposition::LeaseLost {
        f.tx.commit().map_err(pg)?;
    }
    Ok(disposition)
}

pub(super) fn finish_many(
    s: &Postgres,
    attempts: Vec<(Claim, Outcome)>,
    now: SystemTime,
    policy: &RetryPolicy,
) -> Result<Vec<Disposition>> {
    let mut conn = s.conn()?;
    let tx = conn.transaction().map_err(pg)?;
    let mut f = Finishing { tx, host: &s.host };
    let mut out = vec![Disposition::LeaseLost; attempts.len()];
    // First attempts that every recipient accepted (nearly all of them, on
    // a healthy queue) are recorded together, a statement per table for
    // all; the others one by one, by the rules every store shares.
    let (plain, other): (Vec<_>, Vec<_>) = attempts
        .into_iter()
        .enumerate()
        .partition(|(_, (c, o))| all_accepted(c, o));
    if !plain.is_empty() {
        let done = finish_plain(&mut f, &plain, to_ms(now))?;
        for (i, _) in &plain {
            if done.contains(i) {
                out[*i] = Disposition::Sent;
            }
        }
    }
    for (i, (claim, outcome)) in other {
        out[i] = finish_in(&mut f, &claim, outcome, now, policy)?;
    }
    if out.iter().any(|d| *d != Disposition::LeaseLost) {
        f.tx.commit().map_err(pg)?;
    }
    Ok(out)
}

/// A first attempt whose transaction every claimed recipient accepted: no
/// recipient can have failed before, so the message is sent.
fn all_accepted(claim: &Claim, outcome: &Outcome) -> bool {
    let Outcome::Transaction(list) = outcome else {
        return false;
    };
    claim.attempts == 0
        && !list.is_empty()
        && list.len() == claim.recipients.len()
        && list
            .iter()
            .all(|r| matches!(r.result, RecipientResult::Accepted(_)))
        && list
            .iter()
            .zip(&claim.recipients)
            .all(|(r, a)| r.address == *a)
}

/// Record `attempts` (each [`all_accepted`]) as sent in four statements;
/// returns the indexes of those whose lease still held (the others changed
/// nothing: their lease was lost).
fn finish_plain(
    f: &mut Finishing<'_, '_>,
    attempts: &[(usize, (Claim, Outcome))],
    now_ms: i64,
) -> Result<Vec<usize>> {
    // The message's last reply: its last recipient's, as `finish_in` keeps.
    let last = |o: &Outcome| match o {
        Outcome::Transaction(l) => match l.last().map(|r| &r.result) {
            Some(RecipientResult::Accepted(rec)) => Some(rec.clone()),
            _ => None,
        },
        _ => None,
    };
    let (mut ids, mut tokens, mut codes, mut enh, mut text) =
        (vec![], vec![], vec![], vec![], vec![]);
    for (_, (c, o)) in attempts {
        let rec = last(o).unwrap_or_else(|| ReplyRecord {
            code: 250,
            enhanced: None,
            text: String::new(),
        });
        ids.push(c.id.0);
        tokens.push(c.lease_token.as_str());
        codes.push(i64::from(rec.code));
        enh.push(rec.enhanced);
        text.push(rec.text);
    }
    let held: Vec<i64> =
        f.tx.query(
            "UPDATE messages m
             SET state = 'sent', attempts = m.attempts + 1, lease_until = NULL,
                 lease_token = NULL, finished_at = $1, last_code = u.code,
                 last_enhanced = u.enhanced, last_text = u.text, explanation = NULL
             FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[])
                  AS u(id, token, code, enhanced, text)
             WHERE m.id = u.id AND m.state = 'delivering' AND m.lease_token = u.token
             RETURNING m.id",
            &[&now_ms, &ids, &tokens, &codes, &enh, &text],
        )
        .map_err(pg)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if held.is_empty() {
        return Ok(Vec::new());
    }
    let held_set: std::collections::HashSet<i64> = held.iter().copied().collect();
    let (mut msg, mut addr, mut rcodes, mut renh, mut rtext) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut a_ids, mut a_codes, mut a_enh, mut a_text, mut accounts) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut done = Vec::new();
    for (k, (i, (c, o))) in attempts.iter().enumerate() {
        if !held_set.contains(&c.id.0) {
            continue;
        }
        done.push(*i);
        if let Outcome::Transaction(list) = o {
            for r in list {
                if let RecipientResult::Accepted(rec) = &r.result {
                    msg.push(c.id.0);
                    addr.push(r.address.as_str());
                    rcodes.push(i64::from(rec.code));
                    renh.push(rec.enhanced.as_deref());
                    rtext.push(rec.text.as_str());
                }
            }
        }
        a_ids.push(c.id.0);
        a_codes.push(codes[k]);
        a_enh.push(enh[k].as_deref());
        a_text.push(text[k].as_str());
        if !accounts.contains(&c.account.as_str()) {
            accounts.push(c.account.as_str());
        }
    }
    f.tx.execute(
        "UPDATE recipients r
         SET state = 'sent', code = u.code, enhanced = u.enhanced, text = u.text,
             updated_at = $1
         FROM unnest($2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[])
              AS u(msg, address, code, enhanced, text)
         WHERE r.msg = u.msg AND r.address = u.address AND r.state = 'pending'",
        &[&now_ms, &msg, &addr, &rcodes, &renh, &rtext],
    )
    .map_err(pg)?;
    f.tx.execute(
        "INSERT INTO attempts (msg, at, kind, code, enhanced, text, host)
         SELECT u.msg, $1, $2, u.code, u.enhanced, u.text, $3
         FROM unnest($4::bigint[], $5::bigint[], $6::text[], $7::text[])
              AS u(msg, code, enhanced, text)",
        &[
            &now_ms,
            &AttemptKind::Delivered.as_str(),
            &f.host,
            &a_ids,
            &a_codes,
            &a_enh,
            &a_text,
        ],
    )
    .map_err(pg)?;
    // Some recipient was accepted: a probe of an expiring pause got through.
    f.tx.execute(
        "DELETE FROM paused_accounts WHERE account = ANY($1) AND until IS NOT NULL",
        &[&accounts],
    )
    .map_err(pg)?;
    Ok(done)
}

/// The transaction that records an attempt, and the host recording it.
struct Finishing<'a, 'c> {
    tx: Transaction<'c>,
    host: &'a str,
}

impl FinishTx for Finishing<'_, '_> {
    fn leased(&mut self, claim: &Claim) -> Result<Option<(i64, i64)>> {
        // FOR UPDATE: the row stays ours until the commit.
        Ok(self
            .tx
            .query_opt(
                "SELECT attempts, window_start FROM messages
                 WHERE id = $1 AND state = 'delivering' AND lease_token = $2 FOR UPDATE",
                &[&claim.id.0, &claim.lease_token],
            )
            .map_err(pg)?
            .map(|r| (r.get(0), r.get(1))))
    }

    fn set_recipient(
        &mut self,
        id: MessageId,
        address: &str,
        state: &str,
        rec: &ReplyRecord,
        now_ms: i64,
    ) -> Result<()> {
        self.tx
            .execute(
                "UPDATE recipients SET state = $3, code = $4, enhanced = $5, text = $6,
                     updated_at = $7
                 WHERE msg = $1 AND address = $2 AND state = 'pending'",
                &[
                    &id.0,
                    &address,
                    &state,
                    &i64::from(rec.code),
                    &rec.enhanced,
                    &rec.text,
                    &now_ms,
                ],
            )
            .map_err(pg)?;
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
        self.tx
            .execute(
                "INSERT INTO attempts (msg, at, kind, code, enhanced, text, explanation, host)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                &[
                    &id.0,
                    &now_ms,
                    &kind.as_str(),
                    &reply.map(|r| i64::from(r.code)),
                    &reply.and_then(|r| r.enhanced.as_deref()),
                    &reply.map(|r| r.text.as_str()),
                    &explanation,
                    &self.host,
                ],
            )
            .map_err(pg)?;
        Ok(())
    }

    fn end_probe_pause(&mut self, account: &str) -> Result<()> {
        self.tx
            .execute(
                "DELETE FROM paused_accounts WHERE account = $1 AND until IS NOT NULL",
                &[&account],
            )
            .map_err(pg)?;
        Ok(())
    }

    fn counts(&mut self, id: MessageId) -> Result<RecipientCounts> {
        let r = self
            .tx
            .query_one(
                "SELECT count(*) FILTER (WHERE state = 'pending'),
                        count(*) FILTER (WHERE state = 'sent'),
                        count(*) FILTER (WHERE state = 'failed')
                 FROM recipients WHERE msg = $1",
                &[&id.0],
            )
            .map_err(pg)?;
        let n = |i| u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX);
        Ok(RecipientCounts {
            pending: n(0),
            sent: n(1),
            failed: n(2),
        })
    }

    fn failed_recipients(&mut self, id: MessageId) -> Result<Vec<String>> {
        Ok(self
            .tx
            .query(
                "SELECT address FROM recipients WHERE msg = $1 AND state = 'failed'
                 ORDER BY position",
                &[&id.0],
            )
            .map_err(pg)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    fn pause(
        &mut self,
        account: &str,
        reason: &str,
        now_ms: i64,
        until: Option<i64>,
    ) -> Result<bool> {
        super::admin::pause_in(&mut self.tx, account, reason, now_ms, until)
    }

    fn give_up(&mut self, id: MessageId, reply: Option<&ReplyRecord>, now_ms: i64) -> Result<()> {
        match reply {
            Some(r) => self.tx.execute(
                "UPDATE recipients SET state = 'failed', code = $2, enhanced = $3, text = $4,
                     updated_at = $5
                 WHERE msg = $1 AND state = 'pending'",
                &[&id.0, &i64::from(r.code), &r.enhanced, &r.text, &now_ms],
            ),
            None => self.tx.execute(
                "UPDATE recipients SET state = 'failed', updated_at = $2
                 WHERE msg = $1 AND state = 'pending'",
                &[&id.0, &now_ms],
            ),
        }
        .map_err(pg)?;
        Ok(())
    }

    fn update_message(&mut self, id: MessageId, u: &MessageUpdate<'_>) -> Result<()> {
        self.tx
            .execute(
                "UPDATE messages
                 SET state = $2, attempts = $3, lease_until = NULL, lease_token = NULL,
                     next_attempt_at = COALESCE($4, next_attempt_at), finished_at = $5,
                     last_code = $6, last_enhanced = $7, last_text = $8, explanation = $9
                 WHERE id = $1",
                &[
                    &id.0,
                    &u.state,
                    &i64::from(u.attempts),
                    &u.next_attempt,
                    &u.finished,
                    &u.reply.map(|r| i64::from(r.code)),
                    &u.reply.and_then(|r| r.enhanced.as_deref()),
                    &u.reply.map(|r| r.text.as_str()),
                    &u.explanation,
                ],
            )
            .map_err(pg)?;
        Ok(())
    }
}
