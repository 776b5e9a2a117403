//! The latency proxy: a TCP forwarder that holds every chunk of bytes for half the added round
//! trip in each direction, so a request and its reply take `rtt` longer than on loopback.
//!
//! Threads and blocking sockets rather than tokio: `thread::sleep` wakes within tens of
//! microseconds, where tokio's timer rounds up to the next millisecond, which would add up to
//! 2 ms per round trip at "0 ms". Four threads per connection are fine for the few connections a
//! benchmark opens. Every chunk keeps its order and its own deadline (arrival + delay), so
//! pipelined bytes are not held longer than the ones before them: no bandwidth limit, only delay.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// Counts occurrences of a byte pattern in the client-to-server stream (the OAuth bench counts
/// `POST /token` requests this way).
#[derive(Clone)]
pub struct Counter {
    pub pattern: Vec<u8>,
    pub hits: Arc<AtomicU64>,
}

/// Accept on `listener` forever, forwarding each connection to `to` with `rtt` added per round trip.
pub fn serve(listener: TcpListener, to: SocketAddr, rtt: Duration, counter: Option<Counter>) {
    for client in listener.incoming() {
        let Ok(client) = client else { continue };
        let counter = counter.clone();
        thread::spawn(move || {
            if let Ok(server) = TcpStream::connect(to) {
                relay(client, server, rtt / 2, counter);
            }
        });
    }
}

/// Start [`serve`] on a free loopback port in a background thread; returns its address.
pub fn spawn(
    to: SocketAddr,
    rtt: Duration,
    counter: Option<Counter>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    thread::spawn(move || serve(listener, to, rtt, counter));
    Ok(addr)
}

fn relay(client: TcpStream, server: TcpStream, one_way: Duration, counter: Option<Counter>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let up = thread::spawn(move || direction(client, server, one_way, counter));
    direction(s2, c2, one_way, None);
    let _ = up.join();
}

/// One direction: a reader that stamps chunks and a writer that releases them at their deadline.
fn direction(mut from: TcpStream, to: TcpStream, delay: Duration, counter: Option<Counter>) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    let writer = thread::spawn(move || {
        let mut to = to;
        for (due, chunk) in rx {
            let now = Instant::now();
            if due > now {
                thread::sleep(due - now);
            }
            if to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
    let mut buf = vec![0u8; 64 * 1024];
    let mut tail: Vec<u8> = Vec::new();
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if let Some(c) = &counter {
                    count(c, &mut tail, &buf[..n]);
                }
                if tx
                    .send((Instant::now() + delay, buf[..n].to_vec()))
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(tx);
    let _ = writer.join();
}

/// Count `pattern` in `chunk`, including an occurrence split across the previous chunk.
fn count(c: &Counter, tail: &mut Vec<u8>, chunk: &[u8]) {
    let p = &c.pattern;
    tail.extend_from_slice(chunk);
    let hits = tail.windows(p.len()).filter(|w| w == p).count();
    c.hits.fetch_add(hits as u64, Ordering::Relaxed);
    let keep = p.len().saturating_sub(1).min(tail.len());
    tail.drain(..tail.len() - keep);
}

/// The proxy's own cost: median round trip of 1-byte ping-pongs to an echo server, directly and
/// through the proxy at each delay. Prints one line per case.
pub fn pingpong(rounds: usize, delays_ms: &[u64]) -> anyhow::Result<Vec<(String, f64)>> {
    let echo = TcpListener::bind("127.0.0.1:0")?;
    let echo_addr = echo.local_addr()?;
    thread::spawn(move || {
        for s in echo.incoming().flatten() {
            thread::spawn(move || {
                let _ = s.set_nodelay(true);
                let mut w = s.try_clone().expect("clone");
                let mut r = s;
                let mut b = [0u8; 64];
                while let Ok(n) = r.read(&mut b) {
                    if n == 0 || w.write_all(&b[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let mut out = vec![("direct".to_string(), median_rtt(echo_addr, rounds)?)];
    for &d in delays_ms {
        let via = spawn(echo_addr, Duration::from_millis(d), None)?;
        let n = if d == 0 { rounds } else { rounds.min(50) };
        out.push((format!("proxy {d} ms"), median_rtt(via, n)?));
    }
    Ok(out)
}

fn median_rtt(addr: SocketAddr, rounds: usize) -> anyhow::Result<f64> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut b = [0u8; 1];
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds + 10 {
        let t = Instant::now();
        s.write_all(b"x")?;
        s.read_exact(&mut b)?;
        if i >= 10 {
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}
