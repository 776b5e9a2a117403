//! The loopback redirect listener of a browser sign-in (RFC 8252 §7.3):
//! `http://127.0.0.1:PORT/` receives the authorization server's redirect,
//! checks `state`, lets the caller exchange the code, and answers the
//! browser with a page that says whether it worked.
//!
//! An answer whose `state` does not match is refused with an error page and
//! the listener keeps waiting: it may be a forged request from another page,
//! which must neither be used nor be able to abort the real sign-in. When the
//! time runs out, the error says how many such answers were refused.

use std::collections::HashMap;
use std::future::Future;
use std::time::Instant;

use secrecy::{ExposeSecret, SecretString};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

use super::{OAuthErrorInfo, TokenSet};
use crate::error::{Error, ErrorKind, Result};
use crate::message::html_escape;
use crate::wording::{Action, Setting, say, say_setting};

const MAX_HEAD: usize = 16 * 1024;

/// What the authorization server sent back.
pub(crate) enum Answer {
    /// The authorization code.
    Code(SecretString),
    /// An error (RFC 6749 §4.1.2.1), e.g. `access_denied`.
    Refused(OAuthErrorInfo),
}

/// Why a request to the listener is not an answer to use.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum NotUsable {
    /// Neither `code` nor `error`.
    NoAnswer,
    /// `state` is missing or differs.
    WrongState,
}

/// Read the answer out of a redirect's query string.
pub(crate) fn parse_answer(
    query: &str,
    state: &SecretString,
) -> std::result::Result<Answer, NotUsable> {
    let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    if !params.contains_key("code") && !params.contains_key("error") {
        return Err(NotUsable::NoAnswer);
    }
    let given = params.get("state").map(String::as_str).unwrap_or("");
    if !same(given.as_bytes(), state.expose_secret().as_bytes()) {
        return Err(NotUsable::WrongState);
    }
    if let Some(error) = params.get("error") {
        let mut info = OAuthErrorInfo::new(error.clone(), params.get("error_description").cloned());
        info.error_uri = params.get("error_uri").cloned();
        return Ok(Answer::Refused(info));
    }
    Ok(Answer::Code(SecretString::from(
        params.get("code").cloned().unwrap_or_default(),
    )))
}

/// Compare without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The query of a pasted redirect URL (or of a pasted bare query).
pub(crate) fn query_of(pasted: &str) -> String {
    let t = pasted.trim();
    let after = match t.find('?') {
        Some(i) => &t[i + 1..],
        None if t.contains("://") => "",
        None => t,
    };
    after.split('#').next().unwrap_or("").to_string()
}

/// A page for the browser.
pub(crate) struct Page {
    status: u16,
    title: &'static str,
    body: String,
}

impl Page {
    pub(crate) fn success(account: &str) -> Page {
        Page {
            status: 200,
            title: "Signed in",
            body: format!(
                "<p>postie received the tokens of the account <b>{}</b> and stored them.</p>\
                 <p>You can close this tab and return to the terminal.</p>",
                html_escape(account)
            ),
        }
    }

    pub(crate) fn failure(message: &str) -> Page {
        Page {
            status: 400,
            title: "Sign-in failed",
            body: format!(
                "<p>{}</p><p>Nothing was stored. The terminal says what to do next.</p>",
                html_escape(message)
            ),
        }
    }

    fn wrong_state() -> Page {
        Page {
            status: 400,
            title: "Answer refused",
            body: "<p>This answer does not belong to the sign-in postie is waiting for (its \
                   <code>state</code> does not match), so it was not used.</p><p>postie is \
                   still waiting. If you started several sign-ins, use the link postie \
                   printed last.</p>"
                .into(),
        }
    }

    fn no_answer() -> Page {
        Page {
            status: 400,
            title: "Waiting for the sign-in",
            body: "<p>This is postie's sign-in listener. It waits for the provider to send \
                   the browser back here after you sign in.</p>"
                .into(),
        }
    }

    fn not_found() -> Page {
        Page {
            status: 404,
            title: "Not found",
            body: "<p>This is postie's sign-in listener; there is nothing else here.</p>".into(),
        }
    }

    fn gone() -> Page {
        Page {
            status: 410,
            title: "No longer waiting",
            body: "<p>postie is no longer waiting for this sign-in.</p>".into(),
        }
    }

    fn render(&self) -> Vec<u8> {
        let html = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
             <title>postie: {t}</title><style>body{{font-family:system-ui,sans-serif;\
             max-width:40em;margin:4em auto;padding:0 1em;line-height:1.5}}</style></head>\
             <body><h1>{t}</h1>{b}</body></html>",
            t = self.title,
            b = self.body
        );
        let reason = match self.status {
            200 => "OK",
            404 => "Not Found",
            410 => "Gone",
            _ => "Bad Request",
        };
        format!(
            "HTTP/1.1 {} {reason}\r\nContent-Type: text/html; charset=utf-8\r\n\
             Content-Length: {}\r\nCache-Control: no-store\r\nReferrer-Policy: no-referrer\r\n\
             Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'\r\n\
             X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n{html}",
            self.status,
            html.len()
        )
        .into_bytes()
    }
}

/// The bound listener.
pub(crate) struct Listener {
    listener: TcpListener,
    port: u16,
}

/// A redirect's query, and where to send the page to answer it with (and,
/// for the final page, a signal once it was written).
type Request = (String, oneshot::Sender<(Page, Option<oneshot::Sender<()>>)>);

impl Listener {
    /// Bind 127.0.0.1 on `port`, or on a free port.
    pub(crate) async fn bind(port: Option<u16>) -> Result<Listener> {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(|e| {
                Error::new(
                    ErrorKind::Io,
                    format!(
                        "cannot listen on 127.0.0.1:{} for the sign-in redirect: {e}{}",
                        port.unwrap_or(0),
                        if port.is_some() {
                            format!(
                                " (choose another {}, or leave it out for a free one)",
                                say_setting(Setting::LoginPort)
                            )
                        } else {
                            String::new()
                        }
                    ),
                )
            })?;
        let port = listener.local_addr().map_err(|e| {
            Error::new(
                ErrorKind::Io,
                format!("cannot read the listener's port: {e}"),
            )
        })?;
        Ok(Listener {
            listener,
            port: port.port(),
        })
    }

    /// The port listened on.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// The redirect URI to register in the authorization request.
    pub(crate) fn redirect_uri(&self) -> String {
        format!("http://127.0.0.1:{}/", self.port)
    }

    /// Wait for the answer until `deadline`; `finish` turns it into tokens
    /// (or an error), and the browser is told which.
    pub(crate) async fn wait<F, Fut>(
        self,
        state: &SecretString,
        deadline: Instant,
        account: &str,
        finish: F,
    ) -> Result<TokenSet>
    where
        F: FnOnce(Answer) -> Fut,
        Fut: Future<Output = Result<TokenSet>>,
    {
        let (tx, mut rx) = mpsc::channel::<Request>(8);
        let mut refused = 0;
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                acc = self.listener.accept() => {
                    if let Ok((stream, _)) = acc {
                        tokio::spawn(serve(stream, tx.clone()));
                    }
                }
                Some((query, reply)) = rx.recv() => {
                    match parse_answer(&query, state) {
                        Err(NotUsable::NoAnswer) => { let _ = reply.send((Page::no_answer(), None)); }
                        Err(NotUsable::WrongState) => {
                            refused += 1;
                            tracing::warn!("sign-in listener: refused an answer whose state does not match");
                            let _ = reply.send((Page::wrong_state(), None));
                        }
                        Ok(answer) => {
                            let result = finish(answer).await;
                            let page = match &result {
                                Ok(_) => Page::success(account),
                                Err(e) => Page::failure(e.message()),
                            };
                            // Let the page reach the browser before the caller (and
                            // perhaps the runtime) moves on.
                            let (done_tx, done_rx) = oneshot::channel();
                            if reply.send((page, Some(done_tx))).is_ok() {
                                let wait = std::time::Duration::from_secs(2);
                                let _ = tokio::time::timeout(wait, done_rx).await;
                            }
                            return result;
                        }
                    }
                }
                _ = &mut sleep => {
                    let extra = if refused > 0 {
                        format!(
                            " ({refused} answer(s) with a state that did not match were refused: \
                             use the link of this sign-in, not an older one)"
                        )
                    } else {
                        String::new()
                    };
                    return Err(Error::new(
                        ErrorKind::Transient,
                        format!(
                            "no sign-in answer reached http://127.0.0.1:{} in time{extra}; run \
                             {} again (or {} to paste the address the browser ends on)",
                            self.port,
                            say(&Action::SignIn {
                                account: Some(account.to_string())
                            }),
                            say(&Action::SignInManually {
                                account: account.to_string()
                            }),
                        ),
                    )
                    .with_finding("sign-in-timeout"));
                }
            }
        }
    }
}

/// Serve one browser connection: read the request head, hand the redirect's
/// query to the waiting sign-in, write the page it decides.
async fn serve(mut stream: TcpStream, tx: mpsc::Sender<Request>) {
    let head = match tokio::time::timeout(
        std::time::Duration::from_secs(10),
        read_head(&mut stream),
    )
    .await
    {
        Ok(Some(h)) => h,
        _ => return,
    };
    let mut parts = head.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let (page, done) = if method != "GET" || path != "/" {
        (Page::not_found(), None)
    } else {
        let (reply_tx, reply_rx) = oneshot::channel();
        if tx.send((query.to_string(), reply_tx)).await.is_err() {
            (Page::gone(), None)
        } else {
            reply_rx.await.unwrap_or_else(|_| (Page::gone(), None))
        }
    };
    let _ = stream.write_all(&page.render()).await;
    let _ = stream.shutdown().await;
    if let Some(d) = done {
        let _ = d.send(());
    }
}

/// The request line, once the whole head has arrived.
async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf);
            return text.lines().next().map(str::to_string);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st() -> SecretString {
        SecretString::from("s-123")
    }

    #[test]
    fn answers_are_checked_against_the_state() {
        assert!(matches!(
            parse_answer("code=abc&state=s-123", &st()),
            Ok(Answer::Code(c)) if c.expose_secret() == "abc"
        ));
        assert_eq!(
            parse_answer("code=abc&state=s-124", &st()).err(),
            Some(NotUsable::WrongState)
        );
        assert_eq!(
            parse_answer("code=abc", &st()).err(),
            Some(NotUsable::WrongState)
        );
        assert_eq!(parse_answer("", &st()).err(), Some(NotUsable::NoAnswer));
        match parse_answer(
            "error=access_denied&error_description=The+user+said+no&state=s-123",
            &st(),
        ) {
            Ok(Answer::Refused(i)) => {
                assert_eq!(i.error, "access_denied");
                assert_eq!(i.error_description.as_deref(), Some("The user said no"));
            }
            _ => panic!("not a refusal"),
        }
    }

    #[test]
    fn pasted_forms() {
        assert_eq!(
            query_of(" http://127.0.0.1:5/?code=a&state=b#x "),
            "code=a&state=b"
        );
        assert_eq!(query_of("?code=a"), "code=a");
        assert_eq!(query_of("code=a&state=b"), "code=a&state=b");
        assert_eq!(query_of("http://127.0.0.1:5/"), "");
    }

    #[test]
    fn pages_escape_what_they_show() {
        let p = String::from_utf8(Page::failure("<script>x</script> & co").render()).unwrap();
        assert!(
            p.contains("&lt;script&gt;") && !p.contains("<script>"),
            "{p}"
        );
        assert!(p.starts_with("HTTP/1.1 400 "));
    }
}
