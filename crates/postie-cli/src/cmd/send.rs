//! `postie send`.

use std::io::{IsTerminal, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

use postie::blocking::unblock;
use postie::config::Config;
use postie::error::{Error, ErrorKind};
use postie::explain::{Context, explain_reply};
use postie::mailer::{Account, Auth, Mailer, Options, SendReport, Status};
use postie::message::{Draft, OutgoingMessage, RawOptions, from_raw_file, from_raw_reader};
use postie::provider::TlsMode;
use postie::secret::PasswordSource;
use postie::transport::TranscriptEntry;
use serde_json::json;

use super::{Global, apply_tls_args, prompt_secret, secrets, transcript_sink};
use crate::cli::SendArgs;
use crate::output::{self, exit};

/// Everything resolved from flags and config, before any I/O on the network.
struct Plan {
    mailer: Mailer,
    account: Account,
    message: OutgoingMessage,
}

/// Run `postie send`; returns the exit code.
pub async fn run(g: &Global, args: SendArgs) -> i32 {
    let json_mode = args.json;
    let transcript: Arc<Mutex<Vec<TranscriptEntry>>> = Arc::default();
    // Reading attachments' sizes, a raw message's headers, a prompt: all
    // blocking, so on a blocking thread.
    let planned = {
        let (g, args, transcript) = (g.clone(), args.clone(), transcript.clone());
        unblock(move || plan(&g, &args, transcript)).await
    };
    let plan = match planned {
        Ok(p) => p,
        Err(e) => return fail(g, json_mode, &e, &Context::default(), None, &transcript),
    };
    let server = plan.account.endpoint.authority();
    let ctx = Context {
        provider: plan.account.provider,
        account: plan.account.name.as_deref(),
        host: Some(&plan.account.endpoint.host),
    };
    match plan.mailer.send(&plan.account, &plan.message).await {
        Ok(report) => report_result(g, json_mode, &report, &ctx, &transcript),
        Err(e) => fail(g, json_mode, &e, &ctx, Some(&server), &transcript),
    }
}

/// `--password-env` / `--password-command`, which override the account's.
fn cli_password(a: &SendArgs) -> Option<PasswordSource> {
    match (&a.password_env, &a.password_command) {
        (Some(v), _) => Some(PasswordSource::Env(v.clone())),
        (None, Some(c)) => Some(PasswordSource::Command(c.clone())),
        (None, None) => None,
    }
}

/// The account from the config, or the server given with `--server`, with
/// the command line's overrides.
fn account(g: &Global, a: &SendArgs) -> Result<(Config, Account), Error> {
    let (config, mut account) = match &a.server {
        Some(url) => (Config::default(), Account::from_url(url)?),
        None => {
            let config = Config::load(&g.paths.config_file)?;
            let (name, acct) = config.account(a.account.as_deref())?;
            let account = Account::from_config(name, acct)?;
            (config, account)
        }
    };
    apply_tls_args(&mut account.endpoint, &a.tls)?;
    if let Some(t) = a.timeout {
        account.timeouts = Some(postie::transport::Timeouts::all(t));
    }
    if let Some(m) = &a.auth_mechanism {
        account.mechanism = Some(m.clone());
    }
    match &mut account.auth {
        Auth::Password { user, source, .. } => {
            if let Some(u) = &a.user {
                *user = u.clone();
            }
            if let Some(s) = cli_password(a) {
                *source = s;
            }
        }
        // A bearer token, fetched when sending.
        Auth::OAuth { .. } => {}
        Auth::None => {}
    }
    Ok((config, account))
}

fn plan(
    g: &Global,
    a: &SendArgs,
    transcript: Arc<Mutex<Vec<TranscriptEntry>>>,
) -> Result<Plan, Error> {
    let (config, mut account) = account(g, a)?;
    let default_from = match &a.server {
        Some(_) => a.user.clone().filter(|u| u.contains('@')),
        None => account.email.clone(),
    };
    let message = build_message(a, default_from.as_deref())?;
    if a.server.is_some() {
        // A one-off server: log in only when told how.
        match (cli_password(a), &a.user) {
            (Some(src), user) => {
                let user = user.clone().unwrap_or_else(|| message.from.to_string());
                account = account.with_password(user, src);
            }
            (None, Some(user)) => {
                let pw = prompt_secret(
                    &format!("Password for {user} at {}", account.endpoint.authority()),
                    "Give --password-env VAR or --password-command CMD.",
                )?;
                account = account.with_password(user.clone(), PasswordSource::Given(pw));
            }
            (None, None) => {}
        }
    }
    let options = Options {
        show_body: a.show_body,
        transcript: (g.verbose > 0).then(|| transcript_sink(g, !a.json, transcript)),
        progress: progress_bar(a, g.verbose > 0, message.body.len()),
        ..Options::default()
    };
    let mailer = Mailer::with_options(config, g.paths.data_dir.clone(), secrets(&g.paths), options);
    Ok(Plan {
        mailer,
        account,
        message,
    })
}

/// A progress bar on stderr while a large message (a big attachment) is
/// written: only on a terminal, not with --json or -v (whose lines it
/// would break), and for more than 1 MiB.
fn progress_bar(a: &SendArgs, verbose: bool, size: u64) -> Option<postie::transport::BodyProgress> {
    const LARGE: u64 = 1024 * 1024;
    if a.json || verbose || size <= LARGE || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::new(size);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "sending {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(std::sync::Arc::new(move |written: u64, total: u64| {
        bar.set_position(written);
        if written >= total {
            bar.finish_and_clear();
        }
    }))
}

fn read_input(path: &Path, what: &str) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    let r = if path == Path::new("-") {
        std::io::stdin().read_to_end(&mut buf).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut buf).map(|_| ()))
    };
    r.map_err(|e| {
        Error::new(
            ErrorKind::Input,
            format!("cannot read {what} {}: {e}", path.display()),
        )
    })?;
    Ok(buf)
}

fn read_text(path: &Path, what: &str) -> Result<String, Error> {
    String::from_utf8(read_input(path, what)?).map_err(|_| {
        Error::new(
            ErrorKind::Message,
            format!("{what} {} is not UTF-8 text", path.display()),
        )
    })
}

fn build_message(a: &SendArgs, default_from: Option<&str>) -> Result<OutgoingMessage, Error> {
    if let Some(raw) = &a.raw {
        let mut recipients: Vec<String> = a.recipients.clone();
        recipients.extend(a.to.iter().chain(&a.cc).chain(&a.bcc).cloned());
        let opts = RawOptions {
            from: a.from.clone(),
            recipients,
            read_headers: a.read_recipients,
            add_from: a.from.clone(),
            add_from_name: None,
        };
        // The body is sent from the file (or from a spool of stdin), never
        // held whole in memory.
        return if raw == Path::new("-") {
            from_raw_reader(std::io::stdin().lock(), &opts)
        } else {
            from_raw_file(raw, &opts)
        };
    }
    let from = a
        .from
        .clone()
        .or(default_from.map(String::from))
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Usage,
                "no sender: give --from ADDR (or use a configured account)",
            )
        })?;
    let stdin = Path::new("-");
    if a.text_file.as_deref() == Some(stdin) && a.html_file.as_deref() == Some(stdin) {
        return Err(Error::new(
            ErrorKind::Usage,
            "--text-file - and --html-file - both read stdin, which can be read once: give one of \
             them a file",
        ));
    }
    let no_body =
        a.text.is_none() && a.text_file.is_none() && a.html.is_none() && a.html_file.is_none();
    let text = match (&a.text, &a.text_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => Some(read_text(p, "the text body")?),
        // `echo body | postie send --to ...`, as mail(1) reads it: stdin is
        // the text when it is not a terminal and no body was given.
        (None, None) if no_body && !std::io::stdin().is_terminal() => {
            Some(read_text(stdin, "the text body from"))
                .transpose()?
                .filter(|t| !t.is_empty())
        }
        (None, None) => None,
    };
    let html = match (&a.html, &a.html_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => Some(read_text(p, "the HTML body")?),
        (None, None) => None,
    };
    Draft {
        from,
        to: a.to.clone(),
        cc: a.cc.clone(),
        bcc: a.bcc.clone(),
        envelope_only: a.recipients.clone(),
        subject: a.subject.clone(),
        text,
        html,
        attachments: a.attach.clone(),
    }
    .build()
}

fn transcript_json(t: &Arc<Mutex<Vec<TranscriptEntry>>>) -> serde_json::Value {
    serde_json::to_value(&*t.lock().expect("transcript lock")).unwrap_or_default()
}

fn fail(
    g: &Global,
    json_mode: bool,
    e: &Error,
    ctx: &Context<'_>,
    server: Option<&str>,
    transcript: &Arc<Mutex<Vec<TranscriptEntry>>>,
) -> i32 {
    if json_mode {
        let mut v = json!({
            "status": "failed",
            "server": server,
            "recipients": [],
            "reply": null,
            "error": output::error_json(e, ctx),
        });
        if g.verbose > 0 {
            v["transcript"] = transcript_json(transcript);
        }
        output::print_json(&v);
    } else {
        output::print_error(&g.style, e, ctx);
        // Connection, TLS and login problems: the whole path, stage by stage.
        if let Some(name) = ctx.account
            && matches!(
                e.kind(),
                ErrorKind::Unavailable | ErrorKind::Tls | ErrorKind::Credentials
            )
        {
            eprintln!(
                "{}",
                g.style.dim(&format!(
                    "(`postie doctor {name}` checks every step of the connection)"
                ))
            );
        }
    }
    output::exit_code(e.kind())
}

fn report_result(
    g: &Global,
    json_mode: bool,
    r: &SendReport,
    ctx: &Context<'_>,
    transcript: &Arc<Mutex<Vec<TranscriptEntry>>>,
) -> i32 {
    let failure = r.failure();
    let code = match &failure {
        None => exit::OK,
        Some(e) if e.is_transient() => exit::TEMPFAIL,
        Some(_) if r.status == Status::Partial => exit::NOUSER,
        // MAIL FROM or the data phase refused: the reply's class decides.
        Some(e) if r.reply.as_ref().is_some_and(|x| !x.is_positive()) => {
            output::exit_code(e.kind())
        }
        // Every recipient refused.
        Some(_) => exit::NOUSER,
    };
    if json_mode {
        let mut v = json!({
            "status": r.status,
            "transport": r.transport,
            "server": r.server,
            "tls": r.tls,
            "tls_info": r.tls_info,
            "auth": r.auth,
            "message_id": r.message_id,
            "size": r.size,
            "recipients": r.recipients.iter().map(|x| {
                let mut o = serde_json::to_value(x).unwrap_or_default();
                if !x.accepted && let Some(ex) = explain_reply(&x.reply, ctx) {
                    o["explanation"] = serde_json::to_value(ex).unwrap_or_default();
                }
                o
            }).collect::<Vec<_>>(),
            "reply": r.reply.as_ref().map(|x| json!({
                "code": x.code,
                "enhanced": x.enhanced.map(|e| e.to_string()),
                "text": x.text(),
            })),
            "error": failure.as_ref().map(|e| output::error_json(e, ctx)),
        });
        if g.verbose > 0 {
            v["transcript"] = transcript_json(transcript);
        }
        output::print_json(&v);
        return code;
    }
    let s = &g.style;
    let how = format!(
        "{}{}{}",
        match r.tls {
            TlsMode::Implicit => "TLS",
            TlsMode::Starttls => "STARTTLS",
            TlsMode::None => "no TLS",
        },
        r.tls_info
            .as_ref()
            .and_then(|i| i.version.as_ref())
            .map(|v| format!(" {v}"))
            .unwrap_or_default(),
        r.auth
            .as_ref()
            .map(|m| format!(", AUTH {m}"))
            .unwrap_or_default(),
    );
    let head = match r.status {
        Status::Sent => s.good("sent"),
        Status::Partial => s.warn("partly sent"),
        Status::Failed => s.bad("not sent"),
    };
    println!("{head} {} via {} ({how})", r.message_id, r.server);
    for x in &r.recipients {
        let mark = if x.accepted {
            s.good("ok  ")
        } else {
            s.bad("FAIL")
        };
        let enh = x
            .enhanced
            .as_deref()
            .map(|e| format!(" {e}"))
            .unwrap_or_default();
        println!(
            "  {mark} {}  {}",
            x.address,
            s.dim(&format!(
                "{}{enh} {}",
                x.code,
                output::clean(&x.text.replace('\n', " "))
            ))
        );
    }
    if let Some(e) = &failure {
        output::print_error(s, e, ctx);
    }
    code
}
