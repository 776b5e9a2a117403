//! postie: send mail through Gmail, Google Workspace, Microsoft 365,
//! Outlook.com, Yahoo, iCloud, Fastmail and any SMTP server, with the
//! authentication those providers demand today.
//!
//! Modules:
//! - [`provider`]: provider presets (hosts, ports, TLS, accepted auth).
//! - [`config`]: the TOML config file and its accounts.
//! - [`secret`]: password sources; the OS keyring or the encrypted secret file.
//! - [`message`]: composing messages and taking raw ones, with envelopes.
//! - [`transport`]: the tokio + rustls SMTP driver around `postie-proto`.
//! - [`oauth`]: OAuth 2.0 sign-in (`postie login`), token storage and refresh.
//! - [`send`]: one-shot send with a per-recipient report.
//! - [`explain`]: the catalog that turns failures into cause and fix.
//! - [`error`]: the error type.
//!
//! ```no_run
//! # async fn demo() -> postie::error::Result<()> {
//! use postie::message::Draft;
//! use postie::transport::{ConnectOptions, Endpoint};
//! use postie_proto::sasl::Credentials;
//!
//! let msg = Draft {
//!     from: "me@example.com".into(),
//!     to: vec!["you@example.com".into()],
//!     subject: Some("Hello".into()),
//!     text: Some("Sent with postie.".into()),
//!     ..Draft::default()
//! }
//! .build()?;
//! let mut opts = ConnectOptions::new(Endpoint::from_url("smtps://smtp.example.com:465")?);
//! opts.credentials = Some(Credentials::Password {
//!     username: "me@example.com".into(),
//!     password: std::env::var("SMTP_PASSWORD").unwrap_or_default().into(),
//! });
//! let report = postie::send::send_once(opts, &msg).await?;
//! println!("{:?}", report.status);
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

// Base: imports nothing above it.
pub mod config;
pub mod endpoint;
pub mod error;
pub mod fs;
pub mod paths;
pub mod provider;

pub mod explain;
pub mod message;
pub mod oauth;
pub mod secret;
pub mod send;
pub mod transport;

pub use error::{Error, ErrorKind};
