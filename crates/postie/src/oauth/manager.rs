//! Access tokens on demand: refreshed when they near expiry, once per
//! account however many callers ask at the same time, in this process (a
//! tokio mutex per account) and across processes (an exclusive lock on
//! `DATA_DIR/oauth-NAME.lock`, or, on a host of a fleet, the account's lock
//! in the shared store: see [`crate::secret::SharedSecrets`]), after which
//! the tokens are read again because another process may have refreshed
//! meanwhile.
//!
//! Every refresh token the server returns is saved before the new access
//! token is handed out: Microsoft rotates them, and a lost rotated token
//! means signing in again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use secrecy::SecretString;

use super::client::OAuthClient;
use super::endpoints::{Endpoints, resolve};
use super::http::Http;
use super::service_account::ServiceAccountKey;
use super::{Flow, OAuthConfig, OAuthErrorInfo, TokenSet, client_secret, settings};
use crate::blocking::unblock;
use crate::config::AccountConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::provider::ProviderId;
use crate::secret::Secrets;
use crate::wording::{Action, say};

/// How long to wait for another process's refresh of the same account.
const LOCK_WAIT: Duration = Duration::from_secs(180);
const DAY: u64 = 24 * 3600;

/// Hands out access tokens, refreshing them as needed. One per process;
/// clones share their state.
#[derive(Clone)]
pub struct TokenManager {
    inner: Arc<Inner>,
}

struct Inner {
    data_dir: PathBuf,
    slots: Mutex<HashMap<String, Arc<Cell>>>,
    http: Mutex<Option<Http>>,
}

/// One account: its state behind the single-flight lock, and a count of
/// finished token requests readable without the lock.
#[derive(Default)]
struct Cell {
    attempts: AtomicU64,
    state: tokio::sync::Mutex<Slot>,
}

/// What is known about one account in this process.
#[derive(Default)]
struct Slot {
    tokens: Option<TokenSet>,
    /// How the last token request failed, for the callers that waited on it.
    failure: Option<(ErrorKind, String, Option<OAuthErrorInfo>)>,
    endpoints: Option<Endpoints>,
    secret: Option<Option<SecretString>>,
}

impl std::fmt::Debug for TokenManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenManager")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

impl TokenManager {
    /// A manager whose per-account lock files live in `data_dir`.
    pub fn new(data_dir: PathBuf) -> TokenManager {
        TokenManager {
            inner: Arc::new(Inner {
                data_dir,
                slots: Mutex::new(HashMap::new()),
                http: Mutex::new(None),
            }),
        }
    }

    /// An access token for account `name` valid for at least the margin
    /// (five minutes, or half the token's lifetime when that is shorter),
    /// with the token set it belongs to.
    ///
    /// `force_refresh`: the server rejected the token this manager handed
    /// out; a new one is obtained whatever its expiry says (unless another
    /// process already replaced it). Service-account and client-credentials
    /// accounts get a newly minted token instead of a refresh.
    pub async fn access_token(
        &self,
        name: &str,
        acct: &AccountConfig,
        store: &Secrets,
        force_refresh: bool,
    ) -> Result<(SecretString, TokenSet)> {
        let cfg = settings(name, acct)?;
        let cell = self.cell(name);
        let seen = cell.attempts.load(Ordering::Acquire);
        let mut slot = cell.state.lock().await;
        // Single flight: a token request finished while this caller waited;
        // its outcome is the one this caller would get, so share it.
        if cell.attempts.load(Ordering::Acquire) != seen {
            if let Some((kind, message, info)) = &slot.failure {
                let e = Error::new(*kind, message.clone());
                return Err(match info {
                    Some(i) => e.with_oauth(i.clone()),
                    None => e,
                });
            }
            if let Some(t) = &slot.tokens {
                return Ok((t.access_token.clone(), t.clone()));
            }
        }
        let rejected = if force_refresh {
            slot.tokens.as_ref().map(|t| t.access_token.clone())
        } else {
            None
        };
        // A token set can be used when it is fresh and, after a rejection,
        // is not the rejected one.
        let usable = |t: &TokenSet| {
            t.is_fresh(SystemTime::now())
                && (!force_refresh || rejected.as_ref().is_some_and(|r| !t.same_access_token(r)))
        };
        if !force_refresh && let Some(t) = slot.tokens.as_ref().filter(|t| usable(t)) {
            return Ok((t.access_token.clone(), t.clone()));
        }
        let before = TokenSet::load(store, name).await?;
        if let Some(t) = before.as_ref().filter(|t| usable(t)) {
            slot.tokens = Some(t.clone());
            return Ok((t.access_token.clone(), t.clone()));
        }
        let _lock = lock_account(&self.inner.data_dir, name, store).await?;
        let stored = TokenSet::load(store, name).await?;
        // Another process refreshed while this one waited for the lock: its
        // token is as new as a refresh here would give.
        let changed = |t: &TokenSet| {
            before
                .as_ref()
                .is_none_or(|b| !t.same_access_token(&b.access_token))
                && t.remaining(SystemTime::now()) != Some(Duration::ZERO)
        };
        if let Some(t) = stored.as_ref().filter(|t| usable(t) || changed(t)) {
            slot.tokens = Some(t.clone());
            return Ok((t.access_token.clone(), t.clone()));
        }
        let outcome = self.obtain(&mut slot, name, acct, cfg, store, stored).await;
        slot.failure = outcome
            .as_ref()
            .err()
            .map(|e| (e.kind(), e.message().to_string(), e.oauth().cloned()));
        if let Ok(t) = &outcome {
            slot.tokens = Some(t.clone());
        }
        cell.attempts.fetch_add(1, Ordering::Release);
        outcome.map(|t| (t.access_token.clone(), t))
    }

    /// Refresh, or mint for app-only flows, and store the result.
    async fn obtain(
        &self,
        slot: &mut Slot,
        name: &str,
        acct: &AccountConfig,
        cfg: &OAuthConfig,
        store: &Secrets,
        stored: Option<TokenSet>,
    ) -> Result<TokenSet> {
        let client = self.client(slot, name, acct, cfg, store).await?;
        let fresh = match cfg.flow.unwrap_or_default() {
            Flow::ServiceAccount => {
                let path = cfg.service_account_key.as_ref().ok_or_else(|| {
                    Error::new(
                        ErrorKind::Config,
                        format!(
                            "account '{name}' uses a service account but names no \
                             service_account_key"
                        ),
                    )
                })?;
                let path = path.clone();
                let key = unblock(move || ServiceAccountKey::read(&path)).await?;
                client
                    .jwt_bearer(&key, &acct.email, cfg.token_endpoint.is_some())
                    .await?
            }
            Flow::ClientCredentials => client.client_credentials().await?,
            Flow::AuthCode | Flow::Device => {
                let rt = stored
                    .as_ref()
                    .and_then(|t| t.refresh_token.clone())
                    .ok_or_else(|| not_signed_in(name, store, stored.is_some()))?;
                client.refresh(&rt).await?
            }
        };
        let fresh = fresh.keep_refresh_token_of(stored.as_ref());
        // The server may have retired the old refresh token already: the
        // new tokens are kept for this process even when they cannot be
        // stored, rather than lost with the error.
        if let Err(e) = fresh.save(store, name).await {
            tracing::error!(
                account = name,
                "the new OAuth tokens could not be saved in {}: {}; they are used now, but if the \
                 provider rotated the refresh token, a later run may need {}",
                store.describe(),
                e.message(),
                say(&Action::SignIn {
                    account: Some(name.to_string())
                })
            );
        }
        tracing::debug!(account = name, "new access token obtained and stored");
        Ok(fresh)
    }

    /// A warning to show ahead of a known expiry of the refresh token:
    /// Google revokes those of apps in "Testing" status after 7 days;
    /// Microsoft's expire after 90 days unused.
    pub fn warn_expiry(&self, ts: &TokenSet, provider: ProviderId) -> Option<String> {
        ts.refresh_token.as_ref()?;
        let age = SystemTime::now()
            .duration_since(ts.refresh_token_issued_at?)
            .ok()?
            .as_secs();
        let days = age / DAY;
        if provider.is_google() && (6 * DAY..7 * DAY).contains(&age) {
            return Some(format!(
                "this account's Google refresh token was issued {days} days ago. If the Google \
                 Cloud project's OAuth consent screen is in \"Testing\" status, Google revokes \
                 it after 7 days: then sign in again ({}), or publish the app (Google Auth \
                 Platform > Audience > Publish app) to end the weekly expiry",
                say(&Action::SignIn { account: None })
            ));
        }
        if provider.is_microsoft() && age >= 80 * DAY {
            return Some(format!(
                "this account's Microsoft refresh token has not been renewed for {days} days; \
                 Microsoft expires refresh tokens after 90 days without use: send a message (or \
                 ask for an access token) to renew it, or sign in again ({}) once it has expired",
                say(&Action::SignIn { account: None })
            ));
        }
        None
    }

    fn cell(&self, name: &str) -> Arc<Cell> {
        let mut slots = self.inner.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(name.to_string()).or_default().clone()
    }

    fn http(&self) -> Result<Http> {
        let mut h = self.inner.http.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(h) = h.as_ref() {
            return Ok(h.clone());
        }
        let made = Http::new()?;
        *h = Some(made.clone());
        Ok(made)
    }

    async fn client(
        &self,
        slot: &mut Slot,
        name: &str,
        acct: &AccountConfig,
        cfg: &OAuthConfig,
        store: &Secrets,
    ) -> Result<OAuthClient> {
        let http = self.http()?;
        let endpoints = match &slot.endpoints {
            Some(e) => e.clone(),
            None => {
                let e = resolve(&http, acct.provider, cfg).await?;
                slot.endpoints = Some(e.clone());
                e
            }
        };
        let secret = match &slot.secret {
            Some(s) => s.clone(),
            None => {
                let s = client_secret(name, cfg, store).await?;
                slot.secret = Some(s.clone());
                s
            }
        };
        OAuthClient::new(name, acct.provider, cfg, endpoints, secret, http)
    }

    /// Hold account `name`'s token lock (the one refreshes take) while the
    /// caller replaces or deletes its tokens (`postie logout`), so that a
    /// refresh in another process cannot write them back.
    pub async fn lock(&self, name: &str, store: &Secrets) -> Result<AccountLock> {
        Ok(AccountLock(
            lock_account(&self.inner.data_dir, name, store).await?,
        ))
    }
}

/// An account's token lock, held until dropped.
pub struct AccountLock(#[allow(dead_code)] TokenLock);

impl std::fmt::Debug for AccountLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AccountLock")
    }
}

/// A lock on one account's tokens: a locked file on this host, or the
/// shared store's lock across hosts.
pub(crate) enum TokenLock {
    File(#[allow(dead_code)] File),
    Shared(#[allow(dead_code)] Box<dyn Send>),
}

/// Take account `name`'s token lock, waiting for another process's (or,
/// with a shared store, another host's) refresh of the same account to end.
pub(crate) async fn lock_account(
    dir: &std::path::Path,
    name: &str,
    store: &Secrets,
) -> Result<TokenLock> {
    match store.shared().await? {
        Some(shared) => {
            let name = name.to_string();
            unblock(move || shared.lock(&name, LOCK_WAIT).map(TokenLock::Shared)).await
        }
        None => lock_file(dir, name).await.map(TokenLock::File),
    }
}

/// Take `dir/oauth-NAME.lock`, waiting for another process's refresh of the
/// same account to end. Released when the file drops.
async fn lock_file(dir: &std::path::Path, name: &str) -> Result<File> {
    let path = dir.join(format!("oauth-{}.lock", file_safe(name)));
    let io = |what: &str, e: std::io::Error| {
        Error::new(
            ErrorKind::Io,
            format!("cannot {what} the token lock {}: {e}", path.display()),
        )
    };
    std::fs::create_dir_all(dir).map_err(|e| io("create the directory of", e))?;
    let mut opts = OpenOptions::new();
    opts.create(true).truncate(false).write(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let file = opts.open(&path).map_err(|e| io("open", e))?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {}
        Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", e)),
    }
    tracing::debug!(
        account = name,
        "waiting for another process's token refresh"
    );
    let shown = path.display().to_string();
    let waited = tokio::time::timeout(
        LOCK_WAIT,
        unblock(move || {
            file.lock().map(|()| file).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot lock the token lock {shown}: {e}"),
                )
            })
        }),
    )
    .await;
    match waited {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            ErrorKind::Transient,
            format!(
                "another postie process has held the token lock {} for {} s; try again",
                path.display(),
                LOCK_WAIT.as_secs()
            ),
        )),
    }
}

fn not_signed_in(name: &str, store: &Secrets, has_tokens: bool) -> Error {
    let what = if has_tokens {
        "its stored tokens have no refresh token"
    } else {
        "no OAuth tokens are stored for it"
    };
    // Found here, without asking any server: explained as such, not as an
    // authorization server's answer.
    Error::new(
        ErrorKind::Credentials,
        format!(
            "account '{name}' is not signed in: {what} in {}. Run {}",
            store.describe(),
            say(&Action::SignIn {
                account: Some(name.to_string())
            })
        ),
    )
    .with_finding("not-signed-in")
}

/// An account name as a file name part: other bytes become `%XX`.
fn file_safe(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lock_file_names_are_safe() {
        assert_eq!(file_safe("work"), "work");
        assert_eq!(file_safe("a/b c"), "a%2Fb%20c");
    }

    #[test]
    fn expiry_warnings() {
        let m = TokenManager::new(PathBuf::from("/nonexistent"));
        let days_ago = |d: u64| Some(SystemTime::now() - Duration::from_secs(d * DAY + 60));
        let mut ts = TokenSet {
            access_token: SecretString::from("a"),
            expires_at: None,
            refresh_token: Some(SecretString::from("r")),
            scope: None,
            refresh_token_issued_at: days_ago(6),
            issued_at: None,
        };
        let w = m.warn_expiry(&ts, ProviderId::Gmail).unwrap();
        assert!(w.contains("7 days") && w.contains("Testing"), "{w}");
        assert!(m.warn_expiry(&ts, ProviderId::Office365).is_none());
        ts.refresh_token_issued_at = days_ago(8);
        assert!(
            m.warn_expiry(&ts, ProviderId::Gmail).is_none(),
            "published apps go on"
        );
        ts.refresh_token_issued_at = days_ago(85);
        assert!(
            m.warn_expiry(&ts, ProviderId::Outlook)
                .unwrap()
                .contains("90 days")
        );
        ts.refresh_token = None;
        assert!(m.warn_expiry(&ts, ProviderId::Outlook).is_none());
    }
}
