//! The outbox's vocabulary: ids, states, what goes in and what the
//! operator commands show.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::time::{ser, ser_opt};
use postie::error::{Error, ErrorKind, Result};
use postie::wording::{Action, say};

/// A message's number in the outbox. Never reused, even after a purge.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(pub i64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for MessageId {
    type Err = Error;

    fn from_str(s: &str) -> Result<MessageId> {
        match s.trim().parse::<i64>() {
            Ok(n) if n > 0 => Ok(MessageId(n)),
            _ => Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "'{s}' is not a message id; {} shows them",
                    say(&Action::ListQueue)
                ),
            )),
        }
    }
}

/// Where a message is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// Waiting for its next attempt (or for its paused account).
    Queued,
    /// Leased to a delivery worker.
    Delivering,
    /// No recipient is pending and at least one was accepted.
    Sent,
    /// Every recipient failed, or it was given up.
    Failed,
}

impl State {
    /// Every state, in life order.
    pub const ALL: [State; 4] = [State::Queued, State::Delivering, State::Sent, State::Failed];

    /// The lowercase name, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Queued => "queued",
            State::Delivering => "delivering",
            State::Sent => "sent",
            State::Failed => "failed",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for State {
    type Err = Error;

    fn from_str(s: &str) -> Result<State> {
        State::ALL
            .into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Usage,
                    format!("unknown state '{s}'; use queued, delivering, sent or failed"),
                )
            })
    }
}

/// Where one recipient is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecipientState {
    /// Still to be delivered.
    Pending,
    /// Accepted by the upstream server.
    Sent,
    /// Refused for good, or given up.
    Failed,
}

impl RecipientState {
    /// The lowercase name, as stored and printed.
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientState::Pending => "pending",
            RecipientState::Sent => "sent",
            RecipientState::Failed => "failed",
        }
    }

    pub(super) fn parse(s: &str) -> RecipientState {
        match s {
            "sent" => RecipientState::Sent,
            "failed" => RecipientState::Failed,
            _ => RecipientState::Pending,
        }
    }
}

/// A message to store, besides its body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewMessage {
    /// The account it goes out through.
    pub account: String,
    /// The reverse-path; `None` is the null reverse-path `<>`.
    pub mail_from: Option<String>,
    /// Envelope recipients; at least one.
    pub recipients: Vec<String>,
    /// The body has 8-bit content (`BODY=8BITMIME`).
    pub eight_bit: bool,
    /// The envelope or headers need `SMTPUTF8`.
    pub smtputf8: bool,
    /// The `Message-ID` header, for display.
    pub message_id: Option<String>,
    /// The `Subject` header, for display.
    pub subject: Option<String>,
    /// Who handed it over: `"relay"`, `"sendmail"`, `"bulk"`.
    pub source: String,
    /// The batch it belongs to and its item there (`postie bulk`); a batch
    /// holds each item once.
    pub batch: Option<BatchItem>,
}

/// A message's place in a batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchItem {
    /// The batch's name.
    pub batch: String,
    /// The item's key in the batch's source.
    pub item: String,
}

impl NewMessage {
    /// What to store with `msg` (its body read whole into `bytes`), to go
    /// out through `account`: its envelope, and Message-ID and Subject for
    /// display.
    pub fn of(
        account: &str,
        msg: &postie::message::OutgoingMessage,
        bytes: &[u8],
        source: &str,
    ) -> NewMessage {
        let head = postie::message::HeadSummary::parse(bytes);
        NewMessage {
            account: account.to_string(),
            mail_from: Some(msg.from.to_string()),
            recipients: msg.recipients.iter().map(|r| r.to_string()).collect(),
            eight_bit: msg.is_8bit(),
            smtputf8: msg.needs_smtputf8(),
            message_id: head
                .message_id
                .or(Some(msg.message_id.clone()).filter(|m| !m.is_empty())),
            subject: head.subject,
            source: source.to_string(),
            batch: None,
        }
    }

    /// Refuse what could never be delivered or would corrupt a command line
    /// later: no recipients, or CR, LF or NUL in the envelope.
    pub(super) fn validate(&self) -> Result<()> {
        let bad = |what: &str, v: &str| {
            Error::new(
                ErrorKind::Message,
                format!("the {what} {v:?} contains a line break or NUL"),
            )
        };
        let unsafe_text = |s: &str| s.contains(['\r', '\n', '\0']);
        if self.account.trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Usage,
                "a queued message needs an account",
            ));
        }
        if self.recipients.is_empty() {
            return Err(Error::new(
                ErrorKind::Message,
                "the message has no recipients; nothing to deliver",
            ));
        }
        if unsafe_text(&self.account) {
            return Err(bad("account name", &self.account));
        }
        if let Some(f) = self.mail_from.as_deref().filter(|f| unsafe_text(f)) {
            return Err(bad("sender", f));
        }
        for r in &self.recipients {
            if r.trim().is_empty() {
                return Err(Error::new(
                    ErrorKind::Message,
                    "a recipient address is empty",
                ));
            }
            if unsafe_text(r) {
                return Err(bad("recipient", r));
            }
        }
        Ok(())
    }
}

/// A server reply as the outbox keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRecord {
    /// The reply code, e.g. 550.
    pub code: u16,
    /// The enhanced status code, e.g. `5.1.1`.
    pub enhanced: Option<String>,
    /// The text, lines joined with `\n`.
    pub text: String,
}

impl ReplyRecord {
    /// Rebuild from nullable columns: no code, no reply.
    pub(super) fn from_columns(
        code: Option<i64>,
        enhanced: Option<String>,
        text: Option<String>,
    ) -> Option<ReplyRecord> {
        Some(ReplyRecord {
            code: u16::try_from(code?).ok()?,
            enhanced,
            text: text.unwrap_or_default(),
        })
    }
}

/// Recipients of one message by state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct RecipientCounts {
    /// Still to be delivered.
    pub pending: u32,
    /// Accepted upstream.
    pub sent: u32,
    /// Refused or given up.
    pub failed: u32,
}

/// The columns a [`Summary`] is read from, in order, the same in every
/// store's SQL; `m` is the messages table.
pub(super) const SUMMARY_COLUMNS: &str = "m.id, m.account, m.state, m.mail_from, m.size,
    m.attempts, m.queued_at, m.next_attempt_at, m.lease_until, m.last_code, m.last_enhanced,
    m.last_text, m.subject, m.header_id, m.source,
    (SELECT COUNT(*) FROM recipients r WHERE r.msg = m.id AND r.state = 'pending'),
    (SELECT COUNT(*) FROM recipients r WHERE r.msg = m.id AND r.state = 'sent'),
    (SELECT COUNT(*) FROM recipients r WHERE r.msg = m.id AND r.state = 'failed'),
    EXISTS (SELECT 1 FROM paused_accounts p WHERE p.account = m.account)";

/// One line of `postie queue list`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The id.
    pub id: MessageId,
    /// The account it goes out through.
    pub account: String,
    /// Where it is.
    pub state: State,
    /// The reverse-path; `None` is `<>`.
    pub mail_from: Option<String>,
    /// Recipients by state.
    pub counts: RecipientCounts,
    /// Body size in bytes.
    pub size: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// When it was accepted.
    #[serde(serialize_with = "ser")]
    pub queued_at: SystemTime,
    /// When it is due next, while queued.
    #[serde(serialize_with = "ser_opt")]
    pub next_attempt_at: Option<SystemTime>,
    /// Until when a worker holds it, while delivering.
    #[serde(serialize_with = "ser_opt")]
    pub lease_until: Option<SystemTime>,
    /// The last reply that mattered (a refusal if there was one).
    pub last_reply: Option<ReplyRecord>,
    /// The `Subject` header.
    pub subject: Option<String>,
    /// The `Message-ID` header.
    pub message_id: Option<String>,
    /// Who handed it over.
    pub source: String,
    /// Its account is paused (see [`super::Store::paused`]).
    pub paused: bool,
}

/// One recipient of `postie queue show`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RecipientDetail {
    /// The address.
    pub address: String,
    /// Where it is.
    pub state: RecipientState,
    /// The last reply for this recipient.
    pub reply: Option<ReplyRecord>,
    /// When its state or reply last changed.
    #[serde(serialize_with = "ser_opt")]
    pub updated_at: Option<SystemTime>,
}

/// What kind of attempt an [`AttemptRecord`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttemptKind {
    /// The transaction ran; every recipient tried was accepted.
    Delivered,
    /// The transaction ran; some recipients were accepted, some refused.
    Partial,
    /// The transaction ran; no recipient was accepted.
    Refused,
    /// The message could not be sent this time; later may work.
    Transient,
    /// A sending quota was used up.
    Quota,
    /// The account's credentials were refused.
    Credentials,
    /// The message as a whole was refused for good.
    Permanent,
    /// The worker stopped (crashed, killed, hung) before it reported; the
    /// message may or may not have reached the server.
    Interrupted,
}

impl AttemptKind {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            AttemptKind::Delivered => "delivered",
            AttemptKind::Partial => "partial",
            AttemptKind::Refused => "refused",
            AttemptKind::Transient => "transient",
            AttemptKind::Quota => "quota",
            AttemptKind::Credentials => "credentials",
            AttemptKind::Permanent => "permanent",
            AttemptKind::Interrupted => "interrupted",
        }
    }

    pub(super) fn parse(s: &str) -> AttemptKind {
        [
            AttemptKind::Delivered,
            AttemptKind::Partial,
            AttemptKind::Refused,
            AttemptKind::Transient,
            AttemptKind::Quota,
            AttemptKind::Credentials,
            AttemptKind::Permanent,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
        .unwrap_or(AttemptKind::Interrupted)
    }
}

/// One delivery attempt, as recorded.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttemptRecord {
    /// When it ended.
    #[serde(serialize_with = "ser")]
    pub at: SystemTime,
    /// What kind of outcome it had.
    pub kind: AttemptKind,
    /// The reply that mattered, if the server said anything.
    pub reply: Option<ReplyRecord>,
    /// What happened and what to do, when known.
    pub explanation: Option<String>,
    /// The host that made it, in an outbox several hosts share.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// Everything about one message, for `postie queue show`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Detail {
    /// What `list` shows.
    #[serde(flatten)]
    pub summary: Summary,
    /// Every recipient in envelope order.
    pub recipients: Vec<RecipientDetail>,
    /// Every attempt, oldest first.
    pub history: Vec<AttemptRecord>,
    /// The explanation of the last failure.
    pub explanation: Option<String>,
    /// The body file; `None` when the body is kept in the database row.
    pub body_path: Option<PathBuf>,
    /// 8-bit body.
    pub eight_bit: bool,
    /// Needs SMTPUTF8.
    pub smtputf8: bool,
    /// When it became sent or failed.
    #[serde(serialize_with = "ser_opt")]
    pub finished_at: Option<SystemTime>,
}

/// Which messages `list` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only messages in this state.
    pub state: Option<State>,
    /// Only this account's messages.
    pub account: Option<String>,
    /// Only this batch's messages.
    pub batch: Option<String>,
    /// At most this many (oldest first).
    pub limit: Option<usize>,
}

/// Which messages an operator command applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// One message.
    One(MessageId),
    /// Every message the command applies to.
    All,
}

/// Messages per state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Waiting.
    pub queued: u64,
    /// Leased to a worker.
    pub delivering: u64,
    /// Delivered.
    pub sent: u64,
    /// Failed.
    pub failed: u64,
}

/// A paused account.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Paused {
    /// The account.
    pub account: String,
    /// Why, in words for the user.
    pub reason: String,
    /// Since when.
    #[serde(serialize_with = "ser")]
    pub since: SystemTime,
    /// When one message will be tried as a probe; `None`: only when resumed.
    #[serde(serialize_with = "ser_opt")]
    pub until: Option<SystemTime>,
}
