//! Google service accounts with domain-wide delegation: the JSON key file
//! and the RS256 assertion of the JWT-bearer grant (RFC 7523 §2.1; Google's
//! "Using OAuth 2.0 for Server to Server Applications").
//!
//! The assertion's `sub` is the mailbox to act as; the XOAUTH2 `user=` must
//! be that mailbox too, never the service account's own address.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};

/// Google caps an assertion's lifetime at one hour.
const ASSERTION_LIFETIME: u64 = 3600;

/// The fields of a service-account key file that the grant uses (`Debug`
/// shows no key: it is a `SecretString`).
#[derive(Debug)]
pub(crate) struct ServiceAccountKey {
    pub(crate) client_email: String,
    pub(crate) token_uri: Option<String>,
    key_id: Option<String>,
    private_key: SecretString,
}

#[derive(Deserialize)]
struct KeyFile {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    client_email: String,
    private_key: String,
    #[serde(default)]
    private_key_id: Option<String>,
    #[serde(default)]
    token_uri: Option<String>,
}

#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    scope: String,
    aud: &'a str,
    iat: u64,
    exp: u64,
    sub: &'a str,
}

impl ServiceAccountKey {
    /// Read a key file. Errors name the file, never its content.
    pub(crate) fn read(path: &Path) -> Result<ServiceAccountKey> {
        let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "cannot read the service account key {}: {e}",
                    path.display()
                ),
            )
        })?);
        let k: KeyFile = serde_json::from_str(&text).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the service account key {} is not a Google JSON key file (line {}, column \
                     {}: expected the fields type, client_email, private_key, token_uri). \
                     Download a JSON key in the Google Cloud console: IAM & Admin > Service \
                     accounts > the account > Keys > Add key",
                    path.display(),
                    e.line(),
                    e.column()
                ),
            )
        })?;
        if k.kind.as_deref().is_some_and(|t| t != "service_account") {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} is a '{}' credential, not a service account key",
                    path.display(),
                    k.kind.unwrap_or_default()
                ),
            ));
        }
        Ok(ServiceAccountKey {
            client_email: k.client_email,
            token_uri: k.token_uri,
            key_id: k.private_key_id,
            private_key: SecretString::from(k.private_key),
        })
    }

    /// A signed assertion asking for `scopes` on behalf of `subject`, for
    /// the token endpoint `audience`, valid for an hour from `now`.
    pub(crate) fn assertion(
        &self,
        scopes: &[String],
        subject: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<SecretString> {
        let key = jsonwebtoken::EncodingKey::from_rsa_pem(
            self.private_key.expose_secret().as_bytes(),
        )
        .map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the private key of the service account {} cannot be used for RS256: {e}",
                    self.client_email
                ),
            )
        })?;
        let iat = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
        header.kid = self.key_id.clone();
        let claims = Claims {
            iss: &self.client_email,
            scope: scopes.join(" "),
            aud: audience,
            iat,
            exp: iat + ASSERTION_LIFETIME,
            sub: subject,
        };
        jsonwebtoken::encode(&header, &claims, &key)
            .map(SecretString::from)
            .map_err(|e| {
                Error::new(
                    ErrorKind::Config,
                    format!("cannot sign the service account assertion: {e}"),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_are_named_without_their_content() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("key.json");
        std::fs::write(
            &p,
            r#"{"type":"service_account","private_key":"SECRET-PEM"}"#,
        )
        .unwrap();
        let err = ServiceAccountKey::read(&p).unwrap_err().to_string();
        assert!(err.contains("key.json") && !err.contains("SECRET"), "{err}");
        std::fs::write(
            &p,
            r#"{"type":"authorized_user","client_email":"a@b","private_key":"SECRET-PEM"}"#,
        )
        .unwrap();
        let err = ServiceAccountKey::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("authorized_user") && !err.contains("SECRET"),
            "{err}"
        );
        std::fs::write(
            &p,
            r#"{"type":"service_account","client_email":"a@b","private_key":"SECRET-PEM"}"#,
        )
        .unwrap();
        let k = ServiceAccountKey::read(&p).unwrap();
        let err = k
            .assertion(&[], "me@example.com", "aud", SystemTime::now())
            .unwrap_err()
            .to_string();
        assert!(err.contains("RS256") && !err.contains("SECRET"), "{err}");
    }
}
