//! Message bodies: DATA (unstuffing, the end-of-data line) and BDAT
//! chunks, both streamed, with the checks that refuse a message.
//!
//! One rule for what a message is, whichever command carries it:
//!
//! - Only `CRLF.CRLF` ends DATA. `\n.\n`, `\n.\r\n`, `\r\n.\n` and `\r.\r`
//!   are content: a lenient next hop could otherwise read a second,
//!   smuggled message out of them (CVE-2023-51764 and friends).
//! - A bare CR refuses the message. A bare LF refuses it too, unless
//!   [`ServerConfig::normalize_bare_lf`] is set (the relay): then it is
//!   stored as CRLF, in DATA and BDAT alike, so what is stored has CRLF line
//!   ends only and no hop after this one can find an end of data in it.
//! - DATA's transparency (RFC 5321 §4.5.2) removes the first `.` of a line
//!   that starts with one; a line of a single `.` that does not end the data
//!   (it ends with a bare LF, or follows one) was not dot-stuffed by its
//!   client and is kept as `.`, as BDAT, which has no transparency, keeps it.
//! - A message whose last line lacks its line end (possible with BDAT only:
//!   DATA's terminator supplies it) gets CRLF, so DATA and BDAT store the
//!   same octets for the same message.

use super::command::chunk_received;
use super::session::{Pending, ServerSession, State};
use super::{BodyType, DATA_PIECE, DataRejection, DataSummary, Event, ServerConfig};
use crate::reply::Reply;

/// What is counted and checked in a body, whichever command carries it.
#[derive(Debug)]
struct BodyCheck {
    max_size: u64,
    max_line: usize,
    bytes: u64,
    eight_bit: bool,
    line_len: usize,
    problem: Option<DataRejection>,
    normalize_lf: bool,
}

impl BodyCheck {
    fn new(cfg: &ServerConfig) -> BodyCheck {
        BodyCheck {
            max_size: cfg.max_message_size,
            max_line: cfg.max_data_line,
            bytes: 0,
            eight_bit: false,
            line_len: 0,
            problem: None,
            normalize_lf: cfg.normalize_bare_lf,
        }
    }

    /// The first problem wins, so the verdict does not depend on how the
    /// input was split.
    fn fail(&mut self, p: DataRejection) {
        self.problem.get_or_insert(p);
    }

    /// One wire octet of the current line.
    fn wire_octet(&mut self) {
        self.line_len += 1;
        if self.line_len > self.max_line {
            self.fail(DataRejection::LineTooLong);
        }
    }

    fn line_end(&mut self) {
        self.line_len = 0;
    }

    /// One octet of content, kept in `out` while the message is still good.
    fn content(&mut self, b: u8, out: &mut Vec<u8>) {
        self.bytes += 1;
        if self.max_size > 0 && self.bytes > self.max_size {
            self.fail(DataRejection::TooLarge);
        }
        if b >= 0x80 {
            self.eight_bit = true;
        }
        if self.problem.is_none() {
            out.push(b);
        }
    }
}

/// Where the DATA reader is within a line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum At {
    /// After CRLF, or at the start of the data.
    LineStart,
    /// A `.` at the start of a line: stuffing, or the end of the data.
    Dot,
    /// `.` CR at the start of a line.
    DotCr,
    /// Inside a line.
    InLine,
    /// A CR inside a line; only LF makes it a line end.
    Cr,
}

/// The DATA content reader (RFC 5321 §4.1.1.4, §4.5.2).
#[derive(Debug)]
pub(super) struct DataReader {
    at: At,
    check: BodyCheck,
    /// The current line started after a normalized bare LF: a lone `.`
    /// line there is content, since only a real `CRLF.CRLF` ends the data.
    after_bare_lf: bool,
}

impl DataReader {
    pub(super) fn new(cfg: &ServerConfig) -> DataReader {
        DataReader {
            at: At::LineStart,
            check: BodyCheck::new(cfg),
            after_bare_lf: false,
        }
    }

    /// Reads `input`, unstuffed content into `out`. Returns the octets used
    /// and whether the end-of-data line was among them.
    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        for (i, &b) in input.iter().enumerate() {
            // RFC 5321 §4.5.3.1.6: the line limit does not count the dot
            // added for transparency.
            if !(self.at == At::LineStart && b == b'.') {
                self.check.wire_octet();
            }
            match self.at {
                At::LineStart if b == b'.' => self.at = At::Dot,
                At::Dot if b == b'\r' => self.at = At::DotCr,
                // `.` LF: a lone dot that does not end the data is content
                // (its client did not stuff it), normalized or refused as
                // any bare LF.
                At::Dot if b == b'\n' => {
                    self.check.content(b'.', out);
                    self.in_line(b, out);
                }
                // The leading dot of a stuffed line is dropped.
                At::LineStart | At::Dot | At::InLine => self.in_line(b, out),
                At::DotCr if b == b'\n' && self.after_bare_lf => {
                    // `LF . CRLF`: a lone dot after a bare LF, not the end.
                    self.check.content(b'.', out);
                    self.check.content(b'\r', out);
                    self.check.content(b'\n', out);
                    self.check.line_end();
                    self.at = At::LineStart;
                    self.after_bare_lf = false;
                }
                At::DotCr if b == b'\n' => return (i + 1, true),
                At::Cr if b == b'\n' => {
                    self.check.content(b'\r', out);
                    self.check.content(b'\n', out);
                    self.check.line_end();
                    self.at = At::LineStart;
                    self.after_bare_lf = false;
                }
                At::DotCr | At::Cr => {
                    self.check.fail(DataRejection::BareNewline);
                    self.check.content(b'\r', out);
                    self.in_line(b, out);
                }
            }
        }
        (input.len(), false)
    }

    fn in_line(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'\r' => self.at = At::Cr,
            b'\n' if self.check.normalize_lf => {
                self.check.content(b'\r', out);
                self.check.content(b'\n', out);
                self.check.line_end();
                self.at = At::LineStart;
                self.after_bare_lf = true;
            }
            b'\n' => {
                self.check.fail(DataRejection::BareNewline);
                self.check.content(b, out);
                self.check.line_end();
                self.at = At::InLine;
            }
            _ => {
                if b == 0 {
                    self.check.fail(DataRejection::Nul);
                }
                self.check.content(b, out);
                self.at = At::InLine;
            }
        }
    }
}

/// The state of a BDAT body across its chunks (RFC 3030).
#[derive(Debug)]
pub(super) struct ChunkBody {
    check: BodyCheck,
    /// BINARYMIME: octets are not checked for line ends, lines or NUL.
    binary: bool,
    declared: BodyType,
    /// The previous octet was a CR.
    cr: bool,
    /// Octets were stored since the last LF.
    line_open: bool,
}

impl ChunkBody {
    pub(super) fn new(cfg: &ServerConfig, declared: BodyType) -> ChunkBody {
        ChunkBody {
            check: BodyCheck::new(cfg),
            binary: declared == BodyType::Binary,
            declared,
            cr: false,
            line_open: false,
        }
    }

    fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &b in input {
            if !self.binary {
                self.check.wire_octet();
                if b == b'\n' && !self.cr && self.check.normalize_lf {
                    self.check.content(b'\r', out);
                } else if self.cr != (b == b'\n') {
                    self.check.fail(DataRejection::BareNewline);
                }
                if b == 0 {
                    self.check.fail(DataRejection::Nul);
                }
                if b == b'\n' {
                    self.check.line_end();
                }
                self.cr = b == b'\r';
                self.line_open = b != b'\n';
            }
            self.check.content(b, out);
        }
    }

    /// The last chunk ended: a CR at the very end is bare; a last line
    /// without its line end gets CRLF (as DATA's terminator gives it).
    fn finish(&mut self, out: &mut Vec<u8>) {
        if self.cr {
            self.check.fail(DataRejection::BareNewline);
        } else if self.line_open {
            self.check.content(b'\r', out);
            self.check.content(b'\n', out);
        }
    }
}

impl ServerSession {
    /// Reads DATA content; false when there is no input.
    pub(super) fn step_data(&mut self) -> bool {
        let State::ExpectDataLine(reader) = &mut self.state else {
            return false;
        };
        let input = &self.rx[self.rx_pos..];
        if input.is_empty() {
            return false;
        }
        let take = input.len().min(DATA_PIECE);
        let (used, done) = reader.feed(&input[..take], &mut self.piece);
        self.consume(used);
        self.maybe_flush_piece();
        if done {
            let State::ExpectDataLine(reader) =
                std::mem::replace(&mut self.state, State::ExpectCommand)
            else {
                unreachable!("checked above");
            };
            let declared = self.txn.as_ref().map(|t| t.body).unwrap_or_default();
            self.end_of_data(reader.check, declared);
        }
        true
    }

    /// Reads BDAT chunk octets; false when there is no input.
    pub(super) fn step_chunk(&mut self) -> bool {
        let State::ExpectChunk {
            remaining,
            size,
            last,
            refuse,
        } = &mut self.state
        else {
            return false;
        };
        let available = (self.rx.len() - self.rx_pos) as u64;
        let take = (*remaining).min(available).min(DATA_PIECE as u64);
        if take == 0 && *remaining > 0 {
            return false;
        }
        *remaining -= take;
        let (size, last, done, refused) = (*size, *last, *remaining == 0, refuse.is_some());
        let take = take as usize;
        if !refused && let Some(body) = self.txn.as_mut().and_then(|t| t.chunks.as_mut()) {
            body.feed(&self.rx[self.rx_pos..self.rx_pos + take], &mut self.piece);
        }
        self.consume(take);
        self.maybe_flush_piece();
        if !done {
            return true;
        }
        let State::ExpectChunk { refuse, .. } =
            std::mem::replace(&mut self.state, State::ExpectCommand)
        else {
            unreachable!("checked above");
        };
        if let Some(r) = refuse {
            self.reply(&r);
        } else if !last {
            self.reply(&chunk_received(size));
        } else if let Some(mut body) = self.txn.as_mut().and_then(|t| t.chunks.take()) {
            body.finish(&mut self.piece);
            self.end_of_data(body.check, body.declared);
        }
        true
    }

    /// The data is complete: refuse it, or ask the host.
    fn end_of_data(&mut self, check: BodyCheck, declared: BodyType) {
        self.flush_piece();
        let Some(problem) = check.problem else {
            self.events.push_back(Event::DataEnd(DataSummary {
                bytes: check.bytes,
                eight_bit: check.eight_bit,
                declared,
            }));
            self.state = State::ExpectDecision(Pending::DataEnd);
            return;
        };
        let replies = &self.cfg.replies;
        let r: Reply = match problem {
            DataRejection::BareNewline => replies.bare_newline.clone(),
            DataRejection::Nul => replies.nul_byte.clone(),
            DataRejection::LineTooLong => replies.line_too_long.clone(),
            DataRejection::TooLarge => replies.too_large.clone(),
        };
        self.reply(&r);
        self.txn = None;
        self.events.push_back(Event::DataRejected(problem));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &[u8]) -> (Vec<u8>, Option<usize>, Option<DataRejection>) {
        let mut r = DataReader::new(&ServerConfig::new("mx.example"));
        let mut out = Vec::new();
        let (used, done) = r.feed(input, &mut out);
        (out, done.then_some(used), r.check.problem)
    }

    #[test]
    fn unstuffing_and_the_end_of_data_table() {
        let table: &[(&[u8], &[u8], Option<usize>)] = &[
            (b".\r\n", b"", Some(3)),
            (b"a\r\n.\r\n", b"a\r\n", Some(6)),
            (b"..\r\n.\r\n", b".\r\n", Some(7)),
            (b"..a\r\n.\r\nMAIL", b".a\r\n", Some(8)),
            (b".a\r\n", b"a\r\n", None),
            (b"a.\r\n.b\r\n", b"a.\r\nb\r\n", None),
            (b"\r\n\r\n.\r\n", b"\r\n\r\n", Some(7)),
        ];
        for (input, out, end) in table {
            let (o, e, p) = read(input);
            assert_eq!((o.as_slice(), e, p), (*out, *end, None), "{input:?}");
        }
    }

    #[test]
    fn lenient_line_ends_never_end_the_data() {
        for input in [
            &b"a\n.\nb"[..],
            b"a\n.\r\nb",
            b"a\r\n.\nb",
            b"a\r.\rb",
            b"a\r\n.\rb",
            b".\n",
            b".\r.\r\n",
        ] {
            let (_, end, problem) = read(input);
            assert_eq!(end, None, "{input:?}");
            assert_eq!(problem, Some(DataRejection::BareNewline), "{input:?}");
        }
    }

    #[test]
    fn normalized_bare_lf_is_stored_as_crlf_and_still_never_ends_the_data() {
        let mut cfg = ServerConfig::new("mx.example");
        cfg.normalize_bare_lf = true;
        let table: &[(&[u8], &[u8], Option<usize>)] = &[
            // smtplib.sendmail(bytes): LF lines, dot-stuffed after LF
            (b"a\nb\r\n.\r\n", b"a\r\nb\r\n", Some(8)),
            (b"a\n..x\n.\r\n", b"a\r\n.x\r\n.\r\n", None),
            (b"a\n..\n.\r\n", b"a\r\n.\r\n.\r\n", None),
            (b"a\n.\r\n.\r\n", b"a\r\n.\r\n", Some(8)),
            // the smuggling shapes stay content, their dot kept
            (
                b"a\n.\nMAIL FROM:<x@y>\r\n",
                b"a\r\n.\r\nMAIL FROM:<x@y>\r\n",
                None,
            ),
            (b"a\r\n.\nb", b"a\r\n.\r\nb", None),
        ];
        for (input, want, end) in table {
            let mut r = DataReader::new(&cfg);
            let mut out = Vec::new();
            let (used, done) = r.feed(input, &mut out);
            assert_eq!(r.check.problem, None, "{input:?}");
            assert_eq!(out.as_slice(), *want, "{input:?}");
            if let Some(e) = end {
                assert!(done && used == *e, "{input:?}");
            } else {
                assert!(!done, "{input:?}");
            }
        }
        // a bare CR is still refused
        let mut r = DataReader::new(&cfg);
        r.feed(b"a\rb\r\n", &mut Vec::new());
        assert_eq!(r.check.problem, Some(DataRejection::BareNewline));
    }

    /// The same message stores the same octets whether
    /// it came by DATA (dot-stuffed as smtplib does, at every line start
    /// after CRLF or LF; or not stuffed at all) or by BDAT, bare LFs
    /// normalized, a missing last line end added.
    #[test]
    fn data_and_bdat_store_the_same_octets() {
        let mut cfg = ServerConfig::new("mx.example");
        cfg.normalize_bare_lf = true;
        let messages: &[&[u8]] = &[
            b"Subject: a\r\n\r\nplain\r\n",
            b"Subject: a\n\nbare LF lines\n.\nafter a lone dot\r\n",
            b"Subject: a\r\n\r\n..two dots\r\n.one\r\n.\r\nend",
            b"Subject: a\n\nno final line end",
            b"Subject: a\n\nsmuggle\n.\nMAIL FROM:<x@y>\r\n",
        ];
        for m in messages {
            // DATA as smtplib sends it: a dot at every line start doubled,
            // CRLF added unless the message ends with one.
            let mut wire = Vec::new();
            let mut line_start = true;
            for &b in *m {
                if line_start && b == b'.' {
                    wire.push(b'.');
                }
                wire.push(b);
                line_start = b == b'\n';
            }
            if !m.ends_with(b"\r\n") {
                wire.extend_from_slice(b"\r\n");
            }
            wire.extend_from_slice(b".\r\n");
            let mut r = DataReader::new(&cfg);
            let mut by_data = Vec::new();
            let (used, done) = r.feed(&wire, &mut by_data);
            assert!(done && used == wire.len(), "{m:?}");
            assert_eq!(r.check.problem, None, "{m:?}");

            let mut c = ChunkBody::new(&cfg, BodyType::SevenBit);
            let mut by_bdat = Vec::new();
            let (a, b) = m.split_at(m.len() / 2);
            c.feed(a, &mut by_bdat);
            c.feed(b, &mut by_bdat);
            c.finish(&mut by_bdat);
            assert_eq!(c.check.problem, None, "{m:?}");
            assert_eq!(
                String::from_utf8_lossy(&by_data),
                String::from_utf8_lossy(&by_bdat),
                "{m:?}"
            );
            let bare_lf = by_data
                .iter()
                .enumerate()
                .any(|(i, &b)| b == b'\n' && (i == 0 || by_data[i - 1] != b'\r'));
            assert!(by_data.ends_with(b"\r\n") && !bare_lf, "{m:?}");
        }
        // A client that does not stuff a lone dot after a bare LF: kept too.
        for (wire, want) in [
            (&b"a\n.\nb\r\n.\r\n"[..], &b"a\r\n.\r\nb\r\n"[..]),
            (b"a\n.\r\nb\r\n.\r\n", b"a\r\n.\r\nb\r\n"),
        ] {
            let mut r = DataReader::new(&cfg);
            let mut out = Vec::new();
            assert!(r.feed(wire, &mut out).1);
            assert_eq!(out, want);
        }
    }
}
