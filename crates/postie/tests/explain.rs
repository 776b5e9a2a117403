//! The explanation catalog, driven by each provider's exact reply text
//! (provider-facts §1.2, §7, §8, RFC 4954 / RFC 3463 classes), sent by a
//! scripted SMTP server at the command where the provider sends it.

use postie::config::{Config, PasswordSource};
use postie::endpoint::Endpoint;
use postie::error::Error;
use postie::explain::{Action, Context, Retry, explain, explain_reply, reply_catalog_ids, say};
use postie::mailer::{Account, Mailer};
use postie::message::Draft;
use postie::provider::{ProviderId, TlsMode};
use postie::secret::Secrets;
use postie_proto::reply::{Reply, ReplyParser};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

fn wire(s: &str) -> Reply {
    let bytes = s.replace('\n', "\r\n") + "\r\n";
    let (r, used) = ReplyParser::parse(bytes.as_bytes())
        .unwrap()
        .unwrap_or_else(|| panic!("not a whole reply: {s:?}"));
    assert_eq!(used, bytes.len(), "one reply: {s}");
    r
}

/// The command the scripted server answers with the case's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    Greeting,
    Auth,
    Mail,
    Rcpt,
    Data,
}

struct Case {
    provider: Option<ProviderId>,
    reply: &'static str,
    at: At,
    id: &'static str,
    /// Words that must appear in the summary, causes or fix.
    mentions: &'static [&'static str],
    retry: Retry,
}

const G: Option<ProviderId> = Some(ProviderId::Gmail);
const M: Option<ProviderId> = Some(ProviderId::Office365);
const Y: Option<ProviderId> = Some(ProviderId::Yahoo);
const I: Option<ProviderId> = Some(ProviderId::Icloud);
const F: Option<ProviderId> = Some(ProviderId::Fastmail);

static CASES: &[Case] = &[
    Case {
        provider: G,
        reply: "535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm30121397pfq.64 - gsmtp",
        at: At::Auth,
        id: "google-bad-credentials",
        mentions: &["app password", "apppasswords", "postie login work"],
        retry: Retry::No,
    },
    // Without a provider (a one-off --server send) the reply's own text names Google.
    Case {
        provider: None,
        reply: "535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm - gsmtp",
        at: At::Auth,
        id: "google-bad-credentials",
        mentions: &["app password"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "534-5.7.9 Application-specific password required. For more information, go to\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm30121397pfq.64 - gsmtp",
        at: At::Auth,
        id: "google-app-password-required",
        mentions: &[
            "2-Step Verification",
            "https://myaccount.google.com/apppasswords",
            "OAuth",
            "postie login work",
        ],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "534-5.7.9 Please log in with your web browser and then try again. For more information, go to\n534 5.7.9 https://support.google.com/mail/?p=WebLoginRequired h26sm - gsmtp",
        at: At::Auth,
        id: "google-web-login-required",
        mentions: &["browser", "app password"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1&scc=1&plt=AKgnsbs>\n534-5.7.14 Please log in via your web browser and then try again.\n534-5.7.14  Learn more at\n534 5.7.14  https://support.google.com/mail/answer/78754 h26sm - gsmtp",
        at: At::Auth,
        id: "google-web-login-required",
        mentions: &["browser"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "530 5.7.0 Must issue a STARTTLS command first. h26sm - gsmtp",
        at: At::Mail,
        id: "google-starttls-first",
        mentions: &["587", "465"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "530-5.7.0 Authentication Required. For more information, go to\n530 5.7.0  https://support.google.com/mail/?p=WantAuthError h26sm - gsmtp",
        at: At::Mail,
        id: "auth-required",
        mentions: &["credentials"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\n550-5.4.5 sending limits go to\n550 5.4.5  https://support.google.com/a/answer/166852 h26sm - gsmtp",
        at: At::Mail,
        id: "google-daily-quota",
        mentions: &["24 hours", "not a problem with the message"],
        retry: Retry::Hours,
    },
    Case {
        provider: G,
        reply: "550 5.4.5 Daily user sending quota exceeded. https://support.google.com/mail/?p=DailyLimitExceeded h26sm - gsmtp",
        at: At::Mail,
        id: "google-daily-quota",
        mentions: &["Wait"],
        retry: Retry::Hours,
    },
    Case {
        provider: G,
        reply: "552-5.2.3 Your message exceeded Google's message size limits. Please visit\n552 5.2.3  https://support.google.com/mail/?p=MaxSizeError h26sm - gsmtp",
        at: At::Data,
        id: "message-too-large",
        mentions: &["base64"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "552 5.3.4 Your message exceeded Google's message size limits. https://support.google.com/mail/?p=MaxSizeError h26sm - gsmtp",
        at: At::Data,
        id: "message-too-large",
        mentions: &["smaller"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "452 4.5.3 Your message has too many recipients. https://support.google.com/mail/?p=TooManyRecipientsError h26sm - gsmtp",
        at: At::Rcpt,
        id: "google-too-many-recipients",
        mentions: &["100"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "421 4.7.0 Try again later, closing connection. h26sm - gsmtp",
        at: At::Greeting,
        id: "service-closing",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "454 4.7.0 Too many login attempts, please try again later. h26sm - gsmtp",
        at: At::Auth,
        id: "too-many-logins",
        mentions: &["Wait"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "454 4.7.0 Cannot authenticate due to a temporary system problem. Try again later. h26sm - gsmtp",
        at: At::Auth,
        id: "transient",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy. h26sm - gsmtp",
        at: At::Data,
        id: "google-dmarc-unauthenticated",
        mentions: &["DMARC"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "501 5.5.2 Syntax error, cannot decode response h26sm - gsmtp",
        at: At::Auth,
        id: "cannot-decode-auth",
        mentions: &["base64"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "504 5.7.4 XOAUTH is no longer supported h26sm - gsmtp",
        at: At::Auth,
        id: "google-xoauth-obsolete",
        mentions: &["XOAUTH2"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0201CA0045.namprd02.prod.outlook.com]",
        at: At::Auth,
        id: "microsoft-smtp-auth-disabled-tenant",
        mentions: &["Set-TransportConfig", "Set-CASMailbox", "admin"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [BN9PR03CA0123.namprd03.prod.outlook.com]",
        at: At::Auth,
        id: "microsoft-security-defaults",
        mentions: &["security defaults", "OAuth"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [MN2PR15CA0012.namprd15.prod.outlook.com]",
        at: At::Auth,
        id: "microsoft-criteria-not-met",
        mentions: &["Conditional Access", "Set-CASMailbox"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]",
        at: At::Auth,
        id: "microsoft-auth-unsuccessful",
        mentions: &["SMTP.Send", "postie login work"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "530 5.7.57 Client not authenticated to send mail. [AM0PR02CA0001.eurprd02.prod.outlook.com 2024-01-01T00:00:00.000Z]",
        at: At::Mail,
        id: "microsoft-not-authenticated",
        mentions: &["OAuth"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "550 5.7.30 Basic authentication is not supported for Client Submission.",
        at: At::Auth,
        id: "microsoft-basic-auth-retired",
        mentions: &["OAuth", "postie login work"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "554 5.2.252 SendAsDenied; me@company.com not allowed to send as boss@company.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
        at: At::Data,
        id: "microsoft-send-as-denied",
        mentions: &["Send As"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown",
        at: At::Rcpt,
        id: "mailbox-unknown",
        mentions: &["address"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "535 5.7.8 Error: authentication failed: authentication failure",
        at: At::Auth,
        id: "bad-credentials",
        mentions: &["password"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "451 4.3.0 Temporary lookup failure",
        at: At::Data,
        id: "transient",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: None,
        reply: "538 5.7.11 Encryption required for requested authentication mechanism",
        at: At::Auth,
        id: "encryption-required",
        mentions: &["TLS"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "421 4.3.0 Temporary System Problem. Try again later. h26sm - gsmtp",
        at: At::Mail,
        id: "service-closing",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "421 4.4.5 Server busy, try again later. h26sm - gsmtp",
        at: At::Rcpt,
        id: "service-closing",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "530-5.5.1 Authentication Required. Learn more at\n530 5.5.1  https://support.google.com/mail/?p=WantAuthError h26sm - gsmtp",
        at: At::Mail,
        id: "auth-required",
        mentions: &["credentials"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "421-4.7.26 This mail has been rate limited because it is unauthenticated. Gmail requires all senders to\n421 4.7.26 authenticate with either SPF or DKIM. h26sm - gsmtp",
        at: At::Data,
        id: "google-unauthenticated-rate-limited",
        mentions: &["SPF", "DKIM", "answer/81126"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "550-5.7.26 This message does not have authentication information or fails to pass\n550 5.7.26 authentication checks (SPF or DKIM). h26sm - gsmtp",
        at: At::Data,
        id: "google-dmarc-unauthenticated",
        mentions: &["SPF", "DKIM"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "550-5.7.1 Our system has detected that this message is likely unsolicited mail. To reduce the\n550 5.7.1 amount of spam sent to Gmail, this message has been blocked. h26sm - gsmtp",
        at: At::Data,
        id: "google-likely-spam",
        mentions: &["spam", "DKIM"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "534 5.7.9 Authentication mechanism is too weak",
        at: At::Auth,
        id: "mechanism-too-weak",
        mentions: &["app password", "postie login work"],
        retry: Retry::No,
    },
    Case {
        provider: Y,
        reply: "535 5.7.0 (#AUTH005) Too many bad auth attempts.",
        at: At::Auth,
        id: "yahoo-app-password-required",
        mentions: &[
            "app password",
            "https://login.yahoo.com/myaccount/security/app-password",
            "postie account add work --provider yahoo",
        ],
        retry: Retry::No,
    },
    Case {
        provider: I,
        reply: "535 5.7.8 Error: authentication failed: bad user name or password",
        at: At::Auth,
        id: "icloud-app-password-required",
        mentions: &[
            "app-specific password",
            "https://account.apple.com",
            "xxxx-xxxx-xxxx-xxxx",
        ],
        retry: Retry::No,
    },
    Case {
        provider: F,
        reply: "535 5.7.0 authentication failed",
        at: At::Auth,
        id: "fastmail-app-password-required",
        mentions: &[
            "app password",
            "https://app.fastmail.com/settings/security/apps",
            "SMTP access",
        ],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "432 4.7.12 A password transition is needed",
        at: At::Auth,
        id: "password-transition",
        mentions: &["password"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "500 5.5.6 Authentication Exchange line is too long",
        at: At::Auth,
        id: "auth-line-too-long",
        mentions: &["334", "auth_mechanism"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "504 5.5.4 Unrecognized authentication type",
        at: At::Auth,
        id: "auth-mechanism-unknown",
        mentions: &["auth_mechanism", "postie doctor work"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "552 5.2.2 <bob@example.com>: Recipient address rejected: Mailbox full",
        at: At::Rcpt,
        id: "mailbox-full",
        mentions: &["full"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "554 5.7.1 <bob@example.net>: Relay access denied",
        at: At::Rcpt,
        id: "relay-denied",
        mentions: &["authentication", "587", "postie doctor work"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "501 5.1.3 Bad recipient address syntax",
        at: At::Rcpt,
        id: "address-invalid",
        mentions: &["address"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "550 5.7.1 Sender address rejected: not owned by user me@example.com",
        at: At::Mail,
        id: "policy-refused",
        mentions: &["policy", "From"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "554 5.6.0 Message rejected: invalid header",
        at: At::Data,
        id: "permanent",
        mentions: &["refused"],
        retry: Retry::No,
    },
    Case {
        provider: Some(ProviderId::Sandbox),
        reply: "534-5.7.9 Application-specific password required. For more information, go to\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h6sm62226883rwz.16 - gsmtp",
        at: At::Auth,
        id: "sandbox-app-password-required",
        mentions: &["postie sandbox", "abcd efgh ijkl mnop", "postie login work"],
        retry: Retry::No,
    },
    Case {
        provider: Some(ProviderId::Sandbox),
        reply: "535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h6sm62226883rwz.16 - gsmtp",
        at: At::Auth,
        id: "sandbox-bad-credentials",
        mentions: &["app password", "in memory"],
        retry: Retry::No,
    },
];

/// A scripted SMTP server on loopback: a plain ESMTP dialogue that answers
/// the command `at` with `reply` (exact provider text, CRLF line ends), and
/// 2yz to everything before it. One connection.
async fn scripted_server(reply: &'static str, at: At) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let wire_reply = reply.replace('\n', "\r\n") + "\r\n";
    tokio::spawn(async move {
        let (sock, _) = listener.accept().await.unwrap();
        let (rd, mut wr) = sock.into_split();
        let mut rd = BufReader::new(rd);
        let answer = |hit: bool, ok: &str| {
            if hit {
                wire_reply.clone()
            } else {
                ok.to_string()
            }
        };
        let first = answer(at == At::Greeting, "220 scripted.test ESMTP\r\n");
        wr.write_all(first.as_bytes()).await.unwrap();
        if at == At::Greeting {
            return;
        }
        let mut line = String::new();
        loop {
            line.clear();
            if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let verb = line
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            let out = match verb.as_str() {
                "EHLO" => {
                    "250-scripted.test\r\n250-AUTH PLAIN\r\n250 ENHANCEDSTATUSCODES\r\n".to_string()
                }
                "AUTH" => answer(at == At::Auth, "235 2.7.0 Accepted\r\n"),
                "MAIL" => answer(at == At::Mail, "250 2.1.0 OK\r\n"),
                "RCPT" => answer(at == At::Rcpt, "250 2.1.5 OK\r\n"),
                "DATA" => {
                    wr.write_all(b"354 Go ahead\r\n").await.unwrap();
                    loop {
                        line.clear();
                        if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        if line == ".\r\n" {
                            break;
                        }
                    }
                    answer(at == At::Data, "250 2.0.0 OK queued\r\n")
                }
                "RSET" | "NOOP" => "250 2.0.0 OK\r\n".to_string(),
                "QUIT" => {
                    let _ = wr.write_all(b"221 2.0.0 Bye\r\n").await;
                    return;
                }
                _ => "502 5.5.1 Unrecognized command\r\n".to_string(),
            };
            if wr.write_all(out.as_bytes()).await.is_err() {
                return;
            }
        }
    });
    port
}

/// The action a `postie ...` command of a case's mentions stands for.
fn action_named(m: &str) -> Option<Action> {
    let words: Vec<&str> = m.strip_prefix("postie ")?.split_whitespace().collect();
    Some(match words.as_slice() {
        ["login", a] => Action::SignIn {
            account: Some(a.to_string()),
        },
        ["doctor", a] => Action::CheckAccount {
            account: a.to_string(),
        },
        ["sandbox"] => Action::StartSandbox,
        ["account", "add", a, "--provider", p] => Action::AddAccount {
            account: Some(a.to_string()),
            provider: Some(p.to_string()),
        },
        other => panic!("no action for {other:?}"),
    })
}

/// Send through the scripted server and return the failure postie reports.
async fn failure_from(c: &Case) -> Error {
    let port = scripted_server(c.reply, c.at).await;
    let mut endpoint = Endpoint::from_url(&format!("smtp://127.0.0.1:{port}")).unwrap();
    endpoint.tls = TlsMode::None;
    let account = Account::from_endpoint(endpoint).with_password(
        "me@example.com",
        PasswordSource::Given("app-password".to_string().into()),
    );
    let mailer = Mailer::new(
        Config::default(),
        std::env::temp_dir(),
        Secrets::lazy(|| unreachable!("no secret is stored")),
    );
    let msg = Draft {
        from: "me@example.com".into(),
        to: vec!["bob@example.com".into()],
        subject: Some("catalog".into()),
        text: Some("hello".into()),
        ..Draft::default()
    }
    .build()
    .unwrap();
    match mailer.send(&account, &msg).await {
        Err(e) => e,
        Ok(report) => report
            .failure()
            .unwrap_or_else(|| panic!("{:?}: the send succeeded", c.reply)),
    }
}

/// Each case's exact provider reply is sent by a scripted server at the
/// command where the provider sends it; postie's error carries the reply,
/// and the catalog explains it with the right entry, cause and fix.
#[tokio::test]
async fn every_catalog_case_names_its_cause_and_fix() {
    for c in CASES {
        let err = failure_from(c).await;
        let got = err
            .reply()
            .unwrap_or_else(|| panic!("no reply kept for {}: {err}", c.reply));
        assert_eq!(got, &wire(c.reply), "the reply as received");
        let ctx = Context {
            provider: c.provider,
            account: Some("work"),
            host: None,
        };
        let x = explain(&err, &ctx);
        assert_eq!(x.id, c.id, "for {}", c.reply);
        // The pure lookup agrees with the path through a real session.
        assert_eq!(explain_reply(got, &ctx).map(|x| x.id), Some(c.id));
        assert_eq!(x.retry, c.retry, "retry advice for {}", c.reply);
        assert!(!x.fix.is_empty(), "{} has no fix", x.id);
        let all =
            format!("{} {} {}", x.summary, x.causes.join(" "), x.fix.join(" ")).to_lowercase();
        for m in c.mentions {
            // A postie command is an action the fix names: the library
            // lists it, and its wording stands in the text.
            if let Some(a) = action_named(m) {
                assert!(
                    x.actions.contains(&a),
                    "{}: {a:?} not in {:?}",
                    x.id,
                    x.actions
                );
                assert!(
                    all.contains(&say(&a).to_lowercase()),
                    "{}: {a:?} not worded in {all}",
                    x.id
                );
                continue;
            }
            assert!(
                all.contains(&m.to_lowercase()),
                "{}: '{m}' missing in {all}",
                x.id
            );
        }
        assert!(
            !all.contains("{account}") && !all.contains("{provider}"),
            "unfilled placeholder in {}",
            x.id
        );
    }
}

/// Entries without a test do not count: every entry of the reply catalog
/// is reached by at least one case above.
#[test]
fn every_reply_entry_has_a_case() {
    let tested: std::collections::HashSet<&str> = CASES.iter().map(|c| c.id).collect();
    let missing: Vec<_> = reply_catalog_ids()
        .into_iter()
        .filter(|id| !tested.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "catalog entries without a case: {missing:?}"
    );
}

#[test]
fn successful_replies_are_not_explained_as_failures() {
    let ctx = Context::default();
    assert!(explain_reply(&wire("250 2.0.0 OK  1700000000 h26sm - gsmtp"), &ctx).is_none());
}

/// A 535 that answers a bearer token with an OAuth error detail (RFC 7628's
/// `{"status":"invalid_token"}`) is about the token, not a password: its
/// explanation says so, names the detail and the sign-in, and never tells
/// the user to fix a password.
#[test]
fn a_refused_bearer_token_is_not_explained_as_a_password() {
    let ctx = Context::default();
    let reply = wire("535 5.7.8 Error: authentication failed: (reason unavailable)");
    let plain =
        postie::Error::new(postie::ErrorKind::Credentials, "refused").with_reply(reply.clone());
    assert_eq!(postie::explain::explain(&plain, &ctx).id, "bad-credentials");
    let bearer = plain.with_sasl(postie_proto::sasl::SaslServerError::from_challenge(
        br#"{"status":"invalid_token"}"#,
    ));
    let x = postie::explain::explain(&bearer, &ctx);
    assert_eq!(x.id, "oauth-token-refused");
    let all = format!("{} {} {}", x.summary, x.causes.join(" "), x.fix.join(" ")).to_lowercase();
    assert!(
        all.contains("invalid_token") && all.contains("access token"),
        "{all}"
    );
    assert!(!all.contains("password is wrong"), "{all}");
    assert!(
        x.actions
            .iter()
            .any(|a| matches!(a, postie::wording::Action::SignIn { .. })),
        "{x:?}"
    );
}
