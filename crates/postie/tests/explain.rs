//! The explanation catalog, driven by each provider's exact reply text
//! (provider-facts §1.2, §7, RFC 4954 / RFC 3463 classes).

use postie::explain::{Context, Retry, explain_reply};
use postie::provider::ProviderId;
use postie_proto::reply::{Reply, ReplyParser};

fn wire(s: &str) -> Reply {
    let bytes = s.replace('\n', "\r\n") + "\r\n";
    let (r, used) = ReplyParser::parse(bytes.as_bytes())
        .unwrap()
        .unwrap_or_else(|| panic!("not a whole reply: {s:?}"));
    assert_eq!(used, bytes.len(), "one reply: {s}");
    r
}

struct Case {
    provider: Option<ProviderId>,
    reply: &'static str,
    id: &'static str,
    /// Words that must appear in the summary, causes or fix.
    mentions: &'static [&'static str],
    retry: Retry,
}

const G: Option<ProviderId> = Some(ProviderId::Gmail);
const M: Option<ProviderId> = Some(ProviderId::Office365);

static CASES: &[Case] = &[
    Case {
        provider: G,
        reply: "535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm30121397pfq.64 - gsmtp",
        id: "google-bad-credentials",
        mentions: &["app password", "apppasswords", "postie login work"],
        retry: Retry::No,
    },
    // Without a provider (a one-off --server send) the reply's own text names Google.
    Case {
        provider: None,
        reply: "535-5.7.8 Username and Password not accepted. For more information, go to\n535 5.7.8  https://support.google.com/mail/?p=BadCredentials h26sm - gsmtp",
        id: "google-bad-credentials",
        mentions: &["app password"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "534-5.7.9 Application-specific password required. For more information, go to\n534 5.7.9  https://support.google.com/mail/?p=InvalidSecondFactor h26sm30121397pfq.64 - gsmtp",
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
        id: "google-web-login-required",
        mentions: &["browser", "app password"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "534-5.7.14 <https://accounts.google.com/signin/continue?sarp=1&scc=1&plt=AKgnsbs>\n534-5.7.14 Please log in via your web browser and then try again.\n534-5.7.14  Learn more at\n534 5.7.14  https://support.google.com/mail/answer/78754 h26sm - gsmtp",
        id: "google-web-login-required",
        mentions: &["browser"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "530 5.7.0 Must issue a STARTTLS command first. h26sm - gsmtp",
        id: "google-starttls-first",
        mentions: &["587", "465"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "530-5.7.0 Authentication Required. For more information, go to\n530 5.7.0  https://support.google.com/mail/?p=WantAuthError h26sm - gsmtp",
        id: "auth-required",
        mentions: &["credentials"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "550-5.4.5 Daily user sending limit exceeded. For more information on Gmail\n550-5.4.5 sending limits go to\n550 5.4.5  https://support.google.com/a/answer/166852 h26sm - gsmtp",
        id: "google-daily-quota",
        mentions: &["24 hours", "not a problem with the message"],
        retry: Retry::Hours,
    },
    Case {
        provider: G,
        reply: "550 5.4.5 Daily user sending quota exceeded. https://support.google.com/mail/?p=DailyLimitExceeded h26sm - gsmtp",
        id: "google-daily-quota",
        mentions: &["Wait"],
        retry: Retry::Hours,
    },
    Case {
        provider: G,
        reply: "552-5.2.3 Your message exceeded Google's message size limits. Please visit\n552 5.2.3  https://support.google.com/mail/?p=MaxSizeError h26sm - gsmtp",
        id: "message-too-large",
        mentions: &["base64"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "552 5.3.4 Your message exceeded Google's message size limits. https://support.google.com/mail/?p=MaxSizeError h26sm - gsmtp",
        id: "message-too-large",
        mentions: &["smaller"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "452 4.5.3 Your message has too many recipients. https://support.google.com/mail/?p=TooManyRecipientsError h26sm - gsmtp",
        id: "google-too-many-recipients",
        mentions: &["100"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "421 4.7.0 Try again later, closing connection. h26sm - gsmtp",
        id: "service-closing",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "454 4.7.0 Too many login attempts, please try again later. h26sm - gsmtp",
        id: "too-many-logins",
        mentions: &["Wait"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "454 4.7.0 Cannot authenticate due to a temporary system problem. Try again later. h26sm - gsmtp",
        id: "transient",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: G,
        reply: "550 5.7.26 Unauthenticated email from example.com is not accepted due to domain's DMARC policy. h26sm - gsmtp",
        id: "google-dmarc-unauthenticated",
        mentions: &["DMARC"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "501 5.5.2 Syntax error, cannot decode response h26sm - gsmtp",
        id: "cannot-decode-auth",
        mentions: &["base64"],
        retry: Retry::No,
    },
    Case {
        provider: G,
        reply: "504 5.7.4 XOAUTH is no longer supported h26sm - gsmtp",
        id: "google-xoauth-obsolete",
        mentions: &["XOAUTH2"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. [SN4PR0201CA0045.namprd02.prod.outlook.com]",
        id: "microsoft-smtp-auth-disabled-tenant",
        mentions: &["Set-TransportConfig", "Set-CASMailbox", "admin"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.139 Authentication unsuccessful, user is locked by your organization's security defaults policy. Contact your administrator. [BN9PR03CA0123.namprd03.prod.outlook.com]",
        id: "microsoft-security-defaults",
        mentions: &["security defaults", "OAuth"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.139 Authentication unsuccessful, the request did not meet the criteria to be authenticated successfully. Contact your administrator. [MN2PR15CA0012.namprd15.prod.outlook.com]",
        id: "microsoft-criteria-not-met",
        mentions: &["Conditional Access", "Set-CASMailbox"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "535 5.7.3 Authentication unsuccessful [SN2PR00CA0018.namprd00.prod.outlook.com]",
        id: "microsoft-auth-unsuccessful",
        mentions: &["SMTP.Send", "postie login work"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "530 5.7.57 Client not authenticated to send mail. [AM0PR02CA0001.eurprd02.prod.outlook.com 2024-01-01T00:00:00.000Z]",
        id: "microsoft-not-authenticated",
        mentions: &["OAuth"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "550 5.7.30 Basic authentication is not supported for Client Submission.",
        id: "microsoft-basic-auth-retired",
        mentions: &["OAuth", "postie login work"],
        retry: Retry::No,
    },
    Case {
        provider: M,
        reply: "554 5.2.252 SendAsDenied; me@company.com not allowed to send as boss@company.com; STOREDRV.Submission.Exception:SendAsDeniedException.MapiExceptionSendAsDenied",
        id: "microsoft-send-as-denied",
        mentions: &["Send As"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "550 5.1.1 <nobody@example.com>: Recipient address rejected: User unknown",
        id: "mailbox-unknown",
        mentions: &["address"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "535 5.7.8 Error: authentication failed: authentication failure",
        id: "bad-credentials",
        mentions: &["password"],
        retry: Retry::No,
    },
    Case {
        provider: None,
        reply: "451 4.3.0 Temporary lookup failure",
        id: "transient",
        mentions: &["later"],
        retry: Retry::Later,
    },
    Case {
        provider: None,
        reply: "538 5.7.11 Encryption required for requested authentication mechanism",
        id: "encryption-required",
        mentions: &["TLS"],
        retry: Retry::No,
    },
];

#[test]
fn every_catalog_case_names_its_cause_and_fix() {
    for c in CASES {
        let reply = wire(c.reply);
        let ctx = Context {
            provider: c.provider,
            account: Some("work"),
            host: None,
        };
        let x =
            explain_reply(&reply, &ctx).unwrap_or_else(|| panic!("no explanation for {}", c.reply));
        assert_eq!(x.id, c.id, "for {}", c.reply);
        assert_eq!(x.retry, c.retry, "retry advice for {}", c.reply);
        assert!(!x.fix.is_empty(), "{} has no fix", x.id);
        let all =
            format!("{} {} {}", x.summary, x.causes.join(" "), x.fix.join(" ")).to_lowercase();
        for m in c.mentions {
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

#[test]
fn successful_replies_are_not_explained_as_failures() {
    let ctx = Context::default();
    assert!(explain_reply(&wire("250 2.0.0 OK  1700000000 h26sm - gsmtp"), &ctx).is_none());
}
