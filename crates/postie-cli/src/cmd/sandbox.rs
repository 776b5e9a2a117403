//! `postie sandbox`: run the local Gmail stand-in, print its CA, read its
//! mailbox.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use postie::error::{Error, ErrorKind};
use postie_sandbox::{
    DEFAULT_CLIENT_ID, Mailbox, MessageView, Sandbox, SandboxConfig, SandboxFile, SandboxHandle,
    StoredMessage, User,
};
use serde_json::json;

use super::Global;
use crate::output::{self, exit};

/// `postie sandbox --help` examples.
pub const EXAMPLES: &str = "\
Examples:
  # Run it (Ctrl-C or SIGTERM stops it); it prints its ports, CA and credentials
  postie sandbox

  # Send through it like through Gmail
  postie account add sb --provider sandbox --email me@sandbox.postie.test --password-env SB_APP_PW
  SB_APP_PW='abcd efgh ijkl mnop' postie send -a sb --to bob@example.test --text hi
  postie account add sbo --provider sandbox --email me@sandbox.postie.test --auth oauth
  postie login sbo                         # the sandbox's consent page: Allow or Deny

  # Any other client: trust its CA
  swaks --server 127.0.0.1:2587 --tls --tls-ca-path \"$(postie sandbox ca --path)\" \\
      --auth-user me@sandbox.postie.test --auth-password 'abcd efgh ijkl mnop' --to bob@example.test

  # For scripts and tests: free ports, one JSON line with where everything is
  postie sandbox --json --smtp-port 0 --smtps-port 0 --http-port 0 --data-dir /tmp/sb

  postie sandbox messages                  # what it accepted (also at http://127.0.0.1:2580/)
  postie sandbox messages show 3           # header, parts, attachments

It answers like smtp.gmail.com: the account password gets `534 5.7.9 Application-specific
password required`, a wrong one `535 5.7.8`, MAIL before STARTTLS `530 5.7.0`, the daily limit
`550 5.4.5`, a bad OAuth token the XOAUTH2 error challenge then `535 5.7.8`. Only 127.0.0.1.

Its Gmail API and Microsoft Graph (on the HTTP port, for accounts with --transport gmail-api or
graph) answer as the services do: 401 for a bad token, 403 for a scope that cannot send, 413, 429
at the daily limit, Graph's 403 ErrorSendAsDenied for a From that is not the user. In the settings,
`gmail_api_enabled = false` gives the Gmail API's 403 accessNotConfigured, and a user with
`mailbox = false` the Gmail API's 400 failedPrecondition and Graph's 404
MailboxNotEnabledForRESTAPI.

Settings file (--settings):
  daily_limit = 100
  token_lifetime = \"1h\"
  gmail_api_enabled = true
  [[users]]
  email = \"me@sandbox.postie.test\"
  password = \"correct-horse-battery-staple\"
  app_passwords = [\"abcd efgh ijkl mnop\"]
  two_step_verification = true
  mailbox = true

Exit status: 0 after a graceful stop, 64 usage, 69 a port cannot be bound, 78 bad settings.";

/// `postie sandbox`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SandboxArgs {
    #[command(subcommand)]
    pub command: Option<SandboxCommand>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// `postie sandbox ...`.
#[derive(Debug, Subcommand)]
pub enum SandboxCommand {
    /// Run the sandbox in the foreground (what `postie sandbox` alone does)
    Serve(ServeArgs),
    /// Print the sandbox's CA certificate (PEM), for clients to trust
    Ca {
        /// Print the file's path instead
        #[arg(long)]
        path: bool,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List the messages the sandbox accepted; `show ID` shows one
    Messages(MessagesArgs),
}

/// `--data-dir`.
#[derive(Debug, Args, Clone, Default)]
pub struct DataDir {
    /// The sandbox's directory (certificate, mailbox) [default: $XDG_DATA_HOME/postie/sandbox]
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `postie sandbox serve`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// STARTTLS submission port on 127.0.0.1 (0: a free one) [default: 2587]
    #[arg(long, value_name = "PORT")]
    pub smtp_port: Option<u16>,
    /// Implicit-TLS submission port (0: a free one) [default: 2465]
    #[arg(long, value_name = "PORT")]
    pub smtps_port: Option<u16>,
    /// HTTP port of the OAuth server and the mailbox page (0: a free one) [default: 2580]
    #[arg(long, value_name = "PORT")]
    pub http_port: Option<u16>,
    #[command(flatten)]
    pub dir: DataDir,
    /// A TOML file with users, daily_limit and token_lifetime (see below)
    #[arg(long, value_name = "PATH")]
    pub settings: Option<PathBuf>,
    /// The user's address [default: me@sandbox.postie.test]
    #[arg(long, value_name = "ADDR")]
    pub user: Option<String>,
    /// The user's account password (refused over SMTP while 2-Step Verification is on)
    /// [default: correct-horse-battery-staple]
    #[arg(long, value_name = "PW")]
    pub password: Option<String>,
    /// An app password for the user (repeatable) [default: abcd efgh ijkl mnop]
    #[arg(long, value_name = "PW")]
    pub app_password: Vec<String>,
    /// Turn 2-Step Verification off: no app passwords, and the account password gets 535 5.7.8
    #[arg(long, conflicts_with = "app_password")]
    pub no_two_step: bool,
    /// Messages a user may send per rolling 24 hours; then 550 5.4.5 [default: 100]
    #[arg(long, value_name = "N")]
    pub daily_limit: Option<u32>,
    /// Lifetime of access tokens, e.g. 1h, 30s (short ones show expiry and refresh) [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub token_lifetime: Option<Duration>,
    /// Print one JSON line with the addresses, URLs, CA path and credentials, for scripts
    #[arg(long)]
    pub json: bool,
}

/// `postie sandbox messages`.
#[derive(Debug, Args)]
pub struct MessagesArgs {
    #[command(subcommand)]
    pub show: Option<MessagesCommand>,
    /// Print JSON
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub dir: DataDir,
}

/// `postie sandbox messages show`.
#[derive(Debug, Subcommand)]
pub enum MessagesCommand {
    /// Show one message: envelope, header, MIME parts and attachments
    Show {
        /// The message's number (from `postie sandbox messages`)
        id: u64,
        /// Print JSON
        #[arg(long)]
        json: bool,
        /// Print the message exactly as received
        #[arg(long, conflicts_with = "json")]
        raw: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

/// Runs `postie sandbox ...`; returns the exit code.
pub async fn run(g: &Global, a: SandboxArgs) -> i32 {
    let result = match a.command {
        None => serve(g, a.serve).await,
        Some(SandboxCommand::Serve(s)) => serve(g, s).await,
        Some(SandboxCommand::Ca { path, dir }) => ca(g, &dir, path),
        Some(SandboxCommand::Messages(m)) => messages(g, m),
    };
    match result {
        Ok(()) => exit::OK,
        Err(e) => {
            output::print_error(&g.style, &e, &Default::default());
            output::exit_code(e.kind())
        }
    }
}

fn data_dir(g: &Global, d: &DataDir) -> PathBuf {
    d.data_dir
        .clone()
        .map(|p| std::path::absolute(&p).unwrap_or(p))
        .unwrap_or_else(|| g.paths.data_dir.join("sandbox"))
}

/// Flags and the settings file -> the library's settings.
fn config(g: &Global, a: &ServeArgs) -> Result<SandboxConfig, Error> {
    let mut c = SandboxConfig::new(data_dir(g, &a.dir));
    let file = match &a.settings {
        Some(p) => SandboxFile::load(p)?,
        None => SandboxFile::default(),
    };
    c.users = file.users;
    if let Some(n) = file.daily_limit {
        c.daily_limit = n;
    }
    if let Some(on) = file.gmail_api_enabled {
        c.gmail_api_enabled = on;
    }
    if let Some(t) = &file.token_lifetime {
        c.token_lifetime = humantime::parse_duration(t).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("token_lifetime = \"{t}\" is not a duration like \"1h\" or \"30s\": {e}"),
            )
        })?;
    }
    let flags_name_a_user =
        a.user.is_some() || a.password.is_some() || !a.app_password.is_empty() || a.no_two_step;
    if flags_name_a_user {
        let d = User::default_user();
        let user = User {
            email: a.user.clone().unwrap_or(d.email),
            password: a.password.clone().unwrap_or(d.password),
            app_passwords: if a.app_password.is_empty() {
                d.app_passwords
            } else {
                a.app_password.clone()
            },
            two_step_verification: !a.no_two_step,
            mailbox: true,
        };
        c.users
            .retain(|u| !u.email.eq_ignore_ascii_case(&user.email));
        c.users.insert(0, user);
    }
    if let Some(n) = a.daily_limit {
        c.daily_limit = n;
    }
    if let Some(t) = a.token_lifetime {
        c.token_lifetime = t;
    }
    if c.token_lifetime < Duration::from_secs(1) {
        return Err(Error::new(
            ErrorKind::Usage,
            "--token-lifetime must be at least 1s",
        ));
    }
    for (port, addr) in [
        (a.smtp_port, &mut c.smtp),
        (a.smtps_port, &mut c.smtps),
        (a.http_port, &mut c.http),
    ] {
        if let Some(p) = port {
            addr.set_port(p);
        }
    }
    Ok(c)
}

fn ready_json(h: &SandboxHandle, c: &SandboxConfig) -> serde_json::Value {
    json!({
        "smtp": h.smtp_addr.to_string(),
        "smtps": h.smtps_addr.to_string(),
        "http": format!("http://{}", h.http_addr),
        "issuer": h.issuer(),
        "authorization_endpoint": h.authorization_endpoint(),
        "token_endpoint": h.token_endpoint(),
        "device_authorization_endpoint": h.device_endpoint(),
        "revocation_endpoint": h.revocation_endpoint(),
        "client_id": DEFAULT_CLIENT_ID,
        "ca_file": h.ca_pem_path,
        "data_dir": h.data_dir,
        "mailbox": format!("http://{}/messages", h.http_addr),
        "daily_limit": c.daily_limit,
        "token_lifetime_secs": c.token_lifetime.as_secs(),
        "users": h.users,
    })
}

async fn serve(g: &Global, a: ServeArgs) -> Result<(), Error> {
    let cfg = config(g, &a)?;
    let handle = Sandbox::start(cfg.clone()).await?;
    if a.json {
        println!("{}", ready_json(&handle, &cfg));
    } else {
        print_ready(g, &handle, &cfg);
    }
    super::relay::wait_for_signal().await;
    eprintln!("postie sandbox: stopping");
    handle.shutdown().await;
    eprintln!("postie sandbox: stopped");
    Ok(())
}

fn print_ready(g: &Global, h: &SandboxHandle, c: &SandboxConfig) {
    let s = &g.style;
    println!(
        "{} a local stand-in for Gmail on 127.0.0.1 (Ctrl-C stops it)",
        s.bold("postie sandbox:")
    );
    println!(
        "  SMTP     {} (STARTTLS)   {} (implicit TLS)",
        h.smtp_addr, h.smtps_addr
    );
    println!(
        "  OAuth    {} (discovery at /.well-known/oauth-authorization-server; client ID {DEFAULT_CLIENT_ID}, no secret)",
        h.issuer()
    );
    println!(
        "  mailbox  http://{}/messages   or: postie sandbox messages",
        h.http_addr
    );
    println!("  CA       {}", h.ca_pem_path.display());
    println!(
        "  limits   {} messages a day per user; access tokens live {}",
        c.daily_limit,
        humantime::format_duration(c.token_lifetime)
    );
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        .saturating_sub(24 * 3600);
    for u in &h.users {
        let sent = match h.mailbox().sent_since(&u.email, since) {
            Ok(n) => format!(
                "   ({n} of {} messages sent in the last 24 hours)",
                c.daily_limit
            ),
            Err(e) => format!("   (cannot count its messages: {})", e.message()),
        };
        println!("  user     {}{sent}", s.bold(&u.email));
        if u.two_step_verification {
            println!(
                "    account password  {}   (refused over SMTP: 2-Step Verification is on)",
                u.password
            );
            for p in &u.app_passwords {
                println!("    app password      {p}");
            }
        } else {
            println!(
                "    account password  {}   (refused over SMTP; 2-Step Verification is off, so no app passwords)",
                u.password
            );
        }
    }
    let first = &h.users[0];
    let defaults = h.smtp_addr.port() == postie_sandbox::DEFAULT_SMTP_PORT
        && h.http_addr.port() == postie_sandbox::DEFAULT_HTTP_PORT;
    let (port_opt, issuer_opt) = if defaults {
        (String::new(), String::new())
    } else {
        (
            format!(" --port {}", h.smtp_addr.port()),
            format!(" --issuer {}", h.issuer()),
        )
    };
    let default_dir = g.paths.data_dir.join("sandbox");
    let ca_opt = if h.data_dir == default_dir {
        String::new()
    } else {
        format!(" --ca-file {}", h.ca_pem_path.display())
    };
    println!("Try it:");
    println!(
        "  postie account add sandbox --provider sandbox --email {}{port_opt}{ca_opt}   (the app password when asked)",
        first.email
    );
    println!("  postie send -a sandbox --to bob@example.test --subject hi --text hello");
    println!(
        "  postie account add sandbox-oauth --provider sandbox --email {} --auth oauth{port_opt}{issuer_opt}{ca_opt}",
        first.email
    );
    println!("  postie login sandbox-oauth");
}

fn ca(g: &Global, d: &DataDir, path: bool) -> Result<(), Error> {
    let dir = data_dir(g, d);
    let cert = postie_sandbox::certificate(&dir)?;
    let file = cert.ca.unwrap_or_else(|| postie_sandbox::ca_path(&dir));
    if path {
        println!("{}", file.display());
        return Ok(());
    }
    let pem = std::fs::read_to_string(&file).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot read {}: {e}", file.display()),
        )
    })?;
    print!("{pem}");
    Ok(())
}

fn open_mailbox(g: &Global, d: &DataDir) -> Mailbox {
    Mailbox::at(&postie_sandbox::mailbox_dir(&data_dir(g, d)))
}

fn messages(g: &Global, m: MessagesArgs) -> Result<(), Error> {
    if let Some(MessagesCommand::Show { id, json, raw, dir }) = m.show {
        let dir = if dir.data_dir.is_some() { dir } else { m.dir };
        let mb = open_mailbox(g, &dir);
        if raw {
            use std::io::Write;
            let bytes = mb.raw(id)?;
            let _ = std::io::stdout().write_all(&bytes);
            return Ok(());
        }
        let v = mb.show(id)?;
        if json || m.json {
            output::print_json(&serde_json::to_value(&v).expect("serialisable"));
        } else {
            print_message(g, &v);
        }
        return Ok(());
    }
    let mb = open_mailbox(g, &m.dir);
    let list = mb.list()?;
    if m.json {
        output::print_json(&json!({ "messages": list }));
        return Ok(());
    }
    if list.is_empty() {
        eprintln!("the sandbox mailbox is empty");
        return Ok(());
    }
    for msg in &list {
        println!("{}", list_line(msg));
    }
    Ok(())
}

fn when(t: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + Duration::from_secs(t)).to_string()
}

fn list_line(m: &StoredMessage) -> String {
    format!(
        "{:>4}  {}  {} -> {}  {}  ({} via {})",
        m.id,
        when(m.received),
        output::clean(m.from.as_deref().or(m.mail_from.as_deref()).unwrap_or("<>")),
        output::clean(&m.recipients.join(", ")),
        output::clean(m.subject.as_deref().unwrap_or("(no subject)")),
        output::clean(&m.user),
        output::clean(&m.mechanism)
    )
}

fn print_message(g: &Global, v: &MessageView) {
    let m = &v.meta;
    let s = &g.style;
    println!("{} {}", s.bold("message"), m.id);
    println!("  received       {}", when(m.received));
    println!(
        "  sent by        {} ({})",
        output::clean(&m.user),
        output::clean(&m.mechanism)
    );
    println!(
        "  envelope from  {}",
        output::clean(m.mail_from.as_deref().unwrap_or("<>"))
    );
    println!(
        "  envelope to    {}",
        output::clean(&m.recipients.join(", "))
    );
    println!("  size           {} bytes", m.size);
    println!("{}", s.bold("header"));
    for (n, val) in &v.headers {
        println!("  {}: {}", output::clean(n), output::clean(val));
    }
    println!("{}", s.bold("parts"));
    for (i, p) in v.parts.iter().enumerate() {
        let name = p
            .filename
            .as_deref()
            .map(|f| format!(", attachment {}", output::clean(f)))
            .unwrap_or_default();
        println!(
            "  {}. {}{name} ({} bytes)",
            i + 1,
            output::clean(&p.content_type),
            p.size
        );
        if let Some(t) = &p.text {
            for line in t.lines() {
                println!("     | {}", output::clean(line));
            }
        }
    }
}
