//! One client connection: the sans-IO server session driven over TCP (and
//! TLS after STARTTLS), with the relay's decisions: who may log in, which
//! account a sender maps to, and 250 only after the message is committed.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use postie_proto::reply::Reply;
use postie_proto::server::{AuthIdentity, AuthOutcome, Event, ServerSession};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;

use super::Ctx;
use super::route;
use crate::message::HeadSummary;
use crate::outbox::{NewMessage, Spool};

/// The head of a message kept in memory to read `From:` and `Subject:`.
const HEAD_MAX: usize = 64 * 1024;

enum Io {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Gone,
}

impl Io {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Io::Plain(s) => s.read(buf).await,
            Io::Tls(s) => s.read(buf).await,
            Io::Gone => Ok(0),
        }
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Io::Plain(s) => s.write_all(buf).await,
            Io::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Io::Gone => Err(std::io::ErrorKind::NotConnected.into()),
        }
    }
}

/// The transaction being received.
struct Txn {
    /// The account chosen at MAIL, or `None` until the `From:` header decides.
    account: Option<String>,
    /// The client's envelope sender (`None` for `<>`).
    sender: Option<String>,
    smtputf8: bool,
    recipients: Vec<String>,
    spool: Option<Spool>,
    head: Vec<u8>,
    /// A write to the spool failed: the message is refused at its end.
    spool_error: Option<String>,
}

/// Serve one client until it quits, the connection drops, or shutdown.
pub(crate) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let mut session = ServerSession::new(ctx.server_config(&peer), false);
    let mut io = Io::Plain(stream);
    let mut buf = vec![0u8; 64 * 1024];
    let mut txn: Option<Txn> = None;
    // The account of the relay user this client logged in as.
    let mut login_account: Option<String> = None;
    let mut stopping = *shutdown.borrow();
    if stopping {
        session.shutdown();
    }
    loop {
        // Replies first (pipelined replies go out together), then events.
        while let Some(out) = session.poll_transmit() {
            if io.write_all(&out).await.is_err() {
                return;
            }
        }
        let mut progressed = false;
        while let Some(ev) = session.poll_event() {
            progressed = true;
            match ev {
                Event::StartTls => {
                    // The 220 must reach the client before the handshake.
                    while let Some(out) = session.poll_transmit() {
                        if io.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                    let Some(acceptor) = ctx.tls.clone() else {
                        return;
                    };
                    let Io::Plain(tcp) = std::mem::replace(&mut io, Io::Gone) else {
                        return;
                    };
                    match tokio::time::timeout(ctx.command_timeout, acceptor.accept(tcp)).await {
                        Ok(Ok(tls)) => {
                            io = Io::Tls(Box::new(tls));
                            session.tls_established();
                        }
                        _ => {
                            tracing::debug!("relay: TLS handshake with {peer} failed");
                            return;
                        }
                    }
                    txn = None;
                    login_account = None;
                }
                Event::Auth(req) => {
                    let outcome = match req.identity {
                        AuthIdentity::Password {
                            username, password, ..
                        } => {
                            let relay = ctx.config.relay.clone();
                            let u = username.clone();
                            // Argon2 is deliberately slow: off the async threads.
                            let found = tokio::task::spawn_blocking(move || {
                                super::users::verify(&relay, &u, &password)
                                    .map(|x| x.account.clone())
                            })
                            .await
                            .ok()
                            .flatten();
                            match found {
                                Some(account) => {
                                    login_account = Some(account);
                                    AuthOutcome::Accepted(Reply::new(
                                        235,
                                        "2.7.0 Authentication successful",
                                    ))
                                }
                                None => AuthOutcome::Rejected(auth_refusal(&ctx, &username)),
                            }
                        }
                        AuthIdentity::Bearer { .. } => AuthOutcome::Rejected(Reply::new(
                            504,
                            "5.5.4 postie relay takes no OAuth tokens: it holds the account's tokens itself. \
                             Log in with a relay user, or do not log in at all from this machine",
                        )),
                    };
                    session.auth_result(outcome);
                }
                Event::MailFrom(req) => {
                    let sender = req.reverse_path.as_ref().map(|a| a.to_string());
                    let reply = if ctx.config.accounts.is_empty() {
                        Reply::new(
                            550,
                            "5.7.1 postie relay has no account to send through: add one with `postie account add`",
                        )
                    } else {
                        let account = login_account.clone().or_else(|| {
                            sender
                                .as_deref()
                                .and_then(|s| ctx.config.account_for_address(s))
                                .map(str::to_string)
                        });
                        txn = Some(Txn {
                            account,
                            sender,
                            smtputf8: req.smtputf8,
                            recipients: Vec::new(),
                            spool: None,
                            head: Vec::new(),
                            spool_error: None,
                        });
                        Reply::new(250, "2.1.0 Sender OK")
                    };
                    session.decide(reply);
                }
                Event::RcptTo(req) => {
                    if let Some(t) = txn.as_mut() {
                        t.recipients.push(req.forward_path.to_string());
                    }
                    session.decide(Reply::new(250, "2.1.5 Recipient OK"));
                }
                Event::Data(bytes) => {
                    if let Some(t) = txn.as_mut() {
                        spool_write(&ctx, t, &bytes);
                    }
                }
                Event::DataEnd(summary) => {
                    let reply = match txn.take() {
                        Some(t) => finish(&ctx, t, summary.eight_bit).await,
                        None => Reply::new(503, "5.5.1 No transaction in progress"),
                    };
                    session.decide(reply);
                    if stopping {
                        session.shutdown();
                    }
                }
                Event::DataRejected(_) | Event::Reset => txn = None,
                Event::Quit => {}
                Event::Helo { .. } => {}
            }
        }
        if progressed {
            continue;
        }
        if session.is_closed() {
            return;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(ctx.command_timeout, io.read(&mut buf)) => r,
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                session.shutdown();
                continue;
            }
        };
        match read {
            Err(_) => session.timeout(),
            Ok(Ok(0)) | Ok(Err(_)) => return, // the spool of an unfinished message is dropped with txn
            Ok(Ok(n)) => session.handle_input(&buf[..n]),
        }
    }
}

fn auth_refusal(ctx: &Ctx, username: &str) -> Reply {
    let text = if ctx.config.relay.users.is_empty() {
        "5.7.8 No relay users are configured, so no login can succeed. Clients on this machine need \
         no login at all; or add one: postie relay user add USER --account NAME"
            .to_string()
    } else if ctx
        .config
        .relay
        .users
        .iter()
        .any(|u| u.username == username)
    {
        "5.7.8 Username and Password not accepted by postie relay (wrong password for this relay user; \
         set it again with postie relay user add)"
            .to_string()
    } else {
        format!(
            "5.7.8 Username and Password not accepted by postie relay: no relay user '{}'. Add it with: \
             postie relay user add USER --account NAME",
            clean(username)
        )
    };
    Reply::new(535, &text)
}

/// A user name fit to echo in a reply: printable, short.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

fn spool_write(ctx: &Ctx, t: &mut Txn, bytes: &[u8]) {
    if t.spool_error.is_some() {
        return;
    }
    if t.head.len() < HEAD_MAX {
        let take = (HEAD_MAX - t.head.len()).min(bytes.len());
        t.head.extend_from_slice(&bytes[..take]);
    }
    if t.spool.is_none() {
        match ctx.outbox.spool() {
            Ok(s) => t.spool = Some(s),
            Err(e) => {
                t.spool_error = Some(e.message().to_string());
                return;
            }
        }
    }
    if let Some(s) = t.spool.as_mut()
        && let Err(e) = s.write_all(bytes)
    {
        t.spool_error = Some(e.to_string());
    }
}

/// Route, commit durably, and only then say 250.
async fn finish(ctx: &Arc<Ctx>, mut t: Txn, eight_bit: bool) -> Reply {
    if let Some(e) = &t.spool_error {
        tracing::error!("relay: cannot spool a message: {e}");
        return Reply::new(
            452,
            "4.3.1 postie relay cannot store the message right now (local disk); nothing was accepted, try again later",
        );
    }
    let head = HeadSummary::parse(&t.head);
    let account = t
        .account
        .clone()
        .or_else(|| {
            head.from
                .as_deref()
                .and_then(|f| ctx.config.account_for_address(f))
                .map(str::to_string)
        })
        .or_else(|| ctx.config.relay.fallback_account.clone());
    let Some(account) = account else {
        return Reply::new(
            550,
            &route::no_account_text(&ctx.config, t.sender.as_deref().or(head.from.as_deref())),
        );
    };
    let spool = match t.spool.take() {
        Some(s) => s,
        // An empty message: still a message.
        None => match ctx.outbox.spool() {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("relay: cannot spool a message: {}", e.message());
                return Reply::new(
                    452,
                    "4.3.1 postie relay cannot store the message right now; try again later",
                );
            }
        },
    };
    let meta = NewMessage {
        mail_from: Some(route::upstream_sender(
            &ctx.config,
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
    };
    let outbox = ctx.outbox.clone();
    // fsync is slow; keep it off the async threads.
    match tokio::task::spawn_blocking(move || outbox.commit(spool, meta)).await {
        Ok(Ok(id)) => {
            ctx.wake.notify_one();
            Reply::new(250, &format!("2.0.0 Ok: queued as {id}"))
        }
        Ok(Err(e)) => {
            tracing::error!("relay: cannot commit a message: {}", e.message());
            Reply::new(
                452,
                "4.3.1 postie relay cannot store the message right now; nothing was accepted, try again later",
            )
        }
        Err(_) => Reply::new(
            451,
            "4.3.0 postie relay failed while storing the message; try again",
        ),
    }
}
