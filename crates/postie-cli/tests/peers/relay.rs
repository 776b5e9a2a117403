//! `postie relay` against real clients and servers: the article's smtplib functions unchanged
//! but for host and port, a crash test with `kill -9`, upstream faults, the open-relay guard, and
//! hostile input on the wire.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::netns::Netns;
use crate::oauth::{USER, logged_in};
use crate::relay_support::*;
use crate::spool::{assert_not_delivered, delivered};

use crate::support::*;

/// Fast retries so faults resolve within a test.
const FAST_RETRY: &str = "[relay]\nretry_first = \"200ms\"\nretry_max = \"1s\"\n";

/// Runs one function of the article (tests/peers/article.py) against the relay.
fn article(mode: &str, port: u16, sender: &str, secret: &str, subject: &str) -> String {
    let out = python()
        .arg(script("article.py"))
        .args([
            mode,
            sender,
            secret,
            "bob@example.test",
            subject,
            "Hello from the article",
        ])
        .env("ARTICLE_SMTP_HOST", "127.0.0.1")
        .env("ARTICLE_SMTP_PORT", port.to_string())
        .output()
        .expect("run article.py");
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The article's three smtplib functions, unchanged but for host and port, through the relay to
/// the Gmail-like peer, which the relay signs in to with XOAUTH2 and an OAuth 2.0 token (consent
/// given in a real browser). No password of the scripts ever reaches the upstream server.
#[test]
fn article_scripts_deliver_through_the_relay_with_xoauth2_upstream() {
    let sb = Sandbox::new();
    logged_in(&sb, "gm", peers().port("GMAILLIKE_STARTTLS"));
    // The peer offers OAUTHBEARER too (as Gmail does), which postie would pick; the account
    // asks for XOAUTH2, the mechanism of the article.
    let cfg = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("[accounts.gm]\n"), "{text}");
    let text = text.replace(
        "[accounts.gm]\n",
        "[accounts.gm]\nauth_mechanism = \"XOAUTH2\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    sb.postie()
        .args([
            "relay",
            "user",
            "add",
            USER,
            "--account",
            "gm",
            "--password-env",
            "RELAY_PW",
        ])
        .env("RELAY_PW", "the-scripts-old-password")
        .run()
        .success();
    let port = free_port();
    let relay = RelayProc::start(&sb, port, "");

    // 1. The plain-password function: its password is now a local relay login, so it delivers.
    let t1 = token("article-plain");
    let out = article("plain", port, USER, "the-scripts-old-password", &t1);
    assert!(
        out.contains("Email sent successfully!"),
        "{out}\n{}",
        relay.log_text()
    );
    let d = delivered(Peer::GmailLike, &t1, 1);
    assert_eq!(d.auth_mechanism.as_deref(), Some("XOAUTH2"));
    assert_eq!(
        d.auth_user.as_deref(),
        Some(USER),
        "upstream AUTH is the account's bearer token"
    );
    assert!(d.tls);

    // 2. The app-password function with a password the relay does not know: a clear refusal
    //    that says what to do, and nothing sent.
    let t2 = token("article-app");
    let out = article("app", port, USER, "abcd efgh ijkl mnop", &t2);
    assert!(
        out.contains("535") && out.contains("postie relay") && out.contains("relay user add"),
        "{out}"
    );
    // 3. The XOAUTH2 function sends its auth string raw (not base64): the relay answers 501 like
    //    Gmail, docmd() ignores the answer, and since clients on this machine need no AUTH the
    //    message is delivered with the account's own token.
    let t3 = token("article-oauth");
    let out = article("oauth", port, USER, "ya29.not-a-real-token", &t3);
    assert!(
        out.contains("Email sent successfully using OAuth2!"),
        "{out}"
    );
    let d = delivered(Peer::GmailLike, &t3, 1);
    assert_eq!(d.auth_mechanism.as_deref(), Some("XOAUTH2"));
    assert_eq!(d.auth_user.as_deref(), Some(USER));
    assert_not_delivered(Peer::GmailLike, &t2);

    let msgs = queue_settled(&sb, Duration::from_secs(20));
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(msgs.iter().all(|m| m["state"] == "sent"), "{msgs:?}");
    // The scripts' passwords and the tokens never show in the relay's output: the script's
    // made-up one, and every token the test OAuth server issued, the one the relay sent with
    // among them (the peer accepts only tokens from that list).
    let log_lines = relay.log.clone();
    relay.stop();
    let log = log_lines.lock().unwrap().join("\n");
    assert!(
        !log.contains("the-scripts-old-password") && !log.contains("ya29."),
        "{log}"
    );
    let issued = std::fs::read_to_string(peers().dir().join("tokens.txt")).unwrap();
    let issued: Vec<&str> = issued.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!issued.is_empty(), "the OAuth server issued no token");
    for t in issued {
        assert!(
            !log.contains(t),
            "an issued access token in the relay's output"
        );
    }
}

/// Messages of load.py found in a spool directory: index -> copies.
fn load_copies(spool: &Path, run: &str) -> BTreeMap<u32, usize> {
    let mut m = BTreeMap::new();
    let needle = format!("Subject: load {run} ");
    for e in std::fs::read_dir(spool).unwrap().flatten() {
        if e.path().extension().is_none_or(|x| x != "eml") {
            continue;
        }
        let bytes = std::fs::read(e.path()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix(&needle)
                && let Ok(i) = rest.trim().parse::<u32>()
            {
                *m.entry(i).or_insert(0) += 1;
            }
        }
    }
    m
}

/// `kill -9` of the relay at random moments while several clients send: every message that got
/// a 250 is delivered after the restarts; duplicates only for what was in flight at a kill.
#[test]
fn relay_survives_kill_9_with_nothing_lost() {
    let from = "loader@example.test";
    let (sb, mut relay) = relay_for(Peer::Aiosmtpd, from, FAST_RETRY);
    let pw = Peer::Aiosmtpd.password();
    let port = relay.port;
    let run = token("crash");
    let acked_file = sb.path().join("acked.txt");
    const N: u32 = 1000;
    let mut load = load_py(port, &run, N, 4, &acked_file, 150, from)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seed = run
        .bytes()
        .fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(b as u64));
    // Kill k comes once k/(kills+1) of the messages are acknowledged, plus a random delay, so
    // that every kill falls in the middle of the load (checked below, not assumed).
    let kills = 4;
    let mut acked_at_kill = Vec::new();
    for k in 1..=kills {
        let target = N as usize * k / (kills + 1);
        let deadline = Instant::now() + Duration::from_secs(90);
        while acked(&acked_file).len() < target {
            assert!(
                Instant::now() < deadline,
                "the load stalled below {target} acks"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        std::thread::sleep(Duration::from_millis((seed >> 33) % 150));
        acked_at_kill.push(acked(&acked_file).len());
        relay.kill9();
        std::thread::sleep(Duration::from_millis(100));
        relay = RelayProc::start(&sb, port, pw);
    }
    let errors = load_finished(&mut load, "relay");
    let msgs = queue_settled(&sb, Duration::from_secs(60));
    let acked = acked(&acked_file);
    assert!(acked.len() >= N as usize);
    // The premise: each kill hit a load in progress. Messages were acknowledged before the
    // first kill, between kills and after the last, and the clients saw the kills (refused or
    // reset connections, lost replies).
    let mut counts = acked_at_kill.clone();
    counts.push(acked.len());
    assert!(
        counts[0] > 0 && counts.windows(2).all(|w| w[1] > w[0]),
        "acknowledged messages at each kill, then at the end: {counts:?}"
    );
    assert!(errors > 0, "no kill interrupted the clients");
    let spool = Path::new(peers().get("AIOSMTPD_SPOOL"));
    let deadline = Instant::now() + Duration::from_secs(20);
    let copies = loop {
        let c = load_copies(spool, &run);
        if acked.iter().all(|i| c.contains_key(i)) || Instant::now() > deadline {
            break c;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let lost: Vec<_> = acked.iter().filter(|i| !copies.contains_key(i)).collect();
    assert!(
        lost.is_empty(),
        "acked but never delivered: {lost:?}\nqueue: {msgs:?}\n{}",
        relay.log_text()
    );
    let dups: usize = copies.values().map(|n| n - 1).sum();
    // In flight at a kill: at most the connections per account (2) of the delivering worker,
    // plus a message whose 250 to the client was lost (load.py then sends it again).
    assert!(
        dups <= kills * 6,
        "{dups} duplicates for {kills} kills: {copies:?}"
    );
    eprintln!(
        "crash test: {} acked, {} delivered, {dups} duplicates",
        acked.len(),
        copies.len()
    );
    relay.stop();
}

fn control(path: &str, json: &str) {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, json).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn stats() -> serde_json::Value {
    let text = std::fs::read_to_string(peers().get("FLAKY_STATS")).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// The upstream answers 421 / 451 or drops the connection for a share of transactions, then is
/// down for a while: everything is delivered once it recovers.
#[test]
fn upstream_faults_are_retried_until_everything_is_delivered() {
    let from = "flaky-user@example.test";
    let ctl = peers().get("FLAKY_CONTROL");
    let run = token("faults");
    let before = stats();
    // The peer re-reads its control file per connection, and the relay reuses connections:
    // the refused recipient is in every version of the file.
    let refused = peers().get("REFUSED_RCPT");
    control(
        ctl,
        &format!(
            r#"{{"fail_rate": 0.4, "modes": ["451", "421", "drop"], "seed": 11, "run": "{run}", "refuse_rcpt": ["{refused}"]}}"#
        ),
    );
    let (sb, relay) = relay_for(Peer::Flaky, from, FAST_RETRY);
    let port = relay.port;
    let acked_file = sb.path().join("acked.txt");
    const N: u32 = 30;
    let out = load_py(port, &run, N, 3, &acked_file, 60, from)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // The faults must have hit before the next phase: on a busy machine the
    // relay may not have tried much yet when the load returns.
    let failures = |v: &serde_json::Value| {
        v["failures"]
            .as_object()
            .map(|o| o.values().filter_map(|x| x.as_u64()).sum::<u64>())
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while failures(&stats()) == failures(&before) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // Down for a while, then faults again, then healthy. Messages sent while the upstream is
    // down are accepted by the relay and wait: checked, so that the phase is not a no-op when
    // the first load happens to be delivered already.
    control(ctl, &format!(r#"{{"down": true, "run": "{run}-down"}}"#));
    let down_run = format!("{run}-d");
    const DOWN_N: u32 = 5;
    // the relay must accept while the upstream is down
    load_through(&sb, port, &down_run, DOWN_N, from);
    std::thread::sleep(Duration::from_secs(2));
    let waiting = sb.postie().args(["queue", "list", "--json"]).run().json();
    let pending_down = waiting["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("load {down_run} ")))
                && m["state"] != "sent"
        })
        .count();
    assert_eq!(
        pending_down, DOWN_N as usize,
        "sent while the upstream was down? {waiting}"
    );
    control(
        ctl,
        &format!(
            r#"{{"fail_rate": 0.3, "modes": ["451", "drop"], "seed": 5, "run": "{run}-2", "refuse_rcpt": ["{refused}"]}}"#
        ),
    );
    std::thread::sleep(Duration::from_secs(2));
    control(
        ctl,
        &format!(r#"{{"run": "{run}-ok", "refuse_rcpt": ["{refused}"]}}"#),
    );
    let msgs = queue_settled(&sb, Duration::from_secs(60));
    assert!(
        failures(&stats()) > failures(&before),
        "the peer injected no fault: {:?}",
        stats()
    );
    let spool = Path::new(peers().get("FLAKY_SPOOL"));
    let after_down = load_copies(spool, &down_run);
    assert_eq!(
        after_down.len(),
        DOWN_N as usize,
        "the messages that waited out the down phase: {after_down:?}"
    );
    let copies = load_copies(spool, &run);
    let missing: Vec<u32> = (0..N).filter(|i| !copies.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "not delivered: {missing:?}\nqueue: {msgs:?}\n{}",
        relay.log_text()
    );
    assert!(msgs.iter().all(|m| m["state"] == "sent"), "{msgs:?}");
    assert!(
        msgs.iter().any(|m| m["attempts"].as_u64().unwrap_or(0) > 1),
        "some message must have needed a retry: {msgs:?}"
    );

    relay.stop();
}

/// A 550 for one recipient fails that recipient only, and `postie queue show` says so.
#[test]
fn a_refused_recipient_fails_alone_and_queue_show_says_so() {
    let from = "partial@example.test";
    let (sb, relay) = relay_for(Peer::Aiosmtpd, from, "");
    let refused = peers().get("REFUSED_RCPT");
    let port = relay.port;
    // One refused recipient among two.
    let t = token("one-refused");
    let sw = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--from",
            from,
            "--to",
            &format!("ok@example.test,{refused}"),
        ])
        .args(["--header", &format!("Subject: {t}")])
        .output()
        .unwrap();
    assert!(
        sw.status.success(),
        "{}",
        String::from_utf8_lossy(&sw.stdout)
    );
    delivered(Peer::Aiosmtpd, &t, 1);
    let msgs = queue_settled(&sb, Duration::from_secs(30));
    let m = msgs
        .iter()
        .find(|m| m["subject"].as_str() == Some(t.as_str()))
        .unwrap_or_else(|| panic!("{msgs:?}"));
    let id = m["id"].to_string();
    let show = sb.postie().args(["queue", "show", &id, "--json"]).run();
    show.success();
    let v = show.json();
    let rcpts = v["recipients"].as_array().unwrap();
    let by = |a: &str| rcpts.iter().find(|r| r["address"] == a).unwrap().clone();
    assert_eq!(by("ok@example.test")["state"], "sent", "{v}");
    assert_eq!(by(refused)["state"], "failed", "{v}");
    assert_eq!(by(refused)["reply"]["code"], 550, "{v}");
    let human = sb.postie().args(["queue", "show", &id]).run();
    human.success();
    assert!(
        human.stdout.contains("550") && human.stdout.contains(refused),
        "{human}"
    );
    relay.stop();
}

/// Beyond loopback the relay refuses to start without relay users, and with the generated
/// certificate; it never binds the address.
#[test]
fn not_an_open_relay() {
    let sb = Sandbox::new();
    add_password_account(&sb, "a", "open@example.test", Peer::Aiosmtpd);
    let run = sb.postie().args(["relay", "--listen", "0.0.0.0:1"]).run();
    run.code(78);
    assert!(
        run.stderr.contains("refusing to listen on 0.0.0.0:1") && run.stderr.contains("relay user"),
        "{run}"
    );
    sb.postie()
        .args([
            "relay",
            "user",
            "add",
            "u",
            "--account",
            "a",
            "--password-env",
            "P",
        ])
        .env("P", "pw")
        .run()
        .success();
    let run = sb.postie().args(["relay", "--listen", "0.0.0.0:1"]).run();
    run.code(78);
    assert!(run.stderr.contains("tls_cert"), "{run}");
}

/// A line-based SMTP client for hostile input.
struct Raw {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Raw {
    fn connect(port: u16) -> Raw {
        let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        let mut r = Raw {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
        };
        assert!(r.reply().starts_with("220"));
        r
    }

    /// One whole reply (all its lines).
    fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap() == 0 {
                return all + "<closed>";
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return all;
            }
        }
    }

    /// MAIL, RCPT and DATA, each accepted.
    fn open_data(&mut self, from: &str, to: &str) {
        let r = self.send(format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\nDATA\r\n").as_bytes());
        assert!(r.starts_with("250"), "{r}");
        let r = self.reply();
        assert!(r.starts_with("250"), "{r}");
        let r = self.reply();
        assert!(r.starts_with("354"), "{r}");
    }

    fn send(&mut self, bytes: &[u8]) -> String {
        self.w.write_all(bytes).unwrap();
        self.reply()
    }
}

/// Over-long lines, a message over SIZE, NUL bytes, a bare-LF dot (SMTP smuggling), 8-bit data
/// without BODY=8BITMIME: clear replies, nothing stored half, no second message smuggled; the
/// well-formed 8-bit message is delivered byte for byte.
#[test]
fn hostile_input_gets_clear_replies_and_nothing_half_stored() {
    let from = "wire@example.test";
    // A small limit, so that an oversized body is cheap to send.
    let limit = 200_000;
    let (sb, relay) = relay_for(
        Peer::Aiosmtpd,
        from,
        &format!("[relay]\nmax_message_size = {limit}\n"),
    );
    let port = relay.port;
    let mut c = Raw::connect(port);
    assert!(c.send(b"EHLO client.test\r\n").contains("250 "));

    let long = format!("MAIL FROM:<{from}> {}\r\n", "X".repeat(600));
    let r = c.send(long.as_bytes());
    assert!(r.starts_with("500 5.5.2"), "{r}");

    let r = c.send(format!("MAIL FROM:<{from}> SIZE=999999999999\r\n").as_bytes());
    assert!(r.starts_with("552"), "{r}");

    // A body over the limit without SIZE=: sent whole (far past the point where the relay
    // starts spooling to a file), refused at its end, and nothing of it kept.
    let big = token("oversized");
    c.open_data(from, "victim@example.test");
    let line = format!("{}\r\n", "z".repeat(98));
    let body = format!(
        "From: <{from}>\r\nSubject: {big}\r\n\r\n{}.\r\n",
        line.repeat(limit / 100 + 500)
    );
    let r = c.send(body.as_bytes());
    assert!(r.starts_with("552"), "{r}");
    assert!(c.send(b"NOOP\r\n").starts_with("250"));

    // Smuggling: a bare-LF dot inside the body does not end it. Bare LFs are stored as CRLF
    // (Python's smtplib.sendmail(bytes) sends them), so the would-be second message is just
    // text of the first, and no hop after this one can read it as a command.
    let outer = token("outer");
    let smuggled = token("smuggled");
    c.open_data(from, "victim@example.test");
    let body = format!(
        "From: <{from}>\r\nSubject: {outer}\r\n\r\nhello\n.\nMAIL FROM:<{from}>\r\nRCPT TO:<victim@example.test>\r\nDATA\r\nSubject: {smuggled}\r\n\r\nevil\r\n.\r\n"
    );
    let r = c.send(body.as_bytes());
    assert!(r.starts_with("250"), "one message, one reply: {r}");
    // the next reply answers the next command: nothing was left over as commands
    assert!(c.send(b"NOOP\r\n").starts_with("250"));

    // A bare CR is refused.
    c.open_data(from, "victim@example.test");
    let r = c.send(b"Subject: cr\r\n\r\nbare\rcr\r\n.\r\n");
    assert!(r.starts_with("554"), "{r}");

    // NUL in the body.
    c.open_data(from, "victim@example.test");
    let r = c.send(b"Subject: nul\r\n\r\nbad\0byte\r\n.\r\n");
    assert!(r.starts_with("554"), "{r}");

    // A data line over 1000 octets.
    c.open_data(from, "victim@example.test");
    let r = c.send(format!("Subject: long\r\n\r\n{}\r\n.\r\n", "y".repeat(2000)).as_bytes());
    assert!(r.starts_with('5'), "{r}");

    // 8-bit without BODY=8BITMIME: accepted (as Postfix does) and delivered unchanged.
    let eight = token("eight-bit");
    let msg = format!(
        "Date: Wed, 25 Nov 2026 10:00:00 +0000\r\nMessage-ID: <{eight}@example.test>\r\nFrom: <{from}>\r\nTo: <victim@example.test>\r\nSubject: {eight}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nGrüße, naïve café\r\n"
    );
    c.open_data(from, "victim@example.test");
    let r = c.send(format!("{msg}.\r\n").as_bytes());
    assert!(r.starts_with("250"), "{r}");
    assert!(c.send(b"QUIT\r\n").starts_with("221"));

    let d = delivered(Peer::Aiosmtpd, &eight, 1);
    assert_eq!(d.copies[0].1, msg.as_bytes(), "stored bytes differ");
    let d = delivered(Peer::Aiosmtpd, &smuggled, 1);
    assert_eq!(d.copies.len(), 1, "one message, not two");
    let stored = String::from_utf8_lossy(&d.copies[0].1).into_owned();
    // (the relay added Message-ID and Date before the message's own lines)
    assert!(
        stored.contains(&format!(
            "\r\nFrom: <{from}>\r\nSubject: {outer}\r\n\r\nhello\r\n"
        )),
        "{stored}"
    );
    assert!(
        !stored.replace("\r\n", "").contains('\n'),
        "only CRLF line ends: {stored:?}"
    );
    let msgs = queue_settled(&sb, Duration::from_secs(20));
    assert_eq!(
        msgs.len(),
        2,
        "the outer and the 8-bit message only: {msgs:?}"
    );
    relay.stop();
    // Nothing of the oversized body on disk: no spool file, no body file (the two stored
    // messages are small: they live in their rows), and no row.
    let outbox = sb.path().join("data/postie/outbox");
    for dir in ["messages", "messages/tmp"] {
        let files: Vec<_> = std::fs::read_dir(outbox.join(dir))
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
            .map(|e| e.file_name())
            .collect();
        assert!(files.is_empty(), "left in {dir}: {files:?}");
    }
    assert_not_delivered(Peer::Aiosmtpd, &big);
}

/// SIGTERM while a client is in the middle of DATA: the relay lets the transaction finish,
/// answers 250 only after storing it, then says 421 and stops; the message is delivered.
#[test]
fn graceful_stop_finishes_the_transaction_in_progress() {
    let from = "term@example.test";
    let (sb, relay) = relay_for(Peer::Aiosmtpd, from, FAST_RETRY);
    let port = relay.port;
    let t = token("sigterm");
    let mut c = Raw::connect(port);
    assert!(c.send(b"EHLO client.test\r\n").contains("250 "));
    c.open_data(from, "x@example.test");
    c.w.write_all(format!("From: <{from}>\r\nSubject: {t}\r\n\r\nfirst half\r\n").as_bytes())
        .unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &relay.child.id().to_string()])
        .status()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let r = c.send(b"second half\r\n.\r\n");
    assert!(r.starts_with("250"), "{r}");
    let next = c.reply();
    assert!(next.starts_with("421"), "{next}");
    let code = relay.stop();
    assert_eq!(code, Some(0));
    // Delivered by the next run of the queue (the stopping relay may not have sent it).
    sb.postie()
        .args(["queue", "run"])
        .env(UPSTREAM_PW_VAR, peers().get("AIOSMTPD_PASSWORD"))
        .run();
    delivered(Peer::Aiosmtpd, &t, 1);
}

/// A password variable missing from one process's environment (a cron job's `postie sendmail`)
/// leaves the message queued and the account running: the relay, which has the variable,
/// delivers it without anyone running `postie queue retry`.
#[test]
fn a_local_credential_problem_does_not_pause_the_account() {
    let from = "cron@example.test";
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", from, Peer::Aiosmtpd);
    append_config(&sb, FAST_RETRY);
    let t = token("no-env");
    // std_postie passes no POSTIE_* variable, so the account's password variable is unset here.
    let run = sb
        .postie()
        .args(["sendmail", "-i", "someone@example.test"])
        .stdin(format!(
            "From: <{from}>\r\nSubject: {t}\r\n\r\nfrom cron\r\n"
        ))
        .run();
    run.success();
    assert!(
        run.stderr.contains("queued") && run.stderr.contains(UPSTREAM_PW_VAR),
        "says it is queued and which variable is missing: {run}"
    );
    let list = sb.postie().args(["queue", "list", "--json"]).run();
    list.success();
    let v = list.json();
    assert_eq!(v["paused"], serde_json::json!([]), "{v}");
    assert_eq!(v["messages"][0]["state"], "queued", "{v}");
    let show = sb.postie().args(["queue", "show", "1"]).run();
    show.success();
    assert!(
        show.stdout.contains(UPSTREAM_PW_VAR),
        "the reason names the variable: {show}"
    );

    let relay = RelayProc::start(&sb, free_port(), Peer::Aiosmtpd.password());
    delivered(Peer::Aiosmtpd, &t, 1);
    let msgs = queue_settled(&sb, Duration::from_secs(20));
    assert!(msgs.iter().all(|m| m["state"] == "sent"), "{msgs:?}");
    relay.stop();
}

/// A daily sending limit: once the account has sent its quota in the last 24 hours, the next
/// message waits in the queue (about a day), saying why, instead of being tried upstream.
#[test]
fn the_daily_limit_holds_messages_back_and_says_why() {
    let from = "limited@example.test";
    let (sb, relay) = relay_for(
        Peer::Aiosmtpd,
        from,
        "[relay]\nretry_first = \"200ms\"\n[relay.daily_limit]\nali = 2\n",
    );
    let tokens: Vec<String> = (0..3).map(|i| token(&format!("daily-{i}"))).collect();
    let mut ids = Vec::new();
    for t in &tokens {
        let sw = std::process::Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &relay.port.to_string()])
            .args(["--from", from, "--to", "someone@example.test"])
            .args(["--header", &format!("Subject: {t}")])
            .output()
            .unwrap();
        assert!(
            sw.status.success(),
            "{}",
            String::from_utf8_lossy(&sw.stdout)
        );
        // One at a time, so which message is held back is known: wait until this one was
        // either sent or held back.
        let deadline = Instant::now() + Duration::from_secs(20);
        let id = loop {
            let v = sb.postie().args(["queue", "list", "--json"]).run().json();
            let m = v["messages"]
                .as_array()
                .unwrap()
                .iter()
                .find(|m| m["subject"] == t.as_str())
                .cloned();
            if let Some(m) = m {
                let id = m["id"].to_string();
                let d = sb
                    .postie()
                    .args(["queue", "show", &id, "--json"])
                    .run()
                    .json();
                let held = d["explanation"]
                    .as_str()
                    .is_some_and(|e| e.contains("daily sending limit"));
                if m["state"] == "sent" || held {
                    break id;
                }
            }
            assert!(Instant::now() < deadline, "{t} neither sent nor held back");
            std::thread::sleep(Duration::from_millis(100));
        };
        ids.push(id);
    }
    delivered(Peer::Aiosmtpd, &tokens[0], 1);
    delivered(Peer::Aiosmtpd, &tokens[1], 1);
    assert_not_delivered(Peer::Aiosmtpd, &tokens[2]);
    let held = sb
        .postie()
        .args(["queue", "show", &ids[2], "--json"])
        .run()
        .json();
    assert_eq!(held["state"], "queued", "{held}");
    assert_eq!(held["attempts"], 0, "held back, not tried: {held}");
    let show = sb.postie().args(["queue", "show", &ids[2]]).run();
    show.success();
    assert!(show.stdout.contains("daily sending limit"), "{show}");
    relay.stop();
}

/// A web page in the user's browser POSTing SMTP commands to the relay (curl plays the
/// browser's fetch): the relay answers the request line with 554 and closes, so nothing is
/// queued and nothing reaches the upstream server.
#[test]
fn an_http_post_to_the_relay_sends_nothing() {
    let from = "webpage-victim@example.test";
    let (sb, relay) = relay_for(Peer::Aiosmtpd, from, "");
    let tok = token("http-to-smtp");
    let body = format!(
        "EHLO x\r\nMAIL FROM:<{from}>\r\nRCPT TO:<{TO}>\r\nDATA\r\nFrom: <{from}>\r\nSubject: {tok}\r\n\r\n{tok}\r\n.\r\nQUIT\r\n"
    );
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--http1.1",
            "--http0.9",
            "--max-time",
            "10",
            "--data-binary",
            &body,
        ])
        .arg(format!("http://127.0.0.1:{}/", relay.port))
        .output()
        .expect("curl");
    let answer = String::from_utf8_lossy(&out.stdout);
    assert!(
        answer.contains("554 5.7.0 This is an SMTP server, not a web server"),
        "curl got: {answer:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !answer.contains("250 "),
        "a command of the body ran: {answer:?}"
    );
    let queued = sb.postie().args(["queue", "list", "--json"]).run();
    queued.success();
    assert_eq!(queued.json()["messages"], serde_json::json!([]), "{queued}");
    crate::spool::assert_not_delivered(Peer::Aiosmtpd, &tok);
    relay.stop();
}

/// Account `ali` (address `from`) whose password variable the relay's
/// environment lacks.
fn add_account_lacking_its_password(sb: &Sandbox, from: &str) {
    sb.postie()
        .args(["account", "add", "ali", "--provider", "generic"])
        .opt("--host", "127.0.0.1")
        .opt("--port", Peer::Aiosmtpd.port(Tls::StartTls).to_string())
        .opt("--email", from)
        .opt("--user", Peer::Aiosmtpd.user())
        .opt("--password-env", "POSTIE_TEST_RELAY_LACKS_THIS")
        .opt("--ca-file", peers().ca())
        .run()
        .success();
}

/// The relay lacks the account's password variable. It is
/// the process meant to have it, so retrying for hours cannot help: the
/// account is paused, the message stays queued, and `queue list` says which
/// variable to set.
#[test]
fn a_configuration_problem_in_the_relay_pauses_the_account_with_the_fix() {
    let from = "cfg@example.test";
    let sb = Sandbox::new();
    add_account_lacking_its_password(&sb, from);
    append_config(&sb, FAST_RETRY);
    let relay = RelayProc::start(&sb, free_port(), Peer::Aiosmtpd.password());
    let t = token("cfg-pause");
    let sent = std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &relay.port.to_string()])
        .args(["--from", from, "--to", "someone@example.test"])
        .args(["--header", &format!("Subject: {t}"), "--body", "x"])
        .output()
        .expect("swaks");
    assert!(sent.status.success(), "{sent:?}");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let paused = loop {
        let v = sb.postie().args(["queue", "list", "--json"]).run().json();
        if v["paused"].as_array().is_some_and(|p| !p.is_empty()) {
            break v;
        }
        assert!(std::time::Instant::now() < deadline, "not paused: {v}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(paused["paused"][0]["account"], "ali", "{paused}");
    assert!(
        paused["paused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("POSTIE_TEST_RELAY_LACKS_THIS"),
        "{paused}"
    );
    assert_eq!(paused["messages"][0]["state"], "queued", "{paused}");
    relay.stop();
    // `queue run` does not call that done: 75, and the account named
    sb.postie()
        .args(["queue", "run"])
        .run()
        .code(75)
        .stderr_mentions(&["account ali is paused", "POSTIE_TEST_RELAY_LACKS_THIS"]);
    // and `queue list` filtered to nothing says so, not "empty"
    let run = sb
        .postie()
        .args(["queue", "list", "--state", "failed"])
        .run();
    run.success();
    assert!(run.stdout.contains("no message in state failed"), "{run}");
    sb.postie()
        .args(["queue", "list", "--account", "nosuch"])
        .run()
        .code(64)
        .stderr_mentions(&["there is no account nosuch (accounts: ali)"]);
}

/// swaks to the relay on `port`, from `from`, with `tok` as the Subject.
fn swaks_to_relay(port: u16, from: &str, tok: &str) -> std::process::Output {
    std::process::Command::new("swaks")
        .args(["--server", "127.0.0.1", "--port", &port.to_string()])
        .args(["--from", from, "--to", "someone@example.test"])
        .args(["--header", &format!("Subject: {tok}"), "--body", tok])
        .output()
        .expect("swaks")
}

/// Waits until the relay's log has said `needle` `n` times.
fn wait_log(relay: &RelayProc, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while relay.log_text().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "the relay did not say {needle:?} {n} time(s):\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A running relay takes configuration changes without a
/// restart. The account paused for a missing password variable is fixed in
/// the config file, and `queue retry` (which the relay's explanation
/// suggests) then delivers; an account added while it runs is routed to at
/// once; SIGHUP reads the file again; a broken file is reported and the
/// running configuration kept.
#[test]
fn the_relay_takes_config_changes_without_a_restart() {
    let from = "reload@example.test";
    let sb = Sandbox::new();
    add_account_lacking_its_password(&sb, from);
    append_config(&sb, FAST_RETRY);
    let relay = RelayProc::start(&sb, free_port(), Peer::Aiosmtpd.password());
    let t = token("reload-fixed");
    let sent = swaks_to_relay(relay.port, from, &t);
    assert!(sent.status.success(), "{sent:?}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while sb.postie().args(["queue", "list", "--json"]).run().json()["paused"]
        .as_array()
        .is_none_or(|p| p.is_empty())
    {
        assert!(
            Instant::now() < deadline,
            "not paused:\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // The fix, in the file the relay read at start.
    let cfg = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("POSTIE_TEST_RELAY_LACKS_THIS", UPSTREAM_PW_VAR),
    )
    .unwrap();
    wait_log(&relay, "configuration read again", 1);
    sb.postie()
        .args(["queue", "retry", "--all"])
        .run()
        .success();
    delivered(Peer::Aiosmtpd, &t, 1);

    // An account added while the relay runs.
    let other = "other-reload@example.test";
    add_password_account(&sb, "bea", other, Peer::Aiosmtpd);
    wait_log(&relay, "configuration read again", 2);
    let t2 = token("reload-new-account");
    let sent = swaks_to_relay(relay.port, other, &t2);
    assert!(sent.status.success(), "{sent:?}");
    let d = delivered(Peer::Aiosmtpd, &t2, 1);
    assert_eq!(d.mail_from, other);

    // SIGHUP reads it again even unchanged.
    std::process::Command::new("kill")
        .args(["-HUP", &relay.child.id().to_string()])
        .status()
        .unwrap();
    wait_log(&relay, "configuration read again", 3);

    // A file that does not parse: said, and the running one kept.
    let good = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(&cfg, format!("{good}\n[[[ not toml\n")).unwrap();
    wait_log(&relay, "was not taken", 1);
    let t3 = token("reload-kept");
    let sent = swaks_to_relay(relay.port, other, &t3);
    assert!(sent.status.success(), "{sent:?}");
    delivered(Peer::Aiosmtpd, &t3, 1);
    assert_eq!(relay.stop(), Some(0));
}

/// `-v` on the relay and on `queue run` shows the SMTP
/// conversation upstream, as `send -v` does, with the AUTH payload redacted.
#[test]
fn verbose_relay_and_queue_run_show_the_upstream_conversation() {
    let from = "verbose@example.test";
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", from, Peer::Aiosmtpd);
    let relay = RelayProc::start_with(&sb, free_port(), Peer::Aiosmtpd.password(), &["-v"]);
    let t = token("verbose-relay");
    let sent = swaks_to_relay(relay.port, from, &t);
    assert!(sent.status.success(), "{sent:?}");
    delivered(Peer::Aiosmtpd, &t, 1);
    wait_log(&relay, "MAIL FROM:<verbose@example.test>", 1);
    let log = relay.log_text();
    assert!(log.contains("AUTH PLAIN"), "{log}");
    assert!(
        !log.contains(Peer::Aiosmtpd.password()),
        "the password leaked:\n{log}"
    );
    relay.stop();

    // queue run -v: a message sendmail could not deliver (its environment
    // lacks the password), delivered by `queue run` with it
    let t2 = token("verbose-queue-run");
    sb.postie()
        .args(["sendmail", "-t", "-i"])
        .stdin(format!(
            "From: {from}\nTo: someone@example.test\nSubject: {t2}\n\n{t2}\n"
        ))
        .run();
    sb.postie()
        .args(["queue", "retry", "--all"])
        .run()
        .success();
    let run = sb
        .postie()
        .args(["-v", "queue", "run"])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .run();
    delivered(Peer::Aiosmtpd, &t2, 1);
    run.stderr_mentions(&["MAIL FROM:<verbose@example.test>", "AUTH PLAIN"]);
    assert!(!run.stderr.contains(Peer::Aiosmtpd.password()), "{run}");
}

/// The relay removes sent messages after `[relay]
/// keep_sent` (bodies included), and `queue purge --sent --older-than`
/// removes them on demand, leaving younger ones.
#[test]
fn sent_messages_are_removed_after_keep_sent() {
    let from = "retain@example.test";
    let (sb, relay) = relay_for(Peer::Aiosmtpd, from, "[relay]\nkeep_sent = \"1s\"\n");
    let t = token("retention");
    let sent = swaks_to_relay(relay.port, from, &t);
    assert!(sent.status.success(), "{sent:?}");
    delivered(Peer::Aiosmtpd, &t, 1);
    let bodies = sb.path().join("data/postie/outbox/messages");
    let count = |sb: &Sandbox| {
        sb.postie().args(["queue", "list", "--json"]).run().json()["messages"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    while count(&sb) > 0 {
        assert!(
            Instant::now() < deadline,
            "still kept:\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let files = std::fs::read_dir(&bodies)
        .unwrap()
        .flatten()
        .filter(|e| e.path().is_file())
        .count();
    assert_eq!(files, 0, "bodies left in {}", bodies.display());
    relay.stop();

    // on demand: a young message stays, then goes
    let t2 = token("purge-sent");
    sb.postie()
        .args(["sendmail", "-t", "-i"])
        .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
        .stdin(format!(
            "From: {from}\nTo: someone@example.test\nSubject: {t2}\n\n{t2}\n"
        ))
        .run()
        .success();
    delivered(Peer::Aiosmtpd, &t2, 1);
    let run = sb
        .postie()
        .args(["queue", "purge", "--sent", "--older-than", "1h"])
        .run();
    run.success();
    assert!(
        run.stdout
            .contains("0 sent message(s) finished more than 1h ago purged"),
        "{run}"
    );
    assert_eq!(count(&sb), 1);
    let run = sb.postie().args(["queue", "purge", "--sent"]).run();
    assert!(run.stdout.contains("1 sent message(s) purged"), "{run}");
    assert_eq!(count(&sb), 0);
    sb.postie().args(["queue", "purge"]).run().code(64);
    sb.postie()
        .args(["queue", "purge", "--older-than", "1d"])
        .run()
        .code(64);
}

/// The systemd unit it prints
/// passes `systemd-analyze verify` (systemd's own parser) and the launchd
/// agent is a property list Python's plistlib reads, both running this
/// binary; under `Type=notify` the relay says READY=1 once it listens,
/// RELOADING=1 then READY=1 on SIGHUP, STOPPING=1 when it stops.
#[test]
fn the_relay_runs_as_a_service_and_says_when_it_is_ready() {
    let sb = Sandbox::new();
    let unit = sb.postie().args(["relay", "service", "systemd"]).run();
    unit.success();
    let dir = sb.path().join("units");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("postie-relay.service");
    std::fs::write(&file, &unit.stdout).unwrap();
    let runtime = sb.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify", "--user", "--man=no"])
        .arg(&file)
        .env("XDG_RUNTIME_DIR", &runtime)
        .output()
        .expect("systemd-analyze");
    let said = String::from_utf8_lossy(&verify.stderr);
    assert!(
        verify.status.success() && said.trim().is_empty(),
        "systemd-analyze: {said}\n{}",
        unit.stdout
    );
    let bin = sb.std_postie().get_program().to_string_lossy().into_owned();
    assert!(
        unit.stdout.contains(&format!("ExecStart=\"{bin}\"")),
        "{}",
        unit.stdout
    );
    assert!(unit.stdout.contains("Type=notify") && unit.stdout.contains("kill -HUP"));

    let plist = sb.postie().args(["relay", "service", "launchd"]).run();
    plist.success();
    let plist_file = dir.join("org.postie.relay.plist");
    std::fs::write(&plist_file, &plist.stdout).unwrap();
    let read = crate::relay_support::python()
        .arg("-c")
        .arg("import plistlib, sys; d = plistlib.load(open(sys.argv[1], 'rb')); print(d['Label']); print(' '.join(d['ProgramArguments']))")
        .arg(&plist_file)
        .output()
        .expect("python3");
    let out = String::from_utf8_lossy(&read.stdout);
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    assert!(out.starts_with("org.postie.relay\n"), "{out}");
    assert!(
        out.contains(&bin) && out.trim_end().ends_with(" relay"),
        "{out}"
    );

    // readiness, as systemd's notify socket sees it
    let socket_path = sb.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let port = free_port();
    let log_path = sb.path().join("relay.log");
    let mut child = sb
        .std_postie()
        .args(["-v", "relay", "--listen", &format!("127.0.0.1:{port}")])
        .env("NOTIFY_SOCKET", &socket_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 256];
    let mut got: Vec<String> = Vec::new();
    let mut next = || {
        // (a signal to the test process interrupts the wait: wait again)
        let n = loop {
            match socket.recv(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => {
                    break r.unwrap_or_else(|e| {
                        panic!(
                            "no notification after {got:?} ({e}); the relay said:\n{}",
                            std::fs::read_to_string(&log_path).unwrap_or_default()
                        )
                    });
                }
            }
        };
        let note = String::from_utf8_lossy(&buf[..n]).into_owned();
        got.push(note.clone());
        note
    };
    let ready = next();
    assert!(ready.starts_with("READY=1"), "{ready}");
    // ready means listening
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_ok(),
        "not listening at READY"
    );
    let signal = |sig: &str| {
        std::process::Command::new("kill")
            .args([sig, &child.id().to_string()])
            .status()
            .unwrap();
    };
    signal("-HUP");
    assert_eq!(next(), "RELOADING=1");
    assert_eq!(next(), "READY=1");
    signal("-TERM");
    assert_eq!(next(), "STOPPING=1");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

/// Python smtplib logs in to the relay on `port` (STARTTLS, the relay's own certificate not
/// verified: loopback) as `user`; returns the SMTP code of the AUTH reply.
fn relay_login(port: u16, user: &str, password: &str) -> u16 {
    let out = python()
        .args([
            "-c",
            &format!(
                "import smtplib, ssl\n\
             s = smtplib.SMTP('127.0.0.1', {port})\n\
             s.starttls(context=ssl._create_unverified_context())\n\
             try:\n\
             \x20   code = s.login('{user}', '{password}')[0]\n\
             except smtplib.SMTPAuthenticationError as e:\n\
             \x20   code = e.smtp_code\n\
             print(code)\n\
             s.quit()\n"
            ),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .parse()
        .unwrap_or_else(|_| panic!("smtplib: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

/// Waits (15 s at most) until logging in to `relay` as `user` gets `code`: the relay reads
/// its config again by itself, within seconds.
fn wait_for_login(relay: &RelayProc, user: &str, pw: &str, code: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while relay_login(relay.port, user, pw) != code {
        assert!(
            Instant::now() < deadline,
            "logging in as {user} never got {code}:\n{}",
            relay.log_text()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `relay user add`, `list` and `remove` against a running relay: the login works once added
/// and is refused once removed (the relay reads the config again by itself); `list` names the
/// user and its account, never the password, which the config keeps only as a hash; removing a
/// user that does not exist is a usage error that says so.
#[test]
fn relay_users_are_added_listed_and_removed_while_the_relay_runs() {
    let from = "users@example.test";
    let (sb, relay) = relay_for(Peer::Aiosmtpd, from, "");
    let port = relay.port;
    let (user, pw) = ("script@example.test", "Script-Pa55-word-1");
    let list = || sb.postie().args(["relay", "user", "list"]).run();
    let none = list();
    none.success();
    assert!(none.stdout.contains("no relay users"), "{none}");
    assert_eq!(relay_login(port, user, pw), 535, "an unknown user logs in");

    add_relay_user(&sb, user, "ali", pw);
    let listed = list();
    assert!(
        listed.stdout.contains(&format!("{user}  -> account ali")),
        "{listed}"
    );
    assert!(!listed.stdout.contains(pw) && !listed.stderr.contains(pw));
    let config = std::fs::read_to_string(sb.config_home().join("postie/config.toml")).unwrap();
    assert!(config.contains(user) && !config.contains(pw), "{config}");
    wait_for_login(&relay, user, pw, 235);
    assert_eq!(relay_login(port, user, "a-wrong-password"), 535);

    let removed = sb.postie().args(["relay", "user", "remove", user]).run();
    removed.success();
    assert!(removed.stdout.contains("removed"), "{removed}");
    assert!(list().stdout.contains("no relay users"));
    wait_for_login(&relay, user, pw, 535);
    let again = sb.postie().args(["relay", "user", "remove", user]).run();
    again.code(64);
    again.stderr_mentions(&["no relay user", user]);
    assert!(
        !relay.log_text().contains(pw),
        "the password in the relay's output"
    );
    relay.stop();
}

/// The relay's messages of run `run` (load.py puts it in their subjects).
fn messages_of(sb: &Sandbox, run: &str) -> Vec<serde_json::Value> {
    let v = sb.postie().args(["queue", "list", "--json"]).run().json();
    v["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| {
            m["subject"]
                .as_str()
                .is_some_and(|s| s.starts_with(&format!("load {run} ")))
        })
        .cloned()
        .collect()
}

/// Waits until every message of `run` satisfies `done`; returns them.
fn wait_messages(
    sb: &Sandbox,
    run: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let msgs = messages_of(sb, run);
        if !msgs.is_empty() && msgs.iter().all(&done) {
            return msgs;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within 60 s: {msgs:#?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Refusals of a real upstream (aiosmtpd, its replies fixed by its control file), as the relay
/// classifies them: Gmail's `550 5.4.5` daily limit at the end of DATA waits hours; `530` at
/// MAIL and `535` at AUTH pause the account once, with the explanation, and leave its other
/// messages untouched; `queue retry --all` resumes it and every message is delivered, once.
#[test]
fn upstream_refusals_are_classified_by_the_relay_and_a_resumed_account_delivers() {
    let from = "refusals@example.test";
    let ctl = peers().get("FLAKY_CONTROL");
    let run = token("refusals");
    let set = |json: &str| control(ctl, json);
    set(&format!(r#"{{"run": "{run}-ok"}}"#));
    let before = stats();
    let replied = |v: &serde_json::Value, stage: &str| v["replied"][stage].as_u64().unwrap_or(0);
    // One connection: the attempt that pauses the account is the only one made.
    let (sb, relay) = relay_for(
        Peer::Flaky,
        from,
        &format!("{FAST_RETRY}connections_per_account = 1\n"),
    );
    let send =
        |port: u16, sub: &str, n: u32| load_through(&sb, port, &format!("{run}-{sub}"), n, from);

    // 1. The daily limit: the message waits hours, with the explanation.
    set(&format!(
        r#"{{"run": "{run}-quota", "data_reply": "550-5.4.5 Daily user sending limit exceeded. For more information, go to\r\n550 5.4.5  https://support.google.com/a/answer/166852 - gsmtp"}}"#
    ));
    send(relay.port, "quota", 1);
    let m = wait_messages(&sb, &format!("{run}-quota"), "the quota refusal", |m| {
        m["attempts"].as_u64() >= Some(1) && m["state"] == "queued"
    });
    let next = humantime::parse_rfc3339(m[0]["next_attempt_at"].as_str().unwrap()).unwrap();
    let wait = next
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        wait > Duration::from_secs(3600),
        "a daily limit must wait hours, not {wait:?}: {m:#?}"
    );
    assert_eq!(m[0]["last_reply"]["code"], 550, "{m:#?}");
    let id = m[0]["id"].to_string();
    let shown = sb.postie().args(["queue", "show", &id]).run();
    assert!(shown.text_lower().contains("limit"), "{shown}");
    assert!(replied(&stats(), "data") > replied(&before, "data"));

    // 2. 530 at MAIL: the account is paused once; its other messages are not tried.
    set(&format!(
        r#"{{"run": "{run}-530", "mail_reply": "530 5.7.0 Authentication Required. Learn more at https://support.google.com/mail/?p=WantAuthError - gsmtp"}}"#
    ));
    let mail_before = replied(&stats(), "mail");
    send(relay.port, "530", 3);
    wait_messages(&sb, &format!("{run}-530"), "the pause after 530", |m| {
        m["paused"] == true
    });
    std::thread::sleep(Duration::from_secs(2)); // the relay must not try the others meanwhile
    assert_eq!(
        replied(&stats(), "mail") - mail_before,
        1,
        "a paused account's other messages were tried"
    );
    let paused_lines = |r: &RelayProc| {
        r.log_text()
            .lines()
            .filter(|l| l.contains("paused (fix it"))
            .count()
    };
    assert_eq!(paused_lines(&relay), 1, "{}", relay.log_text());
    let list = sb.postie().args(["queue", "list"]).run();
    assert!(list.text_lower().contains("paused"), "{list}");

    // 3. Resumed, with a fresh relay (a new connection, so a new AUTH), which the server now
    //    refuses with 535: paused again, once.
    relay.stop();
    set(&format!(
        r#"{{"run": "{run}-535", "auth_reply": "535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials - gsmtp"}}"#
    ));
    let auth_before = replied(&stats(), "auth");
    let relay = RelayProc::start(&sb, free_port(), Peer::Flaky.password());
    sb.postie()
        .args(["queue", "retry", "--all"])
        .run()
        .success();
    wait_messages(&sb, &format!("{run}-530"), "the pause after 535", |m| {
        m["paused"] == true && m["state"] == "queued"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(paused_lines(&relay), 1, "{}", relay.log_text());
    assert!(replied(&stats(), "auth") > auth_before);
    // (the attempt is recorded on the message tried: the oldest due, whichever it is)
    let shown: Vec<String> = ["quota", "530"]
        .iter()
        .flat_map(|sub| messages_of(&sb, &format!("{run}-{sub}")))
        .map(|m| {
            sb.postie()
                .args(["queue", "show", &m["id"].to_string()])
                .run()
                .stdout
        })
        .collect();
    assert_eq!(
        shown
            .iter()
            .filter(|s| s.contains("credentials 535"))
            .count(),
        1,
        "{shown:#?}"
    );

    // 4. Healthy again and resumed: everything goes out, once each.
    set(&format!(r#"{{"run": "{run}-healed"}}"#));
    let stored_before = stats()["stored"].as_u64().unwrap_or(0);
    sb.postie()
        .args(["queue", "retry", "--all"])
        .run()
        .success();
    for sub in ["quota", "530"] {
        wait_messages(&sb, &format!("{run}-{sub}"), "delivery once resumed", |m| {
            m["state"] == "sent"
        });
    }
    assert_eq!(stats()["stored"].as_u64().unwrap_or(0) - stored_before, 4);
    drop(relay);
}

/// What a client beyond loopback gets, step by step (one JSON object on stdout): the EHLO
/// keywords in clear, MAIL and AUTH in clear, then after STARTTLS: MAIL without AUTH, a wrong
/// password, the right one and a message.
const REMOTE_CLIENT: &str = r#"
import json, smtplib, ssl, sys
host, port, user, pw, tok = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
out = {}
s = smtplib.SMTP(host, port, timeout=20)
s.ehlo("remote.test")
out["client_addr"] = s.sock.getsockname()[0]
out["clear_auth_offered"] = s.has_extn("auth")
out["clear_mail"] = s.docmd("MAIL FROM:<x@remote.test>")[0]
out["clear_rcpt"] = s.docmd("RCPT TO:<victim@elsewhere.test>")[0]
out["clear_auth"] = s.docmd("AUTH PLAIN", "AHUAcHc=")[0]
s.starttls(context=ssl._create_unverified_context())
s.ehlo("remote.test")
out["tls_mail"] = s.docmd("MAIL FROM:<x@remote.test>")[0]
out["tls_rcpt"] = s.docmd("RCPT TO:<victim@elsewhere.test>")[0]
try:
    s.login(user, pw + "-wrong")
    out["wrong_login"] = 235
except smtplib.SMTPAuthenticationError as e:
    out["wrong_login"] = e.smtp_code
s.quit()
s = smtplib.SMTP(host, port, timeout=20)
s.starttls(context=ssl._create_unverified_context())
s.login(user, pw)
s.sendmail("x@remote.test", ["bob@example.test"], ("From: x@remote.test\r\nSubject: %s\r\n\r\nfrom beyond loopback\r\n" % tok).encode())
out["sent"] = True
s.quit()
print(json.dumps(out))
"#;

/// Beyond loopback, in a network namespace of its own: a remote client without AUTH, or without
/// TLS, cannot relay; with TLS and a relay user's password it can (the control).
#[test]
fn not_an_open_relay_to_a_client_beyond_loopback() {
    let ns = Netns::new();
    let sb = Sandbox::new();
    add_password_account(&sb, "a", "remote@example.test", Peer::Aiosmtpd);
    let (user, pw) = ("remote-app", "Relay-user-pw-81x");
    add_relay_user(&sb, user, "a", pw);
    // The peers' certificate (for 127.0.0.1: the remote client does not verify it; what is
    // tested is that TLS comes before AUTH, not the certificate's name).
    let tls = Path::new(peers().ca()).parent().unwrap().to_path_buf();
    append_config(
        &sb,
        &format!(
            "[relay]\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            tls.join("cert.pem").display(),
            tls.join("key.pem").display()
        ),
    );
    // (a port free on this side; the relay binds the veth address only)
    let port = free_port();
    let mut relay = KillOnDrop(
        sb.std_postie()
            .args(["relay", "--listen", &format!("{}:{port}", ns.host)])
            .env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let log = Arc::new(Mutex::new(String::new()));
    let l2 = log.clone();
    let err = relay.0.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut l = l2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !log.lock().unwrap().contains("listening on") {
        assert!(
            std::time::Instant::now() < deadline && relay.0.try_wait().unwrap().is_none(),
            "the relay did not start: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let tok = token("remote");
    let py = python();
    let out = ns
        .exec(py.get_program())
        .args([
            "-c",
            REMOTE_CLIENT,
            &ns.host,
            &port.to_string(),
            user,
            pw,
            &tok,
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the remote client: {stdout}\n{}\nrelay:\n{}",
        String::from_utf8_lossy(&out.stderr),
        log.lock().unwrap()
    );
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    // The premise: the relay saw a client beyond loopback.
    assert_eq!(v["client_addr"], ns.inside.as_str(), "{v}");
    assert_eq!(v["clear_auth_offered"], false, "AUTH offered in clear: {v}");
    for step in ["clear_mail", "clear_auth", "tls_mail"] {
        assert_eq!(v[step], 530, "{step}: {v}");
    }
    for step in ["clear_rcpt", "tls_rcpt"] {
        assert!(v[step].as_u64().unwrap() >= 500, "{step}: {v}");
    }
    assert_eq!(v["wrong_login"], 535, "{v}");
    assert_eq!(v["sent"], true);
    // The control: the relay did deliver for the client that authenticated.
    crate::spool::delivered(Peer::Aiosmtpd, &tok, 1);
}

/// A child process killed when dropped (a failed assertion included).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `n` messages of load.py run `run` through the relay on `port`, from `from`, one client;
/// all acknowledged.
fn load_through(sb: &Sandbox, port: u16, run: &str, n: u32, from: &str) {
    let out = load_py(
        port,
        run,
        n,
        1,
        &sb.path().join(format!("acked-{run}.txt")),
        30,
        from,
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A send that lasts longer than the lease (`[relay] lease = "3s"`, the upstream holding its
/// reply to DATA for 8 s) keeps its lease: `postie queue run` on the same outbox 4 s in, when
/// an unrenewed lease would have run out, finds nothing due, and the upstream stores the
/// message once.
#[test]
fn upstream_slow_beyond_the_lease_keeps_the_message_leased_and_sends_it_once() {
    let from = "slow-upstream@example.test";
    let ctl = peers().get("FLAKY_CONTROL");
    let run = token("slow");
    control(ctl, &format!(r#"{{"run": "{run}", "data_delay": 8}}"#));
    let before = stats();
    let (sb, relay) = relay_for(Peer::Flaky, from, "[relay]\nlease = \"3s\"\n");
    load_through(&sb, relay.port, &run, 1, from);
    let count = |v: &serde_json::Value, key: &str| v[key].as_u64().unwrap_or(0);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while count(&stats(), "delayed") == count(&before, "delayed") {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream never got the message"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_secs(4));
    // held for longer than the lease: a one-shot deliverer on the same outbox, and no more delay
    // for anything it might send
    control(ctl, &format!(r#"{{"run": "{run}-after"}}"#));
    let queue_run = sb
        .postie()
        .args(["queue", "run"])
        .env(UPSTREAM_PW_VAR, Peer::Flaky.password())
        .run();
    let spool = Path::new(peers().get("FLAKY_SPOOL"));
    let copies_then = load_copies(spool, &run);
    queue_run.success();
    wait_messages(&sb, &run, "delivery", |m| m["state"] == "sent");
    // every end of DATA reached: the held one, and any the queue run sent
    let ends = |v: &serde_json::Value| count(v, "transactions") - count(&before, "transactions");
    let wanted = count(&stats(), "delayed") - count(&before, "delayed")
        + copies_then.values().sum::<usize>() as u64;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while ends(&stats()) < wanted {
        assert!(
            std::time::Instant::now() < deadline,
            "the held send never ended"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let copies = load_copies(spool, &run);
    assert_eq!(
        copies.get(&0),
        Some(&1),
        "copies stored: {copies:?} ({copies_then:?} when the queue run ended: {queue_run})"
    );
    assert!(
        copies_then.is_empty(),
        "the relay's send ended before the queue run did: the premise (a send held past its \
         lease while another deliverer claims) does not hold"
    );
    drop(relay);
}

/// OAuth inside the relay's delivery (the SQLite outbox): access tokens live 6 s and every
/// refresh rotates the refresh token. Two messages 22 s apart (the relay keeps an idle
/// connection 20 s, and a session authenticated before its token expired stays usable, so the
/// second message needs a new connection and a token) each reach Postfix, which checks every
/// token by introspection; the relay refreshed in between (counted by the authorization server)
/// and kept the rotated refresh token: after the relay stops, `postie token` works from the
/// store and no rotated-out refresh token ever came back.
#[test]
fn relay_delivery_refreshes_a_short_lived_token_and_keeps_the_rotated_one() {
    let client = format!("relay-{}", token("c").replace('-', ""));
    crate::oauth::register_client(&client, "expires_in=6");
    let sb = Sandbox::new();
    crate::oauth::add_account_for(&sb, "work", peers().port("POSTFIX_OAUTH"), &client);
    crate::oauth::sign_in(&sb, "work");
    let refreshes = || {
        crate::oauth::oauth_stats(&client)["refresh_times"]
            .as_array()
            .map_or(0, Vec::len)
    };
    let relay = RelayProc::start(&sb, free_port(), "");
    let send = |n: u32| {
        let run = token(&format!("relay-oauth-{n}"));
        load_through(&sb, relay.port, &run, 1, USER);
        wait_messages(&sb, &run, "delivery", |m| m["state"] == "sent");
        delivered(Peer::Postfix, &run, 1);
    };
    send(1);
    let after_first = refreshes();
    // the access token has expired, and the connection it authenticated is closed
    std::thread::sleep(postie::mailer::KEEP_IDLE + Duration::from_secs(2));
    send(2);
    let after_second = refreshes();
    assert!(
        after_second > after_first,
        "the relay sent the second message without a refresh ({after_first} -> {after_second}): \
         the premise (an expired token) does not hold, or an expired token was accepted"
    );
    drop(relay);
    let run = sb.postie().args(["token", "work"]).run();
    run.success();
    let stats = crate::oauth::oauth_stats(&client);
    assert_eq!(
        stats["refresh_reused"], 0,
        "a rotated-out refresh token came back: {stats}"
    );
}

/// `transport = ["smtp", "gmail-api"]`: the SMTP server takes the whole message and then the
/// connection is lost before its reply (the flaky peer drops it at the end of DATA). The server
/// may have the message, so nothing is sent through the API: the HTTP listener standing in for
/// it gets no request at all, and the send reports a temporary failure.
#[test]
fn upstream_faults_after_data_never_fall_back_to_the_api() {
    let ctl = peers().get("FLAKY_CONTROL");
    let run = token("no-fallback");
    control(
        ctl,
        &format!(r#"{{"run": "{run}", "fail_rate": 1.0, "modes": ["drop"]}}"#),
    );
    let before = stats();
    let sb = Sandbox::new();
    crate::oauth::add_account_for(&sb, "fb", Peer::Flaky.port(Tls::StartTls), "test-client");
    crate::oauth::sign_in(&sb, "fb");
    // Any request to the "API" is written down.
    let log = sb.path().join("api-requests.log");
    let mut api = python()
        .args([
            "-c",
            "import http.server,sys\n\
             log=sys.argv[1]\n\
             class H(http.server.BaseHTTPRequestHandler):\n\
             \x20def do_POST(self):\n\
             \x20\x20open(log,'a').write(self.path+'\\n'); self.send_response(500); self.end_headers()\n\
             \x20do_PUT=do_POST\n\
             s=http.server.HTTPServer(('127.0.0.1',0),H)\n\
             print(s.server_address[1],flush=True); s.serve_forever()",
        ])
        .arg(&log)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(api.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let api_port: u16 = line.trim().parse().expect("port");
    let path = sb.config_home().join("postie/config.toml");
    let text = std::fs::read_to_string(&path).unwrap().replace(
        "[accounts.fb]\n",
        &format!(
            "[accounts.fb]\ntransport = [\"smtp\", \"gmail-api\"]\napi_url = \"http://127.0.0.1:{api_port}\"\n"
        ),
    );
    std::fs::write(&path, text).unwrap();
    let sent = sb
        .postie()
        .args(["send", "-a", "fb", "--to", "bob@example.test"])
        .message(&run)
        .run();
    control(ctl, "{}");
    let _ = api.kill();
    let _ = api.wait();
    sent.code(75);
    let after = stats();
    assert!(
        after["failures"]["drop"].as_u64() > before["failures"]["drop"].as_u64(),
        "the premise: the upstream took the message and dropped the connection ({after})"
    );
    let requests = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        requests.is_empty(),
        "sent through the API after DATA: {requests}\n{sent}"
    );
}
