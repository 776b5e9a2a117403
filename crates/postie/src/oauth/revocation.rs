//! `postie logout`: tell the server to revoke the tokens (RFC 7009) where it
//! offers that, then delete them from the secret store whatever the server
//! said: a failed revocation must not leave a usable token on disk.

use secrecy::SecretString;

use super::client::OAuthClient;
use super::endpoints::resolve;
use super::http::Http;
use super::{TokenSet, client_secret};
use crate::config::AccountConfig;
use crate::error::Result;
use crate::secret::Secrets;

/// What `logout` did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LogoutReport {
    /// The server confirmed the revocation.
    pub revoked: bool,
    /// Tokens were stored and are now deleted.
    pub deleted: bool,
    /// Why the server was not told, or what it answered, when not revoked.
    pub note: Option<String>,
    /// The server was asked and the request failed (the grant may still be
    /// live there); false when there was no one to ask.
    pub failed: bool,
}

/// Revoke account `name`'s tokens where an endpoint is known, then delete
/// them from the store. True when the server confirmed the revocation; see
/// [`logout_report`] for why not.
pub async fn logout(name: &str, acct: &AccountConfig, store: &Secrets) -> Result<bool> {
    Ok(logout_report(name, acct, store).await?.revoked)
}

/// [`logout`], telling what happened at the server and in the store.
pub async fn logout_report(
    name: &str,
    acct: &AccountConfig,
    store: &Secrets,
) -> Result<LogoutReport> {
    let tokens = match TokenSet::load(store, name).await {
        Ok(t) => t,
        Err(e) => {
            // Damaged: nothing to revoke, but it must still go.
            let deleted = store.delete(&TokenSet::store_key(name)).await?;
            return Ok(LogoutReport {
                revoked: false,
                deleted,
                note: Some(e.message().to_string()),
                failed: false,
            });
        }
    };
    let Some(tokens) = tokens else {
        return Ok(LogoutReport {
            revoked: false,
            deleted: false,
            note: Some(format!("no OAuth tokens were stored for '{name}'")),
            failed: false,
        });
    };
    let (revoked, note, failed) = match revoke(name, acct, store, &tokens).await {
        Ok(()) => (true, None, false),
        Err(Refusal { asked, why }) => {
            tracing::warn!(account = name, "tokens not revoked at the server: {why}");
            (false, Some(why), asked)
        }
    };
    let deleted = store.delete(&TokenSet::store_key(name)).await?;
    Ok(LogoutReport {
        revoked,
        deleted,
        note,
        failed,
    })
}

/// Why tokens were not revoked, and whether the server was asked.
struct Refusal {
    asked: bool,
    why: String,
}

fn not_asked(why: impl ToString) -> Refusal {
    Refusal {
        asked: false,
        why: why.to_string(),
    }
}

/// Revoke the refresh token (which ends the whole grant at most servers)
/// and the access token. Errors are reasons, for the report.
async fn revoke(
    name: &str,
    acct: &AccountConfig,
    store: &Secrets,
    tokens: &TokenSet,
) -> std::result::Result<(), Refusal> {
    let cfg = acct
        .oauth
        .as_ref()
        .ok_or_else(|| not_asked("the account has no OAuth settings any more"))?;
    let http = Http::new().map_err(not_asked)?;
    let endpoints = resolve(&http, acct.provider, cfg)
        .await
        .map_err(not_asked)?;
    if endpoints.revocation.is_none() {
        let how = if acct.provider.is_microsoft() {
            "Microsoft offers no revocation endpoint; to cut the app off, remove its consent at \
             https://myapps.microsoft.com (work or school) or https://account.live.com/consent/Manage \
             (personal)"
        } else {
            "no revocation endpoint is known for this account (set revocation_endpoint)"
        };
        return Err(not_asked(how));
    }
    let secret = client_secret(name, cfg, store).await.map_err(not_asked)?;
    let client =
        OAuthClient::new(name, acct.provider, cfg, endpoints, secret, http).map_err(not_asked)?;
    let mut first_err = None;
    let mut any = false;
    let pairs: [(Option<&SecretString>, &str); 2] = [
        (tokens.refresh_token.as_ref(), "refresh_token"),
        (Some(&tokens.access_token), "access_token"),
    ];
    for (token, hint) in pairs {
        let Some(token) = token else { continue };
        match client.revoke(token, hint).await {
            Ok(()) => any = true,
            Err(e) => {
                first_err.get_or_insert(e.message().to_string());
            }
        }
    }
    match (any, first_err) {
        (true, _) => Ok(()),
        (false, Some(why)) => Err(Refusal { asked: true, why }),
        (false, None) => Err(not_asked("nothing to revoke")),
    }
}
