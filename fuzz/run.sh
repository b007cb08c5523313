#!/usr/bin/env bash
# Runs each cargo-fuzz target for a bounded time, on the stable toolchain, and prints the
# executions per target. A crash fails the run; its input is in fuzz/artifacts/<target>/
# (fix the bug, then keep the input in fuzz/regressions/<target>/, which a stable test replays).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 30 s, every target)
#
# Stable works with --sanitizer none (no AddressSanitizer: that needs a nightly toolchain, e.g.
# `cargo +nightly fuzz run <target>`; the targets are safe Rust, so the coverage-guided search
# and the invariant checks are what matter). New corpus entries go to a scratch directory, so
# the committed corpus (fuzz/corpus/<target>/seed-*) is only read.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-30}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(request_frame record_batch legacy_message_set legacy_request log_recover event_json detector_state)
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  cargo install cargo-fuzz --locked --version 0.13.2
fi
cargo fuzz build --sanitizer none
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
failed=0
total=0
printf '%-20s %12s %10s\n' target executions exec/s
for t in "${targets[@]}"; do
  mkdir -p "$scratch/$t"
  if cargo fuzz run --sanitizer none "$t" "$scratch/$t" "corpus/$t" -- \
      -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 >"$scratch/$t.log" 2>&1; then
    :
  else
    failed=$((failed + 1))
    echo "FUZZ CRASH in $t:" >&2
    grep -E 'panicked|SUMMARY|Failing input|artifact' -A3 "$scratch/$t.log" >&2 || tail -40 "$scratch/$t.log" >&2
  fi
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$scratch/$t.log" | grep -o '[0-9]*$' || echo 0)
  total=$((total + execs))
  printf '%-20s %12s %10s\n' "$t" "$execs" "$((execs / secs))"
done
printf '%-20s %12s\n' total "$total"
echo "fuzz: $(( ${#targets[@]} - failed )) passed, $failed failed"
[ "$failed" -eq 0 ]
