use proptest::prelude::*;

use super::*;

fn stuff_chunks(chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut s = DotStuffer::new();
    for c in chunks {
        s.encode(c, &mut out);
    }
    s.finish(&mut out);
    out
}

fn stuff(body: &[u8]) -> Vec<u8> {
    stuff_chunks(&[body])
}

const TABLE: &[(&[u8], &[u8])] = &[
    (b"", b".\r\n"),
    (b"a", b"a\r\n.\r\n"),
    (b"a\r\n", b"a\r\n.\r\n"),
    (b".", b"..\r\n.\r\n"),
    (b"..", b"...\r\n.\r\n"),
    (b".a\r\n", b"..a\r\n.\r\n"),
    (b"a.b\r\n.c\r\n", b"a.b\r\n..c\r\n.\r\n"),
    (b"\r\n", b"\r\n.\r\n"),
    (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
    // Bare LF and bare CR become CRLF (RFC 5321 §2.3.8).
    (b"a\nb\n", b"a\r\nb\r\n.\r\n"),
    (b"a\rb", b"a\r\nb\r\n.\r\n"),
    (b"a\r", b"a\r\n.\r\n"),
    (b"\r\r\n", b"\r\n\r\n.\r\n"),
    (b"\n\r", b"\r\n\r\n.\r\n"),
    // Smuggling attempts: none may end the data early.
    (b"a\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\n.\r\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n.\rb", b"a\r\n..\r\nb\r\n.\r\n"),
    (b"a\r\n.\nb", b"a\r\n..\r\nb\r\n.\r\n"),
    (
        b"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
        b"a\r\n..\r\nMAIL FROM:<x@y>\r\n.\r\n",
    ),
    (b".\r\n", b"..\r\n.\r\n"),
    (b"\0\xff.", b"\0\xff.\r\n.\r\n"),
];

#[test]
fn dot_stuffing_table() {
    for (body, wire) in TABLE {
        assert_eq!(stuff(body), *wire, "{:?}", String::from_utf8_lossy(body));
    }
}

#[test]
fn every_two_and_three_way_split_gives_the_same_wire() {
    for (body, wire) in TABLE {
        for i in 0..=body.len() {
            assert_eq!(
                stuff_chunks(&[&body[..i], &body[i..]]),
                *wire,
                "split {i} of {body:?}"
            );
            for j in i..=body.len() {
                let parts = [&body[..i], &body[i..j], &body[j..]];
                assert_eq!(stuff_chunks(&parts), *wire, "split {i},{j} of {body:?}");
            }
        }
    }
}

#[test]
fn byte_at_a_time() {
    let body = b"x\r\n.\r\r\n\n..\ry\r";
    let chunks: Vec<&[u8]> = body.chunks(1).collect();
    assert_eq!(stuff_chunks(&chunks), stuff(body));
}

#[test]
fn unstuff_table() {
    assert_eq!(unstuff(b".\r\n"), b"");
    assert_eq!(unstuff(b"..a\r\nb\r\n.\r\n"), b".a\r\nb\r\n");
    assert_eq!(unstuff(b"a\r\n.\r\nignored"), b"a\r\n");
    assert_eq!(unstuff(b"no terminator"), b"no terminator");
}

#[test]
fn normalize_table() {
    for (input, want) in [
        (&b""[..], &b""[..]),
        (b"a", b"a"),
        (b"a\nb", b"a\r\nb"),
        (b"a\rb", b"a\r\nb"),
        (b"a\r\nb", b"a\r\nb"),
        (b"\r", b"\r\n"),
        (b"\n\n", b"\r\n\r\n"),
        (b"\r\r", b"\r\n\r\n"),
        (b".\n", b".\r\n"),
    ] {
        assert_eq!(normalize_crlf(input), want, "{input:?}");
    }
}

/// Bodies rich in the bytes that matter.
fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            3 => Just(b'\r'),
            3 => Just(b'\n'),
            3 => Just(b'.'),
            2 => Just(b'a'),
            1 => any::<u8>(),
        ],
        0..64,
    )
}

/// Splits `body` at the given points (taken modulo its length, sorted).
fn split<'a>(body: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at {
        out.push(&body[prev..a]);
        prev = a;
    }
    out.push(&body[prev..]);
    out
}

fn has_bare_cr_or_lf(w: &[u8]) -> bool {
    w.iter().enumerate().any(|(i, &b)| {
        (b == b'\r' && w.get(i + 1) != Some(&b'\n'))
            || (b == b'\n' && (i == 0 || w[i - 1] != b'\r'))
    })
}

proptest! {
    #[test]
    fn stuffing_round_trips_at_any_split(x in body(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let wire = stuff_chunks(&split(&x, &cuts));
        prop_assert_eq!(&wire, &stuff(&x), "independent of chunking");

        let mut expected = normalize_crlf(&x);
        if !expected.is_empty() && !expected.ends_with(b"\r\n") {
            expected.extend_from_slice(b"\r\n");
        }
        prop_assert_eq!(unstuff(&wire), expected);
        prop_assert!(!has_bare_cr_or_lf(&wire));

        // The DATA line's CRLF precedes the body: exactly one CRLF.CRLF, at the end.
        let mut framed = b"\r\n".to_vec();
        framed.extend_from_slice(&wire);
        let ends: Vec<usize> = framed.windows(5).enumerate()
            .filter(|(_, w)| *w == b"\r\n.\r\n").map(|(i, _)| i).collect();
        prop_assert_eq!(ends, vec![framed.len() - 5]);
    }

    /// `smtp-proto`'s server-side DATA receiver finds the end exactly at the
    /// end and stores the body we meant. (It needs the body not to start
    /// with a dot, since its state starts without a preceding CRLF.)
    #[test]
    fn server_receiver_agrees(
        first in any::<u8>().prop_filter("not a dot", |b| *b != b'.'),
        rest in body(),
    ) {
        let x = [&[first][..], &rest].concat();
        let wire = stuff(&x);
        let mut receiver = smtp_proto::request::receiver::DataReceiver::new();
        let mut stored = Vec::new();
        let mut iter = wire.iter();
        prop_assert!(receiver.ingest(&mut iter, &mut stored));
        prop_assert_eq!(iter.len(), 0, "end of data found before the end");
        prop_assert_eq!(stored, unstuff(&wire));
    }

    #[test]
    fn normalizer_is_chunking_independent_and_idempotent(x in body(), cuts in proptest::collection::vec(any::<usize>(), 0..6)) {
        let mut n = CrlfNormalizer::new();
        let mut out = Vec::new();
        for c in split(&x, &cuts) {
            n.normalize(c, &mut out);
        }
        n.finish(&mut out);
        prop_assert_eq!(&out, &normalize_crlf(&x));
        prop_assert!(!has_bare_cr_or_lf(&out));
        prop_assert_eq!(normalize_crlf(&out), out.clone());
        // Only line ends change.
        let strip = |v: &[u8]| v.iter().copied().filter(|b| *b != b'\r' && *b != b'\n').collect::<Vec<_>>();
        prop_assert_eq!(strip(&out), strip(&x));
    }
}
