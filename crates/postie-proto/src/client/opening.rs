//! The opening dialogue: greeting, EHLO (or HELO), STARTTLS and AUTH.

use secrecy::{ExposeSecret, SecretString};

use super::session::{ClientSession, Expect, Phase};
use super::{Direction, Event, SessionError, Stage, TlsMode};
use crate::capability::Capabilities;
use crate::command::{Command, MAX_COMMAND_LINE, redacted};
use crate::reply::Reply;
use crate::sasl::{self, Credentials, ResponseNote, SaslClient, SaslServerError, SaslStep};

/// More challenges than any supported mechanism needs means a confused or
/// hostile server; the exchange is cancelled.
const MAX_CHALLENGES: usize = 8;

/// An AUTH exchange in progress.
#[derive(Debug)]
pub(super) struct AuthState {
    sasl: SaslClient,
    server_error: Option<SaslServerError>,
    aborted: Option<String>,
    challenges: usize,
}

impl ClientSession {
    pub(super) fn on_greeting(&mut self, reply: Reply) {
        // Only 220 greets (RFC 5321 §4.2, §3.1): a 221 says the server is
        // closing, another 2xx is not a greeting at all.
        if reply.code == 220 {
            self.events.push_back(Event::Greeting(reply));
            self.send_ehlo();
        } else {
            self.fail(SessionError::GreetingRefused { reply });
        }
    }

    pub(super) fn send_ehlo(&mut self) {
        let domain = self.cfg.ehlo_domain.clone();
        self.send(Command::Ehlo(domain), Expect::Ehlo);
    }

    pub(super) fn on_ehlo(&mut self, reply: Reply) {
        // Only 250 answers EHLO (RFC 5321 §4.1.1.1); a 220 or 221 here is a
        // server out of step, not an offer.
        if reply.code == 250 {
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

    pub(super) fn on_helo(&mut self, reply: Reply) {
        if reply.code == 250 {
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

    pub(super) fn on_starttls(&mut self, reply: Reply) {
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
            let starttls = self.caps.as_ref().is_some_and(|c| c.starttls());
            if offered.is_empty() && starttls && !self.tls {
                return self.fail(SessionError::AuthOnlyAfterTls);
            }
            return self.fail(SessionError::NoCommonMechanism { offered });
        };
        let host = self.cfg.server_host.clone();
        let mut client =
            match SaslClient::new(mechanism.clone(), creds, &host, self.cfg.server_port) {
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

    pub(super) fn on_auth(&mut self, reply: Reply) {
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
