//! `postie send` against servers that misbehave on purpose: one
//! that never speaks, one that hangs up at once, one that greets with 221,
//! one that answers EHLO with 220. Each is a few lines of Python's socket
//! module, so nothing of postie's stands on the other side; each records what
//! it received, so a test can prove that no mail went to a server that never
//! offered to take it.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::relay_support::python;
use crate::support::*;

/// A scripted server on 127.0.0.1: `on_connect` is Python run for each
/// connection with `c` the socket and `log(line)` to record what was read.
pub(crate) struct Scripted {
    child: Child,
    pub(crate) port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Scripted {
    pub(crate) fn start(on_connect: &str) -> Scripted {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("received.txt");
        let body: String = on_connect
            .lines()
            .map(|l| format!("        {l}\n"))
            .collect();
        let script = format!(
            "import socket, sys, threading, time\n\
             log_path = sys.argv[1]\n\
             def log(line):\n    open(log_path, 'a').write(line + '\\n')\n\
             def lines(c):\n    f = c.makefile('rb')\n    for raw in f:\n        log(raw.decode('latin-1').rstrip('\\r\\n'))\n        yield raw\n\
             def serve(c):\n    try:\n{body}    except OSError:\n        pass\n\
             l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(8)\n\
             print(l.getsockname()[1], flush=True)\n\
             while True:\n    c, _ = l.accept()\n    threading.Thread(target=serve, args=(c,), daemon=True).start()\n"
        );
        let mut child = python()
            .arg("-c")
            .arg(script)
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("the server's port");
        Scripted {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Every line the server read, over all connections.
    pub(crate) fn received(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Scripted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn send(sb: &Sandbox, url: &str, extra: &[&str]) -> Run {
    sb.postie()
        .arg("send")
        .opt("--server", url)
        .words("--from a@example.test --to b@example.test --subject hi --text hi --json")
        .args(extra)
        .run()
}

/// Item 4: a port that accepts and never speaks (an implicit-TLS port asked
/// for STARTTLS) is reported within the timeout, with the doctor's
/// diagnosis, not after RFC 5321's five minutes as "temporary".
#[test]
fn a_silent_port_is_reported_within_the_timeout_as_implicit_tls() {
    let s = Scripted::start("time.sleep(60)");
    let sb = Sandbox::new();
    let started = Instant::now();
    let run = send(&sb, &s.url(), &["--timeout", "2"]);
    let took = started.elapsed();
    run.code(76);
    assert!(took < Duration::from_secs(15), "took {took:?}\n{run}");
    let e = &run.json()["error"];
    assert_eq!(e["explanation_id"], "tls-implicit-expected", "{run}");
    let msg = e["message"].as_str().unwrap();
    assert!(
        msg.contains("sent no greeting within 2 s") && msg.contains("implicit TLS"),
        "{run}"
    );
}

/// Item 5: a server that accepts and hangs up at once is a closed
/// connection, worth retrying: exit 69 and "later", never "implicit TLS".
#[test]
fn a_server_that_hangs_up_at_once_is_unavailable_not_a_tls_problem() {
    let s = Scripted::start("c.close()");
    let sb = Sandbox::new();
    let run = send(&sb, &s.url(), &[]);
    run.code(69);
    let e = &run.json()["error"];
    assert_eq!(e["explanation_id"], "closed-at-greeting", "{run}");
    assert_eq!(e["retry"], "later", "{run}");
    assert!(!run.text_lower().contains("implicit"), "{run}");
}

/// Item 6 (EAST `greeting/221`): a 221 "greeting" is a server closing; no
/// EHLO, no mail follows it.
#[test]
fn a_221_greeting_gets_no_mail() {
    let s = Scripted::start(
        "c.sendall(b'221 2.0.0 closing\\r\\n')\nfor raw in lines(c):\n    c.sendall(b'250 ok\\r\\n')",
    );
    let sb = Sandbox::new();
    let run = send(&sb, &s.url(), &["--plaintext"]);
    run.failure();
    let got = s.received();
    assert!(!got.contains("MAIL FROM"), "{got}");
    assert!(!got.contains("EHLO"), "{got}");
}

/// Item 6: a 220 answer to EHLO is not an offer; nothing is sent under it.
#[test]
fn a_220_answer_to_ehlo_gets_no_mail() {
    let s = Scripted::start(
        "c.sendall(b'220 mx ESMTP\\r\\n')\nfor raw in lines(c):\n    c.sendall(b'220 mx ready\\r\\n')",
    );
    let sb = Sandbox::new();
    let run = send(&sb, &s.url(), &["--plaintext"]);
    run.failure();
    let got = s.received();
    assert!(got.contains("EHLO"), "{got}");
    assert!(!got.contains("MAIL FROM"), "{got}");
}

/// An upstream that greets and then goes silent holds a
/// delivery; SIGTERM still stops the relay within seconds, and the message
/// it was sending is queued again, not left "delivering".
#[test]
fn a_relay_stops_promptly_while_an_upstream_hangs() {
    use crate::relay_support::{RelayProc, free_port};
    let s = Scripted::start("c.sendall(b'220 stuck ESMTP\\r\\n')\nfor raw in lines(c):\n    pass");
    let sb = Sandbox::new();
    let from = "stuck@example.test";
    sb.postie()
        .args(["account", "add", "up", "--provider", "generic"])
        .opt("--host", "127.0.0.1")
        .opt("--port", s.port.to_string())
        .opt("--tls", "starttls")
        .opt("--email", from)
        .opt("--password-env", crate::relay_support::UPSTREAM_PW_VAR)
        .run()
        .success();
    let relay = RelayProc::start(&sb, free_port(), "pw");
    let sent = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &relay.port.to_string()])
        .args([
            "--from",
            from,
            "--to",
            "someone@example.test",
            "--body",
            "x",
        ])
        .output()
        .expect("swaks");
    assert!(sent.status.success(), "{sent:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s.received().contains("EHLO") {
        assert!(
            Instant::now() < deadline,
            "the relay never reached the upstream"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let started = Instant::now();
    let code = relay.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "stopping took {took:?}");
    assert_eq!(code, Some(0));
    let v = sb.postie().args(["queue", "list", "--json"]).run().json();
    assert_eq!(v["messages"][0]["state"], "queued", "{v}");
}

/// A server that offers PIPELINING and answers MAIL with `reply`, RCPT
/// and DATA with 503 (as a pipelined transaction after a refused MAIL gets).
fn refusing_mail(reply: &str) -> Scripted {
    Scripted::start(&format!(
        "c.sendall(b'220 mx ESMTP\\r\\n')\n\
         for raw in lines(c):\n\
         \x20   v = raw[:4].upper()\n\
         \x20   if v == b'EHLO': c.sendall(b'250-mx\\r\\n250-PIPELINING\\r\\n250 ENHANCEDSTATUSCODES\\r\\n')\n\
         \x20   elif v == b'MAIL': c.sendall(b'{reply}\\r\\n')\n\
         \x20   elif v in (b'RCPT', b'DATA'): c.sendall(b'503 5.5.1 Bad sequence of commands\\r\\n')\n\
         \x20   elif v == b'QUIT':\n\
         \x20       c.sendall(b'221 bye\\r\\n'); c.close(); break\n\
         \x20   else: c.sendall(b'250 ok\\r\\n')"
    ))
}

/// A refusal at MAIL (Gmail's daily limit) is every
/// recipient's reply, not the 503 their pipelined RCPTs got back.
#[test]
fn a_refused_mail_from_is_each_recipient_s_reply() {
    let s = refusing_mail("550 5.4.5 Daily user sending limit exceeded");
    let sb = Sandbox::new();
    let run = send(&sb, &s.url(), &["--plaintext", "--cc", "c@example.test"]);
    run.failure();
    let v = run.json();
    let rcpts = v["recipients"].as_array().unwrap();
    assert_eq!(rcpts.len(), 2, "{run}");
    for r in rcpts {
        assert_eq!(r["code"], 550, "{run}");
        assert_eq!(r["enhanced"], "5.4.5", "{run}");
    }
    assert!(!run.stdout.contains("503"), "{run}");
}

/// A forced SASL mechanism that cannot carry the
/// account's credentials (XOAUTH2 with a password) is an error before any
/// connection, not silently AUTH PLAIN.
#[test]
fn a_mechanism_that_cannot_carry_a_password_is_refused() {
    let s = refusing_mail("250 ok");
    let sb = Sandbox::new();
    let run = sb
        .postie()
        .arg("send")
        .opt("--server", s.url())
        .words("--plaintext --user me@example.test --password-env PW --auth-mechanism xoauth2")
        .words("--from a@example.test --to b@example.test --text hi")
        .env("PW", "secret-password")
        .run();
    run.code(78).stderr_mentions(&["XOAUTH2", "PLAIN or LOGIN"]);
    assert!(!s.received().contains("AUTH"), "{}", s.received());
}

/// A content refusal (554 5.6.0) exits 65 (the message),
/// not 69 (the server unreachable).
#[test]
fn a_content_refusal_exits_65() {
    let s = taking_server(
        "250-mx\\r\\n250 ENHANCEDSTATUSCODES",
        "554 5.6.0 Message content rejected",
    );
    let sb = Sandbox::new();
    let run = send(&sb, &s.url(), &["--plaintext"]);
    run.code(65);
}

/// A server that answers EHLO with `ehlo` (its lines, CRLF-separated, as a
/// Python bytes literal's contents), takes any AUTH, answers the end of
/// each message with `end_of_data`, and records every line.
pub(crate) fn taking_server(ehlo: &str, end_of_data: &str) -> Scripted {
    Scripted::start(&format!(
        "c.sendall(b'220 mx ESMTP\\r\\n')\n\
         data = False\n\
         for raw in lines(c):\n\
         \x20   v = raw[:4].upper()\n\
         \x20   if data:\n\
         \x20       if raw == b'.\\r\\n': data = False; c.sendall(b'{end_of_data}\\r\\n')\n\
         \x20   elif v == b'EHLO': c.sendall(b'{ehlo}\\r\\n')\n\
         \x20   elif v == b'AUTH': c.sendall(b'235 2.7.0 ok\\r\\n')\n\
         \x20   elif v == b'DATA': data = True; c.sendall(b'354 go\\r\\n')\n\
         \x20   elif v == b'QUIT':\n\
         \x20       c.sendall(b'221 bye\\r\\n'); c.close(); break\n\
         \x20   else: c.sendall(b'250 2.0.0 ok\\r\\n')"
    ))
}

/// An old server: ESMTP without 8BITMIME, SMTPUTF8 or PIPELINING, AUTH PLAIN
/// with any password; it takes every message and records every line.
fn old_server() -> Scripted {
    taking_server(
        "250-old\\r\\n250-ENHANCEDSTATUSCODES\\r\\n250 AUTH PLAIN",
        "250 2.0.0 queued",
    )
}

/// The DATA the old server received last (lines between `DATA` and `.`).
fn last_data(s: &Scripted) -> String {
    let got = s.received();
    let start = got.rfind("\nDATA\n").expect("no DATA") + "\nDATA\n".len();
    let end = got[start..].find("\n.\n").expect("no end of data") + start;
    got[start..end].to_string()
}

/// `bob@bücher.example` needs no SMTPUTF8: the domain goes
/// out in A-labels, in the envelope and in To:, to a server without SMTPUTF8.
#[test]
fn an_idn_domain_is_sent_in_a_labels_without_smtputf8() {
    let s = old_server();
    let sb = Sandbox::new();
    let run = sb
        .postie()
        .arg("send")
        .opt("--server", s.url())
        .words("--plaintext --from a@example.test --subject idn --text hi")
        .opt("--to", "Bob <bob@bücher.example>")
        .run();
    run.success();
    let got = s.received();
    assert!(got.contains("RCPT TO:<bob@xn--bcher-kva.example>"), "{got}");
    assert!(!got.contains("SMTPUTF8"), "{got}");
    assert!(
        last_data(&s).contains("To: Bob <bob@xn--bcher-kva.example>"),
        "{got}"
    );
}

/// An 8-bit message to a server without 8BITMIME is sent
/// with its 8-bit part in quoted-printable (RFC 6152 §3), from `send --raw`
/// and through the queue (`sendmail`, as the relay delivers), and reads the
/// same; it used to fail for good after the relay had said 250.
#[test]
fn an_8bit_message_is_converted_for_a_server_without_8bitmime() {
    let s = old_server();
    let sb = Sandbox::new();
    let text = "Grüße aus Köln, naïve café\r\nsecond line\r\n";
    let msg = format!(
        "From: a@example.test\r\nTo: b@example.test\r\nSubject: 8bit\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}"
    );
    let file = sb.file("m.eml", msg.as_bytes());
    sb.postie()
        .arg("send")
        .opt("--server", s.url())
        .arg("--plaintext")
        .arg("--raw")
        .arg(&file)
        .arg("-t")
        .run()
        .success();
    let check = |data: &str| {
        assert!(data.is_ascii(), "{data}");
        assert!(!s.received().contains("BODY=8BITMIME"), "{}", s.received());
        assert!(
            data.contains("Content-Transfer-Encoding: quoted-printable"),
            "{data}"
        );
        let crlf = data.replace('\n', "\r\n");
        let parsed = mail_parser::MessageParser::default()
            .parse(crlf.as_bytes())
            .unwrap();
        let body = parsed.body_text(0).unwrap().replace("\r\n", "\n");
        assert_eq!(body.trim_end(), text.replace("\r\n", "\n").trim_end());
    };
    check(&last_data(&s));

    sb.postie()
        .args(["account", "add", "old", "--provider", "generic"])
        .opt("--host", "127.0.0.1")
        .opt("--port", s.port.to_string())
        .arg("--plaintext")
        .opt("--email", "a@example.test")
        .opt("--password-env", "OLD_PW")
        .run()
        .success();
    sb.postie()
        .args(["sendmail", "-t", "-i"])
        .env("OLD_PW", "pw")
        .stdin(msg.replace("Subject: 8bit", "Subject: 8bit queued"))
        .run()
        .success();
    let v = sb.postie().args(["queue", "list", "--json"]).run().json();
    assert_eq!(v["messages"][0]["state"], "sent", "{v}");
    let data = last_data(&s);
    assert!(data.contains("Subject: 8bit queued"), "{data}");
    check(&data);
}

/// SIZE= declares the octets the message has on the wire
/// (it said 276 for a file ending in `.` without a line end, and 278 went
/// out): a server offering SIZE gets a declaration equal to what it reads,
/// for a file with bare LF lines and no final line end.
#[test]
fn size_declares_the_octets_sent() {
    let s = taking_server(
        "250-mx\\r\\n250-8BITMIME\\r\\n250 SIZE 1000000",
        "250 2.0.0 queued",
    );
    let sb = Sandbox::new();
    let mut msg = String::from("From: a@example.test\nTo: b@example.test\nSubject: size\n\n");
    for i in 0..20 {
        msg.push_str(&format!("line {i} with a bare LF\n"));
    }
    msg.push_str(".\n..two\nthe end.");
    let file = sb.file("m.eml", msg.as_bytes());
    sb.postie()
        .arg("send")
        .opt("--server", s.url())
        .arg("--plaintext")
        .arg("--raw")
        .arg(&file)
        .arg("-t")
        .run()
        .success();
    let got = s.received();
    let declared: u64 = got
        .lines()
        .find_map(|l| l.split("SIZE=").nth(1))
        .unwrap_or_else(|| panic!("no SIZE=\n{got}"))
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    // the message as read: each line with its CRLF, one stuffed dot removed
    let received: u64 = last_data(&s)
        .lines()
        .map(|l| l.strip_prefix('.').unwrap_or(l).len() as u64 + 2)
        .sum();
    assert_eq!(declared, received, "{got}");
}

/// A server that agrees to STARTTLS and then
/// stalls is not "a STARTTLS port used as implicit TLS", and the fix is not
/// "use smtp://HOST:587" when smtp:// was used.
#[test]
fn a_stalled_starttls_handshake_is_not_blamed_on_the_port() {
    let s = Scripted::start(
        "c.sendall(b'220 mx ESMTP\\r\\n')\n\
         for raw in lines(c):\n\
         \x20   v = raw[:8].upper()\n\
         \x20   if v.startswith(b'EHLO'): c.sendall(b'250-mx\\r\\n250 STARTTLS\\r\\n')\n\
         \x20   elif v == b'STARTTLS':\n\
         \x20       c.sendall(b'220 2.0.0 go ahead\\r\\n'); time.sleep(30)",
    );
    let sb = Sandbox::new();
    let run = send(&sb, &s.url(), &["--timeout", "2"]);
    run.code(76);
    let e = &run.json()["error"];
    assert_eq!(e["explanation_id"], "tls-starttls-stalled", "{run}");
    assert!(
        !run.stdout.contains("587") && !run.stdout.contains("implicit TLS?"),
        "{run}"
    );
}

/// A plain-text connection to a server that offers STARTTLS and keeps AUTH
/// for TLS: said so (not "no AUTH mechanisms, see `postie account --help`").
/// A server that offers no AUTH at all: its port is the question (exit 69),
/// not postie's configuration (78).
#[test]
fn no_auth_is_explained_by_what_the_server_offered() {
    let login = |s: &Scripted| {
        let sb = Sandbox::new();
        sb.postie()
            .arg("send")
            .opt("--server", s.url())
            .words("--plaintext --user me@example.test --password-env PW --json")
            .words("--from a@example.test --to b@example.test --text hi")
            .env("PW", "pw")
            .run()
    };
    let tls_only = taking_server("250-mx\\r\\n250 STARTTLS", "250 ok");
    let run = login(&tls_only);
    run.code(76);
    let e = &run.json()["error"];
    assert_eq!(e["explanation_id"], "auth-after-tls", "{run}");
    assert!(
        e["fix"][0].as_str().unwrap().contains("--plaintext"),
        "{run}"
    );
    assert!(!run.stdout.contains("account --help"), "{run}");

    let none = taking_server("250-mx\\r\\n250 ENHANCEDSTATUSCODES", "250 ok");
    let run = login(&none);
    run.code(69);
    let e = &run.json()["error"];
    assert_eq!(e["explanation_id"], "no-auth-offered", "{run}");
    assert!(run.stdout.contains("submission port"), "{run}");
}

/// A port already taken is a local bind problem, not "could not reach the
/// server (a firewall)", for the relay and the sandbox.
#[test]
fn a_busy_port_is_explained_as_taken() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port().to_string();
    let sb = Sandbox::new();
    for args in [
        vec!["relay", "--listen", &format!("127.0.0.1:{port}")],
        vec!["sandbox", "--smtp-port", &port],
    ] {
        let run = sb.postie().args(&args).run();
        run.code(69)
            .stderr_mentions(&["is taken", "cannot listen on"]);
        assert!(!run.text_lower().contains("firewall"), "{run}");
    }
}

/// An account without login (an internal smarthost that
/// trusts the network): `--auth none`, no AUTH sent, the doctor skips the
/// login stages and can still send its test message; TLS is still required
/// beyond loopback, and a password given with it is refused.
#[test]
fn an_account_without_login_sends_without_auth() {
    let s = taking_server("250-relay\\r\\n250 ENHANCEDSTATUSCODES", "250 2.0.0 queued");
    let sb = Sandbox::new();
    let add = |name: &str| {
        sb.postie()
            .args(["account", "add", name])
            .words("--provider generic --auth none --email app@example.test")
    };
    add("smarthost")
        .opt("--host", "127.0.0.1")
        .opt("--port", s.port.to_string())
        .arg("--plaintext")
        .run()
        .success();
    sb.postie()
        .args([
            "send",
            "-a",
            "smarthost",
            "--to",
            "b@example.test",
            "--text",
            "hi",
        ])
        .run()
        .success();
    let got = s.received();
    assert!(got.contains("MAIL FROM:<app@example.test>"), "{got}");
    assert!(!got.contains("AUTH"), "{got}");
    let run = sb
        .postie()
        .args([
            "doctor",
            "smarthost",
            "--json",
            "--send-test",
            "c@example.test",
        ])
        .run();
    run.success();
    let v = run.json();
    let status = |stage: &str| {
        v["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["stage"] == stage)
            .map(|c| c["status"].clone())
    };
    assert_eq!(status("credentials").unwrap(), "skipped", "{v}");
    assert_eq!(status("send-test").unwrap(), "ok", "{v}");
    assert!(s.received().contains("RCPT TO:<c@example.test>"));
    add("remote")
        .words("--host mail.example.com --port 25 --plaintext")
        .run()
        .code(78)
        .stderr_mentions(&["only allowed to a loopback address"]);
    add("withpw")
        .words("--host 127.0.0.1 --port 2525 --plaintext --password-env X")
        .run()
        .code(64)
        .stderr_mentions(&["--auth none"]);
}
