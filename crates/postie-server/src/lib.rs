//! The one SMTP server of postie: the sans-IO [`ServerSession`] driven over
//! TCP, TLS after STARTTLS or from the first byte (RFC 8314), with the
//! decisions left to a [`Host`]. The relay and the sandbox are two hosts;
//! neither reads a socket itself.
//!
//! - [`drive`]: one connection, from greeting to QUIT (or timeout, or stop);
//! - [`accept_loop`]: a listener, connections bounded by a semaphore, a
//!   graceful stop that drains with a deadline;
//! - [`LocalCert`]: the certificate of a loopback server, made once.

#![deny(missing_docs)]

mod cert;

pub use cert::LocalCert;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use postie_proto::reply::Reply;
use postie_proto::server::{
    AuthOutcome, AuthRequest, DataSummary, Event, MailRequest, RcptRequest, ServerSession,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// What a server decides for its clients. Each method answers one event of
/// the session; the driver sends the answer.
pub trait Host: Send {
    /// [`Event::Auth`].
    fn auth(&mut self, req: AuthRequest) -> impl Future<Output = AuthOutcome> + Send;
    /// [`Event::MailFrom`].
    fn mail(&mut self, req: MailRequest) -> impl Future<Output = Reply> + Send;
    /// [`Event::RcptTo`].
    fn rcpt(&mut self, req: RcptRequest) -> Reply;
    /// [`Event::Data`]: a piece of the message. A host that writes it
    /// somewhere does so through `postie::blocking`, not on this thread.
    fn data(&mut self, bytes: &[u8]) -> impl Future<Output = ()> + Send;
    /// [`Event::DataEnd`]: commit the message, then say how it went.
    fn data_end(&mut self, summary: DataSummary) -> impl Future<Output = Reply> + Send;
    /// The transaction is gone (RSET, a refused message, a new EHLO).
    fn reset(&mut self);
    /// STARTTLS completed: everything learnt before it is forgotten
    /// (RFC 3207 §4.2).
    fn tls_started(&mut self) {
        self.reset();
    }
}

/// A client connection: plain TCP, or TLS.
pub enum Io {
    /// Plain TCP (before STARTTLS, or a loopback server without TLS).
    Plain(TcpStream),
    /// TLS: after STARTTLS, or from the first byte.
    Tls(Box<TlsStream<TcpStream>>),
    /// Taken apart for the STARTTLS handshake, or closed.
    Gone,
}

impl Io {
    /// TLS from the first byte (port 465); `None` when the handshake fails
    /// or takes longer than `within`.
    pub async fn implicit_tls(
        acceptor: &TlsAcceptor,
        tcp: TcpStream,
        within: Duration,
    ) -> Option<Io> {
        let _ = tcp.set_nodelay(true);
        match tokio::time::timeout(within, acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(Io::Tls(Box::new(tls))),
            _ => None,
        }
    }

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

/// How a connection is served.
pub struct ConnSettings {
    /// For STARTTLS; without it the session must not offer STARTTLS.
    pub tls: Option<TlsAcceptor>,
    /// How long a client may stay silent (RFC 5321 §4.5.3.2), and how long
    /// a TLS handshake may take.
    pub command_timeout: Duration,
    /// Names the server in the debug log.
    pub name: &'static str,
}

/// Serves one client until it quits, the connection drops, or `shutdown`
/// turns true (then the session finishes the message under way and says
/// goodbye).
pub async fn drive<H: Host>(
    mut io: Io,
    peer: SocketAddr,
    mut session: ServerSession,
    host: &mut H,
    settings: &ConnSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    if let Io::Plain(s) = &io {
        let _ = s.set_nodelay(true);
    }
    let mut buf = vec![0u8; 64 * 1024];
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
                    let Some(acceptor) = settings.tls.clone() else {
                        return;
                    };
                    let Io::Plain(tcp) = std::mem::replace(&mut io, Io::Gone) else {
                        return;
                    };
                    match tokio::time::timeout(settings.command_timeout, acceptor.accept(tcp)).await
                    {
                        Ok(Ok(tls)) => {
                            io = Io::Tls(Box::new(tls));
                            session.tls_established();
                        }
                        _ => {
                            tracing::debug!("{}: TLS handshake with {peer} failed", settings.name);
                            return;
                        }
                    }
                    host.tls_started();
                }
                Event::Auth(req) => {
                    let outcome = host.auth(req).await;
                    session.auth_result(outcome);
                }
                Event::MailFrom(req) => {
                    let reply = host.mail(req).await;
                    session.decide(reply);
                }
                Event::RcptTo(req) => {
                    let reply = host.rcpt(req);
                    session.decide(reply);
                }
                Event::Data(bytes) => host.data(&bytes).await,
                Event::DataEnd(summary) => {
                    let reply = host.data_end(summary).await;
                    session.decide(reply);
                    if stopping {
                        session.shutdown();
                    }
                }
                Event::DataRejected(_) | Event::Reset => host.reset(),
                Event::Quit | Event::Helo { .. } => {}
            }
        }
        if progressed {
            continue;
        }
        if session.is_closed() {
            return;
        }
        let read = tokio::select! {
            r = tokio::time::timeout(settings.command_timeout, io.read(&mut buf)) => r,
            _ = shutdown.changed(), if !stopping => {
                stopping = true;
                session.shutdown();
                continue;
            }
        };
        match read {
            Err(_) => session.timeout(),
            // An unfinished message is dropped with the host's transaction.
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => session.handle_input(&buf[..n]),
        }
    }
}

/// Accepts connections on `listener` until `shutdown` turns true, serving
/// each with `serve` while `limit` has a permit; then stops accepting and
/// gives the connections under way `drain` to finish.
pub async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limit: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    drain: Duration,
    name: &'static str,
    serve: F,
) where
    F: Fn(TcpStream, SocketAddr, watch::Receiver<bool>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut conns = tokio::task::JoinSet::new();
    loop {
        if *shutdown.borrow() {
            break;
        }
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            r = shutdown.changed() => if r.is_err() { break } else { continue },
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("{name}: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            r = shutdown.changed() => if r.is_err() { break } else { continue },
        };
        let fut = serve(stream, peer, shutdown.clone());
        conns.spawn(async move {
            fut.await;
            drop(permit);
        });
        while conns.try_join_next().is_some() {}
    }
    drop(listener);
    let _ = tokio::time::timeout(drain, async { while conns.join_next().await.is_some() {} }).await;
    conns.shutdown().await;
}
