//! AUTH: mechanism choice, initial responses, challenges, failures, and the
//! transcript never showing a secret.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use postie_proto::client::{Event, SessionError, Stage, TlsMode};
use postie_proto::sasl::Mechanism;

use super::peer::*;

const GMAIL_ERROR_400: &str = "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==";
const GMAIL_535: &str = "535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm - gsmtp\r\n";

fn b64(s: &str) -> String {
    B64.encode(s)
}

fn xoauth2_ir(token: &str) -> String {
    b64(&format!(
        "user=me@example.com\x01auth=Bearer {token}\x01\x01"
    ))
}

/// Every form a secret could leak in.
fn secrets(extra: &[&str]) -> Vec<String> {
    let mut v = vec![
        PASSWORD.to_owned(),
        TOKEN.to_owned(),
        b64(PASSWORD),
        b64(&format!("\0me@example.com\0{PASSWORD}")),
        xoauth2_ir(TOKEN),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn assert_clean(p: &Peer, extra: &[&str]) {
    let s = secrets(extra);
    p.assert_no_secret(&s.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn plain_with_initial_response() {
    let mut p = Peer::gmail_after_starttls(Some(password()));
    let ir = b64(&format!("\0me@example.com\0{PASSWORD}"));
    p.sent(&format!("AUTH PLAIN {ir}\r\n"))
        .recv("235 2.7.0 Accepted\r\n")
        .sent_nothing();
    let ev = p.events();
    assert!(ev.ends_with(&[
        Event::Authenticated {
            mechanism: Mechanism::Plain
        },
        Event::Ready
    ]));
    assert!(p.sent_lines().contains(&format!(
        "AUTH PLAIN <redacted {} bytes: PLAIN credentials>",
        ir.len()
    )));
    assert_clean(&p, &[]);
}

#[test]
fn login_answers_each_prompt() {
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = Some(password());
    let mut p = Peer::new(c);
    p.recv("220 smtp.office365.com\r\n")
        .sent("EHLO client.example\r\n")
        .recv(MICROSOFT_EHLO_TLS)
        .sent("AUTH LOGIN\r\n")
        .recv("334 VXNlcm5hbWU6\r\n")
        .sent(&format!("{}\r\n", b64("me@example.com")))
        .recv("334 UGFzc3dvcmQ6\r\n")
        .sent(&format!("{}\r\n", b64(PASSWORD)))
        .recv("235 2.7.0 Authentication successful\r\n");
    assert!(p.events().ends_with(&[
        Event::Authenticated {
            mechanism: Mechanism::Login
        },
        Event::Ready
    ]));
    let sent = p.sent_lines();
    assert!(
        sent.contains(&"<redacted 20 bytes: LOGIN username>".to_owned()),
        "{sent:?}"
    );
    assert!(
        sent.iter().any(|l| l.ends_with("bytes: LOGIN password>")),
        "{sent:?}"
    );
    assert_clean(&p, &[&b64("me@example.com")]);
}

#[test]
fn long_xoauth2_token_goes_after_334() {
    // A Microsoft-style JWT, far over the 512-octet line.
    let jwt = format!("eyJ0eXAiOiJKV1Qi.{}.S3CRET-sig", "x".repeat(1500));
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = Some(bearer(&jwt));
    let mut p = Peer::new(c);
    p.recv("220 smtp.office365.com\r\n")
        .sent("EHLO client.example\r\n")
        .recv(MICROSOFT_EHLO_TLS)
        .sent("AUTH XOAUTH2\r\n")
        .recv("334 \r\n")
        .sent(&format!("{}\r\n", xoauth2_ir(&jwt)))
        .recv("235 2.7.0 Authentication successful\r\n");
    assert!(p.events().contains(&Event::Authenticated {
        mechanism: Mechanism::XOAuth2
    }));
    let sent = p.sent_lines();
    assert!(
        sent.iter().any(|l| l.starts_with("<redacted ")
            && l.ends_with("bytes: user=me@example.com, bearer token>"))
    );
    assert_clean(&p, &[&jwt, &xoauth2_ir(&jwt)]);
}

#[test]
fn initial_response_512_octet_boundary() {
    // "AUTH XOAUTH2 " + base64 + CRLF: 338 token bytes give 511 octets, 339
    // give 515.
    for (len, with_ir) in [(338, true), (339, false)] {
        let token = "t".repeat(len);
        let mut c = cfg(TlsMode::Implicit);
        c.credentials = Some(bearer(&token));
        c.preferred_mechanism = Some(Mechanism::XOAuth2);
        let mut p = Peer::new(c);
        p.recv("220 mx\r\n")
            .sent("EHLO client.example\r\n")
            .recv("250-mx\r\n250 AUTH XOAUTH2\r\n");
        let line = p.sent_bytes();
        let ir = xoauth2_ir(&token);
        if with_ir {
            assert_eq!(line, format!("AUTH XOAUTH2 {ir}\r\n").as_bytes());
            assert!(line.len() <= 512);
        } else {
            assert_eq!(line, b"AUTH XOAUTH2\r\n");
            assert!(format!("AUTH XOAUTH2 {ir}\r\n").len() > 512);
        }
    }
}

#[test]
fn xoauth2_error_challenge_then_535() {
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = Some(bearer(TOKEN));
    c.preferred_mechanism = Some(Mechanism::XOAuth2);
    let mut p = Peer::new(c);
    p.recv("220 smtp.gmail.com ESMTP\r\n")
        .sent("EHLO client.example\r\n")
        .recv(GMAIL_EHLO_TLS)
        .sent(&format!("AUTH XOAUTH2 {}\r\n", xoauth2_ir(TOKEN)))
        .recv(&format!("334 {GMAIL_ERROR_400}\r\n"))
        .sent("\r\n")
        .recv(GMAIL_535)
        .sent("QUIT\r\n");
    let err = failed(&p.events());
    let SessionError::AuthFailed {
        mechanism,
        reply,
        server_error,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert_eq!(mechanism, &Mechanism::XOAuth2);
    assert_eq!(reply.code, 535);
    assert_eq!(reply.lines.len(), 2);
    assert_eq!(
        reply.to_string(),
        GMAIL_535.replace("\r\n", "\n").trim_end()
    );
    let se = server_error.as_deref().unwrap();
    assert_eq!(se.status.as_deref(), Some("400"));
    assert_eq!(se.scope.as_deref(), Some("https://mail.google.com/"));
    assert_eq!(err.sasl_server_error(), Some(se));
    assert!(err.is_auth() && err.is_permanent() && !err.is_transient());
    assert_eq!(err.stage(), Stage::Auth);
    assert!(
        p.sent_lines()
            .contains(&"<empty line: acknowledges the error challenge>".to_owned())
    );
    assert_clean(&p, &[]);
}

#[test]
fn oauthbearer_error_challenge_gets_aq() {
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = Some(bearer(TOKEN));
    c.server_host = "smtp.gmail.com".into();
    c.server_port = 465;
    let mut p = Peer::new(c);
    p.recv("220 smtp.gmail.com ESMTP\r\n")
        .sent("EHLO client.example\r\n")
        .recv(GMAIL_EHLO_TLS);
    let ir = b64(&format!(
        "n,a=me@example.com,\x01host=smtp.gmail.com\x01port=465\x01auth=Bearer {TOKEN}\x01\x01"
    ));
    let json = b64(r#"{"status":"invalid_token","scope":"https://mail.google.com/"}"#);
    p.sent(&format!("AUTH OAUTHBEARER {ir}\r\n"))
        .recv(&format!("334 {json}\r\n"))
        .sent("AQ==\r\n")
        .recv("535 5.7.8 Username and Password not accepted.\r\n")
        .sent("QUIT\r\n");
    let err = failed(&p.events());
    assert_eq!(
        err.sasl_server_error().unwrap().status.as_deref(),
        Some("invalid_token")
    );
    assert!(matches!(
        err,
        SessionError::AuthFailed {
            mechanism: Mechanism::OAuthBearer,
            ..
        }
    ));
    assert_clean(&p, &[&ir]);
}

#[test]
fn gmail_534_multi_line_is_kept_whole() {
    let reply = "534-5.7.9 Application-specific password required. For more information, go to\r\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm - gsmtp\r\n";
    let mut p = Peer::gmail_after_starttls(Some(password()));
    p.sent_bytes();
    p.recv(reply).sent("QUIT\r\n");
    let err = failed(&p.events());
    let r = err.reply().unwrap();
    assert_eq!(r.code, 534);
    assert_eq!(r.enhanced.unwrap().to_string(), "5.7.9");
    assert_eq!(
        r.lines,
        [
            "Application-specific password required. For more information, go to",
            " https://support.google.com/mail/?p=InvalidSecondFactor h26sm - gsmtp"
        ]
    );
    assert!(err.to_string().contains("InvalidSecondFactor"));
    // The transcript shows both lines as received.
    let t: Vec<String> = p.transcript().into_iter().map(|l| l.text).collect();
    assert!(
        t.contains(
            &"534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm - gsmtp"
                .to_owned()
        )
    );
}

#[test]
fn credentials_refused_without_tls() {
    let mut c = cfg(TlsMode::None);
    c.credentials = Some(password());
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 AUTH PLAIN LOGIN\r\n")
        .sent("QUIT\r\n");
    let err = failed(&p.events());
    assert_eq!(err, SessionError::PlaintextAuthRefused);
    assert!(err.is_auth());
    assert!(!p.sent_lines().iter().any(|l| l.starts_with("AUTH")));
    assert_clean(&p, &[]);
}

#[test]
fn plaintext_auth_when_explicitly_allowed() {
    let mut c = cfg(TlsMode::None);
    c.credentials = Some(password());
    c.allow_plaintext_auth = true;
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 AUTH PLAIN LOGIN\r\n");
    assert!(p.sent_bytes().starts_with(b"AUTH PLAIN "));
}

#[test]
fn no_common_mechanism() {
    for (ehlo, offered) in [
        (
            "250-mx\r\n250 AUTH PLAIN LOGIN\r\n",
            vec![Mechanism::Plain, Mechanism::Login],
        ),
        ("250 mx\r\n", vec![]),
    ] {
        let mut c = cfg(TlsMode::Implicit);
        c.credentials = Some(bearer(TOKEN));
        let mut p = Peer::new(c);
        p.recv("220 mx\r\n")
            .sent("EHLO client.example\r\n")
            .recv(ehlo)
            .sent("QUIT\r\n");
        let err = failed(&p.events());
        assert_eq!(err, SessionError::NoCommonMechanism { offered });
        assert!(err.is_auth());
    }
}

#[test]
fn temporary_auth_failure_is_transient() {
    let mut p = Peer::gmail_after_starttls(Some(password()));
    p.sent_bytes();
    p.recv("454 4.7.0 Too many login attempts, please try again later.\r\n");
    let err = failed(&p.events());
    assert!(err.is_transient() && err.is_auth());
}

#[test]
fn nonsense_challenge_is_cancelled() {
    let mut p = Peer::gmail_after_starttls(Some(password()));
    p.sent_bytes();
    p.recv("334 \r\n")
        .sent("*\r\n")
        .recv("501 5.7.0 Authentication aborted\r\n")
        .sent("QUIT\r\n");
    let err = failed(&p.events());
    let SessionError::AuthAborted { reason, reply, .. } = &err else {
        panic!("{err:?}")
    };
    assert!(reason.contains("PLAIN"), "{reason}");
    assert_eq!(reply.code, 501);
}

#[test]
fn endless_challenges_are_cancelled() {
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = Some(bearer(TOKEN));
    c.preferred_mechanism = Some(Mechanism::XOAuth2);
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 AUTH XOAUTH2\r\n");
    p.sent_bytes();
    let mut cancelled = false;
    for _ in 0..20 {
        p.recv("334 e30=\r\n");
        if p.sent_bytes() == b"*\r\n" {
            cancelled = true;
            break;
        }
    }
    assert!(cancelled);
}

#[test]
fn bad_base64_challenge_is_cancelled() {
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = Some(password());
    c.preferred_mechanism = Some(Mechanism::Login);
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 AUTH PLAIN LOGIN\r\n")
        .sent("AUTH LOGIN\r\n")
        .recv("334 Username:\r\n")
        .sent("*\r\n");
}

#[test]
fn session_debug_never_shows_pending_credentials() {
    let mut p = Peer::gmail_after_starttls(Some(password()));
    // The AUTH line is queued but not yet taken by the driver.
    let shown = format!("{:?}", p.s);
    assert!(shown.contains("pending_output"), "{shown}");
    for s in secrets(&[]) {
        assert!(!shown.contains(&s), "{shown}");
    }
    let ir = b64(&format!("\0me@example.com\0{PASSWORD}"));
    let bytes: Vec<String> = ir.bytes().map(|b| b.to_string()).collect();
    assert!(!shown.contains(&bytes.join(", ")), "{shown}");
    assert!(p.sent_bytes().starts_with(b"AUTH PLAIN "));
}
