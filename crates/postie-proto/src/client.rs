//! The client session: a sans-IO state machine for one SMTP connection.
//!
//! Bytes from the socket go in through [`ClientSession::handle_input`];
//! bytes to write come out of [`ClientSession::poll_transmit`], and what
//! happened comes out of [`ClientSession::poll_event`]. The session never
//! touches a socket or a clock: [`ClientSession::expected_timeout`] says which
//! RFC 5321 timeout applies, and the driver keeps time.

use std::fmt;

use crate::address::{Address, Domain};
use crate::capability::Capabilities;
use crate::reply::Reply;
use crate::sasl::{Credentials, Mechanism};

pub use crate::error::{SessionError, Stage};

mod opening;
mod session;
mod transaction;

pub use session::ClientSession;

/// How the connection gets TLS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TlsMode {
    /// TLS from the first byte (port 465, RFC 8314); the driver has done the
    /// handshake before creating the session.
    Implicit,
    /// STARTTLS is required (RFC 3207). The session never continues in
    /// plaintext when the server does not offer it.
    StartTls,
    /// No TLS.
    None,
}

/// Session settings.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The EHLO argument.
    pub ehlo_domain: Domain,
    /// How TLS is obtained.
    pub tls: TlsMode,
    /// Allow AUTH without TLS (for test servers only).
    pub allow_plaintext_auth: bool,
    /// Authenticate with these, when given.
    pub credentials: Option<Credentials>,
    /// A mechanism to use when the server offers it (see [`crate::sasl::choose`]).
    pub preferred_mechanism: Option<Mechanism>,
    /// The server's host name, for OAUTHBEARER's `host=`.
    pub server_host: String,
    /// The server's port, for OAUTHBEARER's `port=`.
    pub server_port: u16,
    /// Use PIPELINING when offered (RFC 2920).
    pub pipelining: bool,
    /// Use BDAT when CHUNKING is offered (RFC 3030).
    pub chunking: bool,
}

impl ClientConfig {
    /// Settings for a STARTTLS submission session on port 587, without
    /// credentials, using PIPELINING and CHUNKING when offered.
    pub fn new(ehlo_domain: Domain) -> ClientConfig {
        ClientConfig {
            ehlo_domain,
            tls: TlsMode::StartTls,
            allow_plaintext_auth: false,
            credentials: None,
            preferred_mechanism: None,
            server_host: String::new(),
            server_port: 587,
            pipelining: true,
            chunking: true,
        }
    }
}

/// The direction of a transcript line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Sent by the client.
    Sent,
    /// Received from the server.
    Received,
    /// A note in place of data that is not shown (the message body, discarded
    /// bytes).
    Note,
}

/// One line of the dialogue, secrets already redacted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Who sent it.
    pub dir: Direction,
    /// Whether TLS was active.
    pub tls: bool,
    /// The line without its CRLF.
    pub text: String,
}

impl fmt::Display for TranscriptLine {
    /// `C: EHLO …`, `S: 250 …`, `-- <message body: 12 bytes>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.dir {
            Direction::Sent => "C:",
            Direction::Received => "S:",
            Direction::Note => "--",
        };
        write!(f, "{tag} {}", self.text)
    }
}

/// What the session reports.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// A line sent or received, in order.
    Transcript(TranscriptLine),
    /// The server's greeting.
    Greeting(Reply),
    /// The capabilities from an EHLO (or HELO) reply; again after STARTTLS.
    Capabilities(Capabilities),
    /// STARTTLS was accepted: run the TLS handshake, then call
    /// [`ClientSession::tls_established`].
    StartTls,
    /// Authentication succeeded.
    Authenticated {
        /// The mechanism used.
        mechanism: Mechanism,
    },
    /// A transaction can start.
    Ready,
    /// Send the body with [`ClientSession::write_body`].
    BodyWanted,
    /// A transaction ended, delivered or not.
    TransactionDone(TransactionResult),
    /// The session is over: QUIT was answered or the server closed.
    Closed,
    /// The session failed; it cannot carry on. A QUIT may still be queued:
    /// keep transmitting until [`Event::Closed`], or drop the connection.
    Failed(SessionError),
}

/// The sender and recipients of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The reverse path; `None` is `<>`.
    pub from: Option<Address>,
    /// The recipients.
    pub to: Vec<Address>,
    /// Request SMTPUTF8 even for ASCII addresses (a UTF-8 message header).
    pub smtputf8: bool,
}

impl Envelope {
    /// An envelope; SMTPUTF8 is added when an address needs it.
    pub fn new(from: Option<Address>, to: Vec<Address>) -> Envelope {
        Envelope {
            from,
            to,
            smtputf8: false,
        }
    }

    /// True when MAIL must carry `SMTPUTF8`.
    pub fn needs_smtputf8(&self) -> bool {
        self.smtputf8
            || self.from.as_ref().is_some_and(Address::needs_smtputf8)
            || self.to.iter().any(Address::needs_smtputf8)
    }
}

/// What the body contains, which decides `BODY=` and the framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BodyType {
    /// ASCII only.
    #[default]
    SevenBit,
    /// 8-bit text lines: `BODY=8BITMIME` (RFC 6152).
    EightBit,
    /// Arbitrary bytes: `BODY=BINARYMIME`, sent with BDAT unchanged (RFC 3030).
    Binary,
}

/// The outcome for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientResult {
    /// The recipient.
    pub address: Address,
    /// The reply to its RCPT; `None` when RCPT was not sent because MAIL
    /// was refused.
    pub reply: Option<Reply>,
    /// True when RCPT got a 2yz reply.
    pub accepted: bool,
}

/// The outcome of one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TransactionResult {
    /// The reply to MAIL.
    pub mail: Reply,
    /// One entry per recipient, in envelope order.
    pub recipients: Vec<RecipientResult>,
    /// The reply that ended the data phase: the final reply after the body,
    /// or the refusal of DATA or of a BDAT chunk. `None` when no data
    /// command was answered (MAIL refused, or no recipient accepted).
    pub data: Option<Reply>,
}

impl TransactionResult {
    /// The recipients the server accepted.
    pub fn accepted(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| r.accepted)
    }

    /// The recipients the server refused (or that were never tried).
    pub fn rejected(&self) -> impl Iterator<Item = &RecipientResult> {
        self.recipients.iter().filter(|r| !r.accepted)
    }

    /// True when the server took responsibility for the message for at least
    /// one recipient: MAIL, some RCPT and the final data reply are all 2yz.
    pub fn is_delivered(&self) -> bool {
        self.mail.is_completion()
            && self.accepted().next().is_some()
            && self.data.as_ref().is_some_and(Reply::is_completion)
    }
}

/// The RFC 5321 §4.5.3.2 timeout for what the session waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TimeoutKind {
    /// The greeting: 5 minutes.
    Greeting,
    /// The reply to MAIL: 5 minutes.
    Mail,
    /// The reply to RCPT: 5 minutes.
    Rcpt,
    /// The 354 after DATA: 2 minutes.
    DataInit,
    /// Each write of the body (and a non-final BDAT reply): 3 minutes.
    DataBlock,
    /// The reply after the end of the body: 10 minutes.
    DataTermination,
    /// Any other reply: 5 minutes.
    Other,
}

impl TimeoutKind {
    /// The RFC's minimum, in seconds.
    pub fn default_secs(self) -> u64 {
        match self {
            TimeoutKind::DataInit => 2 * 60,
            TimeoutKind::DataBlock => 3 * 60,
            TimeoutKind::DataTermination => 10 * 60,
            TimeoutKind::Greeting | TimeoutKind::Mail | TimeoutKind::Rcpt | TimeoutKind::Other => {
                5 * 60
            }
        }
    }
}
