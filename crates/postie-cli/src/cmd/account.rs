//! `postie account add|list|remove`.

use postie::config::{AccountConfig, Config};
use postie::error::{Error, ErrorKind};
use postie::oauth::{Flow, OAuthConfig};
use postie::provider::{AuthMethod, ProviderId, guess_from_email};
use postie::secret::normalize_app_password;
use secrecy::ExposeSecret;
use serde_json::json;

use super::{Global, interactive, open_store, prompt_secret, read_stdin_secret};
use crate::cli::{AccountAddArgs, AccountCommand};
use crate::output;

/// Run an account subcommand; returns the exit code.
pub fn run(g: &Global, cmd: AccountCommand) -> i32 {
    let r = match cmd {
        AccountCommand::Add(a) => add(g, *a),
        AccountCommand::List { json } => list(g, json),
        AccountCommand::Remove { name } => remove(g, &name),
    };
    match r {
        Ok(()) => 0,
        Err(e) => {
            output::print_error(&g.style, &e, &Default::default());
            output::exit_code(e.kind())
        }
    }
}

fn add(g: &Global, a: AccountAddArgs) -> Result<(), Error> {
    if a.email.parse::<postie_proto::address::Address>().is_err() || !a.email.contains('@') {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "--email '{}' is not an address like me@example.com",
                a.email
            ),
        ));
    }
    let provider = match a.provider.or_else(|| guess_from_email(&a.email)) {
        Some(p) => p,
        None if a.host.is_some() => ProviderId::Generic,
        None => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "cannot tell the provider of {}: give --provider (gmail, workspace, outlook, office365, yahoo, icloud, fastmail) or --host for any other server",
                    a.email
                ),
            ));
        }
    };
    let preset = provider.preset();
    let auth = a.auth.unwrap_or_else(|| preset.default_auth());
    if !preset.supports(auth) {
        let offered: Vec<_> = preset.auth.iter().map(|m| m.as_str()).collect();
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "{} does not accept {auth} for SMTP; it accepts: {}. {}",
                preset.display_name,
                offered.join(", "),
                preset.note
            ),
        ));
    }
    let oauth = if auth == AuthMethod::Oauth {
        Some(oauth_config(&a, provider)?)
    } else {
        if a.oauth.client_id.is_some() || a.oauth.client_secret_stdin || a.oauth.flow.is_some() {
            return Err(Error::new(
                ErrorKind::Usage,
                "--client-id, --client-secret-* and --flow need --auth oauth",
            ));
        }
        None
    };
    if provider == ProviderId::Generic && a.host.is_none() {
        return Err(Error::new(
            ErrorKind::Usage,
            "the generic provider needs --host (and usually --port 587 or 465)",
        ));
    }
    if a.tls_args.plaintext {
        let host = a.host.as_deref().unwrap_or(preset.host.unwrap_or(""));
        let loopback = host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(Error::new(
                ErrorKind::Config,
                format!("--plaintext is only allowed for a loopback host, not '{host}'"),
            ));
        }
    }
    let acct = AccountConfig {
        provider,
        email: a.email.clone(),
        auth,
        user: a.user.clone(),
        host: a.host.clone(),
        port: a.port,
        tls: if a.tls_args.plaintext {
            Some(postie::provider::TlsMode::None)
        } else {
            a.tls
        },
        ca_file: a
            .tls_args
            .ca_file
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or(p.clone())),
        tls_name: a.tls_args.tls_name.clone(),
        password_env: a.password_env.clone(),
        password_command: a.password_command.clone(),
        oauth,
        auth_mechanism: None,
    };
    acct.endpoint()?; // host/port/TLS consistent before anything is written

    // Take the password before touching the config, so a failed prompt
    // leaves nothing half-written.
    let stored = if auth == AuthMethod::Oauth {
        if a.oauth.client_secret_stdin {
            let secret = read_stdin_secret("--client-secret-stdin")?;
            open_store(&g.paths)?.set(&format!("{}/client-secret", a.name), &secret)?;
        }
        None
    } else if a.password_env.is_some() || a.password_command.is_some() {
        None
    } else if a.password_stdin {
        Some(read_stdin_secret("--password-stdin")?)
    } else {
        if interactive() {
            eprintln!("{}", preset.note);
            if let Some(url) = preset.app_password_url
                && auth == AuthMethod::AppPassword
            {
                eprintln!("Create an app password at: {url}");
            }
        }
        Some(prompt_secret(
            &format!(
                "{} for {}",
                if auth == AuthMethod::AppPassword {
                    "App password"
                } else {
                    "Password"
                },
                a.email
            ),
            "Give --password-stdin, --password-env VAR or --password-command CMD.",
        )?)
    };
    let mut stored_in = None;
    if let Some(pw) = &stored {
        let pw = if auth == AuthMethod::AppPassword {
            normalize_app_password(pw)
        } else {
            pw.clone()
        };
        if pw.expose_secret().is_empty() {
            return Err(Error::new(ErrorKind::Usage, "the password is empty"));
        }
        let store = open_store(&g.paths)?;
        store.set(&a.name, &pw)?;
        stored_in = Some(store.describe());
    }

    let path = &g.paths.config_file;
    let mut config = Config::load(path)?;
    let replaced = config.accounts.insert(a.name.clone(), acct).is_some();
    if a.default || config.default_account.is_none() {
        config.default_account = Some(a.name.clone());
    }
    config.save(path)?;
    let ep = config.accounts[&a.name].endpoint()?;
    if auth == AuthMethod::Oauth {
        eprintln!("{}", oauth_setup_hint(provider));
        eprintln!("next: `postie login {}` to sign in", a.name);
    }
    eprintln!(
        "{} account '{}' ({}, {} via {} {}) in {}",
        if replaced { "updated" } else { "added" },
        a.name,
        preset.display_name,
        auth,
        ep.authority(),
        ep.tls,
        path.display()
    );
    match (&a.password_env, &a.password_command, stored_in) {
        (Some(v), _, _) => eprintln!("the password will be read from ${v} when sending"),
        (_, Some(_), _) => {
            eprintln!("the password will come from the password command when sending")
        }
        (_, _, Some(place)) => eprintln!("the password is stored in {place}"),
        _ => {}
    }
    Ok(())
}

fn list(g: &Global, json_mode: bool) -> Result<(), Error> {
    let config = Config::load(&g.paths.config_file)?;
    if json_mode {
        let v: Vec<_> = config
            .accounts
            .iter()
            .map(|(name, a)| {
                let ep = a.endpoint().ok();
                json!({
                    "name": name,
                    "default": config.default_account.as_deref() == Some(name),
                    "provider": a.provider,
                    "email": a.email,
                    "user": a.login(),
                    "auth": a.auth,
                    "server": ep.as_ref().map(|e| e.authority()),
                    "tls": ep.as_ref().map(|e| e.tls),
                    "password_from": if a.auth == AuthMethod::Oauth { "oauth" } else if a.password_env.is_some() { "env" } else if a.password_command.is_some() { "command" } else { "store" },
                })
            })
            .collect();
        output::print_json(&json!({ "accounts": v }));
        return Ok(());
    }
    if config.accounts.is_empty() {
        eprintln!(
            "no accounts; add one with `postie account add NAME --provider gmail --email you@gmail.com`"
        );
        return Ok(());
    }
    for (name, a) in &config.accounts {
        let mark = if config.default_account.as_deref() == Some(name) {
            "*"
        } else {
            " "
        };
        let server = a
            .endpoint()
            .map(|e| format!("{} {}", e.authority(), e.tls))
            .unwrap_or_else(|e| e.to_string());
        println!(
            "{mark} {name:<12} {:<10} {:<28} {:<13} {server}",
            a.provider.as_str(),
            a.email,
            a.auth.as_str()
        );
    }
    Ok(())
}

fn remove(g: &Global, name: &str) -> Result<(), Error> {
    let path = &g.paths.config_file;
    let mut config = Config::load(path)?;
    let Some(acct) = config.accounts.remove(name) else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "no account named '{name}'; configured: {}",
                config.account_names()
            ),
        ));
    };
    if acct.auth == AuthMethod::Oauth {
        // Tokens and the client secret go with the account; revoking them at
        // the provider is `postie logout`.
        let store = open_store(&g.paths)?;
        store.delete(&format!("{name}/oauth"))?;
        store.delete(&format!("{name}/client-secret"))?;
    } else if acct.password_env.is_none() && acct.password_command.is_none() {
        open_store(&g.paths)?.delete(name)?;
    }
    if config.default_account.as_deref() == Some(name) {
        config.default_account = None;
    }
    config.save(path)?;
    eprintln!("removed account '{name}'");
    Ok(())
}

fn oauth_config(a: &AccountAddArgs, provider: ProviderId) -> Result<OAuthConfig, Error> {
    let o = &a.oauth;
    let flow = o.flow.unwrap_or(if o.service_account_key.is_some() {
        Flow::ServiceAccount
    } else {
        Flow::AuthCode
    });
    if flow == Flow::ServiceAccount && o.service_account_key.is_none() {
        return Err(Error::new(
            ErrorKind::Usage,
            "--flow service-account needs --service-account-key PATH (the JSON key of a Google service account with domain-wide delegation)",
        ));
    }
    let client_id = match (&o.client_id, flow) {
        (Some(id), _) => id.clone(),
        (None, Flow::ServiceAccount) => String::new(),
        // The sandbox knows its own public client.
        (None, _) if provider == ProviderId::Sandbox => postie_sandbox::DEFAULT_CLIENT_ID.into(),
        (None, _) => {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "--auth oauth needs --client-id: you register postie as an OAuth client with the provider once. {}",
                    oauth_setup_hint(provider)
                ),
            ));
        }
    };
    if provider == ProviderId::Generic
        && o.issuer.is_none()
        && (o.authorization_endpoint.is_none() || o.token_endpoint.is_none())
    {
        return Err(Error::new(
            ErrorKind::Usage,
            "a generic OAuth provider needs --issuer URL (for discovery) or both --authorization-endpoint and --token-endpoint",
        ));
    }
    Ok(OAuthConfig {
        client_id,
        client_secret_env: o.client_secret_env.clone(),
        tenant: o.tenant.clone(),
        issuer: o.issuer.clone(),
        authorization_endpoint: o.authorization_endpoint.clone(),
        token_endpoint: o.token_endpoint.clone(),
        device_authorization_endpoint: None,
        revocation_endpoint: None,
        scopes: (!o.scopes.is_empty()).then(|| o.scopes.clone()),
        flow: Some(flow),
        service_account_key: o
            .service_account_key
            .as_ref()
            .map(|p| std::path::absolute(p).unwrap_or(p.clone())),
        login_hint: Some(a.email.clone()),
    })
}

/// Where to register an OAuth client, in plain words.
fn oauth_setup_hint(provider: ProviderId) -> String {
    match provider {
        ProviderId::Gmail | ProviderId::Workspace => "Google: create a client at https://console.cloud.google.com/apis/credentials \
             (Create credentials > OAuth client ID > Application type \"Desktop app\"); pass its ID with --client-id \
             and its secret with --client-secret-stdin. The consent screen needs the scope https://mail.google.com/; \
             while the app is in \"Testing\", Google ends its refresh tokens after 7 days. Loopback redirects \
             (http://127.0.0.1:PORT) need no registration for Desktop clients."
            .into(),
        ProviderId::Outlook | ProviderId::Office365 => "Microsoft: register an app at https://entra.microsoft.com \
             (App registrations > New registration); under Authentication add the platform \"Mobile and desktop \
             applications\" with the redirect URI http://localhost and allow public client flows (for --device); \
             under API permissions add Office 365 Exchange Online / SMTP.Send (delegated) and offline_access. \
             Pass the Application (client) ID with --client-id and the tenant with --tenant."
            .into(),
        _ => "Register postie as a native (public) client with your authorization server, with the redirect \
              URI http://127.0.0.1 (any port, RFC 8252) and PKCE."
            .into(),
    }
}
