//! Sending over HTTPS instead of SMTP, with the account's OAuth access
//! token: the Gmail API (`users.messages.send`) and Microsoft Graph
//! (`POST /me/sendMail` with a MIME body). For hosts where SMTP ports are
//! blocked or SMTP AUTH is turned off; the Gmail API also takes the narrow
//! `gmail.send` scope, which Gmail's SMTP server refuses.
//!
//! Both services read the recipients from the message's header, not from
//! an envelope: recipients the header does not name (blind copies) are put
//! in a `Bcc:` field of the request, which the services deliver to and
//! remove. Both answer "accepted" (Gmail 200, Graph 202), which promises no
//! delivery, as an SMTP 250 does not.
//!
//! Sizes, as the services document them: Gmail takes up to 35 MiB through
//! its upload endpoint (`maxSize` 36,700,160 in its discovery document),
//! in one request up to 5 MB and with a resumable upload above; Graph takes
//! 4 MB per request, the MIME base64-encoded, so about 3 MB of message
//! (larger ones need a draft and an upload session, which needs the wider
//! `Mail.ReadWrite` permission: postie refuses them with the explanation).

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use url::Url;

use crate::config::Transport;
use crate::error::{Error, ErrorKind, Result};
use crate::message::OutgoingMessage;
use crate::provider::TlsMode;

/// Google's Gmail API.
pub const GMAIL_API: &str = "https://gmail.googleapis.com";
/// Microsoft Graph.
pub const GRAPH_API: &str = "https://graph.microsoft.com";
/// The largest message the Gmail API's upload endpoint takes (35 MiB).
pub const GMAIL_MAX: u64 = 36_700_160;
/// Above this, a Gmail upload is resumable (in two requests) rather than
/// one request.
pub const GMAIL_SIMPLE_MAX: u64 = 5 * 1024 * 1024;
/// The largest request body Graph takes: the message, base64-encoded.
pub const GRAPH_MAX: u64 = 4 * 1024 * 1024;

/// What a service said when it took a message.
#[derive(Clone, Debug)]
pub struct Accepted {
    /// The HTTP status (200 for Gmail, 202 for Graph).
    pub status: u16,
    /// The service's id of the sent message (Gmail's), when it gives one.
    pub id: Option<String>,
}

/// A client of one HTTPS sending API. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Api {
    transport: Transport,
    base: Url,
    http: reqwest::Client,
}

impl Api {
    /// A client for `transport` (`GmailApi` or `Graph`) at `base` (the
    /// service's own when `None`): `https://`, or `http://` on loopback.
    pub fn new(transport: Transport, base: Option<&str>) -> Result<Api> {
        let default = match transport {
            Transport::GmailApi => GMAIL_API,
            Transport::Graph => GRAPH_API,
            Transport::Smtp => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    "SMTP is not an HTTPS API: send through a session",
                ));
            }
        };
        let text = base.unwrap_or(default);
        let base = Url::parse(text).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!("api_url = \"{text}\" is not a URL: {e}"),
            )
        })?;
        let loopback = match base.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
        if base.scheme() != "https" && !(base.scheme() == "http" && loopback) {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "api_url = \"{text}\" must be https:// (http:// only on this machine): the \
                     access token goes with every request"
                ),
            ));
        }
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(300))
            .user_agent(concat!("postie/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::new(ErrorKind::Tls, format!("cannot set up HTTPS: {e}")))?;
        Ok(Api {
            transport,
            base,
            http,
        })
    }

    /// The service's name, for messages.
    pub fn service(&self) -> &'static str {
        service(self.transport)
    }

    /// HTTPS is TLS from the first byte; plain HTTP (allowed to loopback
    /// only: the sandbox, a local proxy) is none.
    pub fn tls(&self) -> TlsMode {
        if self.base.scheme() == "https" {
            TlsMode::Implicit
        } else {
            TlsMode::None
        }
    }

    /// `host:port` of the service.
    pub fn server(&self) -> String {
        format!(
            "{}:{}",
            self.base.host_str().unwrap_or(""),
            self.base.port_or_known_default().unwrap_or(443)
        )
    }

    /// Send `msg` with `token`. An error says what the service answered,
    /// with the explanation catalog's finding for it.
    pub async fn send(&self, token: &SecretString, msg: &OutgoingMessage) -> Result<Accepted> {
        let body = msg.body.clone();
        let mut raw = crate::blocking::unblock(move || body.to_vec()).await?;
        add_bcc(&mut raw, msg);
        match self.transport {
            Transport::Graph => self.send_graph(token, raw).await,
            _ => self.send_gmail(token, raw).await,
        }
    }

    async fn send_gmail(&self, token: &SecretString, raw: Vec<u8>) -> Result<Accepted> {
        let size = raw.len() as u64;
        if size > GMAIL_MAX {
            return Err(too_large(self.transport, size, GMAIL_MAX));
        }
        let url = self.url("/upload/gmail/v1/users/me/messages/send");
        let resp = if size <= GMAIL_SIMPLE_MAX {
            let req = self
                .http
                .post(format!("{url}?uploadType=media"))
                .bearer_auth(token.expose_secret())
                .header("Content-Type", "message/rfc822")
                .body(raw);
            self.execute(req).await?
        } else {
            // Resumable (RFC-less, Google's): the session first, then the bytes.
            let start = self
                .http
                .post(format!("{url}?uploadType=resumable"))
                .bearer_auth(token.expose_secret())
                .header("X-Upload-Content-Type", "message/rfc822")
                .header("X-Upload-Content-Length", size.to_string())
                .header("Content-Type", "application/json; charset=UTF-8")
                .body("{}");
            let started = self.execute(start).await?;
            let location = started
                .headers()
                .get("location")
                .and_then(|v| v.to_str().ok())
                .and_then(|l| Url::parse(l).ok())
                .ok_or_else(|| {
                    Error::new(
                        ErrorKind::Protocol,
                        "the Gmail API started an upload but gave no Location to send it to",
                    )
                })?;
            if location.origin() != self.base.origin() {
                return Err(Error::new(
                    ErrorKind::Protocol,
                    format!(
                        "the Gmail API's upload address is on another server ({}): not sent there",
                        location.origin().ascii_serialization()
                    ),
                ));
            }
            let put = self
                .http
                .put(location)
                .bearer_auth(token.expose_secret())
                .header("Content-Type", "message/rfc822")
                .body(raw);
            self.execute(put).await?
        };
        let status = resp.status().as_u16();
        let v: Value = resp.json().await.unwrap_or(Value::Null);
        Ok(Accepted {
            status,
            id: v["id"].as_str().map(str::to_string),
        })
    }

    async fn send_graph(&self, token: &SecretString, raw: Vec<u8>) -> Result<Accepted> {
        use base64::Engine as _;
        let body = base64::engine::general_purpose::STANDARD.encode(&raw);
        if body.len() as u64 > GRAPH_MAX {
            return Err(too_large(self.transport, body.len() as u64, GRAPH_MAX));
        }
        let req = self
            .http
            .post(self.url("/v1.0/me/sendMail"))
            .bearer_auth(token.expose_secret())
            .header("Content-Type", "text/plain")
            .body(body);
        let resp = self.execute(req).await?;
        Ok(Accepted {
            status: resp.status().as_u16(),
            id: None,
        })
    }

    /// A harmless authenticated call: an empty send, which the service
    /// refuses as invalid (400) only after it accepted the token, its scope
    /// and the API being enabled; nothing is sent. `Ok` with what it said;
    /// any other answer is the error a real send would get.
    pub async fn probe(&self, token: &SecretString) -> Result<String> {
        let req = match self.transport {
            Transport::Graph => self
                .http
                .post(self.url("/v1.0/me/sendMail"))
                .bearer_auth(token.expose_secret())
                .header("Content-Type", "text/plain")
                .body(""),
            _ => self
                .http
                .post(self.url("/gmail/v1/users/me/messages/send"))
                .bearer_auth(token.expose_secret())
                .json(&serde_json::json!({ "raw": "" })),
        };
        match self.execute(req).await {
            Ok(r) => Ok(format!(
                "the {} took an empty request (HTTP {})",
                self.service(),
                r.status().as_u16()
            )),
            Err(e)
                if matches!(
                    e.finding(),
                    Some("api-gmail-invalid-message" | "api-graph-invalid-message")
                ) =>
            {
                Ok(format!(
                    "the {} accepted the token and refused an empty message, as it should ({})",
                    self.service(),
                    e.message()
                ))
            }
            Err(e) => Err(e),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base.as_str().trim_end_matches('/'))
    }

    /// One request; a status other than 2xx is the service's error.
    async fn execute(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = req.send().await.map_err(|e| {
            let kind = if e.is_connect() || e.is_timeout() {
                ErrorKind::Unavailable
            } else {
                ErrorKind::Transient
            };
            let mut err = Error::new(
                kind,
                format!(
                    "cannot reach the {} at {}: {}",
                    self.service(),
                    self.server(),
                    crate::oauth::describe_http(&e)
                ),
            );
            if e.is_connect() {
                err = err.with_finding("unreachable");
            }
            err
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        Err(api_error(self.transport, status, &body, retry_after))
    }
}

fn service(t: Transport) -> &'static str {
    match t {
        Transport::Graph => "Microsoft Graph API",
        _ => "Gmail API",
    }
}

fn too_large(t: Transport, size: u64, max: u64) -> Error {
    let what = match t {
        Transport::Graph => "4 MB per request, the message base64-encoded (about 3 MB of message)",
        _ => "35 MiB",
    };
    Error::new(
        ErrorKind::Message,
        format!(
            "the message is too large for the {} ({size} bytes; it takes {what}, {max} bytes)",
            service(t)
        ),
    )
    .with_finding("api-too-large")
}

/// The error for a service's answer `status` with JSON `body`: its reason
/// (Gmail's `errors[].reason` or `status`, Graph's `error.code`) decides
/// the kind and the explanation.
pub fn api_error(t: Transport, status: u16, body: &Value, retry_after: Option<Duration>) -> Error {
    let e = &body["error"];
    let (reason, text) = match t {
        Transport::Graph => (
            e["code"].as_str().unwrap_or("").to_string(),
            e["message"].as_str().unwrap_or("").to_string(),
        ),
        _ => (
            e["errors"][0]["reason"]
                .as_str()
                .or_else(|| e["status"].as_str())
                .unwrap_or("")
                .to_string(),
            e["message"].as_str().unwrap_or("").to_string(),
        ),
    };
    let r = reason.as_str();
    let (kind, finding) = match (t, status, r) {
        // The daily sending limit (shared with SMTP and the web): hours, not
        // a pause of the account.
        (_, 403 | 429, "dailyLimitExceeded" | "quotaExceeded") => {
            (ErrorKind::Transient, "api-daily-limit")
        }
        (_, 429, _) | (_, 403, "rateLimitExceeded" | "userRateLimitExceeded") => {
            (ErrorKind::Transient, "api-rate-limit")
        }
        (_, 413, _) | (Transport::Graph, _, "ErrorMessageSizeExceeded") => {
            (ErrorKind::Message, "api-too-large")
        }
        (Transport::Graph, 401, _) => (ErrorKind::Credentials, "api-graph-unauthenticated"),
        (Transport::Graph, _, "ErrorSendAsDenied") => {
            (ErrorKind::Rejected, "api-graph-send-as-denied")
        }
        (Transport::Graph, _, "MailboxNotEnabledForRESTAPI" | "MailboxNotSupportedForRESTAPI") => {
            (ErrorKind::Config, "api-graph-mailbox-not-enabled")
        }
        (Transport::Graph, 403, _) => (ErrorKind::Credentials, "api-graph-access-denied"),
        (Transport::Graph, 400, _) => (ErrorKind::Message, "api-graph-invalid-message"),
        (_, 401, _) => (ErrorKind::Credentials, "api-gmail-unauthenticated"),
        (_, 403, "accessNotConfigured" | "SERVICE_DISABLED") => {
            (ErrorKind::Config, "api-gmail-disabled")
        }
        (_, 403, _) => (ErrorKind::Credentials, "api-gmail-scope"),
        // No mailbox to send from: the account's setup, not the message.
        (_, 400, "failedPrecondition" | "FAILED_PRECONDITION") => {
            (ErrorKind::Config, "api-gmail-failed-precondition")
        }
        (_, 400, _) => (ErrorKind::Message, "api-gmail-invalid-message"),
        (_, s, _) if s >= 500 => (ErrorKind::Transient, "api-server-error"),
        _ => (ErrorKind::Rejected, "api-server-error"),
    };
    let shown = if reason.is_empty() {
        String::new()
    } else {
        format!(" {reason}")
    };
    let mut err = Error::new(
        kind,
        format!(
            "the {} answered HTTP {status}{shown}: {}",
            service(t),
            if text.is_empty() {
                "(no message)"
            } else {
                &text
            }
        ),
    )
    .with_finding(finding);
    if let Some(w) = retry_after {
        err = err.with_retry_after(w);
    }
    err
}

/// Recipients of the envelope that the header names in neither To nor Cc
/// go in a `Bcc:` field, for the services to deliver to and remove.
fn add_bcc(raw: &mut Vec<u8>, msg: &OutgoingMessage) {
    let Some(head) = mail_parser::MessageParser::new().parse_headers(&raw[..]) else {
        return;
    };
    let mut named: Vec<String> = Vec::new();
    for list in [head.to(), head.cc(), head.bcc()].into_iter().flatten() {
        for a in list.iter() {
            if let Some(addr) = a.address() {
                named.push(addr.trim().to_ascii_lowercase());
            }
        }
    }
    let blind: Vec<String> = msg
        .recipients
        .iter()
        .map(|r| r.to_string())
        .filter(|r| !named.contains(&r.to_ascii_lowercase()))
        .collect();
    if blind.is_empty() {
        return;
    }
    let mut field = format!("Bcc: {}\r\n", blind.join(", ")).into_bytes();
    field.append(raw);
    *raw = field;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_documented_error_body_has_its_kind_and_explanation() {
        let gmail = |status, reason: &str| {
            api_error(
                Transport::GmailApi,
                status,
                &json!({"error": {"code": status, "message": "m", "errors": [{"reason": reason}]}}),
                None,
            )
        };
        let graph = |status, code: &str| {
            api_error(
                Transport::Graph,
                status,
                &json!({"error": {"code": code, "message": "m"}}),
                None,
            )
        };
        for (e, kind, finding) in [
            (
                gmail(401, "authError"),
                ErrorKind::Credentials,
                "api-gmail-unauthenticated",
            ),
            (
                gmail(403, "insufficientPermissions"),
                ErrorKind::Credentials,
                "api-gmail-scope",
            ),
            (
                gmail(403, "accessNotConfigured"),
                ErrorKind::Config,
                "api-gmail-disabled",
            ),
            (
                gmail(429, "rateLimitExceeded"),
                ErrorKind::Transient,
                "api-rate-limit",
            ),
            (
                gmail(403, "userRateLimitExceeded"),
                ErrorKind::Transient,
                "api-rate-limit",
            ),
            (
                gmail(400, "failedPrecondition"),
                ErrorKind::Config,
                "api-gmail-failed-precondition",
            ),
            (
                gmail(403, "dailyLimitExceeded"),
                ErrorKind::Transient,
                "api-daily-limit",
            ),
            (
                gmail(400, "invalidArgument"),
                ErrorKind::Message,
                "api-gmail-invalid-message",
            ),
            (
                gmail(503, "backendError"),
                ErrorKind::Transient,
                "api-server-error",
            ),
            (
                graph(401, "InvalidAuthenticationToken"),
                ErrorKind::Credentials,
                "api-graph-unauthenticated",
            ),
            (
                graph(403, "ErrorAccessDenied"),
                ErrorKind::Credentials,
                "api-graph-access-denied",
            ),
            (
                graph(403, "ErrorSendAsDenied"),
                ErrorKind::Rejected,
                "api-graph-send-as-denied",
            ),
            (
                graph(404, "MailboxNotEnabledForRESTAPI"),
                ErrorKind::Config,
                "api-graph-mailbox-not-enabled",
            ),
            (
                graph(429, "ApplicationThrottled"),
                ErrorKind::Transient,
                "api-rate-limit",
            ),
            (
                graph(413, "ErrorMessageSizeExceeded"),
                ErrorKind::Message,
                "api-too-large",
            ),
            (
                graph(400, "ErrorMimeContentInvalidBase64String"),
                ErrorKind::Message,
                "api-graph-invalid-message",
            ),
        ] {
            assert_eq!(
                (e.kind(), e.finding()),
                (kind, Some(finding)),
                "{}",
                e.message()
            );
            // every finding is in the catalog (this panics otherwise)
            let x = crate::explain::explain(&e, &crate::explain::Context::default());
            assert_eq!(x.id, finding);
            assert!(!x.fix.is_empty(), "{finding}");
            let words = format!("{} {} {}", x.summary, x.causes.join(" "), x.fix.join(" "));
            assert!(
                !words.contains("{do:"),
                "{finding}: a placeholder left: {words}"
            );
        }
        let throttled = api_error(
            Transport::Graph,
            429,
            &json!({"error": {"code": "TooManyRequests"}}),
            Some(Duration::from_secs(7)),
        );
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(7)));
    }

    #[test]
    fn blind_copies_go_in_a_bcc_field_and_named_ones_do_not() {
        let msg = crate::message::from_raw(
            b"From: a@example.com\r\nTo: B <b@example.com>\r\nCc: c@example.com\r\nSubject: x\r\n\r\nhi\r\n"
                .to_vec(),
            &crate::message::RawOptions {
                recipients: vec!["b@example.com".into(), "C@example.com".into(), "hidden@example.com".into()],
                ..Default::default()
            },
        )
        .unwrap();
        let mut raw = msg.body.to_vec().unwrap();
        add_bcc(&mut raw, &msg);
        let text = String::from_utf8(raw).unwrap();
        assert!(text.starts_with("Bcc: hidden@example.com\r\n"), "{text}");
        assert_eq!(text.matches("Bcc:").count(), 1);
    }

    #[test]
    fn only_https_or_loopback_http() {
        assert!(Api::new(Transport::GmailApi, None).is_ok());
        assert!(Api::new(Transport::Graph, Some("http://127.0.0.1:8080")).is_ok());
        let e = Api::new(Transport::GmailApi, Some("http://gmail.example.com")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(Api::new(Transport::Smtp, None).is_err());
    }
}
