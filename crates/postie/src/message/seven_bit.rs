//! The 7-bit form of an 8-bit message, for a server that does not offer
//! 8BITMIME (RFC 6152 §3: a client that cannot relay 8-bit data as it is
//! converts it, and MIME's quoted-printable is the conversion).
//!
//! Only what must change changes: each MIME leaf part whose body holds
//! 8-bit octets (declared `8bit`, `binary`, or nothing) gets its body in
//! quoted-printable and `Content-Transfer-Encoding: quoted-printable`; a
//! multipart that declared `8bit` or `binary` now declares `7bit`. Every other
//! octet of the message is kept. What cannot be converted this way (8-bit
//! octets in a header, in an attached message, or in a part that claims to
//! be base64 or quoted-printable already) is an error that says so.

use mail_parser::{Encoding, MessageParser, PartType};

use crate::error::{Error, ErrorKind, Result};

/// The message `raw` with its 8-bit parts in quoted-printable.
pub fn to_seven_bit(raw: &[u8]) -> Result<Vec<u8>> {
    let msg = MessageParser::default()
        .parse(raw)
        .ok_or_else(|| cannot("its MIME structure cannot be parsed"))?;
    // (start, end, replacement) over `raw`, in order and disjoint.
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    for part in &msg.parts {
        let (h, b, e) = (
            part.offset_header as usize,
            part.offset_body as usize,
            part.offset_end as usize,
        );
        let (head, body) = (&raw[h..b], &raw[b..e.max(b)]);
        if !head.is_ascii() {
            return Err(cannot(
                "a header holds 8-bit text (headers need SMTPUTF8, or RFC 2047 encoded words)",
            ));
        }
        match &part.body {
            PartType::Multipart(_) => {
                if declared_encoding(head).is_some_and(|v| v == "8bit" || v == "binary") {
                    edits.push((h, b, with_encoding(head, "7bit")));
                }
            }
            PartType::Message(_) => {
                if !body.is_ascii() {
                    return Err(cannot(
                        "an attached message holds 8-bit text; it can be sent only to a server \
                         that offers 8BITMIME",
                    ));
                }
            }
            _ if body.is_ascii() => {}
            _ if part.encoding != Encoding::None
                || declared_encoding(head)
                    .is_some_and(|v| v == "base64" || v == "quoted-printable") =>
            {
                return Err(cannot(&format!(
                    "a part declared {} holds 8-bit octets, so it is damaged",
                    declared_encoding(head).unwrap_or_default()
                )));
            }
            _ => edits.push((h, e, leaf(head, body))),
        }
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 8);
    let mut at = 0;
    edits.sort_by_key(|(start, _, _)| *start);
    for (start, end, bytes) in edits {
        if start < at {
            // Nested ranges (a multipart's header is before its parts, so
            // this does not happen with well-formed offsets): refuse rather
            // than write a message mixed up.
            return Err(cannot("its MIME parts overlap"));
        }
        out.extend_from_slice(&raw[at..start]);
        out.extend_from_slice(&bytes);
        at = end;
    }
    out.extend_from_slice(&raw[at..]);
    Ok(out)
}

/// A leaf part's header with the new encoding, and its body in
/// quoted-printable (line breaks kept as line breaks).
fn leaf(head: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = with_encoding(head, "quoted-printable");
    // The body's own last line break, if any, stays outside the encoding:
    // in a multipart it belongs to the boundary line that follows.
    let (text, tail): (&[u8], &[u8]) = if let Some(t) = body.strip_suffix(b"\r\n") {
        (t, b"\r\n")
    } else if let Some(t) = body.strip_suffix(b"\n") {
        (t, b"\n")
    } else {
        (body, b"")
    };
    // quoted_printable keeps CRLF as a hard line break; a bare LF (a
    // message from a local program) is one too.
    let text = if text.contains(&b'\n') && !text.windows(2).any(|w| w == b"\r\n") {
        let mut v = Vec::with_capacity(text.len() + text.len() / 32);
        for &c in text {
            if c == b'\n' {
                v.push(b'\r');
            }
            v.push(c);
        }
        std::borrow::Cow::Owned(v)
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    out.extend_from_slice(&quoted_printable::encode(&*text));
    out.extend_from_slice(tail);
    out
}

/// The value of a `Content-Transfer-Encoding` field in `head`, lowercased.
fn declared_encoding(head: &[u8]) -> Option<String> {
    fields(head)
        .find(|f| is_cte(f))
        .and_then(|f| f.split(|&c| c == b':').nth(1).map(<[u8]>::to_vec))
        .map(|v| String::from_utf8_lossy(&v).trim().to_ascii_lowercase())
}

/// `head` (a header section with the empty line that ends it) without its
/// `Content-Transfer-Encoding` fields and with one that says `value`.
fn with_encoding(head: &[u8], value: &str) -> Vec<u8> {
    let eol: &[u8] = if head.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut out = Vec::with_capacity(head.len() + 48);
    for f in fields(head).filter(|f| !is_cte(f)) {
        out.extend_from_slice(f);
    }
    out.extend_from_slice(b"Content-Transfer-Encoding: ");
    out.extend_from_slice(value.as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(eol);
    out
}

fn is_cte(field: &[u8]) -> bool {
    let name = b"content-transfer-encoding:";
    field.len() >= name.len() && field[..name.len()].eq_ignore_ascii_case(name)
}

/// The header fields of `head`, each with its continuation lines and line
/// ends; the empty line that ends the section is not one of them.
fn fields(head: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = head;
    std::iter::from_fn(move || {
        if rest.is_empty() || rest.starts_with(b"\r\n") || rest.starts_with(b"\n") {
            return None;
        }
        let mut end = 0;
        loop {
            match rest[end..].iter().position(|&c| c == b'\n') {
                Some(p) => end += p + 1,
                None => end = rest.len(),
            }
            if end >= rest.len() || !matches!(rest[end], b' ' | b'\t') {
                break;
            }
        }
        let (field, more) = rest.split_at(end);
        rest = more;
        Some(field)
    })
}

fn cannot(why: &str) -> Error {
    Error::new(
        ErrorKind::Message,
        format!(
            "the server does not offer 8BITMIME, and the message cannot be converted to 7-bit: {why}"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded_text(raw: &[u8]) -> Vec<String> {
        let m = MessageParser::default().parse(raw).unwrap();
        (0..m.text_body.len())
            .map(|i| m.body_text(i).unwrap().into_owned())
            .collect()
    }

    #[test]
    fn a_single_8bit_part_becomes_quoted_printable_and_reads_the_same() {
        let raw =
            "From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: 8bit\r\n\r\nGrüße, naïve café\r\nline two\r\n"
                .as_bytes();
        let out = to_seven_bit(raw).unwrap();
        assert!(out.is_ascii(), "{}", String::from_utf8_lossy(&out));
        let t = String::from_utf8(out.clone()).unwrap();
        assert!(
            t.starts_with("From: a@example.com\r\nSubject: s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"),
            "{t}"
        );
        assert_eq!(t.matches("Content-Transfer-Encoding").count(), 1, "{t}");
        assert!(t.ends_with("line two\r\n"), "{t:?}");
        assert_eq!(decoded_text(&out), decoded_text(raw));
    }

    #[test]
    fn only_the_8bit_parts_of_a_multipart_change() {
        let raw = "From: a@example.com\r\nMIME-Version: 1.0\r\n\
                   Content-Type: multipart/mixed; boundary=\"b\"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                   preamble\r\n--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n\
                   --b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nÜber\r\n\
                   --b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\n\
                   --b--\r\n"
            .as_bytes();
        let out = to_seven_bit(raw).unwrap();
        let t = String::from_utf8(out.clone()).unwrap();
        assert!(out.is_ascii(), "{t}");
        assert!(
            t.contains("Content-Transfer-Encoding: 7bit\r\n\r\npreamble\r\n--b\r\n"),
            "{t}"
        );
        assert!(
            t.contains(
                "--b\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain ascii\r\n--b\r\n"
            ),
            "{t}"
        );
        assert!(
            t.contains("charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=C3=9Cber\r\n--b\r\n"),
            "{t}"
        );
        assert!(t.contains("base64\r\n\r\nAAEC\r\n--b--\r\n"), "{t}");
        assert_eq!(decoded_text(&out), decoded_text(raw));
    }

    #[test]
    fn what_cannot_be_converted_says_why() {
        for (raw, why) in [
            (
                "From: a@example.com\r\nSubject: Grüße\r\n\r\nbody\r\n",
                "header",
            ),
            (
                "From: a@example.com\r\nContent-Transfer-Encoding: base64\r\n\r\nGrüße\r\n",
                "declared base64",
            ),
        ] {
            let err = to_seven_bit(raw.as_bytes()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Message);
            assert!(err.message().contains(why), "{err}");
        }
    }
}
