//! `postie login`, `postie token`, `postie logout`: OAuth 2.0 sign-in and tokens.

use std::io::BufRead;
use std::time::{Duration, SystemTime};

use postie::config::{AccountConfig, Config};
use postie::error::{Error, ErrorKind};
use postie::explain::Context;
use postie::oauth::{LoginOptions, LoginPrompt, TokenManager, TokenSet};
use postie::provider::AuthMethod;
use postie::secret::Secrets;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{Global, secrets};
use crate::cli::LoginArgs;
use crate::output;

fn oauth_account<'c>(
    config: &'c Config,
    name: Option<&str>,
) -> Result<(&'c str, &'c AccountConfig), Error> {
    let (name, acct) = config.account(name)?;
    if acct.auth != AuthMethod::Oauth || acct.oauth.is_none() {
        return Err(Error::new(
            ErrorKind::Config,
            format!(
                "account '{name}' does not use OAuth 2.0 ({}): add it again with `postie account add {name} --provider {} --email {} --auth oauth --client-id ID`",
                acct.auth, acct.provider, acct.email
            ),
        ));
    }
    Ok((name, acct))
}

fn until(t: Option<SystemTime>) -> String {
    match t.and_then(|t| t.duration_since(SystemTime::now()).ok()) {
        Some(d) if d.as_secs() >= 120 => format!("for {} more minutes", d.as_secs() / 60),
        Some(d) => format!("for {} more seconds", d.as_secs()),
        None => "(no expiry given)".into(),
    }
}

fn fail(g: &Global, e: &Error, name: Option<&str>, acct: Option<&AccountConfig>) -> i32 {
    let ctx = Context {
        provider: acct.map(|a| a.provider),
        account: name,
        host: None,
    };
    output::print_error(&g.style, e, &ctx);
    output::exit_code(e.kind())
}

fn show_prompt(p: &LoginPrompt) {
    match p {
        LoginPrompt::OpenUrl {
            url,
            browser_opened,
        } => {
            if *browser_opened {
                eprintln!(
                    "A browser window was opened to sign in. If it did not appear, open this address:"
                );
            } else {
                eprintln!("Open this address in a browser to sign in:");
            }
            eprintln!("\n  {url}\n");
            eprintln!("Waiting for the browser to come back to postie...");
        }
        LoginPrompt::DeviceCode {
            verification_uri,
            verification_uri_complete,
            user_code,
            expires_in,
        } => {
            // The server's strings, escaped: they reach the terminal as they are.
            eprintln!(
                "On any device, open {} and enter the code:\n\n  {}\n",
                output::clean(verification_uri),
                output::clean(user_code)
            );
            if let Some(c) = verification_uri_complete {
                eprintln!("(or open {})", output::clean(c));
            }
            eprintln!(
                "The code expires in {} minutes. Waiting for you to approve...",
                expires_in.as_secs().div_ceil(60)
            );
        }
        LoginPrompt::PasteRedirect { url } => {
            eprintln!("Open this address in a browser (on any machine) and sign in:\n\n  {url}\n");
            eprintln!(
                "The browser then goes to an address starting with http://127.0.0.1 that may not load. \
                 Copy that whole address from the address bar and paste it here:"
            );
        }
    }
}

fn read_pasted() -> Result<String, Error> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot read the pasted address: {e}"),
        )
    })?;
    let line = line.trim().to_string();
    if line.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            "nothing was pasted: paste the full http://127.0.0.1... address the browser ended on",
        ));
    }
    Ok(line)
}

/// The OAuth account `name` (or the default one) and the secret store; on
/// failure the error is printed and its exit code returned.
async fn open_account(
    g: &Global,
    name: Option<&str>,
) -> Result<(String, AccountConfig, Secrets), i32> {
    let config = Config::load(&g.paths.config_file).map_err(|e| fail(g, &e, None, None))?;
    let (n, acct) = oauth_account(&config, name).map_err(|e| fail(g, &e, name, None))?;
    let store = secrets(&g.paths);
    store
        .store()
        .await
        .map_err(|e| fail(g, &e, Some(n), Some(acct)))?;
    Ok((n.to_string(), acct.clone(), store))
}

/// How long `postie login` waits without --timeout for the browser.
const BROWSER_WAIT: u64 = 300;
/// ... and at most for the device flow, whose code's own expiry (Microsoft:
/// 15 minutes) ends the wait first.
const DEVICE_WAIT: u64 = 3600;

/// `postie login`.
pub async fn login(g: &Global, a: LoginArgs) -> i32 {
    let (name, acct, store) = match open_account(g, a.account.as_deref()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (name, acct) = (name.as_str(), &acct);
    let device =
        a.device || acct.oauth.as_ref().and_then(|o| o.flow) == Some(postie::oauth::Flow::Device);
    let opts = LoginOptions {
        open_browser: !a.no_browser && !a.manual,
        manual: a.manual,
        device: a.device,
        port: a.port,
        timeout: a.timeout.unwrap_or(Duration::from_secs(if device {
            DEVICE_WAIT
        } else {
            BROWSER_WAIT
        })),
        lock_dir: Some(g.paths.data_dir.clone()),
    };
    let paste: &(dyn Fn() -> postie::error::Result<String> + Send + Sync) = &read_pasted;
    let result = postie::oauth::login(
        name,
        acct,
        &store,
        &opts,
        &show_prompt,
        if a.manual { Some(paste) } else { None },
    )
    .await;
    match result {
        Ok(ts) => {
            eprintln!(
                "{} signed in as {}; tokens stored in {}; the access token is valid {}.",
                g.style.good("ok:"),
                acct.login(),
                store.describe(),
                until(ts.expires_at)
            );
            if ts.refresh_token.is_none() {
                eprintln!(
                    "{} the provider returned no refresh token: you will have to run `postie login {name}` again when the access token expires.",
                    g.style.warn("warning:")
                );
            }
            warn_expiry(g, acct, &ts);
            0
        }
        Err(e) => fail(g, &e, Some(name), Some(acct)),
    }
}

fn warn_expiry(g: &Global, acct: &AccountConfig, ts: &TokenSet) {
    let tm = TokenManager::new(g.paths.data_dir.clone());
    if let Some(w) = tm.warn_expiry(ts, acct.provider) {
        eprintln!("{} {w}", g.style.warn("note:"));
    }
}

/// `postie token`.
pub async fn token(g: &Global, account: Option<String>, json_mode: bool) -> i32 {
    let (name, acct, store) = match open_account(g, account.as_deref()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (name, acct) = (name.as_str(), &acct);
    let tm = TokenManager::new(g.paths.data_dir.clone());
    match tm.access_token(name, acct, &store, false).await {
        Ok((tok, ts)) => {
            // This command exists to hand the token to another program.
            if json_mode {
                output::print_json(&json!({
                    "account": name,
                    "user": acct.login(),
                    "access_token": tok.expose_secret(),
                    "expires_at": ts.expires_at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
                    "scope": ts.scope,
                }));
            } else {
                println!("{}", tok.expose_secret());
            }
            warn_expiry(g, acct, &ts);
            0
        }
        Err(e) => fail(g, &e, Some(name), Some(acct)),
    }
}

/// `postie logout`.
pub async fn logout(g: &Global, account: Option<String>) -> i32 {
    let (name, acct, store) = match open_account(g, account.as_deref()).await {
        Ok(x) => x,
        Err(code) => return code,
    };
    let (name, acct) = (name.as_str(), &acct);
    // Under the account's token lock: a refresh in another process (the
    // relay) must not save new tokens after they are deleted here.
    let _lock = match TokenManager::new(g.paths.data_dir.clone())
        .lock(name, &store)
        .await
    {
        Ok(l) => l,
        Err(e) => return fail(g, &e, Some(name), Some(acct)),
    };
    match postie::oauth::logout_report(name, acct, &store).await {
        Ok(r) if r.revoked => {
            eprintln!("revoked the tokens of '{name}' at the provider and deleted them here");
            0
        }
        Ok(r) if !r.deleted => {
            eprintln!(
                "nothing to do: {}",
                output::clean(r.note.as_deref().unwrap_or("no tokens were stored"))
            );
            0
        }
        Ok(r) => {
            let why = output::clean(r.note.as_deref().unwrap_or("unknown reason"));
            if r.failed {
                eprintln!(
                    "deleted the tokens of '{name}' here, but revoking them at the provider failed: {why}"
                );
                eprintln!(
                    "postie's access may still be live there: remove it in your account's security settings (Google: https://myaccount.google.com/permissions; Microsoft: https://myapps.microsoft.com)"
                );
                output::exit::TEMPFAIL
            } else {
                eprintln!("deleted the tokens of '{name}' here; the provider was not told: {why}");
                0
            }
        }
        Err(e) => fail(g, &e, Some(name), Some(acct)),
    }
}
