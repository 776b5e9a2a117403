//! The shared store: one PostgreSQL database for several hosts, bodies
//! included, so a host holds nothing another needs.
//!
//! - Claims take rows with `FOR UPDATE SKIP LOCKED` inside the UPDATE that
//!   leases them: two hosts never lease one message, and neither waits for
//!   the other's rows.
//! - A running deliverer holds a session advisory lock; when its host dies,
//!   PostgreSQL ends the session and drops the lock, and any other host
//!   returns its leased messages to the queue ([`Store::release_holder`]),
//!   without waiting for the leases to run out.
//! - Accepted messages that arrive together share one transaction (group
//!   commit); the commit waits for PostgreSQL's WAL flush
//!   (`synchronous_commit` as the server sets it; leave it `on`).
//! - No LISTEN/NOTIFY in the commit of an accepted message (a notify
//!   serialises committing transactions); deliverers poll [`Store::next_due`].
//! - TLS (`sslmode=prefer`, the default, or `require`) always verifies the
//!   server's certificate and name, against the system's roots and
//!   `[outbox] ca_file`: a server whose certificate does not verify is an
//!   error, never a silent fall-back to plain text. `sslmode=disable` for
//!   loopback and private networks.
//!
//! Inside: `schema` creates the tables, `claim` claims, leases and records
//! attempts, `admin` answers the operator commands, `secrets` keeps the
//! hosts' shared OAuth tokens.

mod admin;
mod claim;
mod quota;
mod schema;
mod secrets;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use postgres::types::Type;
use r2d2_postgres::PostgresConnectionManager;
use tokio_postgres_rustls::MakeRustlsConnect;

use super::spool::{GroupCommit, Inserted, Pending, insert_group, pending_row, random_name};
use super::time::to_ms;
use super::{
    Claim, Counts, Detail, Disposition, Holder, ListFilter, Location, MessageId, NewMessage,
    Outcome, Paused, PgTarget, RetryPolicy, Scope, Spool, State, Store, Summary, Which,
};
use postie::error::{Error, ErrorKind, Result};

type Pool = r2d2::Pool<PostgresConnectionManager<MakeRustlsConnect>>;
type Conn = r2d2::PooledConnection<PostgresConnectionManager<MakeRustlsConnect>>;

/// Connections one process keeps to the database: the relay's acceptance
/// (one group commit at a time), its deliverers' claims and reports, and
/// the operator's commands.
const POOL_SIZE: u32 = 8;

/// How long a call waits for a connection, or PostgreSQL for a lock,
/// before it fails with a transient error.
const WAIT: Duration = Duration::from_secs(10);

/// An outbox in a PostgreSQL database.
pub(super) struct Postgres {
    location: Location,
    target: PgTarget,
    /// `None` only while dropped.
    pool: Option<Pool>,
    group: GroupCommit,
    spool_dir: PathBuf,
    host: String,
}

impl std::fmt::Debug for Postgres {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Postgres")
            .field("location", &self.location.to_string())
            .finish()
    }
}

impl Postgres {
    /// Connect to `target` and create or migrate the schema.
    pub(super) fn connect(target: &PgTarget) -> Result<Postgres> {
        Postgres::connect_with(target, POOL_SIZE)
    }

    /// [`Postgres::connect`] keeping at most `pool_size` connections.
    pub(super) fn connect_with(target: &PgTarget, pool_size: u32) -> Result<Postgres> {
        let mut config = target.config.clone();
        config.connect_timeout(WAIT);
        // A statement stuck behind a lock for this long is failed (and the
        // caller told to try again) rather than left hanging.
        config.options(&format!(
            "{} -c lock_timeout={}",
            target.config.get_options().unwrap_or_default(),
            WAIT.as_millis()
        ));
        let tls = target.tls()?;
        // One connection first, for an error that says what is wrong (the
        // pool's own errors are bare strings), and for the schema.
        let mut first = config
            .connect(tls.clone())
            .map_err(|e| connect_error(target, e))?;
        schema::migrate(&mut first)?;
        drop_blocking(first);
        let manager = PostgresConnectionManager::new(config, tls);
        let pool = r2d2::Pool::builder()
            .max_size(pool_size)
            .min_idle(Some(1))
            .connection_timeout(WAIT)
            // No probe round trip per checkout: a connection the server
            // closed fails its statement (a transient error, tried again)
            // and is dropped from the pool when it comes back.
            .test_on_check_out(false)
            .error_handler(Box::new(r2d2::NopErrorHandler))
            .build(manager)
            .map_err(|e| unreachable_db(target, &e.to_string()))?;
        let store = Postgres {
            location: Location::Postgres(Box::new(target.clone())),
            target: target.clone(),
            pool: Some(pool),
            group: GroupCommit::default(),
            spool_dir: std::env::temp_dir(),
            host: target
                .host_id
                .clone()
                .unwrap_or_else(|| gethostname::gethostname().to_string_lossy().into_owned()),
        };
        Ok(store)
    }

    /// A connection from the pool.
    fn conn(&self) -> Result<Conn> {
        self.pool
            .as_ref()
            .expect("the pool lives until drop")
            .get()
            .map_err(|e| unreachable_db(&self.target, &e.to_string()))
    }

    /// Insert the rows of `batch` in one transaction: ids drawn first, then
    /// every table in one statement each, whatever the group's size.
    fn insert_all(&self, batch: &[Pending]) -> Result<Vec<MessageId>, Inserted> {
        let now = to_ms(SystemTime::now());
        let before = |e| Inserted::Before(pg(e));
        let mut conn = self.conn().map_err(Inserted::Before)?;
        let mut tx = conn.transaction().map_err(before)?;
        let n = batch.len() as i64;
        let ids: Vec<i64> = tx
            .query_typed(
                "SELECT nextval(pg_get_serial_sequence('messages', 'id'))
                 FROM generate_series(1, $1::bigint)",
                &[(&n, Type::INT8)],
            )
            .map_err(before)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let col = |f: &dyn Fn(&Pending) -> Option<String>| -> Vec<Option<String>> {
            batch.iter().map(f).collect()
        };
        let accounts = col(&|p| Some(p.meta.account.clone()));
        let froms = col(&|p| p.meta.mail_from.clone().filter(|f| !f.is_empty()));
        let header_ids = col(&|p| p.meta.message_id.clone());
        let subjects = col(&|p| p.meta.subject.clone());
        let sources = col(&|p| Some(p.meta.source.clone()));
        let batches = col(&|p| p.meta.batch.as_ref().map(|b| b.batch.clone()));
        let items = col(&|p| p.meta.batch.as_ref().map(|b| b.item.clone()));
        let sizes: Vec<i64> = batch
            .iter()
            .map(|p| i64::try_from(p.size).unwrap_or(i64::MAX))
            .collect();
        let eight: Vec<bool> = batch.iter().map(|p| p.meta.eight_bit).collect();
        let utf8: Vec<bool> = batch.iter().map(|p| p.meta.smtputf8).collect();
        tx.execute_typed(
            "INSERT INTO messages (id, account, mail_from, state, size, eight_bit, smtputf8,
                 header_id, subject, source, host, queued_at, window_start, next_attempt_at,
                 batch, batch_item)
             SELECT id, account, mail_from, 'queued', size, eight_bit, smtputf8, header_id,
                    subject, source, $11, $12, $12, $12, batch, batch_item
             FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::bool[],
                         $6::bool[], $7::text[], $8::text[], $9::text[], $10::text[],
                         $13::text[])
                  AS t (id, account, mail_from, size, eight_bit, smtputf8, header_id, subject,
                        source, batch, batch_item)",
            &[
                (&ids, Type::INT8_ARRAY),
                (&accounts, Type::TEXT_ARRAY),
                (&froms, Type::TEXT_ARRAY),
                (&sizes, Type::INT8_ARRAY),
                (&eight, Type::BOOL_ARRAY),
                (&utf8, Type::BOOL_ARRAY),
                (&header_ids, Type::TEXT_ARRAY),
                (&subjects, Type::TEXT_ARRAY),
                (&sources, Type::TEXT_ARRAY),
                (&batches, Type::TEXT_ARRAY),
                (&self.host, Type::TEXT),
                (&now, Type::INT8),
                (&items, Type::TEXT_ARRAY),
            ],
        )
        .map_err(before)?;
        let bodies: Vec<&[u8]> = batch
            .iter()
            .map(|p| p.body.as_deref().unwrap_or_default())
            .collect();
        tx.execute_typed(
            "INSERT INTO bodies (msg, body) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
            &[(&ids, Type::INT8_ARRAY), (&bodies, Type::BYTEA_ARRAY)],
        )
        .map_err(before)?;
        let (mut msg, mut pos, mut addr) = (Vec::new(), Vec::new(), Vec::new());
        for (id, p) in ids.iter().zip(batch) {
            for (i, r) in p.meta.recipients.iter().enumerate() {
                msg.push(*id);
                pos.push(i as i64);
                addr.push(r.as_str());
            }
        }
        tx.execute_typed(
            "INSERT INTO recipients (msg, position, address, state)
             SELECT m, p, a, 'pending' FROM unnest($1::bigint[], $2::bigint[], $3::text[])
                  AS t (m, p, a)",
            &[
                (&msg, Type::INT8_ARRAY),
                (&pos, Type::INT8_ARRAY),
                (&addr, Type::TEXT_ARRAY),
            ],
        )
        .map_err(before)?;
        tx.commit().map_err(|e| Inserted::Commit(pg(e)))?;
        Ok(ids.into_iter().map(MessageId).collect())
    }

    /// Commit `pending` with whatever arrives meanwhile.
    fn insert(&self, pending: Pending) -> Result<MessageId> {
        self.group
            .join(pending, |batch| insert_group(batch, |b| self.insert_all(b)))
            .map_err(|(Inserted::Before(e) | Inserted::Commit(e))| e)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        drop_blocking(self.pool.take());
    }
}

/// Drop `v`, whose drop blocks (a client saying goodbye to the server),
/// where blocking is allowed (see [`off_runtime`]).
fn drop_blocking<T: Send + 'static>(v: T) {
    off_runtime(move || drop(v));
}

/// Run blocking `f` on a thread of its own when this one may be driving
/// async tasks (the last handle on an outbox is often dropped there), else
/// here.
pub(super) fn off_runtime(f: impl FnOnce() + Send + 'static) {
    if tokio::runtime::Handle::try_current().is_ok() {
        let _ = std::thread::Builder::new()
            .name("postie-pg-close".into())
            .spawn(f);
    } else {
        f();
    }
}

impl Store for Postgres {
    fn location(&self) -> &Location {
        &self.location
    }

    fn spool(&self) -> Result<Spool> {
        Spool::create(&self.spool_dir)
    }

    fn commit(&self, spool: Spool, meta: NewMessage) -> Result<MessageId> {
        meta.validate()?;
        let body = spool.into_bytes()?;
        self.insert(Pending {
            name: random_name(),
            size: body.len() as u64,
            meta,
            body: Some(body),
        })
    }

    fn commit_row(&self, body: Vec<u8>, meta: NewMessage) -> Result<MessageId> {
        self.insert(pending_row(body, meta)?)
    }

    fn claim_in(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
        scope: &Scope<'_>,
        token_prefix: &str,
    ) -> Result<Vec<Claim>> {
        claim::claim_in(self, now, lease, limit, scope, token_prefix)
    }

    fn renew(&self, claim: &Claim, now: SystemTime, lease: Duration) -> Result<bool> {
        claim::renew(self, claim, now, lease)
    }

    fn release(&self, claim: &Claim) -> Result<bool> {
        claim::release(self, claim)
    }

    fn postpone(&self, claim: &Claim, until: SystemTime, reason: &str) -> Result<bool> {
        claim::postpone(self, claim, until, reason)
    }

    fn release_holder(&self, token_prefix: &str) -> Result<usize> {
        claim::release_holder(self, token_prefix)
    }

    fn register_holder(&self) -> Result<Holder> {
        claim::register_holder(self)
    }

    fn recover_holders(&self) -> Result<usize> {
        claim::recover(self, &mut *self.conn()?)
    }

    fn finish(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Disposition> {
        claim::finish(self, claim, outcome, now, policy)
    }

    fn finish_many(
        &self,
        attempts: Vec<(Claim, Outcome)>,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Vec<Disposition>> {
        claim::finish_many(self, attempts, now, policy)
    }

    fn sent_since(&self, account: &str, since: SystemTime) -> Result<Vec<(SystemTime, u32)>> {
        admin::sent_since(self, account, since)
    }

    fn list(&self, filter: &ListFilter) -> Result<Vec<Summary>> {
        admin::list(self, filter)
    }

    fn batch_items(&self, batch: &str) -> Result<std::collections::HashMap<String, MessageId>> {
        admin::batch_items(self, batch)
    }

    fn show(&self, id: MessageId) -> Result<Option<Detail>> {
        admin::show(self, id)
    }

    fn retry(&self, which: Which, now: SystemTime) -> Result<usize> {
        admin::retry(self, which, now)
    }

    fn purge(&self, id: MessageId) -> Result<bool> {
        admin::purge(self, id)
    }

    fn purge_finished(&self, state: State, finished_before: SystemTime) -> Result<u64> {
        admin::purge_finished(self, state, finished_before)
    }

    fn counts(&self) -> Result<Counts> {
        admin::counts(self)
    }

    fn next_due(&self) -> Result<Option<SystemTime>> {
        admin::next_due(self)
    }

    fn keeps_quotas(&self) -> bool {
        true
    }

    fn status(&self) -> Result<Vec<String>> {
        let mut conn = self.conn()?;
        let version: i64 = conn
            .query_one("SELECT version FROM postie_schema", &[])
            .map_err(pg)?
            .get(0);
        let hosts: Vec<String> = conn
            .query(
                "SELECT host, count(*) FROM holders GROUP BY host ORDER BY host",
                &[],
            )
            .map_err(pg)?
            .iter()
            .map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, i64>(1)))
            .collect();
        let server: String = conn
            .query_one("SHOW server_version", &[])
            .map_err(pg)?
            .get(0);
        Ok(vec![
            format!("PostgreSQL {server}, postie schema {version}"),
            if hosts.is_empty() {
                "no deliverer running".into()
            } else {
                format!("deliverers running: {}", hosts.join(", "))
            },
        ])
    }

    fn reserve(
        &self,
        account: &str,
        limits: &postie::provider::Limits,
        recipients: u32,
        now: SystemTime,
    ) -> Result<super::quota::Reservation> {
        quota::reserve(self, account, limits, recipients, now)
    }

    fn settle(&self, id: i64, accepted: u32) -> Result<()> {
        quota::settle(self, id, accepted)
    }

    fn pause_account(&self, account: &str, reason: &str, now: SystemTime) -> Result<bool> {
        admin::pause_account(self, account, reason, now)
    }

    fn resume_account(&self, account: &str) -> Result<bool> {
        admin::resume_account(self, account)
    }

    fn paused(&self) -> Result<Vec<Paused>> {
        admin::paused(self)
    }
}

impl PgTarget {
    /// The TLS connector: rustls verifying against the system's roots and
    /// the target's CA file.
    pub(super) fn tls(&self) -> Result<MakeRustlsConnect> {
        let config = postie::transport::tls_config(self.ca_file.as_deref())?;
        Ok(MakeRustlsConnect::new((*config).clone()))
    }
}

/// A send as (time, recipients reached) from a row of those two columns.
fn send_row(r: &postgres::Row) -> (SystemTime, u32) {
    (
        super::time::from_ms(r.get(0)),
        u32::try_from(r.get::<_, i64>(1)).unwrap_or(u32::MAX),
    )
}

/// The first connection failed: a refused login or a missing database is
/// the settings' fault (fix them); anything else may pass (try again).
fn connect_error(target: &PgTarget, e: postgres::Error) -> Error {
    use postgres::error::SqlState;
    let Some(db) = e.as_db_error() else {
        let what = e.to_string();
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        if cause.as_deref() == Some("password missing") {
            return Error::new(
                ErrorKind::Config,
                format!(
                    "the outbox database {target} asks for a password and this host has none \
                     for it; give it with `postie queue password` (kept in this host's secret \
                     store), [outbox] password_env or password_command, the password file \
                     PGPASSFILE (~/.pgpass), or in the URL of POSTIE_OUTBOX"
                ),
            );
        }
        if what.contains("TLS") {
            let fix = if what.contains("not support TLS") {
                "enable ssl in the server's postgresql.conf, or connect with sslmode=disable on \
                 loopback or a private network"
            } else {
                "if the server's certificate is signed by your own CA, name it with ca_file in \
                 [outbox]; check that the URL names the host the certificate is for; or connect \
                 with sslmode=disable on loopback or a private network"
            };
            return Error::new(
                ErrorKind::Tls,
                format!("TLS to the outbox database {target} failed: {what}; {fix}"),
            );
        }
        return unreachable_db(target, &what);
    };
    let code = db.code();
    let fix = if *code == SqlState::INVALID_PASSWORD
        || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION
    {
        "check the user and its password (`postie queue password`, [outbox] password_env or \
         password_command, the password file PGPASSFILE, or the URL in POSTIE_OUTBOX) and the \
         server's pg_hba.conf"
    } else if *code == SqlState::INVALID_CATALOG_NAME {
        "create the database (createdb --owner USER NAME) or fix its name in the URL"
    } else {
        return unreachable_db(target, db.message());
    };
    Error::new(
        ErrorKind::Config,
        format!(
            "the outbox database {target} refused the connection: {} ({}); {fix}",
            db.message(),
            code.code()
        ),
    )
}

/// The database cannot be reached: transient (the relay answers 4xx, the
/// deliverer tries again), with where and the usual causes.
fn unreachable_db(target: &PgTarget, why: &str) -> Error {
    Error::new(
        ErrorKind::Transient,
        format!(
            "cannot reach the outbox database {target}: {why}. Check that PostgreSQL runs and \
             accepts connections from this host (listen_addresses, pg_hba.conf), and the \
             user's password (password_env, password_command or PGPASSFILE)"
        ),
    )
}

/// A database error as postie's error. Connection trouble, lock timeouts,
/// serialization failures and deadlocks are transient; the rest are not.
/// PostgreSQL's messages hold no password.
fn pg(e: postgres::Error) -> Error {
    use postgres::error::SqlState;
    let transient = e.is_closed()
        || e.code().is_some_and(|c| {
            [
                SqlState::T_R_SERIALIZATION_FAILURE,
                SqlState::T_R_DEADLOCK_DETECTED,
                SqlState::LOCK_NOT_AVAILABLE,
                SqlState::QUERY_CANCELED,
                SqlState::ADMIN_SHUTDOWN,
                SqlState::CANNOT_CONNECT_NOW,
                SqlState::TOO_MANY_CONNECTIONS,
            ]
            .contains(c)
                || c.code().starts_with("08")
        });
    let what = match e.as_db_error() {
        Some(d) => format!("{} ({})", d.message(), d.code().code()),
        None => e.to_string(),
    };
    if transient {
        Error::new(
            ErrorKind::Transient,
            format!("the outbox database is busy or unreachable ({what}); try again"),
        )
    } else {
        Error::new(ErrorKind::Io, format!("the outbox database failed: {what}"))
    }
}
