#!/usr/bin/env bash
# Builds the OCI registry of github.com/distribution/distribution (Apache-2.0) at a pinned
# version into ~/.cache/keda-conformance/kind/go/registry-<v>/ and prints the binary's path.
# The tests use it as the "online" registry of the kind provider's pull path
# (KEDA_CONFORMANCE_IMAGE_MIRROR pointing at it on 127.0.0.1).
# Usage: scripts/kind/build-registry.sh
# Exit codes: 0 built or cached, 2 the build failed (its log is printed).
set -euo pipefail
# shellcheck source=scripts/go-build-env.sh
. "$(cd "$(dirname "$0")/.." && pwd)/go-build-env.sh"
VERSION=v3.1.2
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
dest=$cache_root/kind/go/registry-$VERSION
if [ -x "$dest/registry" ] && [ -f "$dest/.complete" ]; then echo "$dest/registry"; exit 0; fi
mkdir -p "$cache_root/kind/logs"
log=$cache_root/kind/logs/go-registry-$VERSION.log
tmp=$dest.tmp.$$
rm -rf "$tmp"; mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "build-registry.sh: go install github.com/distribution/distribution/v3/cmd/registry@$VERSION (log: $log)" >&2
if ! GOBIN=$tmp GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0 GOTOOLCHAIN=${GOTOOLCHAIN_OVERRIDE:-auto} \
    timeout 1800 nice -n 10 go install -trimpath -gcflags "$GO_GCFLAGS" -ldflags "-s -w" \
    "github.com/distribution/distribution/v3/cmd/registry@$VERSION" >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "build-registry.sh: the build failed (log: $log)" >&2
  exit 2
fi
touch "$tmp/.complete"; rm -rf "$dest"; mv "$tmp" "$dest"
echo "$dest/registry"
