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

/// `postie doctor NAME` with a 5 s timeout unless `extra` gives one.
fn doctor(sb: &Sandbox, name: &str, password: &str, extra: &[&str]) -> Run {
    let timeout: &[&str] = if extra.contains(&"--timeout") {
        &[]
    } else {
        &["--timeout", "5s"]
    };
    sb.postie()
        .args(["doctor", name])
        .args(timeout)
        .args(extra)
        .env(DOCTOR_PW, password)
        .run()
}

/// The JSON report's check for `stage`.
fn stage<'a>(v: &'a Value, stage: &str) -> &'a Value {
    v["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("no checks in {v}"))
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
    set_mechanism(&sb, "m", "OAUTHBEARER");
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
    add_oauth_scoped(
        &sb,
        "gs",
        "gmail",
        "https://www.googleapis.com/auth/gmail.send",
    );
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
/// A port on 127.0.0.1 whose listen queue is full (one connection held, never accepted):
/// connecting there gets no answer, as behind a firewall that drops packets. Kill the process
/// when done.
fn unanswered_port() -> (std::process::Child, u16) {
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
    (holder, line.trim().parse().expect("port"))
}

#[test]
fn dropped_connections_time_out_and_name_the_firewall() {
    let (mut holder, port) = unanswered_port();
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

/// `postie doctor --json` of a working account whose config file has mode 666; succeeded.
fn doctor_with_a_config_others_can_write() -> Run {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let peer = Peer::Aiosmtpd;
    add(&sb, "perm", peer, peer.port(Tls::StartTls), "starttls");
    let path = sb.config_home().join("postie/config.toml");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let run = doctor(&sb, "perm", peer.password(), &["--json"]);
    run.success();
    run
}

/// A config file other users can write (they could set password_command) is warned about;
/// the run goes on.
#[test]
fn a_config_file_others_can_write_is_warned_about() {
    let run = doctor_with_a_config_others_can_write();
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

/// `doctor --server smtp://127.0.0.1:PORT` is a local server, not
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

/// `--send-test` with an address that is none is a usage error in
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

/// Sets `auth_mechanism` of account `name` in the sandbox's config file.
fn set_mechanism(sb: &Sandbox, name: &str, mechanism: &str) {
    let path = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let table = format!("[accounts.{name}]\n");
    let text = text.replace(
        &table,
        &format!("{table}auth_mechanism = \"{mechanism}\"\n"),
    );
    std::fs::write(&path, text).unwrap();
}

/// Adds OAuth account `name` of `provider` for the Authlib server asking for `scope`, sending
/// through aiosmtpd; not signed in yet.
fn add_oauth_scoped(sb: &Sandbox, name: &str, provider: &str, scope: &str) {
    sb.postie()
        .args(["account", "add", name, "--provider", provider])
        .opt("--auth", "oauth")
        .opt("--host", "127.0.0.1")
        .opt("--port", peers().port("AIOSMTPD_STARTTLS").to_string())
        .opt("--tls", "starttls")
        .opt("--email", USER)
        .opt("--client-id", "test-client")
        .opt("--issuer", peers().get("OAUTH_AS"))
        .opt("--scope", scope)
        .opt("--ca-file", peers().ca())
        .run()
        .success();
}

/// A password account table for `[accounts.NAME]`, with `extra` lines.
fn account_toml(
    name: &str,
    provider: &str,
    host: &str,
    port: u16,
    tls: &str,
    extra: &str,
) -> String {
    format!(
        "\n[accounts.{name}]\nprovider = \"{provider}\"\nemail = \"{FROM}\"\nhost = \"{host}\"\n\
         port = {port}\ntls = \"{tls}\"\npassword_env = \"{DOCTOR_PW}\"\n{extra}"
    )
}

/// The sweep of the doctor's own explanations: every `doctor-*` entry of the catalog is reached
/// by a run of `postie doctor` against something that really has the fault — a config, a name
/// server (in a network namespace of the test's own, so no query leaves the machine), a port
/// nothing answers on, a peer's certificate, an authorization server's grant — and is named at
/// the stage the fault belongs to. An entry added to the catalog without a case here fails the
/// sweep; so does a case whose fault stops being found.
#[test]
fn every_doctor_finding_is_reached_by_a_run_with_that_fault() {
    use std::collections::BTreeSet;
    let mut reached: BTreeSet<String> = BTreeSet::new();
    let mut found = |run: &Run, at: &str, id: &str| {
        let v = run.json();
        let c = stage(&v, at);
        assert_eq!(c["explanation"]["id"], id, "{id} expected at {at}: {run}");
        assert!(
            c["explanation"]["fix"]
                .as_array()
                .is_some_and(|f| !f.is_empty()),
            "{id} names a fix: {run}"
        );
        assert_ne!(c["status"], "ok", "{run}");
        reached.insert(id.to_string());
    };

    // ---- the configuration alone (nothing is contacted: the run stops at the config) ----
    let sb = Sandbox::new();
    let auth = "auth = \"password\"\nuser = \"alice\"\n";
    crate::relay_support::append_config(
        &sb,
        &[
            account_toml("p465", "generic", "127.0.0.1", 465, "starttls", auth),
            account_toml("p587", "generic", "127.0.0.1", 587, "implicit", auth),
            account_toml(
                "ms",
                "outlook",
                "127.0.0.1",
                465,
                "implicit",
                "auth = \"app-password\"\n",
            ),
            account_toml("gpw", "gmail", "127.0.0.1", 587, "starttls", auth),
            account_toml(
                "ounset",
                "generic",
                "127.0.0.1",
                587,
                "starttls",
                "auth = \"oauth\"\n",
            ),
            account_toml(
                "ca",
                "generic",
                "127.0.0.1",
                587,
                "starttls",
                &format!(
                    "{auth}ca_file = \"{}/no-such-ca.pem\"\n",
                    sb.path().display()
                ),
            ),
        ]
        .concat(),
    );
    for (name, id) in [
        ("p465", "doctor-port-465-starttls"),
        ("p587", "doctor-port-587-implicit"),
        ("ms", "doctor-microsoft-465"),
        ("gpw", "doctor-auth-unsupported"),
        ("ounset", "doctor-oauth-unset"),
        ("ca", "doctor-ca-file-missing"),
    ] {
        let run = doctor(&sb, name, "pw", &["--json"]);
        run.code(78);
        found(&run, "config", id);
        assert_eq!(stage(&run.json(), "dns")["status"], "skipped", "{run}");
    }
    // port 25 is a warning: the run goes on (to whatever port 25 of this machine says)
    crate::relay_support::append_config(
        &sb,
        &account_toml("p25", "generic", "127.0.0.1", 25, "starttls", auth),
    );
    let run = doctor(&sb, "p25", "pw", &["--json", "--timeout", "2s"]);
    found(&run, "config", "doctor-port-25");
    assert_ne!(stage(&run.json(), "connect")["status"], "skipped", "{run}");

    // ---- names, inside a namespace whose resolv.conf names the test's own server ----
    let ns = crate::netns::Netns::isolated();
    let dns_port = free_port();
    /// The name server, stopped however the test ends (a failed assertion too).
    struct Stopped(std::process::Child);
    impl Drop for Stopped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut dns = Stopped(
        ns.exec(crate::relay_support::python().get_program())
            .arg(crate::relay_support::script("dns.py"))
            .arg(dns_port.to_string())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(dns.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "ready", "dns.py did not start");
    // 10 s per try: a lookup the doctor gives up on (after 2 s) is still in the resolver
    let resolv = sb.file(
        "resolv.conf",
        b"nameserver 127.0.0.1\noptions timeout:10 attempts:1\n",
    );
    let inside = |name: &str, timeout: &str| {
        sb.postie_via(|c| ns.wrap_with_resolver(c, &resolv))
            .args(["doctor", name, "--json", "--timeout", timeout])
            .env(DOCTOR_PW, "pw")
            .run()
    };
    for n in ["slow", "silent", "missing", "multi"] {
        crate::relay_support::append_config(
            &sb,
            &account_toml(
                n,
                "generic",
                &format!("{n}.postie.test"),
                dns_port,
                "starttls",
                auth,
            ),
        );
    }
    // TLS off for a server elsewhere: refused at the config (and no route from here anyway)
    crate::relay_support::append_config(
        &sb,
        &account_toml("plain", "generic", "192.0.2.1", 587, "none", auth),
    );
    let run = inside("plain", "2s");
    run.code(78);
    found(&run, "config", "doctor-plaintext");

    let run = inside("slow", "5s"); // answered after 2.5 s
    found(&run, "dns", "doctor-dns-slow");
    assert_eq!(stage(&run.json(), "dns")["status"], "warning", "{run}");
    let run = inside("missing", "5s");
    run.code(68); // EX_NOHOST
    found(&run, "dns", "doctor-dns-failed");
    let summary = stage(&run.json(), "dns")["explanation"]["summary"].clone();
    assert_eq!(
        summary, "The host name missing.postie.test does not resolve.",
        "{run}"
    );
    let started = std::time::Instant::now();
    let run = inside("silent", "2s");
    let took = started.elapsed();
    run.code(68);
    found(&run, "dns", "doctor-dns-timeout");
    let v = run.json();
    let x = &stage(&v, "dns")["explanation"];
    assert_eq!(x["retry"], "later", "{run}");
    assert!(
        x["fix"]
            .to_string()
            .contains("getent hosts silent.postie.test"),
        "{run}"
    );
    assert!(
        took < std::time::Duration::from_secs(6),
        "the run ended {took:?} after it started: it waited for the resolver's own 10 s"
    );
    // 127.0.0.1 refuses, 127.0.0.2 answers
    let run = inside("multi", "5s");
    found(&run, "connect", "doctor-some-addresses-fail");
    assert_eq!(stage(&run.json(), "connect")["status"], "warning", "{run}");
    drop(dns);
    drop(ns);

    // ---- connecting ----
    add(&sb, "refused", Peer::Aiosmtpd, free_port(), "starttls");
    let run = doctor(&sb, "refused", "pw", &["--json"]);
    found(&run, "connect", "doctor-connect-refused");
    let (mut holder, port) = unanswered_port();
    add(&sb, "dropped", Peer::Aiosmtpd, port, "starttls");
    let run = doctor(&sb, "dropped", "pw", &["--json", "--timeout", "2s"]);
    let _ = holder.kill();
    let _ = holder.wait();
    found(&run, "connect", "doctor-connect-timeout");

    // ---- TLS and the server's offer ----
    let peer = Peer::Aiosmtpd;
    add(&sb, "clear", peer, peers().port("AIOSMTPD_PLAIN"), "none");
    let run = doctor(&sb, "clear", peer.password(), &["--json"]);
    found(&run, "tls", "doctor-no-tls");
    let peer = Peer::TlsExpiring;
    add(&sb, "expiring", peer, peer.port(Tls::Implicit), "implicit");
    let run = doctor(&sb, "expiring", peer.password(), &["--json"]);
    run.success();
    found(&run, "tls", "doctor-cert-expiring");
    let peer = Peer::Aiosmtpd;
    add(&sb, "mixed", peer, peer.port(Tls::Implicit), "starttls");
    let run = doctor(&sb, "mixed", peer.password(), &["--json"]);
    found(&run, "tls", "doctor-implicit-tls-port");
    let peer = Peer::SmtpServer;
    add(&sb, "mech", peer, peer.port(Tls::StartTls), "starttls");
    set_mechanism(&sb, "mech", "OAUTHBEARER");
    let run = doctor(&sb, "mech", peer.password(), &["--json"]);
    found(&run, "ehlo", "doctor-auth-mechanism-missing");

    // ---- credentials ----
    let (user, password) = (peers().get("SECRET_USER"), peers().get("SECRET_PASSWORD"));
    add_as(
        &sb,
        "shape",
        "gmail",
        user,
        peers().port("AIOSMTPD_STARTTLS"),
        "starttls",
    );
    let run = doctor(&sb, "shape", password, &["--json"]);
    found(&run, "credentials", "doctor-app-password-shape");
    // OAuth set up but never signed in
    crate::oauth::add_account_for(
        &sb,
        "unsigned",
        peers().port("AIOSMTPD_STARTTLS"),
        "test-client",
    );
    let run = sb.postie().args(["doctor", "unsigned", "--json"]).run();
    found(&run, "credentials", "doctor-not-signed-in");
    // signed in, with a scope each provider's SMTP server refuses
    for (name, provider, scope, id) in [
        (
            "gscope",
            "gmail",
            "https://www.googleapis.com/auth/gmail.send",
            "doctor-google-scope",
        ),
        (
            "mscope",
            "office365",
            "https://graph.microsoft.com/Mail.Send offline_access",
            "doctor-microsoft-scope",
        ),
    ] {
        add_oauth_scoped(&sb, name, provider, scope);
        sign_in(&sb, name);
        let run = sb.postie().args(["doctor", name, "--json"]).run();
        found(&run, "credentials", id);
    }

    // ---- a config file others can write (a warning; everything else there passes) ----
    found(
        &doctor_with_a_config_others_can_write(),
        "config",
        "doctor-config-writable",
    );

    let catalog: BTreeSet<String> = postie::explain::finding_ids()
        .into_iter()
        .filter(|id| id.starts_with("doctor-"))
        .map(String::from)
        .collect();
    assert_eq!(
        catalog.difference(&reached).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "doctor entries no case here reaches"
    );
    assert_eq!(reached, catalog);
}

/// A Gmail account whose SMTP port cannot be reached: besides the firewall, the doctor says the
/// Gmail API goes over HTTPS, with the commands that add and sign in such an account.
#[test]
fn smtp_unreachable_suggests_the_https_transport_with_its_commands() {
    let sb = Sandbox::new();
    add_as(&sb, "gm", "gmail", "me@gmail.com", free_port(), "starttls");
    let run = doctor(&sb, "gm", "x", &["--json"]);
    run.code(69);
    let v = run.json();
    let details = stage(&v, "connect")["details"].to_string();
    assert!(
        details.contains("--transport gmail-api") && details.contains("postie login gm-https"),
        "{run}"
    );
}
