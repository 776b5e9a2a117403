//! Session tests against a scripted host. Events are compared in a text
//! form (secrets shown: these are tests) with adjacent `Data` pieces joined,
//! so that how the input was split does not matter.

use secrecy::ExposeSecret;

use super::*;

mod auth;
mod data;
mod end_to_end;
mod opening;
mod pipelining;
mod transaction;

pub(super) const EHLO_DEFAULT: &str = "250-mx.example at your service\r\n250-PIPELINING\r\n250-SIZE 26214400\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 BINARYMIME\r\n";

pub(super) fn cfg() -> ServerConfig {
    ServerConfig::new("mx.example")
}

/// `"250 2.1.0 OK"` as a reply.
pub(super) fn reply(s: &str) -> Reply {
    let (code, text) = s.split_at(3);
    Reply::new(code.parse().unwrap(), text.trim_start())
}

/// A comparable text form of an event.
pub(super) fn describe(e: &Event) -> String {
    match e {
        Event::Helo { name, extended } => {
            format!("{} {name}", if *extended { "EHLO" } else { "HELO" })
        }
        Event::StartTls => "STARTTLS".into(),
        Event::Auth(a) => match &a.identity {
            AuthIdentity::Password {
                authzid,
                username,
                password,
            } => format!(
                "AUTH {} {authzid:?} {username} {}",
                a.mechanism,
                password.expose_secret()
            ),
            AuthIdentity::Bearer {
                user,
                token,
                host,
                port,
            } => format!(
                "AUTH {} {user} {} {host:?} {port:?}",
                a.mechanism,
                token.expose_secret()
            ),
        },
        Event::MailFrom(m) => format!(
            "MAIL {} {:?} {:?} {}",
            m.reverse_path.as_ref().map_or("<>", |a| a.as_str()),
            m.size,
            m.body,
            m.smtputf8
        ),
        Event::RcptTo(r) => format!("RCPT {}", r.forward_path),
        Event::Data(d) => format!("DATA {}", String::from_utf8_lossy(d)),
        Event::DataEnd(s) => format!("END {} {} {:?}", s.bytes, s.eight_bit, s.declared),
        Event::DataRejected(r) => format!("REJECTED {r:?}"),
        Event::Reset => "RESET".into(),
        Event::Quit => "QUIT".into(),
    }
}

/// What a decision answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Asked {
    Mail,
    Rcpt,
    DataEnd,
    Auth,
}

/// A host with a simple policy: addresses starting with `reject` are
/// refused, the password or token `secret` is right, the token `expired`
/// gets the bearer error flow; everything else is accepted.
pub(super) struct Host {
    pub s: ServerSession,
    /// Every event, `Data` pieces joined.
    pub log: Vec<String>,
    /// Every byte transmitted.
    pub wire: Vec<u8>,
    /// Number of `Data` events before joining.
    pub data_events: usize,
    /// Decide automatically.
    pub auto: bool,
    /// The bytes of the `Data` events since the last other event.
    data: Vec<u8>,
    asked: Option<(Asked, bool)>,
    log_taken: usize,
    wire_taken: usize,
}

impl Host {
    pub fn new(cfg: ServerConfig) -> Host {
        Host::with_tls(cfg, false)
    }

    pub fn with_tls(cfg: ServerConfig, tls: bool) -> Host {
        let mut h = Host {
            s: ServerSession::new(cfg, tls),
            log: Vec::new(),
            wire: Vec::new(),
            data_events: 0,
            auto: true,
            data: Vec::new(),
            asked: None,
            log_taken: 0,
            wire_taken: 0,
        };
        h.pump();
        h
    }

    /// A host after `EHLO client.example`, output and events taken.
    pub fn ready(cfg: ServerConfig) -> Host {
        let mut h = Host::new(cfg);
        h.send("EHLO client.example\r\n");
        h.out();
        h.events();
        h
    }

    pub fn send(&mut self, s: &str) -> &mut Host {
        self.input(s.as_bytes())
    }

    pub fn input(&mut self, b: &[u8]) -> &mut Host {
        self.s.handle_input(b);
        self.pump();
        self
    }

    pub fn pump(&mut self) {
        loop {
            while let Some(t) = self.s.poll_transmit() {
                self.wire.extend_from_slice(&t);
            }
            while let Some(e) = self.s.poll_event() {
                self.note(&e);
            }
            if !self.auto || !self.s.expects_decision() {
                return;
            }
            match self.asked.take() {
                Some((Asked::Auth, ok)) => self.s.auth_result(if ok {
                    AuthOutcome::Accepted(reply("235 2.7.0 Accepted"))
                } else {
                    AuthOutcome::Rejected(reply("535 5.7.8 Bad credentials"))
                }),
                Some((kind, ok)) => self.s.decide(match (kind, ok) {
                    (Asked::Mail, true) => reply("250 2.1.0 OK"),
                    (Asked::Rcpt, true) => reply("250 2.1.5 OK"),
                    (Asked::DataEnd, _) => reply("250 2.0.0 OK queued"),
                    _ => reply("550 5.7.1 Refused"),
                }),
                None => panic!("decision expected without an event"),
            }
        }
    }

    fn note(&mut self, e: &Event) {
        if let Event::Data(d) = e {
            self.data_events += 1;
            // Join bytes, not text: a piece may end inside a UTF-8 sequence.
            if self.data.is_empty() {
                self.log.push(String::new());
            }
            self.data.extend_from_slice(d);
            *self.log.last_mut().unwrap() = format!("DATA {}", String::from_utf8_lossy(&self.data));
            return;
        }
        self.data.clear();
        let refused = |s: &str| s.starts_with("reject");
        self.asked = match e {
            Event::MailFrom(m) => Some((
                Asked::Mail,
                !m.reverse_path.as_ref().is_some_and(|a| refused(a.as_str())),
            )),
            Event::RcptTo(r) => Some((Asked::Rcpt, !refused(r.forward_path.as_str()))),
            Event::DataEnd(_) => Some((Asked::DataEnd, true)),
            Event::Auth(a) => {
                let secret = match &a.identity {
                    AuthIdentity::Password { password, .. } => password.expose_secret(),
                    AuthIdentity::Bearer { token, .. } => token.expose_secret(),
                };
                Some((Asked::Auth, secret == "secret"))
            }
            _ => self.asked,
        };
        self.log.push(describe(e));
    }

    /// Output since the last call.
    pub fn out(&mut self) -> String {
        let s = String::from_utf8_lossy(&self.wire[self.wire_taken..]).into_owned();
        self.wire_taken = self.wire.len();
        s
    }

    /// Events since the last call.
    pub fn events(&mut self) -> Vec<String> {
        let v = self.log[self.log_taken..].to_vec();
        self.log_taken = self.log.len();
        v
    }

    /// Sends `input`, then checks the output and the events it caused.
    #[track_caller]
    pub fn exchange(&mut self, input: &str, out: &str, events: &[&str]) -> &mut Host {
        self.send(input);
        assert_eq!(self.out(), out, "output for {input:?}");
        assert_eq!(self.events(), events, "events for {input:?}");
        self
    }
}

#[test]
fn session_debug_shows_no_buffers() {
    let mut s = ServerSession::new(cfg(), true);
    s.handle_input(b"EHLO x\r\nAUTH PLAIN AGEAc2VjcmV0LXB3");
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("AGEAc2VjcmV0LXB3"), "{dbg}");
    assert!(dbg.contains("pending_input"), "{dbg}");
}
