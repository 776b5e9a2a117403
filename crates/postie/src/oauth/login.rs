//! `postie login`: obtain an account's first tokens with the flow its
//! settings name, and store them.

use std::time::{Duration, Instant};

use super::client::{OAuthClient, Step};
use super::endpoints::resolve;
use super::http::Http;
use super::loopback::{Answer, Listener, NotUsable, parse_answer, query_of};
use super::service_account::ServiceAccountKey;
use super::{Flow, TokenSet, browser, client_secret, settings};
use crate::config::AccountConfig;
use crate::error::{Error, ErrorKind, Result};
use crate::secret::Secrets;
use crate::wording::{Action, Setting, say, say_setting};

/// How `login` runs.
#[derive(Clone, Debug)]
pub struct LoginOptions {
    /// Try to open the browser at the authorization URL.
    pub open_browser: bool,
    /// Do not listen: show the URL and read the address the browser ended
    /// on, pasted by the user (a browser on another machine).
    pub manual: bool,
    /// Use the device flow whatever the account's `flow` says.
    pub device: bool,
    /// Listen on this loopback port instead of a free one.
    pub port: Option<u16>,
    /// How long to wait for the user.
    pub timeout: Duration,
    /// postie's data directory: when given, the new tokens are saved under
    /// the account's token lock, so a refresh running in another process
    /// (the relay) cannot write the old grant's tokens over them.
    pub lock_dir: Option<std::path::PathBuf>,
}

impl Default for LoginOptions {
    fn default() -> LoginOptions {
        LoginOptions {
            open_browser: true,
            manual: false,
            device: false,
            port: None,
            timeout: Duration::from_secs(300),
            lock_dir: None,
        }
    }
}

/// What the user must be told during a sign-in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoginPrompt {
    /// Open this URL in a browser (always shown: the machine may have none).
    OpenUrl {
        /// The authorization URL.
        url: String,
        /// True when a browser command was started with it.
        browser_opened: bool,
    },
    /// Enter `user_code` at `verification_uri` on any device.
    DeviceCode {
        /// Where to enter the code.
        verification_uri: String,
        /// The same with the code filled in, when the server offers it.
        verification_uri_complete: Option<String>,
        /// The code to enter.
        user_code: String,
        /// How long the code stays valid.
        expires_in: Duration,
    },
    /// Open this URL, sign in, then paste the address the browser ends on
    /// (it fails to load; that is expected).
    PasteRedirect {
        /// The authorization URL.
        url: String,
    },
}

/// Sign account `name` in and store its tokens under `NAME/oauth`.
///
/// The flow is the device flow when `opts.device` is set, else the
/// account's `flow` (authorization code by default). `prompt` is called
/// (from the async task, once per flow) with what the user must see;
/// `read_pasted_url` is needed only with `opts.manual` and may block.
pub async fn login(
    name: &str,
    acct: &AccountConfig,
    store: &Secrets,
    opts: &LoginOptions,
    prompt: &(dyn Fn(&LoginPrompt) + Send + Sync),
    read_pasted_url: Option<&(dyn Fn() -> Result<String> + Send + Sync)>,
) -> Result<TokenSet> {
    let cfg = settings(name, acct)?;
    let http = Http::new()?;
    let endpoints = resolve(&http, acct.provider, cfg).await?;
    let secret = client_secret(name, cfg, store).await?;
    let client = OAuthClient::new(name, acct.provider, cfg, endpoints, secret, http)?;
    let flow = if opts.device {
        Flow::Device
    } else {
        cfg.flow.unwrap_or_default()
    };
    let deadline = Instant::now() + opts.timeout;
    let tokens = match flow {
        Flow::AuthCode if opts.manual => {
            let read = read_pasted_url.ok_or_else(|| {
                Error::new(
                    ErrorKind::Usage,
                    format!(
                        "{} needs a way to read the pasted address",
                        say_setting(Setting::ManualSignIn)
                    ),
                )
            })?;
            manual(name, &client, opts, prompt, read).await?
        }
        Flow::AuthCode => loopback(name, &client, opts, prompt, deadline).await?,
        Flow::Device => device(name, &client, prompt, deadline).await?,
        Flow::ServiceAccount => {
            let path = cfg.service_account_key.as_ref().ok_or_else(|| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "flow \"service-account\" needs `service_account_key = \"/path/key.json\"` \
                         in [accounts.{name}.oauth]"
                    ),
                )
            })?;
            let path = path.clone();
            let key = crate::blocking::unblock(move || ServiceAccountKey::read(&path)).await?;
            client
                .jwt_bearer(&key, &acct.email, cfg.token_endpoint.is_some())
                .await?
        }
        Flow::ClientCredentials => client.client_credentials().await?,
    };
    // A sign-in replaces what was stored: an older grant's refresh token
    // may be another user's, another scope's, or revoked.
    if tokens.refresh_token.is_none() && !flow.is_app_only() {
        tracing::warn!(
            account = name,
            "the server issued no refresh token: the access token cannot be renewed without \
             signing in again (Microsoft needs the offline_access scope)"
        );
    }
    let _lock = match &opts.lock_dir {
        Some(dir) => Some(super::manager::lock_account(dir, name, store).await?),
        None => None,
    };
    tokens.save(store, name).await?;
    Ok(tokens)
}

async fn loopback(
    name: &str,
    client: &OAuthClient,
    opts: &LoginOptions,
    prompt: &(dyn Fn(&LoginPrompt) + Send + Sync),
    deadline: Instant,
) -> Result<TokenSet> {
    let listener = Listener::bind(opts.port).await?;
    let auth = client.authorize(&listener.redirect_uri())?;
    let browser_opened = opts.open_browser && browser::open(&auth.url);
    prompt(&LoginPrompt::OpenUrl {
        url: auth.url.clone(),
        browser_opened,
    });
    listener
        .wait(&auth.state, deadline, name, |answer| async {
            match answer {
                Answer::Code(code) => client.exchange_code(&code, &auth).await,
                Answer::Refused(info) => Err(client.refused(info, Step::SignIn)),
            }
        })
        .await
}

async fn manual(
    name: &str,
    client: &OAuthClient,
    opts: &LoginOptions,
    prompt: &(dyn Fn(&LoginPrompt) + Send + Sync),
    read: &(dyn Fn() -> Result<String> + Send + Sync),
) -> Result<TokenSet> {
    // The redirect must still name a loopback address the server accepts;
    // nothing listens there, the user copies the address from the browser.
    let port = match opts.port {
        Some(p) => p,
        None => Listener::bind(None).await?.port(),
    };
    let auth = client.authorize(&format!("http://127.0.0.1:{port}/"))?;
    prompt(&LoginPrompt::PasteRedirect {
        url: auth.url.clone(),
    });
    let pasted = read()?;
    match parse_answer(&query_of(&pasted), &auth.state) {
        Ok(Answer::Code(code)) => client.exchange_code(&code, &auth).await,
        Ok(Answer::Refused(info)) => Err(client.refused(info, Step::SignIn)),
        Err(NotUsable::NoAnswer) => Err(Error::new(
            ErrorKind::Usage,
            format!(
                "the pasted text is not the address the browser was sent back to (it has no \
                 code= or error=); run {} again and paste the whole address from the browser's \
                 address bar",
                say(&Action::SignInManually {
                    account: name.to_string()
                })
            ),
        )),
        Err(NotUsable::WrongState) => Err(Error::new(
            ErrorKind::Usage,
            format!(
                "the pasted address belongs to another sign-in (its state does not match): run \
                 {} again and use the new link",
                say(&Action::SignInManually {
                    account: name.to_string()
                })
            ),
        )),
    }
}

async fn device(
    name: &str,
    client: &OAuthClient,
    prompt: &(dyn Fn(&LoginPrompt) + Send + Sync),
    deadline: Instant,
) -> Result<TokenSet> {
    if !client.endpoints.supports_device {
        let why = client
            .endpoints
            .device_unsupported
            .clone()
            .unwrap_or_default()
            .replace("NAME", name);
        return Err(Error::new(
            ErrorKind::Config,
            format!("the device sign-in cannot be used for '{name}': {why}"),
        ));
    }
    let d = client.device_start().await?;
    // Tell the user how long the wait really is: the code's life, or less
    // when the caller's time runs out first.
    let deadline = deadline.min(Instant::now() + d.expires_in());
    prompt(&LoginPrompt::DeviceCode {
        verification_uri: d.verification_uri().to_string(),
        verification_uri_complete: d
            .verification_uri_complete()
            .map(|u| u.secret().to_string()),
        user_code: d.user_code().secret().to_string(),
        expires_in: deadline.saturating_duration_since(Instant::now()),
    });
    client.device_poll(&d, deadline).await
}
