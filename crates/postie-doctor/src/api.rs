//! The checks of an account that sends over HTTPS (`transport = "gmail-api"`
//! or `"graph"`): the API's host resolved and reached, the token obtained
//! with a scope the API takes, and a harmless authenticated call (an empty
//! send the service refuses as invalid: nothing is sent).

use postie::api::Api;

use super::*;

pub(super) async fn stages(run: &mut Run<'_>, transport: Transport) {
    let acct = run.target.account;
    let started = Instant::now();
    let api = match Api::new(transport, acct.api_url.as_deref()) {
        Ok(a) => a,
        Err(e) => {
            run.fail(Stage::Dns, &e, started);
            return;
        }
    };
    let server = api.server();
    let plain = acct
        .api_url
        .as_deref()
        .is_some_and(|u| u.starts_with("http://"));
    // DNS and TCP as for SMTP, to the API's host and port.
    let ep = match postie::endpoint::Endpoint::from_url(&format!("smtps://{server}")) {
        Ok(ep) => ep,
        Err(e) => {
            run.fail(Stage::Dns, &e, started);
            return;
        }
    };
    let Some(addrs) = network::check_dns(run, &ep).await else {
        return;
    };
    if !network::check_connect(run, &ep, &addrs).await {
        return;
    }
    let started = Instant::now();
    let mut tls = check(
        Stage::Tls,
        Status::Ok,
        format!("HTTPS to {server}: the certificate is checked by the call below"),
        started,
    );
    if plain {
        tls.status = Status::Warning;
        tls.summary = format!("plain HTTP to {server} (api_url on this machine)");
        tls.explanation = Some(finding("doctor-no-tls", &run.ctx(), &[]));
    }
    run.push(tls);
    run.push(check(
        Stage::Ehlo,
        Status::Skipped,
        format!("not checked: the {} has no EHLO", api.service()),
        Instant::now(),
    ));
    let account = match Account::from_config(run.target.name, acct) {
        Ok(a) => a,
        Err(e) => {
            run.fail(Stage::Credentials, &e, Instant::now());
            return;
        }
    };
    if check_credentials(run, &account, acct).await.is_none() {
        return;
    }
    let started = Instant::now();
    let token = match run.mailer.access_token(&account, false).await {
        Ok((t, _)) => t,
        Err(e) => {
            run.fail(Stage::Auth, &e, started);
            return;
        }
    };
    match api.probe(&token).await {
        Ok(said) => {
            let c = check(Stage::Auth, Status::Ok, said, started);
            run.push(c);
        }
        Err(e) => {
            run.fail(Stage::Auth, &e, started);
            return;
        }
    }
    if let Some(to) = run.opts.send_test.clone() {
        let session = run.mailer.session(&account);
        check_send_test(run, session, &to).await;
    }
}
