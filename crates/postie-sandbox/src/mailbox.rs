//! The sandbox's mailbox: every accepted message as one `.eml` file, and one
//! JSON line per message in `index.jsonl` (who sent it, to whom, when),
//! written after the file. `postie sandbox messages` reads the same files
//! without a running sandbox.
//!
//! A stored message is never overwritten: its file is created only if no
//! file of that number exists (another sandbox on the same directory, or a
//! file left without its index line), else the next number is taken.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use mail_parser::{MessageParser, MimeHeaders};
use serde::{Deserialize, Serialize};

use postie::error::{Error, ErrorKind, Result};
use postie::message::HeadSummary;
use postie::wording::{Action, say};

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

    /// The mailbox's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
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
        let first = self.list()?.iter().map(|m| m.id).max().unwrap_or(0) + 1;
        let id = self.write_new_eml(first, bytes)?;
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
        let line = serde_json::to_string(&meta).expect("serialisable");
        self.append_index(&line)?;
        Ok(meta)
    }

    /// Writes `bytes` to the first `N.eml`, from `id` on, that does not exist
    /// yet; returns N.
    fn write_new_eml(&self, mut id: u64, bytes: &[u8]) -> Result<u64> {
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        loop {
            let path = self.eml(id);
            match opts.open(&path) {
                Ok(mut f) => {
                    return match f.write_all(bytes).and_then(|()| f.sync_all()) {
                        Ok(()) => Ok(id),
                        Err(e) => {
                            drop(f);
                            let _ = std::fs::remove_file(&path);
                            Err(io_err("write", &path, e))
                        }
                    };
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => id += 1,
                Err(e) => return Err(io_err("create", &path, e)),
            }
        }
    }

    /// Appends one line to the index, after a line break if the last line
    /// was left unfinished (so that the new line is not glued to it).
    fn append_index(&self, line: &str) -> Result<()> {
        let index = self.index();
        let fail = |e| io_err("write", &index, e);
        let mut f = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&index)
            .map_err(|e| io_err("open", &index, e))?;
        let mut out = String::with_capacity(line.len() + 2);
        if !ends_with_newline(&mut f).map_err(fail)? {
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
        // One write: appends from other writers land before or after it.
        f.write_all(out.as_bytes())
            .and_then(|()| f.sync_data())
            .map_err(fail)
    }

    /// The message as received.
    pub fn raw(&self, id: u64) -> Result<Vec<u8>> {
        let path = self.eml(id);
        std::fs::read(&path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::Usage,
                    format!(
                        "the sandbox mailbox has no message {id} ({} lists them)",
                        say(&Action::ListSandboxMessages)
                    ),
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
                    format!(
                        "the sandbox mailbox has no message {id} ({} lists them)",
                        say(&Action::ListSandboxMessages)
                    ),
                )
            })?;
        let raw = self.raw(id)?;
        Ok(view(meta, &raw))
    }
}

/// True when `f` is empty or its last byte is a line feed.
fn ends_with_newline(f: &mut File) -> std::io::Result<bool> {
    if f.metadata()?.len() == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::End(-1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
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

    fn env(user: &str) -> Envelope {
        Envelope {
            user: user.into(),
            mechanism: "PLAIN".into(),
            mail_from: Some(user.into()),
            recipients: vec!["b@y.test".into()],
        }
    }

    fn body(n: usize) -> Vec<u8> {
        format!("Subject: m{n}\r\n\r\n{}\r\n", "x".repeat(1000 + n)).into_bytes()
    }

    /// Every message got its own number, its file holds its bytes, and the
    /// index lists each once.
    #[track_caller]
    fn all_intact(mb: &Mailbox, stored: &[(usize, u64)]) {
        let mut ids: Vec<u64> = stored.iter().map(|(_, id)| *id).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), stored.len(), "{stored:?}");
        for (n, id) in stored {
            assert_eq!(mb.raw(*id).unwrap(), body(*n), "message {id}");
        }
        let list = mb.list().unwrap();
        assert_eq!(list.len(), stored.len(), "{list:#?}");
        for (n, id) in stored {
            let m = list.iter().find(|m| m.id == *id).unwrap();
            assert_eq!(m.subject.as_deref(), Some(format!("m{n}").as_str()));
        }
    }

    #[test]
    fn concurrent_stores_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::open(dir.path()).unwrap();
        let stored: Vec<(usize, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|n| {
                    let mb = &mb;
                    s.spawn(move || (n, mb.store(env("a@x.test"), &body(n), 1).unwrap().id))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        all_intact(&mb, &stored);
    }

    #[test]
    fn two_mailboxes_on_one_directory_never_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = Mailbox::open(dir.path()).unwrap();
        let b = Mailbox::open(dir.path()).unwrap();
        let stored: Vec<(usize, u64)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|n| {
                    let mb = if n % 2 == 0 { &a } else { &b };
                    s.spawn(move || (n, mb.store(env("a@x.test"), &body(n), 1).unwrap().id))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        all_intact(&a, &stored);
        assert_eq!(b.list().unwrap().len(), 16);
    }

    #[test]
    fn a_file_without_index_line_and_an_unfinished_line_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mb = Mailbox::open(dir.path()).unwrap();
        let first = mb.store(env("a@x.test"), &body(0), 1).unwrap();
        // A crash left message 2's file without its index line, and half a
        // line at the end of the index.
        std::fs::write(dir.path().join("2.eml"), b"orphan").unwrap();
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.path().join("index.jsonl"))
            .unwrap();
        f.write_all(b"{\"id\":2,\"rece").unwrap();
        let next = mb.store(env("a@x.test"), &body(1), 2).unwrap();
        assert_eq!((first.id, next.id), (1, 3));
        assert_eq!(std::fs::read(dir.path().join("2.eml")).unwrap(), b"orphan");
        let ids: Vec<u64> = mb.list().unwrap().iter().map(|m| m.id).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(mb.raw(3).unwrap(), body(1));
    }
}
