//! The library's error type: a kind that says what class of failure it is
//! (what a retrying caller and an exit code need) plus the server's reply,
//! kept whole, when there was one.

use std::fmt;

use postie_proto::error::Stage;
use postie_proto::reply::Reply;
use postie_proto::sasl::SaslServerError;

mod oauth;

pub use oauth::OAuthErrorInfo;

/// The class of a failure. Each maps to one sysexits.h code in the CLI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The caller asked for something impossible (bad flag combination).
    Usage,
    /// The configuration is wrong or incomplete.
    Config,
    /// The message itself is bad (unparseable, too large, no recipients).
    Message,
    /// The server could not be reached (DNS, refused, timed out).
    Unavailable,
    /// TLS failed: handshake, certificate verification, STARTTLS missing.
    Tls,
    /// The server said something postie cannot work with.
    Protocol,
    /// The server refused the credentials.
    Credentials,
    /// A temporary failure: trying again later can succeed.
    Transient,
    /// The server permanently refused the message or the sender.
    Rejected,
    /// The secret store could not be read or written.
    Secret,
    /// A local I/O failure (the outbox, a spool, running a command).
    Io,
    /// A file or stream given to send (an attachment, a body file, a raw
    /// message) cannot be read.
    Input,
}

impl ErrorKind {
    /// A short lowercase name, used in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Usage => "usage",
            ErrorKind::Config => "configuration",
            ErrorKind::Message => "message",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Tls => "tls",
            ErrorKind::Protocol => "protocol",
            ErrorKind::Credentials => "credentials",
            ErrorKind::Transient => "transient",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Secret => "secret-store",
            ErrorKind::Io => "io",
            ErrorKind::Input => "input",
        }
    }
}

/// An error from postie's library. Boxed inside, so results stay small.
#[derive(Debug)]
pub struct Error(Box<Inner>);

#[derive(Debug)]
struct Inner {
    kind: ErrorKind,
    message: String,
    reply: Option<Reply>,
    stage: Option<Stage>,
    sasl: Option<SaslServerError>,
    oauth: Option<OAuthErrorInfo>,
    finding: Option<&'static str>,
    retry_after: Option<std::time::Duration>,
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Error {
    /// A new error of `kind` with a message that says what is wrong and,
    /// where one exists, what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error(Box::new(Inner {
            kind,
            message: message.into(),
            reply: None,
            stage: None,
            sasl: None,
            oauth: None,
            finding: None,
            retry_after: None,
            source: None,
        }))
    }

    /// Attach the server reply that caused this error.
    pub fn with_reply(mut self, reply: Reply) -> Error {
        self.0.reply = Some(reply);
        self
    }

    /// Attach the protocol stage the session was in.
    pub fn with_stage(mut self, stage: Stage) -> Error {
        self.0.stage = Some(stage);
        self
    }

    /// Attach the decoded SASL error challenge (XOAUTH2 / OAUTHBEARER JSON).
    pub fn with_sasl(mut self, sasl: SaslServerError) -> Error {
        self.0.sasl = Some(sasl);
        self
    }

    /// Attach the OAuth error an authorization server answered (token
    /// endpoint, device polling, or the redirect back from consent).
    pub fn with_oauth(mut self, info: OAuthErrorInfo) -> Error {
        self.0.oauth = Some(info);
        self
    }

    /// Name the explanation catalog's finding for this error, where the
    /// code that made it knows the cause better than its kind says (a port
    /// already in use is not an unreachable server). `explain` uses it
    /// when there is no server reply to go by.
    pub fn with_finding(mut self, id: &'static str) -> Error {
        self.0.finding = Some(id);
        self
    }

    /// How long the server asked to wait before trying again (an HTTP API's
    /// `Retry-After`).
    pub fn with_retry_after(mut self, wait: std::time::Duration) -> Error {
        self.0.retry_after = Some(wait);
        self
    }

    /// The wait given with [`Error::with_retry_after`].
    pub fn retry_after(&self) -> Option<std::time::Duration> {
        self.0.retry_after
    }

    /// The finding named with [`Error::with_finding`].
    pub fn finding(&self) -> Option<&'static str> {
        self.0.finding
    }

    /// Attach the underlying cause.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Error {
        self.0.source = Some(Box::new(source));
        self
    }

    /// What class of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message alone, without the server's reply.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// The server reply, all lines, when the failure came from the server.
    pub fn reply(&self) -> Option<&Reply> {
        self.0.reply.as_ref()
    }

    /// The SMTP stage at which it failed, when known.
    pub fn stage(&self) -> Option<Stage> {
        self.0.stage
    }

    /// The decoded SASL error challenge, for OAuth failures.
    pub fn sasl(&self) -> Option<&SaslServerError> {
        self.0.sasl.as_ref()
    }

    /// The authorization server's OAuth error, for token failures.
    pub fn oauth(&self) -> Option<&OAuthErrorInfo> {
        self.0.oauth.as_ref()
    }

    /// True when trying again later can succeed without any change.
    pub fn is_transient(&self) -> bool {
        matches!(self.0.kind, ErrorKind::Transient | ErrorKind::Unavailable)
    }

    /// True when the server refused the credentials.
    pub fn is_auth(&self) -> bool {
        self.0.kind == ErrorKind::Credentials
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)?;
        if let Some(src) = &self.0.source {
            let s = src.to_string();
            if !self.0.message.contains(&s) {
                write!(f, ": {s}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0
            .source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
