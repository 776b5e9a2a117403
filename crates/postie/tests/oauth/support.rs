//! Plumbing for the OAuth tests: the peers' env file, per-test clients on
//! the Authlib server (so injected failures, counters and token lifetimes
//! of one test never touch another), stores, accounts, and a "browser" that
//! follows the authorization redirect to postie's loopback listener.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use postie::config::AccountConfig;
use postie::oauth::{LoginOptions, LoginPrompt, OAuthConfig, TokenSet, login};
use postie::provider::{AuthMethod, ProviderId};
use postie::secret::{SecretStore, Secrets};
use serde_json::Value;

/// The peers' settings; fails (never skips) when they are not running.
pub fn peers() -> &'static HashMap<String, String> {
    static ENV: OnceLock<HashMap<String, String>> = OnceLock::new();
    ENV.get_or_init(|| {
        let dir = std::env::var_os("MAIL_PEERS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/tmp/postie-test-peers"));
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read the test peers' env file {}: {e}\nThe OAuth tests talk to the \
                 Authlib authorization server and oauth2-mock-server on 127.0.0.1. Run them with \
                 `ci/test.sh`, or start the peers with `ci/mail-peers.sh start` and export \
                 MAIL_PEERS_DIR.",
                file.display()
            )
        });
        text.split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    })
}

fn get(key: &str) -> String {
    peers()
        .get(key)
        .unwrap_or_else(|| panic!("{key} is missing from the peers' env file"))
        .clone()
}

/// The Authlib server, `http://127.0.0.1:PORT`.
pub fn authlib() -> String {
    get("OAUTH_AS")
}

/// oauth2-mock-server, `http://127.0.0.1:PORT`.
pub fn mock() -> String {
    get("OAUTH_MOCK")
}

/// A name unique to this test run.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{prefix}-{}-{}-{nanos}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A plain HTTP client; follows redirects like a browser.
pub fn browser() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn post(path: &str, form: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", authlib()))
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("the Authlib server does not answer {path}: {e}"))
}

/// Register a client of our own at the Authlib server.
pub async fn register_client(secret: Option<&str>, expires_in: Option<u64>) -> String {
    let id = unique("client");
    let exp = expires_in.map(|e| e.to_string()).unwrap_or_default();
    let r = post(
        "/_test/client",
        &[
            ("client_id", &id),
            ("secret", secret.unwrap_or("")),
            ("expires_in", &exp),
        ],
    )
    .await;
    assert!(r.status().is_success(), "register client: {}", r.status());
    id
}

/// Make the next `count` token requests of `client` fail.
pub async fn fail_next(client: &str, status: u16, error: &str, description: &str, count: u32) {
    let r = post(
        "/_test/fail_next",
        &[
            ("client_id", client),
            ("status", &status.to_string()),
            ("error", error),
            ("error_description", description),
            ("count", &count.to_string()),
        ],
    )
    .await;
    assert!(r.status().is_success());
}

/// Token requests of `client` per grant type, and its device-code poll times.
pub async fn stats(client: &str) -> Value {
    browser()
        .get(format!("{}/_test/stats?client_id={client}", authlib()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Requests of one grant type counted for `client`.
pub async fn count(client: &str, grant: &str) -> u64 {
    stats(client).await["token"][grant].as_u64().unwrap_or(0)
}

/// A new Google-style service-account key registered at the Authlib server.
pub async fn service_account_key() -> Value {
    post("/_test/service_account", &[])
        .await
        .json()
        .await
        .unwrap()
}

/// Approve (or deny) a device code as the user would.
pub async fn device_decision(user_code: &str, approve: bool) {
    let action = if approve { "approve" } else { "deny" };
    let r = post("/device", &[("user_code", user_code), ("action", action)]).await;
    assert!(r.status().is_success(), "device page: {}", r.status());
}

/// Is the token active at the Authlib server (RFC 7662)?
pub async fn active(token: &str) -> Value {
    post("/introspect", &[("token", token)])
        .await
        .json()
        .await
        .unwrap()
}

/// The raw refresh grant, bypassing postie (to replay an old token).
pub async fn raw_refresh(client: &str, refresh_token: &str) -> (u16, Value) {
    let r = post(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client),
        ],
    )
    .await;
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// How the library words a sign-in of `account` (its errors and
/// explanations name that action).
pub fn sign_in(account: &str) -> String {
    postie::explain::say(&postie::explain::Action::SignIn {
        account: Some(account.to_string()),
    })
}

/// A secret store in file mode under `dir`.
pub fn store(dir: &Path) -> Secrets {
    Secrets::from(SecretStore::file(
        dir.join("secrets.enc"),
        Box::new(|| Ok("test passphrase".into())),
    ))
}

/// OAuth settings pointing every endpoint at the Authlib server.
pub fn authlib_settings(client_id: &str) -> OAuthConfig {
    let a = authlib();
    OAuthConfig {
        client_id: client_id.into(),
        authorization_endpoint: Some(format!("{a}/authorize")),
        token_endpoint: Some(format!("{a}/token")),
        device_authorization_endpoint: Some(format!("{a}/device_authorization")),
        revocation_endpoint: Some(format!("{a}/revoke")),
        ..OAuthConfig::default()
    }
}

/// An OAuth account of `provider` for `email`.
pub fn account(provider: ProviderId, email: &str, oauth: OAuthConfig) -> AccountConfig {
    AccountConfig {
        provider,
        email: email.into(),
        auth: AuthMethod::Oauth,
        user: None,
        host: None,
        port: None,
        tls: None,
        ca_file: None,
        tls_name: None,
        password_env: None,
        password_command: None,
        oauth: Some(oauth),
        auth_mechanism: None,
        limits: None,
        transport: Default::default(),
        api_url: None,
        timeout: None,
    }
}

/// Options for a loopback sign-in driven by a test (no real browser).
pub fn headless() -> LoginOptions {
    LoginOptions {
        open_browser: false,
        timeout: Duration::from_secs(30),
        ..LoginOptions::default()
    }
}

/// The URL with one query parameter replaced (or added).
pub fn with_param(url: &str, key: &str, value: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let pairs: Vec<(String, String)> = u
        .query_pairs()
        .into_owned()
        .filter(|(k, _)| k != key)
        .chain([(key.to_string(), value.to_string())])
        .collect();
    u.query_pairs_mut().clear().extend_pairs(pairs);
    u.to_string()
}

/// Sign in with the loopback flow, the "browser" being a plain HTTP client
/// that GETs the authorization URL (changed by `edit`) and follows the
/// redirect to postie's listener. Returns the result and the page shown.
pub async fn browser_login(
    name: &str,
    acct: &AccountConfig,
    store: &Secrets,
    opts: &LoginOptions,
    edit: impl Fn(&str) -> String,
) -> (postie::error::Result<TokenSet>, Option<(u16, String)>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let prompt = move |p: &LoginPrompt| {
        if let LoginPrompt::OpenUrl { url, .. } = p {
            let _ = tx.send(url.clone());
        }
    };
    let follow = async {
        let url = rx.recv().await?;
        let r = browser().get(edit(&url)).send().await.ok()?;
        let status = r.status().as_u16();
        Some((status, r.text().await.unwrap_or_default()))
    };
    tokio::join!(login(name, acct, store, opts, &prompt, None), follow)
}

/// A new public client at the Authlib server, an empty secret store and an
/// account of `provider` for it (not signed in).
pub struct Fresh {
    pub client: String,
    pub dir: tempfile::TempDir,
    pub store: Secrets,
    pub acct: AccountConfig,
}

pub async fn fresh(provider: ProviderId, email: &str) -> Fresh {
    let client = register_client(None, None).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let acct = account(provider, email, authlib_settings(&client));
    Fresh {
        client,
        dir,
        store,
        acct,
    }
}

/// An account signed in at the Authlib server with a client of its own.
pub struct SignedIn {
    pub name: String,
    pub client: String,
    pub acct: AccountConfig,
    pub dir: tempfile::TempDir,
    pub store: std::sync::Arc<Secrets>,
    pub tokens: TokenSet,
}

/// Sign in a fresh Gmail-like account (Google endpoints replaced by the
/// Authlib server's) whose tokens live `expires_in` seconds.
pub async fn signed_in(expires_in: Option<u64>) -> SignedIn {
    let client = register_client(None, expires_in).await;
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path());
    let name = unique("acct");
    let acct = account(
        ProviderId::Gmail,
        "alice@example.test",
        authlib_settings(&client),
    );
    let (tokens, page) = browser_login(&name, &acct, &store, &headless(), str::to_string).await;
    let tokens = tokens.unwrap_or_else(|e| panic!("login failed: {e}; page: {page:?}"));
    SignedIn {
        name,
        client,
        acct,
        dir,
        store: std::sync::Arc::new(store),
        tokens,
    }
}
