//! Where an outbox is: a directory on this host, or a PostgreSQL database
//! that several hosts share. A location is shown in messages and logs, so
//! its `Display` and `Debug` never carry a password.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use secrecy::{ExposeSecret, SecretString};

use postie::error::{Error, ErrorKind, Result};

/// Keys of libpq's key=value connection strings.
const CONNINFO_KEYS: [&str; 6] = ["host", "hostaddr", "port", "dbname", "user", "password"];

/// Where an outbox is.
#[derive(Clone, Debug)]
pub enum Location {
    /// An outbox directory: SQLite and files, one host.
    Dir(PathBuf),
    /// A PostgreSQL database, shared by several hosts.
    Postgres(Box<PgTarget>),
}

impl Location {
    /// A directory path, or a `postgres://` / `postgresql://` URL. The URL
    /// may carry a password (from an environment variable); never echoed
    /// back, not even in errors.
    pub fn parse(s: &str) -> Result<Location> {
        let t = s.trim();
        if t.starts_with("postgres://") || t.starts_with("postgresql://") {
            return PgTarget::parse(t).map(|t| Location::Postgres(Box::new(t)));
        }
        if t.contains("://") {
            return Err(Error::new(
                ErrorKind::Config,
                "an outbox is a directory or a postgres:// URL; other URLs are not supported",
            ));
        }
        if t.is_empty() {
            return Err(Error::new(
                ErrorKind::Config,
                "the outbox location is empty: give a directory or a postgres:// URL",
            ));
        }
        // libpq's "host=db user=postie password=..." form would otherwise
        // become a directory of that name (the text is not repeated: it may
        // hold a password).
        if t.split_whitespace().any(|w| {
            w.split_once('=')
                .is_some_and(|(k, _)| CONNINFO_KEYS.contains(&k))
        }) {
            return Err(Error::new(
                ErrorKind::Config,
                "the outbox location looks like a PostgreSQL key=value connection string; \
                 write it as a URL: postgres://USER@HOST:PORT/DATABASE",
            ));
        }
        let dir = PathBuf::from(t);
        if dir.is_relative() {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "the outbox directory '{t}' is relative (to wherever postie happens to run): \
                     give an absolute path"
                ),
            ));
        }
        Ok(Location::Dir(dir))
    }

    /// The directory, for an outbox kept on this host.
    pub fn dir(&self) -> Option<&Path> {
        match self {
            Location::Dir(d) => Some(d),
            Location::Postgres(_) => None,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Dir(d) => write!(f, "{}", d.display()),
            Location::Postgres(t) => write!(f, "{t}"),
        }
    }
}

/// A PostgreSQL database to keep the outbox in, with its credentials.
#[derive(Clone)]
pub struct PgTarget {
    pub(super) config: postgres::Config,
    shown: String,
    pub(super) host_id: Option<String>,
    /// Extra CA certificates the server's certificate may chain to.
    pub(super) ca_file: Option<PathBuf>,
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PgTarget").field(&self.shown).finish()
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PgTarget {
    /// A `postgres://user[:password]@host[:port]/database[?options]` URL, as
    /// libpq reads it. The error does not repeat the URL: it may hold a
    /// password.
    pub fn parse(url: &str) -> Result<PgTarget> {
        let mut config = postgres::Config::from_str(url).map_err(|e| {
            Error::new(
                ErrorKind::Config,
                format!(
                    "the outbox URL is not a PostgreSQL connection URL ({e}); write it as \
                     postgres://USER@HOST:PORT/DATABASE"
                ),
            )
        })?;
        if config.get_hosts().is_empty() {
            config.host("localhost");
        }
        if config.get_user().is_none() {
            return Err(Error::new(
                ErrorKind::Config,
                "the outbox URL names no user: write it as postgres://USER@HOST:PORT/DATABASE",
            ));
        }
        if config.get_dbname().is_none() {
            let user = config.get_user().unwrap_or_default().to_string();
            config.dbname(&user);
        }
        if config.get_application_name().is_none() {
            config.application_name("postie");
        }
        let shown = shown(&config);
        Ok(PgTarget {
            config,
            shown,
            host_id: None,
            ca_file: None,
        })
    }

    /// Name this host `id` in the outbox's history (default: its host name).
    pub fn set_host_id(&mut self, id: &str) {
        self.host_id = Some(id.to_string()).filter(|i| !i.trim().is_empty());
    }

    /// Trust the CA certificates in `path` (PEM) for the server's
    /// certificate, besides the system's.
    pub fn set_ca_file(&mut self, path: &Path) {
        self.ca_file = Some(path.to_path_buf());
    }

    /// The URL carried a password.
    pub fn has_password(&self) -> bool {
        self.config.get_password().is_some()
    }

    /// Connect with `password`.
    pub fn set_password(&mut self, password: &SecretString) {
        self.config.password(password.expose_secret());
    }

    /// Take the password from the password file libpq reads (`PGPASSFILE`,
    /// else `~/.pgpass`), for this host, port, database and user. True when
    /// a line matched. The file is skipped, with a warning, when others can
    /// read it (as libpq does).
    pub fn password_from_pgpass(&mut self) -> Result<bool> {
        let path = match std::env::var_os("PGPASSFILE") {
            Some(p) => PathBuf::from(p),
            None => match directories::BaseDirs::new() {
                Some(d) => d.home_dir().join(".pgpass"),
                None => return Ok(false),
            },
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => {
                return Err(Error::new(
                    ErrorKind::Config,
                    format!("cannot read the password file {}: {e}", path.display()),
                ));
            }
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if let Ok(m) = std::fs::metadata(&path)
                && m.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(
                    "the password file {} is readable by others and is ignored: chmod 600 it",
                    path.display()
                );
                return Ok(false);
            }
        }
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(postgres::config::Host::Unix(_)) => "localhost".to_string(),
            None => "localhost".to_string(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let want = [
            host,
            port.to_string(),
            self.config.get_dbname().unwrap_or_default().to_string(),
            self.config.get_user().unwrap_or_default().to_string(),
        ];
        match pgpass_lookup(&text, &want) {
            Some(pw) => {
                self.config.password(pw.expose_secret());
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// The URL without its password or options.
fn shown(c: &postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = c
        .get_ports()
        .first()
        .map(|p| format!(":{p}"))
        .unwrap_or_default();
    format!(
        "postgres://{}@{host}{port}/{}",
        c.get_user().unwrap_or_default(),
        c.get_dbname().unwrap_or_default()
    )
}

/// The password of the first line of a `.pgpass` file that matches `want`
/// (host, port, database, user); `*` matches anything, `\` escapes `:` and
/// `\`.
fn pgpass_lookup(text: &str, want: &[String; 4]) -> Option<SecretString> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let mut fields = Vec::with_capacity(5);
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(SecretString::from(fields.pop().unwrap_or_default()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(h: &str, p: &str, d: &str, u: &str) -> [String; 4] {
        [h.into(), p.into(), d.into(), u.into()]
    }

    #[test]
    fn pgpass_lines_match_with_wildcards_and_escapes() {
        let text = "# comment\n\
                    db1:5432:mail:postie:first\n\
                    *:*:mail:*:wild\\:card\\\\\n";
        let pw = |w| pgpass_lookup(text, &w).map(|s| s.expose_secret().to_string());
        assert_eq!(
            pw(want("db1", "5432", "mail", "postie")).as_deref(),
            Some("first")
        );
        assert_eq!(
            pw(want("db2", "6000", "mail", "x")).as_deref(),
            Some("wild:card\\")
        );
        assert_eq!(pw(want("db1", "5432", "other", "postie")), None);
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        let l = Location::parse("postgres://postie:Sup3rS3cret@127.0.0.1:15432/mail").unwrap();
        let shown = format!("{l} {l:?}");
        assert!(!shown.contains("Sup3rS3cret"), "{shown}");
        assert!(
            shown.contains("postgres://postie@127.0.0.1:15432/mail"),
            "{shown}"
        );
        let Location::Postgres(t) = l else {
            panic!("not postgres")
        };
        assert!(t.has_password());
        let e = Location::parse("postgres://postie:Sup3rS3cret@host:notaport/mail")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("Sup3rS3cret"), "{e}");
        assert!(matches!(
            Location::parse("/var/lib/postie/outbox"),
            Ok(Location::Dir(_))
        ));
        assert!(Location::parse("mysql://x@y/z").is_err());
        let e = Location::parse("host=db user=postie password=Sup3rS3cret")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("postgres://") && !e.contains("Sup3rS3cret"),
            "{e}"
        );
        let e = Location::parse("outbox").unwrap_err().to_string();
        assert!(e.contains("absolute path"), "{e}");
    }
}
