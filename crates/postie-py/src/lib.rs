//! `postie._core`: the Python package's door into postie's sending core.
//!
//! Thin on purpose: every call resolves postie's own paths, config file and
//! secret store (as the `postie` command does), runs the core's async code on
//! one runtime of the extension's own with the GIL released, and hands back
//! JSON text that the Python side (`python/postie`) turns into objects. A
//! failure raises `postie._core.Error` whose one argument is the error's
//! report as JSON ([`postie::explain::ErrorReport`]): the same kind, reply
//! and explanation as `postie --json` prints. No secret is in any of it but
//! the access token [`token`] is asked for.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use postie::config::Config;
use postie::error::{Error as CoreError, ErrorKind, Result as CoreResult};
use postie::explain::{Context, ErrorReport};
use postie::mailer::{Account, Mailer, SendReport};
use postie::message::{OutgoingMessage, RawOptions, from_raw};
use postie::paths::Paths;
use postie_proto::reply::Reply;
use pyo3::prelude::*;
use serde_json::{Value, json};

pyo3::create_exception!(
    _core,
    Error,
    pyo3::exceptions::PyException,
    "A failure of postie's core; its one argument is the error's report as JSON."
);

/// The runtime every call runs on: its own threads, so Python threads may
/// call in at once, each waiting with the GIL released.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("postie")
            .enable_all()
            .build()
            .expect("the postie runtime cannot start")
    })
}

/// Run `fut` to its end on the runtime, the GIL released meanwhile.
fn block_on<T: Send>(py: Python<'_>, fut: impl Future<Output = T> + Send) -> T {
    py.detach(|| runtime().block_on(fut))
}

/// `err` as the Python exception, explained in the account's context.
fn py_err(err: &CoreError, account: Option<&Account>) -> PyErr {
    Error::new_err(error_json(err, account).to_string())
}

/// `err` explained for `account`, as the error report's JSON.
fn error_json(err: &CoreError, account: Option<&Account>) -> Value {
    let provider = account.and_then(|a| a.settings()).map(|s| s.provider);
    let ctx = Context {
        provider,
        account: account.and_then(|a| a.name.as_deref()),
        host: None,
    };
    serde_json::to_value(ErrorReport::new(err, &ctx)).unwrap_or(Value::Null)
}

/// One mailer per config file, kept while the file is unchanged: its token
/// cache and its secret store (opened once: the encrypted file's key
/// derivation is slow on purpose) serve every call.
fn mailer(config: Option<&str>) -> CoreResult<Mailer> {
    /// Per config file: its modification time when read, and its mailer.
    type Mailers = HashMap<PathBuf, (Option<SystemTime>, Mailer)>;
    static MAILERS: OnceLock<Mutex<Mailers>> = OnceLock::new();
    let paths = Paths::resolve(config.map(Path::new))?;
    let modified = std::fs::metadata(&paths.config_file)
        .and_then(|m| m.modified())
        .ok();
    let mut all = MAILERS
        .get_or_init(Mutex::default)
        .lock()
        .expect("mailer cache lock");
    let mailer = match all.get(&paths.config_file) {
        Some((when, m)) if *when == modified => m.clone(),
        Some((_, m)) => m.with_config(Config::load(&paths.config_file)?),
        None => with_transcript_log(Mailer::from_paths(&paths)?),
    };
    all.insert(paths.config_file.clone(), (modified, mailer.clone()));
    Ok(mailer)
}

/// `m` with its SMTP dialogue (secrets redacted by the transport, as for
/// `postie -v`) at debug level on the logger `postie.transcript`: Python's
/// `logging` shows it when asked to, as smtplib's `set_debuglevel` would.
fn with_transcript_log(m: Mailer) -> Mailer {
    let mut options = m.options().clone();
    options.transcript = Some(Arc::new(|t: &postie::transport::TranscriptEntry| {
        let arrow = match t.direction {
            "sent" => "C:",
            "received" => "S:",
            _ => "--",
        };
        tracing::debug!(target: "postie::transcript", "{arrow} {}", t.text);
    }));
    Mailer::with_options(
        m.config().clone(),
        m.data_dir().to_path_buf(),
        m.secrets().clone(),
        options,
    )
}

/// The account `name`, or the default one.
fn account(mailer: &Mailer, name: Option<&str>) -> CoreResult<Account> {
    mailer.account(name)
}

/// A raw message and its envelope: `from` and `to` as given (smtplib's
/// `sendmail`), or from the message's headers when not given.
fn message(raw: Vec<u8>, from: Option<String>, to: Vec<String>) -> CoreResult<OutgoingMessage> {
    let read_headers = to.is_empty();
    from_raw(
        raw,
        &RawOptions {
            from,
            recipients: to,
            read_headers,
            add_from: None,
            add_from_name: None,
        },
    )
}

/// A send report as JSON, with the replies to MAIL and to the data, which
/// tell where a refusal came (smtplib raises a different exception for
/// each).
fn report_json(r: &SendReport) -> Value {
    let reply = |rep: &Reply| {
        json!({
            "code": rep.code,
            "enhanced": rep.enhanced.map(|e| e.to_string()),
            "text": rep.text(),
        })
    };
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["mail_reply"] = reply(&r.transaction.mail);
    v["data_reply"] = r.transaction.data.as_ref().map_or(Value::Null, reply);
    v
}

/// The accounts of the config file as JSON (`postie account list --json`'s
/// `accounts`).
#[pyfunction]
#[pyo3(signature = (config=None))]
fn accounts(config: Option<&str>) -> PyResult<String> {
    let m = mailer(config).map_err(|e| py_err(&e, None))?;
    Ok(serde_json::to_string(&m.config().summaries()).unwrap_or_default())
}

/// The account a login name or address belongs to: the account with that
/// address (the relay's rule: the default one among several), else the one
/// that logs in with that name; `None` when no account has it.
#[pyfunction]
#[pyo3(signature = (user, config=None))]
fn account_for(user: &str, config: Option<&str>) -> PyResult<Option<String>> {
    let m = mailer(config).map_err(|e| py_err(&e, None))?;
    let c = m.config();
    if let Some(name) = c.account_for_address(user).map_err(|e| py_err(&e, None))? {
        return Ok(Some(name.to_string()));
    }
    Ok(c.accounts
        .iter()
        .find(|(_, a)| a.login().eq_ignore_ascii_case(user))
        .map(|(n, _)| n.clone()))
}

/// One authenticated connection through an account, for many messages.
#[pyclass(module = "postie._core")]
struct Session {
    account: Account,
    inner: Arc<tokio::sync::Mutex<Option<postie::mailer::Session>>>,
}

#[pymethods]
impl Session {
    /// A session through account `account` (the default when `None`); it
    /// connects at its first use. `mechanism` forces a SASL mechanism
    /// (`XOAUTH2`, `OAUTHBEARER`, `PLAIN`, `LOGIN`) over the best offered.
    #[new]
    #[pyo3(signature = (account=None, config=None, mechanism=None))]
    fn new(
        account: Option<&str>,
        config: Option<&str>,
        mechanism: Option<&str>,
    ) -> PyResult<Session> {
        let m = mailer(config).map_err(|e| py_err(&e, None))?;
        let mut a = self::account(&m, account).map_err(|e| py_err(&e, None))?;
        if let Some(name) = mechanism {
            let mech = name.parse().map_err(|_| {
                let e = CoreError::new(
                    ErrorKind::Usage,
                    format!(
                        "{name} is not a SASL mechanism name: use XOAUTH2, OAUTHBEARER, PLAIN or LOGIN"
                    ),
                );
                py_err(&e, Some(&a))
            })?;
            a.mechanism = Some(mech);
        }
        let s = m.session(&a);
        Ok(Session {
            account: a,
            inner: Arc::new(tokio::sync::Mutex::new(Some(s))),
        })
    }

    /// The account's name.
    #[getter]
    fn account(&self) -> Option<String> {
        self.account.name.clone()
    }

    /// Connect and log in now (a send does it when needed): the server, the
    /// mechanism and TLS as JSON.
    fn connect(&self, py: Python<'_>) -> PyResult<String> {
        let inner = self.inner.clone();
        let r = block_on(py, async move {
            let mut guard = inner.lock().await;
            let s = guard.as_mut().ok_or_else(closed)?;
            if !s.is_connected() {
                s.connect().await?;
            }
            // What the server offers, in smtplib's esmtp_features shape;
            // through an API, what the service takes.
            let mut ext = serde_json::Map::new();
            match s.capabilities() {
                Some(c) => {
                    if let Some(n) = c.size() {
                        ext.insert("size".into(), json!(n.to_string()));
                    }
                    for (on, name) in [(c.eightbitmime(), "8bitmime"), (c.smtputf8(), "smtputf8")] {
                        if on {
                            ext.insert(name.into(), json!(""));
                        }
                    }
                }
                None => {
                    ext.insert("8bitmime".into(), json!(""));
                }
            }
            Ok::<_, CoreError>(json!({
                "transport": s.account().transports.first().as_str(),
                "mechanism": s.mechanism().map(|m| m.to_string()),
                "tls": s.tls_info().and_then(|t| t.version.clone()),
                "extensions": ext,
            }))
        });
        r.map(|v| v.to_string())
            .map_err(|e| py_err(&e, Some(&self.account)))
    }

    /// Send the RFC 5322 message `raw`; `from_addr` and `to_addrs` are the
    /// envelope (from its headers when not given). The report as JSON.
    #[pyo3(signature = (raw, from_addr=None, to_addrs=Vec::new()))]
    fn send(
        &self,
        py: Python<'_>,
        raw: Vec<u8>,
        from_addr: Option<String>,
        to_addrs: Vec<String>,
    ) -> PyResult<String> {
        let msg = message(raw, from_addr, to_addrs).map_err(|e| py_err(&e, Some(&self.account)))?;
        let inner = self.inner.clone();
        let r = block_on(py, async move {
            let mut guard = inner.lock().await;
            let s = guard.as_mut().ok_or_else(closed)?;
            s.send(&msg).await
        });
        r.map(|rep| report_json(&rep).to_string())
            .map_err(|e| py_err(&e, Some(&self.account)))
    }

    /// Send the RFC 5322 messages `raws` (envelopes from their headers) on
    /// this session, pipelined where the server allows. Every message is
    /// tried; one JSON text each, in order: `{"report": ...}` or
    /// `{"error": <error report>}`.
    fn send_many(&self, py: Python<'_>, raws: Vec<Vec<u8>>) -> PyResult<Vec<String>> {
        let mut out: Vec<Option<Value>> = vec![None; raws.len()];
        let mut msgs: Vec<(usize, OutgoingMessage)> = Vec::new();
        for (i, raw) in raws.into_iter().enumerate() {
            match message(raw, None, Vec::new()) {
                Ok(m) => msgs.push((i, m)),
                Err(e) => out[i] = Some(json!({ "error": error_json(&e, Some(&self.account)) })),
            }
        }
        let inner = self.inner.clone();
        let results = block_on(py, async move {
            let mut guard = inner.lock().await;
            let s = guard.as_mut().ok_or_else(closed)?;
            let refs: Vec<&OutgoingMessage> = msgs.iter().map(|(_, m)| m).collect();
            let mut got: Vec<(usize, CoreResult<SendReport>)> = Vec::with_capacity(refs.len());
            s.send_many(&refs, |j, r| got.push((msgs[j].0, r))).await;
            Ok::<_, CoreError>(got)
        })
        .map_err(|e| py_err(&e, Some(&self.account)))?;
        for (i, r) in results {
            out[i] = Some(match r {
                Ok(rep) => json!({ "report": report_json(&rep) }),
                Err(e) => json!({ "error": error_json(&e, Some(&self.account)) }),
            });
        }
        Ok(out
            .into_iter()
            .map(|v| {
                v.unwrap_or_else(|| json!({ "error": error_json(&CoreError::new(ErrorKind::Transient, "the message was not sent: the session ended before it"), Some(&self.account)) }))
                    .to_string()
            })
            .collect())
    }

    /// QUIT and close; the session cannot be used again.
    fn close(&self, py: Python<'_>) {
        let inner = self.inner.clone();
        block_on(py, async move {
            if let Some(s) = inner.lock().await.take() {
                s.close().await;
            }
        });
    }
}

fn closed() -> CoreError {
    CoreError::new(
        ErrorKind::Usage,
        "this session is closed: open a new one to send more",
    )
}

/// A fresh access token of OAuth account `account` (refreshed when near its
/// expiry, the rotated refresh token saved), for other libraries.
#[pyfunction]
#[pyo3(signature = (account=None, config=None))]
fn token(py: Python<'_>, account: Option<&str>, config: Option<&str>) -> PyResult<String> {
    use secrecy::ExposeSecret;
    let m = mailer(config).map_err(|e| py_err(&e, None))?;
    let a = self::account(&m, account).map_err(|e| py_err(&e, None))?;
    let a2 = a.clone();
    // (false: the stored token while it is fresh; true would force a refresh)
    let r = block_on(py, async move { m.access_token(&a2, false).await });
    r.map(|(t, _)| t.expose_secret().to_string())
        .map_err(|e| py_err(&e, Some(&a)))
}

/// `postie doctor` of account `account` as JSON: every stage's check, with
/// its explanation when it did not pass.
#[pyfunction]
#[pyo3(signature = (account=None, config=None))]
fn doctor(py: Python<'_>, account: Option<&str>, config: Option<&str>) -> PyResult<String> {
    let m = mailer(config).map_err(|e| py_err(&e, None))?;
    let name = match account {
        Some(n) => n.to_string(),
        None => {
            let a = self::account(&m, None).map_err(|e| py_err(&e, None))?;
            a.name.unwrap_or_default()
        }
    };
    let Some(settings) = m.config().accounts.get(&name).cloned() else {
        let e = m.account(Some(&name)).err().unwrap_or_else(|| {
            CoreError::new(ErrorKind::Config, format!("there is no account {name}"))
        });
        return Err(py_err(&e, None));
    };
    let config_file = Paths::resolve(config.map(Path::new))
        .map_err(|e| py_err(&e, None))?
        .config_file;
    let opts = postie_doctor::Options {
        data_dir: m.data_dir().to_path_buf(),
        ..Default::default()
    };
    let secrets = m.secrets().clone();
    // (the future is made on this side: the doctor's check callback is not
    // Send, and block_on needs none)
    let report = py.detach(move || {
        runtime().block_on(async move {
            let target = postie_doctor::Target {
                name: &name,
                account: &settings,
                config_file: Some(&config_file),
                authenticate: true,
            };
            postie_doctor::run(&target, secrets, &opts, &mut |_| {}).await
        })
    });
    Ok(serde_json::to_string(&report).unwrap_or_default())
}

/// Explain a server's reply as postie would (`None` when the catalog has
/// nothing for it): for errors of plain smtplib sessions.
#[pyfunction]
#[pyo3(signature = (code, text, host=None))]
fn explain_reply(code: u16, text: &str, host: Option<&str>) -> Option<String> {
    let reply = Reply::new(code, text);
    let ctx = Context {
        provider: None,
        account: None,
        host,
    };
    postie::explain::explain_reply(&reply, &ctx)
        .map(|x| serde_json::to_string(&x).unwrap_or_default())
}

/// The `postie` command with `argv` (the program name first); its exit
/// status. It runs in this process, the GIL released. `embedded`: the
/// command's diagnostics go to Python's logging (a call from a program)
/// rather than to stderr (the `postie` command itself).
#[pyfunction]
#[pyo3(signature = (argv, embedded=false))]
fn cli(py: Python<'_>, argv: Vec<OsString>, embedded: bool) -> i32 {
    py.detach(|| {
        if embedded {
            postie_cli::run_embedded(argv)
        } else {
            postie_cli::run(argv)
        }
    })
}

/// postie's core for Python.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    // The core's diagnostics (tracing events, as `log` records while no
    // subscriber is installed) to Python's logging, logger `postie...`; they
    // never hold a secret.
    // Levels are asked of Python each time (not cached): a program may set
    // them after the import.
    if let Ok(logger) = pyo3_log::Logger::new(m.py(), pyo3_log::Caching::Loggers) {
        let _ = logger.install();
    }
    m.add("Error", m.py().get_type::<Error>())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Session>()?;
    m.add_function(wrap_pyfunction!(accounts, m)?)?;
    m.add_function(wrap_pyfunction!(account_for, m)?)?;
    m.add_function(wrap_pyfunction!(token, m)?)?;
    m.add_function(wrap_pyfunction!(doctor, m)?)?;
    m.add_function(wrap_pyfunction!(explain_reply, m)?)?;
    m.add_function(wrap_pyfunction!(cli, m)?)?;
    Ok(())
}
