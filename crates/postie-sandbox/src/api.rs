//! The HTTPS sending APIs, emulated on the sandbox's HTTP port behind its
//! OAuth server: the Gmail API's `users.messages.send` (metadata JSON with
//! `raw`, media upload, resumable upload) and Microsoft Graph's
//! `POST /v1.0/me/sendMail` with a MIME body. Tokens, scopes, sizes and
//! the daily limit are checked as the services document them; the error
//! bodies have the services' shapes: also the Gmail API disabled for the
//! project (`accessNotConfigured`), an account without a mailbox
//! (`failedPrecondition`, `MailboxNotEnabledForRESTAPI`) and a Graph From
//! that is not the user (`ErrorSendAsDenied`). An accepted message goes to the
//! mailbox as the services deliver it: recipients from To, Cc and Bcc, the
//! Bcc field removed.

use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use postie::blocking::unblock;
use postie::message::{RawOptions, from_raw};

use super::Shared;
use super::gmail::MAIL_SCOPE;
use super::mailbox::Envelope;
use super::tokens::random;

type Resp = Response<Full<Bytes>>;

/// Gmail API paths (userId `me`).
const GMAIL_SEND: &str = "/gmail/v1/users/me/messages/send";
const GMAIL_UPLOAD: &str = "/upload/gmail/v1/users/me/messages/send";
/// Graph's path.
const GRAPH_SEND: &str = "/v1.0/me/sendMail";

/// The Gmail API's largest message (`maxSize` of the discovery document).
const GMAIL_MAX: usize = 36_700_160;
/// Graph's largest request.
const GRAPH_MAX: usize = 4 * 1024 * 1024;

/// Scopes that let the Gmail API send.
const GMAIL_SCOPES: &[&str] = &[
    MAIL_SCOPE,
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.compose",
    "https://www.googleapis.com/auth/gmail.modify",
];
/// Scopes that let Graph send.
const GRAPH_SCOPES: &[&str] = &["https://graph.microsoft.com/Mail.Send", "Mail.Send"];

#[derive(Clone, Copy, PartialEq, Eq)]
enum Service {
    Gmail,
    Graph,
}

/// True for a path of the emulated APIs.
pub(crate) fn is_api(path: &str) -> bool {
    path == GMAIL_SEND || path == GMAIL_UPLOAD || path == GRAPH_SEND
}

pub(crate) async fn handle(s: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    let service = if req.uri().path() == GRAPH_SEND {
        Service::Graph
    } else {
        Service::Gmail
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(req.uri().query().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    let q = |k: &str| query.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let max = match service {
        Service::Gmail => GMAIL_MAX + 64 * 1024,
        Service::Graph => GRAPH_MAX,
    };
    let body = match Limited::new(req.into_body(), max).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return too_large(service),
    };

    // A resumable upload's second request carries the bytes to the session
    // address (Google's session URIs need no token).
    if method == Method::PUT && path == GMAIL_UPLOAD {
        let Some(id) = q("upload_id") else {
            return gmail_error(StatusCode::BAD_REQUEST, "invalidArgument", "No upload_id.");
        };
        let user = s
            .uploads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        return match user {
            Some(user) => deliver(s, service, &user, body.to_vec()).await,
            None => gmail_error(
                StatusCode::NOT_FOUND,
                "notFound",
                "The upload session is unknown or finished.",
            ),
        };
    }
    if method != Method::POST {
        return error(
            service,
            StatusCode::METHOD_NOT_ALLOWED,
            "",
            "Method not allowed.",
        );
    }

    // The token: unknown or expired is 401, valid without the scope 403.
    let now = s.now();
    let info = bearer.and_then(|t| s.grants().access_info(&t, now));
    let Some((user, scope)) = info else {
        return match service {
            Service::Gmail => gmail_json(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"code": 401,
                    "message": "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
                    "errors": [{"message": "Invalid Credentials", "domain": "global", "reason": "authError",
                                "location": "Authorization", "locationType": "header"}],
                    "status": "UNAUTHENTICATED"}}),
            ),
            Service::Graph => graph_error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationToken",
                "Access token has expired or is not yet valid.",
            ),
        };
    };
    // A project that never enabled the Gmail API: Google names it and the
    // console page that enables it.
    if service == Service::Gmail && !s.gmail_api_enabled {
        let text = "Gmail API has not been used in project sandbox before or it is disabled. Enable it by visiting https://console.developers.google.com/apis/api/gmail.googleapis.com/overview?project=sandbox then retry. If you enabled this API recently, wait a few minutes for the action to propagate to our systems and retry.";
        return gmail_json(
            StatusCode::FORBIDDEN,
            json!({"error": {"code": 403, "message": text,
                "errors": [{"message": text, "domain": "usageLimits", "reason": "accessNotConfigured",
                            "extendedHelp": "https://console.developers.google.com"}],
                "status": "PERMISSION_DENIED",
                "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                             "reason": "SERVICE_DISABLED", "domain": "googleapis.com",
                             "metadata": {"service": "gmail.googleapis.com", "consumer": "projects/sandbox"}}]}}),
        );
    }
    let wanted = match service {
        Service::Gmail => GMAIL_SCOPES,
        Service::Graph => GRAPH_SCOPES,
    };
    if !scope.split(' ').any(|g| wanted.contains(&g)) {
        return match service {
            Service::Gmail => gmail_json(
                StatusCode::FORBIDDEN,
                json!({"error": {"code": 403,
                    "message": "Request had insufficient authentication scopes.",
                    "errors": [{"message": "Insufficient Permission", "domain": "global",
                                "reason": "insufficientPermissions"}],
                    "status": "PERMISSION_DENIED"}}),
            ),
            Service::Graph => graph_error(
                StatusCode::FORBIDDEN,
                "ErrorAccessDenied",
                "Access is denied. Check credentials and try again.",
            ),
        };
    }

    // An account without a mailbox signs in but has nothing to send from.
    if s.user(&user).is_some_and(|u| !u.mailbox) {
        return per_service(
            service,
            (
                StatusCode::BAD_REQUEST,
                "failedPrecondition",
                "Precondition check failed.",
            ),
            (
                StatusCode::NOT_FOUND,
                "MailboxNotEnabledForRESTAPI",
                "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
            ),
        );
    }

    match (service, path.as_str(), q("uploadType").as_deref()) {
        (Service::Graph, _, _) => {
            if content_type.starts_with("application/json") {
                return match graph_json_message(&user, &body) {
                    Ok(raw) => deliver(s, service, &user, raw).await,
                    Err(why) => graph_error(StatusCode::BAD_REQUEST, "ErrorInvalidRequest", &why),
                };
            }
            if !content_type.starts_with("text/plain") {
                return graph_error(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "ErrorInvalidRequest",
                    "sendMail takes application/json (a message resource) or text/plain (MIME, base64).",
                );
            }
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect();
            match base64::engine::general_purpose::STANDARD.decode(text) {
                Ok(raw) => deliver(s, service, &user, raw).await,
                Err(_) => graph_error(
                    StatusCode::BAD_REQUEST,
                    "ErrorMimeContentInvalidBase64String",
                    "Invalid base64 string for MIME content.",
                ),
            }
        }
        (_, GMAIL_SEND, _) => {
            // Metadata: {"raw": base64url of the message}
            let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
            let Some(raw) = v["raw"].as_str() else {
                return gmail_error(
                    StatusCode::BAD_REQUEST,
                    "invalidArgument",
                    "'raw' RFC822 payload message string or uploading message via /upload/* URL required",
                );
            };
            let engine = base64::engine::GeneralPurpose::new(
                &base64::alphabet::URL_SAFE,
                base64::engine::GeneralPurposeConfig::new()
                    .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
            );
            match engine.decode(raw.trim()) {
                Ok(bytes) if bytes.len() <= GMAIL_MAX => deliver(s, service, &user, bytes).await,
                Ok(_) => too_large(service),
                Err(_) => gmail_error(
                    StatusCode::BAD_REQUEST,
                    "invalidArgument",
                    "Invalid value for ByteString: raw",
                ),
            }
        }
        (_, _, Some("media")) => {
            if body.len() > GMAIL_MAX {
                return too_large(service);
            }
            deliver(s, service, &user, body.to_vec()).await
        }
        (_, _, Some("multipart")) => match multipart_message(&content_type, &body) {
            Some(raw) => deliver(s, service, &user, raw).await,
            None => gmail_error(
                StatusCode::BAD_REQUEST,
                "invalidArgument",
                "Invalid multipart request.",
            ),
        },
        (_, _, Some("resumable")) => {
            let id = random(12);
            s.uploads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id.clone(), user);
            let mut r = Response::new(Full::new(Bytes::new()));
            let at = format!(
                "{}{GMAIL_UPLOAD}?uploadType=resumable&upload_id={id}",
                s.issuer
            );
            if let Ok(v) = HeaderValue::from_str(&at) {
                r.headers_mut().insert(header::LOCATION, v);
            }
            r
        }
        _ => gmail_error(
            StatusCode::BAD_REQUEST,
            "invalidArgument",
            "Unknown uploadType: media, multipart or resumable.",
        ),
    }
}

/// Graph's JSON form of sendMail (`{"message": {subject, body, toRecipients,
/// ccRecipients, bccRecipients}, "saveToSentItems"}`) as the MIME message
/// Exchange would send from `user`.
fn graph_json_message(user: &str, body: &[u8]) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("Invalid JSON: {e}"))?;
    // Graph takes the action's parameters in any letter case (Microsoft's
    // SDKs send "Message" and "SaveToSentItems", the reference "message").
    let m = field(&v, "message");
    if !m.is_object() {
        return Err("The request has no message.".into());
    }
    let list = |key: &str| -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for r in field(m, key).as_array().into_iter().flatten() {
            let a = field(field(r, "emailAddress"), "address")
                .as_str()
                .ok_or_else(|| format!("{key}: a recipient without emailAddress.address"))?;
            if a.contains(['\r', '\n', ',', '<', '>']) || !a.contains('@') {
                return Err(format!("{key}: '{a}' is not an address"));
            }
            out.push(a.to_string());
        }
        Ok(out)
    };
    let (to, cc, bcc) = (
        list("toRecipients")?,
        list("ccRecipients")?,
        list("bccRecipients")?,
    );
    let subject: String = field(m, "subject")
        .as_str()
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let html = field(field(m, "body"), "contentType")
        .as_str()
        .is_some_and(|t| t.eq_ignore_ascii_case("html"));
    let content = field(field(m, "body"), "content").as_str().unwrap_or("");
    let from = match field(field(field(m, "from"), "emailAddress"), "address").as_str() {
        Some(a) if a.contains(['\r', '\n', ',', '<', '>']) || !a.contains('@') => {
            return Err(format!("from: '{a}' is not an address"));
        }
        Some(a) => a,
        None => user,
    };
    let mut text = format!("From: {from}\r\n");
    for (name, l) in [("To", &to), ("Cc", &cc), ("Bcc", &bcc)] {
        if !l.is_empty() {
            text.push_str(&format!("{name}: {}\r\n", l.join(", ")));
        }
    }
    text.push_str(&format!(
        "Subject: =?utf-8?b?{}?=\r\nMIME-Version: 1.0\r\nContent-Type: text/{}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
        base64::engine::general_purpose::STANDARD.encode(subject.as_bytes()),
        if html { "html" } else { "plain" }
    ));
    let encoded = base64::engine::general_purpose::STANDARD.encode(content.as_bytes());
    for chunk in encoded.as_bytes().chunks(76) {
        text.push_str(std::str::from_utf8(chunk).unwrap_or(""));
        text.push_str("\r\n");
    }
    Ok(text.into_bytes())
}

/// `v[name]`, the name in any letter case; `Null` when absent.
fn field<'a>(v: &'a Value, name: &str) -> &'a Value {
    static NULL: Value = Value::Null;
    v.as_object()
        .and_then(|o| {
            o.get(name).or_else(|| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v)
            })
        })
        .unwrap_or(&NULL)
}

/// The message part of a `multipart/related` upload (metadata JSON, then
/// the message).
fn multipart_message(content_type: &str, body: &[u8]) -> Option<Vec<u8>> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))?
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let text = body;
    let mut parts: Vec<&[u8]> = Vec::new();
    let mut rest = text;
    while let Some(at) = find(rest, delim.as_bytes()) {
        let after = &rest[at + delim.len()..];
        if after.starts_with(b"--") {
            break;
        }
        let next = find(after, delim.as_bytes()).unwrap_or(after.len());
        parts.push(&after[..next]);
        rest = &after[next..];
    }
    let last = parts.get(1)?;
    let start = find(last, b"\r\n\r\n").map(|i| i + 4)?;
    let mut out = last[start..].to_vec();
    while out.ends_with(b"\r\n") || out.ends_with(b"\n") {
        out.pop();
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Store `raw` as the service delivers it: recipients from the header
/// (Bcc removed), the daily limit shared with SMTP.
async fn deliver(s: &Arc<Shared>, service: Service, user: &str, raw: Vec<u8>) -> Resp {
    // Up to 35 MiB to read: on the blocking pool.
    let parsed = unblock(move || {
        from_raw(
            raw,
            &RawOptions {
                read_headers: true,
                ..Default::default()
            },
        )
    })
    .await;
    let msg = match parsed {
        Ok(m) if !m.recipients.is_empty() => m,
        Ok(_) | Err(_) => {
            return per_service(
                service,
                (
                    StatusCode::BAD_REQUEST,
                    "invalidArgument",
                    "Recipient address required",
                ),
                (
                    StatusCode::BAD_REQUEST,
                    "ErrorInvalidRecipients",
                    "At least one recipient is not valid.",
                ),
            );
        }
    };
    // Exchange sends as the signed-in mailbox only, unless granted Send As.
    let from = postie::message::HeadSummary::parse(msg.body.as_bytes().unwrap_or_default()).from;
    if service == Service::Graph
        && from
            .as_deref()
            .is_some_and(|f| !f.eq_ignore_ascii_case(user.trim()))
    {
        return graph_error(
            StatusCode::FORBIDDEN,
            "ErrorSendAsDenied",
            "The user account which was used to submit this request does not have the right to send mail on behalf of the specified sending account., Cannot submit message.",
        );
    }
    let now = s.now();
    let sent = {
        let s = s.clone();
        let u = user.to_string();
        unblock(move || s.mailbox.sent_since(&u, now.saturating_sub(86_400))).await
    };
    if sent.is_ok_and(|n| n >= s.daily_limit as usize) {
        return match service {
            Service::Gmail => gmail_json(
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": {"code": 429, "message": "User-rate limit exceeded.",
                    "errors": [{"message": "User-rate limit exceeded.", "domain": "global",
                                "reason": "userRateLimitExceeded"}], "status": "RESOURCE_EXHAUSTED"}}),
            ),
            Service::Graph => {
                let mut r = graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                );
                r.headers_mut()
                    .insert("retry-after", HeaderValue::from_static("60"));
                r
            }
        };
    }
    let env = Envelope {
        user: user.to_string(),
        mechanism: match service {
            Service::Gmail => "gmail-api".into(),
            Service::Graph => "graph".into(),
        },
        mail_from: from,
        recipients: msg.recipients.iter().map(|a| a.to_string()).collect(),
    };
    let bytes = msg.body.as_bytes().unwrap_or_default().to_vec();
    let stored = {
        let s = s.clone();
        unblock(move || s.mailbox.store(env, &bytes, now)).await
    };
    match (stored, service) {
        (Ok(m), Service::Gmail) => {
            tracing::info!("sandbox: Gmail API: message {} from {user} stored", m.id);
            gmail_json(
                StatusCode::OK,
                json!({"id": format!("{:016x}", m.id), "threadId": format!("{:016x}", m.id),
                       "labelIds": ["SENT"]}),
            )
        }
        (Ok(m), Service::Graph) => {
            tracing::info!("sandbox: Graph: message {} from {user} stored", m.id);
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::ACCEPTED;
            r
        }
        (Err(e), _) => error(
            service,
            StatusCode::INTERNAL_SERVER_ERROR,
            "backendError",
            e.message(),
        ),
    }
}

fn too_large(service: Service) -> Resp {
    per_service(
        service,
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "uploadTooLarge",
            "Media is too large.",
        ),
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            "The request is larger than 4 MB.",
        ),
    )
}

/// The same refusal as each service words it: (status, reason or code, message).
fn per_service(
    service: Service,
    gmail: (StatusCode, &str, &str),
    graph: (StatusCode, &str, &str),
) -> Resp {
    match service {
        Service::Gmail => gmail_error(gmail.0, gmail.1, gmail.2),
        Service::Graph => graph_error(graph.0, graph.1, graph.2),
    }
}

fn error(service: Service, status: StatusCode, reason: &str, message: &str) -> Resp {
    match service {
        Service::Gmail => gmail_error(status, reason, message),
        Service::Graph => graph_error(status, reason, message),
    }
}

fn gmail_error(status: StatusCode, reason: &str, message: &str) -> Resp {
    let code = status.as_u16();
    let status_name = match code {
        400 if reason == "failedPrecondition" => "FAILED_PRECONDITION",
        400 => "INVALID_ARGUMENT",
        404 => "NOT_FOUND",
        413 => "INVALID_ARGUMENT",
        _ => "INTERNAL",
    };
    gmail_json(
        status,
        json!({"error": {"code": code, "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": status_name}}),
    )
}

fn gmail_json(status: StatusCode, v: Value) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    r
}

fn graph_error(status: StatusCode, code: &str, message: &str) -> Resp {
    gmail_json(status, json!({"error": {"code": code, "message": message}}))
}
