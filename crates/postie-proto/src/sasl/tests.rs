use super::*;

const GOOGLE_TOKEN: &str = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg";
/// From Google's "OAuth 2.0 Mechanism" page.
const GOOGLE_XOAUTH2: &str = "dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==";
/// `{"status":"400","schemes":"Bearer","scope":"https://mail.google.com/"}`, live Gmail.
const GMAIL_ERROR_400: &str = "eyJzdGF0dXMiOiI0MDAiLCJzY2hlbWVzIjoiQmVhcmVyIiwic2NvcGUiOiJodHRwczovL21haWwuZ29vZ2xlLmNvbS8ifQ==";
/// `{"status":"401","schemes":"bearer mac","scope":"https://mail.google.com/"}\n`, Google's doc.
const GOOGLE_DOC_ERROR_401: &str = "eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K";
/// RFC 7628 §3.2.2 style: `{"status":"invalid_token","scope":"example_scope",…}`.
const RFC7628_ERROR: &str = "eyJzdGF0dXMiOiJpbnZhbGlkX3Rva2VuIiwic2NvcGUiOiJleGFtcGxlX3Njb3BlIiwib3BlbmlkLWNvbmZpZ3VyYXRpb24iOiJodHRwczovL2V4YW1wbGUuY29tLy53ZWxsLWtub3duL29wZW5pZC1jb25maWd1cmF0aW9uIn0=";

fn password(u: &str, p: &str) -> Credentials {
    Credentials::Password {
        username: u.into(),
        password: p.into(),
    }
}

fn bearer(u: &str, t: &str) -> Credentials {
    Credentials::Bearer {
        user: u.into(),
        token: t.into(),
    }
}

fn expose(s: SecretString) -> String {
    s.expose_secret().to_owned()
}

fn respond(step: SaslStep) -> String {
    match step {
        SaslStep::Respond(r) => expose(r),
        other => panic!("expected a response, got {other:?}"),
    }
}

#[test]
fn xoauth2_matches_googles_vector() {
    let creds = bearer("someuser@example.com", GOOGLE_TOKEN);
    let mut c = SaslClient::new(Mechanism::XOAuth2, &creds, "smtp.gmail.com", 587).unwrap();
    assert_eq!(c.initial_response_len(), Some(GOOGLE_XOAUTH2.len()));
    assert_eq!(expose(c.initial_response().unwrap()), GOOGLE_XOAUTH2);
    assert!(c.initial_response().is_none(), "taken once");
    assert_eq!(
        c.last_response_note(),
        &ResponseNote::Secret("user=someuser@example.com, bearer token".into())
    );
}

#[test]
fn oauthbearer_matches_rfc7628_example() {
    // RFC 7628 §4.1 (IMAP port 143 in the RFC's example).
    let creds = bearer(
        "user@example.com",
        "vF9dft4qmTc2Nvb3RlckBhbHRhdmlzdGEuY29tCg==",
    );
    let mut c = SaslClient::new(Mechanism::OAuthBearer, &creds, "server.example.com", 143).unwrap();
    assert_eq!(
        expose(c.initial_response().unwrap()),
        "bixhPXVzZXJAZXhhbXBsZS5jb20sAWhvc3Q9c2VydmVyLmV4YW1wbGUuY29tAXBvcnQ9MTQzAWF1dGg9QmVhcmVyIHZGOWRmdDRxbVRjMk52YjNSbGNrQmhiSFJoZG1semRHRXVZMjl0Q2c9PQEB"
    );
}

#[test]
fn oauthbearer_escapes_the_authzid() {
    let creds = bearer("a,b=c@example.com", "t");
    let mut c = SaslClient::new(Mechanism::OAuthBearer, &creds, "h", 587).unwrap();
    let raw = B64.decode(expose(c.initial_response().unwrap())).unwrap();
    assert_eq!(
        raw,
        b"n,a=a=2Cb=3Dc@example.com,\x01host=h\x01port=587\x01auth=Bearer t\x01\x01"
    );
}

#[test]
fn oauthbearer_without_host_omits_it() {
    let mut c = SaslClient::new(Mechanism::OAuthBearer, &bearer("u@x", "t"), "", 587).unwrap();
    let raw = B64.decode(expose(c.initial_response().unwrap())).unwrap();
    assert_eq!(raw, b"n,a=u@x,\x01port=587\x01auth=Bearer t\x01\x01");
}

#[test]
fn plain_vector() {
    let mut c = SaslClient::new(Mechanism::Plain, &password("user", "pass"), "h", 587).unwrap();
    assert_eq!(expose(c.initial_response().unwrap()), "AHVzZXIAcGFzcw==");
    // A further challenge makes no sense for PLAIN.
    assert!(matches!(c.step(""), SaslStep::Invalid(_)));
}

#[test]
fn plain_without_initial_response_answers_the_empty_challenge() {
    let mut c = SaslClient::new(Mechanism::Plain, &password("user", "pass"), "h", 587).unwrap();
    assert_eq!(respond(c.step("")), "AHVzZXIAcGFzcw==");
}

#[test]
fn login_counts_steps_not_prompt_text() {
    let mut c = SaslClient::new(
        Mechanism::Login,
        &password("user@x.example", "pw"),
        "h",
        587,
    )
    .unwrap();
    assert_eq!(c.initial_response_len(), None);
    assert!(c.initial_response().is_none());
    // Standard prompts "Username:" and "Password:".
    assert_eq!(
        respond(c.step("VXNlcm5hbWU6")),
        B64.encode("user@x.example")
    );
    assert_eq!(
        c.last_response_note(),
        &ResponseNote::Secret("LOGIN username".into())
    );
    assert_eq!(respond(c.step("UGFzc3dvcmQ6")), B64.encode("pw"));
    assert_eq!(
        c.last_response_note(),
        &ResponseNote::Secret("LOGIN password".into())
    );
    assert!(matches!(c.step(""), SaslStep::Invalid(_)));

    // Localised prompts ("Benutzername:", "Passwort:") make no difference.
    let mut c = SaslClient::new(Mechanism::Login, &password("u", "p"), "h", 587).unwrap();
    assert_eq!(
        respond(c.step(&B64.encode("Benutzername:"))),
        B64.encode("u")
    );
    assert_eq!(respond(c.step(&B64.encode("Passwort:"))), B64.encode("p"));
}

#[test]
fn xoauth2_error_challenge_gets_an_empty_response() {
    let creds = bearer("someuser@example.com", GOOGLE_TOKEN);
    let mut c = SaslClient::new(Mechanism::XOAuth2, &creds, "smtp.gmail.com", 587).unwrap();
    c.initial_response();
    let SaslStep::ServerError { response, detail } = c.step(GMAIL_ERROR_400) else {
        panic!("expected the error challenge to be recognised");
    };
    assert_eq!(expose(response), "");
    assert_eq!(detail.status.as_deref(), Some("400"));
    assert_eq!(detail.schemes.as_deref(), Some("Bearer"));
    assert_eq!(detail.scope.as_deref(), Some("https://mail.google.com/"));
    assert!(detail.json.is_some());
    assert_eq!(c.last_response_note(), &ResponseNote::ErrorAcknowledgement);
}

#[test]
fn xoauth2_without_initial_response_sends_it_after_334() {
    let creds = bearer("me@example.com", "tok");
    let mut c = SaslClient::new(Mechanism::XOAuth2, &creds, "h", 587).unwrap();
    let first = respond(c.step(""));
    assert_eq!(
        B64.decode(first).unwrap(),
        b"user=me@example.com\x01auth=Bearer tok\x01\x01"
    );
    // Then the error challenge, documented form with a trailing newline.
    let SaslStep::ServerError { response, detail } = c.step(GOOGLE_DOC_ERROR_401) else {
        panic!("expected an error");
    };
    assert_eq!(expose(response), "");
    assert_eq!(detail.status.as_deref(), Some("401"));
    assert_eq!(detail.schemes.as_deref(), Some("bearer mac"));
}

#[test]
fn oauthbearer_error_challenge_gets_ctrl_a() {
    let creds = bearer("user@example.com", "tok");
    let mut c = SaslClient::new(Mechanism::OAuthBearer, &creds, "h", 587).unwrap();
    c.initial_response();
    let SaslStep::ServerError { response, detail } = c.step(RFC7628_ERROR) else {
        panic!("expected an error");
    };
    assert_eq!(expose(response), "AQ==");
    assert_eq!(detail.status.as_deref(), Some("invalid_token"));
    assert_eq!(detail.scope.as_deref(), Some("example_scope"));
    assert_eq!(detail.schemes, None);
    let json = detail.json.unwrap();
    assert_eq!(
        json["openid-configuration"],
        "https://example.com/.well-known/openid-configuration"
    );
}

#[test]
fn server_error_parsing_is_lenient() {
    let e = SaslServerError::from_challenge(br#"{"STATUS":401,"Schemes":"BEARER"}"#);
    assert_eq!(e.status.as_deref(), Some("401"));
    assert_eq!(e.schemes.as_deref(), Some("BEARER"));
    let e = SaslServerError::from_challenge(b"not json at all");
    assert_eq!(e.raw, "not json at all");
    assert!(e.json.is_none() && e.status.is_none());
    let e = SaslServerError::from_challenge(b"[1,2]");
    assert!(e.json.is_some() && e.status.is_none());
}

#[test]
fn undecodable_challenge_is_invalid() {
    let mut c = SaslClient::new(Mechanism::Login, &password("u", "p"), "h", 587).unwrap();
    assert!(matches!(c.step("not base64!"), SaslStep::Invalid(_)));
}

#[test]
fn construction_errors() {
    let pw = password("u", "p");
    let tok = bearer("u", "t");
    let cases: Vec<(Mechanism, &Credentials, SaslError)> = vec![
        (
            Mechanism::Plain,
            &tok,
            SaslError::CredentialsMismatch {
                mechanism: Mechanism::Plain,
                needs: "a password",
                given: "a bearer token",
            },
        ),
        (
            Mechanism::XOAuth2,
            &pw,
            SaslError::CredentialsMismatch {
                mechanism: Mechanism::XOAuth2,
                needs: "a bearer token",
                given: "a password",
            },
        ),
        (
            Mechanism::CramMd5,
            &pw,
            SaslError::Unsupported(Mechanism::CramMd5),
        ),
        (
            Mechanism::Other("SCRAM-SHA-256".into()),
            &pw,
            SaslError::Unsupported(Mechanism::Other("SCRAM-SHA-256".into())),
        ),
    ];
    for (m, creds, err) in cases {
        assert_eq!(SaslClient::new(m, creds, "h", 1).unwrap_err(), err);
    }
    assert!(matches!(
        SaslClient::new(Mechanism::Plain, &password("a\0b", "p"), "h", 1),
        Err(SaslError::InvalidCredentials {
            field: "user name",
            ..
        })
    ));
    assert!(matches!(
        SaslClient::new(Mechanism::XOAuth2, &bearer("a", "t\x01"), "h", 1),
        Err(SaslError::InvalidCredentials { field: "token", .. })
    ));
}

#[test]
fn mechanism_names() {
    for (s, m, shown) in [
        ("PLAIN", Mechanism::Plain, "PLAIN"),
        ("plain", Mechanism::Plain, "PLAIN"),
        ("Login", Mechanism::Login, "LOGIN"),
        ("xoauth2", Mechanism::XOAuth2, "XOAUTH2"),
        ("OAUTHBEARER", Mechanism::OAuthBearer, "OAUTHBEARER"),
        ("cram-md5", Mechanism::CramMd5, "CRAM-MD5"),
        (
            "plain-clienttoken",
            Mechanism::Other("PLAIN-CLIENTTOKEN".into()),
            "PLAIN-CLIENTTOKEN",
        ),
        ("XOAUTH", Mechanism::Other("XOAUTH".into()), "XOAUTH"),
    ] {
        assert_eq!(s.parse::<Mechanism>().unwrap(), m, "{s}");
        assert_eq!(m.to_string(), shown);
    }
    for bad in ["", "PL AIN", "A\r\nB", "TOO-LONG-FOR-A-SASL-NAME", "é"] {
        assert!(bad.parse::<Mechanism>().is_err(), "{bad:?}");
    }
    // A hand-built name cannot inject anything.
    assert_eq!(Mechanism::Other("x\r\nrset".into()).name(), "XRSET");
}

#[test]
fn choose_table() {
    use Mechanism::*;
    let gmail = [
        Login,
        Plain,
        XOAuth2,
        Other("PLAIN-CLIENTTOKEN".into()),
        OAuthBearer,
    ];
    let microsoft = [Login, XOAuth2];
    let pw = password("u", "p");
    let tok = bearer("u", "t");
    type Case<'a> = (
        &'a [Mechanism],
        &'a Credentials,
        Option<Mechanism>,
        Option<Mechanism>,
    );
    let cases: Vec<Case> = vec![
        (&gmail, &pw, None, Some(Plain)),
        (&gmail, &tok, None, Some(OAuthBearer)),
        (&microsoft, &pw, None, Some(Login)),
        (&microsoft, &tok, None, Some(XOAuth2)),
        (&gmail, &pw, Some(Login), Some(Login)),
        (&gmail, &tok, Some(XOAuth2), Some(XOAuth2)),
        // A preference that does not fit or is not offered falls back.
        (&gmail, &tok, Some(Plain), Some(OAuthBearer)),
        (&microsoft, &pw, Some(Plain), Some(Login)),
        (&[CramMd5], &pw, None, None),
        (&[], &tok, None, None),
        (&[Plain], &tok, None, None),
    ];
    for (offered, creds, pref, want) in cases {
        assert_eq!(
            choose(offered, creds, pref.as_ref()),
            want,
            "{offered:?} {pref:?}"
        );
    }
}

#[test]
fn debug_never_shows_secrets() {
    let creds = bearer("me@example.com", "SECRET-TOKEN");
    let mut c = SaslClient::new(Mechanism::XOAuth2, &creds, "h", 587).unwrap();
    let ir = c.initial_response().unwrap();
    let shown = format!("{creds:?} {c:?} {ir:?} {:?}", password("u", "SECRET-PW"));
    assert!(!shown.contains("SECRET"), "{shown}");
    assert!(!shown.contains(ir.expose_secret()), "{shown}");
}
