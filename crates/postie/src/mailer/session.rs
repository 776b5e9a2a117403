//! [`Session`]: several messages through one account on one connection.

use std::sync::Arc;

use postie_proto::capability::Capabilities;
use postie_proto::error::Stage;
use postie_proto::sasl::{Credentials, Mechanism};

use super::{Account, Mailer, SendReport};
use crate::api::Api;
use crate::config::Transport;
use crate::error::{Error, Result};
use crate::message::OutgoingMessage;
use crate::provider::TlsMode;
use crate::transport::{ConnectOptions, Connection, TlsInfo};

/// Sends messages through one account over one authenticated connection,
/// opened at the first message and kept between messages.
///
/// When the server has closed the connection while it was idle (servers
/// drop idle clients after a few minutes), the next message goes out on a
/// new connection, but only when the old one failed before the server
/// answered MAIL: after that point the server may have taken the message,
/// and sending it again could deliver it twice. Such failures are returned,
/// for the caller's retry rules to decide.
///
/// An OAuth access token that the server refuses at AUTH is refreshed once
/// and AUTH is tried again on a new connection; a second refusal is the
/// error.
pub struct Session {
    mailer: Mailer,
    account: Arc<Account>,
    conn: Option<Connection>,
    /// The HTTPS API this session sends through, when the account's first
    /// transport is one, or SMTP could not connect and one comes next.
    api: Option<(Transport, Api)>,
    /// The token was refreshed after a refusal since the last report.
    refreshed: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("account", &self.account.label())
            .field("connected", &self.conn.is_some())
            .finish()
    }
}

impl Session {
    pub(super) fn new(mailer: Mailer, account: Arc<Account>) -> Session {
        Session {
            mailer,
            account,
            conn: None,
            api: None,
            refreshed: false,
        }
    }

    /// The API client of transport `t`, made now (an account that cannot
    /// use it is a configuration error that says why).
    fn api_for(&self, t: Transport) -> Result<Api> {
        if !self.account.is_oauth() {
            return Err(Error::new(
                crate::error::ErrorKind::Config,
                format!(
                    "{}: transport = \"{t}\" sends with an OAuth access token, and the account \
                     has no OAuth sign-in: set auth = \"oauth\" (add the account again with \
                     --auth oauth --transport {t}), or use transport = \"smtp\"",
                    self.account.label()
                ),
            ));
        }
        Api::new(t, self.account.api_url.as_deref())
    }

    /// The transport this session sends through now: an API client, or
    /// `None` for SMTP.
    fn api(&mut self) -> Result<Option<&(Transport, Api)>> {
        if self.api.is_none() {
            let first = self.account.transports.first();
            if first != Transport::Smtp {
                self.api = Some((first, self.api_for(first)?));
            }
        }
        Ok(self.api.as_ref())
    }

    /// After SMTP could not connect (nothing was sent): the next transport
    /// of the account's list, if it is an API.
    fn fall_back(&mut self, e: &Error) -> Option<Transport> {
        if e.kind() != crate::error::ErrorKind::Unavailable || self.api.is_some() {
            return None;
        }
        let list = self.account.transports.list();
        let next = list
            .iter()
            .skip_while(|t| **t == Transport::Smtp)
            .copied()
            .next()?;
        let api = self.api_for(next).ok()?;
        tracing::warn!(
            "{}: SMTP cannot connect ({}); sending through the {} instead",
            self.account.label(),
            e.message(),
            api.service()
        );
        self.mailer.note(&format!(
            "SMTP cannot connect ({}): sending through the {} (transport = \"{next}\")",
            e.message(),
            api.service()
        ));
        self.api = Some((next, api));
        Some(next)
    }

    /// Send through the API: the account's access token, refreshed once
    /// when the service refuses it.
    async fn send_api(&mut self, msg: &OutgoingMessage) -> Result<SendReport> {
        let (transport, api) = self.api.clone().expect("an API chosen before sending");
        let mut refresh = false;
        loop {
            let (token, _) = self.mailer.access_token(&self.account, refresh).await?;
            match api.send(&token, msg).await {
                Err(e)
                    if !refresh
                        && matches!(
                            e.finding(),
                            Some("api-gmail-unauthenticated" | "api-graph-unauthenticated")
                        ) =>
                {
                    tracing::info!(
                        "{}: the {} refused the access token; refreshing it once",
                        self.account.label(),
                        api.service()
                    );
                    refresh = true;
                    self.refreshed = true;
                }
                Err(e) => return Err(e),
                Ok(ok) => {
                    let mut report = SendReport::accepted_by_api(
                        transport,
                        api.server(),
                        api.tls(),
                        msg,
                        ok.status,
                        ok.id.as_deref(),
                    );
                    report.token_refreshed = std::mem::take(&mut self.refreshed);
                    return Ok(report);
                }
            }
        }
    }

    /// The mailer it sends through.
    pub fn mailer(&self) -> &Mailer {
        &self.mailer
    }

    /// The account it sends through.
    pub fn account(&self) -> &Account {
        &self.account
    }

    /// True while a connection is open and can take another message (an
    /// HTTPS API is always ready once chosen).
    pub fn is_connected(&self) -> bool {
        self.api.is_some() || self.conn.as_ref().is_some_and(Connection::is_reusable)
    }

    /// The SASL mechanism the open connection authenticated with.
    pub fn mechanism(&self) -> Option<&Mechanism> {
        self.conn.as_ref().and_then(Connection::mechanism)
    }

    /// TLS details of the open connection.
    pub fn tls_info(&self) -> Option<&TlsInfo> {
        self.conn.as_ref().and_then(Connection::tls_info)
    }

    /// The server's offer after its last EHLO.
    pub fn capabilities(&self) -> Option<&Capabilities> {
        self.conn.as_ref().and_then(Connection::capabilities)
    }

    /// Open the connection now (it is otherwise opened by the first
    /// message): connect, TLS, EHLO, AUTH with the account's credentials.
    pub async fn connect(&mut self) -> Result<()> {
        if self.api()?.is_some() {
            // Nothing to open: the token is what can fail, so get it now.
            self.mailer.access_token(&self.account, false).await?;
            return Ok(());
        }
        if self.is_connected() {
            return Ok(());
        }
        self.drop_connection();
        let mut refresh = false;
        loop {
            let creds = self.mailer.credentials(&self.account, refresh).await?;
            match self.open(creds).await {
                Err(e)
                    if self.account.is_oauth()
                        && !refresh
                        && e.is_auth()
                        && e.stage() == Some(Stage::Auth) =>
                {
                    // The server knows better than the token's expiry time
                    // (revoked, or expired early): one new token, one retry.
                    tracing::info!(
                        "{}: the server refused the access token; refreshing it once",
                        self.account.label()
                    );
                    self.mailer.note(
                        "the server refused the access token: refreshing it once and retrying",
                    );
                    refresh = true;
                    self.refreshed = true;
                }
                Err(e) => return Err(e),
                Ok(conn) => {
                    self.conn = Some(conn);
                    return Ok(());
                }
            }
        }
    }

    /// Open the connection and authenticate with exactly `credentials`
    /// (`None`: no AUTH): no refresh, no retry. For checks that must see
    /// how the server answers these credentials (`postie doctor`).
    pub async fn connect_with(&mut self, credentials: Option<Credentials>) -> Result<()> {
        self.drop_connection();
        self.conn = Some(self.open(credentials).await?);
        Ok(())
    }

    /// Send one message. A refused recipient is in the report. An error
    /// closes the connection, unless the message was refused before any of
    /// it left (too large for the server's SIZE, ...): the next message
    /// goes on the same connection.
    pub async fn send(&mut self, msg: &OutgoingMessage) -> Result<SendReport> {
        if self.api()?.is_some() {
            return self.send_api(msg).await;
        }
        let reused = self.is_connected();
        if !reused && let Err(e) = self.connect().await {
            return match self.fall_back(&e) {
                Some(_) => self.send_api(msg).await,
                None => Err(e),
            };
        }
        let result = match self.transaction(msg).await {
            Err(e)
                if reused
                    && e.is_transient()
                    && matches!(e.stage(), Some(Stage::Idle | Stage::Mail)) =>
            {
                // The idle connection was gone before the server took any
                // part of this message: a new one may send it.
                tracing::debug!(
                    "{}: the open connection failed ({}); reconnecting",
                    self.account.label(),
                    e.message()
                );
                self.drop_connection();
                self.connect().await?;
                self.transaction(msg).await
            }
            other => other,
        };
        // A message refused before any of it left keeps a good connection
        // for the next one.
        if result.is_err() && !self.conn.as_ref().is_some_and(Connection::is_reusable) {
            self.drop_connection();
        }
        result
    }

    /// Send several messages on this session's connection, each result
    /// handed to `each` with the message's index as soon as it is known, in
    /// order. Where the server pipelines, each message costs one round trip:
    /// with DATA its envelope leaves with the previous body's `.`, with
    /// CHUNKING the whole message is one flight (see
    /// [`Connection::send_many`]).
    ///
    /// A failure belongs to one message, the one whose reply was awaited;
    /// the messages after it go on over a new connection (none of their
    /// bodies had left). When no connection can be opened, the first
    /// message left gets that error and the rest are reported not sent.
    /// As with [`Session::send`], an idle connection found closed before
    /// the server took anything is replaced once, silently.
    pub async fn send_many(
        &mut self,
        msgs: &[&OutgoingMessage],
        mut each: impl FnMut(usize, Result<SendReport>) + Send,
    ) {
        // An API (or an account that cannot use its own): one after another.
        if !matches!(self.api(), Ok(None)) {
            for (i, m) in msgs.iter().enumerate() {
                each(i, self.send(m).await);
            }
            return;
        }
        let mut from = 0;
        let mut may_retry = true;
        while from < msgs.len() {
            let reused = self.is_connected();
            if !reused && let Err(e) = self.connect().await {
                if self.fall_back(&e).is_some() {
                    for (i, m) in msgs.iter().enumerate().skip(from) {
                        each(i, self.send_api(m).await);
                    }
                    return;
                }
                let why = format!(
                    "not sent: no connection to {} ({})",
                    self.account.endpoint.authority(),
                    e.message()
                );
                let kind = e.kind();
                each(from, Err(e));
                for i in from + 1..msgs.len() {
                    each(i, Err(Error::new(kind, why.clone())));
                }
                return;
            }
            let conn = self.conn.as_mut().expect("connected before a transaction");
            let endpoint = &self.account.endpoint;
            let tls = conn.tls_info().cloned();
            let auth = conn.mechanism().map(|m| m.to_string());
            let mut refreshed = std::mem::take(&mut self.refreshed);
            let mut reported = 0;
            let r = conn
                .send_many(&msgs[from..], &mut |i, result| {
                    let msg = msgs[from + i];
                    let mut report =
                        SendReport::build(endpoint, tls.clone(), auth.clone(), msg, result);
                    report.token_refreshed = std::mem::take(&mut refreshed);
                    each(from + i, Ok(report));
                    reported += 1;
                })
                .await;
            from += reported;
            let Err(e) = r else { return };
            self.drop_connection();
            if reused
                && reported == 0
                && may_retry
                && e.is_transient()
                && matches!(e.stage(), Some(Stage::Idle | Stage::Mail))
            {
                tracing::debug!(
                    "{}: the open connection failed ({}); reconnecting",
                    self.account.label(),
                    e.message()
                );
            } else {
                each(from, Err(e));
                from += 1;
            }
            may_retry = false;
        }
    }

    async fn transaction(&mut self, msg: &OutgoingMessage) -> Result<SendReport> {
        let conn = self.conn.as_mut().expect("connected before a transaction");
        let r = conn.send(msg).await?;
        let mut report = SendReport::new(&self.account.endpoint, conn, msg, r);
        report.token_refreshed = std::mem::take(&mut self.refreshed);
        Ok(report)
    }

    /// Send one message and close: a one-shot send, whose QUIT leaves with
    /// the body instead of costing a round trip of its own. On a reused
    /// connection that turns out closed, it reconnects as [`Session::send`].
    pub async fn send_last(mut self, msg: &OutgoingMessage) -> Result<SendReport> {
        if self.is_connected() || !matches!(self.api(), Ok(None)) {
            // An open connection may be stale: the reconnect logic of
            // `send` applies, then the goodbye is a separate QUIT.
            let report = self.send(msg).await;
            self.close().await;
            return report;
        }
        if let Err(e) = self.connect().await {
            return match self.fall_back(&e) {
                Some(_) => self.send_api(msg).await,
                None => Err(e),
            };
        }
        let conn = self.conn.take().expect("connected just now");
        let endpoint = self.account.endpoint.clone();
        let tls_info = conn.tls_info().cloned();
        let auth = conn.mechanism().map(|m| m.to_string());
        let r = conn.send_and_quit(msg).await?;
        let mut report = SendReport::build(&endpoint, tls_info, auth, msg, r);
        report.token_refreshed = std::mem::take(&mut self.refreshed);
        Ok(report)
    }

    /// RSET: the connection is then as after AUTH.
    pub async fn reset(&mut self) -> Result<()> {
        match self.conn.as_mut() {
            Some(c) => c.reset().await,
            None => Ok(()),
        }
    }

    /// Say QUIT and close the connection, if one is open.
    pub async fn close(mut self) {
        if let Some(c) = self.conn.take() {
            c.quit().await;
        }
    }

    /// Forget a connection that cannot be used (closing its socket).
    fn drop_connection(&mut self) {
        self.conn = None;
    }

    async fn open(&self, credentials: Option<Credentials>) -> Result<Connection> {
        let opts = self.mailer.options();
        let ep = &self.account.endpoint;
        let mut o = ConnectOptions::new(ep.clone());
        o.credentials = credentials;
        o.mechanism = self.account.mechanism.clone();
        o.ehlo_name = opts.ehlo_name.clone();
        o.transcript = opts.transcript.clone();
        o.timeouts = self.account.timeouts.unwrap_or(opts.timeouts);
        o.show_body = opts.show_body;
        o.progress = opts.progress.clone();
        if ep.tls != TlsMode::None {
            o.tls_config = Some(self.mailer.tls_config(ep.ca_file.as_deref()).await?);
        }
        Connection::connect(o).await
    }
}
