//! `postie demo`: the story of the smtplib-and-Gmail article, told against
//! an in-process sandbox provider. Everything runs on 127.0.0.1, in a
//! temporary directory that is removed at the end; nothing is left running.
//!
//! 1. the account password: refused with Gmail's `534-5.7.9`, and explained;
//! 2. an app password: delivered;
//! 3. OAuth 2.0: sign-in through the sandbox's consent page (Allow clicked
//!    by the demo's own HTTP client), the token stored, an XOAUTH2 send,
//!    then the access token expired at the server and refreshed on the fly;
//! 4. a legacy script (the article's Example 2 in Python's smtplib, only
//!    host and port changed) sending through `postie relay`, which delivers
//!    upstream with OAuth 2.0;
//! 5. the sandbox's mailbox.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use postie::config::{AccountConfig, Config, PasswordSource, RelayUser};
use postie::error::{Error, ErrorKind};
use postie::explain::{Context, explain};
use postie::mailer::{Account, Mailer, SendReport};
use postie::message::Draft;
use postie::oauth::{LoginOptions, LoginPrompt, TokenSet};
use postie::provider::{ProviderId, TlsMode};
use postie::secret::{SecretStore, Secrets};
use postie::transport::Endpoint;
use postie_outbox::delivery::{Deliverer, Settings};
use postie_outbox::outbox::Outbox;
use postie_outbox::relay::{BindOptions, Relay, users};
use postie_sandbox::{
    DEFAULT_APP_PASSWORD, DEFAULT_PASSWORD, DEFAULT_USER, Sandbox, SandboxConfig, SandboxHandle,
};
use secrecy::SecretString;
use tokio::sync::{Notify, watch};

use super::Global;
use crate::cli::DemoArgs;
use crate::output::{self, Style, exit};

const TO: &str = "friend@example.com";
const ACCOUNT: &str = "sandbox";
/// The password the legacy script logs in to the relay with.
const SCRIPT_PASSWORD: &str = "legacy-script-password";
const SCRIPT: &str = include_str!("demo_client.py");

/// Run `postie demo`; returns the exit code.
pub async fn run(g: &Global, args: DemoArgs) -> i32 {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(format!("postie-demo-{}", std::process::id()));
    let mut out = Out {
        style: g.style,
        failures: Vec::new(),
    };
    let result = story(&mut out, &dir).await;
    let kept = args.keep;
    if !kept {
        let _ = std::fs::remove_dir_all(&dir);
    }
    match result {
        Ok(()) if out.failures.is_empty() => {
            out.line(&format!(
                "\n{} in {:.1} s; nothing left running{}",
                g.style.good("done"),
                started.elapsed().as_secs_f64(),
                if kept {
                    format!(" (files kept in {})", dir.display())
                } else {
                    String::new()
                }
            ));
            exit::OK
        }
        Ok(()) => {
            out.line(&g.style.bad(&format!(
                "\nthe demo did not go as it should: {}",
                out.failures.join("; ")
            )));
            exit::SOFTWARE
        }
        Err(e) => {
            output::print_error(&g.style, &e, &Context::default());
            output::exit_code(e.kind())
        }
    }
}

/// Where the story is told.
struct Out {
    style: Style,
    failures: Vec<String>,
}

impl Out {
    fn line(&self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = writeln!(o, "{s}");
        let _ = o.flush();
    }
    fn step(&self, n: u32, title: &str) {
        self.line(&format!("\n{}", self.style.bold(&format!("{n}. {title}"))));
    }
    fn say(&self, s: &str) {
        self.line(&format!("   {s}"));
    }
    fn ok(&self, s: &str) {
        self.line(&format!("   {} {s}", self.style.good("✓")));
    }
    fn expected_refusal(&self, s: &str) {
        self.line(&format!("   {} {s}", self.style.warn("✗")));
    }
    /// Something that should have happened did not.
    fn wrong(&mut self, what: String) {
        self.line(&format!("   {} {what}", self.style.bad("unexpected:")));
        self.failures.push(what);
    }
}

async fn story(out: &mut Out, dir: &Path) -> Result<(), Error> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    out.line(&out.style.bold(
        "postie demo: \"What are the Python smtplib problems when interacting with Gmail?\", told offline",
    ));
    out.line(
        "Against postie's sandbox: a provider on 127.0.0.1 that authenticates, answers and fails like Gmail.",
    );
    let mut cfg = SandboxConfig::new(dir.join("sandbox"));
    cfg.use_free_ports();
    let sandbox = Sandbox::start(cfg).await?;
    out.say(&format!(
        "sandbox: SMTP {} (STARTTLS) and {} (implicit TLS), OAuth and mailbox at {}",
        sandbox.smtp_addr,
        sandbox.smtps_addr,
        sandbox.issuer()
    ));
    out.say(&format!(
        "account {DEFAULT_USER}: 2-Step Verification on, app password '{DEFAULT_APP_PASSWORD}'"
    ));
    let r = chapters(out, dir, &sandbox).await;
    sandbox.shutdown().await;
    r
}

async fn chapters(out: &mut Out, dir: &Path, sandbox: &SandboxHandle) -> Result<(), Error> {
    let endpoint = Endpoint {
        host: "127.0.0.1".into(),
        port: sandbox.smtp_addr.port(),
        tls: TlsMode::Starttls,
        tls_name: None,
        ca_file: Some(sandbox.ca_pem_path.clone()),
    };
    let secrets = Secrets::from(SecretStore::file(
        dir.join("data/secrets.enc"),
        Box::new(|| Ok(SecretString::from("postie-demo"))),
    ));
    // The one account of the demo's config, signing in with OAuth 2.0.
    let mut config = Config::default();
    config
        .accounts
        .insert(ACCOUNT.into(), oauth_account(sandbox));
    config.default_account = Some(ACCOUNT.into());
    let mailer = Mailer::new(config, dir.join("data"), secrets);
    account_password(out, &mailer, &endpoint).await?;
    app_password(out, &mailer, &endpoint).await?;
    oauth(out, &mailer, sandbox).await?;
    relay(out, dir, sandbox, &mailer).await?;
    https(out, &mailer, sandbox).await?;
    mailbox(out, sandbox)?;
    Ok(())
}

fn message(subject: &str, text: &str) -> Result<postie::message::OutgoingMessage, Error> {
    Draft {
        from: DEFAULT_USER.into(),
        to: vec![TO.into()],
        subject: Some(subject.into()),
        text: Some(text.into()),
        ..Draft::default()
    }
    .build()
}

/// The sandbox's SMTP port with a password, as a script would use it.
fn with_password(endpoint: &Endpoint, user: &str, password: &str) -> Account {
    Account::from_endpoint(endpoint.clone())
        .with_password(user, PasswordSource::Given(SecretString::from(password)))
}

fn reply_lines(out: &Out, e: &Error) {
    if let Some(r) = e.reply() {
        for l in r.wire_lines() {
            out.say(&format!("     {}", out.style.dim(&format!("server: {l}"))));
        }
    }
}

fn delivered_line(r: &SendReport) -> String {
    let last = r
        .reply
        .as_ref()
        .and_then(|x| x.wire_lines().pop())
        .unwrap_or_default();
    format!(
        "delivered with {}: {last}",
        r.auth.as_deref().unwrap_or("no AUTH")
    )
}

async fn account_password(
    out: &mut Out,
    mailer: &Mailer,
    endpoint: &Endpoint,
) -> Result<(), Error> {
    out.step(1, "The account password (the article's Example 1)");
    out.say(&format!(
        "AUTH PLAIN as {DEFAULT_USER} with the account password, like server.login(email, password)"
    ));
    let msg = message("Example 1: the account password", "This one is refused.")?;
    let account = with_password(endpoint, DEFAULT_USER, DEFAULT_PASSWORD);
    match mailer.send(&account, &msg).await {
        Ok(r) => out.wrong(format!(
            "the account password was accepted ({})",
            delivered_line(&r)
        )),
        Err(e) if e.reply().is_some_and(|r| r.code == 534) => {
            out.expected_refusal("refused, as Gmail refuses it:");
            reply_lines(out, &e);
            // What a Gmail user of an account named "personal" is told.
            let x = explain(
                &e,
                &Context {
                    provider: Some(ProviderId::Gmail),
                    account: Some("personal"),
                    host: Some("smtp.gmail.com"),
                },
            );
            out.say("postie explains (as to a Gmail user):");
            let mut buf = Vec::new();
            output::print_explanation(&mut buf, &out.style, &x, "");
            for l in String::from_utf8_lossy(&buf).lines() {
                out.say(&format!("  {l}"));
            }
        }
        Err(e) => out.wrong(format!(
            "the account password got another answer: {}",
            e.message()
        )),
    }
    Ok(())
}

async fn app_password(out: &mut Out, mailer: &Mailer, endpoint: &Endpoint) -> Result<(), Error> {
    out.step(2, "An app password (the article's Example 2)");
    let msg = message("Example 2: an app password", "Sent with an app password.")?;
    let account = with_password(endpoint, DEFAULT_USER, DEFAULT_APP_PASSWORD);
    match mailer.send(&account, &msg).await {
        Ok(r) if r.failure().is_none() => out.ok(&delivered_line(&r)),
        Ok(r) => out.wrong(format!("the app password send failed: {:?}", r.failure())),
        Err(e) => out.wrong(format!("the app password send failed: {}", e.message())),
    }
    Ok(())
}

fn oauth_account(sandbox: &SandboxHandle) -> AccountConfig {
    AccountConfig {
        auth_mechanism: Some("XOAUTH2".into()),
        ..sandbox.oauth_account(DEFAULT_USER)
    }
}

async fn oauth(out: &mut Out, mailer: &Mailer, sandbox: &SandboxHandle) -> Result<(), Error> {
    let store = mailer.secrets();
    let acct = &mailer.config().accounts[ACCOUNT];
    out.step(3, "OAuth 2.0 (the article's Example 3)");
    let opts = LoginOptions {
        open_browser: false,
        timeout: Duration::from_secs(30),
        ..LoginOptions::default()
    };
    // The "browser": fetch the consent page, click Allow, follow the
    // redirect back to postie's loopback listener.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let prompt = move |p: &LoginPrompt| {
        if let LoginPrompt::OpenUrl { url, .. } = p {
            let _ = tx.send(url.clone());
        }
    };
    let browser = async {
        let url = rx.recv().await?;
        Some(approve(&url).await)
    };
    let (tokens, consent) = tokio::join!(
        postie::oauth::login(ACCOUNT, acct, store, &opts, &prompt, None),
        browser
    );
    match consent {
        Some(Ok(scope)) => out.ok(&format!(
            "sign-in: the sandbox's consent page asked for {scope}; Allow was clicked (automatically, in the demo)"
        )),
        Some(Err(e)) => out.wrong(format!("the consent page: {e}")),
        None => out.wrong("no sign-in URL was given".into()),
    }
    let tokens = tokens?;
    out.ok(&format!(
        "tokens stored in postie's secret store: an access token valid for {} min and a refresh token",
        tokens
            .remaining(SystemTime::now())
            .map_or(0, |d| d.as_secs().div_ceil(60))
    ));
    let account = mailer.account(Some(ACCOUNT))?;
    let send = |subject: &'static str| {
        let account = account.clone();
        async move {
            let msg = message(subject, "Sent with an OAuth 2.0 access token.")?;
            let r = mailer.send(&account, &msg).await?;
            let refreshed = r.token_refreshed;
            Ok::<_, Error>((r, refreshed))
        }
    };
    match send("Example 3: OAuth 2.0").await {
        Ok((r, _)) if r.failure().is_none() => out.ok(&delivered_line(&r)),
        Ok((r, _)) => out.wrong(format!("the XOAUTH2 send failed: {:?}", r.failure())),
        Err(e) => out.wrong(format!("the XOAUTH2 send failed: {}", e.message())),
    }
    let before = TokenSet::load(store, ACCOUNT)
        .await?
        .and_then(|t| t.refresh_token);
    let n = sandbox.expire_access_tokens(DEFAULT_USER);
    out.say(&format!(
        "the sandbox now ends the access token's life early ({n} token{}), as Google does after an hour",
        if n == 1 { "" } else { "s" }
    ));
    match send("Example 3 again, after the token expired").await {
        Ok((r, refreshed)) if r.failure().is_none() => {
            let after = TokenSet::load(store, ACCOUNT)
                .await?
                .and_then(|t| t.refresh_token);
            let rotated = match (&before, &after) {
                (Some(b), Some(a)) => {
                    use secrecy::ExposeSecret;
                    b.expose_secret() != a.expose_secret()
                }
                _ => false,
            };
            if refreshed {
                out.ok(&format!(
                    "the server refused the stored token (the XOAUTH2 error challenge, then 535 5.7.8); postie refreshed it once{} and sent again",
                    if rotated {
                        " (the refresh token rotated: the new one is saved)"
                    } else {
                        ""
                    }
                ));
            } else {
                out.wrong("the expired token was not refreshed".into());
            }
            out.ok(&delivered_line(&r));
        }
        Ok((r, _)) => out.wrong(format!("the send after expiry failed: {:?}", r.failure())),
        Err(e) => out.wrong(format!("the send after expiry failed: {}", e.message())),
    }
    Ok(())
}

/// What a person does in the browser: open the consent page, choose the
/// account and click Allow; the redirect then reaches postie's loopback
/// listener. Returns the scope the page asked for.
async fn approve(url: &str) -> Result<String, String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())?;
    let page = http
        .get(url)
        .send()
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    let field = |name: &str| -> Option<String> {
        let key = format!("name=\"{name}\" value=\"");
        let start = page.find(&key)? + key.len();
        Some(page[start..].split('"').next()?.to_string())
    };
    let consent = field("consent").ok_or("the consent page has no consent form")?;
    let scope = url::Url::parse(url)
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "scope")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default();
    let base = url::Url::parse(url).map_err(|e| e.to_string())?;
    let action = base.join(base.path()).map_err(|e| e.to_string())?;
    let answer = http
        .post(action)
        .form(&[
            ("consent", consent.as_str()),
            ("user", DEFAULT_USER),
            ("action", "allow"),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let back = answer
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| format!("Allow did not redirect ({})", answer.status()))?
        .to_string();
    http.get(back).send().await.map_err(|e| e.to_string())?;
    Ok(scope)
}

async fn relay(
    out: &mut Out,
    dir: &Path,
    sandbox: &SandboxHandle,
    mailer: &Mailer,
) -> Result<(), Error> {
    out.step(4, "A legacy script through postie relay");
    let data_dir = dir.join("data");
    let mut config = mailer.config().clone();
    // Argon2 and SQLite (with its fsyncs) on blocking threads, not here.
    let password_hash =
        postie::blocking::unblock(|| users::hash_password(&SecretString::from(SCRIPT_PASSWORD)))
            .await?;
    config.relay.users.push(RelayUser {
        username: DEFAULT_USER.into(),
        account: ACCOUNT.into(),
        password_hash,
    });
    let outbox = Outbox::open_shared(&data_dir.join("outbox")).await?;
    let wake = Arc::new(Notify::new());
    let relay = Relay::bind(
        config.clone(),
        outbox.clone(),
        BindOptions {
            listen: vec!["127.0.0.1:0".into()],
            data_dir: &data_dir,
            wake: wake.clone(),
        },
    )
    .await?;
    let addr = relay.local_addrs()[0];
    let deliverer = Deliverer::new(Settings::default(), outbox, mailer.clone()).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let serving = tokio::spawn(relay.serve(stop_rx.clone()));
    let delivering = {
        let d = deliverer.clone();
        let wake = wake.clone();
        tokio::spawn(async move { d.run(stop_rx, wake).await })
    };
    out.say(&format!(
        "postie relay listens on {addr}; the script logs in as {DEFAULT_USER} with a relay password (`postie relay user add`)"
    ));
    let before = sandbox.mailbox().list()?.len();
    let outcome = legacy_client(mailer, dir, addr.port()).await;
    match &outcome {
        Ok(said) => out.ok(&format!("the script printed: {said}")),
        Err(e) => out.wrong(format!("the script failed: {e}")),
    }
    if outcome.is_ok() {
        let deadline = Instant::now() + Duration::from_secs(20);
        let arrived = loop {
            let list = sandbox.mailbox().list()?;
            if list.len() > before {
                break list.last().cloned();
            }
            if Instant::now() > deadline {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        match arrived {
            Some(m) => out.ok(&format!(
                "postie stored it before answering 250, then delivered it upstream with {} as {}",
                m.mechanism, m.user
            )),
            None => out.wrong("the relayed message did not reach the sandbox within 20 s".into()),
        }
    }
    let _ = stop_tx.send(true);
    let _ = serving.await;
    let _ = delivering.await;
    Ok(())
}

/// Python's smtplib running the article's Example 2 against the relay; when
/// python3 is not installed, postie's own client plays the script's part.
async fn legacy_client(mailer: &Mailer, dir: &Path, port: u16) -> Result<String, String> {
    let script = dir.join("example2.py");
    std::fs::write(&script, SCRIPT).map_err(|e| e.to_string())?;
    let run = tokio::process::Command::new("python3")
        .arg(&script)
        .args([
            "127.0.0.1",
            &port.to_string(),
            DEFAULT_USER,
            SCRIPT_PASSWORD,
            TO,
        ])
        .output()
        .await;
    match run {
        Ok(o) => {
            let said = String::from_utf8_lossy(&o.stdout).trim().to_string();
            if o.status.success() {
                Ok(format!("\"{said}\" (Python's smtplib)"))
            } else {
                Err(format!(
                    "{said} {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let data_dir: PathBuf = dir.join("data");
            let ep = Endpoint {
                host: "127.0.0.1".into(),
                port,
                tls: TlsMode::Starttls,
                tls_name: None,
                ca_file: Some(data_dir.join("relay-tls/ca.pem")),
            };
            let msg = message(
                "Example 2 through postie relay",
                "A legacy client, unchanged but for host and port.",
            )
            .map_err(|e| e.to_string())?;
            mailer
                .send(&with_password(&ep, DEFAULT_USER, SCRIPT_PASSWORD), &msg)
                .await
                .map(|_| {
                    "sent (python3 is not installed: postie's own client played the script)".into()
                })
                .map_err(|e| e.to_string())
        }
        Err(e) => Err(format!("cannot run python3: {e}")),
    }
}

/// Where SMTP is blocked: the same account and token over the Gmail API.
async fn https(out: &mut Out, mailer: &Mailer, sandbox: &SandboxHandle) -> Result<(), Error> {
    use postie::config::{Transport, Transports};
    out.step(
        5,
        "SMTP blocked: the same account over HTTPS (the Gmail API)",
    );
    let mut account = mailer.account(Some(ACCOUNT))?;
    // A port nothing answers on, as on a cloud host that blocks outgoing SMTP.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot find a free port: {e}")))?
        .port();
    account.endpoint.port = closed;
    account.transports = Transports::new([Transport::Smtp, Transport::GmailApi]);
    account.api_url = Some(format!("http://{}", sandbox.http_addr));
    out.say(&format!(
        "nothing answers on the account's SMTP port here (127.0.0.1:{closed}); with transport = [\"smtp\", \"gmail-api\"] postie tries SMTP, then HTTPS"
    ));
    let msg = message(
        "Example 3 over HTTPS, SMTP blocked",
        "Sent through the Gmail API with the same OAuth token.",
    )?;
    match mailer.send(&account, &msg).await {
        Ok(r) if r.failure().is_none() && r.transport == Transport::GmailApi => out.ok(&format!(
            "SMTP could not connect; delivered through the Gmail API: {}",
            r.recipients.first().map_or("", |x| x.text.as_str())
        )),
        Ok(r) => out.wrong(format!(
            "the send went through {} with {:?}",
            r.transport,
            r.failure().map(|e| e.message().to_string())
        )),
        Err(e) => out.wrong(format!("the send over HTTPS failed: {}", e.message())),
    }
    Ok(())
}

fn mailbox(out: &mut Out, sandbox: &SandboxHandle) -> Result<(), Error> {
    out.step(6, "The sandbox's mailbox");
    let list = sandbox.mailbox().list()?;
    for m in &list {
        out.say(&format!(
            "#{} {:<9} {} -> {}  \"{}\"",
            m.id,
            m.mechanism,
            m.mail_from.as_deref().unwrap_or("<>"),
            m.recipients.join(", "),
            m.subject.as_deref().unwrap_or("")
        ));
    }
    if list.len() != 5 {
        out.wrong(format!(
            "the mailbox holds {} messages, not the 5 expected",
            list.len()
        ));
    }
    out.say(&out.style.dim(
        "(`postie sandbox` runs this provider for your own scripts; `postie sandbox messages` lists what it received)",
    ));
    Ok(())
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot create {}: {e}", path.display()),
    )
}
