//! The authorization server's state: pending consents, authorization codes,
//! access and refresh tokens, device codes. No I/O and no clock: every call
//! that depends on time takes `now` (seconds since the Unix epoch).
//!
//! Tokens are random opaque strings shaped like Google's (`ya29.…`,
//! `1//…`); the SMTP side asks [`Grants::check_access`] about the ones it
//! receives.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

/// How long an authorization code lives (Google: a few minutes).
const CODE_LIFETIME: u64 = 600;
/// How long a device code lives (RFC 8628 §3.2 `expires_in`; Google: 1800).
pub const DEVICE_LIFETIME: u64 = 1800;
/// How long a consent page stays valid.
const CONSENT_LIFETIME: u64 = 3600;

/// Random URL-safe text with `bytes` bytes of entropy.
pub fn random(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// An OAuth error as the token endpoint reports it (RFC 6749 §5.2), with
/// Google's descriptions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthError {
    /// `invalid_grant`, `invalid_request`, …
    pub error: &'static str,
    /// `error_description`.
    pub description: String,
    /// The HTTP status.
    pub status: u16,
}

impl OAuthError {
    fn new(error: &'static str, description: &str) -> OAuthError {
        let status = match error {
            "invalid_client" => 401,
            // Google answers a pending device grant with 428.
            "authorization_pending" => 428,
            _ => 400,
        };
        OAuthError {
            error,
            description: description.to_string(),
            status,
        }
    }

    /// Google's refusal of a refresh token that is no longer valid.
    pub fn expired_or_revoked() -> OAuthError {
        OAuthError::new("invalid_grant", "Token has been expired or revoked.")
    }
}

/// An authorization request waiting for the user's choice on the consent
/// page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consent {
    /// The client asking.
    pub client_id: String,
    /// Where to send the answer.
    pub redirect_uri: String,
    /// Scopes asked for, space-separated.
    pub scope: String,
    /// The client's `state`, returned untouched.
    pub state: Option<String>,
    /// PKCE S256 challenge (RFC 7636).
    pub code_challenge: String,
    /// The user suggested by `login_hint`.
    pub login_hint: Option<String>,
    expires_at: u64,
}

impl Consent {
    /// A request as the authorization endpoint received it.
    pub fn new(
        client_id: &str,
        redirect_uri: &str,
        scope: &str,
        state: Option<String>,
        code_challenge: &str,
        login_hint: Option<String>,
    ) -> Consent {
        Consent {
            client_id: client_id.into(),
            redirect_uri: redirect_uri.into(),
            scope: scope.into(),
            state,
            code_challenge: code_challenge.into(),
            login_hint,
            expires_at: 0,
        }
    }
}

/// An issued authorization code.
#[derive(Clone, Debug)]
struct Code {
    client_id: String,
    redirect_uri: String,
    user: String,
    scope: String,
    code_challenge: String,
    expires_at: u64,
}

/// A grant: what a user allowed a client, from the redemption of a code
/// or device code through every refresh. Its tokens share its `id`, so
/// that revoking any one of them ends them all (RFC 7009 §2.1).
#[derive(Clone, Debug)]
struct Grant {
    /// Random, made when the code or device code is redeemed.
    id: String,
    client_id: String,
    user: String,
    scope: String,
}

/// An issued access token.
#[derive(Clone, Debug)]
struct Access {
    grant: Grant,
    expires_at: u64,
}

/// A device authorization (RFC 8628) and where it stands.
#[derive(Clone, Debug)]
struct Device {
    client_id: String,
    scope: String,
    user_code: String,
    expires_at: u64,
    decision: Option<Result<String, ()>>,
    last_poll: Option<u64>,
}

/// Tokens handed out by the token endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issued {
    /// The access token.
    pub access_token: String,
    /// Its lifetime in seconds.
    pub expires_in: u64,
    /// A refresh token (rotated: the one used is now invalid).
    pub refresh_token: Option<String>,
    /// The granted scopes.
    pub scope: String,
}

/// What the SMTP side learns about a bearer token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessCheck {
    /// Valid for `user` with the mail scope.
    Valid {
        /// The user the token was issued to.
        user: String,
    },
    /// Unknown, expired, revoked, for another user or without the scope.
    Invalid,
}

/// All of the authorization server's state.
#[derive(Debug)]
pub struct Grants {
    /// Access-token lifetime in seconds.
    pub lifetime: u64,
    /// Device polling interval in seconds (RFC 8628 §3.2).
    pub interval: u64,
    consents: HashMap<String, Consent>,
    codes: HashMap<String, Code>,
    access: HashMap<String, Access>,
    refresh: HashMap<String, Grant>,
    /// Refresh tokens rotated out, with their grant's id: one used again
    /// means it leaked, and the grant is revoked (RFC 9700 §4.14.2).
    rotated: HashMap<String, String>,
    devices: HashMap<String, Device>,
}

/// True when SHA-256(`verifier`), base64url without padding, is `challenge`
/// (RFC 7636 §4.6, S256).
pub fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    // RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~].
    let ok = (43..=128).contains(&verifier.len())
        && verifier
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
    ok && URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())) == challenge
}

impl Grants {
    /// Empty state with access tokens living `lifetime` seconds.
    pub fn new(lifetime: u64, interval: u64) -> Grants {
        Grants {
            lifetime,
            interval,
            consents: HashMap::new(),
            codes: HashMap::new(),
            access: HashMap::new(),
            refresh: HashMap::new(),
            rotated: HashMap::new(),
            devices: HashMap::new(),
        }
    }

    /// Keeps an authorization request until the user answers; returns its
    /// id for the consent form.
    pub fn add_consent(&mut self, mut c: Consent, now: u64) -> String {
        self.consents.retain(|_, c| c.expires_at > now);
        c.expires_at = now + CONSENT_LIFETIME;
        let id = random(16);
        self.consents.insert(id.clone(), c);
        id
    }

    /// A pending consent, to show it.
    pub fn consent(&self, id: &str, now: u64) -> Option<&Consent> {
        self.consents.get(id).filter(|c| c.expires_at > now)
    }

    /// The user answered: the request is used up. With `Some(user)` (Allow)
    /// a code is issued; returns the request and the code.
    pub fn decide_consent(
        &mut self,
        id: &str,
        user: Option<&str>,
        now: u64,
    ) -> Option<(Consent, Option<String>)> {
        let c = self.consents.remove(id).filter(|c| c.expires_at > now)?;
        let code = user.map(|u| {
            let code = format!("4/sb-{}", random(24));
            self.codes.insert(
                code.clone(),
                Code {
                    client_id: c.client_id.clone(),
                    redirect_uri: c.redirect_uri.clone(),
                    user: u.to_string(),
                    scope: c.scope.clone(),
                    code_challenge: c.code_challenge.clone(),
                    expires_at: now + CODE_LIFETIME,
                },
            );
            code
        });
        Some((c, code))
    }

    /// `grant_type=authorization_code` (RFC 6749 §4.1.3) with PKCE. A code
    /// works once, whatever the outcome.
    pub fn redeem_code(
        &mut self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        now: u64,
    ) -> Result<Issued, OAuthError> {
        let Some(c) = self.codes.remove(code) else {
            return Err(OAuthError::new("invalid_grant", "Malformed auth code."));
        };
        if c.client_id != client_id {
            return Err(another_client(
                "authorization code",
                &c.client_id,
                client_id,
            ));
        }
        if c.expires_at <= now {
            return Err(OAuthError::new(
                "invalid_grant",
                &format!(
                    "Authorization code expired (codes live {} minutes): sign in again",
                    CODE_LIFETIME / 60
                ),
            ));
        }
        match redirect_uri {
            Some(r) if r == c.redirect_uri => {}
            Some(r) => {
                return Err(OAuthError::new(
                    "invalid_grant",
                    &format!(
                        "redirect_uri {r} differs from the authorization request's {}: \
                         send the same redirect_uri with the code",
                        c.redirect_uri
                    ),
                ));
            }
            None => {
                return Err(OAuthError::new(
                    "invalid_request",
                    &format!(
                        "Missing required parameter: redirect_uri (the authorization request's was {})",
                        c.redirect_uri
                    ),
                ));
            }
        }
        let Some(verifier) = verifier else {
            return Err(OAuthError::new("invalid_grant", "Missing code verifier."));
        };
        if !pkce_matches(verifier, &c.code_challenge) {
            return Err(OAuthError::new("invalid_grant", "Invalid code verifier."));
        }
        let grant = Grant {
            id: random(16),
            client_id: c.client_id,
            user: c.user,
            scope: c.scope,
        };
        Ok(self.issue(grant, now))
    }

    /// `grant_type=refresh_token` (RFC 6749 §6) with rotation: the token
    /// used is invalid from now on, and using it again revokes the whole
    /// grant, since then someone else has it too (RFC 9700 §4.14.2).
    pub fn refresh(
        &mut self,
        refresh_token: &str,
        client_id: &str,
        now: u64,
    ) -> Result<Issued, OAuthError> {
        match self.refresh.get(refresh_token) {
            Some(g) if g.client_id == client_id => {}
            Some(g) => {
                return Err(another_client("refresh token", &g.client_id, client_id));
            }
            None => {
                if let Some(id) = self.rotated.get(refresh_token).cloned() {
                    tracing::info!(
                        "sandbox: a rotated-out refresh token was used again; its grant is revoked"
                    );
                    self.revoke_grant(&id);
                }
                return Err(OAuthError::expired_or_revoked());
            }
        }
        let grant = self.refresh.remove(refresh_token).expect("checked above");
        self.rotated
            .insert(refresh_token.to_string(), grant.id.clone());
        // The grant's earlier access tokens stay valid until they expire, as
        // at Google; revoking any token of the grant ends them too.
        Ok(self.issue(grant, now))
    }

    /// Tokens for `user` as if they had approved `client_id`'s request for
    /// `scope` on the consent page (a new grant): for tests that need a
    /// signed-in account without driving a browser.
    pub fn approve(&mut self, client_id: &str, user: &str, scope: &str, now: u64) -> Issued {
        let grant = Grant {
            id: random(16),
            client_id: client_id.to_string(),
            user: user.to_string(),
            scope: scope.to_string(),
        };
        self.issue(grant, now)
    }

    fn issue(&mut self, grant: Grant, now: u64) -> Issued {
        self.access.retain(|_, a| a.expires_at > now);
        let access_token = format!("ya29.sb-{}", random(32));
        let refresh_token = format!("1//sb-{}", random(32));
        self.refresh.insert(refresh_token.clone(), grant.clone());
        let scope = grant.scope.clone();
        self.access.insert(
            access_token.clone(),
            Access {
                grant,
                expires_at: now + self.lifetime,
            },
        );
        Issued {
            access_token,
            expires_in: self.lifetime,
            refresh_token: Some(refresh_token),
            scope,
        }
    }

    /// RFC 7009: revokes an access or refresh token and, as Google does, the
    /// whole grant behind it: every access and refresh token issued since
    /// the code was redeemed. Unknown tokens are ignored (§2.2).
    pub fn revoke(&mut self, token: &str) {
        let id = self
            .access
            .get(token)
            .map(|a| &a.grant.id)
            .or_else(|| self.refresh.get(token).map(|g| &g.id))
            .cloned();
        if let Some(id) = id {
            self.revoke_grant(&id);
        }
    }

    fn revoke_grant(&mut self, id: &str) {
        self.access.retain(|_, a| a.grant.id != id);
        self.refresh.retain(|_, g| g.id != id);
        self.rotated.retain(|_, g| g != id);
    }

    /// Makes every access token of `user` expired now (refresh tokens stay
    /// valid): the next send must refresh. Returns how many there were.
    pub fn expire_access_tokens(&mut self, user: &str, now: u64) -> usize {
        let mut n = 0;
        for a in self.access.values_mut() {
            if a.grant.user.eq_ignore_ascii_case(user) && a.expires_at > now {
                a.expires_at = now;
                n += 1;
            }
        }
        n
    }

    /// The user and the granted scopes of a valid access token (for the
    /// HTTPS APIs, which tell an unknown token from a missing scope).
    pub fn access_info(&self, token: &str, now: u64) -> Option<(String, String)> {
        self.access
            .get(token)
            .filter(|a| a.expires_at > now)
            .map(|a| (a.grant.user.clone(), a.grant.scope.clone()))
    }

    /// Whether `token` lets `user` send mail (an empty `user` is
    /// OAUTHBEARER without an authzid: the token says who it is).
    pub fn check_access(&self, token: &str, user: &str, scope: &str, now: u64) -> AccessCheck {
        match self.access.get(token) {
            Some(a)
                if a.expires_at > now
                    && a.grant.scope.split(' ').any(|s| s == scope)
                    && (user.is_empty() || a.grant.user.eq_ignore_ascii_case(user)) =>
            {
                AccessCheck::Valid {
                    user: a.grant.user.clone(),
                }
            }
            _ => AccessCheck::Invalid,
        }
    }

    /// RFC 8628 §3.1–3.2: a device code and the user code to type.
    pub fn add_device(&mut self, client_id: &str, scope: &str, now: u64) -> (String, String) {
        self.devices.retain(|_, d| d.expires_at > now);
        let device_code = format!("AH-sb{}", random(24));
        let user_code = user_code();
        self.devices.insert(
            device_code.clone(),
            Device {
                client_id: client_id.into(),
                scope: scope.into(),
                user_code: user_code.clone(),
                expires_at: now + DEVICE_LIFETIME,
                decision: None,
                last_poll: None,
            },
        );
        (device_code, user_code)
    }

    /// The client and scope of a pending user code, to show on the
    /// verification page.
    pub fn device_by_user_code(&self, user_code: &str, now: u64) -> Option<(String, String)> {
        let want = normalize_user_code(user_code);
        self.devices
            .values()
            .find(|d| d.user_code == want && d.expires_at > now && d.decision.is_none())
            .map(|d| (d.client_id.clone(), d.scope.clone()))
    }

    /// The user approved (`Some(user)`) or denied the user code; false when
    /// no such pending code exists.
    pub fn decide_device(&mut self, user_code: &str, user: Option<&str>, now: u64) -> bool {
        let want = normalize_user_code(user_code);
        match self
            .devices
            .values_mut()
            .find(|d| d.user_code == want && d.expires_at > now && d.decision.is_none())
        {
            Some(d) => {
                d.decision = Some(user.map(str::to_string).ok_or(()));
                true
            }
            None => false,
        }
    }

    /// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628
    /// §3.4–3.5).
    pub fn poll_device(
        &mut self,
        device_code: &str,
        client_id: &str,
        now: u64,
    ) -> Result<Issued, OAuthError> {
        let Some(d) = self.devices.get_mut(device_code) else {
            return Err(OAuthError::new("invalid_grant", "Bad Request"));
        };
        if d.client_id != client_id {
            return Err(another_client("device code", &d.client_id, client_id));
        }
        if d.expires_at <= now {
            self.devices.remove(device_code);
            return Err(OAuthError::new("expired_token", "Expired device code."));
        }
        match d.decision.clone() {
            None => {
                let too_soon = d.last_poll.is_some_and(|t| now < t + self.interval);
                d.last_poll = Some(now);
                if too_soon {
                    Err(OAuthError::new("slow_down", "Forbidden"))
                } else {
                    Err(OAuthError::new(
                        "authorization_pending",
                        "Precondition Required",
                    ))
                }
            }
            Some(Err(())) => {
                self.devices.remove(device_code);
                Err(OAuthError::new("access_denied", "Forbidden"))
            }
            Some(Ok(user)) => {
                let d = self.devices.remove(device_code).expect("present");
                Ok(self.issue(
                    Grant {
                        id: random(16),
                        client_id: d.client_id,
                        user,
                        scope: d.scope,
                    },
                    now,
                ))
            }
        }
    }
}

/// A code or token presented by a client other than the one it was issued
/// to: `invalid_grant` (RFC 6749 §5.2).
fn another_client(what: &str, issued_to: &str, presented_by: &str) -> OAuthError {
    OAuthError::new(
        "invalid_grant",
        &format!(
            "This {what} was issued to another client ({issued_to}), not to {presented_by}: \
             use it with the client ID that asked for it"
        ),
    )
}

/// `XXXX-XXXX` from letters that cannot be confused (RFC 8628 §6.1).
fn user_code() -> String {
    const SET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    let c: String = b
        .iter()
        .map(|x| SET[*x as usize % SET.len()] as char)
        .collect();
    format!("{}-{}", &c[..4], &c[4..])
}

/// What a person typed: any case, with or without the dash, spaces ignored.
fn normalize_user_code(s: &str) -> String {
    let c: String = s
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if c.len() == 8 {
        format!("{}-{}", &c[..4], &c[4..])
    } else {
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    // RFC 7636 Appendix B.
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const MAIL: &str = "https://mail.google.com/";

    fn code_for(g: &mut Grants, user: &str) -> String {
        let c = Consent::new(
            "postie-sandbox",
            "http://127.0.0.1:5000/",
            MAIL,
            Some("xyz".into()),
            CHALLENGE,
            None,
        );
        let id = g.add_consent(c, 100);
        let (c, code) = g.decide_consent(&id, Some(user), 101).unwrap();
        assert_eq!(c.state.as_deref(), Some("xyz"));
        code.unwrap()
    }

    #[test]
    fn pkce_s256_as_in_rfc_7636() {
        assert!(pkce_matches(VERIFIER, CHALLENGE));
        assert!(!pkce_matches(&VERIFIER.replace('d', "e"), CHALLENGE));
        assert!(!pkce_matches("short", CHALLENGE));
    }

    #[test]
    fn code_needs_the_verifier_and_works_once() {
        let mut g = Grants::new(3600, 5);
        let code = code_for(&mut g, "me@x.test");
        let uri = Some("http://127.0.0.1:5000/");
        let e = g
            .redeem_code(&code, "postie-sandbox", uri, None, 102)
            .unwrap_err();
        assert_eq!(e.description, "Missing code verifier.");
        // The failed attempt used the code up.
        let e = g
            .redeem_code(&code, "postie-sandbox", uri, Some(VERIFIER), 102)
            .unwrap_err();
        assert_eq!(e.error, "invalid_grant");

        let code = code_for(&mut g, "me@x.test");
        let e = g
            .redeem_code(&code, "postie-sandbox", uri, Some(&"a".repeat(43)), 102)
            .unwrap_err();
        assert_eq!(e.description, "Invalid code verifier.");

        let code = code_for(&mut g, "me@x.test");
        let t = g
            .redeem_code(&code, "postie-sandbox", uri, Some(VERIFIER), 102)
            .unwrap();
        assert!(t.access_token.starts_with("ya29."));
        assert_eq!((t.expires_in, t.scope.as_str()), (3600, MAIL));
        assert_eq!(
            g.check_access(&t.access_token, "ME@x.test", MAIL, 103),
            AccessCheck::Valid {
                user: "me@x.test".into()
            }
        );
        assert_eq!(
            g.check_access(&t.access_token, "other@x.test", MAIL, 103),
            AccessCheck::Invalid
        );
        assert_eq!(
            g.check_access(
                &t.access_token,
                "",
                "https://www.googleapis.com/auth/gmail.send",
                103
            ),
            AccessCheck::Invalid
        );
        assert_eq!(
            g.check_access(&t.access_token, "", MAIL, 102 + 3600),
            AccessCheck::Invalid
        );
    }

    #[test]
    fn refresh_rotates_and_the_old_token_is_refused() {
        let mut g = Grants::new(60, 5);
        let code = code_for(&mut g, "me@x.test");
        let t1 = g
            .redeem_code(
                &code,
                "postie-sandbox",
                Some("http://127.0.0.1:5000/"),
                Some(VERIFIER),
                102,
            )
            .unwrap();
        let r1 = t1.refresh_token.unwrap();
        let t2 = g.refresh(&r1, "postie-sandbox", 110).unwrap();
        let r2 = t2.refresh_token.clone().unwrap();
        assert_ne!(r1, r2);
        let e = g.refresh(&r2, "someone-else", 111).unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        assert_eq!(
            e.description,
            "This refresh token was issued to another client (postie-sandbox), not to \
             someone-else: use it with the client ID that asked for it"
        );
        // Both access tokens are valid until they expire...
        for t in [&t1.access_token, &t2.access_token] {
            assert!(matches!(
                g.check_access(t, "", MAIL, 112),
                AccessCheck::Valid { .. }
            ));
        }
        // ...but revoking the refresh token ends the whole grant, the access
        // token from before the refresh included.
        g.revoke(&r2);
        for t in [&t1.access_token, &t2.access_token] {
            assert_eq!(g.check_access(t, "", MAIL, 112), AccessCheck::Invalid);
        }
        for r in [&r1, &r2] {
            assert_eq!(
                g.refresh(r, "postie-sandbox", 112).unwrap_err(),
                OAuthError::expired_or_revoked()
            );
        }
    }

    fn tokens_for(g: &mut Grants, user: &str, now: u64) -> Issued {
        let code = code_for(g, user);
        g.redeem_code(
            &code,
            "postie-sandbox",
            Some("http://127.0.0.1:5000/"),
            Some(VERIFIER),
            now,
        )
        .unwrap()
    }

    #[test]
    fn revoking_an_old_access_token_ends_the_refresh_token() {
        let mut g = Grants::new(60, 5);
        let t1 = tokens_for(&mut g, "me@x.test", 102);
        let other = tokens_for(&mut g, "me@x.test", 102);
        let t2 = g
            .refresh(t1.refresh_token.as_ref().unwrap(), "postie-sandbox", 110)
            .unwrap();
        g.revoke(&t1.access_token);
        assert_eq!(
            g.check_access(&t2.access_token, "", MAIL, 111),
            AccessCheck::Invalid
        );
        assert_eq!(
            g.refresh(t2.refresh_token.as_ref().unwrap(), "postie-sandbox", 111)
                .unwrap_err(),
            OAuthError::expired_or_revoked()
        );
        // Another grant of the same user and client is not touched.
        assert!(matches!(
            g.check_access(&other.access_token, "", MAIL, 111),
            AccessCheck::Valid { .. }
        ));
        assert!(
            g.refresh(other.refresh_token.as_ref().unwrap(), "postie-sandbox", 111)
                .is_ok()
        );
    }

    #[test]
    fn reusing_a_rotated_refresh_token_revokes_the_grant() {
        let mut g = Grants::new(60, 5);
        let t1 = tokens_for(&mut g, "me@x.test", 102);
        let r1 = t1.refresh_token.unwrap();
        let t2 = g.refresh(&r1, "postie-sandbox", 110).unwrap();
        let t3 = g
            .refresh(t2.refresh_token.as_ref().unwrap(), "postie-sandbox", 120)
            .unwrap();
        // r1 again: refused, and everything of the grant ends.
        assert_eq!(
            g.refresh(&r1, "postie-sandbox", 130).unwrap_err(),
            OAuthError::expired_or_revoked()
        );
        for t in [&t1.access_token, &t2.access_token, &t3.access_token] {
            assert_eq!(g.check_access(t, "", MAIL, 131), AccessCheck::Invalid);
        }
        assert_eq!(
            g.refresh(t3.refresh_token.as_ref().unwrap(), "postie-sandbox", 131)
                .unwrap_err(),
            OAuthError::expired_or_revoked()
        );
    }

    #[test]
    fn code_with_another_redirect_uri_is_refused_naming_both() {
        let mut g = Grants::new(3600, 5);
        let code = code_for(&mut g, "me@x.test");
        let e = g
            .redeem_code(
                &code,
                "postie-sandbox",
                Some("http://127.0.0.1:6000/"),
                Some(VERIFIER),
                102,
            )
            .unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        assert_eq!(
            e.description,
            "redirect_uri http://127.0.0.1:6000/ differs from the authorization request's \
             http://127.0.0.1:5000/: send the same redirect_uri with the code"
        );
        let code = code_for(&mut g, "me@x.test");
        let e = g
            .redeem_code(&code, "postie-sandbox", None, Some(VERIFIER), 102)
            .unwrap_err();
        assert_eq!(e.error, "invalid_request");
        assert!(
            e.description.contains("redirect_uri") && e.description.contains("5000"),
            "{e:?}"
        );
    }

    #[test]
    fn code_of_another_client_is_an_invalid_grant() {
        let mut g = Grants::new(3600, 5);
        let code = code_for(&mut g, "me@x.test");
        let e = g
            .redeem_code(
                &code,
                "other-client",
                Some("http://127.0.0.1:5000/"),
                Some(VERIFIER),
                102,
            )
            .unwrap_err();
        assert_eq!((e.error, e.status), ("invalid_grant", 400));
        assert_eq!(
            e.description,
            "This authorization code was issued to another client (postie-sandbox), not to \
             other-client: use it with the client ID that asked for it"
        );
    }

    #[test]
    fn expired_code_says_to_sign_in_again() {
        let mut g = Grants::new(3600, 5);
        // Issued at 101, lives 600 s.
        let code = code_for(&mut g, "me@x.test");
        let e = g
            .redeem_code(
                &code,
                "postie-sandbox",
                Some("http://127.0.0.1:5000/"),
                Some(VERIFIER),
                101 + CODE_LIFETIME,
            )
            .unwrap_err();
        assert_eq!(e.error, "invalid_grant");
        assert_eq!(
            e.description,
            "Authorization code expired (codes live 10 minutes): sign in again"
        );
        // Just in time works.
        let code = code_for(&mut g, "me@x.test");
        assert!(
            g.redeem_code(
                &code,
                "postie-sandbox",
                Some("http://127.0.0.1:5000/"),
                Some(VERIFIER),
                100 + CODE_LIFETIME,
            )
            .is_ok()
        );
    }

    #[test]
    fn forced_expiry_leaves_the_refresh_token() {
        let mut g = Grants::new(3600, 5);
        let code = code_for(&mut g, "me@x.test");
        let t = g
            .redeem_code(
                &code,
                "postie-sandbox",
                Some("http://127.0.0.1:5000/"),
                Some(VERIFIER),
                102,
            )
            .unwrap();
        assert_eq!(g.expire_access_tokens("me@x.test", 200), 1);
        assert_eq!(
            g.check_access(&t.access_token, "", MAIL, 200),
            AccessCheck::Invalid
        );
        assert!(
            g.refresh(&t.refresh_token.unwrap(), "postie-sandbox", 201)
                .is_ok()
        );
    }

    #[test]
    fn denied_consent_gives_no_code_and_is_used_up() {
        let mut g = Grants::new(3600, 5);
        let c = Consent::new("c", "http://127.0.0.1:1/", MAIL, None, CHALLENGE, None);
        let id = g.add_consent(c, 0);
        let (_, code) = g.decide_consent(&id, None, 1).unwrap();
        assert!(code.is_none());
        assert!(g.decide_consent(&id, Some("u"), 2).is_none());
    }

    #[test]
    fn device_flow_pending_slow_down_approved() {
        let mut g = Grants::new(3600, 5);
        let (dc, uc) = g.add_device("c", MAIL, 0);
        assert_eq!(
            g.poll_device(&dc, "c", 1).unwrap_err().error,
            "authorization_pending"
        );
        assert_eq!(g.poll_device(&dc, "c", 2).unwrap_err().error, "slow_down");
        assert!(
            g.device_by_user_code(&uc.to_lowercase().replace('-', ""), 3)
                .is_some()
        );
        assert!(g.decide_device(&uc, Some("me@x.test"), 3));
        let t = g.poll_device(&dc, "c", 10).unwrap();
        assert!(matches!(
            g.check_access(&t.access_token, "me@x.test", MAIL, 11),
            AccessCheck::Valid { .. }
        ));
        assert_eq!(
            g.poll_device(&dc, "c", 20).unwrap_err().error,
            "invalid_grant"
        );

        let (dc, uc) = g.add_device("c", MAIL, 0);
        assert!(g.decide_device(&uc, None, 1));
        assert_eq!(
            g.poll_device(&dc, "c", 2).unwrap_err().error,
            "access_denied"
        );
        let (dc, _) = g.add_device("c", MAIL, 0);
        let e = g.poll_device(&dc, "d", 1).unwrap_err();
        assert_eq!((e.error, e.status), ("invalid_grant", 400));
        assert!(
            e.description.contains("issued to another client (c)"),
            "{e:?}"
        );
        assert_eq!(
            g.poll_device(&dc, "c", DEVICE_LIFETIME).unwrap_err().error,
            "expired_token"
        );
    }
}
