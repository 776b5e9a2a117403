//! `postie sandbox` against independent clients: Python's smtplib running the article's three
//! functions, curl, msmtp, swaks, headless Chromium on the consent page, and postie itself. Each
//! test runs its own sandbox on free loopback ports, in its own data directory (the default one
//! of the test's isolated XDG_DATA_HOME, so `--provider sandbox` finds the CA by itself).

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::relay_support::{python, script};
use crate::support::*;

const USER: &str = "me@sandbox.postie.test";
const ACCOUNT_PW: &str = "correct-horse-battery-staple";
const APP_PW: &str = "abcd efgh ijkl mnop";
const MAIL_SCOPE: &str = "https://mail.google.com/";
const CLIENT: &str = "postie-sandbox";

/// A running `postie sandbox --json`; SIGTERM on drop.
struct SandboxProc {
    child: Child,
    info: Value,
    log: Arc<Mutex<Vec<String>>>,
}

impl SandboxProc {
    fn start(sb: &Sandbox, extra: &[&str]) -> SandboxProc {
        let mut child = sb
            .std_postie()
            .args(["sandbox", "--json", "--smtp-port", "0", "--smtps-port", "0"])
            .args(["--http-port", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postie sandbox");
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let l2 = log.clone();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(out).lines();
            if let Some(Ok(l)) = lines.next() {
                let _ = tx.send(l);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "postie sandbox printed no ready line:\n{}",
                    log.lock().unwrap().join("\n")
                );
            }
        };
        let info: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("the ready line is not JSON ({e}): {line}"));
        SandboxProc { child, info, log }
    }

    fn port(&self, key: &str) -> u16 {
        let a = self.info[key].as_str().unwrap();
        a.rsplit_once(':').unwrap().1.parse().unwrap()
    }

    fn smtp(&self) -> u16 {
        self.port("smtp")
    }

    fn smtps(&self) -> u16 {
        self.port("smtps")
    }

    fn issuer(&self) -> String {
        self.info["issuer"].as_str().unwrap().to_string()
    }

    fn ca(&self) -> String {
        self.info["ca_file"].as_str().unwrap().to_string()
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for SandboxProc {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
    }
}

/// What `postie sandbox messages --json` lists.
fn messages(sb: &Sandbox) -> Vec<Value> {
    let run = sb.postie().args(["sandbox", "messages", "--json"]).run();
    run.success();
    run.json()["messages"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The one stored message whose subject is `subject`.
#[track_caller]
fn stored(sb: &Sandbox, subject: &str) -> Value {
    let all = messages(sb);
    let found: Vec<&Value> = all.iter().filter(|m| m["subject"] == subject).collect();
    assert_eq!(found.len(), 1, "messages with subject {subject}: {all:#?}");
    found[0].clone()
}

#[track_caller]
fn not_stored(sb: &Sandbox, subject: &str) {
    let all = messages(sb);
    assert!(
        all.iter().all(|m| m["subject"] != subject),
        "{subject} was stored: {all:#?}"
    );
}

/// Runs a program; returns (exit code, stdout, stderr).
fn run(cmd: &mut std::process::Command) -> (Option<i32>, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// curl returning JSON and its HTTP status.
fn curl_json(args: &[&str]) -> (u16, Value) {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "-w", "\n%{http_code}"]).args(args);
    let (code, out, err) = run(&mut c);
    assert_eq!(code, Some(0), "curl {args:?}: {err}");
    let (body, status) = out.trim_end().rsplit_once('\n').unwrap();
    let v = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_string()));
    (status.parse().unwrap(), v)
}

/// Tokens from the device flow, approved by POSTing the verification page's form as a person's
/// browser would.
fn device_tokens(sp: &SandboxProc) -> Value {
    let iss = sp.issuer();
    let (status, dc) = curl_json(&[
        "-d",
        &format!("client_id={CLIENT}"),
        "--data-urlencode",
        &format!("scope={MAIL_SCOPE}"),
        &format!("{iss}/device/code"),
    ]);
    assert_eq!(status, 200, "{dc}");
    let user_code = dc["user_code"].as_str().unwrap();
    approve_device(&iss, user_code);
    let (status, t) = curl_json(&[
        "-d",
        "grant_type=urn:ietf:params:oauth:grant-type:device_code",
        "-d",
        &format!("client_id={CLIENT}"),
        "--data-urlencode",
        &format!("device_code={}", dc["device_code"].as_str().unwrap()),
        &format!("{iss}/token"),
    ]);
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["scope"], MAIL_SCOPE);
    assert_eq!(t["token_type"], "Bearer");
    t
}

fn approve_device(issuer: &str, user_code: &str) {
    let mut c = std::process::Command::new("curl");
    c.args(["-sS", "-d", &format!("user_code={user_code}")])
        .args([
            "--data-urlencode",
            &format!("user={USER}"),
            "-d",
            "action=allow",
        ])
        .arg(format!("{issuer}/device"));
    let (code, page, err) = run(&mut c);
    assert_eq!(code, Some(0), "{err}");
    assert!(page.contains("Device connected"), "{page}");
}

/// The article's script (tests/peers/article.py, smtplib's debug output on stderr) against the
/// sandbox's STARTTLS port.
fn article(sp: &SandboxProc, mode: &str, secret: &str, subject: &str) -> (String, String) {
    let message = format!("This is a test email.\n{subject}");
    let (code, out, err) = run(python()
        .arg(script("article.py"))
        .env("ARTICLE_SMTP_HOST", "127.0.0.1")
        .env("ARTICLE_SMTP_PORT", sp.smtp().to_string())
        .env("ARTICLE_SMTP_DEBUG", "1")
        .args([mode, USER, secret, TO, subject, &message]));
    assert_eq!(code, Some(0), "{out}\n{err}");
    (out, err)
}

/// Asserts a line of a Gmail reply: `prefix`, Google's per-session id, ` - gsmtp`.
#[track_caller]
fn gmail_tail(line: &str, prefix: &str, suffix_after_id: &str) {
    let rest = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{line:?} does not start with {prefix:?}"));
    let id = rest
        .strip_suffix(suffix_after_id)
        .unwrap_or_else(|| panic!("{line:?} does not end with {suffix_after_id:?}"))
        .strip_suffix(" - gsmtp")
        .unwrap_or_else(|| panic!("{line:?} does not end with ' - gsmtp'"));
    assert!(
        id.contains("sm") && id.contains('.') && !id.contains(' '),
        "no Google-style session id in {line:?}"
    );
}

/// The first line of `text` that contains `needle`.
#[track_caller]
fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
    text.lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{text}"))
}

/// The article, first two functions: the account password is refused with Gmail's 534 (both
/// lines), a wrong one with 535, the app password delivers.
#[test]
fn article_account_password_refused_app_password_delivers() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);

    let subject = token("sb-article-plain");
    let (out, err) = article(&sp, "plain", ACCOUNT_PW, &subject);
    let printed = line_with(&out, "An error occurred");
    gmail_tail(
        printed,
        "An error occurred: (534, b'5.7.9 Application-specific password required. For more \
         information, go to\\n5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor ",
        "')",
    );
    assert!(
        err.contains(
            "reply: b'534-5.7.9 Application-specific password required. For more information, go to\\r\\n'"
        ),
        "{err}"
    );
    not_stored(&sb, &subject);

    let (out, _) = article(&sp, "plain", "not the password", &subject);
    gmail_tail(
        line_with(&out, "An error occurred"),
        "An error occurred: (535, b'5.7.8 Username and Password not accepted. For more \
         information, go to\\n5.7.8  https://support.google.com/mail/?p=BadCredentials ",
        "')",
    );
    not_stored(&sb, &subject);

    let (out, err) = article(&sp, "app", APP_PW, &subject);
    assert_eq!(
        out.trim(),
        "Email sent successfully using app password!",
        "{err}"
    );
    let m = stored(&sb, &subject);
    assert_eq!(m["user"], USER);
    assert_eq!(m["mechanism"], "PLAIN");
    assert_eq!(m["recipients"], serde_json::json!([TO]));
    // Gmail's replies on the way: 235, and the data reply with a timestamp and the id.
    assert!(err.contains("reply: b'235 2.7.0 Accepted\\r\\n'"), "{err}");
    let data = line_with(&err, "reply: b'250 2.0.0 OK  ");
    assert!(data.ends_with(" - gsmtp\\r\\n'"), "{data}");
}

/// The article's third function: its raw `docmd('AUTH', 'XOAUTH2 ' + auth_string)` is refused
/// with `501 5.5.2` because the string is not base64 (as Gmail refuses it), so MAIL then meets
/// `530 5.7.0 Authentication Required`; with the string base64-encoded the same token delivers.
#[test]
fn article_raw_xoauth2_refused_base64_delivers() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let tokens = device_tokens(&sp);
    let access = tokens["access_token"].as_str().unwrap();

    let subject = token("sb-article-oauth");
    let (out, err) = article(&sp, "oauth", access, &subject);
    let reply = line_with(&err, "reply: b'501 ");
    gmail_tail(
        reply,
        "reply: b'501 5.5.2 Syntax error, cannot decode response ",
        "\\r\\n'",
    );
    let printed = line_with(&out, "An error occurred");
    assert!(
        printed.starts_with(
            "An error occurred: (530, b'5.7.0 Authentication Required. For more information, go to\\n\
             5.7.0  https://support.google.com/mail/?p=WantAuthError "
        ),
        "{printed}"
    );
    not_stored(&sb, &subject);

    let (out, err) = article(&sp, "oauth-fixed", access, &subject);
    assert_eq!(out.trim(), "Email sent successfully using OAuth2!", "{err}");
    let m = stored(&sb, &subject);
    assert_eq!(
        (m["user"].as_str(), m["mechanism"].as_str()),
        (Some(USER), Some("XOAUTH2"))
    );
}

/// A token the sandbox never issued: the XOAUTH2 error flow of Google's documentation (334 with
/// the JSON error, the client's empty line, then 535 5.7.8), for XOAUTH2 from smtplib and
/// OAUTHBEARER from curl (whose answer to the challenge is `AQ==`).
#[test]
fn bad_token_gets_the_json_challenge_then_535() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let code = format!(
        "import smtplib, sys\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         s.set_debuglevel(1)\n\
         s.starttls(); s.ehlo()\n\
         try:\n\
         \x20   s.auth('XOAUTH2', lambda ch=None: 'user={USER}\\x01auth=Bearer ya29.forged\\x01\\x01' if ch is None else '')\n\
         except smtplib.SMTPAuthenticationError as e:\n\
         \x20   print(e.smtp_code, e.smtp_error.decode())\n",
        port = sp.smtp()
    );
    let (status, out, err) = run(python().args(["-c", &code]));
    assert_eq!(status, Some(0), "{out}\n{err}");
    let challenge = line_with(&err, "reply: b'334 ");
    let b64 = challenge
        .strip_prefix("reply: b'334 ")
        .unwrap()
        .strip_suffix("\\r\\n'")
        .unwrap();
    assert_eq!(
        b64,
        base64(br#"{"status":"401","schemes":"Bearer","scope":"https://mail.google.com/"}"#)
    );
    assert!(
        out.starts_with(
            "535 5.7.8 Username and Password not accepted. For more information, go to\n\
             5.7.8  https://support.google.com/mail/?p=BadCredentials "
        ),
        "{out}"
    );

    // curl over implicit TLS, OAUTHBEARER.
    let msg = sb.file("m.eml", b"Subject: forged\r\n\r\nx\r\n");
    let (code, _, err) = run(std::process::Command::new("curl")
        .args(["-sS", "-v", "--url"])
        .arg(format!("smtps://127.0.0.1:{}", sp.smtps()))
        .args(["--cacert", &sp.ca(), "--mail-from", USER, "--mail-rcpt", TO])
        .args([
            "--user",
            &format!("{USER}:"),
            "--oauth2-bearer",
            "ya29.forged",
        ])
        .arg("--upload-file")
        .arg(&msg));
    assert_eq!(code, Some(67), "curl: login denied\n{err}");
    assert!(err.contains("> AUTH OAUTHBEARER"), "{err}");
    assert!(err.contains("< 334 eyJzdGF0dXMiOiI0MDEi"), "{err}");
    assert!(err.contains("> AQ=="), "{err}");
    assert!(
        err.contains("< 535-5.7.8 Username and Password not accepted. For more information, go to"),
        "{err}"
    );
    not_stored(&sb, "forged");
}

/// The sandbox is as strict as Gmail where hand-written smtplib code goes
/// wrong: a path without angle brackets is `555 5.5.2`, DATA before any RCPT is `503 5.5.1 RCPT
/// first.`, and RSET answers `250 2.1.5 Flushed` (Gmail's texts, with the session tail).
#[test]
fn sandbox_is_as_strict_as_gmail_with_hand_written_commands() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let code = format!(
        "import smtplib\n\
         s = smtplib.SMTP('127.0.0.1', {port})\n\
         s.starttls(); s.ehlo(); s.login('{USER}', '{APP_PW}')\n\
         for cmd in ['MAIL FROM:{USER}', 'MAIL FROM:<{USER}>', 'RCPT TO:{TO}', 'DATA', 'RSET',\n\
         \x20           'MAIL FROM:<{USER}>', 'RCPT TO:<{TO}>', 'RSET']:\n\
         \x20   code, text = s.docmd(cmd)\n\
         \x20   print(cmd, '=>', code, text.decode())\n",
        port = sp.smtp()
    );
    let (status, out, err) = run(python().args(["-c", &code]));
    assert_eq!(status, Some(0), "{out}\n{err}");
    let replies: Vec<&str> = out
        .lines()
        .map(|l| l.split_once(" => ").unwrap().1)
        .collect();
    let want = [
        "555 5.5.2 Syntax error.",
        "250 2.1.0 OK",
        "555 5.5.2 Syntax error.",
        "503 5.5.1 RCPT first.",
        "250 2.1.5 Flushed",
        "250 2.1.0 OK",
        "250 2.1.5 OK",
        "250 2.1.5 Flushed",
    ];
    assert_eq!(replies.len(), want.len(), "{out}");
    for (got, want) in replies.iter().zip(want) {
        assert!(
            got.starts_with(want) && got.ends_with(" - gsmtp"),
            "expected {want:?} with Gmail's session tail, got {got:?}\n{out}"
        );
    }
}

/// curl `--oauth2-bearer` over implicit TLS with a token from the sandbox's device flow, trusting
/// the sandbox's CA: delivered, and the EHLO after TLS is Gmail's.
#[test]
fn curl_oauth2_bearer_over_smtps() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let t = device_tokens(&sp);
    let subject = token("sb-curl");
    let msg = sb.file(
        "m.eml",
        format!("From: {USER}\r\nTo: {TO}\r\nSubject: {subject}\r\n\r\nhello\r\n").as_bytes(),
    );
    let (code, _, err) = run(std::process::Command::new("curl")
        .args(["-sS", "-v", "--url"])
        .arg(format!("smtps://127.0.0.1:{}", sp.smtps()))
        .args(["--cacert", &sp.ca(), "--mail-from", USER, "--mail-rcpt", TO])
        .args(["--user", &format!("{USER}:")])
        .args(["--oauth2-bearer", t["access_token"].as_str().unwrap()])
        .arg("--upload-file")
        .arg(&msg));
    assert_eq!(code, Some(0), "{err}");
    for l in [
        "< 250-SIZE 35882577",
        "< 250-8BITMIME",
        "AUTH LOGIN PLAIN XOAUTH2 OAUTHBEARER",
        "< 250-ENHANCEDSTATUSCODES",
        "< 250-PIPELINING",
        "< 250-CHUNKING",
        "< 235 2.7.0 Accepted",
    ] {
        assert!(err.contains(l), "no {l:?} in\n{err}");
    }
    assert!(
        !err.contains("BINARYMIME"),
        "Gmail does not offer it:\n{err}"
    );
    let m = stored(&sb, &subject);
    assert_eq!(m["mechanism"], "OAUTHBEARER");
}

/// msmtp with the app password (given with its spaces, as Google shows it) over STARTTLS.
#[test]
fn msmtp_app_password() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let subject = token("sb-msmtp");
    let msg = format!("From: {USER}\nTo: {TO}\nSubject: {subject}\n\nhello from msmtp\n");
    let mut child = std::process::Command::new("msmtp")
        .args(["--host=127.0.0.1", &format!("--port={}", sp.smtp())])
        .args([
            "--tls=on",
            "--tls-starttls=on",
            &format!("--tls-trust-file={}", sp.ca()),
        ])
        .args(["--auth=on", &format!("--user={USER}")])
        .arg(format!("--passwordeval=echo '{APP_PW}'"))
        .args([&format!("--from={USER}"), TO])
        .env("HOME", sb.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(msg.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stored(&sb, &subject)["user"], USER);
}

/// Gmail's order: no AUTH before TLS, and MAIL before STARTTLS gets `530 5.7.0 Must issue a
/// STARTTLS command first.`
#[test]
fn swaks_mail_before_starttls() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let (code, out, err) = run(std::process::Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", sp.smtp())])
        .args(["--from", USER, "--to", TO]));
    assert_ne!(code, Some(0), "{out}");
    let text = format!("{out}\n{err}");
    let greeting = line_with(&text, "220 ");
    gmail_tail(
        greeting.split_once("220 ").unwrap().1,
        "localhost ESMTP postie sandbox, Gmail-compatible ",
        "",
    );
    assert!(text.contains("250 STARTTLS"), "{text}");
    assert!(!text.contains("AUTH"), "no AUTH before TLS:\n{text}");
    let refused = line_with(&text, "530 ");
    gmail_tail(
        refused.split_once("530 ").unwrap().1,
        "5.7.0 Must issue a STARTTLS command first. ",
        "",
    );
}

/// The daily limit: with `--daily-limit 1` the second message gets Gmail's three-line 550 5.4.5,
/// and postie explains it as Gmail's sending limit.
#[test]
fn daily_limit_gets_gmails_550() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &["--daily-limit", "1"]);
    let swaks = |subject: &str| {
        run(std::process::Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", sp.smtp())])
            .args(["--tls", "--tls-ca-path", &sp.ca()])
            .args(["--auth-user", USER, "--auth-password", APP_PW])
            .args([
                "--from",
                USER,
                "--to",
                TO,
                "--header",
                &format!("Subject: {subject}"),
            ]))
    };
    let first = token("sb-limit-1");
    let (code, out, _) = swaks(&first);
    assert_eq!(code, Some(0), "{out}");
    stored(&sb, &first);
    let second = token("sb-limit-2");
    let (code, out, err) = swaks(&second);
    assert_ne!(code, Some(0), "{out}");
    let text = format!("{out}\n{err}");
    assert!(
        line_with(&text, "550-5.4.5 Daily").ends_with(
            "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail"
        ),
        "{text}"
    );
    assert!(
        line_with(&text, "550-5.4.5 sending").ends_with("550-5.4.5 sending limits go to"),
        "{text}"
    );
    let last = line_with(&text, "550 5.4.5");
    gmail_tail(
        last.split_once("550 ").unwrap().1,
        "5.4.5  https://support.google.com/a/answer/166852 ",
        "",
    );
    not_stored(&sb, &second);
    assert!(
        sp.log_text().contains(&format!(
            "{USER} reached the daily limit (1 messages in the last 24 hours, limit 1): \
             raise it with --daily-limit N, or clear "
        )),
        "{}",
        sp.log_text()
    );

    // postie recognises Gmail's limit (the reply says gsmtp) and says to wait.
    add_password_account(&sb, &sp, "lim");
    let run = sb
        .postie()
        .args(["send", "-a", "lim", "--to", TO])
        .message(&token("sb-limit-3"))
        .env(PW_VAR, APP_PW)
        .run();
    run.failure();
    let lower = run.text_lower();
    assert!(
        lower.contains("550-5.4.5") || lower.contains("550 5.4.5"),
        "{run}"
    );
    assert!(lower.contains("limit") && lower.contains("24"), "{run}");
}

/// When the mailbox's index cannot be read the day's count is unknown: MAIL gets a temporary
/// failure (451 4.3.0), not an unlimited day.
#[test]
fn unreadable_index_is_a_temporary_failure() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &["--daily-limit", "1"]);
    let index = std::path::Path::new(sp.info["data_dir"].as_str().unwrap())
        .join("mailbox")
        .join("index.jsonl");
    std::fs::create_dir_all(&index).unwrap();
    let (code, out, err) = run(std::process::Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", sp.smtp())])
        .args(["--tls", "--tls-ca-path", &sp.ca()])
        .args(["--auth-user", USER, "--auth-password", APP_PW])
        .args(["--from", USER, "--to", TO]));
    assert_ne!(code, Some(0), "{out}");
    let text = format!("{out}\n{err}");
    let refused = line_with(&text, "451 ");
    gmail_tail(
        refused.split_once("451 ").unwrap().1,
        "4.3.0 Temporary System Problem. Try again later ",
        "",
    );
    assert!(
        sp.log_text().contains(&format!(
            "cannot count {USER}'s messages of the last 24 hours"
        )),
        "{}",
        sp.log_text()
    );
}

/// `postie account add --provider sandbox`: no --ca-file needed (the sandbox's CA in its default
/// data directory), the app password delivers, the account password gets Gmail's 534 and
/// postie's explanation of it.
fn add_password_account(sb: &Sandbox, sp: &SandboxProc, name: &str) {
    sb.postie()
        .args([
            "account",
            "add",
            name,
            "--provider",
            "sandbox",
            "--email",
            USER,
        ])
        .opt("--port", sp.smtp().to_string())
        .opt("--password-env", PW_VAR)
        .run()
        .success();
}

#[test]
fn postie_send_with_the_sandbox_preset() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    add_password_account(&sb, &sp, "sb");
    let subject = token("sb-postie-app");
    let pdf_bytes = b"%PDF-1.4 sandbox test\n";
    let pdf = sb.file("report.pdf", pdf_bytes);
    let run = sb
        .postie()
        .args(["send", "--json", "-a", "sb", "--to", TO])
        .message(&subject)
        .opt("--attach", &pdf)
        .env(PW_VAR, APP_PW)
        .run();
    run.success();
    assert_eq!(run.json()["auth"], "PLAIN", "{run}");
    let m = stored(&sb, &subject);

    // The message taken apart: text part and attachment.
    let id = m["id"].as_u64().unwrap().to_string();
    let show = sb
        .postie()
        .args(["sandbox", "messages", "show", &id, "--json"])
        .run();
    show.success();
    let v = show.json();
    let parts = v["parts"].as_array().unwrap();
    assert!(
        parts.iter().any(|p| p["content_type"] == "text/plain"
            && p["text"].as_str().is_some_and(|t| t.contains(&subject))),
        "{v:#}"
    );
    assert!(
        parts
            .iter()
            // Byte for byte: base64 keeps the file's LF as it is.
            .any(|p| p["filename"] == "report.pdf"
                && p["attachment"] == true
                && p["size"] == pdf_bytes.len()),
        "{v:#}"
    );
    let human = sb.postie().args(["sandbox", "messages", "show", &id]).run();
    human.success();
    assert!(human.stdout.contains("attachment report.pdf"), "{human}");

    // The same list on the web page.
    let (code, page, _) = run_curl_page(&format!("http://{}/messages", http_host(&sp)));
    assert_eq!(code, Some(0));
    assert!(page.contains(&subject), "{page}");

    // The account password: Gmail's 534, and postie says why and what to do.
    let run = sb
        .postie()
        .args(["send", "-a", "sb", "--to", TO])
        .message(&token("sb-postie-account-pw"))
        .env(PW_VAR, ACCOUNT_PW)
        .run();
    run.code(exit::NOPERM);
    assert!(
        run.stderr.contains(
            "534-5.7.9 Application-specific password required. For more information, go to"
        ),
        "{run}"
    );
    let lower = run.text_lower();
    assert!(
        lower.contains("2-step verification") && lower.contains("app password"),
        "the Gmail explanation: {run}"
    );
}

fn http_host(sp: &SandboxProc) -> String {
    sp.info["http"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string()
}

fn run_curl_page(url: &str) -> (Option<i32>, String, String) {
    run(std::process::Command::new("curl").args(["-sS", "--fail", url]))
}

/// An OAuth account for the sandbox on its test ports: discovery from `--issuer`, no client ID.
fn add_oauth_account(sb: &Sandbox, sp: &SandboxProc, name: &str) {
    add_oauth_account_with(sb, sp, name, &[]);
}

/// [`add_oauth_account`] with more `account add` arguments.
fn add_oauth_account_with(sb: &Sandbox, sp: &SandboxProc, name: &str, extra: &[&str]) {
    add_oauth_account_as(sb, sp, name, USER, extra)
}

fn add_oauth_account_as(sb: &Sandbox, sp: &SandboxProc, name: &str, email: &str, extra: &[&str]) {
    sb.postie()
        .args([
            "account",
            "add",
            name,
            "--provider",
            "sandbox",
            "--email",
            email,
        ])
        .opt("--auth", "oauth")
        .opt("--port", sp.smtp().to_string())
        .opt("--issuer", sp.issuer())
        .args(extra)
        .run()
        .success();
}

/// A running `postie login`.
struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Login {
    fn start(sb: &Sandbox, args: &[&str]) -> Login {
        let mut child = sb
            .std_postie()
            .arg("login")
            .args(args)
            .args(["--timeout", "60"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postie login");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Login {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// The first printed line for which `pick` returns something.
    fn wait_for(&mut self, pick: impl Fn(&str) -> Option<String>) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if let Some(x) = pick(&line) {
                    return x;
                }
            }
        }
        panic!("postie login did not print it:\n{}", self.seen.join("\n"));
    }

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
        (status.code(), self.seen.join("\n"))
    }
}

/// Headless Chromium loads the consent page and clicks `button`; returns what the browser ended
/// on ({url, text}).
fn click_consent(sb: &Sandbox, url: &str, button: &str) -> Value {
    let profile = sb.path().join("chromium-profile");
    let (code, out, err) = run(python()
        .arg(script("consent.py"))
        .args([url, button])
        .arg(&profile));
    assert_eq!(code, Some(0), "{out}\n{err}");
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

fn authorization_url(login: &mut Login) -> String {
    login.wait_for(|l| {
        let t = l.trim();
        t.starts_with("http://").then(|| t.to_string())
    })
}

/// `postie login` with the consent page clicked in Chromium: Allow stores the tokens, and
/// `postie send` delivers with OAUTHBEARER (postie's choice) and with XOAUTH2 (forced).
#[test]
fn login_allow_in_chromium_then_send() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    add_oauth_account(&sb, &sp, "sbo");
    let mut login = Login::start(&sb, &["sbo", "--no-browser"]);
    let url = authorization_url(&mut login);
    assert!(
        url.starts_with(&format!("{}/o/oauth2/v2/auth?", sp.issuer())),
        "{url}"
    );
    assert!(url.contains("code_challenge_method=S256"), "{url}");
    let page = click_consent(&sb, &url, "allow");
    let (code, printed) = login.finish();
    assert_eq!(code, Some(0), "{printed}\n{page}");
    // The browser ended on postie's loopback redirect with the code, not on a sandbox page.
    let landed = page["url"].as_str().unwrap();
    assert!(landed.starts_with("http://127.0.0.1:"), "{page}");
    assert!(
        !landed.starts_with(&format!("{}/", sp.issuer())),
        "the browser stayed on the sandbox: {page}"
    );
    assert!(
        landed.contains("?code=") || landed.contains("&code="),
        "{page}"
    );
    assert!(sp.log_text().contains("allowed"), "{}", sp.log_text());

    for (mech, args) in [
        ("OAUTHBEARER", vec![]),
        ("XOAUTH2", vec!["--auth-mechanism", "xoauth2"]),
    ] {
        let subject = token("sb-login");
        let run = sb
            .postie()
            .args(["send", "--json", "-a", "sbo", "--to", TO])
            .args(&args)
            .message(&subject)
            .run();
        run.success();
        assert_eq!(run.json()["auth"], mech, "{run}");
        assert_eq!(stored(&sb, &subject)["mechanism"], mech);
    }
}

/// Deny on the consent page: the browser goes back with `error=access_denied`, and postie explains.
#[test]
fn login_deny_in_chromium_is_explained() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    add_oauth_account(&sb, &sp, "deny");
    let mut login = Login::start(&sb, &["deny", "--no-browser"]);
    let url = authorization_url(&mut login);
    let page = click_consent(&sb, &url, "deny");
    let (code, printed) = login.finish();
    assert_ne!(code, Some(0), "{printed}");
    assert!(
        page["url"]
            .as_str()
            .unwrap()
            .contains("error=access_denied"),
        "{page}"
    );
    // postie's explanation of access_denied, line by line.
    for want in [
        "error: signing in failed: the authorization server answered access_denied. \
         Run `postie login deny` to sign in again",
        "what happened: The sign-in was refused: access was denied at the consent page.",
        "- Cancel or Deny was chosen on the consent page",
        "- `postie login deny` and allow access",
    ] {
        assert!(
            printed.lines().any(|l| l.trim() == want),
            "no line {want:?} in:\n{printed}"
        );
    }
    assert!(sp.log_text().contains("denied"), "{}", sp.log_text());
}

/// Refresh tokens rotate: the new one works, the old one gets Google's invalid_grant, and using the
/// old one again revokes the grant, new refresh token included (RFC 9700 §4.14.2).
#[test]
fn refresh_token_rotation() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let t1 = device_tokens(&sp);
    let refresh = |r: &str| {
        curl_json(&[
            "-d",
            "grant_type=refresh_token",
            "-d",
            &format!("client_id={CLIENT}"),
            "--data-urlencode",
            &format!("refresh_token={r}"),
            &format!("{}/token", sp.issuer()),
        ])
    };
    let old = t1["refresh_token"].as_str().unwrap();
    let (status, t2) = refresh(old);
    assert_eq!(status, 200, "{t2}");
    let new = t2["refresh_token"].as_str().unwrap();
    assert_ne!(new, old);
    assert_ne!(t2["access_token"], t1["access_token"]);
    let (status, e) = refresh(old);
    assert_eq!(status, 400);
    assert_eq!(
        e,
        serde_json::json!({"error":"invalid_grant","error_description":"Token has been expired or revoked."})
    );
    let (status, e) = refresh(new);
    assert_eq!(
        (status, &e["error"]),
        (400, &Value::from("invalid_grant")),
        "{e}"
    );
}

/// `postie login --device`: postie shows the code, a person approves it on the sandbox's device
/// page, postie gets the tokens and sends.
#[test]
fn device_flow_login_then_send() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    add_oauth_account(&sb, &sp, "dev");
    let mut login = Login::start(&sb, &["dev", "--device"]);
    let code = login.wait_for(|l| {
        l.split_whitespace()
            .find(|w| {
                w.len() == 9
                    && w.as_bytes()[4] == b'-'
                    && w.chars().all(|c| c == '-' || c.is_ascii_uppercase())
            })
            .map(str::to_string)
    });
    approve_device(&sp.issuer(), &code);
    let (status, printed) = login.finish();
    assert_eq!(status, Some(0), "{printed}");
    let subject = token("sb-device");
    sb.postie()
        .args(["send", "-a", "dev", "--to", TO])
        .message(&subject)
        .run()
        .success();
    stored(&sb, &subject);
}

/// With `--token-lifetime 2s` the access token expires between two sends: the sandbox refuses
/// the expired token (curl, which never refreshes), postie refreshes it by itself and its send
/// goes through.
#[test]
fn expired_access_token_is_refreshed_transparently() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &["--token-lifetime", "2s"]);
    add_oauth_account(&sb, &sp, "short");
    let mut login = Login::start(&sb, &["short", "--device"]);
    let code = login.wait_for(|l| {
        l.split_whitespace()
            .find(|w| {
                w.len() == 9
                    && w.as_bytes()[4] == b'-'
                    && w.chars().all(|c| c == '-' || c.is_ascii_uppercase())
            })
            .map(str::to_string)
    });
    approve_device(&sp.issuer(), &code);
    assert_eq!(login.finish().0, Some(0));
    let first = sb.postie().args(["token", "short"]).run();
    first.success();
    let expired = first.stdout.trim();
    assert!(expired.starts_with("ya29.sb-"), "{first}");
    std::thread::sleep(Duration::from_secs(3));

    let refused = token("sb-expired");
    let msg = sb.file(
        "expired.eml",
        format!("From: {USER}\r\nTo: {TO}\r\nSubject: {refused}\r\n\r\nx\r\n").as_bytes(),
    );
    let (code, _, err) = run(std::process::Command::new("curl")
        .args(["-sS", "-v", "--url"])
        .arg(format!("smtps://127.0.0.1:{}", sp.smtps()))
        .args(["--cacert", &sp.ca(), "--mail-from", USER, "--mail-rcpt", TO])
        .args(["--user", &format!("{USER}:"), "--oauth2-bearer", expired])
        .arg("--upload-file")
        .arg(&msg));
    assert_eq!(code, Some(67), "curl: login denied\n{err}");
    assert!(err.contains("< 334 eyJzdGF0dXMiOiI0MDEi"), "{err}");
    assert!(
        err.contains("< 535-5.7.8 Username and Password not accepted. For more information, go to"),
        "{err}"
    );
    not_stored(&sb, &refused);

    let subject = token("sb-refresh");
    sb.postie()
        .args(["send", "-a", "short", "--to", TO])
        .message(&subject)
        .run()
        .success();
    stored(&sb, &subject);
    let second = sb.postie().args(["token", "short"]).run();
    second.success();
    assert_ne!(first.stdout.trim(), second.stdout.trim(), "a new token");
}

/// The relay (which shares the SMTP server driver with the sandbox) takes a message from a legacy
/// client without login and delivers it upstream to the sandbox with the account's app password.
#[test]
fn relay_delivers_to_the_sandbox() {
    use crate::relay_support::{RelayProc, UPSTREAM_PW_VAR, free_port, queue_settled};
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    sb.postie()
        .args([
            "account",
            "add",
            "up",
            "--provider",
            "sandbox",
            "--email",
            USER,
        ])
        .opt("--port", sp.smtp().to_string())
        .opt("--password-env", UPSTREAM_PW_VAR)
        .run()
        .success();
    let relay = RelayProc::start(&sb, free_port(), APP_PW);
    let subject = token("sb-relay");
    let (code, out, _) = run(std::process::Command::new("swaks")
        .args(["--server", &format!("127.0.0.1:{}", relay.port)])
        .args([
            "--from",
            USER,
            "--to",
            TO,
            "--header",
            &format!("Subject: {subject}"),
        ]));
    assert_eq!(code, Some(0), "{out}");
    let msgs = queue_settled(&sb, Duration::from_secs(30));
    assert!(
        msgs.iter().all(|m| m["state"] == "sent"),
        "{msgs:#?}\n{}",
        relay.log_text()
    );
    let m = stored(&sb, &subject);
    assert_eq!(
        (m["user"].as_str(), m["mechanism"].as_str()),
        (Some(USER), Some("PLAIN"))
    );
    assert_eq!(relay.stop(), Some(0));
}

/// Markup in a message is shown as text on the mailbox pages: a Subject and an attachment file
/// name of `<img src=x onerror=1>` come out as `&lt;img …`, never as a tag.
#[test]
fn mailbox_pages_escape_the_message_s_markup() {
    const MARKUP: &str = "<img src=x onerror=1>";
    const ESCAPED: &str = "&lt;img src=x onerror=1&gt;";
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let msg = sb.file(
        "markup.eml",
        format!(
            "From: {USER}\r\nTo: {TO}\r\nSubject: {MARKUP}\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
             --b\r\nContent-Type: application/octet-stream\r\n\
             Content-Disposition: attachment; filename=\"{MARKUP}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--b--\r\n"
        )
        .as_bytes(),
    );
    let (code, _, err) = run(std::process::Command::new("curl")
        .args(["-sS", "--url"])
        .arg(format!("smtps://127.0.0.1:{}", sp.smtps()))
        .args(["--cacert", &sp.ca(), "--mail-from", USER, "--mail-rcpt", TO])
        .args(["--user", &format!("{USER}:{APP_PW}")])
        .arg("--upload-file")
        .arg(&msg));
    assert_eq!(code, Some(0), "{err}");
    let id = stored(&sb, MARKUP)["id"].as_u64().unwrap();

    let host = http_host(&sp);
    let (code, list, err) = run_curl_page(&format!("http://{host}/messages"));
    assert_eq!(code, Some(0), "{err}");
    assert!(list.contains(ESCAPED), "{list}");
    assert!(
        !list.contains("<img"),
        "raw markup on the mailbox page:\n{list}"
    );

    let (code, page, err) = run_curl_page(&format!("http://{host}/messages/{id}"));
    assert_eq!(code, Some(0), "{err}");
    assert!(page.contains(&format!("<h1>{ESCAPED}</h1>")), "{page}");
    assert!(
        page.contains(&format!(", attachment <b>{ESCAPED}</b>")),
        "{page}"
    );
    assert!(
        !page.contains("<img"),
        "raw markup on the message page:\n{page}"
    );
}

/// `account add --transport T` for the sandbox, signing in on its consent page in Chromium.
fn https_account(sb: &Sandbox, sp: &SandboxProc, name: &str, transport: &str, extra: &[&str]) {
    https_account_as(sb, sp, name, transport, USER, extra)
}

/// An HTTPS account for `email`, signed in on the consent page (its login_hint picks the user).
fn https_account_as(
    sb: &Sandbox,
    sp: &SandboxProc,
    name: &str,
    transport: &str,
    email: &str,
    extra: &[&str],
) {
    let issuer = sp.issuer();
    let mut args = vec!["--transport", transport, "--api-url", &issuer];
    args.extend_from_slice(extra);
    add_oauth_account_as(sb, sp, name, email, &args);
    let mut login = Login::start(sb, &[name, "--no-browser"]);
    let url = authorization_url(&mut login);
    let page = click_consent(sb, &url, "allow");
    let (code, printed) = login.finish();
    assert_eq!(code, Some(0), "{printed}\n{page}");
}

/// The HTTPS transports through the sandbox's emulation of the Gmail API and Microsoft Graph:
/// each account asks for its API's narrow scope at sign-in (gmail.send; Graph's Mail.Send), sends
/// with `postie send`, and the mailbox holds the message as the service delivers it: the blind
/// copy delivered, its header gone. A token whose scope does not cover the API gets the
/// service's 403, explained as a scope problem.
#[test]
fn https_transports_send_through_the_gmail_api_and_graph() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let config = || std::fs::read_to_string(sb.config_home().join("postie/config.toml")).unwrap();
    for (name, transport, scope, mech) in [
        (
            "ga",
            "gmail-api",
            "https://www.googleapis.com/auth/gmail.send",
            "gmail-api",
        ),
        (
            "gr",
            "graph",
            "https://graph.microsoft.com/Mail.Send",
            "graph",
        ),
    ] {
        https_account(&sb, &sp, name, transport, &[]);
        assert!(config().contains(scope), "{}", config());
        let subject = token(&format!("sb-{transport}"));
        let run = sb
            .postie()
            .args([
                "send",
                "--json",
                "-a",
                name,
                "--to",
                TO,
                "--bcc",
                "hidden@example.com",
            ])
            .message(&subject)
            .run();
        run.success();
        let v = run.json();
        assert_eq!(v["transport"], transport, "{run}");
        assert_eq!(v["status"], "sent", "{run}");
        // the sandbox's API is plain HTTP on loopback: the report does not claim TLS
        assert_eq!(v["tls"], "none", "{run}");
        let m = stored(&sb, &subject);
        assert_eq!(m["mechanism"], mech, "{m:#}");
        let rcpts = m["recipients"].to_string();
        assert!(
            rcpts.contains(TO) && rcpts.contains("hidden@example.com"),
            "{m:#}"
        );
        let id = m["id"].as_u64().unwrap().to_string();
        let show = sb
            .postie()
            .args(["sandbox", "messages", "show", &id, "--json"])
            .run();
        show.success();
        let headers = show.json()["headers"].to_string().to_ascii_lowercase();
        assert!(
            !headers.contains("hidden@example.com"),
            "Bcc exposed: {headers}"
        );
    }

    // A sign-in whose scope the Gmail API does not take (openid): the API's 403, explained.
    https_account(&sb, &sp, "gx", "gmail-api", &["--scope", "openid"]);
    let run = sb
        .postie()
        .args(["send", "--json", "-a", "gx", "--to", TO])
        .message(&token("sb-scope"))
        .run();
    run.code(77);
    let v = run.json()["error"].clone();
    assert_eq!(v["explanation_id"], "api-gmail-scope", "{run}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("insufficientPermissions"),
        "{run}"
    );
    assert!(v["fix"].to_string().contains("gmail.send"), "{run}");
}

/// The services' other documented refusals, each served by the sandbox's emulation with the
/// service's body and explained with its fix, by `postie send` and by `postie doctor`'s harmless
/// call: an account that signs in but has no mailbox (the Gmail API's 400 failedPrecondition,
/// Graph's 404 MailboxNotEnabledForRESTAPI), Graph refusing a From that is not the signed-in
/// user (403 ErrorSendAsDenied), and the Gmail API not enabled for the client's project (403
/// accessNotConfigured). Nothing reaches the mailbox.
#[test]
fn the_apis_other_refusals_are_served_and_explained() {
    const GHOST: &str = "ghost@sandbox.postie.test";
    let sb = Sandbox::new();
    let settings = sb.path().join("sandbox.toml");
    std::fs::write(
        &settings,
        format!(
            "[[users]]\nemail = \"{USER}\"\npassword = \"{ACCOUNT_PW}\"\napp_passwords = [\"{APP_PW}\"]\n\
             [[users]]\nemail = \"{GHOST}\"\npassword = \"pw\"\nmailbox = false\n"
        ),
    )
    .unwrap();
    let sp = SandboxProc::start(&sb, &["--settings", settings.to_str().unwrap()]);
    https_account_as(&sb, &sp, "gg", "gmail-api", GHOST, &[]);
    https_account_as(&sb, &sp, "rg", "graph", GHOST, &[]);
    https_account(&sb, &sp, "gr", "graph", &[]);

    // (account, extra send flags, exit code, explanation, the service's reason, words of the fix)
    let cases = [
        (
            "gg",
            vec![],
            78,
            "api-gmail-failed-precondition",
            "failedPrecondition",
            "Admin console",
        ),
        (
            "rg",
            vec![],
            78,
            "api-graph-mailbox-not-enabled",
            "MailboxNotEnabledForRESTAPI",
            "Exchange Online licence",
        ),
        (
            "gr",
            vec!["--from", "boss@sandbox.postie.test"],
            69,
            "api-graph-send-as-denied",
            "ErrorSendAsDenied",
            "grant Send As",
        ),
    ];
    for (account, flags, code, id, reason, fix) in cases {
        let subject = token(&format!("sb-refused-{account}"));
        let run = sb
            .postie()
            .args(["send", "--json", "-a", account, "--to", TO])
            .args(flags)
            .message(&subject)
            .run();
        run.code(code);
        let e = run.json()["error"].clone();
        assert_eq!(e["explanation_id"], id, "{run}");
        assert!(e["message"].as_str().unwrap().contains(reason), "{run}");
        assert!(e["fix"].to_string().contains(fix), "{run}");
        not_stored(&sb, &subject);
    }
    // The doctor's harmless call meets the same refusals for the accounts without a mailbox
    // (a failed auth stage is the doctor's 77), and names the API it checks, not SMTP.
    let api = sp.issuer().trim_start_matches("http://").to_string();
    for (account, service, id) in [
        ("gg", "the Gmail API", "api-gmail-failed-precondition"),
        (
            "rg",
            "the Microsoft Graph API",
            "api-graph-mailbox-not-enabled",
        ),
    ] {
        let run = sb.postie().args(["doctor", account, "--json"]).run();
        run.code(77);
        let v = run.json();
        assert_eq!(v["server"], api.as_str(), "{run}");
        let config = v["checks"][0]["summary"].as_str().unwrap();
        assert!(config.contains(&format!("{service} at {api}")), "{run}");
        let auth = &v["checks"][6];
        assert_eq!(auth["stage"], "auth", "{run}");
        assert_eq!(auth["status"], "failed", "{run}");
        assert_eq!(auth["explanation"]["id"], id, "{run}");
    }
    // The same user and From through Graph are delivered: the refusals were the faults'.
    let subject = token("sb-refused-control");
    sb.postie()
        .args(["send", "-a", "gr", "--to", TO])
        .message(&subject)
        .run()
        .success();
    assert_eq!(messages(&sb).len(), 1, "{:#?}", messages(&sb));
    drop(sp);

    // A project that never enabled the Gmail API.
    let sb = Sandbox::new();
    let settings = sb.path().join("sandbox.toml");
    std::fs::write(&settings, "gmail_api_enabled = false\n").unwrap();
    let sp = SandboxProc::start(&sb, &["--settings", settings.to_str().unwrap()]);
    https_account(&sb, &sp, "ga", "gmail-api", &[]);
    let run = sb
        .postie()
        .args(["send", "--json", "-a", "ga", "--to", TO])
        .message(&token("sb-refused-disabled"))
        .run();
    run.code(78);
    let e = run.json()["error"].clone();
    assert_eq!(e["explanation_id"], "api-gmail-disabled", "{run}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("accessNotConfigured"),
        "{run}"
    );
    assert!(e["fix"].to_string().contains("Gmail API > Enable"), "{run}");
    let run = sb.postie().args(["doctor", "ga", "--json"]).run();
    run.code(77);
    assert_eq!(
        run.json()["checks"][6]["explanation"]["id"],
        "api-gmail-disabled",
        "{run}"
    );
    assert!(messages(&sb).is_empty(), "{:#?}", messages(&sb));
}

/// `postie bulk` through the Gmail API: the batch is queued in the outbox and delivered by the
/// same core as `postie send`, each message stored once with the API's transport; the plan
/// paces to the Gmail API's published 60 sends a minute; the results file carries the API's
/// acceptance for each recipient; run again, it sends nothing.
#[test]
fn bulk_sends_through_the_gmail_api_at_its_pace() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    https_account(&sb, &sp, "ga", "gmail-api", &[]);
    let dir = sb.path().join("batch");
    std::fs::create_dir_all(&dir).unwrap();
    let toks: Vec<String> = (0..3).map(|i| token(&format!("sb-bulk-{i}"))).collect();
    for (i, t) in toks.iter().enumerate() {
        std::fs::write(
            dir.join(format!("{i:03}.eml")),
            format!("From: {USER}\r\nTo: {TO}\r\nSubject: {t}\r\n\r\nbulk {t}\r\n"),
        )
        .unwrap();
    }
    let plan = sb
        .postie()
        .args(["bulk", "-a", "ga", "--dry-run", "--json"])
        .arg(&dir)
        .run();
    plan.success();
    let v = plan.json();
    assert_eq!(v["limits"]["per_minute"], 60, "{plan}");
    assert_eq!(v["estimated_seconds"], 2, "{plan}");

    let out = sb.path().join("results.jsonl");
    let started = Instant::now();
    let run = sb
        .postie()
        .args(["bulk", "-a", "ga", "--results"])
        .arg(&out)
        .arg(&dir)
        .run();
    run.success().stderr_mentions(&["3 sent"]);
    assert!(
        started.elapsed() >= Duration::from_millis(1900),
        "3 messages at 60 a minute took {:?}",
        started.elapsed()
    );
    for t in &toks {
        assert_eq!(stored(&sb, t)["mechanism"], "gmail-api");
    }
    let lines: Vec<Value> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    for l in &lines {
        assert_eq!(l["status"], "sent", "{l}");
        assert_eq!(l["recipients"][0]["address"], TO, "{l}");
        assert_eq!(l["recipients"][0]["reply"]["code"], 200, "{l}");
        assert!(
            l["recipients"][0]["reply"]["text"]
                .as_str()
                .unwrap()
                .contains("the Gmail API"),
            "{l}"
        );
    }
    sb.postie()
        .args(["bulk", "-a", "ga"])
        .arg(&dir)
        .run()
        .success()
        .stderr_mentions(&["to queue now: 0"]);
    assert_eq!(messages(&sb).len(), 3, "{:#?}", messages(&sb));
}

/// The relay delivering through Microsoft Graph: the sandbox allows one message a day, then
/// answers 429 with `Retry-After: 60` as Graph throttles. The first message is sent; the
/// second waits at least the minute the service asked for (the relay's own first retry would
/// be 0.1–0.2 s here), with the explanation of the throttling.
#[test]
fn relay_through_graph_waits_as_long_as_a_throttled_api_asks() {
    use crate::relay_support::{RelayProc, append_config, free_port, queue_settled};
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &["--daily-limit", "1"]);
    https_account(&sb, &sp, "gr", "graph", &[]);
    append_config(
        &sb,
        "[relay]\nretry_first = \"200ms\"\nretry_max = \"1s\"\n",
    );
    let relay = RelayProc::start(&sb, free_port(), "");
    for n in 0..2 {
        let subject = token(&format!("sb-graph-relay-{n}"));
        let (code, out, _) = run(std::process::Command::new("swaks")
            .args(["--server", &format!("127.0.0.1:{}", relay.port)])
            .args(["--from", USER, "--to", TO])
            .args(["--header", &format!("Subject: {subject}")]));
        assert_eq!(code, Some(0), "{out}");
        if n == 0 {
            let msgs = queue_settled(&sb, Duration::from_secs(30));
            assert!(msgs.iter().all(|m| m["state"] == "sent"), "{msgs:#?}");
            assert_eq!(stored(&sb, &subject)["mechanism"], "graph");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let waiting = loop {
        let run = sb.postie().args(["queue", "list", "--json"]).run();
        let all = run.json()["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some(m) = all
            .iter()
            .find(|m| m["state"] == "queued" && m["attempts"].as_u64() >= Some(1))
        {
            break m.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no throttled attempt: {all:#?}\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let next = humantime::parse_rfc3339(waiting["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait >= Duration::from_secs(50),
        "retried after {wait:?}, not the minute asked: {waiting:#}"
    );
    let id = waiting["id"].to_string();
    let shown = sb.postie().args(["queue", "show", &id]).run();
    assert!(shown.stdout.contains("429"), "{shown}");
    assert!(shown.text_lower().contains("wait 1m"), "{shown}");
    assert_eq!(relay.stop(), Some(0));
}

/// `transport = ["smtp", "gmail-api"]` with the SMTP port closed (as a cloud host blocks it):
/// the message goes out through the Gmail API, and the send says it fell back.
#[test]
fn smtp_unreachable_falls_back_to_the_gmail_api() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    let closed = crate::relay_support::free_port().to_string();
    let issuer = sp.issuer();
    // the account's SMTP port is one nothing listens on
    add_oauth_account_with(
        &sb,
        &sp,
        "fb",
        &["--transport", "smtp,gmail-api", "--api-url", &issuer],
    );
    let path = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replace(
        &format!("port = {}", sp.smtp()),
        &format!("port = {closed}"),
    );
    std::fs::write(&path, text).unwrap();
    let mut login = Login::start(&sb, &["fb", "--no-browser"]);
    let url = authorization_url(&mut login);
    let page = click_consent(&sb, &url, "allow");
    assert_eq!(login.finish().0, Some(0), "{page}");
    let subject = token("sb-fallback");
    let run = sb
        .postie()
        .args(["send", "--json", "-a", "fb", "--to", TO])
        .message(&subject)
        .run();
    run.success();
    assert_eq!(run.json()["transport"], "gmail-api", "{run}");
    assert!(run.stderr.contains("SMTP cannot connect"), "{run}");
    assert_eq!(stored(&sb, &subject)["mechanism"], "gmail-api");
}

/// `postie doctor` of accounts that send over HTTPS: the API's host resolved and reached, the
/// token's scope checked for the API (not for SMTP), and a harmless call (an empty send the
/// service refuses as invalid; nothing reaches the mailbox). A token the Gmail API does not take
/// fails at that call with the API's 403, explained as a scope problem.
#[test]
fn doctor_checks_an_https_account_without_sending() {
    let sb = Sandbox::new();
    let sp = SandboxProc::start(&sb, &[]);
    for (name, transport) in [("ga", "gmail-api"), ("gr", "graph")] {
        https_account(&sb, &sp, name, transport, &[]);
        let run = sb.postie().args(["doctor", name, "--json"]).run();
        run.success();
        let v = run.json();
        let status: Vec<(String, String)> = v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["stage"].as_str().unwrap().to_string(),
                    c["status"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let want: Vec<(String, String)> = [
            ("config", "ok"),
            ("dns", "ok"),
            ("connect", "ok"),
            ("tls", "warning"), // plain HTTP to the sandbox, on this machine
            ("ehlo", "skipped"),
            ("credentials", "ok"),
            ("auth", "ok"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(status, want, "{run}");
        let auth = &v["checks"][6];
        assert!(
            auth["summary"]
                .as_str()
                .unwrap()
                .contains("refused an empty message"),
            "{run}"
        );
    }
    assert!(
        messages(&sb).is_empty(),
        "the doctor sent mail: {:#?}",
        messages(&sb)
    );

    https_account(&sb, &sp, "gx", "gmail-api", &["--scope", "openid"]);
    let run = sb.postie().args(["doctor", "gx", "--json"]).run();
    run.code(77);
    let v = run.json();
    let creds = &v["checks"][5];
    assert_eq!(creds["status"], "warning", "{run}");
    assert_eq!(creds["explanation"]["id"], "api-gmail-scope", "{run}");
    let auth = &v["checks"][6];
    assert_eq!(auth["status"], "failed", "{run}");
    assert_eq!(auth["explanation"]["id"], "api-gmail-scope", "{run}");
}
