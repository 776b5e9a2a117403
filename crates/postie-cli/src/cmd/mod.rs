//! Subcommands: each resolves its flags into settings and calls the library.

pub mod account;
pub mod bulk;
pub mod demo;
pub mod doctor;
pub mod login;
pub mod queue;
mod queue_show;
pub mod relay;
pub mod sandbox;
pub mod send;
pub mod sendmail;
pub mod service;

use std::io::{IsTerminal, Read};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use postie::error::{Error, ErrorKind};
use postie::paths::Paths;
use postie::secret::{FileStore, PASSPHRASE_ENV, SecretStore, Secrets, StoreChoice};
use postie::transport::{Endpoint, TranscriptEntry, TranscriptSink};
use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::cli::TlsArgs;
use crate::output::Style;

/// Settings every subcommand receives.
#[derive(Clone)]
pub struct Global {
    /// Resolved file locations.
    pub paths: Paths,
    /// `-v` count.
    pub verbose: u8,
    /// Colour decisions.
    pub style: Style,
}

/// True when a person can answer a prompt.
pub fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Ask for a secret without echo; only when a terminal is attached.
pub fn prompt_secret(question: &str, what_else: &str) -> Result<SecretString, Error> {
    if !interactive() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{question} cannot be asked: no terminal is attached. {what_else}"),
        ));
    }
    let answer = rpassword::prompt_password(format!("{question}: "))
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read from the terminal: {e}")))?;
    Ok(SecretString::from(answer))
}

/// A secret piped to stdin (`--password-stdin` and friends), without its
/// trailing newline; empty input is an error naming the flag.
pub fn read_stdin_secret(flag: &str) -> Result<SecretString, Error> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read stdin for {flag}: {e}")))?;
    let s = Zeroizing::new(s);
    let one = s.trim_end_matches(['\r', '\n']);
    if one.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            format!("{flag} read nothing from stdin"),
        ));
    }
    // Two lines are not one secret: storing them joined (or only the first)
    // would store something the user did not mean.
    if one.contains(['\n', '\r']) {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "{flag} read {} lines from stdin: give the secret alone, on one line",
                one.lines().count()
            ),
        ));
    }
    Ok(SecretString::from(one.to_string()))
}

/// Open postie's secret store: the system keyring when one is usable, else
/// the encrypted file (`POSTIE_SECRET_STORE` decides). The file's passphrase
/// comes from `POSTIE_PASSPHRASE`, else from a prompt, and is asked only when
/// the file has to be opened.
pub fn open_store(paths: &Paths) -> Result<SecretStore, Error> {
    let path = FileStore::default_path(&paths.data_dir);
    let shown = path.display().to_string();
    let passphrase = Box::new(move || {
        match FileStore::passphrase_from_env() {
        Some(p) => Ok(p),
        // Without a terminal the store cannot be opened: a secret-store
        // problem (78, with its fix), not a wrong command line.
        None => prompt_secret(
            &format!("Passphrase for postie's secret store ({shown})"),
            &format!(
                "Set {PASSPHRASE_ENV}, or use password_env / password_command for the account instead of a stored password."
            ),
        )
        .map_err(|e| match e.kind() {
            ErrorKind::Usage => Error::new(ErrorKind::Secret, e.message()),
            _ => e,
        }),
    }
    });
    SecretStore::open(StoreChoice::from_env()?, path, passphrase)
}

/// postie's secret store for async work ([`open_store`], opened when first
/// needed, on a blocking thread).
pub fn secrets(paths: &Paths) -> Secrets {
    let (local, fleet) = (paths.clone(), paths.clone());
    Secrets::lazy_with_shared(
        move || open_store(&local),
        Box::new(move || {
            let paths = fleet.clone();
            Box::pin(async move {
                let location = queue::outbox_location_at(&paths).await?;
                postie::blocking::unblock(move || {
                    postie_outbox::outbox::Outbox::shared_secrets_at(&location)
                })
                .await
            })
        }),
    )
}

/// This host's own secret store, without the fleet's shared one: for the
/// outbox database's own password.
pub fn local_secrets(paths: &Paths) -> Secrets {
    let paths = paths.clone();
    Secrets::lazy(move || open_store(&paths))
}

/// The sending core for the accounts of `config`, with postie's data
/// directory and secret store.
pub fn mailer(g: &Global, config: postie::config::Config) -> postie::mailer::Mailer {
    // `-v`: the SMTP conversations upstream, secrets redacted, on stderr
    // (the relay's and `queue run`'s as `send`'s).
    let options = postie::mailer::Options {
        transcript: (g.verbose > 0).then(|| transcript_sink(g, true, Arc::default())),
        ..postie::mailer::Options::default()
    };
    postie::mailer::Mailer::with_options(
        config,
        g.paths.data_dir.clone(),
        secrets(&g.paths),
        options,
    )
}

/// The receiver of the SMTP transcript (`-v`): each line on stderr,
/// swaks-style (`->`/`<-` plain, `~>`/`<~` inside TLS, `***` notes; `-vv`
/// adds the time since the command started), or kept in `keep` for
/// `--json` when `print` is false. Times count from this call, so the lines
/// of several connections share one clock.
pub fn transcript_sink(
    g: &Global,
    print: bool,
    keep: Arc<Mutex<Vec<TranscriptEntry>>>,
) -> TranscriptSink {
    let show_time = g.verbose > 1;
    let style = g.style;
    let start = Instant::now();
    Arc::new(move |t: &TranscriptEntry| {
        let mut t = t.clone();
        t.elapsed = start.elapsed();
        if !print {
            keep.lock().expect("transcript lock").push(t);
            return;
        }
        let time = if show_time {
            format!("[{:>8.3}s] ", t.elapsed.as_secs_f64())
        } else {
            String::new()
        };
        let line = format!("{time}{} {}", t.prefix(), crate::output::clean(&t.text));
        eprintln!(
            "{}",
            if t.direction == "note" {
                style.dim(&line)
            } else {
                line
            }
        );
    })
}

/// `--ca-file`, `--tls-name` and `--plaintext` applied to an endpoint given
/// on the command line; plaintext only to a loopback address.
pub fn apply_tls_args(ep: &mut Endpoint, tls: &TlsArgs) -> Result<(), Error> {
    if tls.ca_file.is_some() {
        ep.ca_file = tls.ca_file.clone();
    }
    if tls.tls_name.is_some() {
        ep.tls_name = tls.tls_name.clone();
    }
    if tls.plaintext {
        ep.tls = postie::provider::TlsMode::None;
        ep.check_plaintext()?;
    }
    Ok(())
}
