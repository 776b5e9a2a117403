use super::*;
use crate::reply::ReplyParser;
use Capability as C;
use Mechanism as M;

/// smtp.gmail.com:587 before STARTTLS (provider-facts §1.1): no AUTH.
const GMAIL_PLAIN: &str = "250-smtp.gmail.com at your service, [203.0.113.9]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";
/// smtp.gmail.com after STARTTLS, or on 465.
const GMAIL_TLS: &str = "250-smtp.gmail.com at your service, [203.0.113.9]\r\n250-SIZE 35882577\r\n250-8BITMIME\r\n250-AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH\r\n250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";
/// smtp.office365.com after STARTTLS (provider-facts §7).
const MICROSOFT_TLS: &str = "250-SN4PR0201CA0040.outlook.office365.com Hello [203.0.113.9]\r\n250-SIZE 157286400\r\n250-PIPELINING\r\n250-DSN\r\n250-ENHANCEDSTATUSCODES\r\n250-AUTH LOGIN XOAUTH2\r\n250-8BITMIME\r\n250-BINARYMIME\r\n250-CHUNKING\r\n250 SMTPUTF8\r\n";
/// Postfix with Cyrus SASL and `broken_sasl_auth_clients = yes`.
const POSTFIX: &str = "250-mail.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n250-STARTTLS\r\n250-AUTH PLAIN LOGIN\r\n250-AUTH=PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n";

fn caps(wire: &str) -> Capabilities {
    let (reply, _) = ReplyParser::parse(wire.as_bytes()).unwrap().unwrap();
    Capabilities::from_ehlo(&reply)
}

#[test]
fn gmail_before_tls() {
    let c = caps(GMAIL_PLAIN);
    assert_eq!(c.greeting_domain, "smtp.gmail.com");
    assert_eq!(
        c.list,
        [
            C::Size(Some(35882577)),
            C::EightBitMime,
            C::StartTls,
            C::EnhancedStatusCodes,
            C::Pipelining,
            C::Chunking,
            C::SmtpUtf8
        ]
    );
    assert!(c.starttls());
    assert!(c.auth_mechanisms().is_empty());
    assert_eq!(c.size(), Some(35882577));
}

#[test]
fn gmail_after_tls() {
    let c = caps(GMAIL_TLS);
    assert!(!c.starttls());
    assert_eq!(
        c.auth_mechanisms(),
        [
            M::Login,
            M::Plain,
            M::XOAuth2,
            M::Other("PLAIN-CLIENTTOKEN".into()),
            M::OAuthBearer,
            M::Other("XOAUTH".into())
        ]
    );
    assert!(c.supports_pipelining() && c.chunking() && c.smtputf8() && c.eightbitmime());
    assert!(c.enhanced_status_codes());
    assert!(!c.binarymime() && !c.dsn());
}

#[test]
fn microsoft_after_tls() {
    let c = caps(MICROSOFT_TLS);
    assert_eq!(c.greeting_domain, "SN4PR0201CA0040.outlook.office365.com");
    assert_eq!(c.auth_mechanisms(), [M::Login, M::XOAuth2]);
    assert_eq!(c.size(), Some(157286400));
    assert!(c.binarymime() && c.chunking() && c.dsn() && c.supports_pipelining());
}

#[test]
fn postfix_merges_both_auth_forms_and_keeps_unknown_keywords() {
    let c = caps(POSTFIX);
    assert_eq!(c.auth_mechanisms(), [M::Plain, M::Login]);
    assert_eq!(
        c.list.iter().filter(|c| matches!(c, C::Auth(_))).count(),
        1,
        "one AUTH entry"
    );
    assert!(c.list.contains(&C::Other {
        keyword: "VRFY".into(),
        args: String::new()
    }));
    assert!(c.has_keyword("etrn") && c.has_keyword("Pipelining") && !c.has_keyword("XCLIENT"));
}

#[test]
fn keywords_are_case_insensitive() {
    let c = caps(
        "250-mx\r\n250-pipelining\r\n250-auth=login Plain\r\n250-Size 0\r\n250-starttls\r\n250 X-Custom  a b \r\n",
    );
    assert!(c.supports_pipelining() && c.starttls());
    assert_eq!(c.auth_mechanisms(), [M::Login, M::Plain]);
    assert!(c.supports_size());
    assert_eq!(c.size(), None, "SIZE 0 means no limit");
    assert!(c.list.contains(&C::Other {
        keyword: "X-Custom".into(),
        args: "a b".into()
    }));
}

#[test]
fn size_forms() {
    for (line, cap, limit, supported) in [
        ("SIZE", C::Size(None), None, true),
        ("SIZE 0", C::Size(Some(0)), None, true),
        ("SIZE 1000", C::Size(Some(1000)), Some(1000), true),
        ("SIZE abc", C::Size(None), None, true),
    ] {
        let c = caps(&format!("250-mx\r\n250 {line}\r\n"));
        assert_eq!(c.list, std::slice::from_ref(&cap), "{line}");
        assert_eq!(c.size(), limit, "{line}");
        assert_eq!(c.supports_size(), supported, "{line}");
    }
    assert!(!caps("250 mx\r\n").supports_size());
}

#[test]
fn single_line_and_helo() {
    let c = caps("250 mx.example greets you\r\n");
    assert_eq!(c.greeting_domain, "mx.example");
    assert!(c.list.is_empty());
    let helo = Capabilities::from_helo(&Reply::new(250, "old.example Hello"));
    assert_eq!(helo.greeting_domain, "old.example");
    assert!(helo.list.is_empty());
}

#[test]
fn display_is_the_ehlo_form() {
    let c = caps(GMAIL_TLS);
    let shown: Vec<String> = c.list.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "SIZE 35882577",
            "8BITMIME",
            "AUTH LOGIN PLAIN XOAUTH2 PLAIN-CLIENTTOKEN OAUTHBEARER XOAUTH",
            "ENHANCEDSTATUSCODES",
            "PIPELINING",
            "CHUNKING",
            "SMTPUTF8"
        ]
    );
}

/// `smtp-proto`'s EHLO parser as an independent reference for the keywords
/// both understand.
#[test]
fn agrees_with_smtp_proto() {
    use smtp_proto::*;
    for wire in [GMAIL_PLAIN, GMAIL_TLS, MICROSOFT_TLS, POSTFIX] {
        let theirs = EhloResponse::parse(&mut wire.as_bytes().iter()).unwrap();
        let ours = caps(wire);
        assert_eq!(ours.greeting_domain, theirs.hostname, "{wire}");
        assert_eq!(ours.size().unwrap_or(0), theirs.size as u64);
        for (flag, have) in [
            (EXT_START_TLS, ours.starttls()),
            (EXT_PIPELINING, ours.supports_pipelining()),
            (EXT_CHUNKING, ours.chunking()),
            (EXT_8BIT_MIME, ours.eightbitmime()),
            (EXT_BINARY_MIME, ours.binarymime()),
            (EXT_SMTP_UTF8, ours.smtputf8()),
            (EXT_DSN, ours.dsn()),
            (EXT_ENHANCED_STATUS_CODES, ours.enhanced_status_codes()),
        ] {
            assert_eq!(theirs.has_capability(flag), have, "{flag:#x} in {wire}");
        }
        for (bit, m) in [
            (AUTH_PLAIN, M::Plain),
            (AUTH_LOGIN, M::Login),
            (AUTH_XOAUTH2, M::XOAuth2),
            (AUTH_OAUTHBEARER, M::OAuthBearer),
        ] {
            assert_eq!(
                theirs.auth() & bit != 0,
                ours.auth_mechanisms().contains(&m)
            );
        }
    }
}
