#!/usr/bin/env bash
# Stress run of the unit and offline tests (nextest profile `offline`: everything that does not
# start a control plane, KEDA or Cortex): N iterations (default 20) with no retries, under a
# CPU load like a parallel build (one busy loop per core, at normal priority). Stops at the
# first failing iteration and says which. Usage: scripts/stress.sh [N]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
iterations=${1:-20}
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
"$here/setup.sh" --tests
export PATH="$cache_root/bin:$PATH"
cargo nextest run --workspace --profile offline --no-run
load=()
cleanup() { for p in "${load[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for _ in $(seq "$(nproc)"); do
  (while :; do :; done) &
  load+=("$!")
done
start=$(date +%s)
for i in $(seq "$iterations"); do
  if ! cargo nextest run --workspace --profile offline --no-tests=fail; then
    echo "stress: iteration $i of $iterations failed after $(( $(date +%s) - start ))s" >&2
    exit 1
  fi
  echo "stress: iteration $i of $iterations passed ($(( $(date +%s) - start ))s so far)" >&2
done
echo "stress: $iterations iterations passed in $(( $(date +%s) - start ))s under load" >&2
