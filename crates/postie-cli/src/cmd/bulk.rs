//! `postie bulk`: many messages through one account, durably: the batch is
//! queued in the outbox first (each item once, by its key), then delivered
//! at the pace the account's limits allow. Run again, it queues only what
//! is missing and delivers only what is not finished.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use postie::blocking::unblock;
use postie::config::Config;
use postie::error::{Error, ErrorKind};
use postie::message::Source;
use postie::provider::Limits;
use postie_outbox::delivery::{Delivered, Progress};
use postie_outbox::outbox::{
    BatchItem, ListFilter, MessageId, NewMessage, Outbox, RecipientState, Scope, State,
};

use super::Global;
use super::queue::{deliverer, open_outbox, progress_line};
use crate::cli::BulkArgs;
use crate::output::{self, exit};

/// Run `postie bulk`; returns the exit code.
pub async fn run(g: &Global, a: BulkArgs) -> i32 {
    match run_inner(g, a).await {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&g.style, &e, &Default::default());
            output::exit_code(e.kind())
        }
    }
}

/// What pass one found in the source.
#[derive(Default)]
struct Plan {
    items: u64,
    new: u64,
    recipients: u64,
    transactions: u64,
    bytes: u64,
    errors: Vec<String>,
}

async fn run_inner(g: &Global, a: BulkArgs) -> Result<i32, Error> {
    let path = g.paths.config_file.clone();
    let config = unblock(move || Config::load(&path)).await?;
    let (name, acct) = config.account(a.account.as_deref())?;
    let (name, sender, provider) = (name.to_string(), acct.email.clone(), acct.provider);
    let limits = config.limits(&name);
    let source = match (&a.source, &a.template, &a.data) {
        (Some(p), None, None) => Source::from_path(p),
        (None, Some(t), Some(d)) => Source::Merge {
            template: t.clone(),
            rows: d.clone(),
        },
        _ => {
            return Err(Error::new(
                ErrorKind::Usage,
                "give a directory of .eml files, an mbox file, or --template FILE with --data ROWS.csv|.json (see `postie bulk --help`)",
            ));
        }
    };
    let batch = match a.batch.clone() {
        // It names the results file, DATA_DIR/bulk/NAME.jsonl: no path in it.
        Some(b)
            if b.is_empty()
                || b.starts_with('.')
                || !b
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')) =>
        {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "--batch {b:?}: a batch name is letters, digits, '.', '_' and '-', not starting with '.' (it names the results file bulk/NAME.jsonl)"
                ),
            ));
        }
        Some(b) => b,
        None => {
            let s = source.clone();
            unblock(move || s.batch_name()).await?
        }
    };
    let outbox = open_outbox(g).await?;
    let b = batch.clone();
    let existing = Arc::new(outbox.with(move |o| o.batch_items(&b)).await?);

    // Pass one: read every item, so a bad one stops the batch before
    // anything is queued.
    let group = limits
        .recipients_per_message
        .map_or(u64::MAX, u64::from)
        .max(1);
    let (s, from, known) = (source.clone(), sender.clone(), existing.clone());
    let plan = unblock(move || {
        let mut p = Plan::default();
        for item in s.items(&from)? {
            p.items += 1;
            match item {
                Ok(item) => {
                    let n = item.message.recipients.len() as u64;
                    p.recipients += n;
                    p.transactions += n.div_ceil(group);
                    p.bytes += item.message.body.len();
                    if !known.contains_key(&item.key) {
                        p.new += 1;
                    }
                }
                Err(e) => p.errors.push(e.message().to_string()),
            }
        }
        Ok(p)
    })
    .await?;
    if !plan.errors.is_empty() {
        let shown: Vec<&str> = plan.errors.iter().take(10).map(String::as_str).collect();
        return Err(Error::new(
            ErrorKind::Input,
            format!(
                "{} of {} messages cannot be sent, so nothing was queued; fix them and run the same command again:\n  {}{}",
                plan.errors.len(),
                plan.items,
                shown.join("\n  "),
                if plan.errors.len() > shown.len() {
                    format!("\n  ... and {} more", plan.errors.len() - shown.len())
                } else {
                    String::new()
                }
            ),
        ));
    }
    let b = batch.clone();
    let unfinished = outbox
        .with(move |o| {
            Ok(o.list(&ListFilter {
                batch: Some(b),
                ..ListFilter::default()
            })?
            .into_iter()
            .filter(|m| matches!(m.state, State::Queued | State::Delivering))
            .count() as u64)
        })
        .await?;
    let to_send = plan.new + unfinished;
    let estimate = estimate(&limits, &plan, to_send);
    let plan_json = json!({
        "batch": batch,
        "source": source.describe(),
        "account": name,
        "messages": plan.items,
        "recipients": plan.recipients,
        "bytes": plan.bytes,
        "already_queued": plan.items - plan.new,
        "to_queue": plan.new,
        "to_send": to_send,
        "limits": limits,
        "estimated_seconds": estimate.as_ref().map(|e| e.0.as_secs()),
    });
    if !a.json || a.dry_run {
        let text = format!(
            "batch {batch}: {} messages ({} recipients, {}) from {}\n\
             account {name} ({provider}): limits {}\n\
             queued before: {}; to queue now: {}; to send: {to_send}\n\
             estimated time: {}",
            plan.items,
            plan.recipients,
            bytes(plan.bytes),
            source.describe(),
            limits.describe(),
            plan.items - plan.new,
            plan.new,
            match &estimate {
                Some((d, why)) => format!("about {} ({why})", round(*d)),
                None => "as fast as the server takes them (no limit applies)".into(),
            }
        );
        if a.json {
            output::print_json(&plan_json);
        } else {
            eprintln!("{text}");
        }
    }
    if a.dry_run {
        return Ok(exit::OK);
    }

    // Pass two: queue what the batch does not have yet.
    let (s, from, known, o2, acct_name, b) = (
        source.clone(),
        sender.clone(),
        existing.clone(),
        outbox.clone(),
        name.clone(),
        batch.clone(),
    );
    let queued = unblock(move || queue_items(&s, &from, &known, &o2, &acct_name, &b)).await?;
    if queued > 0 && !a.json {
        eprintln!("queued {queued} message(s) in the outbox");
    }

    // Deliver the batch.
    let tty = !a.json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let bar = (tty && to_send > 1).then(|| {
        let b = indicatif::ProgressBar::new(to_send);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {per_sec} ETA {eta} {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let style = g.style;
    let bar2 = bar.clone();
    let verbose = g.verbose > 0;
    let progress: Progress = Arc::new(move |d: &Delivered| {
        let line = progress_line(&style, d);
        let quiet = matches!(d.disposition, postie_outbox::outbox::Disposition::Sent) && !verbose;
        match &bar2 {
            Some(b) => {
                b.inc(1);
                if !quiet {
                    b.println(line);
                }
            }
            None if !quiet => eprintln!("{line}"),
            None => {}
        }
    });
    let d = deliverer(g, config, outbox.clone(), Some(progress), false).await?;
    d.run_in(Scope {
        account: None,
        batch: Some(&batch),
    })
    .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }

    // Results, from the outbox: the whole batch, this run and earlier ones.
    let results_path = match &a.results {
        Some(p) => p.clone(),
        None => g.paths.data_dir.join("bulk").join(format!("{batch}.jsonl")),
    };
    let (b, o2, rp) = (batch.clone(), outbox.clone(), results_path.clone());
    let tally = unblock(move || write_results(&o2, &b, &rp)).await?;
    let summary = json!({
        "batch": batch,
        "messages": tally.total,
        "sent": tally.sent,
        "partly_failed": tally.partly,
        "failed": tally.failed,
        "waiting": tally.waiting,
        "results": results_path,
    });
    if a.json {
        output::print_json(&summary);
    } else {
        eprintln!(
            "batch {batch}: {} sent, {} partly refused, {} refused, {} waiting (of {}); results: {}",
            tally.sent,
            tally.partly,
            tally.failed,
            tally.waiting,
            tally.total,
            results_path.display()
        );
        if tally.waiting > 0 {
            eprintln!(
                "the waiting messages are retried by `postie relay`, `postie queue run`, or this command run again (`postie queue list --batch {batch}` says when)"
            );
        }
    }
    Ok(if tally.waiting > 0 {
        exit::TEMPFAIL
    } else if tally.failed + tally.partly > 0 {
        exit::NOUSER
    } else {
        exit::OK
    })
}

/// Queue each item the batch lacks; returns how many were queued.
fn queue_items(
    source: &Source,
    sender: &str,
    known: &HashMap<String, MessageId>,
    outbox: &Outbox,
    account: &str,
    batch: &str,
) -> Result<u64, Error> {
    let mut n = 0;
    for item in source.items(sender)? {
        let item = item?;
        if known.contains_key(&item.key) {
            continue;
        }
        let bytes = item.message.body.to_vec()?;
        let meta = NewMessage {
            batch: Some(BatchItem {
                batch: batch.to_string(),
                item: item.key,
            }),
            ..NewMessage::of(account, &item.message, &bytes, "bulk")
        };
        outbox.enqueue(&bytes, meta)?;
        n += 1;
    }
    Ok(n)
}

#[derive(Default)]
struct Tally {
    total: u64,
    sent: u64,
    partly: u64,
    failed: u64,
    waiting: u64,
}

/// Write one JSON line per message of the batch (its item, id, status,
/// each recipient with the server's reply) to `path`, atomically.
fn write_results(outbox: &Outbox, batch: &str, path: &std::path::Path) -> Result<Tally, Error> {
    let keys: HashMap<MessageId, String> = outbox
        .batch_items(batch)?
        .into_iter()
        .map(|(k, id)| (id, k))
        .collect();
    let rows = outbox.list(&ListFilter {
        batch: Some(batch.to_string()),
        ..ListFilter::default()
    })?;
    let mut t = Tally::default();
    let mut out = Vec::new();
    for m in rows {
        let Some(d) = outbox.show(m.id)? else {
            continue;
        };
        t.total += 1;
        let status = match (m.state, m.counts.failed, m.counts.sent) {
            (State::Sent, 0, _) => {
                t.sent += 1;
                "sent"
            }
            (State::Sent, _, _) => {
                t.partly += 1;
                "partly-failed"
            }
            (State::Failed, _, _) => {
                t.failed += 1;
                "failed"
            }
            _ => {
                t.waiting += 1;
                "waiting"
            }
        };
        let line = json!({
            "item": keys.get(&m.id),
            "id": m.id.to_string(),
            "status": status,
            "recipients": d.recipients.iter().map(|r| json!({
                "address": r.address,
                "status": match r.state {
                    RecipientState::Sent => "sent",
                    RecipientState::Failed => "failed",
                    RecipientState::Pending => "waiting",
                },
                "reply": r.reply,
            })).collect::<Vec<_>>(),
            "reply": m.last_reply,
            "next_attempt_at": m.next_attempt_at.filter(|_| status == "waiting").map(|t| humantime::format_rfc3339_seconds(t).to_string()),
            "message_id": m.message_id,
        });
        out.extend_from_slice(line.to_string().as_bytes());
        out.push(b'\n');
    }
    postie::fs::write_atomic(path, &out).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write the results to {}: {e}", path.display()),
        )
    })?;
    Ok(t)
}

/// How long sending `to_send` of `items` messages takes under `limits`,
/// and which limit sets it; `None` when none applies.
fn estimate(limits: &Limits, plan: &Plan, to_send: u64) -> Option<(Duration, String)> {
    let items = plan.items;
    if to_send == 0 || items == 0 {
        return Some((Duration::ZERO, "nothing to send".into()));
    }
    // Transactions and recipients of the messages still to send, in
    // proportion.
    let tx = plan
        .transactions
        .saturating_mul(to_send)
        .div_ceil(items)
        .max(1);
    let rcpts = plan.recipients.saturating_mul(to_send).div_ceil(items);
    let mut best: Option<(Duration, String)> = None;
    let mut consider = |d: Duration, why: String| {
        if best.as_ref().is_none_or(|(b, _)| d > *b) {
            best = Some((d, why));
        }
    };
    if let Some(spacing) = limits.spacing() {
        consider(
            spacing * u32::try_from(tx - 1).unwrap_or(u32::MAX),
            format!("{} messages/minute", limits.per_minute.unwrap_or(0)),
        );
    }
    const DAY: Duration = Duration::from_secs(24 * 3600);
    if let Some(per_day) = limits.per_day {
        let days = (tx - 1) / u64::from(per_day);
        if days > 0 {
            consider(
                DAY * u32::try_from(days).unwrap_or(u32::MAX),
                format!("{per_day} messages/day: the rest waits for the limit"),
            );
        }
    }
    if let Some(per_day) = limits.recipients_per_day {
        let days = rcpts.saturating_sub(1) / u64::from(per_day);
        if days > 0 {
            consider(
                DAY * u32::try_from(days).unwrap_or(u32::MAX),
                format!("{per_day} recipients/day: the rest waits for the limit"),
            );
        }
    }
    best
}

/// A duration rounded for people: "3m20s", "1h07m", "2 days".
fn round(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{:.1} days", s as f64 / 86400.0),
    }
}

fn bytes(n: u64) -> String {
    if n >= 1024 * 1024 {
        format!("{:.1} MiB", n as f64 / (1024.0 * 1024.0))
    } else if n >= 1024 {
        format!("{:.1} KiB", n as f64 / 1024.0)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_estimate_follows_the_strictest_limit() {
        let plan = |items: u64, recipients: u64| Plan {
            items,
            transactions: items,
            recipients,
            ..Plan::default()
        };
        let m365 = Limits::published(postie::provider::ProviderId::Office365);
        // 2000 messages at 30 a minute: 1999 gaps of 2 s.
        let (d, why) = estimate(&m365, &plan(2000, 2000), 2000).unwrap();
        assert_eq!(d, Duration::from_secs(3998));
        assert_eq!(why, "30 messages/minute");
        assert_eq!(round(d), "1h06m");
        let gmail = Limits::published(postie::provider::ProviderId::Gmail);
        let (d, why) = estimate(&gmail, &plan(1200, 1200), 1200).unwrap();
        assert_eq!(d, Duration::from_secs(2 * 86400));
        assert!(why.starts_with("500 messages/day"), "{why}");
        assert_eq!(estimate(&Limits::default(), &plan(10, 10), 10), None);
        // Half the batch already sent: half the time.
        let (d, _) = estimate(&m365, &plan(100, 100), 50).unwrap();
        assert_eq!(d, Duration::from_secs(98));
        // 2000 messages of 10 recipients: Microsoft's 10,000 recipients a
        // day hold the second half a day, longer than the minute pace.
        let (d, why) = estimate(&m365, &plan(2000, 20_000), 2000).unwrap();
        assert_eq!(d, Duration::from_secs(86400));
        assert!(why.starts_with("10000 recipients/day"), "{why}");
    }
}
