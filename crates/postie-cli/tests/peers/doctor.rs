//! `postie doctor` against the real peers: every stage ok on aiosmtpd, smtp-server and Postfix
//! (STARTTLS and implicit TLS, password and OAuth), then one thing broken at a time — wrong port,
//! implicit TLS and STARTTLS mixed up, an expired certificate, a certificate for another name, an
//! AUTH mechanism the server lacks, a revoked token, a wrong password, the OAuth server down —
//! each giving the right failed stage, exit code and fix. No mail is sent by a plain run, and no
//! secret appears in any output at any verbosity.

use serde_json::Value;

use crate::oauth::{USER, logged_in, sign_in, token_of};
use crate::relay_support::free_port;
use crate::secrets::assert_no_leak;
use crate::support::*;

const DOCTOR_PW: &str = "POSTIE_TEST_DOCTOR_PW";

/// Adds password account `name` for `peer` at `port` with TLS mode `tls`.
fn add(sb: &Sandbox, name: &str, peer: Peer, port: u16, tls: &str) {
    add_as(sb, name, "generic", peer.user(), port, tls);
}

/// Adds password account `name` of `provider` logging in as `user` at 127.0.0.1:`port`.
fn add_as(sb: &Sandbox, name: &str, provider: &str, user: &str, port: u16, tls: &str) {
    add_from(sb, name, provider, user, port, tls, FROM);
}

/// [`add_as`] with the account's address `email`.
fn add_from(
    sb: &Sandbox,
    name: &str,
    provider: &str,
    user: &str,
    port: u16,
    tls: &str,
    email: &str,
) {
    sb.postie()
        .args(["account", "add", name, "--provider", provider])
        .opt("--host", "127.0.0.1")
        .opt("--port", port.to_string())
        .opt("--tls", tls)
        .opt("--email", email)
        .opt("--user", user)
        .opt("--password-env", DOCTOR_PW)
        .opt("--ca-file", peers().ca())
        .run()
        .success();
}

fn doctor(sb: &Sandbox, name: &str, password: &str, extra: &[&str]) -> Run {
    sb.postie()
        .args(["doctor", name, "--timeout", "5s"])
        .args(extra)
        .env(DOCTOR_PW, password)
        .run()
}

/// The JSON report's check for `stage`.
fn stage<'a>(v: &'a Value, stage: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["stage"] == stage)
        .unwrap_or_else(|| panic!("no {stage} check in {v}"))
}

/// Every check of a human run as (status, stage), in order.
fn lines(run: &Run) -> Vec<(String, String)> {
    run.stdout
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let status = w.next()?;
            let stage = w.next()?;
            ["ok", "warning", "failed", "skipped"]
                .contains(&status)
                .then(|| (status.to_string(), stage.to_string()))
        })
        .collect()
}

fn assert_all_ok(run: &Run) {
    run.success();
    let got = lines(run);
    let stages: Vec<&str> = got.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(
        stages,
        [
            "config",
            "dns",
            "connect",
            "tls",
            "ehlo",
            "credentials",
            "auth"
        ],
        "{run}"
    );
    assert!(got.iter().all(|(st, _)| st == "ok"), "{run}");
    assert!(run.stdout.contains("all checks passed"), "{run}");
}

/// A plain run authenticates, then RSET and QUIT: no MAIL, nothing stored.
fn assert_no_mail_sent(run: &Run) {
    assert!(run.stderr.contains("~> RSET"), "no RSET after AUTH: {run}");
    assert!(run.stderr.contains("~> QUIT"), "{run}");
    assert!(!run.stderr.contains("MAIL FROM"), "doctor sent mail: {run}");
}

#[test]
fn every_stage_ok_on_three_servers_starttls_and_implicit_tls() {
    let sb = Sandbox::new();
    for (name, peer, tls) in [
        ("aio", Peer::Aiosmtpd, Tls::StartTls),
        ("nodemailer", Peer::SmtpServer, Tls::Implicit),
        ("postfix", Peer::Postfix, Tls::StartTls),
        ("postfix465", Peer::Postfix, Tls::Implicit),
    ] {
        let mode = match tls {
            Tls::StartTls => "starttls",
            Tls::Implicit => "implicit",
        };
        // An address of this run only: whatever the peer stored from it, doctor sent.
        let email = format!("{}@example.test", token(&format!("doctor-{name}")));
        add_from(
            &sb,
            name,
            "generic",
            peer.user(),
            peer.port(tls),
            mode,
            &email,
        );
        let run = doctor(&sb, name, peer.password(), &["-v"]);
        assert_all_ok(&run);
        assert_no_mail_sent(&run);
        crate::spool::assert_not_delivered(peer, &email);
        if name == "postfix" {
            // The same look finds what doctor does send (`--send-test`): it can see it.
            let to = format!("{}@example.test", token("doctor-control"));
            doctor(&sb, name, peer.password(), &["--send-test", &to]).success();
            crate::spool::delivered(peer, &email, 1);
        }
        // the TLS line names version and certificate, and the name matches
        assert!(run.stdout.contains("TLSv1."), "{run}");
        assert!(run.stdout.contains("matches the name 127.0.0.1"), "{run}");
        if tls == Tls::StartTls {
            assert!(run.stderr.contains("-> STARTTLS"), "{run}");
        }
        // the password is shown as its length only
        assert!(
            run.stdout
                .contains(&format!("({} characters)", peer.password().chars().count())),
            "{run}"
        );
    }
}

#[test]
fn json_report_has_checks_and_transcript() {
    let sb = Sandbox::new();
    let (user, password) = (peers().get("SECRET_USER"), peers().get("SECRET_PASSWORD"));
    let port = Peer::Aiosmtpd.port(Tls::StartTls);
    add_as(&sb, "j", "generic", user, port, "starttls");
    let run = doctor(&sb, "j", password, &["--json", "-vv"]);
    run.success();
    assert_no_leak(&run, user, password);
    let v = run.json();
    assert_eq!(v["ok"], true, "{run}");
    assert_eq!(v["exit_code"], 0);
    assert_eq!(v["failed_stage"], Value::Null);
    assert_eq!(v["checks"].as_array().unwrap().len(), 7, "{run}");
    assert_eq!(stage(&v, "auth")["status"], "ok");
    let transcript = v["transcript"].as_array().expect("transcript");
    let auth = transcript
        .iter()
        .find(|t| t["text"].as_str().unwrap_or("").starts_with("AUTH "))
        .unwrap_or_else(|| panic!("no AUTH line in {v}"));
    assert_eq!(auth["direction"], "sent");
    assert_eq!(auth["tls"], true);
    assert!(
        auth["text"].as_str().unwrap().contains("<redacted"),
        "{auth}"
    );
}

#[test]
fn nothing_listening_on_the_port_fails_at_connect() {
    let sb = Sandbox::new();
    add(&sb, "w", Peer::Aiosmtpd, free_port(), "starttls");
    let run = doctor(&sb, "w", "x", &[]);
    run.code(69);
    let got = lines(&run);
    assert_eq!(got[2], ("failed".into(), "connect".into()), "{run}");
    // what could not be checked is said
    for s in ["tls", "ehlo", "credentials", "auth"] {
        assert!(
            got.contains(&("skipped".into(), s.into())),
            "{s} not listed as skipped: {run}"
        );
    }
    let lower = run.text_lower();
    assert!(lower.contains("refused"), "{run}");
    assert!(
        lower.contains("587") && lower.contains("465"),
        "the fix names the ports: {run}"
    );
}

#[test]
fn starttls_on_an_implicit_tls_port_and_the_reverse() {
    let sb = Sandbox::new();
    let peer = Peer::Aiosmtpd;
    add(&sb, "a", peer, peer.port(Tls::Implicit), "starttls");
    let run = doctor(&sb, "a", peer.password(), &["--json"]);
    run.code(76);
    let v = run.json();
    let tls = stage(&v, "tls");
    assert_eq!(tls["status"], "failed", "{run}");
    assert_eq!(
        tls["explanation"]["id"], "doctor-implicit-tls-port",
        "{run}"
    );
    assert!(
        tls["explanation"]["fix"][0]
            .as_str()
            .unwrap()
            .contains("tls = \"implicit\""),
        "{run}"
    );

    add(&sb, "b", peer, peer.port(Tls::StartTls), "implicit");
    let run = doctor(&sb, "b", peer.password(), &[]);
    run.code(76);
    assert!(
        lines(&run).contains(&("failed".into(), "tls".into())),
        "{run}"
    );
    assert!(
        run.stdout.contains("smtp://HOST:587") || run.stdout.contains("tls = \"starttls\""),
        "the fix says to use STARTTLS: {run}"
    );
}

#[test]
fn an_expired_certificate_is_shown_and_explained() {
    let sb = Sandbox::new();
    let peer = Peer::TlsExpired;
    add(&sb, "x", peer, peer.port(Tls::StartTls), "starttls");
    let run = doctor(&sb, "x", peer.password(), &["--json"]);
    run.code(76);
    let v = run.json();
    let tls = stage(&v, "tls");
    assert_eq!(tls["status"], "failed");
    let details = tls["details"].to_string();
    assert!(details.contains("expired"), "{run}");
    assert!(details.contains("valid from"), "the dates are shown: {run}");
    assert!(details.contains("issued by"), "{run}");
    assert!(
        tls["explanation"].to_string().contains("clock"),
        "the clock is a named cause: {run}"
    );
    // the inspection connection sent no credentials
    let sent_auth =
        v["transcript"].as_array().unwrap().iter().any(|t| {
            t["direction"] == "sent" && t["text"].as_str().unwrap_or("").starts_with("AUTH")
        });
    assert!(
        !sent_auth,
        "AUTH sent to a server whose certificate was refused: {run}"
    );
}

#[test]
fn a_certificate_for_another_name_is_shown_and_explained() {
    let sb = Sandbox::new();
    let peer = Peer::TlsOtherName;
    add(&sb, "o", peer, peer.port(Tls::Implicit), "implicit");
    let run = doctor(&sb, "o", peer.password(), &[]);
    run.code(76);
    assert!(
        lines(&run).contains(&("failed".into(), "tls".into())),
        "{run}"
    );
    assert!(
        run.stdout.contains("does not match the name 127.0.0.1"),
        "{run}"
    );
    assert!(run.stdout.contains("names: "), "the names it covers: {run}");
    assert!(run.stdout.contains("tls_name"), "the fix: {run}");
}

#[test]
fn a_wrong_password_fails_at_auth_with_the_servers_reply() {
    let sb = Sandbox::new();
    let peer = Peer::SmtpServer;
    add(&sb, "p", peer, peer.port(Tls::StartTls), "starttls");
    let wrong = token("wrong-password");
    let run = doctor(&sb, "p", &wrong, &["-vv"]);
    run.code(77);
    let got = lines(&run);
    assert!(got.contains(&("ok".into(), "credentials".into())), "{run}");
    assert!(got.contains(&("failed".into(), "auth".into())), "{run}");
    assert!(run.stdout.contains("server: 535"), "{run}");
    assert!(run.stdout.contains("fix:"), "{run}");
    assert_no_secret(&run, &wrong);
}

#[test]
fn an_auth_mechanism_the_server_lacks_fails_at_ehlo() {
    let sb = Sandbox::new();
    let peer = Peer::SmtpServer;
    add(&sb, "m", peer, peer.port(Tls::StartTls), "starttls");
    let path = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        "[accounts.m]\n",
        "[accounts.m]\nauth_mechanism = \"OAUTHBEARER\"\n",
    );
    std::fs::write(&path, text).unwrap();
    let run = doctor(&sb, "m", peer.password(), &["--json"]);
    run.code(79);
    let v = run.json();
    let ehlo = stage(&v, "ehlo");
    assert_eq!(ehlo["status"], "failed", "{run}");
    assert!(
        ehlo["summary"]
            .as_str()
            .unwrap()
            .contains("PLAIN LOGIN XOAUTH2"),
        "what the server offers: {run}"
    );
    assert!(
        ehlo["summary"].as_str().unwrap().contains("OAUTHBEARER"),
        "{run}"
    );
    assert_eq!(
        ehlo["explanation"]["id"], "doctor-auth-mechanism-missing",
        "{run}"
    );
    assert_eq!(stage(&v, "auth")["status"], "skipped");
}

#[test]
fn oauth_account_ok_then_revoked_then_server_down() {
    let sb = Sandbox::new();
    logged_in(&sb, "oa", peers().port("POSTFIX_OAUTH"));
    let run = sb.postie().args(["doctor", "oa", "-vv"]).run();
    assert_all_ok(&run);
    assert_no_mail_sent(&run);
    assert!(
        run.stdout.contains("refresh token: stored"),
        "the refresh token is checked: {run}"
    );
    assert!(run.stdout.contains("access token: valid for"), "{run}");
    assert!(
        run.stdout.contains(&format!("authenticated as {USER}")),
        "{run}"
    );
    let token = token_of(&sb, "oa");
    assert_no_secret(&run, &token);

    // the grant is revoked at the provider: found at the credentials stage
    let out = std::process::Command::new("curl")
        .args(["-sSf", "-d", "client_id=test-client"])
        .arg("--data-urlencode")
        .arg(format!("token={token}"))
        .arg(format!("{}/revoke", peers().get("OAUTH_AS")))
        .output()
        .unwrap();
    assert!(out.status.success());
    let run = sb.postie().args(["doctor", "oa", "--json"]).run();
    run.code(80);
    let v = run.json();
    let creds = stage(&v, "credentials");
    assert_eq!(creds["status"], "failed", "{run}");
    let x = creds["explanation"].to_string();
    assert!(x.contains("invalid_grant"), "{run}");
    assert!(x.contains("postie login oa"), "{run}");
    assert!(
        creds["details"].to_string().contains("clock"),
        "the clock was compared with the token server's: {run}"
    );

    // the authorization server is down
    let path = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let dead = format!("http://127.0.0.1:{}", free_port());
    std::fs::write(&path, text.replace(peers().get("OAUTH_AS"), &dead)).unwrap();
    let run = sb.postie().args(["doctor", "oa", "--json"]).run();
    run.code(80);
    let v = run.json();
    let creds = stage(&v, "credentials");
    assert_eq!(creds["status"], "failed", "{run}");
    assert!(
        creds["summary"].as_str().unwrap().contains("127.0.0.1"),
        "the unreachable server is named: {run}"
    );
    assert_eq!(
        creds["explanation"]["retry"], "later",
        "retrying later can help: {run}"
    );
}

#[test]
fn send_test_delivers_one_message() {
    let sb = Sandbox::new();
    let peer = Peer::Aiosmtpd;
    add(&sb, "s", peer, peer.port(Tls::StartTls), "starttls");
    let tok = token("doctor-send-test");
    let to = format!("{tok}@example.test");
    let run = doctor(&sb, "s", peer.password(), &["-v", "--send-test", &to]);
    run.success();
    // the body is elided from the transcript unless asked for
    assert!(
        !run.stderr
            .contains("to check that this account can send mail"),
        "{run}"
    );
    assert!(run.stderr.contains("~> MAIL FROM:"), "{run}");
    assert!(
        lines(&run).contains(&("ok".into(), "send-test".into())),
        "{run}"
    );
    let d = crate::spool::delivered(peer, &tok, 1);
    assert!(d.rcpt_tos.contains(&to), "{:?}", d.rcpt_tos);
    let shown = doctor(
        &sb,
        "s",
        peer.password(),
        &["-v", "--show-body", "--send-test", &to],
    );
    shown.success();
    assert!(
        shown
            .stderr
            .contains("~> Subject: postie doctor: test message"),
        "--show-body puts the message in the transcript: {shown}"
    );
    assert!(
        String::from_utf8_lossy(&d.client_bytes()).contains("postie doctor: test message"),
        "the peer stored the test message"
    );
}

/// A Gmail account whose password does not have the shape of a Google app password: warned
/// about at the credentials stage (the server here accepts it, so the run passes).
#[test]
fn a_gmail_password_that_is_not_an_app_password_is_warned_about() {
    let sb = Sandbox::new();
    let (user, password) = (peers().get("SECRET_USER"), peers().get("SECRET_PASSWORD"));
    let port = Peer::Aiosmtpd.port(Tls::StartTls);
    add_as(&sb, "g", "gmail", user, port, "starttls");
    let run = doctor(&sb, "g", password, &["--json", "-vv"]);
    run.success();
    let v = run.json();
    let creds = stage(&v, "credentials");
    assert_eq!(creds["status"], "warning", "{run}");
    assert_eq!(creds["explanation"]["id"], "doctor-app-password-shape");
    let x = creds["explanation"].to_string();
    assert!(x.contains("16 letters"), "{run}");
    assert!(
        x.contains("https://myaccount.google.com/apppasswords"),
        "{run}"
    );
    assert_no_leak(&run, user, password);
}

/// A Google token with only the gmail.send scope, which Gmail's SMTP server refuses: the
/// credentials stage says so from the scope the token endpoint granted.
#[test]
fn a_gmail_send_scope_is_warned_about() {
    let sb = Sandbox::new();
    sb.postie()
        .args([
            "account",
            "add",
            "gs",
            "--provider",
            "gmail",
            "--auth",
            "oauth",
        ])
        .opt("--host", "127.0.0.1")
        .opt("--port", peers().port("AIOSMTPD_STARTTLS").to_string())
        .opt("--tls", "starttls")
        .opt("--email", USER)
        .opt("--client-id", "test-client")
        .opt("--issuer", peers().get("OAUTH_AS"))
        .opt("--scope", "https://www.googleapis.com/auth/gmail.send")
        .opt("--ca-file", peers().ca())
        .run()
        .success();
    sign_in(&sb, "gs");
    let run = sb.postie().args(["doctor", "gs", "--json", "-vv"]).run();
    let v = run.json();
    let creds = stage(&v, "credentials");
    assert_eq!(creds["status"], "warning", "{run}");
    assert_eq!(creds["explanation"]["id"], "doctor-google-scope", "{run}");
    assert!(
        creds["explanation"]["summary"]
            .as_str()
            .unwrap()
            .contains("gmail.send"),
        "{run}"
    );
    assert!(creds["details"].to_string().contains("scope: "), "{run}");
    assert_no_secret(&run, &token_of(&sb, "gs"));
}

/// Asserts `secret` appears in no output, in any encoding a transcript might use.
fn assert_no_secret(run: &Run, secret: &str) {
    let all = format!("{}\n{}", run.stdout, run.stderr);
    assert!(!all.contains(secret), "secret in the output: {run}");
    for decoded in base64_decodings(&all) {
        assert!(
            !contains(&decoded, secret.as_bytes()),
            "secret in a base64 payload: {run}"
        );
    }
}

/// The shape of the human output, reviewed when it changes: a run that passes and one that fails
/// at AUTH. Times, ports and certificate dates are masked.
#[test]
fn human_output_snapshots() {
    let sb = Sandbox::new();
    let peer = Peer::SmtpServer;
    add(&sb, "snap", peer, peer.port(Tls::StartTls), "starttls");
    let ok = doctor(&sb, "snap", peer.password(), &["--color", "never"]);
    ok.success();
    let bad = doctor(&sb, "snap", "not-the-password", &["--color", "never"]);
    bad.code(77);
    let port = peer.port(Tls::StartTls).to_string();
    insta::with_settings!({
        filters => vec![
            (r"\d+ ms", "[N] ms"),
            (port.as_str(), "[PORT]"),
            (r"\d{4}-\d{2}-\d{2}", "[DATE]"),
            (r"expires in \d+ days", "expires in [N] days"),
            (r"\(\d+ characters\)", "([N] characters)"),
        ],
    }, {
        insta::assert_snapshot!("doctor_ok", ok.stdout);
        insta::assert_snapshot!("doctor_wrong_password", bad.stdout);
    });
}

/// A port whose connections are silently dropped, as a firewall or a cloud provider blocking
/// SMTP does: a listener with a full accept queue (backlog 0, one connection held) makes the
/// kernel drop every further SYN, so connecting times out.
#[test]
fn dropped_connections_time_out_and_name_the_firewall() {
    let mut holder = crate::relay_support::python()
        .args([
            "-c",
            "import socket,sys,time\n\
             l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(0)\n\
             c=socket.create_connection(l.getsockname())\n\
             print(l.getsockname()[1], flush=True); time.sleep(60)",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(holder.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("port");
    let sb = Sandbox::new();
    add(&sb, "fw", Peer::Aiosmtpd, port, "starttls");
    let run = sb
        .postie()
        .args(["doctor", "fw", "--timeout", "2s", "--json"])
        .env(DOCTOR_PW, "x")
        .run();
    let _ = holder.kill();
    let _ = holder.wait();
    run.code(69);
    let v = run.json();
    let connect = stage(&v, "connect");
    assert_eq!(connect["status"], "failed", "{run}");
    assert_eq!(
        connect["explanation"]["id"], "doctor-connect-timeout",
        "{run}"
    );
    let x = connect["explanation"].to_string();
    assert!(
        x.contains("firewall") && x.contains("cloud providers"),
        "{run}"
    );
    assert!(
        connect["details"]
            .to_string()
            .contains("no answer within 2s"),
        "{run}"
    );
}

/// A host name is resolved (here from /etc/hosts: no query leaves the machine) and its
/// addresses are listed with the time taken.
#[test]
fn a_host_name_is_resolved_and_its_addresses_listed() {
    let sb = Sandbox::new();
    let peer = Peer::Aiosmtpd;
    sb.postie()
        .args(["account", "add", "lh", "--provider", "generic"])
        .opt("--host", "localhost")
        .opt("--port", peer.port(Tls::StartTls).to_string())
        .opt("--tls", "starttls")
        .opt("--email", FROM)
        .opt("--user", peer.user())
        .opt("--password-env", DOCTOR_PW)
        .opt("--ca-file", peers().ca())
        .run()
        .success();
    let run = doctor(&sb, "lh", peer.password(), &["--json"]);
    run.success();
    let v = run.json();
    let dns = stage(&v, "dns");
    assert_eq!(dns["status"], "ok", "{run}");
    let summary = dns["summary"].as_str().unwrap();
    assert!(summary.starts_with("localhost resolves to"), "{run}");
    assert!(summary.contains(" ms"), "the time taken: {run}");
    assert!(dns["details"].to_string().contains("127.0.0.1"), "{run}");
    assert!(
        stage(&v, "tls")["details"]
            .to_string()
            .contains("matches the name localhost"),
        "{run}"
    );
}

/// A config file other users can write (they could set password_command) is warned about;
/// the run goes on.
#[test]
fn a_config_file_others_can_write_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let peer = Peer::Aiosmtpd;
    add(&sb, "perm", peer, peer.port(Tls::StartTls), "starttls");
    let path = sb.config_home().join("postie/config.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = doctor(&sb, "perm", peer.password(), &["--json"]);
    run.success();
    let v = run.json();
    let config = stage(&v, "config");
    assert_eq!(config["status"], "warning", "{run}");
    assert_eq!(
        config["explanation"]["id"], "doctor-config-writable",
        "{run}"
    );
    assert!(
        config["explanation"].to_string().contains("chmod 600"),
        "{run}"
    );
    assert_eq!(stage(&v, "auth")["status"], "ok");
}

/// Without the account there is nothing to check: a configuration error that names the fix.
#[test]
fn an_unknown_account_is_a_configuration_error() {
    let sb = Sandbox::new();
    let run = sb.postie().args(["doctor", "nosuch"]).run();
    run.code(78);
    assert!(run.stderr.contains("nosuch"), "{run}");
    assert!(run.text_lower().contains("postie account add"), "{run}");
}

/// A server given on the command line, as for a one-off `postie send --server`: with a user and
/// password every stage runs; without a user the run stops after EHLO and says what it skipped.
#[test]
fn a_server_given_on_the_command_line() {
    let sb = Sandbox::new();
    let peer = Peer::SmtpServer;
    let run = sb
        .postie()
        .args(["doctor", "--server", &peer.url(Tls::Implicit), "--json"])
        .opt("--ca-file", peers().ca())
        .opt("--user", peer.user())
        .opt("--password-env", DOCTOR_PW)
        .env(DOCTOR_PW, peer.password())
        .run();
    run.success();
    let v = run.json();
    assert_eq!(v["checks"].as_array().unwrap().len(), 7, "{run}");
    assert_eq!(stage(&v, "auth")["status"], "ok", "{run}");

    let run = sb
        .postie()
        .args(["doctor", "--server", &peer.url(Tls::StartTls)])
        .opt("--ca-file", peers().ca())
        .run();
    run.success();
    let got = lines(&run);
    assert!(got.contains(&("ok".into(), "ehlo".into())), "{run}");
    assert!(got.contains(&("skipped".into(), "auth".into())), "{run}");
    assert!(run.stdout.contains("no user given"), "{run}");

    // a user without a password source is a usage error
    let run = sb
        .postie()
        .args([
            "doctor",
            "--server",
            &peer.url(Tls::StartTls),
            "--user",
            "x",
        ])
        .run();
    run.code(64);
    assert!(run.stderr.contains("--password-env"), "{run}");
}

/// A server that refuses the session in its greeting (a scripted peer answering every
/// connection with `421 4.3.2 Service not available` and closing): the failure is the greeting's,
/// TLS is said not to have been reached, and the reply is shown.
#[test]
fn a_greeting_refusal_fails_at_ehlo_not_at_tls() {
    let mut server = crate::relay_support::python()
        .args([
            "-c",
            "import socket,time\n\
             l=socket.socket(); l.bind(('127.0.0.1',0)); l.listen(8)\n\
             print(l.getsockname()[1], flush=True)\n\
             while True:\n\
             \x20   c,_=l.accept(); c.sendall(b'421 4.3.2 Service not available, closing transmission channel\\r\\n'); c.close()",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(server.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let port: u16 = line.trim().parse().expect("port");
    let sb = Sandbox::new();
    add(&sb, "down", Peer::Aiosmtpd, port, "starttls");
    let run = doctor(&sb, "down", "x", &["--json"]);
    let _ = server.kill();
    let _ = server.wait();
    run.code(79);
    let v = run.json();
    let tls = stage(&v, "tls");
    assert_eq!(tls["status"], "skipped", "{run}");
    assert!(
        tls["summary"].as_str().unwrap().contains("before STARTTLS"),
        "{run}"
    );
    let ehlo = stage(&v, "ehlo");
    assert_eq!(ehlo["status"], "failed", "{run}");
    assert!(
        ehlo["details"]
            .to_string()
            .contains("server: 421 4.3.2 Service not available"),
        "{run}"
    );
    assert_eq!(ehlo["explanation"]["retry"], "later", "{run}");
}

/// Issue 12: `doctor --server smtp://127.0.0.1:PORT` is a local server, not
/// the sandbox (which it took every loopback server for, asking for the
/// sandbox's CA file): it connects, and an unknown certificate authority is
/// explained as such.
#[test]
fn a_loopback_server_is_not_taken_for_the_sandbox() {
    let sb = Sandbox::new();
    let url = format!("smtp://127.0.0.1:{}", Peer::Aiosmtpd.port(Tls::StartTls));
    let run = sb
        .postie()
        .args(["doctor", "--server", &url, "--timeout", "5s", "--json"])
        .run();
    run.code(76);
    let v = run.json();
    assert_eq!(stage(&v, "config")["status"], "ok", "{v}");
    assert_eq!(stage(&v, "connect")["status"], "ok", "{v}");
    assert_eq!(stage(&v, "tls")["status"], "failed", "{v}");
    assert!(!run.stdout.contains("sandbox"), "{run}");
    // with the server's CA, the TLS stage passes
    let run = sb
        .postie()
        .args(["doctor", "--server", &url, "--timeout", "5s", "--json"])
        .opt("--ca-file", peers().ca())
        .run();
    assert_eq!(stage(&run.json(), "tls")["status"], "ok", "{run}");
}

/// Issue 12: `--send-test` with an address that is none is a usage error in
/// the flag's own name, found before anything connects (not after AUTH, and
/// not called `--to`).
#[test]
fn a_bad_send_test_address_is_refused_before_connecting() {
    let sb = Sandbox::new();
    let s = crate::hostile::taking_server("250 mx", "250 ok");
    let run = sb
        .postie()
        .args([
            "doctor",
            "--server",
            &s.url(),
            "--plaintext",
            "--send-test",
            "nouser@",
        ])
        .run();
    run.code(64).stderr_mentions(&["--send-test", "nouser@"]);
    assert!(!run.stderr.contains("--to"), "{run}");
    assert!(
        !s.received().contains("EHLO"),
        "it connected: {}",
        s.received()
    );
}
