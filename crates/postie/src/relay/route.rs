//! Which account a relayed message goes out through, and the envelope
//! sender it gets upstream.

use crate::config::Config;

/// The account whose address is `addr` (case-insensitive, as providers
/// treat their own addresses).
pub(crate) fn account_for(config: &Config, addr: &str) -> Option<String> {
    config
        .accounts
        .iter()
        .find(|(_, a)| a.email.eq_ignore_ascii_case(addr))
        .map(|(n, _)| n.clone())
}

/// What the relay reads from a message's header: the `From:` address (for
/// routing), the subject and Message-ID (for `postie queue list`).
#[derive(Default)]
pub(crate) struct Head {
    pub(crate) from: Option<String>,
    pub(crate) subject: Option<String>,
    pub(crate) message_id: Option<String>,
}

pub(crate) fn head(bytes: &[u8]) -> Head {
    let Some(msg) = mail_parser::MessageParser::new().parse_headers(bytes) else {
        return Head::default();
    };
    Head {
        from: msg
            .from()
            .and_then(|f| f.first())
            .and_then(|a| a.address())
            .map(|a| a.trim().to_string())
            .filter(|a| !a.is_empty()),
        subject: msg.subject().map(|s| s.chars().take(200).collect()),
        message_id: msg.message_id().map(|m| format!("<{m}>")),
    }
}

/// The envelope sender upstream: the client's, when it is the account's
/// own address or another account's address (an alias the provider may
/// accept); otherwise the account's address, since providers refuse or
/// rewrite senders that are not the authenticated user's (Microsoft
/// answers `5.2.252 SendAsDenied`).
pub(crate) fn upstream_sender(config: &Config, account: &str, client: Option<&str>) -> String {
    let own = config
        .accounts
        .get(account)
        .map(|a| a.email.clone())
        .unwrap_or_default();
    match client {
        Some(c) if account_for(config, c).is_some() => c.to_string(),
        _ => own,
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
