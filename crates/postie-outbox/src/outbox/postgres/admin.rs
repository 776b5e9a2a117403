//! The operator's commands in PostgreSQL (`postie queue list | show |
//! retry | purge`, paused accounts), and what a deliverer asks to keep a
//! provider's limits and to sleep.

use std::collections::HashMap;
use std::time::SystemTime;

use postgres::{Row, Transaction};

use super::super::message::SUMMARY_COLUMNS;
use super::super::message::{
    AttemptKind, AttemptRecord, RecipientCounts, RecipientDetail, RecipientState,
};
use super::super::time::{from_ms, to_ms};
use super::super::{
    Counts, Detail, ListFilter, MessageId, Paused, ReplyRecord, State, Summary, Which,
};
use super::{Postgres, pg};
use postie::error::{Error, ErrorKind, Result};
use postie::wording::{Action, say};

fn summary(r: &Row) -> Summary {
    let state: State = r.get::<_, String>(2).parse().unwrap_or(State::Queued);
    let when = |i| r.get::<_, Option<i64>>(i).map(from_ms);
    let n = |i| u32::try_from(r.get::<_, i64>(i)).unwrap_or(u32::MAX);
    Summary {
        id: MessageId(r.get(0)),
        account: r.get(1),
        state,
        mail_from: r.get(3),
        size: r.get::<_, i64>(4).max(0) as u64,
        attempts: r.get::<_, i64>(5).clamp(0, u32::MAX.into()) as u32,
        queued_at: from_ms(r.get(6)),
        next_attempt_at: when(7).filter(|_| state == State::Queued),
        lease_until: when(8).filter(|_| state == State::Delivering),
        last_reply: ReplyRecord::from_columns(r.get(9), r.get(10), r.get(11)),
        subject: r.get(12),
        message_id: r.get(13),
        source: r.get(14),
        counts: RecipientCounts {
            pending: n(15),
            sent: n(16),
            failed: n(17),
        },
        paused: r.get(18),
    }
}

pub(super) fn list(s: &Postgres, filter: &ListFilter) -> Result<Vec<Summary>> {
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS} FROM messages m
         WHERE ($1::text IS NULL OR m.state = $1) AND ($2::text IS NULL OR m.account = $2)
           AND ($4::text IS NULL OR m.batch = $4)
         ORDER BY m.id LIMIT $3"
    );
    let limit = filter.limit.map(|l| i64::try_from(l).unwrap_or(i64::MAX));
    Ok(s.conn()?
        .query(
            &sql,
            &[
                &filter.state.map(State::as_str),
                &filter.account,
                &limit,
                &filter.batch,
            ],
        )
        .map_err(pg)?
        .iter()
        .map(summary)
        .collect())
}

pub(super) fn batch_items(s: &Postgres, batch: &str) -> Result<HashMap<String, MessageId>> {
    Ok(s.conn()?
        .query(
            "SELECT item, msg FROM batch_purged WHERE batch = $1
             UNION ALL
             SELECT batch_item, id FROM messages WHERE batch = $1",
            &[&batch],
        )
        .map_err(pg)?
        .iter()
        .map(|r| (r.get(0), MessageId(r.get(1))))
        .collect())
}

pub(super) fn show(s: &Postgres, id: MessageId) -> Result<Option<Detail>> {
    let mut conn = s.conn()?;
    // One snapshot: a consistent picture while deliverers write.
    let mut tx = conn
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(pg)?;
    let sql = format!(
        "SELECT {SUMMARY_COLUMNS}, m.explanation, m.eight_bit, m.smtputf8, m.finished_at
         FROM messages m WHERE m.id = $1"
    );
    let Some(head) = tx.query_opt(&sql, &[&id.0]).map_err(pg)? else {
        return Ok(None);
    };
    let recipients = tx
        .query(
            "SELECT address, state, code, enhanced, text, updated_at FROM recipients
             WHERE msg = $1 ORDER BY position",
            &[&id.0],
        )
        .map_err(pg)?
        .iter()
        .map(|r| RecipientDetail {
            address: r.get(0),
            state: RecipientState::parse(&r.get::<_, String>(1)),
            reply: ReplyRecord::from_columns(r.get(2), r.get(3), r.get(4)),
            updated_at: r.get::<_, Option<i64>>(5).map(from_ms),
        })
        .collect();
    let history = tx
        .query(
            "SELECT at, kind, code, enhanced, text, explanation, host FROM attempts
             WHERE msg = $1 ORDER BY id",
            &[&id.0],
        )
        .map_err(pg)?
        .iter()
        .map(|r| AttemptRecord {
            at: from_ms(r.get(0)),
            kind: AttemptKind::parse(&r.get::<_, String>(1)),
            reply: ReplyRecord::from_columns(r.get(2), r.get(3), r.get(4)),
            explanation: r.get(5),
            host: r.get(6),
        })
        .collect();
    tx.commit().map_err(pg)?;
    Ok(Some(Detail {
        summary: summary(&head),
        recipients,
        history,
        explanation: head.get(19),
        body_path: None,
        eight_bit: head.get(20),
        smtputf8: head.get(21),
        finished_at: head.get::<_, Option<i64>>(22).map(from_ms),
    }))
}

pub(super) fn retry(s: &Postgres, which: Which, now: SystemTime) -> Result<usize> {
    let id = match which {
        Which::One(id) => Some(id.0),
        Which::All => None,
    };
    let now_ms = to_ms(now);
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(pg)?;
    const PICK: &str = "state IN ('queued', 'failed') AND ($1::bigint IS NULL OR id = $1)";
    tx.execute(
        &format!(
            "DELETE FROM paused_accounts
             WHERE account IN (SELECT account FROM messages WHERE {PICK})"
        ),
        &[&id],
    )
    .map_err(pg)?;
    tx.execute(
        "UPDATE recipients SET state = 'pending', updated_at = $2
         WHERE state = 'failed'
           AND msg IN (SELECT id FROM messages
                       WHERE state = 'failed' AND ($1::bigint IS NULL OR id = $1))",
        &[&id, &now_ms],
    )
    .map_err(pg)?;
    let n = tx
        .execute(
            &format!(
                "UPDATE messages
                 SET window_start = CASE WHEN state = 'failed' THEN $2 ELSE window_start END,
                     state = 'queued', next_attempt_at = $2, finished_at = NULL
                 WHERE {PICK}"
            ),
            &[&id, &now_ms],
        )
        .map_err(pg)?;
    tx.commit().map_err(pg)?;
    Ok(n as usize)
}

pub(super) fn purge(s: &Postgres, id: MessageId) -> Result<bool> {
    let now = to_ms(SystemTime::now());
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(pg)?;
    let Some(row) = tx
        .query_opt(
            "SELECT state, lease_until FROM messages WHERE id = $1 FOR UPDATE",
            &[&id.0],
        )
        .map_err(pg)?
    else {
        return Ok(false);
    };
    let (state, lease_until): (String, Option<i64>) = (row.get(0), row.get(1));
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
    tx.execute("DELETE FROM messages WHERE id = $1", &[&id.0])
        .map_err(pg)?;
    tx.commit().map_err(pg)?;
    Ok(true)
}

pub(super) fn purge_finished(
    s: &Postgres,
    state: State,
    finished_before: SystemTime,
) -> Result<u64> {
    if !matches!(state, State::Sent | State::Failed) {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("only sent or failed messages are purged by age, not {state} ones"),
        ));
    }
    s.conn()?
        .execute(
            "DELETE FROM messages
             WHERE state = $1 AND finished_at IS NOT NULL AND finished_at < $2",
            &[&state.as_str(), &to_ms(finished_before)],
        )
        .map_err(pg)
}

pub(super) fn counts(s: &Postgres) -> Result<Counts> {
    let mut c = Counts::default();
    for r in s
        .conn()?
        .query("SELECT state, count(*) FROM messages GROUP BY state", &[])
        .map_err(pg)?
    {
        let n = r.get::<_, i64>(1).max(0) as u64;
        match r.get::<_, String>(0).parse().unwrap_or(State::Queued) {
            State::Queued => c.queued = n,
            State::Delivering => c.delivering = n,
            State::Sent => c.sent = n,
            State::Failed => c.failed = n,
        }
    }
    Ok(c)
}

pub(super) fn next_due(s: &Postgres) -> Result<Option<SystemTime>> {
    let t: Option<i64> = s
        .conn()?
        .query_one(
            "SELECT min(CASE WHEN p.until IS NULL THEN d.due ELSE greatest(p.until, d.due) END)
             FROM (SELECT account, CASE state WHEN 'queued' THEN next_attempt_at
                                             ELSE lease_until END AS due
                   FROM messages WHERE state IN ('queued', 'delivering')) d
             LEFT JOIN paused_accounts p ON p.account = d.account
             WHERE p.account IS NULL OR p.until IS NOT NULL",
            &[],
        )
        .map_err(pg)?
        .get(0);
    Ok(t.map(from_ms))
}

pub(super) fn sent_since(
    s: &Postgres,
    account: &str,
    since: SystemTime,
) -> Result<Vec<(SystemTime, u32)>> {
    Ok(s.conn()?
        .query(
            "SELECT a.at, (SELECT count(*) FROM recipients r
                           WHERE r.msg = a.msg AND r.state = 'sent' AND r.updated_at = a.at)
             FROM attempts a JOIN messages m ON m.id = a.msg
             WHERE m.account = $1 AND a.at >= $2 AND a.kind IN ('delivered', 'partial')
             ORDER BY a.at",
            &[&account, &to_ms(since)],
        )
        .map_err(pg)?
        .iter()
        .map(super::send_row)
        .collect())
}

pub(super) fn pause_account(
    s: &Postgres,
    account: &str,
    reason: &str,
    now: SystemTime,
) -> Result<bool> {
    let mut conn = s.conn()?;
    let mut tx = conn.transaction().map_err(pg)?;
    let newly = pause_in(&mut tx, account, reason, to_ms(now), None)?;
    tx.commit().map_err(pg)?;
    Ok(newly)
}

pub(super) fn resume_account(s: &Postgres, account: &str) -> Result<bool> {
    let n = s
        .conn()?
        .execute(
            "DELETE FROM paused_accounts WHERE account = $1",
            &[&account],
        )
        .map_err(pg)?;
    Ok(n > 0)
}

pub(super) fn paused(s: &Postgres) -> Result<Vec<Paused>> {
    Ok(s.conn()?
        .query(
            "SELECT account, reason, since, until FROM paused_accounts ORDER BY since, account",
            &[],
        )
        .map_err(pg)?
        .iter()
        .map(|r| Paused {
            account: r.get(0),
            reason: r.get(1),
            since: from_ms(r.get(2)),
            until: r.get::<_, Option<i64>>(3).map(from_ms),
        })
        .collect())
}

/// Pause inside a transaction. An account already paused keeps its first
/// reason and time (what the user was told); an expiring pause is renewed to
/// `until`, a pause without end stays without end. One statement, so two
/// hosts pausing one account at once agree on who paused it first.
pub(super) fn pause_in(
    tx: &mut Transaction<'_>,
    account: &str,
    reason: &str,
    now_ms: i64,
    until: Option<i64>,
) -> Result<bool> {
    let inserted: bool = tx
        .query_one(
            "INSERT INTO paused_accounts AS p (account, reason, since, until)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (account) DO UPDATE
                 SET until = CASE WHEN p.until IS NULL THEN NULL ELSE EXCLUDED.until END
             RETURNING (xmax = 0)",
            &[&account, &reason, &now_ms, &until],
        )
        .map_err(pg)?
        .get(0);
    Ok(inserted)
}
