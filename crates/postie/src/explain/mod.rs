//! The explanation catalog: for a failure, what happened, the likely causes
//! in order, the fix, and whether trying again can help.
//!
//! One table, keyed by provider family + reply code + enhanced code + text
//! patterns, feeds `send`, the outbox and `doctor`. Microsoft answers many
//! different problems with the same `535`, so entries match on the text too;
//! the first matching entry wins, so specific entries come before generic ones.

use postie_proto::reply::Reply;
use serde::Serialize;

use crate::error::{Error, ErrorKind};
use crate::provider::ProviderId;

mod oauth;

/// Whether and when retrying can help.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Retry {
    /// Retrying the same thing cannot succeed; something must change first.
    No,
    /// Retrying later can succeed with no change.
    Later,
    /// Retry only after hours (a daily quota resets on a rolling window).
    Hours,
}

/// An explanation of one failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// Stable identifier of the catalog entry (for tests and docs).
    pub id: &'static str,
    /// One sentence: what happened.
    pub summary: String,
    /// The most likely causes, most likely first.
    pub causes: Vec<String>,
    /// What to do: commands or URLs.
    pub fix: Vec<String>,
    /// Whether retrying can help.
    pub retry: Retry,
}

/// Context that makes an explanation concrete.
#[derive(Clone, Debug, Default)]
pub struct Context<'a> {
    /// The provider, when known (from the account or guessed from the reply).
    pub provider: Option<ProviderId>,
    /// The account name, for commands like `postie login NAME`.
    pub account: Option<&'a str>,
    /// The server's host name.
    pub host: Option<&'a str>,
}

/// Provider families as far as replies are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Google,
    Microsoft,
    Yahoo,
    Icloud,
    Fastmail,
    /// postie's own sandbox provider: Gmail's texts, its own fixes.
    Sandbox,
    Any,
}

struct Entry {
    id: &'static str,
    family: Family,
    code: Option<u16>,
    /// The reply's class (4 transient, 5 permanent) when no code is given.
    class: Option<u16>,
    /// An enhanced code; one ending in '.' matches as a prefix (`5.7.`).
    enhanced: Option<&'static str>,
    /// Every pattern must occur in the reply text (case-insensitive).
    text: &'static [&'static str],
    summary: &'static str,
    causes: &'static [&'static str],
    fix: &'static [&'static str],
    retry: Retry,
}

const OAUTH_DURABLE: &str = "The durable way is OAuth 2.0: `postie account add {account} --provider {provider} --auth oauth`, then `postie login {account}`.";

static CATALOG: &[Entry] = &[
    // ---- postie's sandbox (Gmail's texts; the fixes are the sandbox's) ----
    Entry {
        id: "sandbox-app-password-required",
        family: Family::Sandbox,
        code: Some(534),
        class: None,
        enhanced: Some("5.7.9"),
        text: &[],
        summary: "The sandbox refused the account password, as Gmail does when 2-Step Verification is on: it wants an app password or OAuth.",
        causes: &[
            "the sandbox user's account password was used (the sandbox plays a Gmail account with 2-Step Verification)",
        ],
        fix: &[
            "Use the sandbox's app password: `postie sandbox` prints it when it starts ('abcd efgh ijkl mnop' by default)",
            "Or OAuth: `postie account add {account} --provider sandbox --auth oauth`, then `postie login {account}`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "sandbox-bad-credentials",
        family: Family::Sandbox,
        code: Some(535),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The sandbox did not accept the user name and password (or token).",
        causes: &[
            "the password is not one of the sandbox user's app passwords, or the user name is not a sandbox user",
            "for OAuth: the token expired, was revoked, or the sandbox was restarted (it keeps tokens in memory only)",
        ],
        fix: &[
            "Use a user and app password that `postie sandbox` printed when it started (me@sandbox.postie.test / 'abcd efgh ijkl mnop' by default)",
            "For OAuth: `postie login {account}` again",
        ],
        retry: Retry::No,
    },
    // ---- Google (provider-facts §1.2) ----
    Entry {
        id: "google-app-password-required",
        family: Family::Google,
        code: Some(534),
        class: None,
        enhanced: Some("5.7.9"),
        text: &["application-specific password required"],
        summary: "Gmail refused the password: the account has 2-Step Verification on, so it accepts an app password (or OAuth), not the account password.",
        causes: &[
            "the Google account password was used; with 2-Step Verification Gmail requires an app password for SMTP",
        ],
        fix: &[
            "Create an app password at https://myaccount.google.com/apppasswords (16 letters, shown as 'xxxx xxxx xxxx xxxx'; spaces are fine)",
            "Store it: `postie account add {account} --provider gmail --email you@gmail.com` and paste the app password when asked",
            OAUTH_DURABLE,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-web-login-required",
        family: Family::Google,
        code: Some(534),
        class: None,
        enhanced: None,
        text: &["log in", "web browser"],
        summary: "Google blocked this sign-in as suspicious and wants you to sign in with a web browser first.",
        causes: &[
            "a sign-in from a new place or machine triggered Google's protection (CAPTCHA / 'WebLoginRequired')",
            "the account password is used where Google wants an app password or OAuth",
        ],
        fix: &[
            "Sign in to Gmail in a browser from this network, confirm the activity at https://myaccount.google.com/notifications, then try again",
            "Prefer an app password (https://myaccount.google.com/apppasswords) or OAuth: they are not blocked this way",
            OAUTH_DURABLE,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-bad-credentials",
        family: Family::Google,
        code: Some(535),
        class: None,
        enhanced: Some("5.7.8"),
        text: &[],
        summary: "Gmail did not accept the user name and password.",
        causes: &[
            "the password is wrong, or it is the account password and the account has no 2-Step Verification (Gmail accepts only app passwords or OAuth for SMTP since 2022)",
            "the app password was revoked: Google revokes all app passwords when the account password changes",
            "the user name is not the full address (it must be you@gmail.com or your Workspace address)",
            "for OAuth: the access token is expired, lacks the https://mail.google.com/ scope, or belongs to another user",
        ],
        fix: &[
            "Create a new app password at https://myaccount.google.com/apppasswords (needs 2-Step Verification) and store it with `postie account add {account} --provider gmail --email you@gmail.com`",
            OAUTH_DURABLE,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-starttls-first",
        family: Family::Any,
        code: Some(530),
        class: None,
        enhanced: Some("5.7.0"),
        text: &["starttls"],
        summary: "The server requires STARTTLS before authentication or mail.",
        causes: &[
            "the client sent AUTH or MAIL on an unencrypted connection",
            "the account is configured with tls = \"none\" for a server that needs TLS",
        ],
        fix: &[
            "Use STARTTLS on port 587 or implicit TLS on port 465 (`tls = \"starttls\"` or `\"implicit\"` in the account; `--server smtp://HOST:587` or `smtps://HOST:465`)",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "auth-required",
        family: Family::Any,
        code: Some(530),
        class: None,
        enhanced: None,
        text: &["authentication required"],
        summary: "The server requires authentication before it accepts mail.",
        causes: &["no credentials were given, or authentication failed earlier in the session"],
        fix: &[
            "Configure credentials for the account (`postie account add`), or give --user with --password-env / --password-command",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-daily-quota",
        family: Family::Any,
        code: Some(550),
        class: None,
        enhanced: Some("5.4.5"),
        text: &[],
        summary: "The account reached its daily sending limit. This is not a problem with the message.",
        causes: &[
            "Gmail allows about 500 recipients a day for personal accounts and 2,000 messages a day for Workspace, over a rolling 24-hour window",
        ],
        fix: &[
            "Wait: the limit resets within 24 hours (https://support.google.com/a/answer/166852). Do not resend in a loop; the outbox retries such messages hours later",
        ],
        retry: Retry::Hours,
    },
    Entry {
        id: "google-too-many-recipients",
        family: Family::Any,
        code: Some(452),
        class: None,
        enhanced: Some("4.5.3"),
        text: &[],
        summary: "The message has too many recipients for one submission.",
        causes: &["Gmail accepts at most 100 recipients per message over SMTP"],
        fix: &["Split the recipients over several messages of at most 100"],
        retry: Retry::No,
    },
    Entry {
        id: "google-dmarc-unauthenticated",
        family: Family::Any,
        code: None,
        class: None,
        enhanced: Some("5.7.26"),
        text: &[],
        summary: "The message failed sender authentication checks (SPF, DKIM or DMARC).",
        causes: &[
            "the From domain's DMARC policy rejects mail not sent through its own servers",
            "the From address is in a domain this account may not send as",
        ],
        fix: &[
            "Send with a From address of the account's own domain, or configure SPF/DKIM for the domain (https://support.google.com/mail/answer/81126)",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "cannot-decode-auth",
        family: Family::Any,
        code: Some(501),
        class: None,
        enhanced: Some("5.5.2"),
        text: &[],
        summary: "The server could not decode the AUTH data.",
        causes: &[
            "the AUTH payload was not base64 (a common bug in copied XOAUTH2 examples that send the raw string)",
        ],
        fix: &["Let postie do the authentication (`postie send`, or the relay for scripts)"],
        retry: Retry::No,
    },
    Entry {
        id: "google-xoauth-obsolete",
        family: Family::Any,
        code: Some(504),
        class: None,
        enhanced: Some("5.7.4"),
        text: &["xoauth"],
        summary: "The server no longer supports the old XOAUTH mechanism.",
        causes: &["a client used XOAUTH (OAuth 1) instead of XOAUTH2 / OAUTHBEARER"],
        fix: &["Use OAuth 2.0: `postie login {account}`"],
        retry: Retry::No,
    },
    Entry {
        id: "too-many-logins",
        family: Family::Any,
        code: Some(454),
        class: None,
        enhanced: None,
        text: &["too many login attempts"],
        summary: "The server is refusing logins for a while after too many attempts.",
        causes: &["many connections or failed logins in a short time"],
        fix: &[
            "Wait some minutes before trying again; check that no other program retries with a wrong password",
        ],
        retry: Retry::Later,
    },
    Entry {
        id: "google-unauthenticated-rate-limited",
        family: Family::Any,
        code: Some(421),
        class: None,
        enhanced: Some("4.7.26"),
        text: &[],
        summary: "Gmail rate-limits this mail because the sending domain does not authenticate it (SPF or DKIM).",
        causes: &[
            "the From domain publishes no SPF record covering this server and signs no DKIM",
            "the message is relayed through a server the From domain does not list",
        ],
        fix: &[
            "Send with a From address of the account's own domain, or set up SPF and DKIM for the domain (https://support.google.com/mail/answer/81126)",
        ],
        retry: Retry::Later,
    },
    Entry {
        id: "google-likely-spam",
        family: Family::Google,
        code: Some(550),
        class: None,
        enhanced: Some("5.7.1"),
        text: &["unsolicited"],
        summary: "Gmail refused the message as likely spam.",
        causes: &[
            "the content or links look like spam to Gmail's filters",
            "the sending domain or IP address has a poor reputation, or lacks SPF/DKIM/DMARC",
        ],
        fix: &[
            "Review the content and links; authenticate the domain (SPF, DKIM, DMARC) as https://support.google.com/mail/answer/81126 describes",
        ],
        retry: Retry::No,
    },
    // ---- Yahoo, iCloud, Fastmail: app passwords only (provider-facts §8) ----
    Entry {
        id: "yahoo-app-password-required",
        family: Family::Yahoo,
        code: Some(535),
        class: None,
        enhanced: None,
        text: &[],
        summary: "Yahoo did not accept the password: Yahoo Mail takes only an app password over SMTP.",
        causes: &[
            "the Yahoo account password was used; SMTP needs an app password (2-step verification on)",
            "the app password was deleted, or the user name is not the full @yahoo.com address",
        ],
        fix: &[
            "Create an app password at https://login.yahoo.com/myaccount/security/app-password (16 letters)",
            "Store it: `postie account add {account} --provider yahoo --email you@yahoo.com` and paste it when asked",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "icloud-app-password-required",
        family: Family::Icloud,
        code: Some(535),
        class: None,
        enhanced: None,
        text: &[],
        summary: "iCloud did not accept the password: iCloud Mail takes only an app-specific password over SMTP.",
        causes: &[
            "the Apple Account password was used; SMTP needs an app-specific password (two-factor authentication on)",
            "the user name is not the full iCloud address (name@icloud.com, @me.com or @mac.com)",
            "the app-specific password was revoked (changing the Apple Account password revokes them all)",
        ],
        fix: &[
            "Create an app-specific password at https://account.apple.com (Sign-In and Security > App-Specific Passwords; shown as xxxx-xxxx-xxxx-xxxx)",
            "Store it: `postie account add {account} --provider icloud --email you@icloud.com` and paste it when asked",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "fastmail-app-password-required",
        family: Family::Fastmail,
        code: Some(535),
        class: None,
        enhanced: None,
        text: &[],
        summary: "Fastmail did not accept the password: Fastmail refuses the account password over SMTP.",
        causes: &[
            "the Fastmail account password was used; SMTP needs an app password",
            "the app password was created without SMTP access, or was revoked",
        ],
        fix: &[
            "Create an app password with SMTP access at https://app.fastmail.com/settings/security/apps",
            "Store it: `postie account add {account} --provider fastmail --email you@fastmail.com` and paste it when asked",
        ],
        retry: Retry::No,
    },
    // ---- Microsoft (provider-facts §7) ----
    Entry {
        id: "microsoft-smtp-auth-disabled-tenant",
        family: Family::Any,
        code: Some(535),
        class: None,
        enhanced: Some("5.7.139"),
        text: &["smtpclientauthentication is disabled"],
        summary: "SMTP AUTH is turned off for the whole Microsoft 365 organization. This is an admin setting, not a wrong password.",
        causes: &["organizations created after January 2020 have SMTP AUTH disabled by default"],
        fix: &[
            "An Exchange admin runs `Set-TransportConfig -SmtpClientAuthenticationDisabled $false` (tenant) or enables it for the mailbox: `Set-CASMailbox -Identity you@company.com -SmtpClientAuthenticationDisabled $false` (https://aka.ms/smtp_auth_disabled)",
            "SMTP AUTH must be enabled for OAuth too; then use `postie login {account}`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-security-defaults",
        family: Family::Any,
        code: Some(535),
        class: None,
        enhanced: Some("5.7.139"),
        text: &["security defaults"],
        summary: "Microsoft's security defaults policy blocks password (basic) authentication for this user.",
        causes: &["the tenant has security defaults on, which blocks legacy SMTP authentication"],
        fix: &[
            "Use OAuth 2.0: `postie account add {account} --provider office365 --auth oauth`, then `postie login {account}`",
            "Or an admin replaces security defaults with Conditional Access policies that allow SMTP AUTH for this mailbox",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-criteria-not-met",
        family: Family::Any,
        code: Some(535),
        class: None,
        enhanced: Some("5.7.139"),
        text: &["did not meet the criteria"],
        summary: "Microsoft refused the sign-in because a policy blocks it, not because of the password itself.",
        causes: &[
            "SMTP AUTH is disabled for this mailbox",
            "a Conditional Access policy blocks this sign-in",
            "MFA is required for this account and basic authentication cannot satisfy it",
        ],
        fix: &[
            "An admin enables SMTP AUTH for the mailbox: `Set-CASMailbox -Identity you@company.com -SmtpClientAuthenticationDisabled $false`",
            "Use OAuth 2.0: `postie login {account}`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-auth-unsuccessful",
        family: Family::Any,
        code: Some(535),
        class: None,
        enhanced: Some("5.7.3"),
        text: &[],
        summary: "Microsoft did not accept the credentials.",
        causes: &[
            "the password is wrong, or basic authentication is off for this account",
            "for OAuth: the token lacks the https://outlook.office.com/SMTP.Send scope, is for another user, or expired",
            "SMTP AUTH is disabled for the mailbox (it must be enabled for OAuth too)",
        ],
        fix: &[
            "Check the user name is the full mailbox address",
            "Use OAuth 2.0: `postie login {account}`; an admin may need to run `Set-CASMailbox -Identity you@company.com -SmtpClientAuthenticationDisabled $false`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-not-authenticated",
        family: Family::Any,
        code: Some(530),
        class: None,
        enhanced: Some("5.7.57"),
        text: &[],
        summary: "Microsoft requires authentication before MAIL FROM.",
        causes: &["no credentials were sent, or authentication failed earlier"],
        fix: &[
            "Configure credentials for the account; for Microsoft use OAuth: `postie login {account}`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-basic-auth-retired",
        family: Family::Any,
        code: Some(550),
        class: None,
        enhanced: Some("5.7.30"),
        text: &[],
        summary: "Basic (password) authentication is not supported for client submission any more.",
        causes: &["Microsoft retired basic authentication for this account or tenant"],
        fix: &[
            "Use OAuth 2.0: `postie account add {account} --provider office365 --auth oauth`, then `postie login {account}`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-send-as-denied",
        family: Family::Any,
        code: Some(554),
        class: None,
        enhanced: Some("5.2.252"),
        text: &[],
        summary: "The From address differs from the signed-in mailbox, which has no right to send as it.",
        causes: &[
            "the message's From is another address or shared mailbox without Send As permission",
        ],
        fix: &[
            "Send with From set to the signed-in mailbox, or have an admin grant Send As (Add-RecipientPermission) for that address",
        ],
        retry: Retry::No,
    },
    // ---- generic SMTP classes (RFC 3463, RFC 4954) ----
    Entry {
        id: "mailbox-full",
        family: Family::Any,
        code: None,
        class: None,
        enhanced: Some("5.2.2"),
        text: &[],
        summary: "The recipient's mailbox is full.",
        causes: &["the recipient has used up their storage"],
        fix: &["Tell the recipient by another way, or try again much later"],
        retry: Retry::No,
    },
    Entry {
        id: "message-too-large",
        family: Family::Any,
        code: Some(552),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The message is larger than the server accepts.",
        causes: &[
            "attachments are encoded in base64, which adds about 37% to their size",
            "Gmail accepts about 25 MB of attachments (35 MB on the wire); Microsoft 365 about 35 MB by default",
        ],
        fix: &["Send smaller attachments, or share large files by link"],
        retry: Retry::No,
    },
    Entry {
        id: "mechanism-too-weak",
        family: Family::Any,
        code: Some(534),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The server wants a stronger authentication mechanism or an app password.",
        causes: &["the account needs an app password or OAuth instead of its password"],
        fix: &["Create an app password with the provider, or use OAuth: `postie login {account}`"],
        retry: Retry::No,
    },
    Entry {
        id: "bad-credentials",
        family: Family::Any,
        code: Some(535),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The server did not accept the user name and password.",
        causes: &[
            "the password is wrong or was changed",
            "the user name is not what the server expects (often the full address)",
            "the provider requires an app password or OAuth instead of the account password",
        ],
        fix: &[
            "Check the user name and store the right password with `postie account add {account} ...`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "encryption-required",
        family: Family::Any,
        code: Some(538),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The server requires encryption for this authentication mechanism.",
        causes: &["authentication was attempted without TLS"],
        fix: &["Use STARTTLS (port 587) or implicit TLS (port 465)"],
        retry: Retry::No,
    },
    Entry {
        id: "mailbox-unknown",
        family: Family::Any,
        code: None,
        class: None,
        enhanced: Some("5.1.1"),
        text: &[],
        summary: "The recipient address does not exist.",
        causes: &["a typo in the address, or the mailbox was closed"],
        fix: &["Check the address"],
        retry: Retry::No,
    },
    Entry {
        id: "service-closing",
        family: Family::Any,
        code: Some(421),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The server is closing the connection and asks to try again later.",
        causes: &["the server is busy, or rate-limits this sender or IP address"],
        fix: &["Try again later"],
        retry: Retry::Later,
    },
    Entry {
        id: "password-transition",
        family: Family::Any,
        code: Some(432),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The server wants a one-time password change before it accepts this mechanism (RFC 4954 432 4.7.12).",
        causes: &["the account's password must be changed or re-set once with the provider"],
        fix: &[
            "Sign in to the provider's web interface, follow its password prompt, then store the new password with `postie account add {account} ...`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "auth-line-too-long",
        family: Family::Any,
        code: Some(500),
        class: None,
        enhanced: Some("5.5.6"),
        text: &[],
        summary: "The server found the AUTH line too long (RFC 4954 500 5.5.6).",
        causes: &[
            "a long OAuth token was sent as an initial response on the AUTH line; the server wants it after a 334 prompt",
        ],
        fix: &[
            "Set auth_mechanism = \"XOAUTH2\" or \"OAUTHBEARER\" explicitly and try again; report the server's name if it persists",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "auth-mechanism-unknown",
        family: Family::Any,
        code: Some(504),
        class: None,
        enhanced: None,
        text: &[],
        summary: "The server does not support the authentication mechanism that was used.",
        causes: &[
            "auth_mechanism names a mechanism the server does not offer, or the server's EHLO offer was wrong",
        ],
        fix: &[
            "Remove auth_mechanism from the account so postie picks from the server's offer; `postie doctor {account}` lists what the server offers",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "relay-denied",
        family: Family::Any,
        code: None,
        class: Some(5),
        enhanced: None,
        text: &["relay"],
        summary: "The server refused to relay: it does not accept mail for that recipient from this sender without authentication.",
        causes: &[
            "no authentication was done (no credentials configured, or a port that does not authenticate)",
            "the envelope sender is not an address this account may use",
        ],
        fix: &[
            "Configure credentials for the account and use the submission port (587 or 465); `postie doctor {account}` checks both",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "address-invalid",
        family: Family::Any,
        code: None,
        class: None,
        enhanced: Some("5.1.3"),
        text: &[],
        summary: "The server found an address malformed.",
        causes: &["a typo in the address, or characters the server does not accept"],
        fix: &["Check the addresses of the message"],
        retry: Retry::No,
    },
    Entry {
        id: "policy-refused",
        family: Family::Any,
        code: None,
        class: None,
        enhanced: Some("5.7."),
        text: &[],
        summary: "The server refused for a security or policy reason (RFC 3463 class 5.7).",
        causes: &[
            "the sender is not allowed to use this From address or to send to this recipient",
            "the message or the sending address was judged unacceptable by the server's policy",
        ],
        fix: &[
            "Read the server's text above for the policy named; send with the account's own address as From",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "transient",
        family: Family::Any,
        code: None,
        class: Some(4),
        enhanced: None,
        text: &[],
        summary: "The server reported a temporary failure.",
        causes: &["a temporary condition on the server (load, greylisting, a limit)"],
        fix: &["Try again later"],
        retry: Retry::Later,
    },
    Entry {
        id: "permanent",
        family: Family::Any,
        code: None,
        class: Some(5),
        enhanced: None,
        text: &[],
        summary: "The server refused permanently.",
        causes: &[
            "the server's text above says why; sending the same thing again will be refused again",
        ],
        fix: &[
            "Change what the server objects to (address, content, settings) before trying again",
        ],
        retry: Retry::No,
    },
];

fn family_of(provider: Option<ProviderId>, reply: &Reply) -> Family {
    if let Some(p) = provider {
        if p.is_google() {
            return Family::Google;
        }
        if p.is_microsoft() {
            return Family::Microsoft;
        }
        match p {
            ProviderId::Yahoo => return Family::Yahoo,
            ProviderId::Icloud => return Family::Icloud,
            ProviderId::Fastmail => return Family::Fastmail,
            ProviderId::Sandbox => return Family::Sandbox,
            _ => {}
        }
    }
    // A reply names its provider even when the user gave only --server.
    let text = reply.text().to_ascii_lowercase();
    if text.contains("gsmtp") || text.contains("support.google.com") {
        Family::Google
    } else if text.contains("outlook.com") || text.contains("aka.ms") || text.contains("microsoft")
    {
        Family::Microsoft
    } else {
        Family::Any
    }
}

fn matches(e: &Entry, fam: Family, reply: &Reply, text: &str) -> bool {
    if e.family != Family::Any && e.family != fam {
        return false;
    }
    if e.code.is_some_and(|c| c != reply.code) {
        return false;
    }
    if let Some(want) = e.enhanced {
        let got = reply.enhanced.map(|x| x.to_string()).unwrap_or_default();
        let fits = match want.strip_suffix('.') {
            Some(_) => got.starts_with(want),
            None => got == want,
        };
        if !fits {
            return false;
        }
    }
    if e.class.is_some_and(|c| c != reply.code / 100) {
        return false;
    }
    e.text.iter().all(|t| text.contains(t))
}

fn render(e: &Entry, ctx: &Context<'_>) -> Explanation {
    let account = ctx.account.unwrap_or("NAME");
    let provider = ctx
        .provider
        .filter(|p| *p != ProviderId::Generic)
        .map(|p| p.as_str())
        .unwrap_or("PROVIDER");
    let fill = |s: &str| {
        s.replace("{account}", account)
            .replace("{provider}", provider)
    };
    Explanation {
        id: e.id,
        summary: fill(e.summary),
        causes: e.causes.iter().map(|c| fill(c)).collect(),
        fix: e.fix.iter().map(|c| fill(c)).collect(),
        retry: e.retry,
    }
}

/// The identifiers of every catalog entry for server replies, in matching
/// order (for tests that prove each one is reachable).
pub fn reply_catalog_ids() -> Vec<&'static str> {
    CATALOG.iter().map(|e| e.id).collect()
}

/// The identifiers of every entry for authorization-server errors.
pub fn oauth_catalog_ids() -> Vec<&'static str> {
    oauth::ids()
}

/// Explain a server reply, or `None` when the catalog has nothing for it.
pub fn explain_reply(reply: &Reply, ctx: &Context<'_>) -> Option<Explanation> {
    let fam = family_of(ctx.provider, reply);
    let text = reply.text().to_ascii_lowercase();
    CATALOG
        .iter()
        .find(|e| matches(e, fam, reply, &text))
        .map(|e| render(e, ctx))
}

/// Explain an OAuth authorization server's error (token endpoint, consent
/// redirect, device polling): `invalid_grant` and why it happens per
/// provider, scopes, client and redirect registration, consent, Microsoft's
/// AADSTS codes. The catalog itself is `oauth`'s (next to the flows it
/// describes); the fixes name `postie login {account}`.
pub fn explain_oauth(info: &crate::error::OAuthErrorInfo, ctx: &Context<'_>) -> Explanation {
    oauth::explain(info, ctx)
}

/// Explain any error from the library: by its reply when it has one, by the
/// authorization server's OAuth error when it has one, else by its kind.
pub fn explain(err: &Error, ctx: &Context<'_>) -> Explanation {
    if err.reply().is_none()
        && let Some(info) = err.oauth()
    {
        return explain_oauth(info, ctx);
    }
    if let Some(reply) = err.reply()
        && let Some(mut x) = explain_reply(reply, ctx)
    {
        if let Some(sasl) = err.sasl() {
            x.causes
                .insert(0, format!("the server's OAuth error detail: {}", sasl.raw));
        }
        return x;
    }
    let host = ctx.host.unwrap_or("the server");
    let (id, summary, causes, fix, retry): (&'static str, String, Vec<String>, Vec<String>, Retry) =
        match err.kind() {
            ErrorKind::Unavailable => (
                "unreachable",
                format!("Could not reach {host}."),
                vec![
                    "the host name or port is wrong".into(),
                    "a firewall or the hosting provider blocks outgoing SMTP ports (many cloud providers block 25, some 465 and 587)".into(),
                    "the server is down or the network is offline".into(),
                ],
                vec!["Check host and port (`postie account list`); try the other submission port (465 implicit TLS or 587 STARTTLS)".into()],
                Retry::Later,
            ),
            ErrorKind::Tls => {
                let m = err.message();
                let (causes, fix): (Vec<&str>, Vec<&str>) = if m.contains("not valid for the name") {
                    (
                        vec!["the certificate names another host: the host dialled is not the one in the certificate (an IP address, an alias, a tunnel)"],
                        vec!["Connect by the name on the certificate, or, behind a tunnel or port forward, give --tls-name NAME (tls_name in the account)"],
                    )
                } else if m.contains("expired") || m.contains("not valid yet") {
                    (
                        vec!["the server's certificate is outside its validity period: the server's administrator must renew it", "this machine's clock is wrong"],
                        vec!["Check the date on this machine (`date`); otherwise tell the server's administrator"],
                    )
                } else if m.contains("unknown authority") || m.contains("CA certificate") {
                    (
                        vec!["the certificate is self-signed or issued by a private CA this machine does not trust", "something intercepts TLS (a proxy, an antivirus)"],
                        vec!["Get the CA certificate (PEM) from the server's administrator and give it with --ca-file (ca_file in the account)"],
                    )
                } else if m.contains("did not answer with TLS") || m.contains("used as implicit TLS") {
                    (
                        vec!["this port speaks plain SMTP with STARTTLS, not implicit TLS"],
                        vec!["Use smtp://HOST:587 (STARTTLS) for this port, or smtps://HOST:465 for implicit TLS (tls = \"starttls\" in the account)"],
                    )
                } else if m.contains("before greeting") {
                    (
                        vec!["this port expects implicit TLS (465) and waited for a TLS handshake that never came"],
                        vec!["Use smtps://HOST:465 (tls = \"implicit\" in the account)"],
                    )
                } else if m.contains("STARTTLS") {
                    (
                        vec!["the server does not offer or refused STARTTLS; postie never continues without TLS when credentials or mail follow", "the port is a server-to-server port (25) rather than submission (587)"],
                        vec!["Use the provider's submission port: 587 with STARTTLS or 465 with implicit TLS"],
                    )
                } else {
                    (
                        vec!["the certificate is not valid for this host, expired, or from an unknown authority", "the port expects the other TLS mode: 465 is implicit TLS, 587 is STARTTLS", "a proxy or antivirus intercepts TLS"],
                        vec!["Check host, port and TLS mode; for a private CA give --ca-file; behind a tunnel give --tls-name"],
                    )
                };
                (
                    "tls",
                    format!("The secure connection to {host} failed."),
                    causes.into_iter().map(String::from).collect(),
                    fix.into_iter().map(String::from).collect(),
                    Retry::No,
                )
            }
            ErrorKind::Credentials => (
                "credentials",
                "The server refused the credentials.".into(),
                vec!["wrong user name or password, or the provider requires an app password or OAuth".into()],
                vec!["Store the right password with `postie account add`, or use OAuth: `postie login`".into()],
                Retry::No,
            ),
            ErrorKind::Transient => (
                "transient",
                "A temporary failure.".into(),
                vec!["the server or network had a temporary problem".into()],
                vec!["Try again later".into()],
                Retry::Later,
            ),
            ErrorKind::Message => (
                "message",
                "The message cannot be sent as it is.".into(),
                vec![err.message().to_string()],
                vec!["Fix the message and send again".into()],
                Retry::No,
            ),
            ErrorKind::Config => (
                "configuration",
                "postie's configuration is incomplete or wrong.".into(),
                vec![err.message().to_string()],
                vec!["See `postie account --help`".into()],
                Retry::No,
            ),
            // The message says what was wrong with the command line and how
            // to write it; a generic "configuration" story would mislead.
            ErrorKind::Usage => ("usage", err.message().to_string(), vec![], vec![], Retry::No),
            ErrorKind::Secret => (
                "secret-store",
                "postie's secret store could not be used.".into(),
                vec![err.message().to_string()],
                vec![
                    "With the encrypted file: set POSTIE_PASSPHRASE (or run where a prompt can be answered)".into(),
                    "Or take the password from password_env / password_command instead of the store".into(),
                ],
                Retry::No,
            ),
            ErrorKind::Protocol | ErrorKind::Rejected | ErrorKind::Io => (
                "failure",
                err.message().to_string(),
                vec![],
                vec![],
                if err.is_transient() { Retry::Later } else { Retry::No },
            ),
        };
    Explanation {
        id,
        summary,
        causes,
        fix,
        retry,
    }
}
