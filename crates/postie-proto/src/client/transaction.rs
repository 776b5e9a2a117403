//! Mail transactions: MAIL, RCPT, DATA or BDAT, the body, and the results.

use std::collections::VecDeque;

use super::session::{ClientSession, Expect, Phase};
use super::{
    BodyType, Direction, Envelope, Event, RecipientResult, SessionError, Stage, TransactionResult,
};
use crate::command::{Body, Command, MailParams, RcptParams};
use crate::data::{CrlfNormalizer, DotStuffer};
use crate::reply::Reply;

/// How the body travels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    /// DATA with dot-stuffing.
    Data,
    /// BDAT chunks (RFC 3030); `binary` skips line-end normalisation.
    Bdat { binary: bool },
}

/// A BDAT chunk waiting for its turn: without PIPELINING each chunk waits
/// for the reply to the previous one.
#[derive(Debug)]
struct Frame {
    bytes: Vec<u8>,
    last: bool,
}

/// One transaction in progress.
#[derive(Debug)]
pub(super) struct Transaction {
    env: Envelope,
    pub(super) mode: Mode,
    pipelined: bool,
    /// BDAT with PIPELINING: the body was asked for with MAIL and the
    /// RCPTs, so the whole transaction leaves in one flight (RFC 3030 §4.2
    /// allows BDAT in a pipelined group; if no RCPT was accepted, the BDAT
    /// reply is the failure and nothing was delivered).
    eager: bool,
    mail: Option<Reply>,
    rcpts: Vec<Option<Reply>>,
    data: Option<Reply>,
    /// The driver may call `write_body`.
    pub(super) body_open: bool,
    /// DATA got 354 although nothing was accepted: only the terminator went.
    terminator_only: bool,
    stuffer: DotStuffer,
    normalizer: CrlfNormalizer,
    body_bytes: u64,
    held: VecDeque<Frame>,
    bdat_failed: Option<Reply>,
}

impl Transaction {
    /// MAIL and at least one RCPT were accepted, so a body can go.
    fn can_send_body(&self) -> bool {
        self.mail.as_ref().is_some_and(Reply::is_completion)
            && self.rcpts.iter().flatten().any(Reply::is_completion)
    }

    fn into_result(self) -> Option<TransactionResult> {
        let recipients = self
            .env
            .to
            .into_iter()
            .zip(self.rcpts)
            .map(|(address, reply)| RecipientResult {
                accepted: reply.as_ref().is_some_and(Reply::is_completion),
                address,
                reply,
            })
            .collect();
        Some(TransactionResult {
            mail: self.mail?,
            recipients,
            data: self.data,
        })
    }
}

/// A final answer to a command: 2yz, 4yz or 5yz. Anything else (a 3yz where
/// none belongs) is a protocol error.
fn is_final(reply: &Reply) -> bool {
    reply.is_completion() || reply.is_transient() || reply.is_permanent()
}

impl ClientSession {
    /// Starts a transaction; only after [`super::Event::Ready`].
    ///
    /// `size` is the message size in octets, sent as `SIZE=` (RFC 1870) when
    /// the server offers SIZE. Checks made here, before anything is sent:
    /// the server's SIZE limit, SMTPUTF8 for UTF-8 addresses, 8BITMIME or
    /// BINARYMIME for the body type. With PIPELINING, MAIL, every RCPT and
    /// DATA leave in one write (RFC 2920; DATA last). With CHUNKING and
    /// PIPELINING, the body is asked for at once ([`super::Event::BodyWanted`]):
    /// MAIL, every RCPT and the BDAT chunks leave in one flight, one round
    /// trip per message. With CHUNKING alone the body goes as BDAT after the
    /// RCPT replies.
    pub fn start_transaction(
        &mut self,
        env: Envelope,
        size: Option<u64>,
        body: BodyType,
    ) -> Result<(), SessionError> {
        if self.phase != Phase::Ready {
            return Err(SessionError::NotReady {
                stage: self.stage(),
            });
        }
        let caps = self.caps.clone().unwrap_or_default();
        if env.to.is_empty() {
            return Err(SessionError::NoRecipients);
        }
        if let (Some(size), Some(limit)) = (size, caps.size())
            && size > limit
        {
            return Err(SessionError::MessageTooLarge { size, limit });
        }
        let smtputf8 = env.needs_smtputf8();
        if smtputf8 && !caps.smtputf8() {
            return Err(SessionError::SmtpUtf8NotSupported);
        }
        let chunking = self.cfg.chunking && caps.chunking();
        let text_mode = if chunking {
            Mode::Bdat { binary: false }
        } else {
            Mode::Data
        };
        let (mode, body_param) = match body {
            BodyType::SevenBit => (text_mode, None),
            BodyType::EightBit if caps.eightbitmime() => (text_mode, Some(Body::EightBitMime)),
            BodyType::EightBit => return Err(SessionError::EightBitMimeNotSupported),
            BodyType::Binary if chunking && caps.binarymime() => {
                (Mode::Bdat { binary: true }, Some(Body::BinaryMime))
            }
            BodyType::Binary => return Err(SessionError::BinaryMimeNotSupported),
        };
        let pipelined = self.cfg.pipelining && caps.supports_pipelining();
        let params = MailParams {
            size: size.filter(|_| caps.supports_size()),
            body: body_param,
            smtputf8,
            ..MailParams::default()
        };
        let from = env.from.clone();
        let n = env.to.len();
        let eager = pipelined && matches!(mode, Mode::Bdat { .. });
        self.txn = Some(Transaction {
            env,
            mode,
            pipelined,
            eager,
            mail: None,
            rcpts: vec![None; n],
            data: None,
            body_open: false,
            terminator_only: false,
            stuffer: DotStuffer::new(),
            normalizer: CrlfNormalizer::new(),
            body_bytes: 0,
            held: VecDeque::new(),
            bdat_failed: None,
        });
        self.phase = Phase::Transaction;
        self.discard_body = false;
        self.send(Command::Mail { from, params }, Expect::Mail);
        if pipelined {
            (0..n).for_each(|i| self.send_rcpt(i));
            if mode == Mode::Data {
                self.send(Command::Data, Expect::DataGo);
            }
        }
        if eager && let Some(t) = self.txn.as_mut() {
            t.body_open = true;
            self.events.push_back(Event::BodyWanted);
        }
        Ok(())
    }

    /// Writes part of the body after [`super::Event::BodyWanted`]; `last`
    /// ends it. For DATA the bytes are dot-stuffed and the terminator is
    /// added; for BDAT each call becomes one chunk (`BDAT <n>`, the last
    /// `BDAT <n> LAST`). Bare CR and LF become CRLF except for binary bodies,
    /// and a last line without its line end gets CRLF, by DATA and BDAT
    /// alike: SIZE= counts both (`postie::message::Body::wire_len`).
    ///
    /// After the server refused a chunk, the rest of the body is accepted
    /// and dropped; a [`super::Event::TransactionDone`] has already said so.
    pub fn write_body(&mut self, chunk: &[u8], last: bool) -> Result<(), SessionError> {
        if self.discard_body {
            self.discard_body = !last;
            return Ok(());
        }
        if self.phase == Phase::Closed {
            return Err(SessionError::ConnectionClosed { stage: Stage::Body });
        }
        let stage = self.stage();
        let Some(t) = self
            .txn
            .as_mut()
            .filter(|t| t.body_open && self.phase == Phase::Transaction)
        else {
            return Err(SessionError::NotReady { stage });
        };
        t.body_bytes += chunk.len() as u64;
        t.body_open = !last;
        let pipelined = t.pipelined;
        match t.mode {
            Mode::Data => {
                t.stuffer.encode(chunk, &mut self.tx);
                if last {
                    std::mem::take(&mut t.stuffer).finish(&mut self.tx);
                    let note = format!("<message body: {} bytes>", t.body_bytes);
                    self.transcript(Direction::Note, note);
                    self.transcript(Direction::Sent, ".".into());
                    self.expect.push_back(Expect::DataEnd);
                    self.body_sent();
                    if pipelined && !self.quit_after {
                        // Only the final reply is to come: the next
                        // transaction may start behind the `.`.
                        self.finishing = self.txn.take();
                        self.phase = Phase::Ready;
                    }
                }
            }
            Mode::Bdat { binary } => {
                let mut bytes = Vec::with_capacity(chunk.len() + 2);
                if binary {
                    bytes.extend_from_slice(chunk);
                } else {
                    t.normalizer.normalize(chunk, &mut bytes);
                    if last {
                        std::mem::take(&mut t.normalizer).finish_message(&mut bytes);
                    }
                }
                if !bytes.is_empty() || last {
                    t.held.push_back(Frame { bytes, last });
                }
                self.release_frames();
            }
        }
        Ok(())
    }

    /// Sends held BDAT chunks: all of them with PIPELINING (RFC 3030 §4.2
    /// allows pipelining BDAT), otherwise one per reply.
    fn release_frames(&mut self) {
        loop {
            let outstanding = self.expect.iter().any(|e| matches!(e, Expect::Bdat { .. }));
            let Some(t) = self.txn.as_mut() else { return };
            if t.bdat_failed.is_some() || (!t.pipelined && outstanding) {
                return;
            }
            let Some(frame) = t.held.pop_front() else {
                return;
            };
            let total = t.body_bytes;
            let cmd = Command::Bdat {
                size: frame.bytes.len() as u64,
                last: frame.last,
            };
            self.send(cmd, Expect::Bdat { last: frame.last });
            self.tx.extend_from_slice(&frame.bytes);
            if frame.last {
                self.transcript(Direction::Note, format!("<message body: {total} bytes>"));
                self.body_sent();
            }
        }
    }

    fn send_rcpt(&mut self, i: usize) {
        let Some(to) = self.txn.as_ref().and_then(|t| t.env.to.get(i)).cloned() else {
            return;
        };
        let params = RcptParams::default();
        self.send(Command::Rcpt { to, params }, Expect::Rcpt(i));
    }

    /// Ends the transaction: reports it, then RSET when the server may still
    /// hold transaction state, or Ready.
    fn conclude(&mut self, reset: bool) {
        let Some(result) = self.txn.take().and_then(Transaction::into_result) else {
            // Only reachable without a MAIL reply, which no caller allows.
            return self.ready();
        };
        self.events.push_back(Event::TransactionDone(result));
        if self.quit_after {
            // QUIT is on its way (or goes now): no RSET, no Ready.
            self.quit_after = false;
            if self.expect.contains(&Expect::Quit) {
                self.phase = Phase::Quitting;
            } else {
                self.begin_quit();
            }
            return;
        }
        if reset {
            self.phase = Phase::Resetting;
            self.send(Command::Rset, Expect::Rset);
        } else {
            self.ready();
        }
    }

    fn unexpected(&mut self, stage: Stage, reply: Reply) {
        self.fail(SessionError::UnexpectedReply { stage, reply });
    }

    pub(super) fn on_mail(&mut self, reply: Reply) {
        let Some(t) = self.txn.as_mut().filter(|_| is_final(&reply)) else {
            return self.unexpected(Stage::Mail, reply);
        };
        let ok = reply.is_completion();
        let pipelined = t.pipelined;
        t.mail = Some(reply);
        if !pipelined {
            if ok {
                self.send_rcpt(0)
            } else {
                self.conclude(true)
            }
        }
        // Pipelined: the RCPT and DATA replies are on their way regardless.
    }

    pub(super) fn on_rcpt(&mut self, i: usize, reply: Reply) {
        let Some(t) = self.txn.as_mut().filter(|_| is_final(&reply)) else {
            return self.unexpected(Stage::Rcpt, reply);
        };
        let n = t.rcpts.len();
        if let Some(slot) = t.rcpts.get_mut(i) {
            *slot = Some(reply);
        }
        if i + 1 < n {
            if !t.pipelined {
                self.send_rcpt(i + 1);
            }
            return;
        }
        let ok = t.can_send_body();
        if t.eager {
            // The body was asked for already. Nothing accepted and no chunk
            // sent yet: the transaction ends now, and what the driver still
            // writes is dropped; once a chunk went, its reply decides.
            let chunk_sent = t.body_bytes > 0
                || !t.held.is_empty()
                || self.expect.iter().any(|e| matches!(e, Expect::Bdat { .. }));
            if !ok && !chunk_sent {
                self.discard_body = t.body_open;
                self.conclude(true);
            }
            return;
        }
        match (t.mode, t.pipelined) {
            // The DATA reply, already on its way, decides.
            (Mode::Data, true) => {}
            (Mode::Data, false) if ok => self.send(Command::Data, Expect::DataGo),
            (Mode::Bdat { .. }, _) if ok => {
                t.body_open = true;
                self.events.push_back(Event::BodyWanted);
            }
            _ => self.conclude(true),
        }
    }

    pub(super) fn on_data_go(&mut self, reply: Reply) {
        let Some(t) = self.txn.as_mut() else {
            return self.unexpected(Stage::Data, reply);
        };
        if reply.code == 354 {
            if t.can_send_body() {
                t.body_open = true;
                self.events.push_back(Event::BodyWanted);
            } else {
                // Pipelined DATA accepted although no recipient was: end the
                // empty message at once rather than send the body anywhere.
                t.terminator_only = true;
                self.tx.extend_from_slice(b".\r\n");
                self.transcript(Direction::Sent, ".".into());
                self.expect.push_back(Expect::DataEnd);
            }
        } else if is_final(&reply) && !reply.is_completion() {
            t.data = Some(reply);
            self.conclude(true);
        } else {
            self.unexpected(Stage::Data, reply);
        }
    }

    pub(super) fn on_data_end(&mut self, reply: Reply) {
        if is_final(&reply)
            && let Some(mut t) = self.finishing.take()
        {
            // The `.` of a body sent before the transaction now in progress
            // (or before QUIT): its result, and Ready only when nothing
            // else has started meanwhile.
            t.data = Some(reply);
            if let Some(result) = t.into_result() {
                self.events.push_back(Event::TransactionDone(result));
            }
            if self.phase == Phase::Ready {
                self.events.push_back(Event::Ready);
            }
            return;
        }
        let Some(t) = self.txn.as_mut().filter(|_| is_final(&reply)) else {
            return self.unexpected(Stage::Body, reply);
        };
        let reset = t.terminator_only;
        t.data = Some(reply);
        self.conclude(reset);
    }

    pub(super) fn on_bdat(&mut self, last: bool, reply: Reply) {
        let Some(t) = self.txn.as_mut().filter(|_| is_final(&reply)) else {
            return self.unexpected(Stage::Body, reply);
        };
        if !reply.is_completion() && t.bdat_failed.is_none() {
            // RFC 3030 §2: after a failed chunk, send no more.
            t.bdat_failed = Some(reply.clone());
            t.held.clear();
        }
        if last {
            let failed = t.bdat_failed.take();
            let reset = failed.is_some();
            // One flight with MAIL or every RCPT refused: the BDAT refusal is
            // their consequence ("no valid recipients"); the result reports
            // the refusals themselves, as without the flight (the transcript
            // keeps the reply).
            let consequence = t.eager && !t.can_send_body();
            t.data = Some(failed.unwrap_or(reply)).filter(|_| !consequence);
            return self.conclude(reset);
        }
        if t.bdat_failed.is_some() {
            let outstanding = self.expect.iter().any(|e| matches!(e, Expect::Bdat { .. }));
            if !outstanding {
                let consequence = t.eager && !t.can_send_body();
                t.data = t.bdat_failed.take().filter(|_| !consequence);
                self.discard_body = t.body_open;
                self.conclude(true);
            }
            return;
        }
        self.release_frames();
    }
}
