#!/usr/bin/env bash
# Mutation testing of the pure policies (src/policy) with cargo-mutants.
#
# Usage: scripts/mutants.sh [extra cargo-mutants args]     (e.g. -F breaker to examine a subset)
# Env:   MUTANTS_TIMEOUT  test timeout per mutant in seconds (default 30; the suite takes ~2 s)
#        MUTANTS_JOBS     parallel mutants (default 1: the machines have 2 cores)
#        CARGO_LOCK       a lock file each cargo invocation takes (default /tmp/cargo.lock), so
#                         that mutants share the machine with other builds one build at a time
#
# The policies build and test without any runtime, so mutants are built with
# --no-default-features and only the library's unit tests run (`cargo test --lib`): the policy
# tests live next to the code. The report goes to mutants.out/ (outcomes.json, caught.txt,
# missed.txt, …); the last line printed is the share of viable mutants caught.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo-mutants >/dev/null 2>&1; then
  echo "==> installing cargo-mutants"
  cargo install cargo-mutants --locked
fi

REAL_CARGO="$(command -v cargo)"
LOCK="${CARGO_LOCK:-/tmp/cargo.lock}"
WRAP="$(mktemp -d)/cargo"
# Builds (`cargo test --no-run`, `cargo build`, …) take the lock; the test run that follows
# each build compiles nothing, and is not made to wait for the lock (the wait would count
# against the mutant's test timeout).
cat > "$WRAP" <<WRAPPER
#!/usr/bin/env bash
case " \$* " in
  *" test "*" --no-run "*) exec flock "$LOCK" "$REAL_CARGO" "\$@" ;;
  *" test "*) exec "$REAL_CARGO" "\$@" ;;
  *) exec flock "$LOCK" "$REAL_CARGO" "\$@" ;;
esac
WRAPPER
chmod +x "$WRAP"

# cargo-mutants calls back into cargo through \$CARGO; run the binary directly so that cargo
# does not overwrite it with its own path.
status=0
CARGO="$WRAP" cargo-mutants mutants \
  --file 'src/policy/**' \
  --no-default-features \
  --cargo-test-arg=--lib \
  --timeout "${MUTANTS_TIMEOUT:-30}" \
  --jobs "${MUTANTS_JOBS:-1}" \
  --no-times \
  "$@" || status=$?

# Exit codes: 0 all caught, 2 some missed, 3 timeouts; anything else is a failure of the run.
if [ -f mutants.out/outcomes.json ]; then
  python3 - <<'PY'
import json
o = json.load(open("mutants.out/outcomes.json"))
c = {k: o.get(k, 0) for k in ("caught", "missed", "timeout", "unviable")}
viable = c["caught"] + c["missed"] + c["timeout"]
share = 100.0 * (c["caught"] + c["timeout"]) / viable if viable else 100.0
print(f"mutants: {c['caught']} caught, {c['timeout']} timeout, {c['missed']} missed, "
      f"{c['unviable']} unviable; caught {share:.1f}% of {viable} viable")
PY
fi
case "$status" in 0|2|3) exit 0 ;; *) exit "$status" ;; esac
