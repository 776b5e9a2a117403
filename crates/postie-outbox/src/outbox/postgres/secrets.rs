//! The fleet's shared secrets (each account's OAuth tokens) in the outbox
//! database, and the lock a refresh holds across hosts: a session advisory
//! lock per account, taken on a pooled connection that the guard keeps
//! until the refreshed tokens are saved.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretString};

use postie::error::{Error, ErrorKind, Result};
use postie::secret::SharedSecrets;

use super::super::time::to_ms;
use super::{Conn, Postgres, off_runtime, pg};

/// The advisory lock of account `$1`'s tokens (a 64-bit hash of its name,
/// apart from the holders' random keys).
const KEY: &str = "hashtextextended('postie oauth tokens ' || $1, 0)";

impl SharedSecrets for Postgres {
    fn describe(&self) -> String {
        format!("the outbox database {}", self.target)
    }

    fn get(&self, key: &str) -> Result<Option<SecretString>> {
        Ok(self
            .conn()?
            .query_opt("SELECT value FROM shared_secrets WHERE key = $1", &[&key])
            .map_err(pg)?
            .map(|r| SecretString::from(r.get::<_, String>(0))))
    }

    fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        self.conn()?
            .execute(
                "INSERT INTO shared_secrets (key, value, updated_at) VALUES ($1, $2, $3)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value,
                                                 updated_at = EXCLUDED.updated_at",
                &[
                    &key,
                    &value.expose_secret(),
                    &to_ms(std::time::SystemTime::now()),
                ],
            )
            .map_err(pg)?;
        Ok(())
    }

    fn delete(&self, key: &str) -> Result<bool> {
        let n = self
            .conn()?
            .execute("DELETE FROM shared_secrets WHERE key = $1", &[&key])
            .map_err(pg)?;
        Ok(n > 0)
    }

    fn lock(&self, name: &str, wait: Duration) -> Result<Box<dyn Send>> {
        let mut conn = self.conn()?;
        let deadline = Instant::now() + wait;
        loop {
            let got: bool = conn
                .query_one(&format!("SELECT pg_try_advisory_lock({KEY})"), &[&name])
                .map_err(pg)?
                .get(0);
            if got {
                return Ok(Box::new(TokenLock {
                    conn: Some(conn),
                    name: name.to_string(),
                }));
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Transient,
                    format!(
                        "another host has been refreshing the OAuth tokens of '{name}' for {} s \
                         (the lock in {}); try again",
                        wait.as_secs(),
                        self.target
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// An account's token lock; unlocked (and its connection returned to the
/// pool) when dropped.
struct TokenLock {
    conn: Option<Conn>,
    name: String,
}

impl Drop for TokenLock {
    fn drop(&mut self) {
        if let Some(mut conn) = self.conn.take() {
            let name = std::mem::take(&mut self.name);
            off_runtime(move || {
                // A connection that failed here is closed and dropped by the
                // pool, its session's locks with it.
                let _ = conn.execute(&format!("SELECT pg_advisory_unlock({KEY})"), &[&name]);
            });
        }
    }
}
