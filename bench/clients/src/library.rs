//! Throughput of the two Rust libraries on reused connections: postie's
//! `Session::send_many` (one session per connection) and lettre's pooled async transport (one
//! pool of `conns` connections shared by `conns` senders). Both are timed like the reference
//! client (see `limit::run`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::PoolConfig;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use postie::config::Config;
use postie::endpoint::Endpoint;
use postie::error::{Error, ErrorKind};
use postie::mailer::{Account, Mailer, Status};
use postie::message::{OutgoingMessage, RawOptions, from_raw};
use postie::provider::TlsMode;
use postie::secret::Secrets;
use tokio::sync::Barrier;

use crate::Run;

/// A mailer with no config file and no secret store, and a one-off account for a plain-text
/// server on loopback without AUTH (allowed by `Endpoint::check_plaintext`).
pub fn postie_setup(addr: SocketAddr, data_dir: PathBuf) -> (Mailer, Account) {
    let mailer = Mailer::new(
        Config::default(),
        data_dir,
        Secrets::lazy(|| {
            Err(Error::new(
                ErrorKind::Secret,
                "the bench uses no secret store",
            ))
        }),
    );
    let account = Account::from_endpoint(Endpoint {
        host: addr.ip().to_string(),
        port: addr.port(),
        tls: TlsMode::None,
        tls_name: None,
        ca_file: None,
    });
    (mailer, account)
}

pub fn postie_message(raw: &[u8], from: &str, to: &str) -> anyhow::Result<OutgoingMessage> {
    let opts = RawOptions {
        from: Some(from.into()),
        recipients: vec![to.into()],
        ..RawOptions::default()
    };
    Ok(from_raw(raw.to_vec(), &opts)?)
}

pub async fn postie(
    addr: SocketAddr,
    conns: usize,
    count: usize,
    msg: OutgoingMessage,
) -> anyhow::Result<Run> {
    let dir = tempfile::tempdir()?;
    let (mailer, account) = postie_setup(addr, dir.path().to_path_buf());
    let msg = Arc::new(msg);
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut tasks = Vec::new();
    for i in 0..conns {
        let share = count / conns + usize::from(i < count % conns);
        let (msg, barrier) = (msg.clone(), barrier.clone());
        let mut session = mailer.session(&account);
        tasks.push(tokio::spawn(async move {
            let warm = session.send(&msg).await;
            barrier.wait().await;
            warm?;
            // The whole share in one call: each message's envelope can
            // leave with the previous body (one round trip per message).
            let msgs = vec![&*msg; share];
            let mut failure = None;
            session
                .send_many(&msgs, |i, r| match r {
                    Ok(r) if r.status == Status::Sent => {}
                    Ok(r) => failure = Some(format!("message {i} not sent: {:?}", r.status)),
                    Err(e) => failure = Some(format!("message {i}: {e}")),
                })
                .await;
            let done = Instant::now();
            if let Some(f) = failure {
                anyhow::bail!(f);
            }
            session.close().await;
            anyhow::Ok(done)
        }));
    }
    barrier.wait().await;
    let t = Instant::now();
    let mut end = t;
    for task in tasks {
        end = end.max(task.await?.context("postie library")?);
    }
    Ok(Run::new(count, end - t))
}

pub async fn lettre(
    addr: SocketAddr,
    conns: usize,
    count: usize,
    raw: Vec<u8>,
    from: &str,
    to: &str,
) -> anyhow::Result<Run> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
        .port(addr.port())
        .pool_config(PoolConfig::new().max_size(conns as u32))
        .build();
    let envelope = Envelope::new(Some(from.parse()?), vec![to.parse()?])?;
    let raw = Arc::new(raw);
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut tasks = Vec::new();
    for i in 0..conns {
        let share = count / conns + usize::from(i < count % conns);
        let (transport, envelope, raw, barrier) = (
            transport.clone(),
            envelope.clone(),
            raw.clone(),
            barrier.clone(),
        );
        tasks.push(tokio::spawn(async move {
            // one untimed message per sender: the pool opens its connections
            let warm = transport.send_raw(&envelope, &raw).await;
            barrier.wait().await;
            warm?;
            for _ in 0..share {
                transport.send_raw(&envelope, &raw).await?;
            }
            anyhow::Ok(Instant::now())
        }));
    }
    barrier.wait().await;
    let t = Instant::now();
    let mut end = t;
    for task in tasks {
        end = end.max(task.await?.context("lettre")?);
    }
    Ok(Run::new(count, end - t))
}
