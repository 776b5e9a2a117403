//! OAuth 2.0 token requests under concurrent sends, against postie's sandbox provider in this
//! process. The account's token endpoint is a counting forwarder in front of the sandbox's, so
//! the count is taken on the wire, not from postie's own report (which is printed beside it).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use postie::config::Config;
use postie::mailer::{Account, Mailer, Status};
use postie::message::{Draft, OutgoingMessage};
use postie::secret::{SecretStore, Secrets};
use postie_sandbox::{DEFAULT_USER, Sandbox, SandboxConfig};

use crate::proxy::{self, Counter};

const ACCOUNT: &str = "work";

pub async fn run(sends: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut cfg = SandboxConfig::new(dir.path().join("sandbox"));
    cfg.use_free_ports();
    cfg.daily_limit = 1_000_000;
    let sandbox = Sandbox::start(cfg).await?;

    let http: SocketAddr = sandbox
        .issuer()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .context("the sandbox's issuer is not http://IP:PORT")?;
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Counter {
        pattern: b"POST /token".to_vec(),
        hits: hits.clone(),
    };
    let via = proxy::spawn(http, Duration::ZERO, Some(counter))?;

    let mut acct = sandbox.oauth_account(DEFAULT_USER);
    if let Some(o) = acct.oauth.as_mut() {
        o.token_endpoint = Some(format!("http://{via}/token"));
    }
    let mut config = Config::default();
    config.accounts.insert(ACCOUNT.into(), acct);
    let secrets = Secrets::from(SecretStore::file(
        dir.path().join("secrets.enc"),
        Box::new(|| Ok("bench passphrase".into())),
    ));
    sandbox
        .sign_in(DEFAULT_USER)
        .save(&secrets, ACCOUNT)
        .await?;
    let mailer = Mailer::new(config, dir.path().join("data"), secrets.clone());
    let msg = Draft {
        from: DEFAULT_USER.into(),
        to: vec!["bob@example.test".into()],
        subject: Some("token bench".into()),
        text: Some("one of many".into()),
        ..Draft::default()
    }
    .build()?;

    let account = mailer.account(Some(ACCOUNT))?;
    let before = hits.load(Ordering::SeqCst);
    let (sent, refreshed) = burst(&mailer, &account, &msg, sends).await?;
    report(
        "cached",
        sends,
        sent,
        refreshed,
        hits.load(Ordering::SeqCst) - before,
    );

    // Known to be expired: stored with an expiry in the past, read by a mailer with an empty
    // token cache (as a new `postie` process would).
    let mut tokens = sandbox.sign_in(DEFAULT_USER);
    tokens.expires_at = Some(SystemTime::now() - Duration::from_secs(60));
    tokens.save(&secrets, ACCOUNT).await?;
    let fresh = mailer.with_config(mailer.config().clone());
    let account = fresh.account(Some(ACCOUNT))?;
    let before = hits.load(Ordering::SeqCst);
    let (sent, refreshed) = burst(&fresh, &account, &msg, sends).await?;
    report(
        "expired",
        sends,
        sent,
        refreshed,
        hits.load(Ordering::SeqCst) - before,
    );

    // Ended early by the provider while postie still holds it as valid: every connection's
    // AUTH is refused, then postie refreshes.
    sandbox.expire_access_tokens(DEFAULT_USER);
    let before = hits.load(Ordering::SeqCst);
    let (sent, refreshed) = burst(&fresh, &account, &msg, sends).await?;
    report(
        "revoked",
        sends,
        sent,
        refreshed,
        hits.load(Ordering::SeqCst) - before,
    );

    sandbox.shutdown().await;
    Ok(())
}

async fn burst(
    mailer: &Mailer,
    account: &Account,
    msg: &OutgoingMessage,
    n: usize,
) -> anyhow::Result<(usize, usize)> {
    let mut tasks = Vec::new();
    for _ in 0..n {
        let (mailer, account, msg) = (mailer.clone(), account.clone(), msg.clone());
        tasks.push(tokio::spawn(
            async move { mailer.send(&account, &msg).await },
        ));
    }
    let (mut sent, mut refreshed) = (0, 0);
    for t in tasks {
        match t.await? {
            Ok(r) => {
                sent += usize::from(r.status == Status::Sent);
                refreshed += usize::from(r.token_refreshed);
            }
            Err(e) => eprintln!("oauth bench: a send failed: {}", e.message()),
        }
    }
    Ok((sent, refreshed))
}

fn report(case: &str, sends: usize, sent: usize, refreshed: usize, requests: u64) {
    println!(
        "{{\"case\":\"{case}\",\"sends\":{sends},\"sent\":{sent},\"token_requests\":{requests},\"reports_refreshed\":{refreshed}}}"
    );
}
