//! No token, code or client secret in any `Debug`, `Display`, error, log
//! line (at TRACE), browser page or file postie writes; and `logout`.

use std::io::Write;
use std::sync::{Arc, Mutex};

use postie::ErrorKind;
use postie::oauth::{
    LoginPrompt, OAuthConfig, TokenManager, TokenSet, client_secret_key, login, logout,
    logout_report,
};
use postie::provider::ProviderId;
use secrecy::{ExposeSecret, SecretString};

use crate::support::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn secrets_appear_in_no_output_log_page_or_file() {
    // A process-wide subscriber: a thread-scoped one can miss events whose
    // callsite another test thread registered first. Other tests' events
    // land here too, which only widens the check.
    let logs = Captured::default();
    let sink = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("only this test sets one");

    const CLIENT_SECRET: &str = "cs-7f3a-visible-if-leaked";
    let client = register_client(Some(CLIENT_SECRET), Some(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    store
        .set(&client_secret_key("s"), &SecretString::from(CLIENT_SECRET))
        .await
        .unwrap();
    let acct = account(
        ProviderId::Gmail,
        "a@example.test",
        authlib_settings(&client),
    );

    // Drive the redirect by hand to learn the code and see the page.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let prompt = move |p: &LoginPrompt| {
        if let LoginPrompt::OpenUrl { url, .. } = p {
            tx.send(url.clone()).unwrap();
        }
    };
    let hop = async {
        let url = rx.recv().await.unwrap();
        let manual = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let r = manual.get(url).send().await.unwrap();
        let location = r.headers()["location"].to_str().unwrap().to_string();
        let code = url::Url::parse(&location)
            .unwrap()
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let page = manual
            .get(location)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        (code, page)
    };
    let opts = headless();
    let (tokens, (code, page)) = tokio::join!(login("s", &acct, &store, &opts, &prompt, None), hop);
    let tokens = tokens.unwrap();
    assert!(page.contains("Signed in"));

    let m = TokenManager::new(dir.path().to_path_buf());
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, refreshed) = m.access_token("s", &acct, &store, false).await.unwrap();
    fail_next(&client, 503, "temporarily_unavailable", "", 1).await;
    fail_next(
        &client,
        400,
        "invalid_grant",
        "Token has been expired or revoked.",
        1,
    )
    .await;
    let err = m.access_token("s", &acct, &store, true).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);

    let mut secrets = vec![
        CLIENT_SECRET.to_string(),
        code,
        tokens.access_token.expose_secret().to_string(),
        tokens
            .refresh_token
            .clone()
            .unwrap()
            .expose_secret()
            .to_string(),
        refreshed.access_token.expose_secret().to_string(),
        refreshed
            .refresh_token
            .clone()
            .unwrap()
            .expose_secret()
            .to_string(),
    ];
    // The client secret also travels as HTTP Basic credentials.
    secrets.push(base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{client}:{CLIENT_SECRET}"),
    ));
    secrets.dedup();
    let file = std::fs::read(dir.path().join("secrets.enc")).unwrap();
    let shown = [
        format!("{tokens:?}"),
        format!("{refreshed:?}"),
        format!("{err} {err:?}"),
        format!("{m:?} {acct:?} {store:?}"),
        page,
        logs.text(),
        String::from_utf8_lossy(&file).into_owned(),
    ];
    assert!(logs.text().contains("retrying"), "the 503 retry is logged");
    for s in &secrets {
        for (i, out) in shown.iter().enumerate() {
            assert!(
                !out.contains(s.as_str()),
                "secret found in output #{i}: {out}"
            );
        }
    }
    let on_disk: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(
        on_disk.iter().any(|f| f.starts_with("oauth-s")),
        "{on_disk:?}"
    );
}

#[tokio::test]
async fn logout_revokes_at_the_server_and_deletes() {
    let s = signed_in(None).await;
    let at = s.tokens.access_token.expose_secret().to_string();
    assert_eq!(active(&at).await["active"], true);
    assert!(logout(&s.name, &s.acct, &s.store).await.unwrap());
    assert_eq!(active(&at).await["active"], false);
    let rt = s.tokens.refresh_token.clone().unwrap();
    let (status, _) = raw_refresh(&s.client, rt.expose_secret()).await;
    assert_eq!(status, 400, "the refresh token is revoked too");
    assert!(TokenSet::load(&s.store, &s.name).await.unwrap().is_none());
    let again = logout_report(&s.name, &s.acct, &s.store).await.unwrap();
    assert!(!again.revoked && !again.deleted, "{again:?}");
}

#[tokio::test]
async fn logout_deletes_even_when_the_server_cannot_revoke() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let ts = TokenSet {
        access_token: SecretString::from("at"),
        expires_at: None,
        refresh_token: Some(SecretString::from("rt")),
        scope: None,
        refresh_token_issued_at: None,
        issued_at: None,
    };
    // Microsoft has no revocation endpoint.
    let ms = account(
        ProviderId::Office365,
        "a@example.test",
        OAuthConfig {
            client_id: "x".into(),
            ..OAuthConfig::default()
        },
    );
    ts.save(&store, "ms").await.unwrap();
    let r = logout_report("ms", &ms, &store).await.unwrap();
    assert!(!r.revoked && r.deleted, "{r:?}");
    assert!(
        r.note
            .unwrap()
            .contains("Microsoft offers no revocation endpoint")
    );
    // A revocation endpoint that does not answer.
    let mut cfg = authlib_settings("x");
    cfg.revocation_endpoint = Some("http://127.0.0.1:9/revoke".into());
    let dead = account(ProviderId::Generic, "a@example.test", cfg);
    ts.save(&store, "dead").await.unwrap();
    let r = logout_report("dead", &dead, &store).await.unwrap();
    assert!(!r.revoked && r.deleted, "{r:?}");
    assert!(r.note.unwrap().contains("127.0.0.1:9"));
    assert!(TokenSet::load(&store, "dead").await.unwrap().is_none());
}
