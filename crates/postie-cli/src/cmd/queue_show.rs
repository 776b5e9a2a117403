//! The human form of `postie queue show ID`.

use std::fmt::Write;
use std::time::SystemTime;

use postie_outbox::outbox::{Detail, ReplyRecord};

use crate::output::{Style, clean};

fn at(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn reply(r: &ReplyRecord) -> String {
    clean(&format!("{} {}", r.code, r.text.replace('\n', " / ")))
}

/// Render one message's whole story.
pub fn render(s: &Style, d: &Detail) -> String {
    let m = &d.summary;
    let mut o = String::new();
    let _ = writeln!(o, "{} {}", s.bold(&format!("message {}", m.id)), m.state);
    let _ = writeln!(o, "  account     {}", m.account);
    let _ = writeln!(
        o,
        "  from        <{}>",
        m.mail_from.as_deref().unwrap_or("")
    );
    if let Some(x) = &m.subject {
        let _ = writeln!(o, "  subject     {}", clean(x));
    }
    if let Some(x) = &m.message_id {
        let _ = writeln!(o, "  message-id  {}", clean(x));
    }
    let _ = writeln!(
        o,
        "  size        {} bytes{}{}",
        m.size,
        if d.eight_bit { ", 8-bit" } else { "" },
        if d.smtputf8 { ", SMTPUTF8" } else { "" }
    );
    let _ = writeln!(o, "  queued      {} (by {})", at(m.queued_at), m.source);
    if let Some(t) = m.next_attempt_at {
        let _ = writeln!(o, "  next try    {}", at(t));
    }
    if let Some(t) = d.finished_at {
        let _ = writeln!(o, "  finished    {}", at(t));
    }
    if m.paused {
        let _ = writeln!(
            o,
            "  {}",
            s.bad("its account is paused: fix the account, then `postie queue retry --all`")
        );
    }
    let _ = writeln!(o, "recipients");
    for r in &d.recipients {
        let st = r.state.as_str();
        let st = match st {
            "sent" => s.good(st),
            "failed" => s.bad(st),
            _ => st.to_string(),
        };
        let _ = writeln!(
            o,
            "  {:<8} {}  {}",
            st,
            r.address,
            s.dim(&r.reply.as_ref().map(reply).unwrap_or_default())
        );
    }
    let _ = writeln!(o, "attempts ({})", d.history.len());
    for a in &d.history {
        let by = a
            .host
            .as_deref()
            .map(|h| s.dim(&format!("  (host {})", clean(h))))
            .unwrap_or_default();
        let _ = writeln!(
            o,
            "  {}  {:<11} {}{by}",
            at(a.at),
            format!("{:?}", a.kind).to_lowercase(),
            a.reply.as_ref().map(reply).unwrap_or_default()
        );
    }
    if let Some(x) = &d.explanation {
        let _ = writeln!(o, "what happened");
        for line in x.lines() {
            let _ = writeln!(o, "  {}", clean(line));
        }
    }
    o
}
