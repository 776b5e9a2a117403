//! `postie account add|list|remove`.

use postie::config::{Config, NewAccount, NewOAuth};
use postie::error::{Error, ErrorKind};
use postie::provider::{AuthMethod, TlsMode};
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
    check_name(&a.name)?;
    let new = NewAccount {
        email: a.email.clone(),
        provider: a.provider,
        auth: a.auth,
        user: a.user.clone(),
        host: a.host.clone(),
        port: a.port,
        tls: if a.tls_args.plaintext {
            Some(TlsMode::None)
        } else {
            a.tls
        },
        ca_file: a.tls_args.ca_file.clone(),
        tls_name: a.tls_args.tls_name.clone(),
        password_env: a.password_env.clone(),
        password_command: a.password_command.clone(),
        oauth: NewOAuth {
            client_id: a.oauth.client_id.clone(),
            client_secret_given: a.oauth.client_secret_stdin,
            client_secret_env: a.oauth.client_secret_env.clone(),
            tenant: a.oauth.tenant.clone(),
            issuer: a.oauth.issuer.clone(),
            authorization_endpoint: a.oauth.authorization_endpoint.clone(),
            token_endpoint: a.oauth.token_endpoint.clone(),
            scopes: a.oauth.scopes.clone(),
            flow: a.oauth.flow,
            service_account_key: a.oauth.service_account_key.clone(),
        },
        transports: a.transport.clone(),
        api_url: a.api_url.clone(),
    };
    let acct = new.build()?;
    let (provider, auth) = (acct.provider, acct.auth);
    let preset = provider.preset();

    // Take the password before touching the config, so a failed prompt
    // leaves nothing half-written.
    let stored = if auth == AuthMethod::None {
        if a.password_env.is_some() || a.password_command.is_some() || a.password_stdin {
            return Err(Error::new(
                ErrorKind::Usage,
                "--auth none logs in with nothing: drop --password-env, --password-command and \
                 --password-stdin",
            ));
        }
        None
    } else if auth == AuthMethod::Oauth {
        if a.oauth.client_secret_stdin {
            let secret = read_stdin_secret("--client-secret-stdin")?;
            open_store(&g.paths)?.set(&postie::oauth::client_secret_key(&a.name), &secret)?;
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
    let sharing: Vec<String> = config
        .accounts_with_address(&acct.email)
        .into_iter()
        .filter(|n| *n != a.name)
        .map(String::from)
        .collect();
    let replaced = config.add_account(&a.name, acct, a.default);
    config.save(path)?;
    let ep = config.accounts[&a.name].endpoint()?;
    if auth == AuthMethod::Oauth {
        eprintln!("{}", provider.registration_hint());
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
    if !sharing.is_empty() {
        eprintln!(
            "{} the address {} is also that of {}: the relay and sendmail send mail from it \
             through the default account ({}), and refuse it when none of them is the default",
            g.style.warn("note:"),
            a.email,
            sharing.join(", "),
            config.default_account.as_deref().unwrap_or("none")
        );
    }
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
        let v = config.summaries();
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

/// An account's name is a config key, a secret-store key prefix and a
/// file-name part: a word, not nothing, no slash, no control character.
fn check_name(name: &str) -> Result<(), Error> {
    if name.trim().is_empty()
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c.is_whitespace())
    {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "'{}' cannot be an account's name: use a word such as work or personal (letters, \
                 digits, '-', '_', '.', '@')",
                name.escape_debug()
            ),
        ));
    }
    Ok(())
}

fn remove(g: &Global, name: &str) -> Result<(), Error> {
    let path = &g.paths.config_file;
    let mut config = Config::load(path)?;
    let Some(acct) = config.remove_account(name) else {
        return Err(Error::new(
            ErrorKind::Usage,
            format!(
                "no account named '{name}'; configured: {}",
                config.account_names()
            ),
        ));
    };
    // Its secrets go with it (revoking tokens at the provider is `postie
    // logout`).
    let keys = acct.secret_keys(name);
    if !keys.is_empty() {
        let store = open_store(&g.paths)?;
        for key in keys {
            store.delete(&key)?;
        }
    }
    config.save(path)?;
    eprintln!("removed account '{name}'");
    Ok(())
}
