use super::*;

fn addr(s: &str) -> Address {
    Address::new(s).unwrap()
}

fn wire(c: &Command) -> String {
    String::from_utf8(c.to_bytes()).unwrap()
}

fn table() -> Vec<(Command, &'static str)> {
    vec![
        (
            Command::Ehlo(Domain::new("client.example").unwrap()),
            "EHLO client.example\r\n",
        ),
        (
            Command::Helo(Domain::new("[192.0.2.1]").unwrap()),
            "HELO [192.0.2.1]\r\n",
        ),
        (Command::StartTls, "STARTTLS\r\n"),
        (
            Command::Auth {
                mechanism: Mechanism::Plain,
                initial_response: Some("AHVzZXIAcGFzcw==".into()),
            },
            "AUTH PLAIN AHVzZXIAcGFzcw==\r\n",
        ),
        (
            Command::Auth {
                mechanism: Mechanism::Login,
                initial_response: None,
            },
            "AUTH LOGIN\r\n",
        ),
        (
            Command::Auth {
                mechanism: Mechanism::Other("EXTERNAL".into()),
                initial_response: Some("".into()),
            },
            "AUTH EXTERNAL =\r\n",
        ),
        (Command::AuthResponse("dXNlcg==".into()), "dXNlcg==\r\n"),
        (Command::AuthResponse("".into()), "\r\n"),
        (Command::AuthCancel, "*\r\n"),
        (
            Command::Mail {
                from: Some(addr("a@example.com")),
                params: MailParams::default(),
            },
            "MAIL FROM:<a@example.com>\r\n",
        ),
        (
            Command::Mail {
                from: None,
                params: MailParams::default(),
            },
            "MAIL FROM:<>\r\n",
        ),
        (
            Command::Mail {
                from: Some(addr("jörg@example.com")),
                params: MailParams {
                    size: Some(12345),
                    body: Some(Body::EightBitMime),
                    smtputf8: true,
                    ret: Some(Ret::Headers),
                    envid: Some("id+1=2 x".into()),
                },
            },
            "MAIL FROM:<jörg@example.com> SIZE=12345 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2+20x\r\n",
        ),
        (
            Command::Mail {
                from: Some(addr("a@example.com")),
                params: MailParams {
                    body: Some(Body::BinaryMime),
                    ret: Some(Ret::Full),
                    ..MailParams::default()
                },
            },
            "MAIL FROM:<a@example.com> BODY=BINARYMIME RET=FULL\r\n",
        ),
        (
            Command::Mail {
                from: Some(addr("a@example.com")),
                params: MailParams {
                    body: Some(Body::SevenBit),
                    ..MailParams::default()
                },
            },
            "MAIL FROM:<a@example.com> BODY=7BIT\r\n",
        ),
        (
            Command::Rcpt {
                to: addr("b@example.org"),
                params: RcptParams::default(),
            },
            "RCPT TO:<b@example.org>\r\n",
        ),
        (
            Command::Rcpt {
                to: addr("b@example.org"),
                params: RcptParams {
                    notify: Some(Notify::On {
                        success: true,
                        failure: true,
                        delay: false,
                    }),
                    orcpt: Some(addr("b+x@example.org")),
                },
            },
            "RCPT TO:<b@example.org> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@example.org\r\n",
        ),
        (
            Command::Rcpt {
                to: addr("b@example.org"),
                params: RcptParams {
                    notify: Some(Notify::Never),
                    orcpt: Some(addr("jörg@example.org")),
                },
            },
            "RCPT TO:<b@example.org> NOTIFY=NEVER ORCPT=utf-8;j\\x{F6}rg@example.org\r\n",
        ),
        (Command::Data, "DATA\r\n"),
        (
            Command::Bdat {
                size: 1024,
                last: false,
            },
            "BDAT 1024\r\n",
        ),
        (
            Command::Bdat {
                size: 0,
                last: true,
            },
            "BDAT 0 LAST\r\n",
        ),
        (Command::Rset, "RSET\r\n"),
        (Command::Noop, "NOOP\r\n"),
        (Command::Quit, "QUIT\r\n"),
    ]
}

#[test]
fn encodes_every_command() {
    for (cmd, want) in table() {
        assert_eq!(wire(&cmd), want);
        let mut out = b"prefix".to_vec();
        cmd.encode(&mut out);
        assert_eq!(&out[6..], want.as_bytes(), "encode appends");
    }
}

#[test]
fn transcript_of_public_commands_is_the_line() {
    for (cmd, want) in table() {
        if matches!(
            cmd,
            Command::Auth {
                initial_response: Some(_),
                ..
            } | Command::AuthResponse(_)
        ) {
            continue;
        }
        assert_eq!(cmd.transcript(), want.trim_end_matches("\r\n"));
    }
}

#[test]
fn transcript_redacts_at_the_source() {
    let xoauth2 = B64.encode(b"user=me@example.com\x01auth=Bearer ya29.SECRET\x01\x01");
    let oauthbearer =
        B64.encode(b"n,a=me=2Cx@example.com,\x01host=h\x01port=587\x01auth=Bearer SECRET\x01\x01");
    let cases = [
        (
            Mechanism::Plain,
            "AHVzZXIAU0VDUkVU".to_owned(),
            "AUTH PLAIN <redacted 16 bytes: PLAIN credentials>".to_owned(),
        ),
        (
            Mechanism::XOAuth2,
            xoauth2.clone(),
            format!(
                "AUTH XOAUTH2 <redacted {} bytes: user=me@example.com, bearer token>",
                xoauth2.len()
            ),
        ),
        (
            Mechanism::OAuthBearer,
            oauthbearer.clone(),
            format!(
                "AUTH OAUTHBEARER <redacted {} bytes: user=me,x@example.com, bearer token>",
                oauthbearer.len()
            ),
        ),
        (
            Mechanism::XOAuth2,
            "%%%".to_owned(),
            "AUTH XOAUTH2 <redacted 3 bytes: bearer token>".to_owned(),
        ),
        (
            Mechanism::Other("X".into()),
            "c2VjcmV0".to_owned(),
            "AUTH X <redacted 8 bytes>".to_owned(),
        ),
    ];
    for (mechanism, ir, want) in cases {
        let cmd = Command::Auth {
            mechanism,
            initial_response: Some(ir.clone().into()),
        };
        let t = cmd.transcript();
        assert_eq!(t, want);
        assert!(!t.contains(&ir));
        assert!(!t.contains("SECRET"));
        let dbg = format!("{cmd:?}");
        assert!(!dbg.contains(&ir) && !dbg.contains("SECRET"), "{dbg}");
    }
    let r = Command::AuthResponse("c2VjcmV0".into());
    assert_eq!(r.transcript(), "<redacted 8 bytes>");
    assert!(!format!("{r:?}").contains("c2VjcmV0"));
    assert_eq!(
        redacted(24, Some("LOGIN password")),
        "<redacted 24 bytes: LOGIN password>"
    );
}

#[test]
fn hand_built_values_cannot_inject_lines() {
    let cmd = Command::AuthResponse("abc\r\nRSET\r\n".into());
    assert_eq!(wire(&cmd), "abcRSET\r\n");
    let cmd = Command::Auth {
        mechanism: Mechanism::Other("PLAIN\r\nDATA".into()),
        initial_response: Some("x y\n".into()),
    };
    assert_eq!(wire(&cmd), "AUTH PLAINDATA xy\r\n");
    let cmd = Command::Mail {
        from: None,
        params: MailParams {
            envid: Some("a\r\nRCPT TO:<x@y>".into()),
            ..MailParams::default()
        },
    };
    assert_eq!(wire(&cmd), "MAIL FROM:<> ENVID=a+0D+0ARCPT+20TO:<x@y>\r\n");
    for (cmd, _) in table() {
        let w = cmd.to_bytes();
        assert_eq!(w.iter().filter(|&&b| b == b'\n').count(), 1);
        assert!(w.ends_with(b"\r\n"));
    }
}

/// `smtp-proto`'s server-side parser reads our lines as intended.
#[test]
fn server_parser_reads_our_lines() {
    use smtp_proto::{
        MAIL_BODY_8BITMIME, MAIL_RET_HDRS, MAIL_SMTPUTF8, RCPT_NOTIFY_FAILURE, RCPT_NOTIFY_SUCCESS,
        Request,
    };
    let parse = |c: &Command| Request::parse(&mut c.to_bytes().iter()).map(Request::into_owned);

    let (mail, _) = &table()[11];
    let Ok(Request::Mail { from }) = parse(mail) else {
        panic!("MAIL")
    };
    assert_eq!(from.address, "jörg@example.com");
    assert_eq!(from.size, 12345);
    assert_eq!(
        from.flags & (MAIL_BODY_8BITMIME | MAIL_SMTPUTF8 | MAIL_RET_HDRS),
        MAIL_BODY_8BITMIME | MAIL_SMTPUTF8 | MAIL_RET_HDRS
    );
    assert_eq!(from.env_id.as_deref(), Some("id+1=2 x"));

    let (rcpt, _) = &table()[15];
    let Ok(Request::Rcpt { to }) = parse(rcpt) else {
        panic!("RCPT")
    };
    assert_eq!(to.address, "b@example.org");
    assert_eq!(
        to.flags & (RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE),
        RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE
    );
    assert_eq!(to.orcpt.as_deref(), Some("b+x@example.org"));

    let null = Command::Mail {
        from: None,
        params: MailParams::default(),
    };
    let Ok(Request::Mail { from }) = parse(&null) else {
        panic!("MAIL <>")
    };
    assert_eq!(from.address, "");

    assert_eq!(
        parse(&Command::Ehlo(Domain::new("client.example").unwrap())),
        Ok(Request::Ehlo {
            host: "client.example".into()
        })
    );
    assert_eq!(
        parse(&Command::Bdat {
            size: 7,
            last: true
        }),
        Ok(Request::Bdat {
            chunk_size: 7,
            is_last: true
        })
    );
    for (c, r) in [
        (Command::Data, Request::Data),
        (Command::Rset, Request::Rset),
        (Command::Quit, Request::Quit),
        (Command::StartTls, Request::StartTls),
    ] {
        assert_eq!(parse(&c), Ok(r));
    }
}
