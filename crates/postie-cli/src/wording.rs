//! How the `postie` command words the library's actions: as the command
//! lines that do them.

use postie::explain::{Action, Setting, Wording};

/// Actions as `postie` command lines, settings as flags.
pub struct Commands {
    /// Running as `sendmail`: the message's settings are sendmail's flags.
    pub sendmail: bool,
}

/// An address to show in `--email`, for the providers whose domain is known.
fn example_address(provider: &str) -> &'static str {
    match provider {
        "gmail" => "you@gmail.com",
        "yahoo" => "you@yahoo.com",
        "icloud" => "you@icloud.com",
        "fastmail" => "you@fastmail.com",
        "outlook" => "you@outlook.com",
        _ => "ADDRESS",
    }
}

impl Wording for Commands {
    fn action(&self, action: &Action) -> String {
        match action {
            Action::SignIn { account: Some(a) } => format!("`postie login {a}`"),
            Action::SignIn { account: None } => "`postie login`".into(),
            Action::SignInWithDevice { account } => format!("`postie login {account} --device`"),
            Action::SignInManually { account } => format!("`postie login {account} --manual`"),
            Action::SignOut => "`postie logout`".into(),
            Action::AddAccount {
                account: Some(a),
                provider: Some(p),
            } => format!(
                "`postie account add {a} --provider {p} --email {}`",
                example_address(p)
            ),
            Action::AddAccount {
                account: Some(a),
                provider: None,
            } => format!("`postie account add {a} ...`"),
            Action::AddAccount { account: None, .. } => "`postie account add`".into(),
            Action::AddOAuthAccount { account, provider } => {
                format!("`postie account add {account} --provider {provider} --auth oauth`")
            }
            Action::ListAccounts => "`postie account list`".into(),
            Action::AccountHelp => "`postie account add --help`".into(),
            Action::CheckAccount { account } => format!("`postie doctor {account}`"),
            Action::StartSandbox => "`postie sandbox`".into(),
            Action::ListSandboxMessages => "`postie sandbox messages`".into(),
            Action::AddRelayUser { user, account } => format!(
                "`postie relay user add {} --account {}`",
                user.as_deref().unwrap_or("USER"),
                account.as_deref().unwrap_or("NAME")
            ),
            Action::ListRelayUsers => "`postie relay user list`".into(),
            Action::ListQueue => "`postie queue list`".into(),
            Action::ShowMessage { id } => format!("`postie queue show {id}`"),
            Action::PurgeMessage { id } => format!("`postie queue purge {id}`"),
        }
    }

    fn setting(&self, setting: Setting) -> String {
        if self.sendmail {
            match setting {
                Setting::Sender => return "-f ADDR".into(),
                Setting::Recipients => return "recipients as arguments".into(),
                Setting::ReadRecipients => {
                    return "use -t to read the message's To/Cc/Bcc headers".into();
                }
                _ => {}
            }
        }
        match setting {
            Setting::CaFile => "--ca-file (ca_file in the account)",
            Setting::TlsName => "--tls-name NAME (tls_name in the account)",
            Setting::Host => "--host",
            Setting::ConfigFile => "--config",
            Setting::Account => "--account NAME",
            Setting::Server => "--server",
            Setting::Sender => "--from",
            Setting::Recipients => "--to, --cc, --bcc or recipients as arguments",
            Setting::ReadRecipients => "use -t to read the message's To/Cc/Bcc headers",
            Setting::To => "--to",
            Setting::Cc => "--cc",
            Setting::Bcc => "--bcc",
            Setting::LoginPort => "--port",
            Setting::ManualSignIn => "--manual",
            Setting::ServerLogin => "--user, with --password-env or --password-command",
            Setting::Listen => "--listen",
            Setting::SandboxSmtpPort => "--smtp-port",
            Setting::SandboxSmtpsPort => "--smtps-port",
            Setting::SandboxHttpPort => "--http-port",
            Setting::SandboxDailyLimit => "--daily-limit N",
            Setting::Email => "--email",
            Setting::Provider => "--provider",
            Setting::Port => "--port",
            Setting::Plaintext => "--plaintext",
            Setting::OAuth => "--auth oauth",
            Setting::OAuthClient => "--client-id, --client-secret-* and --flow",
            Setting::ClientId => "--client-id",
            Setting::ClientSecret => "--client-secret-stdin",
            Setting::Tenant => "--tenant",
            Setting::OAuthServer => "--issuer URL (for discovery) or both --authorization-endpoint and --token-endpoint",
            Setting::ServiceAccountKey => "--service-account-key PATH (the JSON key of a Google service account with domain-wide delegation)",
        }
        .into()
    }
}
