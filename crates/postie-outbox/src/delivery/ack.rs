//! Acknowledgements grouped: attempts that finish while the outbox is busy
//! recording others are recorded together, in one transaction
//! ([`Store::finish_many`](crate::outbox::Store::finish_many)).
//!
//! No timer: a lone attempt is recorded at once; under load, whatever
//! finished during one commit goes into the next. The price is the window
//! in which a crash makes a duplicate (after the server's `250`, before the
//! commit): it grows from one commit to at most two, still one message per
//! connection (a connection waits for its message to be recorded).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tokio::sync::oneshot;

use crate::outbox::{Claim, Disposition, Outbox, Outcome, RetryPolicy};
use postie::error::{Error, ErrorKind, Result};

/// At most this many attempts in one transaction.
const MAX_GROUP: usize = 512;

type Waiter = oneshot::Sender<Result<Disposition>>;

/// An outcome handed over ([`Acks::submit`]), being recorded.
pub(super) struct Pending(oneshot::Receiver<Result<Disposition>>);

/// What the outbox did with a submitted outcome.
pub(super) async fn outcome(p: Pending) -> Result<Disposition> {
    p.0.await.unwrap_or_else(|_| {
        Err(Error::new(
            ErrorKind::Io,
            "the outbox task recording attempts stopped",
        ))
    })
}

/// The attempts waiting to be recorded, and whether a task records them.
#[derive(Default)]
struct Queue {
    waiting: Vec<(Claim, Outcome, Waiter)>,
    recording: bool,
}

/// Records attempts for a deliverer (cheap to clone).
#[derive(Clone)]
pub(super) struct Acks {
    outbox: Arc<Outbox>,
    policy: RetryPolicy,
    queue: Arc<Mutex<Queue>>,
}

impl Acks {
    pub(super) fn new(outbox: Arc<Outbox>, policy: RetryPolicy) -> Acks {
        Acks {
            outbox,
            policy,
            queue: Arc::default(),
        }
    }

    /// Hand the outcome of `claim`'s attempt over to be recorded, at once;
    /// [`outcome`] says what the outbox did with it. The recording runs in a
    /// task of its own: a caller that goes away (a stop) does not stop it.
    pub(super) fn submit(&self, claim: Claim, outcome: Outcome) -> Pending {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut q = self.queue.lock().expect("ack queue lock");
            q.waiting.push((claim, outcome, tx));
            !std::mem::replace(&mut q.recording, true)
        };
        if start {
            tokio::spawn(self.clone().record());
        }
        Pending(rx)
    }

    /// True while outcomes wait to be recorded or are being recorded.
    pub(super) fn busy(&self) -> bool {
        self.queue.lock().expect("ack queue lock").recording
    }

    /// Record groups until nothing waits.
    async fn record(self) {
        loop {
            let group: Vec<_> = {
                let mut q = self.queue.lock().expect("ack queue lock");
                if q.waiting.is_empty() {
                    q.recording = false;
                    return;
                }
                let n = q.waiting.len().min(MAX_GROUP);
                q.waiting.drain(..n).collect()
            };
            let (attempts, waiters): (Vec<_>, Vec<_>) =
                group.into_iter().map(|(c, o, w)| ((c, o), w)).unzip();
            let policy = self.policy.clone();
            let r = self
                .outbox
                .with(move |o| o.finish_many(attempts, SystemTime::now(), &policy))
                .await;
            match r {
                Ok(dispositions) => {
                    for (w, d) in waiters.into_iter().zip(dispositions) {
                        let _ = w.send(Ok(d));
                    }
                }
                Err(e) => {
                    for w in waiters {
                        let _ = w.send(Err(Error::new(e.kind(), e.message())));
                    }
                }
            }
        }
    }
}
