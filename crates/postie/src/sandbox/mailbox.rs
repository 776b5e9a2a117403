//! The sandbox's mailbox: every accepted message as one `.eml` file, and one
//! JSON line per message in `index.jsonl` (who sent it, to whom, when),
//! written after the file. `postie sandbox messages` reads the same files
//! without a running sandbox.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

use crate::config::write_atomic;
use crate::error::{Error, ErrorKind, Result};
use crate::message::HeadSummary;

/// Longest text part shown by [`Mailbox::show`].
const TEXT_SHOWN: usize = 64 * 1024;

/// One accepted message, as listed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// The message's id in the mailbox (`1`, `2`, …).
    pub id: u64,
    /// When it was accepted, Unix seconds.
    pub received: u64,
    /// The user who authenticated.
    pub user: String,
    /// The SASL mechanism used (`PLAIN`, `XOAUTH2`, …).
    pub mechanism: String,
    /// The envelope sender; `None` for `<>`.
    pub mail_from: Option<String>,
    /// The envelope recipients.
    pub recipients: Vec<String>,
    /// Octets.
    pub size: u64,
    /// `Subject:`.
    pub subject: Option<String>,
    /// The `From:` address.
    pub from: Option<String>,
    /// `Message-ID:`.
    pub message_id: Option<String>,
}

/// A message taken apart for display.
#[derive(Clone, Debug, Serialize)]
pub struct MessageView {
    /// What the index says.
    #[serde(flatten)]
    pub meta: StoredMessage,
    /// Header fields in order, values unfolded.
    pub headers: Vec<(String, String)>,
    /// MIME leaf parts in order.
    pub parts: Vec<PartView>,
}

/// One MIME leaf part.
#[derive(Clone, Debug, Serialize)]
pub struct PartView {
    /// `type/subtype`.
    pub content_type: String,
    /// The attachment's file name.
    pub filename: Option<String>,
    /// Decoded octets.
    pub size: usize,
    /// True for an attachment (a file name, or not text).
    pub attachment: bool,
    /// The decoded text of a text part that is not an attachment (cut at
    /// 64 KiB).
    pub text: Option<String>,
}

/// What the SMTP side knows of a message besides its bytes.
#[derive(Clone, Debug)]
pub struct Envelope {
    /// The user who authenticated.
    pub user: String,
    /// The SASL mechanism.
    pub mechanism: String,
    /// The envelope sender.
    pub mail_from: Option<String>,
    /// The envelope recipients.
    pub recipients: Vec<String>,
}

/// The mailbox directory.
#[derive(Debug)]
pub struct Mailbox {
    dir: PathBuf,
    /// Serialises id allocation and index appends.
    lock: Mutex<()>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

impl Mailbox {
    /// The mailbox in `dir` (made when missing).
    pub fn open(dir: &Path) -> Result<Mailbox> {
        std::fs::create_dir_all(dir).map_err(|e| io_err("create", dir, e))?;
        Ok(Mailbox {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        })
    }

    /// The mailbox in `dir` for reading, without creating anything: a
    /// directory that does not exist is an empty mailbox.
    pub fn at(dir: &Path) -> Mailbox {
        Mailbox {
            dir: dir.to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    fn index(&self) -> PathBuf {
        self.dir.join("index.jsonl")
    }

    fn eml(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id}.eml"))
    }

    /// Every message, oldest first. Lines that do not parse are skipped.
    pub fn list(&self) -> Result<Vec<StoredMessage>> {
        let text = match std::fs::read_to_string(self.index()) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", &self.index(), e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// How many messages `user` sent at or after `since` (Unix seconds).
    pub fn sent_since(&self, user: &str, since: u64) -> Result<usize> {
        Ok(self
            .list()?
            .iter()
            .filter(|m| m.received >= since && m.user.eq_ignore_ascii_case(user))
            .count())
    }

    /// Stores a message: its file first, then its index line.
    pub fn store(&self, env: Envelope, bytes: &[u8], now: u64) -> Result<StoredMessage> {
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.list()?.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let path = self.eml(id);
        write_atomic(&path, bytes).map_err(|e| io_err("write", &path, e))?;
        let head = HeadSummary::parse(bytes);
        let meta = StoredMessage {
            id,
            received: now,
            user: env.user,
            mechanism: env.mechanism,
            mail_from: env.mail_from,
            recipients: env.recipients,
            size: bytes.len() as u64,
            subject: head.subject,
            from: head.from,
            message_id: head.message_id,
        };
        let mut line = serde_json::to_string(&meta).expect("serialisable");
        line.push('\n');
        let index = self.index();
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&index)
            .map_err(|e| io_err("open", &index, e))?;
        f.write_all(line.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(|e| io_err("write", &index, e))?;
        Ok(meta)
    }

    /// The message as received.
    pub fn raw(&self, id: u64) -> Result<Vec<u8>> {
        let path = self.eml(id);
        std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::Usage,
                    format!("the sandbox mailbox has no message {id} (`postie sandbox messages` lists them)"),
                )
            } else {
                io_err("read", &path, e)
            }
        })
    }

    /// One message: its index entry, header fields and MIME parts.
    pub fn show(&self, id: u64) -> Result<MessageView> {
        let meta = self
            .list()?
            .into_iter()
            .find(|m| m.id == id)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Usage,
                    format!("the sandbox mailbox has no message {id} (`postie sandbox messages` lists them)"),
                )
            })?;
        let raw = self.raw(id)?;
        Ok(view(meta, &raw))
    }
}

/// Takes a message apart with mail-parser.
pub fn view(meta: StoredMessage, raw: &[u8]) -> MessageView {
    let Some(msg) = MessageParser::default().parse(raw) else {
        return MessageView {
            meta,
            headers: Vec::new(),
            parts: Vec::new(),
        };
    };
    let headers = msg
        .headers_raw()
        .map(|(n, v)| {
            let v: String = v
                .split(['\r', '\n'])
                .map(str::trim)
                .collect::<Vec<_>>()
                .join(" ");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let parts = msg
        .parts
        .iter()
        .filter(|p| !p.is_multipart())
        .map(|p| {
            let content_type = p
                .content_type()
                .map(|c| match c.subtype() {
                    Some(s) => format!("{}/{s}", c.ctype()),
                    None => c.ctype().to_string(),
                })
                .unwrap_or_else(|| "text/plain".into())
                .to_ascii_lowercase();
            let filename = p.attachment_name().map(str::to_string);
            let attachment = filename.is_some() || !p.is_text();
            let text = (!attachment)
                .then(|| p.text_contents())
                .flatten()
                .map(|t| t.chars().take(TEXT_SHOWN).collect());
            PartView {
                content_type,
                filename,
                size: p.len(),
                attachment,
                text,
            }
        })
        .collect();
    MessageView {
        meta,
        headers,
        parts,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_list_show() {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::open(dir.path()).unwrap();
        let msg = b"From: a@x.test\r\nTo: b@y.test\r\nSubject: hi\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n\
--b\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=r.pdf\r\n\
Content-Transfer-Encoding: base64\r\n\r\nJVBERg==\r\n--b--\r\n";
        let env = Envelope {
            user: "a@x.test".into(),
            mechanism: "PLAIN".into(),
            mail_from: Some("a@x.test".into()),
            recipients: vec!["b@y.test".into()],
        };
        let m = mb.store(env.clone(), msg, 1000).unwrap();
        assert_eq!((m.id, m.subject.as_deref()), (1, Some("hi")));
        assert_eq!(
            mb.store(env, b"Subject: 2\r\n\r\nx\r\n", 2000).unwrap().id,
            2
        );
        assert_eq!(mb.sent_since("A@x.test", 1500).unwrap(), 1);
        let v = mb.show(1).unwrap();
        assert!(v.headers.iter().any(|(n, v)| n == "Subject" && v == "hi"));
        assert_eq!(v.parts.len(), 2);
        assert_eq!(v.parts[0].text.as_deref().map(str::trim), Some("hello"));
        assert_eq!(v.parts[1].filename.as_deref(), Some("r.pdf"));
        assert_eq!((v.parts[1].size, v.parts[1].attachment), (4, true));
        assert_eq!(mb.raw(1).unwrap(), msg);
        assert_eq!(mb.show(9).unwrap_err().kind(), ErrorKind::Usage);
    }
}
