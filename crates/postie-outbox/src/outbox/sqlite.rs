//! The embedded store: SQLite plus files, in one directory on one host.
//!
//! Layout of an outbox directory (mode 0700):
//! - `outbox.sqlite3`: messages, recipients, attempts and paused accounts
//!   (WAL, `synchronous=FULL`), the only place where processes coordinate;
//! - `messages/<random>.eml`: bodies larger than [`super::INLINE_MAX`],
//!   written once (smaller ones live in their rows);
//! - `messages/tmp/`: bodies being spooled, not yet committed;
//! - `holders/`: one locked file per running deliverer.
//!
//! Inside: `insert` writes bodies and rows, `claim` claims and leases,
//! `finish` records attempts, `admin` answers the operator commands, `pause`
//! keeps paused accounts, `holder` finds deliverers that died, `schema`
//! creates the tables.

mod admin;
mod claim;
mod finish;
mod holder;
mod insert;
mod pause;
mod schema;

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use rusqlite::{Connection, Transaction, TransactionBehavior};

use super::spool::GroupCommit;
use super::{
    Claim, Counts, Detail, Disposition, ListFilter, Location, MessageId, NewMessage, Outcome,
    Paused, RetryPolicy, Scope, Spool, State, Store, Summary, Which, create_private_dir,
};
use postie::error::{Error, ErrorKind, Result};

/// How long a call waits for another process's write transaction before it
/// gives up with a transient error. Writers hold the lock for milliseconds;
/// seconds of waiting mean something is badly stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database file inside the outbox directory.
pub(super) const DB_FILE: &str = "outbox.sqlite3";
/// Bodies, inside the outbox directory.
pub(super) const MESSAGES_DIR: &str = "messages";
/// Bodies being spooled, inside [`MESSAGES_DIR`].
pub(super) const TMP_DIR: &str = "tmp";

/// An outbox directory. Every call is short and synchronous (one SQLite
/// transaction, at most one fsync pair).
pub(super) struct Sqlite {
    dir: PathBuf,
    location: Location,
    conn: Mutex<Connection>,
    group: GroupCommit,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite").field("dir", &self.dir).finish()
    }
}

impl Sqlite {
    /// Open the outbox in `dir`, creating it (mode 0700) when missing, and
    /// create or migrate its schema. Removes leftovers of processes that
    /// died before they acknowledged a message (see [`Spool`]).
    pub(super) fn open(dir: &Path) -> Result<Sqlite> {
        let messages = dir.join(MESSAGES_DIR);
        create_private_dir(&messages.join(TMP_DIR))?;
        let path = dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot open the outbox database {}: {e}", path.display()),
            )
        })?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        check_integrity(&conn, &path)?;
        // WAL lets `postie queue list` read while a relay writes; FULL makes
        // every COMMIT durable before "250 accepted" goes out.
        let mode: String =
            when_free(|| conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)))
                .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!("outbox: the database refused WAL mode (got {mode})");
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")
            .map_err(db)?;
        schema::migrate(&mut conn)?;
        let outbox = Sqlite {
            dir: dir.to_path_buf(),
            location: Location::Dir(dir.to_path_buf()),
            conn: Mutex::new(conn),
            group: GroupCommit::default(),
        };
        outbox.clean_up();
        Ok(outbox)
    }

    fn messages_dir(&self) -> PathBuf {
        self.dir.join(MESSAGES_DIR)
    }

    fn body_path(&self, file: &str) -> PathBuf {
        self.messages_dir().join(file)
    }

    /// The connection. A panic while it was held left no transaction open
    /// (rusqlite rolls back on drop), so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Start a write transaction that takes the write lock at once: read-then-
/// write transactions started as DEFERRED fail with SQLITE_BUSY instead of
/// waiting when another process writes in between.
fn immediate(conn: &mut Connection) -> Result<Transaction<'_>> {
    conn.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)
}

/// A database error as postie's error. A lock that stayed busy past the
/// timeout is transient: the relay answers 4xx and the client retries.
/// A damaged database opens without complaint and then fails every
/// statement that touches a damaged page: a relay on it would answer 452 to
/// every message, forever. `PRAGMA quick_check` reads every page once
/// (milliseconds for an outbox of thousands of messages); what it finds
/// stops the start with the cause and the fix.
fn check_integrity(conn: &Connection, path: &Path) -> Result<()> {
    let damaged = |what: String| {
        Error::new(
            ErrorKind::Io,
            format!(
                "the outbox database {} is damaged ({what}). Stop every postie process, keep a \
                 copy of the file, then recover what it holds with `sqlite3 {} .recover | \
                 sqlite3 recovered.sqlite3` and put recovered.sqlite3 in its place, or move it \
                 aside to start with an empty outbox (message bodies stay in {})",
                path.display(),
                path.display(),
                path.with_file_name(MESSAGES_DIR).display()
            ),
        )
    };
    let found: Vec<String> = match when_free(|| {
        conn.prepare("PRAGMA quick_check(5)")?
            .query_map([], |r| r.get::<_, String>(0))?
            .collect()
    }) {
        Ok(found) => found,
        Err(e) if is_damage(&e) => return Err(damaged(e.to_string())),
        Err(e) => return Err(db(e)),
    };
    if found.len() == 1 && found[0] == "ok" {
        return Ok(());
    }
    Err(damaged(found.join("; ")))
}

/// SQLite's "file is not a database" and "database disk image is malformed".
fn is_damage(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase)
    )
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// `f`, again while another process holds the lock it needs, for up to
/// [`BUSY_TIMEOUT`]. For what SQLite's busy handler does not wait on: the
/// switch to WAL and the first read while another process is creating a
/// fresh outbox (`postie bulk` and `postie queue list` started together).
/// Blocking: the outbox is opened on a blocking thread.
fn when_free<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match f() {
            Err(e) if is_busy(&e) && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            r => return r,
        }
    }
}

fn db(e: rusqlite::Error) -> Error {
    if is_busy(&e) {
        Error::new(
            ErrorKind::Transient,
            "the outbox database stayed locked by another postie process; try again",
        )
        .with_source(e)
    } else {
        Error::new(ErrorKind::Io, format!("the outbox database failed: {e}"))
    }
}

impl Store for Sqlite {
    fn location(&self) -> &Location {
        &self.location
    }

    fn spool(&self) -> Result<Spool> {
        Sqlite::spool(self)
    }

    fn commit(&self, spool: Spool, meta: NewMessage) -> Result<MessageId> {
        Sqlite::commit(self, spool, meta)
    }

    fn commit_row(&self, body: Vec<u8>, meta: NewMessage) -> Result<MessageId> {
        Sqlite::commit_row(self, body, meta)
    }

    fn claim_in(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
        scope: &Scope<'_>,
        token_prefix: &str,
    ) -> Result<Vec<Claim>> {
        Sqlite::claim_in(self, now, lease, limit, scope, token_prefix)
    }

    fn renew(&self, claim: &Claim, now: SystemTime, lease: Duration) -> Result<bool> {
        Sqlite::renew(self, claim, now, lease)
    }

    fn release(&self, claim: &Claim) -> Result<bool> {
        Sqlite::release(self, claim)
    }

    fn postpone(&self, claim: &Claim, until: SystemTime, reason: &str) -> Result<bool> {
        Sqlite::postpone(self, claim, until, reason)
    }

    fn release_holder(&self, token_prefix: &str) -> Result<usize> {
        Sqlite::release_holder(self, token_prefix)
    }

    fn register_holder(&self) -> Result<super::Holder> {
        Sqlite::register_holder(self)
    }

    fn recover_holders(&self) -> Result<usize> {
        Sqlite::recover_holders(self)
    }

    fn finish_many(
        &self,
        attempts: Vec<(Claim, Outcome)>,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Vec<Disposition>> {
        Sqlite::finish_many(self, attempts, now, policy)
    }

    fn sent_since(&self, account: &str, since: SystemTime) -> Result<Vec<(SystemTime, u32)>> {
        Sqlite::sent_since(self, account, since)
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<Summary>> {
        Sqlite::list(self, filter)
    }

    fn batch_items(&self, batch: &str) -> Result<std::collections::HashMap<String, MessageId>> {
        Sqlite::batch_items(self, batch)
    }

    fn show(&self, id: MessageId) -> Result<Option<Detail>> {
        Sqlite::show(self, id)
    }

    fn retry(&self, which: Which, now: SystemTime) -> Result<usize> {
        Sqlite::retry(self, which, now)
    }

    fn purge(&self, id: MessageId) -> Result<bool> {
        Sqlite::purge(self, id)
    }

    fn purge_finished(&self, state: State, finished_before: SystemTime) -> Result<u64> {
        Sqlite::purge_finished(self, state, finished_before)
    }

    fn counts(&self) -> Result<Counts> {
        Sqlite::counts(self)
    }

    fn next_due(&self) -> Result<Option<SystemTime>> {
        Sqlite::next_due(self)
    }

    fn pause_account(&self, account: &str, reason: &str, now: SystemTime) -> Result<bool> {
        Sqlite::pause_account(self, account, reason, now)
    }

    fn resume_account(&self, account: &str) -> Result<bool> {
        Sqlite::resume_account(self, account)
    }

    fn paused(&self) -> Result<Vec<Paused>> {
        Sqlite::paused(self)
    }
}
