//! A running `postie relay` for tests, and accounts for it to deliver through.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::*;

/// Env var holding the upstream password of accounts made by [`add_password_account`].
pub const UPSTREAM_PW_VAR: &str = "POSTIE_TEST_UPSTREAM_PW";

/// A free loopback port (bound and released; the relay binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Adds account `name` (address `email`) sending through `peer`'s STARTTLS port with its
/// password from [`UPSTREAM_PW_VAR`].
pub fn add_password_account(sb: &Sandbox, name: &str, email: &str, peer: Peer) {
    sb.postie()
        .args(["account", "add", name, "--provider", "generic"])
        .opt("--host", "127.0.0.1")
        .opt("--port", peer.port(Tls::StartTls).to_string())
        .opt("--tls", "starttls")
        .opt("--email", email)
        .opt("--user", peer.user())
        .opt("--password-env", UPSTREAM_PW_VAR)
        .opt("--ca-file", peers().ca())
        .run()
        .success();
}

/// A sandbox with account `ali` (address `from`) sending through `peer`, `extra_toml` appended
/// to its config, and a relay for it on a free port.
pub fn relay_for(peer: Peer, from: &str, extra_toml: &str) -> (Sandbox, RelayProc) {
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", from, peer);
    if !extra_toml.is_empty() {
        append_config(&sb, extra_toml);
    }
    let relay = RelayProc::start(&sb, free_port(), peer.password());
    (sb, relay)
}

/// Appends TOML to the sandbox's config file (e.g. `[relay]` settings).
pub fn append_config(sb: &Sandbox, toml: &str) {
    let path = sb.config_home().join("postie/config.toml");
    let mut text = std::fs::read_to_string(&path).unwrap_or_default();
    text.push('\n');
    text.push_str(toml);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, text).unwrap();
}

/// A `postie relay` process; SIGTERM on drop.
pub struct RelayProc {
    pub child: Child,
    pub port: u16,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl RelayProc {
    /// Starts `postie relay --listen 127.0.0.1:PORT` with `upstream_pw` in [`UPSTREAM_PW_VAR`]
    /// and waits until it listens.
    pub fn start(sb: &Sandbox, port: u16, upstream_pw: &str) -> RelayProc {
        RelayProc::start_with(sb, port, upstream_pw, &[])
    }

    /// [`RelayProc::start`] with more arguments (`-v`).
    pub fn start_with(sb: &Sandbox, port: u16, upstream_pw: &str, extra: &[&str]) -> RelayProc {
        let mut child = sb
            .std_postie()
            .args(extra)
            .args(["relay", "--listen", &format!("127.0.0.1:{port}")])
            .env(UPSTREAM_PW_VAR, upstream_pw)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start postie relay");
        let err = child.stderr.take().unwrap();
        let log: Arc<Mutex<Vec<String>>> = Arc::default();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(line);
            }
        });
        let mut r = RelayProc { child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if r.log_text().contains("listening on") {
                return r;
            }
            if let Ok(Some(s)) = r.child.try_wait() {
                std::thread::sleep(Duration::from_millis(200));
                r.port = 0;
                panic!("postie relay exited with {s}:\n{}", r.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("postie relay did not start:\n{}", r.log_text());
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.port = 0;
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        let code = terminate(&mut self.child);
        self.port = 0;
        code
    }
}

fn terminate(child: &mut Child) -> Option<i32> {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(40);
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for RelayProc {
    fn drop(&mut self) {
        if self.port != 0 {
            terminate(&mut self.child);
        }
    }
}

/// Python from the peers' venv (aiosmtpd's), running a script of this directory.
pub fn python() -> std::process::Command {
    let tools = std::env::var("MAIL_PEERS_TOOLS")
        .or_else(|_| std::env::var("MAIL_PEERS_DIR"))
        .unwrap_or_else(|_| "/tmp/mail-peers".into());
    let venv = std::path::Path::new(&tools).join("venv/bin/python");
    std::process::Command::new(if venv.exists() {
        venv.into_os_string()
    } else {
        "python3".into()
    })
}

/// Path of a file next to this one (article.py, load.py).
pub fn script(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/peers")
        .join(name)
}

/// Waits until `postie queue list --json` shows no message queued or delivering; returns the
/// messages.
pub fn queue_settled(sb: &Sandbox, within: Duration) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + within;
    loop {
        let run = sb.postie().args(["queue", "list", "--json"]).run();
        run.success();
        let v = run.json();
        let msgs = v["messages"].as_array().cloned().unwrap_or_default();
        let busy = msgs
            .iter()
            .filter(|m| matches!(m["state"].as_str(), Some("queued" | "delivering")))
            .count();
        if busy == 0 || Instant::now() > deadline {
            return msgs;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The indices in a load.py acked file.
pub fn acked(path: &Path) -> Vec<u32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// `load.py` (see its docstring) sending `count` messages of run `run` from `from` over
/// `clients` connections to the relay on `port`, acknowledged indices appended to `acked`.
pub fn load_py(
    port: u16,
    run: &str,
    count: u32,
    clients: u32,
    acked: &Path,
    deadline_secs: u32,
    from: &str,
) -> std::process::Command {
    let mut c = python();
    c.arg(script("load.py"))
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--count",
            &count.to_string(),
            "--clients",
            &clients.to_string(),
        ])
        .args(["--run-id", run])
        .arg("--acked")
        .arg(acked)
        .args(["--deadline", &deadline_secs.to_string()])
        .args(["--from", from, "--to", "sink@example.test"]);
    c
}

/// Waits for a load.py run to end; asserts that every message was acked and returns its error
/// count (connections refused or reset, lost replies).
pub fn load_finished(load: &mut Child, what: &str) -> u64 {
    let status = load.wait().unwrap();
    let mut summary = String::new();
    std::io::Read::read_to_string(&mut load.stdout.take().unwrap(), &mut summary).unwrap();
    assert!(
        status.success(),
        "{what}: load.py did not get every message acked: {summary}"
    );
    serde_json::from_str::<serde_json::Value>(summary.trim())
        .ok()
        .and_then(|v| v["errors"].as_u64())
        .unwrap_or_else(|| panic!("{what}: no summary from load.py: {summary:?}"))
}

/// `postie relay user add USER --account ACCOUNT` with password `pw`.
pub fn add_relay_user(sb: &Sandbox, user: &str, account: &str, pw: &str) {
    sb.postie()
        .args(["relay", "user", "add", user, "--account", account])
        .args(["--password-env", "RELAY_USER_PW"])
        .env("RELAY_USER_PW", pw)
        .run()
        .success();
}
