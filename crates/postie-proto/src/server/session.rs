//! The session core: input buffer, line framing, output, decisions and
//! closing. Commands are in `command.rs`, AUTH in `auth.rs`, message bodies
//! in `data.rs`.

use std::collections::VecDeque;
use std::fmt;
use std::ops::Range;

use secrecy::zeroize::Zeroize;

use super::auth::AuthStep;
use super::data::{ChunkBody, DataReader};
use super::{AuthOutcome, BodyType, DATA_PIECE, Event, ServerConfig};
use crate::reply::Reply;

/// What the session waits for.
#[derive(Debug)]
pub(super) enum State {
    /// A command line. Whether EHLO came is in `helo`.
    ExpectCommand,
    /// The client's next line in an AUTH exchange.
    ExpectAuthResponse(AuthStep),
    /// DATA content, up to `CRLF.CRLF`.
    ExpectDataLine(DataReader),
    /// The octets of a BDAT chunk; `refuse` is sent instead of accepting
    /// the chunk once it has been read (RFC 3030 §3: a refused chunk is
    /// still read).
    ExpectChunk {
        remaining: u64,
        size: u64,
        last: bool,
        refuse: Option<Reply>,
    },
    /// The host's answer to the last event.
    ExpectDecision(Pending),
    /// STARTTLS answered; the host runs the handshake.
    ExpectTlsHandshake,
    /// Over; only queued output remains.
    Closed,
}

/// The event a decision answers.
#[derive(Debug)]
pub(super) enum Pending {
    Mail { body: BodyType, smtputf8: bool },
    Rcpt,
    DataEnd,
    Auth { user: String },
}

/// A mail transaction: MAIL was accepted.
#[derive(Debug)]
pub(super) struct Transaction {
    pub(super) body: BodyType,
    pub(super) smtputf8: bool,
    pub(super) rcpts: usize,
    /// A RCPT with a well-formed path was given, accepted or not.
    pub(super) rcpt_tried: bool,
    /// BDAT chunks have started (RFC 3030: no DATA in this transaction).
    pub(super) chunks: Option<ChunkBody>,
}

/// Why a line could not be taken.
pub(super) enum LineError {
    TooLong,
    BareNewline,
}

/// A server SMTP session. See the [module documentation](super).
pub struct ServerSession {
    pub(super) cfg: ServerConfig,
    pub(super) tls: bool,
    pub(super) state: State,
    pub(super) rx: Vec<u8>,
    pub(super) rx_pos: usize,
    /// The rest of an over-long line is being skipped.
    skipping: bool,
    tx: Vec<u8>,
    pub(super) events: VecDeque<Event>,
    pub(super) helo: Option<String>,
    pub(super) user: Option<String>,
    pub(super) txn: Option<Transaction>,
    /// Message bytes not yet reported in an [`Event::Data`].
    pub(super) piece: Vec<u8>,
    pub(super) shutting_down: bool,
    /// Unknown commands so far; the session ends at
    /// [`MAX_UNKNOWN_COMMANDS`](super::command::MAX_UNKNOWN_COMMANDS).
    pub(super) unknown_commands: u32,
}

/// Shows the state, never the buffers: the input can hold AUTH credentials.
impl fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSession")
            .field("state", &self.state)
            .field("tls", &self.tls)
            .field("helo", &self.helo)
            .field("user", &self.user)
            .field("transaction", &self.txn)
            .field("pending_input", &(self.rx.len() - self.rx_pos))
            .field("pending_output", &self.tx.len())
            .field("pending_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// A session with the 220 greeting queued. `tls_active` is true on an
    /// implicit-TLS port (RFC 8314), where the handshake is already done.
    pub fn new(cfg: ServerConfig, tls_active: bool) -> ServerSession {
        let mut s = ServerSession {
            cfg,
            tls: tls_active,
            state: State::ExpectCommand,
            rx: Vec::new(),
            rx_pos: 0,
            skipping: false,
            tx: Vec::new(),
            events: VecDeque::new(),
            helo: None,
            user: None,
            txn: None,
            piece: Vec::new(),
            shutting_down: false,
            unknown_commands: 0,
        };
        let text = join_words(&s.cfg.hostname, &s.cfg.greeting);
        s.reply(&raw_reply(220, vec![text]));
        s
    }

    /// Feeds bytes read from the connection: part of a command, several
    /// pipelined commands, message data. They join one persistent buffer
    /// that is processed as far as possible; while a decision is pending
    /// ([`ServerSession::expects_decision`]) the rest stays buffered, and the
    /// host may stop reading. Ignored once closed or while the host runs the
    /// TLS handshake.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        if matches!(self.state, State::Closed | State::ExpectTlsHandshake) {
            return;
        }
        self.rx.extend_from_slice(bytes);
        self.process();
    }

    /// Bytes to write to the connection, if any; replies in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        (!self.tx.is_empty()).then(|| std::mem::take(&mut self.tx))
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Answers a pending [`Event::MailFrom`], [`Event::RcptTo`] or
    /// [`Event::DataEnd`]: the reply is sent, and a 2yz accepts. Processing
    /// of buffered input resumes. Does nothing when no such event waits.
    pub fn decide(&mut self, reply: Reply) {
        let pending = match &self.state {
            State::ExpectDecision(Pending::Mail { .. } | Pending::Rcpt | Pending::DataEnd) => {
                std::mem::replace(&mut self.state, State::ExpectCommand)
            }
            _ => return,
        };
        let accepted = reply.is_completion();
        self.reply(&reply);
        match pending {
            State::ExpectDecision(Pending::Mail { body, smtputf8 }) if accepted => {
                self.txn = Some(Transaction {
                    body,
                    smtputf8,
                    rcpts: 0,
                    rcpt_tried: false,
                    chunks: None,
                });
            }
            State::ExpectDecision(Pending::Rcpt) if accepted => {
                if let Some(t) = self.txn.as_mut() {
                    t.rcpts += 1;
                }
            }
            // RFC 5321 §4.1.1.4: the transaction ends with the reply to the
            // data, whatever it says.
            State::ExpectDecision(Pending::DataEnd) => self.txn = None,
            _ => {}
        }
        self.process();
    }

    /// Answers a pending [`Event::Auth`]. Does nothing when none waits.
    pub fn auth_result(&mut self, outcome: AuthOutcome) {
        let State::ExpectDecision(Pending::Auth { user }) = &mut self.state else {
            return;
        };
        let user = std::mem::take(user);
        self.state = State::ExpectCommand;
        match outcome {
            AuthOutcome::Accepted(reply) => {
                if reply.is_completion() {
                    self.user = Some(user);
                }
                self.reply(&reply);
            }
            AuthOutcome::Rejected(reply) => self.reply(&reply),
            AuthOutcome::BearerError { challenge, then } => {
                self.challenge(&super::auth::b64_encode(challenge.as_bytes()));
                self.state = State::ExpectAuthResponse(AuthStep::BearerErrorAck { then });
            }
        }
        self.process();
    }

    /// The host finished the TLS handshake after [`Event::StartTls`]. The
    /// session now expects a new EHLO (RFC 3207 §4.2). Does nothing in any
    /// other state.
    pub fn tls_established(&mut self) {
        if matches!(self.state, State::ExpectTlsHandshake) {
            self.tls = true;
            self.state = State::ExpectCommand;
            self.process();
        }
    }

    /// Stops gracefully: sends [`CannedReplies::shutting_down`] and closes
    /// as soon as no message is under way. A message being received or
    /// decided is finished first (its [`Event::DataEnd`] decision is still
    /// sent); so is any other pending decision. During the TLS handshake the
    /// session just closes.
    ///
    /// [`CannedReplies::shutting_down`]: super::CannedReplies::shutting_down
    pub fn shutdown(&mut self) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if matches!(self.state, State::ExpectTlsHandshake) {
            return self.close();
        }
        self.shutting_down = true;
        self.process();
    }

    /// The host's command timeout fired (RFC 5321 §4.5.3.2): sends
    /// [`CannedReplies::timeout`] and closes, whatever the state. During
    /// the TLS handshake the session just closes.
    ///
    /// [`CannedReplies::timeout`]: super::CannedReplies::timeout
    pub fn timeout(&mut self) {
        match self.state {
            State::Closed => {}
            State::ExpectTlsHandshake => self.close(),
            _ => {
                let r = self.cfg.replies.timeout.clone();
                self.reply(&r);
                self.close();
            }
        }
    }

    /// True once the session is over: flush [`ServerSession::poll_transmit`],
    /// then close the socket.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// True between an accepted MAIL and the end of its transaction.
    pub fn in_transaction(&self) -> bool {
        self.txn.is_some()
    }

    /// True when the connection is TLS.
    pub fn tls_active(&self) -> bool {
        self.tls
    }

    /// The user of a successful AUTH.
    pub fn authenticated(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The EHLO/HELO argument; `None` before EHLO and again after STARTTLS.
    pub fn helo_name(&self) -> Option<&str> {
        self.helo.as_deref()
    }

    /// True when an event waits for [`ServerSession::decide`] or
    /// [`ServerSession::auth_result`].
    pub fn expects_decision(&self) -> bool {
        matches!(self.state, State::ExpectDecision(_))
    }

    // ---- the input loop ----

    fn process(&mut self) {
        loop {
            if self.shutting_down && self.can_stop_now() {
                let r = self.cfg.replies.shutting_down.clone();
                self.reply(&r);
                self.close();
            }
            let progressed = match self.state {
                State::ExpectCommand => self.step_command(),
                State::ExpectAuthResponse(_) => self.step_auth_response(),
                State::ExpectDataLine(_) => self.step_data(),
                State::ExpectChunk { .. } => self.step_chunk(),
                State::ExpectDecision(_) | State::ExpectTlsHandshake | State::Closed => false,
            };
            if !progressed {
                break;
            }
        }
        self.flush_piece();
        if self.rx_pos > 0 {
            self.rx.drain(..self.rx_pos);
            self.rx_pos = 0;
        }
    }

    /// Shutdown may close now: no message is being received or decided.
    fn can_stop_now(&self) -> bool {
        match self.state {
            State::ExpectCommand => self.txn.as_ref().is_none_or(|t| t.chunks.is_none()),
            State::ExpectAuthResponse(_) => true,
            _ => false,
        }
    }

    /// The unread input.
    pub(super) fn input(&self) -> &[u8] {
        &self.rx[self.rx_pos..]
    }

    /// Marks `n` input bytes as read.
    pub(super) fn consume(&mut self, n: usize) {
        self.rx_pos += n;
    }

    /// Takes the next line, CRLF excluded, as a range of the input buffer
    /// (valid until the next call). `Ok(None)` means the line is incomplete.
    /// A line over `max` octets (CRLF included) is an error, reported once,
    /// and the input is skipped through its LF; so is a bare LF line end.
    pub(super) fn take_line(&mut self, max: usize) -> Option<Result<Range<usize>, LineError>> {
        loop {
            let buf = self.input();
            let nl = buf.iter().position(|&b| b == b'\n');
            if self.skipping {
                match nl {
                    Some(p) => {
                        self.skipping = false;
                        self.consume(p + 1);
                        continue;
                    }
                    None => {
                        let n = buf.len();
                        self.consume(n);
                        return None;
                    }
                }
            }
            return match nl {
                // Without its LF the line is at least one octet longer.
                None if buf.len() >= max => {
                    let n = buf.len();
                    self.consume(n);
                    self.skipping = true;
                    Some(Err(LineError::TooLong))
                }
                None => None,
                Some(p) => {
                    let start = self.rx_pos;
                    let bare = p == 0 || buf[p - 1] != b'\r';
                    self.consume(p + 1);
                    if p + 1 > max {
                        Some(Err(LineError::TooLong))
                    } else if bare {
                        Some(Err(LineError::BareNewline))
                    } else {
                        Some(Ok(start..start + p - 1))
                    }
                }
            };
        }
    }

    /// A copy of an input range.
    pub(super) fn bytes(&self, r: Range<usize>) -> Vec<u8> {
        self.rx[r].to_vec()
    }

    /// Overwrites input that held credentials.
    pub(super) fn wipe(&mut self, r: Range<usize>) {
        self.rx[r].zeroize();
    }

    /// STARTTLS: nothing sent before the handshake may be read after it.
    pub(super) fn discard_input(&mut self) {
        self.rx.zeroize();
        self.rx.clear();
        self.rx_pos = 0;
        self.skipping = false;
    }

    // ---- output ----

    /// Queues a reply. CR, LF and NUL in its text become spaces, so no
    /// configured or host-made text can add a line.
    pub(super) fn reply(&mut self, reply: &Reply) {
        for line in reply.wire_lines() {
            self.tx.extend(line.bytes().map(|b| {
                if matches!(b, b'\r' | b'\n' | 0) {
                    b' '
                } else {
                    b
                }
            }));
            self.tx.extend_from_slice(b"\r\n");
        }
    }

    /// Queues `334 <text>`; `text` is base64 (possibly empty), so it needs
    /// no cleaning. Written directly: [`Reply::wire_lines`] would drop the
    /// space after an empty challenge, which RFC 4954 §4 requires.
    pub(super) fn challenge(&mut self, b64: &str) {
        self.tx.extend_from_slice(b"334 ");
        self.tx.extend_from_slice(b64.as_bytes());
        self.tx.extend_from_slice(b"\r\n");
    }

    /// Reports buffered message bytes.
    pub(super) fn flush_piece(&mut self) {
        if !self.piece.is_empty() {
            let piece = std::mem::take(&mut self.piece);
            self.events.push_back(Event::Data(piece));
        }
    }

    /// Reports buffered message bytes once there are enough of them.
    pub(super) fn maybe_flush_piece(&mut self) {
        if self.piece.len() >= DATA_PIECE {
            self.flush_piece();
        }
    }

    /// Drops the transaction, telling the host when there was one.
    pub(super) fn reset_transaction(&mut self) {
        if self.txn.take().is_some() {
            self.events.push_back(Event::Reset);
        }
    }

    /// Ends the session; queued output stays for the host to flush.
    pub(super) fn close(&mut self) {
        self.flush_piece();
        self.reset_transaction();
        self.state = State::Closed;
        self.discard_input();
        self.piece = Vec::new();
    }
}

/// `a b`, or `a` when `b` is empty.
pub(super) fn join_words(a: &str, b: &str) -> String {
    if b.is_empty() {
        a.to_owned()
    } else {
        format!("{a} {b}")
    }
}

/// A reply without enhanced code whose text is taken as is (the greeting
/// and EHLO lines, where a host name must not be read as a status code).
pub(super) fn raw_reply(code: u16, lines: Vec<String>) -> Reply {
    Reply {
        code,
        enhanced: None,
        lines,
    }
}
