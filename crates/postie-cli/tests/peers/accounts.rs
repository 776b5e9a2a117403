//! Configured accounts: `account add` stores the password in the secret store (never in the TOML),
//! and `send -a` finds everything again.

use crate::secrets::assert_no_leak;
use crate::spool::delivered;
use crate::support::*;

/// `account add NAME` for aiosmtpd's implicit-TLS port as the leak-check user; the password
/// option (`--password-env VAR`, `--password-stdin`) is up to the caller.
fn add_account(sb: &Sandbox, name: &str) -> Postie {
    sb.postie()
        .words("account add")
        .arg(name)
        .opt("--provider", "generic")
        .opt("--email", FROM)
        .opt("--user", peers().get("SECRET_USER"))
        .opt("--host", "127.0.0.1")
        .opt("--port", Peer::Aiosmtpd.port(Tls::Implicit).to_string())
        .opt("--tls", "implicit")
        .opt("--ca-file", peers().ca())
}

/// `send -a NAME`; `PW_VAR` is set as it was for `account add` (whether `--password-env` stores
/// the password or the variable's name is up to postie), except where a test removes it.
fn send_with(sb: &Sandbox, name: &str, tok: &str) -> Postie {
    sb.postie()
        .words("send -a")
        .arg(name)
        .opt("--to", TO)
        .opt("--subject", tok)
        .opt("--text", tok)
        .env(PW_VAR, peers().get("SECRET_PASSWORD"))
}

#[test]
fn password_env_account_then_send() {
    let sb = Sandbox::new();
    let tok = token("account-env");
    let (user, password) = (peers().get("SECRET_USER"), peers().get("SECRET_PASSWORD"));
    let add = add_account(&sb, "work")
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, password)
        .run();
    add.success();
    assert_no_leak(&add, user, password);

    let tomls: Vec<_> = files_under(&sb.config_home())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    let home = sb.config_home();
    assert!(!tomls.is_empty(), "no TOML config under {}", home.display());
    let config: String = tomls
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(
        config.contains("work"),
        "the account is not in the config:\n{config}"
    );
    assert!(
        !config.contains(password),
        "the password is in the config:\n{config}"
    );
    // nor anywhere else in clear (the secret store is encrypted)
    for f in files_under(sb.path()) {
        let bytes = std::fs::read(&f).unwrap();
        let path = f.display();
        assert!(
            !contains(&bytes, password.as_bytes()),
            "{path} holds the password in clear"
        );
    }

    send_with(&sb, "work", &tok).run().success();
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.auth_user.as_deref(), Some(user));
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos.iter().collect::<Vec<_>>(), [TO]);
}

#[test]
fn password_stdin_account_list_and_remove() {
    let sb = Sandbox::new();
    let password = peers().get("SECRET_PASSWORD");
    add_account(&sb, "first")
        .arg("--password-stdin")
        .stdin(format!("{password}\n"))
        .run()
        .success();
    add_account(&sb, "second")
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, password)
        .run()
        .success();

    let list = sb.postie().words("account list --json").run();
    list.success();
    let listed = list.json().to_string();
    assert!(
        listed.contains("\"first\"") && listed.contains("\"second\""),
        "{list}"
    );
    assert!(!listed.contains(password), "{list}");

    // stored by --password-stdin: nothing else can provide it
    let tok = token("account-stdin");
    send_with(&sb, "first", &tok)
        .env_remove(PW_VAR)
        .run()
        .success();
    delivered(Peer::Aiosmtpd, &tok, 1);

    sb.postie().words("account remove first").run().success();
    let list = sb.postie().words("account list --json").run();
    list.success();
    let listed = list.json().to_string();
    assert!(
        !listed.contains("\"first\"") && listed.contains("\"second\""),
        "{list}"
    );
    send_with(&sb, "first", &token("account-removed"))
        .run()
        .failure();
}

#[test]
fn config_path_from_flag_and_env() {
    let sb = Sandbox::new();
    let config = sb.path().join("elsewhere").join("postie.toml");
    let password = peers().get("SECRET_PASSWORD");
    sb.postie()
        .opt("--config", &config)
        .words("account add custom")
        .opt("--provider", "generic")
        .opt("--email", FROM)
        .opt("--user", peers().get("SECRET_USER"))
        .opt("--host", "127.0.0.1")
        .opt("--port", Peer::SmtpServer.port(Tls::StartTls).to_string())
        .opt("--tls", "starttls")
        .opt("--ca-file", peers().ca())
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, password)
        .run()
        .success();
    assert!(
        config.is_file(),
        "--config {} was not written",
        config.display()
    );
    assert!(!std::fs::read_to_string(&config).unwrap().contains(password));

    let tok = token("config-env");
    send_with(&sb, "custom", &tok)
        .env("POSTIE_CONFIG", &config)
        .run()
        .success();
    delivered(Peer::SmtpServer, &tok, 1);
}
