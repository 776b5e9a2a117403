#!/usr/bin/env bash
# bench/run.sh [--short] — postie beside the clients people would use instead, and beside the
# fastest SMTP allows, in one run on this machine. Hermetic: it installs what it lacks (apt), builds
# its programs, starts its own servers on 127.0.0.1 and stops them when it ends.
#
#   bench/run.sh            several runs, medians; writes docs/benchmarks.md (about 30 minutes)
#   bench/run.sh --short    small counts, one run, 0 and 10 ms only: proves every part works
#                           (a few minutes); writes a temporary file and prints its path
#
# Servers (bench/postfix.sh): Postfix with PIPELINING + CHUNKING, the same Postfix with CHUNKING
# off on a second port, STARTTLS + AUTH and implicit TLS + AUTH ports; `postie relay`. Ports
# 19xxx and 20xxx, none of the test suite's (ci/mail-peers.sh uses 12xxx-18xxx).
# Latency: postie-bench's proxy adds D ms to every round trip (D/2 each way), D in 0, 10, 25.
# What is measured and how is written into the report itself (bench/report.py).
#
# Environment: BENCH_DIR (work directory, default /var/tmp/postie-bench: on disk, so fsync costs
# what it costs), BENCH_OUT (report path), BENCH_TARGET_DIR (default target/bench; the short
# mode uses the test suite's debug builds in $CARGO_TARGET_DIR or target).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

MODE=full
case "${1:-}" in
  --short) MODE=short ;;
  "") ;;
  *) echo "usage: bench/run.sh [--short]" >&2; exit 64 ;;
esac
if [ $MODE = short ]; then
  RUNS=1 LATENCIES="0 10" HF_RUNS=3 RELAY_MSGS=200 PROC_MSGS=5
  QUEUE_MSGS=2000 STEADY_SECS=15 FLEET_MSGS=300
  count_for() { case $1 in 0) echo 50 ;; *) echo 20 ;; esac; }
  OUT=${BENCH_OUT:-$(mktemp "${TMPDIR:-/tmp}/postie-bench.XXXXXX.md")}
else
  RUNS=3 LATENCIES="0 10 25" HF_RUNS=20 RELAY_MSGS=2000 PROC_MSGS=30
  QUEUE_MSGS=20000 STEADY_SECS=180 FLEET_MSGS=3000
  count_for() { case $1 in 0) echo 1000 ;; 10) echo 300 ;; *) echo 150 ;; esac; }
  OUT=${BENCH_OUT:-docs/benchmarks.md}
fi
W=${BENCH_DIR:-/var/tmp/postie-bench}
if [ $MODE = short ]; then TD=${BENCH_TARGET_DIR:-${CARGO_TARGET_DIR:-target}}; else TD=${BENCH_TARGET_DIR:-target/bench}; fi
case $TD in /*) ;; *) TD=$ROOT/$TD ;; esac
export RUST_BACKTRACE=0 NO_COLOR=1 DEBIAN_FRONTEND=noninteractive
say() { printf '==> %s\n' "$*" >&2; }

# ---- install what is missing ------------------------------------------------------------------
APT_PKGS="postfix sasl2-bin libsasl2-modules openssl swaks msmtp hyperfine curl time bsdutils strace postgresql"
missing=""
for p in $APT_PKGS; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  say "installing:$missing"
  [ "$(id -u)" = 0 ] || { echo "bench: missing packages:$missing (run as root)" >&2; exit 1; }
  # package scripts must not start the system's own Postfix
  [ -e /usr/sbin/policy-rc.d ] || { printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d; }
  # shellcheck disable=SC2086 # a list of package names
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends $missing; } >/dev/null
fi

# ---- build ------------------------------------------------------------------------------------
# Figures that are kept come from release builds in their own target directory; the short mode
# only proves that every part works, so it reuses the test suite's debug builds.
if [ $MODE = short ]; then PROFILE=dev OUTDIR=debug; else PROFILE=release OUTDIR=release; fi
say "building postie and the bench programs ($PROFILE, $TD)"
cargo build --profile $PROFILE --quiet --bin postie --target-dir "$TD"
cargo build --profile $PROFILE --quiet --manifest-path bench/clients/Cargo.toml --target-dir "$TD"
POSTIE=$TD/$OUTDIR/postie
RUSTC_VERSION=$(rustc --version | cut -d' ' -f2)
PB=$TD/$OUTDIR/postie-bench
LETTRE_SEND=$TD/$OUTDIR/lettre-send

# ---- a quiet machine for figures that are kept -------------------------------------------------
# (full mode only: wait while a compiler or test runner is busy, up to 20 minutes)
busy() { pgrep -x 'cargo|rustc' >/dev/null || pgrep -x cargo-nextest >/dev/null; }
if [ $MODE = full ]; then
  for ((i = 0; i < 40; i++)); do busy || break; say "waiting for a quiet machine (cargo/rustc running)"; sleep 30; done
  if busy; then export BENCH_BUSY="cargo or rustc was still running after 20 minutes of waiting"; fi
fi
export BENCH_RELAY_MSGS=$RELAY_MSGS

# ---- work directory, servers, proxies ---------------------------------------------------------
PIDS=()
cleanup() {
  local p
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  bench/postfix.sh stop "$W" || true
  bench/postgres.sh stop "$W" || true
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
bench/postfix.sh stop "$W"   # a previous run's, if it was interrupted
bench/postgres.sh stop "$W"
rm -rf "$W"; mkdir -p "$W/res" "$W/home"
export HOME=$W/home XDG_CONFIG_HOME=$W/home/cfg XDG_DATA_HOME=$W/home/data XDG_CACHE_HOME=$W/home/cache
R=$W/res/results.tsv; : >"$R"
rec() { local IFS=$'\t'; echo "$*" >>"$R"; }

say "starting Postfix in $W"
bench/postfix.sh start "$W"
CA=$W/tls/ca.pem
export BENCH_PW=secret   # the private Postfix's test login, made up by bench/postfix.sh
AUTH_USER=alice@provider.test

port_of() { # server latency -> proxy port
  echo $((20000 + $([ "$1" = pc ] && echo 100 || echo 200) + $2))
}
backend() { [ "$1" = pc ] && echo 19025 || echo 19026; }
wait_port() { local i; for ((i = 0; i < 100; i++)); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 did not open" >&2; return 1; }
for s in pc p; do
  for d in $LATENCIES; do
    "$PB" proxy --listen "127.0.0.1:$(port_of $s "$d")" --to "127.0.0.1:$(backend $s)" --rtt-ms "$d" &
    PIDS+=($!)
  done
done
for s in pc p; do for d in $LATENCIES; do wait_port "$(port_of $s "$d")"; done; done

say "proxy check (ping-pong)"
rounds=3000; [ $MODE = short ] && rounds=300
"$PB" pingpong --rounds $rounds >"$W/res/pingpong.jsonl"

# ---- messages -----------------------------------------------------------------------------------
MSG=$W/small.eml   # about 1 KB, as every throughput client sends it
printf 'From: alice@example.test\r\nTo: bob@example.test\r\nSubject: bench\r\nMessage-ID: <b1@example.test>\r\nDate: Wed, 25 Nov 2026 00:00:00 +0000\r\n\r\n' >"$MSG"
head -c 660 /dev/urandom | base64 -w 76 | sed 's/$/\r/' >>"$MSG"
head -c $((5 * 1024 * 1024)) /dev/urandom >"$W/blob5.bin"
head -c 30000000 /dev/urandom >"$W/att30.bin"
python3 - "$W/blob5.bin" "$W/large.eml" <<'PY'
import sys
from email.message import EmailMessage
m = EmailMessage(); m["From"] = "alice@example.test"; m["To"] = "bob@example.test"; m["Subject"] = "bench 5 MB"
m["Message-ID"] = "<b2@example.test>"; m["Date"] = "Wed, 25 Nov 2026 00:00:00 +0000"
m.set_content("5 MB attached")
m.add_attachment(open(sys.argv[1], "rb").read(), maintype="application", subtype="octet-stream", filename="blob.bin")
open(sys.argv[2], "wb").write(m.as_bytes(policy=m.policy.clone(linesep="\r\n")))
PY

# ---- throughput ---------------------------------------------------------------------------------
# postie bulk: measured when the command exists (`postie bulk --account NAME DIR`)
BULK=0
if "$POSTIE" bulk --help >/dev/null 2>&1; then BULK=1; else rec na bulk "postie bulk --help failed: the command is not in this build"; fi
account_toml() { # port -> account "bench" sending to it without TLS or AUTH
  printf '[accounts.bench]\nprovider = "generic"\nemail = "alice@example.test"\nauth = "none"\n'
  printf 'host = "127.0.0.1"\nport = %s\ntls = "none"\n' "$1"
}
bulk_config() { # port -> a config with that account only
  local cfg=$W/bulk/config-$1.toml
  mkdir -p "$W/bulk"
  account_toml "$1" >"$cfg"
  echo "$cfg"
}
bulk_dir() { # count -> a directory of that many copies of the message
  local d=$W/bulk/eml-$1 i
  if [ ! -d "$d" ]; then mkdir -p "$d"; for ((i = 0; i < $1; i++)); do cp "$MSG" "$d/$i.eml"; done; fi
  echo "$d"
}
per_process() { # client port conns count -> msgs/s with one process per message
  local client=$1 port=$2 conns=$3 n=$4 t0 t1
  local cmd
  case $client in
    msmtp) cmd="msmtp -C /dev/null --host=127.0.0.1 --port=$port --tls=off --auth=off --from=alice@example.test bob@example.test <$MSG" ;;
    swaks) cmd="swaks -S -s 127.0.0.1 -p $port -f alice@example.test -t bob@example.test --data @$MSG" ;;
  esac
  t0=$(date +%s.%N)
  seq "$n" | xargs -P "$conns" -I{} sh -c "$cmd" >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(round($n / ($t1 - $t0), 2))"
}
bulk_rate() { # port conns count
  local cfg dir t0 t1 extra=()
  cfg=$(bulk_config "$1"); dir=$(bulk_dir "$3")
  if [ "$2" -gt 1 ]; then
    "$POSTIE" bulk --help 2>/dev/null | grep -q -- '--connections' || return 1
    extra=(--connections "$2")
  fi
  rm -rf "$XDG_DATA_HOME/postie"
  t0=$(date +%s.%N)
  "$POSTIE" --config "$cfg" bulk --account bench "${extra[@]}" "$dir" >"$W/bulk/out.log" 2>&1 </dev/null \
    || { tail -5 "$W/bulk/out.log" >&2; return 2; }
  t1=$(date +%s.%N)
  python3 -c "print(round($3 / ($t1 - $t0), 2))"
}
# record a figure; a command that fails stops the benchmark (an assignment keeps set -e's check,
# which an argument's command substitution would not)
recv() { local kind=$1 v; shift; local -a key=(); while [ "$1" != -- ]; do key+=("$1"); shift; done; shift
  v=$("$@"); rec "$kind" "${key[@]}" "$v"; }
rate_of() { # command... -> the rate of the JSON line it prints (kept whole in res/runs.jsonl)
  local out; out=$("$@")
  printf '%s\n' "$out" | tail -1 >>"$W/res/runs.jsonl"
  python3 -c 'import json,sys; print(json.loads(sys.argv[1].strip().splitlines()[-1])["rate"])' "$out"
}

for run in $(seq "$RUNS"); do
  for s in pc p; do
    for d in $LATENCIES; do
      port=$(port_of $s "$d"); n=$(count_for "$d"); slow=$(( n / 4 > 20 ? n / 4 : 20 ))
      for c in 1 4; do
        say "throughput run $run/$RUNS: server $s, $d ms, $c connection(s), $n messages"
        for client in limit postie lettre; do
          m=$n; [ $client = lettre ] && m=$slow
          recv tput $s "$d" $c $client -- rate_of "$PB" $client --addr "127.0.0.1:$port" --conns $c --count "$m" --msg "$MSG"
        done
        recv tput $s "$d" $c smtplib -- rate_of python3 bench/smtplib_bench.py "$port" $c $slow "$MSG"
        recv tput $s "$d" $c msmtp -- per_process msmtp "$port" $c $((PROC_MSGS * c))
        recv tput $s "$d" $c swaks -- per_process swaks "$port" $c $((PROC_MSGS * c))
        if [ $BULK = 1 ]; then
          if r=$(bulk_rate "$port" $c "$n"); then rec tput $s "$d" $c bulk "$r"
          elif [ $? = 1 ]; then :   # no --connections option: one connection only
          else echo "postie bulk failed" >&2; exit 1; fi
        fi
      done
    done
  done
done

# ---- relay accept rate with durability --------------------------------------------------------
say "relay: postie relay --no-deliver vs Postfix smtpd, smtp-source -s 10 -m $RELAY_MSGS"
RCFG=$(bulk_config 19025)
"$POSTIE" --config "$RCFG" relay --no-deliver --listen 127.0.0.1:19040 >"$W/relay.log" 2>&1 &
RELAY_PID=$!; PIDS+=("$RELAY_PID")
wait_port 19040
source_secs() { # port -> wall seconds of the smtp-source load
  local t0 t1
  t0=$(date +%s.%N)
  smtp-source -s 10 -m "$RELAY_MSGS" -l 1024 -f alice@example.test -t bob@example.test "127.0.0.1:$1" >/dev/null
  t1=$(date +%s.%N)
  python3 -c "print(round($t1 - $t0, 4))"
}
for run in $(seq "$RUNS"); do
  recv relay postfix -- source_secs 19027
  bench/postfix.sh purge "$W"
  recv relay postie -- source_secs 19040
done
kill "$RELAY_PID"; wait "$RELAY_PID" 2>/dev/null || true
# fsync calls per accepted message: one more load, not timed (strace slows the relay down)
say "relay: fsync calls per accepted message (strace -c)"
rm -rf "$XDG_DATA_HOME/postie"
strace -f -c -e trace=fsync,fdatasync -o "$W/res/strace.txt" \
  "$POSTIE" --config "$RCFG" relay --no-deliver --listen 127.0.0.1:19041 >"$W/relay-strace.log" 2>&1 &
STRACE_PID=$!; PIDS+=("$STRACE_PID")
wait_port 19041
smtp-source -s 10 -m "$RELAY_MSGS" -l 1024 -f alice@example.test -t bob@example.test 127.0.0.1:19041 >/dev/null
pkill -TERM -P "$STRACE_PID" || true   # the relay; strace prints its count when it exits
wait "$STRACE_PID" 2>/dev/null || true
syncs=$(awk '$NF == "fsync" || $NF == "fdatasync" { n += $4 } END { print n + 0 }' "$W/res/strace.txt")
rec relay_fsyncs postie "$(python3 -c "print(round($syncs / $RELAY_MSGS, 2))")"

# ---- a shared outbox on PostgreSQL ---------------------------------------------------------------
# A private cluster (bench/postgres.sh), reached over verified TLS as a shared outbox is.
PG_PORT=19432
say "shared outbox: a private PostgreSQL on 127.0.0.1:$PG_PORT"
bench/postgres.sh start "$W" $PG_PORT
PGURL="postgres://bench:bench-pw@127.0.0.1:$PG_PORT/bench"
psql_b() { PGPASSWORD=bench-pw psql -qAt -h 127.0.0.1 -p $PG_PORT -U bench -d bench "$@"; }
reset_db() {
  PGPASSWORD=bench-pw psql -qAt -h 127.0.0.1 -p $PG_PORT -U bench -d postgres \
    -c "DROP DATABASE IF EXISTS bench WITH (FORCE)" -c "CREATE DATABASE bench" >/dev/null
}
# the store alone: commit, then claim + acknowledge with a null upstream, both stores
for run in $(seq "$RUNS"); do
  for b in 32 256; do
    say "shared outbox run $run/$RUNS: $QUEUE_MSGS messages, claims of $b, PostgreSQL and SQLite"
    reset_db
    "$PB" queue --outbox "$PGURL" --ca "$CA" --messages "$QUEUE_MSGS" --workers 4 --batch $b >>"$W/res/queue.jsonl"
    rm -rf "$W/qdir"
    "$PB" queue --outbox "$W/qdir" --messages "$QUEUE_MSGS" --workers 4 --batch $b >>"$W/res/queue.jsonl"
  done
done
# 800 messages/s while another session holds a snapshot: vacuum cannot remove what the queue
# leaves behind for as long as it lasts
say "shared outbox: 800 messages/s for $STEADY_SECS s while another session holds a snapshot"
reset_db
"$PB" queue --outbox "$PGURL" --ca "$CA" --messages 1 --workers 1 >/dev/null   # the schema
psql_b -c "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM messages; SELECT pg_sleep($((STEADY_SECS + 90))); COMMIT" >/dev/null 2>&1 &
HOLD=$!; PIDS+=("$HOLD")
sleep 1
"$PB" queue --outbox "$PGURL" --ca "$CA" --rate 800 --secs "$STEADY_SECS" --workers 2 --producers 16 >>"$W/res/steady.jsonl"
rec steady_db "$(psql_b -c "SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'messages'")" \
  "$(psql_b -c "SELECT coalesce(max(age(backend_xmin)), 0) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()")"
# (the server would let the sleep run out after its client went: end it there)
psql_b -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()" >/dev/null
kill "$HOLD" 2>/dev/null || true; wait "$HOLD" 2>/dev/null || true
# 1, 2 and 3 relays (processes, each its own host id) on one database, delivering what is queued
# to the same Postfix: the rate between 10 % and 90 % delivered
fleet_cfg() { # relay number -> its config: account "bench" to Postfix 19025, its host id
  local cfg=$W/fleet/relay-$1.toml
  mkdir -p "$W/fleet"
  { account_toml 19025; printf '\n[outbox]\nca_file = "%s"\nhost_id = "bench-%s"\n' "$CA" "$1"; } >"$cfg"
  echo "$cfg"
}
drain_rate() { # messages -> delivered per second, once all are sent (fails after 300 s)
  PGPASSWORD=bench-pw python3 - "$1" "$PG_PORT" <<'PY'
import subprocess, sys, time
n, port = int(sys.argv[1]), sys.argv[2]
q = lambda sql: subprocess.run(["psql", "-qAt", "-h", "127.0.0.1", "-p", port, "-U", "bench", "-d", "bench",
                                "-c", sql], check=True, capture_output=True, text=True).stdout.strip()
t10 = t90 = None
start = time.monotonic()
while time.monotonic() - start < 300:
    sent = int(q("SELECT count(*) FROM messages WHERE state = 'sent'"))
    now = time.monotonic()
    if t10 is None and sent >= n * 0.1: t10 = now
    if t90 is None and sent >= n * 0.9: t90 = now
    if sent >= n: break
    time.sleep(0.05)
else:
    sys.exit(f"bench: {sent} of {n} messages delivered after 300 s")
left = q("SELECT count(*) FROM messages WHERE state <> 'sent'")
if left != "0": sys.exit(f"bench: {left} messages not sent")
print(round(0.8 * n / (t90 - t10), 1))
PY
}
for run in $(seq "$RUNS"); do
  for k in 1 2 3; do
    say "shared outbox run $run/$RUNS: $k relay(s) deliver $FLEET_MSGS messages to Postfix"
    reset_db
    "$PB" queue --outbox "$PGURL" --ca "$CA" --messages "$FLEET_MSGS" --producers 8 --no-drain >/dev/null
    RP=()
    for i in $(seq $k); do
      cfg=$(fleet_cfg "$i")
      POSTIE_OUTBOX=$PGURL "$POSTIE" --config "$cfg" relay --listen "127.0.0.1:$((19050 + i))" \
        </dev/null >"$W/fleet/relay-$k-$i.log" 2>&1 &
      RP+=($!); PIDS+=($!)
    done
    recv fleet "$k" -- drain_rate "$FLEET_MSGS"
    rec fleet_hosts "$k" "$(psql_b -c "SELECT string_agg(host || '=' || n, ' ' ORDER BY host) FROM (SELECT host, count(*) n FROM attempts GROUP BY host) a")"
    for p in "${RP[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${RP[@]}"; do wait "$p" 2>/dev/null || true; done
  done
done
bench/postgres.sh stop "$W"

# ---- one process per send: wall time, memory, cold start ----------------------------------------
SUB=19587 SMTPS=19465
cat >"$W/send_smtplib.py" <<PY
import smtplib, ssl, sys, os
ctx = ssl.create_default_context(cafile="$CA")
s = smtplib.SMTP("127.0.0.1", $SUB); s.starttls(context=ctx)
s.login("$AUTH_USER", os.environ["BENCH_PW"])
s.sendmail("alice@example.test", ["bob@example.test"], open(sys.argv[1], "rb").read()); s.quit()
PY
cat >"$W/attach_smtplib.py" <<PY
import smtplib, ssl, sys, os
from email.message import EmailMessage
m = EmailMessage(); m["From"] = "alice@example.test"; m["To"] = "bob@example.test"; m["Subject"] = "big"
m.set_content("big")
m.add_attachment(open(sys.argv[1], "rb").read(), maintype="application", subtype="octet-stream", filename="att30.bin")
ctx = ssl.create_default_context(cafile="$CA")
s = smtplib.SMTP("127.0.0.1", $SUB); s.starttls(context=ctx)
s.login("$AUTH_USER", os.environ["BENCH_PW"]); s.send_message(m); s.quit()
PY
SRV="--server smtp://127.0.0.1:$SUB --ca-file $CA --tls-name localhost --user $AUTH_USER --password-env BENCH_PW --from alice@example.test"
one_cmd() { # client file -> command line
  case $1 in
    postie) echo "$POSTIE send $SRV --raw $2 bob@example.test" ;;
    msmtp) echo "sh -c 'msmtp -C /dev/null --host=127.0.0.1 --port=$SUB --tls=on --tls-starttls=on --tls-trust-file=$CA --tls-host-override=localhost --auth=plain --user=$AUTH_USER --passwordeval=\"echo \$BENCH_PW\" --from=alice@example.test bob@example.test < $2'" ;;
    swaks) echo "swaks -S -s 127.0.0.1 -p $SUB -tls --tls-verify --tls-ca-path $CA -a PLAIN -au $AUTH_USER -ap $BENCH_PW -f alice@example.test -t bob@example.test --data @$2" ;;
    curl) echo "curl -sS --url smtp://localhost:$SUB --resolve localhost:$SUB:127.0.0.1 --ssl-reqd --cacert $CA --user $AUTH_USER:$BENCH_PW --mail-from alice@example.test --mail-rcpt bob@example.test --upload-file $2" ;;
    smtplib) echo "python3 $W/send_smtplib.py $2" ;;
    lettre) echo "$LETTRE_SEND --port $SUB --ca $CA --user $AUTH_USER --password-env BENCH_PW --raw $2" ;;
    postie-attach) echo "$POSTIE send $SRV --to bob@example.test --subject big --text big --attach $2" ;;
    lettre-attach) echo "$LETTRE_SEND --port $SUB --ca $CA --user $AUTH_USER --password-env BENCH_PW --attach $2" ;;
    smtplib-attach) echo "python3 $W/attach_smtplib.py $2" ;;
  esac
}
rss_kib() { # command -> peak RSS in KiB
  /usr/bin/time -o "$W/rss" -f '%M' sh -c "$1" >/dev/null 2>&1 || return 1
  tail -1 "$W/rss"
}
timed() { # label runs command: hyperfine JSON to res/hf-label.json and peak RSS
  local label=$1 runs=$2 cmd=$3
  if ! eval "$cmd" >/dev/null 2>"$W/err"; then
    # a peer that fails is reported in the table; postie failing fails the benchmark
    case $label in *postie*) echo "bench: $label failed:" >&2; cat "$W/err" >&2; exit 1 ;; esac
    rec failed "$label" "$(head -c 160 "$W/err" | tr '\n\t' '  ')"; return 0
  fi
  hyperfine -N --warmup 2 --runs "$runs" --export-json "$W/res/hf-$label.json" "$cmd" >/dev/null 2>&1 \
    || hyperfine --warmup 2 --runs "$runs" --export-json "$W/res/hf-$label.json" "$cmd" >/dev/null
  recv rss "$label" -- rss_kib "$cmd"
}
for size in small large; do
  f=$([ $size = small ] && echo "$MSG" || echo "$W/large.eml")
  for c in postie msmtp swaks curl smtplib lettre; do
    say "one process per send: $c, $size message"
    timed "$size-$c" "$HF_RUNS" "$(one_cmd $c "$f")"
  done
done
for c in postie lettre smtplib; do
  say "memory: $c attaching 30 MB"
  timed "attach-$c" "$([ $MODE = short ] && echo 1 || echo 3)" "$(one_cmd "$c-attach" "$W/att30.bin")"
done

# ---- flights of a one-shot send -----------------------------------------------------------------
# -v prints the dialogue: a flight is a run of lines the client sent before it read again
flights() { # server-url -> flights after connect
  # shellcheck disable=SC2086 # SRV is a list of options
  "$POSTIE" send ${SRV/smtp:\/\/127.0.0.1:$SUB/$1} -v --raw "$MSG" bob@example.test 2>"$W/transcript" >/dev/null
  python3 bench/flights.py "$W/transcript"
}
recv flights starttls -- flights "smtp://127.0.0.1:$SUB"
recv flights implicit -- flights "smtps://127.0.0.1:$SMTPS"
# the same by the clock: one send through the latency proxy at 50 ms and one at 100 ms per round
# trip; the difference divided by 50 ms (stalls of the client or server cancel out)
wall() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N); python3 -c "print($t1 - $t0)"; }
for m in starttls:smtp:$SUB implicit:smtps:$SMTPS; do
  IFS=: read -r name scheme port <<<"$m"
  "$PB" proxy --listen 127.0.0.1:20950 --to "127.0.0.1:$port" --rtt-ms 50 & p50=$!
  "$PB" proxy --listen 127.0.0.1:20951 --to "127.0.0.1:$port" --rtt-ms 100 & p100=$!
  PIDS+=("$p50" "$p100")
  wait_port 20950; wait_port 20951
  # shellcheck disable=SC2086 # SRV is a list of options
  t50=$(wall "$POSTIE" send ${SRV/smtp:\/\/127.0.0.1:$SUB/$scheme://127.0.0.1:20950} --raw "$MSG" bob@example.test)
  # shellcheck disable=SC2086
  t100=$(wall "$POSTIE" send ${SRV/smtp:\/\/127.0.0.1:$SUB/$scheme://127.0.0.1:20951} --raw "$MSG" bob@example.test)
  kill $p50 $p100; wait $p50 $p100 2>/dev/null || true
  recv flights_clock "$name" -- python3 -c "print(round(($t100 - $t50) / 0.05, 1))"
done

# ---- OAuth token requests -----------------------------------------------------------------------
say "OAuth: 100 concurrent sends against the sandbox provider"
"$PB" oauth --sends 100 >"$W/res/oauth.jsonl"

# ---- versions, report ---------------------------------------------------------------------------
{
  echo "postie	$("$POSTIE" --version | cut -d' ' -f2) ($(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- crates 2>/dev/null || echo ', with uncommitted changes'))"
  echo "lettre	$(grep -A1 '^name = "lettre"' bench/clients/Cargo.lock | sed -n 's/version = "\(.*\)"/\1/p')"
  echo "postfix	$(postconf -d -h mail_version 2>/dev/null)"
  echo "python	$(python3 -c 'import sys; print(sys.version.split()[0])')"
  echo "msmtp	$(msmtp --version | head -1 | grep -o '[0-9][0-9.]*' | head -1)"
  echo "swaks	$(swaks --version 2>/dev/null | head -1 | grep -o '[0-9][0-9.]*' | head -1)"
  echo "curl	$(curl --version | head -1 | cut -d' ' -f2)"
  echo "hyperfine	$(hyperfine --version | cut -d' ' -f2)"
  echo "rustc	$RUSTC_VERSION"
  echo "postgresql	$(psql --version | grep -o '[0-9][0-9.]*' | head -1)"
} >"$W/res/versions.tsv"
if [ $MODE = full ] && busy && [ -z "${BENCH_BUSY:-}" ]; then export BENCH_BUSY="cargo or rustc was running when the run ended"; fi
python3 bench/report.py "$W/res" "$MODE" "$RUNS" "$LATENCIES" >"$OUT"
say "report written to $OUT"
