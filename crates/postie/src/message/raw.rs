//! Raw messages: RFC 5322 bytes given whole (a file, stdin, the relay's
//! spool), with the envelope read from options or headers.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use lettre::message::header::Headers;

use super::body::{read_range, scan};
use super::{Body, OutgoingMessage, envelope_address, new_message_id, push_unique};
use crate::error::{Error, ErrorKind, Result};
use crate::wording::{Setting, say_setting};

/// How to find the envelope of a raw message.
#[derive(Clone, Debug, Default)]
pub struct RawOptions {
    /// MAIL FROM override; else the `Sender` or `From` header's address.
    pub from: Option<String>,
    /// Recipients given on the command line.
    pub recipients: Vec<String>,
    /// Take recipients from To/Cc/Bcc headers too (`sendmail -t`).
    pub read_headers: bool,
    /// For a message with no `From:` header: the address to add one with
    /// (sendmail's `-f`, else the account's address). Without it, such a
    /// message is refused.
    pub add_from: Option<String>,
    /// The display name of an added `From:` (sendmail's `-F`).
    pub add_from_name: Option<String>,
}

/// The largest header section taken from a file or stdin: headers are read
/// into memory (to route and complete them), the body never is.
const MAX_HEADER_SECTION: usize = 1024 * 1024;

/// What the message gives in memory before it is read from stdin or a
/// file: larger ones are spooled to a temporary file and streamed.
const IN_MEMORY: usize = 1024 * 1024;

/// Take a raw RFC 5322 message held in memory. Adds Date and Message-ID when
/// missing; with `read_headers`, takes recipients from To/Cc/Bcc; removes
/// any Bcc header.
pub fn from_raw(raw: Vec<u8>, opts: &RawOptions) -> Result<OutgoingMessage> {
    let (header_end, _) = split_headers(&raw).ok_or_else(no_header_section)?;
    let p = prepare(&raw[..header_end], opts)?;
    let mut bytes = p.head;
    bytes.extend_from_slice(&raw[header_end..]);
    Ok(OutgoingMessage {
        body: Body::from_bytes(bytes),
        from: p.from,
        recipients: p.recipients,
        message_id: p.message_id,
    })
}

/// [`from_raw`] for a message in a file: the header section is read (at
/// most 1 MiB), the body is sent from the file while the message is sent,
/// never held in memory. A blocking read: call it where blocking is allowed.
pub fn from_raw_file(path: &Path, opts: &RawOptions) -> Result<OutgoingMessage> {
    let file = std::fs::File::open(path).map_err(|e| {
        Error::new(
            ErrorKind::Input,
            format!("cannot read the raw message {}: {e}", path.display()),
        )
    })?;
    from_raw_open(file, path, opts)
}

/// [`from_raw`] for a message read from `input` (stdin): up to 1 MiB is
/// kept in memory; a larger message is spooled to an unnamed temporary
/// file and sent from there. A blocking read.
pub fn from_raw_reader(mut input: impl Read, opts: &RawOptions) -> Result<OutgoingMessage> {
    let cannot = |e: std::io::Error| {
        Error::new(
            ErrorKind::Input,
            format!("cannot read the raw message: {e}"),
        )
    };
    let mut first = Vec::new();
    (&mut input)
        .take(IN_MEMORY as u64 + 1)
        .read_to_end(&mut first)
        .map_err(cannot)?;
    if first.len() <= IN_MEMORY {
        return from_raw(first, opts);
    }
    let mut spool = tempfile::tempfile().map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("cannot make a temporary file for the message (TMPDIR): {e}"),
        )
    })?;
    std::io::Write::write_all(&mut spool, &first).map_err(cannot)?;
    drop(first);
    std::io::copy(&mut input, &mut spool).map_err(cannot)?;
    from_raw_open(spool, Path::new("the message read from stdin"), opts)
}

fn from_raw_open(file: std::fs::File, path: &Path, opts: &RawOptions) -> Result<OutgoingMessage> {
    let len = file
        .metadata()
        .map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read the raw message {}: {e}", path.display()),
            )
        })?
        .len();
    let file = Arc::new(file);
    // Read the header section: up to the first empty line.
    let mut head = Vec::new();
    let mut at = 0u64;
    let header_end = loop {
        let piece = (len - at).min(64 * 1024);
        head.extend_from_slice(&read_range(&file, path, at, piece)?);
        at += piece;
        let done = at == len;
        match split_headers(&head) {
            None => return Err(no_header_section()),
            Some((end, blank)) if blank > 0 || done => break end,
            Some(_) if head.len() > MAX_HEADER_SECTION => {
                return Err(Error::new(
                    ErrorKind::Message,
                    "the raw message's header section is larger than 1 MiB: it must end with \
                     an empty line before the body",
                ));
            }
            Some(_) => {}
        }
    };
    head.truncate(header_end);
    let p = prepare(&head, opts)?;
    let rest = len - header_end as u64;
    let found = scan(&file, path, header_end as u64, rest)?;
    let mut body = Body::empty();
    body.push_bytes(p.head);
    body.push_file(file, path, header_end as u64, rest, found);
    Ok(OutgoingMessage {
        body,
        from: p.from,
        recipients: p.recipients,
        message_id: p.message_id,
    })
}

fn no_header_section() -> Error {
    Error::new(
        ErrorKind::Message,
        "the raw message has no header section: it must start with headers such as \
         'From: ...' followed by an empty line and the body",
    )
}

/// The one policy for messages given whole (`send --raw`, `sendmail`, the
/// relay): a message must start with a header section and name its sender
/// in `From:`; a missing `Message-ID` and `Date` are added (RFC 5322 §3.6
/// requires the one and strongly advises the other); headers present are
/// never changed. Given the first bytes of a message (its whole header
/// section, when it has one that short), returns the header lines to put
/// before it, or what is wrong with it.
pub fn complete_headers(head: &[u8]) -> Result<Vec<u8>> {
    let (header_end, _) = split_headers(head).ok_or_else(no_header_section)?;
    let head = &head[..header_end];
    let parsed = parse_head(head)?;
    let from = first_address(parsed.from()).ok_or_else(|| {
        Error::new(
            ErrorKind::Message,
            "the message has no From header naming its sender: add one",
        )
    })?;
    Ok(missing_lines(&parsed, &from, line_end(head)).0)
}

fn parse_head(head: &[u8]) -> Result<mail_parser::Message<'_>> {
    mail_parser::MessageParser::default()
        .parse_headers(head)
        .ok_or_else(|| Error::new(ErrorKind::Message, "the message's headers cannot be parsed"))
}

fn first_address(a: Option<&mail_parser::Address>) -> Option<String> {
    a.and_then(|a| a.first())
        .and_then(|x| x.address.as_ref())
        .map(|s| s.to_string())
}

/// The line end the message uses (CRLF, or LF from a local program).
fn line_end(head: &[u8]) -> &'static [u8] {
    if head.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    }
}

/// The `Message-ID` and `Date` lines a header section lacks, and the
/// message's Message-ID (its own, else the added one).
fn missing_lines(parsed: &mail_parser::Message<'_>, from: &str, eol: &[u8]) -> (Vec<u8>, String) {
    let mut out = Vec::new();
    let message_id = match parsed.message_id() {
        Some(id) => format!("<{id}>"),
        None => {
            let id = new_message_id(from);
            out.extend_from_slice(format!("Message-ID: {id}").as_bytes());
            out.extend_from_slice(eol);
            id
        }
    };
    if parsed.date().is_none() && parsed.header_raw("Date").is_none() {
        let mut h = Headers::new();
        h.set(lettre::message::header::Date::now());
        out.extend_from_slice(h.to_string().trim_end().as_bytes());
        out.extend_from_slice(eol);
    }
    (out, message_id)
}

/// A raw message's header section as it will be sent, and its envelope.
struct Prepared {
    head: Vec<u8>,
    from: postie_proto::address::Address,
    recipients: Vec<postie_proto::address::Address>,
    message_id: String,
}

/// Read the envelope from `head` (the header section, without the empty
/// line that ends it) and `opts`; add Message-ID and Date when missing and
/// drop Bcc.
fn prepare(head: &[u8], opts: &RawOptions) -> Result<Prepared> {
    let parsed = parse_head(head)?;
    let header_from = first_address(parsed.from());
    // A message without From gets one, as sendmail adds it, when the
    // caller has an address for it.
    let added_from = match (&header_from, &opts.add_from) {
        (None, Some(addr)) => Some(from_line(addr, opts.add_from_name.as_deref())?),
        _ => None,
    };
    if header_from.is_none() && added_from.is_none() {
        return Err(Error::new(
            ErrorKind::Message,
            format!(
                "the raw message has no From header: add one, or give {} to add it",
                say_setting(Setting::Sender)
            ),
        ));
    }
    let header_sender = first_address(parsed.sender()).or(header_from);
    let from = opts
        .from
        .clone()
        .or(header_sender)
        .or(opts.add_from.clone())
        .unwrap_or_default();
    let from_addr = envelope_address("sender", &from)?;
    let mut recipients = Vec::new();
    for r in &opts.recipients {
        push_unique(&mut recipients, envelope_address("recipient", r.trim())?);
    }
    if opts.read_headers {
        for list in [parsed.to(), parsed.cc(), parsed.bcc()]
            .into_iter()
            .flatten()
        {
            for a in list.iter() {
                if let Some(addr) = &a.address {
                    push_unique(&mut recipients, envelope_address("header recipient", addr)?);
                }
            }
        }
    }
    if recipients.is_empty() {
        return Err(Error::new(
            ErrorKind::Usage,
            if opts.read_headers {
                "the raw message names no recipient in To, Cc or Bcc".to_string()
            } else {
                format!(
                    "no recipient: give {}, or {}",
                    say_setting(Setting::Recipients),
                    say_setting(Setting::ReadRecipients)
                )
            },
        ));
    }
    let kept = if has_header(head, "bcc") {
        remove_header(head, "bcc")
    } else {
        head.to_vec()
    };
    let eol = line_end(head);
    let (mut out, message_id) = missing_lines(&parsed, &from, eol);
    if let Some(line) = added_from {
        out.extend_from_slice(line.trim_end().as_bytes());
        out.extend_from_slice(eol);
    }
    out.reserve(kept.len());
    out.extend_from_slice(&kept);
    Ok(Prepared {
        head: out,
        from: from_addr,
        recipients,
        message_id,
    })
}

/// A `From:` line for `addr` with display name `name` (quoted or encoded
/// as RFC 5322 and RFC 2047 require).
fn from_line(addr: &str, name: Option<&str>) -> Result<String> {
    let email = envelope_address("sender", addr)?;
    let email: lettre::Address = email.to_string().parse().map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!("the sender <{addr}> cannot be a From address: {e}"),
        )
    })?;
    let mut h = Headers::new();
    let mailbox = lettre::message::Mailbox::new(name.map(str::to_string), email);
    h.set(lettre::message::header::From::from(
        lettre::message::Mailboxes::from(mailbox),
    ));
    Ok(h.to_string())
}

/// Find the end of the header section: (index of the empty line, its length).
fn split_headers(raw: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    // The first line must look like a header field ("Name:").
    let first_line_end = raw.iter().position(|&b| b == b'\n').unwrap_or(raw.len());
    if !raw[..first_line_end].contains(&b':') {
        return None;
    }
    while i < raw.len() {
        let end = raw[i..].iter().position(|&b| b == b'\n').map(|p| i + p + 1);
        let line_end = end.unwrap_or(raw.len());
        let line = &raw[i..line_end];
        if line == b"\r\n" || line == b"\n" {
            return Some((i, line.len()));
        }
        match end {
            Some(e) => i = e,
            None => return Some((raw.len(), 0)),
        }
    }
    Some((raw.len(), 0))
}

fn header_lines(headers: &[u8]) -> Vec<(usize, usize)> {
    // (start, end) byte ranges of each header field including folded lines.
    let mut fields: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < headers.len() {
        let end = headers[i..]
            .iter()
            .position(|&b| b == b'\n')
            .map(|p| i + p + 1)
            .unwrap_or(headers.len());
        let continuation = matches!(headers[i], b' ' | b'\t');
        match (continuation, fields.last_mut()) {
            (true, Some(last)) => last.1 = end,
            _ => fields.push((i, end)),
        }
        i = end;
    }
    fields
}

fn field_name_is(field: &[u8], name: &str) -> bool {
    let colon = field.iter().position(|&b| b == b':').unwrap_or(0);
    field[..colon]
        .trim_ascii()
        .eq_ignore_ascii_case(name.as_bytes())
}

fn has_header(headers: &[u8], name: &str) -> bool {
    header_lines(headers)
        .iter()
        .any(|&(s, e)| field_name_is(&headers[s..e], name))
}

/// The header section without the fields called `name`.
fn remove_header(head: &[u8], name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(head.len());
    for (s, e) in header_lines(head) {
        if !field_name_is(&head[s..e], name) {
            out.extend_from_slice(&head[s..e]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &OutgoingMessage) -> String {
        String::from_utf8(m.body.to_vec().unwrap()).unwrap()
    }

    #[test]
    fn raw_with_t_reads_headers_and_drops_bcc() {
        let raw = b"From: Ann <ann@example.com>\nTo: bob@example.com, carl@example.com\nBcc: hidden@example.com,\n  other@example.com\nSubject: hi\n\nbody\nBcc: not a header\n".to_vec();
        let m = from_raw(
            raw,
            &RawOptions {
                read_headers: true,
                ..RawOptions::default()
            },
        )
        .unwrap();
        let rcpts: Vec<_> = m.recipients.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            rcpts,
            [
                "bob@example.com",
                "carl@example.com",
                "hidden@example.com",
                "other@example.com"
            ]
        );
        let t = text(&m);
        assert!(
            !t.contains("hidden@") && !t.contains("other@example.com"),
            "{t}"
        );
        assert!(t.contains("\nBcc: not a header\n"), "body untouched: {t}");
        assert!(
            t.starts_with("Message-ID: <") && t.contains("\nDate: "),
            "{t}"
        );
        assert_eq!(m.from.to_string(), "ann@example.com");
    }

    #[test]
    fn raw_keeps_existing_ids_and_needs_recipients() {
        let raw = b"From: a@example.com\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n".to_vec();
        let m = from_raw(
            raw.clone(),
            &RawOptions {
                recipients: vec!["b@example.com".into()],
                ..RawOptions::default()
            },
        )
        .unwrap();
        assert_eq!(m.body.to_vec().unwrap(), raw);
        assert_eq!(m.message_id, "<x@y>");
        let err = from_raw(raw, &RawOptions::default()).unwrap_err();
        let read = crate::wording::say_setting(crate::wording::Setting::ReadRecipients);
        assert!(err.to_string().contains(&read), "{err}");
        let err = from_raw(b"just text\n".to_vec(), &RawOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Message);
    }

    /// A message with Date and Message-ID (so nothing is generated), a Bcc
    /// header and a body of `n` bytes ending in 8-bit text.
    fn big_message(n: usize) -> Vec<u8> {
        let mut m = b"From: a@example.com\r\nTo: b@example.com\r\nBcc: hidden@example.com\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <big@x>\r\nSubject: big\r\n\r\n".to_vec();
        while m.len() < n {
            m.extend_from_slice(
                b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
            );
        }
        m.extend_from_slice("grüße\r\n".as_bytes());
        m
    }

    #[test]
    fn a_raw_file_is_sent_from_the_file_with_the_same_bytes_as_in_memory() {
        let raw = big_message(3 * 1024 * 1024);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.eml");
        std::fs::write(&path, &raw).unwrap();
        let opts = RawOptions {
            read_headers: true,
            ..RawOptions::default()
        };
        let from_file = from_raw_file(&path, &opts).unwrap();
        assert!(
            from_file.body.as_bytes().is_none(),
            "the body stays in the file"
        );
        let in_memory = from_raw(raw.clone(), &opts).unwrap();
        let (a, b) = (
            from_file.body.to_vec().unwrap(),
            in_memory.body.to_vec().unwrap(),
        );
        assert_eq!(a, b);
        assert_eq!(from_file.body.len(), a.len() as u64);
        assert!(from_file.is_8bit() && in_memory.is_8bit());
        assert!(!String::from_utf8_lossy(&a[..400]).contains("hidden@"));
        let rcpts: Vec<_> = from_file.recipients.iter().map(|r| r.to_string()).collect();
        assert_eq!(rcpts, ["b@example.com", "hidden@example.com"]);
        assert_eq!(from_file.message_id, "<big@x>");
    }

    #[test]
    fn a_large_message_on_stdin_is_spooled_not_held() {
        let raw = big_message(2 * IN_MEMORY);
        let opts = RawOptions {
            read_headers: true,
            ..RawOptions::default()
        };
        let m = from_raw_reader(std::io::Cursor::new(raw.clone()), &opts).unwrap();
        assert!(m.body.as_bytes().is_none(), "spooled to a file");
        assert_eq!(
            m.body.to_vec().unwrap(),
            from_raw(raw, &opts).unwrap().body.to_vec().unwrap()
        );
        let small = from_raw_reader(std::io::Cursor::new(big_message(1000)), &opts).unwrap();
        assert!(
            small.body.as_bytes().is_some(),
            "a small one stays in memory"
        );
    }

    #[test]
    fn a_file_without_headers_or_with_endless_headers_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.eml");
        std::fs::write(&path, b"just text\n").unwrap();
        let err = from_raw_file(&path, &RawOptions::default()).unwrap_err();
        assert!(err.to_string().contains("no header section"), "{err}");
        let mut endless = b"From: a@example.com\n".to_vec();
        while endless.len() < MAX_HEADER_SECTION + 100_000 {
            endless.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n");
        }
        endless.extend_from_slice(b"\nbody\n");
        std::fs::write(&path, &endless).unwrap();
        let err = from_raw_file(&path, &RawOptions::default()).unwrap_err();
        assert!(err.to_string().contains("larger than 1 MiB"), "{err}");
    }

    /// The relay's policy. Present headers are never
    /// changed, missing Message-ID and Date are added, a message without a
    /// header section or a From is refused with why.
    #[test]
    fn complete_headers_adds_what_is_missing_and_refuses_what_cannot_be_sent() {
        let lines = |h: &[u8]| String::from_utf8(complete_headers(h).unwrap()).unwrap();
        let full = b"From: a@example.com\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <x@y>\r\n\r\nhi\r\n";
        assert_eq!(lines(full), "");
        let no_id = b"From: a@example.com\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nhi\r\n";
        let added = lines(no_id);
        assert!(
            added.starts_with("Message-ID: <") && added.ends_with("@example.com>\r\n"),
            "{added:?}"
        );
        assert_eq!(added.matches("\r\n").count(), 1, "{added:?}");
        // a local program's LF lines get LF lines; the Date parses
        let bare = lines(b"From: Ann <a@example.com>\nSubject: s\n\nhi\n");
        assert!(!bare.contains('\r'), "{bare:?}");
        let date = bare.lines().find_map(|l| l.strip_prefix("Date: ")).unwrap();
        assert!(chrono_like(date), "{date}");
        for (msg, why) in [
            (&b"garbage without headers\r\n"[..], "no header section"),
            (
                b"To: b@example.com\r\nSubject: s\r\n\r\nhi\r\n",
                "no From header",
            ),
            (b"From: undisclosed\r\n\r\nhi\r\n", "no From header"),
        ] {
            let err = complete_headers(msg).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Message);
            assert!(err.to_string().contains(why), "{err}");
        }
    }

    /// "Mon, 1 Jan 2024 00:00:00 +0000": a weekday, a day, a month name, a
    /// year, a time and a numeric zone (RFC 5322 §3.3).
    fn chrono_like(date: &str) -> bool {
        let p: Vec<&str> = date.split_whitespace().collect();
        p.len() == 6
            && p[0].ends_with(',')
            && p[1].parse::<u8>().is_ok()
            && p[2].len() == 3
            && p[3].parse::<u16>().is_ok()
            && p[4].split(':').count() == 3
            && (p[5].starts_with('+') || p[5].starts_with('-'))
    }

    /// Sendmail's -F and -f (or the account's address)
    /// make the From of a message that has none; a From present is kept.
    #[test]
    fn a_message_without_from_gets_the_added_one() {
        let opts = |addr: Option<&str>, name: Option<&str>| RawOptions {
            recipients: vec!["b@example.com".into()],
            add_from: addr.map(String::from),
            add_from_name: name.map(String::from),
            ..RawOptions::default()
        };
        let body = b"Subject: s\n\nhi\n".to_vec();
        let m = from_raw(
            body.clone(),
            &opts(Some("me@example.com"), Some("Me Myself")),
        )
        .unwrap();
        let t = text(&m);
        assert!(
            t.contains("\nFrom: \"Me Myself\" <me@example.com>\n"),
            "{t}"
        );
        assert_eq!(m.from.to_string(), "me@example.com");
        let m = from_raw(
            body.clone(),
            &opts(Some("me@example.com"), Some("Smith, Bob")),
        )
        .unwrap();
        let t = text(&m);
        let parsed = mail_parser::MessageParser::default()
            .parse_headers(t.as_bytes())
            .unwrap();
        let from = parsed.from().and_then(|a| a.first()).unwrap();
        assert_eq!(from.name.as_deref(), Some("Smith, Bob"), "{t}");
        assert_eq!(from.address.as_deref(), Some("me@example.com"), "{t}");
        let m = from_raw(body.clone(), &opts(Some("me@example.com"), None)).unwrap();
        assert!(text(&m).contains("From: me@example.com\n"), "{}", text(&m));
        let err = from_raw(body, &opts(None, Some("Me"))).unwrap_err();
        assert!(err.to_string().contains("no From header"), "{err}");
        let kept = b"From: Ann <ann@example.com>\n\nhi\n".to_vec();
        let m = from_raw(kept, &opts(Some("me@example.com"), Some("Me"))).unwrap();
        assert_eq!(text(&m).matches("From:").count(), 1, "{}", text(&m));
        assert_eq!(m.from.to_string(), "ann@example.com");
    }
}
