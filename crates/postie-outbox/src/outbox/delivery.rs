//! What delivery works with: a claimed message ([`Claim`]), where its body
//! is ([`StoredBody`]), which messages a worker takes ([`Scope`]), what an
//! attempt came to ([`Outcome`]) and what the outbox did with it
//! ([`Disposition`]). Each store implements the leases themselves.

use std::path::PathBuf;
use std::time::SystemTime;

use super::{MessageId, ReplyRecord};

/// Where a queued message's body is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StoredBody {
    /// In the database row, committed with it (bodies up to
    /// [`super::INLINE_MAX`] bytes).
    Row(std::sync::Arc<[u8]>),
    /// A file in the outbox directory's `messages` (the SQLite store).
    File(PathBuf),
}

impl StoredBody {
    /// The body's bytes, read whole (the file case is for tests and tools;
    /// delivery streams files instead).
    pub fn read(&self) -> std::io::Result<Vec<u8>> {
        match self {
            StoredBody::Row(b) => Ok(b.to_vec()),
            StoredBody::File(p) => std::fs::read(p),
        }
    }

    /// The file, when the body is one.
    pub fn path(&self) -> Option<&std::path::Path> {
        match self {
            StoredBody::Row(_) => None,
            StoredBody::File(p) => Some(p),
        }
    }
}

/// A message leased to one worker, with what it needs to deliver it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    /// The id.
    pub id: MessageId,
    /// The account to send through.
    pub account: String,
    /// The reverse-path; `None` is `<>`.
    pub mail_from: Option<String>,
    /// The recipients still pending, in envelope order.
    pub recipients: Vec<String>,
    /// The body, ready to send as is.
    pub body: StoredBody,
    /// Body size in bytes.
    pub size: u64,
    /// Send with `BODY=8BITMIME`.
    pub eight_bit: bool,
    /// Send with `SMTPUTF8`.
    pub smtputf8: bool,
    /// Attempts before this one (interrupted ones included).
    pub attempts: u32,
    /// When the message was accepted.
    pub queued_at: SystemTime,
    /// Proof of the lease: `finish`, `renew`, `release` need it to match.
    pub lease_token: String,
    /// When the lease runs out unless renewed.
    pub lease_until: SystemTime,
}

/// Which messages a deliverer takes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scope<'a> {
    /// Only this account's.
    pub account: Option<&'a str>,
    /// Only this batch's (`postie bulk`).
    pub batch: Option<&'a str>,
}

/// What one delivery attempt came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The transaction ran: per recipient, accepted or refused (temporarily
    /// or permanently). Claimed recipients missing here stay pending.
    Transaction(Vec<RecipientOutcome>),
    /// The message as a whole could not be delivered this time.
    Failed {
        /// How to retry.
        class: FailureClass,
        /// The server's reply, when the failure was one.
        reply: Option<ReplyRecord>,
        /// What happened and what to do, for the user.
        explanation: String,
    },
    /// The service asked to wait before trying again (an HTTPS API's 429
    /// with `Retry-After`): a temporary failure retried no sooner than
    /// `wait` from now (and no sooner than the retry policy says).
    Throttled {
        /// How long the service asked to wait.
        wait: std::time::Duration,
        /// What happened, for the user.
        explanation: String,
    },
}

/// What the server said about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientOutcome {
    /// The address, as claimed.
    pub address: String,
    /// Accepted or refused.
    pub result: RecipientResult,
}

/// One recipient's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecipientResult {
    /// The server took the message for this recipient.
    Accepted(ReplyRecord),
    /// Refused for now (4xx): stays pending and is retried.
    TempFailed(ReplyRecord),
    /// Refused for good (5xx).
    PermFailed(ReplyRecord),
}

/// Why a whole message failed, which decides how it is retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Retry with backoff (network, 4xx, TLS trouble).
    Transient,
    /// A sending quota is used up: retry hours later.
    Quota,
    /// The account's credentials were refused: pause the account.
    Credentials,
    /// Refused for good: no retry.
    Permanent,
}

/// What `finish` did with the message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disposition {
    /// Every recipient was accepted.
    Sent,
    /// No recipient is pending; these failed, the others were accepted.
    PartlyFailed {
        /// The failed recipients.
        failed: Vec<String>,
    },
    /// Queued again, due at this time.
    RetryAt(SystemTime),
    /// Nobody will get it.
    Failed,
    /// The message stays queued and its account is paused.
    Paused {
        /// The account.
        account: String,
        /// True when this attempt paused it (tell the user); false when it
        /// was paused already.
        newly: bool,
    },
    /// The lease ran out and another worker claimed the message, or it was
    /// purged: nothing was recorded.
    LeaseLost,
}
