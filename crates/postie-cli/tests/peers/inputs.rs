//! Inputs a new user gets wrong (issue 12): each gets a clear error and an
//! exit code of sysexits.h, and nothing is half done.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::relay_support::free_port;
use crate::support::*;

/// Item 8: two bodies cannot both come from stdin.
#[test]
fn text_and_html_cannot_both_read_stdin() {
    let sb = Sandbox::new();
    let run = sb
        .postie()
        .args(["send", "--server", "smtp://127.0.0.1:9", "--plaintext"])
        .words("--from a@example.test --to b@example.test --text-file - --html-file -")
        .stdin("body")
        .run();
    run.code(64).stderr_mentions(&["both read stdin"]);
}

/// Item 16: two lines on stdin are not one password; nothing is stored.
#[test]
fn a_two_line_password_is_refused() {
    let sb = Sandbox::new();
    let run = sb
        .postie()
        .args(["account", "add", "two", "--provider", "gmail"])
        .words("--email me@gmail.com --password-stdin")
        .stdin("abcd efgh ijkl mnop\nsomething else\n")
        .run();
    run.code(64).stderr_mentions(&["2 lines", "one line"]);
    let list = sb.postie().args(["account", "list", "--json"]).run();
    assert_eq!(list.json()["accounts"], serde_json::json!([]), "{list}");
}

/// Item 17: an empty account name and port 0 are refused.
#[test]
fn an_empty_name_and_port_zero_are_refused() {
    let sb = Sandbox::new();
    sb.postie()
        .args(["account", "add", "", "--provider", "gmail"])
        .words("--email me@gmail.com --password-env PW")
        .run()
        .code(64)
        .stderr_mentions(&["cannot be an account's name"]);
    sb.postie()
        .args(["account", "add", "p0", "--provider", "generic"])
        .words("--host mail.example.test --port 0 --email me@example.test --password-env PW")
        .run()
        .code(64)
        .stderr_mentions(&["0 is not a port"]);
}

/// Item 17: `relay --listen localhost:PORT` listens on what localhost is.
#[test]
fn the_relay_listens_on_a_name_that_resolves_to_loopback() {
    let sb = Sandbox::new();
    let port = free_port();
    let mut child = sb
        .std_postie()
        .args([
            "relay",
            "--no-deliver",
            "--listen",
            &format!("localhost:{port}"),
        ])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut said = String::new();
    while Instant::now() < deadline {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        said.push_str(&line);
        if line.contains("listening on") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        said.contains(&format!("127.0.0.1:{port}")) || said.contains(&format!("[::1]:{port}")),
        "{said}"
    );
}
