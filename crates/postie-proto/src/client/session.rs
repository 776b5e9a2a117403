//! The session core: input, output, reply dispatch and closing. The opening
//! dialogue is in `opening.rs`, transactions in `transaction.rs`.

use std::collections::VecDeque;
use std::fmt;

use super::opening::AuthState;
use super::transaction::Transaction;
use super::{ClientConfig, Direction, Event, SessionError, Stage, TimeoutKind, TlsMode};
use super::{TranscriptLine, transaction};
use crate::capability::Capabilities;
use crate::command::Command;
use crate::reply::{Reply, ReplyParser};

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

/// A client SMTP session. See the [module documentation](super).
pub struct ClientSession {
    pub(super) cfg: ClientConfig,
    pub(super) tls: bool,
    rx: Vec<u8>,
    pub(super) tx: Vec<u8>,
    pub(super) events: VecDeque<Event>,
    pub(super) expect: VecDeque<Expect>,
    pub(super) phase: Phase,
    pub(super) caps: Option<Capabilities>,
    pub(super) auth: Option<AuthState>,
    pub(super) txn: Option<Transaction>,
    /// With PIPELINING and DATA: the previous transaction, whose body and
    /// `.` are sent and whose final reply is still to come, while the next
    /// one is already under way (RFC 2920: the `.` and the next MAIL, RCPT
    /// and DATA in one flight). Its reply comes first, replies being in
    /// order.
    pub(super) finishing: Option<Transaction>,
    pub(super) discard_body: bool,
    /// QUIT goes right after the body of the transaction in progress
    /// ([`ClientSession::quit_after_transaction`]).
    pub(super) quit_after: bool,
}

/// Shows the state, never the buffers: the transmit buffer can hold an AUTH
/// line with credentials.
impl fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSession")
            .field("phase", &self.phase)
            .field("tls", &self.tls)
            .field("expect", &self.expect)
            .field("capabilities", &self.caps)
            .field("pending_input", &self.rx.len())
            .field("pending_output", &self.tx.len())
            .field("pending_events", &self.events.len())
            .finish_non_exhaustive()
    }
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
            finishing: None,
            discard_body: false,
            quit_after: false,
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
                    self.finishing = None;
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

    /// Ends the session after the transaction in progress, without a round
    /// trip of its own: QUIT is written right after the body, in the same
    /// flight (RFC 2920 allows QUIT last in a pipelined group), and the
    /// transaction's result still comes as [`Event::TransactionDone`], then
    /// [`Event::Closed`]. Without PIPELINING, QUIT follows the
    /// transaction's last reply; with no transaction in progress, it is
    /// [`ClientSession::quit`].
    pub fn quit_after_transaction(&mut self) {
        if self.txn.is_some() {
            self.quit_after = true;
        } else {
            self.begin_quit();
        }
    }

    /// After the last octet of a body: the pipelined QUIT, when asked for
    /// and the server pipelines.
    pub(super) fn body_sent(&mut self) {
        let pipelined =
            self.cfg.pipelining && self.caps.as_ref().is_some_and(|c| c.supports_pipelining());
        if self.quit_after && pipelined && !self.expect.contains(&Expect::Quit) {
            self.send(Command::Quit, Expect::Quit);
        }
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

    /// True when [`ClientSession::start_transaction`] may be called now:
    /// the session is idle, or, with PIPELINING and DATA, the body of the
    /// transaction in progress has been written whole and only its final
    /// reply is awaited. In the second case the next MAIL, RCPT and DATA
    /// go in the same flight as the previous body's `.`, and the previous
    /// transaction's [`Event::TransactionDone`] still comes first.
    pub fn can_start_transaction(&self) -> bool {
        self.phase == Phase::Ready
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

    // ---- output helpers shared with opening.rs and transaction.rs ----

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
            self.finishing = None;
            self.events.push_back(Event::Closed);
        }
    }

    pub(super) fn begin_quit(&mut self) {
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
        self.quit_after = false;
        self.phase = Phase::Quitting;
        self.send(Command::Quit, Expect::Quit);
    }

    // ---- replies ----

    fn on_reply(&mut self, reply: Reply) {
        let Some(expect) = self.expect.pop_front() else {
            return self.unsolicited(reply);
        };
        if self.phase == Phase::Quitting {
            match expect {
                Expect::Quit => self.closed(),
                // QUIT went behind a finished body: its result still counts.
                Expect::DataEnd if self.finishing.is_some() => self.on_data_end(reply),
                _ => {}
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
}
