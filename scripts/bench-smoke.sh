#!/usr/bin/env bash
# CI smoke for the benchmarks: every bench compiles, and the acquisition bench runs briefly
# through the simulator transport (no server needed). Figures from this run mean nothing; the
# real ones come from scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo bench --no-run
CRITERION_HOME=$(mktemp -d)
export CRITERION_HOME
trap 'rm -rf "$CRITERION_HOME"' EXIT
env -u BENCH_REDIS_PORT cargo bench --bench acquisition -- \
  --warm-up-time 0.1 --measurement-time 0.2 --sample-size 10 'acquire/sim/'
