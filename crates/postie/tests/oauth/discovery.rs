//! Discovery (RFC 8414, then OpenID Connect) against both servers, a whole
//! sign-in with oauth2-mock-server, and the https-or-loopback rule.

use postie::ErrorKind;
use postie::oauth::{OAuthConfig, TokenManager, endpoints, logout_report};
use postie::provider::ProviderId;
use secrecy::ExposeSecret;

use crate::support::*;

fn issuer(url: &str) -> OAuthConfig {
    OAuthConfig {
        client_id: "discovery-test".into(),
        issuer: Some(url.into()),
        ..OAuthConfig::default()
    }
}

/// oauth2-mock-server announces itself as `http://localhost:PORT`.
fn mock_issuer() -> String {
    mock().replace("127.0.0.1", "localhost")
}

#[tokio::test]
async fn authlib_metadata_from_the_rfc_8414_location() {
    let a = authlib();
    let e = endpoints(ProviderId::Generic, &issuer(&a)).await.unwrap();
    assert_eq!(e.token, format!("{a}/token"));
    assert_eq!(e.authorization.as_deref(), Some(&*format!("{a}/authorize")));
    assert_eq!(
        e.device.as_deref(),
        Some(&*format!("{a}/device_authorization"))
    );
    assert_eq!(e.revocation.as_deref(), Some(&*format!("{a}/revoke")));
    assert!(e.supports_device);
    assert!(
        e.token_auth_methods
            .iter()
            .any(|m| m == "client_secret_post")
    );
}

#[tokio::test]
async fn mock_server_metadata_from_the_openid_location() {
    let m = mock_issuer();
    let e = endpoints(ProviderId::Generic, &issuer(&m)).await.unwrap();
    assert_eq!(e.token, format!("{m}/token"));
    assert_eq!(e.revocation.as_deref(), Some(&*format!("{m}/revoke")));
    assert!(e.device.is_none() && !e.supports_device);
    assert!(e.device_unsupported.unwrap().contains("device"));
}

#[tokio::test]
async fn metadata_naming_another_issuer_is_not_used() {
    // The mock server calls itself localhost; asked as 127.0.0.1 it differs.
    let err = endpoints(ProviderId::Generic, &issuer(&mock()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("localhost"), "{err}");
}

#[tokio::test]
async fn no_metadata_at_either_location_says_where_it_looked() {
    let err = endpoints(
        ProviderId::Generic,
        &issuer(&format!("{}/nothing", authlib())),
    )
    .await
    .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("/.well-known/oauth-authorization-server/nothing")
            && msg.contains("/nothing/.well-known/openid-configuration"),
        "{msg}"
    );
}

#[tokio::test]
async fn plain_http_beyond_loopback_is_refused_before_any_request() {
    for cfg in [
        issuer("http://auth.example.com"),
        OAuthConfig {
            client_id: "x".into(),
            token_endpoint: Some("http://10.1.2.3/token".into()),
            ..OAuthConfig::default()
        },
        OAuthConfig {
            client_id: "x".into(),
            token_endpoint: Some("https://auth.example.com/token".into()),
            authorization_endpoint: Some("http://auth.example.com/authorize".into()),
            ..OAuthConfig::default()
        },
    ] {
        let err = endpoints(ProviderId::Generic, &cfg).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(err.to_string().contains("https://"), "{err}");
    }
}

#[tokio::test]
async fn a_whole_sign_in_refresh_and_logout_with_the_mock_server() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(
        ProviderId::Generic,
        "john@example.test",
        issuer(&mock_issuer()),
    );
    let (tokens, page) = browser_login("mock", &acct, &store, &headless(), str::to_string).await;
    let tokens = tokens.unwrap();
    assert_eq!(page.unwrap().0, 200);
    // The mock issues JWTs: long tokens, the kind that need SMTP's 334 continuation.
    assert!(tokens.access_token.expose_secret().len() > 300);
    // The mock's JWTs differ only by their `iat` second: let one pass.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let m = TokenManager::new(dir.path().to_path_buf());
    let (fresh, ts) = m.access_token("mock", &acct, &store, true).await.unwrap();
    assert_ne!(fresh.expose_secret(), tokens.access_token.expose_secret());
    assert_ne!(
        ts.refresh_token.unwrap().expose_secret(),
        tokens.refresh_token.unwrap().expose_secret()
    );
    let report = logout_report("mock", &acct, &store).await.unwrap();
    assert!(report.revoked && report.deleted, "{report:?}");
}
