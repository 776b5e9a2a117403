//! Durability shown at the syscall level. A SIGKILL keeps the page
//! cache, so no kill test can show that data reached the disk; the relay's
//! system calls, recorded by strace, show the order instead.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::relay_support::*;
use crate::support::*;

/// One completed system call from an `strace -f -y` log, at its position in
/// the log (where it finished).
#[derive(Debug)]
struct Call {
    at: usize,
    name: String,
    /// Everything between the parentheses, and the result.
    text: String,
}

/// The completed calls of an `strace -f` log, joining `<unfinished ...>`
/// lines with their `<... NAME resumed>` lines.
fn calls(log: &str) -> Vec<Call> {
    let mut pending: HashMap<String, String> = HashMap::new();
    let mut out = Vec::new();
    for (at, line) in log.lines().enumerate() {
        let (pid, rest) = line.split_once(' ').unwrap_or(("", line));
        let rest = rest.trim_start();
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            pending.insert(pid.to_string(), head.to_string());
            continue;
        }
        let full = if let Some(tail) = rest.strip_prefix("<... ") {
            let tail = tail.split_once("resumed>").map_or(tail, |(_, t)| t);
            format!("{}{tail}", pending.remove(pid).unwrap_or_default())
        } else {
            rest.to_string()
        };
        if let Some((name, args)) = full.split_once('(') {
            out.push(Call {
                at,
                name: name.to_string(),
                text: args.to_string(),
            });
        }
    }
    out
}

impl Call {
    fn ok(&self) -> bool {
        self.text
            .rsplit_once(") = ")
            .is_some_and(|(_, r)| !r.starts_with('-'))
    }

    fn is_fsync(&self) -> bool {
        matches!(self.name.as_str(), "fsync" | "fdatasync") && self.ok()
    }

    /// The path strace -y shows for the first argument, a descriptor.
    fn fd_path(&self) -> &str {
        let Some((_, rest)) = self.text.split_once('<') else {
            return "";
        };
        rest.split_once('>').map_or("", |(p, _)| p)
    }
}

/// Runs a Python script (smtplib, the client); it must succeed.
fn smtplib(script: &str) {
    let out = python().args(["-c", script]).output().unwrap();
    assert!(
        out.status.success(),
        "smtplib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// strace and the relay it runs; both ended when dropped (a failed
/// assertion included).
struct Traced(std::process::Child);

impl Traced {
    /// SIGTERM to the relay (strace's child); strace ends with it and
    /// flushes its log.
    fn stop(&mut self) {
        let pid = self.0.id().to_string();
        let _ = Command::new("pkill").args(["-TERM", "-P", &pid]).status();
        let _ = self.0.wait();
    }
}

impl Drop for Traced {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// `postie relay --no-deliver` under strace on `port`; returns once it
/// listens.
fn traced_relay(sb: &Sandbox, port: u16, trace: &Path) -> Traced {
    traced_relay_with(
        sb,
        port,
        trace,
        "fsync,fdatasync,rename,renameat,renameat2,pwrite64,write,writev,sendto,sendmsg",
        &["--no-deliver"],
    )
}

/// `postie relay` with `extra` options under strace (the calls of
/// `calls`) on `port`; returns once it listens.
fn traced_relay_with(sb: &Sandbox, port: u16, trace: &Path, calls: &str, extra: &[&str]) -> Traced {
    let postie = sb.std_postie();
    let mut cmd = Command::new("strace");
    cmd.args(["-f", "-y", "-s", "96", "-o"])
        .arg(trace)
        .args(["-e", &format!("trace={calls}")])
        .arg(postie.get_program())
        .arg("relay")
        .args(extra)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    cmd.env(UPSTREAM_PW_VAR, Peer::Aiosmtpd.password());
    for (k, v) in postie.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strace is installed by ci/mail-peers.sh install");
    let err = child.stderr.take().unwrap();
    let log: Arc<Mutex<String>> = Arc::default();
    let l2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut l = l2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let mut traced = Traced(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !log.lock().unwrap().contains("listening on") {
        if let Ok(Some(s)) = traced.0.try_wait() {
            panic!(
                "relay under strace exited with {s}: {}",
                log.lock().unwrap()
            );
        }
        assert!(
            Instant::now() < deadline,
            "relay did not start: {}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    traced
}

/// For each message, one after another from Python's smtplib, small ones
/// (kept in their database row) and large ones (files) in turn. A large
/// body is fsynced (in the spool's tmp directory), renamed into
/// `messages/`, the directory fsynced, the database's WAL fsynced (the
/// commit); a small one is written into the WAL and the WAL fsynced. Only
/// then is the `250` written to the client. Group commit must not change
/// this.
#[test]
fn relay_answers_250_only_after_body_directory_and_commit_reach_the_disk() {
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", FROM, Peer::Aiosmtpd);
    let trace = sb.path().join("relay.strace");
    let port = free_port();
    let mut relay = traced_relay(&sb, port, &trace);
    // Even messages small, odd ones 100 KB (over the 64 KiB kept in rows).
    let n = 4;
    smtplib(&format!(
        "import smtplib\n\
             for i in range({n}):\n\
             \x20   body = b'body\\r\\n' if i % 2 == 0 else (b'y' * 98 + b'\\r\\n') * 1000\n\
             \x20   with smtplib.SMTP('127.0.0.1', {port}) as s:\n\
             \x20       s.sendmail('{FROM}', ['{TO}'], b'From: {FROM}\\r\\nSubject: durable %d\\r\\n\\r\\n' % i + body)\n"
    ));
    relay.stop();
    let log = std::fs::read_to_string(&trace).unwrap();
    let calls = calls(&log);
    let replies: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg")
                && c.fd_path().starts_with("socket:")
                && c.text.contains("250 2.0.0 Ok: queued as")
        })
        .collect();
    assert_eq!(replies.len(), n, "one 250 per message expected in:\n{log}");
    let mut from = 0;
    for (k, reply) in replies.iter().enumerate() {
        let window: Vec<&Call> = calls
            .iter()
            .filter(|c| c.at > from && c.at < reply.at)
            .collect();
        from = reply.at;
        let wal = |c: &&&Call| c.fd_path().ends_with("outbox.sqlite3-wal");
        if k % 2 == 0 {
            let written = window
                .iter()
                .find(|c| c.name == "pwrite64" && wal(c) && c.ok())
                .unwrap_or_else(|| panic!("message {k}: nothing written to the WAL:\n{window:#?}"));
            window
                .iter()
                .find(|c| c.is_fsync() && c.at > written.at && wal(c))
                .unwrap_or_else(|| {
                    panic!("message {k}: no WAL fsync after its write:\n{window:#?}")
                });
            assert!(
                !window
                    .iter()
                    .any(|c| c.name.starts_with("rename") && c.text.contains("/messages/")),
                "message {k} is small: no file expected:\n{window:#?}"
            );
            continue;
        }
        let body = window
            .iter()
            .find(|c| c.is_fsync() && c.fd_path().contains("/messages/tmp/"))
            .unwrap_or_else(|| panic!("message {k}: no body fsync before its 250:\n{window:#?}"));
        let tmp = body.fd_path();
        let rename = window
            .iter()
            .find(|c| {
                c.name.starts_with("rename") && c.at > body.at && c.text.contains(tmp) && c.ok()
            })
            .unwrap_or_else(|| {
                panic!("message {k}: {tmp} not renamed after its fsync:\n{window:#?}")
            });
        let dir = window
            .iter()
            .find(|c| c.is_fsync() && c.at > rename.at && c.fd_path().ends_with("/messages"))
            .unwrap_or_else(|| {
                panic!("message {k}: no directory fsync after the rename:\n{window:#?}")
            });
        window
            .iter()
            .find(|c| c.is_fsync() && c.at > dir.at && wal(c))
            .unwrap_or_else(|| {
                panic!("message {k}: no WAL fsync (commit) after the directory's:\n{window:#?}")
            });
    }
}

/// The delivery side: the relay records a message as sent only after the
/// upstream server's `250` for its data was read, and records nothing while
/// it waits for that reply. The upstream is aiosmtpd on its plain port (its
/// replies readable in the trace; AUTH in clear is allowed to loopback only).
#[test]
fn relay_records_sent_only_after_reading_the_upstreams_250() {
    let sb = Sandbox::new();
    let peer = Peer::Aiosmtpd;
    sb.postie()
        .args(["account", "add", "ali", "--provider", "generic"])
        .opt("--host", "127.0.0.1")
        .opt("--port", peers().get("AIOSMTPD_PLAIN"))
        .opt("--tls", "none")
        .opt("--email", FROM)
        .opt("--user", peer.user())
        .opt("--password-env", UPSTREAM_PW_VAR)
        .run()
        .success();
    let trace = sb.path().join("relay.strace");
    let port = free_port();
    let mut relay = traced_relay_with(
        &sb,
        port,
        &trace,
        "fsync,fdatasync,pwrite64,write,writev,sendto,sendmsg,read,recvfrom,recvmsg",
        &[],
    );
    let tok = token("durable-delivery");
    smtplib(&format!(
        "import smtplib\n\
             with smtplib.SMTP('127.0.0.1', {port}) as s:\n\
             \x20   s.sendmail('{FROM}', ['{TO}'], b'From: {FROM}\\r\\nSubject: {tok}\\r\\n\\r\\nbody\\r\\n')\n"
    ));
    crate::spool::delivered(peer, &tok, 1);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let v = sb.postie().args(["queue", "list", "--json"]).run().json();
        if v["messages"][0]["state"] == "sent" {
            break;
        }
        assert!(Instant::now() < deadline, "not recorded as sent: {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
    relay.stop();
    let log = std::fs::read_to_string(&trace).unwrap();
    let calls = calls(&log);
    let is_read = |c: &Call| matches!(c.name.as_str(), "read" | "recvfrom" | "recvmsg") && c.ok();
    let is_write = |c: &Call| matches!(c.name.as_str(), "write" | "writev" | "sendto" | "sendmsg");
    // aiosmtpd's reply to the data: "250 2.0.0 OK queued as NNNN".
    let reply = calls
        .iter()
        .find(|c| {
            is_read(c) && c.fd_path().starts_with("socket:") && c.text.contains("OK queued as")
        })
        .unwrap_or_else(|| panic!("the upstream's 250 was never read:\n{log}"));
    let upstream = reply.fd_path();
    let wal = |c: &Call| c.fd_path().ends_with("outbox.sqlite3-wal");
    // The last thing sent upstream before that reply (the end of the data).
    let sent = calls
        .iter()
        .rfind(|c| c.at < reply.at && is_write(c) && c.fd_path() == upstream)
        .unwrap_or_else(|| panic!("nothing was sent upstream before its 250:\n{log}"));
    let between: Vec<&Call> = calls
        .iter()
        .filter(|c| {
            c.at > sent.at && c.at < reply.at && wal(c) && (c.is_fsync() || c.name == "pwrite64")
        })
        .collect();
    assert!(
        between.is_empty(),
        "the outbox was written while the upstream's reply was awaited: {between:#?}"
    );
    let written = calls
        .iter()
        .find(|c| c.at > reply.at && c.name == "pwrite64" && wal(c) && c.ok())
        .unwrap_or_else(|| panic!("nothing recorded after the upstream's 250:\n{log}"));
    calls
        .iter()
        .find(|c| c.at > written.at && c.is_fsync() && wal(c))
        .unwrap_or_else(|| panic!("the record after the 250 was not made durable:\n{log}"));
}
