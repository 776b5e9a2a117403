//! The one way postie runs blocking work from async code.
//!
//! Some work blocks the thread that does it: SQLite with `synchronous=FULL`
//! (an fsync per commit, and up to a 10 s busy wait), fsync of spooled
//! bodies, the secret store (the keyring talks D-Bus; the encrypted file
//! derives its key with Argon2id, deliberately slow), Argon2 checks of relay
//! passwords, reading message files. On one of tokio's worker threads any of
//! these stalls every connection that thread serves, and on the CLI's
//! single-threaded runtime it stalls everything, timers included.
//!
//! The rule, for every crate of postie: such work goes through [`unblock`],
//! which runs it on tokio's blocking pool and waits for it without blocking.
//! Waiting on a child process (`password_command`) is not blocking work: it
//! uses `tokio::process` with a timeout instead.
//!
//! ```
//! # async fn demo() -> postie::error::Result<()> {
//! let len = postie::blocking::unblock(|| {
//!     std::fs::metadata("/etc/hostname")
//!         .map(|m| m.len())
//!         .map_err(|e| postie::Error::new(postie::ErrorKind::Io, e.to_string()))
//! })
//! .await?;
//! # let _ = len; Ok(()) }
//! ```

use crate::error::{Error, ErrorKind, Result};

/// Run `work` on tokio's blocking pool and wait for it. A panic in `work` is
/// resumed in the caller, as if the work had run in place; a runtime that
/// shuts down meanwhile is an [`ErrorKind::Io`] error.
pub async fn unblock<T, F>(work: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::new(
            ErrorKind::Io,
            format!("background work was stopped before it finished (shutting down): {e}"),
        )),
    }
}

/// Drop `value` on the blocking pool: for values whose `Drop` does blocking
/// work (a spool file removed, a file closed after writing), let go of from
/// code that cannot wait. Outside a runtime it is dropped in place.
pub fn discard<T: Send + 'static>(value: T) {
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn_blocking(move || drop(value));
        }
        Err(_) => drop(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn work_runs_off_the_async_thread() {
        let caller = std::thread::current().id();
        let worker = unblock(|| Ok(std::thread::current().id())).await.unwrap();
        assert_ne!(caller, worker);
    }

    #[tokio::test]
    async fn errors_and_panics_reach_the_caller() {
        let e = unblock(|| -> Result<()> { Err(Error::new(ErrorKind::Io, "disk full")) })
            .await
            .unwrap_err();
        assert_eq!(e.message(), "disk full");
        let panicked = tokio::spawn(unblock(|| -> Result<()> { panic!("boom") })).await;
        assert!(panicked.unwrap_err().is_panic());
    }
}
