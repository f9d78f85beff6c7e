#!/usr/bin/env bash
# Runs every benchmark against a redis-server of its own and writes bench-results/latest.md.
#
# Usage: scripts/bench.sh [--quick]      (from anywhere inside the repository)
#   --quick   short criterion timings (a smoke run; the figures are noisier)
#
# Starts redis-server on a free loopback port (no persistence; a TLS port beside it, with a CA and
# a server certificate made by openssl) and a cluster of three masters, runs the acquisition,
# round-trip, TLS, cluster and memory benches
# and redis-benchmark (the ceiling) against it, stops the server, and writes a
# Markdown table of medians (min–max over criterion's samples) with the target ratios, all from
# this one run. Criterion's raw data goes to bench-results/criterion/ (not committed).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    *) echo "unknown argument: $arg" >&2; exit 2 ;;
  esac
done

step() { printf '\n==> %s\n' "$*"; }

need() { # need COMMAND DEBIAN-PACKAGE
  if ! command -v "$1" >/dev/null 2>&1; then
    step "installing $2"
    local sudo=""
    if [ "$(id -u)" != "0" ]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
  fi
}
need redis-server redis-server
need redis-benchmark redis-tools
need python3 python3

OUT=bench-results
export CRITERION_HOME="$PWD/$OUT/criterion"
rm -rf "$CRITERION_HOME"
mkdir -p "$OUT" "$CRITERION_HOME"
RAW="$OUT/raw.tmp"
: >"$RAW"

# A free loopback port: nothing answers a connection there.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
PORT=""
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 20000))
  if port_free "$candidate"; then PORT=$candidate; break; fi
done
[ -n "$PORT" ] || { echo "no free port found" >&2; exit 1; }

TLS_PORT=""
for _ in $(seq 1 50); do
  candidate=$((20000 + RANDOM % 20000))
  if [ "$candidate" != "$PORT" ] && port_free "$candidate"; then TLS_PORT=$candidate; break; fi
done
[ -n "$TLS_PORT" ] || { echo "no free port found" >&2; exit 1; }

WORKDIR=$(mktemp -d)
step "making a CA and a server certificate for 127.0.0.1 (openssl)"
need openssl openssl
(
  cd "$WORKDIR"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -keyout ca.key -out ca.pem -subj /CN=redis-keeper-bench-CA \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout server.key \
    -out server.csr -subj /CN=localhost 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >server.ext
  openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -out server.pem -extfile server.ext 2>/dev/null
)
step "starting redis-server on 127.0.0.1:$PORT (TLS on $TLS_PORT)"
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$WORKDIR" \
  --logfile "$WORKDIR/redis.log" --maxclients 4096 \
  --tls-port "$TLS_PORT" --tls-cert-file "$WORKDIR/server.pem" \
  --tls-key-file "$WORKDIR/server.key" --tls-ca-cert-file "$WORKDIR/ca.pem" \
  --tls-auth-clients no &
SERVER_PID=$!
stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  rm -rf "$WORKDIR"
}
trap stop_server EXIT
for _ in $(seq 1 100); do
  if redis-cli -p "$PORT" ping >/dev/null 2>&1; then break; fi
  sleep 0.05
done
redis-cli -p "$PORT" ping >/dev/null

# Three cluster masters (no replicas) for the cluster bench, each with its bus on a port of its own.
CLUSTER_PIDS=()
CLUSTER_NODES=()
used=" $PORT $TLS_PORT "
pick_port() { # sets FREE to a free port not used yet in this run
  for _ in $(seq 1 50); do
    candidate=$((20000 + RANDOM % 20000))
    if [[ "$used" != *" $candidate "* ]] && port_free "$candidate"; then
      used="$used$candidate "
      FREE=$candidate
      return
    fi
  done
  echo "no free port found" >&2
  exit 1
}
for i in 1 2 3; do
  pick_port; node_port=$FREE
  pick_port; bus_port=$FREE
  mkdir -p "$WORKDIR/cluster$i"
  redis-server --bind 127.0.0.1 --port "$node_port" --save '' --appendonly no \
    --dir "$WORKDIR/cluster$i" --logfile "$WORKDIR/cluster$i/redis.log" \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-port "$bus_port" &
  CLUSTER_PIDS+=("$!")
  CLUSTER_NODES+=("127.0.0.1:$node_port")
done
stop_cluster() {
  for pid in "${CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap 'stop_cluster; stop_server' EXIT
for node in "${CLUSTER_NODES[@]}"; do
  for _ in $(seq 1 100); do
    if redis-cli -p "${node##*:}" ping >/dev/null 2>&1; then break; fi
    sleep 0.05
  done
done
step "creating a cluster of three masters: ${CLUSTER_NODES[*]}"
redis-cli --cluster create "${CLUSTER_NODES[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
for node in "${CLUSTER_NODES[@]}"; do
  for _ in $(seq 1 200); do
    if redis-cli -p "${node##*:}" cluster info | grep -q 'cluster_state:ok'; then break; fi
    sleep 0.05
  done
  redis-cli -p "${node##*:}" cluster info | grep -q 'cluster_state:ok'
done

export BENCH_CLUSTER_NODES
BENCH_CLUSTER_NODES=$(IFS=,; echo "${CLUSTER_NODES[*]}")
export BENCH_REDIS_PORT=$PORT
export BENCH_REDIS_TLS_PORT=$TLS_PORT
export BENCH_TLS_CA="$WORKDIR/ca.pem"
if [ "$QUICK" = 1 ]; then
  CRIT=(--warm-up-time 0.1 --measurement-time 0.3 --sample-size 10)
else
  CRIT=()
fi

step "cargo bench: acquisition"
cargo bench --bench acquisition -- "${CRIT[@]}"
step "cargo bench: roundtrip"
cargo bench --bench roundtrip -- "${CRIT[@]}"
step "cargo bench: tls"
cargo bench --bench tls -- "${CRIT[@]}"
step "cargo bench: cluster"
cargo bench --bench cluster -- "${CRIT[@]}"
step "cargo bench: memory"
cargo bench --bench memory | tee -a "$RAW"

step "redis-benchmark (the ceiling)"
N=200000
if [ "$QUICK" = 1 ]; then N=20000; fi
for c in 1 16 64; do
  line=$(redis-benchmark -h 127.0.0.1 -p "$PORT" -t get -n "$N" -c "$c" -q | tr '\r' '\n' | grep -E '^GET' | tail -1)
  echo "$line"
  echo "REDISBENCH get $c $line" >>"$RAW"
done
line=$(redis-benchmark -h 127.0.0.1 -p "$PORT" -t get -n "$N" -c 1 -P 16 -q | tr '\r' '\n' | grep -E '^GET' | tail -1)
echo "pipeline 16: $line"
echo "REDISBENCH pipeline16 1 $line" >>"$RAW"

step "machine"
{
  echo "MACHINE cpu $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "MACHINE cores $(nproc)"
  echo "MACHINE memory $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
  echo "MACHINE kernel $(uname -sr)"
  echo "MACHINE rustc $(rustc --version)"
  echo "MACHINE redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
  echo "MACHINE commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "MACHINE date $(date -u +%Y-%m-%dT%H:%MZ)"
  echo "MACHINE mode $([ "$QUICK" = 1 ] && echo quick || echo full)"
} | tee -a "$RAW"

stop_cluster
stop_server
trap - EXIT

step "writing $OUT/latest.md"
python3 scripts/bench_report.py "$CRITERION_HOME" "$RAW" >"$OUT/latest.md"
rm -f "$RAW"
echo "wrote $OUT/latest.md"
