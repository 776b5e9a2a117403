#!/usr/bin/env bash
# ci/fuzz.sh [SECONDS] — a short fuzzing pass over every target of fuzz/ (SECONDS each, default 10),
# where a nightly toolchain exists (libFuzzer needs one; without it this says so and exits 0: the
# kept corpus is still replayed on stable by crates/postie-proto/tests/fuzz_corpus.rs).
#
# The kept corpus, fuzz/corpus/TARGET, is read; the inputs the fuzzers find interesting go to a
# temporary directory, unless KEEP=1 (then into fuzz/corpus/TARGET: after a longer run,
# `KEEP=1 ci/fuzz.sh 300`, minimise with `cargo +nightly fuzz cmin TARGET` and commit). An input
# that fails is copied to fuzz/regressions/TARGET, to be kept in the repository, and fails the run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
SECS=${1:-10}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "ci/fuzz.sh: no nightly toolchain; skipped (the corpus replay runs in the test suite)"
  exit 0
fi
command -v cargo-fuzz >/dev/null || cargo install --locked --quiet cargo-fuzz
NEW=$(mktemp -d); trap 'rm -rf "$NEW"' EXIT
failed=()
for t in $(cargo +nightly fuzz list); do
  mkdir -p "corpus/$t"; rm -rf "artifacts/$t"
  if [ "${KEEP:-0}" = 1 ]; then dirs=("corpus/$t"); else dirs=("$NEW/$t" "corpus/$t"); mkdir -p "$NEW/$t"; fi
  echo "==> fuzz $t for ${SECS}s"
  if ! cargo +nightly fuzz run "$t" "${dirs[@]}" -- -max_total_time="$SECS" -max_len=4096 \
      -print_final_stats=1 2>&1 | grep -E '^(stat::number_of_executed_units|stat::new_units_added)|panicked|ERROR|SUMMARY'; then
    :
  fi
  if compgen -G "artifacts/$t/*" >/dev/null; then
    mkdir -p "regressions/$t"
    cp artifacts/"$t"/* "regressions/$t/"
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "ci/fuzz.sh: failing inputs kept in fuzz/regressions/ for: ${failed[*]}" >&2
  exit 1
fi
