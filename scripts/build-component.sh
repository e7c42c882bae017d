#!/usr/bin/env bash
# Builds one pinned Go component from its wrapper module under scripts/go/<name>/ and caches
# the binaries under ~/.cache/keda-conformance/stack/<name>-<version>/. A warm cache rebuilds
# nothing. Usage: scripts/build-component.sh <name>   (prints the cache directory on success)
# Exit codes: 0 built or cached, 2 build failed (the log's last lines are printed).
set -euo pipefail
name=${1:?usage: build-component.sh <name>}
here=$(cd "$(dirname "$0")" && pwd)
wrapper="$here/go/$name"
[ -f "$wrapper/component.env" ] || { echo "build-component: no wrapper module at $wrapper (expected component.env)" >&2; exit 2; }
# shellcheck disable=SC1091
. "$wrapper/component.env"
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
# The key covers the version and the wrapper module itself (component.env, go.mod and any Go
# source of ours), so a changed replace line or reference program rebuilds.
key=$(find "$wrapper" -maxdepth 1 -name '*.go' | sort | xargs cat "$wrapper/component.env" "$wrapper/go.mod" | sha256sum | cut -c1-12)
dest="$cache_root/stack/$name-$VERSION-$key"
mkdir -p "$cache_root/stack" "$cache_root/logs"
exec 9>"$cache_root/stack/.$name.lock"
flock 9
# Leftovers of an interrupted build of this component (we hold its lock, so none is running).
rm -rf "$cache_root/stack/$name-"*.tmp.* 2>/dev/null || true
# <name>-<version> always points at the build of the current wrapper module.
current="$cache_root/stack/$name-$VERSION"
if [ -f "$dest/.complete" ]; then
  ln -sfn "$dest" "$current"
  echo "$dest"
  exit 0
fi
log="$cache_root/logs/build-$name-$VERSION.log"
start=$(date +%s)
echo "build-component: building $name $VERSION (log: $log)" >&2
tmp="$dest.tmp.$$"
rm -rf "$tmp"; mkdir -p "$tmp"
export GOTOOLCHAIN=${GOTOOLCHAIN_OVERRIDE:-auto}
export GOFLAGS="-buildvcs=false -mod=mod"
export CGO_ENABLED=${CGO_ENABLED:-0}
# Compiler settings shared with the kind image builds (and so their Go build cache).
# shellcheck source=scripts/go-build-env.sh
. "$here/go-build-env.sh"
(
  cd "$wrapper"
  for pkg in $PACKAGES; do
    bin=$(basename "$pkg")
    # Optional BINARY_NAMES="base=name ...": rename the binary of a package whose last path
    # element is base (e.g. v3=etcd for go.etcd.io/etcd/server/v3).
    for map in ${BINARY_NAMES:-}; do
      if [ "${map%%=*}" = "$(basename "$pkg")" ]; then bin=${map#*=}; fi
    done
    echo "== go build $pkg -> $bin"
    go build -trimpath -tags "${TAGS:-}" -gcflags "$GO_GCFLAGS" -ldflags "${LDFLAGS:-}" -o "$tmp/$bin" "$pkg"
  done
) >"$log" 2>&1 || {
  echo "build-component: building $name $VERSION failed after $(( $(date +%s) - start ))s; last lines of $log:" >&2
  tail -n 30 "$log" >&2
  rm -rf "$tmp"
  exit 2
}
touch "$tmp/.complete"
rm -rf "$dest"; mv "$tmp" "$dest"
ln -sfn "$dest" "$current"
echo "build-component: $name $VERSION built in $(( $(date +%s) - start ))s" >&2
echo "$dest"
