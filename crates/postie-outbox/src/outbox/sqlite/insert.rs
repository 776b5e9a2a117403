//! Writing bodies: spooled to `messages/tmp`, then made durable and renamed
//! into `messages/` by `commit`, which inserts the row last. A small body
//! skips the file: `commit_row` stores it in its row, in the same commit.
//!
//! A body in `messages/` with no row belongs to a process that died between
//! the rename and the COMMIT: nobody was told "accepted", so removing it
//! loses nothing. A live writer holds an exclusive lock on its file from
//! creation until its COMMIT returned, so the clean-up at open never takes a
//! file that is still being written or committed; the age thresholds are a
//! second guard for file systems where locks are unreliable.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rusqlite::params;

use super::super::spool::{Inserted, Pending, Spool, insert_group, pending_row, random_name};
use super::super::time::to_ms;
use super::super::{MessageId, NewMessage, io};
use super::{MESSAGES_DIR, Sqlite, TMP_DIR, db, immediate};
use postie::error::Result;

/// Spool files untouched for this long with no writer are leftovers.
const TMP_AGE: Duration = Duration::from_secs(60);
/// Bodies with no row, unlocked and this old, are leftovers.
const ORPHAN_AGE: Duration = Duration::from_secs(5 * 60);

impl Sqlite {
    /// Start spooling a body into `messages/tmp`.
    pub(super) fn spool(&self) -> Result<Spool> {
        Spool::create(&self.messages_dir().join(TMP_DIR))
    }

    /// Store a body held in memory in its row: no file, so no file fsync,
    /// rename or directory fsync; the row's commit (shared with the
    /// messages that arrive together) makes it durable. For bodies up to
    /// `INLINE_MAX` bytes; larger ones go to `commit`.
    pub(super) fn commit_row(&self, body: Vec<u8>, meta: NewMessage) -> Result<MessageId> {
        let pending = pending_row(body, meta)?;
        self.group
            .join(pending, |batch| self.commit_group(batch))
            .map_err(|(Inserted::Before(e) | Inserted::Commit(e))| e)
    }

    /// Store a spooled body with its envelope. Returns only once the message
    /// is durable: body fsynced and renamed into place, directory fsynced,
    /// rows committed. Only then may the caller answer "accepted".
    ///
    /// Commits that arrive together share the directory fsync and one
    /// database transaction (group commit): each caller fsyncs its own body,
    /// then the first to find no commit in progress leads one for everyone
    /// waiting, while the next ones gather behind it.
    pub(super) fn commit(&self, mut spool: Spool, meta: NewMessage) -> Result<MessageId> {
        meta.validate()?;
        let writer = spool
            .file
            .take()
            .expect("a spool's file lives until commit");
        let tmp = spool.path.clone();
        let file = match finish_file(writer) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                return Err(io("write", &tmp, e));
            }
        };
        let name = format!("{}.eml", random_name());
        let dest = self.body_path(&name);
        if let Err(e) = std::fs::rename(&tmp, &dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(io("move the spooled message to", &dest, e));
        }
        let r = self.group.join(
            Pending {
                name,
                size: spool.size,
                meta,
                body: None,
            },
            |batch| self.commit_group(batch),
        );
        if let Err(Inserted::Before(_)) = &r {
            // Failed before COMMIT: certainly no row.
            let _ = std::fs::remove_file(&dest);
        }
        // On a COMMIT error the row may exist after all (an fsync that
        // failed after the WAL frames were written); the file stays, and the
        // clean-up at open removes it if it has no row. The lock on the file
        // is held until here, so the clean-up never takes it before.
        drop(file);
        r.map_err(|(Inserted::Before(e) | Inserted::Commit(e))| e)
    }

    /// One group: the directory fsync that makes every rename durable, then
    /// the rows in one transaction. A row that cannot be inserted fails
    /// alone: the group is then inserted one row at a time.
    fn commit_group(&self, batch: &[Pending]) -> Vec<Result<MessageId, Inserted>> {
        let files = batch.iter().any(|p| p.body.is_none());
        if files && let Err(e) = sync_dir(&self.messages_dir()) {
            let why = e.to_string();
            return batch
                .iter()
                .map(|_| {
                    let e = std::io::Error::other(why.clone());
                    Err(Inserted::Before(io(
                        "sync the directory",
                        &self.messages_dir(),
                        e,
                    )))
                })
                .collect();
        }
        insert_group(batch, |b| self.insert_all(b))
    }

    /// Insert the rows of `batch` in one transaction.
    fn insert_all(&self, batch: &[Pending]) -> Result<Vec<MessageId>, Inserted> {
        let now = to_ms(SystemTime::now());
        let mut conn = self.conn();
        let tx = immediate(&mut conn).map_err(Inserted::Before)?;
        let mut ids = Vec::with_capacity(batch.len());
        {
            let mut msg = tx
                .prepare_cached(
                    "INSERT INTO messages (account, mail_from, state, body_file, size, eight_bit,
                         smtputf8, header_id, subject, source, queued_at, window_start,
                         next_attempt_at, batch, batch_item, body)
                     VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?12,
                             ?13)",
                )
                .map_err(|e| Inserted::Before(db(e)))?;
            let mut rcpt = tx
                .prepare_cached(
                    "INSERT INTO recipients (msg, position, address, state) VALUES (?1, ?2, ?3, 'pending')",
                )
                .map_err(|e| Inserted::Before(db(e)))?;
            for p in batch {
                let m = &p.meta;
                let mail_from = m.mail_from.as_deref().filter(|f| !f.is_empty());
                msg.execute(params![
                    m.account,
                    mail_from,
                    p.name,
                    i64::try_from(p.size).unwrap_or(i64::MAX),
                    m.eight_bit,
                    m.smtputf8,
                    m.message_id,
                    m.subject,
                    m.source,
                    now,
                    m.batch.as_ref().map(|b| b.batch.as_str()),
                    m.batch.as_ref().map(|b| b.item.as_str()),
                    p.body.as_deref()
                ])
                .map_err(|e| Inserted::Before(db(e)))?;
                let id = tx.last_insert_rowid();
                for (i, r) in m.recipients.iter().enumerate() {
                    rcpt.execute(params![id, i as i64, r])
                        .map_err(|e| Inserted::Before(db(e)))?;
                }
                ids.push(MessageId(id));
            }
        }
        tx.commit().map_err(|e| Inserted::Commit(db(e)))?;
        Ok(ids)
    }

    /// Remove leftovers of writers that died: stale spool files, and bodies
    /// whose row never committed. Best effort: a failure here is logged, and
    /// never stops the outbox from opening.
    pub(super) fn clean_up(&self) {
        let tmp_dir = self.messages_dir().join(TMP_DIR);
        for path in files(&tmp_dir) {
            if is_abandoned(&path, TMP_AGE) {
                remove(&path);
            }
        }
        let known: HashSet<String> = {
            let conn = self.conn();
            let names = conn
                .prepare("SELECT body_file FROM messages")
                .and_then(|mut s| {
                    s.query_map([], |r| r.get::<_, String>(0))?
                        .collect::<rusqlite::Result<HashSet<_>>>()
                });
            match names {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!("outbox: skipped the clean-up of {MESSAGES_DIR}/: {e}");
                    return;
                }
            }
        };
        for path in files(&self.messages_dir()) {
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            if !name.ends_with(".eml") || known.contains(name) {
                continue;
            }
            // Re-check the row after the lock: a committer may have finished
            // between reading the names and taking the lock.
            if is_abandoned(&path, ORPHAN_AGE) && !self.has_row(name) {
                remove(&path);
            }
        }
    }

    fn has_row(&self, body_file: &str) -> bool {
        let conn = self.conn();
        conn.query_row(
            "SELECT 1 FROM messages WHERE body_file = ?1",
            [body_file],
            |_| Ok(()),
        )
        .map(|()| true)
        .unwrap_or_else(|e| !matches!(e, rusqlite::Error::QueryReturnedNoRows))
    }
}

/// Flush the buffer and fsync the file; the file stays open (and locked).
fn finish_file(w: BufWriter<File>) -> io::Result<File> {
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file)
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows cannot open a directory to sync it; NTFS journals renames.
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

fn files(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.path())
            .collect(),
        Err(e) => {
            tracing::warn!("outbox: cannot list {}: {e}", dir.display());
            Vec::new()
        }
    }
}

/// Older than `age` and nobody holds its lock.
fn is_abandoned(path: &Path, age: Duration) -> bool {
    let old = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|t| t.elapsed().is_ok_and(|e| e >= age));
    old && File::open(path).is_ok_and(|f| f.try_lock().is_ok())
}

fn remove(path: &Path) {
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!("outbox: removed the leftover {}", path.display()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("outbox: cannot remove {}: {e}", path.display()),
    }
}
