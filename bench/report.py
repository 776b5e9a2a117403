"""Write docs/benchmarks.md from the results of bench/run.sh.

    python3 bench/report.py RESULTS_DIR MODE RUNS "LATENCIES"

RESULTS_DIR holds results.tsv (one figure per line, tab-separated, first field its kind),
hyperfine's JSON files (hf-LABEL.json), pingpong.jsonl, oauth.jsonl and versions.tsv.
"""
import datetime
import glob
import json
import os
import platform
import statistics
import sys
from collections import defaultdict

res, mode, runs, latencies = sys.argv[1], sys.argv[2], int(sys.argv[3]), [int(x) for x in sys.argv[4].split()]
rows = [l.rstrip("\n").split("\t") for l in open(os.path.join(res, "results.tsv")) if l.strip()]
tput = defaultdict(list)  # (server, lat, conns, client) -> [rate]
na, failed, relay, rss, flights, flights_clock = {}, {}, defaultdict(list), {}, {}, {}
relay_fsyncs = None
fleet, fleet_hosts, steady_db = defaultdict(list), {}, None
for r in rows:
    kind = r[0]
    if kind == "tput" and r[5]:
        tput[(r[1], int(r[2]), int(r[3]), r[4])].append(float(r[5]))
    elif kind == "na":
        na[r[1]] = r[2]
    elif kind == "failed":
        failed[r[1]] = r[2] if len(r) > 2 else ""
    elif kind == "relay":
        relay[r[1]].append(float(r[2]))
    elif kind == "rss" and len(r) > 2 and r[2]:
        rss[r[1]] = int(r[2])
    elif kind == "flights":
        flights[r[1]] = int(r[2]) if r[2].isdigit() else None
    elif kind == "relay_fsyncs":
        relay_fsyncs = float(r[2])
    elif kind == "flights_clock":
        flights_clock[r[1]] = float(r[2])
    elif kind == "fleet" and r[2]:
        fleet[int(r[1])].append(float(r[2]))
    elif kind == "fleet_hosts":
        fleet_hosts[int(r[1])] = r[2] if len(r) > 2 else ""
    elif kind == "steady_db":
        steady_db = (r[1], r[2] if len(r) > 2 else "")
versions = dict(l.rstrip("\n").split("\t", 1) for l in open(os.path.join(res, "versions.tsv")) if "\t" in l)
pingpong = [json.loads(l) for l in open(os.path.join(res, "pingpong.jsonl")) if l.strip()]
oauth = {o["case"]: o for o in (json.loads(l) for l in open(os.path.join(res, "oauth.jsonl")) if l.strip())}
hf = {}
for f in glob.glob(os.path.join(res, "hf-*.json")):
    hf[os.path.basename(f)[3:-5]] = json.load(open(f))["results"][0]

med = lambda xs: statistics.median(xs) if xs else None

# the client's CPU per message (µs) by (server, latency, conns, client), from the JSON lines of
# the Rust clients; the proxy port says the server and the latency (bench/run.sh's port_of)
client_cpu = {}
runs_file = os.path.join(res, "runs.jsonl")
for l in (open(runs_file) if os.path.exists(runs_file) else []):
    try:
        j = json.loads(l)
        port = int(j["addr"].rsplit(":", 1)[1]) - 20000
        key = ("pc" if port < 200 else "p", port % 100, j["conns"], j["client"])
        client_cpu.setdefault(key, []).append(j["cpu_secs"] / j["msgs"] * 1e6)
    except (ValueError, KeyError, IndexError):
        continue
SERVERS = {"pc": "Postfix, PIPELINING + CHUNKING", "p": "Postfix, PIPELINING only (CHUNKING off)"}
CLIENTS = [
    ("limit", "1-round-trip reference (the limit)"),
    ("postie", "postie library (`Session::send_many`)"),
    ("bulk", "`postie bulk` (CLI, through the outbox)"),
    ("lettre", f"lettre {versions.get('lettre', '')} async pool"),
    ("smtplib", "Python smtplib"),
    ("msmtp", "msmtp, one process per message"),
    ("swaks", "swaks, one process per message"),
]


def rate(s, d, c, client):
    return med(tput.get((s, d, c, client), []))


def fmt_rate(x):
    if x is None:
        return "–"
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt_ratio(x):
    return "–" if x is None else f"{x:.2f}×"


out = []
p = out.append
now = datetime.datetime.now(datetime.timezone.utc)
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
mem_gib = next((int(l.split()[1]) / 2**20 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
busy = os.environ.get("BENCH_BUSY")

p("# Benchmarks")
p("")
p(f"Produced by `bench/run.sh{' --short' if mode == 'short' else ''}` on {now:%Y-%m-%d} ({now:%H:%M} UTC): "
  f"{os.cpu_count()} cores ({cpu}), {mem_gib:.0f} GiB, Linux {platform.release()}, x86_64 ext4 disk.")
if mode == "short":
    p("**Short mode**: small counts and one run, to prove the harness works; the figures are not meant to be read.")
if busy:
    p(f"**The machine was not quiet** during this run ({busy}): figures are less reliable than usual.")
p(f"Throughput figures are medians of {runs} run(s); every client ran in the same run against the same servers.")
p("")
p("Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".")
p("")
p("Reproduce: `bench/run.sh` (installs what it lacks, builds, starts its own servers on 127.0.0.1,")
p("writes this file); `bench/run.sh --short` proves every part works in a few minutes.")
p("")

# ---- targets --------------------------------------------------------------------------------
p("## Targets")
p("")
p("| target | measured | met |")
p("|---|---|---|")


def limit_ratios(lats):
    cells = []
    for s in SERVERS:
        for d in lats:
            for c in (1, 4):
                r = ratio(rate(s, d, c, "postie"), rate(s, d, c, "limit"))
                if r is not None:
                    cells.append((r, s, d, c))
    return cells


def ratio_target(lats, label):
    cells = limit_ratios(lats)
    if not cells:
        return p(f"| {label} | not measured | – |")
    worst = min(cells)
    low = [f"{fmt_ratio(r)} ({'CHUNKING' if s == 'pc' else 'PIPELINING only'}, {d} ms, {c} conn.)" for r, s, d, c in sorted(cells) if r < 0.9]
    text = f"lowest {fmt_ratio(worst[0])}; " + ("below 0.9×: " + "; ".join(low) if low else f"all {len(cells)} cells ≥ 0.9×")
    p(f"| {label} | {text} | {'yes' if not low else 'no'} |")


ratio_target([d for d in latencies if d > 0], "postie library ≥ 0.9× the 1-round-trip reference at 10 and 25 ms, 1 and 4 connections, both servers")
ratio_target([0], "≥ 0.9× at 0 ms (server-bound)")
rp, rq = med(relay.get("postie", [])), med(relay.get("postfix", []))
if rp and rq:
    p(f"| relay accept rate with durability ≥ 3× Postfix's smtpd (same smtp-source load) | {rq / rp:.2f}× "
      f"({rp:.2f} s vs {rq:.2f} s) | {'yes' if rq / rp >= 3 else 'no'} |")
for mode_, want, label in (("starttls", 7, "STARTTLS + AUTH"), ("implicit", 5, "implicit TLS")):
    n = flights.get(mode_)
    clock = flights_clock.get(mode_)
    p(f"| one-shot send: {want} flights after connect over {label} | {n if n is not None else '–'} in the transcript"
      + (f", {clock:.1f} by the clock" if clock is not None else "") + " | "
      f"{'yes' if n is not None and n <= want else 'no'} |")
a = rss.get("attach-postie")
p(f"| peak RSS < 40 MiB sending a 30 MB attachment | {a / 1024:.1f} MiB | {'yes' if a and a < 40 * 1024 else 'no'} |" if a else "| peak RSS < 40 MiB sending a 30 MB attachment | – | no |")
cs = hf.get("small-postie")
if cs:
    m = statistics.median(cs["times"]) * 1000
    p(f"| cold start of one send ≤ 20 ms median (`postie send`, 1 KB, STARTTLS + AUTH on loopback) | {m:.1f} ms | {'yes' if m <= 20 else 'no'} |")
for case, want in (("cached", 0), ("expired", 1), ("revoked", 1)):
    o = oauth.get(case)
    if o:
        p(f"| OAuth: 100 concurrent sends, {case} token → {want} token request(s) | {o['token_requests']} "
          f"({o['sent']}/{o['sends']} sent) | {'yes' if o['token_requests'] == want and o['sent'] == o['sends'] else 'no'} |")
p("")

# round trips per message, from the 1-connection rate at each latency > 0
gaps = []
for s in SERVERS:
    for d in latencies:
        if d == 0:
            continue
        for client in ("postie", "limit"):
            r = rate(s, d, 1, client)
            if r:
                gaps.append((s, d, client, 1000 / r / d))
if gaps:
    p("Round trips per message on one reused connection, estimated as the time per message divided")
    p("by the added round-trip time (the server's own time makes it a little more than the true count):")
    p("")
    p("| server | latency | reference | postie library |")
    p("|---|---|---|---|")
    g = {(s, d, c): v for s, d, c, v in gaps}
    for s in SERVERS:
        for d in latencies:
            if d:
                f2 = lambda v: "–" if v is None else f"{v:.2f}"
                p(f"| {SERVERS[s]} | {d} ms | {f2(g.get((s, d, 'limit')))} | {f2(g.get((s, d, 'postie')))} |")
    p("")

zero_cpu = [(s, c, med(client_cpu.get((s, 0, c, "postie"), [])), med(client_cpu.get((s, 0, c, "limit"), [])))
            for s in SERVERS for c in (1, 4)]
zero_cpu = [z for z in zero_cpu if z[2] is not None and z[3] is not None]
if zero_cpu:
    p("Client CPU per message at 0 ms (user + system, the whole command divided by its messages):")
    p("")
    p("| server | conn. | reference | postie library | postie ÷ reference |")
    p("|---|---|---|---|---|")
    for s, c, cp, cl in zero_cpu:
        # (0: less than one clock tick, 10 ms, over the whole run)
        p(f"| {SERVERS[s]} | {c} | {cl:.0f} µs | {cp:.0f} µs | {f'{cp / cl:.1f}×' if cl else '–'} |")
    p("")

# ---- where the targets are missed, and why (as far as these figures tell) ---------------------
notes = []
zero_low = [(s_, c_, r_) for s_ in SERVERS for c_ in (1, 4)
            for r_ in [ratio(rate(s_, 0, c_, "postie"), rate(s_, 0, c_, "limit"))] if r_ is not None and r_ < 0.9]
if zero_low:
    cpu_text = "; ".join(f"{'CHUNKING' if s_ == 'pc' else 'PIPELINING only'} {c_} conn.: {cp:.0f} µs vs {cl:.0f} µs"
                         for s_, c_, cp, cl in zero_cpu)
    notes.append(
        "**0 ms: " + "; ".join(f"{fmt_ratio(r_)} ({'CHUNKING' if s_ == 'pc' else 'PIPELINING only'}, {c_} conn.)"
                               for s_, c_, r_ in zero_low)
        + " of the reference.** Nothing waits on the network at 0 ms: the rate is what the two cores allow, "
        "shared by the client, Postfix's smtpd processes (one per connection) and its cleanup daemon. "
        + ("postie's client spends more CPU per message than the reference, which parses reply codes and "
           "builds nothing (postie keeps every reply, builds a per-recipient report, runs an async runtime): "
           + cpu_text + ". "
           if zero_cpu and all(cp > cl for _, _, cp, cl in zero_cpu)
           else "The client CPU figures above do not account for it on their own"
           + (f" ({cpu_text})" if cpu_text else "") + ". ")
        + "Behind the proxy, where the network is the limit, the same client is at the reference.")
lat_pos = [d for d in latencies if d > 0]
rtt = {(s_, d_, c_): v for s_, d_, c_, v in gaps}
p_only = [rtt.get(("p", d, "postie")) for d in lat_pos if rtt.get(("p", d, "postie"))]
if p_only and min(p_only) >= 1.6:
    b = [ratio(rate("p", d, 1, "bulk"), rate("p", d, 1, "limit")) for d in lat_pos]
    notes.append(
        "**PIPELINING only: more than one round trip per message in the library** "
        f"({', '.join(f'{x:.2f}' for x in p_only)} measured). `Session::send_many` should send each "
        "message's MAIL/RCPT/DATA with the previous body's `.`, as the reference does; look at "
        "`postie-bench postie` with a transcript to see which reply it waits for."
        + (f" `postie bulk`, which has the whole batch, reaches {', '.join(fmt_ratio(x) for x in b if x)} "
           "of the reference there." if any(b) else ""))
pc0 = ratio(rate("pc", 0, 1, "postie"), rate("pc", 0, 1, "limit"))
pc_lat = [rtt.get(("pc", d, "postie")) for d in lat_pos if rtt.get(("pc", d, "postie"))]
if pc0 is not None and pc0 < 0.5 and pc_lat and max(pc_lat) < 1.5:
    extra = 1000 / rate("pc", 0, 1, "postie") - 1000 / rate("pc", 0, 1, "limit")
    notes.append(
        f"**CHUNKING at 0 ms, one connection: {fmt_ratio(pc0)} of the reference** although with latency "
        f"postie needs only {', '.join(f'{x:.2f}' for x in pc_lat)} round trips per message: a wait of "
        f"about {extra:.1f} ms per message that is not a round trip and vanishes behind the proxy. "
        "A message that leaves in more than one write makes Postfix answer in more than one write; "
        "the last reply is small and waits, by Nagle's algorithm on Postfix's socket, for the "
        "client's delayed ACK of the first. Behind the proxy the ACK comes at once. The transport "
        "writes a pipelined group and its body together, only when it must wait: check that it "
        "still does.")
four = [(s_, d_, ratio(rate(s_, d_, 4, "postie"), rate(s_, d_, 4, "limit")),
         ratio(rate(s_, d_, 1, "postie"), rate(s_, d_, 1, "limit"))) for s_ in SERVERS for d_ in lat_pos]
four = [(s_, d_, r4, r1) for s_, d_, r4, r1 in four if r4 is not None and r1 is not None and r4 < 0.9 and r4 < r1 - 0.1]
if four:
    notes.append(
        "**4 connections fall further behind than 1** ("
        + "; ".join(f"{'CHUNKING' if s_ == 'pc' else 'PIPELINING only'} {d_} ms: {fmt_ratio(r4)} vs {fmt_ratio(r1)}" for s_, d_, r4, r1 in four)
        + "): the same per-message cost, plus the four sessions sharing one tokio runtime with two "
        "worker threads on this 2-core machine with the proxy and Postfix; not analysed further.")
if rp and rq and rq / rp < 3:
    notes.append(
        f"**Relay: {rq / rp:.2f}× Postfix's smtpd, not 3×.** The outbox is SQLite in WAL mode with "
        "synchronous=FULL and group commit (a body up to 64 KiB goes into its row; one database "
        "commit, one fsync, for the messages that arrive together)"
        + (f"; strace counts {relay_fsyncs:.2f} fsync/fdatasync calls per accepted message under this load"
           if relay_fsyncs is not None else "")
        + ". What is left is the SMTP sessions' CPU on a 2-core machine shared with the load "
        "generator, and the commits themselves.")
cold = hf.get("small-postie")
if cold:
    ts = sorted(cold["times"])
    if ts[-1] > 3 * ts[0] and ts[-1] - ts[0] > 0.03:
        notes.append(
            f"**Cold start is bimodal** ({ts[0] * 1000:.0f} ms to {ts[-1] * 1000:.0f} ms): in `postie send -vv`, "
            "the slow runs wait about 40 ms for the EHLO reply after STARTTLS. Postfix writes its TLS 1.3 "
            "session tickets and then the reply in separate small writes, and Nagle on its side holds the "
            "reply until the client ACKs the tickets (delayed ACK, 40 ms). Fast runs have them coalesced.")
if notes:
    p("### Gaps and their causes")
    p("")
    for n_ in notes:
        p("- " + n_)
    p("")

# ---- throughput -----------------------------------------------------------------------------
p("## Throughput on reused connections")
p("")
p("Messages per second, about 1 KB each (`small.eml`: headers and 900 bytes of base64 text), from")
p("alice@example.test to bob@example.test, plain SMTP without AUTH on loopback (Postfix's mynetworks")
p("lets 127.0.0.1 relay; TLS and AUTH are per connection, not per message, and are measured below).")
p("Each connection sends one untimed message first; the clock runs from when all are ready to the")
p("last message's reply (QUIT not included). The latency proxy (`postie-bench proxy`) sits between")
p("every client and the server: **N ms means N ms added to each round trip** (N/2 ms held in each")
p("direction, every chunk released in order at its own deadline; no bandwidth limit).")
if pingpong:
    pp = {x["case"]: x["median_rtt_ms"] for x in pingpong}
    direct = pp.get("direct", 0)
    p("Proxy check, median round trip of 1-byte ping-pongs: "
      + ", ".join(f"{k} {v:.3f} ms" for k, v in pp.items())
      + f"; the proxy itself adds {pp.get('proxy 0 ms', 0) - direct:.3f} ms at 0 ms.")
p("Postfix accepts each message (cleanup fsyncs the queue file before the 250) and discards it.")
p("msmtp and swaks start one process per message, as cron jobs use them (4 connections: 4 at a time).")
if "bulk" in na:
    p(f"`postie bulk`: not available ({na['bulk']}); the harness measures it once it exists.")
else:
    p("`postie bulk --account bench DIR`: one process for a directory of copies of the message (as many")
    p("as the library sends), through the outbox, to a config account with `tls = \"none\"` and")
    p("`auth = \"none\"`; its time is the whole command: start, queueing every message durably, delivery,")
    p("result file. 4 connections only when `postie bulk --help` offers `--connections`.")
p("lettre, smtplib, msmtp and swaks send fewer messages (a quarter, at least 20): a rate needs no more.")
p("")
for s, title in SERVERS.items():
    p(f"### {title}")
    p("")
    p("| client | conn. | " + " | ".join(f"{d} ms" for d in latencies) + " |")
    p("|---|---|" + "---|" * len(latencies))
    for client, name in CLIENTS:
        for c in (1, 4):
            vals = [rate(s, d, c, client) for d in latencies]
            if all(v is None for v in vals):
                if client == "bulk" and c == 1:
                    p(f"| {name} | {c} | " + " | ".join("not available" for _ in latencies) + " |")
                continue
            p(f"| {name} | {c} | " + " | ".join(fmt_rate(v) for v in vals) + " |")
    p("")
    p("postie library's ratio to each (above 1: postie is faster):")
    p("")
    p("| postie ÷ | conn. | " + " | ".join(f"{d} ms" for d in latencies) + " |")
    p("|---|---|" + "---|" * len(latencies))
    for client, name in CLIENTS:
        if client == "postie":
            continue
        for c in (1, 4):
            vals = [ratio(rate(s, d, c, "postie"), rate(s, d, c, client)) for d in latencies]
            if any(v is not None for v in vals):
                p(f"| {name} | {c} | " + " | ".join(fmt_ratio(v) for v in vals) + " |")
    p("")

# ---- relay ------------------------------------------------------------------------------------
p("## Relay: accept rate with durability")
p("")
if rp and rq:
    n = rows and next((r for r in rows if r[0] == "relay"), None)
    p("Postfix's `smtp-source -s 10 -l 1024` (10 sessions, 1 KB messages) against `postie relay --no-deliver`")
    p("(the outbox in SQLite, WAL, synchronous=FULL: 250 only once the message is on disk; delivery off, so")
    p("only acceptance is timed) and against Postfix's smtpd (cleanup fsyncs the queue file before the 250;")
    p("messages put on hold, so Postfix does not deliver them during the run). Median wall time of "
      f"{len(relay['postie'])} run(s).")
    p("")
    p("| server | wall time | messages/s |")
    p("|---|---|---|")
    total = os.environ.get("BENCH_RELAY_MSGS")
    for k, v in (("postie relay", rp), ("Postfix smtpd", rq)):
        p(f"| {k} | {v:.2f} s | {float(total) / v:.0f} |" if total else f"| {k} | {v:.2f} s | – |")
    p("")
    p(f"postie relay ÷ Postfix: **{rq / rp:.2f}×** the accept rate."
      + (f" fsync/fdatasync calls of the relay per accepted message (strace, one more load, not timed): {relay_fsyncs:.2f}."
         if relay_fsyncs is not None else ""))
    p("")

# ---- one process per send ---------------------------------------------------------------------
p("## One process per send: wall time and memory")
p("")
p("Each send is a new process and a new connection to Postfix's submission port on 127.0.0.1: STARTTLS,")
p("AUTH PLAIN, the certificate verified by every client (hyperfine, wall time of the whole command;")
p("peak RSS with GNU time). The 1 KB row of postie is the cold-start figure. lettre is `lettre-send`")
p("(bench/clients/src/bin/lettre-send.rs), lettre's blocking transport with rustls.")
p("")
ONE = ["postie", "msmtp", "swaks", "curl", "smtplib", "lettre"]
for size, title in (("small", "1 KB message"), ("large", "5 MB attachment (about 6.8 MB on the wire)")):
    p(f"### {title}")
    p("")
    p("| client | median | mean ± σ | min | max | peak RSS | ÷ postie's median |")
    p("|---|---|---|---|---|---|---|")
    base = hf.get(f"{size}-postie")
    bm = statistics.median(base["times"]) if base else None
    for c in ONE:
        label = f"{size}-{c}"
        if label in failed:
            p(f"| {c} | failed: {failed[label]} | | | | | |")
            continue
        h = hf.get(label)
        if not h:
            continue
        m = statistics.median(h["times"])
        ms = lambda x: f"{x * 1000:.1f} ms"
        p(f"| {c} | {ms(m)} | {ms(h['mean'])} ± {ms(h['stddev'] or 0)} | {ms(h['min'])} | {ms(h['max'])} | "
          f"{rss.get(label, 0) / 1024:.1f} MiB | {fmt_ratio(ratio(m, bm))} |")
    p("")
    if size == "small":
        p("Peak RSS is of the whole command (for msmtp, with its `sh` wrapper; it is small).")
        p("")

p("### Memory: a 30 MB file attached by the client")
p("")
p("| client | wall time | peak RSS |")
p("|---|---|---|")
for c in ("postie", "lettre", "smtplib"):
    label = f"attach-{c}"
    if label in failed:
        p(f"| {c} | failed: {failed[label]} | |")
    elif label in hf:
        p(f"| {c} | {hf[label]['mean'] * 1000:.0f} ms | {rss.get(label, 0) / 1024:.1f} MiB |")
p("")
p("postie reads the attachment in pieces while it sends it (base64 on the way); lettre and smtplib")
p("build the whole message in memory first.")
p("")

# ---- flights, OAuth ---------------------------------------------------------------------------
p("## Flights of a one-shot send")
p("")
p("Round trips of `postie send -v` after the TCP connection, counted in its transcript: each run of")
p("server lines after client lines (the greeting included), plus the TLS handshake (one round trip,")
p("TLS 1.3). The protocol's minimum: 7 over STARTTLS + AUTH (greeting, EHLO, STARTTLS, handshake,")
p("EHLO, AUTH, the transaction with QUIT pipelined), 5 over implicit TLS.")
p("")
p("The same by the clock: one send through the latency proxy at 50 ms per round trip and one at")
p("100 ms; the difference divided by 50 ms (the proxy accepts at once: the TCP connect is not delayed).")
p("")
p("| | flights (transcript) | flights (clock) | minimum |")
p("|---|---|---|---|")
for k, label, want in (("starttls", "STARTTLS + AUTH", 7), ("implicit", "implicit TLS + AUTH", 5)):
    c = flights_clock.get(k)
    p(f"| {label} | {flights.get(k, '–')} | {'–' if c is None else f'{c:.1f}'} | {want} |")
p("")
# ---- several hosts: one outbox on PostgreSQL ----------------------------------------------------
def jsonl(name):
    f = os.path.join(res, name)
    return [json.loads(l) for l in open(f) if l.strip()] if os.path.exists(f) else []


queue_runs, steady = jsonl("queue.jsonl"), jsonl("steady.jsonl")
if queue_runs or steady or fleet:
    p("## Several hosts: one outbox on PostgreSQL")
    p("")
    p(f"A private PostgreSQL {versions.get('postgresql', '?')} cluster on 127.0.0.1 (`bench/postgres.sh`: the")
    p("server's default settings, fsync and synchronous_commit on), reached over verified TLS as a shared")
    p("outbox is. The SQLite outbox directory beside it for comparison (same disk).")
    p("")
if queue_runs:
    p("### The store alone: claim + acknowledge with a null upstream")
    p("")
    p("`postie-bench queue` (bench/clients/src/queue.rs): 1 KB messages committed by 4 threads (each")
    p("commit durable before the next, as the relay answers its clients), then 4 worker threads claim")
    p("them and acknowledge every one as accepted by all its recipients through the calls the relay's")
    p("deliverer makes (`Store::claim_in`, `Store::finish_many`), no SMTP. The deliverer's claims start")
    p("at 32 (`CLAIM_BATCH`) and double while they come back full, up to 256 (`CLAIM_MAX`): a backlog")
    p(f"is drained by claims of 256. Medians of {runs} run(s), messages per second; the median time of")
    p("one claim and of one acknowledgement (of a whole claim) as the workers saw them.")
    p("")
    p("| store | claim size | commit (4 threads) | claim + acknowledge (4 workers) | one claim, median | one acknowledgement of a claim, median |")
    p("|---|---|---|---|---|---|")
    by = defaultdict(list)
    for j in queue_runs:
        by[(j["store"], j.get("batch"), j["phase"])].append(j)
    batches = sorted({j["batch"] for j in queue_runs if "batch" in j})
    ms = lambda xs: "–" if not xs else f"{statistics.median(xs):.2f} ms"
    for store in ("postgres", "sqlite"):
        for b in batches:
            enq = med([j["rate"] for j in queue_runs if j["store"] == store and j["phase"] == "enqueue"])
            runs_ = by[(store, b, "claim+ack")]
            ack = med([j["rate"] for j in runs_])
            name = "PostgreSQL" if store == "postgres" else "SQLite (directory)"
            p(f"| {name} | {b} | {fmt_rate(enq)} | {fmt_rate(ack)} | "
              f"{ms([j['claim_ms_p50'] for j in runs_ if 'claim_ms_p50' in j])} | "
              f"{ms([j['ack_ms_p50'] for j in runs_ if 'ack_ms_p50' in j])} |")
    p("")
    pgmax = med([j["rate"] for j in by[("postgres", 256, "claim+ack")]])
    if pgmax:
        p(f"Target: claim + acknowledge ≥ 10,000 messages/s on PostgreSQL: **{pgmax:,.0f}/s** with the deliverer's "
          f"claims under a backlog (256) ({'met' if pgmax >= 10000 else 'not met'}).")
        p("")
for j in steady:
    p("### A long transaction: 800 messages/s while a snapshot is held")
    p("")
    p(f"Another session holds a REPEATABLE READ snapshot (`BEGIN; SELECT …; SELECT pg_sleep(…)`) for the")
    p(f"whole run, so vacuum can remove nothing the queue leaves behind. 16 threads commit 1 KB messages")
    p(f"at {j['rate']:.0f}/s for {j['secs']} s; {j['workers']} workers claim ({j['batch']} at a time: the queue")
    p("stays short, as the deliverer's claims do then) and")
    p("acknowledge them as they come (a worker whose claim comes back empty sleeps 20 ms).")
    p("")
    p("| | |")
    p("|---|---|")
    p(f"| messages committed / acknowledged | {j['enqueued']:,} / {j['acked']:,} |")
    tail = min(60, max(1, j['secs'] // 3))
    p(f"| delivered rate over the last {tail} s of the load | {j['last_rate']:.0f}/s ({100 * j['last_rate'] / j['rate']:.0f} % of the enqueue rate) |")
    p(f"| largest backlog (committed, not yet acknowledged), sampled each second | {j['max_backlog']:,} |")
    p(f"| backlog when the load ended | {j['backlog_end']:,} |")
    p(f"| claim time, 99th percentile: first {tail} s / last {tail} s | {j['claim_p99_ms_first']:.1f} ms / {j['claim_p99_ms_last']:.1f} ms |")
    if steady_db:
        p(f"| dead row versions in `messages` at the end (`n_dead_tup`) | {steady_db[0]} |")
        p(f"| age of the held snapshot at the end (transactions, `age(backend_xmin)`) | {steady_db[1]} |")
    p("")
if fleet:
    p("### 1, 2 and 3 relays on one database")
    p("")
    p("Messages committed to the shared outbox first; then 1, 2 or 3 `postie relay` processes (each its")
    p("own `[outbox] host_id`, the default 2 connections per account) deliver them to the same Postfix")
    p("(port 19025, PIPELINING + CHUNKING, discarded after the queue). Rate between 10 % and 90 % of")
    p(f"the messages recorded as sent (polled every 50 ms); every message ends sent. Medians of {runs} run(s).")
    p("")
    p("| relays | messages/s delivered | attempts by host (last run) |")
    p("|---|---|---|")
    for k in sorted(fleet):
        p(f"| {k} | {fmt_rate(med(fleet[k]))} | {fleet_hosts.get(k, '–')} |")
    lim = rate("pc", 0, 4, "limit")
    if lim:
        p("")
        p(f"For scale, the same Postfix takes {lim:,.0f} messages/s from the fastest client SMTP allows on 4")
        p("connections (the throughput table above).")
    p("")

p("## OAuth: token requests under 100 concurrent sends")
p("")
p("postie's sandbox provider in the bench process (postie-sandbox), an OAuth account signed in, one")
p("`Mailer` shared by 100 concurrent `Mailer::send`s. Token requests are counted on the wire: the")
p("account's token endpoint is a forwarder that counts `POST /token`.")
p("")
p("| case | sends | sent | token requests | reports with `token_refreshed` |")
p("|---|---|---|---|---|")
desc = {
    "cached": "token cached and valid",
    "expired": "stored token past its expiry (a new mailer, empty cache)",
    "revoked": "token ended early by the provider (postie still holds it as valid)",
}
for case, o in oauth.items():
    p(f"| {desc.get(case, case)} | {o['sends']} | {o['sent']} | {o['token_requests']} | {o['reports_refreshed']} |")
p("")
print("\n".join(out))
