//! `postie-bench queue`: the outbox's own costs with a null upstream (no SMTP at all): accepted
//! messages committed, then claimed and acknowledged as every recipient accepted, through the
//! same `Store` calls the relay's deliverer makes (`claim_in` by `CLAIM_BATCH`, `finish_many`).
//!
//! ```text
//! postie-bench queue --outbox DIR|postgres://… [--ca FILE] [--messages 20000] [--workers 4]
//!                    [--producers 4] [--batch 32] [--no-drain]
//! postie-bench queue --outbox … --rate 800 --secs 180 [--workers 2]   # steady load
//! ```
//!
//! The first form enqueues `--messages` (timed), then drains them with `--workers` threads
//! (timed): one JSON line per phase (`--no-drain`: the first only, for relays to deliver). The second enqueues at `--rate` messages per second for
//! `--secs` seconds while the workers drain, prints a line every 10 seconds and a summary
//! (delivered rate, backlog, claim times in the first and the last minute).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use postie_outbox::delivery::{CLAIM_BATCH, LEASE};
use postie_outbox::outbox::{
    Claim, Location, NewMessage, Outbox, Outcome, RecipientOutcome, RecipientResult, ReplyRecord,
    RetryPolicy, Scope,
};

use crate::Args;

pub fn run(a: &Args) -> anyhow::Result<()> {
    let mut location = Location::parse(a.get("outbox")?).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let (Location::Postgres(t), Ok(ca)) = (&mut location, a.get("ca")) {
        t.set_ca_file(std::path::Path::new(ca));
    }
    let outbox = Arc::new(Outbox::open_at(&location).map_err(|e| anyhow::anyhow!("{e}"))?);
    let workers: usize = a.num("workers", 4)?;
    let producers: usize = a.num("producers", 4)?;
    let batch: usize = a.num("batch", CLAIM_BATCH)?;
    anyhow::ensure!(
        workers >= 1 && producers >= 1 && batch >= 1,
        "counts must be at least 1"
    );
    let store = if matches!(location, Location::Postgres(_)) {
        "postgres"
    } else {
        "sqlite"
    };
    let rate: f64 = a.num("rate", 0.0)?;
    if rate > 0.0 {
        return steady(
            &outbox,
            store,
            rate,
            a.num("secs", 60)?,
            producers,
            workers,
            batch,
        );
    }
    let n: u64 = a.num("messages", 20_000)?;
    let t = Instant::now();
    produce(
        &outbox,
        n,
        producers,
        None,
        &AtomicBool::new(false),
        &AtomicU64::new(0),
    )?;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "{{\"phase\":\"enqueue\",\"store\":\"{store}\",\"producers\":{producers},\"msgs\":{n},\
         \"secs\":{secs:.3},\"rate\":{:.1}}}",
        n as f64 / secs
    );
    if a.flag("no-drain") {
        return Ok(());
    }
    let t = Instant::now();
    let acked = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let (claims, acks) = (
        std::sync::Mutex::new(Vec::new()),
        std::sync::Mutex::new(Vec::new()),
    );
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    drain(
                        &outbox,
                        batch,
                        &acked,
                        &stop,
                        true,
                        Some(&claims),
                        Some(&acks),
                    )
                })
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().expect("worker"))
    })?;
    let secs = t.elapsed().as_secs_f64();
    let done = acked.load(Ordering::Relaxed);
    anyhow::ensure!(done == n, "{done} of {n} messages acknowledged");
    let median = |mut v: Vec<u64>| {
        v.sort_unstable();
        v.get(v.len() / 2).copied().unwrap_or(0) as f64 / 1000.0
    };
    let claim_ms = median(
        claims
            .into_inner()
            .expect("claims")
            .iter()
            .map(|c| c.1)
            .collect(),
    );
    let ack_ms = median(acks.into_inner().expect("acks"));
    println!(
        "{{\"phase\":\"claim+ack\",\"store\":\"{store}\",\"workers\":{workers},\"batch\":{batch},\
         \"msgs\":{n},\"secs\":{secs:.3},\"rate\":{:.1},\"claim_ms_p50\":{claim_ms:.2},\
         \"ack_ms_p50\":{ack_ms:.2}}}",
        n as f64 / secs
    );
    Ok(())
}

fn meta() -> NewMessage {
    NewMessage {
        account: "bench".into(),
        mail_from: Some(crate::FROM.into()),
        recipients: vec![crate::TO.into()],
        subject: Some("bench".into()),
        source: "bench".into(),
        ..NewMessage::default()
    }
}

/// A 1 KB message, as the throughput clients send.
fn body() -> Vec<u8> {
    let mut b = format!(
        "From: {}\r\nTo: {}\r\nSubject: bench\r\n\r\n",
        crate::FROM,
        crate::TO
    )
    .into_bytes();
    while b.len() < 1024 {
        b.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n",
        );
    }
    b
}

/// Commit `n` messages from `producers` threads (each commit durable before the next, as the
/// relay answers its clients), at `rate` per second in all when given.
fn produce(
    outbox: &Outbox,
    n: u64,
    producers: usize,
    rate: Option<f64>,
    stop: &AtomicBool,
    committed: &AtomicU64,
) -> anyhow::Result<()> {
    let next = AtomicU64::new(0);
    let start = Instant::now();
    let body = body();
    std::thread::scope(|s| {
        let hs: Vec<_> = (0..producers)
            .map(|_| {
                s.spawn(|| -> anyhow::Result<()> {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= n || stop.load(Ordering::Relaxed) {
                            return Ok(());
                        }
                        if let Some(r) = rate {
                            let due = start + Duration::from_secs_f64(i as f64 / r);
                            if let Some(w) = due.checked_duration_since(Instant::now()) {
                                std::thread::sleep(w);
                            }
                        }
                        outbox
                            .commit_row(body.clone(), meta())
                            .map_err(|e| anyhow::anyhow!("enqueue: {e}"))?;
                        committed.fetch_add(1, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        hs.into_iter().try_for_each(|h| h.join().expect("producer"))
    })
}

/// Claim and acknowledge until a claim comes back empty (`until_empty`) or `stop` is set;
/// claim times (µs) go to `claims` when given.
fn drain(
    outbox: &Outbox,
    batch: usize,
    acked: &AtomicU64,
    stop: &AtomicBool,
    until_empty: bool,
    claims: Option<&std::sync::Mutex<Vec<(f64, u64)>>>,
    acks: Option<&std::sync::Mutex<Vec<u64>>>,
) -> anyhow::Result<()> {
    let prefix = format!("bench{:x}-", rand_u32());
    let policy = RetryPolicy::default();
    let start = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let got: Vec<Claim> = outbox
            .claim_in(SystemTime::now(), LEASE, batch, &Scope::default(), &prefix)
            .map_err(|e| anyhow::anyhow!("claim: {e}"))?;
        if let Some(c) = claims {
            c.lock().expect("claims").push((
                start.elapsed().as_secs_f64(),
                t.elapsed().as_micros() as u64,
            ));
        }
        if got.is_empty() {
            if until_empty {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let attempts: Vec<(Claim, Outcome)> = got
            .into_iter()
            .map(|c| {
                let list = c
                    .recipients
                    .iter()
                    .map(|r| RecipientOutcome {
                        address: r.clone(),
                        result: RecipientResult::Accepted(ReplyRecord {
                            code: 250,
                            enhanced: Some("2.0.0".into()),
                            text: "Ok: queued".into(),
                        }),
                    })
                    .collect();
                (c, Outcome::Transaction(list))
            })
            .collect();
        let n = attempts.len() as u64;
        let t = Instant::now();
        let d = outbox
            .finish_many(attempts, SystemTime::now(), &policy)
            .map_err(|e| anyhow::anyhow!("acknowledge: {e}"))?;
        if let Some(a) = acks {
            a.lock().expect("acks").push(t.elapsed().as_micros() as u64);
        }
        anyhow::ensure!(
            d.iter()
                .all(|d| matches!(d, postie_outbox::outbox::Disposition::Sent)),
            "an acknowledgement was not recorded as sent: {d:?}"
        );
        acked.fetch_add(n, Ordering::Relaxed);
    }
    Ok(())
}

fn rand_u32() -> u32 {
    let t = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    t.subsec_nanos() ^ std::process::id().rotate_left(16)
}

/// Enqueue at `rate` for `secs` while `workers` drain; report every 10 s and at the end.
fn steady(
    outbox: &Arc<Outbox>,
    store: &str,
    rate: f64,
    secs: u64,
    producers: usize,
    workers: usize,
    batch: usize,
) -> anyhow::Result<()> {
    let total = (rate * secs as f64) as u64;
    let acked = AtomicU64::new(0);
    let committed = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let claims = std::sync::Mutex::new(Vec::new());
    let start = Instant::now();
    let mut samples: Vec<(u64, u64, u64)> = Vec::new(); // (second, enqueued, acked)
    std::thread::scope(|s| -> anyhow::Result<()> {
        let prod = s.spawn(|| produce(outbox, total, producers, Some(rate), &stop, &committed));
        let ws: Vec<_> = (0..workers)
            .map(|_| s.spawn(|| drain(outbox, batch, &acked, &stop, false, Some(&claims), None)))
            .collect();
        // Run for `secs`, then up to 60 s more for the backlog to drain.
        let mut sec = 0;
        loop {
            std::thread::sleep(
                Duration::from_secs(1)
                    .saturating_sub(start.elapsed().saturating_sub(Duration::from_secs(sec))),
            );
            sec += 1;
            let done = acked.load(Ordering::Relaxed);
            let queued = committed.load(Ordering::Relaxed);
            samples.push((sec, queued, done));
            if sec % 10 == 0 {
                eprintln!("  {sec:>4} s: {queued} enqueued, {done} acknowledged");
            }
            if (sec >= secs && done >= total)
                || sec >= secs + 60
                || ws.iter().any(|w| w.is_finished())
            {
                break;
            }
        }
        stop.store(true, Ordering::Relaxed);
        prod.join().expect("producers")?;
        ws.into_iter().try_for_each(|w| w.join().expect("worker"))
    })?;
    let done = acked.load(Ordering::Relaxed);
    // The last minute of the load (or its last half, when shorter).
    let tail = (secs / 3).clamp(1, 60);
    let at = |s: u64| samples.iter().find(|x| x.0 == s).map_or(0, |x| x.2);
    let last_rate = (at(secs) - at(secs - tail)) as f64 / tail as f64;
    let max_backlog = samples
        .iter()
        .map(|x| x.1.saturating_sub(x.2))
        .max()
        .unwrap_or(0);
    let backlog_end = samples
        .iter()
        .find(|x| x.0 == secs)
        .map_or(0, |x| x.1.saturating_sub(x.2));
    let drained_at = samples.iter().find(|x| x.2 >= total).map(|x| x.0);
    let claims = claims.into_inner().expect("claims");
    let p99 = |from: f64, to: f64| {
        let mut v: Vec<u64> = claims
            .iter()
            .filter(|c| c.0 >= from && c.0 < to)
            .map(|c| c.1)
            .collect();
        v.sort_unstable();
        v.get(v.len().saturating_sub(1) * 99 / 100)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    let (s, t) = (secs as f64, tail as f64);
    println!(
        "{{\"phase\":\"steady\",\"store\":\"{store}\",\"rate\":{rate},\"secs\":{secs},\
         \"workers\":{workers},\"batch\":{batch},\"enqueued\":{total},\"acked\":{done},\
         \"last_rate\":{last_rate:.1},\"max_backlog\":{max_backlog},\"backlog_end\":{backlog_end},\
         \"drained_at\":{},\"claim_p99_ms_first\":{:.2},\"claim_p99_ms_last\":{:.2}}}",
        drained_at.map_or("null".into(), |d| d.to_string()),
        p99(0.0, t),
        p99(s - t, s)
    );
    anyhow::ensure!(done == total, "{done} of {total} messages acknowledged");
    Ok(())
}
