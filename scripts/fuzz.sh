#!/usr/bin/env bash
# Runs every cargo-fuzz target for a bounded time on the stable toolchain.
#
# Usage: scripts/fuzz.sh [seconds per target, default 60] [target ...]
# Targets: config_yaml swarm request_split reply_split (all by default). Findings go to
# fuzz/artifacts/<target>/; the corpus grows in fuzz/corpus/<target>/ (its dot-files are ignored).
#
# Why `--sanitizer none`: cargo-fuzz's default AddressSanitizer needs the unstable
# `-Zsanitizer=address` flag (nightly). The crate forbids `unsafe`, so ASan has little to find,
# and without a sanitizer cargo-fuzz only passes stable codegen flags (`-Cpasses=sancov-module`,
# `-Cllvm-args=-sanitizer-coverage-*`, `--cfg fuzzing`): coverage-guided fuzzing works on stable.
# CARGO_LOCK (default /tmp/cargo.lock) serialises builds with other work on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
  TARGETS=(config_yaml swarm request_split reply_split)
fi
LOCK="${CARGO_LOCK:-/tmp/cargo.lock}"

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  flock "$LOCK" cargo install cargo-fuzz --locked
fi

# cargo-fuzz builds into fuzz/target; a CARGO_TARGET_DIR from the environment would move it.
unset CARGO_TARGET_DIR

echo "==> building ${TARGETS[*]}"
for t in "${TARGETS[@]}"; do
  flock "$LOCK" cargo fuzz build --sanitizer none "$t"
done

for t in "${TARGETS[@]}"; do
  echo "==> fuzzing $t for ${SECONDS_PER_TARGET}s"
  mkdir -p "fuzz/corpus/$t"
  # -rss_limit_mb: the swarm keeps a whole simulated world per input.
  cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=4096 -print_final_stats=1 2>&1 \
    | grep -E "^(#[0-9]+ +DONE|stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|.*panicked|Failing input|artifact_prefix)" \
    || true
  if compgen -G "fuzz/artifacts/$t/crash-*" >/dev/null; then
    echo "!! $t found a crash: fuzz/artifacts/$t/"
    exit 1
  fi
done
echo "fuzzing done"
