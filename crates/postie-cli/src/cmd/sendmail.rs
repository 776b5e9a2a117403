//! `postie sendmail` and argv[0] `sendmail`: the classic command line, for
//! cron, git send-email, mutt and PHP's mail().
//!
//! The message is stored in the outbox before anything else happens, then
//! delivered at once when possible. Exit codes are sendmail's (sysexits.h).

use std::io::{BufRead, Read};

use std::sync::Arc;

use postie::config::Config;
use postie::error::{Error, ErrorKind};
use postie::message::{HeadSummary, RawOptions, from_raw};
use postie_outbox::delivery::{Deliverer, Settings};
use postie_outbox::outbox::{
    AttemptKind, Disposition, MessageId, NewMessage, Outbox, RecipientState, ReplyRecord,
    RetryPolicy,
};

use super::Global;
use super::mailer;
use super::queue::open_outbox;
use crate::output::{self, exit};

/// Parsed sendmail options.
#[derive(Debug, Default, PartialEq)]
pub struct Options {
    /// `-t`: recipients from the header.
    pub read_headers: bool,
    /// `-i` / `-oi`: a lone `.` does not end the message.
    pub ignore_dots: bool,
    /// `-f ADDR`.
    pub from: Option<String>,
    /// `-F NAME`.
    pub full_name: Option<String>,
    /// `--account NAME` (postie's own).
    pub account: Option<String>,
    /// Recipients given as arguments.
    pub recipients: Vec<String>,
}

/// Parse sendmail's command line (its own syntax: `-fADDR` or `-f ADDR`,
/// `-oi`, `-oem`, `--` before recipients).
pub fn parse(args: &[String]) -> Result<Options, Error> {
    let mut o = Options::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            o.recipients.extend(it.by_ref().cloned());
            break;
        }
        if a == "--account" {
            o.account = Some(value("--account", "", &mut it)?);
            continue;
        }
        let Some(flag) = a.strip_prefix('-').filter(|f| !f.is_empty()) else {
            o.recipients.push(a.clone());
            continue;
        };
        let (c, rest) = flag.split_at(1);
        match c {
            "t" if rest.is_empty() => o.read_headers = true,
            "i" if rest.is_empty() => o.ignore_dots = true,
            "f" | "r" => o.from = Some(value("-f", rest, &mut it)?),
            "F" => o.full_name = Some(value("-F", rest, &mut it)?),
            "o" if rest == "i" => o.ignore_dots = true,
            // -oem, -odb, -oQ..., -B8BITMIME, -v, -bm, -odi: accepted, no effect here
            "o" | "B" | "v" | "b" | "d" | "U" | "X" | "n" => {
                if c == "b" && !matches!(rest, "m" | "") {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!("sendmail: -b{rest} is not supported (only -bm, deliver mail)"),
                    ));
                }
            }
            "N" | "R" | "V" | "L" | "h" | "q" if !rest.is_empty() => {}
            "N" | "R" | "V" | "L" | "h" => {
                value(a, "", &mut it)?;
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("sendmail: unknown option {a} (see `postie sendmail --help`)"),
                ));
            }
        }
    }
    Ok(o)
}

/// An option's value: attached (`-fme@x`) or the next argument (`-f me@x`).
fn value(flag: &str, rest: &str, it: &mut std::slice::Iter<'_, String>) -> Result<String, Error> {
    if !rest.is_empty() {
        return Ok(rest.to_string());
    }
    it.next()
        .cloned()
        .ok_or_else(|| Error::new(ErrorKind::Usage, format!("sendmail: {flag} needs a value")))
}

/// Read the message from stdin: without `-i`, a line with a single `.` ends
/// it, as sendmail does.
fn read_message(ignore_dots: bool) -> Result<Vec<u8>, Error> {
    let io = |e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("sendmail: cannot read the message from stdin: {e}"),
        )
    };
    let mut stdin = std::io::stdin().lock();
    let mut buf = Vec::new();
    if ignore_dots {
        stdin.read_to_end(&mut buf).map_err(io)?;
        return Ok(buf);
    }
    let mut line = Vec::new();
    loop {
        line.clear();
        if stdin.read_until(b'\n', &mut line).map_err(io)? == 0 {
            break;
        }
        if line == b".\n" || line == b".\r\n" || line == b"." {
            break;
        }
        buf.extend_from_slice(&line);
    }
    Ok(buf)
}

/// Run `postie sendmail ARGS`; returns the exit code.
pub async fn run(g: &Global, args: &[String]) -> i32 {
    if args.iter().any(|a| a == "--help" || a == "-h") {
        use clap::CommandFactory;
        let mut cmd = crate::cli::Cli::command();
        if let Some(sc) = cmd.find_subcommand_mut("sendmail") {
            let _ = sc.print_long_help();
        }
        return exit::OK;
    }
    match run_inner(g, args).await {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&g.style, &e, &Default::default());
            match e.kind() {
                ErrorKind::Io | ErrorKind::Secret => exit::CANTCREAT,
                k => output::exit_code(k),
            }
        }
    }
}

async fn run_inner(g: &Global, args: &[String]) -> Result<i32, Error> {
    let o = parse(args)?;
    let config = Config::load(&g.paths.config_file)?;
    let raw = read_message(o.ignore_dots)?;
    // The account goes by the sender (-f, else From:); a message with
    // neither is sent by the account it falls to, in its name.
    let sender = o.from.clone().or(HeadSummary::parse(&raw).from);
    let account = pick_account(&config, &o, sender.as_deref())?;
    let add_from = match &o.from {
        Some(f) => Some(f.clone()),
        None => Some(config.account(Some(&account))?.1.email.clone()),
    };
    let msg = from_raw(
        raw,
        &RawOptions {
            from: o.from.clone(),
            recipients: o.recipients.clone(),
            read_headers: o.read_headers,
            add_from,
            add_from_name: o.full_name.clone(),
        },
    )?;
    // Settings errors (a typo in [relay]) are found before the message is
    // stored: an error after storing would make callers send it again.
    let policy = RetryPolicy::from_config(&config.relay)?;
    // sendmail reads the message into memory (its dots and line ends are
    // handled on the way), so the body is in memory.
    let bytes = msg.body.to_vec()?;
    let outbox = open_outbox(g).await?;
    let meta = NewMessage::of(&account, &msg, &bytes, "sendmail");
    let id = outbox.with(move |o| o.enqueue(&bytes, meta)).await?;
    // Stored: from here on nothing is lost whatever happens, and the exit
    // status says so (0) even when delivering now is not possible; callers
    // (cron, git, PHP) retry on a non-zero status, which would queue the
    // message twice.
    let settings = Settings {
        keep_sent: None,
        lease: postie_outbox::delivery::LEASE,
        policy,
        progress: None,
        settled: false,
    };
    let delivered = match Deliverer::new(settings, outbox.clone(), mailer(g, config)).await {
        Ok(d) => d.run_once(Some(&account)).await,
        Err(e) => Err(e),
    };
    let done = match delivered {
        Ok(done) => done,
        Err(e) => {
            eprintln!(
                "postie sendmail: message {id} is queued; it could not be delivered now ({}); `postie relay` or `postie queue run` will deliver it",
                output::clean(e.message())
            );
            return Ok(exit::OK);
        }
    };
    let mine = done.iter().find(|d| d.id == id);
    let code = match mine.map(|d| &d.disposition) {
        Some(Disposition::Sent) => exit::OK,
        Some(Disposition::Failed) | Some(Disposition::PartlyFailed { .. }) => {
            refused(&outbox, id).await
        }
        Some(Disposition::RetryAt(t)) => {
            eprintln!(
                "postie sendmail: message {id} is queued; delivery failed for now ({}); it will be retried {} by `postie relay` or `postie queue run`",
                output::clean(&mine.map(|d| d.detail.clone()).unwrap_or_default()),
                humantime::format_rfc3339_seconds(*t)
            );
            exit::OK
        }
        Some(Disposition::Paused { account, .. }) => {
            eprintln!(
                "postie sendmail: message {id} is queued, but account {account} is paused: {} (see `postie queue show {id}`)",
                output::clean(&mine.map(|d| d.detail.clone()).unwrap_or_default())
            );
            exit::OK
        }
        Some(Disposition::LeaseLost) | None => exit::OK, // another deliverer has it
    };
    Ok(code)
}

/// Say who refused what (each refused recipient with its reply, or the
/// refusal of the whole message) and pick the exit code: 67 when recipients
/// were refused, 65 when the message itself was.
async fn refused(outbox: &Arc<Outbox>, id: MessageId) -> i32 {
    let detail = match outbox.with(move |o| o.show(id)).await {
        Ok(Some(d)) => d,
        _ => {
            eprintln!(
                "postie sendmail: message {id} was refused (details: postie queue show {id})"
            );
            return exit::NOUSER;
        }
    };
    let reply = |r: &Option<ReplyRecord>| {
        r.as_ref()
            .map(|r| output::clean(&format!("{} {}", r.code, r.text.replace('\n', " "))))
            .unwrap_or_default()
    };
    let whole = detail
        .history
        .last()
        .is_some_and(|a| a.kind == AttemptKind::Permanent);
    if whole {
        eprintln!(
            "postie sendmail: message {id} was refused: {} (details: postie queue show {id})",
            reply(&detail.history.last().and_then(|a| a.reply.clone()))
        );
        return exit::DATAERR;
    }
    for r in detail
        .recipients
        .iter()
        .filter(|r| r.state == RecipientState::Failed)
    {
        eprintln!(
            "postie sendmail: message {id}: <{}> was refused: {}",
            r.address,
            reply(&r.reply)
        );
    }
    let sent = detail.summary.counts.sent;
    if sent > 0 {
        eprintln!("postie sendmail: message {id} was sent to the {sent} other recipient(s)");
    }
    exit::NOUSER
}

/// The account: `--account`, else the one whose address is the sender,
/// else `[relay] fallback_account`, else the default account.
fn pick_account(config: &Config, o: &Options, sender: Option<&str>) -> Result<String, Error> {
    if let Some(a) = &o.account {
        return config.account(Some(a)).map(|(n, _)| n.to_string());
    }
    if let Some(n) = sender
        .map(|s| config.account_for_address(s))
        .transpose()?
        .flatten()
    {
        return Ok(n.to_string());
    }
    if let Some(f) = &config.relay.fallback_account {
        return Ok(f.clone());
    }
    config
        .account(None)
        .map(|(n, _)| n.to_string())
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "sendmail: {}, and no account is the default: {}",
                    match sender {
                        Some(s) => format!("the sender <{s}> matches no account"),
                        None => "the message names no sender (no -f, no From:)".into(),
                    },
                    e.message()
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Options {
        parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn parses_what_cron_git_mutt_and_php_pass() {
        // PHP mail(): sendmail -t -i
        let o = p(&["-t", "-i"]);
        assert!(o.read_headers && o.ignore_dots && o.recipients.is_empty());
        // mutt: -oem -oi -- rcpts
        let o = p(&["-oem", "-oi", "--", "a@x.test", "-b@x.test"]);
        assert!(o.ignore_dots);
        assert_eq!(o.recipients, ["a@x.test", "-b@x.test"]);
        // git send-email: -i -f from rcpts
        let o = p(&["-i", "-f", "me@x.test", "bob@y.test"]);
        assert_eq!(o.from.as_deref(), Some("me@x.test"));
        assert_eq!(o.recipients, ["bob@y.test"]);
        // attached values
        let o = p(&["-fme@x.test", "-FMe Myself", "bob@y.test"]);
        assert_eq!(o.from.as_deref(), Some("me@x.test"));
        assert_eq!(o.full_name.as_deref(), Some("Me Myself"));
        let o = p(&["-N", "never", "-odb", "-B8BITMIME", "bob@y.test"]);
        assert_eq!(o.recipients, ["bob@y.test"]);
    }

    #[test]
    fn refuses_what_it_cannot_do_with_the_reason() {
        let e = parse(&["-bs".to_string()]).unwrap_err();
        assert!(e.message().contains("-bs is not supported"));
        let e = parse(&["-f".to_string()]).unwrap_err();
        assert!(e.message().contains("-f needs a value"));
        let e = parse(&["-Z".to_string()]).unwrap_err();
        assert!(e.message().contains("unknown option -Z"));
    }
}
