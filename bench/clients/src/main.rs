//! `postie-bench`: the programs bench/run.sh measures with and against.
//!
//! ```text
//! postie-bench proxy --listen 127.0.0.1:20100 --to 127.0.0.1:19025 --rtt-ms 10
//! postie-bench pingpong [--rounds 2000]
//! postie-bench limit|postie|lettre --addr 127.0.0.1:20100 --conns 4 --count 2000 --msg FILE [--no-chunking]
//! postie-bench oauth [--sends 100]
//! postie-bench queue --outbox DIR|postgres://… [--messages N] [--rate R --secs S] (see queue.rs)
//! ```
//!
//! Throughput commands print one JSON line: messages, seconds, messages per second. Messages go
//! from alice@example.test to bob@example.test, the file's bytes unchanged.

mod library;
mod limit;
mod oauth;
mod proxy;
mod queue;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use anyhow::{Context, bail};

const FROM: &str = "alice@example.test";
const TO: &str = "bob@example.test";

/// One timed run.
pub struct Run {
    msgs: usize,
    secs: f64,
}

/// CPU seconds (user + system) this process has used so far, every thread
/// included: `/proc/self/stat` fields 14 and 15, in clock ticks (100 per
/// second on Linux).
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}

impl Run {
    pub fn new(msgs: usize, elapsed: Duration) -> Run {
        Run {
            msgs,
            secs: elapsed.as_secs_f64(),
        }
    }

    /// One JSON line; `cpu` is the client's CPU time over the whole
    /// command (connections and the untimed first messages included).
    fn print(&self, client: &str, addr: SocketAddr, conns: usize, cpu: f64) {
        println!(
            "{{\"client\":\"{client}\",\"addr\":\"{addr}\",\"conns\":{conns},\"msgs\":{},\
             \"secs\":{:.4},\"rate\":{:.2},\"cpu_secs\":{cpu:.2}}}",
            self.msgs,
            self.secs,
            self.msgs as f64 / self.secs
        );
    }
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Args> {
        let mut map = HashMap::new();
        let mut args = args.peekable();
        while let Some(a) = args.next() {
            let Some(key) = a.strip_prefix("--") else {
                bail!("unexpected argument {a:?}");
            };
            let value = match args.peek() {
                Some(v) if !v.starts_with("--") => args.next().unwrap_or_default(),
                _ => String::new(),
            };
            map.insert(key.to_string(), value);
        }
        Ok(Args(map))
    }

    fn get(&self, key: &str) -> anyhow::Result<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .with_context(|| format!("--{key} is required"))
    }

    fn num<T: std::str::FromStr>(&self, key: &str, default: T) -> anyhow::Result<T> {
        match self.0.get(key) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .ok()
                .with_context(|| format!("--{key}: not a number")),
        }
    }

    fn addr(&self, key: &str) -> anyhow::Result<SocketAddr> {
        let a: SocketAddr = self.get(key)?.parse().context(key.to_string())?;
        if !a.ip().is_loopback() {
            bail!("--{key}: the bench talks to loopback only");
        }
        Ok(a)
    }

    fn flag(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
}

fn main() -> anyhow::Result<()> {
    let mut argv = std::env::args().skip(1);
    let cmd = argv.next().unwrap_or_default();
    let a = Args::parse(argv)?;
    match cmd.as_str() {
        "proxy" => {
            let listener = TcpListener::bind(a.addr("listen")?)?;
            let rtt = Duration::from_micros((a.num::<f64>("rtt-ms", 0.0)? * 1000.0) as u64);
            proxy::serve(listener, a.addr("to")?, rtt, None);
            Ok(())
        }
        "pingpong" => {
            for (case, ms) in proxy::pingpong(a.num("rounds", 2000)?, &[0, 10, 25])? {
                println!("{{\"case\":\"{case}\",\"median_rtt_ms\":{ms:.4}}}");
            }
            Ok(())
        }
        "limit" | "postie" | "lettre" => throughput(&cmd, &a),
        "oauth" => runtime()?.block_on(oauth::run(a.num("sends", 100)?)),
        "queue" => queue::run(&a),
        _ => {
            bail!(
                "usage: postie-bench proxy|pingpong|limit|postie|lettre|oauth|queue ... (see main.rs)"
            )
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}

fn throughput(client: &str, a: &Args) -> anyhow::Result<()> {
    let addr = a.addr("addr")?;
    let conns: usize = a.num("conns", 1)?;
    let count: usize = a.num("count", 1000)?;
    let raw = std::fs::read(a.get("msg")?).context("--msg")?;
    anyhow::ensure!(conns >= 1 && count >= conns, "need 1 <= conns <= count");
    let cpu0 = cpu_secs();
    let run = match client {
        "limit" => limit::run(
            addr,
            conns,
            count,
            !a.flag("no-chunking"),
            limit::Wire::new(FROM, TO, &raw),
        )?,
        "postie" => {
            let msg = library::postie_message(&raw, FROM, TO)?;
            runtime()?.block_on(library::postie(addr, conns, count, msg))?
        }
        _ => runtime()?.block_on(library::lettre(addr, conns, count, raw, FROM, TO))?,
    };
    run.print(client, addr, conns, cpu_secs() - cpu0);
    Ok(())
}
