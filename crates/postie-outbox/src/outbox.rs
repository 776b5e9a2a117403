//! The durable outbox: messages accepted by `postie relay` and `postie
//! sendmail`, kept on disk until they are delivered upstream or given up.
//!
//! Layout of an outbox directory (mode 0700):
//! - `outbox.sqlite3`: messages, recipients, attempts and paused accounts
//!   (WAL, `synchronous=FULL`), the only place where processes coordinate;
//! - `messages/<random>.eml`: one body per message, written once;
//! - `messages/tmp/`: bodies being spooled, not yet committed.
//!
//! A message is acknowledged to whoever handed it over only after
//! [`Outbox::commit`] returns: by then its body is fsynced and renamed into
//! place, the directory is fsynced, and its row is committed. Several
//! processes (a running relay, `postie sendmail` from cron, `postie queue
//! list`) may open one outbox at once; delivery workers take messages with
//! [`Outbox::claim`], which leases them, and report with [`Outbox::finish`].
//!
//! Inside: `spool` writes bodies, `delivery` claims and leases, `finish`
//! records attempts, `admin` answers the operator commands, `pause` keeps paused
//! accounts, [`policy`] decides when to retry, `schema` creates the tables.
//!
//! ```no_run
//! # fn demo() -> postie::error::Result<()> {
//! use std::time::{Duration, SystemTime};
//! use postie_outbox::outbox::{NewMessage, Outbox, StoredBody};
//!
//! let outbox = Outbox::open(std::path::Path::new("/tmp/postie-outbox"))?;
//! let id = outbox.enqueue(
//!     b"Subject: hi\r\n\r\nhello\r\n",
//!     NewMessage {
//!         account: "work".into(),
//!         mail_from: Some("me@example.com".into()),
//!         recipients: vec!["you@example.com".into()],
//!         source: "sendmail".into(),
//!         ..NewMessage::default()
//!     },
//! )?;
//! for claim in outbox.claim(SystemTime::now(), Duration::from_secs(120), 10, None, "")? {
//!     match &claim.body {
//!         StoredBody::Row(bytes) => println!("message {}: {} bytes", claim.id, bytes.len()),
//!         StoredBody::File(path) => println!("message {}: {}", claim.id, path.display()),
//!     }
//! }
//! # let _ = id; Ok(()) }
//! ```

mod admin;
mod delivery;
mod finish;
mod message;
mod pause;
pub mod policy;
mod schema;
mod spool;
mod time;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, Transaction, TransactionBehavior};

use postie::blocking::unblock;
use postie::error::{Error, ErrorKind, Result};

pub use delivery::{
    Claim, Disposition, FailureClass, Outcome, RecipientOutcome, RecipientResult, Scope, StoredBody,
};
pub use message::{
    AttemptKind, AttemptRecord, BatchItem, Counts, Detail, ListFilter, MessageId, NewMessage,
    Paused, RecipientCounts, RecipientDetail, RecipientState, ReplyRecord, State, Summary, Which,
};
pub use policy::{Decision, KEEP_SENT, RetryPolicy, decide, keep_sent};
pub use spool::Spool;

/// How long a call waits for another process's write transaction before it
/// gives up with a transient error. Writers hold the lock for milliseconds;
/// seconds of waiting mean something is badly stuck.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The database file inside the outbox directory.
const DB_FILE: &str = "outbox.sqlite3";
/// Bodies, inside the outbox directory.
const MESSAGES_DIR: &str = "messages";
/// Bodies being spooled, inside [`MESSAGES_DIR`].
const TMP_DIR: &str = "tmp";

/// An open outbox. `Send + Sync`: share it behind an `Arc`; every call is
/// short and synchronous (one SQLite transaction, at most one fsync pair).
pub struct Outbox {
    dir: PathBuf,
    conn: Mutex<Connection>,
    group: spool::GroupCommit,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox").field("dir", &self.dir).finish()
    }
}

impl Outbox {
    /// Open the outbox in `dir`, creating it (mode 0700) when missing, and
    /// create or migrate its schema. Removes leftovers of processes that
    /// died before they acknowledged a message (see [`Spool`]).
    pub fn open(dir: &Path) -> Result<Outbox> {
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
        let outbox = Outbox {
            dir: dir.to_path_buf(),
            conn: Mutex::new(conn),
            group: spool::GroupCommit::default(),
        };
        outbox.clean_up();
        Ok(outbox)
    }

    /// [`Outbox::open`] from async code: on a blocking thread.
    pub async fn open_shared(dir: &Path) -> Result<Arc<Outbox>> {
        let dir = dir.to_path_buf();
        unblock(move || Outbox::open(&dir).map(Arc::new)).await
    }

    /// How async code calls the outbox: `call` runs on a blocking thread
    /// (SQLite waits for locks and fsyncs; see `postie::blocking`).
    pub async fn with<T, F>(self: &Arc<Self>, call: F) -> Result<T>
    where
        F: FnOnce(&Outbox) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let outbox = self.clone();
        unblock(move || call(&outbox)).await
    }

    /// The outbox directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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

/// A local file-system error on `path`.
fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// Create `dir` and its parents; the ones created are private to the user
/// (bodies are other people's mail).
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(|e| io("create the directory", dir, e))
}
