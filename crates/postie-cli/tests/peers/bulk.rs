//! `postie bulk` against real servers: a directory of .eml files, an mbox and a mail merge are
//! delivered once each (counted in the servers' own stores), a batch run again or killed and
//! run again sends nothing twice, sends are paced to the account's limits, and a bad source
//! queues nothing.

use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use crate::relay_support::{UPSTREAM_PW_VAR, add_password_account, append_config};
use crate::spool::{assert_not_delivered, delivered};
use crate::support::*;

const FROM: &str = "bulk@example.test";

/// A sandbox with account `ali` sending through `peer`, `limits` as its `[accounts.ali.limits]`.
fn bulk_sandbox(peer: Peer, limits: &str) -> Sandbox {
    let sb = Sandbox::new();
    add_password_account(&sb, "ali", FROM, peer);
    if !limits.is_empty() {
        append_config(&sb, &format!("[accounts.ali.limits]\n{limits}\n"));
    }
    sb
}

fn eml(to: &str, tok: &str) -> String {
    format!("From: {FROM}\r\nTo: {to}\r\nSubject: {tok}\r\n\r\nbulk message {tok}\r\n")
}

/// A directory of `n` messages to `to`, each with its own token.
fn eml_dir(sb: &Sandbox, name: &str, n: usize) -> (std::path::PathBuf, Vec<String>) {
    let dir = sb.path().join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let toks: Vec<String> = (0..n).map(|i| token(&format!("{name}-{i}"))).collect();
    for (i, t) in toks.iter().enumerate() {
        std::fs::write(dir.join(format!("{i:03}.eml")), eml("to@example.test", t)).unwrap();
    }
    (dir, toks)
}

fn bulk(sb: &Sandbox, peer: Peer) -> Postie {
    sb.postie()
        .arg("bulk")
        .env(UPSTREAM_PW_VAR, peer.password())
}

fn results(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Each message arrives once at aiosmtpd (one stored transaction per token), the results file
/// has a line per message with the server's reply, and the same command run again finds the
/// batch complete and sends nothing.
#[test]
fn a_directory_is_sent_once_even_when_run_again() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "");
    let (dir, toks) = eml_dir(&sb, "dir", 5);
    let out = sb.path().join("results.jsonl");
    let run = bulk(&sb, peer).arg(&dir).opt("--results", &out).run();
    run.success()
        .stderr_mentions(&["5 messages", "to queue now: 5", "5 sent"]);
    for t in &toks {
        assert_eq!(delivered(peer, t, 1).copies.len(), 1, "{t}");
    }
    let lines = results(&out);
    assert_eq!(lines.len(), 5);
    for (l, i) in lines.iter().zip(0..) {
        assert_eq!(l["item"], format!("{i:03}.eml"), "{l}");
        assert_eq!(l["status"], "sent", "{l}");
        assert_eq!(l["recipients"][0]["address"], "to@example.test");
        assert_eq!(l["recipients"][0]["reply"]["code"], 250, "{l}");
    }
    let again = bulk(&sb, peer).arg(&dir).opt("--results", &out).run();
    again
        .success()
        .stderr_mentions(&["queued before: 5", "to queue now: 0", "to send: 0"]);
    std::thread::sleep(Duration::from_millis(500));
    for t in &toks {
        assert_eq!(delivered(peer, t, 1).copies.len(), 1, "{t} sent twice");
    }
}

/// The sent messages of a batch purged (`postie queue purge --sent`, what the relay's keep_sent
/// does), then the same command run again: the batch still knows its items and sends nothing.
#[test]
fn a_batch_run_again_after_its_messages_were_purged_sends_nothing() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "");
    let (dir, toks) = eml_dir(&sb, "purged", 3);
    bulk(&sb, peer)
        .arg(&dir)
        .run()
        .success()
        .stderr_mentions(&["3 sent"]);
    sb.postie()
        .args(["queue", "purge", "--sent"])
        .run()
        .success();
    let listed = sb.postie().args(["queue", "list", "--json"]).run();
    assert_eq!(
        listed.json()["messages"].as_array().map(Vec::len),
        Some(0),
        "{listed}"
    );
    bulk(&sb, peer).arg(&dir).run().success().stderr_mentions(&[
        "queued before: 3",
        "to queue now: 0",
        "to send: 0",
    ]);
    std::thread::sleep(Duration::from_millis(500));
    for t in &toks {
        assert_eq!(delivered(peer, t, 1).copies.len(), 1, "{t} sent twice");
    }
}

/// A mail merge to Postfix: the fields land in the headers and body Postfix stored; a row whose
/// recipient Postfix refuses is reported with its 550 in the results, and the exit status is 67.
#[test]
fn a_mail_merge_reaches_postfix_with_its_fields() {
    let peer = Peer::Postfix;
    let sb = bulk_sandbox(peer, "");
    let rcpt = TO.to_string();
    let refused = peers().get("REFUSED_RCPT").to_string();
    let (t1, t2, t3) = (token("merge-a"), token("merge-b"), token("merge-c"));
    let template = sb.file(
        "letter.txt",
        b"To: \"{{name}}\" <{{email}}>\nSubject: Invoice {{number}} {{tok}}\n\nDear {{name}},\nyour invoice {{number}} is attached.\n",
    );
    let rows = sb.file(
        "people.csv",
        format!(
            "email,name,number,tok\n{rcpt},\"Doe, Ann\",1001,{t1}\n{refused},Nobody,1002,{t2}\n{rcpt},Bob,1003,{t3}\n"
        )
        .as_bytes(),
    );
    let out = sb.path().join("merge.jsonl");
    let run = bulk(&sb, peer)
        .opt("--template", &template)
        .opt("--data", &rows)
        .opt("--results", &out)
        .run();
    run.code(67);
    let d = delivered(peer, &t1, 1);
    let stored = String::from_utf8_lossy(&d.copies[0].1).to_string();
    assert!(
        stored.contains(&format!("Subject: Invoice 1001 {t1}")),
        "{stored}"
    );
    assert!(stored.contains("Dear Doe, Ann,"), "{stored}");
    // The display name with its comma, kept whole (lettre encodes it as an encoded-word).
    assert!(
        base64_decodings(&stored)
            .iter()
            .any(|d| d.starts_with(b"Doe, A")),
        "{stored}"
    );
    delivered(peer, &t3, 1);
    assert_not_delivered(peer, &t2);
    let lines = results(&out);
    assert_eq!(lines.len(), 3);
    // a row's key: its first recipient and a hash of its fields
    let item = lines[1]["item"].as_str().unwrap();
    assert!(item.starts_with(&format!("{refused} ")), "{item}");
    assert_eq!(lines[1]["status"], "failed");
    assert_eq!(
        lines[1]["recipients"][0]["reply"]["code"], 550,
        "{}",
        lines[1]
    );
}

/// A mail merge run, then its data file edited the way people edit them (a row put in front,
/// the others in another order) and run again: the new row is sent and no one gets a second
/// copy. Keys by position would have skipped the new row and sent the last one twice.
#[test]
fn an_edited_data_file_sends_the_new_row_and_nothing_twice() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "");
    let toks: Vec<String> = (0..4).map(|i| token(&format!("merge-edit-{i}"))).collect();
    let template = sb.file(
        "letter.txt",
        b"To: {{email}}\nSubject: {{tok}}\n\nhello {{tok}}\n",
    );
    let data = sb.path().join("people.csv");
    let write_rows = |order: &[usize]| {
        let mut s = String::from("email,tok\n");
        for &i in order {
            s.push_str(&format!("to@example.test,{}\n", toks[i]));
        }
        std::fs::write(&data, s).unwrap();
    };
    write_rows(&[0, 1, 2]);
    let merge = || {
        bulk(&sb, peer)
            .opt("--template", &template)
            .opt("--data", &data)
            .run()
    };
    merge().success().stderr_mentions(&["3 sent"]);
    write_rows(&[3, 2, 0, 1]);
    merge()
        .success()
        .stderr_mentions(&["queued before: 3", "to queue now: 1", "4 sent"]);
    std::thread::sleep(Duration::from_millis(500));
    for t in &toks {
        assert_eq!(delivered(peer, t, 1).copies.len(), 1, "{t}");
    }
}

/// An mbox to Nodemailer's smtp-server: each message once, with its own recipients.
#[test]
fn an_mbox_is_sent_message_by_message() {
    let peer = Peer::SmtpServer;
    let sb = bulk_sandbox(peer, "");
    let toks: Vec<String> = (0..3).map(|i| token(&format!("mbox-{i}"))).collect();
    let mut mbox = String::new();
    for t in &toks {
        mbox.push_str("From bulk@example.test Thu Dec  3 10:00:00 2026\n");
        mbox.push_str(&format!(
            "From: {FROM}\nTo: a@example.test, b@example.test\nSubject: {t}\n\n>From the mbox\n{t}\n\n"
        ));
    }
    let path = sb.file("archive.mbox", mbox.as_bytes());
    bulk(&sb, peer).arg(&path).run().success();
    for t in &toks {
        let d = delivered(peer, t, 2);
        assert_eq!(d.copies.len(), 1);
        let body = String::from_utf8_lossy(&d.copies[0].1).to_string();
        assert!(body.contains("\r\nFrom the mbox\r\n"), "{body}");
    }
}

fn batch_states(sb: &Sandbox) -> (usize, usize) {
    let v = sb.postie().args(["queue", "list", "--json"]).run().json();
    let msgs = v["messages"].as_array().unwrap().clone();
    let sent = msgs.iter().filter(|m| m["state"] == "sent").count();
    (sent, msgs.len())
}

/// Paced to 120 messages a minute (0.5 s apart), a batch of 8 is killed (SIGKILL) in the
/// middle: some messages were sent, some not. Run again, it sends the rest; every message
/// arrives exactly once, and the attempts the outbox recorded are at least ~0.5 s apart, the
/// second run's first one included (the pace holds across runs).
#[test]
fn a_killed_batch_resumes_without_sending_twice_at_the_accounts_pace() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "per_minute = 120");
    let (dir, toks) = eml_dir(&sb, "paced", 8);
    let mut child = sb
        .std_postie()
        .arg("bulk")
        .arg(&dir)
        .env(UPSTREAM_PW_VAR, peer.password())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Kill once a message went and before the last could have.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (sent, _) = batch_states(&sb);
        if sent >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "nothing was sent");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let (sent, total) = batch_states(&sb);
    assert_eq!(total, 8, "the whole batch is queued before sending starts");
    assert!(
        sent < 8,
        "the kill came after the batch was done: the premise failed"
    );
    bulk(&sb, peer)
        .arg(&dir)
        .run()
        .success()
        .stderr_mentions(&["to queue now: 0"]);
    for t in &toks {
        assert_eq!(delivered(peer, t, 1).copies.len(), 1, "{t}");
    }
    std::thread::sleep(Duration::from_millis(300));
    for t in &toks {
        assert_eq!(delivered(peer, t, 1).copies.len(), 1, "{t} sent twice");
    }
    // Pacing, from the outbox's attempt times of the second run's messages.
    let v = sb.postie().args(["queue", "list", "--json"]).run().json();
    let mut times: Vec<SystemTime> = Vec::new();
    for m in v["messages"].as_array().unwrap() {
        let id = m["id"].to_string();
        let d = sb
            .postie()
            .args(["queue", "show", &id, "--json"])
            .run()
            .json();
        for a in d["history"].as_array().unwrap() {
            if a["kind"] == "delivered" {
                times.push(humantime::parse_rfc3339(a["at"].as_str().unwrap()).unwrap());
            }
        }
    }
    times.sort();
    assert_eq!(times.len(), 8);
    for w in times.windows(2) {
        let gap = w[1].duration_since(w[0]).unwrap_or_default();
        assert!(
            gap >= Duration::from_millis(400),
            "sends {gap:?} apart: {times:?}"
        );
    }
}

/// `--dry-run` at 30 messages a minute: the plan says how long 40 messages take (39 gaps of
/// 2 s) and nothing is queued or sent.
#[test]
fn a_dry_run_says_how_long_and_sends_nothing() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "per_minute = 30");
    let (dir, toks) = eml_dir(&sb, "dry", 40);
    let run = bulk(&sb, peer).arg(&dir).words("--dry-run --json").run();
    run.success();
    let plan = run.json();
    assert_eq!(plan["messages"], 40);
    assert_eq!(plan["estimated_seconds"], 78);
    assert_eq!(plan["limits"]["per_minute"], 30);
    let human = bulk(&sb, peer).arg(&dir).arg("--dry-run").run();
    human
        .success()
        .stderr_mentions(&["about 1m18s (30 messages/minute)"]);
    assert_eq!(batch_states(&sb).1, 0, "a dry run queued messages");
    assert_not_delivered(peer, &toks[0]);
}

/// A source with a bad item (a row missing a field the template uses) stops before anything is
/// queued, names the row and the field, and exits 66.
#[test]
fn a_bad_row_queues_nothing_and_says_which() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "");
    let tok = token("badrow");
    let template = sb.file("t.txt", b"To: {{email}}\nSubject: {{tok}} {{name}}\n\nhi\n");
    let rows = sb.file(
        "rows.json",
        format!(r#"[{{"email": "a@example.test", "tok": "{tok}", "name": "A"}}, {{"email": "b@example.test", "tok": "{tok}"}}]"#)
            .as_bytes(),
    );
    let run = bulk(&sb, peer)
        .opt("--template", &template)
        .opt("--data", &rows)
        .run();
    run.code(66)
        .stderr_mentions(&["row 2", "no field \"name\"", "nothing was queued"]);
    assert_eq!(batch_states(&sb).1, 0);
    assert_not_delivered(peer, &tok);
}

/// `recipients_per_message = 2`: a message to five recipients goes out as three transactions
/// (2 + 2 + 1) of the same body, each recipient once, as aiosmtpd stored them.
#[test]
fn a_message_with_more_recipients_than_allowed_goes_in_groups() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "recipients_per_message = 2");
    let tok = token("groups");
    let dir = sb.path().join("groups");
    std::fs::create_dir_all(&dir).unwrap();
    let to: Vec<String> = (0..5).map(|i| format!("r{i}@example.test")).collect();
    std::fs::write(dir.join("one.eml"), eml(&to.join(", "), &tok)).unwrap();
    bulk(&sb, peer).arg(&dir).run().success();
    let d = delivered(peer, &tok, 5);
    assert_eq!(d.copies.len(), 3, "transactions stored");
    let want: std::collections::BTreeSet<String> = to.into_iter().collect();
    assert_eq!(d.rcpt_tos, want);
}

/// A batch name becomes a file name (DATA_DIR/bulk/NAME.jsonl): one that holds a path, or is
/// hidden or empty, is refused as a usage error before anything is queued or sent.
#[test]
fn a_batch_name_with_a_path_in_it_is_refused() {
    let peer = Peer::Aiosmtpd;
    let sb = bulk_sandbox(peer, "");
    let (dir, toks) = eml_dir(&sb, "pathname", 1);
    for bad in ["../escape", "a/b", ".hidden", ""] {
        let run = bulk(&sb, peer)
            .opt("--batch", bad)
            .arg(dir.to_str().unwrap())
            .run();
        run.code(64);
        run.stderr_mentions(&["--batch", "letters, digits"]);
    }
    assert!(!sb.path().join("data/postie/escape.jsonl").exists());
    assert_not_delivered(peer, &toks[0]);
}
