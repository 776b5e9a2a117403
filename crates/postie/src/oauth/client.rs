//! One account's OAuth client: the grants postie uses, each retried on
//! network errors and 5xx, and every failure turned into an [`Error`] that
//! keeps the server's OAuth error and says what to run.

use std::time::{Duration, Instant, SystemTime};

use oauth2::basic::{BasicTokenIntrospectionResponse, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken,
    DeviceAuthorizationUrl, EndpointMaybeSet, EndpointNotSet, EndpointSet, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope,
    StandardDeviceAuthorizationResponse, StandardRevocableToken, TokenUrl,
};
use secrecy::{ExposeSecret, SecretString};

use super::endpoints::Endpoints;
use super::http::{Failure, Http, HttpError, retrying, retrying_single_use};
use super::service_account::ServiceAccountKey;
use super::{Flow, OAuthConfig, OAuthErrorInfo, TokenSet};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::ProviderId;
use crate::wording::{Action, say};

type Oauth2Client = oauth2::Client<
    Box<OAuthErrorInfo>,
    BasicTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    Box<OAuthErrorInfo>,
    EndpointMaybeSet,
    EndpointMaybeSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const DEVICE_CODE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Longest wait between device-code polls after network errors.
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(60);

/// What postie was doing when a request failed: words for the message, and
/// the grant (an `invalid_grant` means something else for each).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Step {
    SignIn,
    CodeExchange,
    Refresh,
    ClientCredentials,
    JwtBearer,
    DeviceStart,
    DevicePoll,
    Revoke,
}

impl Step {
    fn doing(self) -> &'static str {
        match self {
            Step::SignIn => "signing in",
            Step::CodeExchange => "exchanging the sign-in code for tokens",
            Step::Refresh => "refreshing the access token",
            Step::ClientCredentials => "getting an app-only token",
            Step::JwtBearer => "getting a token for the service account",
            Step::DeviceStart => "starting the device sign-in",
            Step::DevicePoll => "waiting for the device sign-in",
            Step::Revoke => "revoking the token",
        }
    }

    fn grant(self) -> Option<&'static str> {
        match self {
            Step::SignIn | Step::CodeExchange => Some("authorization_code"),
            Step::Refresh => Some("refresh_token"),
            Step::ClientCredentials => Some("client_credentials"),
            Step::JwtBearer => Some(JWT_BEARER),
            Step::DeviceStart | Step::DevicePoll => Some(DEVICE_CODE),
            Step::Revoke => None,
        }
    }
}

/// A started browser sign-in: the URL to open and what checks the answer.
pub(crate) struct Authorization {
    pub(crate) url: String,
    pub(crate) state: SecretString,
    pub(crate) verifier: SecretString,
    pub(crate) redirect_uri: String,
}

/// The OAuth client of one account.
pub(crate) struct OAuthClient {
    name: String,
    provider: ProviderId,
    flow: Flow,
    pub(crate) endpoints: Endpoints,
    client_id: String,
    secret: Option<SecretString>,
    login_hint: Option<String>,
    basic: bool,
    http: Http,
    inner: Oauth2Client,
}

impl OAuthClient {
    pub(crate) fn new(
        name: &str,
        provider: ProviderId,
        cfg: &OAuthConfig,
        endpoints: Endpoints,
        secret: Option<SecretString>,
        http: Http,
    ) -> Result<OAuthClient> {
        let bad = |what: &str, e: oauth2::url::ParseError| {
            Error::new(ErrorKind::Config, format!("the {what} is not a URL: {e}"))
        };
        // HTTP Basic, which RFC 6749 §2.3.1 makes every server support (and
        // Google and Microsoft accept), unless the server's metadata
        // announces client_secret_post without it.
        let methods = &endpoints.token_auth_methods;
        let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
        let mut inner = oauth2::Client::new(ClientId::new(cfg.client_id.clone()))
            .set_token_uri(
                TokenUrl::new(endpoints.token.clone()).map_err(|e| bad("token endpoint", e))?,
            )
            .set_auth_uri_option(
                endpoints
                    .authorization
                    .clone()
                    .map(AuthUrl::new)
                    .transpose()
                    .map_err(|e| bad("authorization endpoint", e))?,
            )
            .set_device_authorization_url_option(
                endpoints
                    .device
                    .clone()
                    .map(DeviceAuthorizationUrl::new)
                    .transpose()
                    .map_err(|e| bad("device authorization endpoint", e))?,
            )
            .set_auth_type(if basic {
                AuthType::BasicAuth
            } else {
                AuthType::RequestBody
            });
        if let Some(s) = &secret {
            inner = inner.set_client_secret(ClientSecret::new(s.expose_secret().to_string()));
        }
        Ok(OAuthClient {
            name: name.to_string(),
            provider,
            flow: cfg.flow.unwrap_or_default(),
            endpoints,
            client_id: cfg.client_id.clone(),
            secret,
            login_hint: cfg.login_hint.clone(),
            basic,
            http,
            inner,
        })
    }

    /// Client authentication for the requests built here: Basic with the
    /// secret, or the id (and secret) in the form.
    fn client_auth<'a>(&'a self, form: &mut Vec<(&'a str, &'a str)>) -> Option<(&'a str, &'a str)> {
        match &self.secret {
            Some(s) if self.basic => Some((self.client_id.as_str(), s.expose_secret())),
            Some(s) => {
                form.push(("client_id", self.client_id.as_str()));
                form.push(("client_secret", s.expose_secret()));
                None
            }
            None => {
                form.push(("client_id", self.client_id.as_str()));
                None
            }
        }
    }

    fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.endpoints.scopes.iter().cloned().map(Scope::new)
    }

    /// The authorization URL for a browser sign-in redirected to `redirect_uri`.
    pub(crate) fn authorize(&self, redirect_uri: &str) -> Result<Authorization> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let redirect = RedirectUrl::new(redirect_uri.to_string())
            .map_err(|e| Error::new(ErrorKind::Config, format!("bad redirect URI: {e}")))?;
        let mut req = self
            .inner
            .authorize_url(CsrfToken::new_random)
            .map_err(|_| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "account '{}' has no authorization endpoint for a browser sign-in: set \
                         authorization_endpoint (or issuer) in its oauth settings",
                        self.name
                    ),
                )
            })?
            .add_scopes(self.scopes())
            .set_pkce_challenge(challenge)
            .set_redirect_uri(std::borrow::Cow::Owned(redirect));
        if self.provider.is_google() {
            // A refresh token comes only with offline access, and only on consent.
            req = req
                .add_extra_param("access_type", "offline")
                .add_extra_param("prompt", "consent");
        }
        if let Some(h) = &self.login_hint {
            req = req.add_extra_param("login_hint", h.clone());
        }
        let (url, state) = req.url();
        Ok(Authorization {
            url: url.to_string(),
            state: SecretString::from(state.into_secret()),
            verifier: SecretString::from(verifier.into_secret()),
            redirect_uri: redirect_uri.to_string(),
        })
    }

    /// Exchange an authorization code (RFC 6749 §4.1.3 with the PKCE verifier).
    pub(crate) async fn exchange_code(
        &self,
        code: &SecretString,
        auth: &Authorization,
    ) -> Result<TokenSet> {
        let now = SystemTime::now();
        let redirect = RedirectUrl::new(auth.redirect_uri.clone())
            .map_err(|e| Error::new(ErrorKind::Config, format!("bad redirect URI: {e}")))?;
        let (r, n) = retrying_single_use("code exchange", || {
            self.inner
                .exchange_code(AuthorizationCode::new(code.expose_secret().to_string()))
                .set_pkce_verifier(PkceCodeVerifier::new(
                    auth.verifier.expose_secret().to_string(),
                ))
                .set_redirect_uri(std::borrow::Cow::Owned(redirect.clone()))
                .request_async(&self.http)
        })
        .await;
        let r = r.map_err(|e| self.failure(e, n, Step::CodeExchange))?;
        Ok(TokenSet::from_response(&r, now, &self.endpoints.scopes))
    }

    /// Use a refresh token (RFC 6749 §6).
    pub(crate) async fn refresh(&self, refresh_token: &SecretString) -> Result<TokenSet> {
        let now = SystemTime::now();
        let rt = RefreshToken::new(refresh_token.expose_secret().to_string());
        let (r, n) = retrying_single_use("token refresh", || {
            let mut req = self.inner.exchange_refresh_token(&rt);
            if self.provider.is_microsoft() {
                // Microsoft's v2 endpoint wants the scopes again on refresh.
                req = req.add_scopes(self.scopes());
            }
            req.request_async(&self.http)
        })
        .await;
        let r = r.map_err(|e| self.failure(e, n, Step::Refresh))?;
        Ok(TokenSet::from_response(&r, now, &self.endpoints.scopes))
    }

    /// Client credentials (RFC 6749 §4.4): app-only tokens.
    pub(crate) async fn client_credentials(&self) -> Result<TokenSet> {
        if self.secret.is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "flow \"client-credentials\" needs the app's client secret: set \
                     client_secret_env in [accounts.{0}.oauth], or store it as '{0}/client-secret'",
                    self.name
                ),
            ));
        }
        let now = SystemTime::now();
        let (r, n) = retrying("client credentials grant", || {
            self.inner
                .exchange_client_credentials()
                .add_scopes(self.scopes())
                .request_async(&self.http)
        })
        .await;
        let r = r.map_err(|e| self.failure(e, n, Step::ClientCredentials))?;
        Ok(TokenSet::from_response(&r, now, &self.endpoints.scopes))
    }

    /// The JWT-bearer grant (RFC 7523 §2.1) of a service account acting as `subject`.
    pub(crate) async fn jwt_bearer(
        &self,
        key: &ServiceAccountKey,
        subject: &str,
        token_endpoint_set: bool,
    ) -> Result<TokenSet> {
        // Google: the assertion's audience is the key's token_uri, which is
        // also where it is posted, unless the account names its own endpoint.
        let url = match (&key.token_uri, token_endpoint_set) {
            (Some(u), false) => u.clone(),
            _ => self.endpoints.token.clone(),
        };
        super::http::parse_endpoint(&url, "token endpoint")?;
        let aud = key.token_uri.clone().unwrap_or_else(|| url.clone());
        let now = SystemTime::now();
        let assertion = key.assertion(&self.endpoints.scopes, subject, &aud, now)?;
        let (r, n) = retrying("JWT bearer grant", || async {
            let body = self
                .http
                .post_form(
                    &url,
                    &[
                        ("grant_type", JWT_BEARER),
                        ("assertion", assertion.expose_secret()),
                    ],
                    None,
                )
                .await?;
            parse_token(&body)
        })
        .await;
        let r = r.map_err(|e| self.failure(e, n, Step::JwtBearer))?;
        Ok(TokenSet::from_response(&r, now, &self.endpoints.scopes))
    }

    /// Start the device flow (RFC 8628 §3.1).
    pub(crate) async fn device_start(&self) -> Result<StandardDeviceAuthorizationResponse> {
        if self.inner.device_authorization_url().is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "account '{}' has no device authorization endpoint",
                    self.name
                ),
            ));
        }
        let (r, n) = retrying("device authorization", || async {
            self.inner
                .exchange_device_code()
                .map_err(|e| RequestTokenError::Other(e.to_string()))?
                .add_scopes(self.scopes())
                .request_async(&self.http)
                .await
        })
        .await;
        r.map_err(|e| self.failure(e, n, Step::DeviceStart))
    }

    /// Poll the token endpoint until the user approves the device code
    /// (RFC 8628 §3.4–3.5): wait `interval` before each poll, add 5 s on
    /// `slow_down`, back off on network errors, stop at `deadline`.
    pub(crate) async fn device_poll(
        &self,
        device: &StandardDeviceAuthorizationResponse,
        deadline: Instant,
    ) -> Result<TokenSet> {
        let mut interval = device.interval().max(Duration::from_secs(1));
        let code = device.device_code().secret().as_str();
        let mut form = vec![("grant_type", DEVICE_CODE), ("device_code", code)];
        let basic = self.client_auth(&mut form);
        loop {
            if Instant::now() + interval > deadline {
                let info = OAuthErrorInfo::new(
                    "expired_token",
                    Some("the code was not approved in time".into()),
                );
                return Err(self.refused(info, Step::DevicePoll));
            }
            tokio::time::sleep(interval).await;
            let now = SystemTime::now();
            let got = self
                .http
                .post_form(&self.endpoints.token, &form, basic)
                .await;
            let body = match got {
                Ok(b) => b,
                Err(HttpError::Status { info: Some(i), .. })
                    if i.error == "authorization_pending" =>
                {
                    continue;
                }
                Err(HttpError::Status { info: Some(i), .. }) if i.error == "slow_down" => {
                    interval += Duration::from_secs(5);
                    tracing::debug!(interval_s = interval.as_secs(), "device flow: slow_down");
                    continue;
                }
                Err(e) if e.is_retryable() => {
                    interval = (interval * 2).min(MAX_POLL_INTERVAL);
                    tracing::warn!("device flow: {e}; polling again in {interval:?}");
                    continue;
                }
                Err(e) => {
                    return Err(self.failure(RequestTokenError::Request(e), 1, Step::DevicePoll));
                }
            };
            let r = parse_token(&body).map_err(|e| self.failure(e, 1, Step::DevicePoll))?;
            return Ok(TokenSet::from_response(&r, now, &self.endpoints.scopes));
        }
    }

    /// RFC 7009 revocation of one token; true when the server confirmed.
    pub(crate) async fn revoke(&self, token: &SecretString, hint: &str) -> Result<()> {
        let Some(url) = &self.endpoints.revocation else {
            return Err(Error::new(
                ErrorKind::Config,
                "no revocation endpoint is known",
            ));
        };
        let mut form = vec![("token", token.expose_secret()), ("token_type_hint", hint)];
        let basic = self.client_auth(&mut form);
        let (r, n) = retrying("token revocation", || async {
            self.http
                .post_form(url, &form, basic)
                .await
                .map(|_| ())
                .map_err(RequestTokenError::Request)
        })
        .await;
        r.map_err(|e| self.failure(e, n, Step::Revoke))
    }

    /// A refusal the server stated (or postie concluded) as an OAuth error.
    fn sign_in(&self) -> Action {
        Action::SignIn {
            account: Some(self.name.clone()),
        }
    }

    pub(crate) fn refused(&self, info: OAuthErrorInfo, step: Step) -> Error {
        self.refused_after(info, step, "")
    }

    fn refused_after(&self, mut info: OAuthErrorInfo, step: Step, tries: &str) -> Error {
        let doing = step.doing();
        if info.grant_type.is_none() {
            info.grant_type = step.grant().map(str::to_string);
        }
        let kind = info.kind();
        let hint = match kind {
            ErrorKind::Credentials if !self.flow.is_app_only() => {
                format!(". Run {} to sign in again", say(&self.sign_in()))
            }
            ErrorKind::Transient => ". Try again later".to_string(),
            _ => format!(". See {} once it is fixed", say(&self.sign_in())),
        };
        Error::new(
            kind,
            format!("{doing} failed: the authorization server answered {info}{tries}{hint}"),
        )
        .with_oauth(info)
    }

    /// Any failed request, as an error that keeps the server's answer.
    pub(crate) fn failure(&self, f: Failure, attempts: u32, step: Step) -> Error {
        let doing = step.doing();
        let tries = if attempts > 1 {
            format!(" (after {attempts} attempts)")
        } else {
            String::new()
        };
        match f {
            RequestTokenError::ServerResponse(info)
            | RequestTokenError::Request(HttpError::Status {
                info: Some(info), ..
            }) => self.refused_after(*info, step, &tries),
            RequestTokenError::Request(e @ HttpError::Status { status, .. }) => {
                let kind = if e.is_retryable() {
                    ErrorKind::Transient
                } else if matches!(status, 404 | 405) {
                    ErrorKind::Config
                } else {
                    ErrorKind::Protocol
                };
                let hint = if kind == ErrorKind::Config {
                    ": is the endpoint URL right?"
                } else {
                    ""
                };
                Error::new(kind, format!("{doing} failed: {e}{tries}{hint}"))
            }
            RequestTokenError::Request(e @ HttpError::Network { .. }) => Error::new(
                ErrorKind::Unavailable,
                format!("{doing} failed: {e}{tries}"),
            ),
            RequestTokenError::Request(HttpError::Policy(m)) => {
                Error::new(ErrorKind::Config, format!("{doing} failed: {m}"))
            }
            // The body may hold tokens: report where parsing stopped, not what was there.
            RequestTokenError::Parse(e, _) => Error::new(
                ErrorKind::Protocol,
                format!(
                    "{doing} failed: the token endpoint's answer is not an OAuth token response \
                     (at `{}`)",
                    e.path()
                ),
            ),
            RequestTokenError::Other(m) => {
                Error::new(ErrorKind::Protocol, format!("{doing} failed: {m}"))
            }
        }
    }
}

/// Parse a 200 answer of the token endpoint; never quotes the body.
fn parse_token(body: &[u8]) -> std::result::Result<BasicTokenResponse, Failure> {
    serde_json::from_slice(body).map_err(|e| {
        RequestTokenError::Other(format!(
            "the token endpoint's answer is not an OAuth token response ({:?} error at line {}, \
             column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}
