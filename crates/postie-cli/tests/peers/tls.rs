//! Certificate verification: a bad certificate stops the send before any credentials go out.

use crate::spool::{assert_not_delivered, delivered};
use crate::support::*;

/// EX_PROTOCOL, and the explanation (stderr, or the JSON with --json) names the certificate.
#[track_caller]
fn assert_certificate_refused(run: &Run) {
    run.code(exit::PROTOCOL);
    assert!(
        run.text_lower().contains("certificate"),
        "no mention of the certificate\n{run}"
    );
}

/// `postie send` to aiosmtpd's listener `url` without `--ca-file`.
fn send_untrusted(sb: &Sandbox, url: &str, tok: &str) -> Postie {
    sb.send_to(url, Peer::Aiosmtpd).opt("--to", TO).message(tok)
}

#[test]
fn wrong_tls_name_is_refused() {
    let sb = Sandbox::new();
    let tok = token("tls-wrong-name");
    let run = sb
        .send(Peer::Aiosmtpd, Tls::StartTls)
        .opt("--to", TO)
        .message(&tok)
        .opt("--tls-name", "wrong.example")
        .run();
    assert_certificate_refused(&run);
    assert_not_delivered(Peer::Aiosmtpd, &tok);
}

#[test]
fn unknown_ca_is_refused() {
    // the peers' CA is not among the system's roots: without --ca-file nothing is trusted
    let sb = Sandbox::new();
    let tok = token("tls-unknown-ca");
    let run = send_untrusted(&sb, &Peer::Aiosmtpd.url(Tls::Implicit), &tok)
        .arg("--json")
        .run();
    assert_certificate_refused(&run);
    let j = run.json();
    assert_eq!(j["status"], "failed", "{run}");
    assert_eq!(j["error"]["kind"], "tls", "{run}");
    assert_not_delivered(Peer::Aiosmtpd, &tok);
}

fn expired(tls: Tls) {
    let sb = Sandbox::new();
    let tok = token("tls-expired");
    let run = sb
        .send(Peer::TlsExpired, tls)
        .opt("--to", TO)
        .message(&tok)
        .run();
    assert_certificate_refused(&run);
    assert!(
        run.text_lower().contains("expired"),
        "no mention of the expiry\n{run}"
    );
    assert_not_delivered(Peer::TlsExpired, &tok);
}

#[test]
fn expired_certificate_is_refused_starttls() {
    expired(Tls::StartTls)
}

#[test]
fn expired_certificate_is_refused_implicit() {
    expired(Tls::Implicit)
}

#[test]
fn certificate_for_another_name_is_refused() {
    let sb = Sandbox::new();
    let tok = token("tls-other-name");
    let run = sb
        .send(Peer::TlsOtherName, Tls::Implicit)
        .opt("--to", TO)
        .message(&tok)
        .arg("--json")
        .run();
    assert_certificate_refused(&run);
    assert_eq!(run.json()["error"]["kind"], "tls", "{run}");
    assert_not_delivered(Peer::TlsOtherName, &tok);
}

fn other_name_with_tls_name(tls: Tls) {
    let sb = Sandbox::new();
    let tok = token("tls-name-ok");
    sb.send(Peer::TlsOtherName, tls)
        .opt("--to", TO)
        .message(&tok)
        .opt("--tls-name", peers().get("TLS_OTHERNAME"))
        .run()
        .success();
    let d = delivered(Peer::TlsOtherName, &tok, 1);
    assert!(d.tls);
}

#[test]
fn tls_name_makes_the_other_name_acceptable_starttls() {
    other_name_with_tls_name(Tls::StartTls)
}

#[test]
fn tls_name_makes_the_other_name_acceptable_implicit() {
    other_name_with_tls_name(Tls::Implicit)
}

#[test]
fn server_without_starttls_gets_no_credentials() {
    // smtp:// means STARTTLS is required; this listener offers none (and allows AUTH in clear)
    let sb = Sandbox::new();
    let tok = token("no-starttls");
    let url = format!("smtp://127.0.0.1:{}", peers().port("AIOSMTPD_PLAIN"));
    let run = send_untrusted(&sb, &url, &tok)
        .opt("--ca-file", peers().ca())
        .run();
    run.failure();
    run.stderr_mentions(&["STARTTLS"]);
    assert_not_delivered(Peer::Aiosmtpd, &tok);
}
