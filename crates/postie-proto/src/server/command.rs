//! Command lines: framing errors, verbs, sequencing, and the replies the
//! session gives by itself.

use super::data::{ChunkBody, DataReader};
use super::envelope::{self, ArgError};
use super::session::{LineError, Pending, ServerSession, State, join_words, raw_reply};
use super::{BodyType, Event, MAX_AUTH_LINE, MAX_COMMAND_LINE, MailRequest, RcptRequest};
use crate::reply::Reply;
use crate::sasl::Mechanism;

/// Request methods of HTTP: a line starting with one is not SMTP.
const HTTP_VERBS: [&str; 9] = [
    "GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
];

/// Unknown commands a session tolerates before it ends (Postfix's
/// smtpd_hard_error_limit is 20; clients that speak SMTP rarely send one).
pub(super) const MAX_UNKNOWN_COMMANDS: u32 = 10;

/// True when `line` starts with `AUTH ` in any case: such a line may carry
/// a long initial response.
fn is_auth_line(line: &[u8]) -> bool {
    line.len() >= 5 && line[..5].eq_ignore_ascii_case(b"AUTH ")
}

impl ServerSession {
    /// Reads and runs one command line; false when there is none yet.
    pub(super) fn step_command(&mut self) -> bool {
        let max = if is_auth_line(self.input()) {
            MAX_AUTH_LINE
        } else {
            MAX_COMMAND_LINE
        };
        let range = match self.take_line(max) {
            None => return false,
            Some(Err(LineError::TooLong)) => {
                let r = self.cfg.replies.command_too_long.clone();
                self.reply(&r);
                return true;
            }
            Some(Err(LineError::BareNewline)) => {
                let r = self.cfg.replies.command_bare_newline.clone();
                self.reply(&r);
                return true;
            }
            Some(Ok(range)) => range,
        };
        let line = self.bytes(range.clone());
        if is_auth_line(&line) {
            self.wipe(range);
        }
        self.command(&line);
        true
    }

    fn command(&mut self, line: &[u8]) {
        let text = match std::str::from_utf8(line) {
            Ok(t) if !line.contains(&0) => t,
            _ => return self.canned(|r| &r.syntax),
        };
        let (verb, arg) = match text.split_once([' ', '\t']) {
            Some((v, a)) => (v, a.trim_matches([' ', '\t'])),
            None => (text, ""),
        };
        let verb = verb.to_ascii_uppercase();
        // Between BDAT chunks a shutdown waits for the message to finish.
        if self.shutting_down && verb != "BDAT" {
            let r = self.cfg.replies.shutting_down.clone();
            self.reply(&r);
            return self.close();
        }
        // An HTTP request sent to the SMTP port (a web page's fetch() to
        // 127.0.0.1): its body could otherwise run as SMTP commands after
        // the request and header lines were refused one by one. Cut it off
        // at the first line, as Postfix does (smtpd_forbidden_commands).
        if HTTP_VERBS.contains(&verb.as_str()) || verb.ends_with(':') {
            self.reply(&Reply::new(
                554,
                "5.7.0 This is an SMTP server, not a web server: closing",
            ));
            return self.close();
        }
        match verb.as_str() {
            "EHLO" => self.ehlo(arg, true),
            "HELO" => self.ehlo(arg, false),
            "MAIL" => self.mail(arg),
            "RCPT" => self.rcpt(arg),
            "DATA" => self.data(arg),
            "BDAT" => self.bdat(arg),
            "AUTH" => self.auth(arg),
            "STARTTLS" => self.starttls(arg),
            "RSET" => {
                self.txn = None;
                self.events.push_back(Event::Reset);
                self.canned(|r| &r.reset);
            }
            "NOOP" => self.canned(|r| &r.ok),
            "VRFY" => self.canned(|r| &r.vrfy),
            "HELP" => self.canned(|r| &r.help),
            "EXPN" | "TURN" | "ETRN" => self.canned(|r| &r.not_implemented),
            "QUIT" => {
                self.reset_transaction();
                self.events.push_back(Event::Quit);
                self.canned(|r| &r.bye);
                self.close();
            }
            _ => {
                self.unknown_commands += 1;
                if self.unknown_commands >= MAX_UNKNOWN_COMMANDS {
                    self.reply(&Reply::new(421, "4.7.0 Too many unknown commands: closing"));
                    return self.close();
                }
                self.canned(|r| &r.unknown_command)
            }
        }
    }

    /// Sends one of the canned replies.
    pub(super) fn canned(&mut self, pick: impl Fn(&super::CannedReplies) -> &Reply) {
        let r = pick(&self.cfg.replies).clone();
        self.reply(&r);
    }

    /// RFC 3207 §4: before STARTTLS, a server that requires TLS refuses
    /// everything that could carry mail or credentials.
    fn tls_missing(&self) -> bool {
        self.cfg.require_tls && !self.tls
    }

    fn ehlo(&mut self, arg: &str, extended: bool) {
        // Liberal: scripts send `ehlo(sender_email)`; take the first word.
        let Some(name) = arg.split_whitespace().next() else {
            return self.canned(|r| &r.syntax);
        };
        if name.chars().any(char::is_control) {
            return self.canned(|r| &r.syntax);
        }
        // RFC 5321 §4.1.4: EHLO also clears the transaction.
        self.reset_transaction();
        self.helo = Some(name.to_owned());
        self.events.push_back(Event::Helo {
            name: name.to_owned(),
            extended,
        });
        let first = join_words(&self.cfg.hostname, &self.cfg.ehlo_greeting);
        let mut lines = vec![first];
        if extended {
            lines.extend(self.extensions());
        }
        self.reply(&raw_reply(250, lines));
    }

    /// The EHLO keywords for the current state.
    pub(super) fn extensions(&self) -> Vec<String> {
        let c = &self.cfg;
        let mut v = vec!["PIPELINING".to_owned()];
        v.push(match c.max_message_size {
            0 => "SIZE".to_owned(),
            n => format!("SIZE {n}"),
        });
        v.push("8BITMIME".into());
        v.push("ENHANCEDSTATUSCODES".into());
        if c.smtputf8 {
            v.push("SMTPUTF8".into());
        }
        if c.chunking {
            v.push("CHUNKING".into());
            if c.binarymime {
                v.push("BINARYMIME".into());
            }
        }
        if c.starttls && !self.tls {
            v.push("STARTTLS".into());
        }
        let mechs = self.offered_mechanisms();
        if !mechs.is_empty() {
            let names: Vec<String> = mechs.iter().map(Mechanism::name).collect();
            v.push(format!("AUTH {}", names.join(" ")));
        }
        v
    }

    /// The mechanisms AUTH accepts now: the implemented ones from the
    /// configuration, and none before TLS when it requires TLS.
    pub(super) fn offered_mechanisms(&self) -> Vec<Mechanism> {
        if self.cfg.auth_requires_tls && !self.tls {
            return Vec::new();
        }
        let mut v: Vec<Mechanism> = Vec::new();
        for m in &self.cfg.auth {
            let implemented = matches!(
                m,
                Mechanism::Plain | Mechanism::Login | Mechanism::XOAuth2 | Mechanism::OAuthBearer
            );
            if implemented && !v.contains(m) {
                v.push(m.clone());
            }
        }
        v
    }

    fn mail(&mut self, arg: &str) {
        if self.tls_missing() {
            return self.canned(|r| &r.must_starttls);
        }
        if self.helo.is_none() || self.txn.is_some() {
            return self.canned(|r| &r.bad_sequence);
        }
        if self.cfg.require_auth && self.user.is_none() {
            return self.canned(|r| &r.auth_required);
        }
        let m = match envelope::parse_mail(arg, &self.cfg, !self.offered_mechanisms().is_empty()) {
            Ok(m) => m,
            Err(e) => return self.arg_error(e, true),
        };
        let limit = self.cfg.max_message_size;
        if limit > 0 && m.size.is_some_and(|n| n > limit) {
            return self.canned(|r| &r.too_large);
        }
        if m.reverse_path.as_ref().is_some_and(|a| a.needs_smtputf8()) && !m.smtputf8 {
            return self.canned(|r| &r.non_ascii_address);
        }
        let body = m.body.unwrap_or_default();
        self.events.push_back(Event::MailFrom(MailRequest {
            reverse_path: m.reverse_path,
            size: m.size,
            body,
            smtputf8: m.smtputf8,
        }));
        self.state = State::ExpectDecision(Pending::Mail {
            body,
            smtputf8: m.smtputf8,
        });
    }

    fn arg_error(&mut self, e: ArgError, sender: bool) {
        match e {
            ArgError::Syntax => self.canned(|r| &r.syntax),
            ArgError::UnknownParameter => self.canned(|r| &r.unknown_parameter),
            ArgError::BadAddress if sender => self.canned(|r| &r.bad_sender),
            ArgError::BadAddress => self.canned(|r| &r.bad_recipient),
        }
    }

    fn rcpt(&mut self, arg: &str) {
        if self.tls_missing() {
            return self.canned(|r| &r.must_starttls);
        }
        let Some(t) = self.txn.as_ref().filter(|t| t.chunks.is_none()) else {
            return self.canned(|r| &r.bad_sequence);
        };
        let (smtputf8, rcpts) = (t.smtputf8, t.rcpts);
        let to = match envelope::parse_rcpt(arg, &self.cfg) {
            Ok(a) => a,
            Err(e) => return self.arg_error(e, false),
        };
        // A recipient was named (the host may still refuse it): DATA
        // without one accepted is then "no valid recipients".
        if let Some(t) = self.txn.as_mut() {
            t.rcpt_tried = true;
        }
        if rcpts >= self.cfg.max_recipients {
            return self.canned(|r| &r.too_many_recipients);
        }
        if to.needs_smtputf8() && !smtputf8 {
            return self.canned(|r| &r.non_ascii_address);
        }
        self.events
            .push_back(Event::RcptTo(RcptRequest { forward_path: to }));
        self.state = State::ExpectDecision(Pending::Rcpt);
    }

    fn data(&mut self, arg: &str) {
        if self.tls_missing() {
            return self.canned(|r| &r.must_starttls);
        }
        if !arg.is_empty() {
            return self.canned(|r| &r.syntax);
        }
        let Some(t) = self.txn.as_ref() else {
            return self.canned(|r| &r.bad_sequence);
        };
        // RFC 3030 §3: BINARYMIME needs BDAT, and BDAT and DATA do not mix.
        if t.body == BodyType::Binary || t.chunks.is_some() {
            return self.canned(|r| &r.bad_sequence);
        }
        if t.rcpts == 0 && !t.rcpt_tried {
            return self.canned(|r| &r.need_rcpt);
        }
        if t.rcpts == 0 {
            return self.canned(|r| &r.no_valid_recipients);
        }
        let reader = DataReader::new(&self.cfg);
        self.canned(|r| &r.start_data);
        self.state = State::ExpectDataLine(reader);
    }

    fn bdat(&mut self, arg: &str) {
        if !self.cfg.chunking {
            return self.canned(|r| &r.not_implemented);
        }
        // RFC 3030 §2: `BDAT <size> [LAST]`.
        let mut words = arg.split_ascii_whitespace();
        let size = words
            .next()
            .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|w| w.parse::<u64>().ok());
        let last = match words.next() {
            None => Some(false),
            Some(w) if w.eq_ignore_ascii_case("LAST") => Some(true),
            Some(_) => None,
        };
        let (Some(size), Some(last), None) = (size, last, words.next()) else {
            // The chunk length is unknown, so its octets cannot be skipped.
            return self.canned(|r| &r.syntax);
        };
        let refuse = if self.tls_missing() {
            Some(self.cfg.replies.must_starttls.clone())
        } else {
            match self.txn.as_mut() {
                None => Some(self.cfg.replies.bad_sequence.clone()),
                Some(t) if t.rcpts == 0 && !t.rcpt_tried => {
                    Some(self.cfg.replies.need_rcpt.clone())
                }
                Some(t) if t.rcpts == 0 => Some(self.cfg.replies.no_valid_recipients.clone()),
                Some(t) => {
                    if t.chunks.is_none() {
                        t.chunks = Some(ChunkBody::new(&self.cfg, t.body));
                    }
                    None
                }
            }
        };
        self.state = State::ExpectChunk {
            remaining: size,
            size,
            last,
            refuse,
        };
    }

    fn starttls(&mut self, arg: &str) {
        if !self.cfg.starttls {
            return self.canned(|r| &r.not_implemented);
        }
        if self.tls {
            return self.canned(|r| &r.bad_sequence);
        }
        if !arg.is_empty() {
            return self.canned(|r| &r.syntax);
        }
        self.canned(|r| &r.ready_for_tls);
        // RFC 3207 §4.2: forget everything learnt in plaintext, and never
        // read what arrived before the handshake (CVE-2011-0411).
        self.discard_input();
        self.reset_transaction();
        self.helo = None;
        self.user = None;
        self.events.push_back(Event::StartTls);
        self.state = State::ExpectTlsHandshake;
    }
}

/// `250 2.0.0 <n> octets received`, the reply to a non-last BDAT chunk.
pub(super) fn chunk_received(size: u64) -> Reply {
    Reply::new(250, &format!("2.0.0 {size} octets received"))
}
