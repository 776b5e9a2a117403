//! Tokens without a user at the keyboard: a Google-style service account
//! (RS256 JWT bearer, `sub` = the mailbox) and client credentials.

use postie::ErrorKind;
use postie::explain::{Context, explain};
use postie::oauth::{
    Flow, LoginPrompt, OAuthConfig, TokenManager, TokenSet, client_secret_key, login,
};
use postie::provider::ProviderId;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::support::*;

fn no_prompt(p: &LoginPrompt) {
    panic!("app-only flows show nothing: {p:?}")
}

fn service_account(key_file: &std::path::Path) -> OAuthConfig {
    OAuthConfig {
        client_id: "unused-for-jwt-bearer".into(),
        flow: Some(Flow::ServiceAccount),
        service_account_key: Some(key_file.to_path_buf()),
        ..OAuthConfig::default()
    }
}

fn write_key(dir: &std::path::Path, key: &Value) -> std::path::PathBuf {
    let path = dir.join("sa.json");
    std::fs::write(&path, serde_json::to_vec_pretty(key).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn a_service_account_gets_tokens_for_the_mailbox_and_mints_new_ones() {
    let key = service_account_key().await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(
        ProviderId::Workspace,
        "bob@example.test",
        service_account(&write_key(dir.path(), &key)),
    );
    let tokens = login("sa", &acct, &store, &headless(), &no_prompt, None)
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_none());
    assert_eq!(tokens.scope.as_deref(), Some("https://mail.google.com/"));
    let info = active(tokens.access_token.expose_secret()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "bob@example.test", "sub is the mailbox");
    // No refresh token: the manager mints a new one when asked to.
    let m = TokenManager::new(dir.path().to_path_buf());
    let (at, _) = m.access_token("sa", &acct, &store, true).await.unwrap();
    assert_ne!(at.expose_secret(), tokens.access_token.expose_secret());
    let email = key["client_email"].as_str().unwrap();
    assert_eq!(
        count(email, "urn:ietf:params:oauth:grant-type:jwt-bearer").await,
        2
    );
}

#[tokio::test]
async fn an_assertion_signed_with_another_key_is_refused() {
    let key = service_account_key().await;
    let other = service_account_key().await;
    let mut forged = key.clone();
    forged["private_key"] = other["private_key"].clone();
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(
        ProviderId::Workspace,
        "bob@example.test",
        service_account(&write_key(dir.path(), &forged)),
    );
    let err = login("sa", &acct, &store, &headless(), &no_prompt, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials, "{err}");
    assert_eq!(err.oauth().unwrap().error, "invalid_grant");
    let msg = format!("{err} {err:?}");
    assert!(!msg.contains("PRIVATE KEY"), "{msg}");
    let x = explain(
        &err,
        &Context {
            provider: Some(ProviderId::Workspace),
            account: Some("sa"),
            host: None,
        },
    );
    assert_eq!(x.id, "service-account-assertion-refused", "{x:?}");
    assert!(TokenSet::load(&store, "sa").await.unwrap().is_none());
}

#[tokio::test]
async fn client_credentials_with_the_secret_from_the_store() {
    let client = register_client(Some("cc-secret-value"), None).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let mut cfg = authlib_settings(&client);
    cfg.flow = Some(Flow::ClientCredentials);
    cfg.scopes = Some(vec!["smtp".into()]);
    let acct = account(ProviderId::Generic, "app@example.test", cfg);
    // Without the secret: a configuration error naming where it goes.
    let err = login("app", &acct, &store, &headless(), &no_prompt, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    assert!(err.to_string().contains("app/client-secret"), "{err}");
    store
        .set(
            &client_secret_key("app"),
            &SecretString::from("cc-secret-value"),
        )
        .await
        .unwrap();
    let tokens = login("app", &acct, &store, &headless(), &no_prompt, None)
        .await
        .unwrap();
    assert!(tokens.refresh_token.is_none());
    let m = TokenManager::new(dir.path().to_path_buf());
    m.access_token("app", &acct, &store, true).await.unwrap();
    assert_eq!(count(&client, "client_credentials").await, 2);
    // A wrong secret is refused and explained (a new process reads it).
    store
        .set(
            &client_secret_key("app"),
            &SecretString::from("cc-WRONG-x9Q"),
        )
        .await
        .unwrap();
    let m = TokenManager::new(dir.path().to_path_buf());
    let err = m
        .access_token("app", &acct, &store, true)
        .await
        .unwrap_err();
    assert_eq!(err.oauth().unwrap().error, "invalid_client");
    assert_eq!(explain(&err, &Context::default()).id, "invalid-client");
    assert!(!format!("{err} {err:?}").contains("x9Q"), "{err:?}");
}
