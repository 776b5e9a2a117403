//! Server replies: the reply type, RFC 3463 enhanced status codes and an
//! incremental parser.
//!
//! The parser is written here rather than taken from `smtp-proto`: its
//! `ResponseReceiver` joins all lines into one string, caps a whole reply at
//! 4 KiB, keeps the code of the first line without checking the others and
//! stores enhanced codes as single digits (so `5.7.139` from Microsoft does
//! not fit). Diagnostics need every line and every code as sent.

use std::fmt;

use thiserror::Error;

/// Longest reply line accepted, in octets. RFC 5321 §4.5.3.1.5 allows 512;
/// real servers send longer lines (long EHLO keywords, long URLs), so this is
/// a safety limit against a peer that never sends a line end, not a syntax rule.
pub const MAX_LINE_LEN: usize = 64 * 1024;

/// Longest reply accepted, all lines together, in octets.
pub const MAX_REPLY_LEN: usize = 1024 * 1024;

/// An RFC 3463 enhanced status code such as `5.7.8`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// The class: 2 success, 4 persistent transient failure, 5 permanent failure.
    pub class: u8,
    /// The subject (RFC 3463 §3): 1 addressing, 2 mailbox, 3 mail system,
    /// 4 network, 5 protocol, 6 content, 7 security or policy.
    pub subject: u16,
    /// The detail within the subject.
    pub detail: u16,
}

impl EnhancedCode {
    /// A code from its three parts.
    pub const fn new(class: u8, subject: u16, detail: u16) -> EnhancedCode {
        EnhancedCode {
            class,
            subject,
            detail,
        }
    }

    /// Parses a code at the start of `text`: `class "." subject "." detail`
    /// followed by a space or the end of the text. Returns the code and the
    /// number of bytes it occupies (without the space).
    ///
    /// RFC 3463 §2: the class is 2, 4 or 5; subject and detail have one to
    /// three digits.
    pub fn parse_prefix(text: &str) -> Option<(EnhancedCode, usize)> {
        let b = text.as_bytes();
        let class = match b.first()? {
            c @ (b'2' | b'4' | b'5') => c - b'0',
            _ => return None,
        };
        if b.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, n1) = digits(&b[2..])?;
        let at = 2 + n1;
        if b.get(at) != Some(&b'.') {
            return None;
        }
        let (detail, n2) = digits(&b[at + 1..])?;
        let end = at + 1 + n2;
        match b.get(end) {
            None | Some(b' ') => Some((EnhancedCode::new(class, subject, detail), end)),
            _ => None,
        }
    }
}

/// One to three ASCII digits at the start of `b`, and how many there were.
fn digits(b: &[u8]) -> Option<(u16, usize)> {
    let n = b.iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let v = b[..n]
        .iter()
        .fold(0u16, |acc, c| acc * 10 + u16::from(c - b'0'));
    Some((v, n))
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// What the first digit of a reply code says (RFC 5321 §4.2.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Severity {
    /// 2yz: the requested action was completed.
    PositiveCompletion,
    /// 3yz: accepted, more information is needed (354, 334).
    PositiveIntermediate,
    /// 4yz: not done, but the condition is temporary.
    TransientNegative,
    /// 5yz: not done, and repeating the same request will not help.
    PermanentNegative,
}

/// A complete server reply, with every line kept.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Reply {
    /// The three-digit reply code.
    pub code: u16,
    /// The enhanced status code of the first line that carries one.
    pub enhanced: Option<EnhancedCode>,
    /// The text of each line, without the `250-` / `250 ` prefix and without
    /// the enhanced code and the one space that follows it. Anything after
    /// that is kept as sent, including further spaces.
    pub lines: Vec<String>,
}

impl Reply {
    /// A reply with the given code and single-line text; an enhanced code at
    /// the start of `text` is recognised as on the wire.
    pub fn new(code: u16, text: &str) -> Reply {
        let mut r = Reply {
            code,
            enhanced: None,
            lines: Vec::new(),
        };
        r.push_line(text);
        r
    }

    /// Adds a line as the parser does: strips a leading enhanced code.
    fn push_line(&mut self, text: &str) {
        let stripped = match EnhancedCode::parse_prefix(text) {
            Some((code, len)) => {
                self.enhanced.get_or_insert(code);
                text.get(len + 1..).unwrap_or("")
            }
            None => text,
        };
        self.lines.push(stripped.to_owned());
    }

    /// All lines joined with `\n`.
    pub fn text(&self) -> String {
        self.lines.join("\n")
    }

    /// The class of the reply from its first digit. Codes outside 2yz–5yz
    /// (which the parser never produces) count as permanent failures.
    pub fn severity(&self) -> Severity {
        match self.code / 100 {
            2 => Severity::PositiveCompletion,
            3 => Severity::PositiveIntermediate,
            4 => Severity::TransientNegative,
            _ => Severity::PermanentNegative,
        }
    }

    /// True for 2yz and 3yz replies.
    pub fn is_positive(&self) -> bool {
        matches!(
            self.severity(),
            Severity::PositiveCompletion | Severity::PositiveIntermediate
        )
    }

    /// True for 2yz replies only: the action was completed.
    pub fn is_completion(&self) -> bool {
        self.severity() == Severity::PositiveCompletion
    }

    /// True for 4yz replies: trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        self.severity() == Severity::TransientNegative
    }

    /// True for 5yz replies.
    pub fn is_permanent(&self) -> bool {
        self.severity() == Severity::PermanentNegative
    }

    /// The reply as wire lines without line ends: `535-5.7.8 Username…`.
    pub fn wire_lines(&self) -> Vec<String> {
        let n = self.lines.len().max(1);
        (0..n)
            .map(|i| {
                let sep = if i + 1 == n { ' ' } else { '-' };
                let text = self.lines.get(i).map(String::as_str).unwrap_or("");
                let line = match self.enhanced {
                    Some(e) => format!("{}{sep}{e} {text}", self.code),
                    None => format!("{}{sep}{text}", self.code),
                };
                if text.is_empty() {
                    line.trim_end().to_owned()
                } else {
                    line
                }
            })
            .collect()
    }
}

impl fmt::Display for Reply {
    /// Renders the reply like the wire, lines separated by `\n`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.wire_lines().join("\n"))
    }
}

/// Why bytes from the server are not an SMTP reply.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ReplyError {
    /// A line does not start with a three-digit code from 200 to 599.
    #[error("malformed reply: line does not start with a reply code: {line:?}")]
    InvalidCode {
        /// The start of the offending line.
        line: String,
    },
    /// The code is not followed by a space, a hyphen or the line end.
    #[error("malformed reply: expected ' ' or '-' after the reply code: {line:?}")]
    InvalidSeparator {
        /// The start of the offending line.
        line: String,
    },
    /// A continuation line carries a different code than the first line
    /// (RFC 5321 §4.2.1 requires the same code on every line).
    #[error("malformed reply: line with code {found} inside a {expected} reply")]
    MismatchedCode {
        /// The code of the first line.
        expected: u16,
        /// The code of the offending line.
        found: u16,
    },
    /// A line is longer than [`MAX_LINE_LEN`].
    #[error("reply line longer than {limit} bytes")]
    LineTooLong {
        /// The limit.
        limit: usize,
    },
    /// The reply is longer than [`MAX_REPLY_LEN`].
    #[error("reply longer than {limit} bytes")]
    ReplyTooLong {
        /// The limit.
        limit: usize,
    },
}

/// Incremental reply parser.
///
/// It holds no state: the caller keeps one read buffer, calls
/// [`ReplyParser::parse`] after each read, and drops the consumed bytes. The
/// bytes after a reply are left alone, which is what pipelining needs.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReplyParser;

impl ReplyParser {
    /// Parses one reply from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds only part of a reply, and
    /// `Ok(Some((reply, consumed)))` once a whole reply is there. Both CRLF and
    /// bare LF end a line. Malformed input is an error as soon as it is seen,
    /// even before the line is complete.
    pub fn parse(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        let mut reply: Option<Reply> = None;
        let mut pos = 0;
        loop {
            let rest = &buf[pos..];
            let Some(nl) = rest.iter().position(|&b| b == b'\n') else {
                // Incomplete line: still reject what is already visibly wrong.
                check_prefix(rest, reply.as_ref().map(|r| r.code), false)?;
                if rest.len() > MAX_LINE_LEN {
                    return Err(ReplyError::LineTooLong {
                        limit: MAX_LINE_LEN,
                    });
                }
                if pos + rest.len() > MAX_REPLY_LEN {
                    return Err(ReplyError::ReplyTooLong {
                        limit: MAX_REPLY_LEN,
                    });
                }
                return Ok(None);
            };
            let raw = &rest[..nl];
            let line = raw.strip_suffix(b"\r").unwrap_or(raw);
            if line.len() > MAX_LINE_LEN {
                return Err(ReplyError::LineTooLong {
                    limit: MAX_LINE_LEN,
                });
            }
            pos += nl + 1;
            if pos > MAX_REPLY_LEN {
                return Err(ReplyError::ReplyTooLong {
                    limit: MAX_REPLY_LEN,
                });
            }
            let expected = reply.as_ref().map(|r| r.code);
            let (code, last) = check_prefix(line, expected, true)?;
            // Text starts after "DDD " / "DDD-"; `250` alone has none.
            let text = String::from_utf8_lossy(line.get(4..).unwrap_or(b""));
            let r = reply.get_or_insert_with(|| Reply {
                code,
                enhanced: None,
                lines: Vec::new(),
            });
            r.push_line(&text);
            if last {
                return Ok(reply.map(|r| (r, pos)));
            }
        }
    }
}

/// Checks the code and separator of a line, which may be incomplete (no LF
/// yet). Returns the code and whether this is the last line of the reply.
fn check_prefix(
    line: &[u8],
    expected: Option<u16>,
    complete: bool,
) -> Result<(u16, bool), ReplyError> {
    let snippet = || {
        let end = line.len().min(80);
        String::from_utf8_lossy(&line[..end]).into_owned()
    };
    for (i, &b) in line.iter().take(3).enumerate() {
        let ok = if i == 0 {
            (b'2'..=b'5').contains(&b)
        } else {
            b.is_ascii_digit()
        };
        if !ok {
            return Err(ReplyError::InvalidCode { line: snippet() });
        }
    }
    if line.len() < 3 {
        return if complete {
            Err(ReplyError::InvalidCode { line: snippet() })
        } else {
            Ok((0, false))
        };
    }
    let code = line[..3]
        .iter()
        .fold(0u16, |acc, c| acc * 10 + u16::from(c - b'0'));
    if let Some(expected) = expected
        && expected != code
    {
        return Err(ReplyError::MismatchedCode {
            expected,
            found: code,
        });
    }
    match line.get(3) {
        None | Some(b' ') => Ok((code, true)),
        // Only seen on an incomplete line whose LF has not arrived yet.
        Some(b'\r') if line.len() == 4 => Ok((code, true)),
        Some(b'-') => Ok((code, false)),
        Some(_) => Err(ReplyError::InvalidSeparator { line: snippet() }),
    }
}

#[cfg(test)]
mod tests;
