//! The explanation catalog: for a failure, what happened, the likely causes
//! in order, the fix, and whether trying again can help.
//!
//! One engine and one entry format ([`entry`]) for every failure postie
//! explains: SMTP replies ([`smtp`], keyed by provider family, reply code,
//! enhanced code and text, since Microsoft answers many problems with the
//! same `535`), authorization servers' errors ([`oauth`], keyed by error
//! code, AADSTS number, grant and text), and what postie finds itself
//! ([`findings`]: the doctor's checks, failures without a reply). The first
//! matching entry wins, so specific entries come before generic ones. It
//! feeds `postie send`, the outbox and the doctor.
//!
//! The library states cause and fix in its own terms: where the fix is
//! something postie does (sign in again, add the account), the entry names
//! an [`Action`] and the front words it ([`set_wording`]): the `postie`
//! command says `postie login work`.

use postie_proto::reply::Reply;
use serde::Serialize;

use crate::error::{Error, ErrorKind, OAuthErrorInfo};
use crate::provider::ProviderId;

mod entry;
mod findings;
mod oauth;
mod smtp;

pub use crate::wording::{Action, Plain, Setting, Wording, say, say_setting, set_wording};

use entry::{Entry, Family};

/// Whether and when retrying can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retry {
    /// Retrying the same thing cannot succeed; something must change first.
    No,
    /// Retrying later can succeed with no change.
    Later,
    /// Retry only after hours (a daily quota resets on a rolling window).
    Hours,
}

/// An explanation of one failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// Stable identifier of the catalog entry (for tests and docs).
    pub id: &'static str,
    /// One sentence: what happened.
    pub summary: String,
    /// The most likely causes, most likely first.
    pub causes: Vec<String>,
    /// What to do: commands or URLs.
    pub fix: Vec<String>,
    /// Whether retrying can help.
    pub retry: Retry,
    /// The actions of postie that the fix names (worded in `fix` by the
    /// front's [`Wording`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub actions: Vec<Action>,
}

/// An error with its explanation, flat: what `--json` prints for a failed
/// command and what the Python package's exceptions carry.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorReport {
    /// [`ErrorKind::as_str`].
    pub kind: &'static str,
    /// The error's message.
    pub message: String,
    /// The server's reply code, when a reply caused it.
    pub code: Option<u16>,
    /// Its enhanced status code (`5.7.8`).
    pub enhanced: Option<String>,
    /// Its text, all lines.
    pub text: Option<String>,
    /// The SMTP stage it failed at (`greeting`, `auth`, `mail` ...).
    pub stage: Option<String>,
    /// The server's SASL error challenge (an OAuth error object), decoded.
    pub oauth_error: Option<String>,
    /// [`Explanation::id`].
    pub explanation_id: &'static str,
    /// [`Explanation::summary`].
    pub summary: String,
    /// [`Explanation::causes`].
    pub causes: Vec<String>,
    /// [`Explanation::fix`].
    pub fix: Vec<String>,
    /// [`Explanation::retry`].
    pub retry: Retry,
    /// [`Explanation::actions`].
    pub actions: Vec<Action>,
}

impl ErrorReport {
    /// `err` explained in `ctx`.
    pub fn new(err: &Error, ctx: &Context<'_>) -> ErrorReport {
        let x = explain(err, ctx);
        let reply = err.reply();
        ErrorReport {
            kind: err.kind().as_str(),
            message: err.message().to_string(),
            code: reply.map(|r| r.code),
            enhanced: reply.and_then(|r| r.enhanced.map(|e| e.to_string())),
            text: reply.map(|r| r.text()),
            stage: err.stage().map(|s| format!("{s:?}").to_lowercase()),
            oauth_error: err.sasl().map(|s| s.raw.clone()),
            explanation_id: x.id,
            summary: x.summary,
            causes: x.causes,
            fix: x.fix,
            retry: x.retry,
            actions: x.actions,
        }
    }
}

/// Context that makes an explanation concrete.
#[derive(Clone, Debug, Default)]
pub struct Context<'a> {
    /// The provider, when known (from the account or guessed from the reply).
    pub provider: Option<ProviderId>,
    /// The account name, for the actions the fix names.
    pub account: Option<&'a str>,
    /// The server's host name.
    pub host: Option<&'a str>,
}

/// The identifiers of every catalog entry for server replies, in matching
/// order (for tests that prove each one is reachable).
pub fn reply_catalog_ids() -> Vec<&'static str> {
    smtp::ENTRIES.iter().map(|e| e.id).collect()
}

/// The identifiers of every entry for authorization-server errors, and of
/// their fallback.
pub fn oauth_catalog_ids() -> Vec<&'static str> {
    oauth::ENTRIES
        .iter()
        .map(|e| e.id)
        .chain([oauth::FALLBACK])
        .collect()
}

/// The identifiers of the entries for what postie finds itself.
pub fn finding_ids() -> Vec<&'static str> {
    findings::ENTRIES.iter().map(|e| e.id).collect()
}

/// Explain a server reply, or `None` when the catalog has nothing for it.
pub fn explain_reply(reply: &Reply, ctx: &Context<'_>) -> Option<Explanation> {
    let fam = Family::of_reply(ctx.provider, reply);
    let text = reply.text().to_ascii_lowercase();
    smtp::ENTRIES
        .iter()
        .find(|e| e.matches_reply(fam, reply, &text))
        .map(|e| e.render(ctx, &[]))
}

/// Explain an OAuth authorization server's error (token endpoint, consent
/// redirect, device polling): `invalid_grant` and why it happens per
/// provider, scopes, client and redirect registration, consent, Microsoft's
/// AADSTS codes.
pub fn explain_oauth(info: &OAuthErrorInfo, ctx: &Context<'_>) -> Explanation {
    oauth::explain(info, ctx)
}

/// Explain something postie found itself: the finding `id` of the catalog,
/// with the `values` its texts name (`("host", "smtp.example.com")`).
///
/// # Panics
///
/// When `id` is not a finding of the catalog: a programming error, caught
/// by the tests that ask for every id a caller uses.
pub fn finding(id: &str, ctx: &Context<'_>, values: &[(&str, &str)]) -> Explanation {
    lookup(id).render(ctx, values)
}

fn lookup(id: &str) -> &'static Entry {
    findings::ENTRIES
        .iter()
        .find(|e| e.id == id)
        .unwrap_or_else(|| panic!("no finding '{id}' in the explanation catalog"))
}

/// Explain any error from the library: by its reply when it has one, by the
/// authorization server's OAuth error when it has one, else by its kind.
pub fn explain(err: &Error, ctx: &Context<'_>) -> Explanation {
    if err.reply().is_none()
        && let Some(info) = err.oauth()
    {
        return explain_oauth(info, ctx);
    }
    if let Some(reply) = err.reply()
        && let Some(mut x) = explain_reply(reply, ctx)
    {
        if let Some(sasl) = err.sasl() {
            // The server answered a bearer token with an OAuth error: the
            // generic "user name and password" reading does not apply.
            if x.id == "bad-credentials" {
                x = finding("oauth-token-refused", ctx, &[]);
            }
            x.causes
                .insert(0, format!("the server's OAuth error detail: {}", sasl.raw));
        }
        return x;
    }
    let m = err.message();
    if let Some(id) = err.finding() {
        return finding(id, ctx, &[("message", m)]);
    }
    let id = match err.kind() {
        ErrorKind::Unavailable if m.contains("before its greeting") => "closed-at-greeting",
        ErrorKind::Unavailable => "unreachable",
        ErrorKind::Tls if m.contains("not valid for the name") => "tls-name",
        ErrorKind::Tls if m.contains("expired") || m.contains("not valid yet") => "tls-expired",
        ErrorKind::Tls if m.contains("unknown authority") || m.contains("CA certificate") => {
            "tls-unknown-ca"
        }
        ErrorKind::Tls
            if m.contains("did not answer with TLS") || m.contains("used as implicit TLS") =>
        {
            "tls-not-implicit"
        }
        ErrorKind::Tls if m.contains("sent no greeting") => "tls-implicit-expected",
        ErrorKind::Tls if m.contains("STARTTLS") => "tls-starttls",
        ErrorKind::Tls => "tls",
        ErrorKind::Credentials => "credentials",
        ErrorKind::Transient => "transient",
        ErrorKind::Message => "message",
        ErrorKind::Config => "configuration",
        ErrorKind::Usage => "usage",
        ErrorKind::Secret => "secret-store",
        ErrorKind::Protocol | ErrorKind::Rejected | ErrorKind::Io if err.is_transient() => {
            "failure-transient"
        }
        ErrorKind::Protocol | ErrorKind::Rejected | ErrorKind::Io | ErrorKind::Input => "failure",
    };
    finding(id, ctx, &[("message", m)])
}
