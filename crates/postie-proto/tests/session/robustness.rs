//! Hostile and random input: never a panic, never a leaked secret, and the
//! session stays coherent.

use postie_proto::client::{BodyType, ClientSession, Event, SessionError, Stage, TlsMode};
use postie_proto::reply::ReplyError;
use proptest::prelude::*;

use super::peer::*;

#[test]
fn garbage_is_an_error_and_ends_the_session() {
    let mut p = Peer::new(cfg(TlsMode::None));
    let err =
        p.s.handle_input(b"HTTP/1.1 400 Bad Request\r\n")
            .unwrap_err();
    assert!(matches!(
        err,
        SessionError::Protocol {
            stage: Stage::Greeting,
            error: ReplyError::InvalidCode { .. }
        }
    ));
    assert!(p.s.is_closed());
    assert!(p.s.poll_transmit().is_none());
    assert!(
        p.s.handle_input(b"220 ok\r\n").is_ok(),
        "ignored after the end"
    );
    assert!(p.s.poll_event().is_none());
}

#[test]
fn garbage_after_valid_replies() {
    let mut p = Peer::new(cfg(TlsMode::None));
    let err =
        p.s.handle_input(b"220 mx\r\n250-mx\r\n251 mismatch\r\n")
            .unwrap_err();
    assert!(matches!(
        err,
        SessionError::Protocol {
            stage: Stage::Ehlo,
            error: ReplyError::MismatchedCode { .. }
        }
    ));
}

#[test]
fn replies_split_at_every_byte() {
    let script = format!("220 mx\r\n{GMAIL_EHLO_TLS}");
    let mut whole = ClientSession::new(cfg(TlsMode::Implicit));
    whole.handle_input(script.as_bytes()).unwrap();
    let want: Vec<Event> = std::iter::from_fn(|| whole.poll_event()).collect();
    let mut bytewise = ClientSession::new(cfg(TlsMode::Implicit));
    for b in script.as_bytes() {
        bytewise.handle_input(std::slice::from_ref(b)).unwrap();
    }
    let got: Vec<Event> = std::iter::from_fn(|| bytewise.poll_event()).collect();
    assert_eq!(got, want);
    assert_eq!(got.last(), Some(&Event::Ready));
}

#[test]
fn server_control_characters_are_escaped_in_the_transcript() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220 mx \x1b[31mred\x1b[0m\r\n");
    let t = p.transcript();
    assert_eq!(t[0].text, "220 mx \\x1b[31mred\\x1b[0m");
}

#[derive(Clone, Debug)]
enum Action {
    Reply(u16, String),
    Raw(Vec<u8>),
    Start(usize, u8),
    Body(Vec<u8>, bool),
    TlsUp,
    Quit,
    Reset,
    Eof,
}

fn action() -> impl Strategy<Value = Action> {
    let code = prop_oneof![
        8 => prop::sample::select(vec![
            220u16, 221, 235, 250, 334, 354, 421, 450, 451, 454, 500, 502, 503, 530, 534, 535, 550,
            552, 554,
        ]),
        1 => 200u16..600,
    ];
    let text = prop_oneof![
        Just(String::new()),
        Just("e30=".to_owned()),
        Just("VXNlcm5hbWU6".to_owned()),
        Just("eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIn0=".to_owned()),
        Just("mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-SIZE 10\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER".to_owned()),
        "[ -~]{0,30}",
    ];
    prop_oneof![
        10 => (code, text).prop_map(|(c, t)| Action::Reply(c, t)),
        1 => proptest::collection::vec(any::<u8>(), 0..20).prop_map(Action::Raw),
        2 => (1usize..4, 0u8..3).prop_map(|(n, b)| Action::Start(n, b)),
        2 => (proptest::collection::vec(any::<u8>(), 0..10), any::<bool>()).prop_map(|(b, l)| Action::Body(b, l)),
        1 => Just(Action::TlsUp),
        1 => Just(Action::Quit),
        1 => Just(Action::Reset),
        1 => Just(Action::Eof),
    ]
}

fn config(tls: u8, creds: u8, flags: u8) -> postie_proto::client::ClientConfig {
    let mut c = cfg([TlsMode::None, TlsMode::StartTls, TlsMode::Implicit][tls as usize % 3]);
    c.credentials = match creds % 3 {
        0 => None,
        1 => Some(password()),
        _ => Some(bearer(TOKEN)),
    };
    c.allow_plaintext_auth = flags & 1 != 0;
    c.pipelining = flags & 2 != 0;
    c.chunking = flags & 4 != 0;
    c
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_dialogues_never_panic_or_leak(
        tls in 0u8..3, creds in 0u8..3, flags in 0u8..8, warm in 0usize..4,
        actions in proptest::collection::vec(action(), 0..40),
    ) {
        let mut s = ClientSession::new(config(tls, creds, flags));
        let mut closed = false;
        // Start some runs deeper in the dialogue than random replies reach.
        let opening = [
            "220 mx\r\n",
            "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-STARTTLS\r\n250-SMTPUTF8\r\n250-8BITMIME\r\n250 AUTH PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\n",
            "220 go ahead\r\n",
        ];
        for step in &opening[..warm.min(opening.len())] {
            let _ = s.handle_input(step.as_bytes());
            s.tls_established();
        }
        let mut transcript = String::new();
        for a in actions {
            let mut errored = false;
            match a {
                // Malformed input ends the session through the return value
                // (events queued before it are still delivered).
                Action::Reply(code, text) => {
                    errored = s.handle_input(format!("{code} {text}\r\n").as_bytes()).is_err();
                }
                Action::Raw(bytes) => {
                    errored = s.handle_input(&bytes).is_err();
                }
                Action::Start(n, body) => {
                    let to: Vec<&str> = ["a@x.example", "b@x.example", "jörg@x.example"][..n].to_vec();
                    let body = [BodyType::SevenBit, BodyType::EightBit, BodyType::Binary][body as usize];
                    let _ = s.start_transaction(envelope(&to), Some(100), body);
                }
                Action::Body(bytes, last) => {
                    let _ = s.write_body(&bytes, last);
                }
                Action::TlsUp => s.tls_established(),
                Action::Quit => s.quit(),
                Action::Reset => s.reset(),
                Action::Eof => s.handle_eof(),
            }
            let _ = s.expected_timeout();
            let _ = s.stage();
            if s.poll_transmit().is_some() {
                prop_assert!(!closed, "nothing to send after Closed");
            }
            while let Some(e) = s.poll_event() {
                prop_assert!(!closed, "no events after Closed: {:?}", e);
                match &e {
                    Event::Closed => closed = true,
                    Event::Transcript(t) => {
                        transcript.push_str(&t.text);
                        transcript.push('\n');
                    }
                    _ => {}
                }
                let shown = format!("{e:?}");
                prop_assert!(!shown.contains(PASSWORD) && !shown.contains(TOKEN));
            }
            closed |= errored;
            prop_assert_eq!(closed, s.is_closed());
        }
        prop_assert!(!transcript.contains(PASSWORD) && !transcript.contains(TOKEN));
        let b64 = |v: &str| { use base64::Engine as _; base64::engine::general_purpose::STANDARD.encode(v) };
        prop_assert!(!transcript.contains(&b64(PASSWORD)));
    }

    #[test]
    fn random_bytes_in_every_phase(prefix in 0usize..6, bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let script = ["220 mx\r\n", "250-mx\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "220 go\r\n"];
        let mut s = ClientSession::new(config(1, 1, 7));
        for step in script.iter().take(prefix.min(script.len())) {
            let _ = s.handle_input(step.as_bytes());
        }
        if prefix > 3 {
            s.tls_established();
        }
        let _ = s.handle_input(&bytes);
        while s.poll_event().is_some() {}
        let _ = s.poll_transmit();
    }
}
