//! [`Secrets`]: the secret store as async code uses it.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::OnceCell;

use super::SecretStore;
use crate::blocking::unblock;
use crate::error::Result;

type Opener = Box<dyn Fn() -> Result<SecretStore> + Send + Sync>;

/// postie's secret store for async callers: opened on first use, and every
/// open, read and write done on a blocking thread ([`crate::blocking`]): the
/// keyring may wait on D-Bus, the encrypted file derives its key with
/// Argon2id and may ask for its passphrase.
///
/// Cheap to clone; clones share one store. An open that fails (no
/// passphrase, the keyring gone) is tried again at the next use, so a relay
/// that started before its secrets were available recovers by itself.
#[derive(Clone)]
pub struct Secrets(Arc<Inner>);

struct Inner {
    open: Opener,
    store: OnceCell<Arc<SecretStore>>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secrets")
            .field("store", &self.0.store.get())
            .finish_non_exhaustive()
    }
}

impl From<SecretStore> for Secrets {
    fn from(store: SecretStore) -> Secrets {
        let store = Arc::new(store);
        Secrets(Arc::new(Inner {
            open: Box::new(|| unreachable!("the store is already open")),
            store: OnceCell::new_with(Some(store)),
        }))
    }
}

impl Secrets {
    /// A store that `open` opens when it is first needed (for postie's own
    /// store: [`SecretStore::open`] with the passphrase source of the
    /// caller's choosing).
    pub fn lazy(open: impl Fn() -> Result<SecretStore> + Send + Sync + 'static) -> Secrets {
        Secrets(Arc::new(Inner {
            open: Box::new(open),
            store: OnceCell::new(),
        }))
    }

    /// The open store (opening it now if needed).
    pub async fn store(&self) -> Result<Arc<SecretStore>> {
        let inner = self.0.clone();
        self.0
            .store
            .get_or_try_init(|| async move { unblock(move || (inner.open)().map(Arc::new)).await })
            .await
            .cloned()
    }

    /// Read one secret.
    pub async fn get(&self, key: &str) -> Result<Option<SecretString>> {
        let store = self.store().await?;
        let key = key.to_string();
        unblock(move || store.get(&key)).await
    }

    /// Store (or replace) one secret.
    pub async fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let store = self.store().await?;
        let (key, value) = (key.to_string(), value.clone());
        unblock(move || store.set(&key, &value)).await
    }

    /// Delete one secret wherever it is kept; true when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let store = self.store().await?;
        let key = key.to_string();
        unblock(move || store.delete(&key)).await
    }

    /// Where secrets are kept, for messages ("the encrypted file ..."); a
    /// store not opened yet is "postie's secret store".
    pub fn describe(&self) -> String {
        match self.0.store.get() {
            Some(s) => s.describe(),
            None => "postie's secret store".into(),
        }
    }
}
