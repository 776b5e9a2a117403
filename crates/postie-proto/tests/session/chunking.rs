//! CHUNKING: BDAT framing, pipelined and not, failures, BINARYMIME.

use postie_proto::client::{BodyType, Event, TimeoutKind, TlsMode};

use super::peer::*;

const CHUNKING_PIPELINING: &str =
    "250-mx\r\n250-PIPELINING\r\n250-CHUNKING\r\n250-8BITMIME\r\n250 SIZE 1000\r\n";

/// A ready session with a transaction whose RCPTs were accepted.
fn body_wanted(ehlo: &str) -> Peer {
    let mut p = Peer::ready_plain(ehlo);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\n")
        .recv("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p
}

#[test]
fn gmail_uses_bdat_after_starttls_and_auth() {
    let mut p = Peer::gmail_after_starttls(Some(password()));
    p.sent_bytes();
    p.recv("235 2.7.0 Accepted\r\n");
    p.events();
    p.s.start_transaction(
        envelope(&["a@x.example", "b@x.example"]),
        Some(12),
        BodyType::EightBit,
    )
    .unwrap();
    // No DATA: the body goes as BDAT once the RCPT replies are in.
    p.sent("MAIL FROM:<me@example.com> SIZE=12 BODY=8BITMIME\r\nRCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\n")
        .recv("250 2.1.0 OK h26sm - gsmtp\r\n250 2.1.5 OK h26sm - gsmtp\r\n250 2.1.5 OK h26sm - gsmtp\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"hello ", false).unwrap();
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::DataBlock));
    p.s.write_body(b"world\n", true).unwrap();
    // Both chunks leave without waiting (RFC 3030 with PIPELINING).
    p.sent("BDAT 6\r\nhello BDAT 7 LAST\r\nworld\r\n");
    p.recv("250 2.0.0 OK chunk\r\n");
    assert_eq!(p.s.expected_timeout(), Some(TimeoutKind::DataTermination));
    p.recv("250 2.0.0 OK  1700000000 h26sm - gsmtp\r\n")
        .sent_nothing();
    let ev = p.events();
    let r = done(&ev);
    assert!(r.is_delivered());
    assert_eq!(r.data.unwrap().lines, ["OK  1700000000 h26sm - gsmtp"]);
    assert_eq!(ev.last(), Some(&Event::Ready));
    let sent = p.sent_lines();
    assert!(
        sent.ends_with(&["BDAT 6".into(), "BDAT 7 LAST".into()]),
        "{sent:?}"
    );
    assert!(
        p.transcript()
            .iter()
            .any(|t| t.text == "<message body: 12 bytes>")
    );
}

#[test]
fn chunk_sizes_count_normalised_bytes_and_hold_a_trailing_cr() {
    let mut p = body_wanted(CHUNKING_PIPELINING);
    p.s.write_body(b"a\nb", false).unwrap();
    p.sent("BDAT 4\r\na\r\nb");
    // The CR may be the first half of CRLF: held for the next chunk.
    p.s.write_body(b"c\r", false).unwrap();
    p.sent("BDAT 1\r\nc");
    p.s.write_body(b"\nd\r", true).unwrap();
    p.sent("BDAT 5 LAST\r\n\r\nd\r\n");
}

#[test]
fn empty_chunks_are_skipped_and_an_empty_last_chunk_is_fine() {
    let mut p = body_wanted(CHUNKING_PIPELINING);
    p.s.write_body(b"", false).unwrap();
    p.sent_nothing();
    p.s.write_body(b"x\r\n", false).unwrap();
    p.s.write_body(b"", true).unwrap();
    p.sent("BDAT 3\r\nx\r\nBDAT 0 LAST\r\n");
    p.recv("250 Ok\r\n250 Ok\r\n");
    assert!(done(&p.events()).is_delivered());
}

#[test]
fn without_pipelining_each_chunk_waits_for_its_reply() {
    let mut p = Peer::ready_plain("250-mx\r\n250 CHUNKING\r\n");
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\n")
        .recv("250 Ok\r\n")
        .sent("RCPT TO:<a@x.example>\r\n")
        .recv("250 Ok\r\n");
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"one ", false).unwrap();
    p.s.write_body(b"two ", false).unwrap();
    p.s.write_body(b"three", true).unwrap();
    p.sent("BDAT 4\r\none ")
        .recv("250 Ok\r\n")
        .sent("BDAT 4\r\ntwo ")
        .recv("250 Ok\r\n")
        // the last line's CRLF is added, as DATA adds it
        .sent("BDAT 7 LAST\r\nthree\r\n")
        .recv("250 queued\r\n");
    assert!(done(&p.events()).is_delivered());
}

#[test]
fn failed_chunk_ends_the_transaction() {
    let mut p = body_wanted(CHUNKING_PIPELINING);
    p.s.write_body(b"0123456789", false).unwrap();
    p.s.write_body(b"0123456789", false).unwrap();
    p.sent_bytes();
    p.recv("552 5.3.4 Message size exceeds fixed limit\r\n")
        .sent_nothing();
    assert!(
        p.events().is_empty(),
        "the second chunk's reply is still due"
    );
    p.recv("503 5.5.1 no transaction\r\n").sent("RSET\r\n");
    let r = done(&p.events());
    assert_eq!(r.data.as_ref().unwrap().code, 552);
    assert!(!r.is_delivered());
    // The driver's remaining body is dropped, not sent.
    p.s.write_body(b"more", false).unwrap();
    p.s.write_body(b"end", true).unwrap();
    p.sent_nothing();
    p.recv("250 Ok\r\n");
    assert_eq!(p.events(), [Event::Ready]);
    assert!(
        p.s.write_body(b"x", true).is_err(),
        "discarding ended with the last chunk"
    );
}

#[test]
fn failed_chunk_without_pipelining_drops_held_chunks() {
    let mut p = Peer::ready_plain("250-mx\r\n250 CHUNKING\r\n");
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    p.recv("250 Ok\r\n").sent_bytes();
    p.recv("250 Ok\r\n");
    p.s.write_body(b"one", false).unwrap();
    p.s.write_body(b"two", true).unwrap();
    p.sent("BDAT 3\r\none")
        .recv("451 4.3.0 temporary failure\r\n")
        .sent("RSET\r\n");
    let r = done(&p.events());
    assert!(r.data.unwrap().is_transient());
}

#[test]
fn failed_last_chunk() {
    let mut p = body_wanted(CHUNKING_PIPELINING);
    p.s.write_body(b"x", true).unwrap();
    p.sent("BDAT 3 LAST\r\nx\r\n")
        .recv("554 5.7.0 rejected as spam\r\n")
        .sent("RSET\r\n");
    assert_eq!(done(&p.events()).data.unwrap().code, 554);
}

#[test]
fn binarymime_sends_bytes_unchanged() {
    let mut c = cfg(TlsMode::Implicit);
    c.credentials = None;
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv(MICROSOFT_EHLO_TLS);
    p.events();
    p.s.start_transaction(envelope(&["a@x.example"]), Some(4), BodyType::Binary)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com> SIZE=4 BODY=BINARYMIME\r\nRCPT TO:<a@x.example>\r\n")
        .recv("250 Ok\r\n250 Ok\r\n");
    p.s.write_body(b"a\nb\r", true).unwrap();
    p.sent("BDAT 4 LAST\r\na\nb\r");
}

#[test]
fn chunking_turned_off_uses_data() {
    let mut c = cfg(TlsMode::None);
    c.chunking = false;
    let mut p = Peer::new(c);
    p.recv("220 mx\r\n")
        .sent("EHLO client.example\r\n")
        .recv(CHUNKING_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\nDATA\r\n");
}

#[test]
fn no_recipient_accepted_before_the_body_sends_no_bdat() {
    let mut p = Peer::ready_plain(CHUNKING_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.sent_bytes();
    // the body is wanted at once, but the refusal arrives before any of it
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.recv("250 Ok\r\n550 5.1.1 unknown\r\n").sent("RSET\r\n");
    let ev = p.events();
    assert_eq!(done(&ev).data, None);
    // what the driver still writes is dropped, not sent
    p.s.write_body(b"late body", true).unwrap();
    p.sent_nothing();
}

/// With PIPELINING and CHUNKING one message is one flight: MAIL,
/// every RCPT and `BDAT n LAST` with the body leave before any reply, and
/// the replies then come in that order, matched one by one.
#[test]
fn one_flight_per_message_with_chunking_and_pipelining() {
    let mut p = Peer::ready_plain(CHUNKING_PIPELINING);
    p.s.start_transaction(
        envelope(&["a@x.example", "b@x.example"]),
        Some(7),
        BodyType::SevenBit,
    )
    .unwrap();
    assert_eq!(p.events(), [Event::BodyWanted]);
    p.s.write_body(b"hello\r\n", true).unwrap();
    p.sent(
        "MAIL FROM:<me@example.com> SIZE=7\r\nRCPT TO:<a@x.example>\r\nRCPT TO:<b@x.example>\r\n\
         BDAT 7 LAST\r\nhello\r\n",
    );
    p.recv(
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <b@x.example>: unknown\r\n250 2.0.0 queued\r\n",
    )
    .sent_nothing();
    let ev = p.events();
    let r = done(&ev);
    assert!(r.is_delivered());
    assert!(r.recipients[0].accepted && !r.recipients[1].accepted);
    assert_eq!(r.recipients[1].reply.as_ref().unwrap().code, 550);
    assert_eq!(ev.last(), Some(&Event::Ready));
}

/// Every RCPT refused, the chunk already sent: the BDAT is refused too (RFC
/// 3030), nothing delivered, RSET after; the result names the RCPT refusals.
#[test]
fn one_flight_with_every_recipient_refused_reports_the_refusals() {
    let mut p = Peer::ready_plain(CHUNKING_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.events();
    p.s.write_body(b"x\r\n", true).unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\nBDAT 3 LAST\r\nx\r\n");
    p.recv("250 Ok\r\n550 5.1.1 unknown\r\n554 5.5.1 No valid recipients\r\n")
        .sent("RSET\r\n");
    let r = done(&p.events());
    assert!(!r.is_delivered());
    // The 554 is the refusal's consequence, not the message's own: the
    // result is the one a two-flight transaction gives.
    assert_eq!(r.recipients[0].reply.as_ref().unwrap().code, 550);
    assert_eq!(r.data, None);
}

/// A one-shot send: QUIT goes in the same flight as the body, and the
/// result still comes before the close.
#[test]
fn quit_is_pipelined_after_the_last_message() {
    let mut p = Peer::ready_plain(CHUNKING_PIPELINING);
    p.s.start_transaction(envelope(&["a@x.example"]), None, BodyType::SevenBit)
        .unwrap();
    p.s.quit_after_transaction();
    p.events();
    p.s.write_body(b"x\r\n", true).unwrap();
    p.sent("MAIL FROM:<me@example.com>\r\nRCPT TO:<a@x.example>\r\nBDAT 3 LAST\r\nx\r\nQUIT\r\n");
    p.recv("250 Ok\r\n250 Ok\r\n250 2.0.0 queued\r\n221 2.0.0 Bye\r\n")
        .sent_nothing();
    let ev = p.events();
    assert!(done(&ev).is_delivered());
    assert_eq!(ev.last(), Some(&Event::Closed));
}

#[test]
fn quit_mid_bdat_body_is_safe() {
    let mut p = body_wanted(CHUNKING_PIPELINING);
    p.s.write_body(b"x", false).unwrap();
    p.sent_bytes();
    p.s.quit();
    p.sent("QUIT\r\n");
    assert!(p.s.write_body(b"y", true).is_err());
    p.recv("250 chunk ok\r\n221 Bye\r\n");
    assert_eq!(p.events(), [Event::Closed]);
}
