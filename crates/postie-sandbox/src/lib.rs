//! `postie sandbox`: a local mail provider that behaves like Gmail, for
//! trying postie (and any mail code) offline and against realistic
//! failures. Everything listens on loopback only:
//!
//! - SMTP submission on a STARTTLS port and an implicit-TLS port, run by
//!   postie's one SMTP server ([`postie_proto::server::ServerSession`], as
//!   in the relay), advertising what Gmail advertises and answering with
//!   Gmail's exact texts ([`gmail`]): the account password gets `534 5.7.9
//!   Application-specific password required`, app passwords and the
//!   sandbox's own OAuth tokens are accepted, bad tokens get the XOAUTH2
//!   error challenge, a daily sending limit gets `550 5.4.5`;
//! - an OAuth 2.0 authorization server over HTTP: discovery (RFC 8414),
//!   a consent page with Allow and Deny, authorization code with PKCE,
//!   refresh tokens that rotate, the device flow (RFC 8628), revocation
//!   (RFC 7009) ([`tokens`]);
//! - a [`mailbox`]: every accepted message as an `.eml` file, listed on the
//!   HTTP port and by `postie sandbox messages`.
//!
//! The certificate is made once per data directory (a local CA and a
//! certificate for `localhost`, `127.0.0.1`, `::1`); clients trust
//! [`SandboxHandle::ca_pem_path`].
//!
//! ```no_run
//! # async fn demo() -> postie::error::Result<()> {
//! use postie_sandbox::{Sandbox, SandboxConfig};
//!
//! let mut cfg = SandboxConfig::new("/tmp/sandbox".into());
//! cfg.use_free_ports();
//! let sandbox = Sandbox::start(cfg).await?;
//! println!("SMTP on {}, OAuth at {}", sandbox.smtp_addr, sandbox.issuer());
//! sandbox.shutdown().await;
//! # Ok(()) }
//! ```

#![deny(missing_docs)]

mod api;
pub mod gmail;
mod http;
pub mod mailbox;
mod pages;
mod smtp;
pub mod tokens;
pub mod users;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use postie::config::{AccountConfig, OAuthConfig};
use postie::error::{Error, ErrorKind, Result};
use postie::oauth::TokenSet;
use postie::provider::{AuthMethod, ProviderId, TlsMode};
use postie::wording::{Setting, say_setting};
use postie_server::LocalCert;
use postie_server::{ConnSettings, Io, accept_loop};

pub use mailbox::{Mailbox, MessageView, PartView, StoredMessage};
pub use users::{
    DEFAULT_APP_PASSWORD, DEFAULT_CLIENT_ID, DEFAULT_PASSWORD, DEFAULT_USER, SandboxFile, User,
};

/// The STARTTLS port's default: submission's 587, moved above 1024.
pub const DEFAULT_SMTP_PORT: u16 = 2587;
/// The implicit-TLS port's default: 465, moved above 1024.
pub const DEFAULT_SMTPS_PORT: u16 = 2465;
/// The HTTP port's default (OAuth server and mailbox page).
pub const DEFAULT_HTTP_PORT: u16 = 2580;
/// Messages per user per rolling 24 hours, unless configured.
pub const DEFAULT_DAILY_LIMIT: u32 = 100;
/// Access-token lifetime, unless configured (Google: about an hour).
pub const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// Most connections served at once, per listener kind.
const MAX_CONNECTIONS: usize = 64;
/// How long a client may stay silent.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a stop waits for what is under way.
const DRAIN: Duration = Duration::from_secs(5);

/// The sandbox's directory under postie's data directory
/// (`$XDG_DATA_HOME/postie/sandbox`), when a home directory is known.
pub fn default_data_dir() -> Option<PathBuf> {
    postie::paths::default_sandbox_dir()
}

/// The CA certificate of the sandbox whose data directory is `data_dir`
/// (where accounts of the `sandbox` provider look for it).
pub fn ca_path(data_dir: &Path) -> PathBuf {
    postie::paths::sandbox_ca_path(data_dir)
}

fn tls_dir(data_dir: &Path) -> PathBuf {
    ca_path(data_dir)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| data_dir.join("tls"))
}

/// The mailbox directory of the sandbox whose data directory is `data_dir`.
pub fn mailbox_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("mailbox")
}

/// Makes (once) and returns the sandbox's certificate files.
pub fn certificate(data_dir: &Path) -> Result<LocalCert> {
    LocalCert::load_or_create(&tls_dir(data_dir))
}

/// Settings of a sandbox.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Certificate and mailbox live here.
    pub data_dir: PathBuf,
    /// The STARTTLS listener (port 0: any free port).
    pub smtp: SocketAddr,
    /// The implicit-TLS listener.
    pub smtps: SocketAddr,
    /// The HTTP listener (OAuth and the mailbox page).
    pub http: SocketAddr,
    /// The accounts; empty means [`User::default_user`].
    pub users: Vec<User>,
    /// OAuth client IDs accepted (public clients, no secret).
    pub clients: Vec<String>,
    /// Messages per user per rolling 24 hours.
    pub daily_limit: u32,
    /// Whether the Gmail API is enabled for the clients' Cloud project
    /// (off: `403 accessNotConfigured`).
    pub gmail_api_enabled: bool,
    /// Access-token lifetime.
    pub token_lifetime: Duration,
    /// Device-flow polling interval (RFC 8628 §3.2).
    pub device_interval: Duration,
}

impl SandboxConfig {
    /// Defaults: the fixed loopback ports, the default user and client, 100
    /// messages a day, one-hour tokens.
    pub fn new(data_dir: PathBuf) -> SandboxConfig {
        let lo = |port| SocketAddr::from(([127, 0, 0, 1], port));
        SandboxConfig {
            data_dir,
            smtp: lo(DEFAULT_SMTP_PORT),
            smtps: lo(DEFAULT_SMTPS_PORT),
            http: lo(DEFAULT_HTTP_PORT),
            users: Vec::new(),
            clients: vec![DEFAULT_CLIENT_ID.to_string()],
            daily_limit: DEFAULT_DAILY_LIMIT,
            gmail_api_enabled: true,
            token_lifetime: DEFAULT_TOKEN_LIFETIME,
            device_interval: Duration::from_secs(2),
        }
    }

    /// Listens on free ports instead of the fixed ones (tests, the demo).
    pub fn use_free_ports(&mut self) {
        self.smtp.set_port(0);
        self.smtps.set_port(0);
        self.http.set_port(0);
    }

    /// The configured users, or the default one.
    pub fn effective_users(&self) -> Vec<User> {
        if self.users.is_empty() {
            vec![User::default_user()]
        } else {
            self.users.clone()
        }
    }
}

/// State shared by the SMTP and HTTP sides.
pub(crate) struct Shared {
    pub(crate) users: Vec<User>,
    pub(crate) clients: Vec<String>,
    pub(crate) daily_limit: u32,
    pub(crate) gmail_api_enabled: bool,
    pub(crate) mailbox: Mailbox,
    pub(crate) issuer: String,
    grants: Mutex<tokens::Grants>,
    /// Resumable Gmail API uploads started and not finished: upload id ->
    /// the user whose token started it.
    pub(crate) uploads: Mutex<std::collections::HashMap<String, String>>,
}

impl Shared {
    pub(crate) fn now(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    pub(crate) fn grants(&self) -> MutexGuard<'_, tokens::Grants> {
        self.grants.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn user(&self, email: &str) -> Option<&User> {
        self.users
            .iter()
            .find(|u| u.email.eq_ignore_ascii_case(email.trim()))
    }
}

/// Starts sandboxes.
pub struct Sandbox;

impl Sandbox {
    /// Binds every listener, makes the certificate on first use, and serves
    /// in the background until [`SandboxHandle::shutdown`]. Only loopback
    /// addresses are accepted: the sandbox's credentials are published.
    pub async fn start(cfg: SandboxConfig) -> Result<SandboxHandle> {
        for a in [cfg.smtp, cfg.smtps, cfg.http] {
            if !a.ip().is_loopback() {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "the sandbox listens on loopback only (its passwords are printed for all to see), not on {a}"
                    ),
                ));
            }
        }
        let users = cfg.effective_users();
        for u in &users {
            users::check_user(u)?;
        }
        users::check_unique(&users)?;
        // Files: made or read on a blocking thread.
        let dir = cfg.data_dir.clone();
        let (cert, server_config, mailbox) = postie::blocking::unblock(move || {
            let cert = certificate(&dir)?;
            let server_config = cert.server_config()?;
            Ok((cert, server_config, Mailbox::open(&mailbox_dir(&dir))?))
        })
        .await?;
        let acceptor = TlsAcceptor::from(server_config);
        let smtp = bind(cfg.smtp, Setting::SandboxSmtpPort).await?;
        let smtps = bind(cfg.smtps, Setting::SandboxSmtpsPort).await?;
        let http = bind(cfg.http, Setting::SandboxHttpPort).await?;
        let addr = |l: &TcpListener| l.local_addr().expect("bound");
        let (smtp_addr, smtps_addr, http_addr) = (addr(&smtp), addr(&smtps), addr(&http));
        let issuer = format!("http://{http_addr}");
        let shared = Arc::new(Shared {
            users: users.clone(),
            clients: cfg.clients.clone(),
            daily_limit: cfg.daily_limit,
            gmail_api_enabled: cfg.gmail_api_enabled,
            mailbox,
            issuer,
            grants: Mutex::new(tokens::Grants::new(
                cfg.token_lifetime.as_secs().max(1),
                cfg.device_interval.as_secs(),
            )),
            uploads: Mutex::default(),
        });
        let settings = Arc::new(ConnSettings {
            tls: Some(acceptor.clone()),
            command_timeout: COMMAND_TIMEOUT,
            name: "sandbox",
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut tasks = JoinSet::new();
        let limit = || Arc::new(Semaphore::new(MAX_CONNECTIONS));

        let (sh, st) = (shared.clone(), settings.clone());
        tasks.spawn(accept_loop(
            smtp,
            limit(),
            stop_rx.clone(),
            DRAIN,
            "sandbox smtp",
            move |tcp, peer, stop| smtp::serve(Io::Plain(tcp), peer, sh.clone(), st.clone(), stop),
        ));
        let (sh, st) = (shared.clone(), settings.clone());
        tasks.spawn(accept_loop(
            smtps,
            limit(),
            stop_rx.clone(),
            DRAIN,
            "sandbox smtps",
            move |tcp, peer, stop| {
                let (sh, st, acceptor) = (sh.clone(), st.clone(), acceptor.clone());
                async move {
                    if let Some(io) = Io::implicit_tls(&acceptor, tcp, COMMAND_TIMEOUT).await {
                        smtp::serve(io, peer, sh, st, stop).await;
                    }
                }
            },
        ));
        let sh = shared.clone();
        tasks.spawn(accept_loop(
            http,
            limit(),
            stop_rx.clone(),
            DRAIN,
            "sandbox http",
            move |tcp, _peer, stop| http::serve(tcp, sh.clone(), stop),
        ));
        Ok(SandboxHandle {
            smtp_addr,
            smtps_addr,
            http_addr,
            ca_pem_path: cert.ca.unwrap_or_else(|| ca_path(&cfg.data_dir)),
            data_dir: cfg.data_dir,
            users,
            shared,
            stop: stop_tx,
            tasks,
        })
    }
}

async fn bind(addr: SocketAddr, port: Setting) -> Result<TcpListener> {
    TcpListener::bind(addr).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!(
                " (another sandbox, or another program, is listening there: stop it, or choose another {}; 0 picks a free port)",
                say_setting(port)
            )
        } else {
            String::new()
        };
        let finding = match e.kind() {
            std::io::ErrorKind::AddrInUse => "listen-busy",
            _ => "listen-denied",
        };
        Error::new(
            ErrorKind::Unavailable,
            format!("cannot listen on {addr}: {e}{hint}"),
        )
        .with_finding(finding)
    })
}

/// A running sandbox.
pub struct SandboxHandle {
    /// The STARTTLS submission address.
    pub smtp_addr: SocketAddr,
    /// The implicit-TLS submission address.
    pub smtps_addr: SocketAddr,
    /// The HTTP address (OAuth endpoints and the mailbox page).
    pub http_addr: SocketAddr,
    /// The CA certificate clients should trust.
    pub ca_pem_path: PathBuf,
    /// The data directory.
    pub data_dir: PathBuf,
    /// The accounts.
    pub users: Vec<User>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl SandboxHandle {
    /// The OAuth issuer (`http://127.0.0.1:PORT`); discovery metadata is at
    /// `/.well-known/oauth-authorization-server` below it.
    pub fn issuer(&self) -> String {
        self.shared.issuer.clone()
    }

    /// The authorization endpoint.
    pub fn authorization_endpoint(&self) -> String {
        format!("{}{}", self.shared.issuer, http::AUTHORIZE)
    }

    /// The token endpoint.
    pub fn token_endpoint(&self) -> String {
        format!("{}{}", self.shared.issuer, http::TOKEN)
    }

    /// The device authorization endpoint.
    pub fn device_endpoint(&self) -> String {
        format!("{}{}", self.shared.issuer, http::DEVICE_CODE)
    }

    /// The revocation endpoint.
    pub fn revocation_endpoint(&self) -> String {
        format!("{}{}", self.shared.issuer, http::REVOKE)
    }

    /// The mailbox.
    pub fn mailbox(&self) -> &Mailbox {
        &self.shared.mailbox
    }

    /// An account of postie's config for `user` at this sandbox: provider
    /// `sandbox`, this sandbox's STARTTLS port and CA, signing in with an
    /// app password (looked up in the secret store under the account's
    /// name, or set `password_env`).
    pub fn app_password_account(&self, user: &str) -> AccountConfig {
        AccountConfig {
            provider: ProviderId::Sandbox,
            email: user.to_string(),
            auth: AuthMethod::AppPassword,
            user: None,
            host: Some(self.smtp_addr.ip().to_string()),
            port: Some(self.smtp_addr.port()),
            tls: Some(TlsMode::Starttls),
            ca_file: Some(self.ca_pem_path.clone()),
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

    /// [`SandboxHandle::app_password_account`], signing in with OAuth 2.0
    /// at this sandbox's authorization server, as its public client
    /// ([`DEFAULT_CLIENT_ID`]).
    pub fn oauth_account(&self, user: &str) -> AccountConfig {
        AccountConfig {
            auth: AuthMethod::Oauth,
            oauth: Some(OAuthConfig {
                client_id: DEFAULT_CLIENT_ID.into(),
                issuer: Some(self.issuer()),
                login_hint: Some(user.to_string()),
                ..OAuthConfig::default()
            }),
            ..self.app_password_account(user)
        }
    }

    /// Tokens for `user` as if they had signed in with postie and clicked
    /// Allow on the consent page: an access token for Gmail's SMTP scope and
    /// a refresh token. Store them with [`TokenSet::save`] under the
    /// account's name, and the account is signed in.
    pub fn sign_in(&self, user: &str) -> TokenSet {
        let now = self.shared.now();
        let issued = self
            .shared
            .grants()
            .approve(DEFAULT_CLIENT_ID, user, gmail::MAIL_SCOPE, now);
        let at = UNIX_EPOCH + Duration::from_secs(now);
        TokenSet {
            access_token: issued.access_token.into(),
            expires_at: Some(at + Duration::from_secs(issued.expires_in)),
            refresh_token: issued.refresh_token.map(Into::into),
            scope: Some(issued.scope),
            refresh_token_issued_at: Some(at),
            issued_at: Some(at),
        }
    }

    /// Ends the validity of every access token of `user` now (its refresh
    /// tokens stay valid): the next send needs a refresh. Returns how many
    /// tokens were live.
    pub fn expire_access_tokens(&self, user: &str) -> usize {
        let now = self.shared.now();
        self.shared.grants().expire_access_tokens(user, now)
    }

    /// Stops accepting, lets what is under way finish (a few seconds at
    /// most) and returns.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        while self.tasks.join_next().await.is_some() {}
    }
}
