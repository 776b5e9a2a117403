//! The exit status tables of `--help` against behaviour: each
//! code a table lists is produced by a case that fails, or succeeds, for
//! that reason, and every case's code is in the table. Servers are the real
//! peers or scripted ones on 127.0.0.1.

use std::collections::BTreeMap;

use crate::hostile::{Scripted, taking_server};
use crate::relay_support::free_port;
use crate::support::*;

/// The `NN  text` lines of the `Exit status` section of `postie ARGS --help`.
fn table(args: &[&str]) -> BTreeMap<i32, String> {
    let run = Sandbox::new().postie().args(args).arg("--help").run();
    run.success();
    let section = run
        .stdout
        .split_once("Exit status")
        .unwrap_or_else(|| panic!("no exit status table in {args:?} --help"))
        .1;
    section
        .lines()
        .skip(1)
        .map_while(|l| {
            let l = l.trim_start();
            let (code, text) = l.split_once(char::is_whitespace)?;
            Some((code.parse().ok()?, text.trim().to_string()))
        })
        .collect()
}

/// Each case's exit status is its table's, and the cases cover the table
/// but for the codes `not_run` names (with why).
fn walk(args: &[&str], cases: Vec<(i32, &str, Run)>, not_run: &[(i32, &str)]) {
    check(&format!("{args:?} --help"), table(args), &cases, not_run);
}

/// The codes of a prose paragraph (sendmail's, queue's), as a table
/// without texts.
fn prose(args: &[&str]) -> BTreeMap<i32, String> {
    codes_in_prose(args)
        .into_iter()
        .map(|c| (c, String::new()))
        .collect()
}

/// Each case exits as it says and is in `table`; every code of the table
/// has a case, or is in `not_run` (with why).
fn check(
    name: &str,
    table: BTreeMap<i32, String>,
    cases: &[(i32, &str, Run)],
    not_run: &[(i32, &str)],
) {
    for (want, what, run) in cases {
        assert!(
            table.contains_key(want),
            "{what}: {want} is not in {name}: {table:?}"
        );
        assert_eq!(run.code, Some(*want), "{what} ({})\n{run}", table[want]);
    }
    let covered: Vec<i32> = cases.iter().map(|c| c.0).collect();
    for code in table.keys() {
        assert!(
            covered.contains(code) || not_run.iter().any(|(c, _)| c == code),
            "no case exits {code} ({})",
            table[code]
        );
    }
}

/// `postie send`'s table (the same as `postie --help`'s).
#[test]
fn send_exit_codes_match_the_help() {
    let sb = Sandbox::new();
    let plain = format!("smtp://127.0.0.1:{}", peers().port("AIOSMTPD_PLAIN"));
    let send = |url: &str| {
        sb.send_to(url, Peer::Aiosmtpd)
            .words("--plaintext --to b@example.test --text hi")
    };
    let content_refused = taking_server(
        "250-mx\\r\\n250-ENHANCEDSTATUSCODES\\r\\n250 AUTH PLAIN",
        "554 5.6.0 Message content rejected",
    );
    let later = taking_server(
        "250-mx\\r\\n250-ENHANCEDSTATUSCODES\\r\\n250 AUTH PLAIN",
        "451 4.3.0 Try again later",
    );
    let no_starttls = taking_server("250-mx\\r\\n250 ENHANCEDSTATUSCODES", "250 ok");
    let closed = format!("smtp://127.0.0.1:{}", free_port());
    let cases = vec![
        (0, "sent", send(&plain).run()),
        (
            64,
            "bad command line",
            sb.postie().args(["send", "--no-such-flag"]).run(),
        ),
        (65, "content refused", send(&content_refused.url()).run()),
        (
            66,
            "attachment missing",
            send(&plain)
                .opt("--attach", sb.path().join("absent.pdf"))
                .run(),
        ),
        (
            67,
            "recipient refused",
            sb.send_to(&plain, Peer::Aiosmtpd)
                .arg("--plaintext")
                .opt("--to", peers().get("REFUSED_RCPT"))
                .words("--text hi")
                .run(),
        ),
        (69, "nothing listens", send(&closed).run()),
        (75, "451 at the end of data", send(&later.url()).run()),
        (
            76,
            "no STARTTLS offered",
            sb.postie()
                .arg("send")
                .opt("--server", no_starttls.url())
                .words("--from a@example.test --to b@example.test --text hi")
                .run(),
        ),
        (
            77,
            "wrong password",
            sb.postie()
                .arg("send")
                .opt("--server", &plain)
                .words("--plaintext --from a@example.test --to b@example.test --text hi")
                .opt("--user", Peer::Aiosmtpd.user())
                .opt("--password-env", "WRONG_PW")
                .env("WRONG_PW", "not-the-password")
                .run(),
        ),
        (
            78,
            "no account configured",
            sb.postie()
                .words("send --to b@example.test --text hi")
                .run(),
        ),
    ];
    walk(&["send"], cases, &[]);
    drop((content_refused, later, no_starttls));
}

/// `postie doctor`'s table, but for 68 (a name that does not resolve: a
/// lookup would leave the machine).
#[test]
fn doctor_exit_codes_match_the_help() {
    let sb = Sandbox::new();
    let starttls = format!("smtp://127.0.0.1:{}", Peer::Aiosmtpd.port(Tls::StartTls));
    let doctor = |url: &str| {
        sb.postie()
            .args(["doctor", "--timeout", "5s", "--server", url])
            .opt("--ca-file", peers().ca())
            .opt("--user", Peer::Aiosmtpd.user())
            .opt("--password-env", "DOCTOR_PW")
            .env("DOCTOR_PW", Peer::Aiosmtpd.password())
    };
    let refuses = Scripted::start(
        "c.sendall(b'554 5.7.1 no service for you\\r\\n')\nfor raw in lines(c):\n    pass",
    );
    // An account whose outbox is a PostgreSQL server that is not there.
    let fleet = Sandbox::new();
    crate::relay_support::add_password_account(&fleet, "ali", "ali@example.test", Peer::Aiosmtpd);
    crate::relay_support::append_config(
        &fleet,
        &format!(
            "[outbox]\nurl = \"postgres://postie@127.0.0.1:{}/postie\"\n",
            free_port()
        ),
    );
    let cases = vec![
        (0, "every check passes", doctor(&starttls).run()),
        (
            74,
            "the shared outbox cannot be reached",
            fleet
                .postie()
                .args(["doctor", "ali"])
                .env(
                    crate::relay_support::UPSTREAM_PW_VAR,
                    Peer::Aiosmtpd.password(),
                )
                .run(),
        ),
        (
            64,
            "bad command line",
            sb.postie().args(["doctor", "--no-such-flag"]).run(),
        ),
        (78, "no account configured", sb.postie().arg("doctor").run()),
        (
            69,
            "nothing listens",
            doctor(&format!("smtp://127.0.0.1:{}", free_port())).run(),
        ),
        (
            76,
            "a STARTTLS port used as implicit TLS",
            doctor(&format!(
                "smtps://127.0.0.1:{}",
                Peer::Aiosmtpd.port(Tls::StartTls)
            ))
            .run(),
        ),
        (
            79,
            "the greeting refuses",
            doctor(&format!("smtp://127.0.0.1:{}", refuses.port)).run(),
        ),
        (
            80,
            "no password here",
            doctor(&starttls).env_remove("DOCTOR_PW").run(),
        ),
        (
            77,
            "wrong password",
            doctor(&starttls).env("DOCTOR_PW", "wrong").run(),
        ),
        (
            81,
            "the test message is refused",
            doctor(&starttls)
                .opt("--send-test", peers().get("REFUSED_RCPT"))
                .run(),
        ),
    ];
    walk(
        &["doctor"],
        cases,
        &[(
            68,
            "a look-up of a name that does not exist goes to the network's resolver, and tests stay on loopback",
        )],
    );
}

/// The codes named in a help text's `Exit status` paragraph (sendmail's and
/// queue's are prose: "65 the server refused ... 73/74 ...").
fn codes_in_prose(args: &[&str]) -> std::collections::BTreeSet<i32> {
    let run = Sandbox::new().postie().args(args).arg("--help").run();
    run.success();
    let section = run
        .stdout
        .split_once("Exit status")
        .expect("an exit status paragraph")
        .1;
    section
        .split(|c: char| !c.is_ascii_digit())
        .filter(|w| w.len() == 1 || w.len() == 2)
        .filter_map(|w| w.parse().ok())
        .filter(|c: &i32| *c == 0 || (64..=78).contains(c))
        .collect()
}

/// An account `name` at the scripted server `s` (plain text on loopback,
/// any password).
fn account_at(sb: &Sandbox, name: &str, s: &Scripted) {
    sb.postie()
        .args([
            "account",
            "add",
            name,
            "--provider",
            "generic",
            "--plaintext",
        ])
        .opt("--host", "127.0.0.1")
        .opt("--port", s.port.to_string())
        .opt("--email", "app@example.test")
        .opt("--password-env", "ANY_PW")
        .run()
        .success();
}

/// `postie sendmail`'s and `postie queue`'s exit status paragraphs.
#[test]
fn sendmail_and_queue_exit_codes_match_the_help() {
    let ok = taking_server("250-mx\\r\\n250 AUTH PLAIN", "250 2.0.0 queued");
    let refuses = taking_server(
        "250-mx\\r\\n250 AUTH PLAIN",
        "554 5.6.0 Message content rejected",
    );
    let msg = "From: app@example.test\nTo: b@example.test\nSubject: s\n\nbody\n";
    let sendmail = |sb: &Sandbox, stdin: &str| {
        sb.postie()
            .args(["sendmail", "-t", "-i"])
            .env("ANY_PW", "pw")
            .stdin(stdin.to_string())
            .run()
    };
    let sb = Sandbox::new();
    account_at(&sb, "ok", &ok);
    let refusing = Sandbox::new();
    account_at(&refusing, "no", &refuses);
    let unstorable = Sandbox::new();
    account_at(&unstorable, "ok", &ok);
    // the outbox directory's place is taken by a file
    std::fs::create_dir_all(unstorable.path().join("data/postie")).unwrap();
    std::fs::write(
        unstorable.path().join("data/postie/outbox"),
        b"not a directory",
    )
    .unwrap();
    let refused_rcpt = Sandbox::new();
    crate::relay_support::add_password_account(
        &refused_rcpt,
        "p",
        "app@example.test",
        Peer::Aiosmtpd,
    );
    let cases: Vec<(i32, &str, Run)> = vec![
        (0, "stored and sent", sendmail(&sb, msg)),
        (
            64,
            "unknown option",
            sb.postie().args(["sendmail", "-Z"]).run(),
        ),
        (
            65,
            "the server refused the message",
            sendmail(&refusing, msg),
        ),
        (65, "no header section", sendmail(&sb, "just words\n")),
        (
            67,
            "a recipient refused",
            refused_rcpt
                .postie()
                .args(["sendmail", "-i", peers().get("REFUSED_RCPT")])
                .env(
                    crate::relay_support::UPSTREAM_PW_VAR,
                    Peer::Aiosmtpd.password(),
                )
                .stdin(msg.to_string())
                .run(),
        ),
        (73, "the outbox cannot be made", sendmail(&unstorable, msg)),
        (78, "no account", sendmail(&Sandbox::new(), msg)),
    ];
    check("sendmail --help", prose(&["sendmail"]), &cases, &[]);

    // queue: 0, 64, 74, 75, 78
    let damaged = Sandbox::new();
    damaged.postie().args(["queue", "list"]).run().success();
    let db = damaged.path().join("data/postie/outbox/outbox.sqlite3");
    std::fs::write(&db, b"garbage, not SQLite at all".repeat(200)).unwrap();
    let paused = Sandbox::new();
    account_at(&paused, "no", &refuses);
    // a message that fails for good makes `queue run` exit 75
    sendmail(&paused, msg);
    let cases: Vec<(i32, &str, Run)> = vec![
        (0, "list", sb.postie().args(["queue", "list"]).run()),
        (
            64,
            "no such message",
            sb.postie().args(["queue", "show", "999"]).run(),
        ),
        (
            74,
            "a damaged outbox",
            damaged.postie().args(["queue", "list"]).run(),
        ),
        (
            74,
            "the outbox cannot be made",
            unstorable.postie().args(["queue", "list"]).run(),
        ),
        (
            78,
            "the shared outbox's database refuses the password",
            sb.postie()
                .args(["queue", "list"])
                .env(
                    "POSTIE_OUTBOX",
                    format!(
                        "postgres://{}:Wr0ng-exit-code-pw@127.0.0.1:{}/postgres?sslmode=disable",
                        peers().get("POSTGRES_USER"),
                        peers().get("POSTGRES_PORT")
                    ),
                )
                .run(),
        ),
        (75, "a message failed for good in this run", {
            paused
                .postie()
                .args(["queue", "retry", "--all"])
                .run()
                .success();
            paused
                .postie()
                .args(["queue", "run"])
                .env("ANY_PW", "pw")
                .run()
        }),
    ];
    check("queue --help", prose(&["queue"]), &cases, &[]);
    drop((ok, refuses));
}
