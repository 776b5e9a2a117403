//! Open upstream connections kept between messages, per account.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use postie::transport::Connection;

/// How long an unused connection is kept. Servers drop idle clients after
/// a few minutes at most (RFC 5321 4.5.3.2.7 gives the server 5 minutes);
/// staying well below avoids sending into a connection being closed.
const IDLE: Duration = Duration::from_secs(20);

#[derive(Default)]
pub(super) struct Pool {
    idle: Mutex<HashMap<String, Vec<(Connection, Instant)>>>,
}

impl Pool {
    pub(super) fn take(&self, account: &str) -> Option<Connection> {
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.get_mut(account)?;
        while let Some((conn, since)) = list.pop() {
            if since.elapsed() < IDLE && conn.is_reusable() {
                return Some(conn);
            }
        }
        None
    }

    pub(super) fn put(&self, account: &str, conn: Connection) {
        if conn.is_reusable() {
            self.idle
                .lock()
                .expect("pool lock")
                .entry(account.to_string())
                .or_default()
                .push((conn, Instant::now()));
        }
    }

    /// QUIT connections idle for too long.
    pub(super) async fn close_idle(&self) {
        let stale: Vec<Connection> = {
            let mut idle = self.idle.lock().expect("pool lock");
            let mut out = Vec::new();
            for list in idle.values_mut() {
                let (keep, old): (Vec<_>, Vec<_>) = list
                    .drain(..)
                    .partition(|(_, since)| since.elapsed() < IDLE);
                *list = keep;
                out.extend(old.into_iter().map(|(c, _)| c));
            }
            out
        };
        for c in stale {
            c.quit().await;
        }
    }

    /// QUIT every connection.
    pub(super) async fn close_all(&self) {
        let all: Vec<Connection> = {
            let mut idle = self.idle.lock().expect("pool lock");
            idle.drain().flat_map(|(_, l)| l).map(|(c, _)| c).collect()
        };
        for c in all {
            c.quit().await;
        }
    }
}
