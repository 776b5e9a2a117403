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
//! - [`error`], [`fs`], [`paths`], [`provider`], [`endpoint`], [`config`]:
//!   the error type, file helpers, where files live, provider presets,
//!   where to connect, the config file. They import no feature.
//! - [`blocking`]: the one way blocking work runs from async code.
//! - [`secret`]: password sources; the OS keyring or the encrypted file.
//! - [`message`]: composing messages and taking raw ones, with envelopes.
//! - [`explain`]: the catalog that turns failures into cause and fix.
//! - [`transport`]: the tokio + rustls SMTP driver around `postie-proto`.
//! - [`oauth`]: OAuth 2.0 sign-in, token storage and refresh.
//! - [`mailer`]: the sending core.
//!
//! ```no_run
//! # async fn demo() -> postie::error::Result<()> {
//! use postie::mailer::Mailer;
//! use postie::message::Draft;
//! use postie::paths::Paths;
//!
//! // The accounts of postie's config file, its secret store and tokens.
//! let mailer = Mailer::from_paths(&Paths::resolve(None)?)?;
//! let account = mailer.account(Some("work"))?;
//! let msg = Draft {
//!     from: "me@example.com".into(),
//!     to: vec!["you@example.com".into()],
//!     subject: Some("Hello".into()),
//!     text: Some("Sent with postie.".into()),
//!     ..Draft::default()
//! }
//! .build()?;
//! let report = mailer.send(&account, &msg).await?;
//! println!("{:?}", report.status);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

// Base: imports nothing above it.
pub mod blocking;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod fs;
pub mod paths;
pub mod provider;

pub mod explain;
pub mod mailer;
pub mod message;
pub mod oauth;
pub mod secret;

pub mod transport;

pub use error::{Error, ErrorKind};
