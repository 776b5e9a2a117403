//! Inputs a new user gets wrong: each gets a clear error and an
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

/// Every page postie(1) and its commands' pages point to
/// (`postie\-queue\-run(1)`) is one `postie man` prints, and `--dir`
/// writes them all.
#[test]
fn every_man_page_named_is_one_postie_man_prints() {
    let sb = Sandbox::new();
    let mut todo = vec![Vec::<String>::new()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(words) = todo.pop() {
        let run = sb.postie().arg("man").args(&words).run();
        run.success();
        let name = std::iter::once("postie".to_string())
            .chain(words.iter().cloned())
            .collect::<Vec<_>>()
            .join("-");
        assert!(
            run.stdout.contains(&format!(".TH {name} 1")),
            "postie man {words:?} is not {name}(1):\n{}",
            &run.stdout[..run.stdout.len().min(300)]
        );
        seen.insert(name);
        for reference in run.stdout.split("postie\\-").skip(1) {
            let page: String = reference
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '\\' || *c == '-')
                .collect();
            if !reference[page.len()..].starts_with("(1)") {
                continue;
            }
            let sub: Vec<String> = page.split("\\-").map(str::to_string).collect();
            if !seen.contains(&format!("postie-{}", sub.join("-"))) {
                todo.push(sub);
            }
        }
    }
    assert!(seen.contains("postie-queue-run"), "{seen:?}");
    assert!(!seen.contains("postie-help"), "a page for `help`: {seen:?}");
    let dir = sb.path().join("man1");
    sb.postie()
        .arg("man")
        .arg("--dir")
        .arg(&dir)
        .run()
        .success();
    for page in &seen {
        assert!(
            dir.join(format!("{page}.1")).exists(),
            "{page}.1 not written"
        );
    }
    sb.postie()
        .args(["man", "queue", "nosuch"])
        .run()
        .code(64)
        .stderr_mentions(&["`postie queue` has no command 'nosuch'"]);
}

/// `echo body | postie send --to ...` sends the body it was given
/// (it sent an empty message), as mail(1) does.
#[test]
fn piped_stdin_is_the_text_when_no_body_is_given() {
    let sb = Sandbox::new();
    let tok = token("piped-body");
    let url = format!("smtp://127.0.0.1:{}", peers().port("AIOSMTPD_PLAIN"));
    sb.send_to(&url, Peer::Aiosmtpd)
        .arg("--plaintext")
        .opt("--to", TO)
        .opt("--subject", &tok)
        .stdin(format!("the body from a pipe {tok}\n"))
        .run()
        .success();
    let d = crate::spool::delivered(Peer::Aiosmtpd, &tok, 1);
    let body = String::from_utf8_lossy(&d.copies[0].1).into_owned();
    assert!(
        body.contains(&format!("\r\n\r\nthe body from a pipe {tok}")),
        "{body}"
    );
}

/// Shell completion of account names. Real bash sources
/// `postie completions bash` and completes `postie send --account <TAB>`
/// with the names in the config file as it is at that moment.
#[test]
fn bash_completes_account_names() {
    let sb = Sandbox::new();
    for (name, email) in [("work", "w@example.test"), ("home", "h@example.test")] {
        sb.postie()
            .args(["account", "add", name, "--provider", "generic"])
            .words("--host 127.0.0.1 --port 2525 --plaintext --auth none")
            .opt("--email", email)
            .run()
            .success();
    }
    let postie = sb.std_postie();
    let bin = std::path::PathBuf::from(postie.get_program());
    // the sandbox's environment (its config file), as postie runs in it
    let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = postie
        .get_envs()
        .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
        .collect();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let complete = |words: &str, cword: usize, current: &str| {
        let script = format!(
            "source <(postie completions bash)\n\
             COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_TYPE=9\n\
             _clap_complete_postie postie '{current}' x\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\""
        );
        let out = std::process::Command::new("bash")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("PATH", &path)
            .arg("-c")
            .arg(script)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut got: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        got.sort();
        got
    };
    assert_eq!(
        complete("postie send --account ''", 3, ""),
        ["home", "work"]
    );
    assert_eq!(complete("postie doctor w", 2, "w"), ["work"]);
    assert_eq!(complete("postie queue run --account h", 4, "h"), ["home"]);
}

/// A config file that does not parse: exit 78, the file and line named with what is wrong, an
/// explanation whose fix says what to do (it had none), and nothing of the offending line
/// echoed (it may hold a secret pasted in the wrong place).
#[test]
fn a_config_file_that_does_not_parse_is_explained_without_echoing_it() {
    let sb = Sandbox::new();
    let path = sb.config_home().join("postie/config.toml");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(
        &path,
        "[accounts.a]\nprovider = \"gmail\"\nemail = \"a@gmail.com\"\nauth = \"password\"\n\
         pasword = \"s3cret-pasted-here\"\n",
    )
    .unwrap();
    let run = sb
        .postie()
        .args(["send", "--json", "-a", "a", "--to", "b@example.test"])
        .words("--subject s --text t")
        .run();
    run.code(78);
    let e = run.json()["error"].clone();
    assert_eq!(e["explanation_id"], "config-invalid", "{run}");
    let message = e["message"].as_str().unwrap();
    assert!(
        message.contains(&path.display().to_string())
            && message.contains("(line 5)")
            && message.contains("pasword"),
        "{run}"
    );
    assert!(
        e["fix"].to_string().contains("Correct the setting"),
        "{run}"
    );
    assert!(!run.to_string().contains("s3cret-pasted-here"), "{run}");
}
