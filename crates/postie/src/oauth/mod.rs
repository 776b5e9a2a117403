//! OAuth 2.0 for SMTP: signing in (`postie login`), keeping the tokens, and
//! refreshing them without the user ever handling one.
//!
//! - [`login`]: authorization code + PKCE (RFC 7636) with a loopback redirect
//!   (RFC 8252 §7.3), or a pasted redirect; device authorization (RFC 8628);
//!   a Google service account (RS256 JWT bearer, RFC 7523); Microsoft client
//!   credentials. The [`TokenSet`] goes to the secret store under
//!   `NAME/oauth` ([`TokenSet::store_key`]).
//! - [`TokenManager`]: hands out an access token valid for a margin,
//!   refreshing it when needed, once per account even with many concurrent
//!   callers in one process or across processes, saving every rotated
//!   refresh token.
//! - [`logout`]: revokes at the server (RFC 7009) where that is offered, and
//!   deletes the stored tokens.
//! - [`endpoints`]: where each provider's endpoints are and which scopes SMTP
//!   needs; RFC 8414 / OpenID discovery for the generic provider.
//!
//! Tokens, client secrets, codes and PKCE verifiers are [`SecretString`]s
//! or live only inside requests: no `Debug`, `Display`, error or log line of
//! this module shows one. Token endpoints are reached over https only; plain
//! http is accepted for loopback hosts (test servers), never beyond.
//!
//! [`SecretString`]: secrecy::SecretString

mod browser;
mod client;
mod endpoints;
mod http;
mod login;
mod loopback;
mod manager;
mod revocation;
mod service_account;
mod token;

use secrecy::SecretString;
use serde::Deserialize;

use crate::config::AccountConfig;
pub use crate::config::{Flow, OAuthConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::AuthMethod;
use crate::secret::Secrets;
use crate::wording::{Action, say};

pub use crate::error::OAuthErrorInfo;
pub use endpoints::{
    Endpoints, GOOGLE_SCOPE, GOOGLE_TOKEN_ENDPOINT, MICROSOFT_APP_SCOPE, MICROSOFT_SMTP_SCOPE,
    endpoints,
};
pub(crate) use http::describe as describe_http;
pub use login::{LoginOptions, LoginPrompt, login};
pub use manager::{AccountLock, TokenManager};
pub use revocation::{LogoutReport, logout, logout_report};
pub use token::TokenSet;

/// The secret-store key of an account's client secret.
pub fn client_secret_key(name: &str) -> String {
    format!("{name}/client-secret")
}

/// The account's OAuth settings, or an error that says how to add them.
pub(crate) fn settings<'a>(name: &str, acct: &'a AccountConfig) -> Result<&'a OAuthConfig> {
    if acct.auth != AuthMethod::Oauth {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "account '{name}' authenticates with {} (auth = \"{}\"), not OAuth: add it \
                 again to sign in with OAuth 2.0 with a client ID ({})",
                acct.auth,
                acct.auth,
                say(&Action::AddOAuthAccount {
                    account: name.to_string(),
                    provider: acct.provider.as_str().to_string(),
                })
            ),
        ));
    }
    acct.oauth.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::Config,
            format!(
                "account '{name}' has no OAuth client: add `[accounts.{name}.oauth]` with \
                 `client_id = \"...\"` (or add the account again: {})",
                say(&Action::AddOAuthAccount {
                    account: name.to_string(),
                    provider: acct.provider.as_str().to_string(),
                })
            ),
        )
    })
}

/// The client secret: `client_secret_env`, else the store's
/// `NAME/client-secret`, else none.
pub(crate) async fn client_secret(
    name: &str,
    cfg: &OAuthConfig,
    store: &Secrets,
) -> Result<Option<SecretString>> {
    if let Some(var) = &cfg.client_secret_env {
        return match std::env::var(var) {
            Ok(v) if !v.is_empty() => Ok(Some(SecretString::from(v))),
            _ => Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the environment variable {var} (client_secret_env of account '{name}') is \
                     not set or empty: export it, or remove client_secret_env and store the \
                     secret in the secret store as '{}'",
                    client_secret_key(name)
                ),
            )),
        };
    }
    store.get(&client_secret_key(name)).await
}

/// Google's token information endpoint: it tells an access token's scopes.
pub const GOOGLE_TOKENINFO: &str = "https://oauth2.googleapis.com/tokeninfo";

/// How far this machine's clock is ahead of the token endpoint's server
/// (negative: behind), in seconds, from the HTTP `Date` of its answer.
/// `None` when the server cannot be asked or sends no date.
pub async fn clock_skew(name: &str, acct: &AccountConfig) -> Option<i64> {
    let cfg = settings(name, acct).ok()?;
    let ep = endpoints(acct.provider, cfg).await.ok()?;
    let http = http::Http::new().ok()?;
    let server = http.server_date(&ep.token).await?;
    let now = std::time::SystemTime::now();
    Some(match now.duration_since(server) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    })
}

/// The scopes Google's tokeninfo endpoint reports for account `name`'s
/// access token (sent in a POST body, never in a URL). Asked only when the
/// token came from Google's own token endpoint: a token of any other
/// server is never shown to Google. `None` when it cannot tell.
pub async fn google_token_scope(
    name: &str,
    acct: &AccountConfig,
    token: &SecretString,
) -> Option<String> {
    use secrecy::ExposeSecret;
    #[derive(Deserialize)]
    struct Info {
        scope: Option<String>,
    }
    let cfg = settings(name, acct).ok()?;
    let http = http::Http::new().ok()?;
    let ep = endpoints::resolve(&http, acct.provider, cfg).await.ok()?;
    if ep.token != GOOGLE_TOKEN_ENDPOINT {
        return None;
    }
    let body = http
        .post_form(
            GOOGLE_TOKENINFO,
            &[("access_token", token.expose_secret())],
            None,
        )
        .await
        .ok()?;
    serde_json::from_slice::<Info>(&body).ok()?.scope
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_in_toml_with_kebab_flows() {
        let cfg = OAuthConfig {
            client_id: "abc.apps.googleusercontent.com".into(),
            flow: Some(Flow::ServiceAccount),
            scopes: Some(vec!["https://mail.google.com/".into()]),
            ..OAuthConfig::default()
        };
        let text = toml::to_string(&cfg).unwrap();
        assert!(text.contains("flow = \"service-account\""), "{text}");
        assert!(!text.contains("tenant"), "{text}");
        assert_eq!(toml::from_str::<OAuthConfig>(&text).unwrap(), cfg);
        let err = toml::from_str::<OAuthConfig>("client_id = \"x\"\nclient_secret = \"s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_secret"), "{err}");
    }
}
