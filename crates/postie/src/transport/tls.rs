//! TLS client configuration (rustls, platform roots plus optional extra CA)
//! and readable descriptions of TLS failures.

use std::path::Path;
use std::sync::Arc;

use rustls::ClientConfig;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::error::{Error, ErrorKind, Result};
use crate::wording::{Setting, say_setting};

/// Build a client config that verifies against the platform's roots, plus
/// the certificates in `ca_file` when given.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let extra: Vec<CertificateDer<'static>> = match ca_file {
        None => Vec::new(),
        Some(path) => {
            let certs: Vec<_> = CertificateDer::pem_file_iter(path)
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("cannot read the CA file {}: {e}", path.display()),
                    )
                })?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| {
                    Error::new(
                        ErrorKind::Config,
                        format!("the CA file {} is not valid PEM: {e}", path.display()),
                    )
                })?;
            if certs.is_empty() {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!(
                        "the CA file {} holds no certificate (expected PEM '-----BEGIN CERTIFICATE-----' blocks)",
                        path.display()
                    ),
                ));
            }
            certs
        }
    };
    let platform =
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider.clone())
            .map_err(|e| {
            Error::new(
                ErrorKind::Tls,
                format!("cannot load the system's trusted certificates: {e}"),
            )
        })?;
    let verifier = super::cert::PinnedOrVerified {
        inner: Arc::new(platform),
        pinned: extra,
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::new(ErrorKind::Tls, format!("TLS setup failed: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // No session resumption: each process opens few connections, and a TLS 1.3
    // server that is not offered PSK modes sends no NewSessionTicket. Those
    // tickets otherwise arrive unacknowledged just before the EHLO reply, and
    // the server's Nagle timer meets this side's delayed ACK: about 40 ms lost
    // per connection, measured against Postfix (docs/benchmarks.md).
    let mut config = config;
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// Turn a failed handshake into an error that says what is wrong with the
/// certificate, in words.
/// `after_starttls`: the handshake followed STARTTLS (so the port is not
/// being used as the wrong kind).
pub fn handshake_error(e: std::io::Error, host: &str, name: &str, after_starttls: bool) -> Error {
    let detail = match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(c)) => describe_cert_error(c, name),
        Some(rustls::Error::AlertReceived(a)) => format!("the server sent the TLS alert {a:?}"),
        Some(other) => other.to_string(),
        None if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake".into()
        }
        None => e.to_string(),
    };
    let hint = if after_starttls {
        ""
    } else if detail.contains("InvalidContentType") || detail.contains("corrupt message") {
        " (the server did not answer with TLS: is this a STARTTLS port (587) used as implicit TLS?)"
    } else {
        ""
    };
    Error::new(
        ErrorKind::Tls,
        format!("TLS handshake with {host} failed: {detail}{hint}"),
    )
}

fn describe_cert_error(c: &rustls::CertificateError, name: &str) -> String {
    use rustls::CertificateError as C;
    match c {
        C::Expired | C::ExpiredContext { .. } => "the server's certificate has expired".into(),
        C::NotValidYet | C::NotValidYetContext { .. } => {
            "the server's certificate is not valid yet (check this machine's clock)".into()
        }
        C::NotValidForName | C::NotValidForNameContext { .. } => {
            format!("the server's certificate is not valid for the name '{name}'")
        }
        C::UnknownIssuer => {
            format!(
                "the server's certificate is signed by an unknown authority (for a private CA, give {})",
                say_setting(Setting::CaFile)
            )
        }
        C::Revoked => "the server's certificate has been revoked".into(),
        C::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
            format!(
                "the server presents a CA certificate as its own (a self-signed certificate made \
                 with `openssl req -x509`); give that very certificate (PEM) as {}, and postie \
                 trusts it for this server alone",
                say_setting(Setting::CaFile)
            )
        }
        other => format!("the server's certificate was refused: {other:?}"),
    }
}
