//! Message body encoding: dot-stuffing for DATA and line-end normalisation
//! for BDAT, both streaming.
//!
//! RFC 5321 §2.3.8 forbids bare CR and bare LF in the body; both are turned
//! into CRLF here. That is also the defence against SMTP smuggling: a body
//! holding `\n.\n`, `\r.\r` or `\n.\r\n` leaves as `\r\n..\r\n`, so no
//! receiver, however lenient about line ends, sees an early end of data.

/// Streaming CRLF normaliser: bare CR and bare LF become CRLF.
///
/// A CR at the end of one chunk is held until the next chunk shows whether
/// an LF follows, so the output does not depend on where chunks are split.
#[derive(Clone, Debug, Default)]
pub struct CrlfNormalizer {
    pending_cr: bool,
    at_line_start: bool,
    started: bool,
}

impl CrlfNormalizer {
    /// A normaliser at the start of a body.
    pub fn new() -> CrlfNormalizer {
        CrlfNormalizer::default()
    }

    /// Normalises `chunk` into `out`.
    pub fn normalize(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.run(chunk, out, false);
    }

    /// Flushes a held CR (as CRLF).
    pub fn finish(mut self, out: &mut Vec<u8>) {
        self.flush(out);
    }

    /// Ends a message: flushes a held CR, and gives a last line that lacks
    /// its line end CRLF. A message sent by BDAT ends as one sent by DATA,
    /// whose terminator supplies that CRLF (see `server::data`).
    pub fn finish_message(mut self, out: &mut Vec<u8>) {
        let needs_crlf = !self.ends_with_line_end();
        self.flush(out);
        if needs_crlf {
            out.extend_from_slice(b"\r\n");
        }
    }

    fn flush(&mut self, out: &mut Vec<u8>) {
        if self.pending_cr {
            out.extend_from_slice(b"\r\n");
            self.pending_cr = false;
            self.at_line_start = true;
        }
    }

    /// True when everything written so far ends with CRLF (or nothing was
    /// written); a held CR counts, since it will become CRLF.
    fn ends_with_line_end(&self) -> bool {
        !self.started || self.at_line_start || self.pending_cr
    }

    /// The shared loop: normalises and, with `stuff`, doubles a `.` that
    /// starts a line (RFC 5321 §4.5.2).
    fn run(&mut self, chunk: &[u8], out: &mut Vec<u8>, stuff: bool) {
        if !self.started {
            self.started = true;
            self.at_line_start = true;
        }
        out.reserve(chunk.len() + chunk.len() / 64);
        let mut i = 0;
        while i < chunk.len() {
            if self.pending_cr {
                self.pending_cr = false;
                out.extend_from_slice(b"\r\n");
                self.at_line_start = true;
                if chunk[i] == b'\n' {
                    i += 1;
                    continue;
                }
            }
            match chunk[i] {
                b'\r' => {
                    self.pending_cr = true;
                    i += 1;
                }
                b'\n' => {
                    out.extend_from_slice(b"\r\n");
                    self.at_line_start = true;
                    i += 1;
                }
                _ => {
                    if stuff && self.at_line_start && chunk[i] == b'.' {
                        out.push(b'.');
                    }
                    self.at_line_start = false;
                    // Copy the run up to the next line-end byte in one go.
                    let end = chunk[i..]
                        .iter()
                        .position(|&b| b == b'\r' || b == b'\n')
                        .map_or(chunk.len(), |p| i + p);
                    out.extend_from_slice(&chunk[i..end]);
                    i = end;
                }
            }
        }
    }
}

/// Normalises a whole body at once (see [`CrlfNormalizer`]).
pub fn normalize_crlf(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    let mut n = CrlfNormalizer::new();
    n.normalize(body, &mut out);
    n.finish(&mut out);
    out
}

/// A whole message as DATA and BDAT carry it: bare CR and LF as CRLF, and
/// CRLF after a last line that lacks one (before dot-stuffing).
pub fn canonical_message(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 2);
    let mut n = CrlfNormalizer::new();
    n.normalize(body, &mut out);
    n.finish_message(&mut out);
    out
}

/// Streaming DATA encoder: normalises line ends, dot-stuffs, and ends the
/// body with `.\r\n` (after a CRLF if the body lacks a final one).
#[derive(Clone, Debug, Default)]
pub struct DotStuffer {
    inner: CrlfNormalizer,
}

impl DotStuffer {
    /// An encoder at the start of a body.
    pub fn new() -> DotStuffer {
        DotStuffer::default()
    }

    /// Encodes `chunk` into `out`.
    pub fn encode(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        self.inner.run(chunk, out, true);
    }

    /// Writes the end of the body and the terminating `.\r\n`.
    pub fn finish(self, out: &mut Vec<u8>) {
        self.inner.finish_message(out);
        out.extend_from_slice(b".\r\n");
    }
}

/// Reverses dot-stuffing, for tests and for checking what a server would
/// store: reads CRLF-separated lines up to a line holding only `.`, drops
/// one leading `.` from every other line, and returns the content with its
/// CRLFs. Without a terminator line, everything is returned.
pub fn unstuff(wire: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(wire.len());
    let mut rest = wire;
    while !rest.is_empty() {
        let (line, next) = match rest.windows(2).position(|w| w == b"\r\n") {
            Some(p) => (&rest[..p + 2], &rest[p + 2..]),
            None => (rest, &rest[rest.len()..]),
        };
        if line == b".\r\n" {
            break;
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        rest = next;
    }
    out
}

#[cfg(test)]
mod tests;
