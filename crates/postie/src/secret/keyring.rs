//! The system keyring, through keyring-core: the Secret Service on Linux and
//! the BSDs (GNOME Keyring, KWallet, KeePassXC), the login Keychain on macOS,
//! the Credential Manager on Windows.
//!
//! Every call runs on a thread of its own and is given a deadline. The
//! keyring stores are blocking APIs; on Linux they drive D-Bus through zbus,
//! which must not run on a tokio worker (zbus's tokio flavour starts a
//! runtime of its own and panics inside another; any flavour would stall the
//! caller's runtime). A plain thread works the same from sync code and from
//! inside `block_on`, and the deadline turns a keyring that never answers
//! (a hung bus, an unlock prompt nobody sees) into an error instead of a hang.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::time::Duration;

use keyring_core::{CredentialStore, Entry};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroize;

use crate::error::{Error, ErrorKind, Result};

use super::{PASSPHRASE_ENV, STORE_ENV};

/// The service name postie's items are stored under (the user is the key,
/// usually the account name): `secret-tool lookup service postie username NAME`.
pub const SERVICE: &str = "postie";

/// How long the probe may take before the keyring counts as absent.
const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// How long one read, write or delete may take; long enough for a person to
/// answer an unlock prompt.
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// What probing the system keyring found.
pub(crate) enum Probe {
    /// Present and unlocked: usable without a prompt.
    Ready(Keyring),
    /// Present but locked: using it may show an unlock prompt. The reason.
    #[cfg_attr(
        not(any(
            target_os = "linux",
            target_os = "freebsd",
            target_os = "openbsd",
            target_os = "netbsd",
            target_os = "dragonfly"
        )),
        allow(dead_code, reason = "only the Secret Service reports a locked store")
    )]
    Locked(Keyring, String),
    /// Absent or not answering. The reason, for the user.
    Unusable(String),
}

/// A handle on the platform's credential store.
#[derive(Clone)]
pub(crate) struct Keyring {
    store: Arc<CredentialStore>,
    name: &'static str,
    /// The Secret Service shows a label in its UI (Seahorse, KWallet).
    label: bool,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Wrap a keyring-core store; `name` is what the user is told.
    pub(crate) fn new(store: Arc<CredentialStore>, name: &'static str, label: bool) -> Keyring {
        Keyring { store, name, label }
    }

    /// Find out, within a short deadline, whether this platform's keyring
    /// can be used.
    pub(crate) fn probe() -> Probe {
        match on_own_thread(PROBE_TIMEOUT, platform::probe) {
            Ok(p) => p,
            Err(stuck) => Probe::Unusable(format!("{} {stuck}", platform::NAME)),
        }
    }

    /// What this store is, for messages.
    pub(crate) fn describe(&self) -> &'static str {
        self.name
    }

    /// Read the secret under `key`, `None` when there is none.
    pub(crate) fn get(&self, key: &str) -> Result<Option<SecretString>> {
        let this = self.clone();
        let k = key.to_string();
        let got = self.call("read", key, move || {
            this.entry(&k)?.get_password().map(SecretString::from)
        })?;
        match got {
            Ok(s) => Ok(Some(s)),
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(self.error("read", key, e)),
        }
    }

    /// Store (or replace) the secret under `key`.
    pub(crate) fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let this = self.clone();
        let k = key.to_string();
        let v = value.clone();
        self.call("store", key, move || {
            this.entry(&k)?.set_password(v.expose_secret())
        })?
        .map_err(|e| self.error("store", key, e))
    }

    /// Delete the secret under `key`; true when it existed.
    pub(crate) fn delete(&self, key: &str) -> Result<bool> {
        let this = self.clone();
        let k = key.to_string();
        match self.call("delete", key, move || this.entry(&k)?.delete_credential())? {
            Ok(()) => Ok(true),
            Err(keyring_core::Error::NoEntry) => Ok(false),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    fn entry(&self, key: &str) -> keyring_core::Result<Entry> {
        if self.label {
            let label = format!("postie: {key}");
            let mods = HashMap::from([("label", label.as_str())]);
            Entry::new_in_store_with_modifiers(&self.store, SERVICE, key, &mods)
        } else {
            Entry::new_in_store(&self.store, SERVICE, key)
        }
    }

    fn call<T: Send + 'static>(
        &self,
        what: &str,
        key: &str,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        on_own_thread(CALL_TIMEOUT, f).map_err(|stuck| {
            Error::new(
                ErrorKind::Secret,
                format!(
                    "cannot {what} the password for '{key}' in {}: it {stuck}. {}",
                    self.name,
                    fallback_hint()
                ),
            )
        })
    }

    /// A keyring-core error as postie's error. keyring-core's errors can
    /// carry the secret's bytes (`BadEncoding`, `BadDataFormat`): they are
    /// wiped here and never attached as a source.
    fn error(&self, what: &str, key: &str, e: keyring_core::Error) -> Error {
        use keyring_core::Error as K;
        let detail = match e {
            K::NoStorageAccess(p) => format!("access was refused or it is locked ({p})"),
            K::PlatformFailure(p) => p.to_string(),
            K::BadEncoding(mut bytes) => {
                bytes.zeroize();
                "the stored value is not UTF-8 text".to_string()
            }
            K::BadDataFormat(mut bytes, _) => {
                bytes.zeroize();
                "the stored value is malformed".to_string()
            }
            K::Ambiguous(items) => format!(
                "{} items match service '{SERVICE}' and user '{key}'; delete all but one",
                items.len()
            ),
            other => other.to_string(),
        };
        Error::new(
            ErrorKind::Secret,
            format!(
                "cannot {what} the password for '{key}' in {}: {detail}. {}",
                self.name,
                fallback_hint()
            ),
        )
    }
}

/// What to do when the keyring cannot be used.
pub(crate) fn fallback_hint() -> String {
    format!(
        "To keep passwords in postie's encrypted file instead, set {STORE_ENV}=file (and \
         {PASSPHRASE_ENV} for unattended use), or give the account password_env / \
         password_command"
    )
}

/// Why a call on its own thread produced nothing.
#[derive(Debug)]
enum Stuck {
    TimedOut(Duration),
    Crashed,
    NoThread(std::io::Error),
}

impl std::fmt::Display for Stuck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stuck::TimedOut(d) => write!(
                f,
                "did not answer within {} s (is it waiting for an unlock prompt?)",
                d.as_secs()
            ),
            Stuck::Crashed => f.write_str("failed unexpectedly"),
            Stuck::NoThread(e) => write!(f, "could not be called (no thread: {e})"),
        }
    }
}

/// Run `f` on a new thread and wait at most `timeout` for its result. A call
/// that overruns is abandoned: its thread ends with the process.
fn on_own_thread<T: Send + 'static>(
    timeout: Duration,
    f: impl FnOnce() -> T + Send + 'static,
) -> std::result::Result<T, Stuck> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("postie-keyring".into())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(Stuck::NoThread)?;
    rx.recv_timeout(timeout).map_err(|e| match e {
        mpsc::RecvTimeoutError::Timeout => Stuck::TimedOut(timeout),
        mpsc::RecvTimeoutError::Disconnected => Stuck::Crashed,
    })
}

#[cfg(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
))]
mod platform {
    use std::path::Path;
    use std::sync::Arc;

    use secret_service::EncryptionType;
    use secret_service::blocking::SecretService;

    use super::{Keyring, Probe};

    pub(super) const NAME: &str = "the system keyring (Secret Service)";

    /// Usable = a session bus is reachable, a Secret Service answers on it and
    /// it has a default collection (where new items go). A locked collection
    /// is reported apart: unlocking it takes a prompt, which a headless
    /// session cannot show.
    pub(super) fn probe() -> Probe {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none_or(|a| a.is_empty()) {
            // zbus then tries $XDG_RUNTIME_DIR/bus, where systemd puts the bus
            let fallback = std::env::var_os("XDG_RUNTIME_DIR")
                .map(|d| Path::new(&d).join("bus"))
                .filter(|p| p.exists());
            if fallback.is_none() {
                return Probe::Unusable(format!(
                    "{NAME} needs a D-Bus session bus, and there is none here \
                     (DBUS_SESSION_BUS_ADDRESS is not set): usual on servers, in containers and CI"
                ));
            }
        }
        // Plain (unencrypted) session: the probe moves no secret.
        let ss = match SecretService::connect(EncryptionType::Plain) {
            Ok(ss) => ss,
            Err(e) => {
                return Probe::Unusable(format!(
                    "no Secret Service answers on the D-Bus session bus ({e})"
                ));
            }
        };
        let locked = match ss.get_default_collection().and_then(|c| c.is_locked()) {
            Ok(locked) => locked,
            Err(e) => {
                return Probe::Unusable(format!(
                    "the Secret Service has no usable default collection ({e})"
                ));
            }
        };
        drop(ss);
        let store = match zbus_secret_service_keyring_store::Store::new() {
            Ok(s) => s,
            Err(e) => return Probe::Unusable(format!("{NAME} cannot be opened ({e})")),
        };
        let keyring = Keyring::new(store as Arc<_>, NAME, true);
        if locked {
            Probe::Locked(keyring, format!("{NAME} is locked"))
        } else {
            Probe::Ready(keyring)
        }
    }
}

#[cfg(target_os = "macos")]
mod platform {
    use std::sync::Arc;

    use super::{Keyring, Probe};

    pub(super) const NAME: &str = "the macOS Keychain";

    pub(super) fn probe() -> Probe {
        match apple_native_keyring_store::keychain::Store::new() {
            Ok(s) => Probe::Ready(Keyring::new(s as Arc<_>, NAME, false)),
            Err(e) => Probe::Unusable(format!("{NAME} cannot be opened ({e})")),
        }
    }
}

#[cfg(target_os = "windows")]
mod platform {
    use std::sync::Arc;

    use super::{Keyring, Probe};

    pub(super) const NAME: &str = "the Windows Credential Manager";

    pub(super) fn probe() -> Probe {
        match windows_native_keyring_store::Store::new() {
            Ok(s) => Probe::Ready(Keyring::new(s as Arc<_>, NAME, false)),
            Err(e) => Probe::Unusable(format!("{NAME} cannot be opened ({e})")),
        }
    }
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly",
    target_os = "macos",
    target_os = "windows"
)))]
mod platform {
    use super::Probe;

    pub(super) const NAME: &str = "the system keyring";

    pub(super) fn probe() -> Probe {
        Probe::Unusable("postie has no system keyring support on this platform".to_string())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A keyring backed by keyring-core's in-memory mock store.
    pub(crate) fn mock() -> Keyring {
        Keyring::new(
            keyring_core::mock::Store::new().unwrap() as Arc<_>,
            "the mock keyring",
            false,
        )
    }

    #[test]
    fn round_trip() {
        let k = mock();
        assert!(k.get("a").unwrap().is_none());
        k.set("a", &SecretString::from("s3cret-value".to_string()))
            .unwrap();
        assert_eq!(k.get("a").unwrap().unwrap().expose_secret(), "s3cret-value");
        assert!(k.delete("a").unwrap());
        assert!(!k.delete("a").unwrap());
        assert!(k.get("a").unwrap().is_none());
    }

    #[tokio::test]
    async fn works_inside_a_current_thread_runtime() {
        let k = mock();
        k.set("rt", &SecretString::from("x".to_string())).unwrap();
        assert_eq!(k.get("rt").unwrap().unwrap().expose_secret(), "x");
    }

    #[test]
    fn errors_carry_no_secret_bytes() {
        let k = mock();
        for e in [
            keyring_core::Error::BadEncoding(b"hunter2-xyzzy".to_vec()),
            keyring_core::Error::BadDataFormat(b"hunter2-xyzzy".to_vec(), "bad".to_string().into()),
        ] {
            let err = k.error("read", "acct", e);
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("hunter2"), "{shown}");
            assert!(!shown.contains("104, 117"), "{shown}"); // the bytes as a list
            assert!(shown.contains(STORE_ENV), "{shown}");
            assert_eq!(err.kind(), ErrorKind::Secret);
        }
    }

    #[test]
    fn a_call_that_hangs_times_out() {
        let r = on_own_thread(Duration::from_millis(50), || {
            std::thread::sleep(Duration::from_secs(5))
        });
        assert!(matches!(r, Err(Stuck::TimedOut(_))));
        let r = on_own_thread(Duration::from_secs(5), || -> u8 { panic!("boom") });
        assert!(matches!(r, Err(Stuck::Crashed)));
    }
}
