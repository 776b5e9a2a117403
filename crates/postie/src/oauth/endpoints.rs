//! Where each provider's OAuth endpoints are and which scopes its SMTP
//! service accepts (provider-facts §3 and §7), with the account's overrides
//! and RFC 8414 / OpenID Connect discovery for the generic provider.

use serde::Deserialize;

use super::http::{Http, HttpError, parse_endpoint, retrying};
use super::{Flow, OAuthConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::ProviderId;
use crate::wording::{Action, say};

/// Google's token endpoint (also the `aud` of service-account assertions).
pub const GOOGLE_TOKEN_ENDPOINT: &str = "https://oauth2.googleapis.com/token";
/// Google's only scope for IMAP, POP and SMTP ("gmail.send" works for the
/// Gmail API only).
pub const GOOGLE_SCOPE: &str = "https://mail.google.com/";
/// Microsoft's delegated SMTP scope.
pub const MICROSOFT_SMTP_SCOPE: &str = "https://outlook.office.com/SMTP.Send";
/// Microsoft's app-only (client credentials) scope.
pub const MICROSOFT_APP_SCOPE: &str = "https://outlook.office365.com/.default";

fn google_device_refused() -> String {
    format!(
        "Google's device flow does not allow the Gmail scope https://mail.google.com/ (it answers \
         invalid_scope), and SMTP accepts no other: sign in with the browser instead ({}; or {} \
         when the browser runs on another machine)",
        say(&Action::SignIn {
            account: Some("NAME".into())
        }),
        say(&Action::SignInManually {
            account: "NAME".into()
        })
    )
}

/// An account's OAuth endpoints and scopes, resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoints {
    /// Authorization endpoint (browser sign-in), when the provider has one.
    pub authorization: Option<String>,
    /// Token endpoint.
    pub token: String,
    /// Device authorization endpoint (RFC 8628).
    pub device: Option<String>,
    /// Revocation endpoint (RFC 7009).
    pub revocation: Option<String>,
    /// Scopes to ask for.
    pub scopes: Vec<String>,
    /// True when the device flow can give a token usable for SMTP.
    pub supports_device: bool,
    /// Why the device flow cannot be used, when it cannot.
    pub device_unsupported: Option<String>,
    /// Client authentication methods the token endpoint announces
    /// (discovery); empty when unknown.
    pub token_auth_methods: Vec<String>,
}

/// Resolve the endpoints of `provider` for an account's OAuth settings: the
/// settings' own URLs first, then discovery from `issuer`, then the
/// provider's published endpoints. Fetches only when discovery is needed.
pub async fn endpoints(provider: ProviderId, cfg: &OAuthConfig) -> Result<Endpoints> {
    resolve(&Http::new()?, provider, cfg).await
}

/// The provider's defaults, before overrides.
struct Defaults {
    authorization: Option<String>,
    token: Option<String>,
    device: Option<String>,
    revocation: Option<String>,
    scopes: Vec<String>,
}

fn defaults(provider: ProviderId, cfg: &OAuthConfig) -> Result<Defaults> {
    let flow = cfg.flow.unwrap_or_default();
    if provider.is_google() {
        return Ok(Defaults {
            authorization: Some("https://accounts.google.com/o/oauth2/v2/auth".into()),
            token: Some(GOOGLE_TOKEN_ENDPOINT.into()),
            device: Some("https://oauth2.googleapis.com/device/code".into()),
            revocation: Some("https://oauth2.googleapis.com/revoke".into()),
            scopes: vec![GOOGLE_SCOPE.into()],
        });
    }
    if provider.is_microsoft() {
        let tenant = cfg.tenant.as_deref().unwrap_or("common").trim();
        if flow == Flow::ClientCredentials
            && ["common", "organizations", "consumers"].contains(&tenant)
        {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "app-only access (flow = \"client-credentials\") needs the organization's \
                     tenant, not '{tenant}': set `tenant = \"<Directory (tenant) ID>\"` in the \
                     account's oauth settings (Entra admin center > Overview)"
                ),
            ));
        }
        let base = format!("https://login.microsoftonline.com/{tenant}/oauth2/v2.0");
        let scopes = if flow == Flow::ClientCredentials {
            vec![MICROSOFT_APP_SCOPE.into()]
        } else {
            vec![MICROSOFT_SMTP_SCOPE.into(), "offline_access".into()]
        };
        return Ok(Defaults {
            authorization: Some(format!("{base}/authorize")),
            token: Some(format!("{base}/token")),
            device: Some(format!("{base}/devicecode")),
            // Microsoft's identity platform has no RFC 7009 endpoint.
            revocation: None,
            scopes,
        });
    }
    if provider == ProviderId::Sandbox {
        // `postie sandbox` on its default HTTP port; `issuer` (discovery)
        // points elsewhere when it runs on another port.
        let base = "http://127.0.0.1:2580";
        return Ok(Defaults {
            authorization: Some(format!("{base}/o/oauth2/v2/auth")),
            token: Some(format!("{base}/token")),
            device: Some(format!("{base}/device/code")),
            revocation: Some(format!("{base}/revoke")),
            scopes: vec![GOOGLE_SCOPE.into()],
        });
    }
    Ok(Defaults {
        authorization: None,
        token: None,
        device: None,
        revocation: None,
        scopes: Vec::new(),
    })
}

pub(crate) async fn resolve(
    http: &Http,
    provider: ProviderId,
    cfg: &OAuthConfig,
) -> Result<Endpoints> {
    let d = defaults(provider, cfg)?;
    let meta = match &cfg.issuer {
        Some(issuer) => Some(discover(http, issuer).await?),
        None => None,
    };
    let pick = |own: &Option<String>, found: Option<&String>, default: Option<String>| {
        own.clone().or_else(|| found.cloned()).or(default)
    };
    let m = meta.as_ref();
    let token = pick(
        &cfg.token_endpoint,
        m.and_then(|m| m.token_endpoint.as_ref()),
        d.token,
    )
    .ok_or_else(|| no_token_endpoint(provider))?;
    let e = Endpoints {
        authorization: pick(
            &cfg.authorization_endpoint,
            m.and_then(|m| m.authorization_endpoint.as_ref()),
            d.authorization,
        ),
        token,
        device: pick(
            &cfg.device_authorization_endpoint,
            m.and_then(|m| m.device_authorization_endpoint.as_ref()),
            d.device,
        ),
        revocation: pick(
            &cfg.revocation_endpoint,
            m.and_then(|m| m.revocation_endpoint.as_ref()),
            d.revocation,
        ),
        scopes: cfg.scopes.clone().unwrap_or(d.scopes),
        supports_device: false,
        device_unsupported: None,
        token_auth_methods: m
            .map(|m| m.token_endpoint_auth_methods_supported.clone())
            .unwrap_or_default(),
    };
    for (url, what) in [
        (Some(&e.token), "token endpoint"),
        (e.authorization.as_ref(), "authorization endpoint"),
        (e.device.as_ref(), "device authorization endpoint"),
        (e.revocation.as_ref(), "revocation endpoint"),
    ] {
        if let Some(u) = url {
            parse_endpoint(u, what)?;
        }
    }
    Ok(with_device_support(provider, e))
}

fn with_device_support(provider: ProviderId, mut e: Endpoints) -> Endpoints {
    let why = if provider.is_google() {
        Some(google_device_refused())
    } else if e.device.is_none() {
        Some(
            "no device authorization endpoint is known for this account: set \
             device_authorization_endpoint (or an issuer that announces one)"
                .to_string(),
        )
    } else {
        None
    };
    e.supports_device = why.is_none();
    e.device_unsupported = why;
    e
}

fn no_token_endpoint(provider: ProviderId) -> Error {
    let lead = match provider {
        ProviderId::Yahoo | ProviderId::Icloud | ProviderId::Fastmail => format!(
            "{} accepts no new OAuth clients for SMTP: use an app password ({}), or, with a \
             client of your own, ",
            provider.preset().display_name,
            say(&Action::AddAccount {
                account: Some("NAME".into()),
                provider: Some(provider.as_str().into()),
            })
        ),
        _ => "the account's OAuth provider is unknown to postie: ".to_string(),
    };
    Error::new(
        ErrorKind::Config,
        format!(
            "no token endpoint: {lead}set `issuer = \"https://...\"` (discovery) or \
             `token_endpoint` and `authorization_endpoint` in the account's oauth settings"
        ),
    )
}

/// Authorization server metadata (RFC 8414 §2; OpenID Connect Discovery).
#[derive(Debug, Default, Deserialize)]
struct Metadata {
    #[serde(default)]
    issuer: Option<String>,
    #[serde(default)]
    authorization_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint: Option<String>,
    #[serde(default)]
    device_authorization_endpoint: Option<String>,
    #[serde(default)]
    revocation_endpoint: Option<String>,
    #[serde(default)]
    token_endpoint_auth_methods_supported: Vec<String>,
}

/// The two places metadata may be: RFC 8414 §3.1 inserts the well-known
/// segment before the issuer's path; OpenID Connect appends it.
fn metadata_urls(issuer: &str) -> Result<[String; 2]> {
    let url = parse_endpoint(issuer, "issuer")?;
    let path = url.path().trim_end_matches('/').to_string();
    let mut origin = url.clone();
    origin.set_path("");
    origin.set_query(None);
    let origin = origin.as_str().trim_end_matches('/').to_string();
    Ok([
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
        format!("{origin}{path}/.well-known/openid-configuration"),
    ])
}

async fn discover(http: &Http, issuer: &str) -> Result<Metadata> {
    let mut tried = Vec::new();
    for url in metadata_urls(issuer)? {
        let (got, _) = retrying("OAuth discovery", || async {
            http.get(&url)
                .await
                .map_err(oauth2::RequestTokenError::Request)
        })
        .await;
        let body = match got {
            Ok(b) => b,
            Err(oauth2::RequestTokenError::Request(HttpError::Status { status, .. }))
                if (400..500).contains(&status) =>
            {
                tried.push(format!("{url} (HTTP {status})"));
                continue;
            }
            Err(oauth2::RequestTokenError::Request(e)) => {
                return Err(Error::new(
                    if e.is_retryable() {
                        ErrorKind::Unavailable
                    } else {
                        ErrorKind::Config
                    },
                    format!("OAuth discovery for {issuer} failed: {e}"),
                ));
            }
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!("OAuth discovery for {issuer} failed: {e}"),
                ));
            }
        };
        let meta: Metadata = match serde_json::from_slice(&body) {
            Ok(m) => m,
            Err(_) => {
                tried.push(format!("{url} (not JSON metadata)"));
                continue;
            }
        };
        // RFC 8414 §3.3: metadata whose issuer differs must not be used.
        let same = |a: &str, b: &str| a.trim_end_matches('/') == b.trim_end_matches('/');
        match &meta.issuer {
            Some(i) if same(i, issuer) => return Ok(meta),
            other => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the metadata at {url} names the issuer {} instead of {issuer}: set \
                         `issuer` to exactly the issuer the server announces",
                        other.as_deref().unwrap_or("(none)")
                    ),
                ));
            }
        }
    }
    Err(Error::new(
        ErrorKind::Config,
        format!(
            "no OAuth metadata found for the issuer {issuer}; tried {}. Check the issuer URL, or \
             set token_endpoint and authorization_endpoint in the account's oauth settings",
            tried.join(" and ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> OAuthConfig {
        OAuthConfig {
            client_id: "id".into(),
            ..OAuthConfig::default()
        }
    }

    #[tokio::test]
    async fn google_defaults_refuse_the_device_flow() {
        let e = endpoints(ProviderId::Gmail, &cfg()).await.unwrap();
        assert_eq!(e.token, "https://oauth2.googleapis.com/token");
        assert_eq!(e.scopes, vec![GOOGLE_SCOPE.to_string()]);
        assert!(!e.supports_device);
        assert!(e.device_unsupported.unwrap().contains("invalid_scope"));
    }

    #[tokio::test]
    async fn microsoft_tenant_scopes_and_app_only() {
        let mut c = cfg();
        let e = endpoints(ProviderId::Office365, &c).await.unwrap();
        assert_eq!(
            e.token,
            "https://login.microsoftonline.com/common/oauth2/v2.0/token"
        );
        assert_eq!(e.scopes, vec![MICROSOFT_SMTP_SCOPE, "offline_access"]);
        assert!(e.supports_device && e.revocation.is_none());
        c.flow = Some(Flow::ClientCredentials);
        let err = endpoints(ProviderId::Office365, &c).await.unwrap_err();
        assert!(err.to_string().contains("tenant"), "{err}");
        c.tenant = Some("contoso.onmicrosoft.com".into());
        let e = endpoints(ProviderId::Office365, &c).await.unwrap();
        assert_eq!(e.scopes, vec![MICROSOFT_APP_SCOPE]);
        assert!(e.token.contains("/contoso.onmicrosoft.com/"));
    }

    #[tokio::test]
    async fn overrides_win_and_generic_needs_an_endpoint() {
        let mut c = cfg();
        let err = endpoints(ProviderId::Generic, &c).await.unwrap_err();
        assert!(err.to_string().contains("issuer"), "{err}");
        let err = endpoints(ProviderId::Yahoo, &c).await.unwrap_err();
        assert!(err.to_string().contains("app password"), "{err}");
        c.token_endpoint = Some("http://127.0.0.1:1/token".into());
        c.scopes = Some(vec!["a".into()]);
        let e = endpoints(ProviderId::Gmail, &c).await.unwrap();
        assert_eq!(
            (e.token.as_str(), e.scopes.as_slice()),
            ("http://127.0.0.1:1/token", &["a".to_string()][..])
        );
        c.token_endpoint = Some("http://login.example.com/token".into());
        let err = endpoints(ProviderId::Generic, &c).await.unwrap_err();
        assert!(err.to_string().contains("https://"), "{err}");
    }

    #[test]
    fn well_known_locations() {
        assert_eq!(
            metadata_urls("https://as.example.com/").unwrap(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server",
                "https://as.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(
            metadata_urls("https://as.example.com/tenant1").unwrap(),
            [
                "https://as.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://as.example.com/tenant1/.well-known/openid-configuration"
            ]
        );
    }
}
