#!/usr/bin/env bash
# Fuzzes the validator (fuzz/, cargo-fuzz with libFuzzer) for a bounded time and fails on a
# crash or a broken invariant (see fuzz/src/lib.rs). Installs cargo-fuzz when missing.
#
#   scripts/fuzz.sh [SECONDS]        (default 300)
#
# The instrumented build is cached beside Quarry's (CARGO_TARGET_DIR/fuzz); the corpus grows
# in fuzz/corpus/validate (git-ignored) and a crash lands in fuzz/artifacts/validate.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-300}"
case "$seconds" in ''|*[!0-9]*) echo "fuzz.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;; esac
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export RUSTC_BOOTSTRAP=1
target="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/quarry/target}/fuzz"
mkdir -p corpus/validate
mkdir -p "$target"
log="$target/last-run.log"
echo "fuzzing the validator for $seconds s (full log: $log)"
# The summary lines: coverage at the end, the final stats, and a crash's report if any.
cargo fuzz run validate --target-dir "$target" corpus/validate -- \
  -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 2>&1 | tee "$log" \
  | grep -E "DONE|stat::|panicked|ERROR|SUMMARY|Test unit written|Minimize"
