#!/usr/bin/env bash
# Builds (or finds cached) everything the `local` cluster provider runs, into
# ~/.cache/keda-conformance/ (override with KEDA_CONFORMANCE_CACHE), keyed by version:
#   etcd, kube-apiserver/-controller-manager/-scheduler, kwok   (scripts/build-component.sh)
#   KEDA operator and metrics adapter, Cortex (the Mimir-API backend) for the live tier
#   kwok's default Stage YAMLs                                   (copied from the kwok module)
# A warm cache does nothing. Usage: scripts/setup-stack.sh
# Exit codes: 0 ready, 2 something could not be built or found (the message says what).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
mkdir -p "$cache_root"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "setup-stack: $1 is required but not on PATH ($2)" >&2; exit 2; }
}
need go "install Go 1.24 or newer"
# The harness starts every component through `setpriv --pdeathsig KILL` so that no component
# outlives it, even when it is killed with SIGKILL.
need setpriv "install util-linux"

start=$(date +%s)
# The builds are independent; kubernetes and KEDA dominate (about 8-10 minutes each cold on 2 cores).
pids=()
for component in etcd kubernetes kwok keda cortex; do
  "$here/build-component.sh" "$component" >/dev/null &
  pids+=("$!:$component")
done
failed=0
for entry in "${pids[@]}"; do
  if ! wait "${entry%%:*}"; then
    echo "setup-stack: building ${entry#*:} failed" >&2
    failed=1
  fi
done
[ "$failed" = 0 ] || exit 2

# kwok's default Stages (node-initialize, node-heartbeat-with-lease, pod-ready, pod-complete,
# pod-delete) from the pinned kwok module: only that module's zip is fetched.
# shellcheck disable=SC1091
kwok_version=$(. "$here/go/kwok/component.env" && echo "$VERSION")
stages="$cache_root/kwok-stages-$kwok_version"
if [ ! -f "$stages/.complete" ]; then
  dir=$(cd "$here/go/kwok" && GOFLAGS=-mod=mod go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)
  src="$dir/kustomize/stage"
  [ -d "$src" ] || { echo "setup-stack: kwok module has no kustomize/stage at $dir" >&2; exit 2; }
  # A temporary directory of this process's own: two setups at once must not share one.
  tmp="$stages.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [ -f "$src/$f" ] || { rm -rf "$tmp"; echo "setup-stack: kwok $kwok_version has no stage $f" >&2; exit 2; }
    cp "$src/$f" "$tmp/"
  done
  chmod -R u+w "$tmp"
  touch "$tmp/.complete"
  if [ ! -f "$stages/.complete" ]; then
    rm -rf "$stages"; mv "$tmp" "$stages"
  else
    rm -rf "$tmp"
  fi
fi
echo "setup-stack: ready in $(( $(date +%s) - start ))s (cache: $cache_root)" >&2
