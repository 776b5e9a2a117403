#!/usr/bin/env bash
# ci/test.sh — the whole test suite: mail peers on loopback, every test, doc tests, rustfmt, clippy.
#
#   ci/test.sh [ARGS...]    ARGS go to `cargo nextest run` (or `cargo test`), e.g. a test-name filter
#
# Installs the loopback mail peers the first time (apt, pip and npm; needs root for apt and for the
# private Postfix instance), starts them, runs everything, stops them, and exits non-zero if any
# step failed. Environment:
#   MAIL_PEERS_TOOLS  where the peers' Python venv and node_modules live (default $TMPDIR/mail-peers)
#   MAIL_PEERS_DIR    the peers' run-time directory, exported for the tests (default
#                     $TMPDIR/postie-test-peers; a short path: Postfix and Dovecot put sockets there)
#   CARGO_TARGET_DIR  honoured as usual; one debug profile and one target dir serve every step
set -euo pipefail
cd "$(dirname "$0")/.."

export MAIL_PEERS_TOOLS=${MAIL_PEERS_TOOLS:-${TMPDIR:-/tmp}/mail-peers}
export MAIL_PEERS_DIR=${MAIL_PEERS_DIR:-${TMPDIR:-/tmp}/postie-test-peers}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-$([ -t 1 ] && echo auto || echo never)}

step() { printf '\n==> %s\n' "$*"; }
failed=()
run() { # name command...
  local name=$1; shift
  step "$name"
  if ! "$@" </dev/null; then failed+=("$name"); fi
}

step "mail peers: install (skipped when present)"
ci/mail-peers.sh install
step "mail peers: start in $MAIL_PEERS_DIR"
trap 'ci/mail-peers.sh stop' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
ci/mail-peers.sh start
run "mail peers: smoke check with independent clients (ci/smoke.sh)" ci/smoke.sh

if cargo nextest --version >/dev/null 2>&1; then
  run "tests (cargo nextest)" cargo nextest run --workspace --all-targets --no-fail-fast "$@"
else
  echo "cargo-nextest not found; using cargo test" >&2
  run "tests (cargo test)" cargo test --workspace --all-targets --no-fail-fast "$@"
fi
run "python package (ci/python.sh: pip install ./python, pytest)" ci/python.sh
run "doc tests" cargo test --workspace --doc
run "rustfmt" cargo fmt --all -- --check
run "clippy" cargo clippy --workspace --all-targets -- -D warnings
run "benchmark harness (bench/run.sh --short; figures not checked)" bench/run.sh --short
run "fuzzing: a short pass over every target (ci/fuzz.sh; skipped without a nightly toolchain)" ci/fuzz.sh 10

if [ ${#failed[@]} -gt 0 ]; then
  printf '\nFAILED: %s\n' "${failed[@]}" >&2
  exit 1
fi
printf '\nall checks passed\n'
