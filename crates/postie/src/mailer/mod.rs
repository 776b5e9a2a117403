//! The sending core: "send through this account", in one place.
//!
//! A [`Mailer`] is built once from the config, the secret store and the
//! token manager. Given an [`Account`] it sends: [`Mailer::send`] for one
//! message, a [`Session`] for many on one authenticated connection, a
//! [`Pool`] for many senders (the relay's delivery workers) sharing
//! connections per account. Every front of postie (`postie send`, the
//! relay's delivery, `postie doctor`, `postie demo`) goes through it, so
//! the rules live here once:
//!
//! - the account's endpoint, TLS (certificates verified; plaintext only to
//!   loopback) and SASL mechanism (the best the server offers, or the one the
//!   account forces);
//! - its credentials: the password from its source (environment, command
//!   with a timeout, secret store), or an OAuth access token that is
//!   refreshed before it expires, and once more when the server refuses it;
//! - reuse of an idle connection, and a new one when the server closed it
//!   before taking any part of a message (never when it may have taken it);
//! - the report of each message: every reply, per recipient.
//!
//! The account's transport is chosen here: SMTP today. A [`Session`] hides
//! which one it is, so callers do not change when another (an HTTPS API) is
//! added beside it.
//!
//! The examples run against the sandbox provider (`postie-sandbox`), which
//! authenticates and answers like Gmail on 127.0.0.1.
//!
//! # Many messages on one session
//!
//! One connection, one login, three messages; each has its own report.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> postie::error::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut cfg = postie_sandbox::SandboxConfig::new(dir.path().join("sandbox"));
//! # cfg.use_free_ports();
//! # let sandbox = postie_sandbox::Sandbox::start(cfg).await?;
//! use postie::config::{Config, PasswordSource};
//! use postie::mailer::{Account, Mailer, Status};
//! use postie::message::Draft;
//! use postie::secret::Secrets;
//! use postie_sandbox::{DEFAULT_APP_PASSWORD, DEFAULT_USER};
//!
//! // No config file: an account built in code, its password given here.
//! let mut account = Account::from_config("news", &sandbox.app_password_account(DEFAULT_USER))?;
//! account = account.with_password(DEFAULT_USER, PasswordSource::Given(DEFAULT_APP_PASSWORD.into()));
//! let mailer = Mailer::new(
//!     Config::default(),
//!     dir.path().join("data"),
//!     Secrets::lazy(|| unreachable!("no stored secret is needed")),
//! );
//! let mut session = mailer.session(&account);
//! for name in ["ann", "bob", "eve"] {
//!     let msg = Draft {
//!         from: DEFAULT_USER.into(),
//!         to: vec![format!("{name}@example.com")],
//!         subject: Some(format!("Hello {name}")),
//!         text: Some("One connection for all three.".into()),
//!         ..Draft::default()
//!     }
//!     .build()?;
//!     let report = session.send(&msg).await?;
//!     assert_eq!(report.status, Status::Sent);
//! }
//! session.close().await;
//! # assert_eq!(sandbox.mailbox().list()?.len(), 3);
//! # sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! # An OAuth 2.0 account
//!
//! The account signs in once (`postie login`, or [`crate::oauth::login`]
//! from code; here the sandbox signs it in directly); its tokens live in the
//! secret store. Each send takes an access token from the token manager,
//! which refreshes it when it nears expiry, or when the server refuses it,
//! and saves the rotated refresh token.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> postie::error::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! # let mut cfg = postie_sandbox::SandboxConfig::new(dir.path().join("sandbox"));
//! # cfg.use_free_ports();
//! # let sandbox = postie_sandbox::Sandbox::start(cfg).await?;
//! use postie::config::Config;
//! use postie::mailer::{Mailer, Status};
//! use postie::message::Draft;
//! use postie::secret::{SecretStore, Secrets};
//! use postie_sandbox::DEFAULT_USER;
//!
//! let mut config = Config::default();
//! config
//!     .accounts
//!     .insert("work".into(), sandbox.oauth_account(DEFAULT_USER));
//! let secrets = Secrets::from(SecretStore::file(
//!     dir.path().join("secrets.enc"),
//!     Box::new(|| Ok("a passphrase".into())),
//! ));
//! // Signed in: the tokens are in the store under the account's name.
//! sandbox.sign_in(DEFAULT_USER).save(&secrets, "work").await?;
//!
//! let mailer = Mailer::new(config, dir.path().join("data"), secrets);
//! let account = mailer.account(Some("work"))?;
//! let msg = Draft {
//!     from: DEFAULT_USER.into(),
//!     to: vec!["friend@example.com".into()],
//!     subject: Some("With a token".into()),
//!     text: Some("XOAUTH2 or OAUTHBEARER, whichever the server prefers.".into()),
//!     ..Draft::default()
//! }
//! .build()?;
//! let first = mailer.send(&account, &msg).await?;
//! assert_eq!(first.status, Status::Sent);
//!
//! // The provider ends the token's life early: the next send refreshes it.
//! sandbox.expire_access_tokens(DEFAULT_USER);
//! let second = mailer.send(&account, &msg).await?;
//! assert!(second.token_refreshed);
//! assert_eq!(second.status, Status::Sent);
//! # sandbox.shutdown().await;
//! # Ok(()) }
//! ```

mod account;
mod pool;
mod report;
mod session;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postie_proto::sasl::Credentials;
use secrecy::{ExposeSecret, SecretString};

pub use account::{Account, Auth, looks_like_grouped_app_password};
pub use pool::{KEEP_IDLE, Pool};
pub use report::{RecipientReport, SendReport, Status};
pub use session::Session;

use crate::blocking::unblock;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::message::OutgoingMessage;
use crate::oauth::{TokenManager, TokenSet};
use crate::paths::Paths;
use crate::secret::{
    FileStore, PASSWORD_COMMAND_TIMEOUT, SecretStore, Secrets, StoreChoice, normalize_app_password,
};
use crate::transport::{Timeouts, TranscriptEntry, TranscriptSink};

/// How a [`Mailer`] connects and what it reports.
#[derive(Clone)]
pub struct Options {
    /// Connect and command timeouts.
    pub timeouts: Timeouts,
    /// Receives the SMTP dialogue line by line, secrets redacted (`-v`).
    pub transcript: Option<TranscriptSink>,
    /// Put message bodies in the transcript instead of their size.
    pub show_body: bool,
    /// The EHLO name; default: this host's name, or an address literal.
    pub ehlo_name: Option<String>,
    /// How long a `password_command` may run.
    pub password_command_timeout: Duration,
    /// Told how much of a message body has been written: see
    /// [`crate::transport::ConnectOptions::progress`].
    pub progress: Option<crate::transport::BodyProgress>,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            timeouts: Timeouts::default(),
            transcript: None,
            show_body: false,
            ehlo_name: None,
            password_command_timeout: PASSWORD_COMMAND_TIMEOUT,
            progress: None,
        }
    }
}

/// The sending core. Cheap to clone: clones share the token manager (one
/// refresh per account at a time), the secret store and the TLS settings.
#[derive(Clone)]
pub struct Mailer(Arc<Inner>);

struct Inner {
    config: Config,
    data_dir: PathBuf,
    secrets: Secrets,
    tokens: TokenManager,
    options: Options,
    /// TLS client settings per CA file: the platform's roots are read once.
    tls: Mutex<HashMap<Option<PathBuf>, Arc<rustls::ClientConfig>>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("accounts", &self.0.config.account_names())
            .field("data_dir", &self.0.data_dir)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// A mailer for the accounts of `config`. `data_dir` holds the token
    /// locks (`$XDG_DATA_HOME/postie`); `secrets` is postie's secret store.
    pub fn new(config: Config, data_dir: PathBuf, secrets: Secrets) -> Mailer {
        Mailer::with_options(config, data_dir, secrets, Options::default())
    }

    /// [`Mailer::new`] with other [`Options`].
    pub fn with_options(
        config: Config,
        data_dir: PathBuf,
        secrets: Secrets,
        options: Options,
    ) -> Mailer {
        Mailer(Arc::new(Inner {
            tokens: TokenManager::new(data_dir.clone()),
            config,
            data_dir,
            secrets,
            options,
            tls: Mutex::default(),
        }))
    }

    /// A mailer as postie's own commands set one up: the config file and
    /// data directory of `paths`, the system keyring or the encrypted file
    /// (`POSTIE_SECRET_STORE`), whose passphrase comes from
    /// `POSTIE_PASSPHRASE` (this never prompts).
    pub fn from_paths(paths: &Paths) -> Result<Mailer> {
        let config = Config::load(&paths.config_file)?;
        let file = FileStore::default_path(&paths.data_dir);
        let choice = StoreChoice::from_env()?;
        let secrets = Secrets::lazy(move || {
            SecretStore::open(
                choice,
                file.clone(),
                Box::new(|| {
                    FileStore::passphrase_from_env().ok_or_else(|| {
                        Error::new(
                            ErrorKind::Secret,
                            format!(
                                "the encrypted secret file needs its passphrase: set {}",
                                crate::secret::PASSPHRASE_ENV
                            ),
                        )
                    })
                }),
            )
        });
        Ok(Mailer::new(config, paths.data_dir.clone(), secrets))
    }

    /// A mailer for `config` (the config file read again) that keeps this
    /// one's secret store (no second passphrase prompt), data directory and
    /// options. Its token cache starts empty: an account's OAuth settings
    /// may have changed.
    pub fn with_config(&self, config: Config) -> Mailer {
        Mailer::with_options(
            config,
            self.0.data_dir.clone(),
            self.0.secrets.clone(),
            self.0.options.clone(),
        )
    }

    /// True when both are the same mailer (clones of one).
    pub fn same(&self, other: &Mailer) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// The configuration it sends for.
    pub fn config(&self) -> &Config {
        &self.0.config
    }

    /// postie's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.0.data_dir
    }

    /// The secret store.
    pub fn secrets(&self) -> &Secrets {
        &self.0.secrets
    }

    /// The token manager (shared by every clone).
    pub fn tokens(&self) -> &TokenManager {
        &self.0.tokens
    }

    /// The options it was built with.
    pub fn options(&self) -> &Options {
        &self.0.options
    }

    /// Account `name` of the config, or the default account when `name` is
    /// `None`.
    pub fn account(&self, name: Option<&str>) -> Result<Account> {
        let (name, acct) = self.0.config.account(name)?;
        Account::from_config(name, acct)
    }

    /// Send one message through `account`: connect, authenticate, send,
    /// QUIT. A refused recipient is in the report; an error means nothing
    /// was sent (or, for a failure after the data, that the server's answer
    /// was lost: the error's stage says which).
    pub async fn send(&self, account: &Account, msg: &OutgoingMessage) -> Result<SendReport> {
        // QUIT rides with the message: no round trip of its own.
        self.session(account).send_last(msg).await
    }

    /// A session for sending several messages through `account` on one
    /// connection, opened at the first message.
    pub fn session(&self, account: &Account) -> Session {
        Session::new(self.clone(), Arc::new(account.clone()))
    }

    /// What `account` authenticates with now: its password, or an access
    /// token valid for a while (`refresh`: a new one whatever the stored
    /// one's expiry says, because the server refused it). `None` for an
    /// account without authentication.
    pub async fn credentials(
        &self,
        account: &Account,
        refresh: bool,
    ) -> Result<Option<Credentials>> {
        let creds = self.credentials_of(account, refresh).await?;
        // A forced mechanism that cannot carry these credentials would be
        // dropped for another one without a word: say so instead.
        if let (Some(m), Some(c)) = (&account.mechanism, &creds)
            && !m.fits(c)
        {
            let (what, instead) = match c {
                Credentials::Password { .. } => ("a password", "PLAIN or LOGIN"),
                Credentials::Bearer { .. } => ("an OAuth 2.0 token", "XOAUTH2 or OAUTHBEARER"),
            };
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the SASL mechanism {m} cannot carry {what}, which is how {} signs in: \
                     use {instead} (or let postie choose: no auth_mechanism)",
                    account.label()
                ),
            ));
        }
        Ok(creds)
    }

    async fn credentials_of(
        &self,
        account: &Account,
        refresh: bool,
    ) -> Result<Option<Credentials>> {
        match &account.auth {
            Auth::None => Ok(None),
            Auth::Password {
                user,
                source,
                app_password,
            } => {
                let pw = source
                    .resolve(&self.0.secrets, self.0.options.password_command_timeout)
                    .await?;
                let pw = if *app_password || looks_like_grouped_app_password(pw.expose_secret()) {
                    normalize_app_password(&pw)
                } else {
                    pw
                };
                Ok(Some(Credentials::Password {
                    username: user.clone(),
                    password: pw,
                }))
            }
            Auth::OAuth { user } => {
                let (token, _) = self.access_token(account, refresh).await?;
                Ok(Some(Credentials::Bearer {
                    user: user.clone(),
                    token,
                }))
            }
        }
    }

    /// An access token of an OAuth account, with the token set it belongs
    /// to (see [`TokenManager::access_token`]).
    pub async fn access_token(
        &self,
        account: &Account,
        refresh: bool,
    ) -> Result<(SecretString, TokenSet)> {
        let (Some(name), Some(settings)) = (&account.name, account.settings()) else {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} signs in with no OAuth account: OAuth needs an account of the config file",
                    account.label()
                ),
            ));
        };
        self.0
            .tokens
            .access_token(name, settings, &self.0.secrets, refresh)
            .await
    }

    /// The TLS client settings for a CA file (none: the platform's roots),
    /// built once on a blocking thread.
    async fn tls_config(&self, ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>> {
        let key = ca_file.map(Path::to_path_buf);
        if let Some(c) = self.0.tls.lock().expect("tls lock").get(&key) {
            return Ok(c.clone());
        }
        let path = key.clone();
        let made = unblock(move || crate::transport::tls_config(path.as_deref())).await?;
        self.0
            .tls
            .lock()
            .expect("tls lock")
            .insert(key, made.clone());
        Ok(made)
    }

    /// A note in the transcript (the session's own remarks).
    fn note(&self, text: &str) {
        if let Some(t) = &self.0.options.transcript {
            t(&TranscriptEntry {
                elapsed: Duration::ZERO,
                direction: "note",
                tls: false,
                text: text.to_string(),
            });
        }
    }
}
