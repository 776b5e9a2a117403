//! The sandbox's HTTP side (hyper): the OAuth 2.0 authorization server
//! and the mailbox pages. Paths follow Google's where Google has them.
//!
//! Errors follow RFC 6749 §4.1.2.1: a request whose client or redirect URI
//! is wrong gets an error page and is never redirected; any other problem
//! is sent back to the client's redirect URI.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::watch;

use postie::blocking::unblock;

use super::Shared;
use super::gmail::MAIL_SCOPE;
use super::mailbox::StoredMessage;
use super::pages;
use super::tokens::{Consent, DEVICE_LIFETIME, Issued, OAuthError};

/// The authorization endpoint (Google's path).
pub(crate) const AUTHORIZE: &str = "/o/oauth2/v2/auth";
/// The token endpoint.
pub(crate) const TOKEN: &str = "/token";
/// The device authorization endpoint.
pub(crate) const DEVICE_CODE: &str = "/device/code";
/// The page where a person enters a device's user code.
pub(crate) const DEVICE: &str = "/device";
/// The revocation endpoint.
pub(crate) const REVOKE: &str = "/revoke";

/// Scopes the consent page knows. `gmail.send` is granted, as Google does,
/// though SMTP refuses it: that is a lesson worth having locally.
const SCOPES: &[&str] = &[
    MAIL_SCOPE,
    "https://www.googleapis.com/auth/gmail.send",
    // what an account with transport = "graph" asks for
    "https://graph.microsoft.com/Mail.Send",
    "offline_access",
    "openid",
    "email",
    "profile",
];

/// Largest request body read.
const MAX_BODY: usize = 64 * 1024;

type Resp = Response<Full<Bytes>>;

/// Serves one HTTP connection until it closes or the sandbox stops.
pub(crate) async fn serve(tcp: TcpStream, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let svc = hyper::service::service_fn(move |req| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(handle(&shared, req).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn handle(s: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    if super::api::is_api(req.uri().path()) {
        return super::api::handle(s, req).await;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_form(req.uri().query().unwrap_or("").as_bytes());
    let basic = basic_auth(&req);
    let form = if method == Method::POST {
        match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(b) => parse_form(&b.to_bytes()),
            Err(_) => return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large"),
        }
    } else {
        HashMap::new()
    };
    match (&method, path.as_str()) {
        (&Method::GET, "/" | "/messages") => mailbox_page(s).await,
        (&Method::GET, "/messages.json") => match list(s).await {
            Ok(list) => json_resp(StatusCode::OK, &json!({ "messages": list })),
            Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.message()),
        },
        (&Method::GET, p) if p.starts_with("/messages/") => message_page(s, &p[10..]).await,
        (
            &Method::GET,
            "/.well-known/oauth-authorization-server" | "/.well-known/openid-configuration",
        ) => json_resp(StatusCode::OK, &metadata(&s.issuer)),
        (&Method::GET, AUTHORIZE) => authorize(s, &query),
        (&Method::POST, AUTHORIZE) => decide(s, &form),
        (&Method::POST, TOKEN) => token(s, &form, basic),
        (&Method::POST, DEVICE_CODE) => device_code(s, &form, basic),
        (&Method::GET, DEVICE) => device_page(s, &query),
        (&Method::POST, DEVICE) => device_decide(s, &form),
        (&Method::POST, REVOKE) => revoke(s, &form, &query),
        (_, AUTHORIZE | TOKEN | DEVICE_CODE | DEVICE | REVOKE) => {
            text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
        }
        _ => html(
            StatusCode::NOT_FOUND,
            pages::notice("Not found", &format!("Nothing at {path}.")),
        ),
    }
}

fn parse_form(b: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(b).into_owned().collect()
}

/// `Authorization: Basic` (RFC 6749 §2.3.1): the client ID, URL-encoded.
fn basic_auth(req: &Request<Incoming>) -> Option<String> {
    let v = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let b64 = v
        .strip_prefix("Basic ")
        .or_else(|| v.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let id = text.split_once(':').map(|(i, _)| i).unwrap_or(&text);
    url::form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
}

fn response(status: StatusCode, ctype: &'static str, body: impl Into<Bytes>) -> Resp {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn text(status: StatusCode, t: &str) -> Resp {
    response(status, "text/plain; charset=utf-8", t.to_string())
}

fn html(status: StatusCode, page: String) -> Resp {
    let mut r = response(status, "text/html; charset=utf-8", page);
    // The consent page must not be framed (clickjacking, RFC 6819 §4.4.1.9).
    r.headers_mut()
        .insert("x-frame-options", HeaderValue::from_static("DENY"));
    r
}

fn json_resp(status: StatusCode, v: &Value) -> Resp {
    response(status, "application/json", v.to_string())
}

fn redirect(to: &str) -> Resp {
    let mut r = response(StatusCode::FOUND, "text/plain; charset=utf-8", "");
    match HeaderValue::from_str(to) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => text(StatusCode::BAD_REQUEST, "bad redirect URI"),
    }
}

fn oauth_error(e: &OAuthError) -> Resp {
    json_resp(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        &json!({ "error": e.error, "error_description": e.description }),
    )
}

/// RFC 8414 metadata; the same document serves OpenID discovery.
fn metadata(issuer: &str) -> Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}{AUTHORIZE}"),
        "token_endpoint": format!("{issuer}{TOKEN}"),
        "device_authorization_endpoint": format!("{issuer}{DEVICE_CODE}"),
        "revocation_endpoint": format!("{issuer}{REVOKE}"),
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code",
            "refresh_token",
            "urn:ietf:params:oauth:grant-type:device_code"
        ],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none", "client_secret_post", "client_secret_basic"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": SCOPES,
    })
}

/// RFC 8252 §7.3: a native client's loopback redirect, any port.
fn loopback_redirect(uri: &str) -> bool {
    let Ok(u) = url::Url::parse(uri) else {
        return false;
    };
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    };
    u.scheme() == "http" && u.fragment().is_none() && loopback
}

/// `uri` with `params` added to its query.
fn with_params(uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            u.to_string()
        }
        Err(_) => uri.to_string(),
    }
}

fn error_page(status: StatusCode, title: &str, text: &str) -> Resp {
    html(status, pages::notice(title, text))
}

/// GET of the authorization endpoint: check the request, then show the
/// consent page.
fn authorize(s: &Shared, q: &HashMap<String, String>) -> Resp {
    let get = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id").filter(|c| s.clients.iter().any(|x| x == c)) else {
        return error_page(
            StatusCode::UNAUTHORIZED,
            "Error 401: invalid_client",
            &format!(
                "The OAuth client was not found. The sandbox knows the client ID{} {}.",
                if s.clients.len() > 1 { "s" } else { "" },
                s.clients.join(", ")
            ),
        );
    };
    let Some(redirect_uri) = get("redirect_uri").filter(|r| loopback_redirect(r)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Error 400: redirect_uri_mismatch",
            "The redirect URI must be a loopback address: http://127.0.0.1:PORT/…, http://[::1]:PORT/… \
             or http://localhost:PORT/… (any port, RFC 8252 §7.3).",
        );
    };
    let state = get("state").map(str::to_string);
    let fail = |error: &str, description: &str| {
        let mut p = vec![("error", error), ("error_description", description)];
        if let Some(st) = state.as_deref() {
            p.push(("state", st));
        }
        redirect(&with_params(redirect_uri, &p))
    };
    if get("response_type") != Some("code") {
        return fail(
            "unsupported_response_type",
            "Only response_type=code is supported.",
        );
    }
    let Some(scope) = get("scope") else {
        return fail("invalid_request", "Missing required parameter: scope");
    };
    if let Some(bad) = scope
        .split(' ')
        .find(|x| !x.is_empty() && !SCOPES.contains(x))
    {
        return fail(
            "invalid_scope",
            &format!("Some requested scopes were invalid: {bad}"),
        );
    }
    let Some(challenge) = get("code_challenge") else {
        return fail(
            "invalid_request",
            "PKCE is required: code_challenge and code_challenge_method=S256.",
        );
    };
    if get("code_challenge_method") != Some("S256") {
        return fail(
            "invalid_request",
            "Only code_challenge_method=S256 is accepted.",
        );
    }
    let now = s.now();
    let hint = get("login_hint").map(str::to_string);
    let request = Consent::new(client_id, redirect_uri, scope, state, challenge, hint);
    let id = s.grants().add_consent(request, now);
    let grants = s.grants();
    let consent = grants.consent(&id, now).expect("just added");
    html(StatusCode::OK, pages::consent(&id, consent, &s.users))
}

/// POST of the consent form: Allow issues a code, Deny says access_denied.
fn decide(s: &Shared, f: &HashMap<String, String>) -> Resp {
    let now = s.now();
    let allow = f.get("action").map(String::as_str) == Some("allow");
    let user = match f.get("user").and_then(|u| s.user(u)) {
        Some(u) => u.email.clone(),
        None if allow => {
            return error_page(
                StatusCode::BAD_REQUEST,
                "Error 400: invalid_request",
                "Choose an account.",
            );
        }
        None => String::new(),
    };
    let id = f.get("consent").map(String::as_str).unwrap_or("");
    let decided = s
        .grants()
        .decide_consent(id, allow.then_some(user.as_str()), now);
    let Some((c, code)) = decided else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request",
            "This sign-in request is unknown, already answered, or expired: start again from the application.",
        );
    };
    let mut p: Vec<(&str, &str)> = Vec::new();
    match &code {
        Some(code) => {
            p.push(("code", code));
            p.push(("scope", &c.scope));
        }
        None => p.push(("error", "access_denied")),
    }
    if let Some(st) = c.state.as_deref() {
        p.push(("state", st));
    }
    tracing::info!(
        "sandbox: consent for {} {}",
        c.client_id,
        if code.is_some() { "allowed" } else { "denied" }
    );
    redirect(&with_params(&c.redirect_uri, &p))
}

fn issued(t: Issued) -> Resp {
    let mut v = json!({
        "access_token": t.access_token,
        "expires_in": t.expires_in,
        "scope": t.scope,
        "token_type": "Bearer",
    });
    if let Some(r) = t.refresh_token {
        v["refresh_token"] = json!(r);
    }
    json_resp(StatusCode::OK, &v)
}

fn client_of(
    s: &Shared,
    f: &HashMap<String, String>,
    basic: Option<String>,
) -> Result<String, OAuthError> {
    match basic.or_else(|| f.get("client_id").cloned()) {
        Some(c) if s.clients.contains(&c) => Ok(c),
        _ => Err(OAuthError {
            error: "invalid_client",
            description: "The OAuth client was not found.".into(),
            status: 401,
        }),
    }
}

/// The token endpoint (RFC 6749 §3.2).
fn token(s: &Shared, f: &HashMap<String, String>, basic: Option<String>) -> Resp {
    let client = match client_of(s, f, basic) {
        Ok(c) => c,
        Err(e) => return oauth_error(&e),
    };
    let get = |k: &str| f.get(k).map(String::as_str);
    let now = s.now();
    let result = match get("grant_type") {
        Some("authorization_code") => match get("code") {
            Some(code) => s.grants().redeem_code(
                code,
                &client,
                get("redirect_uri"),
                get("code_verifier"),
                now,
            ),
            None => Err(missing("code")),
        },
        Some("refresh_token") => match get("refresh_token") {
            Some(r) => s.grants().refresh(r, &client, now),
            None => Err(missing("refresh_token")),
        },
        Some("urn:ietf:params:oauth:grant-type:device_code") => match get("device_code") {
            Some(d) => s.grants().poll_device(d, &client, now),
            None => Err(missing("device_code")),
        },
        Some(_) => Err(OAuthError {
            error: "unsupported_grant_type",
            description: "Invalid grant_type.".into(),
            status: 400,
        }),
        None => Err(missing("grant_type")),
    };
    // What the token endpoint did, for whoever watches (never a token).
    let grant = get("grant_type").unwrap_or("none");
    match &result {
        Ok(_) => {
            tracing::info!("sandbox: token endpoint: {grant} grant for {client}: tokens issued")
        }
        Err(e) => tracing::info!(
            "sandbox: token endpoint: {grant} grant for {client}: {}",
            e.error
        ),
    }
    match result {
        Ok(t) => issued(t),
        Err(e) => oauth_error(&e),
    }
}

fn missing(param: &str) -> OAuthError {
    OAuthError {
        error: "invalid_request",
        description: format!("Missing required parameter: {param}"),
        status: 400,
    }
}

/// RFC 8628 §3.1–3.2.
fn device_code(s: &Shared, f: &HashMap<String, String>, basic: Option<String>) -> Resp {
    let client = match client_of(s, f, basic) {
        Ok(c) => c,
        Err(e) => return oauth_error(&e),
    };
    let scope = f.get("scope").map(String::as_str).unwrap_or(MAIL_SCOPE);
    if let Some(bad) = scope
        .split(' ')
        .find(|x| !x.is_empty() && !SCOPES.contains(x))
    {
        return oauth_error(&OAuthError {
            error: "invalid_scope",
            description: format!("Invalid device flow scope: {bad}"),
            status: 400,
        });
    }
    let now = s.now();
    let interval = s.grants().interval;
    let (device_code, user_code) = s.grants().add_device(&client, scope, now);
    let page = format!("{}{DEVICE}", s.issuer);
    json_resp(
        StatusCode::OK,
        &json!({
            "device_code": device_code,
            "user_code": user_code,
            // RFC 8628's name. Google says `verification_url`; sending both
            // breaks clients that take either name for the same field.
            "verification_uri": page,
            "verification_uri_complete": with_params(&page, &[("user_code", &user_code)]),
            "expires_in": DEVICE_LIFETIME,
            "interval": interval,
        }),
    )
}

fn device_page(s: &Shared, q: &HashMap<String, String>) -> Resp {
    let code = q.get("user_code").map(String::as_str).unwrap_or("");
    let found = s.grants().device_by_user_code(code, s.now());
    let found = found.as_ref().map(|(c, sc)| (c.as_str(), sc.as_str()));
    html(StatusCode::OK, pages::device_form(code, found, &s.users))
}

fn device_decide(s: &Shared, f: &HashMap<String, String>) -> Resp {
    let code = f.get("user_code").map(String::as_str).unwrap_or("");
    let allow = f.get("action").map(String::as_str) == Some("allow");
    let user = f
        .get("user")
        .and_then(|u| s.user(u))
        .map(|u| u.email.clone());
    if allow && user.is_none() {
        return error_page(
            StatusCode::BAD_REQUEST,
            "Error 400: invalid_request",
            "Choose an account.",
        );
    }
    let now = s.now();
    let user = if allow { user } else { None };
    if !s.grants().decide_device(code, user.as_deref(), now) {
        return html(
            StatusCode::BAD_REQUEST,
            pages::device_form(code, None, &s.users),
        );
    }
    if allow {
        html(
            StatusCode::OK,
            pages::notice(
                "Device connected",
                "Access allowed. You can go back to your device.",
            ),
        )
    } else {
        html(
            StatusCode::OK,
            pages::notice("Access denied", "The device was not given access."),
        )
    }
}

/// RFC 7009: 200 whether or not the token was known (§2.2).
fn revoke(s: &Shared, f: &HashMap<String, String>, q: &HashMap<String, String>) -> Resp {
    // Google takes the token in the query as well as in the body.
    match f.get("token").or_else(|| q.get("token")) {
        Some(t) => {
            s.grants().revoke(t);
            json_resp(StatusCode::OK, &json!({}))
        }
        None => oauth_error(&missing("token")),
    }
}

/// The mailbox's index, read on a blocking thread.
async fn list(s: &Arc<Shared>) -> postie::error::Result<Vec<StoredMessage>> {
    let s = s.clone();
    unblock(move || s.mailbox.list()).await
}

async fn mailbox_page(s: &Arc<Shared>) -> Resp {
    match list(s).await {
        Ok(list) => html(StatusCode::OK, pages::mailbox(&list)),
        Err(e) => text(StatusCode::INTERNAL_SERVER_ERROR, e.message()),
    }
}

async fn message_page(s: &Arc<Shared>, rest: &str) -> Resp {
    let (id, raw) = match rest.strip_suffix("/raw") {
        Some(id) => (id, true),
        None => (rest, false),
    };
    let Ok(id) = id.parse::<u64>() else {
        return error_page(StatusCode::NOT_FOUND, "Not found", "No such message.");
    };
    let sh = s.clone();
    if raw {
        return match unblock(move || sh.mailbox.raw(id)).await {
            Ok(b) => response(StatusCode::OK, "text/plain; charset=utf-8", b),
            Err(e) => error_page(StatusCode::NOT_FOUND, "Not found", e.message()),
        };
    }
    match unblock(move || sh.mailbox.show(id)).await {
        Ok(v) => html(StatusCode::OK, pages::message(&v)),
        Err(e) => error_page(StatusCode::NOT_FOUND, "Not found", e.message()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_any_port_only() {
        assert!(loopback_redirect("http://127.0.0.1:49152/"));
        assert!(loopback_redirect("http://[::1]:8080/cb"));
        assert!(loopback_redirect("http://localhost:1/"));
        assert!(!loopback_redirect("https://127.0.0.1:1/"));
        assert!(!loopback_redirect("http://example.com:1/"));
        assert!(!loopback_redirect("http://127.0.0.1.example.com/"));
        assert!(!loopback_redirect("urn:ietf:wg:oauth:2.0:oob"));
    }

    #[test]
    fn parameters_are_added_to_the_query() {
        assert_eq!(
            with_params(
                "http://127.0.0.1:5/cb?a=1",
                &[("code", "4/x y"), ("state", "s")]
            ),
            "http://127.0.0.1:5/cb?a=1&code=4%2Fx+y&state=s"
        );
    }
}
