//! [`Pool`]: open sessions kept between messages, per account, for senders
//! that take turns (the relay's delivery workers, bulk sending).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Account, Mailer, Session};

/// How long an unused connection is kept. Servers drop idle clients after
/// a few minutes at most (RFC 5321 §4.5.3.2.7 gives the server 5 minutes);
/// staying well below avoids sending into a connection being closed.
pub const KEEP_IDLE: Duration = Duration::from_secs(20);

/// Sessions with an open connection, waiting for their next message.
pub struct Pool {
    mailer: Mutex<Mailer>,
    keep_idle: Duration,
    idle: Mutex<HashMap<String, Vec<(Session, Instant)>>>,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("keep_idle", &self.keep_idle)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// An empty pool over `mailer` that keeps idle connections for
    /// [`KEEP_IDLE`].
    pub fn new(mailer: Mailer) -> Pool {
        Pool {
            mailer: Mutex::new(mailer),
            keep_idle: KEEP_IDLE,
            idle: Mutex::default(),
        }
    }

    /// A session for `account`: one whose connection is open and idle,
    /// else a new one (connected at its first message). Give it back with
    /// [`Pool::put`].
    pub fn session(&self, account: &Account) -> Session {
        let key = account.label();
        let found = {
            let mut idle = self.idle.lock().expect("pool lock");
            let mut found = None;
            if let Some(list) = idle.get_mut(&key) {
                while let Some((s, since)) = list.pop() {
                    if since.elapsed() < self.keep_idle && s.is_connected() {
                        found = Some(s);
                        break;
                    }
                    // Too old: dropped, which closes its socket.
                }
            }
            found
        };
        found.unwrap_or_else(|| self.mailer().session(account))
    }

    /// The mailer new sessions come from.
    pub fn mailer(&self) -> Mailer {
        self.mailer.lock().expect("pool lock").clone()
    }

    /// From now on, sessions come from `mailer` (the configuration was
    /// read again): idle connections made with the old settings are closed,
    /// and sessions given back later from the old mailer are not kept.
    pub async fn set_mailer(&self, mailer: Mailer) {
        *self.mailer.lock().expect("pool lock") = mailer;
        self.close_all().await;
    }

    /// Keep `session` for the account's next message, if its connection
    /// can carry one.
    pub fn put(&self, session: Session) {
        if session.is_connected() && session.mailer().same(&self.mailer()) {
            self.idle
                .lock()
                .expect("pool lock")
                .entry(session.account().label())
                .or_default()
                .push((session, Instant::now()));
        }
    }

    /// QUIT the connections idle for longer than the pool keeps them.
    pub async fn close_idle(&self) {
        let stale: Vec<Session> = {
            let mut idle = self.idle.lock().expect("pool lock");
            let mut out = Vec::new();
            for list in idle.values_mut() {
                let (keep, old): (Vec<_>, Vec<_>) = list
                    .drain(..)
                    .partition(|(_, since)| since.elapsed() < self.keep_idle);
                *list = keep;
                out.extend(old.into_iter().map(|(s, _)| s));
            }
            out
        };
        for s in stale {
            s.close().await;
        }
    }

    /// QUIT every connection.
    pub async fn close_all(&self) {
        let all: Vec<Session> = {
            let mut idle = self.idle.lock().expect("pool lock");
            idle.drain().flat_map(|(_, l)| l).map(|(s, _)| s).collect()
        };
        for s in all {
            s.close().await;
        }
    }
}
