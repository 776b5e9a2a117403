//! STARTTLS: required, refused, and the injection defence.

use postie_proto::client::{Direction, Event, SessionError, Stage, TlsMode};

use super::peer::*;

#[test]
fn starttls_then_ehlo_again_with_new_capabilities() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("220 smtp.gmail.com ESMTP h26sm - gsmtp\r\n")
        .sent("EHLO client.example\r\n")
        .recv(GMAIL_EHLO_PLAIN)
        .sent("STARTTLS\r\n");
    assert_eq!(p.s.stage(), Stage::StartTls);
    p.recv("220 2.0.0 Ready to start TLS\r\n").sent_nothing();
    let ev = p.events();
    assert_eq!(ev.last(), Some(&Event::StartTls));
    assert_eq!(
        p.s.expected_timeout(),
        None,
        "the driver times the handshake"
    );
    assert!(!p.s.is_tls());

    p.s.tls_established();
    assert!(p.s.is_tls());
    assert!(
        p.s.capabilities().is_none(),
        "pre-TLS capabilities forgotten"
    );
    p.sent("EHLO client.example\r\n").recv(GMAIL_EHLO_TLS);
    let ev = p.events();
    let Event::Capabilities(caps) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert!(!caps.auth_mechanisms().is_empty());
    assert_eq!(ev[1], Event::Ready);
    assert_eq!(p.s.capabilities(), Some(caps));

    // The transcript marks which lines went over TLS.
    let t = p.transcript();
    let starttls = t.iter().position(|l| l.text == "STARTTLS").unwrap();
    assert!(t[..=starttls + 1].iter().all(|l| !l.tls));
    assert!(t[starttls + 2..].iter().all(|l| l.tls));
}

#[test]
fn starttls_not_offered_never_continues_in_plaintext() {
    let mut c = cfg(TlsMode::StartTls);
    c.credentials = Some(password());
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250-AUTH PLAIN LOGIN\r\n250 PIPELINING\r\n")
        .sent("QUIT\r\n");
    let ev = p.events();
    let err = failed(&ev);
    assert_eq!(err, SessionError::StartTlsNotOffered);
    assert!(err.is_tls());
    assert!(!ev.contains(&Event::Ready));
    assert!(p.start_refused());
    p.assert_no_secret(&[PASSWORD]);
}

impl Peer {
    /// A transaction cannot start.
    fn start_refused(&mut self) -> bool {
        self.s
            .start_transaction(envelope(&["a@b.example"]), None, Default::default())
            .is_err()
    }
}

#[test]
fn starttls_refused_454() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 STARTTLS\r\n")
        .sent("STARTTLS\r\n")
        .recv("454 4.7.0 TLS not available due to local problem\r\n")
        .sent("QUIT\r\n");
    let err = failed(&p.events());
    let SessionError::StartTlsRefused { reply } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(reply.code, 454);
    assert!(err.is_transient());
    assert_eq!(err.stage(), Stage::StartTls);
}

#[test]
fn bytes_injected_after_220_in_the_same_read_are_dropped() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 STARTTLS\r\n")
        .sent("STARTTLS\r\n");
    p.events();
    // A man in the middle appends a fake EHLO reply offering weak AUTH.
    let injected = "250-evil\r\n250 AUTH PLAIN\r\n";
    p.recv(&format!("220 2.0.0 go ahead\r\n{injected}"));
    assert_eq!(p.events(), [Event::StartTls]);
    p.s.tls_established();
    p.sent("EHLO client.example\r\n");
    // The genuine reply after TLS is what counts.
    p.recv("250-mx\r\n250 SIZE 1000\r\n");
    let ev = p.events();
    let Event::Capabilities(caps) = &ev[0] else {
        panic!("{ev:?}")
    };
    assert_eq!(caps.greeting_domain, "mx");
    assert!(caps.auth_mechanisms().is_empty());
    let notes: Vec<_> = p
        .transcript()
        .into_iter()
        .filter(|t| t.dir == Direction::Note)
        .collect();
    assert_eq!(notes.len(), 1);
    assert!(notes[0].text.contains(&format!("{} bytes", injected.len())));
    assert!(!p.transcript().iter().any(|t| t.text.contains("evil")));
}

#[test]
fn bytes_arriving_before_the_handshake_are_dropped() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 STARTTLS\r\n")
        .sent("STARTTLS\r\n")
        .recv("220 go ahead\r\n")
        // A separate read, still plaintext, before the driver's handshake.
        .recv("250 injected\r\n");
    p.events();
    p.s.tls_established();
    p.sent("EHLO client.example\r\n");
    // Were the injected 250 still buffered, it would be taken as the EHLO
    // reply; instead the session waits for the real one.
    assert!(p.events().is_empty());
    p.recv("250 mx\r\n");
    assert_eq!(p.events().last(), Some(&Event::Ready));
}

#[test]
fn tls_established_out_of_turn_is_ignored() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.s.tls_established();
    assert!(!p.s.is_tls());
    p.sent_nothing();
}

#[test]
fn quit_while_awaiting_handshake_closes() {
    let mut p = Peer::new(cfg(TlsMode::StartTls));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 STARTTLS\r\n")
        .sent("STARTTLS\r\n")
        .recv("220 go ahead\r\n");
    p.events();
    p.s.quit();
    p.sent_nothing();
    assert_eq!(p.events(), [Event::Closed]);
}

#[test]
fn tls_mode_none_ignores_offered_starttls() {
    let mut p = Peer::new(cfg(TlsMode::None));
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv("250-mx\r\n250 STARTTLS\r\n")
        .sent_nothing();
    assert_eq!(p.events().last(), Some(&Event::Ready));
}
