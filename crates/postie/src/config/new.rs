//! [`NewAccount`]: an account as someone describes it when adding it,
//! checked and completed into the [`AccountConfig`] the config file keeps.

use std::path::PathBuf;

use super::{AccountConfig, Flow, OAuthConfig, Transport, Transports};
use crate::endpoint::Endpoint;
use crate::error::{Error, ErrorKind, Result};
use crate::provider::{AuthMethod, ProviderId, SANDBOX_CLIENT_ID, TlsMode, guess_from_email};
use crate::wording::{Setting, say_setting};

/// What is given to add an account. Only `email` is required: the provider
/// is guessed from the address (or is `generic` with a host), the
/// authentication is the provider's default, ports and TLS are its preset's.
#[derive(Clone, Debug, Default)]
pub struct NewAccount {
    /// The account's address.
    pub email: String,
    /// The provider; guessed from the address when absent.
    pub provider: Option<ProviderId>,
    /// How it authenticates; the provider's default when absent.
    pub auth: Option<AuthMethod>,
    /// Login name when it differs from the address.
    pub user: Option<String>,
    /// Submission host (the preset's when absent).
    pub host: Option<String>,
    /// Submission port.
    pub port: Option<u16>,
    /// TLS mode; [`TlsMode::None`] only to a loopback host.
    pub tls: Option<TlsMode>,
    /// An extra CA certificate (PEM) to trust; made absolute.
    pub ca_file: Option<PathBuf>,
    /// The name to verify the certificate for.
    pub tls_name: Option<String>,
    /// The password's environment variable.
    pub password_env: Option<String>,
    /// The command that prints the password.
    pub password_command: Option<String>,
    /// OAuth 2.0 settings (with `auth = oauth`).
    pub oauth: NewOAuth,
    /// The ways to send, in order (empty: SMTP).
    pub transports: Vec<Transport>,
    /// An HTTPS API's base URL instead of the service's.
    pub api_url: Option<String>,
}

/// The OAuth 2.0 part of a [`NewAccount`].
#[derive(Clone, Debug, Default)]
pub struct NewOAuth {
    /// The client ID registered with the provider.
    pub client_id: Option<String>,
    /// True when a client secret is given (to be stored in the secret store).
    pub client_secret_given: bool,
    /// The client secret's environment variable.
    pub client_secret_env: Option<String>,
    /// Microsoft's tenant.
    pub tenant: Option<String>,
    /// Issuer for discovery.
    pub issuer: Option<String>,
    /// Authorization endpoint.
    pub authorization_endpoint: Option<String>,
    /// Token endpoint.
    pub token_endpoint: Option<String>,
    /// Scopes instead of the provider's.
    pub scopes: Vec<String>,
    /// How tokens are obtained.
    pub flow: Option<Flow>,
    /// A Google service account's JSON key; made absolute.
    pub service_account_key: Option<PathBuf>,
}

impl NewOAuth {
    fn is_given(&self) -> bool {
        self.client_id.is_some() || self.client_secret_given || self.flow.is_some()
    }
}

fn usage(message: String) -> Error {
    Error::new(ErrorKind::Usage, message)
}

impl NewAccount {
    /// The account as the config file keeps it, or what is wrong with what
    /// was given and how to give it.
    pub fn build(&self) -> Result<AccountConfig> {
        if self
            .email
            .parse::<postie_proto::address::Address>()
            .is_err()
            || !self.email.contains('@')
        {
            return Err(usage(format!(
                "{} '{}' is not an address like me@example.com",
                say_setting(Setting::Email),
                self.email
            )));
        }
        if self.port == Some(0) {
            return Err(usage(format!(
                "{} 0 is not a port to send to: give the server's submission port (587 or 465)",
                say_setting(Setting::Port)
            )));
        }
        let provider = match self.provider.or_else(|| guess_from_email(&self.email)) {
            Some(p) => p,
            None if self.host.is_some() => ProviderId::Generic,
            None => {
                return Err(usage(format!(
                    "cannot tell the provider of {}: give {} (gmail, workspace, outlook, \
                     office365, yahoo, icloud, fastmail) or {} for any other server",
                    self.email,
                    say_setting(Setting::Provider),
                    say_setting(Setting::Host)
                )));
            }
        };
        let preset = provider.preset();
        let transports = Transports::new(self.transports.iter().copied());
        let apis: Vec<Transport> = transports
            .list()
            .iter()
            .copied()
            .filter(|t| *t != Transport::Smtp)
            .collect();
        // The HTTPS APIs take OAuth tokens only.
        let auth = match (self.auth, apis.is_empty()) {
            (Some(a), _) => a,
            (None, false) => AuthMethod::Oauth,
            (None, true) => preset.default_auth(),
        };
        if !apis.is_empty() && auth != AuthMethod::Oauth {
            return Err(usage(format!(
                "--transport {} sends with an OAuth access token: use --auth oauth (or drop \
                 --transport for SMTP with {auth})",
                apis[0]
            )));
        }
        for t in &apis {
            let fits = match t {
                Transport::GmailApi => provider.is_google() || provider == ProviderId::Sandbox,
                Transport::Graph => provider.is_microsoft() || provider == ProviderId::Sandbox,
                Transport::Smtp => true,
            };
            if !fits {
                return Err(usage(format!(
                    "--transport {t} is {}'s; {} is not (use --provider {})",
                    if *t == Transport::GmailApi {
                        "Google"
                    } else {
                        "Microsoft"
                    },
                    preset.display_name,
                    if *t == Transport::GmailApi {
                        "gmail or workspace"
                    } else {
                        "outlook or office365"
                    }
                )));
            }
        }
        if provider.is_microsoft()
            && transports.list().contains(&Transport::Smtp)
            && apis.contains(&Transport::Graph)
        {
            return Err(usage(
                "a Microsoft sign-in gives tokens for one service: SMTP (outlook.office.com) or \
                 Graph (graph.microsoft.com), not both; choose --transport smtp or --transport graph"
                    .into(),
            ));
        }
        if apis.is_empty() && self.api_url.is_some() {
            return Err(usage(
                "--api-url is for --transport gmail-api or graph".into(),
            ));
        }
        if !preset.supports(auth) {
            let offered: Vec<_> = preset.auth.iter().map(|m| m.as_str()).collect();
            return Err(usage(format!(
                "{} does not accept {auth} for SMTP; it accepts: {}. {}",
                preset.display_name,
                offered.join(", "),
                preset.note
            )));
        }
        let oauth = match auth {
            AuthMethod::Oauth => Some(self.oauth_config(provider, &transports)?),
            _ if self.oauth.is_given() => {
                return Err(usage(format!(
                    "{} need {}",
                    say_setting(Setting::OAuthClient),
                    say_setting(Setting::OAuth)
                )));
            }
            _ => None,
        };
        if provider == ProviderId::Generic && self.host.is_none() {
            return Err(usage(format!(
                "the generic provider needs {} (and usually {} 587 or 465)",
                say_setting(Setting::Host),
                say_setting(Setting::Port)
            )));
        }
        let acct = AccountConfig {
            provider,
            email: self.email.clone(),
            auth,
            user: self.user.clone(),
            host: self.host.clone(),
            port: self.port,
            tls: self.tls,
            ca_file: self
                .ca_file
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or(p.clone())),
            tls_name: self.tls_name.clone(),
            password_env: self.password_env.clone(),
            password_command: self.password_command.clone(),
            oauth,
            auth_mechanism: None,
            limits: None,
            transport: transports,
            api_url: self.api_url.clone(),
            timeout: None,
        };
        // Host, port and TLS consistent, plain text only to loopback.
        let endpoint: Endpoint = acct.endpoint()?;
        endpoint.check_plaintext()?;
        Ok(acct)
    }

    fn oauth_config(&self, provider: ProviderId, transports: &Transports) -> Result<OAuthConfig> {
        let o = &self.oauth;
        // An API alone asks for its own narrow scope: Gmail's gmail.send
        // (SMTP would need the whole mailbox), Graph's Mail.Send.
        let api_scopes: Vec<String> = match transports.list() {
            [Transport::GmailApi] => vec!["https://www.googleapis.com/auth/gmail.send".into()],
            [Transport::Graph] => vec![
                "https://graph.microsoft.com/Mail.Send".into(),
                "offline_access".into(),
            ],
            _ => Vec::new(),
        };
        let scopes = if o.scopes.is_empty() {
            api_scopes
        } else {
            o.scopes.clone()
        };
        let flow = o.flow.unwrap_or(if o.service_account_key.is_some() {
            Flow::ServiceAccount
        } else {
            Flow::AuthCode
        });
        if flow == Flow::ServiceAccount && o.service_account_key.is_none() {
            return Err(usage(format!(
                "the service-account flow needs {}",
                say_setting(Setting::ServiceAccountKey)
            )));
        }
        let client_id = match (&o.client_id, flow) {
            (Some(id), _) => id.clone(),
            (None, Flow::ServiceAccount) => String::new(),
            // The sandbox knows its own public client.
            (None, _) if provider == ProviderId::Sandbox => SANDBOX_CLIENT_ID.into(),
            (None, _) => {
                return Err(usage(format!(
                    "{} needs {}: you register postie as an OAuth client with the provider once. {}",
                    say_setting(Setting::OAuth),
                    say_setting(Setting::ClientId),
                    provider.registration_hint()
                )));
            }
        };
        if provider == ProviderId::Generic
            && o.issuer.is_none()
            && (o.authorization_endpoint.is_none() || o.token_endpoint.is_none())
        {
            return Err(usage(format!(
                "a generic OAuth provider needs {}",
                say_setting(Setting::OAuthServer)
            )));
        }
        Ok(OAuthConfig {
            client_id,
            client_secret_env: o.client_secret_env.clone(),
            tenant: o.tenant.clone(),
            issuer: o.issuer.clone(),
            authorization_endpoint: o.authorization_endpoint.clone(),
            token_endpoint: o.token_endpoint.clone(),
            device_authorization_endpoint: None,
            revocation_endpoint: None,
            scopes: (!scopes.is_empty()).then_some(scopes),
            flow: Some(flow),
            service_account_key: o
                .service_account_key
                .as_ref()
                .map(|p| std::path::absolute(p).unwrap_or(p.clone())),
            login_hint: Some(self.email.clone()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new(email: &str) -> NewAccount {
        NewAccount {
            email: email.into(),
            ..NewAccount::default()
        }
    }

    #[test]
    fn the_provider_is_guessed_and_its_defaults_apply() {
        let a = new("me@gmail.com").build().unwrap();
        assert_eq!(
            (a.provider, a.auth),
            (ProviderId::Gmail, AuthMethod::AppPassword)
        );
        let err = new("me@example.org").build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Usage);
        assert!(
            err.to_string().contains("cannot tell the provider"),
            "{err}"
        );
        let err = new("not an address").build().unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
    }

    #[test]
    fn plain_text_only_to_loopback() {
        let mut a = new("me@example.org");
        a.provider = Some(ProviderId::Generic);
        a.host = Some("mail.example.org".into());
        a.tls = Some(TlsMode::None);
        let err = a.build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("loopback"), "{err}");
        a.host = Some("127.0.0.1".into());
        assert_eq!(a.build().unwrap().tls, Some(TlsMode::None));
        a.host = Some("::1".into());
        a.build().unwrap();
    }

    #[test]
    fn oauth_needs_a_client_except_at_the_sandbox() {
        let mut a = new("me@gmail.com");
        a.auth = Some(AuthMethod::Oauth);
        let err = a.build().unwrap_err();
        assert!(
            err.to_string().contains("console.cloud.google.com"),
            "{err}"
        );
        a.oauth.client_id = Some("id.apps.googleusercontent.com".into());
        let cfg = a.build().unwrap().oauth.unwrap();
        assert_eq!(cfg.flow, Some(Flow::AuthCode));
        assert_eq!(cfg.login_hint.as_deref(), Some("me@gmail.com"));
        let mut s = new("me@sandbox.postie.test");
        s.provider = Some(ProviderId::Sandbox);
        s.auth = Some(AuthMethod::Oauth);
        assert_eq!(
            s.build().unwrap().oauth.unwrap().client_id,
            SANDBOX_CLIENT_ID
        );
        let mut p = new("me@gmail.com");
        p.oauth.client_id = Some("x".into());
        assert!(p.build().unwrap_err().to_string().contains("need"));
    }
}
