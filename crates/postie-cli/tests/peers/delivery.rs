//! Sending through each real server, checked on the server's side: envelope, headers, MIME.

use std::collections::BTreeSet;

use crate::spool::{assert_not_delivered, delivered, header_values};
use crate::support::*;

fn set(addrs: &[&str]) -> BTreeSet<String> {
    addrs.iter().map(|a| a.to_lowercase()).collect()
}

/// The right password over `tls`: delivered once, to the envelope given, over TLS.
pub fn delivers(peer: Peer, tls: Tls) {
    let sb = Sandbox::new();
    let tok = token("delivers");
    sb.send(peer, tls)
        .opt("--to", TO)
        .message(&tok)
        .run()
        .success();
    let d = delivered(peer, &tok, 1);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO]));
    assert!(d.tls, "{peer:?} recorded the session as unencrypted");
    if peer != Peer::Postfix {
        assert_eq!(d.copies.len(), 1, "sent more than once");
        assert_eq!(d.auth_user.as_deref(), Some(peer.user()));
    }
    let m = d.mime();
    assert_eq!(m.header("Subject"), tok);
    assert!(m.header("To").contains(TO));
    assert!(m.header("From").contains(FROM));
    assert_eq!(m.headers("Date").len(), 1);
    assert_eq!(m.headers("Message-ID").len(), 1);
    assert!(m.texts("text/plain").iter().any(|t| t.contains(&tok)));
}

/// A wrong password: EX_NOPERM, an explanation on stderr, nothing sent.
pub fn wrong_password(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("wrong-password");
    let run = sb
        .send(peer, Tls::StartTls)
        .env(PW_VAR, "not-the-password")
        .opt("--to", TO)
        .message(&tok)
        .run();
    run.code(exit::NOPERM);
    let err = run.stderr.to_lowercase();
    assert!(
        err.contains("535"),
        "stderr should quote the server's 535 reply\n{run}"
    );
    assert!(
        err.contains("password") || err.contains("credential"),
        "stderr should say the credentials were refused\n{run}"
    );
    assert_not_delivered(peer, &tok);
}

/// A 5 MiB random attachment arrives byte for byte.
pub fn attachment_5mib(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("attach-5mib");
    let data = random_bytes(5 * 1024 * 1024, &tok);
    let file = sb.file("random.bin", &data);
    sb.send(peer, Tls::Implicit)
        .opt("--to", TO)
        .message(&tok)
        .opt("--attach", &file)
        .run()
        .success();
    let m = delivered(peer, &tok, 1).mime();
    assert_eq!(m.content_type(), "multipart/mixed");
    let got = m.attachment("random.bin");
    assert_eq!(got.len(), data.len(), "attachment size differs");
    assert!(got == data, "attachment content differs");
    assert!(m.texts("text/plain").iter().any(|t| t.contains(&tok)));
}

/// A non-ASCII subject decodes back to the same text.
pub fn utf8_subject(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("utf8-subject");
    let subject = format!("Grüße ✉ {tok}");
    sb.send(peer, Tls::StartTls)
        .opt("--to", TO)
        .opt("--subject", &subject)
        .opt("--text", &tok)
        .run()
        .success();
    // found by the (ASCII) body: the subject may well be RFC 2047 encoded
    let m = delivered(peer, &tok, 1).mime();
    assert_eq!(m.header("Subject"), subject);
}

/// A non-ASCII body and attachment file name survive.
pub fn utf8_body_and_filename(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("utf8-body");
    let body = "Grüße aus Köln ✉ — naïve café\n";
    let content = "Inhalt: äöü ß €\n".as_bytes();
    let file = sb.file("Prüfbericht ✉.txt", content);
    sb.send(peer, Tls::StartTls)
        .opt("--to", TO)
        .opt("--subject", &tok)
        .opt("--text", body)
        .opt("--attach", &file)
        .run()
        .success();
    let m = delivered(peer, &tok, 1).mime();
    let texts: Vec<_> = m
        .texts("text/plain")
        .into_iter()
        .filter(|t| t.contains("Köln"))
        .collect();
    assert_eq!(texts.len(), 1, "the body: {:#}", m.json["parts"]);
    assert_eq!(texts[0].replace("\r\n", "\n").trim_end(), body.trim_end());
    assert_eq!(m.attachment("Prüfbericht ✉.txt"), content);
}

/// Bcc recipients get the message; no copy shows them a Bcc header or their address.
pub fn bcc_hidden(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("bcc");
    sb.send(peer, Tls::StartTls)
        .opt("--to", TO)
        .opt("--cc", CC)
        .opt("--bcc", BCC)
        .message(&tok)
        .run()
        .success();
    let d = delivered(peer, &tok, 3);
    assert_eq!(d.rcpt_tos, set(&[TO, CC, BCC]));
    for bytes in d.all_client_bytes() {
        let bcc = header_values(&bytes, "Bcc");
        assert!(bcc.is_empty(), "a Bcc header was sent: {bcc:?}");
        assert!(
            !contains(&bytes, BCC.as_bytes()),
            "the Bcc address appears in the message"
        );
    }
    assert!(d.mime().header("Cc").contains(CC));
}

/// `--raw FILE -t`: recipients from To/Cc/Bcc, Bcc removed, Date and Message-ID added, the
/// body (with lines starting with dots) unchanged.
pub fn raw_read_recipients(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("raw-t");
    let body = format!(".\n..two dots\n.one dot\n{tok}\nend\n");
    let raw = format!(
        "From: Alice <{FROM}>\nTo: Bob <{TO}>\nCc: {CC}\nBcc: {BCC}\nSubject: raw {tok}\n\
         X-Test: kept as is\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\n{body}"
    );
    let file = sb.file("message.eml", raw.as_bytes());
    sb.send_raw(peer, Tls::Implicit)
        .arg(&file)
        .arg("-t")
        .run()
        .success();
    let d = delivered(peer, &tok, 3);
    assert_eq!(d.mail_from, FROM);
    assert_eq!(d.rcpt_tos, set(&[TO, CC, BCC]));
    for bytes in d.all_client_bytes() {
        assert!(header_values(&bytes, "Bcc").is_empty(), "Bcc header kept");
        assert!(
            !contains(&bytes, BCC.as_bytes()),
            "the Bcc address appears in the message"
        );
    }
    let m = d.mime();
    assert_eq!(m.header("X-Test"), "kept as is");
    assert_eq!(m.header("Subject"), format!("raw {tok}"));
    let ids = m.headers("Message-ID");
    assert_eq!(ids.len(), 1, "one Message-ID expected: {ids:?}");
    let id = &ids[0];
    assert!(
        !id.ends_with("@provider.test>"),
        "Message-ID {id:?} added by Postfix, not postie"
    );
    assert_eq!(m.headers("Date").len(), 1);
    let text = m.texts("text/plain").join("").replace("\r\n", "\n");
    assert_eq!(text, body, "the body changed (dot-stuffing?)");
}

/// Three recipients, the server refuses one: per-recipient results, EX_NOUSER, the other two
/// get the message.
pub fn one_recipient_refused(peer: Peer) {
    let sb = Sandbox::new();
    let tok = token("refused-rcpt");
    let refused = peers().get("REFUSED_RCPT");
    let run = sb
        .send(peer, Tls::StartTls)
        .opt("--to", TO)
        .opt("--to", refused)
        .opt("--to", CC)
        .message(&tok)
        .arg("--json")
        .run();
    run.code(exit::NOUSER);
    let j = run.json();
    assert_eq!(j["status"], "partial", "{run}");
    let rcpts = j["recipients"]
        .as_array()
        .unwrap_or_else(|| panic!("no recipients\n{run}"));
    assert_eq!(rcpts.len(), 3, "{run}");
    for r in rcpts {
        let addr = r["address"].as_str().unwrap();
        if addr.eq_ignore_ascii_case(refused) {
            assert_eq!(r["accepted"], false, "{run}");
            assert_eq!(r["code"], 550, "{run}");
            let text = r["text"].as_str().unwrap_or_default();
            assert!(text.contains("Recipient address rejected"), "{run}");
        } else {
            assert_eq!(r["accepted"], true, "{run}");
            let code = r["code"].as_u64();
            assert!(code.is_some_and(|c| (200..300).contains(&c)), "{run}");
        }
    }
    let d = delivered(peer, &tok, 2);
    assert_eq!(d.rcpt_tos, set(&[TO, CC]));
}

impl Sandbox {
    /// `postie send --raw` to `peer` with its working credentials; the path (or `-`) follows.
    pub fn send_raw(&self, peer: Peer, tls: Tls) -> Postie {
        self.postie()
            .arg("send")
            .opt("--server", peer.url(tls))
            .opt("--ca-file", peers().ca())
            .opt("--user", peer.user())
            .opt("--password-env", PW_VAR)
            .env(PW_VAR, peer.password())
            .arg("--raw")
    }
}

macro_rules! each_peer {
    ($($name:ident => $peer:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[test] fn starttls_delivers() { delivers($peer, Tls::StartTls) }
            #[test] fn implicit_tls_delivers() { delivers($peer, Tls::Implicit) }
            #[test] fn wrong_password_is_refused() { wrong_password($peer) }
            #[test] fn attachment_5mib_arrives_intact() { attachment_5mib($peer) }
            #[test] fn utf8_subject_round_trips() { utf8_subject($peer) }
            #[test] fn utf8_body_and_filename_round_trip() { utf8_body_and_filename($peer) }
            #[test] fn bcc_gets_mail_but_stays_hidden() { bcc_hidden($peer) }
            #[test] fn raw_with_read_recipients() { raw_read_recipients($peer) }
            #[test] fn one_of_three_recipients_refused() { one_recipient_refused($peer) }
        }
    )*};
}

each_peer! {
    aiosmtpd => Peer::Aiosmtpd,
    smtp_server => Peer::SmtpServer,
    postfix => Peer::Postfix,
}

/// Postfix's SIZE limit on its small port: refused as a message error, nothing delivered.
#[test]
fn postfix_message_over_size_limit() {
    let sb = Sandbox::new();
    let tok = token("too-big");
    let limit: usize = peers().get("POSTFIX_SMALL_LIMIT").parse().unwrap();
    let file = sb.file("big.bin", &random_bytes(limit, &tok));
    let url = format!("smtp://127.0.0.1:{}", peers().port("POSTFIX_SMALL"));
    let run = sb
        .send_to(&url, Peer::Postfix)
        .opt("--ca-file", peers().ca())
        .opt("--to", TO)
        .message(&tok)
        .opt("--attach", &file)
        .arg("--json")
        .run();
    run.code(exit::DATAERR);
    let j = run.json();
    assert_eq!(j["status"], "failed", "{run}");
    assert_eq!(j["error"]["kind"], "message", "{run}");
    // refused by postie itself from the EHLO SIZE (no reply code), or by Postfix with 552
    let code = &j["error"]["code"];
    assert!(code.is_null() || code == 552, "{run}");
    assert_not_delivered(Peer::Postfix, &tok);
}

/// Positional recipients join the envelope; with --to they stay out of the headers.
#[test]
fn positional_recipients_with_to_stay_out_of_headers() {
    let sb = Sandbox::new();
    let tok = token("positional");
    sb.send(Peer::Aiosmtpd, Tls::StartTls)
        .arg(CC)
        .opt("--to", TO)
        .message(&tok)
        .run()
        .success();
    let d = delivered(Peer::Aiosmtpd, &tok, 2);
    assert_eq!(d.rcpt_tos, set(&[TO, CC]));
    let m = d.mime();
    assert!(m.header("To").contains(TO));
    assert!(m.headers("Cc").is_empty());
    assert!(!contains(&d.client_bytes(), CC.as_bytes()));
}

/// Without --to, positional recipients become the To header.
#[test]
fn positional_recipients_alone_become_to() {
    let sb = Sandbox::new();
    let tok = token("positional-only");
    sb.send(Peer::Aiosmtpd, Tls::StartTls)
        .arg(TO)
        .message(&tok)
        .run()
        .success();
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert_eq!(d.rcpt_tos, set(&[TO]));
    assert!(d.mime().header("To").contains(TO));
}

/// --text with --html: multipart/alternative with both.
#[test]
fn text_and_html_make_alternative() {
    let sb = Sandbox::new();
    let tok = token("html");
    let html = format!("<p>Hello <b>there</b> {tok}</p>");
    sb.send(Peer::SmtpServer, Tls::StartTls)
        .opt("--to", TO)
        .message(&tok)
        .opt("--html", &html)
        .run()
        .success();
    let m = delivered(Peer::SmtpServer, &tok, 1).mime();
    assert_eq!(m.content_type(), "multipart/alternative");
    assert!(m.texts("text/plain").iter().any(|t| t.contains(&tok)));
    assert!(m.texts("text/html").iter().any(|t| t.contains(&html)));
}

/// --text-file - reads the body from stdin.
#[test]
fn text_from_stdin() {
    let sb = Sandbox::new();
    let tok = token("stdin-text");
    let body = format!("first line\n{tok}\nlast line\n");
    sb.send(Peer::Aiosmtpd, Tls::Implicit)
        .opt("--to", TO)
        .opt("--subject", &tok)
        .opt("--text-file", "-")
        .stdin(body.clone())
        .run()
        .success();
    let m = delivered(Peer::Aiosmtpd, &tok, 1).mime();
    let text = m.texts("text/plain").join("").replace("\r\n", "\n");
    assert_eq!(text.trim_end(), body.trim_end());
}

/// `--raw -` with recipients on the command line: the envelope is theirs, headers untouched.
#[test]
fn raw_from_stdin_with_explicit_recipient() {
    let sb = Sandbox::new();
    let tok = token("raw-stdin");
    let raw = format!(
        "From: {FROM}\r\nTo: list@example.test\r\nSubject: {tok}\r\nDate: Mon, 1 Jan 2024 \
         00:00:00 +0000\r\nMessage-ID: <{tok}@example.test>\r\n\r\nbody {tok}\r\n"
    );
    sb.send_raw(Peer::SmtpServer, Tls::StartTls)
        .arg("-")
        .arg(TO)
        .stdin(raw)
        .run()
        .success();
    let d = delivered(Peer::SmtpServer, &tok, 1);
    assert_eq!(d.rcpt_tos, set(&[TO]));
    assert_eq!(d.mail_from, FROM);
    let bytes = d.client_bytes();
    let raw_header = |name| header_values(&bytes, name);
    assert_eq!(raw_header("To"), ["list@example.test"]);
    assert_eq!(raw_header("Message-ID"), [format!("<{tok}@example.test>")]);
    assert_eq!(raw_header("Date"), ["Mon, 1 Jan 2024 00:00:00 +0000"]);
}

/// --plaintext on a loopback server without TLS: delivered, reported as "tls": "none".
#[test]
fn plaintext_on_loopback() {
    let sb = Sandbox::new();
    let tok = token("plaintext");
    let url = format!("smtp://127.0.0.1:{}", peers().port("AIOSMTPD_PLAIN"));
    let run = sb
        .send_to(&url, Peer::Aiosmtpd)
        .words("--plaintext --json")
        .opt("--to", TO)
        .message(&tok)
        .run();
    run.success();
    assert_eq!(run.json()["tls"], "none", "{run}");
    let d = delivered(Peer::Aiosmtpd, &tok, 1);
    assert!(!d.tls);
}

/// With CHUNKING and PIPELINING (Postfix) the whole transaction
/// leaves in one flight: the BDAT with the body is written before the RCPT
/// replies are read. Every recipient refused: each has its own 550 (not the
/// BDAT's "no valid recipients"), the exit is 67 and nothing is delivered.
#[test]
fn one_flight_with_every_recipient_refused_at_postfix() {
    let sb = Sandbox::new();
    let tok = token("all-refused");
    let refused = peers().get("REFUSED_RCPT");
    let run = sb
        .send(Peer::Postfix, Tls::StartTls)
        .opt("--to", refused)
        .message(&tok)
        .words("--json -v")
        .run();
    run.code(exit::NOUSER);
    let j = run.json();
    assert_eq!(j["recipients"][0]["code"], 550, "{run}");
    let t = j["transcript"].as_array().unwrap();
    let at = |pred: &dyn Fn(&serde_json::Value) -> bool| t.iter().position(pred);
    let bdat =
        at(&|e| e["direction"] == "sent" && e["text"].as_str().unwrap_or("").starts_with("BDAT "))
            .unwrap_or_else(|| panic!("no BDAT sent: {t:?}"));
    let refusal = at(&|e| {
        e["direction"] == "received" && e["text"].as_str().unwrap_or("").starts_with("550")
    })
    .unwrap_or_else(|| panic!("no 550 read: {t:?}"));
    assert!(
        bdat < refusal,
        "the body waited for the RCPT replies: {t:?}"
    );
    assert_not_delivered(Peer::Postfix, &tok);
}
