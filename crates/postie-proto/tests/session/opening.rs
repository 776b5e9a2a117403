//! Greeting, EHLO, HELO fallback, timeouts.

use postie_proto::client::{Event, SessionError, Stage, TimeoutKind, TlsMode};
use postie_proto::reply::Reply;

use super::peer::*;

#[test]
fn greeting_then_ehlo_then_ready() {
    let mut p = Peer::new(cfg(TlsMode::None));
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::Greeting));
    p.sent_nothing();
    p.recv("220 mx.example ESMTP Postfix\r\n")
        .sent("EHLO client.example\r\n");
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::Other));
    p.recv("250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n");
    let ev = p.events();
    assert_eq!(
        ev[0],
        Event::Greeting(Reply::new(220, "mx.example ESMTP Postfix"))
    );
    let Event::Capabilities(caps) = &ev[1] else {
        panic!("{ev:?}")
    };
    assert!(caps.supports_pipelining() && caps.eightbitmime());
    assert_eq!(ev[2], Event::Ready);
    assert_eq!(ev.len(), 3);
    assert_eq!(p.s.expected_timeout(), None, "idle: nothing awaited");
    assert!(!p.s.is_tls());
    assert_eq!(p.s.stage(), Stage::Idle);
}

#[test]
fn greeting_554_fails_and_quits() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("554 5.7.1 mx.example: no SMTP service here\r\n")
        .sent("QUIT\r\n");
    let ev = p.events();
    let err = failed(&ev);
    assert_eq!(err.stage(), Stage::Greeting);
    assert_eq!(err.reply().unwrap().code, 554);
    assert!(matches!(err, SessionError::GreetingRefused { .. }));
    assert!(err.is_permanent() && !err.is_transient());
    assert!(!ev.contains(&Event::Closed));
    p.recv("221 2.0.0 Bye\r\n");
    assert_eq!(p.events(), [Event::Closed]);
    assert!(p.s.is_closed());
}

#[test]
fn greeting_421_is_transient_and_closes_without_quit() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("421 4.3.2 Service not available, closing transmission channel\r\n")
        .sent_nothing();
    let ev = p.events();
    let err = failed(&ev);
    assert_eq!(err.stage(), Stage::Greeting);
    assert!(err.is_transient());
    assert_eq!(ev.last(), Some(&Event::Closed));
}

#[test]
fn multi_line_greeting() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220-mx.example ESMTP\r\n220-no UCE\r\n220 welcome\r\n")
        .sent("EHLO client.example\r\n");
    let Event::Greeting(g) = &p.events()[0] else {
        panic!()
    };
    assert_eq!(g.lines, ["mx.example ESMTP", "no UCE", "welcome"]);
}

#[test]
fn helo_fallback_when_ehlo_is_not_recognised() {
    for code in [
        "500 5.5.1 Command unrecognized: \"EHLO\"",
        "502 Command not implemented",
    ] {
        let mut p = Peer::new(cfg(TlsMode::None));
        p.recv("220 old.example SMTP\r\n")
            .sent("EHLO client.example\r\n")
            .recv(&format!("{code}\r\n"))
            .sent("HELO client.example\r\n")
            .recv("250 old.example Hello client.example\r\n");
        let ev = p.events();
        let Event::Capabilities(caps) = &ev[1] else {
            panic!("{ev:?}")
        };
        assert_eq!(caps.greeting_domain, "old.example");
        assert!(caps.list.is_empty(), "no extensions after HELO");
        assert_eq!(ev.last(), Some(&Event::Ready));
    }
}

#[test]
fn helo_fallback_never_downgrades_tls() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("220 old.example SMTP\r\n")
        .sent("EHLO client.example\r\n")
        .recv("502 5.5.2 Error: command not recognized\r\n")
        .sent("HELO client.example\r\n")
        .recv("250 old.example\r\n")
        .sent("QUIT\r\n");
    assert_eq!(failed(&p.events()), SessionError::StartTlsNotOffered);
}

/// A 221 (closing) or any other
/// 2xx is not a greeting; nothing follows but QUIT.
#[test]
fn only_220_greets() {
    for greeting in ["221 2.0.0 mx closing\r\n", "250 mx hello\r\n"] {
        let mut p = Peer::new(cfg(TlsMode::None));
        p.recv(greeting).sent("QUIT\r\n");
        let ev = p.events();
        let err = failed(&ev);
        assert_eq!(err.stage(), Stage::Greeting, "{greeting}");
        assert!(
            matches!(err, SessionError::GreetingRefused { .. }),
            "{greeting}"
        );
        assert!(!ev.iter().any(|e| matches!(e, Event::Ready)), "{greeting}");
    }
}

/// Only 250 answers EHLO (or HELO); a 220 or 221 there
/// is not an offer to send under.
#[test]
fn only_250_answers_ehlo_and_helo() {
    for reply in ["220 mx ready\r\n", "221 2.0.0 bye\r\n"] {
        let mut p = Peer::new(cfg(TlsMode::None));
        p.recv("220 mx\r\n")
            .sent("EHLO client.example\r\n")
            .recv(reply)
            .sent("QUIT\r\n");
        let ev = p.events();
        assert_eq!(failed(&ev).stage(), Stage::Ehlo, "{reply}");
        assert!(!ev.iter().any(|e| matches!(e, Event::Ready)), "{reply}");
    }
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("502 no\r\n")
        .sent("HELO client.example\r\n")
        .recv("220 what\r\n")
        .sent("QUIT\r\n");
    assert_eq!(failed(&p.events()).stage(), Stage::Helo);
}

#[test]
fn ehlo_refused_otherwise_fails() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("550 5.7.1 go away\r\n")
        .sent("QUIT\r\n");
    let err = failed(&p.events());
    assert_eq!(err.stage(), Stage::Ehlo);
    assert_eq!(err.reply().unwrap().code, 550);
}

#[test]
fn helo_refused_fails() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("500 what\r\n")
        .sent("HELO client.example\r\n")
        .recv("501 5.5.4 bad HELO\r\n")
        .sent("QUIT\r\n");
    assert_eq!(failed(&p.events()).stage(), Stage::Helo);
}

#[test]
fn implicit_tls_starts_as_tls_and_skips_starttls() {
    let mut p = Peer::new(cfg(TlsMode::Implicit));
    assert!(p.s.is_tls());
    p.recv("220 smtp.gmail.com ESMTP\r\n")
        .sent("EHLO client.example\r\n")
        .recv(GMAIL_EHLO_TLS)
        .sent_nothing();
    assert_eq!(p.events().last(), Some(&Event::Ready));
    assert!(p.transcript().iter().all(|t| t.tls));
}

#[test]
fn quit_from_ready() {
    let mut p = Peer::ready_plain("250 mx\r\n");
    p.s.quit();
    p.sent("QUIT\r\n");
    assert_eq!(p.s.stage(), Stage::Quit);
    p.recv("221 2.0.0 Bye\r\n");
    assert_eq!(p.events(), [Event::Closed]);
    // Later calls are harmless.
    p.s.quit();
    p.sent_nothing();
    p.recv("250 stray\r\n");
    assert!(p.events().is_empty());
}

#[test]
fn quit_before_greeting_closes_at_once() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.s.quit();
    p.sent_nothing();
    assert_eq!(p.events(), [Event::Closed]);
}

#[test]
fn eof_mid_session_is_a_transient_failure() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220 mx\r\n").sent("EHLO client.example\r\n");
    p.events();
    p.s.handle_eof();
    let ev = p.events();
    let err = failed(&ev);
    assert_eq!(err, SessionError::ConnectionClosed { stage: Stage::Ehlo });
    assert!(err.is_transient());
    assert_eq!(ev.last(), Some(&Event::Closed));
}

#[test]
fn reset_when_ready() {
    let mut p = Peer::ready_plain("250 mx\r\n");
    p.s.reset();
    p.sent("RSET\r\n").recv("250 2.0.0 Ok\r\n");
    assert_eq!(p.events(), [Event::Ready]);
}
