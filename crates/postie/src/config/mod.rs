//! The TOML configuration file: accounts and their settings.
//!
//! The file lives at `$XDG_CONFIG_HOME/postie/config.toml` unless `--config`
//! or `POSTIE_CONFIG` names another. It never holds a secret in clear: a
//! password lives in the secret store, or comes from `password_env` /
//! `password_command` at run time.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::endpoint::Endpoint;
mod new;

pub use new::{NewAccount, NewOAuth};

use crate::error::{Error, ErrorKind};
use crate::fs::write_atomic;
use crate::provider::{AuthMethod, Limits, ProviderId, TlsMode};
use crate::wording::{Action, Setting, say, say_setting};
use postie_proto::sasl::Mechanism;

/// The whole configuration file.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The account used when a command names none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_account: Option<String>,
    /// Accounts by name.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
    /// The local relay and its outbox, `[relay]`.
    #[serde(default, skip_serializing_if = "RelayConfig::is_default")]
    pub relay: RelayConfig,
    /// Where the outbox is, `[outbox]`.
    #[serde(default, skip_serializing_if = "OutboxConfig::is_default")]
    pub outbox: OutboxConfig,
}

/// Environment variable naming the outbox (a directory or a `postgres://`
/// URL, which may carry its password there); it overrides `[outbox] url`.
pub const OUTBOX_ENV: &str = "POSTIE_OUTBOX";

/// `[outbox]`: where the relay, `sendmail`, `bulk` and `queue` keep queued
/// messages. By default a directory in postie's data directory (one host);
/// several hosts share one PostgreSQL database.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// A directory, or `postgres://USER@HOST:PORT/DATABASE`, without a
    /// password: the password comes from `password_env`,
    /// `password_command` or libpq's password file (`PGPASSFILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Environment variable holding the database password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Command printing the database password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// CA certificates (PEM) the database server's certificate may chain
    /// to, besides the system's (TLS is verified whenever it is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// This host's name in the outbox's history (which host accepted and
    /// sent what); default: the host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
}

impl OutboxConfig {
    fn is_default(&self) -> bool {
        *self == OutboxConfig::default()
    }

    /// Where the database password comes from, when the config says.
    pub fn password_source(&self) -> Option<PasswordSource> {
        match (&self.password_env, &self.password_command) {
            (Some(v), _) => Some(PasswordSource::Env(v.clone())),
            (None, Some(c)) => Some(PasswordSource::Command(c.clone())),
            (None, None) => None,
        }
    }

    /// `url` carries a password (`scheme://user:password@host`).
    fn url_has_password(&self) -> bool {
        let Some(url) = &self.url else { return false };
        let Some((_, rest)) = url.split_once("://") else {
            return false;
        };
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        authority
            .rsplit_once('@')
            .is_some_and(|(userinfo, _)| userinfo.contains(':'))
    }
}

/// `[relay]`: the local SMTP relay (`postie relay`), its delivery workers and
/// `postie sendmail`. Every field has a default, so the section is optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelayConfig {
    /// Addresses to listen on [default: `127.0.0.1:1587`]. A non-loopback
    /// address needs `users` (relay AUTH) and TLS, so the relay is never open.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    /// PEM certificate for STARTTLS [default: one generated for loopback
    /// names, kept in the data directory].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `tls_cert`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<PathBuf>,
    /// Largest message accepted, in bytes [default: 35882577, Gmail's SIZE].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_message_size: Option<u64>,
    /// Most recipients per message [default: 100, RFC 5321 4.5.3.1.8].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_recipients: Option<usize>,
    /// Idle time allowed between client commands, e.g. `"5m"` [default: 5 minutes].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_timeout: Option<String>,
    /// Stop retrying a message this long after it was queued, e.g. `"5d"`
    /// [default: 5 days, RFC 5321 4.5.4.1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub give_up_after: Option<String>,
    /// First wait after a temporary failure, e.g. `"1m"` [default: 1 minute];
    /// it doubles per failure up to `retry_max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_first: Option<String>,
    /// Longest wait between tries, e.g. `"1h"` [default: 1 hour].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_max: Option<String>,
    /// How long a message taken for delivery stays this host's before
    /// another deliverer may take it, e.g. `"2m"` [default: 2 minutes; at
    /// least 3 s]. Renewed every third of it while the message is sent, so
    /// it bounds only how long the messages of a host that hangs wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<String>,
    /// Account for senders that match no account (cron's `root@host`)
    /// [default: none: such senders are refused].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_account: Option<String>,
    /// Upstream connections per account at once [default: 2; Microsoft
    /// Graph takes at most 4 requests at once per mailbox].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections_per_account: Option<usize>,
    /// Messages per account per rolling 24 hours, by account name [default:
    /// Gmail 500, Google Workspace 2000, others unlimited].
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub daily_limit: BTreeMap<String, u32>,
    /// Shell command run when a message fails for good; it gets the message
    /// id, account and reason in `POSTIE_ID`, `POSTIE_ACCOUNT`, `POSTIE_REASON`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify_command: Option<String>,
    /// How long sent messages (body and history) are kept, e.g. `"30d"`
    /// [default: 7 days]; below a day, an account's `daily_limit` counts
    /// only what is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_sent: Option<String>,
    /// Local logins accepted by the relay's AUTH, `[[relay.users]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<RelayUser>,
}

impl RelayConfig {
    fn is_default(&self) -> bool {
        *self == RelayConfig::default()
    }
}

/// A way of sending an account's messages.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    /// SMTP submission (the account's host, port and TLS).
    Smtp,
    /// The Gmail API's `users.messages.send` over HTTPS.
    GmailApi,
    /// Microsoft Graph's `POST /me/sendMail` over HTTPS.
    Graph,
}

impl Transport {
    /// The name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Smtp => "smtp",
            Transport::GmailApi => "gmail-api",
            Transport::Graph => "graph",
        }
    }
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `transport = "smtp"` or `transport = ["smtp", "gmail-api"]`: the ways
/// to send, in the order they are tried. Never empty.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transports(Vec<Transport>);

impl Transports {
    /// The transports in order.
    pub fn list(&self) -> &[Transport] {
        &self.0
    }

    /// The first one tried.
    pub fn first(&self) -> Transport {
        self.0[0]
    }

    /// True for the default, SMTP alone.
    pub fn is_default(&self) -> bool {
        self.0 == [Transport::Smtp]
    }

    /// These transports, in this order (duplicates dropped); SMTP alone
    /// when `list` is empty.
    pub fn new(list: impl IntoIterator<Item = Transport>) -> Transports {
        let mut v: Vec<Transport> = Vec::new();
        for t in list {
            if !v.contains(&t) {
                v.push(t);
            }
        }
        if v.is_empty() {
            v.push(Transport::Smtp);
        }
        Transports(v)
    }
}

impl Default for Transports {
    fn default() -> Transports {
        Transports(vec![Transport::Smtp])
    }
}

impl Serialize for Transports {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(s),
            all => all.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Transports {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Transports, D::Error> {
        // Names read as text first, so that a wrong one gets an error that
        // lists the right ones (an untagged enum only says "no variant").
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let names = match OneOrMany::deserialize(d).map_err(|_| {
            serde::de::Error::custom(
                "transport must be \"smtp\", \"gmail-api\", \"graph\" or a list of them, \
                 e.g. [\"smtp\", \"gmail-api\"]",
            )
        })? {
            OneOrMany::One(t) => vec![t],
            OneOrMany::Many(v) => v,
        };
        let mut list = Vec::new();
        for n in names {
            list.push(match n.as_str() {
                "smtp" => Transport::Smtp,
                "gmail-api" => Transport::GmailApi,
                "graph" => Transport::Graph,
                other => {
                    return Err(serde::de::Error::custom(format!(
                        "transport \"{other}\" is not one postie knows: use \"smtp\", \"gmail-api\" or \"graph\""
                    )));
                }
            });
        }
        Ok(Transports::new(list))
    }
}

/// [`Limits::published`] for an account sending through `transport`: the
/// HTTPS APIs add their own pace. The Gmail API counts 100 quota units per
/// send against a per-user limit per minute (15,000 units in older pages,
/// 6,000 in the newest: 60 sends); Graph sends through Exchange, 30
/// messages a minute.
pub fn published_limits(provider: ProviderId, transport: Transport) -> Limits {
    let per_minute = match transport {
        Transport::GmailApi => Some(60),
        Transport::Graph => Some(30),
        Transport::Smtp => None,
    };
    Limits {
        per_minute,
        ..Limits::default()
    }
    .or(Limits::published(provider))
}

/// Requests a service takes at once for one mailbox, when it says:
/// Microsoft Graph answers a fifth concurrent request per app and mailbox
/// with 429 (MailboxConcurrency). SMTP and the Gmail API: no such limit.
pub fn max_concurrent(transport: Transport) -> Option<usize> {
    match transport {
        Transport::Graph => Some(4),
        Transport::GmailApi | Transport::Smtp => None,
    }
}

/// An account in a few words ([`Config::summaries`]).
#[derive(Clone, Debug, Serialize)]
pub struct AccountSummary {
    /// Its name.
    pub name: String,
    /// True for the `default_account`.
    pub default: bool,
    /// The provider.
    pub provider: ProviderId,
    /// The address it sends as.
    pub email: String,
    /// The name it logs in with.
    pub user: String,
    /// How it authenticates.
    pub auth: AuthMethod,
    /// `host:port`, when the settings give one.
    pub server: Option<String>,
    /// TLS mode, with the server.
    pub tls: Option<TlsMode>,
    /// `oauth`, `env`, `command` or `store`.
    pub password_from: &'static str,
}

/// A local login for the relay: a legacy program that insists on
/// `login(user, password)` keeps its code, and its mail goes out through
/// `account` with that account's own authentication.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RelayUser {
    /// The user name the program logs in with (often its email address).
    pub username: String,
    /// The account its mail goes out through.
    pub account: String,
    /// Argon2id hash of the password in PHC form (`postie relay user add`
    /// writes it); the password itself is never stored.
    pub password_hash: String,
}

/// One account as written in the config file.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// Which provider preset applies.
    pub provider: ProviderId,
    /// The account's address; the default `From` and login name.
    pub email: String,
    /// How the account authenticates.
    pub auth: AuthMethod,
    /// Login name when it differs from `email`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Submission host (overrides the preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Submission port (overrides the preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// TLS mode (overrides the preset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsMode>,
    /// Extra CA certificate file (PEM) to trust for this account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Verify the server certificate for this name instead of `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_name: Option<String>,
    /// Read the password from this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_env: Option<String>,
    /// Run this shell command; the first line it prints is the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_command: Option<String>,
    /// OAuth 2.0 client settings (`auth = "oauth"`), `[accounts.NAME.oauth]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthConfig>,
    /// How long to wait for the server: connecting, and each reply
    /// (`"30s"`, `"2m"`) [default: 30 s to connect, 60 s per reply].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// SASL mechanism to use instead of the one postie picks from the
    /// server's offer (`"XOAUTH2"`, `"OAUTHBEARER"`, `"PLAIN"`, `"LOGIN"`),
    /// for a server whose offer promises more than it does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_mechanism: Option<String>,
    /// How messages go out: `"smtp"` (the default), `"gmail-api"` (Google's
    /// `users.messages.send`, scope `gmail.send`) or `"graph"` (Microsoft
    /// Graph's `sendMail`, permission `Mail.Send`); or a list tried in
    /// order, the next one only when the one before could not connect
    /// (`["smtp", "gmail-api"]`). The HTTPS ones need `auth = "oauth"`.
    #[serde(default, skip_serializing_if = "Transports::is_default")]
    pub transport: Transports,
    /// The HTTPS API's base URL instead of Google's or Microsoft's (the
    /// sandbox's, a proxy's): `https://…`, or `http://` on loopback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_url: Option<String>,
    /// Sending limits, `[accounts.NAME.limits]` (`per_day`, `per_minute`,
    /// `recipients_per_day`, `recipients_per_message`); each one unset
    /// takes the provider's published limit ([`Limits::published`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

impl AccountConfig {
    /// The login name: `user` when set, else the address.
    pub fn login(&self) -> &str {
        self.user.as_deref().unwrap_or(&self.email)
    }

    /// Where account `name`'s password comes from when nothing overrides
    /// it: `password_env`, else `password_command`, else the secret store.
    pub fn password_source(&self, name: &str) -> PasswordSource {
        match (&self.password_env, &self.password_command) {
            (Some(v), _) => PasswordSource::Env(v.clone()),
            (None, Some(c)) => PasswordSource::Command(c.clone()),
            (None, None) => PasswordSource::Store(name.to_string()),
        }
    }

    /// The keys under which account `name` keeps secrets in postie's secret
    /// store: its password, or its OAuth tokens and client secret.
    pub fn secret_keys(&self, name: &str) -> Vec<String> {
        match (self.auth, &self.password_env, &self.password_command) {
            (AuthMethod::Oauth, _, _) => {
                vec![format!("{name}/oauth"), format!("{name}/client-secret")]
            }
            (AuthMethod::None, _, _) => Vec::new(),
            (_, None, None) => vec![name.to_string()],
            _ => Vec::new(),
        }
    }

    /// `timeout` parsed.
    pub fn timeout(&self) -> Result<Option<std::time::Duration>, Error> {
        self.timeout
            .as_deref()
            .map(|t| {
                parse_duration(t).map_err(|why| {
                    Error::new(ErrorKind::Config, format!("timeout = \"{t}\": {why}"))
                })
            })
            .transpose()
    }

    /// `auth_mechanism` parsed.
    pub fn mechanism(&self) -> Result<Option<Mechanism>, Error> {
        self.auth_mechanism
            .as_deref()
            .map(|m| {
                m.parse::<Mechanism>().map_err(|_| {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "auth_mechanism = \"{m}\" is not a SASL mechanism name: use XOAUTH2, \
                             OAUTHBEARER, PLAIN or LOGIN"
                        ),
                    )
                })
            })
            .transpose()
    }

    /// Where and how to connect, from the preset and this account's overrides.
    pub fn endpoint(&self) -> Result<Endpoint, Error> {
        let preset = self.provider.preset();
        let host = match (&self.host, preset.host) {
            (Some(h), _) => h.clone(),
            (None, Some(h)) => h.to_string(),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the {} account has no host: add `host = \"smtp.example.com\"` to it \
                         (or add it again ({}) with {})",
                        self.provider,
                        say(&Action::AddAccount {
                            account: None,
                            provider: None
                        }),
                        say_setting(Setting::Host)
                    ),
                ));
            }
        };
        let tls = self.tls.unwrap_or(match self.port {
            Some(465) => TlsMode::Implicit,
            Some(_) => TlsMode::Starttls,
            None => preset.tls,
        });
        let port = self.port.unwrap_or(match (self.tls, preset.host) {
            (Some(TlsMode::Implicit), _) => 465,
            (Some(_), _) | (None, None) => 587,
            (None, Some(_)) => preset.port,
        });
        Ok(Endpoint {
            host,
            port,
            tls,
            tls_name: self.tls_name.clone(),
            ca_file: self.ca_file.clone().or_else(|| {
                // The sandbox's CA, where `postie sandbox` keeps it by default.
                (self.provider == ProviderId::Sandbox)
                    .then(|| {
                        crate::paths::default_sandbox_dir()
                            .map(|d| crate::paths::sandbox_ca_path(&d))
                    })
                    .flatten()
            }),
        })
    }
}

/// A duration as people write it: `30` (seconds), `30s`, `2m`, `1h 30m`.
pub fn parse_duration(text: &str) -> std::result::Result<std::time::Duration, String> {
    let t = text.trim();
    if let Ok(secs) = t.parse::<u64>() {
        return Ok(std::time::Duration::from_secs(secs));
    }
    humantime::parse_duration(t)
        .map_err(|e| format!("'{t}' is not a duration like 30, 30s or 2m ({e})"))
}

/// Where an account's password comes from at run time.
#[derive(Clone, Debug)]
pub enum PasswordSource {
    /// An environment variable's value.
    Env(String),
    /// The first line printed by a shell command.
    Command(String),
    /// postie's secret store, under this key.
    Store(String),
    /// A value the caller already holds (read from a prompt or stdin).
    Given(SecretString),
}

/// An account's OAuth settings, `[accounts.NAME.oauth]` in the config file.
/// It holds no secret: a client secret comes from `client_secret_env` or from
/// the secret store (`NAME/client-secret`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// The OAuth client ID the user registered with the provider.
    pub client_id: String,
    /// Environment variable holding the client secret. Without it the secret
    /// store's `NAME/client-secret` is used when present, else none (a public
    /// client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_env: Option<String>,
    /// Microsoft tenant: `common` (the default), `organizations`,
    /// `consumers`, or a tenant ID / domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Issuer URL for RFC 8414 / OpenID Connect discovery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Authorization endpoint (overrides the provider's and discovery's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_endpoint: Option<String>,
    /// Token endpoint (overrides the provider's and discovery's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint: Option<String>,
    /// Device authorization endpoint (RFC 8628).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    /// Revocation endpoint (RFC 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// Scopes to ask for instead of the provider's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// How to obtain tokens; authorization code when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<Flow>,
    /// Google service account JSON key (flow `service-account`); the mailbox
    /// impersonated (`sub`) is the account's email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_key: Option<PathBuf>,
    /// Account to preselect at the provider's sign-in page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login_hint: Option<String>,
}

/// How an account obtains its tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// Authorization code + PKCE in a browser, redirected to a loopback listener.
    #[default]
    AuthCode,
    /// Device authorization (RFC 8628): a code entered on another device.
    Device,
    /// Google Workspace service account with domain-wide delegation.
    ServiceAccount,
    /// Client credentials (Microsoft app-only access with a client secret).
    ClientCredentials,
}

impl Flow {
    /// The kebab-case name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Flow::AuthCode => "auth-code",
            Flow::Device => "device",
            Flow::ServiceAccount => "service-account",
            Flow::ClientCredentials => "client-credentials",
        }
    }

    /// True for the flows that mint tokens without a user and a refresh token.
    pub fn is_app_only(self) -> bool {
        matches!(self, Flow::ServiceAccount | Flow::ClientCredentials)
    }
}

impl Config {
    /// The names of the accounts whose address is `addr`, compared without
    /// regard to ASCII case (as providers treat their own addresses).
    pub fn accounts_with_address(&self, addr: &str) -> Vec<&str> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.email.eq_ignore_ascii_case(addr))
            .map(|(n, _)| n.as_str())
            .collect()
    }

    /// The account that sends as `addr`, by the one rule of every entry
    /// point (the relay, sendmail): the account with that address; among
    /// several, the default account; `Ok(None)` when no account has it; an
    /// error naming them when several share it and none is the default.
    pub fn account_for_address(&self, addr: &str) -> Result<Option<&str>, Error> {
        let found = self.accounts_with_address(addr);
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(one)),
            several => match several
                .iter()
                .find(|n| self.default_account.as_deref() == Some(**n))
            {
                Some(d) => Ok(Some(d)),
                None => Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the accounts {} all have the address {addr}, and none is the default: \
                         set default_account to the one to send through, or give another \
                         address to all but one",
                        several.join(", ")
                    ),
                )),
            },
        }
    }

    /// Every account in a few words, as `postie account list --json` and the
    /// Python package show them (no secret: where the password comes from,
    /// not what it is).
    pub fn summaries(&self) -> Vec<AccountSummary> {
        self.accounts
            .iter()
            .map(|(name, a)| {
                let ep = a.endpoint().ok();
                AccountSummary {
                    name: name.clone(),
                    default: self.default_account.as_deref() == Some(name),
                    provider: a.provider,
                    email: a.email.clone(),
                    user: a.login().to_string(),
                    auth: a.auth,
                    server: ep.as_ref().map(|e| e.authority()),
                    tls: ep.as_ref().map(|e| e.tls),
                    password_from: if a.auth == AuthMethod::Oauth {
                        "oauth"
                    } else if a.password_env.is_some() {
                        "env"
                    } else if a.password_command.is_some() {
                        "command"
                    } else {
                        "store"
                    },
                }
            })
            .collect()
    }

    /// Load the config file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config, Error> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("cannot read the config file {}: {e}", path.display()),
                ));
            }
        };
        let config: Config = toml::from_str(&text).map_err(|e| {
            // toml's Display quotes the offending source line, which may hold
            // a secret someone pasted into the file: report position + message only.
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            Error::new(
                ErrorKind::Config,
                format!(
                    "the config file {} is not valid{at}: {}",
                    path.display(),
                    e.message().trim_end()
                ),
            )
            .with_finding("config-invalid")
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), Error> {
        if self.outbox.url_has_password() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{}: [outbox] url holds a password, in clear in the config file; remove it \
                     and set password_env or password_command in [outbox], or use a password \
                     file (PGPASSFILE), or give the whole URL in the {OUTBOX_ENV} environment \
                     variable",
                    path.display()
                ),
            ));
        }
        if let Some(d) = &self.default_account
            && !self.accounts.contains_key(d)
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{}: default_account = \"{d}\" names no account; accounts: {}",
                    path.display(),
                    self.account_names()
                ),
            ));
        }
        for (name, a) in &self.accounts {
            if a.password_env.is_some() && a.password_command.is_some() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "{}: account '{name}' sets both password_env and password_command; keep one",
                        path.display()
                    ),
                ));
            }
            a.timeout().map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("{}: account '{name}': {}", path.display(), e.message()),
                )
            })?;
            a.mechanism().map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("{}: account '{name}': {}", path.display(), e.message()),
                )
            })?;
            if let Some(l) = &a.limits {
                l.validate(name).map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("{}: {}", path.display(), e.message()),
                    )
                })?;
            }
        }
        for (name, n) in &self.relay.daily_limit {
            if *n == 0 {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "{}: [relay] daily_limit.{name} = 0 would never send: remove it, or set 1 or more",
                        path.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// How many connections (or API requests) the relay opens at once for
    /// `account` with `queued` messages: `[relay] connections_per_account`
    /// (default 2), within what the account's transports take, at most one
    /// per message, at least one.
    pub fn connections_for(&self, account: &str, queued: usize) -> usize {
        let mut n = self.relay.connections_per_account.unwrap_or(2);
        // Every transport of the list: the next one may take over.
        if let Some(cap) = self.accounts.get(account).and_then(|a| {
            a.transport
                .list()
                .iter()
                .filter_map(|t| max_concurrent(*t))
                .min()
        }) {
            n = n.min(cap);
        }
        n.min(queued).max(1)
    }

    /// The limits account `name` keeps: its `limits`, else `[relay]
    /// daily_limit` for the daily count, else the provider's published ones.
    pub fn limits(&self, name: &str) -> Limits {
        let Some(a) = self.accounts.get(name) else {
            return Limits::default();
        };
        let relay = Limits {
            per_day: self.relay.daily_limit.get(name).copied(),
            ..Limits::default()
        };
        a.limits
            .unwrap_or_default()
            .or(relay)
            .or(published_limits(a.provider, a.transport.first()))
    }

    /// Write the file atomically (temporary file, fsync, rename), mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), Error> {
        let text = toml::to_string_pretty(self)
            .map_err(|e| Error::new(ErrorKind::Config, format!("cannot encode config: {e}")))?;
        let header = format!(
            "# postie configuration. Secrets are not kept here: see {}.\n",
            say(&Action::AccountHelp).replace('`', "")
        );
        write_atomic(path, format!("{header}{text}").as_bytes()).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot write the config file {}: {e}", path.display()),
            )
        })
    }

    /// Add account `name` (or replace the one of that name); it becomes the
    /// default when `make_default` or when there is none. True when an
    /// account was replaced.
    pub fn add_account(&mut self, name: &str, acct: AccountConfig, make_default: bool) -> bool {
        let replaced = self.accounts.insert(name.to_string(), acct).is_some();
        if make_default || self.default_account.is_none() {
            self.default_account = Some(name.to_string());
        }
        replaced
    }

    /// Remove account `name`, returning it; the default account is unset
    /// when it was this one.
    pub fn remove_account(&mut self, name: &str) -> Option<AccountConfig> {
        let acct = self.accounts.remove(name)?;
        if self.default_account.as_deref() == Some(name) {
            self.default_account = None;
        }
        Some(acct)
    }

    /// Names of all accounts, comma separated (for error messages).
    pub fn account_names(&self) -> String {
        if self.accounts.is_empty() {
            return "(none)".into();
        }
        self.accounts.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    /// Find an account by name, or the default one when `name` is `None`.
    pub fn account(&self, name: Option<&str>) -> Result<(&str, &AccountConfig), Error> {
        let name = match name {
            Some(n) => n,
            None => match (&self.default_account, self.accounts.len()) {
                (Some(d), _) => d.as_str(),
                (None, 1) => self
                    .accounts
                    .keys()
                    .next()
                    .map(String::as_str)
                    .unwrap_or(""),
                (None, 0) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "no account is configured: add one ({}), or give {} for a one-off send",
                            say(&Action::AddAccount {
                                account: Some("NAME".into()),
                                provider: Some("gmail".into())
                            }),
                            say_setting(Setting::Server)
                        ),
                    ));
                }
                (None, _) => {
                    return Err(Error::new(
                        ErrorKind::Config,
                        format!(
                            "several accounts are configured and none is the default: give {} \
                             (one of {}) or set default_account",
                            say_setting(Setting::Account),
                            self.account_names()
                        ),
                    ));
                }
            },
        };
        self.accounts
            .get_key_value(name)
            .map(|(k, v)| (k.as_str(), v))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    if self.accounts.is_empty() {
                        format!(
                            "no account named '{name}': no account is configured yet; add it: \
                             {} ({} lists the providers)",
                            say(&Action::AddAccount {
                                account: Some(name.to_string()),
                                provider: Some("PROVIDER".into())
                            }),
                            say(&Action::AccountHelp)
                        )
                    } else {
                        format!(
                            "no account named '{name}'; configured: {} ({}), or add it: {}",
                            self.account_names(),
                            say(&Action::ListAccounts),
                            say(&Action::AddAccount {
                                account: Some(name.to_string()),
                                provider: None
                            })
                        )
                    },
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn graph_accounts_get_at_most_four_requests_at_once() {
        let c: Config = toml::from_str(
            "[relay]\nconnections_per_account = 8\n\
             [accounts.s]\nprovider = \"sandbox\"\nemail = \"a@b.test\"\nauth = \"password\"\n\
             [accounts.g]\nprovider = \"sandbox\"\nemail = \"a@b.test\"\nauth = \"oauth\"\ntransport = \"graph\"\n\
             [accounts.f]\nprovider = \"sandbox\"\nemail = \"a@b.test\"\nauth = \"oauth\"\ntransport = [\"smtp\", \"graph\"]\n",
        )
        .unwrap();
        assert_eq!(c.connections_for("s", 100), 8);
        assert_eq!(c.connections_for("g", 100), 4);
        assert_eq!(c.connections_for("f", 100), 4);
        assert_eq!(c.connections_for("g", 3), 3);
        assert_eq!(c.connections_for("g", 0), 1);
        assert_eq!(Config::default().connections_for("any", 100), 2);
    }

    #[test]
    fn a_wrong_transport_is_named_with_the_right_ones() {
        let base =
            "[accounts.a]\nprovider = \"gmail\"\nemail = \"a@gmail.com\"\nauth = \"oauth\"\n";
        let ok: Config =
            toml::from_str(&format!("{base}transport = [\"smtp\", \"gmail-api\"]\n")).unwrap();
        assert_eq!(
            ok.accounts["a"].transport.list(),
            [Transport::Smtp, Transport::GmailApi]
        );
        let e = toml::from_str::<Config>(&format!("{base}transport = \"smtps\"\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("transport \"smtps\" is not one postie knows"),
            "{e}"
        );
        let e = toml::from_str::<Config>(&format!("{base}transport = 3\n")).unwrap_err();
        assert!(e.to_string().contains("\"gmail-api\""), "{e}");
    }

    #[test]
    fn the_https_apis_are_paced_as_their_services_document() {
        let mut c = Config::default();
        let mut a = account(ProviderId::Gmail);
        c.accounts.insert("smtp".into(), a.clone());
        a.transport = Transports::new([Transport::GmailApi]);
        c.accounts.insert("api".into(), a.clone());
        a.provider = ProviderId::Office365;
        a.transport = Transports::new([Transport::Graph]);
        c.accounts.insert("graph".into(), a.clone());
        a.limits = Some(Limits {
            per_minute: Some(5),
            ..Limits::default()
        });
        c.accounts.insert("mine".into(), a);
        assert_eq!(c.limits("smtp").per_minute, None);
        assert_eq!(c.limits("smtp").per_day, Some(500));
        assert_eq!(c.limits("api").per_minute, Some(60));
        assert_eq!(
            c.limits("api").per_day,
            Some(500),
            "the daily limit is shared with SMTP"
        );
        assert_eq!(c.limits("graph").per_minute, Some(30));
        assert_eq!(
            c.limits("mine").per_minute,
            Some(5),
            "the account's own wins"
        );
    }

    fn account(provider: ProviderId) -> AccountConfig {
        AccountConfig {
            provider,
            email: "me@example.com".into(),
            auth: AuthMethod::AppPassword,
            user: None,
            host: None,
            port: None,
            tls: None,
            ca_file: None,
            tls_name: None,
            password_env: None,
            password_command: None,
            oauth: None,
            auth_mechanism: None,
            limits: None,
            transport: Default::default(),
            api_url: None,
            timeout: None,
        }
    }

    #[test]
    fn endpoint_from_preset_and_overrides() {
        let e = account(ProviderId::Gmail).endpoint().unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.tls),
            ("smtp.gmail.com", 587, TlsMode::Starttls)
        );

        let mut a = account(ProviderId::Gmail);
        a.port = Some(465);
        assert_eq!(a.endpoint().unwrap().tls, TlsMode::Implicit);

        let mut g = account(ProviderId::Generic);
        assert!(g.endpoint().unwrap_err().to_string().contains("host"));
        g.host = Some("mail.example.net".into());
        g.tls = Some(TlsMode::Implicit);
        assert_eq!(g.endpoint().unwrap().port, 465);
    }

    /// A relay daily limit of 0 would hold an account's mail for ever:
    /// refused when the file is read, with the fix.
    #[test]
    fn a_zero_relay_daily_limit_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(&path, "[relay.daily_limit]\nwork = 0\n").unwrap();
        let e = Config::load(&path).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(
            e.message().contains("daily_limit.work = 0") && e.message().contains("set 1 or more"),
            "{}",
            e.message()
        );
        fs::write(&path, "[relay.daily_limit]\nwork = 1\n").unwrap();
        assert_eq!(Config::load(&path).unwrap().relay.daily_limit["work"], 1);
    }

    #[test]
    fn save_and_load_round_trip_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        let mut c = Config::default();
        c.accounts
            .insert("work".into(), account(ProviderId::Fastmail));
        c.default_account = Some("work".into());
        c.save(&path).unwrap();
        assert_eq!(Config::load(&path).unwrap(), c);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn bad_files_say_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        fs::write(
            &path,
            "[accounts.a]\nprovider = \"gmial\"\nemail = \"x@y\"\nauth = \"oauth\"\n",
        )
        .unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("gmial"), "{err}");

        fs::write(&path, "default_account = \"nope\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("nope") && err.contains("(none)"), "{err}");

        fs::write(&path, "[accounts.a]\nprovider = \"gmail\"\nemail = \"x@y\"\nauth = \"oauth\"\npassword = \"hunter2\"\n").unwrap();
        let err = Config::load(&path).unwrap_err().to_string();
        assert!(err.contains("password"), "{err}");
        assert!(
            !err.contains("hunter2"),
            "a stray secret must not be echoed: {err}"
        );
    }

    /// Among accounts sharing an address the default wins,
    /// else the address is refused naming them (it went through the account
    /// that sorted first).
    #[test]
    fn one_rule_for_an_address_several_accounts_share() {
        let mut c = Config::default();
        let mut a = account(ProviderId::Gmail);
        a.email = "Me@Example.com".into();
        c.accounts.insert("aaa".into(), a.clone());
        assert_eq!(
            c.account_for_address("me@example.com").unwrap(),
            Some("aaa")
        );
        c.accounts.insert("sb1".into(), a);
        let err = c.account_for_address("me@example.com").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("aaa, sb1"), "{err}");
        c.default_account = Some("sb1".into());
        assert_eq!(
            c.account_for_address("ME@example.com").unwrap(),
            Some("sb1")
        );
        assert_eq!(c.account_for_address("other@example.com").unwrap(), None);
        assert_eq!(c.accounts_with_address("me@example.com"), ["aaa", "sb1"]);
    }

    #[test]
    fn account_selection() {
        let mut c = Config::default();
        // No account: the error names the action that adds one.
        let add = crate::wording::say(&crate::wording::Action::AddAccount {
            account: Some("NAME".into()),
            provider: Some("gmail".into()),
        });
        let none = c.account(None).unwrap_err().to_string();
        assert!(none.contains(&add), "{none}");
        c.accounts.insert("a".into(), account(ProviderId::Gmail));
        assert_eq!(c.account(None).unwrap().0, "a");
        c.accounts.insert("b".into(), account(ProviderId::Yahoo));
        assert!(c.account(None).unwrap_err().to_string().contains("a, b"));
        assert!(
            c.account(Some("z"))
                .unwrap_err()
                .to_string()
                .contains("no account named 'z'")
        );
    }
}
