#!/usr/bin/env bash
# The swarm simulation at CI size: many seeds, in release (the debug default of tests/swarm.rs
# runs 600 seeds in ~30 s; release runs 10 000, each twice, in ~90 s on the 2-core machines).
#
# Usage: scripts/swarm.sh [seeds, default 10000] [first seed, default 0]
#        SIM_SEED=<n> scripts/swarm.sh    reruns one seed and prints its trace
# CARGO_LOCK (optional): a lock file taken around the build, to share the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export SIM_SEEDS="${1:-10000}"
export SIM_SEED_BASE="${2:-0}"
lock=()
if [ -n "${CARGO_LOCK:-}" ]; then lock=(flock "$CARGO_LOCK"); fi
"${lock[@]}" cargo test --release --no-run --test swarm
start=$(date +%s)
cargo test --release --test swarm -- --nocapture
echo "swarm: ${SIM_SEEDS} seeds in $(( $(date +%s) - start )) s (release)"
