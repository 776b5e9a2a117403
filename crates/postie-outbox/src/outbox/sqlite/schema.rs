//! The tables, versioned with `PRAGMA user_version`. Times are unix
//! milliseconds; a message's body lives in the row (`body`, small bodies) or
//! in a file named by `body_file`.

use rusqlite::Connection;

use super::{db, immediate};
use postie::error::{Error, ErrorKind, Result};

/// The schema this code writes. Each step in [`MIGRATIONS`] moves the
/// version up by one; an outbox from a newer postie is refused, not guessed at.
const VERSION: i64 = 4;

/// Migration `i` takes a database from version `i` to `i + 1`.
const MIGRATIONS: [&str; VERSION as usize] = [
    r"
CREATE TABLE messages (
    -- AUTOINCREMENT: an id is never reused, even after a purge, so an id a
    -- user saw in a log always means the same message.
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    account         TEXT    NOT NULL,
    mail_from       TEXT,               -- NULL is the null reverse-path <>
    state           TEXT    NOT NULL
                    CHECK (state IN ('queued', 'delivering', 'sent', 'failed')),
    body_file       TEXT    NOT NULL UNIQUE,
    size            INTEGER NOT NULL,
    eight_bit       INTEGER NOT NULL,
    smtputf8        INTEGER NOT NULL,
    header_id       TEXT,               -- the Message-ID header, for display
    subject         TEXT,
    source          TEXT    NOT NULL,
    queued_at       INTEGER NOT NULL,
    -- The give-up deadline counts from here: queued_at, or the time an
    -- operator retried a failed message.
    window_start    INTEGER NOT NULL,
    next_attempt_at INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    lease_until     INTEGER,
    lease_token     TEXT,
    -- Set by claim when it took the message over from an expired lease.
    reclaimed       INTEGER NOT NULL DEFAULT 0,
    last_code       INTEGER,
    last_enhanced   TEXT,
    last_text       TEXT,
    explanation     TEXT,
    finished_at     INTEGER
);
CREATE INDEX messages_due ON messages (state, next_attempt_at);
CREATE INDEX messages_account ON messages (account, state);

CREATE TABLE recipients (
    msg        INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    address    TEXT    NOT NULL,
    state      TEXT    NOT NULL CHECK (state IN ('pending', 'sent', 'failed')),
    code       INTEGER,
    enhanced   TEXT,
    text       TEXT,
    updated_at INTEGER,
    PRIMARY KEY (msg, position)
);

CREATE TABLE attempts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    msg         INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    at          INTEGER NOT NULL,
    kind        TEXT    NOT NULL,
    code        INTEGER,
    enhanced    TEXT,
    text        TEXT,
    explanation TEXT
);
CREATE INDEX attempts_msg ON attempts (msg);

CREATE TABLE paused_accounts (
    account TEXT    PRIMARY KEY,
    reason  TEXT    NOT NULL,
    since   INTEGER NOT NULL,
    -- NULL: paused until an operator resumes it. Otherwise claim may take
    -- one message of the account after this time, to probe.
    until   INTEGER
);
",
    r"
-- Bulk sending: a message's batch and its item (a file name, a row) in the
-- batch's source; a batch run again finds what it already queued.
ALTER TABLE messages ADD COLUMN batch TEXT;
ALTER TABLE messages ADD COLUMN batch_item TEXT;
CREATE UNIQUE INDEX messages_batch ON messages (batch, batch_item) WHERE batch IS NOT NULL;
",
    r"
-- Small bodies in the row itself, committed with it: no file to create,
-- fsync, rename and make durable by a directory fsync. NULL: the body is
-- the file named by body_file (which is then also unique and never reused).
ALTER TABLE messages ADD COLUMN body BLOB;
",
    r"
-- The items of a batch whose messages were purged (by hand, or by
-- keep_sent): the batch run again must not take them anew. Kept by a
-- trigger, so that no way of deleting a message forgets one.
CREATE TABLE batch_purged (
    batch TEXT    NOT NULL,
    item  TEXT    NOT NULL,
    msg   INTEGER NOT NULL,
    PRIMARY KEY (batch, item)
);
CREATE TRIGGER messages_keep_batch_item BEFORE DELETE ON messages
WHEN OLD.batch IS NOT NULL
BEGIN
    INSERT OR REPLACE INTO batch_purged (batch, item, msg)
    VALUES (OLD.batch, OLD.batch_item, OLD.id);
END;
",
];

/// Bring the database to [`VERSION`]. Runs in one IMMEDIATE transaction so
/// two processes opening a fresh outbox at once do not both create tables.
pub(super) fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = immediate(conn)?;
    let have: i64 = tx
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)?;
    if have > VERSION {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "the outbox was written by a newer postie (schema {have}, this one knows {VERSION}); \
                 upgrade postie or use another outbox directory"
            ),
        ));
    }
    for step in &MIGRATIONS[have.max(0) as usize..] {
        tx.execute_batch(step).map_err(db)?;
    }
    if have != VERSION {
        tx.pragma_update(None, "user_version", VERSION)
            .map_err(db)?;
    }
    tx.commit().map_err(db)
}
