//! `postie doctor`: check one account end to end, stage by stage, and say
//! for each what was found, what is wrong and what to do.
//!
//! Stages run in order: configuration, DNS, TCP connect, TLS, EHLO,
//! credentials, AUTH, and an optional test message. The first hard failure
//! stops the run; the stages after it are reported as not checked, with the
//! reason. Warnings do not stop it. No mail is sent unless a test message
//! is asked for: AUTH is followed by RSET and QUIT.

#![deny(missing_docs)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use postie_proto::capability::Capabilities;
use postie_proto::sasl::{Credentials, Mechanism};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tokio::net::TcpStream;

use postie::config::{AccountConfig, Config, Transport};
use postie::error::{ErrorKind, Result};
use postie::explain::{Context, Explanation, explain};
use postie::mailer::{Account, Auth, Mailer, Session};
use postie::message::{Draft, OutgoingMessage};
use postie::oauth::{GOOGLE_SCOPE, MICROSOFT_SMTP_SCOPE, TokenSet};
use postie::provider::{AuthMethod, ProviderId, TlsMode};
use postie::secret::Secrets;
use postie::transport::cert::CertInfo;
use postie::wording::{Setting, say_setting};
mod api;
mod credentials;
mod network;

use credentials::check_credentials;
use network::{check_config, check_connect, check_dns, check_tls_and_ehlo};
use postie::transport::{
    ConnectOptions, Connection, Endpoint, Timeouts, TlsInfo, TranscriptEntry, TranscriptSink,
};

/// One stage of the check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stage {
    /// The account's settings and the config file.
    Config,
    /// Resolving the host name.
    Dns,
    /// Opening a TCP connection.
    Connect,
    /// TLS (implicit or STARTTLS) and the certificate.
    Tls,
    /// The server's greeting and EHLO capabilities.
    Ehlo,
    /// The password or OAuth token, obtained locally.
    Credentials,
    /// A real authentication.
    Auth,
    /// The optional test message.
    SendTest,
    /// The outbox the hosts of a fleet share (checked by the front that
    /// can open it, after the account's stages).
    Outbox,
}

impl Stage {
    /// Every stage, in order.
    pub const ALL: [Stage; 8] = [
        Stage::Config,
        Stage::Dns,
        Stage::Connect,
        Stage::Tls,
        Stage::Ehlo,
        Stage::Credentials,
        Stage::Auth,
        Stage::SendTest,
    ];

    /// The short name shown in the checklist.
    pub fn title(self) -> &'static str {
        match self {
            Stage::Config => "config",
            Stage::Dns => "dns",
            Stage::Connect => "connect",
            Stage::Tls => "tls",
            Stage::Ehlo => "ehlo",
            Stage::Credentials => "credentials",
            Stage::Auth => "auth",
            Stage::SendTest => "send-test",
            Stage::Outbox => "outbox",
        }
    }

    /// The exit code of a run that fails at this stage: sysexits.h where
    /// one fits, else postie's own (79-81).
    pub fn exit_code(self) -> i32 {
        match self {
            Stage::Config => 78,      // EX_CONFIG
            Stage::Dns => 68,         // EX_NOHOST
            Stage::Connect => 69,     // EX_UNAVAILABLE
            Stage::Tls => 76,         // EX_PROTOCOL
            Stage::Ehlo => 79,        // refused at greeting/EHLO, or lacks what is needed
            Stage::Credentials => 80, // no usable password or token here
            Stage::Auth => 77,        // EX_NOPERM
            Stage::SendTest => 81,    // the test message was refused
            Stage::Outbox => 74,      // EX_IOERR: the outbox cannot be opened
        }
    }
}

/// The outcome of one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Fine.
    Ok,
    /// Works, but something should be looked at.
    Warning,
    /// Broken: the run stops here.
    Failed,
    /// Not checked (an earlier stage failed, or nothing to check).
    Skipped,
}

/// One line of the checklist.
#[derive(Clone, Debug, Serialize)]
pub struct Check {
    /// Which stage.
    pub stage: Stage,
    /// Ok, warning, failed or skipped.
    pub status: Status,
    /// One line: what was found.
    pub summary: String,
    /// Further facts (addresses, certificate, capabilities, warnings).
    pub details: Vec<String>,
    /// For a warning or failure: what happened, causes, fix.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
    /// How long the stage took.
    pub elapsed_ms: u64,
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// The account checked.
    pub account: String,
    /// `host:port` checked.
    pub server: String,
    /// One entry per stage, in order.
    pub checks: Vec<Check>,
}

impl Report {
    /// The failed check, if any.
    pub fn failed(&self) -> Option<&Check> {
        self.checks.iter().find(|c| c.status == Status::Failed)
    }

    /// 0 when nothing failed, else the failed stage's code.
    pub fn exit_code(&self) -> i32 {
        self.failed().map_or(0, |c| c.stage.exit_code())
    }
}

/// What to check.
pub struct Target<'a> {
    /// The account's name.
    pub name: &'a str,
    /// Its settings.
    pub account: &'a AccountConfig,
    /// The config file it came from (its permissions are checked); `None`
    /// for a one-off check of a server given on the command line.
    pub config_file: Option<&'a Path>,
    /// Check the credentials and AUTH; false when there are none to check
    /// (a server given without a user): the run ends after EHLO.
    pub authenticate: bool,
}

/// How to check it.
#[derive(Clone, Default)]
pub struct Options {
    /// Send a test message to this address after AUTH.
    pub send_test: Option<String>,
    /// Where the SMTP dialogue goes, line by line.
    pub transcript: Option<TranscriptSink>,
    /// Show the test message's body in the transcript.
    pub show_body: bool,
    /// Connect and command timeouts.
    pub timeouts: Timeouts,
    /// postie's data directory (token locks).
    pub data_dir: PathBuf,
}

struct Run<'a> {
    target: &'a Target<'a>,
    opts: &'a Options,
    /// The sending core, with the doctor's transcript and timeouts.
    mailer: Mailer,
    checks: Vec<Check>,
    on_check: &'a mut dyn FnMut(&Check),
}

impl Run<'_> {
    fn ctx(&self) -> Context<'_> {
        Context {
            provider: Some(self.target.account.provider),
            account: Some(self.target.name),
            host: None,
        }
    }

    fn push(&mut self, check: Check) -> bool {
        let failed = check.status == Status::Failed;
        (self.on_check)(&check);
        self.checks.push(check);
        !failed
    }

    /// A failed check for `stage` from a library error, explained.
    fn fail(&mut self, stage: Stage, e: &postie::error::Error, started: Instant) {
        let mut c = check(stage, Status::Failed, e.message(), started);
        c.explanation = Some(explain(e, &self.ctx()));
        self.push(c);
    }

    fn note(&self, text: String) {
        if let Some(t) = &self.opts.transcript {
            t(&TranscriptEntry {
                elapsed: Duration::ZERO,
                direction: "note",
                tls: false,
                text,
            });
        }
    }
}

fn check(stage: Stage, status: Status, summary: impl Into<String>, started: Instant) -> Check {
    Check {
        stage,
        status,
        summary: summary.into(),
        details: Vec::new(),
        explanation: None,
        elapsed_ms: started.elapsed().as_millis() as u64,
    }
}

/// Explanation of a problem the doctor finds itself (not a server reply):
/// the catalog's finding `id`, with the values its texts name.
fn finding(id: &str, ctx: &Context<'_>, values: &[(&str, &str)]) -> Explanation {
    postie::explain::finding(id, ctx, values)
}

/// Run every stage for `target`; `on_check` sees each check as it is made.
/// The credentials come from `secrets` (and the account's own sources),
/// through the same sending core that sends mail.
pub async fn run(
    target: &Target<'_>,
    secrets: Secrets,
    opts: &Options,
    on_check: &mut dyn FnMut(&Check),
) -> Report {
    let mailer = Mailer::with_options(
        Config::default(),
        opts.data_dir.clone(),
        secrets,
        postie::mailer::Options {
            timeouts: opts.timeouts,
            transcript: opts.transcript.clone(),
            show_body: opts.show_body,
            ..postie::mailer::Options::default()
        },
    );
    let server = match api_of(target) {
        Some(api) => api.server(),
        None => target
            .account
            .endpoint()
            .map(|e| e.authority())
            .unwrap_or_else(|_| "?".into()),
    };
    let mut run = Run {
        target,
        opts,
        mailer,
        checks: Vec::new(),
        on_check,
    };
    stages(&mut run).await;
    // What could not be checked after a failure is listed as such.
    if let Some(failed) = run.checks.iter().find(|c| c.status == Status::Failed) {
        let failed = failed.stage;
        let done = run.checks.len();
        for stage in Stage::ALL.iter().skip(done) {
            if *stage == Stage::SendTest && opts.send_test.is_none() {
                continue;
            }
            run.push(Check {
                stage: *stage,
                status: Status::Skipped,
                summary: format!("not checked: the {} check failed", failed.title()),
                details: Vec::new(),
                explanation: None,
                elapsed_ms: 0,
            });
        }
    }
    Report {
        account: target.name.to_string(),
        server,
        checks: run.checks,
    }
}

/// The HTTPS API an account sends through first, if it is one (and the
/// run authenticates: without a login only SMTP can be checked).
fn api_of(target: &Target<'_>) -> Option<postie::api::Api> {
    let transport = target.account.transport.first();
    if transport == Transport::Smtp || !target.authenticate {
        return None;
    }
    postie::api::Api::new(transport, target.account.api_url.as_deref()).ok()
}

/// The stages in order, one check each, until one fails.
async fn stages(run: &mut Run<'_>) {
    let acct = run.target.account;
    let Some(ep) = check_config(run) else { return };
    let transport = acct.transport.first();
    if transport != Transport::Smtp && run.target.authenticate {
        api::stages(run, transport).await;
        return;
    }
    let Some(addrs) = check_dns(run, &ep).await else {
        return;
    };
    if !check_connect(run, &ep, &addrs).await || !check_tls_and_ehlo(run, &ep).await {
        return;
    }
    let no_login = acct.auth == AuthMethod::None;
    if !run.target.authenticate || no_login {
        for stage in [Stage::Credentials, Stage::Auth] {
            run.push(Check {
                stage,
                status: Status::Skipped,
                summary: if no_login {
                    "not checked: the account logs in with nothing (auth = \"none\")".to_string()
                } else {
                    format!(
                        "not checked: no user given ({})",
                        say_setting(Setting::ServerLogin)
                    )
                },
                details: Vec::new(),
                explanation: None,
                elapsed_ms: 0,
            });
        }
        // An account without login can still send its test message.
        if no_login
            && let Some(to) = run.opts.send_test.clone()
            && let Ok(mut account) = Account::from_config(run.target.name, acct)
        {
            account.endpoint = ep.clone();
            let session = run.mailer.session(&account);
            check_send_test(run, session, &to).await;
        }
        return;
    }
    let account = match Account::from_config(run.target.name, acct) {
        Ok(mut a) => {
            a.endpoint = ep.clone();
            a
        }
        Err(e) => {
            run.fail(Stage::Credentials, &e, Instant::now());
            return;
        }
    };
    let Some(creds) = check_credentials(run, &account, acct).await else {
        return;
    };
    let Some(session) = check_auth(run, &account, creds).await else {
        return;
    };
    match run.opts.send_test.clone() {
        Some(to) => check_send_test(run, session, &to).await,
        None => session.close().await,
    }
}

// ---- AUTH and test message ----

async fn check_auth(run: &mut Run<'_>, account: &Account, creds: Credentials) -> Option<Session> {
    let started = Instant::now();
    let ep = &account.endpoint;
    run.note("authenticating (no mail is sent: RSET and QUIT follow)".into());
    let mut session = run.mailer.session(account);
    match session.connect_with(Some(creds)).await {
        Ok(()) => {
            let conn = &mut session;
            let mech = conn
                .mechanism()
                .map(|m| m.to_string())
                .unwrap_or_else(|| "none".into());
            let mut c = check(
                Stage::Auth,
                Status::Ok,
                format!(
                    "authenticated as {} with {mech}",
                    run.target.account.login()
                ),
                started,
            );
            if let Err(e) = conn.reset().await {
                c.status = Status::Warning;
                c.details
                    .push(format!("RSET after AUTH failed: {}", e.message()));
            }
            run.push(c);
            Some(session)
        }
        Err(e) => {
            let mut c = check(Stage::Auth, Status::Failed, e.message(), started);
            if let Some(r) = e.reply() {
                c.details = r
                    .wire_lines()
                    .iter()
                    .map(|l| format!("server: {l}"))
                    .collect();
            }
            c.explanation = Some(explain(
                &e,
                &Context {
                    host: Some(&ep.host),
                    ..run.ctx()
                },
            ));
            run.push(c);
            None
        }
    }
}

fn test_message(from: &str, to: &str) -> Result<OutgoingMessage> {
    Draft {
        from: from.into(),
        to: vec![to.into()],
        subject: Some("postie doctor: test message".into()),
        text: Some(
            "This message was sent by postie doctor's test to check that this account can send mail.\n"
                .into(),
        ),
        ..Draft::default()
    }
    .build()
}

async fn check_send_test(run: &mut Run<'_>, mut session: Session, to: &str) {
    let started = Instant::now();
    let msg = match test_message(&run.target.account.email, to) {
        Ok(m) => m,
        Err(e) => {
            run.fail(Stage::SendTest, &e, started);
            session.close().await;
            return;
        }
    };
    let result = session.send(&msg).await.map(|r| r.transaction);
    session.close().await;
    let (status, summary, explanation, details) = match result {
        Ok(r) if r.is_delivered() => (
            Status::Ok,
            format!(
                "test message to {to} accepted: {}",
                r.data
                    .as_ref()
                    .and_then(|d| d.wire_lines().pop())
                    .unwrap_or_default()
            ),
            None,
            Vec::new(),
        ),
        Ok(r) => {
            let reply = r
                .rejected()
                .next()
                .and_then(|x| x.reply.clone())
                .or_else(|| Some(r.mail.clone()).filter(|m| !m.is_positive()))
                .or_else(|| r.data.clone());
            let x = reply
                .as_ref()
                .and_then(|rep| postie::explain::explain_reply(rep, &run.ctx()));
            (
                Status::Failed,
                format!("the test message to {to} was refused"),
                x,
                reply
                    .map(|r| {
                        r.wire_lines()
                            .iter()
                            .map(|l| format!("server: {l}"))
                            .collect()
                    })
                    .unwrap_or_default(),
            )
        }
        Err(e) => (
            Status::Failed,
            e.message().to_string(),
            Some(explain(&e, &run.ctx())),
            Vec::new(),
        ),
    };
    let mut c = check(Stage::SendTest, status, summary, started);
    c.explanation = explanation;
    c.details = details;
    run.push(c);
}
