//! Server capabilities from the EHLO reply (RFC 5321 §4.1.1.1).
//!
//! Parsed here from an already parsed [`Reply`] rather than with
//! `smtp-proto`'s `EhloResponse`: that one drops unknown keywords (which
//! diagnostics should show) and reduces mechanisms to a bit set.

use std::fmt;

use crate::reply::Reply;
use crate::sasl::Mechanism;

/// One EHLO keyword with its arguments.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Capability {
    /// `SIZE [n]` (RFC 1870); `Some(0)` means no fixed limit.
    Size(Option<u64>),
    /// `PIPELINING` (RFC 2920).
    Pipelining,
    /// `CHUNKING`: BDAT (RFC 3030).
    Chunking,
    /// `8BITMIME` (RFC 6152).
    EightBitMime,
    /// `BINARYMIME` (RFC 3030).
    BinaryMime,
    /// `SMTPUTF8` (RFC 6531).
    SmtpUtf8,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mech…` (RFC 4954), also the old `AUTH=mech…` form.
    Auth(Vec<Mechanism>),
    /// `ENHANCEDSTATUSCODES` (RFC 2034).
    EnhancedStatusCodes,
    /// `DSN` (RFC 3461).
    Dsn,
    /// Any other keyword, as the server wrote it.
    Other {
        /// The keyword.
        keyword: String,
        /// Everything after it, trimmed.
        args: String,
    },
}

impl fmt::Display for Capability {
    /// The EHLO line form: `SIZE 35882577`, `AUTH PLAIN LOGIN`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Capability::Size(Some(n)) => write!(f, "SIZE {n}"),
            Capability::Size(None) => f.write_str("SIZE"),
            Capability::Pipelining => f.write_str("PIPELINING"),
            Capability::Chunking => f.write_str("CHUNKING"),
            Capability::EightBitMime => f.write_str("8BITMIME"),
            Capability::BinaryMime => f.write_str("BINARYMIME"),
            Capability::SmtpUtf8 => f.write_str("SMTPUTF8"),
            Capability::StartTls => f.write_str("STARTTLS"),
            Capability::Auth(m) => {
                f.write_str("AUTH")?;
                m.iter().try_for_each(|m| write!(f, " {m}"))
            }
            Capability::EnhancedStatusCodes => f.write_str("ENHANCEDSTATUSCODES"),
            Capability::Dsn => f.write_str("DSN"),
            Capability::Other { keyword, args } if args.is_empty() => f.write_str(keyword),
            Capability::Other { keyword, args } => write!(f, "{keyword} {args}"),
        }
    }
}

/// What the server announced in its EHLO reply.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// The first word of the first line: the server's name for itself.
    pub greeting_domain: String,
    /// The keywords, in the order sent; repeated AUTH lines are merged.
    pub list: Vec<Capability>,
}

impl Capabilities {
    /// Reads an EHLO reply. Keywords are case-insensitive; unknown ones are
    /// kept as [`Capability::Other`].
    pub fn from_ehlo(reply: &Reply) -> Capabilities {
        let mut lines = reply.lines.iter();
        let greeting_domain = lines
            .next()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        let mut list: Vec<Capability> = Vec::new();
        for line in lines {
            let line = line.trim();
            let (word, args) = line.split_once(' ').unwrap_or((line, ""));
            if word.is_empty() {
                continue;
            }
            let cap = parse_keyword(word, args.trim());
            if let Capability::Auth(new) = &cap
                && let Some(Capability::Auth(old)) =
                    list.iter_mut().find(|c| matches!(c, Capability::Auth(_)))
            {
                for m in new {
                    if !old.contains(m) {
                        old.push(m.clone());
                    }
                }
                continue;
            }
            list.push(cap);
        }
        Capabilities {
            greeting_domain,
            list,
        }
    }

    /// What a HELO reply tells: the server's name, no extensions.
    pub fn from_helo(reply: &Reply) -> Capabilities {
        let greeting_domain = reply
            .lines
            .first()
            .and_then(|l| l.split_whitespace().next())
            .unwrap_or("")
            .to_owned();
        Capabilities {
            greeting_domain,
            list: Vec::new(),
        }
    }

    fn has(&self, cap: &Capability) -> bool {
        self.list.contains(cap)
    }

    /// True when the server announced SIZE at all, so `SIZE=` may be sent.
    pub fn supports_size(&self) -> bool {
        self.list.iter().any(|c| matches!(c, Capability::Size(_)))
    }

    /// The declared maximum message size, when there is one: `None` when
    /// SIZE is absent, has no argument, or is 0 ("no fixed maximum",
    /// RFC 1870 §4).
    pub fn size(&self) -> Option<u64> {
        self.list.iter().find_map(|c| match c {
            Capability::Size(Some(n)) if *n > 0 => Some(*n),
            _ => None,
        })
    }

    /// PIPELINING.
    pub fn supports_pipelining(&self) -> bool {
        self.has(&Capability::Pipelining)
    }

    /// CHUNKING (BDAT).
    pub fn chunking(&self) -> bool {
        self.has(&Capability::Chunking)
    }

    /// BINARYMIME.
    pub fn binarymime(&self) -> bool {
        self.has(&Capability::BinaryMime)
    }

    /// 8BITMIME.
    pub fn eightbitmime(&self) -> bool {
        self.has(&Capability::EightBitMime)
    }

    /// SMTPUTF8.
    pub fn smtputf8(&self) -> bool {
        self.has(&Capability::SmtpUtf8)
    }

    /// STARTTLS.
    pub fn starttls(&self) -> bool {
        self.has(&Capability::StartTls)
    }

    /// ENHANCEDSTATUSCODES.
    pub fn enhanced_status_codes(&self) -> bool {
        self.has(&Capability::EnhancedStatusCodes)
    }

    /// DSN.
    pub fn dsn(&self) -> bool {
        self.has(&Capability::Dsn)
    }

    /// The offered SASL mechanisms, in the server's order; empty without AUTH.
    pub fn auth_mechanisms(&self) -> &[Mechanism] {
        self.list
            .iter()
            .find_map(|c| match c {
                Capability::Auth(m) => Some(m.as_slice()),
                _ => None,
            })
            .unwrap_or(&[])
    }

    /// True when any keyword, known or not, matches `keyword`
    /// case-insensitively.
    pub fn has_keyword(&self, keyword: &str) -> bool {
        self.list.iter().any(|c| {
            let shown = c.to_string();
            let word = shown.split(' ').next().unwrap_or("");
            word.eq_ignore_ascii_case(keyword)
        })
    }
}

fn parse_keyword(word: &str, args: &str) -> Capability {
    let upper = word.to_ascii_uppercase();
    // The pre-RFC 4954 form "AUTH=LOGIN PLAIN" (still sent by some servers
    // next to the standard line for old Outlook clients).
    if let Some(first) = upper.strip_prefix("AUTH=") {
        let first = &word[word.len() - first.len()..];
        return Capability::Auth(mechanisms(
            std::iter::once(first).chain(args.split_whitespace()),
        ));
    }
    match upper.as_str() {
        "SIZE" => Capability::Size(args.split_whitespace().next().and_then(|n| n.parse().ok())),
        "PIPELINING" => Capability::Pipelining,
        "CHUNKING" => Capability::Chunking,
        "8BITMIME" => Capability::EightBitMime,
        "BINARYMIME" => Capability::BinaryMime,
        "SMTPUTF8" => Capability::SmtpUtf8,
        "STARTTLS" => Capability::StartTls,
        "AUTH" => Capability::Auth(mechanisms(args.split_whitespace())),
        "ENHANCEDSTATUSCODES" => Capability::EnhancedStatusCodes,
        "DSN" => Capability::Dsn,
        _ => Capability::Other {
            keyword: word.to_owned(),
            args: args.to_owned(),
        },
    }
}

fn mechanisms<'a>(names: impl Iterator<Item = &'a str>) -> Vec<Mechanism> {
    let mut out: Vec<Mechanism> = Vec::new();
    for m in names.filter_map(|n| n.parse::<Mechanism>().ok()) {
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests;
