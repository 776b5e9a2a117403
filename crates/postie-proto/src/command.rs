//! Client commands, encoded in one place, and their transcript form.
//!
//! Every argument is a validated type ([`Address`], [`Domain`],
//! [`Mechanism`]) or is encoded here (xtext, base64), so no command line can
//! carry a CR or LF that the caller slipped in.

use std::fmt::Write as _;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};

use crate::address::{Address, Domain};
use crate::sasl::Mechanism;

/// Longest command line including CRLF (RFC 5321 §4.5.3.1.4). RFC 4954 §4
/// applies it to `AUTH` with an initial response.
pub const MAX_COMMAND_LINE: usize = 512;

/// The `BODY=` parameter of MAIL (RFC 6152, RFC 3030).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// `BODY=7BIT`.
    SevenBit,
    /// `BODY=8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BODY=BINARYMIME` (RFC 3030; requires BDAT).
    BinaryMime,
}

impl Body {
    fn keyword(self) -> &'static str {
        match self {
            Body::SevenBit => "7BIT",
            Body::EightBitMime => "8BITMIME",
            Body::BinaryMime => "BINARYMIME",
        }
    }
}

/// The DSN `RET=` parameter (RFC 3461 §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ret {
    /// `RET=FULL`: return the whole message in a failure DSN.
    Full,
    /// `RET=HDRS`: return the headers only.
    Headers,
}

/// Parameters of `MAIL FROM`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MailParams {
    /// `SIZE=<n>` (RFC 1870): the message size in octets.
    pub size: Option<u64>,
    /// `BODY=`.
    pub body: Option<Body>,
    /// `SMTPUTF8` (RFC 6531).
    pub smtputf8: bool,
    /// DSN `RET=`.
    pub ret: Option<Ret>,
    /// DSN `ENVID=`, xtext-encoded when sent (RFC 3461 §4.4).
    pub envid: Option<String>,
}

/// The DSN `NOTIFY=` parameter (RFC 3461 §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Notify {
    /// `NOTIFY=NEVER`.
    Never,
    /// Any combination of SUCCESS, FAILURE and DELAY.
    On {
        /// `SUCCESS`.
        success: bool,
        /// `FAILURE`.
        failure: bool,
        /// `DELAY`.
        delay: bool,
    },
}

/// Parameters of `RCPT TO`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RcptParams {
    /// DSN `NOTIFY=`.
    pub notify: Option<Notify>,
    /// DSN `ORCPT=`: the original recipient (RFC 3461 §4.2, RFC 6533).
    pub orcpt: Option<Address>,
}

/// A client command.
///
/// `Debug` never shows a secret: the SASL fields are [`SecretString`]s,
/// whose `Debug` prints `[REDACTED]`.
#[derive(Clone, Debug)]
pub enum Command {
    /// `EHLO <domain>`.
    Ehlo(Domain),
    /// `HELO <domain>`.
    Helo(Domain),
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH <mechanism> [<initial-response>]` (RFC 4954).
    Auth {
        /// The mechanism.
        mechanism: Mechanism,
        /// The base64 initial response; an empty one is sent as `=`.
        initial_response: Option<SecretString>,
    },
    /// A base64 response to a `334` challenge, alone on its line.
    AuthResponse(SecretString),
    /// `*`: cancels an AUTH exchange (RFC 4954 §4).
    AuthCancel,
    /// `MAIL FROM:<…>`; `None` is the null reverse path `<>`.
    Mail {
        /// The reverse path.
        from: Option<Address>,
        /// Parameters.
        params: MailParams,
    },
    /// `RCPT TO:<…>`.
    Rcpt {
        /// The forward path.
        to: Address,
        /// Parameters.
        params: RcptParams,
    },
    /// `DATA`.
    Data,
    /// `BDAT <size> [LAST]` (RFC 3030); the chunk follows the line.
    Bdat {
        /// Octets in the chunk.
        size: u64,
        /// True for the final chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
}

impl Command {
    /// The command verb.
    pub fn verb(&self) -> &'static str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
            Command::AuthResponse(_) => "",
            Command::AuthCancel => "*",
            Command::Mail { .. } => "MAIL",
            Command::Rcpt { .. } => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Quit => "QUIT",
        }
    }

    /// Appends the exact wire line, CRLF included.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Command::Auth {
                mechanism,
                initial_response,
            } => {
                out.extend_from_slice(b"AUTH ");
                out.extend_from_slice(mechanism.name().as_bytes());
                if let Some(ir) = initial_response {
                    out.push(b' ');
                    push_base64(out, ir, true);
                }
            }
            Command::AuthResponse(r) => push_base64(out, r, false),
            other => out.extend_from_slice(other.public_line().as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
    }

    /// The wire line as bytes, CRLF included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }

    /// The line for a transcript, without CRLF. Secrets are replaced by a
    /// note that gives their length and what they are:
    /// `AUTH PLAIN <redacted 24 bytes: PLAIN credentials>`,
    /// `AUTH XOAUTH2 <redacted 412 bytes: user=me@example.com, bearer token>`.
    /// A bare [`Command::AuthResponse`] shows as `<redacted N bytes>`; the
    /// session, which knows the step, names it (`LOGIN password`).
    pub fn transcript(&self) -> String {
        match self {
            Command::Auth {
                mechanism,
                initial_response: Some(ir),
            } => format!(
                "AUTH {} {}",
                mechanism.name(),
                redacted(ir.expose_secret().len(), ir_note(mechanism, ir).as_deref())
            ),
            Command::Auth {
                mechanism,
                initial_response: None,
            } => format!("AUTH {}", mechanism.name()),
            Command::AuthResponse(r) => redacted(r.expose_secret().len(), None),
            other => other.public_line(),
        }
    }

    /// The line of a command without secrets.
    fn public_line(&self) -> String {
        match self {
            Command::Ehlo(d) => format!("EHLO {d}"),
            Command::Helo(d) => format!("HELO {d}"),
            Command::Mail { from, params } => {
                let mut s = format!("MAIL FROM:<{}>", from.as_ref().map_or("", Address::as_str));
                push_mail_params(&mut s, params);
                s
            }
            Command::Rcpt { to, params } => {
                let mut s = format!("RCPT TO:<{to}>");
                push_rcpt_params(&mut s, params);
                s
            }
            Command::Bdat { size, last: true } => format!("BDAT {size} LAST"),
            Command::Bdat { size, last: false } => format!("BDAT {size}"),
            Command::Auth { .. } | Command::AuthResponse(_) => "AUTH".into(),
            other => other.verb().into(),
        }
    }
}

/// The transcript stand-in for a secret of `len` octets.
pub fn redacted(len: usize, note: Option<&str>) -> String {
    match note {
        Some(n) => format!("<redacted {len} bytes: {n}>"),
        None => format!("<redacted {len} bytes>"),
    }
}

/// Names an initial response. The bearer mechanisms show the user name,
/// which is not a secret and is what one needs to see when a token is for
/// the wrong mailbox (MailKit#962).
fn ir_note(mechanism: &Mechanism, ir: &SecretString) -> Option<String> {
    let user = || -> Option<String> {
        let raw = SecretString::from(String::from_utf8(B64.decode(ir.expose_secret()).ok()?).ok()?);
        let raw = raw.expose_secret();
        let user = match mechanism {
            Mechanism::XOAuth2 => raw.strip_prefix("user=")?.split('\x01').next()?,
            _ => raw.split(',').nth(1)?.strip_prefix("a=")?,
        };
        Some(user.replace("=2C", ",").replace("=3D", "="))
    };
    match mechanism {
        Mechanism::Plain => Some("PLAIN credentials".into()),
        Mechanism::Login => Some("LOGIN username".into()),
        Mechanism::XOAuth2 | Mechanism::OAuthBearer => Some(match user() {
            Some(u) => format!("user={u}, bearer token"),
            None => "bearer token".into(),
        }),
        _ => None,
    }
}

/// Writes a base64 value, keeping only the base64 alphabet: responses are
/// base64 by definition (RFC 4954 §4), and filtering makes a CR or LF inside
/// a hand-built secret harmless.
fn push_base64(out: &mut Vec<u8>, value: &SecretString, empty_as_equals: bool) {
    let v = value.expose_secret();
    if v.is_empty() && empty_as_equals {
        // RFC 4954 §4: a zero-length initial response is sent as "=".
        out.push(b'=');
        return;
    }
    out.extend(
        v.bytes()
            .filter(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')),
    );
}

fn push_mail_params(s: &mut String, p: &MailParams) {
    if let Some(n) = p.size {
        let _ = write!(s, " SIZE={n}");
    }
    if let Some(b) = p.body {
        let _ = write!(s, " BODY={}", b.keyword());
    }
    if p.smtputf8 {
        s.push_str(" SMTPUTF8");
    }
    match p.ret {
        Some(Ret::Full) => s.push_str(" RET=FULL"),
        Some(Ret::Headers) => s.push_str(" RET=HDRS"),
        None => {}
    }
    if let Some(id) = &p.envid {
        s.push_str(" ENVID=");
        push_xtext(s, id);
    }
}

fn push_rcpt_params(s: &mut String, p: &RcptParams) {
    match p.notify {
        Some(Notify::Never) => s.push_str(" NOTIFY=NEVER"),
        Some(Notify::On {
            success,
            failure,
            delay,
        }) => {
            let list: Vec<&str> = [(success, "SUCCESS"), (failure, "FAILURE"), (delay, "DELAY")]
                .into_iter()
                .filter_map(|(on, k)| on.then_some(k))
                .collect();
            if !list.is_empty() {
                let _ = write!(s, " NOTIFY={}", list.join(","));
            }
        }
        None => {}
    }
    if let Some(a) = &p.orcpt {
        if a.needs_smtputf8() {
            s.push_str(" ORCPT=utf-8;");
            push_utf8_addr_xtext(s, a.as_str());
        } else {
            s.push_str(" ORCPT=rfc822;");
            push_xtext(s, a.as_str());
        }
    }
}

/// xtext (RFC 3461 §4): printable ASCII except `+` and `=` as is, every
/// other octet as `+XX`.
pub fn push_xtext(s: &mut String, value: &str) {
    for b in value.bytes() {
        if (33..=126).contains(&b) && b != b'+' && b != b'=' {
            s.push(b as char);
        } else {
            let _ = write!(s, "+{b:02X}");
        }
    }
}

/// utf-8-addr-xtext (RFC 6533 §3): `\x{HEX}` for non-ASCII and for the
/// characters xtext reserves.
fn push_utf8_addr_xtext(s: &mut String, value: &str) {
    for c in value.chars() {
        if c.is_ascii_graphic() && !matches!(c, '+' | '=' | '\\') {
            s.push(c);
        } else {
            let _ = write!(s, "\\x{{{:X}}}", u32::from(c));
        }
    }
}

#[cfg(test)]
mod tests;
