//! Secrets that several hosts share: with one outbox for a fleet of hosts
//! (`[outbox] url = "postgres://..."`), each account's OAuth tokens live in
//! that database, so that every host reads the current access token and a
//! rotated refresh token reaches all of them. A refresh takes the account's
//! lock across hosts ([`SharedSecrets::lock`]) and saves what the provider
//! returned before anyone uses it.
//!
//! Only the tokens are shared ([`is_shared_key`]); passwords and client
//! secrets stay in each host's own secret store.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::error::Result;

/// A store of secrets shared by several hosts. Blocking: called on blocking
/// threads (see [`crate::blocking`]).
pub trait SharedSecrets: Send + Sync + std::fmt::Debug {
    /// Where the secrets are, for messages (never with a password).
    fn describe(&self) -> String;
    /// Read one secret.
    fn get(&self, key: &str) -> Result<Option<SecretString>>;
    /// Store (or replace) one secret.
    fn set(&self, key: &str, value: &SecretString) -> Result<()>;
    /// Delete one secret; true when it existed.
    fn delete(&self, key: &str) -> Result<bool>;
    /// Hold account `name`'s token lock on every host until the returned
    /// guard drops, waiting up to `wait` for another host's refresh.
    fn lock(&self, name: &str, wait: Duration) -> Result<Box<dyn Send>>;
}

/// Opens the shared store when it is first needed; `None`: this host keeps
/// its secrets alone.
pub type SharedOpener = Box<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<Option<Arc<dyn SharedSecrets>>>> + Send>>
        + Send
        + Sync,
>;

/// The keys kept in the shared store: an account's OAuth tokens
/// (`NAME/oauth`), the secret a provider rotates.
pub fn is_shared_key(key: &str) -> bool {
    key.ends_with("/oauth")
}
