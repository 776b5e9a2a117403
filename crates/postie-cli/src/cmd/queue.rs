//! `postie queue ...`, and the outbox plumbing shared with `relay` and `sendmail`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use postie::config::{Config, OUTBOX_ENV};
use postie::error::{Error, ErrorKind};
use postie_outbox::delivery::{Delivered, Deliverer, Progress, Settings};
use postie_outbox::outbox::{
    Disposition, ListFilter, Location, MessageId, Outbox, RetryPolicy, State, Which,
};
use serde_json::json;

use super::{Global, mailer};
use crate::cli::QueueCommand;
use crate::output::{self, Style, exit};

/// The outbox: see [`outbox_location`].
pub async fn open_outbox(g: &Global) -> Result<Arc<Outbox>, Error> {
    let location = outbox_location(g).await?;
    Outbox::open_shared_at(location).await
}

/// The secret-store key of the shared outbox database's password (no
/// account's key: account names hold no `/`).
pub const OUTBOX_PASSWORD_KEY: &str = "postie/outbox/password";

/// Where the outbox is: `POSTIE_OUTBOX`, else `[outbox] url`, else the
/// directory `outbox` in postie's data directory. A database's password
/// comes from the URL in `POSTIE_OUTBOX`, `[outbox] password_env` or
/// `password_command`, this host's secret store ([`OUTBOX_PASSWORD_KEY`],
/// `postie queue password`), or libpq's password file.
pub async fn outbox_location(g: &Global) -> Result<Location, Error> {
    outbox_location_at(&g.paths).await
}

/// [`outbox_location`] for the files of `paths`.
pub async fn outbox_location_at(paths: &postie::paths::Paths) -> Result<Location, Error> {
    let path = paths.config_file.clone();
    let config = postie::blocking::unblock(move || Config::load(&path)).await?;
    let from_env = std::env::var(OUTBOX_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let url = match (&from_env, &config.outbox.url) {
        (Some(v), _) => v.clone(),
        (None, Some(u)) => u.clone(),
        (None, None) => return Ok(Location::Dir(paths.data_dir.join("outbox"))),
    };
    let mut location = Location::parse(&url).map_err(|e| {
        let from = if from_env.is_some() {
            format!("the {OUTBOX_ENV} environment variable")
        } else {
            format!("[outbox] url in {}", paths.config_file.display())
        };
        Error::new(e.kind(), format!("{from}: {}", e.message()))
    })?;
    if let Location::Postgres(target) = &mut location {
        if let Some(id) = &config.outbox.host_id {
            target.set_host_id(id);
        }
        if let Some(ca) = &config.outbox.ca_file {
            target.set_ca_file(ca);
        }
        if !target.has_password() {
            match config.outbox.password_source() {
                Some(source) => {
                    let secrets = super::local_secrets(paths);
                    let pw = source
                        .resolve(&secrets, postie::secret::PASSWORD_COMMAND_TIMEOUT)
                        .await
                        .map_err(|e| {
                            Error::new(
                                e.kind(),
                                format!("the outbox database's password: {}", e.message()),
                            )
                        })?;
                    target.set_password(&pw);
                }
                None => {
                    // This host's secret store (`postie queue password`), else
                    // libpq's password file. A store that cannot be read is
                    // reported only when the password file has nothing either.
                    let stored = super::local_secrets(paths).get(OUTBOX_PASSWORD_KEY).await;
                    if let Ok(Some(pw)) = &stored {
                        target.set_password(pw);
                    } else {
                        let mut t = (**target).clone();
                        let (t, found) = postie::blocking::unblock(move || {
                            t.password_from_pgpass().map(|found| (t, found))
                        })
                        .await?;
                        **target = t;
                        if let (Err(e), false) = (stored, found) {
                            return Err(Error::new(
                                e.kind(),
                                format!(
                                    "the outbox database's password: it is looked up in the \
                                     secret store, which cannot be read: {}",
                                    e.message()
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(location)
}

/// A deliverer over `outbox` for the accounts of `config`; `settled` for
/// the relay (see [`Settings::settled`]).
pub async fn deliverer(
    g: &Global,
    config: Config,
    outbox: Arc<Outbox>,
    progress: Option<Progress>,
    settled: bool,
) -> Result<Deliverer, Error> {
    let settings = Settings {
        keep_sent: settled
            .then(|| postie_outbox::outbox::keep_sent(&config.relay))
            .transpose()?,
        policy: RetryPolicy::from_config(&config.relay)?,
        lease: postie_outbox::outbox::claim_lease(&config.relay)?,
        progress,
        settled,
    };
    Deliverer::new(settings, outbox, mailer(g, config)).await
}

/// One line per finished message, for the relay's log and `queue run`.
pub fn progress_line(s: &Style, d: &Delivered) -> String {
    let what = match &d.disposition {
        Disposition::Sent => s.good("sent"),
        Disposition::PartlyFailed { failed } => {
            s.warn(&format!("sent, but refused for {}", failed.join(", ")))
        }
        Disposition::RetryAt(t) => s.warn(&format!("will retry {}", when(*t))),
        Disposition::Failed => s.bad("failed for good"),
        Disposition::Paused { account, newly } => s.bad(&format!(
            "account {account} paused{}",
            if *newly {
                " (fix it, then `postie queue retry --all`)"
            } else {
                ""
            }
        )),
        Disposition::LeaseLost => s.dim("taken over by another deliverer"),
    };
    format!(
        "message {} via {}: {what}: {}",
        d.id,
        d.account,
        output::clean(&d.detail)
    )
}

fn disposition_name(d: &Disposition) -> &'static str {
    match d {
        Disposition::Sent => "sent",
        Disposition::PartlyFailed { .. } => "partly-failed",
        Disposition::RetryAt(_) => "retry",
        Disposition::Failed => "failed",
        Disposition::Paused { .. } => "paused",
        Disposition::LeaseLost => "taken-over",
    }
}

fn when(t: SystemTime) -> String {
    match t.duration_since(SystemTime::now()) {
        Ok(d) => format!(
            "in {}",
            humantime::format_duration(Duration::from_secs(d.as_secs().max(1)))
        ),
        Err(_) => "now".into(),
    }
}

fn parse_id(s: &str) -> Result<MessageId, Error> {
    s.parse::<MessageId>().map_err(|_| {
        Error::new(
            ErrorKind::Usage,
            format!("'{s}' is not a message id: `postie queue list` shows them"),
        )
    })
}

/// Run `postie queue ...`; returns the exit code.
pub async fn run(g: &Global, c: QueueCommand) -> i32 {
    match run_inner(g, c).await {
        Ok(code) => code,
        Err(e) => {
            output::print_error(&g.style, &e, &Default::default());
            output::exit_code(e.kind())
        }
    }
}

async fn run_inner(g: &Global, c: QueueCommand) -> Result<i32, Error> {
    // (before the outbox is opened: it may need this password)
    if let QueueCommand::Password {
        password_env,
        password_stdin,
        remove,
    } = c
    {
        return store_password(g, password_env, password_stdin, remove).await;
    }
    let outbox = open_outbox(g).await?;
    let s = &g.style;
    match c {
        QueueCommand::List {
            state,
            account,
            batch,
            json,
        } => {
            let state = state
                .map(|x| {
                    x.parse::<State>().map_err(|_| {
                        Error::new(
                            ErrorKind::Usage,
                            format!("unknown state '{x}': use queued, delivering, sent or failed"),
                        )
                    })
                })
                .transpose()?;
            // An account the config does not name: said, not "empty" (its
            // old messages are still listed when there are some).
            let path = g.paths.config_file.clone();
            let config = postie::blocking::unblock(move || Ok(Config::load(&path).ok())).await?;
            let unknown_account = account
                .clone()
                .filter(|a| config.as_ref().is_some_and(|c| !c.accounts.contains_key(a)));
            let mut described = match (&state, &account) {
                (None, None) => String::new(),
                (Some(st), None) => format!(" in state {}", st.as_str()),
                (None, Some(a)) => format!(" of account {a}"),
                (Some(st), Some(a)) => format!(" in state {} of account {a}", st.as_str()),
            };
            if let Some(b) = &batch {
                described.push_str(&format!(" in batch {b}"));
            }
            let filter = ListFilter {
                state,
                account,
                batch,
                limit: None,
            };
            let (rows, paused) = outbox
                .with(move |o| Ok((o.list(&filter)?, o.paused()?)))
                .await?;
            if json {
                output::print_json(&json!({ "messages": rows, "paused": paused }));
                return Ok(exit::OK);
            }
            for p in paused {
                println!(
                    "{} account {} is paused since {}: {}",
                    s.bad("!"),
                    p.account,
                    humantime::format_rfc3339_seconds(p.since),
                    output::clean(&p.reason)
                );
            }
            if rows.is_empty() {
                if let Some(a) = unknown_account {
                    let names = config.map(|c| c.account_names()).unwrap_or_default();
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!(
                            "there is no account {a} (accounts: {names}), and no message of it in the outbox"
                        ),
                    ));
                }
                if described.is_empty() {
                    println!("the outbox is empty");
                } else {
                    println!("no message{described}");
                }
                return Ok(exit::OK);
            }
            println!(
                "{:>6}  {:<10}  {:<12}  {:>5}  {:<28}  LAST REPLY / SUBJECT",
                "ID", "STATE", "ACCOUNT", "TRIES", "RECIPIENTS"
            );
            for r in rows {
                let st = r.state.to_string();
                let c = r.counts;
                let st = match r.state {
                    State::Sent if c.failed > 0 => s.warn(&format!("{st}*")),
                    State::Sent => s.good(&st),
                    State::Failed => s.bad(&st),
                    _ => st,
                };
                let rcpts = format!(
                    "{} sent, {} failed, {} pending",
                    c.sent, c.failed, c.pending
                );
                let last = r
                    .last_reply
                    .as_ref()
                    .map(|x| format!("{} {}", x.code, x.text.replace('\n', " ")))
                    .or(r.subject.clone())
                    .unwrap_or_default();
                println!(
                    "{:>6}  {:<10}  {:<12}  {:>5}  {:<28}  {}",
                    r.id.to_string(),
                    st,
                    r.account,
                    r.attempts,
                    rcpts,
                    output::clean(&last).chars().take(80).collect::<String>()
                );
            }
        }
        QueueCommand::Show { id, json } => {
            let id = parse_id(&id)?;
            let Some(d) = outbox.with(move |o| o.show(id)).await? else {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("there is no message {id} in the outbox"),
                ));
            };
            if json {
                output::print_json(&serde_json::to_value(&d).unwrap_or_default());
                return Ok(exit::OK);
            }
            print!("{}", super::queue_show::render(s, &d));
        }
        QueueCommand::Retry { id, all } => {
            let which = match (id, all) {
                (_, true) => Which::All,
                (Some(id), false) => Which::One(parse_id(&id)?),
                (None, false) => unreachable!("clap requires ID or --all"),
            };
            let n = outbox
                .with(move |o| o.retry(which, SystemTime::now()))
                .await?;
            println!("{n} message(s) queued for delivery now");
        }
        QueueCommand::Purge {
            id: None,
            sent,
            failed,
            older_than,
        } => {
            let before = SystemTime::now() - older_than.unwrap_or_default();
            let states = [(sent, State::Sent), (failed, State::Failed)];
            for (_, state) in states.into_iter().filter(|(on, _)| *on) {
                let n = outbox
                    .with(move |o| o.purge_finished(state, before))
                    .await?;
                println!(
                    "{n} {state} message(s){} purged",
                    older_than
                        .map(|d| format!(
                            " finished more than {} ago",
                            humantime::format_duration(d)
                        ))
                        .unwrap_or_default()
                );
            }
        }
        QueueCommand::Purge { id: Some(id), .. } => {
            let id = parse_id(&id)?;
            if !outbox.with(move |o| o.purge(id)).await? {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("there is no message {id} in the outbox"),
                ));
            }
            println!("message {id} purged");
        }
        QueueCommand::Run { account, json } => {
            let config = Config::load(&g.paths.config_file)?;
            return run_queue(g, config, outbox, account, json).await;
        }
        QueueCommand::Password { .. } => unreachable!("handled before the outbox is opened"),
    }
    Ok(exit::OK)
}

/// `postie queue password`: keep the shared outbox database's password in
/// this host's secret store, once the database accepted it (a password it
/// refuses is not kept), or remove it.
async fn store_password(
    g: &Global,
    password_env: Option<String>,
    password_stdin: bool,
    remove: bool,
) -> Result<i32, Error> {
    let secrets = super::local_secrets(&g.paths);
    if remove {
        let had = secrets.delete(OUTBOX_PASSWORD_KEY).await?;
        println!(
            "{}",
            if had {
                "the outbox database's password was removed from the secret store"
            } else {
                "no outbox database password was stored; nothing changed"
            }
        );
        return Ok(exit::OK);
    }
    let path = g.paths.config_file.clone();
    let config = postie::blocking::unblock(move || Config::load(&path)).await?;
    let from_env = std::env::var(OUTBOX_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty());
    let Some(url) = from_env.or_else(|| config.outbox.url.clone()) else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "no shared outbox is configured: name the database first, with url = \
                 \"postgres://USER@HOST:PORT/DATABASE\" under [outbox] in {}",
                g.paths.config_file.display()
            ),
        ));
    };
    let mut location = Location::parse(&url)?;
    let Location::Postgres(target) = &mut location else {
        return Err(Error::new(
            ErrorKind::Usage,
            "the outbox is a directory on this host, which has no password; a password is \
             for a PostgreSQL outbox ([outbox] url = \"postgres://…\")",
        ));
    };
    let password = if let Some(var) = password_env {
        match std::env::var(&var) {
            Ok(v) if !v.is_empty() => secrecy::SecretString::from(v),
            _ => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("the environment variable {var} is not set or empty"),
                ));
            }
        }
    } else {
        // (stdin and the terminal block: not on an async thread)
        let piped = password_stdin || !super::interactive();
        postie::blocking::unblock(move || {
            if piped {
                super::read_stdin_secret("--password-stdin")
            } else {
                super::prompt_secret(
                    "Password of the outbox database",
                    "Give --password-env VAR or --password-stdin.",
                )
            }
        })
        .await?
    };
    if let Some(id) = &config.outbox.host_id {
        target.set_host_id(id);
    }
    if let Some(ca) = &config.outbox.ca_file {
        target.set_ca_file(ca);
    }
    target.set_password(&password);
    let shown = target.to_string();
    // Tried first: a password the database refuses is not kept.
    let outbox = Outbox::open_shared_at(location).await.map_err(|e| {
        Error::new(
            e.kind(),
            format!("{}\nThe password was not stored.", e.message()),
        )
    })?;
    drop(outbox);
    secrets.set(OUTBOX_PASSWORD_KEY, &password).await?;
    println!("stored in the secret store: the password of {shown} (the database accepted it)");
    if config.outbox.password_source().is_some() {
        eprintln!(
            "note: [outbox] password_env / password_command is set in {}, and is used before \
             the stored password",
            g.paths.config_file.display()
        );
    }
    Ok(exit::OK)
}

async fn run_queue(
    g: &Global,
    config: Config,
    outbox: Arc<Outbox>,
    account: Option<String>,
    json: bool,
) -> Result<i32, Error> {
    let due = outbox.with(|o| o.counts()).await?.queued;
    let bar =
        (!json && due > 1 && std::io::IsTerminal::is_terminal(&std::io::stderr())).then(|| {
            let b = indicatif::ProgressBar::new(due);
            b.set_style(
                indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
    let style = g.style;
    let bar2 = bar.clone();
    let progress: Progress = Arc::new(move |d: &Delivered| match &bar2 {
        Some(b) => {
            b.inc(1);
            b.println(progress_line(&style, d));
        }
        None if !json => eprintln!("{}", progress_line(&style, d)),
        None => {}
    });
    let deliverer = deliverer(g, config, outbox.clone(), Some(progress), false).await?;
    let done = deliverer.run_once(account.as_deref()).await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // A paused account's messages were not tried: that is not "done" (the
    // exit status says 75, and why), whether it was paused now or before.
    let paused: Vec<_> = outbox
        .with(|o| o.paused())
        .await?
        .into_iter()
        .filter(|p| account.as_deref().is_none_or(|a| a == p.account))
        .collect();
    let failed = done
        .iter()
        .filter(|d| {
            matches!(
                d.disposition,
                Disposition::Failed | Disposition::Paused { .. }
            )
        })
        .count();
    if json {
        output::print_json(&json!({
            "delivered": done.iter().filter(|d| matches!(d.disposition, Disposition::Sent)).count(),
            "paused": paused,
            "results": done.iter().map(|d| json!({
                "id": d.id.to_string(),
                "account": d.account,
                "disposition": disposition_name(&d.disposition),
                "detail": d.detail,
            })).collect::<Vec<_>>(),
        }));
    } else if done.is_empty() && paused.is_empty() {
        eprintln!("nothing is due");
    }
    if !json {
        for p in &paused {
            eprintln!(
                "account {} is paused, its messages wait: {}",
                p.account,
                output::clean(&p.reason)
            );
        }
    }
    Ok(if failed > 0 || !paused.is_empty() {
        exit::TEMPFAIL
    } else {
        exit::OK
    })
}
