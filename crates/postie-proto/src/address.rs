//! Validated envelope addresses and EHLO domains.
//!
//! Every byte that goes into a command line passes through one of these
//! types, so no command can be built from a string that carries CR, LF, NUL,
//! angle brackets or whitespace (RFC 5321 §2.3.8, §4.1.2).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use thiserror::Error;

/// Longest mailbox accepted, in octets: the 256-octet path limit of RFC 5321
/// §4.5.3.1.3 minus the angle brackets.
pub const MAX_ADDRESS_LEN: usize = 254;

/// Longest domain accepted, in octets (RFC 5321 §4.5.3.1.2).
pub const MAX_DOMAIN_LEN: usize = 255;

/// Longest domain label, in octets (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// Why a string is not a usable address or domain.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum AddressError {
    /// Nothing was given.
    #[error("empty address")]
    Empty,
    /// A character that can never appear in an SMTP envelope.
    #[error("forbidden character {ch:?} at byte {at}")]
    ForbiddenChar {
        /// The character.
        ch: char,
        /// Its byte offset.
        at: usize,
    },
    /// There is no `@` separating local part and domain.
    #[error("missing '@' between local part and domain")]
    MissingAt,
    /// Nothing before the `@`.
    #[error("empty local part before '@'")]
    EmptyLocalPart,
    /// The address or domain is longer than the protocol allows.
    #[error("too long: {len} bytes, at most {max} allowed")]
    TooLong {
        /// Actual length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An empty label (`a..b`, a leading or trailing dot).
    #[error("empty label in domain {domain:?}")]
    EmptyLabel {
        /// The domain.
        domain: String,
    },
    /// A label longer than 63 octets.
    #[error("label longer than 63 bytes in domain {domain:?}")]
    LabelTooLong {
        /// The domain.
        domain: String,
    },
    /// A character not allowed in a domain name (RFC 5321 §4.1.2 allows
    /// letters, digits and hyphens; non-ASCII labels need SMTPUTF8).
    #[error("character {ch:?} is not allowed in domain {domain:?}")]
    InvalidDomainChar {
        /// The character.
        ch: char,
        /// The domain.
        domain: String,
    },
    /// A label starts or ends with a hyphen.
    #[error("label starts or ends with '-' in domain {domain:?}")]
    HyphenAtLabelEdge {
        /// The domain.
        domain: String,
    },
    /// A bracketed address literal that is not `[IPv4]`, `[IPv6:…]` or a
    /// general literal `[tag:content]`.
    #[error("invalid address literal {literal:?}")]
    InvalidLiteral {
        /// The literal as given.
        literal: String,
    },
}

/// Characters that can never appear in an envelope address or domain: they
/// would end or split the command line, or the path brackets.
fn check_forbidden(s: &str) -> Result<(), AddressError> {
    for (at, ch) in s.char_indices() {
        if ch.is_control() || ch.is_whitespace() || ch == '<' || ch == '>' {
            return Err(AddressError::ForbiddenChar { ch, at });
        }
    }
    Ok(())
}

/// A domain for EHLO/HELO or the right side of an address: a host name or an
/// address literal (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(String);

impl Domain {
    /// Validates a domain or address literal.
    pub fn new(s: &str) -> Result<Domain, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        check_forbidden(s)?;
        if s.len() > MAX_DOMAIN_LEN {
            return Err(AddressError::TooLong {
                len: s.len(),
                max: MAX_DOMAIN_LEN,
            });
        }
        if s.starts_with('[') {
            check_literal(s)?;
        } else {
            check_name(s)?;
        }
        Ok(Domain(s.to_owned()))
    }

    /// The domain as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for a bracketed address literal.
    pub fn is_literal(&self) -> bool {
        self.0.starts_with('[')
    }

    /// True when the domain has non-ASCII (U-label) characters, which the
    /// server accepts only with SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.0.is_ascii()
    }
}

fn check_literal(s: &str) -> Result<(), AddressError> {
    let bad = || AddressError::InvalidLiteral {
        literal: s.to_owned(),
    };
    let inner = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .ok_or_else(bad)?;
    if inner.parse::<Ipv4Addr>().is_ok() {
        return Ok(());
    }
    let (tag, content) = inner.split_once(':').ok_or_else(bad)?;
    if tag.eq_ignore_ascii_case("IPv6") {
        return content.parse::<Ipv6Addr>().map(|_| ()).map_err(|_| bad());
    }
    // General-address-literal (RFC 5321 §4.1.3): Ldh-str ":" 1*dcontent.
    let tag_ok = !tag.is_empty()
        && tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !tag.ends_with('-');
    let content_ok =
        !content.is_empty() && content.bytes().all(|b| matches!(b, 33..=90 | 94..=126));
    if tag_ok && content_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

fn check_name(s: &str) -> Result<(), AddressError> {
    for label in s.split('.') {
        if label.is_empty() {
            return Err(AddressError::EmptyLabel {
                domain: s.to_owned(),
            });
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(AddressError::LabelTooLong {
                domain: s.to_owned(),
            });
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::HyphenAtLabelEdge {
                domain: s.to_owned(),
            });
        }
        if let Some(ch) = label
            .chars()
            .find(|&c| c.is_ascii() && !c.is_ascii_alphanumeric() && c != '-')
        {
            return Err(AddressError::InvalidDomainChar {
                ch,
                domain: s.to_owned(),
            });
        }
    }
    Ok(())
}

impl From<IpAddr> for Domain {
    /// The address literal for an IP address, e.g. for EHLO when the host has
    /// no usable name (RFC 5321 §4.1.4).
    fn from(ip: IpAddr) -> Domain {
        match ip {
            IpAddr::V4(v4) => Domain(format!("[{v4}]")),
            IpAddr::V6(v6) => Domain(format!("[IPv6:{v6}]")),
        }
    }
}

impl FromStr for Domain {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Domain, AddressError> {
        Domain::new(s)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Domain {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A mailbox for `MAIL FROM` or `RCPT TO`, written without angle brackets.
///
/// The null reverse path `<>` is not an `Address`: MAIL takes an
/// `Option<Address>` where `None` means `<>`, so RCPT can never be given one.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    text: String,
    at: usize,
}

impl Address {
    /// Validates `local@domain`. UTF-8 is allowed in both parts (SMTPUTF8,
    /// RFC 6531); see [`Address::needs_smtputf8`].
    pub fn new(s: &str) -> Result<Address, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        check_forbidden(s)?;
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong {
                len: s.len(),
                max: MAX_ADDRESS_LEN,
            });
        }
        // The last '@' separates: a quoted local part may contain one.
        let at = s.rfind('@').ok_or(AddressError::MissingAt)?;
        if at == 0 {
            return Err(AddressError::EmptyLocalPart);
        }
        Domain::new(&s[at + 1..])?;
        Ok(Address {
            text: s.to_owned(),
            at,
        })
    }

    /// Parses a reverse path as a user may write it: empty or `<>` is the
    /// null path (`None`), anything else must be a valid address.
    pub fn reverse_path(s: &str) -> Result<Option<Address>, AddressError> {
        match s {
            "" | "<>" => Ok(None),
            _ => Address::new(s).map(Some),
        }
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The part before the last `@`.
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The part after the last `@`.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// True when the address has non-ASCII characters: the server must offer
    /// SMTPUTF8 and MAIL must carry the `SMTPUTF8` parameter (RFC 6531 §3.4).
    pub fn needs_smtputf8(&self) -> bool {
        !self.text.is_ascii()
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Address, AddressError> {
        Address::new(s)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl AsRef<str> for Address {
    fn as_ref(&self) -> &str {
        &self.text
    }
}

#[cfg(test)]
mod tests;
