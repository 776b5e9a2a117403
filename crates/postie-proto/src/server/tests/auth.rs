//! AUTH: every mechanism with and without an initial response, the bearer
//! error flow, cancelling, decoding failures, sequencing and redaction.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::super::auth::{parse_oauthbearer, parse_plain, parse_xoauth2};
use super::*;

const ACCEPTED: &str = "235 2.7.0 Accepted\r\n";
const CANNOT_DECODE: &str = "501 5.5.2 Syntax error, cannot decode response\r\n";
const XOAUTH2: &str = "user=me@example.com\x01auth=Bearer secret\x01\x01";
const OAUTHBEARER: &str =
    "n,a=me@example.com,\x01host=mx.example\x01port=587\x01auth=Bearer secret\x01\x01";

fn b64(s: &str) -> String {
    B64.encode(s)
}

fn auth_cfg() -> ServerConfig {
    let mut c = cfg();
    c.auth = vec![
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
    ];
    c
}

/// After EHLO on an implicit-TLS connection.
fn authing() -> Host {
    let mut h = Host::with_tls(auth_cfg(), true);
    h.send("EHLO x\r\n");
    assert!(
        h.out()
            .ends_with("250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n")
    );
    h.events();
    h
}

#[test]
fn every_mechanism_with_an_initial_response() {
    let table: &[(&str, String, &str)] = &[
        (
            "PLAIN",
            b64("\0user\0secret"),
            "AUTH PLAIN None user secret",
        ),
        (
            "plain",
            b64("admin\0user\0secret"),
            "AUTH PLAIN Some(\"admin\") user secret",
        ),
        (
            "XOAUTH2",
            b64(XOAUTH2),
            "AUTH XOAUTH2 me@example.com secret None None",
        ),
        (
            "OAUTHBEARER",
            b64(OAUTHBEARER),
            "AUTH OAUTHBEARER me@example.com secret Some(\"mx.example\") Some(587)",
        ),
    ];
    for (mech, ir, event) in table {
        let mut h = authing();
        h.exchange(&format!("AUTH {mech} {ir}\r\n"), ACCEPTED, &[event]);
        assert!(h.s.authenticated().is_some());
    }
    // LOGIN's initial response is the user name (RFC 4954 §4 style).
    let mut h = authing();
    h.exchange(
        &format!("AUTH LOGIN {}\r\n", b64("user")),
        "334 UGFzc3dvcmQ6\r\n",
        &[],
    );
    h.exchange(
        &format!("{}\r\n", b64("secret")),
        ACCEPTED,
        &["AUTH LOGIN None user secret"],
    );
    assert_eq!(h.s.authenticated(), Some("user"));
}

#[test]
fn every_mechanism_after_an_empty_challenge() {
    let table: &[(&str, String, &str)] = &[
        (
            "PLAIN",
            b64("\0user\0secret"),
            "AUTH PLAIN None user secret",
        ),
        (
            "XOAUTH2",
            b64(XOAUTH2),
            "AUTH XOAUTH2 me@example.com secret None None",
        ),
        (
            "OAUTHBEARER",
            b64(OAUTHBEARER),
            "AUTH OAUTHBEARER me@example.com secret Some(\"mx.example\") Some(587)",
        ),
    ];
    for (mech, response, event) in table {
        let mut h = authing();
        h.exchange(&format!("AUTH {mech}\r\n"), "334 \r\n", &[]);
        h.exchange(&format!("{response}\r\n"), ACCEPTED, &[event]);
    }
    let mut h = authing();
    h.exchange("AUTH LOGIN\r\n", "334 VXNlcm5hbWU6\r\n", &[]);
    h.exchange(&format!("{}\r\n", b64("user")), "334 UGFzc3dvcmQ6\r\n", &[]);
    h.exchange(
        &format!("{}\r\n", b64("secret")),
        ACCEPTED,
        &["AUTH LOGIN None user secret"],
    );
}

#[test]
fn rejected_credentials_allow_another_try() {
    let mut h = authing();
    h.exchange(
        &format!("AUTH PLAIN {}\r\n", b64("\0user\0wrong")),
        "535 5.7.8 Bad credentials\r\n",
        &["AUTH PLAIN None user wrong"],
    );
    assert_eq!(h.s.authenticated(), None);
    h.send(&format!("AUTH PLAIN {}\r\n", b64("\0user\0secret")));
    assert_eq!(h.out(), ACCEPTED);
    h.events();
    h.exchange(
        &format!("AUTH PLAIN {}\r\n", b64("\0user\0secret")),
        "503 5.5.1 Already authenticated\r\n",
        &[],
    );
}

#[test]
fn bearer_error_flow_for_both_mechanisms() {
    let challenge = r#"{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}"#;
    let then = Reply {
        code: 535,
        enhanced: Some(crate::reply::EnhancedCode::new(5, 7, 8)),
        lines: vec![
            "Username and Password not accepted. For more information, go to".into(),
            " https://support.google.com/mail/?p=BadCredentials".into(),
        ],
    };
    let final_wire = "535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials\r\n";
    // XOAUTH2 clients answer with an empty line, OAUTHBEARER ones with %x01.
    for (mech, payload, ack) in [
        ("XOAUTH2", XOAUTH2, ""),
        ("OAUTHBEARER", OAUTHBEARER, "AQ=="),
    ] {
        let mut h = authing();
        h.auto = false;
        h.send(&format!("AUTH {mech} {}\r\n", b64(payload)));
        assert_eq!(h.events().len(), 1);
        h.s.auth_result(AuthOutcome::BearerError {
            challenge: challenge.into(),
            then: then.clone(),
        });
        h.pump();
        assert_eq!(h.out(), format!("334 {}\r\n", b64(challenge)));
        h.exchange(&format!("{ack}\r\n"), final_wire, &[]);
        assert_eq!(h.s.authenticated(), None);
        assert!(!h.s.expects_decision());
        h.exchange("NOOP\r\n", "250 2.0.0 OK\r\n", &[]);
    }
}

#[test]
fn cancelling_and_decoding_failures() {
    let cancelled = "501 5.0.0 Authentication cancelled\r\n";
    let mut h = authing();
    h.send("AUTH PLAIN\r\n");
    h.exchange("*\r\n", &format!("334 \r\n{cancelled}"), &[]);
    h.send("AUTH LOGIN\r\n");
    h.send(&format!("{}\r\n", b64("user")));
    h.exchange(
        "*\r\n",
        &format!("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n{cancelled}"),
        &[],
    );
    let table: &[String] = &[
        "AUTH PLAIN not-base64!\r\n".into(),
        "AUTH PLAIN =\r\n".into(),
        format!("AUTH PLAIN {}\r\n", b64("user:secret")),
        format!("AUTH PLAIN {}\r\n", b64("\0user\0")),
        "AUTH LOGIN =\r\n".into(),
        format!("AUTH XOAUTH2 {}\r\n", b64("user=me\x01auth=secret\x01\x01")),
        format!(
            "AUTH OAUTHBEARER {}\r\n",
            b64("a=me,\x01auth=Bearer x\x01\x01")
        ),
        // The well-known broken Python snippet:
        // server.docmd('AUTH', 'XOAUTH2 ' + f"user={u}\x01auth=Bearer {tok}\x01\x01")
        "AUTH XOAUTH2 user=me@gmail.com\x01auth=Bearer ya29.a0Af-token\x01\x01\r\n".into(),
    ];
    for line in table {
        authing().exchange(line, CANNOT_DECODE, &[]);
    }
    let mut h = authing();
    h.send("AUTH XOAUTH2\r\n");
    h.exchange("%%%\r\n", &format!("334 \r\n{CANNOT_DECODE}"), &[]);
    h.exchange("NOOP\r\n", "250 2.0.0 OK\r\n", &[]);
}

#[test]
fn padding_is_optional_and_spaces_are_forgiven() {
    let ir = b64("a\0user\0secret");
    assert!(ir.ends_with("=="));
    let mut h = authing();
    h.send("AUTH PLAIN\r\n");
    h.exchange(
        &format!("{} \r\n", ir.trim_end_matches('=')),
        &format!("334 \r\n{ACCEPTED}"),
        &["AUTH PLAIN Some(\"a\") user secret"],
    );
}

#[test]
fn auth_sequencing_and_policy() {
    let table: &[(&str, &str)] = &[
        (
            "AUTH CRAM-MD5\r\n",
            "504 5.5.4 Unrecognized authentication type\r\n",
        ),
        (
            "AUTH GSSAPI\r\n",
            "504 5.5.4 Unrecognized authentication type\r\n",
        ),
        ("AUTH\r\n", "504 5.5.4 Unrecognized authentication type\r\n"),
    ];
    let mut c = auth_cfg();
    c.auth.push(Mechanism::CramMd5);
    for (line, out) in table {
        let mut h = Host::with_tls(c.clone(), true);
        h.send("EHLO x\r\n");
        assert!(
            h.out()
                .ends_with("250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n")
        );
        h.events();
        h.exchange(line, out, &[]);
    }
    // Before EHLO, and inside a transaction.
    let mut h = Host::with_tls(auth_cfg(), true);
    h.out();
    h.exchange(
        "AUTH PLAIN\r\n",
        "503 5.5.1 Bad sequence of commands\r\n",
        &[],
    );
    h.send("EHLO x\r\nMAIL FROM:<a@b.example>\r\n");
    h.out();
    h.events();
    h.exchange(
        "AUTH PLAIN\r\n",
        "503 5.5.1 Bad sequence of commands\r\n",
        &[],
    );
    // auth_requires_tls (the default): not before TLS.
    let mut h = Host::ready(auth_cfg());
    h.exchange(
        "AUTH PLAIN\r\n",
        "530 5.7.0 Must issue a STARTTLS command first\r\n",
        &[],
    );
}

#[test]
fn long_auth_lines() {
    // A long token on the AUTH line is taken, as Gmail does.
    let token = "t".repeat(2000);
    let payload = format!("user=me@example.com\x01auth=Bearer {token}\x01\x01");
    let mut h = authing();
    h.send(&format!("AUTH XOAUTH2 {}\r\n", b64(&payload)));
    assert_eq!(h.out(), "535 5.7.8 Bad credentials\r\n");
    assert_eq!(h.events().len(), 1);
    // RFC 4954 §4: 12288 octets per line in the exchange.
    let mut h = authing();
    h.send("AUTH XOAUTH2\r\n");
    h.exchange(
        &format!("{}\r\nNOOP\r\n", "A".repeat(12288)),
        "334 \r\n500 5.5.6 Authentication exchange line is too long\r\n250 2.0.0 OK\r\n",
        &[],
    );
}

#[test]
fn pipelined_auth_then_mail() {
    let mut c = auth_cfg();
    c.require_auth = true;
    let mut h = Host::with_tls(c, true);
    h.out();
    h.exchange(
        &format!(
            "EHLO x\r\nAUTH PLAIN {}\r\nMAIL FROM:<a@b.example>\r\n",
            b64("\0user\0secret")
        ),
        &format!(
            "{}{ACCEPTED}250 2.1.0 OK\r\n",
            EHLO_DEFAULT.replace(
                "250 BINARYMIME",
                "250-BINARYMIME\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER"
            )
        ),
        &[
            "EHLO x",
            "AUTH PLAIN None user secret",
            "MAIL a@b.example None SevenBit false",
        ],
    );
}

#[test]
fn debug_never_shows_secrets() {
    let password = AuthRequest {
        mechanism: Mechanism::Plain,
        identity: AuthIdentity::Password {
            authzid: None,
            username: "user".into(),
            password: "hunter2-pw".into(),
        },
    };
    let bearer = AuthRequest {
        mechanism: Mechanism::XOAuth2,
        identity: AuthIdentity::Bearer {
            user: "me@example.com".into(),
            token: "ya29.token-xyz".into(),
            host: None,
            port: None,
        },
    };
    let p = format!("{password:?} {:?}", password.identity);
    let b = format!("{bearer:?} {:?}", Event::Auth(bearer.clone()));
    assert!(p.contains("user") && !p.contains("hunter2-pw"), "{p}");
    assert!(
        b.contains("me@example.com") && !b.contains("ya29.token-xyz"),
        "{b}"
    );
}

#[test]
fn payload_parsers_table() {
    let user = |i: Option<AuthIdentity>| i.map(|i| i.user().to_owned());
    assert_eq!(user(parse_plain(b"\0u\0p")), Some("u".into()));
    assert_eq!(user(parse_plain(b"z\0u\0p")), Some("u".into()));
    for bad in [
        &b""[..],
        b"u\0p",
        b"\0\0p",
        b"\0u\0",
        b"\0u\0p\0x",
        b"\0\xff\0p",
    ] {
        assert!(parse_plain(bad).is_none(), "{bad:?}");
    }
    assert_eq!(
        user(parse_xoauth2(b"auth=bearer T\x01user=u\x01\x01")),
        Some("u".into())
    );
    for bad in [
        &b"user=u\x01auth=Bearer T\x01"[..],
        b"user=u\x01\x01",
        b"auth=Bearer T\x01\x01",
        b"user=u\x01auth=Basic T\x01\x01",
        b"user=u\x01auth=Bearer \x01\x01",
        b"user=u auth=Bearer T",
    ] {
        assert!(parse_xoauth2(bad).is_none(), "{bad:?}");
    }
    type Case<'a> = (&'a [u8], &'a str, Option<&'a str>, Option<u16>);
    let ok: &[Case] = &[
        (b"n,,\x01auth=Bearer T\x01\x01", "", None, None),
        (b"y,a=u,\x01auth=Bearer T\x01\x01", "u", None, None),
        (
            b"n,a=a=2Cb=3Dc,\x01port=25\x01auth=Bearer T\x01\x01",
            "a,b=c",
            None,
            Some(25),
        ),
        (
            b"n,a=u,\x01host=h\x01auth=Bearer T\x01\x01",
            "u",
            Some("h"),
            None,
        ),
    ];
    for (p, u, h, port) in ok {
        match parse_oauthbearer(p) {
            Some(AuthIdentity::Bearer {
                user,
                host,
                port: pt,
                ..
            }) => assert_eq!((user.as_str(), host.as_deref(), pt), (*u, *h, *port)),
            other => panic!("{p:?}: {other:?}"),
        }
    }
    for bad in [
        &b"n,a=u,\x01auth=Bearer T\x01"[..],
        b"p=tls-unique,,\x01auth=Bearer T\x01\x01",
        b"n,a=u\x01auth=Bearer T\x01\x01",
        b"n,a=u,\x01port=x\x01auth=Bearer T\x01\x01",
        b"n,a=u=41,\x01auth=Bearer T\x01\x01",
        b"n,a=u,\x01host=h\x01\x01",
        b"n,a=u,",
    ] {
        assert!(parse_oauthbearer(bad).is_none(), "{bad:?}");
    }
}
