use super::*;

#[test]
fn accepts_table() {
    for (s, local, domain, utf8) in [
        ("a@example.com", "a", "example.com", false),
        (
            "first.last+tag@sub.example.co.uk",
            "first.last+tag",
            "sub.example.co.uk",
            false,
        ),
        ("\"a@b\"@example.com", "\"a@b\"", "example.com", false),
        ("user@[192.0.2.1]", "user", "[192.0.2.1]", false),
        (
            "user@[IPv6:2001:db8::1]",
            "user",
            "[IPv6:2001:db8::1]",
            false,
        ),
        ("user@localhost", "user", "localhost", false),
        ("用户@例子.广告", "用户", "例子.广告", true),
        ("jörg@münchen.de", "jörg", "münchen.de", true),
        ("a@xn--mnchen-3ya.de", "a", "xn--mnchen-3ya.de", false),
    ] {
        let a = Address::new(s).unwrap_or_else(|e| panic!("{s:?}: {e}"));
        assert_eq!(a.as_str(), s);
        assert_eq!(a.to_string(), s);
        assert_eq!(a.as_ref(), s);
        assert_eq!(a.local_part(), local);
        assert_eq!(a.domain(), domain);
        assert_eq!(a.needs_smtputf8(), utf8, "{s:?}");
        assert_eq!(s.parse::<Address>().unwrap(), a);
    }
}

#[test]
fn rejects_table() {
    use AddressError as E;
    let long_local = format!("{}@example.com", "a".repeat(250));
    let long_label = format!("a@{}.com", "b".repeat(64));
    let cases: Vec<(&str, AddressError)> = vec![
        ("", E::Empty),
        ("a@b\r", E::ForbiddenChar { ch: '\r', at: 3 }),
        ("a@b\ncom", E::ForbiddenChar { ch: '\n', at: 3 }),
        ("a\0@b.com", E::ForbiddenChar { ch: '\0', at: 1 }),
        ("a@b.com>", E::ForbiddenChar { ch: '>', at: 7 }),
        ("<a@b.com", E::ForbiddenChar { ch: '<', at: 0 }),
        ("a b@c.com", E::ForbiddenChar { ch: ' ', at: 1 }),
        ("a@c.com\t", E::ForbiddenChar { ch: '\t', at: 7 }),
        (
            "a\u{a0}b@c.com",
            E::ForbiddenChar {
                ch: '\u{a0}',
                at: 1,
            },
        ),
        ("a@c.com\x7f", E::ForbiddenChar { ch: '\x7f', at: 7 }),
        ("a@b.com>\r\nRSET", E::ForbiddenChar { ch: '>', at: 7 }),
        ("ab.com", E::MissingAt),
        ("@b.com", E::EmptyLocalPart),
        ("a@", E::Empty),
        (
            "a@b..com",
            E::EmptyLabel {
                domain: "b..com".into(),
            },
        ),
        (
            "a@.com",
            E::EmptyLabel {
                domain: ".com".into(),
            },
        ),
        (
            "a@b.com.",
            E::EmptyLabel {
                domain: "b.com.".into(),
            },
        ),
        (
            "a@-b.com",
            E::HyphenAtLabelEdge {
                domain: "-b.com".into(),
            },
        ),
        (
            "a@b_c.com",
            E::InvalidDomainChar {
                ch: '_',
                domain: "b_c.com".into(),
            },
        ),
        (
            "a@b,c",
            E::InvalidDomainChar {
                ch: ',',
                domain: "b,c".into(),
            },
        ),
        (
            "a@[1.2.3]",
            E::InvalidLiteral {
                literal: "[1.2.3]".into(),
            },
        ),
        (
            "a@[IPv6:zz]",
            E::InvalidLiteral {
                literal: "[IPv6:zz]".into(),
            },
        ),
        (
            "a@[1.2.3.4",
            E::InvalidLiteral {
                literal: "[1.2.3.4".into(),
            },
        ),
        (
            &long_local,
            E::TooLong {
                len: 262,
                max: MAX_ADDRESS_LEN,
            },
        ),
        (
            &long_label,
            E::LabelTooLong {
                domain: format!("{}.com", "b".repeat(64)),
            },
        ),
    ];
    for (s, err) in cases {
        assert_eq!(Address::new(s), Err(err), "{s:?}");
    }
}

#[test]
fn reverse_path() {
    assert_eq!(Address::reverse_path(""), Ok(None));
    assert_eq!(Address::reverse_path("<>"), Ok(None));
    assert_eq!(
        Address::reverse_path("a@b.example")
            .unwrap()
            .unwrap()
            .as_str(),
        "a@b.example"
    );
    assert!(Address::reverse_path("<a@b.example>").is_err());
}

#[test]
fn domains_table() {
    for ok in [
        "client.example",
        "localhost",
        "a-b.c",
        "[127.0.0.1]",
        "[IPv6:::1]",
        "[ipv6:2001:db8::1]",
        "[x-tag:some-content]",
        "bücher.example",
    ] {
        let d = Domain::new(ok).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
        assert_eq!(d.to_string(), ok);
        assert_eq!(d.is_literal(), ok.starts_with('['));
        assert_eq!(d.needs_smtputf8(), !ok.is_ascii());
    }
    for bad in [
        "",
        "a b",
        "a\r\n",
        "a\0",
        "<a>",
        "my_host",
        "host-",
        "[]",
        "[256.0.0.1]",
        "[IPv6:1.2.3.4]",
        "[tag:]",
        "[tag:a]b]",
        "a..b",
    ] {
        assert!(Domain::new(bad).is_err(), "{bad:?}");
    }
    assert!(Domain::new(&"a".repeat(256)).is_err());
}

#[test]
fn domain_from_ip() {
    use std::net::IpAddr;
    let v4: IpAddr = "192.0.2.7".parse().unwrap();
    let v6: IpAddr = "2001:db8::7".parse().unwrap();
    assert_eq!(Domain::from(v4).as_str(), "[192.0.2.7]");
    assert_eq!(Domain::from(v6).as_str(), "[IPv6:2001:db8::7]");
    // What From produces is itself valid.
    Domain::new(Domain::from(v6).as_str()).unwrap();
}

#[test]
fn errors_read_well() {
    assert_eq!(
        Address::new("a b@c").unwrap_err().to_string(),
        "forbidden character ' ' at byte 1"
    );
    assert_eq!(
        Address::new("abc").unwrap_err().to_string(),
        "missing '@' between local part and domain"
    );
}
