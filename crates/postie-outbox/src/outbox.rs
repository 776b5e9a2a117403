//! The durable outbox: messages accepted by `postie relay`, `postie
//! sendmail` and `postie bulk`, kept until they are delivered upstream or
//! given up.
//!
//! One interface, [`Store`], two implementations:
//! - an outbox directory (the default): SQLite and files on one host, no
//!   set-up (see `sqlite.rs`);
//! - a PostgreSQL database shared by several hosts, bodies included, so a
//!   host holds nothing another needs (see `postgres.rs`).
//!
//! [`Outbox`] is the store a program opened, from a [`Location`]; its
//! methods are the [`Store`]'s. A message is acknowledged to whoever handed
//! it over only after [`Store::commit`] (or [`Store::commit_row`]) returned:
//! by then it is durable in the store. Several processes, on one host or
//! several, may use one outbox at once; delivery workers take messages with
//! [`Outbox::claim`], which leases them, and report with [`Store::finish`].
//!
//! Shared by both stores: `spool` writes incoming bodies, [`policy`] decides
//! when to retry, `message` and `delivery` are the vocabulary.
//!
//! ```no_run
//! # fn demo() -> postie::error::Result<()> {
//! use std::time::{Duration, SystemTime};
//! use postie_outbox::outbox::{NewMessage, Outbox, StoredBody};
//!
//! let outbox = Outbox::open(std::path::Path::new("/tmp/postie-outbox"))?;
//! let id = outbox.enqueue(
//!     b"Subject: hi\r\n\r\nhello\r\n",
//!     NewMessage {
//!         account: "work".into(),
//!         mail_from: Some("me@example.com".into()),
//!         recipients: vec!["you@example.com".into()],
//!         source: "sendmail".into(),
//!         ..NewMessage::default()
//!     },
//! )?;
//! for claim in outbox.claim(SystemTime::now(), Duration::from_secs(120), 10, None, "")? {
//!     match &claim.body {
//!         StoredBody::Row(bytes) => println!("message {}: {} bytes", claim.id, bytes.len()),
//!         StoredBody::File(path) => println!("message {}: {}", claim.id, path.display()),
//!     }
//! }
//! # let _ = id; Ok(()) }
//! ```

mod delivery;
mod finish;
mod location;
mod message;
pub mod policy;
mod postgres;
pub mod quota;
mod spool;
mod sqlite;
mod time;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postie::blocking::unblock;
use postie::error::{Error, ErrorKind, Result};

pub use delivery::{
    Claim, Disposition, FailureClass, Outcome, RecipientOutcome, RecipientResult, Scope, StoredBody,
};
pub use location::{Location, PgTarget};
pub use message::{
    AttemptKind, AttemptRecord, BatchItem, Counts, Detail, ListFilter, MessageId, NewMessage,
    Paused, RecipientCounts, RecipientDetail, RecipientState, ReplyRecord, State, Summary, Which,
};
pub use policy::{Decision, KEEP_SENT, MIN_LEASE, RetryPolicy, claim_lease, decide, keep_sent};
pub use spool::Spool;

/// Bodies up to this size are committed in memory ([`Store::commit_row`]);
/// larger ones are spooled to a file first ([`Store::spool`]). SQLite reads
/// and writes blobs of this size faster than separate files, and one commit
/// makes them durable.
pub const INLINE_MAX: usize = 64 * 1024;

/// What an outbox keeps and how workers share it: messages with their
/// recipients and attempts, leases, paused accounts. Every call is short and
/// blocking (a transaction, an fsync, a round trip to a database server):
/// from async code, call it through [`Outbox::with`].
pub trait Store: Send + Sync + std::fmt::Debug {
    /// Where this store is (for messages; never with a password).
    fn location(&self) -> &Location;

    /// Start spooling a body too large for [`Store::commit_row`]: a private
    /// local file, buffered, so a large message never sits in memory.
    fn spool(&self) -> Result<Spool>;

    /// Store a spooled body with its envelope. Returns only once the message
    /// is durable; only then may the caller answer "accepted". Commits that
    /// arrive together share one transaction (group commit).
    fn commit(&self, spool: Spool, meta: NewMessage) -> Result<MessageId>;

    /// Store a body held in memory (at most [`INLINE_MAX`] bytes), durable
    /// when this returns, like [`Store::commit`].
    fn commit_row(&self, body: Vec<u8>, meta: NewMessage) -> Result<MessageId>;

    /// Lease up to `limit` due messages within `scope` to the caller until
    /// `now + lease`, the longest waiting first (an outbox directory orders
    /// them by when they were queued, PostgreSQL by when they fell due, which
    /// an index gives it without a sort). Paused accounts are skipped; after an
    /// expiring pause (see [`RetryPolicy::credentials_pause`]) one message
    /// of the account is taken as a probe. Lease tokens start with
    /// `token_prefix`, so a worker's leases can be found again
    /// ([`Store::release_holder`]). No message is ever leased to two
    /// workers at once; a lease that ran out makes its message claimable
    /// again, and the old holder's report is then refused.
    fn claim_in(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
        scope: &Scope<'_>,
        token_prefix: &str,
    ) -> Result<Vec<Claim>>;

    /// Extend a lease to `now + lease` while a long send is under way.
    /// False when the lease was lost (nothing changed).
    fn renew(&self, claim: &Claim, now: SystemTime, lease: Duration) -> Result<bool>;

    /// Give a claimed message back untouched, due as before, no attempt
    /// counted (the worker did not try it). False when the lease was lost.
    fn release(&self, claim: &Claim) -> Result<bool>;

    /// Give a claimed message back, due at `until`, with `reason` as its
    /// explanation, no attempt counted: the worker chose not to try it (a
    /// daily sending limit it keeps itself). Its give-up window starts no
    /// earlier than `until`: a batch paced over more days than
    /// `give_up_after` must not give up a message at its first transient
    /// failure. False when the lease was lost.
    fn postpone(&self, claim: &Claim, until: SystemTime, reason: &str) -> Result<bool>;

    /// Return to the queue, due now, every message leased with a token that
    /// starts with `token_prefix`: its worker is known to be gone. Each
    /// counts as an interrupted attempt (the message may have reached the
    /// server).
    fn release_holder(&self, token_prefix: &str) -> Result<usize>;

    /// Register a running deliverer (its lease tokens start with the
    /// holder's prefix) and return the leases of deliverers known to have
    /// died to the queue. The registration lasts as long as the [`Holder`].
    fn register_holder(&self) -> Result<Holder>;

    /// Return the leases of deliverers known to have died (on any host) to
    /// the queue; how many. Running deliverers call it now and then, so a
    /// dead host's messages go back into play without waiting for their
    /// leases to run out.
    fn recover_holders(&self) -> Result<usize>;

    /// Record the outcome of a claimed attempt and decide what follows.
    /// Only the holder of the current lease may do so: a stale claim gets
    /// [`Disposition::LeaseLost`] and changes nothing. A lease that ran out
    /// but was not claimed again still counts: the result is real.
    fn finish(
        &self,
        claim: &Claim,
        outcome: Outcome,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Disposition> {
        let mut d = self.finish_many(vec![(claim.clone(), outcome)], now, policy)?;
        Ok(d.pop().unwrap_or(Disposition::LeaseLost))
    }

    /// [`Store::finish`] for several attempts in one transaction (one
    /// commit, one fsync): the dispositions in the order of `attempts`.
    /// A deliverer acknowledges what its connections finished together
    /// this way; each attempt is judged as if it were recorded alone. An
    /// error records none of them.
    fn finish_many(
        &self,
        attempts: Vec<(Claim, Outcome)>,
        now: SystemTime,
        policy: &RetryPolicy,
    ) -> Result<Vec<Disposition>>;

    /// When each message of `account` that reached the server (some
    /// recipient accepted) was sent since `since`, oldest first, with the
    /// recipients it reached: for a worker that keeps a provider's limits.
    fn sent_since(&self, account: &str, since: SystemTime) -> Result<Vec<(SystemTime, u32)>>;

    /// Messages matching `filter`, oldest first.
    fn list(&self, filter: &ListFilter) -> Result<Vec<Summary>>;

    /// The items batch `batch` took: in the outbox (whatever their state)
    /// or purged since (the id then names a message no longer kept): item
    /// key → message id.
    fn batch_items(&self, batch: &str) -> Result<HashMap<String, MessageId>>;

    /// Everything about one message, or `None` when there is no such id.
    fn show(&self, id: MessageId) -> Result<Option<Detail>>;

    /// Make failed and queued messages due now, and resume their accounts.
    /// A failed message gets its failed recipients back as pending and a new
    /// give-up window; recipients that were sent are never sent again.
    /// Returns how many messages were queued.
    fn retry(&self, which: Which, now: SystemTime) -> Result<usize>;

    /// Delete a message and its body. False when there is no such id.
    /// Refused while a worker holds a live lease on it: it may be on the
    /// wire right now.
    fn purge(&self, id: MessageId) -> Result<bool>;

    /// Delete the messages in `state` (sent or failed) that finished before
    /// `finished_before`; returns how many. Retention (`[relay] keep_sent`)
    /// and `queue purge --sent`.
    fn purge_finished(&self, state: State, finished_before: SystemTime) -> Result<u64>;

    /// How many messages are in each state.
    fn counts(&self) -> Result<Counts>;

    /// When a worker next has something to claim: the earliest due time of
    /// a queued message, or lease expiry of a delivering one, ignoring
    /// accounts paused until resumed. `None`: nothing to wait for.
    fn next_due(&self) -> Result<Option<SystemTime>>;

    /// True when this store keeps the accounts' sending limits for every
    /// host that uses it ([`Store::reserve`]); false: each deliverer keeps
    /// them itself, from [`Store::sent_since`].
    fn keeps_quotas(&self) -> bool {
        false
    }

    /// Reserve one send of `account` to `recipients` recipients under its
    /// limits, for every host at once: granted (at the next `per_minute`
    /// slot) or deferred. A granted send counts until [`Store::settle`]
    /// says otherwise. Only for stores that keep quotas.
    fn reserve(
        &self,
        _account: &str,
        _limits: &postie::provider::Limits,
        _recipients: u32,
        now: SystemTime,
    ) -> Result<quota::Reservation> {
        Ok(quota::Reservation::Granted { id: 0, at: now })
    }

    /// The send of reservation `id` reached `accepted` recipients (none:
    /// it does not count).
    fn settle(&self, _id: i64, _accepted: u32) -> Result<()> {
        Ok(())
    }

    /// What an operator checking the store should see (`postie doctor`):
    /// its schema, the deliverers running on it and where.
    fn status(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }

    /// Pause `account` until it is resumed. True when it was not paused
    /// before (the caller should tell the user).
    fn pause_account(&self, account: &str, reason: &str, now: SystemTime) -> Result<bool>;

    /// Resume `account`: its queued messages are claimed again as they fall
    /// due. True when it was paused.
    fn resume_account(&self, account: &str) -> Result<bool>;

    /// The paused accounts, longest paused first.
    fn paused(&self) -> Result<Vec<Paused>>;
}

/// An open outbox: the [`Store`] at a [`Location`]. `Send + Sync`: share it
/// behind an `Arc`. Its methods are the store's (through `Deref`), plus
/// [`Outbox::claim`] and [`Outbox::enqueue`].
pub struct Outbox {
    store: Box<dyn Store>,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.store.fmt(f)
    }
}

impl std::ops::Deref for Outbox {
    type Target = dyn Store;

    fn deref(&self) -> &(dyn Store + 'static) {
        &*self.store
    }
}

impl Outbox {
    /// Bodies up to this size go to [`Store::commit_row`].
    pub const INLINE_MAX: usize = INLINE_MAX;

    /// Open the outbox directory `dir`, creating it (mode 0700) when
    /// missing, and create or migrate its schema. Removes leftovers of
    /// processes that died before they acknowledged a message.
    pub fn open(dir: &Path) -> Result<Outbox> {
        Ok(Outbox {
            store: Box::new(sqlite::Sqlite::open(dir)?),
        })
    }

    /// Open the outbox at `location`: a directory, or a PostgreSQL database
    /// (connected, and its schema created or migrated).
    pub fn open_at(location: &Location) -> Result<Outbox> {
        let store: Box<dyn Store> = match location {
            Location::Dir(dir) => Box::new(sqlite::Sqlite::open(dir)?),
            Location::Postgres(target) => Box::new(postgres::Postgres::connect(target)?),
        };
        Ok(Outbox { store })
    }

    /// The secrets the hosts of a fleet share (their OAuth tokens), kept in
    /// the outbox database at `location`; `None` for an outbox directory.
    /// Its own few connections, apart from the outbox's.
    pub fn shared_secrets_at(
        location: &Location,
    ) -> Result<Option<Arc<dyn postie::secret::SharedSecrets>>> {
        match location {
            Location::Dir(_) => Ok(None),
            Location::Postgres(target) => {
                Ok(Some(Arc::new(postgres::Postgres::connect_with(target, 4)?)))
            }
        }
    }

    /// [`Outbox::open`] from async code: on a blocking thread.
    pub async fn open_shared(dir: &Path) -> Result<Arc<Outbox>> {
        Outbox::open_shared_at(Location::Dir(dir.to_path_buf())).await
    }

    /// [`Outbox::open_at`] from async code: on a blocking thread.
    pub async fn open_shared_at(location: Location) -> Result<Arc<Outbox>> {
        unblock(move || Outbox::open_at(&location).map(Arc::new)).await
    }

    /// How async code calls the outbox: `call` runs on a blocking thread
    /// (stores wait for locks, fsyncs and servers; see `postie::blocking`).
    pub async fn with<T, F>(self: &Arc<Self>, call: F) -> Result<T>
    where
        F: FnOnce(&Outbox) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        let outbox = self.clone();
        unblock(move || call(&outbox)).await
    }

    /// [`Store::claim_in`] for all messages, or only `account`'s.
    pub fn claim(
        &self,
        now: SystemTime,
        lease: Duration,
        limit: usize,
        account: Option<&str>,
        token_prefix: &str,
    ) -> Result<Vec<Claim>> {
        let scope = Scope {
            account,
            batch: None,
        };
        self.claim_in(now, lease, limit, &scope, token_prefix)
    }

    /// Commit a body already in memory: in its row when it is small, else
    /// spooled first.
    pub fn enqueue(&self, body: &[u8], meta: NewMessage) -> Result<MessageId> {
        // Stored as it will be carried: CRLF lines, ending with CRLF (the
        // relay's server stores its messages so), so a message's size is
        // what SIZE= declares when it is sent.
        let body = postie_proto::data::canonical_message(body);
        if body.len() <= INLINE_MAX {
            return self.commit_row(body, meta);
        }
        meta.validate()?;
        let mut spool = self.spool()?;
        spool
            .write_all(&body)
            .map_err(|e| io("write", &spool.path, e))?;
        self.commit(spool, meta)
    }
}

/// A running deliverer's registration with its store: its lease tokens
/// start with [`Holder::token_prefix`]. While it lives, other deliverers
/// know this one runs; once it is dropped (or its process died), they may
/// return its leases to the queue.
pub struct Holder {
    prefix: String,
    _hold: Box<dyn Send + Sync>,
}

impl Holder {
    /// A registration: `hold` keeps it alive (a locked file, a database
    /// session) until the holder is dropped.
    pub(crate) fn new(prefix: String, hold: impl Send + Sync + 'static) -> Holder {
        Holder {
            prefix,
            _hold: Box::new(hold),
        }
    }

    /// A fresh prefix: 12 random letters and digits.
    pub(crate) fn new_prefix() -> String {
        use rand::Rng;
        let mut rng = rand::rng();
        (0..12)
            .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)]))
            .collect()
    }

    /// Lease tokens of this deliverer start with this.
    pub fn token_prefix(&self) -> &str {
        &self.prefix
    }
}

impl std::fmt::Debug for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Holder")
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// A local file-system error on `path`.
fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

/// Create `dir` and its parents; the ones created are private to the user
/// (bodies are other people's mail).
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    b.create(dir)
        .map_err(|e| io("create the directory", dir, e))
}
