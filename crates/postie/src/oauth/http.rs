//! HTTP to the authorization server: one reqwest client (rustls with
//! aws-lc-rs and the platform verifier, the stack the SMTP transport uses),
//! redirects off (a token request must never be replayed to another URL),
//! bounded bodies, the https-or-loopback rule, and the adapter that lets the
//! oauth2 crate send through it.
//!
//! Every answer but `200` becomes an [`HttpError::Status`] carrying the
//! parsed OAuth error, so callers see the HTTP status next to the error code
//! (503 is retried, 400 `invalid_grant` is not).

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use oauth2::RequestTokenError;
use oauth2::http::{self, HeaderMap, HeaderValue, Method, header};
use rand::Rng;
use url::Url;

use crate::error::OAuthErrorInfo;
use crate::error::{Error, ErrorKind, Result};

impl oauth2::ErrorResponse for OAuthErrorInfo {}

/// Boxed, the error keeps `Result`s of token requests small.
impl oauth2::ErrorResponse for Box<OAuthErrorInfo> {}

/// Largest answer read from an authorization server.
const MAX_BODY: usize = 1 << 20;
/// Attempts for one token request when the server is unreachable or
/// answers 5xx / 429: the first try and three retries after about 0.5 s,
/// 1 s and 2 s (±25 % jitter).
pub(crate) const MAX_ATTEMPTS: u32 = 4;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// A server's `Retry-After` is honoured up to this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// A failed token request, as the oauth2 crate reports it.
pub(crate) type Failure = RequestTokenError<HttpError, Box<OAuthErrorInfo>>;

/// Why a request to the authorization server failed.
#[derive(Debug)]
pub(crate) enum HttpError {
    /// The URL may not be used (plain http beyond loopback, not http(s)).
    Policy(String),
    /// No answer: DNS, connection, TLS, timeout.
    Network {
        /// The URL without its query.
        url: String,
        /// What went wrong, innermost cause included.
        detail: String,
        /// The connection was never made: the server cannot have seen
        /// the request.
        unsent: bool,
    },
    /// An answer other than 200.
    Status {
        /// The URL without its query.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The OAuth error in the body, when it had one.
        info: Option<Box<OAuthErrorInfo>>,
        /// The server's `Retry-After`, in seconds.
        retry_after: Option<Duration>,
    },
}

impl HttpError {
    /// True when the same request may succeed if sent again shortly.
    pub(crate) fn is_retryable(&self) -> bool {
        match self {
            HttpError::Network { .. } => true,
            HttpError::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            HttpError::Policy(_) => false,
        }
    }

    /// True when a request that uses up what it carries (an authorization
    /// code, a rotating refresh token) may be sent again: only when the
    /// server cannot have acted on it. After a timeout or a reset mid-answer
    /// the server may have issued tokens and retired the grant; sending it
    /// again would get `invalid_grant`, and servers that detect refresh
    /// token reuse revoke the whole grant (RFC 9700 §4.14.2).
    fn is_retryable_single_use(&self) -> bool {
        match self {
            HttpError::Network { unsent, .. } => *unsent,
            HttpError::Status { status, .. } => *status == 503 || *status == 429,
            HttpError::Policy(_) => false,
        }
    }
}

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HttpError::Policy(m) => f.write_str(m),
            HttpError::Network { url, detail, .. } => write!(f, "cannot reach {url}: {detail}"),
            HttpError::Status {
                url,
                status,
                info: Some(i),
                ..
            } => write!(f, "{url} answered HTTP {status}: {i}"),
            HttpError::Status { url, status, .. } => {
                write!(f, "{url} answered HTTP {status} without an OAuth error")
            }
        }
    }
}

impl std::error::Error for HttpError {}

/// Is this URL acceptable for an OAuth endpoint? https anywhere; http only
/// to a loopback host, where nothing crosses the network.
pub(crate) fn check_url(url: &Url, what: &str) -> Result<()> {
    match url.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(url) => Ok(()),
        "http" => Err(Error::new(
            ErrorKind::Config,
            format!(
                "refusing the {what} {}: plain http would send codes and tokens across the \
                 network unencrypted. Use its https:// address (http:// is accepted only for \
                 127.0.0.1, ::1 and localhost)",
                redact_query(url)
            ),
        )),
        other => Err(Error::new(
            ErrorKind::Config,
            format!(
                "the {what} {} is not an http(s) URL (scheme '{other}')",
                redact_query(url)
            ),
        )),
    }
}

/// Parse an endpoint URL and apply [`check_url`].
pub(crate) fn parse_endpoint(s: &str, what: &str) -> Result<Url> {
    let url = Url::parse(s.trim()).map_err(|e| {
        Error::new(
            ErrorKind::Config,
            format!("the {what} '{s}' is not a valid URL: {e}"),
        )
    })?;
    check_url(&url, what)?;
    Ok(url)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// The URL for messages: without query or fragment.
pub(crate) fn redact_query(url: &Url) -> String {
    let mut u = url.clone();
    u.set_query(None);
    u.set_fragment(None);
    u.to_string()
}

/// The HTTP client for OAuth endpoints. Cheap to clone.
#[derive(Clone, Debug)]
pub(crate) struct Http {
    client: reqwest::Client,
}

impl Http {
    /// A client with redirects off and bounded timeouts.
    pub(crate) fn new() -> Result<Http> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .user_agent(concat!("postie/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Tls,
                    format!("cannot set up HTTPS for the OAuth endpoints: {e}"),
                )
            })?;
        Ok(Http { client })
    }

    /// Send one request; every status but 200 is an error.
    pub(crate) async fn execute(
        &self,
        req: http::Request<Vec<u8>>,
    ) -> std::result::Result<http::Response<Vec<u8>>, HttpError> {
        let url = Url::parse(&req.uri().to_string())
            .map_err(|e| HttpError::Policy(format!("invalid URL: {e}")))?;
        check_url(&url, "OAuth endpoint").map_err(|e| HttpError::Policy(e.to_string()))?;
        let shown = redact_query(&url);
        let (parts, body) = req.into_parts();
        let resp = self
            .client
            .request(parts.method, url)
            .headers(parts.headers)
            .body(body)
            .send()
            .await
            .map_err(|e| HttpError::Network {
                url: shown.clone(),
                detail: describe(&e),
                unsent: e.is_connect(),
            })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_limited(resp)
            .await
            .map_err(|detail| HttpError::Network {
                url: shown.clone(),
                detail,
                unsent: false,
            })?;
        if status != http::StatusCode::OK {
            let info = serde_json::from_slice::<Box<OAuthErrorInfo>>(&body)
                .ok()
                .filter(|i| !i.error.is_empty())
                .map(|mut i| {
                    i.http_status = Some(status.as_u16());
                    i
                });
            let retry_after = headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            return Err(HttpError::Status {
                url: shown,
                status: status.as_u16(),
                info,
                retry_after,
            });
        }
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.headers_mut() = headers;
        Ok(out)
    }

    /// POST a form (with HTTP Basic client authentication when `basic` is
    /// given) and return the body of the 200 answer.
    pub(crate) async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> std::result::Result<Vec<u8>, HttpError> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish()
            .into_bytes();
        let mut req = request(Method::POST, url, Some("application/x-www-form-urlencoded"))?;
        if let Some((id, secret)) = basic {
            // RFC 6749 §2.3.1: each part form-encoded before Basic encoding.
            let enc =
                |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let token = base64::engine::general_purpose::STANDARD
                .encode(zeroize::Zeroizing::new(format!("{}:{}", enc(id), enc(secret))).as_bytes());
            let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|e| HttpError::Policy(format!("bad client credentials: {e}")))?;
            value.set_sensitive(true);
            req.headers_mut().insert(header::AUTHORIZATION, value);
        }
        let (parts, _) = req.into_parts();
        Ok(self
            .execute(http::Request::from_parts(parts, body))
            .await?
            .into_body())
    }

    /// GET a JSON document.
    pub(crate) async fn get(&self, url: &str) -> std::result::Result<Vec<u8>, HttpError> {
        Ok(self
            .execute(request(Method::GET, url, None)?)
            .await?
            .into_body())
    }
}

fn request(
    method: Method,
    url: &str,
    content_type: Option<&'static str>,
) -> std::result::Result<http::Request<Vec<u8>>, HttpError> {
    let mut headers = HeaderMap::new();
    headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    if let Some(ct) = content_type {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ct));
    }
    let mut req = http::Request::builder()
        .method(method)
        .uri(url)
        .body(Vec::new())
        .map_err(|e| HttpError::Policy(format!("invalid URL {url}: {e}")))?;
    *req.headers_mut() = headers;
    Ok(req)
}

impl<'c> oauth2::AsyncHttpClient<'c> for Http {
    type Error = HttpError;
    type Future = Pin<
        Box<dyn Future<Output = std::result::Result<oauth2::HttpResponse, HttpError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(self.execute(request))
    }
}

async fn read_limited(mut resp: reqwest::Response) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| describe(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Err(format!("the answer is larger than {MAX_BODY} bytes"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// reqwest's error with its innermost cause ("Connection refused"), without
/// repeating the URL.
pub(crate) fn describe(e: &reqwest::Error) -> String {
    let mut what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "connection failed".to_string()
    } else {
        "request failed".to_string()
    };
    let mut src = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = src {
        last = Some(s.to_string());
        src = s.source();
    }
    if let Some(l) = last {
        what.push_str(": ");
        what.push_str(&l);
    }
    what
}

/// Run `attempt` until it succeeds, fails for good, or [`MAX_ATTEMPTS`] are
/// spent; waits with exponential backoff and jitter between tries. Returns
/// the outcome and how many attempts were made.
pub(crate) async fn retrying<T, F, Fut>(
    what: &str,
    attempt: F,
) -> (std::result::Result<T, Failure>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    retry_while(what, attempt, HttpError::is_retryable).await
}

/// [`retrying`] for a request that uses up what it carries (code exchange,
/// refresh): sent again only when the server cannot have acted on it.
pub(crate) async fn retrying_single_use<T, F, Fut>(
    what: &str,
    attempt: F,
) -> (std::result::Result<T, Failure>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    retry_while(what, attempt, HttpError::is_retryable_single_use).await
}

async fn retry_while<T, F, Fut>(
    what: &str,
    mut attempt: F,
    retryable: fn(&HttpError) -> bool,
) -> (std::result::Result<T, Failure>, u32)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<T, Failure>>,
{
    let mut n = 0;
    loop {
        n += 1;
        match attempt().await {
            Err(RequestTokenError::Request(e)) if retryable(&e) && n < MAX_ATTEMPTS => {
                let delay = backoff(n, &e);
                tracing::warn!(
                    attempt = n,
                    retry_in_ms = delay.as_millis() as u64,
                    "{what}: {e}; retrying"
                );
                tokio::time::sleep(delay).await;
            }
            other => return (other, n),
        }
    }
}

fn backoff(attempt: u32, e: &HttpError) -> Duration {
    if let HttpError::Status {
        retry_after: Some(r),
        ..
    } = e
    {
        return (*r).min(MAX_RETRY_AFTER);
    }
    let base = FIRST_BACKOFF * 2u32.pow(attempt.saturating_sub(1).min(6));
    base.mul_f64(rand::rng().random_range(0.75..1.25))
}

impl Http {
    /// The `Date` of any answer from `url`'s server, for a clock check:
    /// a skewed clock makes JWT assertions and token lifetimes fail.
    pub(crate) async fn server_date(&self, url: &str) -> Option<std::time::SystemTime> {
        let url = Url::parse(url).ok()?;
        check_url(&url, "OAuth endpoint").ok()?;
        let resp = self.client.head(url).send().await.ok()?;
        let date = resp.headers().get(header::DATE)?.to_str().ok()?;
        httpdate::parse_http_date(date).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_only_to_loopback() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "http://127.0.0.1:8190/token",
            "http://[::1]:1/x",
            "http://LOCALHOST:9/t",
            "http://127.3.4.5/t",
        ] {
            parse_endpoint(ok, "token endpoint").unwrap();
        }
        let err = parse_endpoint("http://auth.example.com/token?x=1", "token endpoint")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("https://") && err.contains("auth.example.com"),
            "{err}"
        );
        assert!(!err.contains("x=1"), "{err}");
        let err = parse_endpoint("http://127.0.0.1.evil.test/t", "token endpoint").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Config);
        assert!(parse_endpoint("ftp://127.0.0.1/t", "token endpoint").is_err());
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let e = HttpError::Network {
            url: "u".into(),
            detail: "d".into(),
            unsent: true,
        };
        let d1 = backoff(1, &e);
        let d3 = backoff(3, &e);
        assert!(d1 >= Duration::from_millis(375) && d1 <= Duration::from_millis(625));
        assert!(d3 >= Duration::from_millis(1500) && d3 <= Duration::from_millis(2500));
        let ra = HttpError::Status {
            url: "u".into(),
            status: 503,
            info: None,
            retry_after: Some(Duration::from_secs(3600)),
        };
        assert_eq!(backoff(1, &ra), MAX_RETRY_AFTER);
    }
}
