//! `postie doctor`: the checklist, printed as each check is made.

use std::io::Write;
use std::sync::{Arc, Mutex};

use postie::config::{AccountConfig, Config};
use postie::error::{Error, ErrorKind};
use postie::explain::Context;
use postie::provider::{AuthMethod, ProviderId, provider_of_server};
use postie::transport::Endpoint;
use postie::transport::{Timeouts, TranscriptEntry};
use postie_doctor::{Check, Options, Report, Stage, Status, Target};
use postie_outbox::outbox::{Location, Outbox};
use serde_json::json;

use super::{Global, apply_tls_args, secrets, transcript_sink};
use crate::cli::DoctorArgs;
use crate::output::{self, Style, clean};

/// Run `postie doctor`; returns the exit code.
pub async fn run(g: &Global, args: DoctorArgs) -> i32 {
    let one_off;
    let config;
    let (name, acct, config_file) = match &args.server {
        Some(url) => {
            one_off = match server_account(&args, url) {
                Ok(a) => a,
                Err(e) => return usage_failure(g, &args, &e),
            };
            ("--server", &one_off, None)
        }
        None => {
            config = match Config::load(&g.paths.config_file) {
                Ok(c) => c,
                Err(e) => return usage_failure(g, &args, &e),
            };
            match config.account(args.account.as_deref()) {
                Ok((n, a)) => (n, a, Some(g.paths.config_file.as_path())),
                Err(e) => return usage_failure(g, &args, &e),
            }
        }
    };
    // Checked before anything connects, in the flag's own name.
    if let Some(to) = &args.send_test
        && let Err(e) = postie::message::envelope_address("--send-test", to)
    {
        return usage_failure(g, &args, &e);
    }
    let transcript: Arc<Mutex<Vec<TranscriptEntry>>> = Arc::default();
    let opts = Options {
        send_test: args.send_test.clone(),
        transcript: (g.verbose > 0 || args.json)
            .then(|| transcript_sink(g, !args.json, transcript.clone())),
        show_body: args.show_body,
        timeouts: Timeouts::all(args.timeout),
        data_dir: g.paths.data_dir.clone(),
    };
    let target = Target {
        name,
        account: acct,
        config_file,
        authenticate: args.server.is_none() || args.user.is_some(),
    };
    if !args.json {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{}",
            g.style.bold(&match &args.server {
                None => format!(
                    "postie doctor: account {name} ({}, {})",
                    acct.provider.preset().display_name,
                    acct.email
                ),
                Some(url) => format!("postie doctor: {url}"),
            })
        );
    }
    let style = g.style;
    let json_mode = args.json;
    let mut print = |c: &Check| {
        if !json_mode {
            print_check(&mut std::io::stdout().lock(), &style, c);
        }
    };
    let mut report = postie_doctor::run(&target, secrets(&g.paths), &opts, &mut print).await;
    // An account's check ends with the outbox it is sent through; a one-off
    // server check (--server) does not.
    if args.server.is_none()
        && let Some(check) = outbox_check(g).await
    {
        print(&check);
        report.checks.push(check);
    }
    let code = report.exit_code();
    if args.json {
        let transcript = transcript.lock().expect("transcript lock");
        output::print_json(&report_json(&report, code, &transcript));
    } else {
        print_result(&mut std::io::stdout().lock(), &style, &report, code);
    }
    code
}

/// The outbox several hosts share, when the config names one: reachable,
/// its schema, its deliverers. `None` for a local outbox directory.
async fn outbox_check(g: &Global) -> Option<Check> {
    let start = std::time::Instant::now();
    let opened = match super::queue::outbox_location(g).await {
        Ok(Location::Dir(_)) => return None,
        Ok(location) => {
            let shown = location.to_string();
            Outbox::open_shared_at(location).await.map(|o| (shown, o))
        }
        Err(e) => Err(e),
    };
    let status = match opened {
        Ok((shown, outbox)) => outbox.with(|o| o.status()).await.map(|s| (shown, s)),
        Err(e) => Err(e),
    };
    let elapsed_ms = start.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
    Some(match status {
        Ok((shown, details)) => Check {
            stage: Stage::Outbox,
            status: Status::Ok,
            summary: format!("the shared outbox {shown} is reachable"),
            details,
            explanation: None,
            elapsed_ms,
        },
        Err(e) => Check {
            stage: Stage::Outbox,
            status: Status::Failed,
            summary: e.message().to_string(),
            details: Vec::new(),
            explanation: Some(postie::explain::explain(&e, &Context::default())),
            elapsed_ms,
        },
    })
}

/// The settings of a server given with `--server`, as an account: the
/// provider is the preset whose host it is, else generic.
fn server_account(args: &DoctorArgs, url: &str) -> Result<AccountConfig, Error> {
    let mut ep = Endpoint::from_url(url)?;
    apply_tls_args(&mut ep, &args.tls)?;
    let provider = provider_of_server(&ep.host, ep.port);
    if args.user.is_some() && args.password_env.is_none() && args.password_command.is_none() {
        return Err(Error::new(
            ErrorKind::Usage,
            "with --user, give the password with --password-env VAR or --password-command CMD",
        ));
    }
    let auth =
        if provider.preset().supports(AuthMethod::AppPassword) && provider != ProviderId::Generic {
            AuthMethod::AppPassword
        } else {
            AuthMethod::Password
        };
    Ok(AccountConfig {
        provider,
        email: args.user.clone().unwrap_or_default(),
        auth,
        user: args.user.clone(),
        host: Some(ep.host.clone()),
        port: Some(ep.port),
        tls: Some(ep.tls),
        ca_file: ep.ca_file.clone(),
        tls_name: ep.tls_name.clone(),
        password_env: args.password_env.clone(),
        password_command: args.password_command.clone(),
        oauth: None,
        auth_mechanism: None,
        limits: None,
        transport: Default::default(),
        api_url: None,
        timeout: None,
    })
}

/// No account to check: the config cannot be read, or names no such account.
fn usage_failure(g: &Global, args: &DoctorArgs, e: &Error) -> i32 {
    let code = output::exit_code(e.kind());
    if args.json {
        let mut v = output::error_json(e, &Context::default());
        v["exit_code"] = json!(code);
        output::print_json(&v);
    } else {
        output::print_error(&g.style, e, &Context::default());
    }
    code
}

fn report_json(report: &Report, code: i32, transcript: &[TranscriptEntry]) -> serde_json::Value {
    json!({
        "account": report.account,
        "server": report.server,
        "ok": code == 0,
        "exit_code": code,
        "failed_stage": report.failed().map(|c| c.stage.title()),
        "checks": report.checks,
        "transcript": transcript,
    })
}

const INDENT: &str = "                      ";

/// One checklist line, its details and, for a warning or failure, the
/// explanation.
pub fn print_check(out: &mut dyn Write, style: &Style, c: &Check) {
    let (word, paint): (&str, fn(&Style, &str) -> String) = match c.status {
        Status::Ok => ("ok", Style::good),
        Status::Warning => ("warning", Style::warn),
        Status::Failed => ("failed", Style::bad),
        Status::Skipped => ("skipped", Style::dim),
    };
    let _ = writeln!(
        out,
        "  {} {:<11} {}",
        paint(style, &format!("{word:<7}")),
        c.stage.title(),
        clean(&c.summary)
    );
    for d in &c.details {
        let _ = writeln!(out, "{INDENT}{}", style.dim(&clean(d)));
    }
    if let Some(x) = &c.explanation
        && matches!(c.status, Status::Warning | Status::Failed)
    {
        let mut buf = Vec::new();
        output::print_explanation(&mut buf, style, x, &c.summary);
        for line in String::from_utf8_lossy(&buf).lines() {
            let _ = writeln!(out, "{INDENT}{line}");
        }
    }
}

fn print_result(out: &mut dyn Write, style: &Style, report: &Report, code: i32) {
    let warnings = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Warning)
        .count();
    let line = match report.failed() {
        Some(c) => style.bad(&format!(
            "failed at {} (exit {code}); the fix is above",
            c.stage.title()
        )),
        None if warnings > 0 => style.warn(&format!(
            "all checks passed, {warnings} warning{}",
            if warnings == 1 { "" } else { "s" }
        )),
        None => style.good("all checks passed"),
    };
    let _ = writeln!(out, "{line}");
}
