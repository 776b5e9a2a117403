//! `postie demo` as a user runs it: every step ends as the story says, the relay step runs the
//! article's function in Python's smtplib, SMTP blocked sends over the Gmail API, five messages
//! reach the sandbox's mailbox, the exit
//! code is 0, nothing is left listening, and the temporary directory is removed.

use crate::support::*;

#[test]
fn the_demo_tells_the_whole_story() {
    let sb = Sandbox::new();
    let tmp = sb.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let run = sb
        .postie()
        .args(["demo", "--color", "never"])
        .env("TMPDIR", &tmp)
        .run();
    run.success();
    let left: Vec<_> = std::fs::read_dir(&tmp).unwrap().collect();
    assert!(left.is_empty(), "the demo left files behind: {left:?}");
    let out = &run.stdout;
    let step = |n: u32| -> &str {
        let start = out
            .find(&format!("\n{n}. "))
            .unwrap_or_else(|| panic!("no step {n}: {run}"));
        let end = out[start + 1..]
            .find("\n\n")
            .map_or(out.len(), |e| start + 1 + e);
        &out[start..end]
    };
    // 1: the account password, refused with Gmail's exact text, and explained
    let s1 = step(1);
    assert!(
        s1.contains("server: 534-5.7.9 Application-specific password required."),
        "{s1}"
    );
    assert!(
        s1.contains("https://myaccount.google.com/apppasswords"),
        "{s1}"
    );
    assert!(s1.contains("postie login personal"), "{s1}");
    // 2: the app password delivers
    assert!(
        step(2).contains("✓ delivered with PLAIN: 250 2.0.0 OK"),
        "{run}"
    );
    // 3: OAuth: consent, token stored, XOAUTH2, expiry, refresh with rotation, XOAUTH2 again
    let s3 = step(3);
    assert!(
        s3.contains("consent page asked for https://mail.google.com/"),
        "{s3}"
    );
    assert!(s3.contains("tokens stored"), "{s3}");
    assert_eq!(
        s3.matches("✓ delivered with XOAUTH2: 250 2.0.0 OK").count(),
        2,
        "{s3}"
    );
    assert!(
        s3.contains("postie refreshed it once (the refresh token rotated"),
        "{s3}"
    );
    // 4: the article's function through the relay, delivered upstream with OAuth
    let s4 = step(4);
    assert!(
        s4.contains("\"Email sent successfully using app password!\" (Python's smtplib)"),
        "{s4}"
    );
    assert!(s4.contains("delivered it upstream with XOAUTH2"), "{s4}");
    // 5: SMTP blocked: the same account and token over the Gmail API
    let s5 = step(5);
    assert!(
        s5.contains("✓ SMTP could not connect; delivered through the Gmail API: accepted by the Gmail API (id "),
        "{s5}"
    );
    // 6: the mailbox holds the five messages, in order
    let s6 = step(6);
    let subjects = [
        "\"Example 2: an app password\"",
        "\"Example 3: OAuth 2.0\"",
        "\"Example 3 again, after the token expired\"",
        "\"Example 2 through postie relay\"",
        "gmail-api",
        "\"Example 3 over HTTPS, SMTP blocked\"",
    ];
    let mut at = 0;
    for s in subjects {
        let i = s6[at..]
            .find(s)
            .unwrap_or_else(|| panic!("{s} missing or out of order: {s6}"));
        at += i + s.len();
    }
    assert!(!out.contains("unexpected:"), "{run}");
    assert!(out.contains("nothing left running"), "{run}");
    // No token the sandbox issued is printed: every one starts with one of these (see
    // postie_sandbox::tokens), plain or URL-encoded.
    for prefix in [
        "ya29.sb-",   // access tokens
        "1//sb-",     // refresh tokens
        "1%2F%2Fsb-", //
        "4/sb-",      // authorization codes
        "4%2Fsb-",    //
        "AH-sb",      // device codes
    ] {
        for (name, text) in [("stdout", &run.stdout), ("stderr", &run.stderr)] {
            assert!(
                !text.contains(prefix),
                "a sandbox token ({prefix}…) on {name}:\n{run}"
            );
        }
    }
}
