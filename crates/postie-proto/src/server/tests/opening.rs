//! Greeting, EHLO/HELO, simple verbs, command framing, STARTTLS, TLS
//! policy, shutdown and timeout.

use super::*;

#[test]
fn greeting_and_ehlo() {
    let mut h = Host::new(cfg());
    assert_eq!(h.out(), "220 mx.example ESMTP postie\r\n");
    h.exchange(
        "EHLO client.example\r\n",
        EHLO_DEFAULT,
        &["EHLO client.example"],
    );
    assert_eq!(h.s.helo_name(), Some("client.example"));
}

#[test]
fn ehlo_keywords_follow_the_configuration() {
    let mut c = cfg();
    c.max_message_size = 0;
    c.smtputf8 = false;
    c.chunking = false;
    c.starttls = true;
    c.ehlo_greeting = String::new();
    c.auth = vec![Mechanism::Plain, Mechanism::CramMd5, Mechanism::XOAuth2];
    c.auth_requires_tls = false;
    let mut h = Host::new(c.clone());
    h.out();
    h.exchange(
        "ehlo x\r\n",
        "250-mx.example\r\n250-PIPELINING\r\n250-SIZE\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-STARTTLS\r\n250 AUTH PLAIN XOAUTH2\r\n",
        &["EHLO x"],
    );
    // Gmail: AUTH only once TLS is active, and no STARTTLS then.
    c.auth_requires_tls = true;
    let mut h = Host::new(c.clone());
    h.send("EHLO x\r\n");
    assert!(!h.out().contains("AUTH"));
    let mut h = Host::with_tls(c, true);
    h.send("EHLO x\r\n");
    let out = h.out();
    assert!(out.ends_with("250-ENHANCEDSTATUSCODES\r\n250 AUTH PLAIN XOAUTH2\r\n"));
    assert!(!out.contains("STARTTLS"));
}

#[test]
fn helo_names_are_taken_liberally() {
    let mut h = Host::new(cfg());
    h.out();
    // Python scripts do `server.ehlo(sender_email)`.
    h.exchange(
        "EHLO me@example.com\r\n",
        EHLO_DEFAULT,
        &["EHLO me@example.com"],
    );
    h.exchange(
        "HELO [192.0.2.1] extra words\r\n",
        "250 mx.example at your service\r\n",
        &["HELO [192.0.2.1]"],
    );
    h.exchange(
        "helo ünïcode\r\n",
        "250 mx.example at your service\r\n",
        &["HELO ünïcode"],
    );
    let syntax = "501 5.5.4 Syntax error in parameters or arguments\r\n";
    h.exchange("EHLO\r\n", syntax, &[]);
    h.exchange("EHLO   \r\n", syntax, &[]);
    h.exchange("EHLO a\x07b\r\n", syntax, &[]);
}

#[test]
fn simple_verbs_table() {
    let table: &[(&str, &str, &[&str])] = &[
        ("NOOP\r\n", "250 2.0.0 OK\r\n", &[]),
        ("noop anything\r\n", "250 2.0.0 OK\r\n", &[]),
        ("RSET\r\n", "250 2.0.0 OK\r\n", &["RESET"]),
        (
            "VRFY someone\r\n",
            "252 2.1.5 Cannot VRFY user, but will accept message and attempt delivery\r\n",
            &[],
        ),
        ("HELP\r\n", "214 2.0.0 See RFC 5321\r\n", &[]),
        (
            "EXPN list\r\n",
            "502 5.5.1 Command not implemented\r\n",
            &[],
        ),
        ("STARTTLS\r\n", "502 5.5.1 Command not implemented\r\n", &[]),
        (
            "AUTH PLAIN\r\n",
            "502 5.5.1 Command not implemented\r\n",
            &[],
        ),
        ("FOO bar\r\n", "500 5.5.1 Unrecognized command\r\n", &[]),
        ("\r\n", "500 5.5.1 Unrecognized command\r\n", &[]),
        (
            "NO\0OP\r\n",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
            &[],
        ),
        (
            "NOOP\n",
            "500 5.5.2 Syntax error, command lines must end with CRLF\r\n",
            &[],
        ),
    ];
    for (input, out, events) in table {
        Host::ready(cfg()).exchange(input, out, events);
    }
}

#[test]
fn quit_closes_and_ignores_what_follows() {
    let mut h = Host::ready(cfg());
    h.exchange("QUIT\r\nNOOP\r\n", "221 2.0.0 Bye\r\n", &["QUIT"]);
    assert!(h.s.is_closed());
    h.exchange("NOOP\r\n", "", &[]);
}

#[test]
fn non_utf8_command_is_a_syntax_error() {
    let mut h = Host::ready(cfg());
    h.input(b"MAIL FROM:<\xff@b.example>\r\n");
    assert_eq!(
        h.out(),
        "501 5.5.4 Syntax error in parameters or arguments\r\n"
    );
}

#[test]
fn over_long_command_lines() {
    let too_long = "500 5.5.2 Line too long\r\n";
    // 510 octets plus CRLF is the most RFC 5321 §4.5.3.1.4 allows.
    let ok = format!("NOOP {}\r\n", "x".repeat(505));
    assert_eq!(ok.len(), 512);
    Host::ready(cfg()).exchange(&ok, "250 2.0.0 OK\r\n", &[]);
    let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(506));
    Host::ready(cfg()).exchange(&long, &format!("{too_long}250 2.0.0 OK\r\n"), &[]);
    // A line that never ends is dropped as it comes, through its LF.
    let mut h = Host::ready(cfg());
    for _ in 0..100 {
        h.send(&"y".repeat(1000));
    }
    assert_eq!(h.out(), too_long);
    h.exchange("yyy\r\nNOOP\r\n", "250 2.0.0 OK\r\n", &[]);
    // Injected commands inside the long line are never read.
    let mut h = Host::ready(cfg());
    h.send(&format!("NOOP {}\r\nRSET\r\n", "z".repeat(600)));
    assert_eq!(h.events(), ["RESET"]);
    assert_eq!(h.out(), format!("{too_long}250 2.0.0 OK\r\n"));
    h.send(&format!("NOOP {}", "z".repeat(600)));
    assert_eq!(h.out(), too_long);
    // The RSET is still part of the long line.
    h.exchange("RSET\r\nNOOP\r\n", "250 2.0.0 OK\r\n", &[]);
}

#[test]
fn starttls_discards_injected_commands() {
    let mut c = cfg();
    c.starttls = true;
    let mut h = Host::new(c);
    h.out();
    // CVE-2011-0411: commands after STARTTLS in the same read must not run
    // inside the TLS session.
    h.send("EHLO x\r\nSTARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRSET\r\n");
    assert!(
        h.out()
            .ends_with("250 STARTTLS\r\n220 2.0.0 Ready to start TLS\r\n")
    );
    assert_eq!(h.events(), ["EHLO x", "STARTTLS"]);
    // Plaintext during the handshake is ignored too.
    h.send("RSET\r\n");
    assert_eq!((h.out(), h.events()), (String::new(), vec![]));
    assert_eq!(h.s.helo_name(), None);
    h.s.tls_established();
    assert!(h.s.tls_active());
    h.exchange(
        "MAIL FROM:<a@b.example>\r\n",
        "503 5.5.1 Bad sequence of commands\r\n",
        &[],
    );
    h.send("EHLO x\r\n");
    assert!(!h.out().contains("STARTTLS"));
    h.events();
    h.exchange(
        "STARTTLS\r\n",
        "503 5.5.1 Bad sequence of commands\r\n",
        &[],
    );
}

#[test]
fn starttls_ends_the_transaction_and_authentication() {
    let mut c = cfg();
    c.starttls = true;
    c.auth = vec![Mechanism::Plain];
    c.auth_requires_tls = false;
    let mut h = Host::ready(c);
    h.send("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    assert_eq!(h.s.authenticated(), Some("user"));
    h.send("MAIL FROM:<a@b.example>\r\n");
    assert!(h.s.in_transaction());
    h.out();
    h.events();
    h.exchange(
        "STARTTLS extra\r\n",
        "501 5.5.4 Syntax error in parameters or arguments\r\n",
        &[],
    );
    h.exchange(
        "STARTTLS\r\n",
        "220 2.0.0 Ready to start TLS\r\n",
        &["RESET", "STARTTLS"],
    );
    assert!(!h.s.in_transaction());
    assert_eq!(h.s.authenticated(), None);
}

#[test]
fn require_tls_refuses_mail_and_auth_before_starttls() {
    let mut c = cfg();
    c.starttls = true;
    c.require_tls = true;
    c.auth = vec![Mechanism::Plain];
    let must = "530 5.7.0 Must issue a STARTTLS command first\r\n";
    let mut h = Host::ready(c.clone());
    for cmd in [
        "MAIL FROM:<a@b.example>\r\n",
        "RCPT TO:<a@b.example>\r\n",
        "DATA\r\n",
        "AUTH PLAIN\r\n",
        "BDAT 3 LAST\r\nabc",
    ] {
        h.exchange(cmd, must, &[]);
    }
    h.exchange("NOOP\r\n", "250 2.0.0 OK\r\n", &[]);
    let mut h = Host::with_tls(c, true);
    h.send("EHLO x\r\n");
    h.out();
    h.events();
    h.exchange(
        "MAIL FROM:<a@b.example>\r\n",
        "250 2.1.0 OK\r\n",
        &["MAIL a@b.example None SevenBit false"],
    );
}

#[test]
fn shutdown_when_idle_closes_at_once() {
    let mut h = Host::ready(cfg());
    h.s.shutdown();
    h.pump();
    assert_eq!(
        h.out(),
        "421 4.3.2 Service shutting down, closing transmission channel\r\n"
    );
    assert!(h.s.is_closed());
}

#[test]
fn shutdown_during_a_message_finishes_it_first() {
    let mut h = Host::ready(cfg());
    h.auto = false;
    h.send("MAIL FROM:<a@b.example>\r\n");
    h.s.decide(reply("250 2.1.0 OK"));
    h.send("RCPT TO:<c@d.example>\r\n");
    h.s.decide(reply("250 2.1.5 OK"));
    h.send("DATA\r\nSubject: hi\r\n\r\nbody\r\n");
    h.pump();
    h.out();
    h.events();
    h.s.shutdown();
    h.pump();
    assert!(!h.s.is_closed());
    assert_eq!(h.out(), "");
    h.send(".\r\nMAIL FROM:<x@y.example>\r\n");
    assert_eq!(h.events(), ["END 21 false SevenBit"]);
    // The host commits, then decides: the 250 is still sent.
    h.s.decide(reply("250 2.0.0 OK queued"));
    h.pump();
    assert_eq!(
        h.out(),
        "250 2.0.0 OK queued\r\n421 4.3.2 Service shutting down, closing transmission channel\r\n"
    );
    assert!(h.s.is_closed());
    assert!(h.events().is_empty());
}

#[test]
fn shutdown_between_bdat_chunks_waits_for_the_last() {
    let mut h = Host::ready(cfg());
    h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 4\r\nab\r\n");
    h.out();
    h.s.shutdown();
    h.pump();
    assert!(!h.s.is_closed());
    h.send("BDAT 2 LAST\r\ncd");
    assert_eq!(
        h.out(),
        "250 2.0.0 OK queued\r\n421 4.3.2 Service shutting down, closing transmission channel\r\n"
    );
    assert!(h.s.is_closed());
}

#[test]
fn shutdown_with_a_pending_decision_waits_for_it() {
    let mut h = Host::ready(cfg());
    h.auto = false;
    h.send("MAIL FROM:<a@b.example>\r\n");
    h.s.shutdown();
    h.pump();
    assert_eq!(h.out(), "");
    h.s.decide(reply("250 2.1.0 OK"));
    h.pump();
    assert_eq!(
        h.out(),
        "250 2.1.0 OK\r\n421 4.3.2 Service shutting down, closing transmission channel\r\n"
    );
    assert_eq!(
        h.events(),
        ["MAIL a@b.example None SevenBit false", "RESET"]
    );
}

#[test]
fn timeout_closes_even_inside_data() {
    let mut h = Host::ready(cfg());
    h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\npartial");
    h.out();
    h.events();
    h.s.timeout();
    h.pump();
    assert_eq!(
        h.out(),
        "421 4.4.2 Timeout, closing transmission channel\r\n"
    );
    assert_eq!(h.events(), ["RESET"]);
    assert!(h.s.is_closed());
    h.s.timeout();
    h.s.shutdown();
    h.pump();
    assert_eq!(h.out(), "");
}

#[test]
fn multi_line_canned_replies_keep_every_line() {
    let mut c = cfg();
    c.require_auth = true;
    c.replies.auth_required = Reply {
        code: 530,
        enhanced: Some(crate::reply::EnhancedCode::new(5, 7, 0)),
        lines: vec![
            "Authentication Required. Learn more at".into(),
            " https://support.google.com/mail/?p=WantAuthError\r\nRSET".into(),
        ],
    };
    Host::ready(c).exchange(
        "MAIL FROM:<a@b.example>\r\n",
        "530-5.7.0 Authentication Required. Learn more at\r\n530 5.7.0  https://support.google.com/mail/?p=WantAuthError  RSET\r\n",
        &[],
    );
}

/// A web page's `fetch("http://127.0.0.1:1587", {method: "POST", body})`: the request line
/// ends the session at once, so the SMTP commands in the body never run.
#[test]
fn an_http_request_is_cut_off_at_its_first_line() {
    let mut h = Host::new(cfg());
    h.out();
    h.send(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1:1587\r\nContent-Type: text/plain\r\n\r\n\
         EHLO x\r\nMAIL FROM:<victim@example.com>\r\nRCPT TO:<spam@example.net>\r\nDATA\r\n\
         Subject: hi\r\n\r\nspam\r\n.\r\n",
    );
    assert_eq!(
        h.out(),
        "554 5.7.0 This is an SMTP server, not a web server: closing\r\n"
    );
    assert!(h.s.is_closed());
    assert!(h.events().is_empty(), "no command of the body ran");
    // a header line first (the request line lost) is cut off the same way
    let mut h = Host::ready(cfg());
    h.send("Host: 127.0.0.1\r\nMAIL FROM:<a@example.com>\r\n");
    assert!(h.out().starts_with("554 5.7.0"));
    assert!(h.s.is_closed());
    assert!(h.events().is_empty());
}

#[test]
fn too_many_unknown_commands_end_the_session() {
    let mut h = Host::ready(cfg());
    for _ in 0..9 {
        h.send("XYZZY\r\n");
    }
    let unknown = cfg().replies.unknown_command.wire_lines().join("\r\n") + "\r\n";
    assert_eq!(h.out(), unknown.repeat(9));
    assert!(!h.s.is_closed());
    h.send("XYZZY\r\nMAIL FROM:<a@example.com>\r\n");
    assert_eq!(h.out(), "421 4.7.0 Too many unknown commands: closing\r\n");
    assert!(h.s.is_closed());
    assert!(h.events().is_empty());
}
