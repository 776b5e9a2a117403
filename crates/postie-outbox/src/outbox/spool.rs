//! Bodies on their way into a store: a [`Spool`] is a private file a
//! message is written to as it arrives, so a large message never sits in
//! memory; the store then takes it in its commit. [`GroupCommit`] lets
//! messages that arrive together share one commit.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::{MessageId, NewMessage, io};
use postie::error::Result;

/// A body being written, not yet in the outbox. Write the message to it,
/// then hand it to [`super::Store::commit`]. Dropped without a commit, its
/// file is removed.
pub struct Spool {
    pub(super) file: Option<BufWriter<File>>,
    pub(super) path: PathBuf,
    pub(super) size: u64,
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

    /// A new private file (mode 0600) in `dir`, buffered and locked: the
    /// lock is held until the store's commit returned, so a clean-up never
    /// takes a body that is still being written or committed.
    pub(super) fn create(dir: &Path) -> Result<Spool> {
        let path = dir.join(format!("{}.tmp", random_name()));
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
        let file = o.open(&path).map_err(|e| io("create", &path, e))?;
        file.lock().map_err(|e| io("lock", &path, e))?;
        Ok(Spool {
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            path,
            size: 0,
        })
    }

    /// The whole body, read back; the file is removed. For stores that keep
    /// bodies in their rows.
    pub(super) fn into_bytes(mut self) -> Result<Vec<u8>> {
        let writer = self.file.take().expect("a spool's file lives until commit");
        let r = writer
            .into_inner()
            .map_err(|e| e.into_error())
            .and_then(|_| std::fs::read(&self.path));
        let _ = std::fs::remove_file(&self.path);
        r.map_err(|e| io("read back", &self.path, e))
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

/// Why an insert failed: before the COMMIT (no row), or at it (unknown).
pub(super) enum Inserted {
    Before(postie::Error),
    Commit(postie::Error),
}

/// A body renamed into place, or held for its row, waiting for the row.
pub(super) struct Pending {
    pub(super) name: String,
    pub(super) size: u64,
    pub(super) meta: NewMessage,
    /// The body itself, stored in the row; `None`: the file `name`.
    pub(super) body: Option<Vec<u8>>,
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

    pub(super) fn join(
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

/// Insert a group's rows with `insert_all`, in one transaction. A row that
/// cannot be inserted (a batch item already queued) fails alone: the group
/// is then inserted one row at a time. A failed COMMIT fails the group.
pub(super) fn insert_group(
    batch: &[Pending],
    insert_all: impl Fn(&[Pending]) -> Result<Vec<MessageId>, Inserted>,
) -> Vec<Result<MessageId, Inserted>> {
    if batch.len() > 1 {
        match insert_all(batch) {
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
        .map(|p| insert_all(std::slice::from_ref(p)).map(|ids| ids[0]))
        .collect()
}

/// A body committed from memory ([`super::Store::commit_row`]): validated,
/// at most [`super::INLINE_MAX`] bytes, ready for its group.
pub(super) fn pending_row(body: Vec<u8>, meta: NewMessage) -> Result<Pending> {
    meta.validate()?;
    if body.len() > super::INLINE_MAX {
        return Err(postie::Error::new(
            postie::ErrorKind::Io,
            format!(
                "a body of {} bytes is committed from a spool, not from memory (at most {})",
                body.len(),
                super::INLINE_MAX
            ),
        ));
    }
    Ok(Pending {
        name: random_name(),
        size: body.len() as u64,
        meta,
        body: Some(body),
    })
}

/// 128 random bits in hex: names that never collide across processes.
pub(super) fn random_name() -> String {
    let mut b = [0u8; 16];
    rand::rng().fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}
