//! The OAuth error an authorization server answers (RFC 6749 §5.2 at the
//! token endpoint, §4.1.2.1 on the redirect, RFC 8628 §3.5 while polling),
//! kept whole so that the explanation can name the real cause.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::ErrorKind;

/// An error answered by an authorization server, with Microsoft's extra
/// fields (`error_codes` are the AADSTS numbers). Servers put no secret in
/// these fields, and postie adds none.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthErrorInfo {
    /// The error code: `invalid_grant`, `access_denied`, `invalid_scope` ...
    pub error: String,
    /// The server's human-readable detail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
    /// A page about the error, when the server gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_uri: Option<String>,
    /// Microsoft Entra ID's AADSTS error numbers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub error_codes: Vec<u64>,
    /// Microsoft's trace ID (quote it to an administrator or to support).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// Microsoft's correlation ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
    /// The HTTP status of the answer; `None` when the error did not come in
    /// an HTTP response (the browser redirect, or postie's own finding that
    /// no token is stored, `login_required`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The grant postie was using when refused (`refresh_token`,
    /// `authorization_code`, `urn:ietf:params:oauth:grant-type:jwt-bearer`
    /// ...): `invalid_grant` means different things for each.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_type: Option<String>,
}

impl OAuthErrorInfo {
    /// An error with only a code and a description.
    pub fn new(error: impl Into<String>, description: Option<String>) -> OAuthErrorInfo {
        OAuthErrorInfo {
            error: error.into(),
            error_description: description,
            ..OAuthErrorInfo::default()
        }
    }

    /// The AADSTS numbers: `error_codes`, else those quoted in the description
    /// (device-code polling answers carry them only there).
    pub fn aadsts(&self) -> Vec<u64> {
        if !self.error_codes.is_empty() {
            return self.error_codes.clone();
        }
        let Some(d) = &self.error_description else {
            return Vec::new();
        };
        d.match_indices("AADSTS")
            .filter_map(|(i, m)| {
                let digits: String = d[i + m.len()..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            })
            .collect()
    }

    /// The first line of the description: Microsoft appends trace and
    /// correlation IDs and a timestamp on further lines.
    pub fn short_description(&self) -> Option<&str> {
        self.error_description
            .as_deref()
            .map(|d| d.lines().next().unwrap_or("").trim())
            .filter(|d| !d.is_empty())
    }

    /// What class of failure this is.
    pub fn kind(&self) -> ErrorKind {
        let codes = self.aadsts();
        // Microsoft: the app registration, not the user, must change.
        if codes
            .iter()
            .any(|c| matches!(c, 7000218 | 700016 | 900144 | 50011 | 700054))
        {
            return ErrorKind::Config;
        }
        match self.error.as_str() {
            "invalid_grant"
            | "access_denied"
            | "invalid_client"
            | "expired_token"
            | "authorization_declined"
            | "interaction_required"
            | "consent_required"
            | "login_required"
            | "invalid_token"
            | "bad_verification_code" => ErrorKind::Credentials,
            "redirect_uri_mismatch"
            | "invalid_scope"
            | "unauthorized_client"
            | "invalid_request"
            | "unsupported_grant_type"
            | "unsupported_response_type"
            | "invalid_client_metadata"
            | "org_internal"
            | "disabled_client" => ErrorKind::Config,
            "temporarily_unavailable" | "server_error" | "slow_down" => ErrorKind::Transient,
            _ if self.http_status.is_some_and(|s| s >= 500 || s == 429) => ErrorKind::Transient,
            _ => ErrorKind::Protocol,
        }
    }
}

impl fmt::Display for OAuthErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        if let Some(d) = self.short_description() {
            write!(f, " ({d})")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microsoft_error_keeps_codes_and_first_line() {
        let body = r#"{"error":"invalid_grant","error_description":"AADSTS70000: The provided value for the 'code' parameter is not valid.\r\nTrace ID: 1\r\nCorrelation ID: 2","error_codes":[70000],"trace_id":"1","correlation_id":"2"}"#;
        let e: OAuthErrorInfo = serde_json::from_str(body).unwrap();
        assert_eq!(e.aadsts(), vec![70000]);
        assert_eq!(
            e.to_string(),
            "invalid_grant (AADSTS70000: The provided value for the 'code' parameter is not valid.)"
        );
        assert_eq!(e.kind(), ErrorKind::Credentials);
    }

    #[test]
    fn codes_from_the_description_and_kinds() {
        let e = OAuthErrorInfo::new(
            "invalid_client",
            Some("AADSTS7000218: The request body must contain 'client_secret'".into()),
        );
        assert_eq!(e.aadsts(), vec![7000218]);
        assert_eq!(e.kind(), ErrorKind::Config);
        assert_eq!(
            OAuthErrorInfo::new("invalid_scope", None).kind(),
            ErrorKind::Config
        );
        assert_eq!(
            OAuthErrorInfo::new("access_denied", None).kind(),
            ErrorKind::Credentials
        );
        let mut busy = OAuthErrorInfo::new("whatever", None);
        busy.http_status = Some(503);
        assert_eq!(busy.kind(), ErrorKind::Transient);
    }
}
