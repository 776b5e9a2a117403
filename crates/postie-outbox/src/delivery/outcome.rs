//! What one delivery attempt means for the outbox: the server's replies or
//! the error, classified for the retry policy and explained.

use postie_proto::client::TransactionResult;
use postie_proto::reply::Reply;

use crate::outbox::{Claim, FailureClass, Outcome, RecipientOutcome, RecipientResult, ReplyRecord};
use postie::error::{Error, ErrorKind};
use postie::explain::{Context, Explanation, Retry, explain_reply};
use postie::mailer::Account;
use postie::message::ascii_domain;

/// A reply as the outbox records it.
pub(super) fn record(r: &Reply) -> ReplyRecord {
    ReplyRecord {
        code: r.code,
        enhanced: r.enhanced.map(|e| e.to_string()),
        text: r.text(),
    }
}

/// The explanation as one text for the outbox: what happened, then the fix.
pub(super) fn text(ex: &Explanation) -> String {
    let mut s = ex.summary.clone();
    if !ex.fix.is_empty() {
        s.push_str("\nfix: ");
        s.push_str(&ex.fix.join("; "));
    }
    s
}

fn one_line(r: &Reply) -> String {
    format!("{} {}", r.code, r.text().replace('\n', " "))
}

/// The outcome of a transaction that ran. A refusal of the whole message
/// (MAIL, or the end of data) that means "a daily quota is used up" is a
/// quota failure, whatever its class says (Gmail's `550 5.4.5`).
pub(super) fn from_transaction(
    claim: &Claim,
    t: &TransactionResult,
    account: &Account,
) -> (Outcome, String) {
    let ctx = Context {
        provider: account.provider,
        account: account.name.as_deref(),
        host: None,
    };
    let whole = if !t.mail.is_completion() {
        Some(&t.mail)
    } else {
        t.data.as_ref().filter(|d| !d.is_completion())
    };
    if let Some(r) = whole
        && let Some(ex) = explain_reply(r, &ctx)
        && (ex.retry == Retry::Hours || (!t.mail.is_completion() && is_auth_reply(r)))
    {
        let class = if ex.retry == Retry::Hours {
            FailureClass::Quota
        } else {
            FailureClass::Credentials
        };
        return (
            Outcome::Failed {
                class,
                reply: Some(record(r)),
                explanation: text(&ex),
            },
            one_line(r),
        );
    }
    if !t.mail.is_completion() {
        let class = if t.mail.is_transient() {
            FailureClass::Transient
        } else {
            FailureClass::Permanent
        };
        let ex = explain_reply(&t.mail, &ctx);
        return (
            Outcome::Failed {
                class,
                reply: Some(record(&t.mail)),
                explanation: ex.as_ref().map(text).unwrap_or_default(),
            },
            one_line(&t.mail),
        );
    }
    // A permanent refusal at the end of the data answers for the message
    // (RFC 5321 §4.1.1.4: one reply for the whole transaction), not for
    // each recipient: sendmail exits 65, not 67, and `queue show` says the
    // message was refused.
    if let Some(d) = t
        .data
        .as_ref()
        .filter(|d| !d.is_completion() && !d.is_transient())
    {
        let ex = explain_reply(d, &ctx);
        return (
            Outcome::Failed {
                class: FailureClass::Permanent,
                reply: Some(record(d)),
                explanation: ex.as_ref().map(text).unwrap_or_default(),
            },
            one_line(d),
        );
    }
    let mut per = Vec::with_capacity(claim.recipients.len());
    for r in &t.recipients {
        let rcpt_reply = r.reply.as_ref();
        let result = match (r.accepted, &t.data, rcpt_reply) {
            // Accepted at RCPT: the end of data decides.
            (true, Some(d), _) => by_class(d),
            (true, None, Some(rr)) => RecipientResult::TempFailed(record(rr)),
            (false, _, Some(rr)) => by_class(rr),
            (_, _, None) => RecipientResult::TempFailed(ReplyRecord {
                code: 451,
                enhanced: None,
                text: "not tried: the transaction ended before this recipient".into(),
            }),
        };
        // The address as it was queued (an IDN domain was sent in A-labels).
        let address = claim
            .recipients
            .iter()
            .find(|q| {
                ascii_domain(q)
                    .unwrap_or_else(|_| q.to_string())
                    .eq_ignore_ascii_case(r.address.as_ref())
            })
            .cloned()
            .unwrap_or_else(|| r.address.to_string());
        per.push(RecipientOutcome { address, result });
    }
    let detail = match &t.data {
        Some(d) => one_line(d),
        None => "no recipient was accepted".into(),
    };
    (Outcome::Transaction(per), detail)
}

fn by_class(r: &Reply) -> RecipientResult {
    if r.is_completion() {
        RecipientResult::Accepted(record(r))
    } else if r.is_transient() {
        RecipientResult::TempFailed(record(r))
    } else {
        RecipientResult::PermFailed(record(r))
    }
}

/// 530/534/535 at MAIL: the server wants other credentials.
fn is_auth_reply(r: &Reply) -> bool {
    matches!(r.code, 530 | 534 | 535)
}

/// The outcome of an attempt that failed before or during the transaction.
///
/// `settled`: this deliverer runs where the account's settings are meant to
/// be complete (the relay): a configuration or secret-store problem pauses
/// the account with its fix, since retrying for hours cannot mend it. A
/// one-shot deliverer (`sendmail` from cron, `queue run`) may just lack the
/// relay's environment, so for it such problems stay transient.
pub(super) fn from_error(e: &Error, ex: &Explanation, settled: bool) -> (Outcome, String) {
    let class = match e.kind() {
        _ if ex.retry == Retry::Hours => FailureClass::Quota,
        // The server refused the credentials: more attempts only risk
        // getting the account locked. Pause it and say so once.
        ErrorKind::Credentials => FailureClass::Credentials,
        ErrorKind::Config | ErrorKind::Secret if settled => FailureClass::Credentials,
        // The message itself is refused or cannot be read: final.
        ErrorKind::Rejected | ErrorKind::Message => FailureClass::Permanent,
        // Unreachable, TLS, protocol trouble, 4xx: try again later. So are
        // local problems (a password variable missing from this process's
        // environment, a secret store this process cannot open): they say
        // nothing about the account, and another deliverer (the relay, with
        // its environment) may well succeed, so they must not pause it.
        ErrorKind::Unavailable
        | ErrorKind::Tls
        | ErrorKind::Protocol
        | ErrorKind::Transient
        | ErrorKind::Io
        | ErrorKind::Input
        | ErrorKind::Secret
        | ErrorKind::Config
        | ErrorKind::Usage => FailureClass::Transient,
    };
    let detail = match e.reply() {
        Some(r) => format!("{}: {}", e.message(), one_line(r)),
        None => e.message().to_string(),
    };
    if let Some(wait) = e.retry_after()
        && class == FailureClass::Transient
    {
        let explanation = format!(
            "{}\n{}\nthe service asked to wait {} before trying again",
            e.message(),
            text(ex),
            humantime::format_duration(wait)
        );
        return (Outcome::Throttled { wait, explanation }, detail);
    }
    // The error's own words first: the catalog's summary is general
    // ("the configuration is incomplete"), the message says which part.
    let explanation = if ex.summary == e.message() {
        text(ex)
    } else {
        format!("{}\n{}", e.message(), text(ex))
    };
    (
        Outcome::Failed {
            class,
            reply: e.reply().map(record),
            explanation,
        },
        detail,
    )
}
