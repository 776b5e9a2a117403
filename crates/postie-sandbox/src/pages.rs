//! The sandbox's HTML: the consent page, the device page, the mailbox.
//! Plain HTML forms, no script, every value escaped.

use std::fmt::Write as _;
use std::time::{Duration, UNIX_EPOCH};

use super::mailbox::{MessageView, StoredMessage};
use super::tokens::Consent;
use super::users::User;

/// Escapes text for HTML content and attribute values.
pub use postie::message::html_escape as esc;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:52em;margin:2em auto;padding:0 1em;color:#202124}\
table{border-collapse:collapse;width:100%}td,th{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd;vertical-align:top}\
button{font-size:1em;padding:.5em 1.4em;margin-right:.8em}.allow{background:#1a73e8;color:#fff;border:0}\
pre{white-space:pre-wrap;background:#f6f8fa;padding:.8em}.note{color:#5f6368;font-size:.9em}";

/// A whole page.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{} - postie sandbox</title>\
         <style>{STYLE}</style></head><body>\n{body}\n<p class=\"note\">postie sandbox: a local stand-in for Gmail. \
         Nothing here leaves this machine.</p></body></html>\n",
        esc(title)
    )
}

/// What a scope lets the client do, in Google's words where Google has them.
fn describe_scope(s: &str) -> String {
    match s {
        "https://mail.google.com/" => {
            "Read, compose, send, and permanently delete all your email from Gmail (IMAP, POP and SMTP)".into()
        }
        "https://www.googleapis.com/auth/gmail.send" => {
            "Send email on your behalf (Gmail API only: SMTP does not accept this scope)".into()
        }
        "email" => "See your primary email address".into(),
        "profile" => "See your personal info".into(),
        "openid" => "Associate you with your personal info".into(),
        other => other.to_string(),
    }
}

/// The consent page: who asks, for whom, for what; Allow or Deny.
pub fn consent(id: &str, c: &Consent, users: &[User]) -> String {
    let chosen = c
        .login_hint
        .as_deref()
        .and_then(|h| users.iter().find(|u| u.email.eq_ignore_ascii_case(h)))
        .unwrap_or(&users[0]);
    let mut accounts = String::new();
    for u in users {
        let checked = if std::ptr::eq(u, chosen) {
            " checked"
        } else {
            ""
        };
        let _ = write!(
            accounts,
            "<label><input type=\"radio\" name=\"user\" value=\"{0}\"{checked}> {0}</label><br>",
            esc(&u.email)
        );
    }
    let scopes: String = c
        .scope
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(|s| {
            format!(
                "<li>{} <span class=\"note\">({})</span></li>",
                esc(&describe_scope(s)),
                esc(s)
            )
        })
        .collect();
    page(
        "Sign in",
        &format!(
            "<h1><span id=\"client\">{client}</span> wants to access your account</h1>\n\
             <form method=\"post\" action=\"{action}\">\n\
             <input type=\"hidden\" name=\"consent\" value=\"{id}\">\n\
             <p>Account:</p><p id=\"accounts\">{accounts}</p>\n\
             <p>This will allow <b>{client}</b> to:</p><ul id=\"scopes\">{scopes}</ul>\n\
             <p class=\"note\">After your choice the browser goes back to {redirect}</p>\n\
             <button type=\"submit\" id=\"allow\" class=\"allow\" name=\"action\" value=\"allow\">Allow</button>\
             <button type=\"submit\" id=\"deny\" name=\"action\" value=\"deny\">Deny</button>\n\
             </form>",
            client = esc(&c.client_id),
            action = super::http::AUTHORIZE,
            id = esc(id),
            redirect = esc(&c.redirect_uri),
        ),
    )
}

/// The device page: type the code shown on the other device.
pub fn device_form(user_code: &str, found: Option<(&str, &str)>, users: &[User]) -> String {
    let mut accounts = String::new();
    for (i, u) in users.iter().enumerate() {
        let checked = if i == 0 { " checked" } else { "" };
        let _ = write!(
            accounts,
            "<label><input type=\"radio\" name=\"user\" value=\"{0}\"{checked}> {0}</label><br>",
            esc(&u.email)
        );
    }
    let what = match found {
        Some((client, scope)) => format!(
            "<p><b id=\"client\">{}</b> asks for: <span id=\"scope\">{}</span></p>",
            esc(client),
            esc(scope)
        ),
        None if user_code.is_empty() => String::new(),
        None => "<p id=\"error\">That code is not valid or has expired: check it, or start again on the device.</p>"
            .into(),
    };
    page(
        "Connect a device",
        &format!(
            "<h1>Connect a device</h1>\n{what}\n<form method=\"post\" action=\"{action}\">\n\
             <p><label>Code shown on the device: <input name=\"user_code\" id=\"user_code\" value=\"{code}\" autofocus></label></p>\n\
             <p>Account:</p><p>{accounts}</p>\n\
             <button type=\"submit\" id=\"allow\" class=\"allow\" name=\"action\" value=\"allow\">Allow</button>\
             <button type=\"submit\" id=\"deny\" name=\"action\" value=\"deny\">Deny</button>\n</form>",
            action = super::http::DEVICE,
            code = esc(user_code),
        ),
    )
}

/// A short page with one message.
pub fn notice(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p id=\"message\">{}</p>", esc(title), esc(text)),
    )
}

fn when(t: u64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

/// The mailbox, newest first.
pub fn mailbox(messages: &[StoredMessage]) -> String {
    let mut rows = String::new();
    for m in messages.iter().rev() {
        let _ = write!(
            rows,
            "<tr><td><a href=\"/messages/{id}\">{id}</a></td><td>{}</td><td>{}</td><td>{}</td>\
             <td><a href=\"/messages/{id}\">{}</a></td><td>{} ({})</td></tr>",
            when(m.received),
            esc(m.from.as_deref().or(m.mail_from.as_deref()).unwrap_or("")),
            esc(&m.recipients.join(", ")),
            esc(m.subject.as_deref().unwrap_or("(no subject)")),
            esc(&m.user),
            esc(&m.mechanism),
            id = m.id,
        );
    }
    let body = if messages.is_empty() {
        "<p id=\"empty\">No message yet. Send one to the sandbox's SMTP port.</p>".to_string()
    } else {
        format!(
            "<table id=\"messages\"><tr><th>#</th><th>received</th><th>from</th><th>to</th>\
             <th>subject</th><th>sent by (auth)</th></tr>{rows}</table>"
        )
    };
    page("Mailbox", &format!("<h1>Mailbox</h1>\n{body}"))
}

/// One message: envelope, header fields, parts.
pub fn message(v: &MessageView) -> String {
    let m = &v.meta;
    let mut head = String::new();
    for (n, val) in &v.headers {
        let _ = write!(head, "<tr><th>{}</th><td>{}</td></tr>", esc(n), esc(val));
    }
    let mut parts = String::new();
    for (i, p) in v.parts.iter().enumerate() {
        let _ = write!(
            parts,
            "<h3>Part {}: {}{} ({} bytes)</h3>",
            i + 1,
            esc(&p.content_type),
            p.filename
                .as_deref()
                .map(|f| format!(", attachment <b>{}</b>", esc(f)))
                .unwrap_or_default(),
            p.size
        );
        if let Some(t) = &p.text {
            let _ = write!(parts, "<pre>{}</pre>", esc(t));
        }
    }
    page(
        m.subject.as_deref().unwrap_or("(no subject)"),
        &format!(
            "<p><a href=\"/messages\">Mailbox</a></p><h1>{subject}</h1>\n\
             <table><tr><th>received</th><td>{received}</td></tr><tr><th>envelope from</th><td>{from}</td></tr>\
             <tr><th>envelope to</th><td>{to}</td></tr><tr><th>sent by</th><td>{user} with {mech}</td></tr></table>\n\
             <h2>Header</h2><table id=\"headers\">{head}</table>\n<h2>Parts</h2>{parts}\n\
             <p><a href=\"/messages/{id}/raw\">The message as received</a></p>",
            subject = esc(m.subject.as_deref().unwrap_or("(no subject)")),
            received = when(m.received),
            from = esc(m.mail_from.as_deref().unwrap_or("<>")),
            to = esc(&m.recipients.join(", ")),
            user = esc(&m.user),
            mech = esc(&m.mechanism),
            id = m.id,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
