//! [`Secrets`]: the secret store as async code uses it.

use std::sync::Arc;

use secrecy::SecretString;
use tokio::sync::OnceCell;

use super::SecretStore;
use super::shared::{SharedOpener, SharedSecrets, is_shared_key};
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
    /// The hosts' shared store, for OAuth tokens ([`is_shared_key`]).
    open_shared: Option<SharedOpener>,
    shared: OnceCell<Option<Arc<dyn SharedSecrets>>>,
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
            open_shared: None,
            shared: OnceCell::new(),
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
            open_shared: None,
            shared: OnceCell::new(),
        }))
    }

    /// [`Secrets::lazy`] on a host of a fleet: OAuth tokens are kept in the
    /// store `open_shared` opens when first needed (`None` from it: this
    /// host keeps them alone).
    pub fn lazy_with_shared(
        open: impl Fn() -> Result<SecretStore> + Send + Sync + 'static,
        open_shared: SharedOpener,
    ) -> Secrets {
        Secrets(Arc::new(Inner {
            open: Box::new(open),
            store: OnceCell::new(),
            open_shared: Some(open_shared),
            shared: OnceCell::new(),
        }))
    }

    /// The store shared with other hosts, when there is one (opened now if
    /// needed).
    pub async fn shared(&self) -> Result<Option<Arc<dyn SharedSecrets>>> {
        let Some(open) = &self.0.open_shared else {
            return Ok(None);
        };
        self.0.shared.get_or_try_init(open).await.cloned()
    }

    /// The shared store, when `key` is kept there.
    async fn shared_for(&self, key: &str) -> Result<Option<Arc<dyn SharedSecrets>>> {
        if is_shared_key(key) {
            self.shared().await
        } else {
            Ok(None)
        }
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

    /// Read one secret. A shared key missing from the shared store but
    /// kept here (signed in before this host joined a fleet) is copied
    /// there: the fleet adopts it.
    pub async fn get(&self, key: &str) -> Result<Option<SecretString>> {
        let shared = self.shared_for(key).await?;
        if let Some(s) = &shared {
            let (s, k) = (s.clone(), key.to_string());
            if let Some(v) = unblock(move || s.get(&k)).await? {
                return Ok(Some(v));
            }
        }
        let local = self.local_get(key).await?;
        if let (Some(s), Some(v)) = (shared, &local) {
            let (k, v) = (key.to_string(), v.clone());
            let shown = s.describe();
            unblock(move || s.set(&k, &v)).await?;
            tracing::info!("{key}: copied from this host's secret store to {shown}");
        }
        Ok(local)
    }

    async fn local_get(&self, key: &str) -> Result<Option<SecretString>> {
        let store = self.store().await?;
        let key = key.to_string();
        unblock(move || store.get(&key)).await
    }

    /// Store (or replace) one secret (a shared key in the shared store).
    pub async fn set(&self, key: &str, value: &SecretString) -> Result<()> {
        let (key, value) = (key.to_string(), value.clone());
        if let Some(s) = self.shared_for(&key).await? {
            return unblock(move || s.set(&key, &value)).await;
        }
        let store = self.store().await?;
        unblock(move || store.set(&key, &value)).await
    }

    /// Delete one secret wherever it is kept (a shared key from the shared
    /// store and from here); true when it existed.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let mut existed = false;
        if let Some(s) = self.shared_for(key).await? {
            let k = key.to_string();
            existed = unblock(move || s.delete(&k)).await?;
        }
        let store = self.store().await?;
        let key = key.to_string();
        Ok(unblock(move || store.delete(&key)).await? || existed)
    }

    /// Where secrets are kept, for messages ("the encrypted file ..."); a
    /// store not opened yet is "postie's secret store".
    pub fn describe(&self) -> String {
        let local = match self.0.store.get() {
            Some(s) => s.describe(),
            None => "postie's secret store".into(),
        };
        match self.0.shared.get() {
            Some(Some(s)) => format!("{local} (OAuth tokens: {})", s.describe()),
            _ => local,
        }
    }
}
