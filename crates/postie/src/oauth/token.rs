//! The tokens of one account and how they are kept: one JSON value in the
//! secret store under `NAME/oauth`, so the keyring or the encrypted file
//! protects them like a password.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::TokenResponse;
use oauth2::basic::BasicTokenResponse;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secrets;
use crate::wording::{Action, say};

/// How long before expiry an access token is replaced.
pub(crate) const MARGIN: Duration = Duration::from_secs(300);

/// An account's OAuth tokens. `Debug` shows no token; there is no `Display`.
#[derive(Clone)]
pub struct TokenSet {
    /// The access token sent in XOAUTH2 / OAUTHBEARER.
    pub access_token: SecretString,
    /// When the access token expires, if the server said.
    pub expires_at: Option<SystemTime>,
    /// The refresh token, for the flows that have one.
    pub refresh_token: Option<SecretString>,
    /// The scopes granted (space separated), as the server reported them.
    pub scope: Option<String>,
    /// When the current refresh token was issued (sign-in or rotation).
    pub refresh_token_issued_at: Option<SystemTime>,
    /// When the access token was obtained.
    pub issued_at: Option<SystemTime>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("scope", &self.scope)
            .field("refresh_token_issued_at", &self.refresh_token_issued_at)
            .field("issued_at", &self.issued_at)
            .finish()
    }
}

/// The stored form. Timestamps are Unix seconds.
#[derive(Serialize, Deserialize)]
struct Stored<T> {
    access_token: T,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<u64>,
    #[serde(default = "Option::default", skip_serializing_if = "Option::is_none")]
    refresh_token: Option<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    refresh_token_issued_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    issued_at: Option<u64>,
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn time(s: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(s)
}

impl TokenSet {
    /// The secret-store key of an account's tokens.
    pub fn store_key(name: &str) -> String {
        format!("{name}/oauth")
    }

    /// The stored tokens of account `name`, if it has signed in.
    pub async fn load(store: &Secrets, name: &str) -> Result<Option<TokenSet>> {
        let Some(raw) = store.get(&TokenSet::store_key(name)).await? else {
            return Ok(None);
        };
        let mut s: Stored<String> = serde_json::from_str(raw.expose_secret()).map_err(|_| {
            Error::new(
                ErrorKind::Secret,
                format!(
                    "the stored OAuth tokens of '{name}' in {} are damaged: run {} to sign in again",
                    store.describe(),
                    say(&Action::SignIn {
                        account: Some(name.to_string())
                    })
                ),
            )
        })?;
        let tokens = TokenSet {
            access_token: SecretString::from(s.access_token.as_str()),
            expires_at: s.expires_at.map(time),
            refresh_token: s
                .refresh_token
                .as_ref()
                .map(|r| SecretString::from(r.as_str())),
            scope: s.scope.take(),
            refresh_token_issued_at: s.refresh_token_issued_at.map(time),
            issued_at: s.issued_at.map(time),
        };
        s.access_token.zeroize();
        if let Some(r) = s.refresh_token.as_mut() {
            r.zeroize();
        }
        Ok(Some(tokens))
    }

    /// Store these tokens for account `name`, replacing what was there.
    pub async fn save(&self, store: &Secrets, name: &str) -> Result<()> {
        let s = Stored::<&str> {
            access_token: self.access_token.expose_secret(),
            expires_at: self.expires_at.map(secs),
            refresh_token: self.refresh_token.as_ref().map(|r| r.expose_secret()),
            scope: self.scope.clone(),
            refresh_token_issued_at: self.refresh_token_issued_at.map(secs),
            issued_at: self.issued_at.map(secs),
        };
        let json = Zeroizing::new(serde_json::to_string(&s).expect("token JSON serialises"));
        store
            .set(
                &TokenSet::store_key(name),
                &SecretString::from(json.as_str()),
            )
            .await
    }

    /// Time left before the access token expires (zero once expired);
    /// `None` when the server gave no lifetime.
    pub fn remaining(&self, now: SystemTime) -> Option<Duration> {
        self.expires_at
            .map(|e| e.duration_since(now).unwrap_or(Duration::ZERO))
    }

    /// True when the access token can be used now: it expires in more than
    /// the margin, five minutes, or half its lifetime when it was issued for
    /// less than ten (a server issuing two-second tokens would otherwise make
    /// every call refresh). A token without a known lifetime counts as fresh;
    /// the server's rejection then forces a refresh.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        let Some(left) = self.remaining(now) else {
            return true;
        };
        let lifetime = match (self.issued_at, self.expires_at) {
            (Some(i), Some(e)) => e.duration_since(i).unwrap_or(Duration::ZERO),
            _ => MARGIN * 2,
        };
        left > MARGIN.min(lifetime / 2)
    }

    /// A token set from a token endpoint's answer, obtained at `now`;
    /// `asked` are the scopes requested (reported when the answer has none).
    pub(crate) fn from_response(
        r: &BasicTokenResponse,
        now: SystemTime,
        asked: &[String],
    ) -> TokenSet {
        // The store keeps whole seconds; so does the copy in memory, so the
        // two compare equal.
        let now = std::time::UNIX_EPOCH
            + Duration::from_secs(
                now.duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
        let scope = r
            .scopes()
            .map(|s| s.iter().map(|x| x.as_str()).collect::<Vec<_>>().join(" "))
            .or_else(|| (!asked.is_empty()).then(|| asked.join(" ")));
        TokenSet {
            access_token: SecretString::from(r.access_token().secret().as_str()),
            expires_at: r.expires_in().map(|d| now + d),
            refresh_token: r
                .refresh_token()
                .map(|t| SecretString::from(t.secret().as_str())),
            refresh_token_issued_at: r.refresh_token().map(|_| now),
            scope,
            issued_at: Some(now),
        }
    }

    /// Keep the previous refresh token when the answer brought none (Google
    /// does not rotate; RFC 6749 §6 lets any server keep the old one).
    pub(crate) fn keep_refresh_token_of(mut self, prev: Option<&TokenSet>) -> TokenSet {
        if self.refresh_token.is_none()
            && let Some(p) = prev
        {
            self.refresh_token = p.refresh_token.clone();
            self.refresh_token_issued_at = p.refresh_token_issued_at;
        }
        self
    }

    /// True when both hold the same access token.
    pub(crate) fn same_access_token(&self, other: &SecretString) -> bool {
        self.access_token.expose_secret() == other.expose_secret()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(lifetime: u64, age: u64) -> TokenSet {
        let now = SystemTime::now();
        TokenSet {
            access_token: SecretString::from("at-visible-123"),
            expires_at: Some(now - Duration::from_secs(age) + Duration::from_secs(lifetime)),
            refresh_token: Some(SecretString::from("rt-visible-456")),
            scope: None,
            refresh_token_issued_at: None,
            issued_at: Some(now - Duration::from_secs(age)),
        }
    }

    #[test]
    fn freshness_uses_the_margin_or_half_the_lifetime() {
        let now = SystemTime::now();
        assert!(set(3600, 0).is_fresh(now));
        assert!(!set(3600, 3600 - 299).is_fresh(now));
        assert!(set(3600, 3600 - 301).is_fresh(now));
        assert!(set(2, 0).is_fresh(now), "a just-issued short token is used");
        assert!(!set(2, 2).is_fresh(now));
        let mut unknown = set(1, 0);
        unknown.expires_at = None;
        assert!(unknown.is_fresh(now));
    }

    #[test]
    fn debug_hides_tokens() {
        let shown = format!("{:?}", set(10, 0));
        assert!(!shown.contains("visible"), "{shown}");
        assert!(shown.contains("[redacted]"));
    }

    #[test]
    fn a_missing_refresh_token_keeps_the_old_one() {
        let old = set(10, 0);
        let mut new = set(10, 0);
        new.refresh_token = None;
        let merged = new.keep_refresh_token_of(Some(&old));
        assert_eq!(
            merged.refresh_token.unwrap().expose_secret(),
            "rt-visible-456"
        );
    }
}
