//! The Gmail scenario of the smtplib article: the account password is refused with
//! `534 5.7.9 Application-specific password required`, the 16-letter app password works.

use crate::spool::{assert_not_delivered, delivered};
use crate::support::*;

const GMAIL: Peer = Peer::GmailLike;

fn account_password() -> &'static str {
    peers().get("GMAILLIKE_ACCOUNT_PASSWORD")
}

/// The app password as Google displays it: four groups of four letters.
fn app_password_with_spaces() -> String {
    let p = GMAIL.password();
    assert_eq!(p.len(), 16);
    [&p[0..4], &p[4..8], &p[8..12], &p[12..16]].join(" ")
}

/// `postie send` to the Gmail-like peer from its user, with `password`.
fn send(sb: &Sandbox, tls: Tls, password: &str, tok: &str) -> Postie {
    sb.postie()
        .arg("send")
        .opt("--server", GMAIL.url(tls))
        .opt("--ca-file", peers().ca())
        .opt("--user", GMAIL.user())
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, password)
        .opt("--from", GMAIL.user())
        .opt("--to", TO)
        .opt("--subject", tok)
        .opt("--text", tok)
}

/// `postie send -a NAME` with a message carrying `tok`; `PW_VAR` set as for `account add`.
fn send_account(sb: &Sandbox, name: &str, password: &str, tok: &str) -> Postie {
    sb.postie()
        .words("send -a")
        .arg(name)
        .opt("--to", TO)
        .opt("--subject", tok)
        .opt("--text", tok)
        .env(PW_VAR, password)
}

/// `postie account add` for the Gmail-like peer with the gmail preset, pointed at loopback.
fn add_gmail_account(sb: &Sandbox, name: &str, tls: Tls, password: &str) -> Run {
    let tls_arg = match tls {
        Tls::StartTls => "starttls",
        Tls::Implicit => "implicit",
    };
    sb.postie()
        .words("account add")
        .arg(name)
        .opt("--provider", "gmail")
        .opt("--email", GMAIL.user())
        .opt("--host", "127.0.0.1")
        .opt("--port", GMAIL.port(tls).to_string())
        .opt("--tls", tls_arg)
        .opt("--ca-file", peers().ca())
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, password)
        .run()
}

/// The 534 5.7.9 refusal: EX_NOPERM, and the explanation names app passwords and `postie login`.
#[track_caller]
fn assert_app_password_explained(run: &Run) {
    run.code(exit::NOPERM);
    let text = run.text_lower();
    assert!(
        text.contains("app password"),
        "no mention of \"app password\"\n{run}"
    );
    assert!(
        text.contains("postie login"),
        "no mention of `postie login`\n{run}"
    );
}

#[test]
fn account_password_is_explained_for_a_gmail_account() {
    let sb = Sandbox::new();
    let tok = token("gmail-account-pw");
    let add = add_gmail_account(&sb, "gmail", Tls::StartTls, account_password());
    if add.code != Some(0) {
        // `account add` may check the credentials right away: then it must explain there
        assert_app_password_explained(&add);
        return;
    }
    let run = send_account(&sb, "gmail", account_password(), &tok)
        .arg("--json")
        .run();
    assert_app_password_explained(&run);
    let j = run.json();
    assert_eq!(j["status"], "failed", "{run}");
    let e = &j["error"];
    assert_eq!(e["kind"], "credentials", "{run}");
    assert_eq!(e["code"], 534, "{run}");
    assert_eq!(e["enhanced"], "5.7.9", "{run}");
    assert_eq!(e["retry"], "no", "{run}");
    let text = e["text"].as_str().unwrap_or_default();
    assert!(
        text.contains("Application-specific password required"),
        "the server's text is not in error.text\n{run}"
    );
    assert_not_delivered(GMAIL, &tok);
}

#[test]
fn account_password_is_explained_with_a_bare_server_url() {
    // nothing says "gmail" here but the server's own 534 5.7.9 reply
    let sb = Sandbox::new();
    let tok = token("gmail-url-pw");
    let run = send(&sb, Tls::StartTls, account_password(), &tok).run();
    assert_app_password_explained(&run);
    run.stderr_mentions(&["534"]);
    assert_not_delivered(GMAIL, &tok);
}

#[test]
fn app_password_with_spaces_delivers() {
    let sb = Sandbox::new();
    let tok = token("gmail-app-pw");
    let run = send(&sb, Tls::StartTls, &app_password_with_spaces(), &tok)
        .arg("--json")
        .run();
    run.success();
    let j = run.json();
    assert_eq!(j["status"], "sent", "{run}");
    assert_eq!(j["tls"], "starttls", "{run}");
    assert_eq!(j["auth"], "PLAIN", "{run}");
    assert_eq!(j["reply"]["code"], 250, "{run}");
    assert_eq!(j["error"], serde_json::Value::Null, "{run}");
    let d = delivered(GMAIL, &tok, 1);
    assert_eq!(d.auth_user.as_deref(), Some(GMAIL.user()));
    assert_eq!(d.mail_from, GMAIL.user());
    let id = j["message_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no message_id\n{run}"));
    assert_eq!(d.mime().header("Message-ID"), id);
}

#[test]
fn app_password_via_gmail_account_over_implicit_tls() {
    let sb = Sandbox::new();
    let tok = token("gmail-account-app");
    let password = app_password_with_spaces();
    add_gmail_account(&sb, "gmail", Tls::Implicit, &password).success();
    send_account(&sb, "gmail", &password, &tok).run().success();
    let d = delivered(GMAIL, &tok, 1);
    assert_eq!(d.auth_user.as_deref(), Some(GMAIL.user()));
}

#[test]
fn wrong_password_is_bad_credentials() {
    let sb = Sandbox::new();
    let tok = token("gmail-wrong-pw");
    let run = send(&sb, Tls::Implicit, "definitely-wrong", &tok)
        .arg("--json")
        .run();
    run.code(exit::NOPERM);
    let j = run.json();
    assert_eq!(j["error"]["kind"], "credentials", "{run}");
    assert_eq!(j["error"]["code"], 535, "{run}");
    assert_eq!(j["error"]["enhanced"], "5.7.8", "{run}");
    assert_not_delivered(GMAIL, &tok);
}
