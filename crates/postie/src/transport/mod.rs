//! The async SMTP transport: tokio sockets and rustls around the sans-IO
//! [`ClientSession`] of `postie-proto`.
//!
//! The driver owns one socket and feeds every byte it reads to the session,
//! which keeps the one persistent read buffer (pipelined replies arrive
//! together). On `StartTls` it runs the handshake and tells the session,
//! which drops whatever was buffered before and repeats EHLO. Each wait is
//! bounded by the RFC 5321 §4.5.3.2 timeout the session names.

pub mod cert;
mod tls;

pub use tls::client_config as tls_config;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use postie_proto::address::Domain;
use postie_proto::client::{
    BodyType, ClientConfig, ClientSession, Envelope, Event, TimeoutKind, TransactionResult,
    TranscriptLine,
};
use postie_proto::error::{SessionError, Stage};
use postie_proto::reply::Reply;
use postie_proto::sasl::{Credentials, Mechanism};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

pub use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::message::OutgoingMessage;
use crate::provider::TlsMode;
use cert::{CertInfo, InspectOnly};

/// A receiver of transcript lines (`-v`). Lines arrive already redacted.
pub type TranscriptSink = Arc<dyn Fn(&TranscriptEntry) + Send + Sync>;

/// One line of the transcript.
#[derive(Clone, Debug, Serialize)]
pub struct TranscriptEntry {
    /// Time since the connection started.
    #[serde(serialize_with = "ser_millis")]
    pub elapsed: Duration,
    /// `sent`, `received` or `note`.
    pub direction: &'static str,
    /// True inside TLS.
    pub tls: bool,
    /// The line, with secrets redacted.
    pub text: String,
}

fn ser_millis<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

impl TranscriptEntry {
    /// The swaks-style prefix: `->`/`<-` in plain text, `~>`/`<~` inside
    /// TLS, `***` for postie's own notes.
    pub fn prefix(&self) -> &'static str {
        match (self.direction, self.tls) {
            ("sent", false) => "->",
            ("sent", true) => "~>",
            ("received", false) => "<-",
            ("received", true) => "<~",
            _ => "***",
        }
    }
}

/// How long to wait for a server. The defaults suit a submission client
/// that someone waits for: a server that does not answer is reported within
/// a minute, where RFC 5321 §4.5.3.2 gives an MTA 5 to 10 minutes.
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// TCP connect and TLS handshake [30 s].
    pub connect: Duration,
    /// Each reply (greeting, EHLO, AUTH, MAIL, RCPT, DATA) [60 s]; `None`:
    /// the RFC 5321 values.
    pub command: Option<Duration>,
    /// The reply after the end of the message, while the server checks it
    /// (large messages are scanned) [3 minutes, or `command` when longer].
    pub end_of_data: Duration,
}

impl Timeouts {
    /// Every wait bounded by `limit` (`--timeout`): connect, each reply; the
    /// end of a message gets at least the default.
    pub fn all(limit: Duration) -> Timeouts {
        Timeouts {
            connect: limit,
            command: Some(limit),
            end_of_data: limit.max(Timeouts::default().end_of_data),
        }
    }

    /// How long to wait for `what`.
    fn for_reply(&self, what: Option<TimeoutKind>) -> Duration {
        let rfc = || Duration::from_secs(what.unwrap_or(TimeoutKind::Other).default_secs());
        match what {
            Some(TimeoutKind::DataTermination) => {
                self.end_of_data.max(self.command.unwrap_or_default())
            }
            _ => self.command.unwrap_or_else(rfc),
        }
    }
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            command: Some(Duration::from_secs(60)),
            end_of_data: Duration::from_secs(180),
        }
    }
}

/// Everything needed to open an authenticated session.
#[derive(Clone)]
pub struct ConnectOptions {
    /// Where to connect.
    pub endpoint: Endpoint,
    /// Credentials; `None` sends no AUTH.
    pub credentials: Option<Credentials>,
    /// Force a SASL mechanism instead of choosing from the server's offer.
    pub mechanism: Option<Mechanism>,
    /// EHLO name; default: this host's name when it is a domain, else an address literal.
    pub ehlo_name: Option<String>,
    /// Transcript receiver.
    pub transcript: Option<TranscriptSink>,
    /// Timeouts.
    pub timeouts: Timeouts,
    /// Put the message body in the transcript, line by line, instead of a
    /// note giving its size.
    pub show_body: bool,
    /// The TLS client configuration to use; `None` builds one from the
    /// platform's roots and the endpoint's CA file (a blocking read: async
    /// callers that connect often build it once with [`tls_config`]).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Told the octets of the body written so far and the body's size, as
    /// each piece goes out (a progress bar for a large attachment).
    pub progress: Option<BodyProgress>,
}

/// See [`ConnectOptions::progress`]: `(written, total)` octets.
pub type BodyProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

impl ConnectOptions {
    /// Options for `endpoint` with no credentials and default timeouts.
    pub fn new(endpoint: Endpoint) -> ConnectOptions {
        ConnectOptions {
            endpoint,
            credentials: None,
            mechanism: None,
            ehlo_name: None,
            transcript: None,
            timeouts: Timeouts::default(),
            show_body: false,
            tls_config: None,
            progress: None,
        }
    }
}

/// What a finished connection learned about the TLS session.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsInfo {
    /// Protocol version, e.g. `TLSv1.3`.
    pub version: Option<String>,
    /// Cipher suite.
    pub cipher: Option<String>,
    /// The server's certificate, when it could be read.
    pub certificate: Option<CertInfo>,
}

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Upgrading,
}

impl Io {
    async fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(b).await,
            Io::Tls(s) => s.write_all(b).await,
            Io::Upgrading => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
    async fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Io::Plain(s) => s.flush().await,
            Io::Tls(s) => s.flush().await,
            Io::Upgrading => Ok(()),
        }
    }
    async fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(b).await,
            Io::Tls(s) => s.read(b).await,
            Io::Upgrading => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// An open SMTP session, ready for transactions.
pub struct Connection {
    io: Io,
    session: ClientSession,
    opts: ConnectOptions,
    started: tokio::time::Instant,
    tls_info: Option<TlsInfo>,
    mechanism: Option<Mechanism>,
    read_buf: Vec<u8>,
    reusable: bool,
}

/// The lines of a body for the transcript, from pieces that may end in
/// the middle of a line.
#[derive(Default)]
struct BodyLines {
    partial: Vec<u8>,
}

impl BodyLines {
    /// The lines that `piece` completes (all that is left when `last`).
    fn push(&mut self, piece: &[u8], last: bool) -> Vec<String> {
        self.partial.extend_from_slice(piece);
        let mut lines = Vec::new();
        let mut start = 0;
        while let Some(at) = self.partial[start..].windows(2).position(|w| w == b"\r\n") {
            lines.push(String::from_utf8_lossy(&self.partial[start..start + at]).into_owned());
            start += at + 2;
        }
        self.partial.drain(..start);
        if last && !self.partial.is_empty() {
            lines.push(String::from_utf8_lossy(&self.partial).into_owned());
            self.partial.clear();
        }
        lines
    }
}

impl Connection {
    /// Connect, read the greeting, EHLO, STARTTLS when required, and
    /// authenticate when credentials are given.
    pub async fn connect(opts: ConnectOptions) -> Result<Connection> {
        Connection::open(opts, None).await
    }

    /// Connect without trusting the certificate, only to see it: greeting,
    /// EHLO, STARTTLS when the endpoint uses it, then QUIT. Credentials in
    /// `opts` are dropped, so nothing secret crosses such a connection.
    /// For diagnosing a refused certificate (`postie doctor`).
    pub async fn inspect_tls(mut opts: ConnectOptions) -> Result<TlsInfo> {
        opts.credentials = None;
        let conn = Connection::open(opts, Some(InspectOnly::config())).await?;
        let info = conn.tls_info.clone().unwrap_or_default();
        conn.quit().await;
        Ok(info)
    }

    async fn open(
        opts: ConnectOptions,
        tls_override: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<Connection> {
        let ep = &opts.endpoint;
        ep.check_plaintext()?;
        let tls_config = match (ep.tls, tls_override.or(opts.tls_config.clone())) {
            (TlsMode::None, _) => None,
            (_, Some(cfg)) => Some(cfg),
            (_, None) => Some(tls::client_config(ep.ca_file.as_deref())?),
        };
        let started = tokio::time::Instant::now();
        let note = |text: String| {
            if let Some(t) = &opts.transcript {
                t(&TranscriptEntry {
                    elapsed: started.elapsed(),
                    direction: "note",
                    tls: false,
                    text,
                });
            }
        };
        note(format!("Trying {}...", ep.authority()));
        let tcp = tokio::time::timeout(
            opts.timeouts.connect,
            TcpStream::connect((ep.host.as_str(), ep.port)),
        )
        .await
        .map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                format!(
                    "connecting to {} timed out after {}s (a firewall may drop SMTP traffic)",
                    ep.authority(),
                    opts.timeouts.connect.as_secs()
                ),
            )
        })?
        .map_err(|e| connect_error(ep, e))?;
        let _ = tcp.set_nodelay(true);
        let local = tcp.local_addr().ok();
        if let Ok(peer) = tcp.peer_addr() {
            note(format!("Connected to {peer}."));
        }
        let ehlo = ehlo_domain(opts.ehlo_name.as_deref(), local.map(|a| a.ip()))?;
        let mut io = Io::Plain(tcp);
        let mut tls_info = None;
        if ep.tls == TlsMode::Implicit {
            let (stream, info) = handshake(
                tcp_of(&mut io),
                ep,
                tls_config.clone().expect("TLS config for implicit TLS"),
                opts.timeouts.connect,
                false,
            )
            .await?;
            note(tls_note(&info));
            tls_info = Some(info);
            io = Io::Tls(Box::new(stream));
        }
        let allow_plaintext_auth = ep.tls == TlsMode::None && ep.is_loopback();
        let session = ClientSession::new(ClientConfig {
            ehlo_domain: ehlo,
            tls: match ep.tls {
                TlsMode::Implicit => postie_proto::client::TlsMode::Implicit,
                TlsMode::Starttls => postie_proto::client::TlsMode::StartTls,
                TlsMode::None => postie_proto::client::TlsMode::None,
            },
            allow_plaintext_auth,
            credentials: opts.credentials.clone(),
            preferred_mechanism: opts.mechanism.clone(),
            server_host: ep.tls_name.clone().unwrap_or_else(|| ep.host.clone()),
            server_port: ep.port,
            pipelining: true,
            chunking: true,
        });
        let mut conn = Connection {
            io,
            session,
            opts,
            started,
            tls_info,
            mechanism: None,
            read_buf: vec![0u8; 64 * 1024],
            reusable: true,
        };
        let tls_config = tls_config;
        loop {
            match conn.next_event(tls_config.as_ref()).await? {
                Event::Ready => return Ok(conn),
                Event::Authenticated { mechanism } => conn.mechanism = Some(mechanism),
                Event::Failed(e) => return Err(session_error(e, &conn.opts.endpoint)),
                Event::Closed => return Err(closed_error(&conn.opts.endpoint, "during login")),
                _ => {}
            }
        }
    }

    /// The SASL mechanism used to authenticate, if any.
    pub fn mechanism(&self) -> Option<&Mechanism> {
        self.mechanism.as_ref()
    }

    /// TLS details, when the connection is encrypted.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.tls_info.as_ref()
    }

    /// The server's capabilities after the last EHLO.
    pub fn capabilities(&self) -> Option<&postie_proto::capability::Capabilities> {
        self.session.capabilities()
    }

    /// Send one message; the result reports each recipient. A refused
    /// recipient is a result, not an error; an error means the session
    /// failed (the connection is then unusable).
    pub async fn send(&mut self, msg: &OutgoingMessage) -> Result<TransactionResult> {
        self.transaction(msg, false).await
    }

    /// Send one message and end the session: QUIT leaves with the body
    /// (pipelined), so a one-shot send costs no round trip for it. The
    /// result is the transaction's; what happens to the QUIT after it is
    /// not an error (the mail is sent).
    pub async fn send_and_quit(mut self, msg: &OutgoingMessage) -> Result<TransactionResult> {
        let result = self.transaction(msg, true).await?;
        self.until_closed().await;
        Ok(result)
    }

    /// Send several messages in turn, each result handed to `report` with
    /// its index as it comes, in order. With PIPELINING and DATA, each
    /// message's MAIL, RCPT and DATA leave in the same flight as the
    /// previous body's `.` (one round trip per message); with CHUNKING and
    /// PIPELINING every message is one flight already.
    ///
    /// An error ends the run and belongs to the first message not reported:
    /// only that message's body can have reached the server; no later
    /// message's body was sent. A refused recipient or body is a result, not
    /// an error.
    pub async fn send_many(
        &mut self,
        msgs: &[&OutgoingMessage],
        report: &mut (dyn FnMut(usize, TransactionResult) + Send),
    ) -> Result<()> {
        if msgs.is_empty() {
            return Ok(());
        }
        // The message whose body the session may ask for: the last started.
        let mut current = self.start(msgs[0]).await?;
        let (mut next, mut done) = (1, 0);
        // A message refused before anything of it was sent (too large for
        // the server's SIZE, ...): reported once those before it are.
        let mut refused: Option<Error> = None;
        loop {
            match self.next_event(None).await? {
                Event::BodyWanted => {
                    let more = next < msgs.len() && refused.is_none();
                    self.write_body(&current, more).await?;
                    if more && self.session.can_start_transaction() {
                        match self.start(msgs[next]).await {
                            Ok(m) => {
                                current = m;
                                next += 1;
                            }
                            Err(e) => refused = Some(e),
                        }
                    }
                }
                Event::TransactionDone(result) => {
                    let delivered = result.is_delivered();
                    report(done, result);
                    done += 1;
                    let last = done == msgs.len() || (refused.is_some() && done == next);
                    if last {
                        if !delivered {
                            // RSET is in flight; the connection is reusable
                            // once it is answered.
                            self.reusable = matches!(self.wait_ready().await, Ok(true));
                        }
                        return refused.map_or(Ok(()), Err);
                    }
                }
                Event::Ready if done == next && next < msgs.len() && refused.is_none() => {
                    match self.start(msgs[next]).await {
                        Ok(m) => {
                            current = m;
                            next += 1;
                        }
                        Err(e) => return Err(e),
                    }
                }
                Event::Failed(e) => return Err(session_error(e, &self.opts.endpoint)),
                Event::Closed => {
                    return Err(closed_error(&self.opts.endpoint, "during the transaction")
                        .with_stage(self.session.stage()));
                }
                _ => {}
            }
        }
    }

    /// Starts one message's transaction: MAIL and RCPT (and DATA) are
    /// queued, to leave with the next flush. Returns the message as it
    /// will be sent.
    async fn start(&mut self, msg: &OutgoingMessage) -> Result<OutgoingMessage> {
        // RFC 6152 §3: to a server without 8BITMIME, 8-bit parts go in
        // quoted-printable (read into memory: such servers are rare, and
        // their SIZE limits small).
        let msg = if msg.is_8bit() && !self.capabilities().is_some_and(|c| c.eightbitmime()) {
            let body = msg.body.clone();
            let bytes =
                crate::blocking::unblock(move || crate::message::to_seven_bit(&body.to_vec()?))
                    .await?;
            tracing::debug!(
                "the server does not offer 8BITMIME: 8-bit parts sent as quoted-printable"
            );
            OutgoingMessage {
                body: crate::message::Body::from_bytes(bytes),
                ..msg.clone()
            }
        } else {
            msg.clone()
        };
        let env = Envelope {
            from: Some(msg.from.clone()),
            to: msg.recipients.clone(),
            smtputf8: msg.needs_smtputf8(),
        };
        let body = if msg.is_8bit() {
            BodyType::EightBit
        } else {
            BodyType::SevenBit
        };
        self.session
            .start_transaction(env, Some(msg.body.wire_len()), body)
            .map_err(|e| session_error(e, &self.opts.endpoint))?;
        Ok(msg)
    }

    /// One transaction. A message refused before any of it left (too
    /// large for the server's SIZE, needing SMTPUTF8 it lacks) leaves a
    /// ready connection as it was; any other error, or a session that was
    /// not ready for a transaction, leaves it unusable.
    async fn transaction(
        &mut self,
        msg: &OutgoingMessage,
        quit: bool,
    ) -> Result<TransactionResult> {
        let msg = match self.start(msg).await {
            Ok(m) => m,
            Err(e) => {
                if !self.session.can_start_transaction() {
                    self.reusable = false;
                }
                return Err(e);
            }
        };
        let result = self.run_transaction(&msg, quit).await;
        if result.is_err() {
            self.reusable = false;
        }
        result
    }

    async fn run_transaction(
        &mut self,
        msg: &OutgoingMessage,
        quit: bool,
    ) -> Result<TransactionResult> {
        if quit {
            self.session.quit_after_transaction();
        }
        loop {
            match self.next_event(None).await? {
                Event::BodyWanted => self.write_body(msg, false).await?,
                Event::TransactionDone(result) => {
                    // After a failed transaction the session has an RSET in
                    // flight; wait for Ready so the connection can be reused.
                    // The result stands whatever happens to the RSET.
                    if !result.is_delivered() && !quit {
                        self.reusable = matches!(self.wait_ready().await, Ok(true));
                    }
                    return Ok(result);
                }
                Event::Failed(e) => return Err(session_error(e, &self.opts.endpoint)),
                Event::Closed => {
                    return Err(closed_error(&self.opts.endpoint, "during the transaction")
                        .with_stage(self.session.stage()));
                }
                _ => {}
            }
        }
    }

    /// The message body, piece by piece as the body reads it (files are
    /// never held whole), each piece flushed before the next is read.
    /// `hold_last`: the last piece waits in the session's buffer for what
    /// the caller queues next (the next message's envelope), to leave with
    /// it.
    async fn write_body(&mut self, msg: &OutgoingMessage, hold_last: bool) -> Result<()> {
        let mut reader = msg.body.reader();
        let mut shown = self.opts.show_body.then(BodyLines::default);
        let mut next = reader.next_piece().await?;
        if next.is_none() {
            self.session
                .write_body(&[], true)
                .map_err(|e| session_error(e, &self.opts.endpoint))?;
        }
        let total = msg.body.len();
        let mut written = 0u64;
        while let Some(piece) = next {
            let after = reader.next_piece().await?;
            written += piece.len() as u64;
            if let Some(lines) = shown.as_mut() {
                for line in lines.push(&piece, after.is_none()) {
                    self.emit_line(line);
                }
            }
            self.session
                .write_body(&piece, after.is_none())
                .map_err(|e| session_error(e, &self.opts.endpoint))?;
            if after.is_some() || !hold_last {
                self.flush_transmit().await?;
            }
            if let Some(p) = &self.opts.progress {
                p(written, total);
            }
            next = after;
        }
        Ok(())
    }

    /// False once the connection cannot carry another transaction.
    pub fn is_reusable(&self) -> bool {
        self.reusable
    }

    async fn wait_ready(&mut self) -> Result<bool> {
        loop {
            match self.next_event(None).await? {
                Event::Ready => return Ok(true),
                Event::Failed(_) | Event::Closed => return Ok(false),
                _ => {}
            }
        }
    }

    /// Send RSET and wait for its reply: the session is then as after
    /// EHLO (and AUTH). `postie doctor` ends its AUTH check this way.
    pub async fn reset(&mut self) -> Result<()> {
        self.session.reset();
        match self.wait_ready().await? {
            true => Ok(()),
            false => Err(closed_error(&self.opts.endpoint, "after RSET")),
        }
    }

    /// Say QUIT and close. Errors are ignored: the mail is already sent.
    pub async fn quit(mut self) {
        self.session.quit();
        self.until_closed().await;
    }

    /// Read until QUIT's reply or the close, for at most 5 s.
    async fn until_closed(&mut self) {
        let wait = Duration::from_secs(5);
        let _ = tokio::time::timeout(wait, async {
            loop {
                match self.next_event(None).await {
                    Ok(Event::Closed) | Err(_) | Ok(Event::Failed(_)) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
    }

    fn note(&self, text: String) {
        if let Some(t) = &self.opts.transcript {
            t(&TranscriptEntry {
                elapsed: self.started.elapsed(),
                direction: "note",
                tls: self.session.is_tls(),
                text,
            });
        }
    }

    /// One line of the message as sent (`--show-body`).
    fn emit_line(&self, line: String) {
        if let Some(t) = &self.opts.transcript {
            t(&TranscriptEntry {
                elapsed: self.started.elapsed(),
                direction: "sent",
                tls: self.session.is_tls(),
                text: line,
            });
        }
    }

    fn emit(&self, line: &TranscriptLine) {
        if let Some(t) = &self.opts.transcript {
            use postie_proto::client::Direction;
            t(&TranscriptEntry {
                elapsed: self.started.elapsed(),
                direction: match line.dir {
                    Direction::Sent => "sent",
                    Direction::Received => "received",
                    Direction::Note => "note",
                },
                tls: line.tls,
                text: line.text.clone(),
            });
        }
    }

    async fn flush_transmit(&mut self) -> Result<()> {
        let mut wrote = false;
        while let Some(bytes) = self.session.poll_transmit() {
            let r = self.io.write_all(&bytes).await;
            r.map_err(|e| io_error(&self.opts.endpoint, e).with_stage(self.session.stage()))?;
            wrote = true;
        }
        if wrote {
            self.io
                .flush()
                .await
                .map_err(|e| io_error(&self.opts.endpoint, e))?;
        }
        Ok(())
    }

    async fn next_event(
        &mut self,
        tls_config: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Event> {
        loop {
            // Queued bytes leave only when the session must wait for the
            // server (below), or when the body writer flushes: everything
            // queued meanwhile (a pipelined group with its body) goes in one
            // write. Split into several, the server may answer in several
            // small writes, and Nagle's algorithm on its side then holds the
            // last reply until our delayed ACK.
            if let Some(ev) = self.session.poll_event() {
                match ev {
                    Event::Transcript(line) => self.emit(&line),
                    Event::StartTls => {
                        let cfg = tls_config.cloned().ok_or_else(|| {
                            Error::new(ErrorKind::Protocol, "STARTTLS requested outside login")
                        })?;
                        let tcp = tcp_of(&mut self.io);
                        let (stream, info) = handshake(
                            tcp,
                            &self.opts.endpoint,
                            cfg,
                            self.opts.timeouts.connect,
                            true,
                        )
                        .await?;
                        self.io = Io::Tls(Box::new(stream));
                        self.session.tls_established();
                        self.note(tls_note(&info));
                        self.tls_info = Some(info);
                    }
                    Event::Failed(e) => {
                        // The session has queued its QUIT: say it before
                        // the caller gives the connection up.
                        let _ = self.flush_transmit().await;
                        return Ok(Event::Failed(e));
                    }
                    other => return Ok(other),
                }
                continue;
            }
            self.flush_transmit().await?;
            let expected = self.session.expected_timeout();
            let wait = self.opts.timeouts.for_reply(expected);
            let stage = self.session.stage();
            let ep = &self.opts.endpoint;
            let greeting = expected == Some(TimeoutKind::Greeting);
            let n = tokio::time::timeout(wait, self.io.read(&mut self.read_buf))
                .await
                .map_err(|_| {
                    silent(ep, wait, greeting && ep.tls == TlsMode::Starttls).with_stage(stage)
                })?
                .map_err(|e| io_error(ep, e).with_stage(stage))?;
            if n == 0 {
                if greeting {
                    // Accepted and closed at once: the server turns
                    // connections away (busy, rate limit, this address
                    // blocked) or is no SMTP server. An implicit-TLS port
                    // does not do that: it waits for the handshake.
                    return Err(Error::new(
                        ErrorKind::Unavailable,
                        format!(
                            "{} closed the connection before its greeting",
                            ep.authority()
                        ),
                    )
                    .with_stage(stage));
                }
                return Err(closed_error(ep, "unexpectedly").with_stage(stage));
            }
            let data = self.read_buf[..n].to_vec();
            self.session
                .handle_input(&data)
                .map_err(|e| session_error(e, &self.opts.endpoint))?;
        }
    }
}

fn tcp_of(io: &mut Io) -> TcpStream {
    match std::mem::replace(io, Io::Upgrading) {
        Io::Plain(s) => s,
        _ => unreachable!("TLS is started only once, on a plain connection"),
    }
}

async fn handshake(
    tcp: TcpStream,
    ep: &Endpoint,
    cfg: Arc<rustls::ClientConfig>,
    limit: Duration,
    after_starttls: bool,
) -> Result<(TlsStream<TcpStream>, TlsInfo)> {
    let name = ep.tls_name.clone().unwrap_or_else(|| ep.host.clone());
    let server_name = rustls_pki_types::ServerName::try_from(name.clone()).map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!("'{name}' is not a valid TLS server name"),
        )
    })?;
    let stream = tokio::time::timeout(limit, TlsConnector::from(cfg).connect(server_name, tcp))
        .await
        .map_err(|_| {
            if after_starttls {
                Error::new(
                    ErrorKind::Tls,
                    format!(
                        "{} agreed to STARTTLS, then did not finish the TLS handshake within {} s",
                        ep.authority(),
                        limit.as_secs()
                    ),
                )
                .with_finding("tls-starttls-stalled")
            } else {
                Error::new(
                    ErrorKind::Tls,
                    format!(
                        "TLS handshake with {} timed out (is this a plain or STARTTLS port used as implicit TLS?)",
                        ep.authority()
                    ),
                )
                .with_finding("tls-not-implicit")
            }
        })?
        .map_err(|e| tls::handshake_error(e, &ep.authority(), &name, after_starttls))?;
    let (_, conn) = stream.get_ref();
    let info = TlsInfo {
        version: conn.protocol_version().map(|v| {
            v.as_str()
                .map(|s| s.replace('_', "."))
                .unwrap_or_else(|| format!("{v:?}"))
        }),
        cipher: conn
            .negotiated_cipher_suite()
            .map(|c| format!("{:?}", c.suite())),
        certificate: conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|der| CertInfo::parse(der)),
    };
    Ok((stream, info))
}

fn tls_note(info: &TlsInfo) -> String {
    format!(
        "TLS started with {} {}",
        info.version.as_deref().unwrap_or("?"),
        info.cipher.as_deref().unwrap_or("")
    )
}

fn ehlo_domain(explicit: Option<&str>, local: Option<IpAddr>) -> Result<Domain> {
    if let Some(n) = explicit {
        return n
            .parse::<Domain>()
            .map_err(|e| Error::new(ErrorKind::Config, format!("invalid EHLO name '{n}': {e}")));
    }
    let host = gethostname::gethostname().to_string_lossy().into_owned();
    if host.contains('.')
        && let Ok(d) = host.parse::<Domain>()
    {
        return Ok(d);
    }
    // RFC 5321 §4.1.4: without a fully qualified name, use an address literal.
    let literal = match local {
        Some(IpAddr::V4(v4)) => format!("[{v4}]"),
        Some(IpAddr::V6(v6)) => format!("[IPv6:{v6}]"),
        None => "[127.0.0.1]".to_string(),
    };
    literal
        .parse::<Domain>()
        .map_err(|e| Error::new(ErrorKind::Config, format!("invalid EHLO literal: {e}")))
}

/// A server that stopped answering. Silence where a STARTTLS server's
/// greeting belongs is the mark of an implicit-TLS port: the server waits
/// for a TLS handshake the client does not start.
fn silent(ep: &Endpoint, waited: Duration, no_greeting: bool) -> Error {
    if no_greeting {
        return Error::new(
            ErrorKind::Tls,
            format!(
                "{} sent no greeting within {} s: the port most likely expects implicit TLS \
                 (usually 465), and STARTTLS was asked for",
                ep.authority(),
                waited.as_secs()
            ),
        );
    }
    Error::new(
        ErrorKind::Transient,
        format!(
            "{} did not answer within {} s",
            ep.authority(),
            waited.as_secs()
        ),
    )
}

fn connect_error(ep: &Endpoint, e: std::io::Error) -> Error {
    let why = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => {
            "connection refused (nothing listens on that port, or a firewall rejects it)"
                .to_string()
        }
        std::io::ErrorKind::TimedOut => "timed out".to_string(),
        _ if e.to_string().contains("failed to lookup")
            || e.to_string().contains("Name or service") =>
        {
            format!("the host name '{}' cannot be resolved", ep.host)
        }
        _ => e.to_string(),
    };
    Error::new(
        ErrorKind::Unavailable,
        format!("cannot connect to {}: {why}", ep.authority()),
    )
}

fn io_error(ep: &Endpoint, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Transient,
        format!("the connection to {} failed: {e}", ep.authority()),
    )
}

fn closed_error(ep: &Endpoint, when: &str) -> Error {
    Error::new(
        ErrorKind::Transient,
        format!("{} closed the connection {when}", ep.authority()),
    )
}

/// Map a session failure to the library's error, classifying by stage and
/// reply (RFC 3463 classes, RFC 4954 AUTH codes, provider quirks).
pub fn session_error(e: SessionError, ep: &Endpoint) -> Error {
    let stage = e.stage();
    let reply = e.reply().cloned();
    let kind = match &e {
        SessionError::StartTlsNotOffered
        | SessionError::StartTlsRefused { .. }
        | SessionError::PlaintextAuthRefused => ErrorKind::Tls,
        SessionError::MessageTooLarge { .. }
        | SessionError::EightBitMimeNotSupported
        | SessionError::BinaryMimeNotSupported => ErrorKind::Message,
        SessionError::AuthOnlyAfterTls => ErrorKind::Tls,
        // Nothing to log in with on this port: the server's side, not a
        // setting of ours (unless the port is wrong: the explanation says).
        SessionError::NoCommonMechanism { offered } if offered.is_empty() => ErrorKind::Unavailable,
        SessionError::NoCommonMechanism { .. } | SessionError::Sasl(_) => ErrorKind::Config,
        SessionError::ConnectionClosed { .. } => ErrorKind::Transient,
        _ => match &reply {
            Some(r) => classify(r, Some(stage)),
            None if e.is_transient() => ErrorKind::Transient,
            None => ErrorKind::Protocol,
        },
    };
    let msg = format!("{e} ({})", ep.authority());
    let sasl = e.sasl_server_error().cloned();
    let finding = match &e {
        SessionError::AuthOnlyAfterTls => Some("auth-after-tls"),
        SessionError::NoCommonMechanism { offered } if offered.is_empty() => {
            Some("no-auth-offered")
        }
        _ => None,
    };
    let mut err = Error::new(kind, msg).with_stage(stage).with_source(e);
    if let Some(id) = finding {
        err = err.with_finding(id);
    }
    if let Some(r) = reply {
        err = err.with_reply(r);
    }
    if let Some(s) = sasl {
        err = err.with_sasl(s);
    }
    err
}

/// Classify a negative reply at a stage.
pub fn classify(r: &Reply, stage: Option<Stage>) -> ErrorKind {
    let enh = r.enhanced.map(|e| e.to_string()).unwrap_or_default();
    if enh == "5.4.5" {
        // Gmail's daily quota: permanent by class, but it resets within 24 h.
        return ErrorKind::Transient;
    }
    if r.is_transient() {
        return ErrorKind::Transient;
    }
    match (r.code, stage) {
        (534 | 535, _) => ErrorKind::Credentials,
        (530, _) | (538, _) | (504, Some(Stage::Auth)) | (501, Some(Stage::Auth)) => {
            ErrorKind::Config
        }
        (552, _) => ErrorKind::Message,
        // RFC 3463 X.6.X (media, content) and X.3.4 (too big): the message
        // itself, whatever the code.
        _ if enh.starts_with("5.6.") || enh == "5.3.4" => ErrorKind::Message,
        (_, Some(Stage::Greeting)) => ErrorKind::Unavailable,
        (_, Some(Stage::Ehlo)) => ErrorKind::Protocol,
        _ if enh == "5.7.30" => ErrorKind::Credentials,
        _ => ErrorKind::Rejected,
    }
}

#[cfg(test)]
mod tests {
    use super::{BodyLines, TimeoutKind, Timeouts};
    use std::time::Duration;

    /// A submission client waits a minute for a reply,
    /// not RFC 5321's five; `--timeout` bounds every wait but the server's
    /// check of a whole message.
    #[test]
    fn submission_timeouts() {
        let d = Timeouts::default();
        assert_eq!(d.connect, Duration::from_secs(30));
        for k in [TimeoutKind::Greeting, TimeoutKind::Mail, TimeoutKind::Other] {
            assert_eq!(d.for_reply(Some(k)), Duration::from_secs(60), "{k:?}");
        }
        assert_eq!(
            d.for_reply(Some(TimeoutKind::DataTermination)),
            Duration::from_secs(180)
        );
        let t = Timeouts::all(Duration::from_secs(5));
        assert_eq!(t.connect, Duration::from_secs(5));
        assert_eq!(
            t.for_reply(Some(TimeoutKind::Greeting)),
            Duration::from_secs(5)
        );
        assert_eq!(
            t.for_reply(Some(TimeoutKind::DataTermination)),
            Duration::from_secs(180)
        );
        let long = Timeouts::all(Duration::from_secs(600));
        assert_eq!(
            long.for_reply(Some(TimeoutKind::DataTermination)),
            Duration::from_secs(600)
        );
    }

    #[test]
    fn body_lines_join_pieces_that_split_a_line_or_its_crlf() {
        let mut l = BodyLines::default();
        assert_eq!(l.push(b"Subject: a\r\nTo: b", false), ["Subject: a"]);
        assert_eq!(l.push(b"@x\r", false), Vec::<String>::new());
        assert_eq!(l.push(b"\n\r\nbody", false), ["To: b@x", ""]);
        assert_eq!(l.push(b" end\r\n", true), ["body end"]);
        let mut l = BodyLines::default();
        assert_eq!(l.push(b"no newline", true), ["no newline"]);
    }
}
