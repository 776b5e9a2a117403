use proptest::prelude::*;

use super::*;

const GMAIL_535: &str = "535-5.7.8 Username and Password not accepted. For more information, go to\r\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm - gsmtp\r\n";

fn one(wire: &str) -> Reply {
    let (r, used) = ReplyParser::parse(wire.as_bytes())
        .expect("valid")
        .expect("complete");
    assert_eq!(used, wire.len(), "consumed all of {wire:?}");
    r
}

fn enh(c: u8, s: u16, d: u16) -> Option<EnhancedCode> {
    Some(EnhancedCode::new(c, s, d))
}

#[test]
fn parses_table() {
    let cases: &[(&str, u16, Option<EnhancedCode>, &[&str])] = &[
        ("250 OK\r\n", 250, None, &["OK"]),
        ("250 2.1.0 OK\r\n", 250, enh(2, 1, 0), &["OK"]),
        ("250\r\n", 250, None, &[""]),
        ("250 \r\n", 250, None, &[""]),
        ("334 \r\n", 334, None, &[""]),
        ("334 VXNlcm5hbWU6\r\n", 334, None, &["VXNlcm5hbWU6"]),
        ("250-a\n250 b\n", 250, None, &["a", "b"]),
        ("250-a\r\n250-\r\n250 c\r\n", 250, None, &["a", "", "c"]),
        ("354  Go ahead\r\n", 354, None, &[" Go ahead"]),
        ("250 2.0.0\r\n", 250, enh(2, 0, 0), &[""]),
        ("250 2.0.0 \r\n", 250, enh(2, 0, 0), &[""]),
        // Microsoft's three-digit detail.
        (
            "535 5.7.139 Authentication unsuccessful\r\n",
            535,
            enh(5, 7, 139),
            &["Authentication unsuccessful"],
        ),
        // Not enhanced codes: wrong class, four digits, trailing dot, no space.
        ("250 1.2.3 x\r\n", 250, None, &["1.2.3 x"]),
        ("250 2.1000.0 x\r\n", 250, None, &["2.1000.0 x"]),
        ("250 2.0.0.1 x\r\n", 250, None, &["2.0.0.1 x"]),
        ("250 2.0.0x\r\n", 250, None, &["2.0.0x"]),
        ("250 3.14\r\n", 250, None, &["3.14"]),
        (
            GMAIL_535,
            535,
            enh(5, 7, 8),
            &[
                "Username and Password not accepted. For more information, go to",
                " https://support.google.com/mail/?p=BadCredentials h26sm - gsmtp",
            ],
        ),
        (
            "534-5.7.9 Application-specific password required. For more information, go to\r\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm - gsmtp\r\n",
            534,
            enh(5, 7, 9),
            &[
                "Application-specific password required. For more information, go to",
                " https://support.google.com/mail/?p=InvalidSecondFactor h26sm - gsmtp",
            ],
        ),
        // Non-UTF-8 text is kept lossily rather than refused.
        ("250 caf\u{e9}\r\n", 250, None, &["caf\u{e9}"]),
    ];
    for (wire, code, enhanced, lines) in cases {
        let r = one(wire);
        assert_eq!(r.code, *code, "{wire:?}");
        assert_eq!(r.enhanced, *enhanced, "{wire:?}");
        assert_eq!(r.lines, *lines, "{wire:?}");
    }
}

#[test]
fn latin1_text_is_lossy_not_an_error() {
    let r = ReplyParser::parse(b"250 caf\xe9\r\n").unwrap().unwrap().0;
    assert_eq!(r.lines, ["caf\u{fffd}"]);
}

#[test]
fn display_renders_the_wire() {
    for wire in [
        GMAIL_535,
        "250-smtp.gmail.com at your service, [1.2.3.4]\r\n250-SIZE 35882577\r\n250 SMTPUTF8\r\n",
        "250 2.0.0 OK  1700000000 h26sm - gsmtp\r\n",
        "354  Go ahead\r\n",
        "221 2.0.0 closing connection\r\n",
    ] {
        let r = one(wire);
        assert_eq!(r.to_string(), wire.replace("\r\n", "\n").trim_end());
        assert_eq!(
            one(&format!("{}\r\n", r.to_string().replace('\n', "\r\n"))),
            r
        );
    }
    assert_eq!(one("250\r\n").to_string(), "250");
    assert_eq!(
        one(GMAIL_535).text(),
        "Username and Password not accepted. For more information, go to\n https://support.google.com/mail/?p=BadCredentials h26sm - gsmtp"
    );
}

#[test]
fn severity_table() {
    let cases = [
        (220, Severity::PositiveCompletion, true, false, false),
        (235, Severity::PositiveCompletion, true, false, false),
        (334, Severity::PositiveIntermediate, true, false, false),
        (354, Severity::PositiveIntermediate, true, false, false),
        (421, Severity::TransientNegative, false, true, false),
        (454, Severity::TransientNegative, false, true, false),
        (535, Severity::PermanentNegative, false, false, true),
        (554, Severity::PermanentNegative, false, false, true),
    ];
    for (code, sev, pos, trans, perm) in cases {
        let r = Reply::new(code, "x");
        assert_eq!(r.severity(), sev, "{code}");
        assert_eq!(r.is_positive(), pos, "{code}");
        assert_eq!(r.is_transient(), trans, "{code}");
        assert_eq!(r.is_permanent(), perm, "{code}");
        assert_eq!(r.is_completion(), code < 300, "{code}");
    }
}

#[test]
fn enhanced_code_display() {
    assert_eq!(EnhancedCode::new(5, 7, 8).to_string(), "5.7.8");
    assert_eq!(EnhancedCode::new(4, 7, 139).to_string(), "4.7.139");
}

#[test]
fn pipelined_replies_parse_one_after_another() {
    let buf =
        b"250 2.1.0 OK\r\n250 2.1.5 OK\r\n550-5.1.1 no\r\n550 5.1.1 such user\r\n354  Go ahead\r\n";
    let mut rest = &buf[..];
    let mut codes = Vec::new();
    while let Some((r, used)) = ReplyParser::parse(rest).unwrap() {
        codes.push((r.code, r.lines.len()));
        rest = &rest[used..];
    }
    assert!(rest.is_empty());
    assert_eq!(codes, [(250, 1), (250, 1), (550, 2), (354, 1)]);
}

/// Parses every reply a buffer holds.
fn parse_all(mut buf: &[u8]) -> Result<Vec<Reply>, ReplyError> {
    let mut out = Vec::new();
    while let Some((r, used)) = ReplyParser::parse(buf)? {
        out.push(r);
        buf = &buf[used..];
    }
    Ok(out)
}

#[test]
fn every_split_point_is_incomplete_never_an_error() {
    let wire = format!("220 mx ESMTP\r\n{GMAIL_535}250-a\n250 2.0.0 b\n250\r\n");
    let all = parse_all(wire.as_bytes()).unwrap();
    assert_eq!(all.len(), 4);
    for i in 0..wire.len() {
        let got = parse_all(&wire.as_bytes()[..i]).unwrap();
        assert!(got.len() < all.len(), "split at {i}");
        assert_eq!(got[..], all[..got.len()], "split at {i}");
    }
}

#[test]
fn malformed_table() {
    let long_line = format!("250 {}\r\n", "a".repeat(MAX_LINE_LEN));
    let long_partial = format!("250 {}", "a".repeat(MAX_LINE_LEN + 1));
    let many_lines = "250-0123456789012345678901234567890123456789\r\n".repeat(30_000);
    let cases: Vec<(&str, ReplyError)> = vec![
        ("abc\r\n", ReplyError::InvalidCode { line: "abc".into() }),
        (
            "HTTP/1.1 400",
            ReplyError::InvalidCode {
                line: "HTTP/1.1 400".into(),
            },
        ),
        (
            "2x0 ok\r\n",
            ReplyError::InvalidCode {
                line: "2x0 ok".into(),
            },
        ),
        (
            "150 x\r\n",
            ReplyError::InvalidCode {
                line: "150 x".into(),
            },
        ),
        (
            "650 x\r\n",
            ReplyError::InvalidCode {
                line: "650 x".into(),
            },
        ),
        ("\r\n", ReplyError::InvalidCode { line: "".into() }),
        (
            " 250 x\r\n",
            ReplyError::InvalidCode {
                line: " 250 x".into(),
            },
        ),
        (
            "250_x\r\n",
            ReplyError::InvalidSeparator {
                line: "250_x".into(),
            },
        ),
        (
            "2500 x\r\n",
            ReplyError::InvalidSeparator {
                line: "2500 x".into(),
            },
        ),
        (
            "250\rx\r\n",
            ReplyError::InvalidSeparator {
                line: "250\rx".into(),
            },
        ),
        (
            "250-a\r\n251 b\r\n",
            ReplyError::MismatchedCode {
                expected: 250,
                found: 251,
            },
        ),
        // Detected before the second line is complete.
        (
            "250-a\r\n550",
            ReplyError::MismatchedCode {
                expected: 250,
                found: 550,
            },
        ),
        (
            &long_line,
            ReplyError::LineTooLong {
                limit: MAX_LINE_LEN,
            },
        ),
        (
            &long_partial,
            ReplyError::LineTooLong {
                limit: MAX_LINE_LEN,
            },
        ),
        (
            &many_lines,
            ReplyError::ReplyTooLong {
                limit: MAX_REPLY_LEN,
            },
        ),
    ];
    for (wire, err) in cases {
        let shown: String = wire.chars().take(40).collect();
        assert_eq!(ReplyParser::parse(wire.as_bytes()), Err(err), "{shown:?}");
    }
}

#[test]
fn incomplete_table() {
    for wire in [
        "",
        "2",
        "25",
        "250",
        "250-",
        "250 OK",
        "250 OK\r",
        "250-a\r\n",
        "250-a\r\n250",
    ] {
        assert_eq!(ReplyParser::parse(wire.as_bytes()), Ok(None), "{wire:?}");
    }
}

/// `smtp-proto`'s receiver as an independent reference for the replies it
/// can represent (single-digit enhanced codes, under 4 KiB).
#[test]
fn agrees_with_smtp_proto() {
    use smtp_proto::response::parser::ResponseReceiver;
    for wire in [
        "250 OK\r\n",
        "250 2.1.0 Sender OK\r\n",
        GMAIL_535,
        "534-5.7.9 Please log in with your web browser and then try again. For more information, go to\r\n534 5.7.9 https://support.google.com/mail/?p=WebLoginRequired h26sm - gsmtp\r\n",
        "250-smtp.gmail.com at your service, [1.2.3.4]\r\n250-SIZE 35882577\r\n250 SMTPUTF8\r\n",
        "354  Go ahead\r\n",
        "421 4.7.0 Try again later, closing connection.\r\n",
    ] {
        let ours = one(wire);
        let theirs = ResponseReceiver::default()
            .parse(&mut wire.as_bytes().iter())
            .unwrap();
        assert_eq!(ours.code, theirs.code, "{wire:?}");
        assert_eq!(ours.text(), theirs.message, "{wire:?}");
        let esc = ours
            .enhanced
            .map_or([0, 0, 0], |e| [e.class, e.subject as u8, e.detail as u8]);
        assert_eq!(esc, theirs.esc, "{wire:?}");
    }
}

fn reply_strategy() -> impl Strategy<Value = Reply> {
    let code = (2u16..=5, 0u16..=9, 0u16..=9).prop_map(|(a, b, c)| a * 100 + b * 10 + c);
    let enhanced = proptest::option::of(
        (
            prop_oneof![Just(2u8), Just(4), Just(5)],
            0u16..1000,
            0u16..1000,
        )
            .prop_map(|(c, s, d)| EnhancedCode::new(c, s, d)),
    );
    // Text that cannot itself look like an enhanced code or end a line.
    let line = "[a-zA-Z ,:/?=\\[\\]-]{0,40}";
    (code, enhanced, proptest::collection::vec(line, 1..5)).prop_map(|(code, enhanced, lines)| {
        Reply {
            code,
            enhanced,
            lines,
        }
    })
}

proptest! {
    #[test]
    fn never_panics_on_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_all(&bytes);
    }

    #[test]
    fn never_panics_on_reply_like_bytes(s in "([2-5][0-9]{2}[ -]?[0-9. a-z\r\n]{0,12}){0,8}") {
        let _ = parse_all(s.as_bytes());
    }

    #[test]
    fn rendered_replies_parse_back(r in reply_strategy()) {
        let wire = format!("{}\r\n", r.to_string().replace('\n', "\r\n"));
        let back = one(&wire);
        prop_assert_eq!(back.code, r.code);
        prop_assert_eq!(back.enhanced, r.enhanced);
        // Only trailing spaces of a line that is empty but for them may differ.
        let norm = |l: &Vec<String>| l.iter().map(|s| s.trim_end().to_owned()).collect::<Vec<_>>();
        prop_assert_eq!(norm(&back.lines), norm(&r.lines));
    }
}
