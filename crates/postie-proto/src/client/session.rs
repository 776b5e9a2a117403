//! The session core: input, output, the opening dialogue (greeting, EHLO,
//! STARTTLS, AUTH) and closing. Transactions are in `transaction.rs`.

use std::collections::VecDeque;

use secrecy::{ExposeSecret, SecretString};

use super::transaction::Transaction;
use super::{ClientConfig, Direction, Event, SessionError, Stage, TimeoutKind, TlsMode};
use super::{TranscriptLine, transaction};
use crate::capability::Capabilities;
use crate::command::{Command, MAX_COMMAND_LINE, redacted};
use crate::reply::{Reply, ReplyParser};
use crate::sasl::{self, Credentials, ResponseNote, SaslClient, SaslServerError, SaslStep};

/// More challenges than any supported mechanism needs means a confused or
/// hostile server; the exchange is cancelled.
const MAX_CHALLENGES: usize = 8;

/// What a sent command waits for. Replies come in the order the commands
/// were sent (RFC 2920 §3.1), so a queue of these pairs each reply with its
/// command, pipelined or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Expect {
    Greeting,
    Ehlo,
    Helo,
    StartTls,
    AuthContinue,
    Mail,
    Rcpt(usize),
    DataGo,
    DataEnd,
    Bdat { last: bool },
    Rset,
    Quit,
}

impl Expect {
    fn stage(self) -> Stage {
        match self {
            Expect::Greeting => Stage::Greeting,
            Expect::Ehlo => Stage::Ehlo,
            Expect::Helo => Stage::Helo,
            Expect::StartTls => Stage::StartTls,
            Expect::AuthContinue => Stage::Auth,
            Expect::Mail => Stage::Mail,
            Expect::Rcpt(_) => Stage::Rcpt,
            Expect::DataGo => Stage::Data,
            Expect::DataEnd | Expect::Bdat { .. } => Stage::Body,
            Expect::Rset => Stage::Rset,
            Expect::Quit => Stage::Quit,
        }
    }

    fn timeout(self) -> TimeoutKind {
        match self {
            Expect::Greeting => TimeoutKind::Greeting,
            Expect::Mail => TimeoutKind::Mail,
            Expect::Rcpt(_) => TimeoutKind::Rcpt,
            Expect::DataGo => TimeoutKind::DataInit,
            Expect::DataEnd | Expect::Bdat { last: true } => TimeoutKind::DataTermination,
            Expect::Bdat { last: false } => TimeoutKind::DataBlock,
            _ => TimeoutKind::Other,
        }
    }

    /// Sending QUIT behind this would be misread: before the greeting, as
    /// TLS or SASL data, or as message content after a 354.
    fn blocks_quit(self) -> bool {
        matches!(
            self,
            Expect::Greeting | Expect::StartTls | Expect::AuthContinue | Expect::DataGo
        )
    }
}

/// Where the session is; the [`Expect`] queue says which reply is next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Greeting, EHLO/HELO, STARTTLS, AUTH.
    Opening,
    /// STARTTLS accepted; the driver runs the handshake.
    AwaitingTlsHandshake,
    /// Idle between transactions.
    Ready,
    /// A transaction is under way.
    Transaction,
    /// RSET sent after a failed transaction or on request.
    Resetting,
    /// QUIT sent; remaining replies are read and ignored.
    Quitting,
    /// Over.
    Closed,
}

#[derive(Debug)]
struct AuthState {
    sasl: SaslClient,
    server_error: Option<SaslServerError>,
    aborted: Option<String>,
    challenges: usize,
}

/// A client SMTP session. See the [module documentation](super).
#[derive(Debug)]
pub struct ClientSession {
    pub(super) cfg: ClientConfig,
    pub(super) tls: bool,
    rx: Vec<u8>,
    pub(super) tx: Vec<u8>,
    pub(super) events: VecDeque<Event>,
    pub(super) expect: VecDeque<Expect>,
    pub(super) phase: Phase,
    pub(super) caps: Option<Capabilities>,
    auth: Option<AuthState>,
    pub(super) txn: Option<Transaction>,
    pub(super) discard_body: bool,
}

impl ClientSession {
    /// A session waiting for the greeting. With [`TlsMode::Implicit`] the
    /// connection is already TLS.
    pub fn new(cfg: ClientConfig) -> ClientSession {
        ClientSession {
            tls: cfg.tls == TlsMode::Implicit,
            cfg,
            rx: Vec::new(),
            tx: Vec::new(),
            events: VecDeque::new(),
            expect: VecDeque::from([Expect::Greeting]),
            phase: Phase::Opening,
            caps: None,
            auth: None,
            txn: None,
            discard_body: false,
        }
    }

    /// Feeds bytes read from the connection; they may hold part of a reply
    /// or several pipelined replies.
    ///
    /// Returns an error only when the bytes are not SMTP at all; the session
    /// is then over (no further events, nothing more to send). Everything
    /// the server says, refusals included, comes out as events.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        match self.phase {
            Phase::Closed => return Ok(()),
            Phase::AwaitingTlsHandshake => {
                self.discard_plaintext(bytes.len());
                return Ok(());
            }
            _ => {}
        }
        self.rx.extend_from_slice(bytes);
        loop {
            match ReplyParser::parse(&self.rx) {
                Ok(None) => break,
                Ok(Some((reply, used))) => {
                    self.transcript_raw(used);
                    self.rx.drain(..used);
                    self.on_reply(reply);
                }
                Err(error) => {
                    let stage = self.stage();
                    self.phase = Phase::Closed;
                    self.rx.clear();
                    self.tx.clear();
                    self.txn = None;
                    return Err(SessionError::Protocol { stage, error });
                }
            }
            match self.phase {
                Phase::Closed => {
                    self.rx.clear();
                    break;
                }
                Phase::AwaitingTlsHandshake => {
                    // Anything after the 220 was sent before TLS and may be
                    // an injected reply (CVE-2011-0411): never read it.
                    let n = self.rx.len();
                    self.discard_plaintext(n);
                    self.rx.clear();
                    break;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The connection reached end of file.
    pub fn handle_eof(&mut self) {
        match self.phase {
            Phase::Closed => {}
            Phase::Quitting => self.closed(),
            _ => {
                let stage = self.stage();
                self.events
                    .push_back(Event::Failed(SessionError::ConnectionClosed { stage }));
                self.closed();
            }
        }
    }

    /// Bytes to write to the connection now, if any. Pipelined commands come
    /// out together in one buffer.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| std::mem::take(&mut self.tx))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The driver finished the TLS handshake after [`Event::StartTls`].
    /// Input buffered before the handshake is discarded and EHLO is sent
    /// again (RFC 3207 §4.2: nothing learnt before TLS is kept). Does
    /// nothing in any other state.
    pub fn tls_established(&mut self) {
        if self.phase != Phase::AwaitingTlsHandshake {
            return;
        }
        let n = self.rx.len();
        self.discard_plaintext(n);
        self.rx.clear();
        self.tls = true;
        self.caps = None;
        self.phase = Phase::Opening;
        self.send_ehlo();
    }

    /// Sends RSET when the session is ready, to clear any server state
    /// between messages. Does nothing otherwise: a failed transaction is
    /// reset by the session itself, and a DATA body cannot be interrupted
    /// in-band (drop the connection instead).
    pub fn reset(&mut self) {
        if self.phase == Phase::Ready {
            self.phase = Phase::Resetting;
            self.send(Command::Rset, Expect::Rset);
        }
    }

    /// Ends the session: sends QUIT where that is safe, and reports
    /// [`Event::Closed`] at once where it is not (before the greeting, during
    /// STARTTLS or AUTH, during a DATA body), in which case the driver should
    /// just close the connection.
    pub fn quit(&mut self) {
        self.begin_quit();
    }

    /// The timeout that applies to what the session waits for now, or
    /// `None` when it waits for nothing (idle, or the TLS handshake).
    pub fn expected_timeout(&self) -> Option<TimeoutKind> {
        if self.phase == Phase::Closed {
            return None;
        }
        match self.expect.front() {
            Some(e) => Some(e.timeout()),
            None if self.txn.as_ref().is_some_and(|t| t.body_open) => Some(TimeoutKind::DataBlock),
            None => None,
        }
    }

    /// The capabilities from the latest EHLO; `None` before it and right
    /// after STARTTLS.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.caps.as_ref()
    }

    /// True when the connection is TLS.
    pub fn is_tls(&self) -> bool {
        self.tls
    }

    /// True once the session is over.
    pub fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }

    /// The stage the session is at: the oldest unanswered command, or the
    /// phase when nothing is outstanding.
    pub fn stage(&self) -> Stage {
        if let Some(e) = self.expect.front() {
            return e.stage();
        }
        match self.phase {
            Phase::Opening => Stage::Greeting,
            Phase::AwaitingTlsHandshake => Stage::StartTls,
            Phase::Ready => Stage::Idle,
            Phase::Transaction => Stage::Body,
            Phase::Resetting => Stage::Rset,
            Phase::Quitting | Phase::Closed => Stage::Quit,
        }
    }

    // ---- output helpers shared with transaction.rs ----

    pub(super) fn send(&mut self, cmd: Command, expect: Expect) {
        cmd.encode(&mut self.tx);
        self.transcript(Direction::Sent, cmd.transcript());
        self.expect.push_back(expect);
    }

    pub(super) fn transcript(&mut self, dir: Direction, text: String) {
        let tls = self.tls;
        self.events
            .push_back(Event::Transcript(TranscriptLine { dir, tls, text }));
    }

    /// One transcript line per received line, as sent; control characters
    /// are escaped so a transcript printed to a terminal cannot drive it.
    fn transcript_raw(&mut self, used: usize) {
        let raw = self.rx[..used].to_vec();
        for line in raw.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let text: String = String::from_utf8_lossy(line)
                .chars()
                .map(|c| {
                    if c.is_control() && c != '\t' {
                        format!("\\x{:02x}", u32::from(c))
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            self.transcript(Direction::Received, text);
        }
    }

    fn discard_plaintext(&mut self, n: usize) {
        if n > 0 {
            self.transcript(
                Direction::Note,
                format!("<discarded {n} bytes received before the TLS handshake>"),
            );
        }
    }

    pub(super) fn ready(&mut self) {
        self.phase = Phase::Ready;
        self.events.push_back(Event::Ready);
    }

    pub(super) fn fail(&mut self, err: SessionError) {
        self.events.push_back(Event::Failed(err));
        self.begin_quit();
    }

    pub(super) fn closed(&mut self) {
        if self.phase != Phase::Closed {
            self.phase = Phase::Closed;
            self.expect.clear();
            self.tx.clear();
            self.txn = None;
            self.events.push_back(Event::Closed);
        }
    }

    fn begin_quit(&mut self) {
        if matches!(self.phase, Phase::Closed | Phase::Quitting) {
            return;
        }
        let in_data_body = self
            .txn
            .as_ref()
            .is_some_and(|t| t.body_open && t.mode == transaction::Mode::Data);
        if self.phase == Phase::AwaitingTlsHandshake
            || in_data_body
            || self.expect.iter().any(|e| e.blocks_quit())
        {
            self.closed();
            return;
        }
        self.txn = None;
        self.discard_body = false;
        self.phase = Phase::Quitting;
        self.send(Command::Quit, Expect::Quit);
    }

    // ---- replies ----

    fn on_reply(&mut self, reply: Reply) {
        let Some(expect) = self.expect.pop_front() else {
            return self.unsolicited(reply);
        };
        if self.phase == Phase::Quitting {
            if expect == Expect::Quit {
                self.closed();
            }
            return;
        }
        if reply.code == 421 {
            let stage = expect.stage();
            self.events
                .push_back(Event::Failed(SessionError::ServerClosing { stage, reply }));
            return self.closed();
        }
        match expect {
            Expect::Greeting => self.on_greeting(reply),
            Expect::Ehlo => self.on_ehlo(reply),
            Expect::Helo => self.on_helo(reply),
            Expect::StartTls => self.on_starttls(reply),
            Expect::AuthContinue => self.on_auth(reply),
            Expect::Mail => self.on_mail(reply),
            Expect::Rcpt(i) => self.on_rcpt(i, reply),
            Expect::DataGo => self.on_data_go(reply),
            Expect::DataEnd => self.on_data_end(reply),
            Expect::Bdat { last } => self.on_bdat(last, reply),
            Expect::Rset if reply.is_completion() => self.ready(),
            Expect::Rset => self.fail(SessionError::UnexpectedReply {
                stage: Stage::Rset,
                reply,
            }),
            Expect::Quit => self.closed(),
        }
    }

    /// A reply to nothing: the server speaks out of turn.
    fn unsolicited(&mut self, reply: Reply) {
        let stage = self.stage();
        if self.phase == Phase::Quitting {
            self.closed();
        } else if reply.code == 421 {
            self.events
                .push_back(Event::Failed(SessionError::ServerClosing { stage, reply }));
            self.closed();
        } else {
            self.fail(SessionError::UnexpectedReply { stage, reply });
        }
    }

    fn on_greeting(&mut self, reply: Reply) {
        if reply.is_completion() {
            self.events.push_back(Event::Greeting(reply));
            self.send_ehlo();
        } else {
            self.fail(SessionError::GreetingRefused { reply });
        }
    }

    fn send_ehlo(&mut self) {
        let domain = self.cfg.ehlo_domain.clone();
        self.send(Command::Ehlo(domain), Expect::Ehlo);
    }

    fn on_ehlo(&mut self, reply: Reply) {
        if reply.is_completion() {
            self.got_capabilities(Capabilities::from_ehlo(&reply));
        } else if matches!(reply.code, 500 | 502) {
            // RFC 5321 §3.2: an old server that does not know EHLO.
            let domain = self.cfg.ehlo_domain.clone();
            self.send(Command::Helo(domain), Expect::Helo);
        } else {
            self.fail(SessionError::UnexpectedReply {
                stage: Stage::Ehlo,
                reply,
            });
        }
    }

    fn on_helo(&mut self, reply: Reply) {
        if reply.is_completion() {
            self.got_capabilities(Capabilities::from_helo(&reply));
        } else {
            self.fail(SessionError::UnexpectedReply {
                stage: Stage::Helo,
                reply,
            });
        }
    }

    fn got_capabilities(&mut self, caps: Capabilities) {
        self.events.push_back(Event::Capabilities(caps.clone()));
        let starttls = caps.starttls();
        self.caps = Some(caps);
        if self.cfg.tls == TlsMode::StartTls && !self.tls {
            if starttls {
                self.send(Command::StartTls, Expect::StartTls);
            } else {
                self.fail(SessionError::StartTlsNotOffered);
            }
            return;
        }
        match self.cfg.credentials.clone() {
            Some(creds) => self.begin_auth(&creds),
            None => self.ready(),
        }
    }

    fn on_starttls(&mut self, reply: Reply) {
        if reply.code == 220 {
            self.phase = Phase::AwaitingTlsHandshake;
            self.events.push_back(Event::StartTls);
        } else {
            self.fail(SessionError::StartTlsRefused { reply });
        }
    }

    fn begin_auth(&mut self, creds: &Credentials) {
        if !self.tls && !self.cfg.allow_plaintext_auth {
            return self.fail(SessionError::PlaintextAuthRefused);
        }
        let offered = self
            .caps
            .as_ref()
            .map(|c| c.auth_mechanisms().to_vec())
            .unwrap_or_default();
        let preferred = self.cfg.preferred_mechanism.as_ref();
        let Some(mechanism) = sasl::choose(&offered, creds, preferred) else {
            return self.fail(SessionError::NoCommonMechanism { offered });
        };
        let host = self.cfg.server_host.clone();
        let mut client = match SaslClient::new(mechanism.clone(), creds, &host, self.cfg.server_port)
        {
            Ok(c) => c,
            Err(e) => return self.fail(e.into()),
        };
        // RFC 4954 §4: the initial response goes on the AUTH line only if
        // the line stays within 512 octets; otherwise it follows a 334.
        let fits = client.initial_response_len().is_some_and(|n| {
            "AUTH ".len() + mechanism.name().len() + 1 + n + 2 <= MAX_COMMAND_LINE
        });
        let initial_response = if fits {
            client.initial_response()
        } else {
            None
        };
        self.send(
            Command::Auth {
                mechanism,
                initial_response,
            },
            Expect::AuthContinue,
        );
        self.auth = Some(AuthState {
            sasl: client,
            server_error: None,
            aborted: None,
            challenges: 0,
        });
    }

    fn on_auth(&mut self, reply: Reply) {
        let Some(mut st) = self.auth.take() else {
            return self.fail(SessionError::UnexpectedReply {
                stage: Stage::Auth,
                reply,
            });
        };
        let mechanism = st.sasl.mechanism().clone();
        if reply.code == 334 && st.aborted.is_none() {
            st.challenges += 1;
            let step = if st.challenges > MAX_CHALLENGES {
                SaslStep::Invalid(format!("more than {MAX_CHALLENGES} challenges"))
            } else {
                st.sasl.step(reply.lines.concat().trim())
            };
            match step {
                SaslStep::Respond(r) => self.send_auth_response(r, st.sasl.last_response_note()),
                SaslStep::ServerError { response, detail } => {
                    st.server_error = Some(detail);
                    self.send_auth_response(response, st.sasl.last_response_note());
                }
                SaslStep::Invalid(reason) => {
                    st.aborted = Some(reason);
                    self.send(Command::AuthCancel, Expect::AuthContinue);
                }
            }
            self.auth = Some(st);
        } else if reply.is_completion() && st.aborted.is_none() {
            self.events.push_back(Event::Authenticated { mechanism });
            self.ready();
        } else if reply.is_transient() || reply.is_permanent() {
            self.fail(match st.aborted {
                Some(reason) => SessionError::AuthAborted {
                    mechanism,
                    reason,
                    reply,
                },
                None => SessionError::AuthFailed {
                    mechanism,
                    reply,
                    server_error: st.server_error.map(Box::new),
                },
            });
        } else {
            self.fail(SessionError::UnexpectedReply {
                stage: Stage::Auth,
                reply,
            });
        }
    }

    fn send_auth_response(&mut self, response: SecretString, note: &ResponseNote) {
        let len = response.expose_secret().len();
        let text = match note {
            ResponseNote::Secret(what) => redacted(len, Some(what)),
            ResponseNote::ErrorAcknowledgement if len == 0 => {
                "<empty line: acknowledges the error challenge>".into()
            }
            ResponseNote::ErrorAcknowledgement => response.expose_secret().to_owned(),
            ResponseNote::None => redacted(len, None),
        };
        Command::AuthResponse(response).encode(&mut self.tx);
        self.transcript(Direction::Sent, text);
        self.expect.push_back(Expect::AuthContinue);
    }
}
