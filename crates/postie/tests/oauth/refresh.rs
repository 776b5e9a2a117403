//! Refresh: rotation saved, `invalid_grant` explained, one refresh for many
//! callers (in one process and across two), bounded retries on 503.

use std::sync::Arc;
use std::time::{Duration, Instant};

use postie::ErrorKind;
use postie::explain::{Context, Retry, explain};
use postie::oauth::{TokenManager, TokenSet};
use postie::provider::ProviderId;
use postie::secret::Secrets;
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

fn ctx<'a>(provider: ProviderId, account: &'a str) -> Context<'a> {
    Context {
        provider: Some(provider),
        account: Some(account),
        host: None,
    }
}

#[tokio::test]
async fn a_rotated_refresh_token_is_saved_and_the_old_one_is_dead() {
    let s = signed_in(None).await;
    let old_rt = s.tokens.refresh_token.clone().unwrap();
    let m = TokenManager::new(s.dir.path().to_path_buf());
    let (at, ts) = m
        .access_token(&s.name, &s.acct, &s.store, true)
        .await
        .unwrap();
    assert_ne!(at.expose_secret(), s.tokens.access_token.expose_secret());
    let stored = TokenSet::load(&s.store, &s.name).await.unwrap().unwrap();
    let new_rt = stored.refresh_token.clone().unwrap();
    assert_ne!(
        new_rt.expose_secret(),
        old_rt.expose_secret(),
        "not rotated"
    );
    assert_eq!(
        new_rt.expose_secret(),
        ts.refresh_token.unwrap().expose_secret()
    );
    assert!(stored.refresh_token_issued_at >= s.tokens.refresh_token_issued_at);
    // The server refuses the old refresh token: had postie kept it, the
    // next refresh would fail.
    let (status, body) = raw_refresh(&s.client, old_rt.expose_secret()).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    // The saved one works, through a manager with nothing in memory.
    let other = TokenManager::new(s.dir.path().to_path_buf());
    other
        .access_token(&s.name, &s.acct, &s.store, true)
        .await
        .unwrap();
    assert_eq!(count(&s.client, "refresh_token").await, 3);
}

#[tokio::test]
async fn a_revoked_grant_gives_invalid_grant_explained_with_the_login_command() {
    let s = signed_in(None).await;
    let rt = s.tokens.refresh_token.clone().unwrap();
    let r = browser()
        .post(format!("{}/revoke", authlib()))
        .form(&[("token", rt.expose_secret())])
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let m = TokenManager::new(s.dir.path().to_path_buf());
    let err = m
        .access_token(&s.name, &s.acct, &s.store, true)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert_eq!(err.oauth().unwrap().error, "invalid_grant");
    assert_eq!(err.oauth().unwrap().http_status, Some(400));
    let login = sign_in(&s.name);
    assert!(err.to_string().contains(&login), "{err}");
    let x = explain(&err, &ctx(ProviderId::Gmail, &s.name));
    assert_eq!(x.id, "google-invalid-grant");
    assert_eq!(x.retry, Retry::No);
    assert!(x.fix.iter().any(|f| f.contains(&login)), "{x:?}");
    let causes = x.causes.join("\n");
    for why in [
        "Testing",
        "7 days",
        "password",
        "6 months",
        "100 refresh tokens",
    ] {
        assert!(causes.contains(why), "{why} missing: {causes}");
    }
    // 4xx is not retried.
    assert_eq!(count(&s.client, "refresh_token").await, 1);
}

#[tokio::test]
async fn an_account_never_signed_in_is_told_to_log_in() {
    let client = register_client(None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(
        ProviderId::Gmail,
        "a@example.test",
        authlib_settings(&client),
    );
    let err = TokenManager::new(dir.path().to_path_buf())
        .access_token("new", &acct, &store, false)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert!(err.to_string().contains(&sign_in("new")), "{err}");
    let x = explain(&err, &ctx(ProviderId::Gmail, "new"));
    // found without asking any server: not explained as a server's answer
    assert_eq!(x.id, "not-signed-in");
    assert!(!x.causes.iter().any(|c| c.contains("answered")), "{x:?}");
    assert_eq!(x.fix, vec![format!("Sign in: {}", sign_in("new"))]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_callers_after_expiry_cause_one_refresh() {
    let s = signed_in(Some(2)).await;
    let m = TokenManager::new(s.dir.path().to_path_buf());
    tokio::time::sleep(Duration::from_millis(2200)).await;
    let got = at_once(&s, 20, &[(m.clone(), s.store.clone())]).await;
    let tokens: Vec<String> = got
        .into_iter()
        .map(|r| r.unwrap().0.expose_secret().to_string())
        .collect();
    assert!(
        tokens.iter().all(|t| t == &tokens[0]),
        "one new token for all"
    );
    assert_ne!(tokens[0], s.tokens.access_token.expose_secret());
    assert_eq!(count(&s.client, "refresh_token").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_processes_sharing_the_store_refresh_once() {
    // Eight seconds, not two: in a debug build each write of the encrypted
    // store costs about two seconds of Argon2, and the other "process" must
    // still find the token unexpired after reading it back.
    let s = signed_in(Some(8)).await;
    tokio::time::sleep(Duration::from_millis(8200)).await;
    // Two managers and two store handles over the same files behave like
    // two postie processes: only the file lock keeps them apart.
    let other_store = Arc::new(store(s.dir.path()));
    let a = TokenManager::new(s.dir.path().to_path_buf());
    let b = TokenManager::new(s.dir.path().to_path_buf());
    let got = at_once(&s, 20, &[(a, s.store.clone()), (b, other_store)]).await;
    let first = got[0].as_ref().unwrap().0.expose_secret().to_string();
    for r in &got {
        assert_eq!(r.as_ref().unwrap().0.expose_secret(), first);
    }
    assert_eq!(count(&s.client, "refresh_token").await, 1);
}

#[tokio::test]
async fn a_503_is_retried_with_backoff_then_succeeds() {
    let s = signed_in(None).await;
    fail_next(&s.client, 503, "temporarily_unavailable", "", 2).await;
    let m = TokenManager::new(s.dir.path().to_path_buf());
    let started = Instant::now();
    m.access_token(&s.name, &s.acct, &s.store, true)
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(count(&s.client, "refresh_token").await, 3);
    // Two waits of about 0.5 s and 1 s (±25 %): no tight loop, no long stall.
    assert!(took >= Duration::from_millis(1100), "{took:?}");
    assert!(took < Duration::from_secs(8), "{took:?}");
}

#[tokio::test]
async fn a_permanent_503_ends_after_bounded_tries() {
    let s = signed_in(None).await;
    fail_next(&s.client, 503, "temporarily_unavailable", "try later", 10).await;
    let m = TokenManager::new(s.dir.path().to_path_buf());
    let started = Instant::now();
    let err = m
        .access_token(&s.name, &s.acct, &s.store, true)
        .await
        .unwrap_err();
    let took = started.elapsed();
    assert!(err.is_transient(), "{:?}", err.kind());
    assert!(err.to_string().contains("after 4 attempts"), "{err}");
    assert_eq!(count(&s.client, "refresh_token").await, 4);
    // 0.5 + 1 + 2 s, each ±25 %.
    assert!(took >= Duration::from_millis(2600), "{took:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert_eq!(explain(&err, &Context::default()).retry, Retry::Later);
}

/// Run `n` calls of `access_token` at once, each in its own task, on the
/// managers and stores given in turn.
async fn at_once(
    s: &SignedIn,
    n: usize,
    sides: &[(TokenManager, Arc<Secrets>)],
) -> Vec<postie::error::Result<(SecretString, TokenSet)>> {
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let (m, store) = sides[i % sides.len()].clone();
            let (name, acct) = (s.name.clone(), s.acct.clone());
            tokio::spawn(async move { m.access_token(&name, &acct, &store, false).await })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// In a case's words: the fix names a sign-in of the account.
const SIGN_IN: &str = "(sign-in)";

/// One authorization-server error, as the provider words it, and what the
/// explanation must say.
struct OAuthCase {
    provider: ProviderId,
    status: u16,
    error: &'static str,
    description: &'static str,
    id: &'static str,
    words: &'static [&'static str],
}

const OAUTH_CASES: &[OAuthCase] = &[
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "invalid_grant",
        description: "AADSTS50076: Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access '00000002-0000-0ff1-ce00-000000000000'.",
        id: "microsoft-mfa-required",
        words: &["MFA"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "invalid_grant",
        description: "AADSTS65001: The user or administrator has not consented to use the application with ID 'abc'.",
        id: "microsoft-consent-missing",
        words: &["admin consent"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "invalid_grant",
        description: "AADSTS70000: The provided grant is invalid or malformed.",
        id: "microsoft-grant-invalid",
        words: &["90 days"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 401,
        error: "invalid_client",
        description: "AADSTS7000218: The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        id: "microsoft-public-client-disabled",
        words: &["Allow public client flows"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 401,
        error: "invalid_client",
        description: "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        id: "microsoft-secret-invalid",
        words: &["secret"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "unauthorized_client",
        description: "AADSTS700016: Application with identifier 'abc' was not found in the directory 'contoso'.",
        id: "microsoft-app-not-found",
        words: &["client"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "invalid_request",
        description: "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        id: "microsoft-missing-parameter",
        words: &["parameter"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "invalid_grant",
        description: "AADSTS50126: Error validating credentials due to invalid username or password.",
        id: "microsoft-bad-password",
        words: &["password"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "invalid_request",
        description: "AADSTS50011: The redirect URI 'http://127.0.0.1:5000/' specified in the request does not match the redirect URIs configured for the application 'abc'.",
        id: "microsoft-redirect-uri",
        words: &["redirect"],
    },
    OAuthCase {
        provider: ProviderId::Office365,
        status: 400,
        error: "interaction_required",
        description: "The user must sign in again.",
        id: "microsoft-invalid-grant",
        words: &[SIGN_IN],
    },
    OAuthCase {
        provider: ProviderId::Gmail,
        status: 400,
        error: "invalid_grant",
        description: "Token has been expired or revoked.",
        id: "google-invalid-grant",
        words: &["Testing", "7 days"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "invalid_grant",
        description: "The refresh token is invalid.",
        id: "invalid-grant",
        words: &[SIGN_IN],
    },
    OAuthCase {
        provider: ProviderId::Gmail,
        status: 400,
        error: "invalid_scope",
        description: "Invalid device flow scope: https://mail.google.com/",
        id: "google-device-scope",
        words: &["browser"],
    },
    OAuthCase {
        provider: ProviderId::Gmail,
        status: 400,
        error: "invalid_scope",
        description: "Some requested scopes were invalid.",
        id: "google-invalid-scope",
        words: &["https://mail.google.com/"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "invalid_scope",
        description: "The requested scope is invalid.",
        id: "invalid-scope",
        words: &["scope"],
    },
    OAuthCase {
        provider: ProviderId::Gmail,
        status: 400,
        error: "redirect_uri_mismatch",
        description: "Bad Request",
        id: "google-redirect-uri-mismatch",
        words: &["Desktop app"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "redirect_uri_mismatch",
        description: "The redirect URI does not match.",
        id: "redirect-uri-mismatch",
        words: &["redirect"],
    },
    OAuthCase {
        provider: ProviderId::Gmail,
        status: 400,
        error: "invalid_request",
        description: "client_secret is missing.",
        id: "google-client-secret-missing",
        words: &["client_secret_env"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 401,
        error: "invalid_client",
        description: "Client authentication failed.",
        id: "invalid-client",
        words: &["client"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "unauthorized_client",
        description: "The client is not authorized to use this grant type.",
        id: "unauthorized-client",
        words: &["grant"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "unauthorized_client",
        description: "Client is unauthorized to retrieve access tokens using this method, or client not authorized for any of the scopes requested.",
        id: "service-account-not-delegated",
        words: &["delegation"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "consent_required",
        description: "The user must consent again.",
        id: "login-required",
        words: &[SIGN_IN],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "server_error",
        description: "The server had a problem.",
        id: "oauth-server-unavailable",
        words: &["Try again in a few minutes"],
    },
    OAuthCase {
        provider: ProviderId::Generic,
        status: 400,
        error: "some_new_error",
        description: "Something the catalog does not know.",
        id: "oauth-error",
        words: &["some_new_error"],
    },
];

/// Each authorization-server error is the answer of the test server's
/// token endpoint to a real refresh over HTTP: its fault injection
/// (`/_test/fail_next`) returns the provider's exact error body and status
/// instead of letting Authlib answer. What is tested is postie's path from
/// the HTTP answer to the explanation: status, JSON parsing, AADSTS codes,
/// the catalog entry, its cause and its fix.
#[tokio::test]
async fn every_token_endpoint_error_is_explained_from_the_servers_answer() {
    let s = signed_in(None).await;
    let m = TokenManager::new(s.dir.path().to_path_buf());
    for c in OAUTH_CASES {
        let mut acct = s.acct.clone();
        acct.provider = c.provider;
        // 5xx answers are retried; the case's answer is given to every try.
        let tries = if c.status >= 500 { 4 } else { 1 };
        fail_next(&s.client, c.status, c.error, c.description, tries).await;
        let err = m
            .access_token(&s.name, &acct, &s.store, true)
            .await
            .unwrap_err();
        let info = err
            .oauth()
            .unwrap_or_else(|| panic!("{}: no OAuth error in {err}", c.id));
        assert_eq!(info.error, c.error);
        let x = explain(&err, &ctx(c.provider, &s.name));
        assert_eq!(x.id, c.id, "{} {}", c.error, c.description);
        let all = format!("{} {} {}", x.summary, x.causes.join(" "), x.fix.join(" "));
        for w in c.words {
            if *w == SIGN_IN {
                let login = sign_in(&s.name);
                assert!(all.contains(&login), "{}: {login} missing in {all}", c.id);
                continue;
            }
            assert!(all.contains(w), "{}: '{w}' missing in {all}", c.id);
        }
        assert!(!x.fix.is_empty(), "{}: no fix", c.id);
    }
}

/// Entries without a test do not count: every entry of the OAuth catalog is
/// reached by a case above or by the flow test named here.
#[test]
fn every_oauth_entry_has_a_test() {
    let elsewhere = [
        // code_flow::denied_consent_is_shown_in_the_browser_and_explained, device::a_denied_device_code_is_explained
        "access-denied",
        // device::a_code_not_approved_in_time_expires
        "expired-token",
        // app_only::an_assertion_signed_with_another_key_is_refused
        "service-account-assertion-refused",
        // code_flow::a_refused_code_is_explained
        "code-refused",
    ];
    let tested: std::collections::HashSet<&str> =
        OAUTH_CASES.iter().map(|c| c.id).chain(elsewhere).collect();
    let missing: Vec<_> = postie::explain::oauth_catalog_ids()
        .into_iter()
        .filter(|id| !tested.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "OAuth catalog entries without a test: {missing:?}"
    );
}
