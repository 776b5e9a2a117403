//! Device authorization (RFC 8628): polling at the server's interval,
//! `slow_down`, denial, expiry, and Google's refusal of the Gmail scope.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use postie::ErrorKind;
use postie::explain::{Context, explain};
use postie::oauth::{LoginOptions, LoginPrompt, TokenSet, login};
use postie::provider::ProviderId;
use tokio::sync::oneshot;

use crate::support::*;

fn device_opts(timeout: Duration) -> LoginOptions {
    LoginOptions {
        device: true,
        timeout,
        ..headless()
    }
}

/// Run a device login for a new client; `user` receives the user code
/// shown and plays the user. Returns the result and the client.
async fn device_login<F, Fut>(
    provider: ProviderId,
    timeout: Duration,
    before: impl AsyncFnOnce(&str),
    user: F,
) -> (postie::error::Result<TokenSet>, String)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let client = register_client(None, None).await;
    before(&client).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(provider, "alice@example.test", authlib_settings(&client));
    let (tx, rx) = oneshot::channel::<String>();
    let tx = Mutex::new(Some(tx));
    let verification = authlib() + "/device";
    let prompt = move |p: &LoginPrompt| match p {
        LoginPrompt::DeviceCode {
            verification_uri,
            user_code,
            expires_in,
            ..
        } => {
            assert_eq!(verification_uri, &verification);
            assert!(*expires_in > Duration::ZERO);
            if let Some(tx) = tx.lock().unwrap().take() {
                tx.send(user_code.clone()).unwrap();
            }
        }
        other => panic!("unexpected prompt {other:?}"),
    };
    let play = async {
        if let Ok(code) = rx.await {
            user(code).await;
        }
    };
    let opts = device_opts(timeout);
    let (r, ()) = tokio::join!(login("dev", &acct, &store, &opts, &prompt, None), play);
    (r, client)
}

async fn polls(client: &str) -> Vec<f64> {
    stats(client).await["device_polls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn pending_until_approved_polling_at_the_interval() {
    let (r, client) = device_login(
        ProviderId::Office365,
        Duration::from_secs(60),
        async |_| {},
        |code| async move {
            tokio::time::sleep(Duration::from_millis(2500)).await;
            device_decision(&code, true).await;
        },
    )
    .await;
    let tokens = r.unwrap();
    assert!(tokens.refresh_token.is_some());
    let t = polls(&client).await;
    assert!(t.len() >= 2, "polled {t:?}");
    for w in t.windows(2) {
        assert!(w[1] - w[0] >= 0.9, "polled faster than the interval: {t:?}");
    }
}

#[tokio::test]
async fn slow_down_adds_five_seconds_to_the_interval() {
    let started = Instant::now();
    let (r, client) = device_login(
        ProviderId::Office365,
        Duration::from_secs(60),
        async |c| fail_next(c, 400, "slow_down", "", 1).await,
        |code| async move { device_decision(&code, true).await },
    )
    .await;
    r.unwrap();
    let t = polls(&client).await;
    assert_eq!(t.len(), 2, "one slow_down, then the token: {t:?}");
    let gap = t[1] - t[0];
    assert!(
        (5.5..9.0).contains(&gap),
        "interval after slow_down: {gap} s"
    );
    assert!(started.elapsed() >= Duration::from_secs(6));
}

#[tokio::test]
async fn a_denied_device_code_is_explained() {
    let (r, _) = device_login(
        ProviderId::Office365,
        Duration::from_secs(60),
        async |_| {},
        |code| async move { device_decision(&code, false).await },
    )
    .await;
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert_eq!(err.oauth().unwrap().error, "access_denied");
    let x = explain(
        &err,
        &Context {
            provider: Some(ProviderId::Office365),
            account: Some("dev"),
            host: None,
        },
    );
    assert_eq!(x.id, "access-denied");
    assert!(x.fix.iter().any(|f| f.contains(&sign_in("dev"))), "{x:?}");
}

#[tokio::test]
async fn a_code_not_approved_in_time_expires() {
    let started = Instant::now();
    let (r, _) = device_login(
        ProviderId::Generic,
        Duration::from_secs(3),
        async |_| {},
        |_| async {},
    )
    .await;
    let err = r.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(err.oauth().unwrap().error, "expired_token");
    let x = explain(&err, &Context::default());
    assert_eq!(x.id, "expired-token");
    assert!(
        matches!(
            x.actions.as_slice(),
            [postie::explain::Action::SignInWithDevice { .. }]
        ),
        "{x:?}"
    );
}

#[tokio::test]
async fn google_refuses_the_device_flow_for_the_gmail_scope() {
    let client = register_client(None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(
        ProviderId::Gmail,
        "a@example.test",
        authlib_settings(&client),
    );
    let prompt = |p: &LoginPrompt| panic!("nothing to show: {p:?}");
    let opts = device_opts(Duration::from_secs(5));
    let err = login("g", &acct, &store, &opts, &prompt, None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Config);
    let msg = err.to_string();
    assert!(
        msg.contains("https://mail.google.com/") && msg.contains(&sign_in("g")),
        "{msg}"
    );
    assert_eq!(stats(&client).await["token"], serde_json::json!({}));
}
