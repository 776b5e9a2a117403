//! `postie send`.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use postie::config::{AccountConfig, Config};
use postie::error::{Error, ErrorKind};
use postie::explain::{Context, explain_reply};
use postie::message::{Draft, OutgoingMessage, RawOptions, from_raw};
use postie::oauth::TokenManager;
use postie::provider::{AuthMethod, ProviderId, TlsMode};
use postie::secret::{PasswordSource, normalize_app_password};
use postie::send::{SendReport, Status, send_once};
use postie::transport::{ConnectOptions, Endpoint, TranscriptEntry};
use postie_proto::sasl::Credentials;
use serde_json::json;

use super::{Global, apply_tls_args, open_store, prompt_secret, transcript_sink};
use crate::cli::SendArgs;
use crate::output::{self, exit};

/// Everything resolved from flags and config, before any I/O on the network.
struct Plan {
    opts: ConnectOptions,
    provider: Option<ProviderId>,
    account: Option<String>,
    message: OutgoingMessage,
    /// The account when it signs in with OAuth 2.0.
    oauth: Option<(String, AccountConfig)>,
}

/// Run `postie send`; returns the exit code.
pub async fn run(g: &Global, args: SendArgs) -> i32 {
    let json_mode = args.json;
    let transcript: Arc<Mutex<Vec<TranscriptEntry>>> = Arc::default();
    let plan = match plan(g, &args, transcript.clone()) {
        Ok(p) => p,
        Err(e) => return fail(g, json_mode, &e, &Context::default(), None, &transcript),
    };
    let server = plan.opts.endpoint.authority();
    let ctx = Context {
        provider: plan.provider,
        account: plan.account.as_deref(),
        host: Some(&plan.opts.endpoint.host),
    };
    let result = match &plan.oauth {
        None => send_once(plan.opts.clone(), &plan.message).await,
        Some((name, acct)) => send_oauth(g, &plan, name, acct).await,
    };
    match result {
        Ok(report) => report_result(g, json_mode, &report, &ctx, &transcript),
        Err(e) => fail(g, json_mode, &e, &ctx, Some(&server), &transcript),
    }
}

/// Send with a bearer token. A token the server refuses at AUTH is
/// refreshed once and AUTH is retried on a new connection; a second refusal
/// is explained.
async fn send_oauth(
    g: &Global,
    plan: &Plan,
    name: &str,
    acct: &AccountConfig,
) -> Result<SendReport, Error> {
    let store = open_store(&g.paths)?;
    let tm = TokenManager::new(g.paths.data_dir.clone());
    let note = || {
        if let Some(t) = &plan.opts.transcript {
            t(&TranscriptEntry {
                elapsed: std::time::Duration::ZERO,
                direction: "note",
                tls: false,
                text: "the server refused the access token: refreshing it once and retrying".into(),
            });
        }
    };
    tm.with_bearer(name, acct, &store, note, |creds| {
        let mut opts = plan.opts.clone();
        opts.credentials = Some(creds);
        send_once(opts, &plan.message)
    })
    .await
}

/// `--password-env` / `--password-command`, which override the account's.
fn cli_password(a: &SendArgs) -> Option<PasswordSource> {
    match (&a.password_env, &a.password_command) {
        (Some(v), _) => Some(PasswordSource::Env(v.clone())),
        (None, Some(c)) => Some(PasswordSource::Command(c.clone())),
        (None, None) => None,
    }
}

fn plan(
    g: &Global,
    a: &SendArgs,
    transcript: Arc<Mutex<Vec<TranscriptEntry>>>,
) -> Result<Plan, Error> {
    let mut oauth = None;
    let mut account_mechanism = None;
    let (mut endpoint, provider, account, default_from, password, user) = match &a.server {
        Some(url) => {
            let ep = Endpoint::from_url(url)?;
            (
                ep,
                None,
                None,
                a.user.clone().filter(|u| u.contains('@')),
                cli_password(a),
                a.user.clone(),
            )
        }
        None => {
            let config = Config::load(&g.paths.config_file)?;
            let (name, acct) = config.account(a.account.as_deref())?;
            if acct.auth == AuthMethod::Oauth {
                oauth = Some((name.to_string(), acct.clone()));
            }
            let pw = cli_password(a).unwrap_or_else(|| acct.password_source(name));
            account_mechanism = acct.mechanism()?;
            let user = a.user.clone().unwrap_or_else(|| acct.login().to_string());
            (
                acct.endpoint()?,
                Some(acct.provider),
                Some(name.to_string()),
                Some(acct.email.clone()),
                Some(pw),
                Some(user),
            )
        }
    };
    apply_tls_args(&mut endpoint, &a.tls)?;

    let message = build_message(a, default_from.as_deref())?;

    let credentials = match (password, user) {
        _ if oauth.is_some() => None, // a bearer token, fetched when sending
        (Some(src), user) => {
            let user = user.unwrap_or_else(|| message.from.to_string());
            let mut store = || open_store(&g.paths);
            let pw = src.resolve(&mut store)?;
            Some(Credentials::Password {
                username: user,
                password: normalize_app_password(&pw),
            })
        }
        (None, Some(user)) => {
            let pw = prompt_secret(
                &format!("Password for {user} at {}", endpoint.authority()),
                "Give --password-env VAR or --password-command CMD.",
            )?;
            Some(Credentials::Password {
                username: user,
                password: normalize_app_password(&pw),
            })
        }
        (None, None) => None,
    };

    let mut opts = ConnectOptions::new(endpoint);
    opts.credentials = credentials;
    opts.mechanism = a.auth_mechanism.clone().or(account_mechanism);
    opts.show_body = a.show_body;
    if g.verbose > 0 {
        opts.transcript = Some(transcript_sink(g, !a.json, transcript));
    }
    Ok(Plan {
        opts,
        provider,
        account,
        message,
        oauth,
    })
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
            ErrorKind::Io,
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
        let bytes = read_input(raw, "the raw message")?;
        let mut recipients: Vec<String> = a.recipients.clone();
        recipients.extend(a.to.iter().chain(&a.cc).chain(&a.bcc).cloned());
        return from_raw(
            bytes,
            &RawOptions {
                from: a.from.clone(),
                recipients,
                read_headers: a.read_recipients,
            },
        );
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
    let text = match (&a.text, &a.text_file) {
        (Some(t), _) => Some(t.clone()),
        (None, Some(p)) => Some(read_text(p, "the text body")?),
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
