//! Entries for what postie finds itself: the doctor's checks, and failures
//! that carry no server reply (explained by their kind). Asked for by id,
//! with the values they name (`{host}`, `{days}` ...).

use super::Retry;
use super::entry::{Entry, On};

const fn finding(
    id: &'static str,
    summary: &'static str,
    causes: &'static [&'static str],
    fix: &'static [&'static str],
    retry: Retry,
) -> Entry {
    Entry {
        id,
        on: On::Finding,
        summary,
        causes,
        fix,
        retry,
    }
}

pub(super) static ENTRIES: &[Entry] = &[
    // ---- failures without a reply, by kind ----
    finding(
        "unreachable",
        "Could not reach {host}.",
        &[
            "the host name or port is wrong",
            "a firewall or the hosting provider blocks outgoing SMTP ports (many cloud providers block 25, some 465 and 587)",
            "the server is down or the network is offline",
        ],
        &[
            "Check host and port ({do:account-list}); try the other submission port (465 implicit TLS or 587 STARTTLS)",
        ],
        Retry::Later,
    ),
    finding(
        "closed-at-greeting",
        "{host} accepted the connection and closed it before greeting.",
        &[
            "the server turns connections away for now (busy, a rate limit, this machine's address blocked)",
            "nothing SMTP listens on that port (another service, or a proxy with no server behind it)",
        ],
        &["Try again later; if it keeps happening, check host and port ({do:account-list})"],
        Retry::Later,
    ),
    finding(
        "tls-name",
        "The secure connection to {host} failed.",
        &[
            "the certificate names another host: the host dialled is not the one in the certificate (an IP address, an alias, a tunnel)",
        ],
        &[
            "Connect by the name on the certificate, or, behind a tunnel or port forward, give the name to verify: {set:tls_name}",
        ],
        Retry::No,
    ),
    finding(
        "tls-expired",
        "The secure connection to {host} failed.",
        &[
            "the server's certificate is outside its validity period: the server's administrator must renew it",
            "this machine's clock is wrong",
        ],
        &["Check the date on this machine (`date`); otherwise tell the server's administrator"],
        Retry::No,
    ),
    finding(
        "tls-unknown-ca",
        "The secure connection to {host} failed.",
        &[
            "the certificate is self-signed or issued by a private CA this machine does not trust",
            "something intercepts TLS (a proxy, an antivirus)",
        ],
        &[
            "Get the CA certificate (PEM) from the server's administrator and give it: {set:ca_file}",
        ],
        Retry::No,
    ),
    finding(
        "tls-not-implicit",
        "The secure connection to {host} failed.",
        &["this port speaks plain SMTP with STARTTLS, not implicit TLS"],
        &[
            "Use smtp://HOST:587 (STARTTLS) for this port, or smtps://HOST:465 for implicit TLS (tls = \"starttls\" in the account)",
        ],
        Retry::No,
    ),
    finding(
        "tls-implicit-expected",
        "The secure connection to {host} failed.",
        &["this port expects implicit TLS (465) and waited for a TLS handshake that never came"],
        &["Use smtps://HOST:465 (tls = \"implicit\" in the account)"],
        Retry::No,
    ),
    finding(
        "tls-starttls-stalled",
        "The secure connection to {host} failed.",
        &[
            "the server agreed to STARTTLS and then did not finish the TLS handshake: it is overloaded, or a firewall that inspects SMTP interferes with STARTTLS",
        ],
        &[
            "Try again later; if it keeps happening, use the implicit-TLS port instead (smtps://HOST:465, tls = \"implicit\" in the account)",
        ],
        Retry::Later,
    ),
    finding(
        "tls-starttls",
        "The secure connection to {host} failed.",
        &[
            "the server does not offer or refused STARTTLS; postie never continues without TLS when credentials or mail follow",
            "the port is a server-to-server port (25) rather than submission (587)",
        ],
        &["Use the provider's submission port: 587 with STARTTLS or 465 with implicit TLS"],
        Retry::No,
    ),
    finding(
        "tls",
        "The secure connection to {host} failed.",
        &[
            "the certificate is not valid for this host, expired, or from an unknown authority",
            "the port expects the other TLS mode: 465 is implicit TLS, 587 is STARTTLS",
            "a proxy or antivirus intercepts TLS",
        ],
        &[
            "Check host, port and TLS mode; for a private CA give {set:ca_file}; behind a tunnel give {set:tls_name}",
        ],
        Retry::No,
    ),
    finding(
        "oauth-token-refused",
        "The server refused the OAuth access token.",
        &[
            "the token was revoked or replaced at the provider (a sign-out, a password change, a refresh token rotated by another program using the same sign-in)",
            "the token lacks the scope the provider needs for SMTP, or was issued for another user than the account's address",
        ],
        &[
            "Sign in again: {do:login}; if it keeps happening, check the account's OAuth scopes and address",
        ],
        Retry::No,
    ),
    finding(
        "credentials",
        "The server refused the credentials.",
        &["wrong user name or password, or the provider requires an app password or OAuth"],
        &["Store the right password ({do:add-any-account}), or use OAuth: {do:login}"],
        Retry::No,
    ),
    finding(
        "transient",
        "A temporary failure.",
        &["the server or network had a temporary problem"],
        &["Try again later"],
        Retry::Later,
    ),
    finding(
        "message",
        "The message cannot be sent as it is.",
        &["{message}"],
        &["Fix the message and send again"],
        Retry::No,
    ),
    finding(
        "configuration",
        "postie's configuration is incomplete or wrong.",
        // The message names the setting and how to fix it; a general
        // pointer to the account help misled on every other setting.
        &["{message}"],
        &[],
        Retry::No,
    ),
    finding(
        "config-invalid",
        "The config file is not valid TOML for postie.",
        &["{message}"],
        &[
            "Correct the setting on the line named (a misspelt name, a value of the wrong kind, a quote left open) in the file named, then run the command again; postie does not rewrite a file it cannot read",
        ],
        Retry::No,
    ),
    finding(
        "listen-busy",
        "The address to listen on is taken.",
        &[
            "another postie relay or sandbox is running (`ss -ltnp` shows which program holds the port)",
            "another program listens on that port",
        ],
        &["Stop the other program, or listen on another port (see the message above)"],
        Retry::No,
    ),
    finding(
        "listen-denied",
        "This program may not listen on that address.",
        &[
            "ports below 1024 need privileges",
            "the address is not one of this machine's",
        ],
        &[
            "Listen on a port above 1023 on one of this machine's addresses (the relay's default is 127.0.0.1:1587)",
        ],
        Retry::No,
    ),
    finding(
        "auth-after-tls",
        "{host} offers login (AUTH) only over TLS, and this connection is plain text.",
        &[
            "the connection was made without STARTTLS (--plaintext, tls = \"none\"), and the server, as it should, keeps AUTH for encrypted connections",
        ],
        &["Drop --plaintext: the server offers STARTTLS, and postie uses it"],
        Retry::No,
    ),
    finding(
        "no-auth-offered",
        "{host} offers no login (AUTH) on this port.",
        &[
            "the port is a server-to-server port (25), not mail submission (587 or 465)",
            "the server is a relay that trusts this network and takes mail without a login",
        ],
        &[
            "Use the provider's submission port (587 STARTTLS or 465 implicit TLS); for a relay that needs no login, set auth = \"none\" in the account",
        ],
        Retry::No,
    ),
    // The message says what was wrong with the call and how to write it; a
    // general "configuration" story would mislead.
    finding("usage", "{message}", &[], &[], Retry::No),
    finding(
        "secret-store",
        "postie's secret store could not be used.",
        &["{message}"],
        &[
            "With the encrypted file: set POSTIE_PASSPHRASE (or run where a prompt can be answered)",
            "Or take the password from password_env / password_command instead of the store",
        ],
        Retry::No,
    ),
    finding(
        "sign-in-timeout",
        "The sign-in was not finished in the browser in time.",
        &[
            "the consent page was not approved before the wait ended (login --timeout)",
            "the browser could not reach postie's address on 127.0.0.1 (another machine's browser, a browser in a container)",
        ],
        &[
            "{do:login} again and approve promptly; from another machine's browser use {do:login-manual} or {do:login-device}",
        ],
        Retry::No,
    ),
    finding(
        "not-signed-in",
        "The account is not signed in with OAuth.",
        &[
            "{do:login} was never run for this account, or {do:logout} removed its tokens",
            "the secret store holding the tokens changed (another keyring, another encrypted file)",
        ],
        &["Sign in: {do:login}"],
        Retry::No,
    ),
    finding(
        "secret-store-damaged",
        "postie's encrypted secret file cannot be read.",
        &["{message}"],
        &[
            "Move the file aside, then store the passwords again ({do:add-any-account} with --password-stdin) and sign in again ({do:login})",
        ],
        Retry::No,
    ),
    finding("failure", "{message}", &[], &[], Retry::No),
    finding("failure-transient", "{message}", &[], &[], Retry::Later),
    // ---- the doctor's checks ----
    finding(
        "doctor-port-465-starttls",
        "Port 465 speaks implicit TLS, but the account says STARTTLS.",
        &[
            "465 is the implicit-TLS submission port (RFC 8314): the server starts with a TLS handshake and never offers STARTTLS",
        ],
        &["Set tls = \"implicit\" for port 465, or use port 587 with tls = \"starttls\""],
        Retry::No,
    ),
    finding(
        "doctor-port-587-implicit",
        "Port 587 speaks STARTTLS, but the account says implicit TLS.",
        &[
            "587 is the STARTTLS submission port: the server greets in plain text and upgrades after STARTTLS",
        ],
        &["Set tls = \"starttls\" for port 587, or use port 465 with tls = \"implicit\""],
        Retry::No,
    ),
    finding(
        "doctor-port-25",
        "Port 25 is for server-to-server relay, not for submission.",
        &[
            "many networks and cloud providers block outgoing port 25",
            "providers expect clients on 587 (STARTTLS) or 465 (implicit TLS)",
        ],
        &["Use port 587 with STARTTLS or 465 with implicit TLS"],
        Retry::No,
    ),
    finding(
        "doctor-plaintext",
        "The account has TLS off for a server that is not on this machine.",
        &["credentials and mail would cross the network unencrypted; postie refuses that"],
        &["Set tls = \"starttls\" (587) or tls = \"implicit\" (465)"],
        Retry::No,
    ),
    finding(
        "doctor-microsoft-465",
        "Microsoft does not offer SMTP submission on port 465.",
        &[
            "Microsoft: a device that defaults to port 465 does not support SMTP AUTH client submission",
        ],
        &[
            "Use port 587 with STARTTLS (the provider's default: remove port and tls from the account)",
        ],
        Retry::No,
    ),
    finding(
        "doctor-auth-unsupported",
        "{provider_name} does not accept {auth} authentication; it accepts: {accepted}.",
        &["{note}"],
        &["Re-add the account with a supported method (auth = one of those): {do:add-account}"],
        Retry::No,
    ),
    finding(
        "doctor-oauth-unset",
        "The account uses OAuth 2.0 but has no [oauth] settings (client id).",
        &["the account was written by hand or edited"],
        &["Re-add it with its OAuth client's ID: {do:add-oauth-account}; then {do:login}"],
        Retry::No,
    ),
    finding(
        "doctor-ca-file-missing",
        "The CA file {path} does not exist.",
        &["the file was moved or the path is mistyped"],
        &["Fix ca_file in the account, or remove it to use the system's trusted CAs"],
        Retry::No,
    ),
    finding(
        "doctor-config-writable",
        "The config file {path} can be changed by other users (mode {mode}).",
        &[
            "whoever can write it can set password_command to run any program as you, or send your mail elsewhere",
        ],
        &["chmod 600 the config file"],
        Retry::No,
    ),
    finding(
        "doctor-dns-slow",
        "Resolving {host} took {ms} ms.",
        &["the DNS resolver of this machine is slow or one of its servers does not answer"],
        &["Check /etc/resolv.conf (or your network's DNS settings)"],
        Retry::No,
    ),
    finding(
        "doctor-dns-failed",
        "The host name {host} does not resolve.",
        &[
            "the host name is mistyped",
            "this machine has no network or no working DNS resolver",
        ],
        &["Check host in the account ({do:account-list}); try `getent hosts {host}`"],
        Retry::No,
    ),
    finding(
        "doctor-dns-timeout",
        "The DNS lookup of {host} did not finish in time.",
        &["the DNS resolver does not answer (no network, or a broken resolver)"],
        &[
            "Check the network and /etc/resolv.conf; `getent hosts {host}` shows what the resolver says",
        ],
        Retry::Later,
    ),
    finding(
        "doctor-some-addresses-fail",
        "Some of the server's addresses could not be reached; another one worked.",
        &["IPv6 is not routed from this network, or a firewall drops one address family"],
        &["Nothing to do if it keeps working; otherwise fix the network's IPv6 route"],
        Retry::No,
    ),
    finding(
        "doctor-connect-timeout",
        "Connecting to {server} timed out: nothing answered.",
        &[
            "a firewall drops outgoing SMTP: many cloud providers (AWS, Google Cloud, Azure, DigitalOcean) and some ISPs block port 25, and some block 465 and 587",
            "the port is wrong for this server",
            "the server is down",
        ],
        &[
            "Try the other submission port (587 STARTTLS or 465 implicit TLS)",
            "Ask the network or cloud provider to open outgoing SMTP, or send through postie's relay on a machine that can",
        ],
        Retry::No,
    ),
    finding(
        "doctor-connect-refused",
        "{server} refused the connection.",
        &[
            "nothing listens on that port: the port is wrong (587 is STARTTLS, 465 implicit TLS)",
            "a firewall rejects the connection",
            "the server is down",
        ],
        &[
            "Check port in the account ({do:account-list}); the provider's preset port is the right one unless you changed it",
        ],
        Retry::No,
    ),
    finding(
        "doctor-cert-expiring",
        "The server's certificate expires in {days} days.",
        &["its renewal is due or failed"],
        &["Nothing to do on this side; tell the server's administrator if it is yours"],
        Retry::No,
    ),
    finding(
        "doctor-no-tls",
        "The connection is not encrypted.",
        &["tls = \"none\" is set; allowed only to this machine"],
        &["Fine for a local test server; use STARTTLS or implicit TLS for anything else"],
        Retry::No,
    ),
    finding(
        "doctor-implicit-tls-port",
        "{server} sent no greeting: the port most likely expects implicit TLS, and the account says STARTTLS.",
        &[
            "on an implicit-TLS port (usually 465) the server waits for the client's TLS handshake before it says anything",
        ],
        &[
            "Set tls = \"implicit\" in the account for this port (or give the server as smtps://HOST:PORT), or use the STARTTLS port (587)",
        ],
        Retry::No,
    ),
    finding(
        "doctor-auth-mechanism-missing",
        "The server does not offer the authentication the account needs ({wanted}).",
        &[
            "the server offers no authentication on this port: it is a relay port (25) or accepts mail only from its own network",
            "the server does not support {auth} authentication",
            "AUTH is offered only after TLS and the account's TLS mode is off",
        ],
        &[
            "Use the provider's submission server and port (587 STARTTLS or 465 implicit TLS)",
            "If the server takes another kind of authentication, re-add the account with it: with a password, {do:add-account}; with OAuth 2.0, {do:add-oauth-account}",
            "If auth_mechanism is set in the account, remove it to let postie choose",
        ],
        Retry::No,
    ),
    finding(
        "doctor-app-password-shape",
        "This does not look like a {provider_name} app password ({length} characters; they are {shape}).",
        &[
            "it is the account's own password: {provider_name} refuses it over SMTP (Gmail: 534 5.7.9 or 535 5.7.8)",
            "it was pasted with extra characters",
        ],
        &[
            "Create an app password at {url}",
            "Store it and paste it when asked: {do:add-account}",
        ],
        Retry::No,
    ),
    finding(
        "doctor-not-signed-in",
        "Account '{account}' has never signed in, or signed out.",
        &["{do:login} was not run for this account, or {do:logout} removed its tokens"],
        &["Sign in: {do:login}"],
        Retry::No,
    ),
    finding(
        "doctor-google-scope",
        "The token's scope does not fit Gmail's SMTP server: {problem}.",
        &[
            "gmail.send works for the Gmail API only; SMTP, IMAP and POP need https://mail.google.com/",
            "the account's scopes were overridden",
        ],
        &[
            "Remove `scopes` from the account's [oauth] settings (postie asks for https://mail.google.com/), then {do:login}",
        ],
        Retry::No,
    ),
    finding(
        "doctor-microsoft-scope",
        "The token lacks the SMTP.Send permission.",
        &[
            "the app registration does not have the SMTP.Send delegated permission, or the account's scopes were overridden",
        ],
        &[
            "Add SMTP.Send (Office 365 Exchange Online) to the app registration's API permissions, then {do:login}",
        ],
        Retry::No,
    ),
    // ---- the HTTPS sending APIs (Gmail API, Microsoft Graph) ----
    finding(
        "api-gmail-unauthenticated",
        "The Gmail API refused the access token.",
        &[
            "the token expired or was revoked (postie refreshes it once and retries)",
            "the sign-in was for another Google project's client",
        ],
        &["Sign in again ({do:login})"],
        Retry::No,
    ),
    finding(
        "api-gmail-scope",
        "The access token lacks a scope the Gmail API needs to send.",
        &[
            "the account signed in with a scope that does not allow sending (the Gmail API takes gmail.send, gmail.compose, gmail.modify or https://mail.google.com/)",
        ],
        &[
            "Set scope = \"https://www.googleapis.com/auth/gmail.send\" in the account's [oauth] (or add it again with --transport gmail-api), then sign in again ({do:login})",
            "In the Google Cloud console, list the scope under Google Auth Platform > Data access",
        ],
        Retry::No,
    ),
    finding(
        "api-gmail-disabled",
        "The Gmail API is not enabled for the OAuth client's Google Cloud project.",
        &["the project the client ID belongs to has never enabled the Gmail API"],
        &[
            "In the Google Cloud console, APIs & Services > Library > Gmail API > Enable, for the project of the account's client_id; then try again",
        ],
        Retry::No,
    ),
    finding(
        "api-gmail-failed-precondition",
        "The Gmail API refused to send for this account (failedPrecondition).",
        &[
            "the account has no Gmail mailbox: a Google account made with another address, or a Workspace user whose Gmail service is off (for the user, the group or the domain)",
        ],
        &[
            "Check that the account can send from Gmail's web page; a Workspace admin turns Gmail on in the Admin console (Apps > Google Workspace > Gmail > Service status); the messages wait meanwhile",
        ],
        Retry::No,
    ),
    finding(
        "api-gmail-invalid-message",
        "The Gmail API refused the message as invalid (invalidArgument).",
        &["the message has no recipient in To, Cc or Bcc, or a header the API cannot parse"],
        &[
            "Check the message's From, To, Cc and Bcc headers: valid addresses, and at least one recipient",
        ],
        Retry::No,
    ),
    finding(
        "api-rate-limit",
        "The API asked to slow down (rate limit or throttling).",
        &[
            "more requests than the service allows: the Gmail API counts 100 quota units per send against a per-user per-minute limit; Graph allows 4 concurrent requests per mailbox and 10,000 per 10 minutes, Exchange 30 messages a minute",
            "the account's daily sending limit, which the API shares with the web and SMTP",
        ],
        &[
            "Nothing: postie waits as long as the service said (Retry-After) and tries again; lower [accounts.NAME.limits] per_minute to stay under it",
        ],
        Retry::Later,
    ),
    finding(
        "api-daily-limit",
        "The account reached its daily sending limit.",
        &[
            "more messages or recipients in the last 24 hours than the provider allows (Gmail about 500, Workspace 2,000), counted across the API, SMTP and the web",
        ],
        &[
            "Nothing: the messages wait and go out when the rolling 24-hour window allows; set [accounts.NAME.limits] per_day to pace them before the provider refuses",
        ],
        Retry::Hours,
    ),
    finding(
        "api-too-large",
        "The message is too large for the API.",
        &[
            "the Gmail API takes up to 35 MiB; Microsoft Graph 4 MB per request with the message base64-encoded (about 3 MB), larger ones needing an upload session and the Mail.ReadWrite permission, which postie does not ask for",
        ],
        &[
            "Send large messages over SMTP (transport = \"smtp\"), or link to the file instead of attaching it",
        ],
        Retry::No,
    ),
    finding(
        "api-graph-unauthenticated",
        "Microsoft Graph refused the access token.",
        &[
            "the token expired or was revoked (postie refreshes it once and retries)",
            "the token is for another resource (SMTP's outlook.office.com rather than graph.microsoft.com)",
        ],
        &[
            "Sign in again ({do:login}); with transport = \"graph\" the account asks for https://graph.microsoft.com/Mail.Send",
        ],
        Retry::No,
    ),
    finding(
        "api-graph-access-denied",
        "Microsoft Graph denied sending for this token (ErrorAccessDenied).",
        &[
            "the app registration lacks the delegated permission Mail.Send, or the user or an admin has not consented to it",
            "the token was granted without the Mail.Send scope",
        ],
        &[
            "In the Entra admin center: App registrations > the app > API permissions > Add > Microsoft Graph > Delegated > Mail.Send (and offline_access); grant admin consent if the tenant requires it; then sign in again ({do:login})",
        ],
        Retry::No,
    ),
    finding(
        "api-graph-invalid-message",
        "Microsoft Graph refused the message as invalid.",
        &["the MIME body is not valid base64, or the message names no valid recipient"],
        &[
            "Check the message's From, To, Cc and Bcc headers: valid addresses, and at least one recipient",
        ],
        Retry::No,
    ),
    finding(
        "api-graph-send-as-denied",
        "Microsoft Graph refused the From address (ErrorSendAsDenied).",
        &[
            "the message's From is not the signed-in mailbox, and the user has no Send As right for it",
        ],
        &[
            "Send from the account's own address, or have an Exchange admin grant Send As on that mailbox",
        ],
        Retry::No,
    ),
    finding(
        "api-graph-mailbox-not-enabled",
        "The account's mailbox cannot be used through Microsoft Graph (MailboxNotEnabledForRESTAPI).",
        &[
            "the mailbox is on-premises Exchange, inactive, or has no Exchange Online licence",
            "a personal account whose mailbox was never opened in Outlook on the web",
        ],
        &[
            "Use SMTP for this account (transport = \"smtp\"), or give the user an Exchange Online licence and sign in to Outlook on the web once",
        ],
        Retry::No,
    ),
    finding(
        "api-server-error",
        "The API answered with an error of its own.",
        &["a failure on the service's side (5xx), or an answer postie does not know"],
        &["Try again later; the message and the service's words are above"],
        Retry::Later,
    ),
];
