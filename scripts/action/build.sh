#!/usr/bin/env bash
# The action's build step: the Go stack of the local provider (scripts/setup.sh --stack: Helm
# 3 and 4, etcd, Kubernetes, kwok, KEDA, Cortex) and the harness (cargo build --release), at
# the same time, as scripts/conformance.sh does. With a warm cache both do next to nothing.
#   ACTION_SOURCE     keda-conformance's source
#   CARGO_TARGET_DIR  where cargo builds (cached by the action)
#   ACTION_PROVIDER   kind: also the kind provider's images (scripts/setup.sh --kind)
# Writes bin=<path of keda-conformance> to $GITHUB_OUTPUT when it is set.
# Exit codes: 0 built, else the failing build's code (setup.sh: 2).
set -euo pipefail
src=${ACTION_SOURCE:?ACTION_SOURCE is not set}
: "${CARGO_TARGET_DIR:?CARGO_TARGET_DIR is not set}"
export CARGO_TARGET_DIR
cd "$src"
start=$(date +%s)
echo "::group::keda-conformance: build the stack (scripts/setup.sh --stack) and the harness (cargo build --release)"
scripts/setup.sh --stack &
setup=$!
trap 'kill "$setup" 2>/dev/null || true' EXIT
cargo_rc=0
cargo build --release --locked --bin keda-conformance || cargo_rc=$?
cargo_done=$(date +%s)
setup_rc=0
wait "$setup" || setup_rc=$?
trap - EXIT
end=$(date +%s)
echo "::endgroup::"
echo "keda-conformance: cargo build $((cargo_done - start)) s, stack and harness together $((end - start)) s"
if [ "$setup_rc" != 0 ]; then
  cache=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
  for log in "$cache"/logs/build-*.log; do
    [ -f "$log" ] || continue
    echo "::group::build log ${log##*/} (last 60 lines)"
    tail -n 60 -- "$log"
    echo "::endgroup::"
  done
  echo "::error title=keda-conformance build::scripts/setup.sh --stack failed (exit $setup_rc); the build logs are above"
  exit "$setup_rc"
fi
if [ "$cargo_rc" != 0 ]; then
  echo "::error title=keda-conformance build::cargo build --release failed (exit $cargo_rc)"
  exit "$cargo_rc"
fi
# provider: kind also readies the kind provider's images before the cache is saved: pulled
# when a registry answers; kind, kubectl, KEDA's manifest and the stand-in built into
# ~/.cache/keda-conformance/kind/go and kind/keda, which the action caches.
if [ "${ACTION_PROVIDER:-local}" = kind ]; then
  echo "::group::keda-conformance: the kind provider's images (scripts/setup.sh --kind)"
  kind_start=$(date +%s)
  kind_rc=0
  scripts/setup.sh --kind || kind_rc=$?
  echo "::endgroup::"
  echo "keda-conformance: kind images $(( $(date +%s) - kind_start )) s"
  if [ "$kind_rc" != 0 ]; then
    echo "::error title=keda-conformance build::scripts/setup.sh --kind failed (exit $kind_rc)"
    exit "$kind_rc"
  fi
fi
bin="$CARGO_TARGET_DIR/release/keda-conformance"
"$bin" --version
if [ -n "${GITHUB_OUTPUT:-}" ]; then
  echo "bin=$bin" >> "$GITHUB_OUTPUT"
fi
