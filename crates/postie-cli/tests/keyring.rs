//! The system keyring for real: each test starts its own D-Bus session bus and GNOME Keyring's
//! Secret Service (unlocked with a known password, HOME and XDG directories in a temporary
//! directory), runs the `postie` binary against them, and checks the result with `secret-tool`,
//! libsecret's independent client. Without a bus, `auto` must fall back to the encrypted file and
//! `keyring` must fail with an explanation.
//!
//! Needs dbus-daemon, dbus-send, gnome-keyring-daemon and secret-tool (Debian: dbus,
//! gnome-keyring, libsecret-tools); `ci/test.sh` installs them.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command as StdCommand, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use assert_cmd::Command;

const KEYRING_PASSWORD: &str = "login-keyring-pw";
const EX_CONFIG: i32 = 78;
const EX_UNAVAILABLE: i32 = 69;

/// Fails (never skips) when a program the test needs is missing.
fn require(program: &str) {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(program).is_file()))
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed: run ci/test.sh, which installs the test packages \
         (dbus, gnome-keyring, libsecret-tools) with ci/mail-peers.sh install"
    );
}

/// A private HOME and XDG directories; a bus and a keyring daemon when started.
struct Session {
    dir: tempfile::TempDir,
    bus_address: Option<String>,
    daemons: Vec<Child>,
}

impl Session {
    /// Directories only: no bus.
    fn without_bus() -> Session {
        let dir = tempfile::Builder::new()
            .prefix("postie-kr-")
            .tempdir()
            .unwrap();
        for d in ["home", "config", "data", "cache", "run"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let run = dir.path().join("run");
            std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o700)).unwrap();
        }
        Session {
            dir,
            bus_address: None,
            daemons: Vec::new(),
        }
    }

    /// A session bus with an unlocked GNOME Keyring on it.
    fn with_keyring() -> Session {
        for p in [
            "dbus-daemon",
            "dbus-send",
            "gnome-keyring-daemon",
            "secret-tool",
        ] {
            require(p);
        }
        let mut s = Session::without_bus();
        // A bus of our own with no service directories: nothing is activated behind the test's
        // back (a second keyring daemon, a GUI prompter).
        let conf = s.path().join("bus.conf");
        std::fs::write(
            &conf,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                s.path().join("bus").display()
            ),
        )
        .unwrap();
        let mut bus = s
            .env(StdCommand::new("dbus-daemon"))
            .arg(format!("--config-file={}", conf.display()))
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let mut line = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        s.daemons.push(bus);
        let address = line.trim().to_string();
        assert!(
            address.starts_with("unix:"),
            "dbus-daemon gave no address: {line:?}"
        );
        s.bus_address = Some(address);

        let log = std::fs::File::create(s.path().join("gnome-keyring.log")).unwrap();
        let mut keyring = s
            .env(StdCommand::new("gnome-keyring-daemon"))
            .args(["--foreground", "--unlock", "--components=secrets"])
            .stdin(Stdio::piped())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start gnome-keyring-daemon");
        // --unlock reads the login keyring's password from stdin, up to EOF
        let mut stdin = keyring.stdin.take().unwrap();
        stdin.write_all(KEYRING_PASSWORD.as_bytes()).unwrap();
        drop(stdin);
        s.daemons.push(keyring);
        s.wait_for_secret_service();
        s
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    /// The session's environment on `cmd`: private HOME / XDG, this bus or none.
    fn env<C: EnvSet>(&self, mut cmd: C) -> C {
        let d = self.path();
        cmd.set("HOME", d.join("home"));
        cmd.set("XDG_CONFIG_HOME", d.join("config"));
        cmd.set("XDG_DATA_HOME", d.join("data"));
        cmd.set("XDG_CACHE_HOME", d.join("cache"));
        cmd.set("XDG_RUNTIME_DIR", d.join("run"));
        match &self.bus_address {
            Some(a) => cmd.set("DBUS_SESSION_BUS_ADDRESS", a),
            None => cmd.unset("DBUS_SESSION_BUS_ADDRESS"),
        }
        cmd
    }

    /// `postie` in this session with `POSTIE_SECRET_STORE=auto` and no passphrase.
    fn postie(&self, args: &str) -> Command {
        let mut cmd = Command::cargo_bin("postie").unwrap();
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("POSTIE_") {
                cmd.env_remove(&k);
            }
        }
        let mut cmd = self.env(cmd);
        cmd.args(args.split_whitespace())
            .env("POSTIE_SECRET_STORE", "auto")
            .env("NO_COLOR", "1")
            .env_remove("RUST_LOG")
            .current_dir(self.path())
            .timeout(Duration::from_secs(60));
        cmd
    }

    fn secret_tool(&self, args: &[&str]) -> Output {
        self.env(StdCommand::new("secret-tool"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run secret-tool")
    }

    /// What libsecret finds under postie's service for `user`, if anything.
    fn lookup(&self, user: &str) -> Option<String> {
        let out = self.secret_tool(&["lookup", "service", "postie", "username", user]);
        let found = String::from_utf8_lossy(&out.stdout)
            .trim_end_matches('\n')
            .to_string();
        (out.status.success() && !found.is_empty()).then_some(found)
    }

    /// Until GNOME Keyring owns org.freedesktop.secrets (it takes the name once unlocked).
    fn wait_for_secret_service(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = self
                .env(StdCommand::new("dbus-send"))
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    "string:org.freedesktop.secrets",
                ])
                .output()
                .expect("run dbus-send");
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                return;
            }
            if let Some(status) = self.daemons[1].try_wait().unwrap() {
                panic!(
                    "gnome-keyring-daemon exited ({status}):\n{}",
                    std::fs::read_to_string(self.path().join("gnome-keyring.log"))
                        .unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the Secret Service did not appear on the bus"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every `secrets.enc` under the data directory.
    fn secret_files(&self) -> Vec<PathBuf> {
        fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
            for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let p = e.path();
                if p.is_dir() {
                    walk(&p, out);
                } else if p.file_name().is_some_and(|n| n == "secrets.enc") {
                    out.push(p);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.data_dir(), &mut out);
        out
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // the keyring daemon first, then its bus
        for d in self.daemons.iter_mut().rev() {
            let _ = d.kill();
            let _ = d.wait();
        }
    }
}

/// Setting environment variables on std's and assert_cmd's `Command` alike.
trait EnvSet {
    fn set(&mut self, k: &str, v: impl AsRef<std::ffi::OsStr>);
    fn unset(&mut self, k: &str);
}

impl EnvSet for StdCommand {
    fn set(&mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) {
        self.env(k, v);
    }
    fn unset(&mut self, k: &str) {
        self.env_remove(k);
    }
}

impl EnvSet for Command {
    fn set(&mut self, k: &str, v: impl AsRef<std::ffi::OsStr>) {
        self.env(k, v);
    }
    fn unset(&mut self, k: &str) {
        self.env_remove(k);
    }
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

fn run(mut cmd: Command) -> Ran {
    let out = cmd.output().expect("run postie");
    Ran {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// `account add NAME` for a loopback server at `port`, the password on stdin.
fn account_add(s: &Session, name: &str, port: u16, password: &str) -> Command {
    let mut cmd = s.postie(&format!(
        "account add {name} --provider generic --host 127.0.0.1 --port {port} --plaintext \
         --email a@example.test --password-stdin"
    ));
    cmd.write_stdin(format!("{password}\n"));
    cmd
}

/// A one-connection SMTP server on 127.0.0.1 that reports the password given with AUTH PLAIN.
fn smtp_catching_password() -> (u16, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30))).ok();
        serve(conn, tx);
    });
    (port, rx)
}

fn serve(conn: TcpStream, tx: mpsc::Sender<String>) {
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    let mut say = |s: &str| w.write_all(s.as_bytes());
    if say("220 test.invalid ESMTP\r\n").is_err() {
        return;
    }
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let upper = line.to_ascii_uppercase();
        let reply = if upper.starts_with("EHLO") {
            "250-test.invalid\r\n250 AUTH PLAIN\r\n".to_string()
        } else if upper.starts_with("AUTH PLAIN") {
            let mut b64 = line[10..].trim().to_string();
            if b64.is_empty() {
                let _ = say("334 \r\n");
                let mut more = String::new();
                r.read_line(&mut more).unwrap_or(0);
                b64 = more.trim().to_string();
            }
            let plain = base64_decode(&b64);
            let pw = plain.rsplit(|b| *b == 0).next().unwrap_or_default();
            let _ = tx.send(String::from_utf8_lossy(pw).into_owned());
            "235 2.7.0 accepted\r\n".into()
        } else if upper.starts_with("DATA") {
            let _ = say("354 go on\r\n");
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    return;
                }
                if line == ".\r\n" {
                    break;
                }
            }
            "250 2.0.0 queued\r\n".into()
        } else if upper.starts_with("QUIT") {
            let _ = say("221 2.0.0 bye\r\n");
            return;
        } else {
            "250 2.0.0 ok\r\n".into()
        };
        if say(&reply).is_err() {
            return;
        }
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {s:?}"),
    };
    let digits: Vec<u8> = s.bytes().filter(|&c| c != b'=').map(val).collect();
    let mut out = Vec::new();
    for chunk in digits.chunks(4) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &d)| n | (u32::from(d) << (18 - 6 * i)));
        out.extend_from_slice(&n.to_be_bytes()[1..chunk.len()]);
    }
    out
}

fn send(s: &Session) -> Command {
    s.postie("send --to b@example.test --subject keyring --text hello")
}

#[test]
fn account_add_stores_the_password_in_the_secret_service() {
    let s = Session::with_keyring();
    let password = "Kr4ken-keyring-Zq81";
    let (port, got) = smtp_catching_password();

    let add = run(account_add(&s, "x", port, password));
    assert_eq!(add.code, Some(0), "{add}");
    assert!(
        add.stderr
            .contains("stored in the system keyring (Secret Service)"),
        "{add}"
    );
    assert!(
        !add.stderr.contains("assphrase"),
        "asked for a passphrase\n{add}"
    );
    assert!(s.secret_files().is_empty(), "an encrypted file was written");
    // libsecret, an independent client, finds it under service=postie username=x
    assert_eq!(s.lookup("x").as_deref(), Some(password));
    let config = std::fs::read_to_string(s.path().join("config/postie/config.toml")).unwrap();
    assert!(!config.contains(password), "the password is in the config");

    // a second process reads it back from inside its tokio runtime (`send`) and logs in with it
    let sent = run(send(&s));
    assert_eq!(sent.code, Some(0), "{sent}");
    assert!(!sent.stderr.contains("assphrase"), "{sent}");
    assert!(
        !format!("{}{}", sent.stdout, sent.stderr).contains(password),
        "{sent}"
    );
    assert_eq!(got.recv_timeout(Duration::from_secs(5)).unwrap(), password);

    let rm = run(s.postie("account remove x"));
    assert_eq!(rm.code, Some(0), "{rm}");
    assert_eq!(s.lookup("x"), None, "the password is still in the keyring");
}

#[test]
fn the_keyring_is_read_from_inside_the_runtime_even_when_the_server_is_down() {
    // the password is resolved before connecting: exit 69 (server unavailable), not a panic (70)
    // nor "no password is stored" (78)
    let s = Session::with_keyring();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let add = run(account_add(&s, "down", port, "pw-for-down-9"));
    assert_eq!(add.code, Some(0), "{add}");
    assert_eq!(s.lookup("down").as_deref(), Some("pw-for-down-9"));
    let sent = run(send(&s));
    assert_eq!(sent.code, Some(EX_UNAVAILABLE), "{sent}");
    // The read is real, and comes first: with the entry taken out of the keyring (by libsecret),
    // the same send stops at the missing password (78) without trying the server.
    let cleared = s.secret_tool(&["clear", "service", "postie", "username", "down"]);
    assert!(cleared.status.success(), "{cleared:?}");
    assert_eq!(s.lookup("down"), None);
    let sent = run(send(&s));
    assert_eq!(sent.code, Some(78), "{sent}");
}

#[test]
fn a_password_stored_in_the_file_before_the_keyring_is_still_found() {
    let password = "Old-file-pw-4Ht2";
    let (port, got) = smtp_catching_password();
    let s = Session::with_keyring();
    // stored while there was no keyring: into the encrypted file
    let mut early = account_add(&s, "old", port, password);
    early
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env("POSTIE_PASSPHRASE", "file-passphrase");
    let early = run(early);
    assert_eq!(early.code, Some(0), "{early}");
    assert_eq!(s.secret_files().len(), 1, "{early}");
    assert_eq!(s.lookup("old"), None);
    // now the keyring is there: the file is still read (with its passphrase)
    let mut later = send(&s);
    later.env("POSTIE_PASSPHRASE", "file-passphrase");
    let later = run(later);
    assert_eq!(later.code, Some(0), "{later}");
    assert_eq!(got.recv_timeout(Duration::from_secs(5)).unwrap(), password);
}

#[test]
fn auto_without_a_bus_uses_the_encrypted_file() {
    for address in [None, Some("unix:path=/nonexistent/postie-test/bus")] {
        let s = Session::without_bus();
        let mut add = account_add(&s, "f", 2525, "File-only-pw-77");
        add.env("POSTIE_PASSPHRASE", "file-passphrase");
        if let Some(a) = address {
            add.env("DBUS_SESSION_BUS_ADDRESS", a);
        }
        let add = run(add);
        assert_eq!(add.code, Some(0), "{add}");
        assert!(add.stderr.contains("stored in the encrypted file"), "{add}");
        let files = s.secret_files();
        assert_eq!(files.len(), 1, "{add}");
        let raw = std::fs::read(&files[0]).unwrap();
        assert!(
            !raw.windows(7).any(|w| w == b"File-on"),
            "secret visible on disk"
        );
    }
}

#[test]
fn forced_keyring_without_a_bus_fails_and_says_what_to_do() {
    let s = Session::without_bus();
    let mut add = account_add(&s, "k", 2525, "Never-stored-pw-31");
    add.env("POSTIE_SECRET_STORE", "keyring")
        .env("POSTIE_PASSPHRASE", "file-passphrase");
    let add = run(add);
    assert_eq!(add.code, Some(EX_CONFIG), "{add}");
    assert!(add.stderr.contains("POSTIE_SECRET_STORE=file"), "{add}");
    assert!(add.stderr.contains("D-Bus"), "{add}");
    assert!(!add.stderr.contains("Never-stored"), "{add}");
    assert!(s.secret_files().is_empty());
    assert!(
        !s.path().join("config/postie/config.toml").exists(),
        "the account was written although its password was not stored"
    );
}
