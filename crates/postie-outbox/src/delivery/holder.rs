//! Which running deliverer holds a lease. Each deliverer holds an exclusive
//! lock on its own file under `holders/` for as long as it runs; the
//! operating system drops the lock when the process dies, even by SIGKILL.
//! A new deliverer that can lock another's file knows that one is gone and
//! returns its leased messages to the queue at once, instead of waiting for
//! the leases to run out.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;

use rand::Rng;

use crate::outbox::Outbox;
use postie::error::{Error, ErrorKind, Result};

/// This process's hold on its leases; released when dropped.
pub struct Holder {
    prefix: String,
    path: PathBuf,
    _file: File,
}

impl Holder {
    /// Register a new deliverer and recover the leases of dead ones.
    pub fn acquire(outbox: &Outbox) -> Result<Holder> {
        let dir = outbox.dir().join("holders");
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
                    recovered += outbox.release_holder(&prefix)?;
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        if recovered > 0 {
            tracing::info!(
                "returned {recovered} message(s) leased by a deliverer that stopped to the queue"
            );
        }
        let prefix: String = {
            let mut rng = rand::rng();
            (0..12)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
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
        Ok(Holder {
            prefix,
            path,
            _file: file,
        })
    }

    /// Lease tokens of this deliverer start with this.
    pub fn token_prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn io(path: &std::path::Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot use the outbox's lock file {}: {e}", path.display()),
    )
}
