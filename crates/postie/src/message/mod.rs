//! Messages: composed from parts (lettre's builder) or taken raw (RFC 5322
//! bytes from a file or stdin), each with the envelope SMTP will use.
//!
//! Bcc recipients go into the envelope only; no `Bcc:` header is ever
//! written into the bytes sent. `Date` and `Message-ID` are added when
//! missing (RFC 5322 §3.6 requires the first and strongly advises the second).

mod batch;
mod body;
mod raw;
mod seven_bit;

use std::path::PathBuf;
use std::sync::Arc;

use lettre::message::header::{ContentTransferEncoding, ContentType};
use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart};
use postie_proto::address::Address;
use rand::RngCore;

pub use batch::{Item, Source};
pub use body::{Body, Reader};
pub use raw::{RawOptions, complete_headers, from_raw, from_raw_file, from_raw_reader};
pub use seven_bit::to_seven_bit;

use crate::error::{Error, ErrorKind, Result};
use crate::wording::{Setting, say_setting};

/// A message ready to send: its bytes and its envelope.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    /// The RFC 5322 bytes as they will be sent (before dot-stuffing), in
    /// memory or read from files while they are sent.
    pub body: Body,
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
        self.body.is_8bit()
    }

    /// True when an envelope address needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.from.as_ref().is_ascii() || self.recipients.iter().any(|r| !r.as_ref().is_ascii())
    }
}

/// `s` as HTML text, safe in content and in quoted attribute values: `& <
/// > " '` as entities.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Split an address list at the commas between addresses: not at those
/// inside a quoted display name (`"Smith, Bob" <bob@example.com>`), an
/// angle-bracket address or a comment. Empty items are dropped.
pub fn split_address_list(list: &str) -> Vec<String> {
    let mut out = Vec::new();
    let (mut quoted, mut angle, mut comment, mut escaped) = (false, false, 0u32, false);
    let mut current = String::new();
    for c in list.chars() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quoted {
            escaped = true;
        } else if c == '"' && comment == 0 {
            quoted = !quoted;
        } else if !quoted {
            match c {
                '<' if comment == 0 => angle = true,
                '>' if comment == 0 => angle = false,
                '(' => comment += 1,
                ')' => comment = comment.saturating_sub(1),
                ',' if !angle && comment == 0 => {
                    let item = current.trim();
                    if !item.is_empty() {
                        out.push(item.to_string());
                    }
                    current.clear();
                    continue;
                }
                _ => {}
            }
        }
        current.push(c);
    }
    let item = current.trim();
    if !item.is_empty() {
        out.push(item.to_string());
    }
    out
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
    let mb = s.trim().parse::<Mailbox>().map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!("{field} '{s}' is not a valid address ({e}); write it as a@example.com or 'Name <a@example.com>'"),
        )
    })?;
    if mb.email.domain().is_ascii() {
        return Ok(mb);
    }
    let email = envelope_address(field, mb.email.as_ref())?;
    let email = email.as_ref().parse::<lettre::Address>().map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!("{field} '{s}' is not a valid address ({e})"),
        )
    })?;
    Ok(Mailbox::new(mb.name, email))
}

/// `s` as an SMTP envelope address (an IDN domain in A-labels), or a usage
/// error that names `field` (the flag or setting it came from).
pub fn envelope_address(field: &str, s: &str) -> Result<Address> {
    let ascii = ascii_domain(s).map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!(
                "{field} '{s}' has a domain that is not a valid internationalized domain name ({e})"
            ),
        )
    })?;
    ascii.parse::<Address>().map_err(|e| {
        Error::new(
            ErrorKind::Usage,
            format!("{field} '{s}' cannot be used in the SMTP envelope: {e}"),
        )
    })
}

/// An address whose local part is ASCII, with its domain in A-labels
/// (`bob@bücher.example` → `bob@xn--bcher-kva.example`, UTS #46 as browsers
/// do): the same mailbox, sent without SMTPUTF8 (RFC 6531 is needed only for
/// a non-ASCII local part, which is kept as it is).
pub fn ascii_domain(address: &str) -> std::result::Result<String, String> {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return Ok(address.to_string());
    };
    if domain.is_ascii() || !local.is_ascii() {
        return Ok(address.to_string());
    }
    let domain = idna::domain_to_ascii(domain).map_err(|e| e.to_string())?;
    Ok(format!("{local}@{domain}"))
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
        let from_label = say_setting(Setting::Sender);
        let from_mb = mailbox(&from_label, &self.from)?;
        let message_id = new_message_id(from_mb.email.as_ref());
        let mut b = lettre::Message::builder()
            .from(from_mb.clone())
            .message_id(Some(message_id.clone()))
            .user_agent(format!("postie/{}", env!("CARGO_PKG_VERSION")));
        // Each item may be a comma-separated list.
        let split = |v: &[String]| -> Vec<String> {
            v.iter().flat_map(|s| split_address_list(s)).collect()
        };
        let (to, cc, bcc, envelope_only) = (
            split(&self.to),
            split(&self.cc),
            split(&self.bcc),
            split(&self.envelope_only),
        );
        // Recipients given only as arguments become To, as in `mail bob@x`.
        let promote = to.is_empty() && cc.is_empty();
        let to: &[String] = if promote { &envelope_only } else { &to };
        let mut recipients = Vec::new();
        for (field, list) in [
            (Setting::To, to),
            (Setting::Cc, &cc[..]),
            (Setting::Bcc, &bcc[..]),
        ] {
            let label = say_setting(field);
            for s in list {
                let mb = mailbox(&label, s)?;
                push_unique(
                    &mut recipients,
                    envelope_address(&label, mb.email.as_ref())?,
                );
                b = match field {
                    Setting::To => b.to(mb),
                    Setting::Cc => b.cc(mb),
                    _ => b, // Bcc: envelope only, never a header
                };
            }
        }
        if !promote {
            for s in &envelope_only {
                push_unique(&mut recipients, envelope_address("recipient", s.trim())?);
            }
        }
        if recipients.is_empty() {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "the message has no recipient: give {}",
                    say_setting(Setting::Recipients)
                ),
            ));
        }
        if to.is_empty() && cc.is_empty() {
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
        let (parts, files) = self.parts()?;
        let body = format(b, parts, files)?;
        let from = envelope_address(&from_label, from_mb.email.as_ref())?;
        Ok(OutgoingMessage {
            body,
            from,
            recipients,
            message_id,
        })
    }

    /// The MIME structure, each attachment standing as a marker to be
    /// replaced by its file's base64 when the message is sent; and the files.
    fn parts(&self) -> Result<(Parts, Vec<Attached>)> {
        // lettre ends every part with CRLF; a body that already ends with a
        // newline would arrive with an extra blank line.
        let trim = |s: &String| {
            let t = s.strip_suffix('\n').unwrap_or(s);
            t.strip_suffix('\r').unwrap_or(t).to_string()
        };
        let text = self.text.as_ref().map(trim);
        let html = self.html.as_ref().map(trim);
        let alt = match (text, &html) {
            (Some(t), Some(h)) => Parts::Multi(MultiPart::alternative_plain_html(t, h.clone())),
            (Some(t), None) => Parts::Single(SinglePart::plain(t)),
            (None, Some(h)) => Parts::Single(SinglePart::html(h.clone())),
            (None, None) => Parts::Single(SinglePart::plain(String::new())),
        };
        if self.attachments.is_empty() {
            return Ok((alt, Vec::new()));
        }
        let mut mixed = match alt {
            Parts::Multi(m) => MultiPart::mixed().multipart(m),
            Parts::Single(s) => MultiPart::mixed().singlepart(s),
        };
        let nonce = {
            let mut r = [0u8; 8];
            rand::rng().fill_bytes(&mut r);
            r.iter().map(|b| format!("{b:02x}")).collect::<String>()
        };
        let mut files = Vec::new();
        for (i, path) in self.attachments.iter().enumerate() {
            let cannot = |e: std::io::Error| {
                Error::new(
                    ErrorKind::Input,
                    format!("cannot read the attachment {}: {e}", path.display()),
                )
            };
            // Opened now, so that a missing file stops the send before it
            // starts; read while the message is sent.
            let file = std::fs::File::open(path).map_err(cannot)?;
            let meta = file.metadata().map_err(cannot)?;
            if meta.is_dir() {
                return Err(cannot(std::io::Error::other("it is a directory")));
            }
            let marker = format!("postie-attachment-{i}-{nonce}");
            files.push(Attached {
                marker: marker.clone(),
                file: Arc::new(file),
                path: path.clone(),
                len: meta.len(),
            });
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "attachment".into());
            let mime = mime_guess::from_path(path).first_or_octet_stream();
            let ct = ContentType::parse(mime.essence_str())
                .unwrap_or_else(|_| ContentType::parse("application/octet-stream").unwrap());
            let body = lettre::message::Body::dangerous_pre_encoded(
                marker.into_bytes(),
                ContentTransferEncoding::Base64,
            );
            mixed = mixed.singlepart(Attachment::new(name).body(body, ct));
        }
        Ok((Parts::Multi(mixed), files))
    }
}

enum Parts {
    Single(SinglePart),
    Multi(MultiPart),
}

/// An attachment: its marker in the formatted message, and its file.
struct Attached {
    marker: String,
    file: Arc<std::fs::File>,
    path: PathBuf,
    len: u64,
}

/// Format the message, each attachment's marker replaced by its file's
/// base64 lines, read when the message is sent.
fn format(b: lettre::message::MessageBuilder, parts: Parts, files: Vec<Attached>) -> Result<Body> {
    let m = match parts {
        Parts::Single(s) => b.singlepart(s),
        Parts::Multi(m) => b.multipart(m),
    }
    .map_err(|e| Error::new(ErrorKind::Message, format!("cannot build the message: {e}")))?;
    let formatted = fold_headers(&m.formatted());
    let mut body = Body::empty();
    let mut rest: &[u8] = &formatted;
    for a in files {
        let at = find(rest, a.marker.as_bytes()).ok_or_else(|| {
            Error::new(
                ErrorKind::Message,
                format!(
                    "cannot build the message: no place for {}",
                    a.path.display()
                ),
            )
        })?;
        body.push_bytes(rest[..at].to_vec());
        body.push_base64(a.file, &a.path, a.len);
        rest = &rest[at + a.marker.len()..];
    }
    body.push_bytes(rest.to_vec());
    Ok(body)
}

/// Fold the header section's long lines at whitespace (RFC 5322 §2.2.3):
/// lines stay within 78 characters where the text allows, and a server
/// never sees a 3,000-octet Subject line (which it refuses: 554 5.6.0).
fn fold_headers(message: &[u8]) -> Vec<u8> {
    const WIDTH: usize = 78;
    let end = find(message, b"\r\n\r\n").map_or(message.len(), |i| i + 2);
    let mut out = Vec::with_capacity(message.len() + 64);
    for line in message[..end].split_inclusive(|&b| b == b'\n') {
        let text = line.strip_suffix(b"\r\n").unwrap_or(line);
        let mut rest = text;
        // The field name and colon stay on the first line.
        let mut floor = rest.iter().position(|&b| b == b':').map_or(0, |c| c + 1);
        while rest.len() > WIDTH {
            let cut = rest[floor.min(WIDTH)..=WIDTH]
                .iter()
                .rposition(|&b| b == b' ' || b == b'\t')
                .map(|i| i + floor.min(WIDTH))
                .filter(|&i| i > 0)
                // No room within the width: the first whitespace after it.
                .or_else(|| {
                    rest[WIDTH..]
                        .iter()
                        .position(|&b| b == b' ' || b == b'\t')
                        .map(|i| i + WIDTH)
                });
            let Some(cut) = cut else { break };
            out.extend_from_slice(&rest[..cut]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[cut..];
            floor = 1;
        }
        out.extend_from_slice(rest);
        if line.len() != text.len() {
            out.extend_from_slice(b"\r\n");
        }
    }
    out.extend_from_slice(&message[end..]);
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: &OutgoingMessage) -> String {
        String::from_utf8(m.body.to_vec().unwrap()).unwrap()
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
        // Several pieces of the body reader, and not a multiple of 3.
        let data: Vec<u8> = (0..=255u8).cycle().take(700_001).collect();
        std::fs::write(&path, &data).unwrap();
        let d = Draft {
            from: "ann@example.com".into(),
            to: vec!["bob@example.com".into()],
            text: Some("see attached".into()),
            attachments: vec![path],
            ..Draft::default()
        };
        let m = d.build().unwrap();
        assert!(
            m.body.as_bytes().is_none(),
            "the attachment is read when sent"
        );
        let bytes = m.body.to_vec().unwrap();
        assert_eq!(m.body.len(), bytes.len() as u64);
        let parsed = mail_parser::MessageParser::default().parse(&bytes).unwrap();
        let att = parsed.attachments().next().expect("one attachment");
        assert_eq!(att.contents(), &data[..]);
        assert_eq!(att.attachment_name(), Some("résumé.bin"));
    }

    /// A quoted display name may hold commas; the list
    /// is split only between addresses.
    #[test]
    fn address_lists_split_only_between_addresses() {
        assert_eq!(
            split_address_list(r#""Smith, Bob" <bob@example.com>, ann@example.com"#),
            [r#""Smith, Bob" <bob@example.com>"#, "ann@example.com"]
        );
        assert_eq!(
            split_address_list("carl@example.com (Carl, the boss), <d@x.test>,,"),
            ["carl@example.com (Carl, the boss)", "<d@x.test>"]
        );
        assert_eq!(
            split_address_list(r#""a \" , b" <a@x.test>"#),
            [r#""a \" , b" <a@x.test>"#]
        );
        let m = Draft {
            from: "ann@example.com".into(),
            to: vec![r#""Smith, Bob" <bob@example.com>, eve@example.com"#.into()],
            text: Some("x".into()),
            ..Draft::default()
        }
        .build()
        .unwrap();
        let rcpts: Vec<_> = m.recipients.iter().map(|a| a.to_string()).collect();
        assert_eq!(rcpts, ["bob@example.com", "eve@example.com"]);
        let t = text(&m);
        let parsed = mail_parser::MessageParser::default()
            .parse(t.as_bytes())
            .unwrap();
        let first = parsed.to().and_then(|a| a.first()).unwrap();
        assert_eq!(first.name(), Some("Smith, Bob"), "{t}");
    }

    /// A 3,000-character subject went out as one
    /// 3,012-octet line (servers refuse: 554 5.6.0); header lines are folded.
    #[test]
    fn long_headers_are_folded() {
        let subject: String = (0..500).map(|i| format!("w{i} ")).collect();
        let m = Draft {
            from: "ann@example.com".into(),
            to: vec!["bob@example.com".into()],
            subject: Some(subject.trim().to_string()),
            text: Some("body line that is short".into()),
            ..Draft::default()
        }
        .build()
        .unwrap();
        let t = text(&m);
        let (head, body) = t.split_once("\r\n\r\n").unwrap();
        for line in head.split("\r\n") {
            assert!(line.len() <= 78, "{} octets: {line}", line.len());
        }
        assert!(body.starts_with("body line"));
        let parsed = mail_parser::MessageParser::default()
            .parse(t.as_bytes())
            .unwrap();
        assert_eq!(parsed.subject(), Some(subject.trim()));
    }

    #[test]
    fn no_recipient_is_an_error_that_says_what_to_do() {
        let d = Draft {
            from: "ann@example.com".into(),
            ..Draft::default()
        };
        let give = crate::wording::say_setting(crate::wording::Setting::Recipients);
        assert!(d.build().unwrap_err().to_string().contains(&give));
        let bad = Draft {
            from: "ann@example.com".into(),
            to: vec!["bob@exa\nmple.com".into()],
            ..Draft::default()
        };
        assert_eq!(bad.build().unwrap_err().kind(), ErrorKind::Usage);
    }

    /// An IDN domain with an ASCII local part goes out
    /// in A-labels, in the envelope and the headers, so no SMTPUTF8 is
    /// needed; a non-ASCII local part still needs it and is kept.
    #[test]
    fn idn_domains_are_sent_as_a_labels() {
        assert_eq!(
            ascii_domain("bob@bücher.example").unwrap(),
            "bob@xn--bcher-kva.example"
        );
        assert_eq!(ascii_domain("bob@example.com").unwrap(), "bob@example.com");
        assert_eq!(
            ascii_domain("jörg@bücher.example").unwrap(),
            "jörg@bücher.example"
        );
        let m = Draft {
            from: "Ann <ann@münchen.example>".into(),
            to: vec!["Bob <bob@bücher.example>".into()],
            envelope_only: vec!["carol@例え.テスト".into()],
            text: Some("hi".into()),
            ..Draft::default()
        }
        .build()
        .unwrap();
        let rcpts: Vec<_> = m.recipients.iter().map(|a| a.to_string()).collect();
        assert_eq!(
            rcpts,
            ["bob@xn--bcher-kva.example", "carol@xn--r8jz45g.xn--zckzah"]
        );
        assert_eq!(m.from.to_string(), "ann@xn--mnchen-3ya.example");
        assert!(!m.needs_smtputf8());
        let t = text(&m);
        assert!(t.contains("To: Bob <bob@xn--bcher-kva.example>"), "{t}");
        assert!(t.contains("From: Ann <ann@xn--mnchen-3ya.example>"), "{t}");
        let utf8_local = Draft {
            from: "ann@example.com".into(),
            to: vec!["jörg@bücher.example".into()],
            text: Some("hi".into()),
            ..Draft::default()
        }
        .build()
        .unwrap();
        assert!(utf8_local.needs_smtputf8());
    }
}
