//! Which account a relayed message goes out through, and the envelope
//! sender it gets upstream.

use postie::config::Config;

/// The envelope sender upstream: the client's when it is the account's own
/// address, else the account's address. Providers refuse or rewrite senders
/// that are not the authenticated user's (Microsoft answers `5.2.252
/// SendAsDenied`), so a cron job's `root@host` goes out as the account.
pub(crate) fn upstream_sender(config: &Config, account: &str, client: Option<&str>) -> String {
    let own = config
        .accounts
        .get(account)
        .map(|a| a.email.as_str())
        .unwrap_or_default();
    match client {
        Some(c) if c.eq_ignore_ascii_case(own) => c.to_string(),
        _ => own.to_string(),
    }
}

/// The 550 for a sender that matches no account.
pub(crate) fn no_account_text(config: &Config, sender: Option<&str>) -> String {
    let who = sender
        .map(|s| format!("<{s}>"))
        .unwrap_or_else(|| "this message".into());
    let addrs: Vec<String> = config
        .accounts
        .iter()
        .map(|(n, a)| format!("{n} <{}>", a.email))
        .collect();
    format!(
        "5.7.1 postie relay: {who} matches no account. Send as one of: {}; or set [relay] fallback_account",
        addrs.join(", ")
    )
}
