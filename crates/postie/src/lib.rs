//! postie: send mail through Gmail, Google Workspace, Microsoft 365,
//! Outlook.com, Yahoo, iCloud, Fastmail and any SMTP server, with the
//! authentication those providers demand today.
//!
//! This is postie's core: everything needed to send, and nothing else (no
//! database, no server). Its centre is the [`mailer`]: given an account, it
//! sends one message or many, with the account's app password or OAuth 2.0
//! token, refreshed as needed, and reports what the server said about each
//! recipient. The outbox and relay (`postie-outbox`), the sandbox provider
//! (`postie-sandbox`), `postie doctor` (`postie-doctor`) and the `postie`
//! command are built on it.
//!
//! Modules, from the base up (a module imports only those above it in this
//! list):
//! - [`wording`], [`error`], [`fs`], [`paths`], [`provider`], [`endpoint`],
//!   [`config`]: how actions are worded for the front, the error type, file
//!   helpers, where files live, provider presets, where to connect, the
//!   config file. They import no feature.
//! - [`blocking`]: the one way blocking work runs from async code.
//! - [`secret`]: password sources; the OS keyring or the encrypted file.
//! - [`message`]: composing messages and taking raw ones, with envelopes.
//! - [`explain`]: the catalog that turns failures into cause and fix.
//! - [`transport`]: the tokio + rustls SMTP driver around `postie-proto`.
//! - [`oauth`]: OAuth 2.0 sign-in, token storage and refresh.
//! - [`mailer`]: the sending core.
//!
//! Sending one message through an account of the config file. The account
//! here is the sandbox provider's (`postie-sandbox`, a local stand-in for
//! Gmail), so the example runs as it is; with a real account only the
//! config differs ([`mailer::Mailer::from_paths`] reads postie's own).
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
//! use postie_sandbox::{DEFAULT_APP_PASSWORD, DEFAULT_USER};
//!
//! // An account with an app password, kept in an encrypted secret file.
//! let mut config = Config::default();
//! config
//!     .accounts
//!     .insert("work".into(), sandbox.app_password_account(DEFAULT_USER));
//! let secrets = Secrets::from(SecretStore::file(
//!     dir.path().join("secrets.enc"),
//!     Box::new(|| Ok("a passphrase".into())),
//! ));
//! secrets.set("work", &DEFAULT_APP_PASSWORD.into()).await?;
//!
//! let mailer = Mailer::new(config, dir.path().join("data"), secrets);
//! let account = mailer.account(Some("work"))?;
//! let msg = Draft {
//!     from: DEFAULT_USER.into(),
//!     to: vec!["friend@example.com".into()],
//!     subject: Some("Hello".into()),
//!     text: Some("Sent with postie.".into()),
//!     ..Draft::default()
//! }
//! .build()?;
//! let report = mailer.send(&account, &msg).await?;
//! assert_eq!(report.status, Status::Sent);
//! println!("{} via {}: {}", report.message_id, report.server, report.recipients[0].text);
//! # sandbox.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The [`mailer`] module shows sending many messages on one session, and
//! sending with an OAuth 2.0 account.

#![deny(missing_docs)]

// Base: imports nothing above it.
pub mod blocking;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod fs;
pub mod paths;
pub mod provider;
pub mod wording;

pub mod api;
pub mod explain;
pub mod mailer;
pub mod message;
pub mod oauth;
pub mod secret;

pub mod transport;

pub use error::{Error, ErrorKind};
