//! Where to connect and how to secure it: a host, a port and a TLS mode,
//! from an account or from a `smtp://` / `smtps://` URL.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::error::{Error, ErrorKind, Result};
use crate::provider::TlsMode;
use crate::wording::{Setting, say_setting};

/// Where to connect and how to secure it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address to dial.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// TLS mode.
    pub tls: TlsMode,
    /// Verify the certificate for this name instead of `host`.
    pub tls_name: Option<String>,
    /// Extra CA file (PEM) to trust.
    pub ca_file: Option<PathBuf>,
}

impl Endpoint {
    /// Parse `smtp://HOST[:PORT]` (STARTTLS, default 587) or
    /// `smtps://HOST[:PORT]` (implicit TLS, default 465). IPv6 hosts go in
    /// brackets: `smtp://[::1]:2525`.
    pub fn from_url(url: &str) -> Result<Endpoint> {
        let bad = |why: &str| {
            Error::new(
                ErrorKind::Usage,
                format!(
                    "{} '{url}' {why}: write smtp://HOST:587 (STARTTLS) or smtps://HOST:465 (implicit TLS)",
                    say_setting(Setting::Server)
                ),
            )
        };
        let (scheme, rest) = url.split_once("://").ok_or_else(|| bad("has no scheme"))?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "smtp" | "submission" => TlsMode::Starttls,
            "smtps" | "submissions" => TlsMode::Implicit,
            _ => return Err(bad("has an unknown scheme")),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.is_empty() {
            return Err(bad("is not HOST:PORT"));
        }
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("has text after ']'")),
            };
            (h.to_string(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            Some(p) => p.parse::<u16>().map_err(|_| bad("has an invalid port"))?,
            None if tls == TlsMode::Implicit => 465,
            None => 587,
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        Ok(Endpoint {
            host,
            port,
            tls,
            tls_name: None,
            ca_file: None,
        })
    }

    /// `host:port`, with brackets around IPv6 addresses.
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// True when the host is a loopback address (or `localhost`).
    pub fn is_loopback(&self) -> bool {
        is_loopback_host(&self.host)
    }

    /// The one rule for plain text: no TLS only to a loopback address,
    /// never across a network where credentials and mail could be read.
    pub fn check_plaintext(&self) -> Result<()> {
        if self.tls == TlsMode::None && !self.is_loopback() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "{} is only allowed to a loopback address, not {}: credentials and mail \
                     would cross the network unencrypted; use STARTTLS (587) or implicit TLS (465)",
                    say_setting(Setting::Plaintext),
                    self.host
                ),
            ));
        }
        Ok(())
    }
}

/// True for `localhost` and loopback addresses (127.0.0.0/8, ::1).
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}
