#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every check and suite.
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

# Later suites start their own redis-server on a free loopback port; install it when missing.
if ! command -v redis-server >/dev/null 2>&1; then
  step "installing redis-server"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-server >/dev/null
fi
redis-server --version

# The cluster suites (tests/cluster_*real.rs) create and reshard a cluster with redis-cli.
if ! command -v redis-cli >/dev/null 2>&1; then
  step "installing redis-cli (Debian package redis-tools)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq redis-tools >/dev/null
fi
redis-cli --version

# tests/metrics_endpoint.rs checks the exposition with promtool (Debian's `prometheus` package).
if ! command -v promtool >/dev/null 2>&1; then
  step "installing promtool (Debian package prometheus)"
  SUDO=""
  if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq prometheus >/dev/null
fi
promtool --version | head -1

step "rustfmt"
cargo fmt --all -- --check

step "clippy (all targets, all features)"
cargo clippy --all-targets --all-features -- -D warnings

step "the library without the simulator: no features, and the default ones"
cargo check --no-default-features --lib
cargo check --lib

# The crate's dev-dependency on itself turns `sim` on for every test build.
step "tests: --no-default-features (policies, seams, config, the simulator without a runtime)"
cargo test --no-default-features

step "tests: tokio + sim"
cargo test --no-default-features --features tokio,sim

step "tests: smol + sim"
cargo test --no-default-features --features smol,sim

step "tests: all features"
cargo test --all-features

step "swarm simulation: 10 000 seeds, each twice (release)"
scripts/swarm.sh 10000

step "docs"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --all-features

step "benches compile; short acquisition smoke run (simulator)"
scripts/bench-smoke.sh

step "fuzzing: every target for a bounded time (installs cargo-fuzz when missing)"
scripts/fuzz.sh "${FUZZ_SECONDS:-20}"

echo
echo "all checks passed"
