//! The server session survives any client input and any host answer: no
//! panic, no runaway loop, and everything it transmits parses as replies.
#![no_main]
use libfuzzer_sys::fuzz_target;
use postie_proto::reply::{Reply, ReplyParser};
use postie_proto::sasl::Mechanism;
use postie_proto::server::{AuthOutcome, Event, ServerConfig, ServerSession};

fuzz_target!(|input: (u8, Vec<Vec<u8>>)| {
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
                    Event::Auth(_) => s.auth_result(match i % 3 {
                        0 => AuthOutcome::Accepted(Reply::new(235, "2.7.0 Accepted")),
                        1 => AuthOutcome::Rejected(Reply::new(535, "5.7.8 No")),
                        _ => AuthOutcome::BearerError {
                            challenge: "{\"status\":\"401\"}".into(),
                            then: Reply::new(535, "5.7.8 No"),
                        },
                    }),
                    Event::MailFrom(_) | Event::RcptTo(_) | Event::DataEnd(_) => {
                        s.decide(if i % 4 == 3 {
                            Reply::new(550, "5.7.1 No")
                        } else {
                            Reply::new(250, "2.0.0 OK")
                        })
                    }
                    Event::StartTls => s.tls_established(),
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
});
