//! `postie relay`, `postie sendmail` and `postie queue` driven by real, independently written
//! clients (swaks, curl, msmtp, git send-email, s-nail, mutt), checked on what the upstream
//! peer stored.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use serde_json::Value;

use crate::relay_support::*;
use crate::spool::{assert_not_delivered, delivered, header_values};
use crate::support::*;

fn set(addrs: &[&str]) -> BTreeSet<String> {
    addrs.iter().map(|a| a.to_lowercase()).collect()
}

/// The CA of the relay's self-signed STARTTLS certificate.
fn relay_ca(sb: &Sandbox) -> PathBuf {
    sb.path().join("data/postie/relay-tls/ca.pem")
}

/// The `postie` binary the sandbox runs.
fn postie_bin(sb: &Sandbox) -> PathBuf {
    sb.std_postie().get_program().into()
}

/// A `sendmail` symlink to the postie binary, in the sandbox.
fn sendmail_link(sb: &Sandbox) -> PathBuf {
    let dir = sb.path().join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let link = dir.join("sendmail");
    if !link.exists() {
        std::os::unix::fs::symlink(postie_bin(sb), &link).unwrap();
    }
    link
}

/// `program` with the sandbox's environment (HOME, XDG dirs, secret store) and a timeout.
fn client(sb: &Sandbox, program: impl AsRef<std::ffi::OsStr>) -> assert_cmd::Command {
    let base = sb.std_postie();
    let mut cmd = assert_cmd::Command::new(program);
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.current_dir(sb.path()).timeout(Duration::from_secs(60));
    cmd
}

fn show(out: &Output) -> String {
    format!(
        "exit: {:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(cmd: &mut assert_cmd::Command) -> Output {
    let out = cmd.output().expect("run client");
    assert!(out.status.success(), "{cmd:?} failed\n{}", show(&out));
    out
}

/// A complete message with CRLF line endings, carrying `tok` in Subject, Message-ID and body,
/// and a line starting with a dot (the SMTP transparency rule must be undone on both hops).
fn message(tok: &str) -> Vec<u8> {
    format!(
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\n\
         Message-ID: <{tok}@example.test>\r\n\
         From: Alice <{FROM}>\r\n\
         To: Bob <{TO}>\r\n\
         Subject: {tok}\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\
         \r\n\
         Hello through the relay.\r\n\
         .a line that starts with a dot\r\n\
         ..and one with two\r\n\
         {tok}\r\n"
    )
    .into_bytes()
}

#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8]) {
    assert!(
        got == want,
        "stored bytes differ from the client's\n--- stored ---\n{}\n--- sent ---\n{}",
        String::from_utf8_lossy(got).escape_debug(),
        String::from_utf8_lossy(want).escape_debug()
    );
}

/// `postie queue list --json`'s messages.
fn queue_list(sb: &Sandbox) -> Vec<Value> {
    let run = sb.postie().args(["queue", "list", "--json"]).run();
    run.success();
    run.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The queue entry whose Message-ID is `<tok@example.test>`.
#[track_caller]
fn queued_by_message_id(sb: &Sandbox, tok: &str) -> Value {
    let want = format!("<{tok}@example.test>");
    let msgs = queue_list(sb);
    msgs.iter()
        .find(|m| m["message_id"] == want.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("no queued message has Message-ID {want}: {msgs:#?}"))
}

fn swaks(sb: &Sandbox, port: u16, from: &str, data: &Path) -> assert_cmd::Command {
    let mut cmd = client(sb, "swaks");
    cmd.args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--from", from, "--to", TO, "--data"])
        .arg(format!("@{}", data.display()));
    cmd
}

/// swaks, with and without STARTTLS (verifying the relay's certificate against its CA): the
/// upstream peer stores exactly what swaks sent.
#[test]
fn swaks_message_arrives_byte_for_byte() {
    let (sb, relay) = relay_for(Peer::Aiosmtpd, FROM, "");
    for tls in [true, false] {
        let tok = token(if tls { "swaks-starttls" } else { "swaks-plain" });
        let msg = message(&tok);
        let file = sb.file(&format!("{tok}.eml"), &msg);
        let mut cmd = swaks(&sb, relay.port, FROM, &file);
        if tls {
            cmd.args(["--tls", "--tls-verify", "--tls-ca-path"])
                .arg(relay_ca(&sb));
        }
        ok(&mut cmd);
        let d = delivered(Peer::Aiosmtpd, &tok, 1);
        assert_eq!(d.copies.len(), 1, "delivered more than once");
        assert_eq!(d.mail_from, FROM);
        assert_eq!(d.rcpt_tos, set(&[TO]));
        assert_eq!(d.auth_user.as_deref(), Some(Peer::Aiosmtpd.user()));
        // swaks always writes CRLF "." CRLF after the data, so a file that ends with CRLF is
        // sent with one more (empty) line: that is the message swaks sent.
        let mut sent = msg.clone();
        sent.extend_from_slice(b"\r\n");
        assert_bytes(&d.copies[0].1, &sent);
    }
}

/// curl's SMTP upload, plain and with STARTTLS required, to Nodemailer's smtp-server upstream.
#[test]
fn curl_upload_arrives_byte_for_byte() {
    let (sb, relay) = relay_for(Peer::SmtpServer, FROM, "");
    for tls in [false, true] {
        let tok = token(if tls { "curl-starttls" } else { "curl-plain" });
        let msg = message(&tok);
        let file = sb.file(&format!("{tok}.eml"), &msg);
        let mut cmd = client(&sb, "curl");
        cmd.args(["-sS", &format!("smtp://127.0.0.1:{}", relay.port)])
            .args(["--mail-from", FROM, "--mail-rcpt", TO, "-T"])
            .arg(&file);
        if tls {
            cmd.args(["--ssl-reqd", "-k"]);
        }
        ok(&mut cmd);
        let d = delivered(Peer::SmtpServer, &tok, 1);
        assert_eq!(d.copies.len(), 1, "delivered more than once");
        assert_eq!(d.mail_from, FROM);
        assert_eq!(d.rcpt_tos, set(&[TO]));
        assert_bytes(&d.copies[0].1, &msg);
    }
}

/// msmtp without TLS, and with STARTTLS and certificate checking off.
#[test]
fn msmtp_message_arrives_byte_for_byte() {
    let (sb, relay) = relay_for(Peer::Aiosmtpd, FROM, "");
    for tls in [false, true] {
        let tok = token(if tls { "msmtp-starttls" } else { "msmtp-plain" });
        // the message has Date and Message-ID, so msmtp adds neither
        let msg = message(&tok);
        let mut cmd = client(&sb, "msmtp");
        cmd.args(["--host=127.0.0.1", &format!("--port={}", relay.port)])
            .arg("--auth=off");
        if tls {
            cmd.args(["--tls=on", "--tls-starttls=on", "--tls-certcheck=off"]);
        } else {
            cmd.arg("--tls=off");
        }
        cmd.arg(format!("--from={FROM}"))
            .args(["--", TO])
            .write_stdin(msg.clone());
        ok(&mut cmd);
        let d = delivered(Peer::Aiosmtpd, &tok, 1);
        assert_eq!(d.mail_from, FROM);
        assert_eq!(d.rcpt_tos, set(&[TO]));
        assert_bytes(&d.copies[0].1, &msg);
    }
}

/// A tiny repository with one commit whose subject carries `tok`; returns its patch file.
fn git_patch(sb: &Sandbox, tok: &str) -> PathBuf {
    let repo = sb.path().join(format!("repo-{tok}"));
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README"), format!("{tok}\n")).unwrap();
    for args in [
        &["init", "-q"][..],
        &["add", "README"],
        &["commit", "-q", "-m", &format!("{tok} subject")],
    ] {
        ok(git(sb).current_dir(&repo).args(args));
    }
    let out = ok(git(sb)
        .current_dir(&repo)
        .args(["format-patch", "-1", "-o"])
        .arg(sb.path().join(format!("patches-{tok}"))));
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

fn git(sb: &Sandbox) -> assert_cmd::Command {
    let mut cmd = client(sb, "git");
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", FROM)
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", FROM);
    cmd
}

fn send_email(sb: &Sandbox, patch: &Path, smtp_server: &Path) -> assert_cmd::Command {
    let mut cmd = git(sb);
    cmd.arg("send-email")
        .arg(format!("--smtp-server={}", smtp_server.display()))
        .args([
            &format!("--from={FROM}"),
            &format!("--to={TO}"),
            "--confirm=never",
            "--suppress-cc=all",
        ]);
    cmd.arg(patch);
    cmd
}

/// git send-email over SMTP with STARTTLS (verified against the relay's CA), then with postie
/// as its sendmail (a `sendmail` symlink), both to Postfix upstream.
#[test]
fn git_send_email_via_relay_and_as_sendmail() {
    let (sb, relay) = relay_for(Peer::Postfix, FROM, "");

    let tok = token("git-smtp");
    let patch = git_patch(&sb, &tok);
    let mut cmd = send_email(&sb, &patch, Path::new("127.0.0.1"));
    cmd.arg(format!("--smtp-server-port={}", relay.port))
        .arg("--smtp-encryption=tls")
        .arg(format!("--smtp-ssl-cert-path={}", relay_ca(&sb).display()));
    ok(&mut cmd);
    let d = delivered(Peer::Postfix, &tok, 1);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO]));
    let m = d.mime();
    assert_eq!(m.header("Subject"), format!("[PATCH] {tok} subject"));
    assert!(m.header("X-Mailer").starts_with("git-send-email"));

    let tok = token("git-sendmail");
    let patch = git_patch(&sb, &tok);
    let mut cmd = send_email(&sb, &patch, &sendmail_link(&sb));
    cmd.env(UPSTREAM_PW_VAR, Peer::Postfix.password());
    ok(&mut cmd);
    let d = delivered(Peer::Postfix, &tok, 1);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO]));
    assert_eq!(d.mime().header("Subject"), format!("[PATCH] {tok} subject"));
}

/// s-nail's built-in SMTP client, plain and with STARTTLS verified against the relay's CA.
#[test]
fn s_nail_sends_through_relay() {
    let (sb, relay) = relay_for(Peer::SmtpServer, FROM, "");
    for tls in [false, true] {
        let tok = token(if tls { "snail-starttls" } else { "snail-plain" });
        // s-nail 14.9 matches the certificate against DNS names only, not IP addresses ("TLS
        // certificate does not match: 127.0.0.1:PORT" although the relay's certificate has an
        // IP SAN for it), so the STARTTLS run names the host `localhost`
        let host = if tls { "localhost" } else { "127.0.0.1" };
        let mut cmd = client(&sb, "s-nail");
        cmd.args(["-n", "-S", "v15-compat", "-S", "smtp-auth=none", "-S"])
            .arg(format!("mta=smtp://{host}:{}", relay.port));
        if tls {
            cmd.args(["-S", "smtp-use-starttls", "-S", "tls-verify=strict", "-S"])
                .arg(format!("tls-ca-file={}", relay_ca(&sb).display()));
        }
        cmd.args(["-s", &tok, "-r", FROM, TO])
            .write_stdin(format!("Body of {tok}\n"));
        ok(&mut cmd);
        let d = delivered(Peer::SmtpServer, &tok, 1);
        assert_eq!(d.mail_from, FROM);
        assert_eq!(d.rcpt_tos, set(&[TO]));
        let m = d.mime();
        assert_eq!(m.header("Subject"), tok);
        assert!(m.header("From").contains(FROM));
        assert!(m.texts("text/plain").iter().any(|t| t.contains(&tok)));
    }
}

/// mutt (Debian's, with SMTP and GnuTLS), plain and with STARTTLS forced and verified.
#[test]
fn mutt_sends_through_relay() {
    let (sb, relay) = relay_for(Peer::Aiosmtpd, FROM, "");
    for tls in [false, true] {
        let tok = token(if tls { "mutt-starttls" } else { "mutt-plain" });
        let mut settings = format!(
            "set smtp_url=smtp://127.0.0.1:{}/; set from={FROM}; set record=; ",
            relay.port
        );
        settings += if tls {
            "set ssl_starttls=yes; set ssl_force_tls=yes; "
        } else {
            "set ssl_starttls=no; set ssl_force_tls=no"
        };
        if tls {
            settings += &format!("set ssl_ca_certificates_file={}", relay_ca(&sb).display());
        }
        let mut cmd = client(&sb, "mutt");
        cmd.args(["-n", "-F", "/dev/null", "-e", &settings, "-s", &tok, TO])
            .write_stdin(format!("Body of {tok}\n"));
        ok(&mut cmd);
        let d = delivered(Peer::Aiosmtpd, &tok, 1);
        assert_eq!(d.mail_from, FROM);
        assert_eq!(d.rcpt_tos, set(&[TO]));
        let m = d.mime();
        assert_eq!(m.header("Subject"), tok);
        assert!(m.texts("text/plain").iter().any(|t| t.contains(&tok)));
    }
}

/// `postie sendmail -t -i`: To, Cc and Bcc all receive, the Bcc header is gone, and the queue
/// shows the message sent. Then a `sendmail` symlink with `-f SENDER RCPT`.
#[test]
fn sendmail_t_reads_recipients_and_drops_bcc() {
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", FROM, Peer::Aiosmtpd);
    let tok = token("sendmail-t");
    // LF line endings, as programs hand messages to sendmail; a lone "." must not end it (-i)
    let msg = format!(
        "From: {FROM}\nTo: {TO}\nCc: {CC}\nBcc: {BCC}\nSubject: {tok}\n\
         Message-ID: <{tok}@example.test>\n\nfirst line\n.\nafter the dot {tok}\n"
    );
    sb.postie()
        .args(["sendmail", "-t", "-i"])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .stdin(msg)
        .run()
        .success();
    let d = delivered(Peer::Aiosmtpd, &tok, 3);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO, CC, BCC]));
    let bytes = &d.copies[0].1;
    assert!(header_values(bytes, "Bcc").is_empty(), "Bcc header kept");
    assert!(!contains(bytes, BCC.as_bytes()), "the Bcc address leaked");
    assert!(
        contains(bytes, format!("\n.\r\nafter the dot {tok}").as_bytes())
            || contains(bytes, format!("\n.\nafter the dot {tok}").as_bytes()),
        "the lone dot line was not kept: {}",
        String::from_utf8_lossy(bytes)
    );
    let q = queued_by_message_id(&sb, &tok);
    assert_eq!(q["state"], "sent", "{q:#}");
    assert_eq!(q["source"], "sendmail", "{q:#}");
    assert_eq!(q["counts"]["sent"], 3, "{q:#}");

    let tok2 = token("sendmail-link");
    let mut cmd = client(&sb, sendmail_link(&sb));
    cmd.args(["-f", FROM, TO])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .write_stdin(format!("Subject: {tok2}\n\nvia the symlink {tok2}\n"));
    ok(&mut cmd);
    let d = delivered(Peer::Aiosmtpd, &tok2, 1);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO]));

    // the queue lists the relay's messages with their Subject; a sendmail one should too
    assert_eq!(q["subject"], tok.as_str(), "{q:#}");
}

/// A message without From gets `From: "NAME" <ADDR>` from -F and -f, or
/// the account's address without -f, as sendmail does; usage errors name sendmail's flags.
#[test]
fn sendmail_adds_the_from_a_message_lacks() {
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", FROM, Peer::Aiosmtpd);
    let tok = token("sendmail-F");
    let mut cmd = client(&sb, sendmail_link(&sb));
    cmd.args(["-F", "Me Myself", "-f", FROM, TO])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .write_stdin(format!("Subject: {tok}\n\nno From, no To {tok}\n"));
    ok(&mut cmd);
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.mail_from, FROM);
    let from = header_values(&d.copies[0].1, "From");
    assert_eq!(from, [format!("\"Me Myself\" <{FROM}>")], "From headers");

    let tok = token("sendmail-no-f");
    let mut cmd = client(&sb, sendmail_link(&sb));
    cmd.args(["-t", "-i"])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .write_stdin(format!(
            "To: {TO}\nSubject: {tok}\n\nthe account's address {tok}\n"
        ));
    ok(&mut cmd);
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(header_values(&d.copies[0].1, "From"), [FROM.to_string()]);

    // no recipient: the fix is said in sendmail's terms
    let out = client(&sb, sendmail_link(&sb))
        .args(["-f", FROM])
        .write_stdin("Subject: x\n\nx\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64), "{}", show(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("-t") && !err.contains("--to"), "{err}");
}

/// One refused recipient: exit 67, the other recipient delivered, `queue show` tells which.
#[test]
fn sendmail_refused_recipient_exits_67() {
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", FROM, Peer::Aiosmtpd);
    let refused = peers().get("REFUSED_RCPT");
    let tok = token("sendmail-refused");
    let run = sb
        .postie()
        .args(["sendmail", "-f", FROM, TO, refused])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .stdin(format!(
            "From: {FROM}\nTo: {TO}\nSubject: {tok}\nMessage-ID: <{tok}@example.test>\n\n{tok}\n"
        ))
        .run();
    run.code(exit::NOUSER);
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.rcpt_tos, set(&[TO]));

    let id = queued_by_message_id(&sb, &tok)["id"].to_string();
    let show = sb.postie().args(["queue", "show", &id, "--json"]).run();
    show.success();
    let rcpts = show.json()["recipients"].as_array().cloned().unwrap();
    let by = |addr: &str| {
        rcpts
            .iter()
            .find(|r| r["address"] == addr)
            .cloned()
            .unwrap_or_else(|| panic!("{addr} missing from {rcpts:#?}"))
    };
    assert_eq!(by(refused)["state"], "failed", "{show}");
    assert_eq!(by(refused)["reply"]["code"], 550, "{show}");
    assert_eq!(by(TO)["state"], "sent", "{show}");
    // what sendmail prints must be the refusal, not the other recipient's 250
    run.stderr_mentions(&[refused, "550"]);
}

/// A sender that matches no account, in the envelope and in From: swaks sees the 550 naming
/// the account, nothing is delivered or queued. (The relay routes by the envelope sender, else
/// by the From: address, so it can only refuse after DATA.)
#[test]
fn unknown_sender_is_refused_with_account_names() {
    let (sb, relay) = relay_for(Peer::Aiosmtpd, FROM, "");
    let tok = token("unknown-sender");
    let mallory = "mallory@example.test";
    let msg = String::from_utf8(message(&tok)).unwrap().replace(
        &format!("From: Alice <{FROM}>"),
        &format!("From: <{mallory}>"),
    );
    let file = sb.file("m.eml", msg.as_bytes());
    let out = swaks(&sb, relay.port, mallory, &file).output().unwrap();
    assert!(!out.status.success(), "swaks succeeded\n{}", show(&out));
    let text = show(&out);
    let reply = text
        .lines()
        .find(|l| l.contains(" 550 "))
        .unwrap_or_else(|| panic!("no 550 reply\n{text}"));
    assert!(
        reply.contains("ali") && reply.contains(FROM),
        "the 550 does not name the account: {reply}"
    );
    assert!(queue_list(&sb).is_empty(), "queued: {:#?}", queue_list(&sb));
    std::thread::sleep(Duration::from_secs(1));
    assert_not_delivered(Peer::Aiosmtpd, &tok);

    // an unknown envelope sender with the account's From: goes out as the account
    let tok = token("unknown-envelope");
    let file = sb.file("m2.eml", &message(&tok));
    ok(&mut swaks(&sb, relay.port, mallory, &file));
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO]));
}

/// Two accounts with one address (the default `sb1`, and
/// `aaa`, which sorts first and whose password is missing): sendmail sends
/// through the default; with neither the default, it refuses naming both.
#[test]
fn an_address_two_accounts_share_goes_through_the_default() {
    let sb = Sandbox::new();
    add_password_account(&sb, "sb1", FROM, Peer::Aiosmtpd);
    sb.postie()
        .args(["account", "add", "aaa", "--provider", "generic"])
        .opt("--host", "127.0.0.1")
        .opt("--port", Peer::Aiosmtpd.port(Tls::StartTls).to_string())
        .opt("--email", FROM)
        .opt("--password-env", "POSTIE_TEST_SURELY_UNSET")
        .opt("--ca-file", peers().ca())
        .run()
        .success()
        .stderr_mentions(&["also that of sb1"]);
    let tok = token("shared-address");
    sb.postie()
        .args(["sendmail", "-t", "-i"])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .stdin(format!(
            "From: {FROM}\nTo: {TO}\nSubject: {tok}\nMessage-ID: <{tok}@example.test>\n\nx\n"
        ))
        .run()
        .success();
    let q = queued_by_message_id(&sb, &tok);
    assert_eq!(q["account"], "sb1", "{q:#}");
    assert_eq!(q["state"], "sent", "{q:#}");
    delivered(Peer::Aiosmtpd, &tok, 1);

    // Neither is the default now: refused, naming them, nothing queued.
    let cfg = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, text.replace("default_account = \"sb1\"\n", "")).unwrap();
    let tok2 = token("shared-refused");
    let run = sb
        .postie()
        .args(["sendmail", "-t", "-i"])
        .stdin(format!("From: {FROM}\nTo: {TO}\nSubject: {tok2}\n\nx\n"))
        .run();
    run.code(78)
        .stderr_mentions(&["aaa, sb1", "default_account"]);
    assert!(
        !queue_list(&sb)
            .iter()
            .any(|m| m["subject"] == tok2.as_str()),
        "queued anyway"
    );
}

/// The relay applies the same policy to what it receives as
/// `send --raw` and `sendmail` do. A message without Date and Message-ID is
/// delivered with both added before its own bytes, unchanged; a message with
/// no header section, or no From, is refused at the end of its data (swaks
/// sees the 550 and the reason), and nothing is queued or delivered.
#[test]
fn relay_completes_or_refuses_malformed_messages() {
    let (sb, relay) = relay_for(Peer::Aiosmtpd, FROM, "");
    // small (completed at the end of DATA) and larger than what the relay holds before
    // writing to its spool (completed before the first write)
    for lines in [1, 5_000] {
        let tok = token("relay-no-date");
        let filler = "a line of the body, long enough to add up quickly\r\n".repeat(lines);
        let bare = format!("From: {FROM}\r\nTo: {TO}\r\nSubject: {tok}\r\n\r\n{filler}{tok}\r\n");
        let file = sb.file("bare.eml", bare.as_bytes());
        ok(&mut swaks(&sb, relay.port, FROM, &file));
        let d = delivered(Peer::Aiosmtpd, &tok, 1);
        let got = String::from_utf8_lossy(&d.copies[0].1).into_owned();
        let (added, rest) = got
            .split_once("From: ")
            .unwrap_or_else(|| panic!("no From in\n{got}"));
        assert!(
            rest.starts_with(&bare["From: ".len()..bare.len() - 2]),
            "the message's own bytes changed\n{got}"
        );
        let added: Vec<&str> = added.split("\r\n").filter(|l| !l.is_empty()).collect();
        assert_eq!(added.len(), 2, "added lines: {added:?}");
        assert!(
            added[0].starts_with("Message-ID: <") && added[0].ends_with("@example.test>"),
            "{added:?}"
        );
        assert!(added[1].starts_with("Date: "), "{added:?}");
        // RFC 5322 date-time, as mail_parser (an independent parser) reads it
        let date = mail_parser::MessageParser::default()
            .parse_headers(got.as_bytes())
            .and_then(|m| m.date().cloned());
        assert!(date.is_some(), "Date does not parse: {}", added[1]);
    }

    for (name, data) in [
        (
            "no-header",
            format!("just some words\r\nand more {}\r\n", token("nohdr")),
        ),
        (
            "no-from",
            format!("To: {TO}\r\nSubject: {}\r\n\r\nbody\r\n", token("nofrom")),
        ),
    ] {
        let file = sb.file(&format!("{name}.eml"), data.as_bytes());
        let out = swaks(&sb, relay.port, FROM, &file).output().unwrap();
        assert!(
            !out.status.success(),
            "{name}: swaks succeeded\n{}",
            show(&out)
        );
        let text = show(&out);
        let reply = text
            .lines()
            .find(|l| l.contains(" 550 5.6.0"))
            .unwrap_or_else(|| panic!("{name}: no 550 5.6.0 reply\n{text}"));
        let why = if name == "no-header" {
            "header"
        } else {
            "From"
        };
        assert!(reply.contains(why), "{name}: {reply}");
    }
    let queued = queue_list(&sb);
    assert_eq!(queued.len(), 2, "queued: {queued:#?}");
}
