//! Pipelining (RFC 2920): decisions hold back later commands, replies stay
//! in order, and how the input is split never changes the outcome.

use proptest::prelude::*;

use super::*;

#[test]
fn pipelined_transaction_waits_for_each_decision() {
    let mut h = Host::ready(cfg());
    h.auto = false;
    h.send(
        "MAIL FROM:<a@b.example>\r\nRCPT TO:<c1@d.example>\r\nRCPT TO:<c2@d.example>\r\nDATA\r\nSubject: x\r\n\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(h.events(), ["MAIL a@b.example None SevenBit false"]);
    assert_eq!(h.out(), "");
    assert!(h.s.expects_decision());
    h.s.decide(reply("250 2.1.0 Sender OK"));
    h.pump();
    assert_eq!(h.events(), ["RCPT c1@d.example"]);
    h.s.decide(reply("250 2.1.5 Recipient OK"));
    h.pump();
    assert_eq!(h.events(), ["RCPT c2@d.example"]);
    h.s.decide(reply("550 5.1.1 No such user"));
    h.pump();
    assert_eq!(
        h.events(),
        ["DATA Subject: x\r\n\r\n", "END 14 false SevenBit"]
    );
    assert_eq!(
        h.out(),
        "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n550 5.1.1 No such user\r\n354 Go ahead, end data with <CR><LF>.<CR><LF>\r\n"
    );
    assert!(h.s.in_transaction());
    h.s.decide(reply("250 2.0.0 Queued as 1234"));
    h.pump();
    assert_eq!(h.events(), ["QUIT"]);
    assert_eq!(h.out(), "250 2.0.0 Queued as 1234\r\n221 2.0.0 Bye\r\n");
    assert!(h.s.is_closed());
}

fn script() -> Vec<u8> {
    let plain = "AHVzZXIAc2VjcmV0";
    let mut s = String::new();
    s += "ehlo client.example\r\n";
    s += &format!("AUTH PLAIN {plain}\r\n");
    s += "MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME\r\n";
    s += "RCPT TO:<c@d.example>\r\nRCPT TO:<reject@d.example>\r\nDATA\r\n";
    s += "Subject: hi\r\n\r\n..dot\r\n\u{e9}t\u{e9}\r\n.\r\n";
    s += "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n";
    s += "x\r\n\n.\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@x.example>\r\nDATA\r\nevil\r\n.\r\n";
    s += "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n";
    s += "BDAT 5\r\nab\r\ncBDAT 3 LAST\r\n\r\nx";
    s += "AUTH LOGIN\r\n";
    s += &format!("NOOP {}\r\n", "n".repeat(600));
    s += "NOOP\n";
    s += "RSET\r\nVRFY x\r\nQUIT\r\nNOOP\r\n";
    s.into_bytes()
}

fn auth_on_tls() -> ServerConfig {
    let mut c = cfg();
    c.auth = vec![Mechanism::Plain, Mechanism::Login];
    c
}

fn run(chunks: &[&[u8]]) -> (String, Vec<String>) {
    let mut h = Host::with_tls(auth_on_tls(), true);
    for c in chunks {
        h.input(c);
    }
    (String::from_utf8_lossy(&h.wire).into_owned(), h.log)
}

#[test]
fn reference_run_of_the_script() {
    let (wire, log) = run(&[&script()]);
    assert_eq!(
        log,
        [
            "EHLO client.example",
            "AUTH PLAIN None user secret",
            "MAIL a@b.example Some(100) EightBit false",
            "RCPT c@d.example",
            "RCPT reject@d.example",
            "DATA Subject: hi\r\n\r\n.dot\r\n\u{e9}t\u{e9}\r\n",
            "END 28 true EightBit",
            "MAIL a@b.example None SevenBit false",
            "RCPT c@d.example",
            "DATA x\r\n",
            "REJECTED BareNewline",
            "MAIL a@b.example None SevenBit false",
            "RCPT c@d.example",
            // the last line's missing CRLF is added, as DATA's terminator gives it
            "DATA ab\r\nc\r\nx\r\n",
            "END 10 false SevenBit",
            "RESET",
            "QUIT",
        ]
    );
    assert!(wire.ends_with(
        "250 2.0.0 5 octets received\r\n250 2.0.0 OK queued\r\n503 5.5.1 Already authenticated\r\n500 5.5.2 Line too long\r\n500 5.5.2 Syntax error, command lines must end with CRLF\r\n250 2.0.0 OK\r\n252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n221 2.0.0 Bye\r\n"
    ), "{wire}");
}

#[test]
fn every_two_way_split_gives_the_same_outcome() {
    let script = script();
    let reference = run(&[&script]);
    for i in 0..=script.len() {
        let (a, b) = script.split_at(i);
        assert_eq!(run(&[a, b]), reference, "split at {i}");
    }
    let bytes: Vec<&[u8]> = script.chunks(1).collect();
    assert_eq!(run(&bytes), reference, "byte by byte");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn any_split_gives_the_same_outcome(cuts in proptest::collection::vec(0usize..2000, 0..12)) {
        let script = script();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (script.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts {
            chunks.push(&script[at..c]);
            at = c;
        }
        chunks.push(&script[at..]);
        prop_assert_eq!(run(&chunks), run(&[&script]));
    }

    #[test]
    fn arbitrary_input_never_panics(chunks in proptest::collection::vec(
        proptest::collection::vec(prop_oneof![
            Just(b'\r'), Just(b'\n'), Just(b'.'), Just(b' '), Just(0u8), Just(0xffu8),
            Just(b'A'), Just(b'1'), Just(b':'), Just(b'<'), Just(b'>'), Just(b'@'),
        ], 0..64), 0..16),
        prefix in proptest::sample::select(vec![
            "", "EHLO x\r\n", "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n",
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 40\r\n",
            "EHLO x\r\nAUTH LOGIN\r\n",
        ])) {
        let mut h = Host::with_tls(auth_on_tls(), true);
        h.send(prefix);
        for c in &chunks {
            h.input(c);
        }
        h.s.timeout();
        h.pump();
        prop_assert!(h.s.is_closed());
    }
}
