//! The server session: a sans-IO state machine for one SMTP connection, as
//! seen from the receiving side.
//!
//! Bytes from the socket go in through [`ServerSession::handle_input`];
//! replies come out of [`ServerSession::poll_transmit`], and what the client
//! asked for comes out of [`ServerSession::poll_event`]. The session answers
//! syntax, sequencing and limits by itself; the host decides the rest
//! (who may authenticate, which addresses are taken, when a message is
//! committed) through [`ServerSession::decide`] and
//! [`ServerSession::auth_result`]. It never touches a socket or a clock: the
//! host keeps time and calls [`ServerSession::timeout`].
//!
//! The session is liberal in names (any EHLO word, an address as the EHLO
//! argument) and strict in framing: only CRLF ends a command line, and only
//! `CRLF.CRLF` ends DATA. A body holding a bare CR is refused as a whole,
//! and so is one with a bare LF unless
//! [`ServerConfig::normalize_bare_lf`] stores it as CRLF; either way nothing
//! can be smuggled behind a lenient end of data (CVE-2023-51764 and
//! friends). DATA and BDAT store the same octets for the same message: the
//! rule is written once, in the `data` module's documentation.
//!
//! ```
//! use postie_proto::reply::Reply;
//! use postie_proto::server::{Event, ServerConfig, ServerSession};
//!
//! let mut s = ServerSession::new(ServerConfig::new("mx.example"), false);
//! assert!(s.poll_transmit().unwrap().starts_with(b"220 mx.example "));
//! s.handle_input(b"EHLO me\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
//! assert!(matches!(s.poll_event(), Some(Event::Helo { .. })));
//! assert!(matches!(s.poll_event(), Some(Event::MailFrom(_))));
//! // RCPT waits, still buffered, until MAIL is decided (RFC 2920).
//! assert!(s.poll_event().is_none());
//! s.decide(Reply::new(250, "2.1.0 OK"));
//! assert!(matches!(s.poll_event(), Some(Event::RcptTo(_))));
//! s.decide(Reply::new(250, "2.1.5 OK"));
//! let out = String::from_utf8(s.poll_transmit().unwrap()).unwrap();
//! assert!(out.ends_with("250 2.1.0 OK\r\n250 2.1.5 OK\r\n"));
//! ```

use secrecy::SecretString;

use crate::address::Address;
use crate::reply::Reply;
use crate::sasl::Mechanism;

pub use crate::client::BodyType;

mod auth;
mod command;
mod config;
mod data;
mod envelope;
mod session;

pub use config::{CannedReplies, ServerConfig};
pub use session::ServerSession;

pub use crate::command::MAX_COMMAND_LINE;

/// Longest line in an AUTH exchange including CRLF (RFC 4954 §4). An
/// `AUTH` command with an initial response may be this long too: clients
/// put long XOAUTH2 tokens there, and RFC 4954's 512-octet rule for them is
/// widely ignored.
pub const MAX_AUTH_LINE: usize = 12288;

/// Message bytes are reported in [`Event::Data`] pieces of about this size.
pub const DATA_PIECE: usize = 64 * 1024;

/// What the session reports to the host.
#[derive(Clone, Debug)]
pub enum Event {
    /// EHLO (`extended`) or HELO was accepted. Informational.
    Helo {
        /// The client's argument: usually a host name, but anything without
        /// control characters is taken (scripts send an address).
        name: String,
        /// True for EHLO.
        extended: bool,
    },
    /// STARTTLS was accepted and `220 2.0.0 Ready to start TLS` is queued.
    /// Flush the transmit buffer, run the TLS handshake, then call
    /// [`ServerSession::tls_established`]. Bytes that followed the STARTTLS
    /// line have been discarded (RFC 3207 §4.2; CVE-2011-0411).
    StartTls,
    /// The client authenticates; answer with [`ServerSession::auth_result`].
    Auth(AuthRequest),
    /// MAIL FROM; answer with [`ServerSession::decide`].
    MailFrom(MailRequest),
    /// RCPT TO; answer with [`ServerSession::decide`].
    RcptTo(RcptRequest),
    /// A piece of the message: unstuffed (DATA) or raw (BDAT), CRLF kept.
    Data(Vec<u8>),
    /// The message is complete; commit it durably, then answer with
    /// [`ServerSession::decide`] (250 only once it is safe).
    DataEnd(DataSummary),
    /// The message was refused and the refusal already answered (once the
    /// end of the data was reached). Discard what [`Event::Data`] brought;
    /// no decision is needed.
    DataRejected(DataRejection),
    /// RSET, a new EHLO/HELO, STARTTLS, or the session closing by itself
    /// (timeout, shutdown) during a transaction: the transaction is gone.
    Reset,
    /// QUIT: `221 2.0.0 Bye` is queued; flush and close.
    Quit,
}

/// An AUTH exchange that reached its credentials.
#[derive(Clone, Debug)]
pub struct AuthRequest {
    /// The mechanism used.
    pub mechanism: Mechanism,
    /// Who the client says it is, and its secret.
    pub identity: AuthIdentity,
}

/// The credentials from an AUTH exchange. `Debug` shows the names and never
/// the secret.
#[derive(Clone, Debug)]
pub enum AuthIdentity {
    /// PLAIN (RFC 4616) and LOGIN.
    Password {
        /// The identity to act as, when the client named one other than
        /// `username` (PLAIN only).
        authzid: Option<String>,
        /// The user name.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// XOAUTH2 and OAUTHBEARER (RFC 7628).
    Bearer {
        /// `user=` (XOAUTH2) or the GS2 `a=` authzid (OAUTHBEARER); empty
        /// when an OAUTHBEARER client named none and the token alone says
        /// who it is.
        user: String,
        /// The access token.
        token: SecretString,
        /// OAUTHBEARER `host=`.
        host: Option<String>,
        /// OAUTHBEARER `port=`.
        port: Option<u16>,
    },
}

impl AuthIdentity {
    /// The user name: `username` or `user`; not a secret.
    pub fn user(&self) -> &str {
        match self {
            AuthIdentity::Password { username, .. } => username,
            AuthIdentity::Bearer { user, .. } => user,
        }
    }
}

/// The host's answer to [`Event::Auth`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Authenticated; typically `235 2.7.0 Accepted`. The session records
    /// the user (see [`ServerSession::authenticated`]) when the code is 2yz.
    Accepted(Reply),
    /// Refused; typically `535 5.7.8 …`.
    Rejected(Reply),
    /// The bearer-token error flow of XOAUTH2 and OAUTHBEARER (RFC 7628
    /// §3.2.2): send `334 base64(challenge)`, read the client's one line
    /// (empty for XOAUTH2, `AQ==` for OAUTHBEARER; anything is taken),
    /// then send `then`.
    BearerError {
        /// The JSON error, e.g. `{"status":"401","schemes":"bearer","scope":"…"}`.
        challenge: String,
        /// The final reply, e.g. `535 5.7.8 Username and Password not accepted`.
        then: Reply,
    },
}

/// A MAIL FROM command that passed the session's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailRequest {
    /// The reverse path; `None` is `<>`.
    pub reverse_path: Option<Address>,
    /// `SIZE=` (RFC 1870), already checked against the limit.
    pub size: Option<u64>,
    /// `BODY=`; [`BodyType::SevenBit`] when absent.
    pub body: BodyType,
    /// The `SMTPUTF8` parameter (RFC 6531).
    pub smtputf8: bool,
}

/// A RCPT TO command that passed the session's checks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RcptRequest {
    /// The recipient.
    pub forward_path: Address,
}

/// What the session saw of a complete message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DataSummary {
    /// Message octets, as reported in [`Event::Data`].
    pub bytes: u64,
    /// Some octet was 0x80 or above. Taken even without `BODY=8BITMIME`
    /// (as Postfix does; Python's `send_message` never declares it), so the
    /// host can declare `BODY=8BITMIME` when it relays.
    pub eight_bit: bool,
    /// The `BODY=` the client declared.
    pub declared: BodyType,
}

/// Why a message was refused after its data; the first problem found wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataRejection {
    /// A bare CR or LF (RFC 5321 §2.3.8).
    BareNewline,
    /// A NUL octet.
    Nul,
    /// A line longer than [`ServerConfig::max_data_line`].
    LineTooLong,
    /// More octets than [`ServerConfig::max_message_size`].
    TooLarge,
}

#[cfg(test)]
mod tests;
