//! The reference: a client that spends exactly one round trip per message, the least SMTP
//! allows on a reused connection. No error recovery, no checks beyond the reply codes; it exists
//! to say how fast a message can go through this server at this latency.
//!
//! - With CHUNKING (RFC 3030): `MAIL`, `RCPT`, `BDAT n LAST` and the body in one write, then the
//!   three replies.
//! - With PIPELINING only (RFC 2920): one message's body and `.` leave together with the next
//!   message's `MAIL`, `RCPT` and `DATA`; the replies to all four come back in one flight.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

use anyhow::{Context, bail};

use crate::Run;

struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
    chunking: bool,
}

impl Conn {
    fn open(addr: SocketAddr, use_chunking: bool) -> anyhow::Result<Conn> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        let mut c = Conn {
            w: s.try_clone()?,
            r: BufReader::new(s),
            chunking: false,
        };
        c.reply(2)?;
        c.w.write_all(b"EHLO bench.example.test\r\n")?;
        let ehlo = c.reply(2)?;
        let has = |k: &str| ehlo.iter().any(|l| l[4..].eq_ignore_ascii_case(k));
        if !has("PIPELINING") {
            bail!("the server does not offer PIPELINING");
        }
        c.chunking = use_chunking && has("CHUNKING");
        Ok(c)
    }

    /// Read one reply (all its lines) and check its first digit.
    fn reply(&mut self, class: u8) -> anyhow::Result<Vec<String>> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line)? == 0 {
                bail!("connection closed");
            }
            let line = line.trim_end().to_string();
            if line.len() < 4 {
                bail!("short reply line {line:?}");
            }
            let last = line.as_bytes()[3] == b' ';
            lines.push(line);
            if last {
                break;
            }
        }
        if lines[0].as_bytes()[0] != b'0' + class {
            bail!("expected {class}xx, got {:?}", lines);
        }
        Ok(lines)
    }

    fn replies(&mut self, classes: &[u8]) -> anyhow::Result<()> {
        for &c in classes {
            self.reply(c)?;
        }
        Ok(())
    }
}

/// Envelope and message as wire bytes, built once.
pub struct Wire {
    envelope: Vec<u8>,
    bdat: Vec<u8>,
    dotted: Vec<u8>,
}

impl Wire {
    pub fn new(from: &str, to: &str, msg: &[u8]) -> Wire {
        let envelope = format!("MAIL FROM:<{from}>\r\nRCPT TO:<{to}>\r\n").into_bytes();
        let mut bdat = envelope.clone();
        bdat.extend_from_slice(format!("BDAT {} LAST\r\n", msg.len()).as_bytes());
        bdat.extend_from_slice(msg);
        let mut dotted = Vec::with_capacity(msg.len() + 64);
        for line in msg.split_inclusive(|&b| b == b'\n') {
            if line.first() == Some(&b'.') {
                dotted.push(b'.');
            }
            dotted.extend_from_slice(line);
        }
        if !dotted.ends_with(b"\r\n") {
            dotted.extend_from_slice(b"\r\n");
        }
        dotted.extend_from_slice(b".\r\n");
        Wire {
            envelope,
            bdat,
            dotted,
        }
    }
}

fn send_many(c: &mut Conn, wire: &Wire, n: usize) -> anyhow::Result<()> {
    if n == 0 {
        return Ok(());
    }
    if c.chunking {
        for _ in 0..n {
            c.w.write_all(&wire.bdat)?;
            c.replies(&[2, 2, 2])?;
        }
        return Ok(());
    }
    let mut start = wire.envelope.clone();
    start.extend_from_slice(b"DATA\r\n");
    c.w.write_all(&start)?;
    c.replies(&[2, 2, 3])?;
    let mut body_and_next = wire.dotted.clone();
    body_and_next.extend_from_slice(&start);
    for i in 0..n {
        if i + 1 < n {
            c.w.write_all(&body_and_next)?;
            c.replies(&[2, 2, 2, 3])?;
        } else {
            c.w.write_all(&wire.dotted)?;
            c.replies(&[2])?;
        }
    }
    Ok(())
}

/// `conns` connections send `count` messages between them; one untimed message per connection
/// first, so connecting and the server's first-message costs stay out of the figure, and the
/// clock stops at the last message's reply (QUIT is not timed). Every client is timed this way.
pub fn run(
    addr: SocketAddr,
    conns: usize,
    count: usize,
    chunking: bool,
    wire: Wire,
) -> anyhow::Result<Run> {
    let wire = Arc::new(wire);
    let barrier = Arc::new(Barrier::new(conns + 1));
    let mut handles = Vec::new();
    for i in 0..conns {
        let share = count / conns + usize::from(i < count % conns);
        let (wire, barrier) = (wire.clone(), barrier.clone());
        handles.push(thread::spawn(move || -> anyhow::Result<Instant> {
            let opened = Conn::open(addr, chunking).and_then(|mut c| {
                send_many(&mut c, &wire, 1)?;
                Ok(c)
            });
            barrier.wait();
            let mut c = opened?;
            send_many(&mut c, &wire, share)?;
            let done = Instant::now();
            c.w.write_all(b"QUIT\r\n")?;
            let _ = c.reply(2);
            Ok(done)
        }));
    }
    barrier.wait();
    let t = Instant::now();
    let mut end = t;
    for h in handles {
        end = end.max(h.join().expect("sender thread").context("limit client")?);
    }
    Ok(Run::new(count, end - t))
}
