//! DATA and BDAT: unstuffing, the end of data, SMTP smuggling, the body
//! checks, size limits and streaming.

use super::*;

const ENVELOPE: &str = "MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n";
const ENVELOPE_EVENTS: [&str; 2] = ["MAIL a@b.example None SevenBit false", "RCPT c@d.example"];
const BARE: &str = "554 5.6.11 Message rejected: bare CR or LF, lines must end with CRLF\r\n";

/// A host inside DATA, after the 354.
fn in_data(c: ServerConfig) -> Host {
    let mut h = Host::ready(c);
    h.send(ENVELOPE);
    h.send("DATA\r\n");
    assert!(
        h.out()
            .ends_with("354 Go ahead, end data with <CR><LF>.<CR><LF>\r\n")
    );
    assert_eq!(h.events(), ENVELOPE_EVENTS);
    h
}

#[test]
fn data_is_unstuffed_and_streamed() {
    let mut h = in_data(cfg());
    h.exchange(
        "Subject: x\r\n\r\n..leading dot\r\n.\r\n",
        "250 2.0.0 OK queued\r\n",
        &[
            "DATA Subject: x\r\n\r\n.leading dot\r\n",
            "END 28 false SevenBit",
        ],
    );
    assert!(!h.s.in_transaction());
    // The next transaction works as usual.
    h.send(ENVELOPE);
    assert_eq!(h.events(), ENVELOPE_EVENTS);
}

#[test]
fn empty_message() {
    in_data(cfg()).exchange(
        ".\r\n",
        "250 2.0.0 OK queued\r\n",
        &["END 0 false SevenBit"],
    );
}

#[test]
fn undeclared_eight_bit_is_accepted_and_reported() {
    in_data(cfg()).exchange(
        "Subject: caf\u{e9}\r\n.\r\n",
        "250 2.0.0 OK queued\r\n",
        &["DATA Subject: caf\u{e9}\r\n", "END 16 true SevenBit"],
    );
}

/// Each smuggling variant: the fake end of data and the commands behind
/// it stay content, and the whole message is refused at the real end.
#[test]
fn smuggling_variants_yield_one_rejected_message() {
    for fake_end in [
        "\n.\n", "\n.\r\n", "\r\n.\n", "\r.\r", "\r\n.\r", ".\n", "\r.\r\n",
    ] {
        let mut h = in_data(cfg());
        h.send(&format!(
            "legit\r\n{fake_end}MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@y.example>\r\nDATA\r\nforged\r\n"
        ));
        h.send("\r\n.\r\nNOOP\r\n");
        let out = h.out();
        assert_eq!(out, format!("{BARE}250 2.0.0 OK\r\n"), "{fake_end:?}");
        let ev = h.events();
        assert_eq!(ev.last().unwrap(), "REJECTED BareNewline", "{fake_end:?}");
        assert!(
            ev[..ev.len() - 1].iter().all(|e| e.starts_with("DATA ")),
            "{ev:?}"
        );
        assert!(!h.s.in_transaction());
    }
}

#[test]
fn body_checks_table() {
    let long = format!("{}\r\n", "x".repeat(999));
    let max = format!("{}\r\n", "x".repeat(998));
    let table: &[(&str, &str, &str)] = &[
        ("a\nb\r\n.\r\n", BARE, "REJECTED BareNewline"),
        ("a\rb\r\n.\r\n", BARE, "REJECTED BareNewline"),
        ("ab\r\r\n.\r\n", BARE, "REJECTED BareNewline"),
        (
            "a\0b\r\n.\r\n",
            "554 5.6.0 Message rejected: NUL octet in message\r\n",
            "REJECTED Nul",
        ),
        (
            &format!("{long}.\r\n"),
            "554 5.6.0 Message rejected: a line is longer than RFC 5321 allows (1000 octets including CRLF); use quoted-printable or base64\r\n",
            "REJECTED LineTooLong",
        ),
        (
            &format!("{max}.\r\n"),
            "250 2.0.0 OK queued\r\n",
            "END 1000 false SevenBit",
        ),
        // A stuffed dot counts on the wire.
        (
            &format!(".{max}.\r\n"),
            "250 2.0.0 OK queued\r\n",
            "END 1000 false SevenBit",
        ),
        (
            &format!("..{max}.\r\n"),
            "554 5.6.0 Message rejected: a line is longer than RFC 5321 allows (1000 octets including CRLF); use quoted-printable or base64\r\n",
            "REJECTED LineTooLong",
        ),
        // The first problem found wins.
        (
            "a\0\nb\r\n.\r\n",
            "554 5.6.0 Message rejected: NUL octet in message\r\n",
            "REJECTED Nul",
        ),
    ];
    for (body, out, last) in table {
        let mut h = in_data(cfg());
        h.send(body);
        assert_eq!(h.out(), *out, "{body:?}");
        assert_eq!(h.events().last().unwrap(), last, "{body:?}");
    }
}

#[test]
fn too_large_is_read_through_without_buffering() {
    let mut c = cfg();
    c.max_message_size = 100;
    let mut h = in_data(c);
    for _ in 0..1000 {
        h.send(&format!("{}\r\n", "y".repeat(98)));
        assert_eq!(h.out(), "");
    }
    h.send(".\r\nNOOP\r\n");
    assert_eq!(
        h.out(),
        "552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n"
    );
    let ev = h.events();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0].len(), "DATA ".len() + 100);
    assert_eq!(ev[1], "REJECTED TooLarge");
    // Exactly the limit is fine.
    let mut c = cfg();
    c.max_message_size = 5;
    in_data(c).exchange(
        "abc\r\n.\r\n",
        "250 2.0.0 OK queued\r\n",
        &["DATA abc\r\n", "END 5 false SevenBit"],
    );
}

#[test]
fn data_comes_in_bounded_pieces() {
    let mut h = in_data(cfg());
    let line = format!("{}\r\n", "z".repeat(998));
    let big = line.repeat(1000);
    h.send(&big);
    h.send(".\r\n");
    assert!(h.data_events >= 15, "{}", h.data_events);
    let ev = h.events();
    assert_eq!(ev[0].len() - "DATA ".len(), big.len());
    assert_eq!(ev[1], "END 1000000 false SevenBit");
}

#[test]
fn bdat_chunks_are_raw_and_answered() {
    let mut h = Host::ready(cfg());
    h.send(ENVELOPE);
    h.out();
    h.events();
    h.exchange(
        "BDAT 10\r\n.a\r\n.\r\nb\r\nBDAT 0\r\nBDAT 3 LAST\r\nc\r\nQUIT\r\n",
        "250 2.0.0 10 octets received\r\n250 2.0.0 0 octets received\r\n250 2.0.0 OK queued\r\n221 2.0.0 Bye\r\n",
        &["DATA .a\r\n.\r\nb\r\nc\r\n", "END 13 false SevenBit", "QUIT"],
    );
}

#[test]
fn bdat_checks_and_sequencing() {
    let mut h = Host::ready(cfg());
    h.send(ENVELOPE);
    h.out();
    h.events();
    // A bare LF in a text chunk refuses the message at the LAST chunk.
    h.exchange(
        "BDAT 3\r\na\nbBDAT 3 LAST\r\nc\r\n",
        &format!("250 2.0.0 3 octets received\r\n{BARE}"),
        &["DATA a", "REJECTED BareNewline"],
    );
    // A CR that ends the last chunk is bare too.
    let mut h = Host::ready(cfg());
    h.send(ENVELOPE);
    h.out();
    h.send("BDAT 2\r\na\rBDAT 1 LAST\r\n\n");
    assert!(h.out().ends_with("250 2.0.0 OK queued\r\n"));
    h.send(ENVELOPE);
    h.send("BDAT 2 LAST\r\na\r");
    assert!(h.out().ends_with(BARE));
    // DATA after BDAT in one transaction.
    let mut h = Host::ready(cfg());
    h.send(ENVELOPE);
    h.out();
    h.exchange(
        "BDAT 2\r\nabDATA\r\n",
        "250 2.0.0 2 octets received\r\n503 5.5.1 Bad sequence of commands\r\n",
        &ENVELOPE_EVENTS
            .iter()
            .copied()
            .chain(["DATA ab"])
            .collect::<Vec<_>>(),
    );
    // RSET drops it.
    h.exchange("RSET\r\n", "250 2.0.0 OK\r\n", &["RESET"]);
    // Malformed BDAT lines: the chunk size is unknown, nothing is skipped.
    for bad in [
        "BDAT\r\n",
        "BDAT x\r\n",
        "BDAT 1 NOTLAST\r\n",
        "BDAT -1\r\n",
        "BDAT 1 LAST x\r\n",
    ] {
        Host::ready(cfg()).exchange(
            bad,
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
            &[],
        );
    }
    let mut c = cfg();
    c.chunking = false;
    Host::ready(c).exchange(
        "BDAT 1 LAST\r\n",
        "502 5.5.1 Command not implemented\r\n",
        &[],
    );
}

#[test]
fn binarymime_chunks_are_not_checked_for_line_ends() {
    let mut h = Host::ready(cfg());
    h.send("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n");
    h.out();
    h.events();
    h.input(b"BDAT 4 LAST\r\n\0\n\r\xff");
    assert_eq!(h.out(), "250 2.0.0 OK queued\r\n");
    assert_eq!(h.events(), ["DATA \0\n\r\u{fffd}", "END 4 true Binary"]);
}

#[test]
fn bdat_size_limit() {
    let mut c = cfg();
    c.max_message_size = 4;
    let mut h = Host::ready(c);
    h.send(ENVELOPE);
    h.out();
    h.events();
    h.exchange(
        "BDAT 3\r\nabcBDAT 3 LAST\r\ndefNOOP\r\n",
        "250 2.0.0 3 octets received\r\n552 5.3.4 Message size exceeds fixed maximum message size\r\n250 2.0.0 OK\r\n",
        &["DATA abcd", "REJECTED TooLarge"],
    );
}
