//! What each fuzz target checks, one function per target, shared by the
//! fuzz targets (`fuzz_targets/*.rs`, libFuzzer on nightly) and by the
//! replay of the kept corpus in the ordinary test suite
//! (`crates/postie-proto/tests/fuzz_corpus.rs`, stable). Each function takes
//! the input its target decodes with `arbitrary` and panics on a failure.

// Each includer uses some of the checks.
#![allow(dead_code)]

use postie_proto::address::{Address, Domain};
use postie_proto::capability::Capabilities;
use postie_proto::client::{ClientConfig, ClientSession, Event, TlsMode};
use postie_proto::data::{DotStuffer, normalize_crlf, unstuff};
use postie_proto::reply::{Reply, ReplyParser};
use postie_proto::sasl::{Credentials, Mechanism};
use postie_proto::server::{self, AuthOutcome, ServerConfig, ServerSession};

/// The reply parser never panics, and consumes whole replies only.
pub fn reply(data: &[u8]) {
    let mut rest = data;
    while let Ok(Some((reply, used))) = ReplyParser::parse(rest) {
        assert!(used > 0 && used <= rest.len());
        assert!((100..1000).contains(&reply.code));
        rest = &rest[used..];
    }
}

/// Capabilities from any parsable EHLO reply, without panics.
pub fn ehlo(data: &[u8]) {
    if let Ok(Some((reply, _))) = ReplyParser::parse(data) {
        let caps = Capabilities::from_ehlo(&reply);
        let _ = (caps.size(), caps.auth_mechanisms(), caps.starttls());
    }
}

/// DATA transparency (RFC 5321 §4.5.2): for any body split at any point,
/// the wire form ends with exactly one terminator and unstuffs back to the
/// CRLF-normalised body; no early end of data (SMTP smuggling).
pub fn dot_stuffing(input: (Vec<u8>, u16)) {
    let (body, split) = input;
    let split = (split as usize).min(body.len());
    let mut s = DotStuffer::new();
    let mut wire = Vec::new();
    s.encode(&body[..split], &mut wire);
    s.encode(&body[split..], &mut wire);
    s.finish(&mut wire);
    assert!(wire.ends_with(b"\r\n.\r\n") || wire == b".\r\n");
    let first_end = wire
        .windows(5)
        .position(|w| w == b"\r\n.\r\n")
        .map(|p| p + 5)
        .unwrap_or(wire.len());
    assert_eq!(first_end, wire.len(), "terminator before the end");
    let mut expected = normalize_crlf(&body);
    if !expected.is_empty() && !expected.ends_with(b"\r\n") {
        expected.extend_from_slice(b"\r\n");
    }
    assert_eq!(unstuff(&wire), expected);
}

/// Address and Domain validation: no panic, and nothing accepted can break a
/// command line.
pub fn address(s: &str) {
    if let Ok(a) = Address::new(s) {
        let t = a.to_string();
        assert!(!t.contains(['\r', '\n', '\0', '<', '>']));
    }
    if let Ok(d) = Domain::new(s) {
        assert!(!d.to_string().contains(['\r', '\n', '\0', ' ']));
    }
}

const SECRET: &str = "fuzz-S3cret-value";

/// True when `bytes` hold the secret in clear, or inside any base64 word
/// (AUTH PLAIN, LOGIN, XOAUTH2 and OAUTHBEARER all carry it so).
pub fn holds_secret(bytes: &[u8]) -> bool {
    use base64::Engine;
    let text = String::from_utf8_lossy(bytes);
    if text.contains(SECRET) {
        return true;
    }
    text.split(char::is_whitespace)
        .filter(|w| w.len() >= 8)
        .filter_map(|w| {
            base64::engine::general_purpose::STANDARD
                .decode(w.trim_end_matches('\r'))
                .ok()
        })
        .any(|d| String::from_utf8_lossy(&d).contains(SECRET))
}

/// The client session survives any server input, for every kind of
/// credential (password; bearer token, XOAUTH2 or OAUTHBEARER): no panic,
/// nothing secret transmitted before TLS (clear or base64), and no secret in
/// any transcript line at any time. `flags` picks the credential, the
/// preferred mechanism, STARTTLS or implicit TLS, and whether the TLS
/// handshake after STARTTLS "succeeds".
pub fn client_session(input: (u8, Vec<Vec<u8>>)) {
    let (flags, chunks) = input;
    let mut cfg = ClientConfig::new(Domain::new("client.example").unwrap());
    let implicit = flags & 1 != 0;
    cfg.tls = if implicit {
        TlsMode::Implicit
    } else {
        TlsMode::StartTls
    };
    cfg.credentials = Some(if flags & 2 == 0 {
        Credentials::Password {
            username: "user".into(),
            password: SECRET.to_string().into(),
        }
    } else {
        Credentials::Bearer {
            user: "user@example.com".into(),
            token: SECRET.to_string().into(),
        }
    });
    cfg.preferred_mechanism = match (flags >> 2) & 3 {
        0 => None,
        1 => Some(Mechanism::Plain),
        2 => Some(Mechanism::XOAuth2),
        _ => Some(Mechanism::OAuthBearer),
    };
    let handshake_ok = flags & 16 != 0;
    let mut s = ClientSession::new(cfg);
    let mut tls = implicit;
    for c in chunks.iter().take(64) {
        if s.handle_input(c).is_err() {
            break;
        }
        loop {
            let mut any = false;
            while let Some(out) = s.poll_transmit() {
                any = true;
                assert!(tls || !holds_secret(&out), "secret sent before TLS");
            }
            while let Some(ev) = s.poll_event() {
                any = true;
                match ev {
                    Event::Transcript(t) => {
                        assert!(!holds_secret(t.text.as_bytes()), "secret in the transcript")
                    }
                    Event::StartTls if handshake_ok => {
                        tls = true;
                        s.tls_established();
                    }
                    _ => {}
                }
            }
            if !any {
                break;
            }
        }
    }
}

/// The server session survives any client input and any host answer: no
/// panic, no runaway loop, and everything it transmits parses as replies.
pub fn server_session(input: (u8, Vec<Vec<u8>>)) {
    let (flags, chunks) = input;
    let mut cfg = ServerConfig::new("mx.example");
    cfg.max_message_size = 4096;
    cfg.max_recipients = 3;
    cfg.max_data_line = 200;
    cfg.auth = vec![
        Mechanism::Plain,
        Mechanism::Login,
        Mechanism::XOAuth2,
        Mechanism::OAuthBearer,
    ];
    cfg.starttls = flags & 1 != 0;
    cfg.chunking = flags & 2 != 0;
    cfg.require_auth = flags & 4 != 0;
    cfg.auth_requires_tls = flags & 8 != 0;
    cfg.require_tls = flags & 16 != 0;
    let mut s = ServerSession::new(cfg, flags & 32 != 0);
    let mut wire = Vec::new();
    for (i, c) in chunks.iter().take(64).enumerate() {
        s.handle_input(c);
        loop {
            let mut any = false;
            while let Some(ev) = s.poll_event() {
                any = true;
                match ev {
                    server::Event::Auth(_) => s.auth_result(match i % 3 {
                        0 => AuthOutcome::Accepted(Reply::new(235, "2.7.0 Accepted")),
                        1 => AuthOutcome::Rejected(Reply::new(535, "5.7.8 No")),
                        _ => AuthOutcome::BearerError {
                            challenge: "{\"status\":\"401\"}".into(),
                            then: Reply::new(535, "5.7.8 No"),
                        },
                    }),
                    server::Event::MailFrom(_)
                    | server::Event::RcptTo(_)
                    | server::Event::DataEnd(_) => s.decide(if i % 4 == 3 {
                        Reply::new(550, "5.7.1 No")
                    } else {
                        Reply::new(250, "2.0.0 OK")
                    }),
                    server::Event::StartTls => s.tls_established(),
                    _ => {}
                }
            }
            if !any || !s.expects_decision() {
                break;
            }
        }
        while let Some(t) = s.poll_transmit() {
            wire.extend_from_slice(&t);
        }
        if i == 48 {
            s.shutdown();
        }
    }
    s.timeout();
    while let Some(t) = s.poll_transmit() {
        wire.extend_from_slice(&t);
    }
    assert!(s.is_closed());
    let mut rest = &wire[..];
    while !rest.is_empty() {
        match ReplyParser::parse(rest) {
            Ok(Some((_, n))) => rest = &rest[n..],
            other => panic!(
                "unparsable output {other:?}: {:?}",
                String::from_utf8_lossy(rest)
            ),
        }
    }
}
