//! Session errors, and the error types of the other modules in one place.
//!
//! [`SessionError`] carries the stage and, when the server caused it, the
//! whole [`Reply`] so that a caller can explain every line of it.

use std::fmt;

use thiserror::Error;

pub use crate::address::AddressError;
pub use crate::reply::ReplyError;
pub use crate::sasl::SaslError;

use crate::reply::Reply;
use crate::sasl::{Mechanism, SaslServerError};

/// Where in the SMTP dialogue something happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// Waiting for the server's greeting.
    Greeting,
    /// EHLO.
    Ehlo,
    /// HELO, after EHLO was not recognised.
    Helo,
    /// STARTTLS and the TLS handshake.
    StartTls,
    /// AUTH and its challenges.
    Auth,
    /// Between transactions.
    Idle,
    /// MAIL FROM.
    Mail,
    /// RCPT TO.
    Rcpt,
    /// DATA, up to the 354.
    Data,
    /// The message body (DATA content or BDAT chunks) and its final reply.
    Body,
    /// RSET.
    Rset,
    /// QUIT.
    Quit,
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Greeting => "greeting",
            Stage::Ehlo => "EHLO",
            Stage::Helo => "HELO",
            Stage::StartTls => "STARTTLS",
            Stage::Auth => "AUTH",
            Stage::Idle => "idle",
            Stage::Mail => "MAIL FROM",
            Stage::Rcpt => "RCPT TO",
            Stage::Data => "DATA",
            Stage::Body => "message body",
            Stage::Rset => "RSET",
            Stage::Quit => "QUIT",
        })
    }
}

/// A failure of the SMTP session, or a request the session cannot carry out.
#[derive(Clone, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum SessionError {
    /// The greeting was not 2yz (typically `554`: no service).
    #[error("the server refused the connection: {reply}")]
    GreetingRefused {
        /// The greeting.
        reply: Reply,
    },
    /// `421`: the server is closing the connection.
    #[error("the server is closing the connection during {stage}: {reply}")]
    ServerClosing {
        /// Where it happened.
        stage: Stage,
        /// The 421 reply.
        reply: Reply,
    },
    /// A reply the protocol does not allow at this point.
    #[error("unexpected reply to {stage}: {reply}")]
    UnexpectedReply {
        /// Where it happened.
        stage: Stage,
        /// The reply.
        reply: Reply,
    },
    /// TLS is required, and the server does not offer STARTTLS.
    #[error("the server does not offer STARTTLS, and TLS is required; not continuing in plaintext")]
    StartTlsNotOffered,
    /// STARTTLS was refused.
    #[error("the server refused STARTTLS: {reply}")]
    StartTlsRefused {
        /// The reply.
        reply: Reply,
    },
    /// Credentials would travel without TLS, which was not allowed.
    #[error("refusing to send credentials over a connection without TLS")]
    PlaintextAuthRefused,
    /// The connection is plain text, the server offers STARTTLS and no
    /// AUTH: it offers AUTH only over TLS (as RFC 4954 §4 advises).
    #[error("the server offers AUTH only after STARTTLS, and this connection is plain text")]
    AuthOnlyAfterTls,
    /// None of the offered mechanisms fits the credentials.
    #[error("{}", no_common_mechanism(offered))]
    NoCommonMechanism {
        /// What the server offered.
        offered: Vec<Mechanism>,
    },
    /// The SASL client could not be set up.
    #[error(transparent)]
    Sasl(#[from] SaslError),
    /// The server refused the authentication.
    #[error("authentication with {mechanism} failed: {reply}")]
    AuthFailed {
        /// The mechanism used.
        mechanism: Mechanism,
        /// The final reply, all lines.
        reply: Reply,
        /// The decoded error challenge (XOAUTH2, OAUTHBEARER) when one came;
        /// boxed to keep the error small.
        server_error: Option<Box<SaslServerError>>,
    },
    /// The exchange was cancelled with `*` because a challenge made no sense.
    #[error("authentication with {mechanism} cancelled ({reason}): {reply}")]
    AuthAborted {
        /// The mechanism used.
        mechanism: Mechanism,
        /// Why it was cancelled.
        reason: String,
        /// The server's reply to the cancellation.
        reply: Reply,
    },
    /// The message exceeds the server's SIZE limit; nothing was sent.
    #[error("the message is {size} bytes; the server accepts at most {limit}")]
    MessageTooLarge {
        /// The message size.
        size: u64,
        /// The server's limit.
        limit: u64,
    },
    /// The envelope needs SMTPUTF8, which the server does not offer.
    #[error("the addresses need SMTPUTF8, which the server does not offer")]
    SmtpUtf8NotSupported,
    /// The body is 8-bit, and the server does not offer 8BITMIME.
    #[error("the message has 8-bit content, and the server does not offer 8BITMIME")]
    EightBitMimeNotSupported,
    /// The body is binary, and the server does not offer BINARYMIME with
    /// CHUNKING (or chunking is turned off).
    #[error("the message is binary, and the server does not offer BINARYMIME with CHUNKING")]
    BinaryMimeNotSupported,
    /// A transaction needs at least one recipient.
    #[error("no recipients")]
    NoRecipients,
    /// The call is not possible in the session's current state.
    #[error("not possible now: the session is at {stage}")]
    NotReady {
        /// Where the session is.
        stage: Stage,
    },
    /// The bytes from the server are not SMTP.
    #[error("bad reply during {stage}: {error}")]
    Protocol {
        /// Where it happened.
        stage: Stage,
        /// What is wrong.
        error: ReplyError,
    },
    /// The connection ended.
    #[error("the connection closed during {stage}")]
    ConnectionClosed {
        /// Where it happened.
        stage: Stage,
    },
}

fn no_common_mechanism(offered: &[Mechanism]) -> String {
    if offered.is_empty() {
        return "the server offers no AUTH mechanisms".into();
    }
    let list: Vec<String> = offered.iter().map(Mechanism::to_string).collect();
    format!(
        "none of the server's AUTH mechanisms fits the credentials (offered: {})",
        list.join(" ")
    )
}

impl SessionError {
    /// The stage the error belongs to.
    pub fn stage(&self) -> Stage {
        match self {
            SessionError::GreetingRefused { .. } => Stage::Greeting,
            SessionError::ServerClosing { stage, .. }
            | SessionError::UnexpectedReply { stage, .. }
            | SessionError::NotReady { stage }
            | SessionError::Protocol { stage, .. }
            | SessionError::ConnectionClosed { stage } => *stage,
            SessionError::StartTlsNotOffered | SessionError::StartTlsRefused { .. } => {
                Stage::StartTls
            }
            SessionError::PlaintextAuthRefused
            | SessionError::AuthOnlyAfterTls
            | SessionError::NoCommonMechanism { .. }
            | SessionError::Sasl(_)
            | SessionError::AuthFailed { .. }
            | SessionError::AuthAborted { .. } => Stage::Auth,
            SessionError::MessageTooLarge { .. }
            | SessionError::SmtpUtf8NotSupported
            | SessionError::EightBitMimeNotSupported
            | SessionError::BinaryMimeNotSupported
            | SessionError::NoRecipients => Stage::Mail,
        }
    }

    /// The server reply behind the error, all lines, when there is one.
    pub fn reply(&self) -> Option<&Reply> {
        match self {
            SessionError::GreetingRefused { reply }
            | SessionError::ServerClosing { reply, .. }
            | SessionError::UnexpectedReply { reply, .. }
            | SessionError::StartTlsRefused { reply }
            | SessionError::AuthFailed { reply, .. }
            | SessionError::AuthAborted { reply, .. } => Some(reply),
            _ => None,
        }
    }

    /// The decoded SASL error challenge, for OAuth failures.
    pub fn sasl_server_error(&self) -> Option<&SaslServerError> {
        match self {
            SessionError::AuthFailed { server_error, .. } => server_error.as_deref(),
            _ => None,
        }
    }

    /// True when trying again later can succeed: a 4yz reply, the server
    /// closing (421), or the connection dropping.
    pub fn is_transient(&self) -> bool {
        match self {
            SessionError::ServerClosing { .. } | SessionError::ConnectionClosed { .. } => true,
            _ => self.reply().is_some_and(Reply::is_transient),
        }
    }

    /// True for a 5yz reply.
    pub fn is_permanent(&self) -> bool {
        self.reply().is_some_and(Reply::is_permanent)
    }

    /// True for authentication problems: refused credentials, no usable
    /// mechanism, credentials withheld without TLS.
    pub fn is_auth(&self) -> bool {
        self.stage() == Stage::Auth
    }

    /// True for TLS problems: STARTTLS missing or refused.
    pub fn is_tls(&self) -> bool {
        self.stage() == Stage::StartTls
    }
}
