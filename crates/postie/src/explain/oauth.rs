//! The explanation catalog for authorization-server errors (token endpoint,
//! consent redirect, device polling): what happened, the likely causes in
//! order, the fix (naming the actions of postie that apply), and whether
//! retrying helps.
//! [`crate::explain::explain_oauth`] is its entry point.
//!
//! Keyed by provider family, the OAuth error code, Microsoft's AADSTS
//! number and text in the description; the first matching entry wins, so
//! specific entries come first. Sources: provider-facts §3 (Google) and §7
//! (Microsoft), RFC 6749 §5.2, RFC 8628 §3.5.

use super::entry::{Entry, Family, On, fill};
use super::{Context, Explanation, Retry};
use crate::error::OAuthErrorInfo;

/// The id of the explanation of an error no entry knows.
pub(super) const FALLBACK: &str = "oauth-error";

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const LOGIN: &str = "Sign in again: {do:login}";
const SECRET_HOW: &str = "Give postie the client secret: `client_secret_env = \"VAR\"` in [accounts.{account}.oauth], or store it in the secret store as `{account}/client-secret`; then {do:login}";

pub(super) static ENTRIES: &[Entry] = &[
    // ---- Microsoft, by AADSTS number ----
    Entry {
        id: "microsoft-mfa-required",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[50076, 50079],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft requires multi-factor authentication for this sign-in, which a token refresh cannot provide.",
        causes: &[
            "an administrator's Conditional Access policy or security defaults now require MFA",
            "the sign-in comes from a new location or device, which triggers MFA",
        ],
        fix: &["Sign in interactively and complete MFA: {do:login}"],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-consent-missing",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[65001],
            grants: &[],
            text: &[],
        },
        summary: "The user or an administrator has not consented to the app using these permissions.",
        causes: &[
            "consent was never given for SMTP.Send / offline_access, or it was withdrawn",
            "the organization lets only administrators consent to apps",
        ],
        fix: &[
            "{do:login} and accept the permissions on the consent page",
            "If the organization requires admin consent, an administrator grants it: Entra admin center > Enterprise applications > the app > Permissions > Grant admin consent",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-grant-invalid",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[70000, 700082, 50173, 70008],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft rejected the stored grant: the refresh token (or code) is invalid, expired or revoked.",
        causes: &[
            "the refresh token expired: Microsoft ends them after 90 days without use",
            "it was revoked: the password was changed or reset, or an administrator revoked the user's sessions",
            "the scopes asked for differ from those consented to",
            "the code was already used or is older than a few minutes",
        ],
        fix: &[LOGIN],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-public-client-disabled",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[7000218],
            grants: &[],
            text: &[],
        },
        summary: "The app registration expects a client secret, and postie sent none.",
        causes: &[
            "'Allow public client flows' is off in the app registration (the device flow and secret-less desktop sign-in need it)",
            "the app was registered as a confidential (web) app",
        ],
        fix: &[
            "Entra admin center > App registrations > the app > Authentication > Advanced settings: set 'Allow public client flows' to Yes, then {do:login}",
            SECRET_HOW,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-secret-invalid",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[7000215, 7000222],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft did not accept the client secret: it is wrong or has expired.",
        causes: &[
            "client secrets expire (at most 2 years after creation)",
            "the secret ID was given instead of the secret value",
        ],
        fix: &[
            "Create a new secret: Entra admin center > App registrations > the app > Certificates & secrets; copy its Value",
            SECRET_HOW,
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-app-not-found",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[700016],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft does not know this application (client ID) in the tenant used.",
        causes: &[
            "the client_id is mistyped",
            "the app is single-tenant and registered in another tenant than `tenant` names ('common' by default)",
            "the app was deleted",
        ],
        fix: &[
            "Compare client_id in [accounts.{account}.oauth] with Entra admin center > App registrations > Application (client) ID",
            "For a single-tenant app set `tenant = \"<Directory (tenant) ID>\"`; for personal Outlook.com accounts the app must accept personal Microsoft accounts. Then {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-missing-parameter",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[900144],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft received a request that lacks a required parameter (client_id, grant_type or scope).",
        causes: &[
            "the account's OAuth settings are incomplete: no client_id, or an empty scopes list",
        ],
        fix: &[
            "Check [accounts.{account}.oauth]: a client_id, and scopes either absent or non-empty; then {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-bad-password",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[50126],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft rejected the user name or password.",
        causes: &[
            "the password is wrong, or the account needs MFA or a federated sign-in that a password cannot do",
        ],
        fix: &[
            "Sign in with the browser or a device code instead: {do:login} (or {do:login-device})",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-redirect-uri",
        on: On::OAuth {
            family: Family::Any,
            errors: &[],
            aadsts: &[50011, 500113],
            grants: &[],
            text: &[],
        },
        summary: "The redirect URI postie uses is not registered for the app.",
        causes: &[
            "the app has no 'Mobile and desktop applications' platform with a loopback redirect URI",
        ],
        fix: &[
            "Entra admin center > App registrations > the app > Authentication > Add a platform > Mobile and desktop applications: add `http://127.0.0.1` (Microsoft ignores the port for loopback addresses), then {do:login}",
            "Or use the device flow: {do:login-device}",
        ],
        retry: Retry::No,
    },
    // ---- service-account assertions (Google's wording) ----
    Entry {
        id: "service-account-assertion-refused",
        on: On::OAuth {
            family: Family::Any,
            errors: &["invalid_grant"],
            aadsts: &[],
            grants: &[JWT_BEARER],
            text: &[],
        },
        summary: "The authorization server refused the service account's signed assertion (JWT).",
        causes: &[
            "the key file is not a current key of this service account (deleted, disabled, or another account's key)",
            "this machine's clock is off by minutes (the assertion's iat and exp are checked)",
            "the mailbox to act as (the account's email) is not a user of the Workspace domain",
        ],
        fix: &[
            "Create a new JSON key (Google Cloud console > IAM & Admin > Service accounts > the account > Keys), point service_account_key in [accounts.{account}.oauth] at it, and check with {do:login}",
            "Check the clock: `date`",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "service-account-not-delegated",
        on: On::OAuth {
            family: Family::Any,
            errors: &["unauthorized_client"],
            aadsts: &[],
            grants: &[],
            text: &["unauthorized"],
        },
        summary: "The client is not authorized for this grant or scope.",
        causes: &[
            "Google service account: domain-wide delegation is not granted for https://mail.google.com/",
            "the client is not allowed to use this grant type",
        ],
        fix: &[
            "Workspace Admin console > Security > API controls > Domain-wide delegation: add the service account's client ID with the scope https://mail.google.com/; then check with {do:login}",
        ],
        retry: Retry::No,
    },
    // ---- invalid_grant ----
    Entry {
        id: "code-refused",
        on: On::OAuth {
            family: Family::Any,
            errors: &["invalid_grant"],
            aadsts: &[],
            grants: &["authorization_code"],
            text: &[],
        },
        summary: "The authorization server refused the sign-in code it had just issued.",
        causes: &[
            "the code expired (codes live a few minutes) or was already used",
            "the PKCE verifier or the redirect URI differ from the sign-in request (something between the browser and postie rewrote the redirect)",
            "this machine's clock is wrong",
        ],
        fix: &["Sign in again, without delay: {do:login}"],
        retry: Retry::No,
    },
    Entry {
        id: "google-invalid-grant",
        on: On::OAuth {
            family: Family::Google,
            errors: &["invalid_grant"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "Google no longer accepts the stored refresh token: the account must sign in again.",
        causes: &[
            "the Google Cloud project's OAuth consent screen is in \"Testing\" status: Google revokes its refresh tokens after 7 days",
            "the account's password was changed (Google then revokes refresh tokens with Gmail scopes)",
            "access was removed at https://myaccount.google.com/permissions, or postie logged out",
            "the token was not used for 6 months",
            "more than 100 refresh tokens were issued for this account and client: Google silently invalidates the oldest",
            "a Workspace administrator's session-length policy ended it; or this machine's clock is wrong",
        ],
        fix: &[
            LOGIN,
            "To end the 7-day expiry, publish the app: Google Auth Platform > Audience > Publish app (Google Cloud console)",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "microsoft-invalid-grant",
        on: On::OAuth {
            family: Family::Microsoft,
            errors: &["invalid_grant", "interaction_required", "consent_required"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "Microsoft no longer accepts the stored refresh token: the account must sign in again.",
        causes: &[
            "the refresh token was not used for 90 days",
            "the password was changed or reset, or an administrator revoked the sessions",
            "a new Conditional Access or MFA requirement applies",
        ],
        fix: &[LOGIN],
        retry: Retry::No,
    },
    Entry {
        id: "invalid-grant",
        on: On::OAuth {
            family: Family::Any,
            errors: &["invalid_grant"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The authorization server no longer accepts the stored grant (refresh token or code).",
        causes: &[
            "the refresh token expired or was revoked (password change, sign-out, an administrator)",
            "a rotated refresh token was replaced by a newer one elsewhere (another copy of the tokens refreshed first)",
        ],
        fix: &[LOGIN],
        retry: Retry::No,
    },
    // ---- invalid_scope ----
    Entry {
        id: "google-device-scope",
        on: On::OAuth {
            family: Family::Any,
            errors: &["invalid_scope"],
            aadsts: &[],
            grants: &[],
            text: &["device"],
        },
        summary: "The device flow refused the scope: Google's device flow does not allow the Gmail scope https://mail.google.com/.",
        causes: &[
            "Google's device flow allows only a few scopes (profile, email, Drive files, YouTube); SMTP needs https://mail.google.com/",
        ],
        fix: &[
            "Use the browser sign-in, not the device flow: {do:login} ({do:login-manual} when the browser runs on another machine)",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-invalid-scope",
        on: On::OAuth {
            family: Family::Google,
            errors: &["invalid_scope"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "Google refused the requested scopes.",
        causes: &[
            "the scopes setting names gmail.send: Google accepts it for the Gmail API only, never for SMTP, which needs https://mail.google.com/",
            "a scope is mistyped, or not added to the project's consent screen (Google Auth Platform > Data access)",
        ],
        fix: &[
            "Remove `scopes` from [accounts.{account}.oauth] (postie asks for https://mail.google.com/), add that scope on the consent screen, then {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "invalid-scope",
        on: On::OAuth {
            family: Family::Any,
            errors: &["invalid_scope"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The authorization server refused the requested scopes.",
        causes: &[
            "a scope in the account's scopes setting is mistyped or not enabled for the app",
            "Microsoft: the app lacks the delegated permission SMTP.Send (Office 365 Exchange Online)",
        ],
        fix: &[
            "Check `scopes` in [accounts.{account}.oauth] (remove it to use the provider's default) and the app's API permissions; then {do:login}",
        ],
        retry: Retry::No,
    },
    // ---- client and redirect ----
    Entry {
        id: "google-redirect-uri-mismatch",
        on: On::OAuth {
            family: Family::Google,
            errors: &["redirect_uri_mismatch"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "Google refused the loopback redirect: the OAuth client is not a Desktop app client.",
        causes: &[
            "the client ID is a 'Web application' client, which accepts only exactly registered redirect URIs",
        ],
        fix: &[
            "Create a client of type 'Desktop app' (Google Auth Platform > Clients > Create client): it accepts postie's http://127.0.0.1:PORT/ on any port. Put its ID (and secret) in [accounts.{account}.oauth], then {do:login}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "redirect-uri-mismatch",
        on: On::OAuth {
            family: Family::Any,
            errors: &["redirect_uri_mismatch"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The authorization server refused postie's loopback redirect URI.",
        causes: &[
            "the client is registered for other redirect URIs; postie uses http://127.0.0.1:PORT/ (RFC 8252 loopback, any port)",
        ],
        fix: &[
            "Register the loopback redirect for the client (or a native/desktop client type), or use {do:login-device}",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "google-client-secret-missing",
        on: On::OAuth {
            family: Family::Any,
            errors: &["invalid_request", "invalid_client"],
            aadsts: &[],
            grants: &[],
            text: &["client_secret is missing"],
        },
        summary: "The token endpoint wants the client secret, and postie sent none.",
        causes: &[
            "Google 'Desktop app' clients come with a client secret that the token endpoint requires, even with PKCE",
        ],
        fix: &[SECRET_HOW],
        retry: Retry::No,
    },
    Entry {
        id: "invalid-client",
        on: On::OAuth {
            family: Family::Any,
            errors: &[
                "invalid_client",
                "unauthorized_client_secret",
                "disabled_client",
            ],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The authorization server did not accept postie's client (client ID or secret).",
        causes: &[
            "the client secret is wrong or expired (Microsoft client secrets expire)",
            "the client ID is mistyped, or the client was deleted or disabled",
            "the server requires a client secret and none was given",
        ],
        fix: &["Check client_id in [accounts.{account}.oauth]", SECRET_HOW],
        retry: Retry::No,
    },
    Entry {
        id: "unauthorized-client",
        on: On::OAuth {
            family: Family::Any,
            errors: &["unauthorized_client", "unsupported_grant_type"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The client is not allowed to use this kind of sign-in.",
        causes: &[
            "the app registration does not allow this grant: Microsoft's device flow needs 'Allow public client flows'; app-only access needs an application permission",
            "the client type (web, desktop, service) does not match the flow",
        ],
        fix: &[
            "Enable the grant for the client, or choose the flow it allows (`flow` in [accounts.{account}.oauth]); then {do:login}",
        ],
        retry: Retry::No,
    },
    // ---- the user's decision ----
    Entry {
        id: "access-denied",
        on: On::OAuth {
            family: Family::Any,
            errors: &["access_denied", "authorization_declined"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The sign-in was refused: access was denied at the consent page.",
        causes: &[
            "Cancel or Deny was chosen on the consent page",
            "Google: the app is in \"Testing\" status and this account is not one of its test users",
            "an administrator blocks this app for the organization",
        ],
        fix: &[
            "{do:login} and allow access",
            "Google: add the account under Google Auth Platform > Audience > Test users, or publish the app",
        ],
        retry: Retry::No,
    },
    Entry {
        id: "expired-token",
        on: On::OAuth {
            family: Family::Any,
            errors: &["expired_token"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The device code expired before the sign-in was approved.",
        causes: &["the code was not entered and approved in time (15 minutes at Microsoft)"],
        fix: &["{do:login-device} and enter the new code promptly"],
        retry: Retry::No,
    },
    Entry {
        id: "login-required",
        on: On::OAuth {
            family: Family::Any,
            errors: &["login_required", "interaction_required", "consent_required"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The account is not signed in with OAuth, or must sign in again interactively.",
        causes: &[
            "{do:login} was never run for this account, or {do:logout} removed its tokens",
            "the secret store holding the tokens changed (another keyring, another encrypted file)",
        ],
        fix: &[LOGIN],
        retry: Retry::No,
    },
    Entry {
        id: "oauth-server-unavailable",
        on: On::OAuth {
            family: Family::Any,
            errors: &["temporarily_unavailable", "server_error"],
            aadsts: &[],
            grants: &[],
            text: &[],
        },
        summary: "The authorization server had a temporary problem.",
        causes: &["the provider's sign-in service is overloaded or down"],
        fix: &["Try again in a few minutes"],
        retry: Retry::Later,
    },
];

/// Explain an authorization server's error.
pub(super) fn explain(info: &OAuthErrorInfo, ctx: &Context<'_>) -> Explanation {
    let fam = Family::of_oauth(ctx.provider, info);
    let codes = info.aadsts();
    let text = info
        .error_description
        .as_deref()
        .unwrap_or("")
        .to_ascii_lowercase();
    let mut x = match ENTRIES
        .iter()
        .find(|e| e.matches_oauth(fam, info, &codes, &text))
    {
        Some(e) => e.render(ctx, &[]),
        None => {
            let mut actions = Vec::new();
            let fix = vec![fill(LOGIN, ctx, &[], &mut actions)];
            Explanation {
                id: FALLBACK,
                summary: format!(
                    "The authorization server refused the request with '{}'.",
                    info.error
                ),
                causes: Vec::new(),
                fix,
                retry: if info.kind() == crate::ErrorKind::Transient {
                    Retry::Later
                } else {
                    Retry::No
                },
                actions,
            }
        }
    };
    if info.http_status.is_some() || info.error_description.is_some() {
        x.causes
            .insert(0, format!("the authorization server answered: {info}"));
    }
    if let Some(uri) = &info.error_uri {
        x.fix
            .push(format!("The server's page about this error: {uri}"));
    }
    if let Some(t) = &info.trace_id {
        x.fix.push(format!(
            "For an administrator or Microsoft support: trace ID {t}{}",
            info.correlation_id
                .as_deref()
                .map(|c| format!(", correlation ID {c}"))
                .unwrap_or_default()
        ));
    }
    x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::ProviderId;
    use crate::wording::{Action, say};

    /// In a case's words: the fix names the device-code sign-in.
    const DEVICE: &str = "(device sign-in)";

    fn info(error: &str, description: &str) -> OAuthErrorInfo {
        let mut i = OAuthErrorInfo::new(error, Some(description.to_string()));
        i.http_status = Some(400);
        i
    }

    #[test]
    fn every_listed_error_has_its_entry_and_the_login_command() {
        let g = Some(ProviderId::Gmail);
        let m = Some(ProviderId::Office365);
        // provider, error, error_description, entry, words it must say
        type Case<'a> = (Option<ProviderId>, &'a str, &'a str, &'a str, &'a [&'a str]);
        let cases: &[Case] = &[
            (
                g,
                "invalid_grant",
                "Token has been expired or revoked.",
                "google-invalid-grant",
                &[
                    "Testing", "7 days", "password", "6 months", "revoked", "100",
                ],
            ),
            (
                g,
                "invalid_scope",
                "Invalid device flow scope: https://mail.google.com/",
                "google-device-scope",
                &["not the device flow", "https://mail.google.com/"],
            ),
            (
                g,
                "invalid_scope",
                "Some requested scopes were invalid.",
                "google-invalid-scope",
                &["gmail.send", "Gmail API"],
            ),
            (
                g,
                "redirect_uri_mismatch",
                "Bad Request",
                "google-redirect-uri-mismatch",
                &["Desktop app"],
            ),
            (
                g,
                "invalid_request",
                "client_secret is missing.",
                "google-client-secret-missing",
                &["client_secret_env"],
            ),
            (
                g,
                "invalid_client",
                "The OAuth client was not found.",
                "invalid-client",
                &["client_id"],
            ),
            (
                g,
                "unauthorized_client",
                "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
                "service-account-not-delegated",
                &["Domain-wide delegation"],
            ),
            (
                None,
                "unauthorized_client",
                "",
                "unauthorized-client",
                &["Allow public client flows"],
            ),
            (g, "access_denied", "", "access-denied", &["Test users"]),
            (
                m,
                "authorization_declined",
                "",
                "access-denied",
                &["allow access"],
            ),
            (
                m,
                "expired_token",
                "",
                "expired-token",
                &[DEVICE, "15 minutes"],
            ),
            (
                m,
                "invalid_grant",
                "AADSTS50076: Due to a configuration change made by your administrator",
                "microsoft-mfa-required",
                &["MFA"],
            ),
            (
                m,
                "invalid_grant",
                "AADSTS65001: The user or administrator has not consented",
                "microsoft-consent-missing",
                &["admin consent"],
            ),
            (
                m,
                "invalid_grant",
                "AADSTS70000: The provided value for the 'code' parameter is not valid.",
                "microsoft-grant-invalid",
                &["90 days"],
            ),
            (
                m,
                "invalid_client",
                "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
                "microsoft-public-client-disabled",
                &["Allow public client flows"],
            ),
            (
                m,
                "unauthorized_client",
                "AADSTS700016: Application with identifier 'x' was not found in the directory",
                "microsoft-app-not-found",
                &["tenant"],
            ),
            (
                m,
                "invalid_request",
                "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
                "microsoft-missing-parameter",
                &["client_id"],
            ),
            (
                m,
                "invalid_grant",
                "AADSTS50126: Error validating credentials due to invalid username or password.",
                "microsoft-bad-password",
                &[DEVICE],
            ),
            (
                m,
                "invalid_grant",
                "",
                "microsoft-invalid-grant",
                &["90 days"],
            ),
            (None, "login_required", "", "login-required", &[]),
        ];
        for (provider, error, description, id, words) in cases {
            let ctx = Context {
                provider: *provider,
                account: Some("work"),
                host: None,
            };
            let x = explain(&info(error, description), &ctx);
            assert_eq!(x.id, *id, "{error}: {description}");
            let all = format!("{} {} {}", x.summary, x.causes.join(" "), x.fix.join(" "));
            // Every refusal names a sign-in of the account, worded in the text.
            let sign_in = x
                .actions
                .iter()
                .find(|a| {
                    matches!(a, Action::SignIn { account: Some(n) } if n == "work")
                        || matches!(a, Action::SignInWithDevice { account } if account == "work")
                })
                .unwrap_or_else(|| panic!("{id}: no sign-in named: {:?}", x.actions));
            assert!(
                all.contains(&say(sign_in)),
                "{id}: sign-in not worded: {all}"
            );
            assert!(!all.contains("{account}"), "{id}: {all}");
            for w in *words {
                if *w == DEVICE {
                    let device = Action::SignInWithDevice {
                        account: "work".into(),
                    };
                    assert!(x.actions.contains(&device), "{id}: {:?}", x.actions);
                    continue;
                }
                assert!(all.contains(w), "{id}: {w:?} missing from {all}");
            }
            assert_eq!(x.retry, Retry::No, "{id}");
            if !description.is_empty() {
                assert!(
                    x.causes[0].contains(description.split(':').next().unwrap()),
                    "{x:?}"
                );
            }
        }
    }

    #[test]
    fn the_grant_decides_what_invalid_grant_means() {
        let ctx = Context {
            provider: Some(ProviderId::Workspace),
            account: Some("sa"),
            host: None,
        };
        let mut i = info("invalid_grant", "");
        i.grant_type = Some(JWT_BEARER.into());
        assert_eq!(explain(&i, &ctx).id, "service-account-assertion-refused");
        i.grant_type = Some("authorization_code".into());
        assert_eq!(explain(&i, &ctx).id, "code-refused");
        i.grant_type = Some("refresh_token".into());
        assert_eq!(explain(&i, &ctx).id, "google-invalid-grant");
    }

    #[test]
    fn unknown_and_transient_errors() {
        let x = explain(&info("temporarily_unavailable", ""), &Context::default());
        assert_eq!((x.id, x.retry), ("oauth-server-unavailable", Retry::Later));
        let mut odd = info("whatever_new", "detail");
        odd.error_uri = Some("https://as.example/errors/1".into());
        odd.trace_id = Some("t-1".into());
        let x = explain(&odd, &Context::default());
        assert_eq!(x.id, "oauth-error");
        assert!(
            x.fix
                .iter()
                .any(|f| f.contains("https://as.example/errors/1"))
        );
        assert!(x.fix.iter().any(|f| f.contains("t-1")));
        let sign_in = Action::SignIn {
            account: Some("NAME".into()),
        };
        assert!(x.actions.contains(&sign_in), "{x:?}");
        assert!(x.fix[0].contains(&say(&sign_in)), "{x:?}");
    }
}
