//! One client connection: the relay's decisions for the shared SMTP server
//! driver ([`postie_server`]): who may log in, which
//! account a sender maps to, and 250 only after the message is committed.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use postie_proto::reply::Reply;
use postie_proto::server::{
    AuthIdentity, AuthOutcome, AuthRequest, DataSummary, MailRequest, RcptRequest, ServerSession,
};
use tokio::net::TcpStream;
use tokio::sync::watch;

use postie::blocking::{discard, unblock};
use postie::error::{Error, ErrorKind, Result};
use postie::wording::{Action, say};

use super::Ctx;
use super::route;
use crate::outbox::{NewMessage, Outbox, Spool};
use postie::message::{HeadSummary, complete_headers};
use postie_server::{ConnSettings, Host, Io, drive};

/// The head of a message kept in memory to read `From:` and `Subject:`.
const HEAD_MAX: usize = 64 * 1024;

/// How much of a message is gathered in memory before it is written to its
/// spool file, on a blocking thread.
const WRITE_AT: usize = 128 * 1024;

/// The transaction being received.
struct Txn {
    /// The account chosen at MAIL, or `None` until the `From:` header decides.
    account: Option<String>,
    /// The client's envelope sender (`None` for `<>`).
    sender: Option<String>,
    smtputf8: bool,
    recipients: Vec<String>,
    spool: Option<Spool>,
    /// Received, not yet written to the spool.
    pending: Vec<u8>,
    /// Why the message cannot be accepted (no header section, no From),
    /// once that is known; the rest of its data is dropped.
    refused: Option<String>,
    head: Vec<u8>,
    /// A write to the spool failed: the message is refused at its end.
    spool_error: Option<String>,
}

/// Serve one client until it quits, the connection drops, or shutdown.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    shutdown: watch::Receiver<bool>,
) {
    let session = ServerSession::new(ctx.server_config(&peer), false);
    let settings = ConnSettings {
        tls: ctx.tls.clone(),
        command_timeout: ctx.command_timeout,
        name: "relay",
    };
    let mut host = RelayConn {
        ctx,
        txn: None,
        login_account: None,
    };
    drive(
        Io::Plain(stream),
        peer,
        session,
        &mut host,
        &settings,
        shutdown,
    )
    .await;
}

/// The relay's decisions for one connection.
struct RelayConn {
    ctx: Arc<Ctx>,
    txn: Option<Txn>,
    /// The account of the relay user this client logged in as.
    login_account: Option<String>,
}

impl Drop for RelayConn {
    fn drop(&mut self) {
        // A connection gone mid-message: its spool is removed off this thread.
        discard(self.txn.take());
    }
}

impl Host for RelayConn {
    async fn auth(&mut self, req: AuthRequest) -> AuthOutcome {
        let ctx = &self.ctx;
        match req.identity {
            AuthIdentity::Password {
                username, password, ..
            } => {
                let relay = ctx.config().relay.clone();
                let u = username.clone();
                // Argon2 is deliberately slow: off the async threads.
                let found = unblock(move || {
                    Ok(super::users::verify(&relay, &u, &password).map(|x| x.account.clone()))
                })
                .await
                .ok()
                .flatten();
                match found {
                    Some(account) => {
                        self.login_account = Some(account);
                        AuthOutcome::Accepted(Reply::new(235, "2.7.0 Authentication successful"))
                    }
                    None => AuthOutcome::Rejected(auth_refusal(ctx)),
                }
            }
            AuthIdentity::Bearer { .. } => AuthOutcome::Rejected(Reply::new(
                504,
                "5.5.4 postie relay takes no OAuth tokens: it holds the account's tokens itself. \
                 Log in with a relay user, or do not log in at all from this machine",
            )),
        }
    }

    async fn mail(&mut self, req: MailRequest) -> Reply {
        let ctx = &self.ctx;
        let sender = req.reverse_path.as_ref().map(|a| a.to_string());
        if ctx.config().accounts.is_empty() {
            return Reply::new(
                550,
                &format!(
                    "5.7.1 postie relay has no account to send through: add one ({})",
                    say(&Action::AddAccount {
                        account: None,
                        provider: None
                    })
                ),
            );
        }
        let account = match (&self.login_account, sender.as_deref()) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(s)) => match ctx.config().account_for_address(s) {
                Ok(a) => a.map(str::to_string),
                Err(e) => return ambiguous(&e),
            },
            (None, None) => None,
        };
        self.txn = Some(Txn {
            account,
            sender,
            smtputf8: req.smtputf8,
            recipients: Vec::new(),
            spool: None,
            pending: Vec::new(),
            refused: None,
            head: Vec::new(),
            spool_error: None,
        });
        Reply::new(250, "2.1.0 Sender OK")
    }

    fn rcpt(&mut self, req: RcptRequest) -> Reply {
        if let Some(t) = self.txn.as_mut() {
            t.recipients.push(req.forward_path.to_string());
        }
        Reply::new(250, "2.1.5 Recipient OK")
    }

    async fn data(&mut self, bytes: &[u8]) {
        if let Some(t) = self.txn.as_mut() {
            receive(&self.ctx, t, bytes).await;
        }
    }

    async fn data_end(&mut self, summary: DataSummary) -> Reply {
        match self.txn.take() {
            Some(t) => finish(&self.ctx, t, summary.eight_bit).await,
            None => Reply::new(503, "5.5.1 No transaction in progress"),
        }
    }

    fn reset(&mut self) {
        // The spool of an unfinished message is removed with the transaction.
        discard(self.txn.take());
    }

    fn tls_started(&mut self) {
        discard(self.txn.take());
        self.login_account = None;
    }
}

/// Several accounts share the sender's address and none is the default:
/// refused rather than sent through whichever sorts first.
fn ambiguous(e: &Error) -> Reply {
    Reply::new(550, &format!("5.7.1 postie relay: {}", e.message()))
}

fn auth_refusal(ctx: &Ctx) -> Reply {
    // The same text for an unknown user and a wrong password: a client
    // beyond loopback must not learn which relay users exist.
    let add = say(&Action::AddRelayUser {
        user: None,
        account: None,
    });
    let text = if ctx.config().relay.users.is_empty() {
        format!(
            "5.7.8 No relay users are configured, so no login can succeed. Clients on this machine \
             need no login at all; or add one: {add}"
        )
    } else {
        format!(
            "5.7.8 Username and Password not accepted by postie relay: check the relay user and \
             its password ({}; {add} sets it)",
            say(&Action::ListRelayUsers)
        )
    };
    Reply::new(535, &text)
}

/// Keep what arrived; write it to the spool (made at the first write) once
/// enough has gathered.
async fn receive(ctx: &Ctx, t: &mut Txn, bytes: &[u8]) {
    if t.spool_error.is_some() {
        return;
    }
    if t.head.len() < HEAD_MAX {
        let take = (HEAD_MAX - t.head.len()).min(bytes.len());
        t.head.extend_from_slice(&bytes[..take]);
    }
    t.pending.extend_from_slice(bytes);
    if t.pending.len() < WRITE_AT || t.refused.is_some() {
        return;
    }
    if t.spool.is_none() {
        // Before the first byte is written: what the header section lacks
        // goes first, and a message that cannot be sent is not stored.
        match complete_headers(&t.head) {
            Ok(lines) => t.pending.splice(0..0, lines).for_each(drop),
            Err(e) => {
                t.refused = Some(e.message().to_string());
                t.pending.clear();
                return;
            }
        }
    }
    let (outbox, spool, pending) = (
        ctx.outbox.clone(),
        t.spool.take(),
        std::mem::take(&mut t.pending),
    );
    match unblock(move || write_spool(&outbox, spool, &pending)).await {
        Ok(s) => t.spool = Some(s),
        Err(e) => t.spool_error = Some(e.message().to_string()),
    }
}

/// Append `bytes` to `spool`, or to a new one.
fn write_spool(outbox: &Outbox, spool: Option<Spool>, bytes: &[u8]) -> Result<Spool> {
    let mut s = match spool {
        Some(s) => s,
        None => outbox.spool()?,
    };
    s.write_all(bytes).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot write a message to the outbox: {e}"),
        )
    })?;
    Ok(s)
}

/// Route, commit durably, and only then say 250.
async fn finish(ctx: &Arc<Ctx>, mut t: Txn, eight_bit: bool) -> Reply {
    // A refused message's spool is removed off this thread.
    let (spool, pending) = (t.spool.take(), std::mem::take(&mut t.pending));
    // A small message is still all in memory: complete or refuse it now.
    let mut pending = pending;
    if spool.is_none() && t.refused.is_none() {
        match complete_headers(&t.head) {
            Ok(lines) => pending.splice(0..0, lines).for_each(drop),
            Err(e) => t.refused = Some(e.message().to_string()),
        }
    }
    if let Some(why) = &t.refused {
        discard(spool);
        return Reply::new(
            550,
            &format!("5.6.0 postie relay refuses the message: {why}"),
        );
    }
    if let Some(e) = &t.spool_error {
        discard(spool);
        tracing::error!("relay: cannot spool a message: {e}");
        return Reply::new(
            452,
            "4.3.1 postie relay cannot store the message right now (local disk); nothing was accepted, try again later",
        );
    }
    let head = HeadSummary::parse(&t.head);
    let by_header = match (&t.account, head.from.as_deref()) {
        (None, Some(f)) => match ctx.config().account_for_address(f) {
            Ok(a) => a.map(str::to_string),
            Err(e) => {
                discard(spool);
                return ambiguous(&e);
            }
        },
        _ => None,
    };
    let account = t
        .account
        .clone()
        .or(by_header)
        .or_else(|| ctx.config().relay.fallback_account.clone());
    let Some(account) = account else {
        discard(spool);
        return Reply::new(
            550,
            &route::no_account_text(&ctx.config(), t.sender.as_deref().or(head.from.as_deref())),
        );
    };
    // The rest of the body (or an empty one: still a message) is written
    // with the commit, on one blocking call.
    let meta = NewMessage {
        mail_from: Some(route::upstream_sender(
            &ctx.config(),
            &account,
            t.sender.as_deref(),
        )),
        account,
        recipients: std::mem::take(&mut t.recipients),
        eight_bit,
        smtputf8: t.smtputf8,
        message_id: head.message_id,
        subject: head.subject,
        source: "relay".into(),
        batch: None,
    };
    let outbox = ctx.outbox.clone();
    // fsync is slow; keep it off the async threads. A message still all in
    // memory and small goes into its row: no file to create and sync.
    let store = move || match spool {
        None if pending.len() <= Outbox::INLINE_MAX => outbox.commit_row(pending, meta),
        spool => outbox.commit(write_spool(&outbox, spool, &pending)?, meta),
    };
    match unblock(store).await {
        Ok(id) => {
            ctx.wake.notify_one();
            Reply::new(250, &format!("2.0.0 Ok: queued as {id}"))
        }
        Err(e) => {
            tracing::error!("relay: cannot commit a message: {}", e.message());
            Reply::new(
                452,
                "4.3.1 postie relay cannot store the message right now; nothing was accepted, try again later",
            )
        }
    }
}
