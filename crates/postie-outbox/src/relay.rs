//! `postie relay`: a local SMTP submission server for programs that cannot
//! do modern authentication (Python smtplib scripts, cron, git send-email,
//! mutt, printers). They send to 127.0.0.1; the relay stores each message
//! durably in the [outbox](crate::outbox), answers 250 only once it is on
//! disk, and the [delivery](crate::delivery) workers send it upstream through
//! the account's app password or OAuth 2.0 token.
//!
//! Which account sends a message: the relay user the client logged in as;
//! else the account whose address is the envelope sender; else the one
//! whose address is in the `From:` header; else `fallback_account`; else the
//! message is refused with a 550 that names the accounts.
//!
//! Clients on loopback need no AUTH. Listening on any other address needs
//! relay users and TLS, and those clients must use both: postie is never an
//! open relay.

mod conn;
mod route;
pub mod users;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use postie_proto::reply::Reply;
use postie_proto::sasl::Mechanism;
use postie_proto::server::ServerConfig;
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, watch};
use tokio_rustls::TlsAcceptor;

use crate::outbox::Outbox;
use postie::blocking::unblock;
use postie::config::Config;
use postie::error::{Error, ErrorKind, Result};
use postie::wording::{Action, Setting, say, say_setting};
use postie_server::accept_loop;

pub use postie_server::LocalCert;

/// The relay's default address: submission's 587, moved above 1024 so no
/// privilege is needed.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1587";

/// Most client connections served at once.
const MAX_CONNECTIONS: usize = 128;

/// How long a graceful stop waits for transactions in progress.
const DRAIN: Duration = Duration::from_secs(30);

/// Shared by every connection.
pub(crate) struct Ctx {
    /// The accounts and `[relay]` settings; replaced by
    /// [`RelayConfig::set`] when the config file is read again.
    config: std::sync::RwLock<Arc<Config>>,
    pub(crate) outbox: Arc<Outbox>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) tls: Option<TlsAcceptor>,
    pub(crate) hostname: String,
    pub(crate) max_message_size: u64,
    pub(crate) max_recipients: usize,
    pub(crate) command_timeout: Duration,
}

impl Ctx {
    /// The configuration now.
    pub(crate) fn config(&self) -> Arc<Config> {
        self.config.read().expect("relay config lock").clone()
    }

    /// The server session's settings for a client at `peer`.
    pub(crate) fn server_config(&self, peer: &SocketAddr) -> ServerConfig {
        session_config(
            &self.hostname,
            self.max_message_size,
            self.max_recipients,
            self.tls.is_some(),
            peer.ip(),
        )
    }
}

/// The relay's session settings: loopback clients may skip AUTH and TLS,
/// every other client must use both, so the relay is never open.
fn session_config(
    hostname: &str,
    max_message_size: u64,
    max_recipients: usize,
    starttls: bool,
    peer: IpAddr,
) -> ServerConfig {
    // `::ffff:127.0.0.1` on a dual-stack listener is loopback too.
    let local = peer.to_canonical().is_loopback();
    let mut c = ServerConfig::new(hostname);
    c.greeting = "ESMTP postie relay".into();
    c.ehlo_greeting = "postie relay at your service".into();
    c.max_message_size = max_message_size;
    c.max_recipients = max_recipients;
    // Python's smtplib.sendmail(bytes) sends bare LFs; store them as CRLF.
    c.normalize_bare_lf = true;
    c.starttls = starttls;
    c.auth = vec![Mechanism::Plain, Mechanism::Login];
    c.auth_requires_tls = !local;
    c.require_tls = !local;
    c.require_auth = !local;
    c.smtputf8 = true;
    c.chunking = true;
    // Delivery sends the stored message with DATA, which cannot carry
    // binary content: accept only what can be passed on unchanged.
    c.binarymime = false;
    c.replies.auth_required = Reply::new(
        530,
        "5.7.0 Authentication required: log in with a relay user (postie relay user add)",
    );
    c
}

/// A relay bound to its addresses, ready to serve.
pub struct Relay {
    listeners: Vec<TcpListener>,
    ctx: Arc<Ctx>,
}

/// What `Relay::bind` needs besides the config.
pub struct BindOptions<'a> {
    /// Addresses to listen on; empty = `[relay] listen`, else [`DEFAULT_LISTEN`].
    pub listen: Vec<String>,
    /// postie's data directory (the generated certificate lives under it).
    pub data_dir: &'a Path,
    /// Notified whenever a message is stored, to wake the delivery worker.
    pub wake: Arc<Notify>,
}

impl Relay {
    /// Check the settings and bind every address. Refuses to listen beyond
    /// loopback without relay users and TLS.
    pub async fn bind(config: Config, outbox: Arc<Outbox>, o: BindOptions<'_>) -> Result<Relay> {
        let rc = &config.relay;
        let listen: Vec<String> = if !o.listen.is_empty() {
            o.listen.clone()
        } else if !rc.listen.is_empty() {
            rc.listen.clone()
        } else {
            vec![DEFAULT_LISTEN.to_string()]
        };
        let mut addrs = Vec::new();
        for a in &listen {
            for addr in listen_addresses(a).await? {
                if !addrs.contains(&addr) {
                    addrs.push(addr);
                }
            }
        }
        check_routing(&config)?;
        let cert = match (&rc.tls_cert, &rc.tls_key) {
            (Some(c), Some(k)) => LocalCert::from_files(c.clone(), k.clone()),
            (None, None) => {
                let dir = o.data_dir.join("relay-tls");
                unblock(move || LocalCert::load_or_create(&dir)).await?
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Config,
                    "[relay] needs both tls_cert and tls_key, or neither (then postie makes a certificate for loopback)",
                ));
            }
        };
        let tls = TlsAcceptor::from(unblock(move || cert.server_config()).await?);
        if let Some(open) = addrs.iter().find(|a| !a.ip().to_canonical().is_loopback()) {
            if rc.users.is_empty() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "refusing to listen on {open}: beyond loopback the relay requires AUTH, and no relay \
                         user is configured, so anyone who can reach it could send mail as your accounts. \
                         Add one ({}), or listen on 127.0.0.1 / [::1]",
                        say(&Action::AddRelayUser {
                            user: None,
                            account: None
                        })
                    ),
                ));
            }
            if rc.tls_cert.is_none() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "refusing to listen on {open} with the generated loopback certificate: clients \
                         elsewhere cannot verify it, and relay passwords would be exposed to whoever can \
                         intercept them. Set [relay] tls_cert and tls_key to a certificate for this host's name"
                    ),
                ));
            }
        }
        let mut listeners = Vec::new();
        for a in &addrs {
            let l = TcpListener::bind(a).await.map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
                    format!(
                        " (another relay, or another program, is listening there: stop it or choose another {})",
                        say_setting(Setting::Listen)
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
                    format!("cannot listen on {a}: {e}{hint}"),
                )
                .with_finding(finding)
            })?;
            listeners.push(l);
        }
        let command_timeout = match &rc.command_timeout {
            Some(t) => humantime::parse_duration(t).map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("[relay] command_timeout = \"{t}\" is not a duration like \"5m\": {e}"),
                )
            })?,
            None => Duration::from_secs(300),
        };
        let hostname = gethostname::gethostname()
            .into_string()
            .ok()
            .filter(|h| !h.is_empty() && h.is_ascii())
            .unwrap_or_else(|| "localhost".into());
        let ctx = Ctx {
            max_message_size: rc.max_message_size.unwrap_or(35_882_577),
            max_recipients: rc.max_recipients.unwrap_or(100),
            config: std::sync::RwLock::new(Arc::new(config)),
            outbox,
            wake: o.wake,
            tls: Some(tls),
            hostname,
            command_timeout,
        };
        Ok(Relay {
            listeners,
            ctx: Arc::new(ctx),
        })
    }

    /// A handle to replace the relay's configuration while it serves.
    pub fn config_handle(&self) -> RelayConfig {
        RelayConfig(self.ctx.clone())
    }

    /// The bound addresses (useful with port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// Serve until `shutdown` turns true; then stop accepting, let
    /// transactions in progress finish (up to 30 seconds) and return.
    /// A message is acknowledged only once stored, so a stop at any moment
    /// loses nothing that a client was told was accepted.
    pub async fn serve(self, shutdown: watch::Receiver<bool>) -> Result<()> {
        let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let mut tasks = tokio::task::JoinSet::new();
        for l in self.listeners {
            let ctx = self.ctx.clone();
            tasks.spawn(accept_loop(
                l,
                limit.clone(),
                shutdown.clone(),
                DRAIN,
                "relay",
                move |stream, peer, shutdown| conn::serve(stream, peer, ctx.clone(), shutdown),
            ));
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

/// Replaces a serving relay's configuration (see [`Relay::config_handle`]).
#[derive(Clone)]
pub struct RelayConfig(Arc<Ctx>);

impl RelayConfig {
    /// Route with `config` from the next transaction on (accounts, relay
    /// users, `fallback_account`). Refused, the old one kept, when its
    /// routing does not hold together. What is bound at start (`listen`,
    /// the TLS certificate, size limits, timeouts) changes only with a
    /// restart: the returned list names those that differ.
    pub fn set(&self, config: Config) -> Result<Vec<&'static str>> {
        check_routing(&config)?;
        let mut lock = self.0.config.write().expect("relay config lock");
        let (old, new) = (&lock.relay, &config.relay);
        let mut restart = Vec::new();
        if old.listen != new.listen {
            restart.push("listen");
        }
        if old.tls_cert != new.tls_cert || old.tls_key != new.tls_key {
            restart.push("tls_cert/tls_key");
        }
        if old.max_message_size != new.max_message_size || old.max_recipients != new.max_recipients
        {
            restart.push("max_message_size/max_recipients");
        }
        if old.command_timeout != new.command_timeout {
            restart.push("command_timeout");
        }
        *lock = Arc::new(config);
        Ok(restart)
    }
}

/// The accounts that `[relay]` routes to exist.
fn check_routing(config: &Config) -> Result<()> {
    let rc = &config.relay;
    if let Some(f) = &rc.fallback_account
        && !config.accounts.contains_key(f)
    {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "[relay] fallback_account = \"{f}\" is not an account (accounts: {})",
                config.account_names()
            ),
        ));
    }
    for u in &rc.users {
        if !config.accounts.contains_key(&u.account) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "relay user '{}' sends through account '{}', which does not exist (accounts: {})",
                    u.username,
                    u.account,
                    config.account_names()
                ),
            ));
        }
    }
    Ok(())
}

/// The addresses of `IP:PORT`, or of `HOST:PORT` (`localhost:1587`: every
/// address the name resolves to; whether each may be listened on without
/// relay users is decided after, address by address).
async fn listen_addresses(a: &str) -> Result<Vec<SocketAddr>> {
    if let Ok(addr) = a.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    let bad = |why: String| {
        Error::new(
            ErrorKind::Usage,
            format!(
                "'{a}' is not an address to listen on ({why}): give IP:PORT or HOST:PORT, e.g. \
                 127.0.0.1:1587, [::1]:1587 or localhost:1587"
            ),
        )
    };
    let Some((_, port)) = a.rsplit_once(':') else {
        return Err(bad("no port".into()));
    };
    if port.parse::<u16>().is_err() {
        return Err(bad(format!("'{port}' is not a port")));
    }
    let found: Vec<SocketAddr> = tokio::net::lookup_host(a)
        .await
        .map_err(|e| bad(format!("the name does not resolve: {e}")))?
        .collect();
    if found.is_empty() {
        return Err(bad("the name resolves to no address".into()));
    }
    Ok(found)
}

#[cfg(test)]
mod open_relay_tests {
    use super::*;

    #[test]
    fn only_loopback_clients_may_skip_auth_and_tls() {
        for ip in ["127.0.0.1", "::1", "::ffff:127.0.0.1", "127.8.9.10"] {
            let c = session_config("h", 1000, 10, true, ip.parse().unwrap());
            assert!(
                !c.require_auth && !c.require_tls && !c.auth_requires_tls,
                "{ip}"
            );
        }
        for ip in [
            "192.0.2.1",
            "10.0.0.1",
            "2001:db8::1",
            "::ffff:192.0.2.1",
            "0.0.0.0",
        ] {
            let c = session_config("h", 1000, 10, true, ip.parse().unwrap());
            assert!(
                c.require_auth && c.require_tls && c.auth_requires_tls,
                "{ip}"
            );
        }
        assert!(!session_config("h", 1, 1, true, "127.0.0.1".parse().unwrap()).binarymime);
    }
}
