//! The checks up to the server's offer: configuration, DNS, TCP, TLS (with
//! the certificate) and EHLO.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::*;

pub(super) fn check_config(run: &mut Run<'_>) -> Option<Endpoint> {
    let started = Instant::now();
    let acct = run.target.account;
    let preset = acct.provider.preset();
    let mut c = check(Stage::Config, Status::Ok, "", started);
    let ep = match acct.endpoint() {
        Ok(ep) => ep,
        Err(e) => {
            c.status = Status::Failed;
            c.summary = e.message().to_string();
            c.explanation = Some(explain(&e, &run.ctx()));
            run.push(c);
            return None;
        }
    };
    let route = match api_of(run.target) {
        Some(api) => format!("the {} at {}", api.service(), api.server()),
        None => format!("{} with {}", ep.authority(), tls_words(ep.tls)),
    };
    c.summary = match (run.target.config_file, run.target.authenticate) {
        (Some(_), _) => format!(
            "{} account {} ({}), {}, {}",
            preset.display_name,
            run.target.name,
            acct.email,
            route,
            match acct.auth {
                AuthMethod::None => "no login (auth = \"none\")".to_string(),
                a => format!("{a} authentication"),
            }
        ),
        (None, true) => format!(
            "{} ({}) with {}, {} authentication as {}",
            ep.authority(),
            preset.display_name,
            tls_words(ep.tls),
            acct.auth,
            acct.login()
        ),
        (None, false) => format!(
            "{} ({}) with {}, no authentication",
            ep.authority(),
            preset.display_name,
            tls_words(ep.tls)
        ),
    };
    let mut problems: Vec<(Status, Explanation)> = Vec::new();
    match (ep.port, ep.tls) {
        (465, TlsMode::Starttls) => problems.push((
            Status::Failed,
            finding("doctor-port-465-starttls", &run.ctx(), &[]),
        )),
        (587, TlsMode::Implicit) => problems.push((
            Status::Failed,
            finding("doctor-port-587-implicit", &run.ctx(), &[]),
        )),
        (25, _) => problems.push((Status::Warning, finding("doctor-port-25", &run.ctx(), &[]))),
        _ => {}
    }
    if ep.tls == TlsMode::None && !ep.is_loopback() {
        problems.push((Status::Failed, finding("doctor-plaintext", &run.ctx(), &[])));
    }
    if acct.provider.is_microsoft() && ep.port == 465 {
        problems.push((
            Status::Failed,
            finding("doctor-microsoft-465", &run.ctx(), &[]),
        ));
    }
    if !preset.supports(acct.auth) {
        let names: Vec<_> = preset.auth.iter().map(|a| a.as_str()).collect();
        problems.push((
            Status::Failed,
            finding(
                "doctor-auth-unsupported",
                &run.ctx(),
                &[
                    ("provider_name", preset.display_name),
                    ("auth", acct.auth.as_str()),
                    ("accepted", &names.join(", ")),
                    ("note", preset.note),
                ],
            ),
        ));
    }
    if acct.auth == AuthMethod::Oauth && acct.oauth.is_none() {
        problems.push((
            Status::Failed,
            finding("doctor-oauth-unset", &run.ctx(), &[]),
        ));
    }
    if let Err(e) = acct.mechanism() {
        problems.push((Status::Failed, explain(&e, &run.ctx())));
    }
    if let Some(ca) = &ep.ca_file
        && !ca.is_file()
    {
        problems.push((
            Status::Failed,
            finding(
                "doctor-ca-file-missing",
                &run.ctx(),
                &[("path", &ca.display().to_string())],
            ),
        ));
    }
    if let Some(w) = run.target.config_file.and_then(config_permissions) {
        problems.push((Status::Warning, w));
    }
    if let Some((status, x)) = problems
        .iter()
        .find(|(s, _)| *s == Status::Failed)
        .or_else(|| problems.first())
    {
        c.status = *status;
        c.details = problems
            .iter()
            .skip(1)
            .map(|(_, x)| x.summary.clone())
            .collect();
        c.explanation = Some(x.clone());
    }
    c.elapsed_ms = started.elapsed().as_millis() as u64;
    let ok = run.push(c);
    ok.then_some(ep)
}

pub(super) fn tls_words(t: TlsMode) -> &'static str {
    match t {
        TlsMode::Implicit => "implicit TLS",
        TlsMode::Starttls => "STARTTLS",
        TlsMode::None => "no TLS",
    }
}

/// A config file others can write is a way to run commands as this user
/// (`password_command`) and to redirect mail.
#[cfg(unix)]
pub(super) fn config_permissions(path: &Path) -> Option<Explanation> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o022 != 0).then(|| {
        finding(
            "doctor-config-writable",
            &Context::default(),
            &[
                ("path", &path.display().to_string()),
                ("mode", &format!("{:o}", mode & 0o777)),
            ],
        )
    })
}

#[cfg(not(unix))]
pub(super) fn config_permissions(_path: &Path) -> Option<Explanation> {
    None
}

// ---- DNS and TCP ----

pub(super) async fn check_dns(run: &mut Run<'_>, ep: &Endpoint) -> Option<Vec<SocketAddr>> {
    let started = Instant::now();
    if let Ok(ip) = ep.host.parse::<std::net::IpAddr>() {
        let c = check(
            Stage::Dns,
            Status::Ok,
            format!("{} is an address: nothing to resolve", ep.host),
            started,
        );
        run.push(c);
        return Some(vec![SocketAddr::new(ip, ep.port)]);
    }
    let lookup = tokio::time::timeout(
        run.opts.timeouts.connect,
        tokio::net::lookup_host((ep.host.as_str(), ep.port)),
    )
    .await;
    let ms = started.elapsed().as_millis();
    match lookup {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            let v4 = addrs.iter().filter(|a| a.is_ipv4()).count();
            let v6 = addrs.len() - v4;
            let mut c = check(
                Stage::Dns,
                Status::Ok,
                format!(
                    "{} resolves to {v4} IPv4 and {v6} IPv6 address{} in {ms} ms",
                    ep.host,
                    if v4 + v6 == 1 { "" } else { "es" }
                ),
                started,
            );
            c.details = addrs.iter().map(|a| a.ip().to_string()).collect();
            if ms > 2000 {
                c.status = Status::Warning;
                c.explanation = Some(finding(
                    "doctor-dns-slow",
                    &run.ctx(),
                    &[("host", &ep.host), ("ms", &ms.to_string())],
                ));
            }
            run.push(c);
            Some(addrs)
        }
        Ok(Err(e)) => {
            let mut c = check(
                Stage::Dns,
                Status::Failed,
                format!("{} cannot be resolved: {e}", ep.host),
                started,
            );
            c.explanation = Some(finding(
                "doctor-dns-failed",
                &run.ctx(),
                &[("host", &ep.host)],
            ));
            run.push(c);
            None
        }
        Err(_) => {
            let mut c = check(
                Stage::Dns,
                Status::Failed,
                format!(
                    "resolving {} timed out after {}s",
                    ep.host,
                    run.opts.timeouts.connect.as_secs()
                ),
                started,
            );
            c.explanation = Some(finding(
                "doctor-dns-timeout",
                &run.ctx(),
                &[("host", &ep.host)],
            ));
            run.push(c);
            None
        }
    }
}

pub(super) async fn check_connect(run: &mut Run<'_>, ep: &Endpoint, addrs: &[SocketAddr]) -> bool {
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut timed_out = false;
    let mut refused = false;
    for addr in addrs {
        let t = Instant::now();
        match tokio::time::timeout(run.opts.timeouts.connect, TcpStream::connect(addr)).await {
            Ok(Ok(_tcp)) => {
                let mut c = check(
                    Stage::Connect,
                    Status::Ok,
                    format!(
                        "connected to {addr} in {} ms",
                        t.elapsed().as_millis().max(1)
                    ),
                    started,
                );
                if !failures.is_empty() {
                    c.status = Status::Warning;
                    c.details = failures;
                    c.explanation = Some(finding("doctor-some-addresses-fail", &run.ctx(), &[]));
                }
                run.push(c);
                return true;
            }
            Ok(Err(e)) => {
                refused |= e.kind() == std::io::ErrorKind::ConnectionRefused;
                failures.push(format!("{addr}: {e}"));
            }
            Err(_) => {
                timed_out = true;
                failures.push(format!(
                    "{addr}: no answer within {}s",
                    run.opts.timeouts.connect.as_secs()
                ));
            }
        }
    }
    let mut c = check(
        Stage::Connect,
        Status::Failed,
        format!("cannot connect to {}", ep.authority()),
        started,
    );
    c.details = failures;
    // Where SMTP is blocked, Google and Microsoft take mail over HTTPS.
    let acct = run.target.account;
    let api = match acct.provider {
        p if p.is_google() => Some(("gmail-api", "Gmail API")),
        p if p.is_microsoft() => Some(("graph", "Microsoft Graph API")),
        _ => None,
    };
    if let Some((transport, service)) = api
        && run.target.config_file.is_some()
    {
        let name = format!("{}-https", run.target.name);
        c.details.push(format!(
            "if this network blocks SMTP, the {service} goes over HTTPS (port 443) with an \
             OAuth sign-in: `postie account add {name} --provider {} --email {} --transport \
             {transport} --client-id ID`, then `postie login {name}` (README: Sending over HTTPS)",
            acct.provider, acct.email
        ));
    }
    c.explanation = Some(if timed_out && !refused {
        finding(
            "doctor-connect-timeout",
            &run.ctx(),
            &[("server", &ep.authority())],
        )
    } else {
        finding(
            "doctor-connect-refused",
            &run.ctx(),
            &[("server", &ep.authority())],
        )
    });
    run.push(c);
    false
}

// ---- TLS and EHLO ----

pub(super) fn cert_details(info: &TlsInfo, host: &str) -> Vec<String> {
    let mut d = Vec::new();
    if let Some(cert) = &info.certificate {
        d.push(format!("certificate subject: {}", cert.subject));
        d.push(format!("issued by: {}", cert.issuer));
        d.push(format!(
            "valid from {} to {}",
            CertInfo::date(cert.not_before),
            CertInfo::date(cert.not_after)
        ));
        if !cert.names.is_empty() {
            d.push(format!("names: {}", cert.names.join(", ")));
        }
        d.push(format!(
            "{} the name {host}",
            if cert.covers(host) {
                "matches"
            } else {
                "does not match"
            }
        ));
    }
    d
}

pub(super) fn tls_summary(info: &TlsInfo, ep: &Endpoint) -> String {
    let how = match ep.tls {
        TlsMode::Starttls => "STARTTLS",
        _ => "implicit TLS",
    };
    format!(
        "{how}: {} {}",
        info.version.as_deref().unwrap_or("?"),
        info.cipher.as_deref().unwrap_or("")
    )
    .trim_end()
    .to_string()
}

pub(super) async fn check_tls_and_ehlo(run: &mut Run<'_>, ep: &Endpoint) -> bool {
    let started = Instant::now();
    let mut opts = ConnectOptions::new(ep.clone());
    opts.timeouts = run.opts.timeouts;
    // Watch the transcript for lines inside TLS: a failure after the
    // handshake is not a TLS failure.
    let saw_tls = Arc::new(AtomicBool::new(false));
    let inner = run.opts.transcript.clone();
    let seen = saw_tls.clone();
    opts.transcript = Some(Arc::new(move |t: &TranscriptEntry| {
        if t.tls {
            seen.store(true, Ordering::Relaxed);
        }
        if let Some(inner) = &inner {
            inner(t);
        }
    }));
    let conn = match Connection::connect(opts.clone()).await {
        Ok(c) => c,
        Err(e) => {
            let tls_done = saw_tls.load(Ordering::Relaxed);
            tls_or_ehlo_failure(run, ep, opts, e, tls_done, started).await;
            return false;
        }
    };
    // TLS
    let name = ep.tls_name.as_deref().unwrap_or(&ep.host).to_string();
    match conn.tls_info() {
        Some(info) => {
            let mut c = check(Stage::Tls, Status::Ok, tls_summary(info, ep), started);
            c.details = cert_details(info, &name);
            if let Some(cert) = &info.certificate {
                let days = cert.seconds_left(SystemTime::now()) / 86_400;
                c.details.push(format!("expires in {days} days"));
                if days < 14 {
                    c.status = Status::Warning;
                    c.explanation = Some(finding(
                        "doctor-cert-expiring",
                        &run.ctx(),
                        &[("days", &days.to_string())],
                    ));
                }
            }
            if info.version.as_deref() == Some("TLSv1.2") && c.status == Status::Ok {
                c.details
                    .push("TLS 1.2: works; TLS 1.3 would be better".into());
            }
            run.push(c);
        }
        None => {
            let mut c = check(
                Stage::Tls,
                Status::Warning,
                "no TLS: plain text on loopback",
                started,
            );
            c.explanation = Some(finding("doctor-no-tls", &run.ctx(), &[]));
            run.push(c);
        }
    }
    // EHLO
    let started = Instant::now();
    let caps = conn.capabilities().cloned().unwrap_or_default();
    let offered: Vec<String> = caps
        .auth_mechanisms()
        .iter()
        .map(|m| m.to_string())
        .collect();
    let mut c = check(Stage::Ehlo, Status::Ok, "", started);
    c.summary = format!(
        "{}AUTH {}",
        caps.size()
            .map(|s| format!("SIZE {} ({} MB), ", s, s / 1_000_000))
            .unwrap_or_default(),
        if offered.is_empty() {
            "none offered".to_string()
        } else {
            offered.join(" ")
        }
    );
    c.details = capability_words(&caps);
    conn.quit().await;
    let acct = run.target.account;
    let wanted: Vec<Mechanism> = match acct.mechanism().ok().flatten() {
        Some(m) => vec![m],
        None if acct.auth == AuthMethod::Oauth => vec![Mechanism::XOAuth2, Mechanism::OAuthBearer],
        None => vec![Mechanism::Plain, Mechanism::Login],
    };
    if run.target.authenticate
        && acct.auth != AuthMethod::None
        && !wanted.iter().any(|m| caps.auth_mechanisms().contains(m))
    {
        let wanted_s: Vec<String> = wanted.iter().map(|m| m.to_string()).collect();
        c.status = Status::Failed;
        c.summary = format!(
            "the server offers AUTH {}, the account needs {}",
            if offered.is_empty() {
                "nothing".to_string()
            } else {
                offered.join(" ")
            },
            wanted_s.join(" or ")
        );
        c.explanation = Some(finding(
            "doctor-auth-mechanism-missing",
            &run.ctx(),
            &[
                ("wanted", &wanted_s.join(" or ")),
                ("auth", acct.auth.as_str()),
            ],
        ));
        run.push(c);
        return false;
    }
    run.push(c);
    true
}

/// The session failed before EHLO was done: say whether TLS or the
/// server's greeting / EHLO was the problem.
async fn tls_or_ehlo_failure(
    run: &mut Run<'_>,
    ep: &Endpoint,
    opts: ConnectOptions,
    e: postie::error::Error,
    tls_done: bool,
    started: Instant,
) {
    let ctx = Context {
        host: Some(&ep.host),
        ..run.ctx()
    };
    let explanation = explain(&e, &ctx);
    // Silence where a plain-text greeting belongs (the transport's own
    // diagnosis, kind Tls); a connection closed at once is something else.
    if ep.tls == TlsMode::Starttls
        && e.stage() == Some(postie_proto::error::Stage::Greeting)
        && e.reply().is_none()
        && e.kind() == ErrorKind::Tls
    {
        // Silence (or a hang-up) where a plain-text greeting belongs: the
        // server waits for a TLS handshake.
        let mut c = check(Stage::Tls, Status::Failed, e.message(), started);
        c.explanation = Some(finding(
            "doctor-implicit-tls-port",
            &run.ctx(),
            &[("server", &ep.authority())],
        ));
        run.push(c);
        return;
    }
    let tls_failed = !tls_done && ep.tls != TlsMode::None && e.kind() == ErrorKind::Tls
        || (ep.tls == TlsMode::Implicit && !tls_done);
    if tls_failed {
        let mut c = check(Stage::Tls, Status::Failed, e.message(), started);
        // See the certificate that was refused: a second connection that
        // trusts anything, sends no credentials and quits.
        if let Ok(info) = Connection::inspect_tls(opts).await {
            let name = ep.tls_name.as_deref().unwrap_or(&ep.host);
            c.details.push(tls_summary(&info, ep));
            c.details.extend(cert_details(&info, name));
            if let Some(cert) = &info.certificate {
                let now = SystemTime::now();
                let left = cert.seconds_left(now);
                if left < 0 {
                    c.details
                        .push(format!("expired {} days ago", (-left) / 86_400));
                } else if cert.not_yet_valid(now) {
                    c.details.push(
                        "not valid yet: the server's certificate is newer than this machine's clock"
                            .into(),
                    );
                }
            }
        }
        c.explanation = Some(explanation);
        run.push(c);
        return;
    }
    // The greeting or EHLO failed, before STARTTLS or after TLS was up.
    let tls_line = match (ep.tls, tls_done) {
        (TlsMode::None, _) => (Status::Skipped, "no TLS: plain text on loopback"),
        (_, true) => (Status::Ok, "TLS established; the session failed after it"),
        (_, false) => (
            Status::Skipped,
            "not reached: the session failed before STARTTLS",
        ),
    };
    run.push(check(Stage::Tls, tls_line.0, tls_line.1, started));
    let mut c = check(Stage::Ehlo, Status::Failed, e.message(), started);
    if let Some(r) = e.reply() {
        c.details = r
            .wire_lines()
            .iter()
            .map(|l| format!("server: {l}"))
            .collect();
    }
    c.explanation = Some(explanation);
    run.push(c);
}

fn capability_words(caps: &Capabilities) -> Vec<String> {
    let mut d = Vec::new();
    let mut ext = Vec::new();
    for (on, name) in [
        (caps.supports_pipelining(), "PIPELINING"),
        (caps.chunking(), "CHUNKING"),
        (caps.eightbitmime(), "8BITMIME"),
        (caps.smtputf8(), "SMTPUTF8"),
        (caps.enhanced_status_codes(), "ENHANCEDSTATUSCODES"),
        (caps.dsn(), "DSN"),
    ] {
        if on {
            ext.push(name);
        }
    }
    if !ext.is_empty() {
        d.push(format!("extensions: {}", ext.join(" ")));
    }
    d
}
