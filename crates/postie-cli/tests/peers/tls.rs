//! Certificate verification: a bad certificate stops the send before any credentials go out.

use crate::spool::{assert_not_delivered, delivered};
use crate::support::*;

/// EX_PROTOCOL, and the explanation (stderr, or the JSON with --json) names the certificate.
#[track_caller]
fn assert_certificate_refused(run: &Run) {
    run.code(exit::PROTOCOL);
    assert!(
        run.text_lower().contains("certificate"),
        "no mention of the certificate\n{run}"
    );
}

/// `postie send` to aiosmtpd's listener `url` without `--ca-file`.
fn send_untrusted(sb: &Sandbox, url: &str, tok: &str) -> Postie {
    sb.send_to(url, Peer::Aiosmtpd).opt("--to", TO).message(tok)
}

#[test]
fn wrong_tls_name_is_refused() {
    let sb = Sandbox::new();
    let tok = token("tls-wrong-name");
    let run = sb
        .send(Peer::Aiosmtpd, Tls::StartTls)
        .opt("--to", TO)
        .message(&tok)
        .opt("--tls-name", "wrong.example")
        .run();
    assert_certificate_refused(&run);
    assert_not_delivered(Peer::Aiosmtpd, &tok);
}

#[test]
fn unknown_ca_is_refused() {
    // the peers' CA is not among the system's roots: without --ca-file nothing is trusted
    let sb = Sandbox::new();
    let tok = token("tls-unknown-ca");
    let run = send_untrusted(&sb, &Peer::Aiosmtpd.url(Tls::Implicit), &tok)
        .arg("--json")
        .run();
    assert_certificate_refused(&run);
    let j = run.json();
    assert_eq!(j["status"], "failed", "{run}");
    assert_eq!(j["error"]["kind"], "tls", "{run}");
    assert_not_delivered(Peer::Aiosmtpd, &tok);
}

fn expired(tls: Tls) {
    let sb = Sandbox::new();
    let tok = token("tls-expired");
    let run = sb
        .send(Peer::TlsExpired, tls)
        .opt("--to", TO)
        .message(&tok)
        .run();
    assert_certificate_refused(&run);
    assert!(
        run.text_lower().contains("expired"),
        "no mention of the expiry\n{run}"
    );
    assert_not_delivered(Peer::TlsExpired, &tok);
}

#[test]
fn expired_certificate_is_refused_starttls() {
    expired(Tls::StartTls)
}

#[test]
fn expired_certificate_is_refused_implicit() {
    expired(Tls::Implicit)
}

#[test]
fn certificate_for_another_name_is_refused() {
    let sb = Sandbox::new();
    let tok = token("tls-other-name");
    let run = sb
        .send(Peer::TlsOtherName, Tls::Implicit)
        .opt("--to", TO)
        .message(&tok)
        .arg("--json")
        .run();
    assert_certificate_refused(&run);
    assert_eq!(run.json()["error"]["kind"], "tls", "{run}");
    assert_not_delivered(Peer::TlsOtherName, &tok);
}

fn other_name_with_tls_name(tls: Tls) {
    let sb = Sandbox::new();
    let tok = token("tls-name-ok");
    sb.send(Peer::TlsOtherName, tls)
        .opt("--to", TO)
        .message(&tok)
        .opt("--tls-name", peers().get("TLS_OTHERNAME"))
        .run()
        .success();
    let d = delivered(Peer::TlsOtherName, &tok, 1);
    assert!(d.tls);
}

#[test]
fn tls_name_makes_the_other_name_acceptable_starttls() {
    other_name_with_tls_name(Tls::StartTls)
}

#[test]
fn tls_name_makes_the_other_name_acceptable_implicit() {
    other_name_with_tls_name(Tls::Implicit)
}

/// smtp:// means STARTTLS is required; this listener offers none (and allows AUTH in clear).
/// postie refuses to go on, and the peer's own log shows that no login reached it, while a
/// client that does log in there in clear (the control) is in that log.
#[test]
fn server_without_starttls_gets_no_credentials() {
    let sb = Sandbox::new();
    let tok = token("no-starttls");
    let user = format!("{tok}@example.test");
    let port = peers().port("AIOSMTPD_PLAIN");
    let run = sb
        .postie()
        .arg("send")
        .opt("--server", format!("smtp://127.0.0.1:{port}"))
        .opt("--user", &user)
        .opt("--password-env", PW_VAR)
        .env(PW_VAR, "secret")
        .opt("--from", FROM)
        .opt("--to", TO)
        .message(&tok)
        .opt("--ca-file", peers().ca())
        .run();
    run.failure();
    run.stderr_mentions(&["STARTTLS"]);
    assert_not_delivered(Peer::Aiosmtpd, &tok);

    let control = format!("{tok}-control@example.test");
    let out = crate::relay_support::python()
        .args([
            "-c",
            &format!(
                "import smtplib\n\
             s = smtplib.SMTP('127.0.0.1', {port})\n\
             try:\n\
             \x20   s.login('{control}', 'wrong')\n\
             except smtplib.SMTPAuthenticationError:\n\
             \x20   pass\n\
             s.quit()\n"
            ),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log_path = peers().dir().join("run/aiosmtpd.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains(&format!("user={control}")) || std::time::Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(
        log.contains(&format!("user={control}")),
        "the peer's log does not show logins: {}",
        log_path.display()
    );
    assert!(
        !log.contains(&format!("user={user}")),
        "postie sent its login to a server without STARTTLS"
    );
}

/// A self-signed certificate as `openssl req -x509` makes it (CA:TRUE) for
/// `names`, valid from `from` to `to` (days from now): (cert PEM, key PEM).
fn self_signed(names: &[&str], from: i64, to: i64) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut p =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let (y, m, d) = day(from);
    p.not_before = rcgen::date_time_ymd(y, m, d);
    let (y, m, d) = day(to);
    p.not_after = rcgen::date_time_ymd(y, m, d);
    let cert = p.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Midnight UTC `days` days from today (GNU date does the calendar).
fn day(days: i64) -> (i32, u8, u8) {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", &format!("{days} days"), "+%Y %m %d"])
        .output()
        .expect("date");
    let text = String::from_utf8(out.stdout).unwrap();
    let v: Vec<i32> = text
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (v[0], v[1] as u8, v[2] as u8)
}

/// An implicit-TLS SMTP server (Python's ssl module) presenting `cert`,
/// taking every message; its port.
fn tls_server(sb: &Sandbox, name: &str, cert: &str, key: &str) -> (std::process::Child, u16) {
    let cert_file = sb.file(&format!("{name}.crt"), cert.as_bytes());
    let key_file = sb.file(&format!("{name}.key"), key.as_bytes());
    let script = "import socket, ssl, sys, threading\n\
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER); ctx.load_cert_chain(sys.argv[1], sys.argv[2])\n\
        l = socket.socket(); l.bind(('127.0.0.1', 0)); l.listen(8)\n\
        print(l.getsockname()[1], flush=True)\n\
        def serve(raw):\n\
        \x20   try:\n\
        \x20       c = ctx.wrap_socket(raw, server_side=True); f = c.makefile('rb'); c.sendall(b'220 self ESMTP\\r\\n'); data = False\n\
        \x20       for line in f:\n\
        \x20           if data:\n\
        \x20               if line == b'.\\r\\n': data = False; c.sendall(b'250 2.0.0 queued\\r\\n')\n\
        \x20               continue\n\
        \x20           v = line[:4].upper()\n\
        \x20           if v == b'EHLO': c.sendall(b'250-self\\r\\n250 AUTH PLAIN\\r\\n')\n\
        \x20           elif v == b'AUTH': c.sendall(b'235 2.7.0 ok\\r\\n')\n\
        \x20           elif v == b'DATA': data = True; c.sendall(b'354 go\\r\\n')\n\
        \x20           elif v == b'QUIT': c.sendall(b'221 bye\\r\\n'); break\n\
        \x20           else: c.sendall(b'250 ok\\r\\n')\n\
        \x20   except (OSError, ssl.SSLError):\n\
        \x20       pass\n\
        while True:\n\
        \x20   s, _ = l.accept(); threading.Thread(target=serve, args=(s,), daemon=True).start()\n";
    let mut child = crate::relay_support::python()
        .arg("-c")
        .arg(script)
        .arg(&cert_file)
        .arg(&key_file)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    (child, line.trim().parse().unwrap())
}

/// A self-hosted server's self-signed certificate given
/// with --ca-file is accepted (rustls refused it as a CA certificate used as
/// an end-entity one; curl, msmtp and smtplib accept it), and the name and
/// validity are still checked; another self-signed certificate still fails.
#[test]
fn a_pinned_self_signed_certificate_is_accepted() {
    let sb = Sandbox::new();
    let send = |port: u16, ca: &std::path::Path, name: &str| {
        sb.postie()
            .arg("send")
            .opt("--server", format!("smtps://{name}:{port}"))
            .words("--from a@example.test --to b@example.test --text hi --user u --password-env PW")
            .env("PW", "pw")
            .opt("--ca-file", ca)
            .run()
    };
    let (cert, key) = self_signed(&["localhost", "127.0.0.1"], -1, 30);
    let (mut good, port) = tls_server(&sb, "good", &cert, &key);
    let pinned = sb.file("good-pin.pem", cert.as_bytes());
    send(port, &pinned, "127.0.0.1").success();
    send(port, &pinned, "localhost").success();

    // another self-signed certificate pinned: refused
    let (other, _) = self_signed(&["localhost", "127.0.0.1"], -1, 30);
    let other = sb.file("other.pem", other.as_bytes());
    assert_certificate_refused(&send(port, &other, "127.0.0.1"));

    // pinned, but for another name, or expired: refused
    let (named, named_key) = self_signed(&["other.test"], -1, 30);
    let (mut wrong_name, wport) = tls_server(&sb, "named", &named, &named_key);
    let named_pin = sb.file("named-pin.pem", named.as_bytes());
    assert_certificate_refused(&send(wport, &named_pin, "127.0.0.1"));
    let (old, old_key) = self_signed(&["localhost", "127.0.0.1"], -30, -1);
    let (mut expired, eport) = tls_server(&sb, "old", &old, &old_key);
    let old_pin = sb.file("old-pin.pem", old.as_bytes());
    let run = send(eport, &old_pin, "127.0.0.1");
    assert_certificate_refused(&run);
    assert!(run.text_lower().contains("expired"), "{run}");
    for c in [&mut good, &mut wrong_name, &mut expired] {
        let _ = c.kill();
        let _ = c.wait();
    }
}
