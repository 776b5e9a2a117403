//! Finding what a peer accepted (by a token unique to the test; tests run in parallel, so
//! nothing is ever counted) and looking inside it with an independent MIME parser.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Peer, Store, contains};

/// How long a peer may take to store a message after `postie` exits (Postfix delivers from its
/// queue asynchronously; the others store before they answer 250).
const WAIT: Duration = Duration::from_secs(10);
/// How long to watch for a message that must not arrive.
const GRACE_MAILDIR: Duration = Duration::from_secs(3);

/// What a peer stored for one test message.
pub struct Delivery {
    pub peer: Peer,
    /// The stored files: one per SMTP transaction for the spool peers, one per recipient for
    /// Postfix's Maildir.
    pub copies: Vec<(PathBuf, Vec<u8>)>,
    /// Envelope sender (spool .json; Postfix's Return-Path).
    pub mail_from: String,
    /// Envelope recipients, lower-cased (spool .json; Postfix's Delivered-To of each copy).
    pub rcpt_tos: BTreeSet<String>,
    /// The SASL login the peer recorded (spool peers only).
    pub auth_user: Option<String>,
    /// The SASL mechanism of that login (aiosmtpd peers only).
    pub auth_mechanism: Option<String>,
    /// Whether the session was encrypted: spool .json, or "ESMTPS"/"ESMTPSA" in Postfix's
    /// Received header.
    pub tls: bool,
}

/// Waits until `peer` has stored the message carrying `token` for at least `rcpts` recipients.
#[track_caller]
pub fn delivered(peer: Peer, token: &str, rcpts: usize) -> Delivery {
    let store = peer.store();
    let start = Instant::now();
    let mut seen = HashSet::new();
    let mut found: Vec<(PathBuf, Vec<u8>)> = Vec::new();
    loop {
        found.extend(scan(&store, token, &mut seen));
        let enough = match store {
            Store::Spool(_) => !found.is_empty(),
            Store::Maildir(_) => found.len() >= rcpts,
        };
        if enough || start.elapsed() > WAIT {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    if matches!(store, Store::Maildir(_)) && !found.is_empty() {
        // a copy for an unexpected extra recipient would come right behind the others
        sleep(Duration::from_millis(300));
        found.extend(scan(&store, token, &mut seen));
    }
    assert!(
        !found.is_empty(),
        "{peer:?} stored no message containing {token:?} within {WAIT:?} ({store:?})"
    );
    found.sort();
    match store {
        Store::Spool(_) => {
            let mut d = Delivery {
                peer,
                copies: Vec::new(),
                mail_from: String::new(),
                rcpt_tos: BTreeSet::new(),
                auth_user: None,
                auth_mechanism: None,
                tls: true,
            };
            for (eml, bytes) in found {
                let meta_path = eml.with_extension("json");
                let meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap())
                    .unwrap_or_else(|e| panic!("{}: {e}", meta_path.display()));
                d.mail_from = meta["mail_from"].as_str().unwrap_or_default().to_owned();
                d.rcpt_tos.extend(
                    meta["rcpt_tos"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|r| r.as_str().unwrap().to_lowercase()),
                );
                d.auth_user = meta["auth_user"].as_str().map(str::to_owned);
                d.auth_mechanism = meta["auth_mechanism"].as_str().map(str::to_owned);
                d.tls &= meta["tls"].as_bool() == Some(true);
                d.copies.push((eml, bytes));
            }
            d
        }
        Store::Maildir(_) => {
            let mut d = Delivery {
                peer,
                copies: Vec::new(),
                mail_from: String::new(),
                rcpt_tos: BTreeSet::new(),
                auth_user: None,
                auth_mechanism: None,
                tls: true,
            };
            for (path, bytes) in found {
                let return_path = header_values(&bytes, "Return-Path");
                d.mail_from = return_path
                    .first()
                    .map(|r| {
                        r.trim()
                            .trim_start_matches('<')
                            .trim_end_matches('>')
                            .to_owned()
                    })
                    .unwrap_or_default();
                d.rcpt_tos.extend(
                    header_values(&bytes, "Delivered-To")
                        .iter()
                        .map(|r| r.trim().to_lowercase()),
                );
                let received = header_values(&bytes, "Received");
                d.tls &= received
                    .iter()
                    .find(|r| r.contains("(Postfix)"))
                    .is_some_and(|r| r.contains("with ESMTPS") || r.contains("with UTF8SMTPS"));
                d.copies.push((path, bytes));
            }
            d
        }
    }
}

/// Asserts that `peer` stored nothing carrying `token`.
#[track_caller]
pub fn assert_not_delivered(peer: Peer, token: &str) {
    let store = peer.store();
    if matches!(store, Store::Maildir(_)) {
        sleep(GRACE_MAILDIR);
    }
    let found = scan(&store, token, &mut HashSet::new());
    let paths: Vec<_> = found.iter().map(|(p, _)| p.display().to_string()).collect();
    assert!(
        paths.is_empty(),
        "{peer:?} stored the message {token:?} nonetheless: {paths:?}"
    );
}

/// Files of `store` that contain `token`; `seen` remembers files already found not to.
fn scan(store: &Store, token: &str, seen: &mut HashSet<PathBuf>) -> Vec<(PathBuf, Vec<u8>)> {
    let (dir, ext) = match store {
        Store::Spool(d) => (d, Some("eml")),
        Store::Maildir(d) => (d, None),
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new(); // Postfix creates new/ with the first delivery
    };
    let mut hits = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if ext.is_some_and(|e| path.extension().is_none_or(|x| x != e)) || seen.contains(&path) {
            continue;
        }
        seen.insert(path.clone());
        // spool files and Maildir entries are renamed into place: never read half-written
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        if contains(&bytes, token.as_bytes()) {
            hits.push((path, bytes));
        }
    }
    hits
}

/// The unfolded values of header `name` (case-insensitive) in the header section of `msg`.
pub fn header_values(msg: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(msg);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let head = head.split("\n\n").next().unwrap_or("");
    let mut fields: Vec<String> = Vec::new();
    for line in head.lines() {
        let line = line.trim_end_matches('\r');
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        } else {
            fields.push(line.to_owned());
        }
    }
    fields
        .iter()
        .filter_map(|f| f.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim().to_owned())
        .collect()
}

impl Delivery {
    /// The bytes the client sent (Postfix's trace fields removed), of the first copy.
    pub fn client_bytes(&self) -> Vec<u8> {
        let bytes = &self.copies[0].1;
        if self.peer != Peer::Postfix {
            return bytes.clone();
        }
        strip_postfix_trace(bytes)
    }

    /// Parses the first copy with Python's `email` package.
    pub fn mime(&self) -> Mime {
        Mime::parse(&self.client_bytes())
    }

    /// The client's own bytes of every copy (to check none carries what it must not).
    pub fn all_client_bytes(&self) -> Vec<Vec<u8>> {
        self.copies
            .iter()
            .map(|(_, b)| {
                if self.peer == Peer::Postfix {
                    strip_postfix_trace(b)
                } else {
                    b.clone()
                }
            })
            .collect()
    }
}

/// Drops the fields Postfix adds in front of the client's message: Return-Path, X-Original-To,
/// Delivered-To and its own Received.
fn strip_postfix_trace(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    let mut skipping = false;
    let mut in_head = true;
    while !rest.is_empty() {
        let end = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        let line = &rest[..end];
        rest = &rest[end..];
        if in_head {
            if line == b"\n" || line == b"\r\n" {
                in_head = false;
            } else if line.starts_with(b" ") || line.starts_with(b"\t") {
                if skipping {
                    continue;
                }
            } else {
                let l = String::from_utf8_lossy(line).to_lowercase();
                skipping = l.starts_with("return-path:")
                    || l.starts_with("x-original-to:")
                    || l.starts_with("delivered-to:")
                    || (l.starts_with("received:") && is_postfix_received(line, rest));
                if skipping {
                    continue;
                }
            }
        }
        out.extend_from_slice(line);
    }
    out
}

/// Whether the Received field starting with `line` (continued in `rest`) is Postfix's own.
fn is_postfix_received(line: &[u8], rest: &[u8]) -> bool {
    let mut field = line.to_vec();
    for l in rest.split_inclusive(|&b| b == b'\n') {
        if !(l.starts_with(b" ") || l.starts_with(b"\t")) {
            break;
        }
        field.extend_from_slice(l);
    }
    contains(&field, b"by provider.test (Postfix)")
}

/// A message as Python's `email` package sees it (see mime.py).
pub struct Mime {
    pub json: Value,
    _dir: tempfile::TempDir,
}

impl Mime {
    #[track_caller]
    pub fn parse(bytes: &[u8]) -> Mime {
        let dir = tempfile::tempdir().unwrap();
        let eml = dir.path().join("message.eml");
        std::fs::write(&eml, bytes).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/mime.py");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&eml)
            .arg(dir.path())
            .output()
            .unwrap_or_else(|e| panic!("cannot run python3 {}: {e}", script.display()));
        assert!(
            out.status.success(),
            "mime.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = serde_json::from_slice(&out.stdout).unwrap();
        Mime { json, _dir: dir }
    }

    /// Decoded values of header `name` (case-insensitive).
    pub fn headers(&self, name: &str) -> Vec<String> {
        self.json["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|h| h[1].as_str().unwrap().to_owned())
            .collect()
    }

    #[track_caller]
    pub fn header(&self, name: &str) -> String {
        let v = self.headers(name);
        assert_eq!(
            v.len(),
            1,
            "expected exactly one {name} header: {:#}",
            self.json["headers"]
        );
        v.into_iter().next().unwrap()
    }

    pub fn content_type(&self) -> &str {
        self.json["content_type"].as_str().unwrap()
    }

    pub fn parts(&self) -> &Vec<Value> {
        self.json["parts"].as_array().unwrap()
    }

    /// Decoded texts of the leaf parts of type `content_type`.
    pub fn texts(&self, content_type: &str) -> Vec<String> {
        self.parts()
            .iter()
            .filter(|p| p["content_type"] == content_type)
            .map(|p| p["text"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    /// The decoded content of the part named `filename`.
    #[track_caller]
    pub fn attachment(&self, filename: &str) -> Vec<u8> {
        let part = self
            .parts()
            .iter()
            .find(|p| p["filename"] == filename)
            .unwrap_or_else(|| {
                let names: Vec<_> = self.parts().iter().map(|p| &p["filename"]).collect();
                panic!("no part named {filename:?}; parts are named {names:?}")
            });
        std::fs::read(part["path"].as_str().unwrap()).unwrap()
    }
}
