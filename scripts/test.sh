#!/usr/bin/env bash
# The test command (README): installs what the tests need, then runs every check and suite.
# Usage: scripts/test.sh            (from anywhere inside the repository)
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

need() { # need COMMAND DEBIAN-PACKAGE: installs the package when the command is missing
  if ! command -v "$1" >/dev/null 2>&1; then
    step "installing $1 (Debian package $2)"
    local sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
  fi
}

# Later suites start their own redis-server on a free loopback port.
need redis-server redis-server
redis-server --version
# The cluster suites (tests/cluster_*real.rs) create and reshard a cluster with redis-cli.
need redis-cli redis-tools
redis-cli --version
# tests/metrics_endpoint.rs checks the exposition with promtool.
need promtool prometheus
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
