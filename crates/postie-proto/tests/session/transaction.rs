//! Transactions with DATA, pipelined and not.

use postie_proto::client::{
    BodyType, Direction, Envelope, Event, SessionError, Stage, TimeoutKind,
};

use super::peer::*;

const PIPELINING: &str = "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000000\r\n250-8BITMIME\r\n250 ENHANCEDSTATUSCODES\r\n";
const NO_PIPELINING: &str = "250-mx.example\r\n250-SIZE 1000000\r\n250 8BITMIME\r\n";

#[test]
fn pipelined_happy_path_sends_one_group() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(
        envelope(&["a@x.example", "b@y.example"]),
        Some(11),
        BodyType::SevenBit,
    )
    .unwrap();
    // MAIL, both RCPTs and DATA in one transmit (RFC 2920, DATA last).
    p.sent("MAIL FROM:<me@example.com> SIZE=11\r\nRCPT TO:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nDATA\r\n");
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::Mail));
    assert_eq!(p.s.stage(), Stage::Mail);
    p.recv("250 2.1.0 Ok\r\n");
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::Rcpt));
    p.recv("250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n");
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::DataInit));
    p.recv("354 End data with <CR><LF>.<CR><LF>\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::DataBlock));

    p.s.write_body(b"Subject: hi\r\n\r\n", false).unwrap();
    p.s.write_body(b"hello\n.\nworld", true).unwrap();
    p.sent("Subject: hi\r\n\r\nhello\r\n..\r\nworld\r\n.\r\n");
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::DataTermination));
    p.recv("250 2.0.0 Ok: queued as 4ABC\r\n").sent_nothing();

    let ev = p.events();
    let r = done(&ev);
    assert_eq!(ev.last(), Some(&Event::Ready));
    assert!(r.is_delivered());
    assert_eq!(r.accepted().count(), 2);
    assert_eq!(r.data.as_ref().unwrap().code, 250);
    assert_eq!(p.s.expected_timeout(), None);

    // The body is a note in the transcript, not content.
    let t = p.transcript();
    assert!(!t.iter().any(|l| l.text.contains("hello")));
    let note = t.iter().position(|l| l.dir == Direction::Note).unwrap();
    assert_eq!(t[note].text, "<message body: 28 bytes>");
    assert_eq!(
        (t[note + 1].dir, t[note + 1].text.as_str()),
        (Direction::Sent, ".")
    );
}

#[test]
fn without_pipelining_one_command_at_a_time() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(
        envelope(&["a@x.example", "b@y.example"]),
        None,
        BodyType::SevenBit,
    )
    .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n")
        .recv("250 Ok\r\n")
        .sent("RCPT TO:<a@x.example>\r\n")
        .recv("250 Ok\r\n")
        .sent("RCPT TO:<b@y.example>\r\n")
        .recv("250 Ok\r\n")
        .sent("DATA\r\n")
        .recv("354 go\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"x", true).unwrap();
    p.sent("x\r\n.\r\n").recv("250 queued\r\n");
    assert!(done(&p.events()).is_delivered());
}

#[test]
fn pipelining_turned_off_in_config() {
    let mut p = Peer::new({
        let mut c = cfg(postie_proto::client::TlsMode::None);
        c.pipelining = false;
        c
    });
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n");
}

#[test]
fn one_of_three_recipients_refused() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(
        envelope(&["a@x.example", "nobody@x.example", "c@x.example"]),
        None,
        BodyType::SevenBit,
    )
    .unwrap();
    p.sent_bytes();
    p.recv("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550-5.1.1 The email account that you tried to reach does not exist.\r\n550 5.1.1  https://support.google.com/mail/?p=NoSuchUser - gsmtp\r\n250 2.1.5 Ok\r\n354 go\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"hi\r\n", true).unwrap();
    p.sent("hi\r\n.\r\n").recv("250 2.0.0 Ok\r\n");
    let r = done(&p.events());
    assert!(r.is_delivered());
    let accepted: Vec<&str> = r.accepted().map(|x| x.address.as_str()).collect();
    assert_eq!(accepted, ["a@x.example", "c@x.example"]);
    let rejected: Vec<_> = r.rejected().collect();
    assert_eq!(rejected.len(), 1);
    let reply = rejected[0].reply.as_ref().unwrap();
    assert_eq!((reply.code, reply.lines.len()), (550, 2));
    assert_eq!(reply.enhanced.unwrap().to_string(), "5.1.1");
}

#[test]
fn all_recipients_refused_pipelined_data_refused() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(
        envelope(&["a@x.example", "b@x.example"]),
        None,
        BodyType::SevenBit,
    )
    .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n550 5.1.1 no\r\n550 5.1.1 no\r\n554 5.5.1 Error: no valid recipients\r\n")
        .sent("RSET\r\n");
    let ev = p.events();
    assert!(!ev.contains(&Event::BodyWanted));
    let r = done(&ev);
    assert!(!r.is_delivered());
    assert_eq!(r.accepted().count(), 0);
    assert_eq!(r.data.as_ref().unwrap().code, 554);
    assert!(p.s.write_body(b"x", true).is_err(), "no body now");
    p.recv("250 2.0.0 Ok\r\n");
    assert_eq!(p.events(), [Event::Ready]);
}

#[test]
fn all_recipients_refused_but_data_accepted_sends_only_the_terminator() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n550 5.1.1 no\r\n354 go ahead\r\n")
        .sent(".\r\n")
        .recv("554 5.5.1 no valid recipients\r\n")
        .sent("RSET\r\n")
        .recv("250 Ok\r\n");
    let ev = p.events();
    assert!(!ev.contains(&Event::BodyWanted));
    let r = done(&ev);
    assert!(r.recipients.iter().all(|x| !x.accepted));
    assert_eq!(ev.last(), Some(&Event::Ready));
}

#[test]
fn all_recipients_refused_without_pipelining_sends_no_data() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n")
        .recv("250 Ok\r\n")
        .sent("RCPT TO:<a@x.example>\r\n")
        .recv("450 4.2.0 greylisted\r\n")
        .sent("RSET\r\n");
    let r = done(&p.events());
    assert!(r.recipients[0].reply.as_ref().unwrap().is_transient());
    assert_eq!(r.data, None);
}

#[test]
fn mail_refused() {
    // Without pipelining nothing more is sent.
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n")
        .recv("553 5.7.1 sender not owned by user\r\n")
        .sent("RSET\r\n");
    let r = done(&p.events());
    assert_eq!(r.mail.code, 553);
    assert_eq!(r.recipients[0].reply, None, "RCPT never sent");
    assert!(!r.recipients[0].accepted);

    // Pipelined: the replies to RCPT and DATA are read, then RSET.
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("553 5.7.1 no\r\n").sent_nothing();
    p.recv("503 5.5.1 need MAIL\r\n503 5.5.1 need RCPT\r\n")
        .sent("RSET\r\n");
    let r = done(&p.events());
    assert_eq!(r.mail.code, 553);
    assert_eq!(r.recipients[0].reply.as_ref().unwrap().code, 503);
}

#[test]
fn final_reply_refusal_needs_no_rset() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n250 Ok\r\n354 go\r\n");
    p.s.write_body(b"spam", true).unwrap();
    p.sent("spam\r\n.\r\n")
        .recv("550 5.7.1 message content rejected\r\n")
        .sent_nothing();
    let ev = p.events();
    assert!(!done(&ev).is_delivered());
    assert_eq!(ev.last(), Some(&Event::Ready));
}

#[test]
fn size_over_the_limit_sends_nothing() {
    let mut p = Peer::ready_plain(PIPELINING);
    let err =
        p.s.start_transaction(
            envelope(&["a@x.example"]),
            Some(1_000_001),
            BodyType::SevenBit,
        )
        .unwrap_err();
    assert_eq!(
        err,
        SessionError::MessageTooLarge {
            size: 1_000_001,
            limit: 1_000_000
        }
    );
    assert_eq!(err.stage(), Stage::Mail);
    p.sent_nothing();
    assert!(p.events().is_empty());
    // Still ready; the limit itself is fine.
    p.s.start_transaction(
        envelope(&["a@x.example"]),
        Some(1_000_000),
        BodyType::SevenBit,
    )
    .unwrap();
    assert!(
        p.sent_bytes()
            .starts_with(b"MAIL FROM:<me@example.com> SIZE=1000000\r\n")
    );
}

#[test]
fn size_zero_means_no_limit() {
    let mut p = Peer::ready_plain("250-mx\r\n250 SIZE 0\r\n");
    p.s.start_transaction(
        envelope(&["a@x.example"]),
        Some(u64::MAX),
        BodyType::SevenBit,
    )
    .unwrap();
    p.sent(&format!("MAIL FROM:<me@example.com> SIZE={}\r\n", u64::MAX));
}

#[test]
fn no_size_param_unless_offered() {
    let mut p = Peer::ready_plain("250 mx\r\n");
    p.s.start_transaction(envelope(&["a@x.example"]), Some(5), BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n");
}

#[test]
fn smtputf8_when_needed() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    assert_eq!(
        p.s.start_transaction(envelope(&["jörg@x.example"]), None, BodyType::SevenBit),
        Err(SessionError::SmtpUtf8NotSupported)
    );
    p.sent_nothing();

    let mut p = Peer::ready_plain("250-mx\r\n250 SMTPUTF8\r\n");
    p.s.start_transaction(envelope(&["jörg@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com> SMTPUTF8\r\n");

    let mut p = Peer::ready_plain("250-mx\r\n250 SMTPUTF8\r\n");
    let mut env = envelope(&["a@x.example"]);
    env.smtputf8 = true;
    p.s.start_transaction(env, None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com> SMTPUTF8\r\n");
}

#[test]
fn eight_bit_bodies() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), Some(3), BodyType::EightBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com> SIZE=3 BODY=8BITMIME\r\n");

    let mut p = Peer::ready_plain("250 mx\r\n");
    assert_eq!(
        p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::EightBit),
        Err(SessionError::EightBitMimeNotSupported)
    );
    assert_eq!(
        p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::Binary),
        Err(SessionError::BinaryMimeNotSupported)
    );
    p.sent_nothing();
}

#[test]
fn null_reverse_path_and_no_recipients() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    assert_eq!(
        p.s.start_transaction(Envelope::new(None, vec![]), None, BodyType::SevenBit),
        Err(SessionError::NoRecipients)
    );
    p.s.start_transaction(
        Envelope::new(None, vec![addr("a@x.example")]),
        None,
        BodyType::SevenBit,
    )
    .unwrap();
    p.sent("MAIL FROM:<>\r\n");
}

#[test]
fn calls_out_of_turn_are_errors_not_panics() {
    let mut p = Peer::new(cfg(postie_proto::client::TlsMode::None));
    assert!(matches!(
        p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit),
        Err(SessionError::NotReady {
            stage: Stage::Greeting
        })
    ));
    assert!(p.s.write_body(b"x", true).is_err());
    let mut p = Peer::ready_plain(PIPELINING);
    assert!(p.s.write_body(b"x", true).is_err());
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    assert!(
        p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
            .is_err(),
        "one transaction at a time"
    );
    assert!(p.s.write_body(b"x", true).is_err(), "before the 354");
}

#[test]
fn two_transactions_in_a_row() {
    let mut p = Peer::ready_plain(PIPELINING);
    for n in 0..2 {
        p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
            .unwrap();
        p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n")
            .recv("250 Ok\r\n250 Ok\r\n354 go\r\n");
        p.s.write_body(format!("message {n}").as_bytes(), true)
            .unwrap();
        p.sent(&format!("message {n}\r\n.\r\n")).recv("250 Ok\r\n");
        let ev = p.events();
        assert!(done(&ev).is_delivered());
        assert_eq!(ev.last(), Some(&Event::Ready));
    }
}

#[test]
fn server_closing_mid_transaction() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(
        envelope(&["a@x.example", "b@x.example"]),
        None,
        BodyType::SevenBit,
    )
    .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n421 4.7.0 Try again later, closing connection.\r\n")
        .sent_nothing();
    let ev = p.events();
    let err = failed(&ev);
    assert_eq!(err.stage(), Stage::Rcpt);
    assert!(err.is_transient());
    assert_eq!(ev.last(), Some(&Event::Closed));
    assert!(p.s.is_closed());
    assert!(p.s.write_body(b"x", true).is_err());
}

#[test]
fn server_closing_during_the_body() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n250 Ok\r\n354 go\r\n");
    p.s.write_body(b"part", false).unwrap();
    p.recv("421 4.4.2 timeout\r\n");
    let ev = p.events();
    assert_eq!(failed(&ev).stage(), Stage::Body);
    assert_eq!(ev.last(), Some(&Event::Closed));
    assert_eq!(
        p.s.write_body(b"rest", true),
        Err(SessionError::ConnectionClosed { stage: Stage::Body })
    );
}

#[test]
fn unexpected_codes_fail_with_the_stage() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("354 what?\r\n").sent("QUIT\r\n");
    let err = failed(&p.events());
    assert_eq!(err.stage(), Stage::Mail);
    assert!(matches!(err, SessionError::UnexpectedReply { .. }));

    // A 250 to DATA: sending QUIT is still safe (no 354 was given).
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n").sent_bytes();
    p.recv("250 Ok\r\n")
        .sent("DATA\r\n")
        .recv("250 huh\r\n")
        .sent("QUIT\r\n");
    assert_eq!(failed(&p.events()).stage(), Stage::Data);
}

#[test]
fn unsolicited_reply_when_idle() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.recv("250 surprise\r\n").sent("QUIT\r\n");
    assert_eq!(failed(&p.events()).stage(), Stage::Idle);
    p.recv("221 Bye\r\n");
    assert_eq!(p.events(), [Event::Closed]);
}

#[test]
fn quit_during_pipelined_group_closes_at_once() {
    // With DATA outstanding, a QUIT could become message content after a
    // 354; the only safe way out is to drop the connection.
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.events();
    p.s.quit();
    p.sent_nothing();
    assert_eq!(p.events(), [Event::Closed]);
}

/// With PIPELINING only, a one-shot send's QUIT leaves with the
/// body's final dot; without PIPELINING it waits for the data reply.
#[test]
fn quit_after_the_transaction_rides_with_the_final_dot() {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.s.quit_after_transaction();
    p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n")
        .recv("250 Ok\r\n250 Ok\r\n354 go\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"x\r\n", true).unwrap();
    p.sent("x\r\n.\r\nQUIT\r\n")
        .recv("250 queued\r\n221 Bye\r\n")
        .sent_nothing();
    let ev = p.events();
    assert!(done(&ev).is_delivered());
    assert_eq!(ev.last(), Some(&Event::Closed));

    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.s.quit_after_transaction();
    // no PIPELINING: QUIT after the data reply
    p.sent("MAIL FROM:<me@example.com>\r\n")
        .recv("250 Ok\r\n")
        .sent("RCPT TO:<a@x.example>\r\n")
        .recv("250 Ok\r\n")
        .sent("DATA\r\n")
        .recv("354 go\r\n");
    p.s.write_body(b"x\r\n", true).unwrap();
    p.sent("x\r\n.\r\n").recv("250 queued\r\n").sent("QUIT\r\n");
    p.recv("221 Bye\r\n");
    let ev = p.events();
    assert!(done(&ev).is_delivered());
    assert_eq!(ev.last(), Some(&Event::Closed));
}

/// With PIPELINING and no CHUNKING, a caller with a next message
/// starts it behind the previous body: the `.` and the next MAIL, RCPT and
/// DATA leave in one flight, so each message costs one round trip, and each
/// result is still matched reply by reply, in order.
#[test]
fn next_message_rides_with_the_previous_dot() {
    let mut p = Peer::ready_plain(PIPELINING);
    assert!(p.s.can_start_transaction());
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    assert!(!p.s.can_start_transaction());
    p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n");
    p.recv("250 Ok\r\n250 Ok\r\n354 go\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"one\r\n", true).unwrap();
    // Only the final reply is awaited: the next message may start.
    assert!(p.s.can_start_transaction());
    p.s.start_transaction(envelope(&["b@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    // Flight 2: the first body, its `.`, and the second envelope with DATA.
    p.sent("one\r\n.\r\nMAIL FROM:<me@example.com>\r\nRCPT TO:<b@x.example>\r\nDATA\r\n");
    assert_eq!(p.s.stage(), Stage::Body);
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::DataTermination));
    p.recv("250 2.0.0 queued as A\r\n250 Ok\r\n250 Ok\r\n354 go\r\n")
        .sent_nothing();
    let ev = p.events();
    assert_eq!(ev.len(), 2, "{ev:?}");
    let first = done(&ev[..1]);
    assert!(first.is_delivered());
    assert_eq!(first.recipients[0].address, addr("a@x.example"));
    assert_eq!(first.data.as_ref().unwrap().text(), "queued as A");
    assert_eq!(ev[1], Event::BodyWanted);
    p.s.write_body(b"two\r\n", true).unwrap();
    p.sent("two\r\n.\r\n");
    p.recv("250 2.0.0 queued as B\r\n");
    let ev = p.events();
    let second = done(&ev);
    assert_eq!(second.recipients[0].address, addr("b@x.example"));
    assert_eq!(second.data.as_ref().unwrap().text(), "queued as B");
    assert_eq!(ev.last(), Some(&Event::Ready));
    // Three flights after EHLO for two messages: envelope, `.` + envelope,
    // the last `.`; the limit is one per message plus the first envelope's.
}

/// The message behind the `.` is refused at RCPT while the previous one is
/// accepted: two results in order, and RSET before anything else.
#[test]
fn refusal_of_the_next_message_does_not_touch_the_previous() {
    let mut p = first_body_written();
    p.s.start_transaction(envelope(&["nobody@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 queued\r\n250 Ok\r\n550 5.1.1 unknown\r\n554 5.5.1 no valid recipients\r\n")
        .sent("RSET\r\n");
    let ev = p.events();
    let results: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            Event::TransactionDone(r) => Some(r.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(results.len(), 2, "{ev:?}");
    assert!(results[0].is_delivered());
    assert!(!results[1].is_delivered());
    assert_eq!(results[1].recipients[0].reply.as_ref().unwrap().code, 550);
    assert!(!ev.contains(&Event::Ready), "Ready only after the RSET");
    assert!(!p.s.can_start_transaction());
    p.recv("250 Ok\r\n");
    assert_eq!(p.events(), [Event::Ready]);
}

/// The previous body refused after its `.` (a content filter): that result
/// says so, and the next message goes on (the server's transaction state is
/// cleared by the end of data whatever the reply).
#[test]
fn previous_body_refused_next_goes_on() {
    let mut p = first_body_written();
    p.s.start_transaction(envelope(&["b@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("554 5.7.1 rejected as spam\r\n250 Ok\r\n250 Ok\r\n354 go\r\n")
        .sent_nothing();
    let ev = p.events();
    let first = done(&ev[..1]);
    assert!(!first.is_delivered());
    assert_eq!(first.data.as_ref().unwrap().code, 554);
    assert_eq!(ev[1], Event::BodyWanted);
}

/// The server closes with 421 while the previous body's reply and the next
/// envelope are outstanding: the failure is at the body stage (the previous
/// message may or may not have been taken), and the session is over.
#[test]
fn closing_reply_while_two_messages_are_in_flight() {
    let mut p = first_body_written();
    p.s.start_transaction(envelope(&["b@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("421 4.3.2 shutting down\r\n");
    let ev = p.events();
    match failed(&ev) {
        SessionError::ServerClosing { stage, .. } => assert_eq!(stage, Stage::Body),
        other => panic!("{other:?}"),
    }
    assert!(!ev.iter().any(|e| matches!(e, Event::TransactionDone(_))));
    assert_eq!(ev.last(), Some(&Event::Closed));
}

/// QUIT behind a finished body (the caller has no next message): the
/// body's result still comes, then the close.
#[test]
fn quit_behind_a_finished_body_keeps_its_result() {
    let mut p = first_body_written();
    p.s.quit();
    p.sent("one\r\n.\r\nQUIT\r\n");
    p.recv("250 queued\r\n221 Bye\r\n");
    let ev = p.events();
    assert!(done(&ev).is_delivered());
    assert_eq!(ev.last(), Some(&Event::Closed));
}

/// Without PIPELINING the next message waits for the `.`'s reply.
#[test]
fn without_pipelining_the_next_message_waits_for_the_reply() {
    let mut p = Peer::ready_plain(NO_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n");
    p.recv("250 Ok\r\n").sent("RCPT TO:<a@x.example>\r\n");
    p.recv("250 Ok\r\n").sent("DATA\r\n");
    p.recv("354 go\r\n");
    p.events();
    p.s.write_body(b"one\r\n", true).unwrap();
    assert!(!p.s.can_start_transaction());
    assert!(matches!(
        p.s.start_transaction(envelope(&["b@x.example"]), None, BodyType::SevenBit),
        Err(SessionError::NotReady { .. })
    ));
    p.sent("one\r\n.\r\n");
    p.recv("250 queued\r\n");
    assert!(p.s.can_start_transaction());
}

/// A PIPELINING session whose first message (to a@x.example) has had its
/// body `one` written whole; nothing sent yet since the envelope.
fn first_body_written() -> Peer {
    let mut p = Peer::ready_plain(PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n250 Ok\r\n354 go\r\n");
    p.events();
    p.s.write_body(b"one\r\n", true).unwrap();
    p
}
