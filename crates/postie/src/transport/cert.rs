//! What a server's certificate says, in words: subject, issuer, validity and
//! the names it covers. `postie doctor` shows it for a good connection and,
//! through an inspect-only handshake, for one whose certificate was refused.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::{DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use serde::Serialize;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// The parts of a certificate that explain a TLS failure.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CertInfo {
    /// Subject distinguished name, e.g. `CN=smtp.gmail.com`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// Start of validity, seconds since the Unix epoch.
    pub not_before: i64,
    /// End of validity, seconds since the Unix epoch.
    pub not_after: i64,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
}

impl CertInfo {
    /// Parse a DER certificate; `None` when it cannot be parsed.
    pub fn parse(der: &[u8]) -> Option<CertInfo> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let names = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some((*d).to_string()),
                        GeneralName::IPAddress(b) => ip_text(b),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Some(CertInfo {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            names,
        })
    }

    /// Seconds until expiry at `now`; negative once expired.
    pub fn seconds_left(&self, now: SystemTime) -> i64 {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as i64;
        self.not_after - now
    }

    /// True when the certificate is not valid yet at `now`.
    pub fn not_yet_valid(&self, now: SystemTime) -> bool {
        let now = now
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs() as i64;
        now < self.not_before
    }

    /// The date part (UTC) of a validity bound, `YYYY-MM-DD`.
    pub fn date(ts: i64) -> String {
        let t = UNIX_EPOCH + Duration::from_secs(ts.max(0) as u64);
        humantime::format_rfc3339_seconds(t).to_string()[..10].to_string()
    }

    /// True when `host` is covered by the certificate's names (a `*.`
    /// wildcard covers one label), or by its subject CN when it has no
    /// subjectAltName.
    pub fn covers(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        let fits = |name: &str| {
            let name = name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(rest) => host
                    .split_once('.')
                    .is_some_and(|(first, tail)| !first.is_empty() && tail == rest),
                None => name == host,
            }
        };
        if self.names.is_empty() {
            return self
                .subject
                .split(',')
                .filter_map(|p| p.trim().strip_prefix("CN="))
                .any(fits);
        }
        self.names.iter().any(|n| fits(n))
    }
}

fn ip_text(b: &[u8]) -> Option<String> {
    match b.len() {
        4 => Some(std::net::Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?).to_string()),
        16 => Some(std::net::Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?).to_string()),
        _ => None,
    }
}

/// The verifier of every connection: what the platform's verifier trusts
/// (with the CA file's certificates as extra roots), and also a server
/// certificate that is byte for byte one of the CA file's certificates,
/// when it is valid now and covers the name dialled. That is the
/// self-signed certificate of a self-hosted server given as its own CA:
/// rustls refuses a CA certificate used as an end-entity one, where curl,
/// msmtp and smtplib accept it. Handshake signatures are checked as always.
#[derive(Debug)]
pub(crate) struct PinnedOrVerified {
    pub(crate) inner: Arc<dyn ServerCertVerifier>,
    pub(crate) pinned: Vec<CertificateDer<'static>>,
}

impl ServerCertVerifier for PinnedOrVerified {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        ) {
            Ok(v) => Ok(v),
            Err(e)
                if self
                    .pinned
                    .iter()
                    .any(|p| p.as_ref() == end_entity.as_ref()) =>
            {
                check_pinned(end_entity, server_name, now).map_err(|pinned| {
                    tracing::debug!("pinned certificate refused ({pinned:?}) after {e:?}");
                    pinned
                })?;
                Ok(ServerCertVerified::assertion())
            }
            Err(e) => Err(e),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// A pinned certificate is still checked for its validity period and the
/// name dialled.
fn check_pinned(der: &[u8], name: &ServerName<'_>, now: UnixTime) -> Result<(), rustls::Error> {
    use rustls::CertificateError as C;
    let bad = |c: C| rustls::Error::InvalidCertificate(c);
    let info = CertInfo::parse(der).ok_or(bad(C::BadEncoding))?;
    let now = now.as_secs() as i64;
    if now < info.not_before {
        return Err(bad(C::NotValidYet));
    }
    if now > info.not_after {
        return Err(bad(C::Expired));
    }
    let host = match name {
        ServerName::DnsName(d) => d.as_ref().to_string(),
        ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
        _ => return Err(bad(C::NotValidForName)),
    };
    if !info.covers(&host) {
        return Err(bad(C::NotValidForName));
    }
    Ok(())
}

/// A verifier that trusts any certificate but checks the handshake
/// signatures. For the inspect-only connection of `doctor` alone, which
/// sends nothing but EHLO, STARTTLS and QUIT: no credentials, no mail.
#[derive(Debug)]
pub(crate) struct InspectOnly {
    provider: Arc<CryptoProvider>,
}

impl InspectOnly {
    pub(crate) fn config() -> Arc<rustls::ClientConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = Arc::new(InspectOnly {
            provider: provider.clone(),
        });
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the default provider supports the default versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        config.resumption = rustls::client::Resumption::disabled();
        Arc::new(config)
    }
}

impl ServerCertVerifier for InspectOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(names: &[&str], subject: &str) -> CertInfo {
        CertInfo {
            subject: subject.into(),
            issuer: "CN=ca".into(),
            not_before: 0,
            not_after: 100,
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn names_and_wildcards() {
        let c = info(&["smtp.example.com", "*.mail.example.com", "127.0.0.1"], "");
        assert!(c.covers("smtp.example.com"));
        assert!(c.covers("SMTP.example.com."));
        assert!(c.covers("a.mail.example.com"));
        assert!(!c.covers("a.b.mail.example.com"));
        assert!(!c.covers("mail.example.com"));
        assert!(c.covers("127.0.0.1"));
        assert!(!c.covers("other.example.com"));
        // without subjectAltName the CN counts
        assert!(info(&[], "O=x, CN=host.example").covers("host.example"));
    }

    #[test]
    fn parses_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec!["mx.example.org".into()]).unwrap();
        let cert = params.self_signed(&key).unwrap();
        let c = CertInfo::parse(cert.der()).expect("parsed");
        assert_eq!(c.names, vec!["mx.example.org".to_string()]);
        assert!(c.covers("mx.example.org"));
        assert!(c.not_after > c.not_before);
        assert_eq!(CertInfo::date(0), "1970-01-01");
    }
}
