//! The credentials check: the password is there and has the provider's
//! app-password shape; for OAuth a refresh token is stored, a token request
//! succeeds, and the token's scope fits SMTP.

use super::*;

pub(super) async fn check_credentials(
    run: &mut Run<'_>,
    account: &Account,
    acct: &AccountConfig,
) -> Option<Credentials> {
    let started = Instant::now();
    if acct.auth == AuthMethod::Oauth {
        return check_oauth(run, account, acct, started).await;
    }
    let described = match &account.auth {
        Auth::Password { source, .. } => source.describe(),
        _ => "nowhere".into(),
    };
    let pw = match run.mailer.credentials(account, false).await {
        Ok(Some(Credentials::Password { password, .. })) => password,
        Ok(_) => return None,
        Err(e) => {
            run.fail(Stage::Credentials, &e, started);
            return None;
        }
    };
    let len = pw.expose_secret().chars().count();
    let mut c = check(
        Stage::Credentials,
        Status::Ok,
        format!(
            "{} from {described} ({len} characters), user {}",
            if acct.auth == AuthMethod::AppPassword {
                "app password"
            } else {
                "password"
            },
            acct.login()
        ),
        started,
    );
    if let Some(x) = app_password_shape(&run.ctx(), acct.provider, acct.auth, &pw) {
        c.status = Status::Warning;
        c.explanation = Some(x);
    }
    run.push(c);
    Some(Credentials::Password {
        username: acct.login().to_string(),
        password: pw,
    })
}

/// Providers' app passwords have a known shape (provider-facts §6, §8); a
/// password of another shape is most likely the account password, which
/// these providers refuse over SMTP.
pub(super) fn app_password_shape(
    ctx: &Context<'_>,
    provider: ProviderId,
    auth: AuthMethod,
    pw: &SecretString,
) -> Option<Explanation> {
    if auth != AuthMethod::AppPassword {
        return None;
    }
    let p = pw.expose_secret();
    let letters = p.chars().filter(|c| c.is_ascii_alphabetic()).count();
    let (fits, shape, url): (bool, &str, &str) = match provider {
        ProviderId::Gmail | ProviderId::Workspace => (
            p.len() == 16 && letters == 16,
            "16 letters (Google shows them as 'xxxx xxxx xxxx xxxx')",
            "https://myaccount.google.com/apppasswords",
        ),
        ProviderId::Yahoo => (
            p.len() == 16 && letters == 16,
            "16 letters",
            "https://login.yahoo.com/myaccount/security/app-password",
        ),
        ProviderId::Icloud => (
            p.len() == 19 && p.chars().filter(|c| *c == '-').count() == 3 && letters == 16,
            "four groups of 4 letters with dashes ('xxxx-xxxx-xxxx-xxxx')",
            "https://account.apple.com (Sign-In and Security > App-Specific Passwords)",
        ),
        ProviderId::Fastmail => (
            p.len() == 16 && p.chars().all(|c| c.is_ascii_alphanumeric()),
            "16 letters and digits",
            "https://app.fastmail.com/settings/security/apps",
        ),
        _ => return None,
    };
    if fits {
        return None;
    }
    Some(finding(
        "doctor-app-password-shape",
        ctx,
        &[
            ("provider_name", provider.preset().display_name),
            ("length", &p.chars().count().to_string()),
            ("shape", shape),
            ("url", url),
        ],
    ))
}

pub(super) async fn check_oauth(
    run: &mut Run<'_>,
    account: &Account,
    acct: &AccountConfig,
    started: Instant,
) -> Option<Credentials> {
    let name = run.target.name;
    let store = run.mailer.secrets().clone();
    if let Err(e) = store.store().await {
        run.fail(Stage::Credentials, &e, started);
        return None;
    }
    let flow = acct.oauth.as_ref().and_then(|o| o.flow).unwrap_or_default();
    let stored = TokenSet::load(&store, name).await.ok().flatten();
    let mut details = Vec::new();
    if !flow.is_app_only() && flow != postie::oauth::Flow::ServiceAccount {
        match stored.as_ref().and_then(|t| t.refresh_token.as_ref()) {
            Some(_) => details.push("refresh token: stored".to_string()),
            None => {
                let mut c = check(
                    Stage::Credentials,
                    Status::Failed,
                    format!("no refresh token is stored for '{name}': not signed in"),
                    started,
                );
                c.explanation = Some(finding("doctor-not-signed-in", &run.ctx(), &[]));
                run.push(c);
                return None;
            }
        }
    }
    let tm = run.mailer.tokens().clone();
    match run.mailer.access_token(account, !flow.is_app_only()).await {
        Ok((token, ts)) => {
            if let Some(left) = ts.remaining(SystemTime::now()) {
                details.push(format!(
                    "access token: valid for {} more minutes",
                    left.as_secs() / 60
                ));
            }
            let scope = match ts.scope.clone() {
                Some(s) => Some(s),
                None if acct.provider.is_google() => {
                    postie::oauth::google_token_scope(name, acct, &token).await
                }
                None => None,
            };
            let mut c = check(
                Stage::Credentials,
                Status::Ok,
                format!("access token obtained for {}", acct.login()),
                started,
            );
            if let Some(s) = &scope {
                details.push(format!("scope: {s}"));
            }
            if let Some(x) = scope_problem(
                &run.ctx(),
                acct.provider,
                acct.transport.first(),
                scope.as_deref(),
            ) {
                c.status = Status::Warning;
                c.explanation = Some(x);
            }
            if let Some(w) = tm.warn_expiry(&ts, acct.provider) {
                details.push(w);
                c.status = Status::Warning;
            }
            c.details = details;
            run.push(c);
            Some(Credentials::Bearer {
                user: acct.login().to_string(),
                token,
            })
        }
        Err(e) => {
            let mut c = check(
                Stage::Credentials,
                Status::Failed,
                e.message().to_string(),
                started,
            );
            details.extend(clock_note(name, acct).await);
            c.details = details;
            c.explanation = Some(explain(&e, &run.ctx()));
            run.push(c);
            None
        }
    }
}

/// After a failed token request: compare this machine's clock with the
/// token server's `Date` (skewed clocks break JWT grants and expiry).
pub(super) async fn clock_note(name: &str, acct: &AccountConfig) -> Option<String> {
    let skew = postie::oauth::clock_skew(name, acct).await?;
    Some(if skew.abs() > 60 {
        format!(
            "this machine's clock is {} s {} the token server's: fix the clock (e.g. enable NTP: `timedatectl set-ntp true`); signed assertions and token expiry depend on it",
            skew.abs(),
            if skew > 0 { "ahead of" } else { "behind" }
        )
    } else {
        format!(
            "clock: within {} s of the token server's (not the cause)",
            skew.abs()
        )
    })
}

/// Gmail SMTP takes only `https://mail.google.com/`; Microsoft needs
/// `SMTP.Send`. The Gmail API takes gmail.send, gmail.compose, gmail.modify
/// or the full scope; Graph needs Mail.Send.
pub(super) fn scope_problem(
    ctx: &Context<'_>,
    provider: ProviderId,
    transport: Transport,
    scope: Option<&str>,
) -> Option<Explanation> {
    let scope = scope?;
    let has = |s: &str| scope.split_whitespace().any(|x| x == s);
    match transport {
        Transport::GmailApi => {
            let fits = [
                GOOGLE_SCOPE,
                "https://www.googleapis.com/auth/gmail.send",
                "https://www.googleapis.com/auth/gmail.compose",
                "https://www.googleapis.com/auth/gmail.modify",
            ]
            .iter()
            .any(|s| has(s));
            return (!fits).then(|| finding("api-gmail-scope", ctx, &[]));
        }
        Transport::Graph => {
            let fits = scope
                .split_whitespace()
                .any(|x| x.eq_ignore_ascii_case("Mail.Send") || x.ends_with("/Mail.Send"));
            return (!fits).then(|| finding("api-graph-access-denied", ctx, &[]));
        }
        Transport::Smtp => {}
    }
    if provider.is_google() && !has(GOOGLE_SCOPE) {
        let problem = if scope.contains("gmail.send") {
            "it has gmail.send, which Gmail's SMTP server refuses".to_string()
        } else {
            format!("it lacks {GOOGLE_SCOPE}, the only scope Gmail's SMTP server accepts")
        };
        return Some(finding(
            "doctor-google-scope",
            ctx,
            &[("problem", &problem)],
        ));
    }
    if provider.is_microsoft()
        && !scope
            .split_whitespace()
            .any(|x| x.eq_ignore_ascii_case(MICROSOFT_SMTP_SCOPE) || x.ends_with("SMTP.Send"))
    {
        return Some(finding("doctor-microsoft-scope", ctx, &[]));
    }
    None
}
