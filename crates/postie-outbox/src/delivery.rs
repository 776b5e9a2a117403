//! Delivery from the outbox: claim what is due, send it upstream through the
//! account's own authentication, and record what the server said.
//!
//! Used by `postie relay` (a loop that runs until shutdown), `postie queue
//! run` (everything due, once) and `postie sendmail` (its own message, at
//! once when it can). Several of these may run at the same time over one
//! outbox: the outbox's leases keep them from sending a message twice, and a
//! lock file per running deliverer lets a new one recover the messages of a
//! deliverer that was killed mid-send without waiting for their leases.

mod ack;
mod outcome;
mod send;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{Notify, watch};

use postie::blocking::unblock;
use postie::config::Config;
use postie::error::{Error, ErrorKind, Result};
use postie::explain::{Context, explain};
use postie::mailer::{Account, Mailer, Pool};
use postie::provider::Limits;
use postie::wording::{Action, say};

use crate::outbox::quota::{DAY, Reservation, limit_wait};
use crate::outbox::{Claim, Disposition, FailureClass, Outbox, Outcome, RetryPolicy, Scope};

pub use crate::outbox::Holder;

/// How long a claimed message stays leased to this deliverer, unless
/// [`Settings::lease`] says otherwise. Leases are renewed while a message is
/// being sent, so this bounds only how long a message of a deliverer that
/// hung (not one that died: see [`Holder`]) waits before another deliverer
/// may take it.
pub const LEASE: Duration = Duration::from_secs(120);

/// How many due messages a deliverer claims at a time, at first: enough for
/// every connection to have work, few enough that the hosts sharing an
/// outbox share a short queue.
pub const CLAIM_BATCH: usize = 32;

/// While claims come back full (a backlog), each claims twice as many as
/// the last, up to this: claims and acknowledgements then cost little per
/// message. A claim that comes back short starts again at [`CLAIM_BATCH`].
pub const CLAIM_MAX: usize = 256;

/// How often a running deliverer looks for deliverers that died, whose
/// leased messages it returns to the queue: well within a minute of a host's
/// death, their messages are claimable again.
const RECOVER_EVERY: Duration = Duration::from_secs(15);

/// What happened to one message, for progress reports and logs.
#[derive(Clone, Debug)]
pub struct Delivered {
    /// The outbox id.
    pub id: crate::outbox::MessageId,
    /// The account it went out through.
    pub account: String,
    /// What the outbox decided.
    pub disposition: Disposition,
    /// One line: the server's reply or the error, without secrets.
    pub detail: String,
}

/// A callback told about each message as it is finished.
pub type Progress = Arc<dyn Fn(&Delivered) + Send + Sync>;

/// Settings for a [`Deliverer`].
#[derive(Clone, Default)]
pub struct Settings {
    /// Retry policy.
    pub policy: RetryPolicy,
    /// Called for every finished message.
    pub progress: Option<Progress>,
    /// This deliverer runs where the accounts' settings are meant to be
    /// complete (the relay): a configuration problem (an unset password
    /// variable, a secret store that cannot be opened) pauses the account
    /// with its fix instead of being retried for hours. False for one-shot
    /// deliverers (`sendmail` from cron, `queue run`), which may lack the
    /// relay's environment.
    pub settled: bool,
    /// Remove sent messages this long after they were sent, while
    /// [`Deliverer::run`] runs (`[relay] keep_sent`); `None`: keep them.
    pub keep_sent: Option<Duration>,
    /// How long a claimed message is held ([`LEASE`] unless `[relay] lease`
    /// says); renewed every third of it while the message is sent.
    pub lease: Duration,
}

/// Sends messages from the outbox upstream through the sending core. Cheap
/// to clone: clones share one connection pool and token manager.
#[derive(Clone)]
pub struct Deliverer(Arc<Inner>);

struct Inner {
    settings: Settings,
    outbox: Arc<Outbox>,
    /// Sessions kept between messages; its mailer is the one sent through
    /// (replaced by [`Deliverer::reload`]).
    pool: Pool,
    holder: Holder,
    /// Records attempts, grouped under load.
    acks: ack::Acks,
    /// How many messages the next claim takes ([`CLAIM_BATCH`] ..
    /// [`CLAIM_MAX`]).
    claim_size: std::sync::atomic::AtomicUsize,
    /// Sends per account in the last 24 hours, with the recipients each
    /// reached (for daily limits), seeded from the outbox when an account
    /// first sends.
    sent_window: StdMutex<HashMap<String, VecDeque<(SystemTime, u32)>>>,
    /// When each paced account (`per_minute`) may start its next send.
    next_slot: StdMutex<HashMap<String, tokio::time::Instant>>,
}

impl Deliverer {
    /// A deliverer over `outbox`, sending through `mailer` (its config names
    /// the accounts and the `[relay]` settings). Registers as a running
    /// deliverer and returns the messages of deliverers that died to the
    /// queue.
    pub async fn new(settings: Settings, outbox: Arc<Outbox>, mailer: Mailer) -> Result<Deliverer> {
        let o = outbox.clone();
        let holder = unblock(move || o.register_holder()).await?;
        Ok(Deliverer(Arc::new(Inner {
            acks: ack::Acks::new(outbox.clone(), settings.policy.clone()),
            claim_size: CLAIM_BATCH.into(),
            settings,
            pool: Pool::new(mailer),
            outbox,
            holder,
            sent_window: StdMutex::default(),
            next_slot: StdMutex::default(),
        })))
    }

    /// The sending core it delivers through.
    pub fn mailer(&self) -> Mailer {
        self.0.pool.mailer()
    }

    /// Deliver with `config` from now on (the config file was read again:
    /// an account fixed or added, a password variable renamed). Connections
    /// made with the old settings are closed; sends in progress finish with
    /// them. The retry policy stays the one the deliverer started with.
    pub async fn reload(&self, config: Config) {
        let mailer = self.0.pool.mailer().with_config(config);
        self.0.pool.set_mailer(mailer).await;
    }

    /// The outbox this deliverer works on.
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.0.outbox
    }

    /// Deliver everything due now (optionally one account's only), then
    /// return. Messages that fail transiently are left queued for later.
    pub async fn run_once(&self, account: Option<&str>) -> Result<Vec<Delivered>> {
        self.run_in(Scope {
            account,
            batch: None,
        })
        .await
    }

    /// [`Deliverer::run_once`] within `scope` (an account, a batch of
    /// `postie bulk`).
    pub async fn run_in(&self, scope: Scope<'_>) -> Result<Vec<Delivered>> {
        let mut done = Vec::new();
        loop {
            let batch = self.0.claim(scope).await?;
            if batch.is_empty() {
                break;
            }
            done.extend(self.deliver_batch(batch).await);
        }
        self.0.pool.close_all().await;
        Ok(done)
    }

    /// Deliver until `shutdown` turns true: claim what is due, send it, then
    /// sleep until the next message is due, `wake` is notified (the relay
    /// just stored a message), or a poll interval passes (another process
    /// may have queued something).
    ///
    /// A stop does not wait for sends in progress (an upstream server that
    /// went silent would hold it for minutes): they are abandoned and their
    /// messages returned to the queue at once. A message whose data the
    /// server had taken but not yet acknowledged may then be sent again:
    /// the one window where SMTP allows no better.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>, wake: Arc<Notify>) {
        const POLL: Duration = Duration::from_secs(5);
        let mut retained: Option<std::time::Instant> = None;
        let mut recovered = std::time::Instant::now();
        while !*shutdown.borrow() {
            // Deliverers that died (on this host or, with a shared outbox,
            // another): their messages back into play.
            if recovered.elapsed() >= RECOVER_EVERY {
                recovered = std::time::Instant::now();
                match self.0.db(|o| o.recover_holders()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        "outbox: {n} message(s) leased by a deliverer that stopped were returned \
                         to the queue"
                    ),
                    Err(e) => tracing::warn!("outbox: {}", e.message()),
                }
            }
            // Retention: at start, then every hour (more often when sent
            // messages are kept for less than two hours).
            if let Some(keep) = self.0.settings.keep_sent {
                let every = (keep / 2).clamp(Duration::from_millis(200), Duration::from_secs(3600));
                if retained.is_none_or(|t| t.elapsed() >= every) {
                    retained = Some(std::time::Instant::now());
                    let before = SystemTime::now() - keep;
                    match self
                        .0
                        .db(move |o| o.purge_finished(crate::outbox::State::Sent, before))
                        .await
                    {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(
                            "outbox: {n} sent message(s) older than keep_sent removed"
                        ),
                        Err(e) => tracing::warn!("outbox: retention: {}", e.message()),
                    }
                }
            }
            match self.0.claim(Scope::default()).await {
                Ok(batch) if !batch.is_empty() => {
                    tokio::select! {
                        _ = self.deliver_batch(batch) => continue,
                        _ = shutdown.changed() => break,
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::error!("outbox: {}", e.message()),
            }
            self.0.pool.close_idle().await;
            let sleep = match self.0.db(|o| o.next_due()).await {
                Ok(Some(t)) => t
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO)
                    .min(POLL),
                _ => POLL,
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep.max(Duration::from_millis(20))) => {}
                _ = wake.notified() => {}
                // A dropped sender is a stop too (never a busy loop).
                r = shutdown.changed() => if r.is_err() { break },
            }
        }
        // Outcomes already handed over are recorded first (a message the
        // server took must not go back to the queue as if it had not).
        let recorded = async {
            while self.0.acks.busy() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(5), recorded).await;
        // Sends cut short leave their claims: give them back now rather
        // than when the leases run out.
        let prefix = self.0.holder.token_prefix().to_string();
        match self.0.db(move |o| o.release_holder(&prefix)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!("{n} message(s) being sent were returned to the queue"),
            Err(e) => tracing::warn!("outbox: {}", e.message()),
        }
        // Goodbyes to idle connections, but not at the price of a stop.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.0.pool.close_all()).await;
    }

    /// Deliver a batch: one task per account and connection slot, each
    /// reusing its connection for that account's messages in turn.
    async fn deliver_batch(&self, batch: Vec<Claim>) -> Vec<Delivered> {
        let mut by_account: BTreeMap<String, VecDeque<Claim>> = BTreeMap::new();
        for c in batch {
            by_account
                .entry(c.account.clone())
                .or_default()
                .push_back(c);
        }
        let config = self.0.config();
        let mut tasks = tokio::task::JoinSet::new();
        for (account, queue) in by_account {
            let slots = config.connections_for(&account, queue.len());
            let queue = Arc::new(StdMutex::new(queue));
            for _ in 0..slots {
                let (me, queue, account) = (self.0.clone(), queue.clone(), account.clone());
                tasks.spawn(async move { me.drain(&account, &queue).await });
            }
        }
        let mut out = Vec::new();
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(d) => out.extend(d),
                Err(e) => tracing::error!("delivery task failed: {e}"),
            }
        }
        out
    }
}

impl Inner {
    /// The configuration now (see [`Deliverer::reload`]).
    fn config(&self) -> Config {
        self.pool.mailer().config().clone()
    }

    /// One outbox call, on a blocking thread.
    async fn db<T, F>(&self, call: F) -> Result<T>
    where
        F: FnOnce(&Outbox) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        self.outbox.with(call).await
    }

    async fn claim(&self, scope: Scope<'_>) -> Result<Vec<Claim>> {
        let account = scope.account.map(str::to_string);
        let batch = scope.batch.map(str::to_string);
        let prefix = self.holder.token_prefix().to_string();
        let size = self.claim_size.load(std::sync::atomic::Ordering::Relaxed);
        let lease = self.settings.lease;
        let got = self
            .db(move |o| {
                let scope = Scope {
                    account: account.as_deref(),
                    batch: batch.as_deref(),
                };
                o.claim_in(SystemTime::now(), lease, size, &scope, &prefix)
            })
            .await?;
        let next = if got.len() >= size {
            (size * 2).min(CLAIM_MAX)
        } else {
            CLAIM_BATCH
        };
        self.claim_size
            .store(next, std::sync::atomic::Ordering::Relaxed);
        Ok(got)
    }

    /// Deliver the account's queued claims one after another over one
    /// connection (reused between messages). Each outcome is recorded
    /// before the next message is sent: a deliverer that dies can have sent
    /// at most one message per connection that it did not record (the
    /// duplicate SMTP cannot rule out). Outcomes of several connections
    /// are recorded together.
    async fn drain(&self, account: &str, queue: &StdMutex<VecDeque<Claim>>) -> Vec<Delivered> {
        let mut out = Vec::new();
        loop {
            let next = queue.lock().expect("queue lock").pop_front();
            let Some(claim) = next else { break };
            let d = match self.attempt(account, claim).await {
                Attempted::Done(d) => d,
                Attempted::Recording(r) => self.recorded(account, r).await,
            };
            let paused = matches!(d.disposition, Disposition::Paused { .. });
            out.push(d);
            if paused {
                // The account's credentials failed: its other messages go back
                // to the queue untouched, to wait for the account to be fixed.
                let rest: Vec<Claim> = queue.lock().expect("queue lock").drain(..).collect();
                let _ = self
                    .db(move |o| {
                        for c in &rest {
                            o.release(c)?;
                        }
                        Ok(())
                    })
                    .await;
                break;
            }
        }
        out
    }

    /// Send one claim; its outcome is handed to the recorder.
    async fn attempt(&self, account: &str, claim: Claim) -> Attempted {
        let now = SystemTime::now();
        let acct = self
            .config()
            .accounts
            .get(account)
            .map(|a| Account::from_config(account, a));
        let (outcome, detail) = match acct {
            // Settings that cannot be used (written by hand): explained,
            // and tried again later like any local problem.
            Some(Err(e)) => {
                let ctx = Context {
                    provider: self.config().accounts.get(account).map(|a| a.provider),
                    account: Some(account),
                    host: None,
                };
                outcome::from_error(&e, &explain(&e, &ctx), self.settings.settled)
            }
            None => {
                let names = self.config().account_names();
                let e = Error::new(
                    ErrorKind::Config,
                    format!(
                        "the account '{account}' is no longer in the config file (accounts: {names}); \
                         add it back, or purge its messages ({})",
                        say(&Action::PurgeMessage {
                            id: claim.id.to_string()
                        })
                    ),
                );
                let detail = e.message().to_string();
                (
                    Outcome::Failed {
                        class: FailureClass::Credentials,
                        reply: None,
                        explanation: detail.clone(),
                    },
                    detail,
                )
            }
            Some(Ok(acct)) => {
                let limits = self.config().limits(account);
                let first = claim
                    .recipients
                    .len()
                    .min(group_size(&limits))
                    .try_into()
                    .unwrap_or(u32::MAX);
                // With a store the hosts share, the first send is reserved
                // there now (the fleet's count); else this deliverer checks
                // its own count.
                let (first_turn, wait) = match self.reserve(account, &limits, first, now).await {
                    Turn::Go(t) => (t, None),
                    Turn::Wait(until, which) => (None, Some((until, which))),
                };
                let wait = match wait {
                    Some(w) => Some(w),
                    None if first_turn.is_none() => {
                        self.daily_limit_reached(account, &limits, first, now).await
                    }
                    None => None,
                };
                if let Some((until, which)) = wait {
                    let detail = format!(
                        "the {which} of account '{account}' is reached; sending resumes around {}",
                        humantime::format_rfc3339_seconds(until)
                    );
                    let (c, d) = (claim.clone(), detail.clone());
                    let _ = self.db(move |o| o.postpone(&c, until, &d)).await;
                    return Attempted::Done(Delivered {
                        id: claim.id,
                        account: account.to_string(),
                        disposition: Disposition::RetryAt(until),
                        detail,
                    });
                }
                // Claims wait their turn behind the account's other messages;
                // by now the lease may have run out and another deliverer may
                // have the message. Renew it first, and never send a message
                // this deliverer no longer holds.
                // (A lease with most of its time left is still held: no
                // other deliverer may take it before it runs out.)
                let lease = self.settings.lease;
                let fresh = claim
                    .lease_until
                    .duration_since(SystemTime::now())
                    .is_ok_and(|left| left > lease / 2);
                let c = claim.clone();
                let held = if fresh {
                    Ok(true)
                } else {
                    self.db(move |o| o.renew(&c, SystemTime::now(), lease))
                        .await
                };
                match held {
                    Ok(true) => {}
                    held => {
                        self.settle(first_turn, 0).await;
                        let detail = match held {
                            Err(e) => format!(
                                "not sent now: the outbox could not renew the claim ({}); it will be tried again",
                                e.message()
                            ),
                            _ => "the claim ran out while waiting; another deliverer has it".into(),
                        };
                        return Attempted::Done(Delivered {
                            id: claim.id,
                            account: account.to_string(),
                            disposition: Disposition::LeaseLost,
                            detail,
                        });
                    }
                }
                let renew = self.keep_leased(&claim);
                let r = self
                    .send_in_groups(&acct, &claim, &limits, first_turn)
                    .await;
                drop(renew);
                r
            }
        };
        let recorded = self.acks.submit(claim.clone(), outcome);
        Attempted::Recording(Recording {
            claim,
            detail,
            recorded,
        })
    }

    /// What the outbox did with a recorded attempt: told to whoever listens.
    async fn recorded(&self, account: &str, r: Recording) -> Delivered {
        let Recording {
            claim,
            detail,
            recorded,
        } = r;
        let disposition = match ack::outcome(recorded).await {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(
                    "outbox: cannot record the outcome of message {}: {}",
                    claim.id,
                    e.message()
                );
                Disposition::LeaseLost
            }
        };
        if let Disposition::Failed | Disposition::PartlyFailed { .. } = &disposition {
            self.notify(&claim, account, &detail);
        }
        let d = Delivered {
            id: claim.id,
            account: account.to_string(),
            disposition,
            detail,
        };
        if let Some(p) = &self.settings.progress {
            p(&d);
        }
        d
    }

    /// Renew the claim's lease while it is being sent (a large message on a
    /// slow link can take longer than the lease); stops when dropped.
    fn keep_leased(&self, claim: &Claim) -> AbortOnDrop {
        let outbox = self.outbox.clone();
        let claim = claim.clone();
        let lease = self.settings.lease;
        let h = tokio::spawn(async move {
            loop {
                tokio::time::sleep(lease / 3).await;
                let (o, c) = (outbox.clone(), claim.clone());
                match unblock(move || o.renew(&c, SystemTime::now(), lease)).await {
                    Ok(true) => {}
                    // Taken over: nothing more to renew.
                    Ok(false) => break,
                    // A busy database: try again at the next tick.
                    Err(e) => tracing::warn!(
                        "outbox: cannot renew the lease of message {}: {}",
                        claim.id,
                        e.message()
                    ),
                }
            }
        });
        AbortOnDrop(h)
    }

    /// Send `claim` as transactions of at most `recipients_per_message`
    /// recipients each (one, usually), each paced to `per_minute` and
    /// counted for the daily limits. A group that fails as a whole ends the
    /// attempt: it is the outcome when nothing was sent yet, else the
    /// groups not sent stay pending and the message is tried again.
    ///
    /// `first_turn`: the first group's reservation in a store the hosts
    /// share (then every group is reserved there, and started at its slot).
    async fn send_in_groups(
        &self,
        acct: &Account,
        claim: &Claim,
        limits: &Limits,
        first_turn: Option<(i64, SystemTime)>,
    ) -> (Outcome, String) {
        let account = claim.account.as_str();
        let size = group_size(limits);
        let mut merged = Vec::new();
        let mut details = Vec::new();
        for (i, group) in claim.recipients.chunks(size).enumerate() {
            let n = u32::try_from(group.len()).unwrap_or(u32::MAX);
            let turn = match (i, first_turn) {
                (0, t) => t,
                (_, Some(_)) => match self.reserve(account, limits, n, SystemTime::now()).await {
                    Turn::Go(t) => t,
                    Turn::Wait(..) => break,
                },
                (_, None) => None,
            };
            match turn {
                Some((_, at)) => {
                    if let Ok(wait) = at.duration_since(SystemTime::now()) {
                        tokio::time::sleep(wait).await;
                    }
                }
                None => {
                    if i > 0
                        && self
                            .daily_limit_reached(account, limits, n, SystemTime::now())
                            .await
                            .is_some()
                    {
                        break;
                    }
                    self.pace(account, limits).await;
                }
            }
            let part = Claim {
                recipients: group.to_vec(),
                ..claim.clone()
            };
            let (outcome, detail) = match self.send(acct, &part).await {
                Ok(report) => outcome::from_transaction(&part, &report.transaction, acct),
                Err(e) => {
                    let ctx = Context {
                        provider: acct.provider,
                        account: Some(account),
                        host: None,
                    };
                    let ex = explain(&e, &ctx);
                    outcome::from_error(&e, &ex, self.settings.settled)
                }
            };
            let accepted = match &outcome {
                Outcome::Transaction(list) => list
                    .iter()
                    .filter(|x| matches!(x.result, crate::outbox::RecipientResult::Accepted(_)))
                    .count(),
                Outcome::Failed { .. } | Outcome::Throttled { .. } => 0,
            };
            self.settle(turn, accepted).await;
            match outcome {
                Outcome::Transaction(list) => {
                    if accepted > 0 && turn.is_none() {
                        self.sent_window
                            .lock()
                            .expect("window lock")
                            .entry(account.to_string())
                            .or_default()
                            .push_back((
                                SystemTime::now(),
                                accepted.try_into().unwrap_or(u32::MAX),
                            ));
                    }
                    merged.extend(list);
                    details.push(detail);
                }
                failed if merged.is_empty() => return (failed, detail),
                _ => {
                    details.push(detail);
                    break;
                }
            }
        }
        details.dedup();
        (Outcome::Transaction(merged), details.join("; "))
    }

    /// With a store that keeps the accounts' limits for every host: reserve
    /// one send of `recipients` recipients there. `Go(None)`: this store
    /// leaves the limits to this deliverer (or the account has none).
    async fn reserve(
        &self,
        account: &str,
        limits: &Limits,
        recipients: u32,
        now: SystemTime,
    ) -> Turn {
        let counted = limits.per_day.is_some()
            || limits.recipients_per_day.is_some()
            || limits.spacing().is_some();
        if !counted || !self.outbox.keeps_quotas() {
            return Turn::Go(None);
        }
        let (a, l) = (account.to_string(), *limits);
        match self.db(move |o| o.reserve(&a, &l, recipients, now)).await {
            Ok(Reservation::Granted { id, at }) => Turn::Go(Some((id, at))),
            Ok(Reservation::Deferred { until, which }) => Turn::Wait(until, which),
            Err(e) => {
                // Unknown whether the fleet may send: not now.
                tracing::warn!(
                    "outbox: cannot reserve a send of '{account}': {}",
                    e.message()
                );
                Turn::Wait(now + Duration::from_secs(60), "sending limit check")
            }
        }
    }

    /// Tell the store what a reserved send reached (nothing: it does not
    /// count).
    async fn settle(&self, turn: Option<(i64, SystemTime)>, accepted: usize) {
        let Some((id, _)) = turn else { return };
        let accepted = u32::try_from(accepted).unwrap_or(u32::MAX);
        if let Err(e) = self.db(move |o| o.settle(id, accepted)).await {
            tracing::warn!("outbox: cannot record a reserved send: {}", e.message());
        }
    }

    /// Wait for the account's next send slot under `per_minute`: sends are
    /// spread evenly (60 s / per_minute apart), across every connection.
    async fn pace(&self, account: &str, limits: &Limits) {
        let Some(spacing) = limits.spacing() else {
            return;
        };
        let known = self
            .next_slot
            .lock()
            .expect("slot lock")
            .contains_key(account);
        if !known {
            // The last send of another run (a batch run again, `queue run`
            // after the relay) counts too. Read before taking the lock.
            let a = account.to_string();
            let since = SystemTime::now() - spacing;
            let last = self
                .db(move |o| o.sent_since(&a, since))
                .await
                .ok()
                .and_then(|v| v.last().map(|(t, _)| *t));
            // (at most one spacing: a send stamped in the future, after the
            // clock was set back, must not hold the account for hours)
            let wait = last
                .and_then(|t| (t + spacing).duration_since(SystemTime::now()).ok())
                .map(|w| w.min(spacing))
                .unwrap_or_default();
            self.next_slot
                .lock()
                .expect("slot lock")
                .entry(account.to_string())
                .or_insert(tokio::time::Instant::now() + wait);
        }
        let slot = {
            let mut slots = self.next_slot.lock().expect("slot lock");
            let now = tokio::time::Instant::now();
            let next = slots.entry(account.to_string()).or_insert(now);
            let slot = (*next).max(now);
            *next = slot + spacing;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// When a daily limit (messages, or recipients with `recipients` more)
    /// stands in the way: the time the account may send again, and which
    /// limit it is.
    async fn daily_limit_reached(
        &self,
        name: &str,
        limits: &Limits,
        recipients: u32,
        now: SystemTime,
    ) -> Option<(SystemTime, &'static str)> {
        if limits.per_day.is_none() && limits.recipients_per_day.is_none() {
            return None;
        }
        let known = self
            .sent_window
            .lock()
            .expect("window lock")
            .contains_key(name);
        if !known {
            // Read before taking the lock: SQLite must not run under it.
            let n = name.to_string();
            let sent = self
                .db(move |o| o.sent_since(&n, now - DAY))
                .await
                .unwrap_or_default();
            self.sent_window
                .lock()
                .expect("window lock")
                .entry(name.to_string())
                .or_insert_with(|| sent.into());
        }
        let mut w = self.sent_window.lock().expect("window lock");
        let q = w.entry(name.to_string()).or_default();
        while q.front().is_some_and(|(t, _)| *t + DAY <= now) {
            q.pop_front();
        }
        limit_wait(q.make_contiguous(), limits, recipients, now)
    }

    fn notify(&self, claim: &Claim, account: &str, reason: &str) {
        let Some(cmd) = self.config().relay.notify_command.clone() else {
            return;
        };
        let id = claim.id.to_string();
        let account = account.to_string();
        let reason = reason.to_string();
        // Run detached from delivery: a slow hook must not hold the queue.
        tokio::spawn(async move {
            let status = tokio::process::Command::new("/bin/sh")
                .arg("-c")
                .arg(&cmd)
                .env("POSTIE_ID", &id)
                .env("POSTIE_ACCOUNT", &account)
                .env("POSTIE_REASON", &reason)
                .stdin(std::process::Stdio::null())
                .status()
                .await;
            match status {
                Ok(s) if s.success() => {}
                Ok(s) => tracing::warn!("notify_command exited with {s} for message {id}"),
                Err(e) => tracing::warn!("notify_command could not run: {e}"),
            }
        });
    }
}

/// What sending one claim came to.
enum Attempted {
    /// Nothing to record (postponed, or the lease was lost).
    Done(Delivered),
    /// Its outcome is being recorded.
    Recording(Recording),
}

/// An attempt whose outcome the outbox is recording.
struct Recording {
    claim: Claim,
    detail: String,
    recorded: ack::Pending,
}

/// Whether a send may start: now or at a reserved slot (with the
/// reservation, in a store that keeps the limits), or not before a time.
enum Turn {
    Go(Option<(i64, SystemTime)>),
    Wait(SystemTime, &'static str),
}

/// Recipients per transaction under `recipients_per_message`.
fn group_size(limits: &Limits) -> usize {
    limits
        .recipients_per_message
        .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX))
        .max(1)
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
