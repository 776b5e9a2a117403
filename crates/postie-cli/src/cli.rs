//! Command-line definitions (clap derive). Flags are parsed here into plain
//! values; `cmd/*` turns them into settings and calls the library.

use std::path::PathBuf;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use clap_complete::engine::{ArgValueCandidates, CompletionCandidate};

/// The configured accounts' names, for shell completion (`--account <TAB>`):
/// read from the config file when the shell asks; none when it cannot be read.
fn account_names() -> Vec<CompletionCandidate> {
    let Ok(paths) = postie::paths::Paths::resolve(None) else {
        return Vec::new();
    };
    let Ok(config) = postie::config::Config::load(&paths.config_file) else {
        return Vec::new();
    };
    config
        .accounts
        .iter()
        .map(|(name, a)| CompletionCandidate::new(name.clone()).help(Some(a.email.clone().into())))
        .collect()
}

const EXIT_CODES: &str = "\
Exit status (sysexits.h):
  0   sent: every recipient accepted
  64  usage: bad command line
  65  the message is malformed or too large
  66  a file to send cannot be read (attachment, body file, raw message)
  67  one or more recipients were refused
  69  the server cannot be reached
  75  temporary failure: try again later
  76  TLS or protocol failure (certificate, STARTTLS)
  77  credentials refused
  78  configuration error (the account, the config file, the secret store)";

const TOP_EXAMPLES: &str = "\
Examples:
  postie account add personal --provider gmail --email me@gmail.com
  postie send --to bob@example.com --subject hi --text 'Hello'
  postie send -v --json --to bob@example.com --text test
  postie completions bash > ~/.local/share/bash-completion/completions/postie
  postie man > ~/.local/share/man/man1/postie.1";

const SEND_EXAMPLES: &str = "\
Examples:
  # With a configured account (see `postie account add --help`):
  postie send --to bob@example.com --subject 'Report' --text 'Attached.' --attach report.pdf

  # One-off, no config file: the password comes from an environment variable
  SMTP_PASSWORD=... postie send --server smtps://smtp.fastmail.com:465 \\
      --user me@fastmail.com --password-env SMTP_PASSWORD \\
      --from me@fastmail.com --to bob@example.com --subject hi --text hello

  # A raw message from stdin, recipients from its To/Cc/Bcc headers
  postie send -t --raw - < message.eml

  # Show the SMTP conversation (secrets redacted)
  postie send -v --to bob@example.com --text 'test'";

const ACCOUNT_ADD_EXAMPLES: &str = "\
Examples:
  # Gmail with an app password (prompted for, stored encrypted)
  postie account add personal --provider gmail --email me@gmail.com

  # For scripts and CI: take the password from an environment variable at send time
  postie account add ci --provider fastmail --email bot@fastmail.com --password-env FASTMAIL_APP_PASSWORD

  # With a password manager
  postie account add work --provider generic --host mail.example.com --port 465 \\
      --email me@example.com --password-command 'pass show mail/work'

  # Store a password from stdin (no prompt)
  printf '%s' \"$APP_PASSWORD\" | postie account add yahoo --provider yahoo --email me@yahoo.com --password-stdin";

/// Send mail through Gmail, Microsoft 365, Yahoo, iCloud, Fastmail and any SMTP server
/// with app passwords or OAuth 2.0, and explain every failure.
#[derive(Debug, Parser)]
#[command(name = "postie", version, about, long_about = None,
          after_help = format!("{TOP_EXAMPLES}\n\n{EXIT_CODES}"))]
pub struct Cli {
    /// Config file [default: $XDG_CONFIG_HOME/postie/config.toml]
    #[arg(long, global = true, env = "POSTIE_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// Print the SMTP conversation on stderr (-vv adds timings). Secrets are redacted.
    #[arg(short, long, global = true, action = ArgAction::Count)]
    pub verbose: u8,

    /// When to use colour
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    #[command(subcommand)]
    pub command: Command,
}

/// `--color`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour on a terminal, unless NO_COLOR is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Send a message
    #[command(after_help = format!("{SEND_EXAMPLES}\n\n{EXIT_CODES}"))]
    Send(Box<SendArgs>),
    /// Add, list and remove accounts
    #[command(subcommand)]
    Account(AccountCommand),
    /// Sign in with OAuth 2.0 (browser with PKCE, device code, or service account) and store the tokens
    #[command(after_help = LOGIN_EXAMPLES)]
    Login(LoginArgs),
    /// Print a fresh OAuth access token (for msmtp's passwordeval, curl --oauth2-bearer)
    Token {
        /// The account [default: the default account]
        #[arg(add = ArgValueCandidates::new(account_names))]
        account: Option<String>,
        /// Print JSON with the token's expiry and scope too
        #[arg(long)]
        json: bool,
    },
    /// Check an account end to end (config, DNS, TCP, TLS, EHLO, credentials, AUTH) and explain any failure
    #[command(after_help = DOCTOR_HELP)]
    Doctor(DoctorArgs),
    /// Show the whole story offline: the smtplib-and-Gmail article's three cases and the relay, against an in-process sandbox
    #[command(after_help = DEMO_HELP)]
    Demo(DemoArgs),
    /// Revoke the account's OAuth tokens at the provider and delete them here
    Logout {
        /// The account [default: the default account]
        #[arg(add = ArgValueCandidates::new(account_names))]
        account: Option<String>,
    },
    /// Run the local relay: legacy programs send to 127.0.0.1:1587, postie delivers with modern auth
    #[command(after_help = RELAY_EXAMPLES)]
    Relay(RelayArgs),
    /// Send many messages through one account: a directory of .eml files, an mbox, or a
    /// template merged with CSV/JSON rows; queued durably, paced to the provider's limits
    #[command(after_help = BULK_HELP)]
    Bulk(Box<BulkArgs>),
    /// List, inspect, retry, purge and flush the outbox
    #[command(subcommand, after_help = QUEUE_EXAMPLES)]
    Queue(QueueCommand),
    /// The sendmail command line: queue a message from stdin and deliver it (also as argv[0] `sendmail`)
    #[command(after_help = SENDMAIL_HELP)]
    Sendmail(SendmailArgs),
    /// Run a local provider that behaves like Gmail (SMTP, OAuth 2.0, a mailbox), for trying
    /// and testing offline
    #[command(after_help = crate::cmd::sandbox::EXAMPLES)]
    Sandbox(Box<crate::cmd::sandbox::SandboxArgs>),
    /// Print shell completions (bash, zsh, fish, elvish, powershell), account names included
    #[command(after_help = COMPLETIONS_HELP)]
    Completions {
        /// The shell
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) on stdout: postie(1), or a command's (`postie man queue run`)
    #[command(after_help = MAN_EXAMPLES)]
    Man {
        /// The command whose page to print (postie-send(1): `send`)
        #[arg(value_name = "COMMAND")]
        command: Vec<String>,
        /// Write every page (postie.1, postie-send.1, ...) into DIR instead
        #[arg(long, value_name = "DIR", conflicts_with = "command")]
        dir: Option<PathBuf>,
    },
}

const COMPLETIONS_HELP: &str = "\
Examples:
  echo 'source <(postie completions bash)' >> ~/.bashrc
  echo 'source <(postie completions zsh)' >> ~/.zshrc
  postie completions fish > ~/.config/fish/completions/postie.fish

The shell code asks postie what to complete as you type (COMPLETE=SHELL postie -- WORDS), so
account names after --account come from your config file as it is now.";

const MAN_EXAMPLES: &str = "\
Examples:
  postie man | man -l -              # read postie(1)
  postie man queue run | man -l -    # postie-queue-run(1)
  postie man --dir ~/.local/share/man/man1   # install every page for man(1)";

const LOGIN_EXAMPLES: &str = "\
Examples:
  # Opens the browser (and prints the URL for a browser on any machine)
  postie login work

  # Headless machine: print the URL, paste back the address the browser ends on
  postie login work --manual

  # Microsoft (and other providers that allow it): a code to enter on another device
  postie login work --device";

/// `postie login`.
#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The account [default: the default account]
    #[arg(add = ArgValueCandidates::new(account_names))]
    pub account: Option<String>,
    /// Do not open a browser; print the URL and wait for the redirect
    #[arg(long)]
    pub no_browser: bool,
    /// Print the URL; then paste the full address the browser was redirected to (browser on another machine)
    #[arg(long, conflicts_with = "device")]
    pub manual: bool,
    /// Use the device-code flow (RFC 8628): enter a code on another device
    #[arg(long)]
    pub device: bool,
    /// Loopback port for the redirect [default: any free port]
    #[arg(long)]
    pub port: Option<u16>,
    /// Give up after this long (`300`, `300s`, `5m`) [default: 5 minutes in the browser; with
    /// the device flow, as long as the code the provider gave is valid]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,
}

/// Connection flags shared by `send` and `account add`.
#[derive(Debug, Args, Clone, Default)]
pub struct TlsArgs {
    /// Extra trusted CA certificate(s), PEM
    #[arg(long, value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Verify the server certificate for NAME instead of the host dialled (tunnels, tests)
    #[arg(long, value_name = "NAME")]
    pub tls_name: Option<String>,
    /// Allow a connection without TLS; only to a loopback address (127.0.0.1, ::1, localhost)
    #[arg(long)]
    pub plaintext: bool,
}

/// `postie send`.
#[derive(Debug, Args, Clone)]
pub struct SendArgs {
    /// Recipients: they become To when neither --to nor --cc is given; otherwise they are
    /// envelope-only, like Bcc
    #[arg(value_name = "RECIPIENT")]
    pub recipients: Vec<String>,

    /// Use this configured account
    #[arg(short, long, value_name = "NAME", conflicts_with = "server", add = ArgValueCandidates::new(account_names))]
    pub account: Option<String>,

    /// Server for a one-off send: smtp://HOST:PORT (STARTTLS) or smtps://HOST:PORT (implicit TLS)
    #[arg(long, value_name = "URL", help_heading = "Server")]
    pub server: Option<String>,
    /// Login name [default: the --from address]
    #[arg(long, value_name = "USER", help_heading = "Server")]
    pub user: Option<String>,
    /// Read the password from this environment variable
    #[arg(
        long,
        value_name = "VAR",
        help_heading = "Server",
        conflicts_with = "password_command"
    )]
    pub password_env: Option<String>,
    /// Run this command (sh -c); the first line it prints is the password
    #[arg(long, value_name = "CMD", help_heading = "Server")]
    pub password_command: Option<String>,
    #[command(flatten, next_help_heading = "Server")]
    pub tls: TlsArgs,
    /// SASL mechanism to use instead of the best one the server offers
    /// (plain, login, xoauth2, oauthbearer)
    #[arg(long, value_name = "MECH", help_heading = "Server", value_parser = parse_mechanism)]
    pub auth_mechanism: Option<postie_proto::sasl::Mechanism>,

    /// From address [default: the account's]
    #[arg(long, value_name = "ADDR", help_heading = "Message")]
    pub from: Option<String>,
    /// To (repeatable, or comma separated; a quoted name may hold commas:
    /// '"Smith, Bob" <bob@example.com>')
    #[arg(long, value_name = "ADDR", help_heading = "Message")]
    pub to: Vec<String>,
    /// Cc (repeatable, or comma separated)
    #[arg(long, value_name = "ADDR", help_heading = "Message")]
    pub cc: Vec<String>,
    /// Bcc (repeatable, or comma separated); never written into the message
    #[arg(long, value_name = "ADDR", help_heading = "Message")]
    pub bcc: Vec<String>,
    /// Subject (UTF-8)
    #[arg(short, long, help_heading = "Message")]
    pub subject: Option<String>,
    /// Plain-text body [default: stdin, when it is not a terminal and no body is given]
    #[arg(long, help_heading = "Message", conflicts_with = "text_file")]
    pub text: Option<String>,
    /// Plain-text body from a file ('-' for stdin)
    #[arg(long, value_name = "PATH", help_heading = "Message")]
    pub text_file: Option<PathBuf>,
    /// HTML body (with a text body: multipart/alternative)
    #[arg(long, help_heading = "Message", conflicts_with = "html_file")]
    pub html: Option<String>,
    /// HTML body from a file ('-' for stdin)
    #[arg(long, value_name = "PATH", help_heading = "Message")]
    pub html_file: Option<PathBuf>,
    /// Attach a file (repeatable)
    #[arg(long, value_name = "PATH", help_heading = "Message")]
    pub attach: Vec<PathBuf>,
    /// Send this RFC 5322 message ('-' for stdin): its headers are kept; Message-ID and Date
    /// are added when missing, and a From: with --from when it has none. A message without a
    /// header section is refused
    #[arg(long, value_name = "PATH", help_heading = "Message",
          conflicts_with_all = ["subject", "text", "text_file", "html", "html_file", "attach"])]
    pub raw: Option<PathBuf>,
    /// Take recipients from the raw message's To, Cc and Bcc headers
    #[arg(short = 't', long, requires = "raw", help_heading = "Message")]
    pub read_recipients: bool,

    /// With -v: show the message itself in the transcript, not only its size
    #[arg(long)]
    pub show_body: bool,

    /// Give up on a server that does not connect or answer within this long (each reply; `30`,
    /// `30s`, `2m`) [default: the account's timeout, else 30 s to connect, 60 s per reply]
    #[arg(long, value_name = "DURATION", value_parser = parse_timeout)]
    pub timeout: Option<std::time::Duration>,

    /// Print one JSON object on stdout
    #[arg(long)]
    pub json: bool,
}

/// `30`, `30s`, `2m`: every `--timeout` takes the same forms.
fn parse_timeout(s: &str) -> Result<std::time::Duration, String> {
    postie::config::parse_duration(s)
}

const DOCTOR_HELP: &str = "\
Stages, in order: config (provider, host, port, TLS mode, file permissions), dns, connect (TCP),
tls (version, cipher, certificate subject, issuer, expiry, name), ehlo (SIZE, the AUTH mechanisms
offered after TLS against what the account needs), credentials (the password is there; OAuth: a
refresh token is stored, an access token can be obtained, its expiry and scope), auth (a real
authentication, then RSET and QUIT: no mail is sent), and send-test with --send-test. The first
failure stops the run; the stages after it are listed as not checked. With an outbox several
hosts share ([outbox] url = \"postgres://...\"), a last stage, outbox, connects to it and shows its
schema and the deliverers running on it.

Examples:
  postie doctor                       # the default account
  postie doctor work -v               # with the SMTP conversation (secrets redacted)
  postie doctor work --send-test me@example.com
  postie doctor work --json | jq '.checks[] | select(.status != \"ok\")'
  postie doctor --server smtps://smtp.example.com:465 --user me@example.com --password-env PW

Exit status (sysexits.h where one fits):
  0   every check passed (warnings allowed)
  64  usage: bad command line
  78  config: the account's settings are wrong or missing
  68  dns: the host name does not resolve
  69  connect: no TCP connection (refused, timed out: a firewall?)
  76  tls: handshake or certificate failure, STARTTLS missing
  79  ehlo: the server refused the session (greeting, EHLO) or lacks what the account needs
  80  credentials: no password here, not signed in, or no access token obtainable
  77  auth: the server refused the credentials
  81  send-test: the test message was refused
  74  outbox: the shared outbox database cannot be reached or opened";

const DEMO_HELP: &str = "\
Starts a sandbox provider in this process (127.0.0.1 only, free ports, a temporary directory)
and walks through: the account password (refused with Gmail's 534-5.7.9, explained), an app
password (delivered), OAuth 2.0 (consent page approved automatically, token stored, XOAUTH2,
then an expired token refreshed on the fly), and a legacy Python smtplib script sending through
`postie relay`, which delivers upstream with OAuth. Ends with the sandbox's mailbox. Touches no
configured account, keyring or real provider; leaves nothing running.

Examples:
  postie demo
  postie demo --keep      # keep the temporary directory (sandbox mailbox, outbox) to look at

Exit status: 0 when every step went as described, 70 when one did not.";

/// `postie demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Keep the temporary directory instead of removing it
    #[arg(long)]
    pub keep: bool,
}

/// `postie doctor`.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The account [default: the default account]
    #[arg(conflicts_with = "server", add = ArgValueCandidates::new(account_names))]
    pub account: Option<String>,

    /// Check a server given here instead of an account: smtp://HOST:PORT (STARTTLS) or
    /// smtps://HOST:PORT (implicit TLS)
    #[arg(long, value_name = "URL", help_heading = "Server")]
    pub server: Option<String>,

    /// With --server: the login name; without it, credentials and AUTH are not checked
    #[arg(
        long,
        value_name = "USER",
        requires = "server",
        help_heading = "Server"
    )]
    pub user: Option<String>,

    /// With --server: read the password from this environment variable
    #[arg(
        long,
        value_name = "VAR",
        requires = "user",
        conflicts_with = "password_command",
        help_heading = "Server"
    )]
    pub password_env: Option<String>,

    /// With --server: run this command; the first line it prints is the password
    #[arg(long, value_name = "CMD", requires = "user", help_heading = "Server")]
    pub password_command: Option<String>,

    #[command(flatten, next_help_heading = "Server")]
    pub tls: TlsArgs,

    /// After AUTH, send a short test message to this address
    #[arg(long, value_name = "ADDRESS")]
    pub send_test: Option<String>,

    /// With -v and --send-test: show the test message in the transcript
    #[arg(long)]
    pub show_body: bool,

    /// Time allowed for each connection attempt and each server reply
    #[arg(long, value_name = "DURATION", default_value = "20s", value_parser = parse_timeout)]
    pub timeout: std::time::Duration,

    /// Print one JSON object on stdout: the checklist and the transcript
    #[arg(long)]
    pub json: bool,
}

/// `postie account ...`.
#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Add or replace an account
    #[command(after_help = ACCOUNT_ADD_EXAMPLES)]
    Add(Box<AccountAddArgs>),
    /// List accounts
    List {
        /// JSON output
        #[arg(long)]
        json: bool,
    },
    /// Remove an account and its stored password
    Remove {
        /// The account
        #[arg(add = ArgValueCandidates::new(account_names))]
        name: String,
    },
}

/// `postie bulk`.
#[derive(Debug, Args)]
pub struct BulkArgs {
    /// A directory of .eml files, or an mbox file
    #[arg(value_name = "DIR|MBOX", conflicts_with = "template")]
    pub source: Option<PathBuf>,
    /// A message template with {{field}}s (mail merge; needs --data)
    #[arg(long, value_name = "FILE", requires = "data")]
    pub template: Option<PathBuf>,
    /// The rows to merge: .csv with a header line, or .json (an array of objects)
    #[arg(long, value_name = "ROWS", requires = "template")]
    pub data: Option<PathBuf>,
    /// The account to send through [default: the default account]
    #[arg(short, long, add = ArgValueCandidates::new(account_names))]
    pub account: Option<String>,
    /// The batch's name: letters, digits, '.', '_', '-' (it names the results file) [default:
    /// the source's name and a hash of its path]
    #[arg(long)]
    pub batch: Option<String>,
    /// Write the results (JSON lines) here [default: DATA_DIR/bulk/BATCH.jsonl]
    #[arg(long, value_name = "FILE")]
    pub results: Option<PathBuf>,
    /// Show the plan (messages, recipients, limits, how long it takes) and send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Print the plan (with --dry-run) or the summary as JSON
    #[arg(long)]
    pub json: bool,
}

/// `postie account add`.
#[derive(Debug, Args)]
pub struct AccountAddArgs {
    /// A short name for the account (used with --account)
    pub name: String,
    /// Provider preset [default: guessed from --email]
    #[arg(long, value_parser = parse_provider)]
    pub provider: Option<postie::provider::ProviderId>,
    /// The account's address
    #[arg(long, value_name = "ADDR")]
    pub email: String,
    /// Login name when it is not the address
    #[arg(long)]
    pub user: Option<String>,
    /// Authentication: app-password, password, oauth, or none (a relay that trusts this network)
    /// [default: the provider's first]
    #[arg(long, value_parser = parse_auth)]
    pub auth: Option<postie::provider::AuthMethod>,
    /// Submission host (generic provider, or to override a preset)
    #[arg(long)]
    pub host: Option<String>,
    /// Submission port
    #[arg(long)]
    pub port: Option<u16>,
    /// TLS mode: starttls or implicit
    #[arg(long, value_parser = parse_tls)]
    pub tls: Option<postie::provider::TlsMode>,
    /// At send time, read the password from this environment variable (nothing is stored)
    #[arg(long, value_name = "VAR", conflicts_with_all = ["password_command", "password_stdin"])]
    pub password_env: Option<String>,
    /// At send time, run this command for the password (nothing is stored)
    #[arg(long, value_name = "CMD", conflicts_with = "password_stdin")]
    pub password_command: Option<String>,
    /// Read the password from stdin now and keep it in the encrypted secret store
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub tls_args: TlsArgs,
    /// Make this the default account
    #[arg(long)]
    pub default: bool,
    /// How messages go out: smtp, gmail-api (Google's HTTPS API, scope gmail.send) or graph
    /// (Microsoft Graph, Mail.Send); several, comma-separated, are tried in order when one cannot
    /// connect (smtp,gmail-api) [default: smtp]
    #[arg(long, value_name = "TRANSPORT", value_delimiter = ',', value_parser = parse_transport)]
    pub transport: Vec<postie::config::Transport>,
    /// The HTTPS API's base URL instead of Google's or Microsoft's (a proxy, the sandbox)
    #[arg(long, value_name = "URL")]
    pub api_url: Option<String>,
    #[command(flatten, next_help_heading = "OAuth 2.0 (--auth oauth)")]
    pub oauth: OAuthArgs,
}

/// OAuth settings of `account add`.
#[derive(Debug, Args, Default)]
pub struct OAuthArgs {
    /// OAuth client ID (Google: a "Desktop app" client; Microsoft: an app registration)
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Read the client secret from stdin and keep it in the secret store
    #[arg(long, conflicts_with_all = ["client_secret_env", "password_stdin"])]
    pub client_secret_stdin: bool,
    /// At login/refresh time, read the client secret from this environment variable
    #[arg(long, value_name = "VAR")]
    pub client_secret_env: Option<String>,
    /// Microsoft tenant: common, organizations, consumers or a tenant ID
    #[arg(long)]
    pub tenant: Option<String>,
    /// Generic provider: the authorization server's issuer URL (RFC 8414 discovery)
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// Generic provider: authorization endpoint
    #[arg(long, value_name = "URL")]
    pub authorization_endpoint: Option<String>,
    /// Generic provider: token endpoint
    #[arg(long, value_name = "URL")]
    pub token_endpoint: Option<String>,
    /// Scopes, instead of the provider's default (repeatable)
    #[arg(long = "scope", value_name = "SCOPE")]
    pub scopes: Vec<String>,
    /// Sign-in flow: auth-code (browser), device, service-account, client-credentials
    #[arg(long, value_parser = parse_flow)]
    pub flow: Option<postie::oauth::Flow>,
    /// Google Workspace service account key (JSON) for domain-wide delegation
    #[arg(long, value_name = "PATH")]
    pub service_account_key: Option<PathBuf>,
}

fn parse_transport(s: &str) -> Result<postie::config::Transport, String> {
    use postie::config::Transport;
    match s {
        "smtp" => Ok(Transport::Smtp),
        "gmail-api" | "gmail" => Ok(Transport::GmailApi),
        "graph" | "microsoft-graph" => Ok(Transport::Graph),
        _ => Err(format!(
            "unknown transport '{s}': use smtp, gmail-api or graph"
        )),
    }
}

fn parse_flow(s: &str) -> Result<postie::oauth::Flow, String> {
    use postie::oauth::Flow;
    match s {
        "auth-code" | "browser" | "loopback" => Ok(Flow::AuthCode),
        "device" | "device-code" => Ok(Flow::Device),
        "service-account" => Ok(Flow::ServiceAccount),
        "client-credentials" => Ok(Flow::ClientCredentials),
        _ => Err(format!(
            "unknown flow '{s}': use auth-code, device, service-account or client-credentials"
        )),
    }
}

fn parse_provider(s: &str) -> Result<postie::provider::ProviderId, String> {
    s.parse()
}
fn parse_auth(s: &str) -> Result<postie::provider::AuthMethod, String> {
    match s {
        "app-password" | "apppassword" | "app" => Ok(postie::provider::AuthMethod::AppPassword),
        "password" => Ok(postie::provider::AuthMethod::Password),
        "oauth" | "oauth2" => Ok(postie::provider::AuthMethod::Oauth),
        "none" => Ok(postie::provider::AuthMethod::None),
        _ => Err(format!(
            "unknown auth method '{s}': use app-password, password, oauth or none"
        )),
    }
}
fn parse_mechanism(s: &str) -> Result<postie_proto::sasl::Mechanism, String> {
    use postie_proto::sasl::Mechanism;
    match s.parse::<Mechanism>() {
        Ok(
            m @ (Mechanism::Plain | Mechanism::Login | Mechanism::XOAuth2 | Mechanism::OAuthBearer),
        ) => Ok(m),
        _ => Err(format!(
            "unsupported mechanism '{s}': use plain, login, xoauth2 or oauthbearer"
        )),
    }
}
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    postie::config::parse_duration(s)
}
fn parse_tls(s: &str) -> Result<postie::provider::TlsMode, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}

const RELAY_EXAMPLES: &str = "\
Examples:
  # Serve on 127.0.0.1:1587 and deliver in the background (Ctrl-C or SIGTERM stops it gracefully)
  postie relay

  # Python smtplib, cron, git send-email: point them at 127.0.0.1 port 1587, no login needed
  swaks --server 127.0.0.1 --port 1587 --from me@gmail.com --to bob@example.com

  # A script that insists on server.login(user, password): give it a relay user
  postie relay user add me@gmail.com --account personal

Clients on loopback need no AUTH. STARTTLS is offered with a certificate postie makes for
localhost (its CA: $XDG_DATA_HOME/postie/relay-tls/ca.pem). Listening beyond loopback needs
[relay] users and tls_cert/tls_key. A message is answered 250 only once it is on disk.
Message-ID and Date are added to a message that lacks them (headers present are never
changed); a message with no header section or no From: is refused (550 5.6.0, with why).
What the relay and its delivery do is logged on stderr (POSTIE_LOG=postie=debug for more).
The config file is read again when it changes and on SIGHUP (accounts, relay users,
fallback_account); [relay] listen, TLS files, size limits and timeouts need a restart.

Exit status: 0 after a graceful stop, 69 when an address cannot be bound, 78 configuration error.";

const BULK_HELP: &str = "\
Examples:
  postie bulk ./outgoing/                     # every .eml file of the directory
  postie bulk archive.mbox --account work     # every message of an mbox
  postie bulk --template letter.txt --data people.csv --dry-run   # the plan and how long it takes
  postie bulk --template letter.txt --data people.json --results out.jsonl

A template is a message with fields: header lines (From, To, Cc, Bcc, Subject, Content-Type:
text/html for an HTML body), an empty line, the body; {{name}} is replaced by the row's field
`name` in headers and body, HTML-escaped in an HTML body. In To, Cc, Bcc and From a field fills
in one address or one name (a value that would add recipients is refused); quote display names
that may hold a comma:
  To: \"{{name}}\" <{{email}}>
  Subject: Your invoice {{number}}

  Dear {{name}}, ...
{{{field}}} puts a value you trust in as it is: HTML, or a list of addresses.
A CSV file has a header line naming the fields; a JSON file is an array of objects.

The batch is queued in the outbox before anything is sent (each message once, by its file
name, or an mbox message's or a row's recipient and content: messages and rows may be added,
removed or reordered between runs), then delivered at the pace of the account's limits: the
provider's published ones (Microsoft 365 30 messages/minute and 10,000 recipients/day; Gmail
500/day, Workspace 2,000/day, 100 recipients per message), or the account's own:
  [accounts.work.limits]
  per_minute = 20
  per_day = 1000
  recipients_per_day = 5000
  recipients_per_message = 50
Interrupted (Ctrl-C, a crash, a reboot)? Run the same command again: it queues what is missing
and sends what is not sent; nothing goes twice. Messages that must wait (a transient failure,
a daily limit) are sent by `postie relay`, `postie queue run`, or the same command later.
Results: one JSON line per message (item, id, status, each recipient with the server's reply)
in --results FILE, by default in the data directory (the path is printed).

Exit status: 0 every message sent; 75 some wait for a retry or a daily limit; 67 some were
refused (the results say which, and why); 66 a message of the source cannot be read or built
(nothing is queued then); 64 usage; 78 configuration; 74 the outbox cannot be opened.";

const QUEUE_EXAMPLES: &str = "\
Examples:
  postie queue list                 # every message and its state
  postie queue list --json          # for scripts
  postie queue show 42              # replies of every attempt, and what to do
  postie queue retry --all          # retry failed and waiting messages now
  postie queue run                  # deliver what is due, once (for cron)
  postie queue purge --sent --older-than 30d   # sent messages kept longer than that
  postie queue password             # keep the shared outbox database's password (prompted)

Exit status: 0 done; 75 after `queue run` when a message failed for good or an account is paused
(`postie queue list` says which); 64 usage (unknown id); 74 the outbox cannot be opened or read
(a damaged database, a directory that cannot be made); 78 a shared outbox's database refused the
connection (its password: `postie queue password`; the server's pg_hba.conf).";

const SENDMAIL_HELP: &str = "\
Compatible with /usr/sbin/sendmail as cron, git send-email, mutt and PHP's mail() call it:
  postie sendmail -t -i < message.eml
  postie sendmail -f me@gmail.com bob@example.com < message.eml
  ln -s \"$(command -v postie)\" ~/bin/sendmail      # then `sendmail ...` runs postie
  git config sendemail.sendmailCmd \"postie sendmail\"

The message is stored in the outbox first, then delivered at once when possible; a
temporary failure leaves it queued for `postie relay` or `postie queue run`.
Options: -t (recipients from To/Cc/Bcc; Bcc is removed), -i / -oi (a lone '.' does not end
the message), -f ADDR (envelope sender), -F NAME (sender's full name), --account NAME;
-o*, -B*, -N, -R, -v, -bm and -odX are accepted and ignored.
A message without From: gets `From: NAME <ADDR>` (-F, and -f or the account's address);
Message-ID and Date are added when missing; headers present are never changed.

Exit status: 0 stored, and sent or queued for a retry; 65 the server refused the message and 67
it refused a recipient (stored; `postie queue show ID` has the replies). Nothing was stored on
64 usage, 65 unreadable message, 73 cannot store, 78 configuration error (e.g. no account for
the sender): the caller still holds the message.";

/// `postie relay`.
#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Address to listen on (repeatable) [default: [relay] listen, else 127.0.0.1:1587]
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Vec<String>,
    /// Only accept and store; do not deliver (another process runs `postie queue run`)
    #[arg(long)]
    pub no_deliver: bool,
    /// Manage local relay logins
    #[command(subcommand)]
    pub user: Option<RelayUserCommand>,
}

/// `postie relay user ...`.
#[derive(Debug, Subcommand)]
pub enum RelayUserCommand {
    /// Add or replace a relay login; its mail goes out through ACCOUNT
    User {
        #[command(subcommand)]
        action: RelayUserAction,
    },
    /// Print a service definition that runs the relay: a systemd user unit or a launchd agent
    #[command(after_help = SERVICE_HELP)]
    Service {
        /// systemd (Linux) or launchd (macOS)
        #[arg(value_enum)]
        manager: ServiceManager,
    },
}

/// A service manager `postie relay service` writes for.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ServiceManager {
    /// A systemd user unit (Type=notify: ready once the relay listens; reload is SIGHUP)
    Systemd,
    /// A launchd agent property list (~/Library/LaunchAgents)
    Launchd,
}

const SERVICE_HELP: &str = "\
Examples:
  postie relay service systemd > ~/.config/systemd/user/postie-relay.service
  systemctl --user daemon-reload && systemctl --user enable --now postie-relay
  systemctl --user reload postie-relay          # read the config file again (SIGHUP)

  postie relay service launchd > ~/Library/LaunchAgents/org.postie.relay.plist
  launchctl load ~/Library/LaunchAgents/org.postie.relay.plist

The systemd unit is Type=notify: it is started once the relay listens, so a unit that sends mail
through it can say After=postie-relay.service and Wants=postie-relay.service. Passwords the
accounts read from password_env go in ~/.config/postie/relay.env (KEY=value lines), which the
unit reads if it exists.";

/// `postie relay user add|remove|list`.
#[derive(Debug, Subcommand)]
pub enum RelayUserAction {
    /// Add (or replace) a login. The password is prompted for, or read from stdin / an env var
    Add {
        /// The user name the program logs in with (often its email address)
        username: String,
        /// The account its mail goes out through
        #[arg(long, add = ArgValueCandidates::new(account_names))]
        account: String,
        /// Read the password from this environment variable
        #[arg(long, value_name = "VAR")]
        password_env: Option<String>,
        /// Read the password from stdin
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove a login
    Remove {
        /// The user name
        username: String,
    },
    /// List logins (never their passwords)
    List,
}

/// `postie queue ...`.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// List messages with their state
    List {
        /// Only this state: queued, delivering, sent, failed
        #[arg(long)]
        state: Option<String>,
        /// Only this account
        #[arg(long, add = ArgValueCandidates::new(account_names))]
        account: Option<String>,
        /// Only this batch of `postie bulk`
        #[arg(long)]
        batch: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show one message: recipients, every attempt with the server's reply, the explanation
    Show {
        /// The message id
        id: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Retry a failed or waiting message now (or all of them); resumes paused accounts
    Retry {
        /// The message id
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        /// Every failed or waiting message
        #[arg(long)]
        all: bool,
    },
    /// Delete a message and its stored copy, or the sent or failed ones (by age)
    #[command(group(clap::ArgGroup::new("finished").args(["sent", "failed"]).multiple(true)))]
    Purge {
        /// The message id
        #[arg(required_unless_present_any = ["sent", "failed"], conflicts_with_all = ["sent", "failed"])]
        id: Option<String>,
        /// Every sent message (see --older-than); the relay removes them after [relay] keep_sent
        #[arg(long)]
        sent: bool,
        /// Every message that failed for good (see --older-than)
        #[arg(long)]
        failed: bool,
        /// Only those finished longer ago than this, e.g. 30d
        #[arg(long, value_name = "DURATION", value_parser = parse_age, requires = "finished")]
        older_than: Option<std::time::Duration>,
    },
    /// Store the shared outbox database's password in this host's secret store, once the
    /// database accepted it ([outbox] url names the database; password_env / password_command
    /// take precedence). Prompted for, or read from stdin / an env var
    Password {
        /// Read the password from this environment variable
        #[arg(long, value_name = "VAR", conflicts_with = "password_stdin")]
        password_env: Option<String>,
        /// Read the password from stdin
        #[arg(long)]
        password_stdin: bool,
        /// Remove the stored password instead
        #[arg(long, conflicts_with_all = ["password_env", "password_stdin"])]
        remove: bool,
    },
    /// Deliver everything that is due, once, then exit (for cron)
    Run {
        /// Only this account
        #[arg(long, add = ArgValueCandidates::new(account_names))]
        account: Option<String>,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

/// `postie sendmail`: sendmail's own option syntax, parsed by hand.
#[derive(Debug, Args)]
pub struct SendmailArgs {
    /// sendmail options and recipients
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "ARGS"
    )]
    pub args: Vec<String>,
}
