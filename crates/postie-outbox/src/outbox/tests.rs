//! One suite, every store: each test in [`on_every_store!`] runs on an
//! outbox directory (SQLite files in a temporary directory) and on a fresh
//! schema of the test PostgreSQL server (`ci/mail-peers.sh start`), with
//! what only one store has (files) checked where it applies.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::sqlite::{DB_FILE, MESSAGES_DIR, TMP_DIR};
use super::*;

const LEASE: Duration = Duration::from_secs(120);

/// A store to run a test on; [`Fixture::open`] gives another handle on it
/// (another process would see the same).
enum Fixture {
    Sqlite(tempfile::TempDir),
    Postgres(Box<Scratch>),
}

impl Fixture {
    fn sqlite() -> Fixture {
        Fixture::Sqlite(tempfile::tempdir().unwrap())
    }

    fn postgres() -> Fixture {
        Fixture::Postgres(Box::new(Scratch::new()))
    }

    fn open(&self) -> Outbox {
        match self {
            Fixture::Sqlite(d) => Outbox::open(&d.path().join("outbox")).unwrap(),
            Fixture::Postgres(s) => {
                Outbox::open_at(&Location::Postgres(Box::new(s.target.clone()))).unwrap()
            }
        }
    }

    /// Leave what a deliverer that died leaves, with its lease prefix: an
    /// unlocked holder file, or a holder row whose session lock is free.
    fn dead_holder(&self) -> String {
        let prefix = Holder::new_prefix();
        match self {
            Fixture::Sqlite(d) => {
                let holders = d.path().join("outbox").join("holders");
                std::fs::create_dir_all(&holders).unwrap();
                std::fs::write(holders.join(format!("{prefix}.lock")), b"").unwrap();
            }
            Fixture::Postgres(s) => {
                let mut c = s.target.config.connect(s.target.tls().unwrap()).unwrap();
                c.execute(
                    "INSERT INTO holders (prefix, host, lock_key, since) VALUES ($1, 'gone', $2, 0)",
                    &[&prefix, &rand::random::<i64>()],
                )
                .unwrap();
            }
        }
        prefix
    }

    /// The outbox directory, for the SQLite store.
    fn dir(&self) -> Option<PathBuf> {
        match self {
            Fixture::Sqlite(d) => Some(d.path().join("outbox")),
            Fixture::Postgres(_) => None,
        }
    }
}

/// A schema of its own in the test PostgreSQL database, dropped afterwards.
struct Scratch {
    target: PgTarget,
    admin: PgTarget,
    schema: String,
}

impl Scratch {
    fn new() -> Scratch {
        let env = std::env::var("MAIL_PEERS_DIR")
            .ok()
            .and_then(|dir| std::fs::read_to_string(PathBuf::from(dir).join("env")).ok())
            .expect(
                "the PostgreSQL store's tests need the test server: run ci/mail-peers.sh start \
                 and export MAIL_PEERS_DIR",
            );
        let get = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_string))
                .unwrap_or_else(|| panic!("no {key} in the peers' env file"))
        };
        // Over TLS, verified against the peers' CA, as a shared outbox is reached.
        let mut admin = PgTarget::parse(&get("POSTGRES_URL")).unwrap();
        admin.set_ca_file(std::path::Path::new(&get("MAIL_PEERS_CA")));
        let schema = format!("t_{}", spool::random_name());
        admin
            .config
            .connect(admin.tls().unwrap())
            .unwrap()
            .batch_execute(&format!("CREATE SCHEMA {schema}"))
            .unwrap();
        let mut target = admin.clone();
        target.config.options(&format!("-c search_path={schema}"));
        Scratch {
            target,
            admin,
            schema,
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Ok(mut c) = self.admin.config.connect(self.admin.tls().unwrap()) {
            let _ = c.batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema));
        }
    }
}

/// Each test named runs once per store.
macro_rules! on_every_store {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $( #[test] fn $name() { super::$name(&super::Fixture::sqlite()) } )*
        }
        mod on_postgres {
            $( #[test] fn $name() { super::$name(&super::Fixture::postgres()) } )*
        }
    };
}

on_every_store!(
    enqueue_claim_finish_sent,
    small_bodies_are_committed_from_memory_larger_ones_spooled,
    dropped_spool_leaves_no_file_and_no_row,
    committed_message_survives_reopening,
    claims_are_exclusive_across_handles_and_threads,
    expired_lease_is_reclaimed_and_the_stale_finish_is_lost,
    one_accepted_one_refused_is_partly_failed_with_both_replies,
    temp_failed_recipient_alone_stays_pending_and_is_retried,
    credentials_failure_pauses_the_account_once_and_retry_resumes_it,
    expiring_pause_sends_a_single_probe,
    give_up_fails_pending_recipients_and_retry_brings_them_back,
    purge_deletes_the_body_but_not_while_leased,
    messages_without_recipients_or_with_line_breaks_are_refused,
    release_holder_and_postpone_return_messages_to_the_queue,
    quota_failure_waits_hours,
    purge_finished_removes_old_sent_messages_and_their_files,
    a_dead_holders_leases_return_to_the_queue,
    attempts_finished_together_are_recorded_as_if_alone,
    throttled_attempt_waits_as_long_as_the_service_asked,
    a_batch_remembers_the_items_whose_messages_were_purged,
    a_postponed_message_gets_its_whole_window_after_the_wait,
);

fn new(account: &str, rcpts: &[&str]) -> NewMessage {
    NewMessage {
        account: account.into(),
        mail_from: Some("me@example.com".into()),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        subject: Some("hello".into()),
        source: "sendmail".into(),
        ..NewMessage::default()
    }
}

/// A little in the future, so whatever was just queued is due.
fn soon() -> SystemTime {
    SystemTime::now() + Duration::from_secs(1)
}

fn reply(code: u16, text: &str) -> ReplyRecord {
    ReplyRecord {
        code,
        enhanced: Some(format!("{}.0.0", code / 100)),
        text: text.into(),
    }
}

fn rcpt(address: &str, result: RecipientResult) -> RecipientOutcome {
    RecipientOutcome {
        address: address.into(),
        result,
    }
}

fn claim_one(o: &Outbox, now: SystemTime) -> Claim {
    let mut c = o.claim(now, LEASE, 10, None, "t-").unwrap();
    assert_eq!(c.len(), 1, "{c:?}");
    c.remove(0)
}

fn accept_all(c: &Claim) -> Outcome {
    Outcome::Transaction(
        c.recipients
            .iter()
            .map(|r| rcpt(r, RecipientResult::Accepted(reply(250, "ok"))))
            .collect(),
    )
}

fn files_in(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_type().unwrap().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn enqueue_claim_finish_sent(f: &Fixture) {
    let o = f.open();
    let id = o.enqueue(
        b"Subject: hi\r\n\r\nbody\r\n",
        new("work", &["a@x.org", "b@x.org"]),
    );
    let id = id.unwrap();
    let c = claim_one(&o, soon());
    assert_eq!(c.id, id);
    assert_eq!(c.recipients, ["a@x.org", "b@x.org"]);
    assert_eq!(c.body.read().unwrap(), b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(c.body.path(), None, "a small body is kept in its row");
    assert_eq!((c.size, c.attempts), (21, 0));
    assert!(c.lease_token.starts_with("t-"));
    // Leased: nobody else gets it.
    assert!(o.claim(soon(), LEASE, 10, None, "").unwrap().is_empty());
    let d = o.finish(&c, accept_all(&c), soon(), &RetryPolicy::default());
    assert_eq!(d.unwrap(), Disposition::Sent);
    let s = &o.list(&ListFilter::default()).unwrap()[0];
    assert_eq!((s.state, s.attempts), (State::Sent, 1));
    assert_eq!((s.counts.sent, s.counts.pending), (2, 0));
    assert_eq!(o.counts().unwrap().sent, 1);
    assert_eq!(o.next_due().unwrap(), None);
    assert_eq!(
        o.sent_since("work", SystemTime::UNIX_EPOCH).unwrap().len(),
        1
    );
    // Finishing twice is refused: the lease is gone.
    let again = o.finish(&c, accept_all(&c), soon(), &RetryPolicy::default());
    assert_eq!(again.unwrap(), Disposition::LeaseLost);
}

/// Commits `body` through a spool file, whatever its size.
fn spooled(o: &Outbox, body: &[u8], meta: NewMessage) -> MessageId {
    let mut s = o.spool().unwrap();
    s.write_all(body).unwrap();
    o.commit(s, meta).unwrap()
}

/// Bodies up to `INLINE_MAX` bytes are committed from memory (in their
/// row, with no file, in SQLite); one byte more and the body is spooled (a
/// file in SQLite). Both come back whole, also after reopening, and purging
/// the message takes the body with it.
fn small_bodies_are_committed_from_memory_larger_ones_spooled(f: &Fixture) {
    // Canonical already (CRLF at the end), so stored as given.
    let body = |c: u8, n: usize| [vec![c; n - 2], b"\r\n".to_vec()].concat();
    let (small, large) = (
        body(b's', Outbox::INLINE_MAX),
        body(b'l', Outbox::INLINE_MAX + 1),
    );
    let (a, b) = {
        let o = f.open();
        let a = o.enqueue(&small, new("work", &["a@x.org"])).unwrap();
        let b = o.enqueue(&large, new("work", &["a@x.org"])).unwrap();
        (a, b)
    };
    let o = f.open();
    let messages = f.dir().map(|d| d.join(MESSAGES_DIR));
    if let Some(m) = &messages {
        assert_eq!(files_in(m).len(), 1, "only the large body is a file");
        assert!(o.show(b).unwrap().unwrap().body_path.unwrap().exists());
    }
    assert_eq!(o.show(a).unwrap().unwrap().body_path, None);
    let claims = o.claim(soon(), LEASE, 10, None, "").unwrap();
    let by_id = |id| claims.iter().find(|c| c.id == id).unwrap();
    assert!(matches!(by_id(a).body, StoredBody::Row(_)));
    assert!(
        by_id(a).body.read().unwrap() == small,
        "the small body differs"
    );
    assert_eq!(by_id(a).size, small.len() as u64);
    assert_eq!(by_id(b).size, large.len() as u64);
    assert_eq!(
        matches!(by_id(b).body, StoredBody::File(_)),
        messages.is_some()
    );
    assert!(
        by_id(b).body.read().unwrap() == large,
        "the large body differs"
    );
    for c in &claims {
        o.release(c).unwrap();
    }
    assert!(o.purge(a).unwrap() && o.purge(b).unwrap());
    if let Some(m) = &messages {
        assert!(files_in(m).is_empty());
    }
    let e = o
        .commit_row(large.clone(), new("work", &["a@x.org"]))
        .unwrap_err();
    assert!(e.message().contains("at most"), "{}", e.message());
}

fn dropped_spool_leaves_no_file_and_no_row(f: &Fixture) {
    let o = f.open();
    let mut s = o.spool().unwrap();
    s.write_all(&vec![b'x'; 200_000]).unwrap();
    assert_eq!(s.size(), 200_000);
    let path = s.path.clone();
    assert!(path.exists());
    if let Some(d) = f.dir() {
        assert_eq!(files_in(&d.join(MESSAGES_DIR).join(TMP_DIR)).len(), 1);
    }
    drop(s);
    assert!(!path.exists());
    if let Some(d) = f.dir() {
        assert!(files_in(&d.join(MESSAGES_DIR)).is_empty());
    }
    assert_eq!(o.counts().unwrap(), Counts::default());
}

fn committed_message_survives_reopening(f: &Fixture) {
    let id = {
        let o = f.open();
        let mut s = o.spool().unwrap();
        s.write_all(b"Subject: persisted\r\n\r\n").unwrap();
        o.commit(s, new("work", &["a@x.org"])).unwrap()
    };
    let o = f.open();
    let d = o.show(id).unwrap().expect("still there");
    assert_eq!(d.summary.state, State::Queued);
    assert_eq!(d.summary.subject.as_deref(), Some("hello"));
    let c = claim_one(&o, soon());
    assert_eq!(c.id, id);
    assert_eq!(c.body.read().unwrap(), b"Subject: persisted\r\n\r\n");
    #[cfg(unix)]
    if let Some(path) = f.dir() {
        let body_path = d.body_path.clone().expect("a spooled body is a file");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o700);
        assert_eq!(mode(&body_path), 0o600);
    }
}

fn claims_are_exclusive_across_handles_and_threads(f: &Fixture) {
    let o = f.open();
    let mut want = Vec::new();
    for i in 0..200 {
        let account = if i % 2 == 0 { "a" } else { "b" };
        want.push(o.enqueue(b"x", new(account, &["r@x.org"])).unwrap());
    }
    let now = soon();
    let mut seen: HashMap<MessageId, usize> = HashMap::new();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|w| {
                scope.spawn(move || {
                    let o = f.open();
                    let mut got = Vec::new();
                    loop {
                        let batch = o.claim(now, LEASE, 3, None, &format!("w{w}-")).unwrap();
                        if batch.is_empty() {
                            break got;
                        }
                        got.extend(batch.into_iter().map(|c| c.id));
                    }
                })
            })
            .collect();
        for w in workers {
            for id in w.join().unwrap() {
                *seen.entry(id).or_default() += 1;
            }
        }
    });
    assert_eq!(seen.len(), 200);
    assert!(
        seen.values().all(|&n| n == 1),
        "a message was claimed twice"
    );
    assert!(want.iter().all(|id| seen.contains_key(id)));
    assert_eq!(o.counts().unwrap().delivering, 200);
}

fn expired_lease_is_reclaimed_and_the_stale_finish_is_lost(f: &Fixture) {
    let o = f.open();
    o.enqueue(b"x", new("work", &["a@x.org"])).unwrap();
    let t0 = soon();
    let first = claim_one(&o, t0);
    // Still leased just before the end.
    assert!(
        o.claim(t0 + LEASE - Duration::from_millis(1), LEASE, 10, None, "")
            .unwrap()
            .is_empty()
    );
    assert_eq!(o.next_due().unwrap(), Some(first.lease_until));
    let second = claim_one(&o, t0 + LEASE);
    assert_eq!(second.id, first.id);
    assert_ne!(second.lease_token, first.lease_token);
    assert_eq!(second.attempts, 1, "the interrupted attempt counts");
    let p = RetryPolicy::default();
    let stale = o.finish(&first, accept_all(&first), t0 + LEASE, &p);
    assert_eq!(stale.unwrap(), Disposition::LeaseLost);
    assert!(!o.renew(&first, t0 + LEASE, LEASE).unwrap());
    assert!(o.renew(&second, t0 + LEASE, LEASE).unwrap());
    assert_eq!(
        o.finish(&second, accept_all(&second), t0 + LEASE, &p)
            .unwrap(),
        Disposition::Sent
    );
    let d = o.show(second.id).unwrap().unwrap();
    let kinds: Vec<_> = d.history.iter().map(|a| a.kind).collect();
    assert_eq!(kinds, [AttemptKind::Interrupted, AttemptKind::Delivered]);
}

fn one_accepted_one_refused_is_partly_failed_with_both_replies(f: &Fixture) {
    let o = f.open();
    let id = o
        .enqueue(b"x", new("work", &["ok@x.org", "bad@x.org"]))
        .unwrap();
    let c = claim_one(&o, soon());
    let outcome = Outcome::Transaction(vec![
        rcpt(
            "ok@x.org",
            RecipientResult::Accepted(reply(250, "queued as 1")),
        ),
        rcpt(
            "bad@x.org",
            RecipientResult::PermFailed(reply(550, "no such user")),
        ),
    ]);
    let d = o
        .finish(&c, outcome, soon(), &RetryPolicy::default())
        .unwrap();
    assert_eq!(
        d,
        Disposition::PartlyFailed {
            failed: vec!["bad@x.org".into()]
        }
    );
    let d = o.show(id).unwrap().unwrap();
    assert_eq!(d.summary.state, State::Sent);
    assert_eq!((d.summary.counts.sent, d.summary.counts.failed), (1, 1));
    assert_eq!(d.recipients[0].state, RecipientState::Sent);
    assert_eq!(d.recipients[0].reply.as_ref().unwrap().text, "queued as 1");
    assert_eq!(d.recipients[1].state, RecipientState::Failed);
    assert_eq!(d.recipients[1].reply.as_ref().unwrap().code, 550);
    assert_eq!(d.summary.last_reply.unwrap().code, 550);
    assert_eq!(d.history[0].kind, AttemptKind::Partial);
    let json = serde_json::to_value(o.show(id).unwrap().unwrap()).unwrap();
    assert_eq!(json["state"], "sent");
    assert_eq!(json["recipients"][1]["reply"]["text"], "no such user");
    assert!(json["queued_at"].as_str().unwrap().ends_with('Z'));
}

fn temp_failed_recipient_alone_stays_pending_and_is_retried(f: &Fixture) {
    let o = f.open();
    let id = o
        .enqueue(b"x", new("work", &["ok@x.org", "later@x.org"]))
        .unwrap();
    let now = soon();
    let c = claim_one(&o, now);
    let outcome = Outcome::Transaction(vec![
        rcpt("ok@x.org", RecipientResult::Accepted(reply(250, "ok"))),
        rcpt(
            "later@x.org",
            RecipientResult::TempFailed(reply(451, "greylisted")),
        ),
    ]);
    let Disposition::RetryAt(at) = o.finish(&c, outcome, now, &RetryPolicy::default()).unwrap()
    else {
        panic!("expected a retry")
    };
    let wait = at.duration_since(now).unwrap();
    assert!((29_999..=60_000).contains(&wait.as_millis()), "{wait:?}");
    assert_eq!(o.next_due().unwrap(), Some(at));
    let s = &o.list(&ListFilter::default()).unwrap()[0];
    assert_eq!(
        (s.state, s.counts.pending, s.counts.sent),
        (State::Queued, 1, 1)
    );
    assert!(
        o.claim(now, LEASE, 10, None, "").unwrap().is_empty(),
        "not due yet"
    );
    let again = claim_one(&o, at);
    assert_eq!((again.id, again.attempts), (id, 1));
    assert_eq!(again.recipients, ["later@x.org"]);
    let d = o.finish(&again, accept_all(&again), at, &RetryPolicy::default());
    assert_eq!(d.unwrap(), Disposition::Sent);
}

fn credentials_failure_pauses_the_account_once_and_retry_resumes_it(f: &Fixture) {
    let o = f.open();
    let a1 = o.enqueue(b"x", new("broken", &["r@x.org"])).unwrap();
    let a2 = o.enqueue(b"x", new("broken", &["r@x.org"])).unwrap();
    let b1 = o.enqueue(b"x", new("fine", &["r@x.org"])).unwrap();
    let now = soon();
    let claims = o.claim(now, LEASE, 2, None, "").unwrap();
    assert_eq!(claims.iter().map(|c| c.id).collect::<Vec<_>>(), [a1, a2]);
    let fail = || Outcome::Failed {
        class: FailureClass::Credentials,
        reply: Some(reply(535, "5.7.8 Username and Password not accepted")),
        explanation: "the password was refused; run `postie login broken`".into(),
    };
    let p = RetryPolicy::default();
    let first = o.finish(&claims[0], fail(), now, &p).unwrap();
    assert_eq!(
        first,
        Disposition::Paused {
            account: "broken".into(),
            newly: true
        }
    );
    let second = o.finish(&claims[1], fail(), now, &p).unwrap();
    assert_eq!(
        second,
        Disposition::Paused {
            account: "broken".into(),
            newly: false
        }
    );
    let paused = o.paused().unwrap();
    assert_eq!(paused.len(), 1);
    assert!(paused[0].reason.contains("postie login broken"));
    // Only the other account's message is claimed, however late.
    let later = now + Duration::from_secs(86_400);
    let c = o.claim(later, LEASE, 10, None, "").unwrap();
    assert_eq!(c.iter().map(|c| c.id).collect::<Vec<_>>(), [b1]);
    assert!(
        o.claim(later, LEASE, 10, Some("broken"), "")
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        o.list(&ListFilter::default()).unwrap()[0].state,
        State::Queued
    );
    assert!(o.list(&ListFilter::default()).unwrap()[0].paused);
    // The worker sleeps on nothing while the only due account is paused.
    o.release(&c[0]).unwrap();
    assert!(o.next_due().unwrap().is_some());
    assert_eq!(o.retry(Which::One(a1), later).unwrap(), 1);
    assert!(o.paused().unwrap().is_empty());
    let ids: Vec<_> = o
        .claim(later, LEASE, 10, None, "")
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, [a1, a2, b1]);
}

fn expiring_pause_sends_a_single_probe(f: &Fixture) {
    let o = f.open();
    for _ in 0..3 {
        o.enqueue(b"x", new("broken", &["r@x.org"])).unwrap();
    }
    let p = RetryPolicy {
        credentials_pause: Some(Duration::from_secs(3600)),
        ..RetryPolicy::default()
    };
    let now = soon();
    let c = o.claim(now, LEASE, 1, None, "").unwrap().remove(0);
    let fail = || Outcome::Failed {
        class: FailureClass::Credentials,
        reply: None,
        explanation: "refused".into(),
    };
    assert!(matches!(
        o.finish(&c, fail(), now, &p).unwrap(),
        Disposition::Paused { newly: true, .. }
    ));
    assert!(
        o.claim(now + Duration::from_secs(3599), LEASE, 10, None, "")
            .unwrap()
            .is_empty()
    );
    let probe_at = now + Duration::from_secs(3600);
    assert_eq!(
        o.next_due().unwrap().map(time::to_ms),
        Some(time::to_ms(probe_at))
    );
    let probe = o.claim(probe_at, LEASE, 10, None, "").unwrap();
    assert_eq!(probe.len(), 1, "one probe, not the whole queue");
    assert!(o.claim(probe_at, LEASE, 10, None, "").unwrap().is_empty());
    let again = o.finish(&probe[0], fail(), probe_at, &p).unwrap();
    assert!(matches!(again, Disposition::Paused { newly: false, .. }));
    // The next probe gets through: the pause ends, the rest follows.
    let t2 = probe_at + Duration::from_secs(3600);
    let probe = o.claim(t2, LEASE, 10, None, "").unwrap().remove(0);
    assert_eq!(
        o.finish(&probe, accept_all(&probe), t2, &p).unwrap(),
        Disposition::Sent
    );
    assert!(o.paused().unwrap().is_empty());
    assert_eq!(o.claim(t2, LEASE, 10, None, "").unwrap().len(), 2);
}

fn give_up_fails_pending_recipients_and_retry_brings_them_back(f: &Fixture) {
    let o = f.open();
    let id = o
        .enqueue(b"x", new("work", &["ok@x.org", "slow@x.org"]))
        .unwrap();
    let p = RetryPolicy::default();
    let t0 = soon();
    let c = claim_one(&o, t0);
    let outcome = Outcome::Transaction(vec![
        rcpt("ok@x.org", RecipientResult::Accepted(reply(250, "ok"))),
        rcpt(
            "slow@x.org",
            RecipientResult::TempFailed(reply(452, "mailbox full")),
        ),
    ]);
    assert!(matches!(
        o.finish(&c, outcome, t0, &p).unwrap(),
        Disposition::RetryAt(_)
    ));
    let late = t0 + p.give_up_after;
    let c = claim_one(&o, late);
    let outcome = Outcome::Failed {
        class: FailureClass::Transient,
        reply: Some(reply(421, "try later")),
        explanation: "the server is busy".into(),
    };
    // One recipient got it: sent, with the other failed.
    let d = o.finish(&c, outcome, late, &p).unwrap();
    assert_eq!(
        d,
        Disposition::PartlyFailed {
            failed: vec!["slow@x.org".into()]
        }
    );
    let detail = o.show(id).unwrap().unwrap();
    assert_eq!(detail.recipients[1].reply.as_ref().unwrap().code, 421);
    assert!(detail.explanation.unwrap().contains("gave up"));
    // A sent message is not retried.
    assert_eq!(o.retry(Which::All, late).unwrap(), 0);

    // A message nobody got fails, and retry makes its recipients pending.
    let id = o
        .enqueue(b"x", new("work", &["a@x.org", "b@x.org"]))
        .unwrap();
    let c = claim_one(&o, soon());
    let outcome = Outcome::Failed {
        class: FailureClass::Permanent,
        reply: Some(reply(554, "message refused")),
        explanation: String::new(),
    };
    assert_eq!(
        o.finish(&c, outcome, soon(), &p).unwrap(),
        Disposition::Failed
    );
    let failed = ListFilter {
        state: Some(State::Failed),
        ..ListFilter::default()
    };
    assert_eq!(o.list(&failed).unwrap().len(), 1);
    let now = soon();
    assert_eq!(o.retry(Which::All, now).unwrap(), 1);
    let c = claim_one(&o, now);
    assert_eq!((c.id, c.recipients.len()), (id, 2));
}

fn purge_deletes_the_body_but_not_while_leased(f: &Fixture) {
    let o = f.open();
    let id = spooled(&o, b"x", new("work", &["a@x.org"]));
    let c = claim_one(&o, SystemTime::now());
    let body_path = c.body.path().map(|p| p.to_path_buf());
    assert_eq!(
        body_path.is_some(),
        f.dir().is_some(),
        "spooled: a file in SQLite"
    );
    let e = o.purge(id).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transient);
    assert!(e.message().contains("being delivered"));
    assert!(o.release(&c).unwrap());
    assert!(body_path.as_ref().is_none_or(|p| p.exists()));
    assert!(o.purge(id).unwrap());
    assert!(body_path.as_ref().is_none_or(|p| !p.exists()));
    assert!(o.show(id).unwrap().is_none());
    assert!(!o.purge(id).unwrap());
    // Ids are never reused.
    let next = o.enqueue(b"x", new("work", &["a@x.org"])).unwrap();
    assert!(next > id);
}

#[test]
fn leftovers_are_removed_at_open_but_recent_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox");
    let o = Outbox::open(&path).unwrap();
    let messages_dir = path.join(MESSAGES_DIR);
    let kept = spooled(&o, b"x", new("work", &["a@x.org"]));
    let msgs = messages_dir.clone();
    let old = SystemTime::now() - Duration::from_secs(3600);
    let make = |p: std::path::PathBuf, mtime: SystemTime| {
        let f = std::fs::File::create(&p).unwrap();
        f.set_modified(mtime).unwrap();
        p
    };
    let orphan = make(msgs.join("0123.eml"), old);
    let fresh_orphan = make(msgs.join("4567.eml"), SystemTime::now());
    let stale_tmp = make(msgs.join(TMP_DIR).join("89ab.tmp"), old);
    // A live spool whose file looks old: its lock keeps it.
    let live = o.spool().unwrap();
    let live_path = msgs.join(TMP_DIR).join(
        files_in(&msgs.join(TMP_DIR))
            .into_iter()
            .find(|n| n != "89ab.tmp")
            .unwrap(),
    );
    std::fs::File::options()
        .write(true)
        .open(&live_path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    drop(o);
    let o = Outbox::open(&path).unwrap();
    assert!(!orphan.exists());
    assert!(!stale_tmp.exists());
    assert!(
        fresh_orphan.exists(),
        "a committer may be between rename and COMMIT"
    );
    assert!(live_path.exists(), "a spool still being written");
    let body = o.show(kept).unwrap().unwrap().body_path.unwrap();
    assert!(body.exists());
    drop(live);
    assert!(!live_path.exists());
}

fn messages_without_recipients_or_with_line_breaks_are_refused(f: &Fixture) {
    let o = f.open();
    let e = o.enqueue(b"x", new("work", &[])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Message);
    let e = o
        .enqueue(b"x", new("work", &["a@x.org\r\nRCPT TO:<b@x.org>"]))
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Message);
    // Refused at commit too, and the spool file goes away.
    let s = o.spool().unwrap();
    let path = s.path.clone();
    assert!(o.commit(s, new("work", &[])).is_err());
    assert!(!path.exists());
    assert_eq!(o.counts().unwrap(), Counts::default());
}

fn release_holder_and_postpone_return_messages_to_the_queue(f: &Fixture) {
    let o = f.open();
    for _ in 0..3 {
        o.enqueue(b"x", new("work", &["a@x.org"])).unwrap();
    }
    let now = soon();
    let mine = o.claim(now, LEASE, 2, None, "dead1-").unwrap();
    let other = o.claim(now, LEASE, 1, None, "alive-").unwrap().remove(0);
    assert_eq!(o.release_holder("dead1-").unwrap(), 2);
    assert_eq!(o.counts().unwrap().delivering, 1);
    let until = now + Duration::from_secs(7200);
    assert!(o.postpone(&other, until, "daily limit reached").unwrap());
    let back = o
        .claim(now + Duration::from_secs(5), LEASE, 10, None, "")
        .unwrap();
    assert_eq!(back.len(), 2);
    assert!(back.iter().all(|c| c.attempts == 1));
    let s = o.show(other.id).unwrap().unwrap();
    let until = time::from_ms(time::to_ms(until));
    assert_eq!(
        (s.summary.attempts, s.summary.next_attempt_at),
        (0, Some(until))
    );
    assert!(
        mine.iter().all(|c| !o.release(c).unwrap()),
        "released leases are gone"
    );
}

#[test]
fn message_ids_and_states_parse() {
    assert_eq!("42".parse::<MessageId>().unwrap(), MessageId(42));
    assert_eq!(MessageId(42).to_string(), "42");
    for bad in ["", "0", "-3", "x1"] {
        assert_eq!(
            bad.parse::<MessageId>().unwrap_err().kind(),
            ErrorKind::Usage
        );
    }
    for s in State::ALL {
        assert_eq!(s.as_str().parse::<State>().unwrap(), s);
    }
    assert!("bogus".parse::<State>().is_err());
}

#[test]
fn outbox_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Outbox>();
}

fn quota_failure_waits_hours(f: &Fixture) {
    let o = f.open();
    o.enqueue(b"x", new("work", &["a@x.org"])).unwrap();
    let now = soon();
    let c = claim_one(&o, now);
    let outcome = Outcome::Failed {
        class: FailureClass::Quota,
        reply: Some(reply(550, "5.4.5 Daily user sending limit exceeded")),
        explanation: "Gmail's daily limit".into(),
    };
    let Disposition::RetryAt(at) = o.finish(&c, outcome, now, &RetryPolicy::default()).unwrap()
    else {
        panic!("expected a retry")
    };
    let wait = at.duration_since(now).unwrap().as_secs_f64();
    assert!((wait - 3.0 * 3600.0).abs() < 0.01, "{wait}");
    let d = o.show(c.id).unwrap().unwrap();
    assert_eq!(d.history[0].kind, AttemptKind::Quota);
    assert_eq!(d.summary.last_reply.unwrap().code, 550);
    assert_eq!(d.explanation.as_deref(), Some("Gmail's daily limit"));
}

/// A service's `Retry-After` longer than the backoff is waited out; a
/// shorter one leaves the backoff as it is.
fn throttled_attempt_waits_as_long_as_the_service_asked(f: &Fixture) {
    let o = f.open();
    let p = RetryPolicy::default();
    for (asked, at_least) in [(900, 900.0), (5, 30.0)] {
        o.enqueue(b"x", new("api", &["a@x.org"])).unwrap();
        let now = soon();
        let c = claim_one(&o, now);
        let outcome = Outcome::Throttled {
            wait: Duration::from_secs(asked),
            explanation: "the Gmail API answered HTTP 429 rateLimitExceeded".into(),
        };
        let Disposition::RetryAt(at) = o.finish(&c, outcome, now, &p).unwrap() else {
            panic!("expected a retry")
        };
        let wait = at.duration_since(now).unwrap().as_secs_f64();
        // the backoff's first wait is 30-60 s (jittered); the service's, when longer, wins
        assert!(
            wait >= at_least - 0.01 && wait <= at_least.max(60.0) + 0.01,
            "{asked}: {wait}"
        );
        let d = o.show(c.id).unwrap().unwrap();
        assert_eq!(d.history[0].kind, AttemptKind::Transient);
        assert!(d.explanation.unwrap().contains("429"));
        o.purge(c.id).unwrap();
    }
}

/// An outbox whose database pages are damaged (its first
/// page intact, so SQLite opens it) or that is not a database at all is
/// refused at open, with the cause and the fix, instead of failing every
/// later call.
#[test]
fn a_damaged_database_is_refused_at_open_with_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open(&dir.path().join("outbox")).unwrap();
    for i in 0..200 {
        outbox
            .enqueue(
                format!("Subject: {i}\r\n\r\nbody\r\n").as_bytes(),
                new("a", &["b@example.com"]),
            )
            .unwrap();
    }
    drop(outbox);
    let db = dir.path().join("outbox").join(DB_FILE);
    let len = std::fs::metadata(&db).unwrap().len();
    assert!(len > 4 * 4096, "a database of {len} octets");
    // damage every page after the first (SQLite's default page is 4096 octets)
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(4096)).unwrap();
    f.write_all(&vec![0xA5; (len - 4096) as usize]).unwrap();
    drop(f);
    let err = Outbox::open(&dir.path().join("outbox")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Io);
    let text = err.to_string();
    assert!(
        text.contains("is damaged") && text.contains(".recover") && text.contains("move it aside"),
        "{text}"
    );

    std::fs::write(
        &db,
        b"this is no database, just text that is long enough to be read\n".repeat(100),
    )
    .unwrap();
    let err = Outbox::open(&dir.path().join("outbox")).unwrap_err();
    assert!(
        err.to_string()
            .contains("is damaged (file is not a database)"),
        "{err}"
    );
}

/// Sent messages finished before the cut are removed
/// with their stored copies; queued ones and later ones stay; only finished
/// states are purged by age.
fn purge_finished_removes_old_sent_messages_and_their_files(f: &Fixture) {
    let o = f.open();
    let sent = spooled(&o, b"Subject: a\r\n\r\nx\r\n", new("w", &["a@x.org"]));
    let c = claim_one(&o, soon());
    let sent_at = soon();
    o.finish(&c, accept_all(&c), sent_at, &RetryPolicy::default())
        .unwrap();
    let queued = spooled(&o, b"Subject: b\r\n\r\ny\r\n", new("w", &["b@x.org"]));
    let messages = f.dir().map(|d| d.join(MESSAGES_DIR));
    let files = || messages.as_ref().map(|m| files_in(m).len());
    assert!(files().is_none_or(|n| n == 2));
    // finished at `sent_at`: not before it
    assert_eq!(o.purge_finished(State::Sent, sent_at).unwrap(), 0);
    let later = sent_at + Duration::from_secs(1);
    assert_eq!(o.purge_finished(State::Sent, later).unwrap(), 1);
    assert!(o.show(sent).unwrap().is_none());
    assert!(o.show(queued).unwrap().is_some());
    assert!(files().is_none_or(|n| n == 1));
    let err = o.purge_finished(State::Queued, later).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Usage);
}

/// A message held back by the account's own limit for longer than the
/// give-up window gets its whole window from when it may go: a transient
/// failure then is retried, not given up.
fn a_postponed_message_gets_its_whole_window_after_the_wait(f: &Fixture) {
    let o = f.open();
    o.enqueue(b"x", new("work", &["a@x.org"])).unwrap();
    let p = RetryPolicy::default();
    let c = claim_one(&o, soon());
    let until = soon() + p.give_up_after + Duration::from_secs(86400);
    assert!(o.postpone(&c, until, "daily limit reached").unwrap());
    let c = claim_one(&o, until);
    let busy = Outcome::Failed {
        class: FailureClass::Transient,
        reply: Some(reply(421, "try later")),
        explanation: "the server is busy".into(),
    };
    let d = o.finish(&c, busy, until, &p).unwrap();
    assert!(matches!(d, Disposition::RetryAt(_)), "{d:?}");
}

/// A batch's items stay known when their messages are purged, one by one or
/// by age (keep_sent), so a batch run again does not take them anew; other
/// batches and messages outside any batch are not touched.
fn a_batch_remembers_the_items_whose_messages_were_purged(f: &Fixture) {
    let o = f.open();
    let item = |batch: &str, key: &str| {
        let mut m = new("w", &["a@x.org"]);
        m.batch = Some(BatchItem {
            batch: batch.into(),
            item: key.into(),
        });
        o.enqueue(b"Subject: b\r\n\r\nx\r\n", m).unwrap()
    };
    let (one, two, other) = (item("b", "one"), item("b", "two"), item("c", "one"));
    let plain = o.enqueue(b"x", new("w", &["a@x.org"])).unwrap();
    let keys = |batch: &str| {
        let mut k: Vec<(String, MessageId)> = o.batch_items(batch).unwrap().into_iter().collect();
        k.sort();
        k
    };
    let before = keys("b");
    assert_eq!(before, [("one".to_string(), one), ("two".to_string(), two)]);
    // "one" sent and purged by age, "two" purged by hand.
    let now = soon();
    loop {
        let c = o.claim(now, LEASE, 10, None, "t-").unwrap();
        if c.is_empty() {
            break;
        }
        for c in c {
            o.finish(&c, accept_all(&c), now, &RetryPolicy::default())
                .unwrap();
        }
    }
    assert!(o.purge(two).unwrap());
    assert_eq!(
        o.purge_finished(State::Sent, now + Duration::from_secs(1))
            .unwrap(),
        3
    );
    assert!(o.show(one).unwrap().is_none() && o.show(plain).unwrap().is_none());
    assert_eq!(keys("b"), before, "the purged items are still the batch's");
    assert_eq!(keys("c"), [("one".to_string(), other)]);
    // The same key cannot be queued twice while its message is there.
    let again = item("d", "k");
    let mut dup = new("w", &["a@x.org"]);
    dup.batch = Some(BatchItem {
        batch: "d".into(),
        item: "k".into(),
    });
    assert!(o.enqueue(b"x", dup).is_err());
    assert_eq!(keys("d"), [("k".to_string(), again)]);
}

/// A deliverer that died leaves its leases; the next deliverer to register
/// returns them to the queue at once, counted as interrupted attempts, while
/// a live holder's leases stay.
fn a_dead_holders_leases_return_to_the_queue(f: &Fixture) {
    let o = f.open();
    for _ in 0..3 {
        o.enqueue(b"x", new("work", &["a@x.org"])).unwrap();
    }
    let now = SystemTime::now();
    let live = o.register_holder().unwrap();
    let dead = f.dead_holder();
    assert_ne!(live.token_prefix(), dead);
    let kept = o.claim(now, LEASE, 1, None, live.token_prefix()).unwrap();
    let lost = o.claim(now, LEASE, 2, None, &dead).unwrap();
    assert_eq!((kept.len(), lost.len()), (1, 2));
    let _next = f.open().register_holder().unwrap();
    let c = o.counts().unwrap();
    assert_eq!((c.queued, c.delivering), (2, 1), "{c:?}");
    for l in &lost {
        let d = o.show(l.id).unwrap().unwrap();
        assert_eq!(d.history.last().unwrap().kind, AttemptKind::Interrupted);
        assert!(!o.release(l).unwrap(), "the dead holder's lease is gone");
    }
    assert!(
        o.release(&kept[0]).unwrap(),
        "the live holder keeps its lease"
    );
}

/// The PostgreSQL store keeps the accounts' limits for every handle on it
/// (every host): sends reserved through one handle count for another, a
/// paced account's slots are spaced across handles, and a reserved send that
/// reached nobody gives its place back.
#[test]
fn the_shared_store_keeps_limits_for_every_host() {
    use postie::provider::Limits;
    let f = Fixture::postgres();
    let (a, b) = (f.open(), f.open());
    assert!(a.keeps_quotas());
    assert!(!Fixture::sqlite().open().keeps_quotas());
    let now = SystemTime::now();
    let limits = Limits {
        per_day: Some(2),
        per_minute: Some(60),
        ..Limits::default()
    };
    let quota::Reservation::Granted { id: first, at: t1 } =
        a.reserve("w", &limits, 1, now).unwrap()
    else {
        panic!("the first send is granted")
    };
    let quota::Reservation::Granted { at: t2, .. } = b.reserve("w", &limits, 1, now).unwrap()
    else {
        panic!("the second send is granted")
    };
    assert_eq!(
        t2.duration_since(t1).unwrap(),
        Duration::from_secs(1),
        "one per second"
    );
    let third = a.reserve("w", &limits, 1, now).unwrap();
    assert!(
        matches!(
            third,
            quota::Reservation::Deferred {
                which: "daily sending limit",
                ..
            }
        ),
        "{third:?}"
    );
    assert!(matches!(
        b.reserve("other", &limits, 1, now).unwrap(),
        quota::Reservation::Granted { .. }
    ));
    a.settle(first, 0).unwrap();
    assert!(matches!(
        b.reserve("w", &limits, 1, now).unwrap(),
        quota::Reservation::Granted { .. }
    ));
}

/// The same attempts recorded one by one (account `one`) and in one
/// transaction (account `many`) leave the same records: a first attempt
/// every recipient accepted, a lost lease, a partial refusal, a failure to
/// retry, a recipient refused for now; then a second round.
fn attempts_finished_together_are_recorded_as_if_alone(f: &Fixture) {
    let o = f.open();
    let shapes: [&[&str]; 5] = [
        &["a@x.org", "b@x.org"],
        &["c@x.org"],
        &["d@x.org", "e@x.org"],
        &["f@x.org"],
        &["g@x.org", "h@x.org"],
    ];
    let mut ids: HashMap<&str, Vec<MessageId>> = HashMap::new();
    for account in ["one", "many"] {
        for rcpts in shapes {
            ids.entry(account)
                .or_default()
                .push(o.enqueue(b"x", new(account, rcpts)).unwrap());
        }
    }
    let p = RetryPolicy::default();
    let t0 = soon();
    let round1 = |c: &[Claim]| -> Vec<(Claim, Outcome)> {
        let failed = Outcome::Failed {
            class: FailureClass::Transient,
            reply: Some(reply(421, "busy")),
            explanation: "the server is busy".into(),
        };
        vec![
            (
                c[0].clone(),
                Outcome::Transaction(vec![
                    rcpt("a@x.org", RecipientResult::Accepted(reply(250, "queued a"))),
                    rcpt("b@x.org", RecipientResult::Accepted(reply(250, "queued b"))),
                ]),
            ),
            (c[1].clone(), accept_all(&c[1])),
            (
                c[2].clone(),
                Outcome::Transaction(vec![
                    rcpt("d@x.org", RecipientResult::Accepted(reply(250, "queued d"))),
                    rcpt("e@x.org", RecipientResult::PermFailed(reply(550, "no e"))),
                ]),
            ),
            (c[3].clone(), failed),
            (
                c[4].clone(),
                Outcome::Transaction(vec![
                    rcpt("g@x.org", RecipientResult::Accepted(reply(250, "queued g"))),
                    rcpt(
                        "h@x.org",
                        RecipientResult::TempFailed(reply(451, "later h")),
                    ),
                ]),
            ),
        ]
    };
    let kind = |d: &Disposition| std::mem::discriminant(d);
    let mut results: HashMap<&str, Vec<Disposition>> = HashMap::new();
    for account in ["one", "many"] {
        let c = o.claim(t0, LEASE, 10, Some(account), "t-").unwrap();
        assert_eq!(c.len(), 5);
        // The second message's lease is lost before its outcome comes.
        assert!(o.release(&c[1]).unwrap());
        let attempts = round1(&c);
        let got = if account == "one" {
            attempts
                .into_iter()
                .map(|(c, out)| o.finish(&c, out, t0, &p).unwrap())
                .collect()
        } else {
            o.finish_many(attempts, t0, &p).unwrap()
        };
        results.insert(account, got);
    }
    assert_eq!(results["many"][0], Disposition::Sent);
    assert_eq!(results["many"][1], Disposition::LeaseLost);
    assert_eq!(
        results["many"][2],
        Disposition::PartlyFailed {
            failed: vec!["e@x.org".into()]
        }
    );
    assert!(matches!(results["many"][3], Disposition::RetryAt(_)));
    assert!(matches!(results["many"][4], Disposition::RetryAt(_)));
    assert_eq!(
        results["one"].iter().map(kind).collect::<Vec<_>>(),
        results["many"].iter().map(kind).collect::<Vec<_>>()
    );
    // Round two, a day later: the released message (first attempt), the
    // failed one and the refused recipient (second attempts).
    let t1 = t0 + Duration::from_secs(86_400);
    for account in ["one", "many"] {
        let c = o.claim(t1, LEASE, 10, Some(account), "t-").unwrap();
        assert_eq!(c.len(), 3, "{c:?}");
        assert_eq!(c[2].recipients, ["h@x.org"]);
        let attempts: Vec<_> = c.iter().map(|c| (c.clone(), accept_all(c))).collect();
        let got: Vec<_> = if account == "one" {
            attempts
                .into_iter()
                .map(|(c, out)| o.finish(&c, out, t1, &p).unwrap())
                .collect()
        } else {
            o.finish_many(attempts, t1, &p).unwrap()
        };
        assert_eq!(
            got,
            [Disposition::Sent, Disposition::Sent, Disposition::Sent],
            "{account}"
        );
    }
    // What each message's record says, without ids and times.
    let record = |id: MessageId| {
        let d = o.show(id).unwrap().unwrap();
        let s = &d.summary;
        format!(
            "{:?} {:?} {} {:?} {:?} | {:?} | {:?}",
            s.state,
            s.counts,
            s.attempts,
            s.last_reply,
            d.explanation,
            d.recipients
                .iter()
                .map(|r| (&r.address, r.state, &r.reply))
                .collect::<Vec<_>>(),
            d.history
                .iter()
                .map(|a| (a.kind, &a.reply, &a.explanation, &a.host))
                .collect::<Vec<_>>(),
        )
    };
    for (one, many) in ids["one"].iter().zip(&ids["many"]) {
        assert_eq!(record(*one), record(*many));
    }
    assert_eq!(o.counts().unwrap().sent, 10);
    assert!(o.finish_many(Vec::new(), t1, &p).unwrap().is_empty());
}
