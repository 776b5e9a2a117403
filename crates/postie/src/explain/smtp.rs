//! Entries for SMTP replies (provider-facts §1.2, §7, §8; RFC 3463 and
//! RFC 4954 classes). The first matching entry wins: specific before
//! generic.

use super::Retry;
use super::entry::{Entry, Family, On};

const OAUTH_DURABLE: &str =
    "The durable way is OAuth 2.0: {do:add-oauth-account}, then {do:login}.";

pub(super) static ENTRIES: &[Entry] = &[
    // ---- postie's sandbox (Gmail's texts; the fixes are the sandbox's) ----
    Entry {
        id: "sandbox-app-password-required",
        on: On::Reply {
            family: Family::Sandbox,
            code: Some(534),
            class: None,
            enhanced: Some("5.7.9"),
            text: &[],
        },
        summary: "The sandbox refused the account password, as Gmail does when 2-Step Verification is on: it wants an app password or OAuth.",
        causes: &[
            "the sandbox user's account password was used (the sandbox plays a Gmail account with 2-Step Verification)",
        ],
        fix: &[
            "Use the sandbox's app password: {do:sandbox} prints it when it starts ('abcd efgh ijkl mnop' by default)",
            "Or OAuth: {do:add-oauth-account}, then {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "sandbox-bad-credentials",
        on: On::Reply {
            family: Family::Sandbox,
            code: Some(535),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The sandbox did not accept the user name and password (or token).",
        causes: &[
            "the password is not one of the sandbox user's app passwords, or the user name is not a sandbox user",
            "for OAuth: the token expired, was revoked, or the sandbox was restarted (it keeps tokens in memory only)",
        ],
        fix: &[
            "Use a user and app password that {do:sandbox} printed when it started (me@sandbox.postie.test / 'abcd efgh ijkl mnop' by default)",
            "For OAuth: {do:login} again",
        ],
        retry: Retry::No,
    },
    // ---- Google (provider-facts §1.2) ----
    Entry {
        id: "google-app-password-required",
        on: On::Reply {
            family: Family::Google,
            code: Some(534),
            class: None,
            enhanced: Some("5.7.9"),
            text: &["application-specific password required"],
        },
        summary: "Gmail refused the password: the account has 2-Step Verification on, so it accepts an app password (or OAuth), not the account password.",
        causes: &[
            "the Google account password was used; with 2-Step Verification Gmail requires an app password for SMTP",
        ],
        fix: &[
            "Create an app password at https://myaccount.google.com/apppasswords (16 letters, shown as 'xxxx xxxx xxxx xxxx'; spaces are fine)",
            "Store it: {do:add-account:gmail} and paste the app password when asked",
            OAUTH_DURABLE,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-web-login-required",
        on: On::Reply {
            family: Family::Google,
            code: Some(534),
            class: None,
            enhanced: None,
            text: &["log in", "web browser"],
        },
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
        on: On::Reply {
            family: Family::Google,
            code: Some(535),
            class: None,
            enhanced: Some("5.7.8"),
            text: &[],
        },
        summary: "Gmail did not accept the user name and password.",
        causes: &[
            "the password is wrong, or it is the account password and the account has no 2-Step Verification (Gmail accepts only app passwords or OAuth for SMTP since 2022)",
            "the app password was revoked: Google revokes all app passwords when the account password changes",
            "the user name is not the full address (it must be you@gmail.com or your Workspace address)",
            "for OAuth: the access token is expired, lacks the https://mail.google.com/ scope, or belongs to another user",
        ],
        fix: &[
            "Create a new app password at https://myaccount.google.com/apppasswords (needs 2-Step Verification) and store it with {do:add-account:gmail}",
            OAUTH_DURABLE,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-starttls-first",
        on: On::Reply {
            family: Family::Any,
            code: Some(530),
            class: None,
            enhanced: Some("5.7.0"),
            text: &["starttls"],
        },
        summary: "The server requires STARTTLS before authentication or mail.",
        causes: &[
            "the client sent AUTH or MAIL on an unencrypted connection",
            "the account is configured with tls = \"none\" for a server that needs TLS",
        ],
        fix: &[
            "Use STARTTLS on port 587 or implicit TLS on port 465 (`tls = \"starttls\"` or `\"implicit\"` in the account, or a server given as smtp://HOST:587 or smtps://HOST:465)",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "auth-required",
        on: On::Reply {
            family: Family::Any,
            code: Some(530),
            class: None,
            enhanced: None,
            text: &["authentication required"],
        },
        summary: "The server requires authentication before it accepts mail.",
        causes: &["no credentials were given, or authentication failed earlier in the session"],
        fix: &[
            "Configure credentials for the account ({do:add-any-account}), or give a user with a password source (password_env / password_command)",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-daily-quota",
        on: On::Reply {
            family: Family::Any,
            code: Some(550),
            class: None,
            enhanced: Some("5.4.5"),
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Any,
            code: Some(452),
            class: None,
            enhanced: Some("4.5.3"),
            text: &[],
        },
        summary: "The message has too many recipients for one submission.",
        causes: &["Gmail accepts at most 100 recipients per message over SMTP"],
        fix: &["Split the recipients over several messages of at most 100"],
        retry: Retry::No,
    },
    Entry {
        id: "google-dmarc-unauthenticated",
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: None,
            enhanced: Some("5.7.26"),
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Any,
            code: Some(501),
            class: None,
            enhanced: Some("5.5.2"),
            text: &[],
        },
        summary: "The server could not decode the AUTH data.",
        causes: &[
            "the AUTH payload was not base64 (a common bug in copied XOAUTH2 examples that send the raw string)",
        ],
        fix: &["Let postie do the authentication (its sending core, or the relay for scripts)"],
        retry: Retry::No,
    },
    Entry {
        id: "google-xoauth-obsolete",
        on: On::Reply {
            family: Family::Any,
            code: Some(504),
            class: None,
            enhanced: Some("5.7.4"),
            text: &["xoauth"],
        },
        summary: "The server no longer supports the old XOAUTH mechanism.",
        causes: &["a client used XOAUTH (OAuth 1) instead of XOAUTH2 / OAUTHBEARER"],
        fix: &["Use OAuth 2.0: {do:login}"],
        retry: Retry::No,
    },
    Entry {
        id: "too-many-logins",
        on: On::Reply {
            family: Family::Any,
            code: Some(454),
            class: None,
            enhanced: None,
            text: &["too many login attempts"],
        },
        summary: "The server is refusing logins for a while after too many attempts.",
        causes: &["many connections or failed logins in a short time"],
        fix: &[
            "Wait some minutes before trying again; check that no other program retries with a wrong password",
        ],
        retry: Retry::Later,
    },
    Entry {
        id: "google-unauthenticated-rate-limited",
        on: On::Reply {
            family: Family::Any,
            code: Some(421),
            class: None,
            enhanced: Some("4.7.26"),
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Google,
            code: Some(550),
            class: None,
            enhanced: Some("5.7.1"),
            text: &["unsolicited"],
        },
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
        on: On::Reply {
            family: Family::Yahoo,
            code: Some(535),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "Yahoo did not accept the password: Yahoo Mail takes only an app password over SMTP.",
        causes: &[
            "the Yahoo account password was used; SMTP needs an app password (2-step verification on)",
            "the app password was deleted, or the user name is not the full @yahoo.com address",
        ],
        fix: &[
            "Create an app password at https://login.yahoo.com/myaccount/security/app-password (16 letters)",
            "Store it: {do:add-account:yahoo} and paste it when asked",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "icloud-app-password-required",
        on: On::Reply {
            family: Family::Icloud,
            code: Some(535),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "iCloud did not accept the password: iCloud Mail takes only an app-specific password over SMTP.",
        causes: &[
            "the Apple Account password was used; SMTP needs an app-specific password (two-factor authentication on)",
            "the user name is not the full iCloud address (name@icloud.com, @me.com or @mac.com)",
            "the app-specific password was revoked (changing the Apple Account password revokes them all)",
        ],
        fix: &[
            "Create an app-specific password at https://account.apple.com (Sign-In and Security > App-Specific Passwords; shown as xxxx-xxxx-xxxx-xxxx)",
            "Store it: {do:add-account:icloud} and paste it when asked",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "fastmail-app-password-required",
        on: On::Reply {
            family: Family::Fastmail,
            code: Some(535),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "Fastmail did not accept the password: Fastmail refuses the account password over SMTP.",
        causes: &[
            "the Fastmail account password was used; SMTP needs an app password",
            "the app password was created without SMTP access, or was revoked",
        ],
        fix: &[
            "Create an app password with SMTP access at https://app.fastmail.com/settings/security/apps",
            "Store it: {do:add-account:fastmail} and paste it when asked",
        ],
        retry: Retry::No,
    },
    // ---- Microsoft (provider-facts §7) ----
    Entry {
        id: "microsoft-smtp-auth-disabled-tenant",
        on: On::Reply {
            family: Family::Any,
            code: Some(535),
            class: None,
            enhanced: Some("5.7.139"),
            text: &["smtpclientauthentication is disabled"],
        },
        summary: "SMTP AUTH is turned off for the whole Microsoft 365 organization. This is an admin setting, not a wrong password.",
        causes: &["organizations created after January 2020 have SMTP AUTH disabled by default"],
        fix: &[
            "An Exchange admin runs `Set-TransportConfig -SmtpClientAuthenticationDisabled $false` (tenant) or enables it for the mailbox: `Set-CASMailbox -Identity you@company.com -SmtpClientAuthenticationDisabled $false` (https://aka.ms/smtp_auth_disabled)",
            "SMTP AUTH must be enabled for OAuth too; then use {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-security-defaults",
        on: On::Reply {
            family: Family::Any,
            code: Some(535),
            class: None,
            enhanced: Some("5.7.139"),
            text: &["security defaults"],
        },
        summary: "Microsoft's security defaults policy blocks password (basic) authentication for this user.",
        causes: &["the tenant has security defaults on, which blocks legacy SMTP authentication"],
        fix: &[
            "Use OAuth 2.0: {do:add-oauth-account:office365}, then {do:login}",
            "Or an admin replaces security defaults with Conditional Access policies that allow SMTP AUTH for this mailbox",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-criteria-not-met",
        on: On::Reply {
            family: Family::Any,
            code: Some(535),
            class: None,
            enhanced: Some("5.7.139"),
            text: &["did not meet the criteria"],
        },
        summary: "Microsoft refused the sign-in because a policy blocks it, not because of the password itself.",
        causes: &[
            "SMTP AUTH is disabled for this mailbox",
            "a Conditional Access policy blocks this sign-in",
            "MFA is required for this account and basic authentication cannot satisfy it",
        ],
        fix: &[
            "An admin enables SMTP AUTH for the mailbox: `Set-CASMailbox -Identity you@company.com -SmtpClientAuthenticationDisabled $false`",
            "Use OAuth 2.0: {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-auth-unsuccessful",
        on: On::Reply {
            family: Family::Any,
            code: Some(535),
            class: None,
            enhanced: Some("5.7.3"),
            text: &[],
        },
        summary: "Microsoft did not accept the credentials.",
        causes: &[
            "the password is wrong, or basic authentication is off for this account",
            "for OAuth: the token lacks the https://outlook.office.com/SMTP.Send scope, is for another user, or expired",
            "SMTP AUTH is disabled for the mailbox (it must be enabled for OAuth too)",
        ],
        fix: &[
            "Check the user name is the full mailbox address",
            "Use OAuth 2.0: {do:login}; an admin may need to run `Set-CASMailbox -Identity you@company.com -SmtpClientAuthenticationDisabled $false`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-not-authenticated",
        on: On::Reply {
            family: Family::Any,
            code: Some(530),
            class: None,
            enhanced: Some("5.7.57"),
            text: &[],
        },
        summary: "Microsoft requires authentication before MAIL FROM.",
        causes: &["no credentials were sent, or authentication failed earlier"],
        fix: &["Configure credentials for the account; for Microsoft use OAuth: {do:login}"],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-basic-auth-retired",
        on: On::Reply {
            family: Family::Any,
            code: Some(550),
            class: None,
            enhanced: Some("5.7.30"),
            text: &[],
        },
        summary: "Basic (password) authentication is not supported for client submission any more.",
        causes: &["Microsoft retired basic authentication for this account or tenant"],
        fix: &["Use OAuth 2.0: {do:add-oauth-account:office365}, then {do:login}"],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-send-as-denied",
        on: On::Reply {
            family: Family::Any,
            code: Some(554),
            class: None,
            enhanced: Some("5.2.252"),
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: None,
            enhanced: Some("5.2.2"),
            text: &[],
        },
        summary: "The recipient's mailbox is full.",
        causes: &["the recipient has used up their storage"],
        fix: &["Tell the recipient by another way, or try again much later"],
        retry: Retry::No,
    },
    Entry {
        id: "message-too-large",
        on: On::Reply {
            family: Family::Any,
            code: Some(552),
            class: None,
            enhanced: None,
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Any,
            code: Some(534),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The server wants a stronger authentication mechanism or an app password.",
        causes: &["the account needs an app password or OAuth instead of its password"],
        fix: &["Create an app password with the provider, or use OAuth: {do:login}"],
        retry: Retry::No,
    },
    Entry {
        id: "bad-credentials",
        on: On::Reply {
            family: Family::Any,
            code: Some(535),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The server did not accept the user name and password.",
        causes: &[
            "the password is wrong or was changed",
            "the user name is not what the server expects (often the full address)",
            "the provider requires an app password or OAuth instead of the account password",
        ],
        fix: &["Check the user name and store the right password with {do:add-account}"],
        retry: Retry::No,
    },
    Entry {
        id: "encryption-required",
        on: On::Reply {
            family: Family::Any,
            code: Some(538),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The server requires encryption for this authentication mechanism.",
        causes: &["authentication was attempted without TLS"],
        fix: &["Use STARTTLS (port 587) or implicit TLS (port 465)"],
        retry: Retry::No,
    },
    Entry {
        id: "mailbox-unknown",
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: None,
            enhanced: Some("5.1.1"),
            text: &[],
        },
        summary: "The recipient address does not exist.",
        causes: &["a typo in the address, or the mailbox was closed"],
        fix: &["Check the address"],
        retry: Retry::No,
    },
    Entry {
        id: "service-closing",
        on: On::Reply {
            family: Family::Any,
            code: Some(421),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The server is closing the connection and asks to try again later.",
        causes: &["the server is busy, or rate-limits this sender or IP address"],
        fix: &["Try again later"],
        retry: Retry::Later,
    },
    Entry {
        id: "password-transition",
        on: On::Reply {
            family: Family::Any,
            code: Some(432),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The server wants a one-time password change before it accepts this mechanism (RFC 4954 432 4.7.12).",
        causes: &["the account's password must be changed or re-set once with the provider"],
        fix: &[
            "Sign in to the provider's web interface, follow its password prompt, then store the new password with {do:add-account}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "auth-line-too-long",
        on: On::Reply {
            family: Family::Any,
            code: Some(500),
            class: None,
            enhanced: Some("5.5.6"),
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Any,
            code: Some(504),
            class: None,
            enhanced: None,
            text: &[],
        },
        summary: "The server does not support the authentication mechanism that was used.",
        causes: &[
            "auth_mechanism names a mechanism the server does not offer, or the server's EHLO offer was wrong",
        ],
        fix: &[
            "Remove auth_mechanism from the account so postie picks from the server's offer; {do:doctor} lists what the server offers",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "relay-denied",
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: Some(5),
            enhanced: None,
            text: &["relay"],
        },
        summary: "The server refused to relay: it does not accept mail for that recipient from this sender without authentication.",
        causes: &[
            "no authentication was done (no credentials configured, or a port that does not authenticate)",
            "the envelope sender is not an address this account may use",
        ],
        fix: &[
            "Configure credentials for the account and use the submission port (587 or 465); {do:doctor} checks both",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "address-invalid",
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: None,
            enhanced: Some("5.1.3"),
            text: &[],
        },
        summary: "The server found an address malformed.",
        causes: &["a typo in the address, or characters the server does not accept"],
        fix: &["Check the addresses of the message"],
        retry: Retry::No,
    },
    Entry {
        id: "policy-refused",
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: None,
            enhanced: Some("5.7."),
            text: &[],
        },
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
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: Some(4),
            enhanced: None,
            text: &[],
        },
        summary: "The server reported a temporary failure.",
        causes: &["a temporary condition on the server (load, greylisting, a limit)"],
        fix: &["Try again later"],
        retry: Retry::Later,
    },
    Entry {
        id: "permanent",
        on: On::Reply {
            family: Family::Any,
            code: None,
            class: Some(5),
            enhanced: None,
            text: &[],
        },
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
