//! The arguments of MAIL FROM and RCPT TO: paths and parameters.

use super::{BodyType, ServerConfig};
use crate::address::Address;

/// Why MAIL or RCPT arguments were refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ArgError {
    /// Not `FROM:<path>` / `TO:<path>`, or a malformed parameter value.
    Syntax,
    /// The path is not a valid address.
    BadAddress,
    /// A parameter that is not offered (RFC 5321 §4.1.1.11: 555).
    UnknownParameter,
}

/// The arguments of MAIL FROM.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct MailArgs {
    pub(super) reverse_path: Option<Address>,
    pub(super) size: Option<u64>,
    pub(super) body: Option<BodyType>,
    pub(super) smtputf8: bool,
}

/// Parses `FROM:<path> [params]`. `auth_offered` allows the RFC 4954 §5
/// `AUTH=` parameter, which is taken and ignored.
pub(super) fn parse_mail(
    arg: &str,
    cfg: &ServerConfig,
    auth_offered: bool,
) -> Result<MailArgs, ArgError> {
    let (path, params) = split_path(arg, "FROM:", cfg.require_angle_brackets)?;
    let reverse_path = if path.is_empty() {
        None
    } else {
        Some(Address::new(path).map_err(|_| ArgError::BadAddress)?)
    };
    let mut m = MailArgs {
        reverse_path,
        size: None,
        body: None,
        smtputf8: false,
    };
    for p in params.split_ascii_whitespace() {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) => {
                let ok = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
                // More digits than u64 holds is still "too large".
                m.size = Some(if ok {
                    v.parse().unwrap_or(u64::MAX)
                } else {
                    return Err(ArgError::Syntax);
                });
            }
            ("BODY", Some(v)) => {
                m.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => BodyType::SevenBit,
                    "8BITMIME" => BodyType::EightBit,
                    "BINARYMIME" if cfg.chunking && cfg.binarymime => BodyType::Binary,
                    "BINARYMIME" => return Err(ArgError::UnknownParameter),
                    _ => return Err(ArgError::Syntax),
                });
            }
            ("SMTPUTF8", None) if cfg.smtputf8 => m.smtputf8 = true,
            ("AUTH", Some(_)) if auth_offered => {}
            _ => return Err(ArgError::UnknownParameter),
        }
    }
    Ok(m)
}

/// Parses `TO:<path>`; no RCPT parameter is offered.
pub(super) fn parse_rcpt(arg: &str, cfg: &ServerConfig) -> Result<Address, ArgError> {
    let (path, params) = split_path(arg, "TO:", cfg.require_angle_brackets)?;
    if !params.trim().is_empty() {
        return Err(ArgError::UnknownParameter);
    }
    if path.is_empty() {
        return Err(ArgError::BadAddress);
    }
    Address::new(path).map_err(|_| ArgError::BadAddress)
}

/// Splits `FROM:<path> rest` into the path without brackets and source
/// route, and the rest. A space after the colon is tolerated, and so is a
/// path without brackets unless `brackets` (both are common in hand-written
/// clients).
fn split_path<'a>(
    arg: &'a str,
    keyword: &str,
    brackets: bool,
) -> Result<(&'a str, &'a str), ArgError> {
    let head = arg.get(..keyword.len()).ok_or(ArgError::Syntax)?;
    if !head.eq_ignore_ascii_case(keyword) {
        return Err(ArgError::Syntax);
    }
    let rest = arg[keyword.len()..].trim_start_matches([' ', '\t']);
    let (path, params) = match rest.strip_prefix('<') {
        Some(inner) => {
            let end = inner.find('>').ok_or(ArgError::Syntax)?;
            (&inner[..end], &inner[end + 1..])
        }
        None if brackets => return Err(ArgError::Syntax),
        None => {
            let end = rest.find([' ', '\t']).unwrap_or(rest.len());
            (&rest[..end], &rest[end..])
        }
    };
    if !params.is_empty() && !params.starts_with([' ', '\t']) {
        return Err(ArgError::Syntax);
    }
    Ok((strip_source_route(path), params))
}

/// RFC 5321 §4.1.2 and appendix C: `@a,@b:user@c` is accepted and the
/// route ignored.
fn strip_source_route(path: &str) -> &str {
    if path.starts_with('@') {
        path.split_once(':').map_or(path, |(_, p)| p)
    } else {
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ServerConfig {
        ServerConfig::new("mx.example")
    }

    /// Argument, reverse path, SIZE, BODY, SMTPUTF8.
    type MailCase<'a> = (
        &'a str,
        Option<&'a str>,
        Option<u64>,
        Option<BodyType>,
        bool,
    );

    #[test]
    fn mail_arguments_table() {
        let ok: &[MailCase] = &[
            ("FROM:<>", None, None, None, false),
            ("from:<a@b.example>", Some("a@b.example"), None, None, false),
            (
                "FROM: <a@b.example>",
                Some("a@b.example"),
                None,
                None,
                false,
            ),
            ("FROM:a@b.example", Some("a@b.example"), None, None, false),
            (
                "FROM:<@r.example:a@b.example>",
                Some("a@b.example"),
                None,
                None,
                false,
            ),
            (
                "FROM:<a@b.example> SIZE=1000",
                Some("a@b.example"),
                Some(1000),
                None,
                false,
            ),
            (
                "FROM:<> size=99999999999999999999999",
                None,
                Some(u64::MAX),
                None,
                false,
            ),
            (
                "FROM:<> BODY=8BITMIME",
                None,
                None,
                Some(BodyType::EightBit),
                false,
            ),
            (
                "FROM:<> body=7bit",
                None,
                None,
                Some(BodyType::SevenBit),
                false,
            ),
            (
                "FROM:<> BODY=BINARYMIME",
                None,
                None,
                Some(BodyType::Binary),
                false,
            ),
            (
                "FROM:<ü@b.example> SMTPUTF8",
                Some("ü@b.example"),
                None,
                None,
                true,
            ),
        ];
        for (arg, from, size, body, utf8) in ok {
            let m = parse_mail(arg, &cfg(), false).unwrap_or_else(|e| panic!("{arg}: {e:?}"));
            assert_eq!(m.reverse_path.as_ref().map(Address::as_str), *from, "{arg}");
            assert_eq!((m.size, m.body, m.smtputf8), (*size, *body, *utf8), "{arg}");
        }
        let bad: &[(&str, ArgError)] = &[
            ("", ArgError::Syntax),
            ("TO:<a@b.example>", ArgError::Syntax),
            ("FROM:<a@b.example", ArgError::Syntax),
            ("FROM:<a@b.example>SIZE=1", ArgError::Syntax),
            ("FROM:<a@b.example> SIZE=x", ArgError::Syntax),
            ("FROM:<a@b.example> SIZE", ArgError::UnknownParameter),
            ("FROM:<a@b.example> BODY=9BIT", ArgError::Syntax),
            ("FROM:<a@b.example> RET=FULL", ArgError::UnknownParameter),
            ("FROM:<a@b.example> AUTH=<>", ArgError::UnknownParameter),
            ("FROM:<a b@c.example>", ArgError::BadAddress),
            ("FROM:<nodomain>", ArgError::BadAddress),
            ("FROM:<a@-b.example>", ArgError::BadAddress),
        ];
        for (arg, e) in bad {
            assert_eq!(parse_mail(arg, &cfg(), false), Err(*e), "{arg}");
        }
        assert!(parse_mail("FROM:<> AUTH=<>", &cfg(), true).is_ok());
        let mut c = cfg();
        c.chunking = false;
        c.smtputf8 = false;
        for arg in ["FROM:<> BODY=BINARYMIME", "FROM:<> SMTPUTF8"] {
            assert_eq!(parse_mail(arg, &c, false), Err(ArgError::UnknownParameter));
        }
    }

    #[test]
    fn chunking_without_binarymime_refuses_it() {
        let mut c = cfg();
        c.binarymime = false;
        assert_eq!(
            parse_mail("FROM:<> BODY=BINARYMIME", &c, false),
            Err(ArgError::UnknownParameter)
        );
        assert!(parse_mail("FROM:<> BODY=8BITMIME", &c, false).is_ok());
    }

    #[test]
    fn rcpt_arguments_table() {
        assert_eq!(
            parse_rcpt("TO:<c@d.example>", &cfg()).unwrap().as_str(),
            "c@d.example"
        );
        assert_eq!(
            parse_rcpt("to: <c@d.example>", &cfg()).unwrap().as_str(),
            "c@d.example"
        );
        assert_eq!(
            parse_rcpt("TO:<c@d.example>  ", &cfg()).unwrap().as_str(),
            "c@d.example"
        );
        assert_eq!(parse_rcpt("TO:<>", &cfg()), Err(ArgError::BadAddress));
        assert_eq!(parse_rcpt("TO:<c>", &cfg()), Err(ArgError::BadAddress));
        assert_eq!(
            parse_rcpt("FROM:<c@d.example>", &cfg()),
            Err(ArgError::Syntax)
        );
        assert_eq!(
            parse_rcpt("TO:<c@d.example> NOTIFY=NEVER", &cfg()),
            Err(ArgError::UnknownParameter)
        );
    }

    /// With `require_angle_brackets` (the sandbox, like
    /// Gmail) a bare path is a syntax error; without it, it is taken.
    #[test]
    fn angle_brackets_when_required() {
        let mut strict = cfg();
        strict.require_angle_brackets = true;
        assert_eq!(
            parse_mail("FROM:me@example.com", &strict, false),
            Err(ArgError::Syntax)
        );
        assert_eq!(
            parse_rcpt("TO:bob@example.com", &strict),
            Err(ArgError::Syntax)
        );
        assert!(parse_mail("FROM:<me@example.com>", &strict, false).is_ok());
        assert!(parse_mail("FROM:<>", &strict, false).is_ok());
        assert!(parse_rcpt("TO: <bob@example.com>", &strict).is_ok());
        let lenient = cfg();
        assert!(parse_mail("FROM:me@example.com", &lenient, false).is_ok());
        assert!(parse_rcpt("TO:bob@example.com", &lenient).is_ok());
    }
}
