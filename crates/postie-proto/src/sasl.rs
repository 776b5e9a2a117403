//! SASL client mechanisms for SMTP AUTH (RFC 4954) as step functions.
//!
//! PLAIN (RFC 4616), LOGIN (draft-murchison-sasl-login), XOAUTH2 (Google's
//! "OAuth 2.0 Mechanism") and OAUTHBEARER (RFC 7628). All values that cross
//! this API are already base64, as they appear on the wire.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::{ExposeSecret, SecretString};
use thiserror::Error;

/// Longest SASL mechanism name (RFC 4422 §3.1).
const MAX_MECHANISM_LEN: usize = 20;

/// A SASL mechanism as advertised in `250-AUTH …`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `LOGIN`: username and password, each after its own 334 prompt.
    Login,
    /// `XOAUTH2`: Google's and Microsoft's bearer-token mechanism.
    XOAuth2,
    /// `OAUTHBEARER` (RFC 7628).
    OAuthBearer,
    /// `CRAM-MD5`: recognised so it can be listed, not implemented.
    CramMd5,
    /// Any other mechanism, kept by name (uppercase).
    Other(String),
}

impl Mechanism {
    /// The name as sent in `AUTH <name>`. Characters outside the SASL name
    /// alphabet (A–Z, 0–9, `-`, `_`) are dropped so that a hand-built
    /// `Other` can never smuggle anything into a command line.
    pub fn name(&self) -> String {
        match self {
            Mechanism::Plain => "PLAIN".into(),
            Mechanism::Login => "LOGIN".into(),
            Mechanism::XOAuth2 => "XOAUTH2".into(),
            Mechanism::OAuthBearer => "OAUTHBEARER".into(),
            Mechanism::CramMd5 => "CRAM-MD5".into(),
            Mechanism::Other(s) => s
                .chars()
                .map(|c| c.to_ascii_uppercase())
                .filter(|&c| is_sasl_name_char(c))
                .collect(),
        }
    }

    /// True when this mechanism can use `creds`: PLAIN and LOGIN take a
    /// password, XOAUTH2 and OAUTHBEARER a bearer token.
    pub fn fits(&self, creds: &Credentials) -> bool {
        matches!(
            (self, creds),
            (
                Mechanism::Plain | Mechanism::Login,
                Credentials::Password { .. }
            ) | (
                Mechanism::XOAuth2 | Mechanism::OAuthBearer,
                Credentials::Bearer { .. }
            )
        )
    }
}

fn is_sasl_name_char(c: char) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit() || c == '-' || c == '_'
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

impl FromStr for Mechanism {
    type Err = SaslError;
    /// Case-insensitive; rejects names that are not SASL mechanism names.
    fn from_str(s: &str) -> Result<Mechanism, SaslError> {
        let up = s.to_ascii_uppercase();
        if up.is_empty() || up.len() > MAX_MECHANISM_LEN || !up.chars().all(is_sasl_name_char) {
            return Err(SaslError::InvalidMechanismName(s.to_owned()));
        }
        Ok(match up.as_str() {
            "PLAIN" => Mechanism::Plain,
            "LOGIN" => Mechanism::Login,
            "XOAUTH2" => Mechanism::XOAuth2,
            "OAUTHBEARER" => Mechanism::OAuthBearer,
            "CRAM-MD5" => Mechanism::CramMd5,
            _ => Mechanism::Other(up),
        })
    }
}

/// What the client authenticates with.
#[derive(Clone, Debug)]
pub enum Credentials {
    /// A user name and a password (or app password).
    Password {
        /// The user name, usually the full address.
        username: String,
        /// The password.
        password: SecretString,
    },
    /// An OAuth 2.0 access token.
    Bearer {
        /// The mailbox the token is for (`user=` / `a=`).
        user: String,
        /// The access token.
        token: SecretString,
    },
}

impl Credentials {
    /// The user name; not a secret.
    pub fn user(&self) -> &str {
        match self {
            Credentials::Password { username, .. } => username,
            Credentials::Bearer { user, .. } => user,
        }
    }
}

/// Why a SASL client could not be set up.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum SaslError {
    /// The mechanism is known but this crate does not implement it.
    #[error("SASL mechanism {0} is not supported")]
    Unsupported(Mechanism),
    /// The mechanism needs the other kind of credentials.
    #[error("SASL mechanism {mechanism} needs {needs}, but {given} was given")]
    CredentialsMismatch {
        /// The mechanism.
        mechanism: Mechanism,
        /// What it needs.
        needs: &'static str,
        /// What was given.
        given: &'static str,
    },
    /// A credential contains a byte the mechanism uses as a separator.
    #[error("the {field} contains a character that {mechanism} cannot carry")]
    InvalidCredentials {
        /// The mechanism.
        mechanism: Mechanism,
        /// Which credential field.
        field: &'static str,
    },
    /// Not a SASL mechanism name.
    #[error("{0:?} is not a SASL mechanism name")]
    InvalidMechanismName(String),
}

/// The decoded error challenge of XOAUTH2 or OAUTHBEARER: a `334` whose
/// payload is base64 JSON such as
/// `{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}`.
#[derive(Clone, Debug, PartialEq)]
pub struct SaslServerError {
    /// The decoded challenge text as sent.
    pub raw: String,
    /// The parsed JSON, when it parses.
    pub json: Option<serde_json::Value>,
    /// `status` (Gmail: "400" or "401"; RFC 7628: "invalid_token").
    pub status: Option<String>,
    /// `scope`: the scope the token should have had.
    pub scope: Option<String>,
    /// `schemes` ("Bearer", "bearer mac").
    pub schemes: Option<String>,
}

impl SaslServerError {
    /// Decodes a challenge leniently: any text is kept in `raw`; JSON fields
    /// are read with case-insensitive keys, and numbers are accepted as
    /// strings. Nothing here depends on the case of the values.
    pub fn from_challenge(decoded: &[u8]) -> SaslServerError {
        let raw = String::from_utf8_lossy(decoded).into_owned();
        let json: Option<serde_json::Value> = serde_json::from_str(raw.trim()).ok();
        let field = |name: &str| -> Option<String> {
            let obj = json.as_ref()?.as_object()?;
            let (_, v) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
            match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        };
        SaslServerError {
            status: field("status"),
            scope: field("scope"),
            schemes: field("schemes"),
            json: json.clone(),
            raw,
        }
    }
}

/// What to send after a `334` challenge.
#[derive(Clone, Debug)]
pub enum SaslStep {
    /// Send this base64 response.
    Respond(SecretString),
    /// The server reported an error inside the exchange. Send `response`
    /// (empty for XOAUTH2, `AQ==` for OAUTHBEARER, RFC 7628 §3.2.3); the
    /// server then sends the final failure reply.
    ServerError {
        /// The response that ends the exchange.
        response: SecretString,
        /// The decoded error.
        detail: SaslServerError,
    },
    /// The challenge makes no sense for this mechanism; the caller should
    /// cancel the exchange with `*` (RFC 4954 §4).
    Invalid(String),
}

#[derive(Clone, Debug)]
enum Kind {
    Plain,
    Login {
        username: String,
        password: SecretString,
    },
    Bearer {
        user: String,
    },
}

/// A client-side SASL exchange for one mechanism.
#[derive(Clone, Debug)]
pub struct SaslClient {
    mechanism: Mechanism,
    kind: Kind,
    /// The first response (PLAIN and the bearer mechanisms), base64.
    payload: Option<SecretString>,
    payload_sent: bool,
    steps: usize,
    last_note: ResponseNote,
}

/// What the most recent response was, for a transcript that names it
/// without showing it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponseNote {
    /// Nothing sent yet.
    None,
    /// A secret; the text says what it is (`PLAIN credentials`,
    /// `LOGIN password`, `user=a@b.example, bearer token`).
    Secret(String),
    /// The fixed reply to an error challenge; not a secret.
    ErrorAcknowledgement,
}

impl SaslClient {
    /// Prepares an exchange. `host` and `port` go into OAUTHBEARER's
    /// `host=` and `port=` fields.
    pub fn new(
        mechanism: Mechanism,
        creds: &Credentials,
        host: &str,
        port: u16,
    ) -> Result<SaslClient, SaslError> {
        let mismatch = |needs, given| SaslError::CredentialsMismatch {
            mechanism: mechanism.clone(),
            needs,
            given,
        };
        let invalid = |field| SaslError::InvalidCredentials {
            mechanism: mechanism.clone(),
            field,
        };
        let (kind, payload) = match (&mechanism, creds) {
            (Mechanism::Plain, Credentials::Password { username, password }) => {
                // RFC 4616 §2: NUL separates authzid, authcid and passwd.
                if username.contains('\0') {
                    return Err(invalid("user name"));
                }
                if password.expose_secret().contains('\0') {
                    return Err(invalid("password"));
                }
                let raw = format!("\0{username}\0{}", password.expose_secret());
                (Kind::Plain, Some(b64(raw)))
            }
            (Mechanism::Login, Credentials::Password { username, password }) => (
                Kind::Login {
                    username: username.clone(),
                    password: password.clone(),
                },
                None,
            ),
            (Mechanism::XOAuth2, Credentials::Bearer { user, token }) => {
                check_bearer(user, token).map_err(invalid)?;
                let raw = format!(
                    "user={user}\x01auth=Bearer {}\x01\x01",
                    token.expose_secret()
                );
                (Kind::Bearer { user: user.clone() }, Some(b64(raw)))
            }
            (Mechanism::OAuthBearer, Credentials::Bearer { user, token }) => {
                check_bearer(user, token).map_err(invalid)?;
                // RFC 7628 §3.1 with the GS2 header of RFC 5801 §4, where
                // ',' and '=' in the authzid become "=2C" and "=3D".
                if host.contains(['\x01', '\0']) {
                    return Err(invalid("server host"));
                }
                // host= is optional; an empty one would only confuse.
                let authzid = user.replace('=', "=3D").replace(',', "=2C");
                let host = if host.is_empty() {
                    String::new()
                } else {
                    format!("host={host}\x01")
                };
                let raw = format!(
                    "n,a={authzid},\x01{host}port={port}\x01auth=Bearer {}\x01\x01",
                    token.expose_secret()
                );
                (Kind::Bearer { user: user.clone() }, Some(b64(raw)))
            }
            (Mechanism::Plain | Mechanism::Login, Credentials::Bearer { .. }) => {
                return Err(mismatch("a password", "a bearer token"));
            }
            (Mechanism::XOAuth2 | Mechanism::OAuthBearer, Credentials::Password { .. }) => {
                return Err(mismatch("a bearer token", "a password"));
            }
            (m, _) => return Err(SaslError::Unsupported(m.clone())),
        };
        Ok(SaslClient {
            mechanism,
            kind,
            payload,
            payload_sent: false,
            steps: 0,
            last_note: ResponseNote::None,
        })
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> &Mechanism {
        &self.mechanism
    }

    /// Length in octets of the initial response, without taking it. The
    /// caller uses it for the 512-octet rule of RFC 4954 §4.
    pub fn initial_response_len(&self) -> Option<usize> {
        match &self.payload {
            Some(p) if !self.payload_sent => Some(p.expose_secret().len()),
            _ => None,
        }
    }

    /// Takes the initial response for `AUTH <mech> <ir>`. LOGIN has none.
    /// When the caller does not take it, the first `334` gets it instead.
    pub fn initial_response(&mut self) -> Option<SecretString> {
        if self.payload_sent {
            return None;
        }
        let p = self.payload.clone()?;
        self.payload_sent = true;
        self.last_note = self.payload_note();
        Some(p)
    }

    fn payload_note(&self) -> ResponseNote {
        ResponseNote::Secret(match &self.kind {
            Kind::Plain => "PLAIN credentials".into(),
            Kind::Bearer { user } => format!("user={user}, bearer token"),
            Kind::Login { .. } => "LOGIN credentials".into(),
        })
    }

    /// What the most recent response was, for the transcript.
    pub fn last_response_note(&self) -> &ResponseNote {
        &self.last_note
    }

    /// Answers a `334` challenge (its base64 text, possibly empty).
    pub fn step(&mut self, challenge_b64: &str) -> SaslStep {
        self.steps += 1;
        let Ok(challenge) = B64.decode(challenge_b64.trim()) else {
            return SaslStep::Invalid(format!(
                "the server's challenge is not base64: {challenge_b64:?}"
            ));
        };
        if let Kind::Login { username, password } = &self.kind {
            // Count the prompts; their text ("Username:", "Password:") is not
            // standardised and some servers localise it.
            let (value, note) = match self.steps {
                1 => (username.clone(), "LOGIN username"),
                2 => (password.expose_secret().to_owned(), "LOGIN password"),
                _ => return SaslStep::Invalid("LOGIN got a third challenge".into()),
            };
            self.last_note = ResponseNote::Secret(note.into());
            return SaslStep::Respond(b64(value));
        }
        if !self.payload_sent {
            // No initial response was sent: the first (empty) 334 asks for it.
            return match self.initial_response() {
                Some(p) => SaslStep::Respond(p),
                None => SaslStep::Invalid("no response to send".into()),
            };
        }
        match self.kind {
            Kind::Plain => SaslStep::Invalid("PLAIN got a challenge after its credentials".into()),
            Kind::Bearer { .. } => {
                // Any challenge after the token is the error report.
                let response = match self.mechanism {
                    Mechanism::OAuthBearer => B64.encode([0x01]),
                    _ => String::new(),
                };
                self.last_note = ResponseNote::ErrorAcknowledgement;
                SaslStep::ServerError {
                    response: response.into(),
                    detail: SaslServerError::from_challenge(&challenge),
                }
            }
            Kind::Login { .. } => SaslStep::Invalid("unreachable LOGIN state".into()),
        }
    }
}

fn check_bearer(user: &str, token: &SecretString) -> Result<(), &'static str> {
    if user.contains(['\x01', '\0']) {
        return Err("user name");
    }
    if token.expose_secret().contains(['\x01', '\0']) {
        return Err("token");
    }
    Ok(())
}

fn b64(raw: String) -> SecretString {
    let raw = SecretString::from(raw);
    SecretString::from(B64.encode(raw.expose_secret().as_bytes()))
}

/// Picks the mechanism to use from what the server offered.
///
/// `preferred` wins when the server offers it and it fits the credentials;
/// otherwise passwords use PLAIN, then LOGIN, and bearer tokens use
/// OAUTHBEARER, then XOAUTH2 (Microsoft offers only XOAUTH2).
pub fn choose(
    offered: &[Mechanism],
    creds: &Credentials,
    preferred: Option<&Mechanism>,
) -> Option<Mechanism> {
    if let Some(p) = preferred
        && offered.contains(p)
        && p.fits(creds)
    {
        return Some(p.clone());
    }
    let order: &[Mechanism] = match creds {
        Credentials::Password { .. } => &[Mechanism::Plain, Mechanism::Login],
        Credentials::Bearer { .. } => &[Mechanism::OAuthBearer, Mechanism::XOAuth2],
    };
    order.iter().find(|m| offered.contains(m)).cloned()
}

#[cfg(test)]
mod tests;
