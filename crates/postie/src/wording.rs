//! What the user can do about a failure, named by the library and worded
//! by each front.
//!
//! The library knows that "sign account 'work' in again" fixes an expired
//! refresh token; it does not know how the person in front of it does that:
//! `postie login work` on the command line, `postie.login("work")` in
//! Python, a button in someone's application. So explanations and error
//! messages name an [`Action`], and a [`Wording`] chosen once by the front
//! ([`set_wording`]) turns it into words. Without one, the library's own
//! [`Plain`] wording describes the action.
//!
//! Settings are worded the same way: the library speaks of the account's
//! settings as the config file names them (`ca_file`); the command line
//! adds its flag (`--ca-file`).

use std::sync::OnceLock;

use serde::Serialize;

/// Something postie offers to do about a failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// Sign the account in (again): consent in the browser, tokens stored.
    SignIn {
        /// The account; `None` when the text speaks of no account in particular.
        account: Option<String>,
    },
    /// Sign in by entering a code on another device (RFC 8628).
    SignInWithDevice {
        /// The account.
        account: String,
    },
    /// Sign in with a browser on another machine, pasting where it ended.
    SignInManually {
        /// The account.
        account: String,
    },
    /// Revoke the account's tokens at the provider and delete them here.
    SignOut,
    /// Add the account (again), storing its password.
    AddAccount {
        /// The account; `None`: any.
        account: Option<String>,
        /// Its provider, when the text is about one.
        provider: Option<String>,
    },
    /// Add the account (again) so that it signs in with OAuth 2.0.
    AddOAuthAccount {
        /// The account.
        account: String,
        /// Its provider.
        provider: String,
    },
    /// List the configured accounts.
    ListAccounts,
    /// Describe the account settings.
    AccountHelp,
    /// Check the account end to end, stage by stage.
    CheckAccount {
        /// The account.
        account: String,
    },
    /// Start the sandbox provider (it prints its users and app passwords).
    StartSandbox,
    /// List the messages the sandbox received.
    ListSandboxMessages,
    /// Add a relay login for programs that insist on logging in.
    AddRelayUser {
        /// The login name, when known.
        user: Option<String>,
        /// The account its mail goes out through, when known.
        account: Option<String>,
    },
    /// List the relay logins.
    ListRelayUsers,
    /// List the outbox.
    ListQueue,
    /// Show one message of the outbox with its attempts.
    ShowMessage {
        /// Its id.
        id: String,
    },
    /// Remove a message from the outbox.
    PurgeMessage {
        /// Its id.
        id: String,
    },
}

/// Something the user gives: an account setting (as the config file names
/// it), or an input of the call (a message's sender, a server's URL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    /// `ca_file`: a CA certificate to trust.
    CaFile,
    /// `tls_name`: the name to verify the certificate for.
    TlsName,
    /// `host`: the submission server.
    Host,
    /// The config file's path.
    ConfigFile,
    /// Which account of the config to use.
    Account,
    /// A server given by URL instead of an account.
    Server,
    /// The message's sender.
    Sender,
    /// The message's recipients.
    Recipients,
    /// A `To` recipient.
    To,
    /// A `Cc` recipient.
    Cc,
    /// A blind-copy recipient (envelope only).
    Bcc,
    /// Reading a raw message's recipients from its To/Cc/Bcc headers.
    ReadRecipients,
    /// The sign-in redirect listener's port.
    LoginPort,
    /// Sign-in by pasting the address the browser ends on.
    ManualSignIn,
    /// A login for a server given by URL, with its password's source.
    ServerLogin,
    /// The addresses the relay listens on.
    Listen,
    /// The sandbox's STARTTLS port.
    SandboxSmtpPort,
    /// The sandbox's implicit-TLS port.
    SandboxSmtpsPort,
    /// The sandbox's HTTP port.
    SandboxHttpPort,
    /// The sandbox's daily sending limit.
    SandboxDailyLimit,
    /// A new account's address.
    Email,
    /// A new account's provider.
    Provider,
    /// The submission port.
    Port,
    /// No TLS at all (loopback only).
    Plaintext,
    /// Signing in with OAuth 2.0.
    OAuth,
    /// The OAuth client's settings (client ID, secret, flow).
    OAuthClient,
    /// The OAuth client's ID.
    ClientId,
    /// The OAuth client's secret.
    ClientSecret,
    /// Microsoft's tenant.
    Tenant,
    /// Where a generic provider's authorization server is.
    OAuthServer,
    /// A Google service account's JSON key, for the service-account flow.
    ServiceAccountKey,
}

impl Setting {
    /// How the library names it.
    pub fn key(self) -> &'static str {
        match self {
            Setting::CaFile => "ca_file",
            Setting::TlsName => "tls_name",
            Setting::Host => "host",
            Setting::ConfigFile => "the config file's path",
            Setting::Account => "the account's name",
            Setting::Server => "a server URL",
            Setting::Sender => "the sender",
            Setting::Recipients => "To, Cc or Bcc recipients",
            Setting::To => "To",
            Setting::Cc => "Cc",
            Setting::Bcc => "Bcc",
            Setting::ReadRecipients => "read them from the message's To/Cc/Bcc headers",
            Setting::LoginPort => "the sign-in listener's port",
            Setting::ManualSignIn => "a manual sign-in (pasting the address)",
            Setting::ServerLogin => "a user and a password source",
            Setting::Listen => "the listen addresses ([relay] listen)",
            Setting::SandboxSmtpPort => "the sandbox's STARTTLS port",
            Setting::SandboxSmtpsPort => "the sandbox's implicit-TLS port",
            Setting::SandboxHttpPort => "the sandbox's HTTP port",
            Setting::SandboxDailyLimit => "SandboxConfig::daily_limit",
            Setting::Email => "the address",
            Setting::Provider => "the provider",
            Setting::Port => "port",
            Setting::Plaintext => "tls = \"none\"",
            Setting::OAuth => "auth = \"oauth\"",
            Setting::OAuthClient => "OAuth client settings",
            Setting::ClientId => "the client ID (client_id)",
            Setting::ClientSecret => {
                "the client secret (client_secret_env, or NAME/client-secret in the secret store)"
            }
            Setting::Tenant => "tenant",
            Setting::OAuthServer => {
                "issuer (for discovery) or both authorization_endpoint and token_endpoint"
            }
            Setting::ServiceAccountKey => {
                "service_account_key (a JSON key of a Google service account with domain-wide delegation)"
            }
        }
    }
}

/// How a front says actions and settings.
pub trait Wording: Send + Sync {
    /// How the user does `action`.
    fn action(&self, action: &Action) -> String;
    /// How the user gives `setting`.
    fn setting(&self, setting: Setting) -> String {
        match setting {
            Setting::CaFile | Setting::TlsName | Setting::Host => {
                format!("{} in the account", setting.key())
            }
            other => other.key().to_string(),
        }
    }
}

/// The library's own wording: what to do, in words.
#[derive(Clone, Copy, Debug, Default)]
pub struct Plain;

impl Wording for Plain {
    fn action(&self, action: &Action) -> String {
        let acct = |a: &str| format!("account '{a}'");
        match action {
            Action::SignIn { account: Some(a) } => {
                format!("the sign-in of {} (oauth::login)", acct(a))
            }
            Action::SignIn { account: None } => "the account's sign-in (oauth::login)".into(),
            Action::SignInWithDevice { account } => format!(
                "the device-code sign-in of {} (oauth::login, LoginOptions::device)",
                acct(account)
            ),
            Action::SignInManually { account } => format!(
                "the manual sign-in of {} (oauth::login, LoginOptions::manual)",
                acct(account)
            ),
            Action::SignOut => "the sign-out (oauth::logout)".into(),
            Action::AddAccount {
                account: Some(a), ..
            } => format!(
                "{} added again with its password (config and secret store)",
                acct(a)
            ),
            Action::AddAccount { account: None, .. } => {
                "an account with its password (config and secret store)".into()
            }
            Action::AddOAuthAccount { account, .. } => format!(
                "{} set to OAuth 2.0 (auth = \"oauth\", [accounts.{account}.oauth])",
                acct(account)
            ),
            Action::ListAccounts => "the accounts of the config".into(),
            Action::AccountHelp => "the account settings (config::AccountConfig)".into(),
            Action::CheckAccount { account } => {
                format!("the check of {} (postie-doctor)", acct(account))
            }
            Action::StartSandbox => "the sandbox's start (postie-sandbox)".into(),
            Action::ListSandboxMessages => "the sandbox's mailbox".into(),
            Action::AddRelayUser { .. } => "a relay login ([[relay.users]])".into(),
            Action::ListRelayUsers => "the relay logins ([[relay.users]])".into(),
            Action::ListQueue => "the outbox's list".into(),
            Action::ShowMessage { id } => format!("message {id} of the outbox"),
            Action::PurgeMessage { id } => format!("the removal of message {id} from the outbox"),
        }
    }
}

static WORDING: OnceLock<Box<dyn Wording>> = OnceLock::new();

/// Choose how actions and settings are worded, once, before the first
/// error or explanation is made (the `postie` command does it first thing).
/// A second call is ignored: returns false.
pub fn set_wording(w: Box<dyn Wording>) -> bool {
    WORDING.set(w).is_ok()
}

fn wording() -> &'static dyn Wording {
    WORDING.get().map(|w| w.as_ref()).unwrap_or(&Plain)
}

/// `action` in the chosen wording.
pub fn say(action: &Action) -> String {
    wording().action(action)
}

/// `setting` in the chosen wording.
pub fn say_setting(setting: Setting) -> String {
    wording().setting(setting)
}

/// The action a `{do:NAME}` placeholder of a catalog entry stands for,
/// made concrete with the account and provider of the failure.
pub(crate) fn placeholder(
    name: &str,
    account: Option<&str>,
    provider: Option<&str>,
) -> Option<Action> {
    let account_or = || account.unwrap_or("NAME").to_string();
    Some(match name {
        "login" => Action::SignIn {
            account: Some(account_or()),
        },
        "login-device" => Action::SignInWithDevice {
            account: account_or(),
        },
        "login-manual" => Action::SignInManually {
            account: account_or(),
        },
        "logout" => Action::SignOut,
        "add-account" => Action::AddAccount {
            account: Some(account_or()),
            provider: provider.map(String::from),
        },
        "add-any-account" => Action::AddAccount {
            account: None,
            provider: None,
        },
        "add-oauth-account" => Action::AddOAuthAccount {
            account: account_or(),
            provider: provider.unwrap_or("PROVIDER").to_string(),
        },
        "account-list" => Action::ListAccounts,
        "account-help" => Action::AccountHelp,
        "doctor" => Action::CheckAccount {
            account: account_or(),
        },
        "sandbox" => Action::StartSandbox,
        _ => return None,
    })
}

/// The setting a `{set:KEY}` placeholder stands for.
pub(crate) fn setting_placeholder(key: &str) -> Option<Setting> {
    match key {
        "ca_file" => Some(Setting::CaFile),
        "tls_name" => Some(Setting::TlsName),
        _ => None,
    }
}
