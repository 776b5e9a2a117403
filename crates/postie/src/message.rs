//! Messages: composed from parts (lettre's builder) or taken raw (RFC 5322
//! bytes from a file or stdin), each with the envelope SMTP will use.
//!
//! Bcc recipients go into the envelope only; no `Bcc:` header is ever
//! written into the bytes sent. `Date` and `Message-ID` are added when
//! missing (RFC 5322 §3.6 requires the first and strongly advises the second).

use std::path::PathBuf;

use lettre::message::header::{ContentType, Headers};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use postie_proto::address::Address;
use rand::RngCore;

use crate::error::{Error, ErrorKind, Result};

/// A message ready to send: its bytes and its envelope.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// The RFC 5322 bytes as they will be sent (before dot-stuffing).
    pub bytes: Vec<u8>,
    /// MAIL FROM.
    pub from: Address,
    /// RCPT TO, in order, without duplicates.
    pub recipients: Vec<Address>,
    /// The Message-ID header's value, angle brackets included.
    pub message_id: String,
}

impl OutgoingMessage {
    /// True when the bytes contain anything outside 7-bit ASCII (BODY=8BITMIME).
    pub fn is_8bit(&self) -> bool {
        !self.bytes.is_ascii()
    }

    /// True when an envelope address needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.from.as_ref().is_ascii() || self.recipients.iter().any(|r| !r.as_ref().is_ascii())
    }
}

/// A message described by its parts, as `postie send --from --to ...` gives it.
#[derive(Clone, Debug, Default)]
pub struct Draft {
    /// `From` mailbox, `Name <addr>` or a bare address.
    pub from: String,
    /// `To` mailboxes.
    pub to: Vec<String>,
    /// `Cc` mailboxes.
    pub cc: Vec<String>,
    /// Blind copies: envelope only.
    pub bcc: Vec<String>,
    /// Extra envelope recipients that appear in no header.
    pub envelope_only: Vec<String>,
    /// Subject (UTF-8; encoded per RFC 2047 as needed).
    pub subject: Option<String>,
    /// Plain-text body.
    pub text: Option<String>,
    /// HTML body.
    pub html: Option<String>,
    /// Files to attach.
    pub attachments: Vec<PathBuf>,
}

fn mailbox(field: &str, s: &str) -> Result<Mailbox> {
    s.trim().parse::<Mailbox>().map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!("{field} '{s}' is not a valid address ({e}); write it as a@example.com or 'Name <a@example.com>'"),
        )
    })
}

fn envelope_address(field: &str, s: &str) -> Result<Address> {
    s.parse::<Address>().map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!("{field} '{s}' cannot be used in the SMTP envelope: {e}"),
        )
    })
}

fn push_unique(list: &mut Vec<Address>, a: Address) {
    if !list
        .iter()
        .any(|x| x.as_ref().eq_ignore_ascii_case(a.as_ref()))
    {
        list.push(a);
    }
}

/// A fresh Message-ID on the sender's domain: `<random.time@domain>`.
pub fn new_message_id(from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>'))
        .filter(|d| !d.is_empty())
        .unwrap_or("postie.invalid");
    let mut r = [0u8; 12];
    rand::rng().fill_bytes(&mut r);
    let hex: String = r.iter().map(|b| format!("{b:02x}")).collect();
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("<{hex}.{secs}@{domain}>")
}

impl Draft {
    /// Build the message.
    pub fn build(&self) -> Result<OutgoingMessage> {
        let from_mb = mailbox("--from", &self.from)?;
        let message_id = new_message_id(from_mb.email.as_ref());
        let mut b = lettre::Message::builder()
            .from(from_mb.clone())
            .message_id(Some(message_id.clone()))
            .user_agent(format!("postie/{}", env!("CARGO_PKG_VERSION")));
        // Recipients given only as arguments become To, as in `mail bob@x`.
        let promote = self.to.is_empty() && self.cc.is_empty();
        let to: &[String] = if promote {
            &self.envelope_only
        } else {
            &self.to
        };
        let mut recipients = Vec::new();
        for (field, list) in [
            ("--to", to),
            ("--cc", &self.cc[..]),
            ("--bcc", &self.bcc[..]),
        ] {
            for s in list {
                let mb = mailbox(field, s)?;
                push_unique(&mut recipients, envelope_address(field, mb.email.as_ref())?);
                b = match field {
                    "--to" => b.to(mb),
                    "--cc" => b.cc(mb),
                    _ => b, // Bcc: envelope only, never a header
                };
            }
        }
        if !promote {
            for s in &self.envelope_only {
                push_unique(&mut recipients, envelope_address("recipient", s.trim())?);
            }
        }
        if recipients.is_empty() {
            return Err(Error::new(
                ErrorKind::Usage,
                "the message has no recipient: give --to, --cc, --bcc or recipients as arguments",
            ));
        }
        if to.is_empty() && self.cc.is_empty() {
            // Only Bcc recipients: an empty To, which mail clients show as
            // "undisclosed recipients" (RFC 5322 §3.6.3).
            b = b.header(lettre::message::header::To::from(
                lettre::message::Mailboxes::new(),
            ));
        }
        // The envelope is ours; lettre must not derive one from headers.
        let lettre_rcpts = recipients
            .iter()
            .map(|a| a.as_ref().parse::<lettre::Address>())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::new(ErrorKind::Usage, format!("invalid recipient: {e}")))?;
        let env = lettre::address::Envelope::new(Some(from_mb.email.clone()), lettre_rcpts)
            .map_err(|e| Error::new(ErrorKind::Usage, format!("invalid envelope: {e}")))?;
        b = b.envelope(env);
        if let Some(s) = &self.subject {
            b = b.subject(s.clone());
        }
        let body = self.body()?;
        let msg = format(b, body)?;
        let from = envelope_address("--from", from_mb.email.as_ref())?;
        Ok(OutgoingMessage {
            bytes: msg,
            from,
            recipients,
            message_id,
        })
    }

    fn body(&self) -> Result<Body> {
        // lettre ends every part with CRLF; a body that already ends with a
        // newline would arrive with an extra blank line.
        let trim = |s: &String| {
            let t = s.strip_suffix('\n').unwrap_or(s);
            t.strip_suffix('\r').unwrap_or(t).to_string()
        };
        let text = self.text.as_ref().map(trim);
        let html = self.html.as_ref().map(trim);
        let alt = match (text, &html) {
            (Some(t), Some(h)) => Body::Multi(MultiPart::alternative_plain_html(t, h.clone())),
            (Some(t), None) => Body::Single(SinglePart::plain(t)),
            (None, Some(h)) => Body::Single(SinglePart::html(h.clone())),
            (None, None) => Body::Single(SinglePart::plain(String::new())),
        };
        if self.attachments.is_empty() {
            return Ok(alt);
        }
        let mut mixed = match alt {
            Body::Multi(m) => MultiPart::mixed().multipart(m),
            Body::Single(s) => MultiPart::mixed().singlepart(s),
        };
        for path in &self.attachments {
            let data = std::fs::read(path).map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!("cannot read the attachment {}: {e}", path.display()),
                )
            })?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let ct = ContentType::parse(mime.essence_str())
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").unwrap());
            mixed = mixed.singlepart(Attachment::new(name).body(data, ct));
        }
        Ok(Body::Multi(mixed))
    }
}

enum Body {
    Single(SinglePart),
    Multi(MultiPart),
}

fn format(b: lettre::message::MessageBuilder, body: Body) -> Result<Vec<u8>> {
    let m = match body {
        Body::Single(s) => b.singlepart(s),
        Body::Multi(m) => b.multipart(m),
    }
    .map_err(|e| Error::new(ErrorKind::Message, format!("cannot build the message: {e}")))?;
    Ok(m.formatted())
}

/// What is read from a message's header for routing and display: the
/// first `From:` address, the subject, the Message-ID.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeadSummary {
    /// The address of the first mailbox in `From:`.
    pub from: Option<String>,
    /// `Subject:`, decoded (RFC 2047), at most 200 characters.
    pub subject: Option<String>,
    /// `Message-ID:` with its angle brackets.
    pub message_id: Option<String>,
}

impl HeadSummary {
    /// Read the header of `bytes` (the whole message or its first part).
    pub fn parse(bytes: &[u8]) -> HeadSummary {
        let Some(msg) = mail_parser::MessageParser::new().parse_headers(bytes) else {
            return HeadSummary::default();
        };
        HeadSummary {
            from: msg
                .from()
                .and_then(|f| f.first())
                .and_then(|a| a.address())
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty()),
            subject: msg.subject().map(|s| s.chars().take(200).collect()),
            message_id: msg.message_id().map(|m| format!("<{m}>")),
        }
    }
}

/// How to find the envelope of a raw message.
#[derive(Clone, Debug, Default)]
pub struct RawOptions {
    /// MAIL FROM override; else the `Sender` or `From` header's address.
    pub from: Option<String>,
    /// Recipients given on the command line.
    pub recipients: Vec<String>,
    /// Take recipients from To/Cc/Bcc headers too (`sendmail -t`).
    pub read_headers: bool,
}

/// Take a raw RFC 5322 message. Adds Date and Message-ID when missing; with
/// `read_headers`, takes recipients from To/Cc/Bcc and removes the Bcc header.
pub fn from_raw(raw: Vec<u8>, opts: &RawOptions) -> Result<OutgoingMessage> {
    let (header_end, _) = split_headers(&raw).ok_or_else(|| {
        Error::new(
            ErrorKind::Message,
            "the raw message has no header section: it must start with headers such as \
             'From: ...' followed by an empty line and the body",
        )
    })?;
    let parsed = mail_parser::MessageParser::default()
        .parse_headers(&raw[..header_end])
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Message,
                "the raw message's headers cannot be parsed",
            )
        })?;
    let first_addr = |a: Option<&mail_parser::Address>| {
        a.and_then(|a| a.first())
            .and_then(|x| x.address.as_ref())
            .map(|s| s.to_string())
    };
    let header_from = first_addr(parsed.sender()).or_else(|| first_addr(parsed.from()));
    let from = match (&opts.from, &header_from) {
        (Some(f), _) => f.clone(),
        (None, Some(f)) => f.clone(),
        (None, None) => {
            return Err(Error::new(
                ErrorKind::Message,
                "the raw message has no From header: add one, or give --from",
            ));
        }
    };
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
                "the raw message names no recipient in To, Cc or Bcc"
            } else {
                "no recipient: give them as arguments or with --to, or use -t to read the message's To/Cc/Bcc headers"
            },
        ));
    }
    let needs_date = parsed.date().is_none() && parsed.header_raw("Date").is_none();
    let existing_id = parsed.message_id().map(|id| format!("<{id}>"));
    let mut bytes = if opts.read_headers || has_header(&raw[..header_end], "bcc") {
        remove_header(&raw, header_end, "bcc")
    } else {
        raw
    };
    let eol: &[u8] = if bytes.windows(2).any(|w| w == b"\r\n") {
        b"\r\n"
    } else {
        b"\n"
    };
    let mut prefix = Vec::new();
    let message_id = match existing_id {
        Some(id) => id,
        None => {
            let id = new_message_id(&from);
            prefix.extend_from_slice(format!("Message-ID: {id}").as_bytes());
            prefix.extend_from_slice(eol);
            id
        }
    };
    if needs_date {
        let mut h = Headers::new();
        h.set(lettre::message::header::Date::now());
        let line = h.to_string();
        prefix.extend_from_slice(line.trim_end().as_bytes());
        prefix.extend_from_slice(eol);
    }
    if !prefix.is_empty() {
        prefix.append(&mut bytes);
        bytes = prefix;
    }
    Ok(OutgoingMessage {
        bytes,
        from: from_addr,
        recipients,
        message_id,
    })
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

fn remove_header(raw: &[u8], header_end: usize, name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    for (s, e) in header_lines(&raw[..header_end]) {
        if !field_name_is(&raw[s..e], name) {
            out.extend_from_slice(&raw[s..e]);
        }
    }
    out.extend_from_slice(&raw[header_end..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &OutgoingMessage) -> String {
        String::from_utf8(m.bytes.clone()).unwrap()
    }

    #[test]
    fn bcc_is_envelope_only() {
        let d = Draft {
            from: "Ann <ann@example.com>".into(),
            to: vec!["bob@example.com".into()],
            bcc: vec!["secret@example.com".into()],
            subject: Some("Grüße ✉".into()),
            text: Some("hello".into()),
            ..Draft::default()
        };
        let m = d.build().unwrap();
        let t = text(&m);
        assert!(!t.to_ascii_lowercase().contains("bcc:"), "{t}");
        assert!(!t.contains("secret@example.com"), "{t}");
        let rcpts: Vec<_> = m.recipients.iter().map(|a| a.to_string()).collect();
        assert_eq!(rcpts, ["bob@example.com", "secret@example.com"]);
        assert!(
            t.contains("Subject: =?utf-8?"),
            "UTF-8 subject must be encoded: {t}"
        );
        assert!(t.contains("Date: ") && t.contains(&format!("Message-ID: {}", m.message_id)));
        assert!(m.message_id.ends_with("@example.com>"));
    }

    #[test]
    fn bcc_only_and_argument_recipients() {
        let bcc_only = Draft {
            from: "ann@example.com".into(),
            bcc: vec!["hidden@example.com".into()],
            text: Some("x".into()),
            ..Draft::default()
        }
        .build()
        .unwrap();
        assert_eq!(bcc_only.recipients.len(), 1);
        assert!(!text(&bcc_only).contains("hidden@"));

        let args_only = Draft {
            from: "ann@example.com".into(),
            envelope_only: vec!["bob@example.com".into()],
            text: Some("last line\n".into()),
            ..Draft::default()
        }
        .build()
        .unwrap();
        let t = text(&args_only);
        assert!(t.contains("\r\nTo: bob@example.com\r\n"), "{t}");
        assert!(
            t.ends_with("\r\n\r\nlast line\r\n"),
            "body ends once: {t:?}"
        );
    }

    #[test]
    fn attachment_with_utf8_name_round_trips() {
        use mail_parser::MimeHeaders;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("résumé.bin");
        let data: Vec<u8> = (0..=255u8).cycle().take(10_000).collect();
        std::fs::write(&path, &data).unwrap();
        let d = Draft {
            from: "ann@example.com".into(),
            to: vec!["bob@example.com".into()],
            text: Some("see attached".into()),
            attachments: vec![path],
            ..Draft::default()
        };
        let m = d.build().unwrap();
        let parsed = mail_parser::MessageParser::default()
            .parse(&m.bytes)
            .unwrap();
        let att = parsed.attachments().next().expect("one attachment");
        assert_eq!(att.contents(), &data[..]);
        assert_eq!(att.attachment_name(), Some("résumé.bin"));
    }

    #[test]
    fn no_recipient_is_an_error_that_says_what_to_do() {
        let d = Draft {
            from: "ann@example.com".into(),
            ..Draft::default()
        };
        assert!(d.build().unwrap_err().to_string().contains("--to"));
        let bad = Draft {
            from: "ann@example.com".into(),
            to: vec!["bob@exa\nmple.com".into()],
            ..Draft::default()
        };
        assert_eq!(bad.build().unwrap_err().kind(), ErrorKind::Usage);
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
        assert_eq!(m.bytes, raw);
        assert_eq!(m.message_id, "<x@y>");
        let err = from_raw(raw, &RawOptions::default()).unwrap_err();
        assert!(err.to_string().contains("-t"), "{err}");
        let err = from_raw(b"just text\n".to_vec(), &RawOptions::default()).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Message);
    }
}
