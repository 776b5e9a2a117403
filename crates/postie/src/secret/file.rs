//! The encrypted secret file: the store used when no system keyring is
//! available (servers, CI, containers) or when `POSTIE_SECRET_STORE=file`.
//!
//! The file is encrypted at rest with XChaCha20-Poly1305 under a key derived
//! (Argon2id) from a passphrase that comes from `POSTIE_PASSPHRASE` or a
//! prompt; it is written atomically with mode 0600, so a crash mid-write never
//! destroys a stored secret, and a lock file serialises writers.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::error::{Error, ErrorKind, Result};
use crate::fs::write_atomic;

/// Environment variable holding the secret-store passphrase (for CI and cron).
pub const PASSPHRASE_ENV: &str = "POSTIE_PASSPHRASE";

const MAGIC: &[u8; 8] = b"POSTIE\x00\x01";
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;

/// The encrypted secret file.
pub struct FileStore {
    path: PathBuf,
    passphrase: SecretString,
}

impl std::fmt::Debug for FileStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FileStore {
    /// The default location inside postie's data directory.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join("secrets.enc")
    }

    /// Open (lazily) the store at `path` with `passphrase`.
    pub fn new(path: PathBuf, passphrase: SecretString) -> FileStore {
        FileStore { path, passphrase }
    }

    /// The passphrase from `POSTIE_PASSPHRASE`, if set.
    pub fn passphrase_from_env() -> Option<SecretString> {
        std::env::var(PASSPHRASE_ENV)
            .ok()
            .filter(|v| !v.is_empty())
            .map(SecretString::from)
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read one secret.
    pub fn get(&self, key: &str) -> Result<Option<SecretString>> {
        let mut map = self.load()?;
        Ok(map.remove(key).map(|v| SecretString::from(v.to_string())))
    }

    /// Store (or replace) one secret.
    pub fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let _lock = self.lock()?;
        let mut map = self.load()?;
        map.insert(
            key.to_string(),
            Zeroizing::new(value.expose_secret().to_string()),
        );
        self.save(&map)
    }

    /// Delete one secret; true when it existed.
    pub fn delete(&self, key: &str) -> Result<bool> {
        let _lock = self.lock()?;
        let mut map = self.load()?;
        let existed = map.remove(key).is_some();
        if existed {
            self.save(&map)?;
        }
        Ok(existed)
    }

    /// Serialise writers: two postie processes updating the store at once
    /// must not lose each other's update.
    fn lock(&self) -> Result<fs::File> {
        if let Some(d) = self.path.parent() {
            fs::create_dir_all(d).map_err(|e| self.io_error("create the directory of", e))?;
        }
        let lock_path = self.path.with_extension("lock");
        let f = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| self.io_error("lock", e))?;
        f.lock().map_err(|e| self.io_error("lock", e))?;
        Ok(f)
    }

    fn io_error(&self, what: &str, e: std::io::Error) -> Error {
        Error::new(
            ErrorKind::Secret,
            format!(
                "cannot {what} the secret store {}: {e}",
                self.path.display()
            ),
        )
    }

    fn load(&self) -> Result<BTreeMap<String, Zeroizing<String>>> {
        let data = match fs::read(&self.path) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.io_error("read", e)),
        };
        let corrupt = || {
            Error::new(
                ErrorKind::Secret,
                format!(
                    "the secret store {} is damaged or not a postie secret file; move it aside \
                     and store the passwords again",
                    self.path.display()
                ),
            )
            .with_finding("secret-store-damaged")
        };
        if data.len() < MAGIC.len() + SALT_LEN + NONCE_LEN || &data[..MAGIC.len()] != MAGIC {
            return Err(corrupt());
        }
        let salt = &data[MAGIC.len()..MAGIC.len() + SALT_LEN];
        let nonce = &data[MAGIC.len() + SALT_LEN..MAGIC.len() + SALT_LEN + NONCE_LEN];
        let body = &data[MAGIC.len() + SALT_LEN + NONCE_LEN..];
        let key = self.derive_key(salt)?;
        let cipher = XChaCha20Poly1305::new(key.as_slice().into());
        let plain = Zeroizing::new(cipher.decrypt(XNonce::from_slice(nonce), body).map_err(
            |_| {
                Error::new(
                    ErrorKind::Secret,
                    format!(
                        "cannot open the secret store {}: wrong passphrase (check {PASSPHRASE_ENV}) \
                         or a damaged file. Nothing was changed.",
                        self.path.display()
                    ),
                )
            },
        )?);
        let map: BTreeMap<String, String> =
            serde_json::from_slice(&plain).map_err(|_| corrupt())?;
        Ok(map
            .into_iter()
            .map(|(k, v)| (k, Zeroizing::new(v)))
            .collect())
    }

    fn save(&self, map: &BTreeMap<String, Zeroizing<String>>) -> Result<()> {
        let plain: BTreeMap<&str, &str> =
            map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let plain = Zeroizing::new(serde_json::to_vec(&plain).expect("a string map serialises"));
        let mut salt = [0u8; SALT_LEN];
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut salt);
        rand::rng().fill_bytes(&mut nonce);
        let key = self.derive_key(&salt)?;
        let cipher = XChaCha20Poly1305::new(key.as_slice().into());
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), plain.as_slice())
            .map_err(|_| Error::new(ErrorKind::Secret, "encryption failed"))?;
        let mut out = Vec::with_capacity(MAGIC.len() + SALT_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&salt);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        write_atomic(&self.path, &out).map_err(|e| self.io_error("write", e))
    }

    fn derive_key(&self, salt: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
        let mut key = Zeroizing::new([0u8; 32]);
        argon2::Argon2::default()
            .hash_password_into(
                self.passphrase.expose_secret().as_bytes(),
                salt,
                key.as_mut(),
            )
            .map_err(|e| Error::new(ErrorKind::Secret, format!("key derivation failed: {e}")))?;
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, pass: &str) -> FileStore {
        FileStore::new(
            dir.join("secrets.enc"),
            SecretString::from(pass.to_string()),
        )
    }

    #[test]
    fn round_trip_and_encrypted_at_rest() {
        let dir = tempfile::tempdir().unwrap();
        let s = store(dir.path(), "correct horse");
        s.set("gmail", &SecretString::from("abcdefghijklmnop".to_string()))
            .unwrap();
        s.set("work", &SecretString::from("second-secret".to_string()))
            .unwrap();
        assert_eq!(
            s.get("gmail").unwrap().unwrap().expose_secret(),
            "abcdefghijklmnop"
        );
        let raw = fs::read(s.path()).unwrap();
        assert!(
            !raw.windows(8).any(|w| w == b"abcdefgh"),
            "secret visible on disk"
        );
        assert!(s.delete("gmail").unwrap());
        assert!(s.get("gmail").unwrap().is_none());
        assert_eq!(
            s.get("work").unwrap().unwrap().expose_secret(),
            "second-secret"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(s.path()).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn wrong_passphrase_is_refused_and_nothing_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), "right")
            .set("a", &SecretString::from("x1".to_string()))
            .unwrap();
        let wrong = store(dir.path(), "wrong");
        let err = wrong.get("a").unwrap_err().to_string();
        assert!(err.contains("wrong passphrase"), "{err}");
        assert!(
            wrong
                .set("b", &SecretString::from("y".to_string()))
                .is_err()
        );
        assert_eq!(
            store(dir.path(), "right")
                .get("a")
                .unwrap()
                .unwrap()
                .expose_secret(),
            "x1"
        );
    }

    #[test]
    fn damaged_file_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("secrets.enc"), b"not ours").unwrap();
        let err = store(dir.path(), "p").get("a").unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
    }
}
