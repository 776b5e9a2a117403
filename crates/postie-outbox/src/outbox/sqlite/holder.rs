//! Which running deliverer holds a lease. Each deliverer holds an exclusive
//! lock on its own file under `holders/` for as long as it runs; the
//! operating system drops the lock when the process dies, even by SIGKILL.
//! A new deliverer that can lock another's file knows that one is gone and
//! returns its leased messages to the queue at once, instead of waiting for
//! the leases to run out.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use super::super::Holder;
use super::Sqlite;
use postie::error::{Error, ErrorKind, Result};

/// The locked file; removed when the deliverer stops.
struct HeldFile {
    path: PathBuf,
    _file: File,
}

impl Drop for HeldFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Sqlite {
    /// Return the leases of deliverers whose lock files nobody holds.
    pub(super) fn recover_holders(&self) -> Result<usize> {
        let dir = self.dir.join("holders");
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let mut recovered = 0;
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(prefix) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".lock"))
                    .map(str::to_string)
                else {
                    continue;
                };
                let Ok(f) = OpenOptions::new().write(true).open(&path) else {
                    continue;
                };
                if f.try_lock().is_ok() {
                    // Nobody holds it: its deliverer died. Give its messages
                    // back to the queue before removing the file.
                    recovered += self.release_holder(&prefix)?;
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        Ok(recovered)
    }

    /// Register a new deliverer and recover the leases of dead ones.
    pub(super) fn register_holder(&self) -> Result<Holder> {
        let dir = self.dir.join("holders");
        let recovered = self.recover_holders()?;
        if recovered > 0 {
            tracing::info!(
                "returned {recovered} message(s) leased by a deliverer that stopped to the queue"
            );
        }
        let prefix = Holder::new_prefix();
        // Lock under a name the scan above skips, then rename: a scanning
        // deliverer never sees this file unlocked.
        let path = dir.join(format!("{prefix}.lock"));
        let tmp = dir.join(format!("{prefix}.new"));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| io(&tmp, e))?;
        file.lock().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
        Ok(Holder::new(prefix, HeldFile { path, _file: file }))
    }
}

fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot use the outbox's lock file {}: {e}", path.display()),
    )
}
