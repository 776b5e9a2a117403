//! Plumbing shared by the peer tests: the peers' env file, an isolated environment per test for
//! the `postie` binary, unique tokens and test data.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use assert_cmd::Command;
use serde_json::Value;

/// Envelope sender and recipients used throughout (every peer delivers example.test).
pub const FROM: &str = "alice@example.test";
pub const TO: &str = "bob@example.test";
pub const CC: &str = "carol@example.test";
pub const BCC: &str = "hidden@example.test";
/// The environment variable the tests hand passwords through (`--password-env`).
pub const PW_VAR: &str = "POSTIE_TEST_PASSWORD";

/// sysexits.h codes the CLI promises.
pub mod exit {
    pub const NOUSER: i32 = 67;
    pub const DATAERR: i32 = 65;
    pub const PROTOCOL: i32 = 76;
    pub const NOPERM: i32 = 77;
}

/// The `KEY=value` file written by `ci/mail-peers.sh start`.
pub struct PeerEnv {
    file: PathBuf,
    vars: HashMap<String, String>,
}

/// The running peers' settings; fails the test (never skips it) when the peers are not running.
pub fn peers() -> &'static PeerEnv {
    static ENV: OnceLock<PeerEnv> = OnceLock::new();
    ENV.get_or_init(PeerEnv::load)
}

impl PeerEnv {
    fn load() -> Self {
        let dir = std::env::var_os("MAIL_PEERS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                std::env::var_os("TMPDIR")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| PathBuf::from("/tmp"))
                    .join("mail-peers")
            });
        let file = dir.join("env");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| {
            panic!(
                "cannot read the mail peers' env file {}: {e}\n\
                 These tests talk to real SMTP servers on 127.0.0.1. Run them with `ci/test.sh`, \
                 which installs and starts the peers (or start them with `ci/mail-peers.sh start` \
                 and export MAIL_PEERS_DIR).",
                file.display()
            )
        });
        let vars = text
            .split_whitespace()
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Self { file, vars }
    }

    pub fn get(&self, key: &str) -> &str {
        self.vars.get(key).map(String::as_str).unwrap_or_else(|| {
            panic!(
                "{key} is missing from {}: the peers running there were started by another \
                 version of ci/mail-peers.sh (or without Postfix); restart them with `ci/test.sh`",
                self.file.display()
            )
        })
    }

    pub fn port(&self, key: &str) -> u16 {
        let v = self.get(key);
        v.parse()
            .unwrap_or_else(|_| panic!("{key}={v} in {} is not a port", self.file.display()))
    }

    /// The peers' run-time directory (`tokens.txt`: every access token the test OAuth server
    /// issued, one per line).
    pub fn dir(&self) -> &Path {
        self.file
            .parent()
            .expect("the env file is in the peers' directory")
    }

    pub fn ca(&self) -> &str {
        self.get("MAIL_PEERS_CA")
    }
}

/// Which listener of a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tls {
    /// `smtp://`: plain connect, then STARTTLS before AUTH.
    StartTls,
    /// `smtps://`: TLS from the first byte.
    Implicit,
}

/// The independent SMTP servers started by `ci/mail-peers.sh`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// Python aiosmtpd (`ci/peers/provider_smtpd.py`); no PIPELINING.
    Aiosmtpd,
    /// Nodemailer's smtp-server (`ci/peers/provider.js`); PIPELINING, ENHANCEDSTATUSCODES.
    SmtpServer,
    /// Postfix + Cyrus SASL, delivering to a Maildir; PIPELINING, CHUNKING, SIZE.
    Postfix,
    /// aiosmtpd replaying smtp.gmail.com's dialogue and auth failures.
    GmailLike,
    /// aiosmtpd with injectable faults (421/451/dropped connections, down) from its control file.
    Flaky,
    /// aiosmtpd with an expired certificate.
    TlsExpired,
    /// aiosmtpd with a certificate for `TLS_OTHERNAME` only.
    TlsOtherName,
    /// aiosmtpd with a certificate that expires 7 days after the peers started (implicit TLS
    /// only).
    TlsExpiring,
}

impl Peer {
    fn prefix(self) -> &'static str {
        match self {
            Peer::Aiosmtpd => "AIOSMTPD",
            Peer::SmtpServer => "SMTPSERVER",
            Peer::Postfix => "POSTFIX",
            Peer::GmailLike => "GMAILLIKE",
            Peer::Flaky => "FLAKY",
            Peer::TlsExpired => "TLS_EXPIRED",
            Peer::TlsOtherName => "TLS_OTHERNAME",
            Peer::TlsExpiring => "TLS_EXPIRING",
        }
    }

    pub fn port(self, tls: Tls) -> u16 {
        let key = match (self, tls) {
            (Peer::Postfix, Tls::StartTls) => "POSTFIX_SUBMIT".to_owned(),
            (_, Tls::StartTls) => format!("{}_STARTTLS", self.prefix()),
            (_, Tls::Implicit) => format!("{}_SMTPS", self.prefix()),
        };
        peers().port(&key)
    }

    /// The `--server` URL of one of its listeners.
    pub fn url(self, tls: Tls) -> String {
        let scheme = match tls {
            Tls::StartTls => "smtp",
            Tls::Implicit => "smtps",
        };
        format!("{scheme}://127.0.0.1:{}", self.port(tls))
    }

    pub fn user(self) -> &'static str {
        match self {
            Peer::TlsExpired | Peer::TlsOtherName | Peer::TlsExpiring => {
                peers().get("TLS_PEERS_USER")
            }
            _ => peers().get(&format!("{}_USER", self.prefix())),
        }
    }

    /// The password that works (for the Gmail-like peer: the app password).
    pub fn password(self) -> &'static str {
        match self {
            Peer::GmailLike => peers().get("GMAILLIKE_APP_PASSWORD"),
            Peer::TlsExpired | Peer::TlsOtherName | Peer::TlsExpiring => {
                peers().get("TLS_PEERS_PASSWORD")
            }
            _ => peers().get(&format!("{}_PASSWORD", self.prefix())),
        }
    }

    /// Where the peer puts what it accepted.
    pub fn store(self) -> Store {
        match self {
            Peer::Postfix => Store::Maildir(peers().get("POSTFIX_MAILDIR").into()),
            _ => Store::Spool(peers().get(&format!("{}_SPOOL", self.prefix())).into()),
        }
    }
}

/// A peer's storage of accepted messages.
#[derive(Clone, Debug)]
pub enum Store {
    /// `NNNN.eml` + `NNNN.json` ({mail_from, rcpt_tos, auth_user, tls}); the .json lands first.
    Spool(PathBuf),
    /// Postfix's Maildir `new/`: one file per recipient, with Return-Path and Delivered-To.
    Maildir(PathBuf),
}

/// A token unique to one test run, to find its message among everything the peers received.
pub fn token(label: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("{label}-{}-{nanos:x}-{n}", std::process::id())
}

/// Deterministic pseudo-random bytes (xorshift64*), so a failure can be reproduced.
pub fn random_bytes(len: usize, seed: &str) -> Vec<u8> {
    let mut x = seed.bytes().fold(0x9E37_79B9_7F4A_7C15_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3)
    }) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Whether `needle` occurs in `hay`.
pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    let first = needle[0];
    let mut i = 0;
    while let Some(p) = hay[i..].iter().position(|&b| b == first) {
        let at = i + p;
        if hay.len() - at < needle.len() {
            return false;
        }
        if &hay[at..at + needle.len()] == needle {
            return true;
        }
        i = at + 1;
    }
    false
}

/// One test's private HOME, XDG directories and secret store.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("postie-test-")
            .tempdir()
            .unwrap();
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_home(&self) -> PathBuf {
        self.path().join("config")
    }

    /// `postie` with the isolated environment; nothing of the caller's POSTIE_* leaks in.
    pub fn postie(&self) -> Postie {
        let mut cmd = Command::from(self.std_postie());
        cmd.timeout(Duration::from_secs(90));
        Postie {
            cmd,
            line: vec!["postie".into()],
        }
    }

    /// The same isolated `postie`, run by the command `wrap` makes of it (e.g. inside a
    /// network namespace): arguments and environment added later go to `postie`.
    pub fn postie_via(
        &self,
        wrap: impl FnOnce(&std::process::Command) -> std::process::Command,
    ) -> Postie {
        let mut cmd = Command::from(wrap(&self.std_postie()));
        cmd.timeout(Duration::from_secs(90));
        Postie {
            cmd,
            line: vec!["postie".into()],
        }
    }

    /// The same isolated `postie` as a plain process, for runs that must be
    /// talked to while they run (`postie login`).
    pub fn std_postie(&self) -> std::process::Command {
        let bin = std::env::var_os("POSTIE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|| assert_cmd::cargo::cargo_bin("postie"));
        let mut cmd = std::process::Command::new(bin);
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("POSTIE_") {
                cmd.env_remove(&k);
            }
        }
        let d = self.path();
        cmd.env("HOME", d.join("home"))
            .env("XDG_CONFIG_HOME", d.join("config"))
            .env("XDG_DATA_HOME", d.join("data"))
            .env("XDG_STATE_HOME", d.join("state"))
            .env("XDG_CACHE_HOME", d.join("cache"))
            .env("POSTIE_SECRET_STORE", "file")
            .env("POSTIE_PASSPHRASE", "test-passphrase")
            .env("NO_COLOR", "1")
            .env_remove("SSL_CERT_FILE")
            .env_remove("SSL_CERT_DIR")
            .env_remove("RUST_LOG")
            .env_remove("BROWSER")
            .current_dir(d);
        cmd
    }

    /// `postie send` to `peer` with its working credentials, from [`FROM`]; message and
    /// recipients are up to the caller (see [`Postie::message`]).
    pub fn send(&self, peer: Peer, tls: Tls) -> Postie {
        self.send_to(&peer.url(tls), peer)
            .opt("--ca-file", peers().ca())
    }

    /// Like [`Sandbox::send`] for another listener `url` of `peer`, and without `--ca-file`.
    pub fn send_to(&self, url: &str, peer: Peer) -> Postie {
        self.postie()
            .arg("send")
            .opt("--server", url)
            .opt("--user", peer.user())
            .opt("--password-env", PW_VAR)
            .env(PW_VAR, peer.password())
            .opt("--from", FROM)
    }

    /// Writes `bytes` to a file in the sandbox and returns its path.
    pub fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let dir = self.path().join("files");
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// A `postie` invocation being built.
pub struct Postie {
    cmd: Command,
    line: Vec<String>,
}

impl Postie {
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Self {
        self.line.push(a.as_ref().to_string_lossy().into_owned());
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        for a in args {
            self = self.arg(a);
        }
        self
    }

    /// An option and its value.
    pub fn opt(self, name: &str, value: impl AsRef<OsStr>) -> Self {
        self.arg(name).arg(value)
    }

    /// `--subject TOKEN --text "...TOKEN..."`: a message the peers' stores can be searched for.
    pub fn message(self, token: &str) -> Self {
        self.opt("--subject", token)
            .opt("--text", format!("Test message.\n{token}\n"))
    }

    /// Whitespace-separated words: flags, and values without spaces.
    pub fn words(self, s: &str) -> Self {
        self.args(s.split_whitespace())
    }

    pub fn env(mut self, k: &str, v: impl AsRef<OsStr>) -> Self {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: &str) -> Self {
        self.cmd.env_remove(k);
        self
    }

    pub fn stdin(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.cmd.write_stdin(bytes);
        self
    }

    pub fn run(mut self) -> Run {
        let out = self
            .cmd
            .output()
            .unwrap_or_else(|e| panic!("running `{}` failed: {e}", self.line.join(" ")));
        Run {
            line: self.line.join(" "),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// What one `postie` run did.
pub struct Run {
    line: String,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(self.code, Some(0), "expected success\n{self}");
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "expected exit code {code}\n{self}");
        self
    }

    #[track_caller]
    pub fn failure(&self) -> &Self {
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected a failure exit code\n{self}"
        );
        self
    }

    /// The single JSON object `--json` prints on stdout.
    #[track_caller]
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{self}"))
    }

    /// stdout and stderr together, lower-cased: for "the explanation mentions X" checks.
    pub fn text_lower(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr).to_lowercase()
    }

    #[track_caller]
    pub fn stderr_mentions(&self, words: &[&str]) -> &Self {
        let err = self.stderr.to_lowercase();
        for w in words {
            assert!(
                err.contains(&w.to_lowercase()),
                "stderr does not mention {w:?}\n{self}"
            );
        }
        self
    }
}

impl fmt::Display for Run {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn clip(s: &str) -> &str {
            let mut end = s.len().min(6000);
            while !s.is_char_boundary(end) {
                end -= 1;
            }
            &s[..end]
        }
        writeln!(f, "$ {}", self.line)?;
        writeln!(f, "exit: {:?}", self.code)?;
        writeln!(f, "--- stdout ---\n{}", clip(&self.stdout))?;
        write!(f, "--- stderr ---\n{}", clip(&self.stderr))
    }
}

/// Decodes every base64-looking run in `text` (at each of the 4 alignments) so a secret can be
/// looked for in whatever encoding a transcript might carry.
pub fn base64_decodings(text: &str) -> Vec<Vec<u8>> {
    fn val(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' | b'-' => Some(62),
            b'/' | b'_' => Some(63),
            _ => None,
        }
    }
    let mut out = Vec::new();
    for run in text
        .as_bytes()
        .split(|&c| val(c).is_none())
        .filter(|r| r.len() >= 4)
    {
        for shift in 0..run.len().min(4) {
            let mut bytes = Vec::new();
            for q in run[shift..].chunks_exact(4) {
                let n = q
                    .iter()
                    .fold(0u32, |n, &c| (n << 6) | u32::from(val(c).unwrap()));
                bytes.extend_from_slice(&n.to_be_bytes()[1..]);
            }
            out.push(bytes);
        }
    }
    out
}

/// Standard base64 (with padding), for building the strings a leak would contain.
pub fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for c in data.chunks(3) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= c.len() {
                s.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Every file under `dir`, at any depth.
pub fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
