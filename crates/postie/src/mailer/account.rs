//! [`Account`]: an account of the config file, or a server given by URL,
//! resolved into what sending needs: where, how, as whom.

use postie_proto::sasl::Mechanism;

use crate::config::{AccountConfig, PasswordSource, Transports};
use crate::endpoint::Endpoint;
use crate::error::Result;
use crate::provider::{AuthMethod, ProviderId};
use crate::transport::Timeouts;

/// How an account authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    /// No AUTH at all (a server that needs none, such as a local relay).
    None,
    /// A password from `source`, sent as `user` with PLAIN or LOGIN.
    Password {
        /// The login name.
        user: String,
        /// Where the password comes from at the moment it is needed.
        source: PasswordSource,
        /// An app password: providers show them in groups (`abcd efgh ijkl
        /// mnop`) and take them without the spaces, so whitespace is removed.
        /// Any other password is sent exactly as given, unless it has the
        /// grouped shape ([`looks_like_grouped_app_password`]).
        app_password: bool,
    },
    /// OAuth 2.0: an access token that postie obtains, stores and refreshes,
    /// sent as `user` with XOAUTH2 or OAUTHBEARER.
    OAuth {
        /// The login name (the mailbox the token is for).
        user: String,
    },
}

impl Auth {
    /// The login name, when the account logs in.
    pub fn user(&self) -> Option<&str> {
        match self {
            Auth::None => None,
            Auth::Password { user, .. } | Auth::OAuth { user } => Some(user),
        }
    }
}

/// An account ready to send: an account of the config file
/// ([`Account::from_config`]) or a server given by URL ([`Account::from_url`]).
/// The fields are public so that a caller can override what the config says
/// for one run (another password source, a forced mechanism, a CA file).
#[derive(Clone, Debug)]
pub struct Account {
    /// Its name in the config file; `None` for a server given by URL.
    pub name: Option<String>,
    /// The provider, when known: it makes explanations specific.
    pub provider: Option<ProviderId>,
    /// The account's address: the sender when a message names none.
    pub email: Option<String>,
    /// Where and how to connect.
    pub endpoint: Endpoint,
    /// How it authenticates.
    pub auth: Auth,
    /// A SASL mechanism to use instead of the best one the server offers.
    pub mechanism: Option<Mechanism>,
    /// How long to wait for this server, instead of the mailer's timeouts.
    pub timeouts: Option<Timeouts>,
    /// The ways to send, in the order they are tried (`transport`).
    pub transports: Transports,
    /// The HTTPS API's base URL instead of the service's (`api_url`).
    pub api_url: Option<String>,
    /// The account's settings, for the token manager of an OAuth account.
    settings: Option<AccountConfig>,
}

impl Account {
    /// Account `name` of the config file.
    pub fn from_config(name: &str, acct: &AccountConfig) -> Result<Account> {
        let auth = match acct.auth {
            AuthMethod::Oauth => Auth::OAuth {
                user: acct.login().to_string(),
            },
            AuthMethod::None => Auth::None,
            method => Auth::Password {
                user: acct.login().to_string(),
                source: acct.password_source(name),
                app_password: method == AuthMethod::AppPassword,
            },
        };
        Ok(Account {
            name: Some(name.to_string()),
            provider: Some(acct.provider),
            email: Some(acct.email.clone()),
            endpoint: acct.endpoint()?,
            auth,
            mechanism: acct.mechanism()?,
            timeouts: acct.timeout()?.map(Timeouts::all),
            transports: acct.transport.clone(),
            api_url: acct.api_url.clone(),
            settings: Some(acct.clone()),
        })
    }

    /// A server given by URL (`smtp://HOST[:PORT]` for STARTTLS,
    /// `smtps://HOST[:PORT]` for implicit TLS), without authentication until
    /// [`Account::with_password`] gives some.
    pub fn from_url(url: &str) -> Result<Account> {
        Ok(Account::from_endpoint(Endpoint::from_url(url)?))
    }

    /// A server given by its endpoint, without authentication.
    pub fn from_endpoint(endpoint: Endpoint) -> Account {
        Account {
            name: None,
            provider: None,
            email: None,
            endpoint,
            auth: Auth::None,
            mechanism: None,
            timeouts: None,
            transports: Transports::default(),
            api_url: None,
            settings: None,
        }
    }

    /// Log in as `user` with the password from `source`, sent as given
    /// unless it has the grouped shape of an app password.
    pub fn with_password(mut self, user: impl Into<String>, source: PasswordSource) -> Account {
        self.auth = Auth::Password {
            user: user.into(),
            source,
            app_password: false,
        };
        self
    }

    /// The name to show: the account's name, else the server.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => self.endpoint.authority(),
        }
    }

    /// True when the account signs in with OAuth 2.0.
    pub fn is_oauth(&self) -> bool {
        matches!(self.auth, Auth::OAuth { .. })
    }

    /// The account's settings as the config file has them (`None` for a
    /// server given by URL).
    pub fn settings(&self) -> Option<&AccountConfig> {
        self.settings.as_ref()
    }
}

/// `abcd efgh ijkl mnop`: how Google, Yahoo and Apple display app
/// passwords, which they take without the spaces.
pub fn looks_like_grouped_app_password(p: &str) -> bool {
    let groups: Vec<&str> = p.split(' ').collect();
    groups.len() == 4
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.chars().all(|c| c.is_ascii_alphanumeric()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_account_timeout_bounds_every_wait() {
        let mut acct: AccountConfig = toml::from_str(
            "provider = \"generic\"\nemail = \"me@example.com\"\nauth = \"password\"\nhost = \"mail.example.com\"\ntimeout = \"7s\"\n",
        )
        .unwrap();
        let a = Account::from_config("t", &acct).unwrap();
        let t = a.timeouts.expect("the account's timeouts");
        assert_eq!(t.connect, std::time::Duration::from_secs(7));
        assert_eq!(t.command, Some(std::time::Duration::from_secs(7)));
        acct.timeout = Some("soon".into());
        let err = Account::from_config("t", &acct).unwrap_err();
        assert!(err.to_string().contains("timeout = \"soon\""), "{err}");
    }

    #[test]
    fn the_grouped_app_password_shape() {
        assert!(looks_like_grouped_app_password("abcd efgh ijkl mnop"));
        assert!(!looks_like_grouped_app_password(
            "correct horse battery staple"
        ));
        assert!(!looks_like_grouped_app_password("abcdefghijklmnop"));
        assert!(!looks_like_grouped_app_password("abcd  efgh ijkl mnop"));
    }
}
