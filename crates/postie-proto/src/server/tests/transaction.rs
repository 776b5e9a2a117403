//! MAIL and RCPT: sequencing, parameters, limits and decisions.

use super::*;

const BAD_SEQUENCE: &str = "503 5.5.1 Bad sequence of commands\r\n";

#[test]
fn sequencing_table() {
    // (commands before, command, reply) on a fresh session without EHLO.
    let table: &[(&str, &str, &str)] = &[
        ("", "MAIL FROM:<a@b.example>\r\n", BAD_SEQUENCE),
        ("EHLO x\r\n", "RCPT TO:<a@b.example>\r\n", BAD_SEQUENCE),
        ("EHLO x\r\n", "DATA\r\n", BAD_SEQUENCE),
        ("EHLO x\r\n", "BDAT 1 LAST\r\nx", BAD_SEQUENCE),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\n",
            "MAIL FROM:<a@b.example>\r\n",
            BAD_SEQUENCE,
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\n",
            "DATA\r\n",
            "503 5.5.1 Need RCPT command first\r\n",
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<reject@d.example>\r\n",
            "DATA\r\n",
            "554 5.5.1 No valid recipients\r\n",
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\n",
            "BDAT 1 LAST\r\nx",
            "503 5.5.1 Need RCPT command first\r\n",
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<reject@d.example>\r\n",
            "BDAT 1 LAST\r\nx",
            "554 5.5.1 No valid recipients\r\n",
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n",
            "DATA extra\r\n",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nRSET\r\n",
            "DATA\r\n",
            BAD_SEQUENCE,
        ),
        (
            "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nEHLO y\r\n",
            "RCPT TO:<c@d.example>\r\n",
            BAD_SEQUENCE,
        ),
        (
            "EHLO x\r\nMAIL FROM:<reject@b.example>\r\n",
            "RCPT TO:<c@d.example>\r\n",
            BAD_SEQUENCE,
        ),
    ];
    for (before, cmd, out) in table {
        let mut h = Host::new(cfg());
        h.send(before);
        h.out();
        h.events();
        h.exchange(cmd, out, &[]);
    }
}

#[test]
fn mail_and_rcpt_arguments_table() {
    let table: &[(&str, &str, &[&str])] = &[
        (
            "MAIL FROM:<>\r\n",
            "250 2.1.0 OK\r\n",
            &["MAIL <> None SevenBit false"],
        ),
        (
            "mail from: <A@B.example> SIZE=100 BODY=8BITMIME\r\n",
            "250 2.1.0 OK\r\n",
            &["MAIL A@B.example Some(100) EightBit false"],
        ),
        (
            "MAIL FROM:<a@b.example> SIZE=26214401\r\n",
            "552 5.3.4 Message size exceeds fixed maximum message size\r\n",
            &[],
        ),
        (
            "MAIL FROM:<a@b.example> FOO=BAR\r\n",
            "555 5.5.4 Unsupported MAIL/RCPT parameter\r\n",
            &[],
        ),
        (
            "MAIL FROM:<a@b.example> RET=HDRS\r\n",
            "555 5.5.4 Unsupported MAIL/RCPT parameter\r\n",
            &[],
        ),
        (
            "MAIL FROM:<not an address>\r\n",
            "501 5.1.7 Bad sender address syntax\r\n",
            &[],
        ),
        (
            "MAIL TO:<a@b.example>\r\n",
            "501 5.5.4 Syntax error in parameters or arguments\r\n",
            &[],
        ),
        (
            "MAIL FROM:<jörg@b.example>\r\n",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n",
            &[],
        ),
        (
            "MAIL FROM:<jörg@b.example> SMTPUTF8\r\n",
            "250 2.1.0 OK\r\n",
            &["MAIL jörg@b.example None SevenBit true"],
        ),
    ];
    for (cmd, out, events) in table {
        Host::ready(cfg()).exchange(cmd, out, events);
    }
    let rcpt: &[(&str, &str, &[&str])] = &[
        (
            "RCPT TO:<c@d.example>\r\n",
            "250 2.1.5 OK\r\n",
            &["RCPT c@d.example"],
        ),
        (
            "rcpt to: <c@d.example>\r\n",
            "250 2.1.5 OK\r\n",
            &["RCPT c@d.example"],
        ),
        (
            "RCPT TO:<reject@d.example>\r\n",
            "550 5.7.1 Refused\r\n",
            &["RCPT reject@d.example"],
        ),
        (
            "RCPT TO:<>\r\n",
            "501 5.1.3 Bad recipient address syntax\r\n",
            &[],
        ),
        (
            "RCPT TO:<c@d.example> NOTIFY=NEVER\r\n",
            "555 5.5.4 Unsupported MAIL/RCPT parameter\r\n",
            &[],
        ),
        (
            "RCPT TO:<ünï@d.example>\r\n",
            "553 5.6.7 Non-ASCII address requires SMTPUTF8\r\n",
            &[],
        ),
    ];
    for (cmd, out, events) in rcpt {
        let mut h = Host::ready(cfg());
        h.send("MAIL FROM:<a@b.example>\r\n");
        h.out();
        h.events();
        h.exchange(cmd, out, events);
    }
}

#[test]
fn utf8_recipients_need_smtputf8_on_mail() {
    let mut h = Host::ready(cfg());
    h.send("MAIL FROM:<a@b.example> SMTPUTF8\r\n");
    h.out();
    h.exchange(
        "RCPT TO:<ünï@d.example>\r\n",
        "250 2.1.5 OK\r\n",
        &["MAIL a@b.example None SevenBit true", "RCPT ünï@d.example"],
    );
    let mut c = cfg();
    c.smtputf8 = false;
    Host::ready(c).exchange(
        "MAIL FROM:<a@b.example> SMTPUTF8\r\n",
        "555 5.5.4 Unsupported MAIL/RCPT parameter\r\n",
        &[],
    );
}

#[test]
fn too_many_recipients() {
    let mut c = cfg();
    c.max_recipients = 2;
    let mut h = Host::ready(c);
    h.send("MAIL FROM:<a@b.example>\r\n");
    h.out();
    h.events();
    // A refused recipient does not count.
    h.exchange(
        "RCPT TO:<reject@d.example>\r\nRCPT TO:<c1@d.example>\r\nRCPT TO:<c2@d.example>\r\nRCPT TO:<c3@d.example>\r\n",
        "550 5.7.1 Refused\r\n250 2.1.5 OK\r\n250 2.1.5 OK\r\n452 4.5.3 Too many recipients\r\n",
        &["RCPT reject@d.example", "RCPT c1@d.example", "RCPT c2@d.example"],
    );
}

#[test]
fn require_auth_refuses_mail() {
    let mut c = cfg();
    c.require_auth = true;
    c.auth = vec![Mechanism::Plain];
    let mut h = Host::with_tls(c, true);
    h.send("EHLO x\r\n");
    h.out();
    h.events();
    h.exchange(
        "MAIL FROM:<a@b.example>\r\n",
        "530 5.7.0 Authentication required\r\n",
        &[],
    );
    h.send("AUTH PLAIN AHVzZXIAc2VjcmV0\r\n");
    h.out();
    h.events();
    h.exchange(
        "MAIL FROM:<a@b.example> AUTH=<>\r\n",
        "250 2.1.0 OK\r\n",
        &["MAIL a@b.example None SevenBit false"],
    );
}

#[test]
fn decisions_are_sent_as_given_and_nothing_else_is_decided() {
    let mut h = Host::ready(cfg());
    h.auto = false;
    // No decision pending: ignored.
    h.s.decide(reply("250 2.0.0 stray"));
    h.s.auth_result(AuthOutcome::Accepted(reply("235 2.7.0 stray")));
    assert_eq!(h.out(), "");
    h.send("MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\n");
    assert!(h.s.expects_decision());
    assert!(!h.s.in_transaction());
    // An AUTH answer does not answer MAIL.
    h.s.auth_result(AuthOutcome::Accepted(reply("235 2.7.0 stray")));
    h.s.decide(reply("451 4.3.0 Try later"));
    h.pump();
    assert!(!h.s.in_transaction());
    assert_eq!(
        h.out(),
        "451 4.3.0 Try later\r\n503 5.5.1 Bad sequence of commands\r\n"
    );
    assert_eq!(h.events(), ["MAIL a@b.example None SevenBit false"]);
}

#[test]
fn binarymime_needs_bdat() {
    let mut h = Host::ready(cfg());
    h.send("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<c@d.example>\r\n");
    h.out();
    h.events();
    h.exchange("DATA\r\n", BAD_SEQUENCE, &[]);
    let mut c = cfg();
    c.chunking = false;
    Host::ready(c).exchange(
        "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n",
        "555 5.5.4 Unsupported MAIL/RCPT parameter\r\n",
        &[],
    );
}
