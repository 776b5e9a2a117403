//! OAuth 2.0 end to end through the binary: `postie login` driven by headless Chromium against
//! the Authlib authorization server, then XOAUTH2 / OAUTHBEARER sends to aiosmtpd, Nodemailer's
//! smtp-server and Postfix + Dovecot (which checks tokens by introspection at the same server).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::spool::delivered;
use crate::support::*;

pub(crate) const USER: &str = "alice@example.test";

/// Adds an OAuth account `name` for the Authlib server, sending through `peer`'s STARTTLS port.
fn add_account(sb: &Sandbox, name: &str, port: u16) {
    add_account_for(sb, name, port, "test-client")
}

pub(crate) fn add_account_for(sb: &Sandbox, name: &str, port: u16, client: &str) {
    sb.postie()
        .args([
            "account",
            "add",
            name,
            "--provider",
            "generic",
            "--host",
            "127.0.0.1",
        ])
        .opt("--port", port.to_string())
        .opt("--tls", "starttls")
        .opt("--email", USER)
        .opt("--auth", "oauth")
        .opt("--client-id", client)
        .opt("--issuer", peers().get("OAUTH_AS"))
        .opt("--ca-file", peers().ca())
        .run()
        .success();
}

/// Registers client `client` at the test authorization server with `setting` (`expires_in=N`,
/// `token_length=N`).
pub(crate) fn register_client(client: &str, setting: &str) {
    as_request(
        &["-d", &format!("client_id={client}"), "-d", setting],
        "/_test/client",
    );
}

/// The OAuth test server's counters for client `client`.
pub(crate) fn oauth_stats(client: &str) -> serde_json::Value {
    serde_json::from_slice(&as_request(
        &[],
        &format!("/_test/stats?client_id={client}"),
    ))
    .unwrap()
}

/// `curl -sSf ARGS` to `path` of the test authorization server: the body of its 2xx answer.
fn as_request(args: &[&str], path: &str) -> Vec<u8> {
    let out = std::process::Command::new("curl")
        .arg("-sSf")
        .args(args)
        .arg(format!("{}{path}", peers().get("OAUTH_AS")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A running `postie login` and the lines it printed on stderr so far.
struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Login {
    fn start(sb: &Sandbox, name: &str) -> Login {
        let mut child = sb
            .std_postie()
            .args(["login", name, "--no-browser", "--timeout", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postie login");
        let err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Login {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The authorization URL postie printed (it always prints it, browser or not).
    fn url(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                let t = line.trim();
                if t.starts_with("http://") || t.starts_with("https://") {
                    return t.to_string();
                }
            }
        }
        panic!("postie login printed no URL:\n{}", self.seen.join("\n"));
    }

    /// Waits for postie to finish; returns its exit code and everything it printed.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("postie login did not finish:\n{}", self.seen.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(300)) {
            self.seen.push(l);
        }
        let mut out = String::new();
        if let Some(mut o) = self.child.stdout.take() {
            use std::io::Read;
            let _ = o.read_to_string(&mut out);
        }
        (status.code(), format!("{out}\n{}", self.seen.join("\n")))
    }
}

/// Loads `url` in headless Chromium, which follows the authorization server's redirect to
/// postie's loopback listener; returns the DOM of the page it ends on.
fn chromium(sb: &Sandbox, url: &str) -> String {
    let profile = sb.path().join("chromium-profile");
    let out = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run chromium ({e}): run the tests with ci/test.sh, which installs it")
        });
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Asks the authorization server (RFC 7662) whether `token` is still active.
fn introspect_active(token: &str) -> bool {
    let body = as_request(
        &["--data-urlencode", &format!("token={token}")],
        "/introspect",
    );
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    v["active"]
        .as_bool()
        .expect("introspection answers `active`")
}

pub(crate) fn token_of(sb: &Sandbox, name: &str) -> String {
    let run = sb.postie().args(["token", name]).run();
    run.success();
    let t = run.stdout.trim().to_string();
    assert!(t.len() > 10, "no token printed: {run}");
    t
}

pub(crate) fn logged_in(sb: &Sandbox, name: &str, port: u16) {
    add_account(sb, name, port);
    sign_in(sb, name);
}

/// `postie login` for an account already added, consent given in headless Chromium.
pub(crate) fn sign_in(sb: &Sandbox, name: &str) {
    let mut login = Login::start(sb, name);
    let url = login.url();
    let page = chromium(sb, &url);
    let (code, printed) = login.finish();
    assert_eq!(code, Some(0), "login failed:\n{printed}\npage: {page}");
    let lower = page.to_lowercase();
    assert!(
        lower.contains("signed in") && !lower.contains("error"),
        "the browser's page must say that sign-in worked: {page}"
    );
}

/// The whole story: consent in a real browser, then mail through three independent servers with
/// no token handling by the user; no token ever printed except by `postie token`.
#[test]
fn browser_login_then_send_through_three_servers() {
    let sb = Sandbox::new();
    logged_in(&sb, "work", peers().port("AIOSMTPD_STARTTLS"));
    let token = token_of(&sb, "work");

    // aiosmtpd offers OAUTHBEARER and XOAUTH2: postie picks OAUTHBEARER.
    let tok = crate::support::token("oauth-aiosmtpd");
    let run = sb
        .postie()
        .args(["send", "-vv", "--json", "-a", "work"])
        .opt("--to", TO)
        .message(&tok)
        .run();
    run.success();
    assert_eq!(run.json()["auth"], "OAUTHBEARER", "{run}");
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.auth_user.as_deref(), Some(USER));
    assert!(
        !run.stdout.contains(&token) && !run.stderr.contains(&token),
        "token leaked: {run}"
    );

    // smtp-server offers only XOAUTH2 (like Microsoft). Same account, other server: re-adding
    // an account keeps its tokens.
    add_account(&sb, "work", peers().port("SMTPSERVER_STARTTLS"));
    let tok = crate::support::token("oauth-smtp-server");
    let run = sb
        .postie()
        .args(["send", "--json", "-a", "work"])
        .opt("--to", TO)
        .message(&tok)
        .run();
    run.success();
    assert_eq!(run.json()["auth"], "XOAUTH2", "{run}");
    delivered(Peer::SmtpServer, &tok, 1);

    // Postfix + Dovecot: the token is checked by introspection at the authorization server.
    add_account(&sb, "work", peers().port("POSTFIX_OAUTH"));
    let tok = crate::support::token("oauth-postfix");
    sb.postie()
        .args(["send", "-a", "work"])
        .opt("--to", TO)
        .message(&tok)
        .run()
        .success();
    delivered(Peer::Postfix, &tok, 1);
}

/// `postie token` hands a working token to another program: curl authenticates with it.
#[test]
fn token_command_feeds_curl() {
    let sb = Sandbox::new();
    logged_in(&sb, "tok", peers().port("AIOSMTPD_STARTTLS"));
    let token = token_of(&sb, "tok");
    let tok = crate::support::token("oauth-curl");
    let msg = sb.file(
        "m.eml",
        format!("From: {USER}\r\nTo: {TO}\r\nSubject: {tok}\r\n\r\n{tok}\r\n").as_bytes(),
    );
    let out = std::process::Command::new("curl")
        .arg("-sS")
        .arg("--url")
        .arg(format!(
            "smtp://127.0.0.1:{}",
            peers().port("AIOSMTPD_STARTTLS")
        ))
        .args(["--ssl-reqd", "--cacert", peers().ca()])
        .args([
            "--mail-from",
            USER,
            "--mail-rcpt",
            TO,
            "--user",
            &format!("{USER}:"),
        ])
        .arg("--oauth2-bearer")
        .arg(&token)
        .arg("--upload-file")
        .arg(&msg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    delivered(Peer::Aiosmtpd, &tok, 1);
}

/// Consent denied in the browser: the page says so, and postie explains `access_denied`.
#[test]
fn denied_consent_is_explained() {
    let sb = Sandbox::new();
    add_account(&sb, "deny", peers().port("AIOSMTPD_STARTTLS"));
    let mut login = Login::start(&sb, "deny");
    let url = format!("{}&test_deny=1", login.url());
    let page = chromium(&sb, &url);
    let (code, printed) = login.finish();
    assert_ne!(code, Some(0), "{printed}");
    assert!(
        page.to_lowercase().contains("access_denied") || page.to_lowercase().contains("denied"),
        "{page}"
    );
    let lower = printed.to_lowercase();
    assert!(lower.contains("denied"), "{printed}");
    assert!(
        lower.contains("postie login deny"),
        "the fix names the command: {printed}"
    );
}

/// After logout the tokens are revoked at the server: a token obtained before no longer works
/// there (Dovecot's introspection says inactive), and postie says to sign in again.
#[test]
fn logout_revokes_and_send_says_to_login() {
    let sb = Sandbox::new();
    logged_in(&sb, "out", peers().port("POSTFIX_OAUTH"));
    let token = token_of(&sb, "out");
    assert!(
        introspect_active(&token),
        "a fresh token is active at the server"
    );
    sb.postie().args(["logout", "out"]).run().success();
    assert!(
        !introspect_active(&token),
        "after logout the server must no longer accept the token (revoked, not only deleted here)"
    );
    let run = sb
        .postie()
        .args(["send", "-a", "out"])
        .opt("--to", TO)
        .message(&crate::support::token("after-logout"))
        .run();
    run.failure();
    assert!(run.text_lower().contains("postie login out"), "{run}");
    // found here, with no server asked: not "the authorization server answered"
    assert!(!run.text_lower().contains("server answered"), "{run}");
    let run = sb
        .postie()
        .args(["send", "-a", "out", "--json"])
        .opt("--to", TO)
        .message(&crate::support::token("after-logout-json"))
        .run();
    run.code(77);
    assert_eq!(
        run.json()["error"]["explanation_id"],
        "not-signed-in",
        "{run}"
    );
}

/// A token too long for the AUTH line (RFC 4954 §4: 512 octets) goes after a 334, and the server
/// (Nodemailer's own XOAUTH2 parser) accepts it. The mechanism can be forced.
#[test]
fn long_token_goes_through_the_334_continuation() {
    let sb = Sandbox::new();
    let client = format!("long-{}", std::process::id());
    register_client(&client, "token_length=1200");
    add_account_for(&sb, "long", peers().port("SMTPSERVER_STARTTLS"), &client);
    let mut login = Login::start(&sb, "long");
    let url = login.url();
    chromium(&sb, &url);
    let (code, printed) = login.finish();
    assert_eq!(code, Some(0), "{printed}");
    let token = token_of(&sb, "long");
    assert!(
        token.len() >= 1200,
        "the server was asked for 1200-byte tokens: {}",
        token.len()
    );

    let tok = crate::support::token("oauth-long");
    let run = sb
        .postie()
        .args(["send", "-v", "-a", "long", "--auth-mechanism", "xoauth2"])
        .opt("--to", TO)
        .message(&tok)
        .run();
    run.success();
    let lines: Vec<&str> = run.stderr.lines().collect();
    let auth = lines
        .iter()
        .position(|l| l.starts_with("~> AUTH XOAUTH2"))
        .unwrap_or_else(|| panic!("no AUTH line: {run}"));
    assert_eq!(
        lines[auth].trim_end(),
        "~> AUTH XOAUTH2",
        "no initial response on the line: {run}"
    );
    assert!(lines[auth + 1].starts_with("<~ 334"), "{run}");
    assert!(lines[auth + 2].starts_with("~> <redacted"), "{run}");
    assert!(!run.stderr.contains(&token[..40]), "token leaked: {run}");
    delivered(Peer::SmtpServer, &tok, 1);
}

/// The provider revokes the grant behind postie's back (the Authlib server revokes the refresh
/// token with the access token; Postfix + Dovecot check tokens by introspection): AUTH is refused,
/// postie tries one refresh, which the server refuses, and explains what to run. Nothing is sent,
/// nothing is retried in a loop, and the config file never holds a token.
#[test]
fn token_revoked_at_the_server_is_explained() {
    let sb = Sandbox::new();
    logged_in(&sb, "rev", peers().port("POSTFIX_OAUTH"));
    let old = token_of(&sb, "rev");
    let out = std::process::Command::new("curl")
        .args(["-sSf", "-d", "client_id=test-client"])
        .arg("--data-urlencode")
        .arg(format!("token={old}"))
        .arg(format!("{}/revoke", peers().get("OAUTH_AS")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let tok = crate::support::token("oauth-revoked");
    let run = sb
        .postie()
        .args(["send", "-v", "-a", "rev"])
        .opt("--to", TO)
        .message(&tok)
        .run();
    run.code(exit::NOPERM);
    assert_eq!(run.stderr.matches("~> AUTH ").count(), 1, "{run}");
    assert!(
        run.stderr.contains("refreshing it once"),
        "one refresh was tried: {run}"
    );
    let lower = run.text_lower();
    assert!(
        lower.contains("invalid_grant") && lower.contains("postie login rev"),
        "{run}"
    );
    assert!(
        lower.contains("revoked"),
        "the likely cause is named: {run}"
    );
    crate::spool::assert_not_delivered(Peer::Postfix, &tok);

    let config = std::fs::read_to_string(sb.config_home().join("postie/config.toml")).unwrap();
    assert!(
        !config.contains(old.as_str()),
        "token in the config file: {config}"
    );
    assert!(!run.stderr.contains(old.as_str()) && !run.stdout.contains(old.as_str()));
}

/// A sign-in nobody finishes in the browser ends at --timeout with
/// what happened (not "the server or network had a temporary problem").
#[test]
fn a_sign_in_not_finished_in_time_says_so() {
    let sb = Sandbox::new();
    add_account(&sb, "slow", peers().port("POSTFIX_OAUTH"));
    let run = sb
        .postie()
        .args(["login", "slow", "--no-browser", "--timeout", "1s"])
        .run();
    run.failure();
    run.stderr_mentions(&["not finished in the browser in time", "--manual"]);
    assert!(!run.text_lower().contains("temporary problem"), "{run}");
}

/// The provider cannot be reached to revoke (its revocation endpoint refuses connections):
/// logout still deletes the tokens here, says that access may still be live there and where to
/// remove it, and exits 75 (EX_TEMPFAIL); the token is indeed still active at the server. A
/// second logout has nothing to do.
#[test]
fn logout_when_the_provider_cannot_be_told_exits_75() {
    let sb = Sandbox::new();
    logged_in(&sb, "gone", peers().port("POSTFIX_OAUTH"));
    let token = token_of(&sb, "gone");
    let cfg = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[accounts.gone.oauth]\n"), "{text}");
    // A port nothing listens on (bound, then closed).
    let closed = crate::relay_support::free_port();
    let text = text.replace(
        "[accounts.gone.oauth]\n",
        &format!(
            "[accounts.gone.oauth]\nrevocation_endpoint = \"http://127.0.0.1:{closed}/revoke\"\n"
        ),
    );
    std::fs::write(&cfg, text).unwrap();
    let run = sb.postie().args(["logout", "gone"]).run();
    run.code(75);
    run.stderr_mentions(&[
        "deleted the tokens",
        "revoking them at the provider failed",
        "security settings",
    ]);
    assert!(!run.stderr.contains(&token), "the token in logout's output");
    assert!(
        introspect_active(&token),
        "the token was revoked after all: the test's premise does not hold"
    );
    // Deleted here: no token to print, and the way back is to sign in again.
    let after = sb.postie().args(["token", "gone"]).run();
    after.code(77);
    after.stderr_mentions(&["postie login"]);
    assert!(!after.stdout.contains(&token) && !after.stderr.contains(&token));
    let again = sb.postie().args(["logout", "gone"]).run();
    again.success();
    again.stderr_mentions(&["nothing to do"]);
}
