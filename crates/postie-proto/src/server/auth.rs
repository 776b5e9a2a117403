//! AUTH (RFC 4954): the command, the 334 exchange, and decoding the
//! credentials of PLAIN (RFC 4616), LOGIN, XOAUTH2 and OAUTHBEARER
//! (RFC 7628).
//!
//! Decoded credentials live in zeroizing buffers until they become a
//! [`SecretString`]; the input bytes that carried them are overwritten.

use std::str::FromStr;

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use secrecy::SecretString;
use secrecy::zeroize::Zeroizing;

use super::session::{LineError, Pending, ServerSession, State};
use super::{AuthIdentity, AuthRequest, Event, MAX_AUTH_LINE};
use crate::reply::Reply;
use crate::sasl::Mechanism;

/// Base64 as clients send it: with or without padding.
const B64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// `Username:` and `Password:`, the customary LOGIN prompts.
const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

/// What the next line of an AUTH exchange is.
#[derive(Debug)]
pub(super) enum AuthStep {
    /// The whole payload of PLAIN, XOAUTH2 or OAUTHBEARER, after `334 `.
    Payload(Mechanism),
    /// The LOGIN user name.
    LoginUser,
    /// The LOGIN password.
    LoginPassword { username: String },
    /// Any line, after a bearer error challenge; then `then` is sent.
    BearerErrorAck { then: Reply },
}

/// Standard base64 with padding, for challenges.
pub(super) fn b64_encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes a response line; surrounding spaces are forgiven.
fn b64_decode(text: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    B64.decode(text.trim_ascii()).ok().map(Zeroizing::new)
}

impl ServerSession {
    /// `AUTH mechanism [initial-response]`.
    pub(super) fn auth(&mut self, arg: &str) {
        if self.cfg.auth.is_empty() {
            return self.canned(|r| &r.not_implemented);
        }
        if (self.cfg.require_tls || self.cfg.auth_requires_tls) && !self.tls {
            return self.canned(|r| &r.must_starttls);
        }
        if self.helo.is_none() || self.txn.is_some() {
            return self.canned(|r| &r.bad_sequence);
        }
        if self.user.is_some() {
            return self.canned(|r| &r.already_authenticated);
        }
        let (name, initial) = match arg.split_once(' ') {
            Some((n, ir)) => (n, Some(ir)),
            None => (arg, None),
        };
        let mechanism = match Mechanism::from_str(name) {
            Ok(m) if self.offered_mechanisms().contains(&m) => m,
            _ => return self.canned(|r| &r.unknown_mechanism),
        };
        let Some(initial) = initial else {
            return match mechanism {
                Mechanism::Login => self.ask(LOGIN_USERNAME, AuthStep::LoginUser),
                m => self.ask("", AuthStep::Payload(m)),
            };
        };
        // RFC 4954 §4: "=" is an initial response of zero length.
        let decoded = if initial == "=" {
            Some(Zeroizing::new(Vec::new()))
        } else {
            b64_decode(initial.as_bytes())
        };
        let Some(payload) = decoded else {
            return self.canned(|r| &r.cannot_decode);
        };
        match mechanism {
            Mechanism::Login => self.login_user(&payload),
            m => self.payload(m, &payload),
        }
    }

    fn ask(&mut self, challenge: &str, step: AuthStep) {
        self.challenge(challenge);
        self.state = State::ExpectAuthResponse(step);
    }

    /// Reads one line of the exchange; false when there is none yet.
    pub(super) fn step_auth_response(&mut self) -> bool {
        let range = match self.take_line(MAX_AUTH_LINE) {
            None => return false,
            Some(Err(e)) => {
                self.state = State::ExpectCommand;
                match e {
                    LineError::TooLong => self.canned(|r| &r.auth_line_too_long),
                    LineError::BareNewline => self.canned(|r| &r.command_bare_newline),
                }
                return true;
            }
            Some(Ok(range)) => range,
        };
        let line = Zeroizing::new(self.bytes(range.clone()));
        self.wipe(range);
        let State::ExpectAuthResponse(step) =
            std::mem::replace(&mut self.state, State::ExpectCommand)
        else {
            return false;
        };
        if let AuthStep::BearerErrorAck { then } = step {
            // RFC 7628 §3.2.3: the client's reply carries nothing; the
            // exchange ends with the failure whatever it is.
            self.reply(&then);
            return true;
        }
        if line.as_slice() == b"*" {
            self.canned(|r| &r.auth_cancelled);
            return true;
        }
        let Some(payload) = b64_decode(&line) else {
            self.canned(|r| &r.cannot_decode);
            return true;
        };
        match step {
            AuthStep::Payload(m) => self.payload(m, &payload),
            AuthStep::LoginUser => self.login_user(&payload),
            AuthStep::LoginPassword { username } => match std::str::from_utf8(&payload) {
                Ok(p) => {
                    let identity = AuthIdentity::Password {
                        authzid: None,
                        username,
                        password: SecretString::from(p),
                    };
                    self.request(Mechanism::Login, identity);
                }
                Err(_) => self.canned(|r| &r.cannot_decode),
            },
            AuthStep::BearerErrorAck { .. } => unreachable!("handled above"),
        }
        true
    }

    fn login_user(&mut self, payload: &[u8]) {
        match std::str::from_utf8(payload) {
            Ok(u) if !u.is_empty() && !u.contains(char::is_control) => {
                let username = u.to_owned();
                self.ask(LOGIN_PASSWORD, AuthStep::LoginPassword { username });
            }
            _ => self.canned(|r| &r.cannot_decode),
        }
    }

    fn payload(&mut self, mechanism: Mechanism, payload: &[u8]) {
        let identity = match mechanism {
            Mechanism::Plain => parse_plain(payload),
            Mechanism::XOAuth2 => parse_xoauth2(payload),
            Mechanism::OAuthBearer => parse_oauthbearer(payload),
            _ => None,
        };
        match identity {
            Some(identity) => self.request(mechanism, identity),
            None => self.canned(|r| &r.cannot_decode),
        }
    }

    fn request(&mut self, mechanism: Mechanism, identity: AuthIdentity) {
        let user = identity.user().to_owned();
        self.events.push_back(Event::Auth(AuthRequest {
            mechanism,
            identity,
        }));
        self.state = State::ExpectDecision(Pending::Auth { user });
    }
}

/// A user name: UTF-8, not empty, no control characters.
fn name(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?;
    (!s.is_empty() && !s.contains(char::is_control)).then(|| s.to_owned())
}

/// RFC 4616 §2: `[authzid] NUL authcid NUL passwd`.
pub(super) fn parse_plain(p: &[u8]) -> Option<AuthIdentity> {
    let mut parts = p.split(|&b| b == 0);
    let (authzid, authcid, passwd) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || passwd.is_empty() {
        return None;
    }
    let password = std::str::from_utf8(passwd).ok()?;
    Some(AuthIdentity::Password {
        authzid: if authzid.is_empty() {
            None
        } else {
            Some(name(authzid)?)
        },
        username: name(authcid)?,
        password: SecretString::from(password),
    })
}

/// The `auth=` value: `Bearer <token>`, scheme in any case.
fn bearer_token(v: &str) -> Option<SecretString> {
    let scheme = v.get(..7)?;
    let token = &v[7..];
    (scheme.eq_ignore_ascii_case("Bearer ") && !token.is_empty()).then(|| SecretString::from(token))
}

/// Google's XOAUTH2: `user=U ^A auth=Bearer T ^A ^A`.
pub(super) fn parse_xoauth2(p: &[u8]) -> Option<AuthIdentity> {
    let s = std::str::from_utf8(p).ok()?.strip_suffix("\x01\x01")?;
    let (mut user, mut token) = (None, None);
    for kv in s.split('\x01') {
        match kv.split_once('=')? {
            ("user", u) => user = Some(name(u.as_bytes())?),
            ("auth", v) => token = Some(bearer_token(v)?),
            _ => {}
        }
    }
    Some(AuthIdentity::Bearer {
        user: user?,
        token: token?,
        host: None,
        port: None,
    })
}

/// RFC 7628 §3.1: `gs2-header ^A *(key=value ^A) ^A`, the GS2 header
/// (RFC 5801 §4) being `n,a=U,` or `n,,` (`y` is taken as well).
pub(super) fn parse_oauthbearer(p: &[u8]) -> Option<AuthIdentity> {
    let s = std::str::from_utf8(p).ok()?;
    let (gs2, rest) = s.split_once('\x01')?;
    let mut header = gs2.split(',');
    let (flag, authzid, end) = (header.next()?, header.next()?, header.next()?);
    if !matches!(flag, "n" | "y") || !end.is_empty() || header.next().is_some() {
        return None;
    }
    let user = match authzid {
        "" => String::new(),
        a => name(saslname(a.strip_prefix("a=")?)?.as_bytes())?,
    };
    let kvpairs = rest.strip_suffix('\x01')?;
    let (mut host, mut port, mut token) = (None, None, None);
    if !kvpairs.is_empty() {
        for kv in kvpairs.strip_suffix('\x01')?.split('\x01') {
            match kv.split_once('=')? {
                ("host", h) => host = Some(h.to_owned()),
                ("port", n) => port = Some(n.parse::<u16>().ok()?),
                ("auth", v) => token = Some(bearer_token(v)?),
                _ => {}
            }
        }
    }
    Some(AuthIdentity::Bearer {
        user,
        token: token?,
        host,
        port,
    })
}

/// RFC 5801 §4 saslname: `=2C` is `,` and `=3D` is `=`; any other `=` is
/// malformed.
fn saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        match rest.get(i + 1..i + 3)? {
            "2C" | "2c" => out.push(','),
            "3D" | "3d" => out.push('='),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}
