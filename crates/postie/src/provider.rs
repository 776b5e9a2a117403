//! Provider presets: where each mail provider accepts submissions and which
//! authentication it takes today.
//!
//! The facts come from the providers' own pages and public traces; the ones
//! that shape behaviour are quoted next to the field that uses them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::wording::{Setting, say_setting};

/// How the connection to the submission server is secured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// TLS from the first byte (port 465, RFC 8314).
    Implicit,
    /// Plain connection upgraded with STARTTLS (port 587); the upgrade is required.
    Starttls,
    /// No TLS at all. Only ever allowed to a loopback address.
    None,
}

impl TlsMode {
    /// The lowercase name used in the config file and in JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Implicit => "implicit",
            TlsMode::Starttls => "starttls",
            TlsMode::None => "none",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TlsMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "implicit" | "tls" | "ssl" | "smtps" => Ok(TlsMode::Implicit),
            "starttls" => Ok(TlsMode::Starttls),
            "none" | "plain" | "plaintext" => Ok(TlsMode::None),
            other => Err(format!(
                "unknown TLS mode '{other}': use 'starttls' (port 587) or 'implicit' (port 465)"
            )),
        }
    }
}

/// How an account proves who it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMethod {
    /// A provider-issued app password (Gmail, Yahoo, iCloud, Fastmail).
    AppPassword,
    /// The account's own password (generic servers; refused by the big providers).
    Password,
    /// OAuth 2.0 bearer tokens over XOAUTH2 / OAUTHBEARER.
    Oauth,
    /// No login: a relay that trusts this network (an internal smarthost, a
    /// Microsoft 365 connector on port 25). TLS is still required beyond
    /// loopback.
    None,
}

impl AuthMethod {
    /// The kebab-case name used in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::AppPassword => "app-password",
            AuthMethod::Password => "password",
            AuthMethod::Oauth => "oauth",
            AuthMethod::None => "none",
        }
    }

    /// True for the methods whose secret is a password of some kind.
    pub fn uses_password(self) -> bool {
        matches!(self, AuthMethod::AppPassword | AuthMethod::Password)
    }
}

impl fmt::Display for AuthMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The providers postie knows by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderId {
    /// Consumer Gmail (`@gmail.com`).
    Gmail,
    /// Google Workspace (a domain hosted by Google).
    Workspace,
    /// Outlook.com / Hotmail / Live personal accounts.
    Outlook,
    /// Microsoft 365 / Exchange Online work or school accounts.
    Office365,
    /// Yahoo Mail.
    Yahoo,
    /// iCloud Mail.
    Icloud,
    /// Fastmail.
    Fastmail,
    /// Any other SMTP submission server.
    Generic,
    /// postie's local stand-in for Gmail (`postie sandbox`).
    Sandbox,
}

impl ProviderId {
    /// Every named provider, in the order `--help` lists them.
    pub const ALL: [ProviderId; 9] = [
        ProviderId::Gmail,
        ProviderId::Workspace,
        ProviderId::Outlook,
        ProviderId::Office365,
        ProviderId::Yahoo,
        ProviderId::Icloud,
        ProviderId::Fastmail,
        ProviderId::Generic,
        ProviderId::Sandbox,
    ];

    /// The lowercase name used in the config file and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderId::Gmail => "gmail",
            ProviderId::Workspace => "workspace",
            ProviderId::Outlook => "outlook",
            ProviderId::Office365 => "office365",
            ProviderId::Yahoo => "yahoo",
            ProviderId::Icloud => "icloud",
            ProviderId::Fastmail => "fastmail",
            ProviderId::Generic => "generic",
            ProviderId::Sandbox => "sandbox",
        }
    }

    /// The preset for this provider.
    pub fn preset(self) -> &'static Preset {
        PRESETS
            .iter()
            .find(|p| p.id == self)
            .expect("every ProviderId has a preset")
    }

    /// True for Google's SMTP service (consumer Gmail and Workspace).
    pub fn is_google(self) -> bool {
        matches!(self, ProviderId::Gmail | ProviderId::Workspace)
    }

    /// True for Microsoft's SMTP service (Outlook.com and Microsoft 365).
    pub fn is_microsoft(self) -> bool {
        matches!(self, ProviderId::Outlook | ProviderId::Office365)
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ProviderId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        let alias = match lower.as_str() {
            "google" | "googlemail" => "gmail",
            "gsuite" | "google-workspace" => "workspace",
            "hotmail" | "live" | "outlook.com" => "outlook",
            "microsoft365" | "m365" | "o365" | "exchange" => "office365",
            "apple" | "me" => "icloud",
            "smtp" | "custom" | "other" => "generic",
            other => other,
        };
        ProviderId::ALL
            .into_iter()
            .find(|p| p.as_str() == alias)
            .ok_or_else(|| {
                let names: Vec<_> = ProviderId::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown provider '{s}': use one of {}", names.join(", "))
            })
    }
}

/// What postie knows about one provider's submission service.
#[derive(Debug)]
pub struct Preset {
    /// The provider this preset describes.
    pub id: ProviderId,
    /// Human name, for messages.
    pub display_name: &'static str,
    /// Submission host; `None` for the generic provider.
    pub host: Option<&'static str>,
    /// Preferred port.
    pub port: u16,
    /// TLS mode on that port.
    pub tls: TlsMode,
    /// Authentication methods the provider accepts, best first.
    pub auth: &'static [AuthMethod],
    /// Where the user creates an app password, when the provider has them.
    pub app_password_url: Option<&'static str>,
    /// A short note shown by `account add` (requirements, quirks).
    pub note: &'static str,
}

impl Preset {
    /// True when the provider accepts this authentication method.
    pub fn supports(&self, method: AuthMethod) -> bool {
        self.auth.contains(&method)
    }

    /// The method `account add` picks when the user names none.
    pub fn default_auth(&self) -> AuthMethod {
        self.auth[0]
    }
}

/// All presets. Ports follow each provider's published settings; where a
/// provider offers both 465 and 587 the one it documents first is used.
pub static PRESETS: &[Preset] = &[
    Preset {
        id: ProviderId::Gmail,
        display_name: "Gmail",
        host: Some("smtp.gmail.com"),
        port: 587,
        tls: TlsMode::Starttls,
        auth: &[AuthMethod::AppPassword, AuthMethod::Oauth],
        app_password_url: Some("https://myaccount.google.com/apppasswords"),
        note: "App passwords need 2-Step Verification turned on; Google shows them as \
               'xxxx xxxx xxxx xxxx' (the spaces do not matter). OAuth 2.0 ('postie login') \
               is the durable way.",
    },
    Preset {
        id: ProviderId::Workspace,
        display_name: "Google Workspace",
        host: Some("smtp.gmail.com"),
        port: 587,
        tls: TlsMode::Starttls,
        auth: &[AuthMethod::Oauth, AuthMethod::AppPassword],
        app_password_url: Some("https://myaccount.google.com/apppasswords"),
        note: "Less secure app access ended in 2024. Use OAuth 2.0, or an app password if \
               your administrator allows them.",
    },
    Preset {
        id: ProviderId::Outlook,
        display_name: "Outlook.com",
        host: Some("smtp-mail.outlook.com"),
        port: 587,
        tls: TlsMode::Starttls,
        auth: &[AuthMethod::Oauth],
        app_password_url: None,
        note: "Outlook.com personal accounts accept only OAuth 2.0 since September 2024.",
    },
    Preset {
        id: ProviderId::Office365,
        display_name: "Microsoft 365",
        host: Some("smtp.office365.com"),
        port: 587,
        tls: TlsMode::Starttls,
        auth: &[AuthMethod::Oauth, AuthMethod::Password],
        app_password_url: None,
        note: "SMTP AUTH must be enabled for the mailbox (Set-CASMailbox \
               -SmtpClientAuthenticationDisabled $false). Basic authentication is being \
               turned off by default at the end of 2026: use OAuth 2.0.",
    },
    Preset {
        id: ProviderId::Yahoo,
        display_name: "Yahoo Mail",
        host: Some("smtp.mail.yahoo.com"),
        port: 465,
        tls: TlsMode::Implicit,
        auth: &[AuthMethod::AppPassword],
        app_password_url: Some("https://login.yahoo.com/myaccount/security/app-password"),
        note: "Yahoo needs an app password (2-step verification on); it accepts no new \
               OAuth clients for mail.",
    },
    Preset {
        id: ProviderId::Icloud,
        display_name: "iCloud Mail",
        host: Some("smtp.mail.me.com"),
        port: 587,
        tls: TlsMode::Starttls,
        auth: &[AuthMethod::AppPassword],
        app_password_url: Some(
            "https://account.apple.com (Sign-In and Security > App-Specific Passwords)",
        ),
        note: "iCloud needs an app-specific password (two-factor authentication on); the \
               user name is the full iCloud address.",
    },
    Preset {
        id: ProviderId::Fastmail,
        display_name: "Fastmail",
        host: Some("smtp.fastmail.com"),
        port: 465,
        tls: TlsMode::Implicit,
        auth: &[AuthMethod::AppPassword],
        app_password_url: Some("https://app.fastmail.com/settings/security/apps"),
        note: "Fastmail refuses the account password over SMTP: create an app password \
               with SMTP access.",
    },
    Preset {
        id: ProviderId::Generic,
        display_name: "SMTP server",
        host: None,
        port: 587,
        tls: TlsMode::Starttls,
        auth: &[
            AuthMethod::Password,
            AuthMethod::AppPassword,
            AuthMethod::None,
            AuthMethod::Oauth,
        ],
        app_password_url: None,
        note: "Give its host and port (587 STARTTLS or 465 implicit TLS).",
    },
    Preset {
        id: ProviderId::Sandbox,
        display_name: "postie sandbox",
        // Ports and CA of `postie sandbox` with its defaults (postie-sandbox);
        // the CA file is found in the sandbox's data directory.
        host: Some("127.0.0.1"),
        port: 2587,
        tls: TlsMode::Starttls,
        auth: &[AuthMethod::AppPassword, AuthMethod::Oauth],
        app_password_url: Some(
            "the one the sandbox prints when it starts (abcd efgh ijkl mnop by default)",
        ),
        note: "The local stand-in for Gmail that postie's sandbox runs on 127.0.0.1: same replies, \
               same rules (the account password is refused, app passwords and OAuth work). Its \
               default user is me@sandbox.postie.test; OAuth needs no client ID of your own.",
    },
];

/// The provider whose submission server `host`:`port` is: the preset with
/// that host, else generic. The sandbox's host is any loopback server's, so
/// it is the sandbox only on its own default ports (2587, 2465); another
/// local server is generic (its CA is not the sandbox's).
pub fn provider_of_server(host: &str, port: u16) -> ProviderId {
    PRESETS
        .iter()
        .filter(|p| p.host.is_some_and(|h| h.eq_ignore_ascii_case(host)))
        .find(|p| p.id != ProviderId::Sandbox || matches!(port, 2587 | 2465))
        .map_or(ProviderId::Generic, |p| p.id)
}

/// The public OAuth client of `postie sandbox` (no secret).
pub const SANDBOX_CLIENT_ID: &str = "postie-sandbox";

impl ProviderId {
    /// Where and how to register postie as an OAuth client with this
    /// provider, in plain words.
    pub fn registration_hint(self) -> String {
        match self {
            ProviderId::Gmail | ProviderId::Workspace => format!(
                "Google: create a client at https://console.cloud.google.com/apis/credentials \
                 (Create credentials > OAuth client ID > Application type \"Desktop app\"); give \
                 its ID ({}) and its secret ({}). The consent screen needs the scope \
                 https://mail.google.com/; while the app is in \"Testing\", Google ends its \
                 refresh tokens after 7 days. Loopback redirects (http://127.0.0.1:PORT) need no \
                 registration for Desktop clients.",
                say_setting(Setting::ClientId),
                say_setting(Setting::ClientSecret)
            ),
            ProviderId::Outlook | ProviderId::Office365 => format!(
                "Microsoft: register an app at https://entra.microsoft.com (App registrations > \
                 New registration); under Authentication add the platform \"Mobile and desktop \
                 applications\" with the redirect URI http://localhost and allow public client \
                 flows (for the device-code sign-in); under API permissions add Office 365 \
                 Exchange Online / SMTP.Send (delegated) and offline_access. Give the \
                 Application (client) ID ({}) and the tenant ({}).",
                say_setting(Setting::ClientId),
                say_setting(Setting::Tenant)
            ),
            _ => "Register postie as a native (public) client with your authorization server, \
                  with the redirect URI http://127.0.0.1 (any port, RFC 8252) and PKCE."
                .into(),
        }
    }
}

/// Guess the provider from an address's domain, for `account add` without
/// `--provider`. Only domains that certainly belong to one provider are named.
pub fn guess_from_email(email: &str) -> Option<ProviderId> {
    let domain = email.rsplit_once('@')?.1.to_ascii_lowercase();
    Some(match domain.as_str() {
        "gmail.com" | "googlemail.com" => ProviderId::Gmail,
        "outlook.com" | "hotmail.com" | "live.com" | "msn.com" => ProviderId::Outlook,
        "yahoo.com" | "ymail.com" | "rocketmail.com" => ProviderId::Yahoo,
        "icloud.com" | "me.com" | "mac.com" => ProviderId::Icloud,
        "fastmail.com" | "fastmail.fm" => ProviderId::Fastmail,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_provider_parses_back_from_its_name() {
        for id in ProviderId::ALL {
            assert_eq!(id.as_str().parse::<ProviderId>().unwrap(), id);
            assert_eq!(id.preset().id, id);
        }
    }

    #[test]
    fn aliases_and_unknown_names() {
        assert_eq!(
            "Hotmail".parse::<ProviderId>().unwrap(),
            ProviderId::Outlook
        );
        assert_eq!("m365".parse::<ProviderId>().unwrap(), ProviderId::Office365);
        let err = "aol2".parse::<ProviderId>().unwrap_err();
        assert!(err.contains("gmail") && err.contains("generic"), "{err}");
    }

    #[test]
    fn presets_match_published_settings() {
        use AuthMethod::{AppPassword, None as NoAuth, Oauth, Password};
        use TlsMode::{Implicit, Starttls};
        // What ../shared/docs/provider-facts.md records for each provider: the
        // submission host, port and TLS mode, the methods it accepts, and the
        // ones it refuses (the first accepted is `account add`'s default).
        #[allow(clippy::type_complexity)]
        let facts: [(
            ProviderId,
            Option<&str>,
            u16,
            TlsMode,
            &[AuthMethod],
            &[AuthMethod],
        ); 9] = [
            // smtp.gmail.com:587 STARTTLS; app passwords (2-Step Verification) and XOAUTH2
            (
                ProviderId::Gmail,
                Some("smtp.gmail.com"),
                587,
                Starttls,
                &[AppPassword, Oauth],
                &[Password],
            ),
            // the same server; less secure apps ended: OAuth first
            (
                ProviderId::Workspace,
                Some("smtp.gmail.com"),
                587,
                Starttls,
                &[Oauth, AppPassword],
                &[Password],
            ),
            // smtp-mail.outlook.com:587 STARTTLS, "OAuth2/Modern Auth" only
            (
                ProviderId::Outlook,
                Some("smtp-mail.outlook.com"),
                587,
                Starttls,
                &[Oauth],
                &[Password, AppPassword],
            ),
            // smtp.office365.com:587 STARTTLS (465 is not SMTP AUTH submission); basic auth
            // where SMTP AUTH is enabled, OAuth preferred
            (
                ProviderId::Office365,
                Some("smtp.office365.com"),
                587,
                Starttls,
                &[Oauth, Password],
                &[AppPassword],
            ),
            // smtp.mail.yahoo.com 465 TLS; app password; no new OAuth clients for mail
            (
                ProviderId::Yahoo,
                Some("smtp.mail.yahoo.com"),
                465,
                Implicit,
                &[AppPassword],
                &[Password, Oauth],
            ),
            // smtp.mail.me.com:587 STARTTLS; app-specific password; no OAuth for third parties
            (
                ProviderId::Icloud,
                Some("smtp.mail.me.com"),
                587,
                Starttls,
                &[AppPassword],
                &[Password, Oauth],
            ),
            // smtp.fastmail.com 465 "SSL/TLS ... not STARTTLS"; app password, never the account's
            (
                ProviderId::Fastmail,
                Some("smtp.fastmail.com"),
                465,
                Implicit,
                &[AppPassword],
                &[Password],
            ),
            // any server: the user says; the common submission port
            (
                ProviderId::Generic,
                None,
                587,
                Starttls,
                &[Password, AppPassword, NoAuth, Oauth],
                &[],
            ),
            // postie's stand-in for Gmail on loopback, with Gmail's rules
            (
                ProviderId::Sandbox,
                Some("127.0.0.1"),
                2587,
                Starttls,
                &[AppPassword, Oauth],
                &[Password],
            ),
        ];
        assert_eq!(facts.len(), ProviderId::ALL.len());
        for (id, host, port, tls, accepted, refused) in facts {
            let p = id.preset();
            assert_eq!((p.host, p.port, p.tls), (host, port, tls), "{id:?}");
            assert_eq!(p.auth, accepted, "{id:?}: accepted methods, best first");
            assert_eq!(p.default_auth(), accepted[0], "{id:?}");
            for m in refused {
                assert!(!p.supports(*m), "{id:?} must not offer {m:?}");
            }
            if id != ProviderId::Generic {
                assert_eq!(
                    p.app_password_url.is_some(),
                    accepted.contains(&AppPassword),
                    "{id:?}: where to create an app password, exactly when it takes one"
                );
            }
        }
    }

    #[test]
    fn a_loopback_server_is_the_sandbox_only_on_its_ports() {
        assert_eq!(provider_of_server("127.0.0.1", 2587), ProviderId::Sandbox);
        assert_eq!(provider_of_server("127.0.0.1", 2465), ProviderId::Sandbox);
        assert_eq!(provider_of_server("127.0.0.1", 12587), ProviderId::Generic);
        assert_eq!(provider_of_server("SMTP.gmail.com", 465), ProviderId::Gmail);
        assert_eq!(
            provider_of_server("mail.example.com", 587),
            ProviderId::Generic
        );
    }

    #[test]
    fn guesses_only_well_known_domains() {
        assert_eq!(guess_from_email("a@Gmail.com"), Some(ProviderId::Gmail));
        assert_eq!(guess_from_email("a@example.com"), None);
        assert_eq!(guess_from_email("no-at-sign"), None);
    }
}

/// How much an account may send, so a sender paces itself instead of
/// finding the limits by refusals. Any field may be unset (no limit).
/// Per-day limits are over a rolling 24 hours, as the providers count them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Messages per rolling 24 hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_day: Option<u32>,
    /// Recipients per rolling 24 hours (every accepted recipient counts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_day: Option<u32>,
    /// Messages per minute: sends are spaced 60 s / `per_minute` apart.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_minute: Option<u32>,
    /// Recipients per message: a message with more goes out as several
    /// transactions (the same body, the recipients in groups).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipients_per_message: Option<u32>,
}

impl Limits {
    /// The limits the provider publishes for SMTP submission.
    ///
    /// - Gmail: "about 500 per day"; "If you use a POP or IMAP client … you
    ///   may only send a message to 100 people at a time"
    ///   (support.google.com/mail/answer/22839).
    /// - Google Workspace: 2,000 messages a day, 10,000 recipients a day, and
    ///   "Recipients per message sent via SMTP … 100"
    ///   (support.google.com/a/answer/166852).
    /// - Microsoft 365 (Exchange Online, SMTP client submission): 30 messages
    ///   a minute per mailbox, 10,000 recipients per rolling 24 hours, 500
    ///   recipients per message (learn.microsoft.com, exchange-online-limits).
    ///   Outlook.com submits through the same service and gets the same.
    /// - Others publish none that postie knows of: no limit.
    pub fn published(provider: ProviderId) -> Limits {
        match provider {
            ProviderId::Gmail => Limits {
                per_day: Some(500),
                recipients_per_message: Some(100),
                ..Limits::default()
            },
            ProviderId::Workspace => Limits {
                per_day: Some(2000),
                recipients_per_day: Some(10_000),
                recipients_per_message: Some(100),
                ..Limits::default()
            },
            ProviderId::Office365 | ProviderId::Outlook => Limits {
                per_minute: Some(30),
                recipients_per_day: Some(10_000),
                recipients_per_message: Some(500),
                ..Limits::default()
            },
            _ => Limits::default(),
        }
    }

    /// Each field from `self` when set, else from `fallback`.
    pub fn or(self, fallback: Limits) -> Limits {
        Limits {
            per_day: self.per_day.or(fallback.per_day),
            recipients_per_day: self.recipients_per_day.or(fallback.recipients_per_day),
            per_minute: self.per_minute.or(fallback.per_minute),
            recipients_per_message: self
                .recipients_per_message
                .or(fallback.recipients_per_message),
        }
    }

    /// The time between two sends under `per_minute`.
    pub fn spacing(&self) -> Option<std::time::Duration> {
        self.per_minute
            .filter(|n| *n > 0)
            .map(|n| std::time::Duration::from_secs(60) / n)
    }

    /// The limits in words, e.g. "30 messages/minute, 10000 recipients/day";
    /// "none" when unset.
    pub fn describe(&self) -> String {
        let parts: Vec<String> = [
            (self.per_minute, "messages/minute"),
            (self.per_day, "messages/day"),
            (self.recipients_per_day, "recipients/day"),
            (self.recipients_per_message, "recipients/message"),
        ]
        .into_iter()
        .filter_map(|(n, what)| n.map(|n| format!("{n} {what}")))
        .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join(", ")
        }
    }

    /// Refuse zeros, which would stop sending altogether.
    pub fn validate(&self, account: &str) -> crate::error::Result<()> {
        let fields = [
            ("per_day", self.per_day),
            ("recipients_per_day", self.recipients_per_day),
            ("per_minute", self.per_minute),
            ("recipients_per_message", self.recipients_per_message),
        ];
        if let Some((name, _)) = fields.iter().find(|(_, v)| *v == Some(0)) {
            return Err(crate::error::Error::new(
                crate::error::ErrorKind::Config,
                format!(
                    "account '{account}': limits.{name} = 0 would never send; remove the line for no limit, or set at least 1"
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod limits_tests {
    use super::*;

    #[test]
    fn published_limits_match_the_providers_pages() {
        let m = Limits::published(ProviderId::Office365);
        assert_eq!(m.per_minute, Some(30));
        assert_eq!(m.spacing(), Some(std::time::Duration::from_secs(2)));
        assert_eq!(m.recipients_per_day, Some(10_000));
        let w = Limits::published(ProviderId::Workspace);
        assert_eq!(
            (w.per_day, w.recipients_per_message),
            (Some(2000), Some(100))
        );
        assert_eq!(Limits::published(ProviderId::Gmail).per_day, Some(500));
        assert_eq!(Limits::published(ProviderId::Fastmail), Limits::default());
    }

    #[test]
    fn own_settings_win_field_by_field() {
        let own = Limits {
            per_minute: Some(10),
            ..Limits::default()
        };
        let l = own.or(Limits::published(ProviderId::Office365));
        assert_eq!(l.per_minute, Some(10));
        assert_eq!(l.recipients_per_message, Some(500));
        assert_eq!(
            l.describe(),
            "10 messages/minute, 10000 recipients/day, 500 recipients/message"
        );
        assert!(
            Limits {
                per_day: Some(0),
                ..Limits::default()
            }
            .validate("x")
            .unwrap_err()
            .message()
            .contains("limits.per_day = 0")
        );
    }
}
