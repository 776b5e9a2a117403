//! Secrets: where passwords come from and where they are kept.
//!
//! A password reaches postie from one of three places, in this order of
//! precedence: an environment variable (`password_env`), a command
//! (`password_command`, for `pass`, 1Password's `op`, CI secret helpers), or
//! postie's secret store ([`SecretStore`]).
//!
//! The secret store is the system keyring when one is usable (the Secret
//! Service over D-Bus on Linux and the BSDs, the macOS Keychain, the Windows
//! Credential Manager), else an encrypted file ([`FileStore`]). Servers,
//! containers and CI jobs have no D-Bus session, so the file is not a corner
//! case. `POSTIE_SECRET_STORE` ([`STORE_ENV`]) picks: `auto` (the default),
//! `keyring` or `file`.
//!
//! Secrets are [`SecretString`]s: their `Debug` is redacted and reading one
//! takes an explicit `expose_secret()`. No error carries a secret.

mod file;
mod handle;
mod keyring;
mod shared;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

pub use crate::config::PasswordSource;
use crate::error::{Error, ErrorKind, Result};
use crate::wording::{Action, say};

pub use file::{FileStore, PASSPHRASE_ENV};
pub use handle::Secrets;
pub use keyring::SERVICE as KEYRING_SERVICE;
pub use shared::{SharedOpener, SharedSecrets, is_shared_key};

use keyring::{Keyring, Probe};

/// Environment variable choosing the secret store: `auto`, `keyring` or `file`.
pub const STORE_ENV: &str = "POSTIE_SECRET_STORE";

/// How long a `password_command` may run before postie gives up on it.
/// Helpers such as `pass` or `op` answer in well under a second, or wait
/// for someone to unlock them; a minute is enough for a person at a
/// pinentry prompt, and bounded for a relay that nobody watches.
pub const PASSWORD_COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl PasswordSource {
    /// Produce the password: from the environment, from the command (given
    /// at most `timeout`), or from `secrets`. The error never contains the
    /// secret, nor the command's arguments.
    pub async fn resolve(&self, secrets: &Secrets, timeout: Duration) -> Result<SecretString> {
        match self {
            PasswordSource::Env(var) => match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(SecretString::from(v)),
                Ok(_) => Err(Error::new(
                    ErrorKind::Config,
                    format!("the environment variable {var} (password_env) is empty"),
                )),
                Err(_) => Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the environment variable {var} (password_env) is not set: export it, \
                         or store the password ({})",
                        say(&Action::AddAccount {
                            account: None,
                            provider: None
                        })
                    ),
                )),
            },
            PasswordSource::Command(cmd) => run_password_command(cmd, timeout).await,
            PasswordSource::Store(key) => match secrets.get(key).await? {
                Some(p) => Ok(p),
                None => Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "no password is stored for '{key}' in {}: run {} again, or set \
                         password_env / password_command for it",
                        secrets.describe(),
                        say(&Action::AddAccount {
                            account: Some(key.clone()),
                            provider: None
                        })
                    ),
                )),
            },
            PasswordSource::Given(s) => Ok(s.clone()),
        }
    }

    /// Where the password comes from, in words that hold no secret: "the
    /// environment variable PW", "the password command `pass ...`".
    pub fn describe(&self) -> String {
        match self {
            PasswordSource::Env(v) => format!("the environment variable {v}"),
            PasswordSource::Command(c) => format!("the password command `{}`", shown_command(c)),
            PasswordSource::Store(_) => "postie's secret store".into(),
            PasswordSource::Given(_) => "the command line".into(),
        }
    }
}

/// Kill the process group a password command leads.
fn stop_group(leader: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = leader
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    #[cfg(not(unix))]
    let _ = leader;
}

fn seconds_or_millis(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A command as it may be shown: the program only, since its arguments may
/// carry a secret (`echo hunter2` in a hurry) and this text reaches logs.
fn shown_command(cmd: &str) -> String {
    let program = cmd.split_whitespace().next().unwrap_or("");
    if cmd.trim() == program {
        program.to_string()
    } else {
        format!("{program} ...")
    }
}

/// Run `cmd` with `sh -c` and take the first line of its output; a command
/// still running after `timeout` is killed.
async fn run_password_command(cmd: &str, timeout: Duration) -> Result<SecretString> {
    let shown = shown_command(cmd);
    let mut command = tokio::process::Command::new("sh");
    command
        .arg("-c")
        .arg(cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    // Its own process group, so that a timeout stops what the shell
    // started too (`pass` runs gpg, which may wait for a pinentry).
    #[cfg(unix)]
    command.process_group(0);
    let child = command.spawn().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot run the password command `{shown}`: {e}"),
        )
    })?;
    let group = child.id();
    let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Ok(r) => r.map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("the password command `{shown}` could not be read: {e}"),
            )
        })?,
        Err(_) => {
            stop_group(group);
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the password command `{shown}` did not finish within {} and was stopped: \
                     it may be waiting for input nobody can give here (a passphrase prompt \
                     without a terminal, a locked password manager); unlock it first, or run it \
                     by hand to see where it waits",
                    seconds_or_millis(timeout)
                ),
            ));
        }
    };
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "the password command `{shown}` failed ({}); run it by hand to see why",
                out.status
            ),
        ));
    }
    let text = std::str::from_utf8(&stdout).map_err(|_| {
        Error::new(
            ErrorKind::Config,
            format!("the password command `{shown}` printed something that is not UTF-8"),
        )
    })?;
    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
    if first.is_empty() {
        return Err(Error::new(
            ErrorKind::Config,
            format!("the password command `{shown}` printed nothing"),
        ));
    }
    Ok(SecretString::from(first.to_string()))
}

/// Normalise an app password as providers display it: Google shows
/// `abcd efgh ijkl mnop` and accepts the 16 letters without the spaces.
/// Only whitespace is removed (iCloud's dashes are part of the password).
pub fn normalize_app_password(p: &SecretString) -> SecretString {
    let s = p.expose_secret();
    if s.chars().any(char::is_whitespace) {
        SecretString::from(s.chars().filter(|c| !c.is_whitespace()).collect::<String>())
    } else {
        p.clone()
    }
}

/// Which secret store to use ([`STORE_ENV`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StoreChoice {
    /// The system keyring when it is usable without a prompt, else the file.
    #[default]
    Auto,
    /// The system keyring, or an error saying why it cannot be used.
    Keyring,
    /// The encrypted file.
    File,
}

impl StoreChoice {
    /// Parse `auto`, `keyring` or `file` (any case; empty means `auto`).
    pub fn parse(s: &str) -> Result<StoreChoice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "auto" => Ok(StoreChoice::Auto),
            "keyring" => Ok(StoreChoice::Keyring),
            "file" => Ok(StoreChoice::File),
            other => Err(Error::new(
                ErrorKind::Config,
                format!("{STORE_ENV}={other} is not a secret store: use auto, keyring or file"),
            )),
        }
    }

    /// The choice made by [`STORE_ENV`]; `auto` when it is not set.
    pub fn from_env() -> Result<StoreChoice> {
        match std::env::var(STORE_ENV) {
            Ok(v) => StoreChoice::parse(&v),
            Err(std::env::VarError::NotPresent) => Ok(StoreChoice::Auto),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::new(
                ErrorKind::Config,
                format!("{STORE_ENV} is not UTF-8: use auto, keyring or file"),
            )),
        }
    }
}

/// Supplies the encrypted file's passphrase; called at most once, and only
/// when the file has to be opened.
pub type Passphrase = Box<dyn Fn() -> Result<SecretString> + Send + Sync>;

/// postie's secret store: the system keyring or the encrypted file.
///
/// With the keyring, the file is still read when the keyring has no entry
/// for a key and the file exists, so a password stored before a keyring was
/// available is not lost; the passphrase is asked only then.
pub struct SecretStore {
    backend: Backend,
    file: LazyFile,
}

enum Backend {
    Keyring(Keyring),
    File,
}

impl std::fmt::Debug for SecretStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretStore")
            .field("store", &self.describe())
            .finish_non_exhaustive()
    }
}

impl SecretStore {
    /// Open the store `choice` asks for. `file` is the encrypted file's path
    /// ([`FileStore::default_path`]); `passphrase` is called only if that file
    /// must be opened. `auto` probes the keyring with a short deadline, so it
    /// never hangs on a missing or silent one.
    pub fn open(choice: StoreChoice, file: PathBuf, passphrase: Passphrase) -> Result<SecretStore> {
        Ok(SecretStore {
            backend: select(choice, Keyring::probe)?,
            file: LazyFile::new(file, passphrase),
        })
    }

    /// The encrypted file alone, without probing for a keyring.
    pub fn file(path: PathBuf, passphrase: Passphrase) -> SecretStore {
        SecretStore {
            backend: Backend::File,
            file: LazyFile::new(path, passphrase),
        }
    }

    /// Where secrets are written, for messages: "the system keyring (Secret
    /// Service)", "the encrypted file /home/me/.local/share/postie/secrets.enc".
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Keyring(k) => k.describe().to_string(),
            Backend::File => format!("the encrypted file {}", self.file.path.display()),
        }
    }

    /// True when secrets are written to the system keyring.
    pub fn is_keyring(&self) -> bool {
        matches!(self.backend, Backend::Keyring(_))
    }

    /// Read one secret.
    pub fn get(&self, key: &str) -> Result<Option<SecretString>> {
        if let Backend::Keyring(k) = &self.backend
            && let Some(s) = k.get(key)?
        {
            return Ok(Some(s));
        }
        if !self.file.exists() {
            return Ok(None);
        }
        self.file.open()?.get(key)
    }

    /// Store (or replace) one secret. With the keyring, an older copy in the
    /// file is left alone (removing it would need the passphrase); reads
    /// prefer the keyring.
    pub fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        match &self.backend {
            Backend::Keyring(k) => k.set(key, value),
            Backend::File => self.file.open()?.set(key, value),
        }
    }

    /// Delete one secret wherever it is kept (with the keyring, also from the
    /// file when the file exists); true when it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let in_keyring = match &self.backend {
            Backend::Keyring(k) => k.delete(key)?,
            Backend::File => false,
        };
        let in_file = self.file.exists() && self.file.open()?.delete(key)?;
        Ok(in_keyring || in_file)
    }

    #[cfg(test)]
    fn with_keyring(keyring: Keyring, file: PathBuf, passphrase: Passphrase) -> SecretStore {
        SecretStore {
            backend: Backend::Keyring(keyring),
            file: LazyFile::new(file, passphrase),
        }
    }
}

/// The choice applied to what the probe finds.
fn select(choice: StoreChoice, probe: impl FnOnce() -> Probe) -> Result<Backend> {
    let probed = match choice {
        StoreChoice::File => return Ok(Backend::File),
        StoreChoice::Auto | StoreChoice::Keyring => probe(),
    };
    match (choice, probed) {
        (_, Probe::Ready(k)) | (StoreChoice::Keyring, Probe::Locked(k, _)) => {
            Ok(Backend::Keyring(k))
        }
        (StoreChoice::Keyring, Probe::Unusable(why)) => Err(Error::new(
            ErrorKind::Secret,
            format!(
                "{STORE_ENV}=keyring, but the system keyring cannot be used: {why}. {}.",
                keyring::fallback_hint()
            ),
        )),
        (_, Probe::Locked(_, why) | Probe::Unusable(why)) => {
            tracing::debug!(reason = %why, "not using the system keyring; using the encrypted file");
            Ok(Backend::File)
        }
    }
}

/// The encrypted file, opened (passphrase asked) on first use.
struct LazyFile {
    path: PathBuf,
    passphrase: Passphrase,
    opened: OnceLock<FileStore>,
}

impl LazyFile {
    fn new(path: PathBuf, passphrase: Passphrase) -> LazyFile {
        LazyFile {
            path,
            passphrase,
            opened: OnceLock::new(),
        }
    }

    fn exists(&self) -> bool {
        self.path.exists()
    }

    fn open(&self) -> Result<&FileStore> {
        if let Some(f) = self.opened.get() {
            return Ok(f);
        }
        let passphrase = (self.passphrase)()?;
        Ok(self
            .opened
            .get_or_init(|| FileStore::new(self.path.clone(), passphrase)))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    /// A passphrase source that counts how often it was asked.
    fn counted(pass: &'static str) -> (Passphrase, Arc<AtomicUsize>) {
        let n = Arc::new(AtomicUsize::new(0));
        let m = n.clone();
        (
            Box::new(move || {
                m.fetch_add(1, Ordering::SeqCst);
                Ok(secret(pass))
            }),
            n,
        )
    }

    fn never() -> Passphrase {
        Box::new(|| panic!("the passphrase was asked for"))
    }

    fn is_keyring(b: &Backend) -> bool {
        matches!(b, Backend::Keyring(_))
    }

    #[test]
    fn store_choice_parses() {
        assert_eq!(StoreChoice::parse("").unwrap(), StoreChoice::Auto);
        assert_eq!(StoreChoice::parse("AUTO").unwrap(), StoreChoice::Auto);
        assert_eq!(
            StoreChoice::parse(" keyring ").unwrap(),
            StoreChoice::Keyring
        );
        assert_eq!(StoreChoice::parse("file").unwrap(), StoreChoice::File);
        let err = StoreChoice::parse("vault").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("auto, keyring or file"), "{err}");
    }

    #[test]
    fn file_choice_never_probes() {
        let b = select(StoreChoice::File, || panic!("probed")).unwrap();
        assert!(!is_keyring(&b));
    }

    #[test]
    fn auto_takes_a_ready_keyring_and_falls_back_otherwise() {
        let ready = || Probe::Ready(keyring::tests::mock());
        assert!(is_keyring(&select(StoreChoice::Auto, ready).unwrap()));
        let locked = || Probe::Locked(keyring::tests::mock(), "locked".into());
        assert!(!is_keyring(&select(StoreChoice::Auto, locked).unwrap()));
        let absent = || Probe::Unusable("no bus".into());
        assert!(!is_keyring(&select(StoreChoice::Auto, absent).unwrap()));
    }

    #[test]
    fn forced_keyring_accepts_locked_and_explains_absent() {
        let locked = || Probe::Locked(keyring::tests::mock(), "locked".into());
        assert!(is_keyring(&select(StoreChoice::Keyring, locked).unwrap()));
        let err = match select(StoreChoice::Keyring, || {
            Probe::Unusable("no D-Bus session bus".into())
        }) {
            Err(e) => e,
            Ok(_) => panic!("a keyring was selected"),
        };
        assert_eq!(err.kind(), ErrorKind::Secret);
        let msg = err.to_string();
        for part in [
            "no D-Bus session bus",
            "POSTIE_SECRET_STORE=file",
            PASSPHRASE_ENV,
            "password_command",
        ] {
            assert!(msg.contains(part), "{part:?} missing from: {msg}");
        }
    }

    #[test]
    fn keyring_store_needs_no_passphrase_without_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let s =
            SecretStore::with_keyring(keyring::tests::mock(), dir.path().join("s.enc"), never());
        assert!(s.get("a").unwrap().is_none());
        s.set("a", &secret("pw-a")).unwrap();
        assert_eq!(s.get("a").unwrap().unwrap().expose_secret(), "pw-a");
        assert!(s.delete("a").unwrap());
        assert!(!s.delete("a").unwrap());
        assert!(!dir.path().join("s.enc").exists());
        assert!(s.is_keyring());
        assert_eq!(s.describe(), "the mock keyring");
    }

    #[test]
    fn keyring_store_still_reads_and_deletes_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.enc");
        FileStore::new(path.clone(), secret("pp"))
            .set("old", &secret("from-file"))
            .unwrap();
        let (pass, asked) = counted("pp");
        let s = SecretStore::with_keyring(keyring::tests::mock(), path.clone(), pass);
        s.set("new", &secret("from-keyring")).unwrap();
        assert_eq!(
            s.get("new").unwrap().unwrap().expose_secret(),
            "from-keyring"
        );
        assert_eq!(
            asked.load(Ordering::SeqCst),
            0,
            "keyring hit asked for the passphrase"
        );
        assert_eq!(s.get("old").unwrap().unwrap().expose_secret(), "from-file");
        assert!(s.get("gone").unwrap().is_none());
        assert!(s.delete("old").unwrap());
        assert!(s.get("old").unwrap().is_none());
        assert_eq!(
            asked.load(Ordering::SeqCst),
            1,
            "the passphrase is asked once"
        );
    }

    #[test]
    fn file_store_asks_for_the_passphrase_only_when_needed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.enc");
        let s = SecretStore::file(path.clone(), never());
        assert!(s.get("a").unwrap().is_none());
        assert!(!s.delete("a").unwrap());
        let (pass, asked) = counted("pp");
        let s = SecretStore::file(path.clone(), pass);
        s.set("a", &secret("pw")).unwrap();
        assert_eq!(s.get("a").unwrap().unwrap().expose_secret(), "pw");
        assert_eq!(asked.load(Ordering::SeqCst), 1);
        assert!(path.exists());
        assert!(
            s.describe().starts_with("the encrypted file "),
            "{}",
            s.describe()
        );
    }

    #[test]
    fn debug_is_redacted() {
        let dir = tempfile::tempdir().unwrap();
        let s = SecretStore::with_keyring(keyring::tests::mock(), dir.path().join("s"), never());
        s.set("k", &secret("hunter2-visible")).unwrap();
        let given = PasswordSource::Given(secret("hunter2-visible"));
        let shown = format!("{s:?} {given:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[tokio::test]
    async fn store_source_reads_the_store_and_names_it_when_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.enc");
        let secrets = Secrets::from(SecretStore::with_keyring(
            keyring::tests::mock(),
            path.clone(),
            never(),
        ));
        let err = PasswordSource::Store("acct".into())
            .resolve(&secrets, PASSWORD_COMMAND_TIMEOUT)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no password is stored for 'acct' in the mock keyring"),
            "{err}"
        );
    }

    #[test]
    fn app_password_spaces_are_stripped() {
        let p = normalize_app_password(&secret("abcd efgh ijkl mnop"));
        assert_eq!(p.expose_secret(), "abcdefghijklmnop");
        let i = normalize_app_password(&secret("abcd-efgh-ijkl-mnop"));
        assert_eq!(i.expose_secret(), "abcd-efgh-ijkl-mnop");
    }

    #[tokio::test]
    async fn env_and_command_sources() {
        let no_store = Secrets::lazy(|| unreachable!("the store was opened"));
        let t = PASSWORD_COMMAND_TIMEOUT;
        let cmd = PasswordSource::Command("printf 's3cret\\nsecond line\\n'".into());
        assert_eq!(
            cmd.resolve(&no_store, t).await.unwrap().expose_secret(),
            "s3cret"
        );
        let failing = PasswordSource::Command("exit 3".into());
        let err = failing.resolve(&no_store, t).await.unwrap_err().to_string();
        assert!(err.contains("failed"), "{err}");
        let leaky = PasswordSource::Command("echo hunter2-secret >/dev/null; false".into());
        let err = leaky.resolve(&no_store, t).await.unwrap_err().to_string();
        assert!(
            err.contains("`echo ...`") && !err.contains("hunter2"),
            "{err}"
        );
        let missing = PasswordSource::Env("POSTIE_TEST_SURELY_UNSET_VAR".into());
        let err = missing.resolve(&no_store, t).await.unwrap_err().to_string();
        assert!(err.contains("not set"), "{err}");
    }

    #[tokio::test]
    async fn a_password_command_that_hangs_is_stopped_at_its_timeout() {
        let no_store = Secrets::lazy(|| unreachable!("the store was opened"));
        let dir = tempfile::tempdir().unwrap();
        let pid_file = dir.path().join("pid");
        // The shell starts a child that would outlive it; both must stop.
        let cmd = format!(
            "sleep 30 & echo $! > {}; wait; echo late-secret",
            pid_file.display()
        );
        let started = std::time::Instant::now();
        let err = PasswordSource::Command(cmd)
            .resolve(&no_store, Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::Config);
        let msg = err.to_string();
        assert!(
            msg.contains("`sleep ...`") && msg.contains("did not finish within 300 ms"),
            "{msg}"
        );
        #[cfg(target_os = "linux")]
        {
            let pid = std::fs::read_to_string(&pid_file).unwrap();
            let proc_dir = std::path::PathBuf::from(format!("/proc/{}", pid.trim()));
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            // Gone, or a zombie waiting for its (killed) parent's reaper.
            let alive = || {
                std::fs::read_to_string(proc_dir.join("stat")).is_ok_and(|st| !st.contains(") Z "))
            };
            while alive() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            assert!(!alive(), "the command's child {} still runs", pid.trim());
        }
    }
}
