//! TLS for postie's own loopback servers. Without a configured certificate,
//! postie makes a small CA and a certificate for `localhost`, `127.0.0.1`
//! and `::1` signed by it, once, and keeps them in its data directory:
//! clients that verify can trust `ca.pem`; Python's `smtplib.starttls()`
//! without a context does not verify at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use postie::error::{Error, ErrorKind, Result};
use postie::fs::write_atomic;

/// Files of a local certificate.
#[derive(Clone, Debug)]
pub struct LocalCert {
    /// The CA certificate clients can trust (`--ca-file`), when postie made it.
    pub ca: Option<PathBuf>,
    /// Server certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600).
    pub key: PathBuf,
}

impl LocalCert {
    /// The certificate in `dir` (`ca.pem`, `cert.pem`, `key.pem`), made on
    /// first use.
    pub fn load_or_create(dir: &Path) -> Result<LocalCert> {
        let lc = LocalCert {
            ca: Some(dir.join("ca.pem")),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
        };
        if lc.cert.exists() && lc.key.exists() {
            return Ok(lc);
        }
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let (ca_pem, chain_pem, key_pem) = generate().map_err(|e| {
            Error::new(
                ErrorKind::Tls,
                format!("cannot make a local certificate: {e}"),
            )
        })?;
        // The key first: a cert.pem without its key would be taken as complete.
        write_atomic(&lc.key, key_pem.as_bytes()).map_err(|e| io(&lc.key, e))?;
        write_atomic(dir.join("ca.pem").as_path(), ca_pem.as_bytes()).map_err(|e| io(dir, e))?;
        write_atomic(&lc.cert, chain_pem.as_bytes()).map_err(|e| io(&lc.cert, e))?;
        Ok(lc)
    }

    /// Files given by the user.
    pub fn from_files(cert: PathBuf, key: PathBuf) -> LocalCert {
        LocalCert {
            ca: None,
            cert,
            key,
        }
    }

    /// A rustls server configuration for these files.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&self.cert)
            .and_then(|it| it.collect::<std::result::Result<_, _>>())
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot read the certificate {}: {e}", self.cert.display()),
                )
            })?;
        if chain.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                format!("{} holds no PEM certificate", self.cert.display()),
            ));
        }
        let key = PrivateKeyDer::from_pem_file(&self.key).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("cannot read the private key {}: {e}", self.key.display()),
            )
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .and_then(|b| b.with_no_client_auth().with_single_cert(chain, key))
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!(
                        "the certificate {} and key {} cannot be used: {e}",
                        self.cert.display(),
                        self.key.display()
                    ),
                )
            })?;
        Ok(Arc::new(config))
    }
}

/// A CA, and a server certificate for the loopback names signed by it:
/// (CA PEM, server chain PEM, server key PEM).
fn generate() -> std::result::Result<(String, String, String), rcgen::Error> {
    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name
        .push(DnType::CommonName, "postie local CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let key = KeyPair::generate()?;
    let mut leaf = CertificateParams::new(vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ])?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer)?;
    Ok((
        ca_cert.pem(),
        format!("{}{}", cert.pem(), ca_cert.pem()),
        key.serialize_pem(),
    ))
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot write {}: {e}", path.display()),
    )
}
