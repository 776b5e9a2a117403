//! `postie relay` and `postie relay user ...`.

use std::sync::Arc;

use postie::blocking::unblock;
use postie::config::{Config, RelayUser};
use postie::error::{Error, ErrorKind};
use postie_outbox::delivery::{Delivered, Deliverer};
use postie_outbox::relay::{BindOptions, Relay, RelayConfig, users};
use secrecy::SecretString;
use tokio::sync::{Notify, watch};

use super::{Global, interactive, prompt_secret, read_stdin_secret, service};
use crate::cli::{RelayArgs, RelayUserAction, RelayUserCommand};
use crate::output::{self, exit};

/// Run `postie relay`; returns the exit code.
pub async fn run(g: &Global, a: RelayArgs) -> i32 {
    match a.user {
        Some(RelayUserCommand::User { action }) => {
            return match user(g, action) {
                Ok(()) => exit::OK,
                Err(e) => fail(g, &e),
            };
        }
        Some(RelayUserCommand::Service { manager }) => {
            return match super::service::definition(g, manager) {
                Ok(text) => {
                    print!("{text}");
                    exit::OK
                }
                Err(e) => fail(g, &e),
            };
        }
        None => {}
    }
    match serve(g, a).await {
        Ok(()) => exit::OK,
        Err(e) => fail(g, &e),
    }
}

fn fail(g: &Global, e: &Error) -> i32 {
    output::print_error(&g.style, e, &Default::default());
    output::exit_code(e.kind())
}

async fn serve(g: &Global, a: RelayArgs) -> Result<(), Error> {
    let config = Config::load(&g.paths.config_file)?;
    for u in &config.relay.users {
        users::check(u)?;
    }
    let outbox = super::queue::open_outbox(g).await?;
    let wake = Arc::new(Notify::new());
    let relay = Relay::bind(
        config.clone(),
        outbox.clone(),
        BindOptions {
            listen: a.listen.clone(),
            data_dir: &g.paths.data_dir,
            wake: wake.clone(),
        },
    )
    .await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let deliverer = if a.no_deliver {
        None
    } else {
        let style = g.style;
        let progress: postie_outbox::delivery::Progress = Arc::new(move |d: &Delivered| {
            eprintln!("{}", super::queue::progress_line(&style, d));
        });
        // Open the secret store now, when an account needs it: a passphrase
        // is asked while someone is watching, and a store that cannot be
        // opened stops the relay here instead of failing every delivery.
        let d = super::queue::deliverer(g, config.clone(), outbox.clone(), Some(progress), true)
            .await?;
        let needs_store = config
            .accounts
            .iter()
            .any(|(name, acct)| !acct.secret_keys(name).is_empty());
        if needs_store {
            d.mailer().secrets().store().await?;
        }
        Some(d)
    };
    let addrs: Vec<String> = relay.local_addrs().iter().map(|a| a.to_string()).collect();
    eprintln!(
        "postie relay: listening on {} (STARTTLS; AUTH optional on loopback){}",
        addrs.join(", "),
        if a.no_deliver {
            "; not delivering (--no-deliver)"
        } else {
            ""
        }
    );
    eprintln!(
        "postie relay: outbox {}; accounts: {}",
        outbox.location(),
        if config.accounts.is_empty() {
            "none (add one with `postie account add`)".to_string()
        } else {
            config.account_names()
        }
    );
    // Every signal the relay answers is registered before it says it is
    // ready: one that comes right after READY (a service manager's reload
    // or stop) is then handled, not met by the default action, which ends
    // the process on the spot.
    let mut stop = StopSignals::new();
    #[cfg(unix)]
    let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    #[cfg(not(unix))]
    let hup = None;
    let reloader = tokio::spawn(watch_config(
        g.paths.config_file.clone(),
        relay.config_handle(),
        deliverer.clone(),
        wake.clone(),
        hup,
    ));
    let server = tokio::spawn(relay.serve(stop_rx.clone()));
    // Listening: a service manager waiting for readiness starts what
    // depends on the relay now.
    super::service::notify("READY=1\nSTATUS=listening");
    let worker = deliverer.map(|d| {
        let rx = stop_rx.clone();
        let wake = wake.clone();
        tokio::spawn(async move { d.run(rx, wake).await })
    });
    stop.wait().await;
    eprintln!(
        "postie relay: stopping: finishing transactions in progress; nothing unacknowledged is kept half (a second signal stops at once)"
    );
    let _ = stop_tx.send(true);
    reloader.abort();
    super::service::notify("STOPPING=1");
    let stopping = async {
        let _ = server.await;
        if let Some(w) = worker {
            let _ = w.await;
        }
    };
    tokio::select! {
        _ = stopping => eprintln!("postie relay: stopped"),
        _ = stop.wait() => {
            // Whatever was not acknowledged is not stored; whatever was
            // being sent goes back to the queue when the next deliverer
            // starts (this process's claims die with it).
            eprintln!("postie relay: stopped at once (second signal)");
        }
    }
    Ok(())
}

/// Reads the config file again on SIGHUP and whenever it changes (checked
/// every 2 seconds: `postie account add`, a fixed password variable, then
/// `postie queue retry` work without a restart), and hands it to the relay
/// and its deliverer. A file that does not load is reported and the
/// running configuration kept.
async fn watch_config(
    path: std::path::PathBuf,
    relay: RelayConfig,
    deliverer: Option<Deliverer>,
    wake: Arc<Notify>,
    #[cfg(unix)] mut hup: Option<tokio::signal::unix::Signal>,
    #[cfg(not(unix))] _hup: Option<()>,
) {
    let modified = |path: &std::path::Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let p = path.clone();
    let mut seen = unblock(move || Ok(modified(&p))).await.ok().flatten();
    loop {
        #[cfg(unix)]
        let forced = tokio::select! {
            _ = async { match hup.as_mut() { Some(h) => { h.recv().await; } None => std::future::pending().await } } => true,
            _ = tokio::time::sleep(std::time::Duration::from_secs(2)) => false,
        };
        #[cfg(not(unix))]
        let forced = {
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            false
        };
        let p = path.clone();
        let now = unblock(move || Ok(modified(&p))).await.ok().flatten();
        if !forced && now == seen {
            continue;
        }
        seen = now;
        let p = path.clone();
        let loaded = unblock(move || {
            let config = Config::load(&p)?;
            for u in &config.relay.users {
                users::check(u)?;
            }
            Ok(config)
        })
        .await;
        let applied = loaded.and_then(|config| relay.set(config.clone()).map(|r| (config, r)));
        match applied {
            Ok((config, restart)) => {
                service::notify("RELOADING=1");
                let names = config.account_names();
                if let Some(d) = &deliverer {
                    d.reload(config).await;
                }
                wake.notify_one();
                service::notify("READY=1");
                eprintln!(
                    "postie relay: configuration read again from {}; accounts: {}",
                    path.display(),
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names
                    }
                );
                if !restart.is_empty() {
                    eprintln!(
                        "postie relay: [relay] {} changed: restart the relay for that to apply",
                        restart.join(", ")
                    );
                }
            }
            Err(e) => eprintln!(
                "postie relay: the config file {} was not taken, the running configuration is kept: {}",
                path.display(),
                output::clean(e.message())
            ),
        }
    }
}

/// Waits for Ctrl-C or SIGTERM.
pub(crate) async fn wait_for_signal() {
    StopSignals::new().wait().await;
}

/// SIGINT and SIGTERM, registered when this is made: from then on such a
/// signal is kept for [`StopSignals::wait`] instead of ending the process.
pub(crate) struct StopSignals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl StopSignals {
    pub(crate) fn new() -> StopSignals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            StopSignals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
            }
        }
        #[cfg(not(unix))]
        StopSignals {}
    }

    /// The next SIGINT or SIGTERM (Ctrl-C elsewhere).
    pub(crate) async fn wait(&mut self) {
        #[cfg(unix)]
        {
            async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
                match s.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(&mut self.int) => {}
                _ = next(&mut self.term) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

fn user(g: &Global, action: RelayUserAction) -> Result<(), Error> {
    let mut config = Config::load(&g.paths.config_file)?;
    match action {
        RelayUserAction::Add {
            username,
            account,
            password_env,
            password_stdin,
        } => {
            if !config.accounts.contains_key(&account) {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "there is no account '{account}' (accounts: {}); add it first with `postie account add`",
                        config.account_names()
                    ),
                ));
            }
            let password = if let Some(var) = password_env {
                match std::env::var(&var) {
                    Ok(v) if !v.is_empty() => SecretString::from(v),
                    _ => {
                        return Err(Error::new(
                            ErrorKind::Usage,
                            format!("the environment variable {var} is not set or empty"),
                        ));
                    }
                }
            } else if password_stdin || !interactive() {
                read_stdin_secret("--password-stdin")?
            } else {
                prompt_secret(
                    &format!("Password for relay user {username}"),
                    "Give --password-env VAR or --password-stdin.",
                )?
            };
            let hash = users::hash_password(&password)?;
            config.relay.users.retain(|u| u.username != username);
            config.relay.users.push(RelayUser {
                username: username.clone(),
                account: account.clone(),
                password_hash: hash,
            });
            config.save(&g.paths.config_file)?;
            println!(
                "relay user {username} added: its mail goes out through account '{account}' (restart `postie relay` to use it)"
            );
        }
        RelayUserAction::Remove { username } => {
            let before = config.relay.users.len();
            config.relay.users.retain(|u| u.username != username);
            if config.relay.users.len() == before {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("there is no relay user '{username}'"),
                ));
            }
            config.save(&g.paths.config_file)?;
            println!("relay user {username} removed");
        }
        RelayUserAction::List => {
            if config.relay.users.is_empty() {
                println!("no relay users (clients on this machine need none)");
            }
            for u in &config.relay.users {
                println!("{}  -> account {}", u.username, u.account);
            }
        }
    }
    Ok(())
}
