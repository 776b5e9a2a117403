//! Authorization code + PKCE with the loopback redirect, and the pasted
//! redirect of `--manual`.

use std::sync::Mutex;
use std::time::Duration;

use postie::ErrorKind;
use postie::explain::{Context, explain};
use postie::oauth::{LoginOptions, LoginPrompt, TokenSet, login};
use postie::provider::ProviderId;
use secrecy::ExposeSecret;

use crate::support::*;

#[tokio::test]
async fn pkce_login_end_to_end_through_the_loopback_listener() {
    let Fresh {
        client,
        dir: _dir,
        store,
        acct,
    } = fresh(ProviderId::Gmail, "alice@example.test").await;
    let seen = Mutex::new(None::<String>);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let prompt = |p: &LoginPrompt| {
        if let LoginPrompt::OpenUrl {
            url,
            browser_opened,
        } = p
        {
            assert!(!browser_opened, "open_browser was off");
            *seen.lock().unwrap() = Some(url.clone());
            tx.send(url.clone()).unwrap();
        }
    };
    let follow = async {
        let url = rx.recv().await.unwrap();
        let r = browser().get(url).send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let opts = headless();
    let (tokens, (status, page)) =
        tokio::join!(login("work", &acct, &store, &opts, &prompt, None), follow);
    let tokens = tokens.unwrap();
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Signed in") && page.contains("work"),
        "{page}"
    );

    // What was asked: PKCE S256, a loopback redirect, Google's offline access.
    let url = url::Url::parse(seen.lock().unwrap().as_deref().unwrap()).unwrap();
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["scope"], "https://mail.google.com/");
    assert!(q["redirect_uri"].starts_with("http://127.0.0.1:"), "{q:?}");
    assert!(q["state"].len() >= 16);

    // What was kept: both tokens, stored, and the access token is live.
    assert!(tokens.refresh_token.is_some() && tokens.expires_at.is_some());
    let stored = TokenSet::load(&store, "work").await.unwrap().unwrap();
    assert_eq!(
        stored.access_token.expose_secret(),
        tokens.access_token.expose_secret()
    );
    let info = active(tokens.access_token.expose_secret()).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sub"], "alice@example.test");
    assert_eq!(count(&client, "authorization_code").await, 1);
}

#[tokio::test]
async fn an_answer_with_the_wrong_state_is_refused_and_the_login_keeps_waiting() {
    let Fresh {
        client: _,
        dir: _dir,
        store,
        acct,
    } = fresh(ProviderId::Generic, "a@example.test").await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let prompt = move |p: &LoginPrompt| {
        if let LoginPrompt::OpenUrl { url, .. } = p {
            tx.send(url.clone()).unwrap();
        }
    };
    let follow = async {
        let url = rx.recv().await.unwrap();
        // Another sign-in's answer: same listener, other state.
        let forged = with_param(&url, "state", "forged-state");
        let bad = browser().get(forged).send().await.unwrap();
        let bad = (bad.status().as_u16(), bad.text().await.unwrap());
        let good = browser().get(url).send().await.unwrap();
        (bad, good.status().as_u16())
    };
    let opts = headless();
    let (tokens, ((bad_status, bad_page), good_status)) =
        tokio::join!(login("w", &acct, &store, &opts, &prompt, None), follow);
    assert_eq!(bad_status, 400);
    assert!(bad_page.contains("does not match"), "{bad_page}");
    assert!(bad_page.contains("still waiting"), "{bad_page}");
    assert_eq!(good_status, 200);
    tokens.unwrap();
}

#[tokio::test]
async fn only_wrong_states_end_in_a_timeout_that_says_so() {
    let Fresh {
        client: _,
        dir: _dir,
        store,
        acct,
    } = fresh(ProviderId::Generic, "a@example.test").await;
    let opts = LoginOptions {
        timeout: Duration::from_secs(3),
        ..headless()
    };
    let (r, page) = browser_login("w", &acct, &store, &opts, |u| {
        with_param(u, "state", "other")
    })
    .await;
    let (status, page) = page.unwrap();
    assert_eq!(status, 400, "{page}");
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Transient);
    let msg = err.to_string();
    assert!(
        msg.contains("1 answer(s) with a state that did not match"),
        "{msg}"
    );
    assert!(msg.contains(&sign_in("w")), "{msg}");
    assert!(TokenSet::load(&store, "w").await.unwrap().is_none());
}

#[tokio::test]
async fn denied_consent_is_shown_in_the_browser_and_explained() {
    let Fresh {
        client,
        dir: _dir,
        store,
        acct,
    } = fresh(ProviderId::Gmail, "a@example.test").await;
    let (r, page) = browser_login("work", &acct, &store, &headless(), |u| {
        format!("{u}&test_deny=1")
    })
    .await;
    let (status, page) = page.unwrap();
    assert_eq!(status, 400);
    assert!(
        page.contains("Sign-in failed") && page.contains("access_denied"),
        "{page}"
    );
    let err = r.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Credentials);
    assert_eq!(err.oauth().unwrap().error, "access_denied");
    let ctx = Context {
        provider: Some(ProviderId::Gmail),
        account: Some("work"),
        host: None,
    };
    let x = explain(&err, &ctx);
    assert_eq!(x.id, "access-denied");
    assert!(x.fix.iter().any(|f| f.contains(&sign_in("work"))), "{x:?}");
    assert!(x.causes.iter().any(|c| c.contains("test users")), "{x:?}");
    assert_eq!(count(&client, "authorization_code").await, 0);
}

/// The code exchange itself refused (a code used twice, expired, or made
/// for another redirect): explained as such, not as a revoked grant.
#[tokio::test]
async fn a_refused_code_is_explained() {
    let Fresh {
        client,
        dir: _dir,
        store,
        acct,
    } = fresh(ProviderId::Generic, "a@example.test").await;
    fail_next(
        &client,
        400,
        "invalid_grant",
        "Invalid \"code\" in request.",
        1,
    )
    .await;
    let (r, _page) = browser_login("work", &acct, &store, &headless(), str::to_string).await;
    let err = r.unwrap_err();
    assert_eq!(err.oauth().unwrap().error, "invalid_grant");
    let ctx = Context {
        provider: Some(ProviderId::Generic),
        account: Some("work"),
        host: None,
    };
    let x = explain(&err, &ctx);
    assert_eq!(x.id, "code-refused", "{x:?}");
    assert!(x.fix.iter().any(|f| f.contains(&sign_in("work"))), "{x:?}");
    assert!(TokenSet::load(&store, "work").await.unwrap().is_none());
}

/// `--manual`: nothing listens; the user pastes the address the browser
/// was sent to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_login_takes_the_pasted_redirect() {
    let Fresh {
        client: _,
        dir: _dir,
        store,
        acct,
    } = fresh(ProviderId::Outlook, "a@example.test").await;
    let url = Mutex::new(String::new());
    let prompt = |p: &LoginPrompt| match p {
        LoginPrompt::PasteRedirect { url: u } => *url.lock().unwrap() = u.clone(),
        other => panic!("unexpected prompt {other:?}"),
    };
    // The "user": opens the URL elsewhere and copies where the browser ended.
    let paste = || -> postie::error::Result<String> {
        let u = url.lock().unwrap().clone();
        let location = std::thread::spawn(move || {
            tokio::runtime::Runtime::new().unwrap().block_on(async {
                let c = reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .unwrap();
                let r = c.get(u).send().await.unwrap();
                r.headers()["location"].to_str().unwrap().to_string()
            })
        })
        .join()
        .unwrap();
        Ok(format!("  {location}\n"))
    };
    let opts = LoginOptions {
        manual: true,
        ..headless()
    };
    let tokens = login("m", &acct, &store, &opts, &prompt, Some(&paste))
        .await
        .unwrap();
    let q = url.lock().unwrap().clone();
    assert!(
        q.contains("scope=https%3A%2F%2Foutlook.office.com%2FSMTP.Send+offline_access"),
        "{q}"
    );
    assert!(!q.contains("access_type"), "Google-only parameters: {q}");
    assert!(tokens.refresh_token.is_some());
    let bad = || -> postie::error::Result<String> { Ok("http://127.0.0.1:1/?nothing=here".into()) };
    let err = login("m", &acct, &store, &opts, &prompt, Some(&bad))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no code="), "{err}");
}

/// A sign-in saves its tokens under the account's token lock: while another
/// process refreshes (here: the lock held), the new tokens wait, so the
/// refresh cannot write the old grant's tokens over them.
#[tokio::test]
async fn a_sign_in_waits_for_a_refresh_in_progress() {
    let Fresh {
        client: _,
        dir,
        store,
        acct,
    } = fresh(ProviderId::Generic, "a@example.test").await;
    let held = postie::oauth::TokenManager::new(dir.path().to_path_buf())
        .lock("w", &store)
        .await
        .unwrap();
    let opts = LoginOptions {
        lock_dir: Some(dir.path().to_path_buf()),
        ..headless()
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let sign_in = async {
        let r = browser_login("w", &acct, &store, &opts, str::to_string).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        r
    };
    let release = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let finished_while_held = done.load(std::sync::atomic::Ordering::SeqCst);
        let saved_while_held = TokenSet::load(&store, "w").await.unwrap().is_some();
        drop(held);
        (finished_while_held, saved_while_held)
    };
    let ((r, page), (finished, saved)) = tokio::join!(sign_in, release);
    assert!(!finished && !saved, "the sign-in did not wait for the lock");
    r.unwrap_or_else(|e| panic!("{e}; page: {page:?}"));
    assert!(TokenSet::load(&store, "w").await.unwrap().is_some());
}
