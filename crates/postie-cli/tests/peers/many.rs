//! Several messages on one session through the library
//! (`Session::send_many`), one round trip per message where the server
//! pipelines, checked in the dialogue and on the servers' side.

use std::sync::{Arc, Mutex};

use postie::config::{Config, PasswordSource};
use postie::endpoint::Endpoint;
use postie::error::{Error, ErrorKind};
use postie::mailer::{Account, Mailer, Options, SendReport, Status};
use postie::message::{OutgoingMessage, RawOptions, from_raw};
use postie::provider::TlsMode;
use postie::secret::Secrets;
use postie::transport::TranscriptEntry;
use secrecy::SecretString;

use crate::spool::{assert_not_delivered, delivered};
use crate::support::*;

/// A message with `tok` as its subject to `rcpts`.
fn message(tok: &str, rcpts: &[&str]) -> OutgoingMessage {
    let raw = format!(
        "From: {FROM}\r\nTo: {}\r\nSubject: {tok}\r\n\r\nbody of {tok}\r\n",
        rcpts.join(", ")
    );
    let opts = RawOptions {
        from: Some(FROM.into()),
        recipients: rcpts.iter().map(|r| r.to_string()).collect(),
        ..RawOptions::default()
    };
    from_raw(raw.into_bytes(), &opts).unwrap()
}

/// A mailer with no config file, an account for `peer`'s listener on `port`
/// (STARTTLS, AUTH with the peer's login), and the dialogue it records as
/// (direction, text).
struct Setup {
    mailer: Mailer,
    account: Account,
    lines: Arc<Mutex<Vec<(String, String)>>>,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn lines(&self) -> Vec<(String, String)> {
        self.lines.lock().unwrap().clone()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn setup(peer: Peer, port: u16) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let lines: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let sink = lines.clone();
    let options = Options {
        transcript: Some(Arc::new(move |e: &TranscriptEntry| {
            sink.lock()
                .unwrap()
                .push((e.direction.to_string(), e.text.clone()));
        })),
        ..Options::default()
    };
    let mailer = Mailer::with_options(
        Config::default(),
        dir.path().to_path_buf(),
        Secrets::lazy(|| {
            Err(Error::new(
                ErrorKind::Secret,
                "no secret store in this test",
            ))
        }),
        options,
    );
    let account = Account::from_endpoint(Endpoint {
        host: "127.0.0.1".into(),
        port,
        tls: TlsMode::Starttls,
        tls_name: None,
        ca_file: Some(peers().ca().into()),
    })
    .with_password(
        peer.user(),
        PasswordSource::Given(SecretString::from(peer.password())),
    );
    Setup {
        mailer,
        account,
        lines,
        _dir: dir,
    }
}

/// Sends `msgs` with `send_many` through `peer`'s listener on `port`;
/// returns the reports in order and the dialogue.
fn send_many(
    peer: Peer,
    port: u16,
    msgs: &[OutgoingMessage],
) -> (Vec<SendReport>, Vec<(String, String)>) {
    let s = setup(peer, port);
    let reports = runtime().block_on(async {
        let mut session = s.mailer.session(&s.account);
        let mut out: Vec<Option<SendReport>> = (0..msgs.len()).map(|_| None).collect();
        let refs: Vec<&OutgoingMessage> = msgs.iter().collect();
        session
            .send_many(&refs, |i, r| {
                out[i] = Some(r.unwrap_or_else(|e| panic!("message {i}: {e}")));
            })
            .await;
        session.close().await;
        out.into_iter().map(Option::unwrap).collect::<Vec<_>>()
    });
    (reports, s.lines())
}

/// A pooled session's connection closed by the server while idle (Postfix
/// with `smtpd_timeout=2s` says 421 and closes): the next message goes out
/// on a new connection, once, because the server cannot have taken any of
/// it; both messages are stored once.
#[test]
fn idle_connection_closed_by_the_server_is_replaced_for_the_next_message() {
    let s = setup(Peer::Postfix, peers().port("POSTFIX_IDLE"));
    let (a, b) = (token("idle-first"), token("idle-second"));
    let reports = runtime().block_on(async {
        let mut session = s.mailer.session(&s.account);
        let first = session.send(&message(&a, &[TO])).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(3500)).await;
        let second = session.send(&message(&b, &[TO])).await.unwrap();
        session.close().await;
        (first, second)
    });
    assert_eq!(reports.0.status, Status::Sent);
    assert_eq!(reports.1.status, Status::Sent);
    let lines = s.lines();
    let greetings = lines
        .iter()
        .filter(|(d, t)| d == "received" && t.starts_with("220 ") && t.contains("ESMTP"))
        .count();
    assert_eq!(greetings, 2, "one connection per message: {lines:#?}");
    assert!(
        lines
            .iter()
            .any(|(d, t)| d == "received" && t.starts_with("421")),
        "the server did not close the idle connection: {lines:#?}"
    );
    for t in [&a, &b] {
        assert_eq!(delivered(Peer::Postfix, t, 1).copies.len(), 1);
    }
}

/// The index of the `n`-th line (from 0) that is `dir` and starts with
/// `prefix`, searching from `from`.
fn nth(lines: &[(String, String)], dir: &str, prefix: &str, n: usize) -> usize {
    lines
        .iter()
        .enumerate()
        .filter(|(_, (d, t))| d == dir && t.starts_with(prefix))
        .map(|(i, _)| i)
        .nth(n)
        .unwrap_or_else(|| panic!("no {dir} {prefix:?} #{n} in {lines:#?}"))
}

/// For each message after the first: its MAIL was written before the reply
/// that ends the previous message was read (the previous `.`'s reply with
/// DATA), so no round trip of its own was spent waiting.
fn assert_overlapped(lines: &[(String, String)], msgs: usize, end_of_body: &str) {
    for k in 0..msgs - 1 {
        let body_end = nth(lines, "sent", end_of_body, k);
        let next_mail = nth(lines, "sent", "MAIL FROM:", k + 1);
        let reply = lines[body_end..]
            .iter()
            .position(|(d, _)| d == "received")
            .map(|p| p + body_end)
            .unwrap_or_else(|| panic!("no reply after message {k}'s body: {lines:#?}"));
        assert!(
            next_mail < reply,
            "message {} waited for message {k}'s reply before its MAIL: {lines:#?}",
            k + 1
        );
    }
}

/// Postfix with CHUNKING turned off (PIPELINING only): with DATA, each
/// message's MAIL, RCPT and DATA leave with the previous body's `.`. One
/// message has a refused recipient among accepted ones, one has only
/// refused recipients (RSET, then the next message): every result is the
/// one its own replies say, and Postfix stored exactly the accepted ones.
#[test]
fn send_many_rides_each_envelope_on_the_previous_dot_at_postfix() {
    let refused = peers().get("REFUSED_RCPT");
    let toks: Vec<String> = (0..5).map(|i| token(&format!("many-pf-{i}"))).collect();
    let rcpts: [&[&str]; 5] = [&[TO], &[refused, TO], &[TO], &[refused], &[TO]];
    let msgs: Vec<_> = toks.iter().zip(rcpts).map(|(t, r)| message(t, r)).collect();
    let (reports, lines) = send_many(Peer::Postfix, peers().port("POSTFIX_PIPELINING"), &msgs);
    assert!(
        !lines
            .iter()
            .any(|(d, t)| d == "sent" && t.starts_with("BDAT")),
        "CHUNKING was not off: {lines:#?}"
    );
    // Messages 0→1→2 and 4 follow a delivered body; 3 follows 2's `.`.
    assert_overlapped(&lines[..nth(&lines, "sent", "MAIL FROM:", 3)], 3, ".");
    let status: Vec<Status> = reports.iter().map(|r| r.status).collect();
    assert_eq!(
        status,
        [
            Status::Sent,
            Status::Partial,
            Status::Sent,
            Status::Failed,
            Status::Sent
        ],
        "{reports:#?}"
    );
    let r1 = &reports[1].recipients;
    assert_eq!(r1.len(), 2);
    assert!(!r1[0].accepted && r1[0].code == 550, "{r1:#?}");
    assert!(r1[1].accepted, "{r1:#?}");
    assert_eq!(reports[3].recipients[0].code, 550);
    assert!(
        lines.iter().any(|(d, t)| d == "sent" && t == "RSET"),
        "no RSET after the refused message: {lines:#?}"
    );
    for (i, tok) in toks.iter().enumerate() {
        if i == 3 {
            assert_not_delivered(Peer::Postfix, tok);
        } else {
            let d = delivered(Peer::Postfix, tok, 1);
            assert_eq!(
                d.copies.len(),
                1,
                "message {i} stored {} times",
                d.copies.len()
            );
        }
    }
}

/// Nodemailer's smtp-server (PIPELINING, no CHUNKING): the same overlap
/// against an independent implementation, each message stored once.
#[test]
fn send_many_rides_each_envelope_on_the_previous_dot_at_smtp_server() {
    let toks: Vec<String> = (0..4).map(|i| token(&format!("many-ss-{i}"))).collect();
    let msgs: Vec<_> = toks.iter().map(|t| message(t, &[TO])).collect();
    let (reports, lines) = send_many(
        Peer::SmtpServer,
        Peer::SmtpServer.port(Tls::StartTls),
        &msgs,
    );
    assert_overlapped(&lines, msgs.len(), ".");
    for (i, (r, tok)) in reports.iter().zip(&toks).enumerate() {
        assert_eq!(r.status, Status::Sent, "message {i}: {r:#?}");
        let d = delivered(Peer::SmtpServer, tok, 1);
        assert_eq!(d.copies.len(), 1, "message {i} stored more than once");
    }
}

/// Postfix with CHUNKING: every message is one flight (MAIL, RCPT, BDAT
/// LAST with the body), and the next follows its reply; all stored once.
#[test]
fn send_many_with_chunking_sends_each_message_in_one_flight_at_postfix() {
    let toks: Vec<String> = (0..3).map(|i| token(&format!("many-ch-{i}"))).collect();
    let msgs: Vec<_> = toks.iter().map(|t| message(t, &[TO])).collect();
    let (reports, lines) = send_many(Peer::Postfix, Peer::Postfix.port(Tls::StartTls), &msgs);
    for k in 0..msgs.len() {
        let mail = nth(&lines, "sent", "MAIL FROM:", k);
        let bdat = nth(&lines, "sent", "BDAT", k);
        let first_reply = lines[mail..]
            .iter()
            .position(|(d, _)| d == "received")
            .map(|p| p + mail)
            .unwrap();
        assert!(
            bdat < first_reply,
            "message {k} waited before its body: {lines:#?}"
        );
    }
    for (r, tok) in reports.iter().zip(&toks) {
        assert_eq!(r.status, Status::Sent);
        assert_eq!(delivered(Peer::Postfix, tok, 1).copies.len(), 1);
    }
}
