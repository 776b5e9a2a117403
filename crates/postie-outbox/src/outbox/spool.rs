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
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rand::RngCore;
use rusqlite::params;

use super::time::to_ms;
use super::{MESSAGES_DIR, MessageId, NewMessage, Outbox, TMP_DIR, db, immediate, io};
use postie::error::Result;

/// Spool files untouched for this long with no writer are leftovers.
const TMP_AGE: Duration = Duration::from_secs(60);
/// Bodies with no row, unlocked and this old, are leftovers.
const ORPHAN_AGE: Duration = Duration::from_secs(5 * 60);

/// A body being written, not yet in the outbox. Write the message to it,
/// then hand it to [`Outbox::commit`]. Dropped without a commit, its file is
/// removed.
pub struct Spool {
    file: Option<BufWriter<File>>,
    path: PathBuf,
    size: u64,
}

impl Write for Spool {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.writer().write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.writer().flush()
    }
}

impl Spool {
    fn writer(&mut self) -> &mut BufWriter<File> {
        self.file
            .as_mut()
            .expect("a spool's file lives until commit")
    }

    /// Bytes written so far.
    pub fn size(&self) -> u64 {
        self.size
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.file.is_some() {
            // Never committed: nobody was told "accepted".
            self.file = None;
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool")
            .field("path", &self.path)
            .field("size", &self.size)
            .finish()
    }
}

impl Outbox {
    /// Start spooling a body: a new private file (mode 0600) in
    /// `messages/tmp`, buffered, so a large message never sits in memory.
    pub fn spool(&self) -> Result<Spool> {
        let path = self
            .messages_dir()
            .join(TMP_DIR)
            .join(format!("{}.tmp", random_name()));
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let file = o.open(&path).map_err(|e| io("create", &path, e))?;
        // Held until the COMMIT (see the module comment).
        file.lock().map_err(|e| io("lock", &path, e))?;
        Ok(Spool {
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            path,
            size: 0,
        })
    }

    /// Store a body held in memory in its row: no file, so no file fsync,
    /// rename or directory fsync; the row's commit (shared with the
    /// messages that arrive together) makes it durable. For bodies up to
    /// [`Outbox::INLINE_MAX`] bytes; larger ones go to [`Outbox::commit`].
    pub fn commit_row(&self, body: Vec<u8>, meta: NewMessage) -> Result<MessageId> {
        meta.validate()?;
        if body.len() > Self::INLINE_MAX {
            return Err(postie::Error::new(
                postie::ErrorKind::Io,
                format!(
                    "a body of {} bytes is too large for the outbox's rows (at most {}): spool it",
                    body.len(),
                    Self::INLINE_MAX
                ),
            ));
        }
        let pending = Pending {
            name: random_name(),
            size: body.len() as u64,
            meta,
            body: Some(body),
        };
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
    pub fn commit(&self, mut spool: Spool, meta: NewMessage) -> Result<MessageId> {
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
        if batch.len() > 1 {
            match self.insert_all(batch) {
                Ok(ids) => return ids.into_iter().map(Ok).collect(),
                Err(Inserted::Commit(e)) => {
                    return batch
                        .iter()
                        .map(|_| {
                            Err(Inserted::Commit(postie::Error::new(
                                e.kind(),
                                e.message().to_string(),
                            )))
                        })
                        .collect();
                }
                Err(Inserted::Before(_)) => {}
            }
        }
        batch
            .iter()
            .map(|p| self.insert_all(std::slice::from_ref(p)).map(|ids| ids[0]))
            .collect()
    }
    /// Bodies up to this size are kept in their database row
    /// ([`Outbox::commit_row`]); SQLite reads and writes blobs of this size
    /// faster than separate files, and one commit makes them durable.
    pub const INLINE_MAX: usize = 64 * 1024;

    /// Commit a body already in memory: in its row when it is small, else
    /// spooled to a file.
    pub fn enqueue(&self, body: &[u8], meta: NewMessage) -> Result<MessageId> {
        // Stored as it will be carried: CRLF lines, ending with CRLF (the
        // relay's server stores its messages so), so a message's size is
        // what SIZE= declares when it is sent.
        let body = postie_proto::data::canonical_message(body);
        if body.len() <= Self::INLINE_MAX {
            return self.commit_row(body, meta);
        }
        meta.validate()?;
        let mut spool = self.spool()?;
        spool
            .write_all(&body)
            .map_err(|e| io("write", &spool.path, e))?;
        self.commit(spool, meta)
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

/// Why an insert failed: before the COMMIT (no row), or at it (unknown).
enum Inserted {
    Before(postie::Error),
    Commit(postie::Error),
}

/// A body renamed into place, or held for its row, waiting for the row.
pub(super) struct Pending {
    name: String,
    size: u64,
    meta: NewMessage,
    /// The body itself, stored in the row; `None`: the file `name`.
    body: Option<Vec<u8>>,
}

/// Group commit: callers queue their [`Pending`] rows; the first that finds
/// no leader commits everything queued (its own included), the others wait
/// for their result. No timer: a group is whatever arrived while the
/// previous one was being committed.
#[derive(Default)]
pub(super) struct GroupCommit {
    state: std::sync::Mutex<GroupState>,
    done: std::sync::Condvar,
}

#[derive(Default)]
struct GroupState {
    queue: Vec<(u64, Pending)>,
    leading: bool,
    next: u64,
    results: std::collections::HashMap<u64, Result<MessageId, Inserted>>,
}

impl GroupCommit {
    fn lock(&self) -> std::sync::MutexGuard<'_, GroupState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn join(
        &self,
        p: Pending,
        commit: impl Fn(&[Pending]) -> Vec<Result<MessageId, Inserted>>,
    ) -> Result<MessageId, Inserted> {
        let mut st = self.lock();
        let ticket = st.next;
        st.next += 1;
        st.queue.push((ticket, p));
        loop {
            if let Some(r) = st.results.remove(&ticket) {
                return r;
            }
            if st.leading {
                st = self.done.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.leading = true;
            let (tickets, batch): (Vec<u64>, Vec<Pending>) =
                std::mem::take(&mut st.queue).into_iter().unzip();
            drop(st);
            // A panic here must not leave the others waiting for ever.
            let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(&batch)))
                .unwrap_or_else(|_| {
                    batch
                        .iter()
                        .map(|_| {
                            Err(Inserted::Before(postie::Error::new(
                                postie::ErrorKind::Io,
                                "the outbox commit failed unexpectedly",
                            )))
                        })
                        .collect()
                });
            st = self.lock();
            st.leading = false;
            st.results.extend(tickets.into_iter().zip(results));
            self.done.notify_all();
        }
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

/// 128 random bits in hex: names that never collide across processes.
fn random_name() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
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
