//! Secrets never reach the output: not with `-vv` transcripts, not in `--json`, not on failure,
//! in clear or base64 (the AUTH PLAIN / LOGIN payloads).

use crate::spool::delivered;
use crate::support::*;

/// Fails if `password` appears in `run`'s output in clear or inside any base64 run.
#[track_caller]
pub fn assert_no_leak(run: &Run, user: &str, password: &str) {
    for (name, out) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
        assert!(
            !out.contains(password),
            "the password appears in {name}\n{run}"
        );
        for form in [
            format!("\0{user}\0{password}"),
            format!("{user}\0{user}\0{password}"),
            password.to_owned(),
        ] {
            let b64 = base64(form.as_bytes());
            let stem = b64.trim_end_matches('=');
            assert!(
                !out.contains(stem),
                "base64 of {form:?} appears in {name}\n{run}"
            );
        }
        for decoded in base64_decodings(out) {
            assert!(
                !contains(&decoded, password.as_bytes()),
                "the password appears base64-encoded in {name}\n{run}"
            );
        }
    }
}

fn secret_user() -> &'static str {
    peers().get("SECRET_USER")
}

/// `postie send -vv [--json]` as the leak-check user with `password`.
fn verbose_send(peer: Peer, tls: Tls, password: &str, tok: &str, json: bool) -> Run {
    Sandbox::new()
        .postie()
        .words(if json { "send -vv --json" } else { "send -vv" })
        .opt("--server", peer.url(tls))
        .opt("--ca-file", peers().ca())
        .opt("--user", secret_user())
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, password)
        .opt("--from", FROM)
        .opt("--to", TO)
        .opt("--subject", tok)
        .opt("--text", tok)
        .run()
}

fn no_leak_on_success(peer: Peer, tls: Tls) {
    let tok = token("no-leak");
    let password = peers().get("SECRET_PASSWORD");
    let run = verbose_send(peer, tls, password, &tok, true);
    run.success();
    assert_no_leak(&run, secret_user(), password);
    // the AUTH command is in the transcript (stderr, or inside the JSON), redacted
    let out = format!("{}\n{}", run.stdout, run.stderr);
    assert!(
        out.contains("AUTH "),
        "no AUTH command in the -vv transcript\n{run}"
    );
    assert_eq!(run.json()["status"], "sent", "{run}");
    let d = delivered(peer, &tok, 1);
    assert_eq!(d.auth_user.as_deref(), Some(secret_user()));
}

#[test]
fn verbose_transcript_on_stderr() {
    // `-> ` / `<- ` in clear, `~> ` / `<~ ` inside TLS, AUTH redacted
    let tok = token("transcript");
    let password = peers().get("SECRET_PASSWORD");
    let run = verbose_send(Peer::Aiosmtpd, Tls::StartTls, password, &tok, false);
    run.success();
    assert_no_leak(&run, secret_user(), password);
    for line in [
        "-> EHLO",
        "-> STARTTLS",
        "<- 220",
        "~> EHLO",
        "~> AUTH",
        "<~ 235",
        "~> DATA",
    ] {
        assert!(
            run.stderr.contains(line),
            "no {line:?} line in the -vv transcript\n{run}"
        );
    }
    delivered(Peer::Aiosmtpd, &tok, 1);
}

#[test]
fn no_secret_in_verbose_json_output_aiosmtpd_starttls() {
    no_leak_on_success(Peer::Aiosmtpd, Tls::StartTls)
}

#[test]
fn no_secret_in_verbose_json_output_smtp_server_implicit() {
    no_leak_on_success(Peer::SmtpServer, Tls::Implicit)
}

#[test]
fn no_secret_in_verbose_json_output_on_refusal() {
    let tok = token("no-leak-refused");
    let wrong = "Wr0ng-Pa55-xyzzy-7Kq";
    for peer in [Peer::Aiosmtpd, Peer::SmtpServer] {
        let run = verbose_send(peer, Tls::StartTls, wrong, &tok, true);
        run.code(exit::NOPERM);
        assert_no_leak(&run, secret_user(), wrong);
        assert_eq!(run.json()["error"]["kind"], "credentials", "{run}");
    }
}

#[test]
fn no_secret_from_password_command() {
    let tok = token("no-leak-cmd");
    let password = peers().get("SECRET_PASSWORD");
    let run = Sandbox::new()
        .postie()
        .words("send -vv")
        .opt("--server", Peer::SmtpServer.url(Tls::StartTls))
        .opt("--ca-file", peers().ca())
        .opt("--user", secret_user())
        // only the first line of the command's output is the password
        .opt(
            "--password-command",
            r#"printf '%s\nsecond line\n' "$LEAK_TEST_PW""#,
        )
        .env("LEAK_TEST_PW", password)
        .opt("--from", FROM)
        .opt("--to", TO)
        .opt("--subject", &tok)
        .opt("--text", &tok)
        .run();
    run.success();
    assert_no_leak(&run, secret_user(), password);
    let d = delivered(Peer::SmtpServer, &tok, 1);
    assert_eq!(d.auth_user.as_deref(), Some(secret_user()));
}

/// The encrypted secret file without its passphrase and without a
/// terminal is a secret-store problem (78) whose fix is the passphrase; a
/// damaged file's fix is not "set POSTIE_PASSPHRASE" but to move it aside.
#[test]
fn secret_store_problems_say_what_fixes_them() {
    let sb = Sandbox::new();
    let add = |sb: &Sandbox| {
        sb.postie()
            .args(["account", "add", "st", "--provider", "generic"])
            .words("--host 127.0.0.1 --port 2587 --email st@example.test --password-stdin")
            .env("POSTIE_SECRET_STORE", "file")
            .stdin("a-password\n")
    };
    add(&sb)
        .env("POSTIE_PASSPHRASE", "right horse")
        .run()
        .success();
    let send = || {
        sb.postie()
            .words("send -a st --to b@example.test --text x --json")
            .env("POSTIE_SECRET_STORE", "file")
    };
    let run = send().env_remove("POSTIE_PASSPHRASE").run();
    run.code(78);
    assert_eq!(
        run.json()["error"]["explanation_id"],
        "secret-store",
        "{run}"
    );
    assert!(run.stdout.contains("POSTIE_PASSPHRASE"), "{run}");

    let file = sb.path().join("data/postie/secrets.enc");
    assert!(file.exists(), "no secret file at {}", file.display());
    std::fs::write(&file, b"not a postie secret file at all").unwrap();
    let run = send().env("POSTIE_PASSPHRASE", "right horse").run();
    run.code(78);
    let e = &run.json()["error"];
    assert_eq!(e["explanation_id"], "secret-store-damaged", "{run}");
    assert!(!e["fix"].to_string().contains("POSTIE_PASSPHRASE"), "{run}");
}
