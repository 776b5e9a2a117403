//! [`Body`]: the bytes of a message as they will be sent, held in memory or
//! read from files while they are sent, in bounded pieces.
//!
//! A 30 MB attachment is not read into memory: the body keeps the open file
//! and its size, and the transport asks for one piece at a time ([`Reader`]),
//! base64-encoded on the way. The size (for SIZE=) is known in advance:
//! base64 of `n` bytes in 76-character lines has an exact length.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blocking::unblock;
use crate::error::{Error, ErrorKind, Result};

/// How much of a file one piece holds: 4096 base64 lines' worth (57 bytes
/// each), about 230 KiB, or as much raw.
const PIECE: u64 = 57 * 4096;

/// The bytes of a message, from its first header to the end of its body,
/// before dot-stuffing. Cheap to clone: files are shared, not copied.
#[derive(Clone, Debug)]
pub struct Body {
    parts: Vec<Part>,
    len: u64,
    eight_bit: bool,
    ends: LineEnds,
}

/// What the SMTP client adds to a body as it sends it (postie_proto's
/// `CrlfNormalizer` and `DotStuffer`): CRLF for each bare CR and bare LF,
/// and CRLF after a last line that lacks one. Counted as parts are added,
/// so [`Body::wire_len`] is exact before anything is sent.
#[derive(Clone, Debug, Default)]
struct LineEnds {
    /// One octet per bare CR or LF seen so far.
    extra: u64,
    last: Option<u8>,
}

impl LineEnds {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match (self.last, b) {
                (Some(b'\r'), b'\n') => {}
                (Some(b'\r'), _) => self.extra += 1,
                (_, b'\n') => self.extra += 1,
                _ => {}
            }
            self.last = Some(b);
        }
    }

    /// Octets added to the whole body.
    fn total(&self) -> u64 {
        self.extra
            + match self.last {
                None | Some(b'\n') => 0,
                Some(b'\r') => 1,
                Some(_) => 2,
            }
    }
}

#[derive(Clone, Debug)]
enum Part {
    /// Bytes in memory.
    Bytes(Arc<[u8]>),
    /// `len` bytes of a file from `offset`, sent as they are.
    File(Source, u64, u64),
    /// A whole file, base64-encoded in 76-character lines (CRLF between
    /// lines, none after the last: the MIME part's own CRLF follows).
    Base64(Source, u64),
}

/// An open file and the path it was opened as (for messages).
#[derive(Clone, Debug)]
struct Source {
    file: Arc<File>,
    path: PathBuf,
}

impl Body {
    /// A body held in memory.
    pub fn from_bytes(bytes: Vec<u8>) -> Body {
        let eight_bit = !bytes.is_ascii();
        Body {
            len: bytes.len() as u64,
            ends: {
                let mut e = LineEnds::default();
                e.feed(&bytes);
                e
            },
            parts: vec![Part::Bytes(bytes.into())],
            eight_bit,
        }
    }

    /// An empty body, to append parts to.
    pub(crate) fn empty() -> Body {
        Body {
            parts: Vec::new(),
            len: 0,
            eight_bit: false,
            ends: LineEnds::default(),
        }
    }

    /// Append bytes in memory.
    pub(crate) fn push_bytes(&mut self, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        self.eight_bit |= !bytes.is_ascii();
        self.len += bytes.len() as u64;
        self.ends.feed(&bytes);
        self.parts.push(Part::Bytes(bytes.into()));
    }

    /// Append `len` bytes of `file` from `offset`, sent as they are;
    /// `scan` is what [`scan`] found in them.
    pub(crate) fn push_file(
        &mut self,
        file: Arc<File>,
        path: &Path,
        offset: u64,
        len: u64,
        scan: Scan,
    ) {
        self.eight_bit |= scan.eight_bit;
        self.len += len;
        self.ends.extra += scan.ends.extra;
        if scan.ends.last.is_some() {
            self.ends.last = scan.ends.last;
        }
        let src = Source {
            file,
            path: path.to_path_buf(),
        };
        self.parts.push(Part::File(src, offset, len));
    }

    /// Append the base64 encoding of the whole of `file` (`len` bytes).
    pub(crate) fn push_base64(&mut self, file: Arc<File>, path: &Path, len: u64) {
        self.len += base64_len(len);
        // CRLF-separated lines, the last without one.
        if len > 0 {
            self.ends.last = Some(b'A');
        }
        let src = Source {
            file,
            path: path.to_path_buf(),
        };
        self.parts.push(Part::Base64(src, len));
    }

    /// A file's bytes, sent as they are (a spooled message, a raw message
    /// given by path). `eight_bit`: whether they hold anything beyond 7-bit
    /// ASCII, when the caller knows, for a file known to hold CRLF lines
    /// only, ending with CRLF (the outbox stores messages so); `None` reads
    /// the file to find out both (a blocking read: call it where blocking is
    /// allowed).
    pub fn from_file(path: &Path, eight_bit: Option<bool>) -> Result<Body> {
        let file = File::open(path).map_err(|e| io_error(path, "open", e))?;
        let len = file
            .metadata()
            .map_err(|e| io_error(path, "read", e))?
            .len();
        let file = Arc::new(file);
        let scan = match eight_bit {
            Some(eight_bit) => Scan {
                eight_bit,
                ends: LineEnds::default(),
            },
            None => scan(&file, path, 0, len)?,
        };
        let mut body = Body::empty();
        body.push_file(file, path, 0, len, scan);
        Ok(body)
    }

    /// Size in bytes, as the body holds them.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The message's size as SMTP carries it (RFC 1870's SIZE=): every bare
    /// CR and LF as CRLF, a last line given its CRLF, before dot-stuffing.
    /// The same by DATA and BDAT.
    pub fn wire_len(&self) -> u64 {
        self.len + self.ends.total()
    }

    /// True when the body has no byte at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the body holds anything beyond 7-bit ASCII (BODY=8BITMIME).
    pub fn is_8bit(&self) -> bool {
        self.eight_bit
    }

    /// The bytes, when the whole body is in memory.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self.parts.as_slice() {
            [] => Some(&[]),
            [Part::Bytes(b)] => Some(b),
            _ => None,
        }
    }

    /// The first `max` bytes at most (to read headers), without reading
    /// files beyond them. A blocking read.
    pub fn head(&self, max: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut r = Reader::new(self.clone());
        while out.len() < max {
            match r.next_piece_blocking()? {
                Some(p) => out.extend_from_slice(&p),
                None => break,
            }
        }
        out.truncate(max);
        Ok(out)
    }

    /// All the bytes in one buffer: for small messages and tests. A
    /// blocking read.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        self.head(usize::MAX)
    }

    /// A reader that hands out the body piece by piece.
    pub fn reader(&self) -> Reader {
        Reader::new(self.clone())
    }
}

/// Reads a [`Body`] in pieces of at most a few hundred KiB; files are read on
/// a blocking thread ([`crate::blocking`]).
#[derive(Debug)]
pub struct Reader {
    body: Body,
    /// Index of the part being read.
    part: usize,
    /// Bytes of that part already handed out (for base64: source bytes).
    done: u64,
    /// Total bytes handed out, to check against the announced size.
    sent: u64,
}

/// What the next piece needs.
enum Step {
    /// The end of the body.
    End,
    /// The current part is finished: go to the next.
    NextPart,
    /// These bytes, from memory.
    Bytes(Vec<u8>),
    /// A read of `len` bytes at `offset`; `base64`: encode them.
    Read {
        src: Source,
        offset: u64,
        len: u64,
        base64: bool,
    },
}

impl Reader {
    fn new(body: Body) -> Reader {
        Reader {
            body,
            part: 0,
            done: 0,
            sent: 0,
        }
    }

    /// The next piece; `None` at the end. Files are read on a blocking
    /// thread.
    pub async fn next_piece(&mut self) -> Result<Option<Vec<u8>>> {
        match self.next_step()? {
            Step::Read {
                src,
                offset,
                len,
                base64,
            } => {
                let raw = unblock(move || read_exact_at(&src, offset, len)).await?;
                self.finish_read(raw, base64).map(Some)
            }
            other => Ok(self.take_bytes(other)),
        }
    }

    /// [`Reader::next_piece`], reading files on the calling thread.
    pub fn next_piece_blocking(&mut self) -> Result<Option<Vec<u8>>> {
        match self.next_step()? {
            Step::Read {
                src,
                offset,
                len,
                base64,
            } => {
                let raw = read_exact_at(&src, offset, len)?;
                self.finish_read(raw, base64).map(Some)
            }
            other => Ok(self.take_bytes(other)),
        }
    }

    /// The next step that yields a piece or ends the body.
    fn next_step(&mut self) -> Result<Step> {
        loop {
            match self.step()? {
                Step::NextPart => continue,
                other => return Ok(other),
            }
        }
    }

    /// A piece from memory, or the end.
    fn take_bytes(&mut self, step: Step) -> Option<Vec<u8>> {
        match step {
            Step::Bytes(b) => Some(self.advance(b)),
            _ => None,
        }
    }

    /// A piece read from a file, base64-encoded when the part asks for it.
    fn finish_read(&mut self, raw: Vec<u8>, base64: bool) -> Result<Vec<u8>> {
        let piece = if base64 { self.encode(raw)? } else { raw };
        Ok(self.advance(piece))
    }

    /// Decide the next piece (moving past finished parts).
    fn step(&mut self) -> Result<Step> {
        let Some(part) = self.body.parts.get(self.part) else {
            if self.sent != self.body.len {
                return Err(Error::new(
                    ErrorKind::Io,
                    format!(
                        "the message was {} bytes when it was prepared but {} when it was sent: a file it comes from changed meanwhile",
                        self.body.len, self.sent
                    ),
                ));
            }
            return Ok(Step::End);
        };
        let left = match part {
            Part::Bytes(b) => b.len() as u64 - self.done,
            Part::File(_, _, len) | Part::Base64(_, len) => len - self.done,
        };
        if left == 0 {
            self.part += 1;
            self.done = 0;
            return Ok(Step::NextPart);
        }
        let want = left.min(PIECE);
        Ok(match part {
            Part::Bytes(b) => {
                let start = self.done as usize;
                Step::Bytes(b[start..start + want as usize].to_vec())
            }
            Part::File(src, offset, _) => Step::Read {
                src: src.clone(),
                offset: offset + self.done,
                len: want,
                base64: false,
            },
            Part::Base64(src, _) => Step::Read {
                src: src.clone(),
                offset: self.done,
                len: want,
                base64: true,
            },
        })
    }

    /// Base64 lines of one piece of a file: CRLF between lines, also between
    /// this piece's first line and the previous piece's last.
    fn encode(&self, raw: Vec<u8>) -> Result<Vec<u8>> {
        let mut text = String::with_capacity(base64_len(raw.len() as u64) as usize + 2);
        if self.done > 0 {
            text.push_str("\r\n");
        }
        email_encoding::body::base64::encode(&raw, &mut text)
            .map_err(|_| Error::new(ErrorKind::Io, "base64 encoding failed"))?;
        Ok(text.into_bytes())
    }

    /// Count a piece as handed out. `self.done` counts source bytes; for
    /// base64 the piece is longer than what was read.
    fn advance(&mut self, piece: Vec<u8>) -> Vec<u8> {
        let consumed = match self.body.parts.get(self.part) {
            Some(Part::Base64(_, len)) => (len - self.done).min(PIECE),
            _ => piece.len() as u64,
        };
        self.done += consumed;
        self.sent += piece.len() as u64;
        piece
    }
}

/// The length of the base64 encoding of `n` bytes in 76-character lines
/// separated by CRLF.
fn base64_len(n: u64) -> u64 {
    let chars = n.div_ceil(3) * 4;
    let lines = chars.div_ceil(76);
    chars + 2 * lines.saturating_sub(1)
}

fn read_exact_at(src: &Source, offset: u64, len: u64) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; len as usize];
    let mut filled = 0;
    while filled < buf.len() {
        let n = read_at(&src.file, &mut buf[filled..], offset + filled as u64)
            .map_err(|e| io_error(&src.path, "read", e))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Io,
                format!(
                    "{} became shorter while the message was being sent",
                    src.path.display()
                ),
            ));
        }
        filled += n;
    }
    Ok(buf)
}

/// Positional read: pieces of one file can be read by several readers.
#[cfg(unix)]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}

#[cfg(windows)]
pub(super) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, offset)
}

/// `len` bytes of `file` from `offset`.
pub(super) fn read_range(file: &Arc<File>, path: &Path, offset: u64, len: u64) -> Result<Vec<u8>> {
    let src = Source {
        file: file.clone(),
        path: path.to_path_buf(),
    };
    read_exact_at(&src, offset, len)
}

/// Whether `len` bytes of `file` from `offset` hold anything beyond 7-bit
/// ASCII, read in bounded pieces.
/// What reading a file's bytes found: 8-bit octets, and its line ends.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scan {
    pub(crate) eight_bit: bool,
    ends: LineEnds,
}

/// Read `len` bytes of `file` from `offset` once, in pieces. A blocking read.
pub(crate) fn scan(file: &Arc<File>, path: &Path, offset: u64, len: u64) -> Result<Scan> {
    let src = Source {
        file: file.clone(),
        path: path.to_path_buf(),
    };
    let mut found = Scan::default();
    let mut at = 0;
    while at < len {
        let n = (len - at).min(PIECE);
        let piece = read_exact_at(&src, offset + at, n)?;
        found.eight_bit |= !piece.is_ascii();
        found.ends.feed(&piece);
        at += n;
    }
    Ok(found)
}

fn io_error(path: &Path, what: &str, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Io,
        format!("cannot {what} {}: {e}", path.display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::File::create(&path)
            .unwrap()
            .write_all(bytes)
            .unwrap();
        (dir, path)
    }

    #[test]
    fn base64_parts_match_the_one_shot_encoding_and_its_announced_length() {
        for n in [
            0usize,
            1,
            2,
            3,
            56,
            57,
            58,
            114,
            1000,
            PIECE as usize,
            PIECE as usize + 7,
            3 * PIECE as usize + 1,
        ] {
            let data: Vec<u8> = (0..n).map(|i| (i * 7 % 256) as u8).collect();
            let (_d, path) = file_with(&data);
            let file = Arc::new(File::open(&path).unwrap());
            let mut body = Body::empty();
            body.push_bytes(b"head\r\n".to_vec());
            body.push_base64(file, &path, n as u64);
            body.push_bytes(b"\r\ntail".to_vec());
            let got = body.to_vec().unwrap();
            let mut want = b"head\r\n".to_vec();
            let mut enc = String::new();
            email_encoding::body::base64::encode(&data, &mut enc).unwrap();
            want.extend_from_slice(enc.as_bytes());
            want.extend_from_slice(b"\r\ntail");
            assert_eq!(got, want, "n = {n}");
            assert_eq!(body.len(), want.len() as u64, "n = {n}");
            assert!(!body.is_8bit());
        }
    }

    #[test]
    fn file_parts_are_read_in_bounded_pieces_and_checked_for_8bit() {
        let mut data = vec![b'a'; 3 * PIECE as usize + 5];
        let (_d, path) = file_with(&data);
        let body = Body::from_file(&path, None).unwrap();
        assert!(!body.is_8bit());
        let mut r = body.reader();
        let mut total = Vec::new();
        while let Some(p) = r.next_piece_blocking().unwrap() {
            assert!(p.len() as u64 <= PIECE);
            total.extend_from_slice(&p);
        }
        assert_eq!(total, data);
        data[PIECE as usize * 2 + 1] = 0xC3;
        let (_d2, path2) = file_with(&data);
        assert!(Body::from_file(&path2, None).unwrap().is_8bit());
    }

    #[test]
    fn a_file_that_shrinks_is_an_error_not_a_short_message() {
        let (_d, path) = file_with(&[b'x'; 1000]);
        let body = Body::from_file(&path, Some(false)).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(10)
            .unwrap();
        let err = body.to_vec().unwrap_err();
        assert!(err.to_string().contains("shorter"), "{err}");
    }

    #[tokio::test]
    async fn async_pieces_are_the_same_bytes() {
        let data: Vec<u8> = (0..PIECE as usize * 2 + 9)
            .map(|i| (i % 251) as u8)
            .collect();
        let (_d, path) = file_with(&data);
        let body = Body::from_file(&path, Some(true)).unwrap();
        let mut r = body.reader();
        let mut got = Vec::new();
        while let Some(p) = r.next_piece().await.unwrap() {
            got.extend_from_slice(&p);
        }
        assert_eq!(got, data);
    }

    /// SIZE= is what the client sends (postie_proto's
    /// normalization and final CRLF), for bodies in memory and in files,
    /// whatever the piece boundaries.
    #[test]
    fn wire_len_is_the_length_the_client_sends() {
        let cases: &[&[u8]] = &[
            b"",
            b"a\r\nb\r\n",
            b"a\nb\n",
            b"a\r\nends with a dot\r\n.",
            b"bare\rcr\r",
            b"mixed\n\r\n\rend",
        ];
        for &c in cases {
            let want = postie_proto::data::canonical_message(c).len() as u64;
            assert_eq!(Body::from_bytes(c.to_vec()).wire_len(), want, "{c:?}");
            let (_d, path) = file_with(c);
            assert_eq!(
                Body::from_file(&path, None).unwrap().wire_len(),
                want,
                "{c:?}"
            );
        }
        // a CRLF split between two file pieces counts once
        let mut big = vec![b'x'; PIECE as usize - 1];
        big.extend_from_slice(b"\r\nlast");
        let (_d, path) = file_with(&big);
        assert_eq!(
            Body::from_file(&path, None).unwrap().wire_len(),
            big.len() as u64 + 2
        );
    }
}
