#!/usr/bin/env bash
# Installs or builds everything keda-conformance needs, into ~/.cache/keda-conformance/
# (override with KEDA_CONFORMANCE_CACHE), keyed by version; a warm cache does nothing.
#   scripts/setup.sh           render tier: Helm 3 and 4, KEDA CRDs
#   scripts/setup.sh --stack   also the `local` provider's stack (scripts/setup-stack.sh)
#   scripts/setup.sh --tests   also what only the tests use: the KEDA reference program (the
#                              differential parser test) and cargo-nextest (may follow --stack)
#   scripts/setup.sh --kind    also the `kind` provider's images (scripts/kind/build.sh, in the
#                              Docker engine scripts/kind/dockerd.sh finds or starts; a private
#                              dockerd started for the build is stopped after it)
# Exit codes: 0 ready, 2 something could not be installed (the message says what).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
mkdir -p "$cache_root/bin"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "setup: $1 is required but not on PATH ($2)" >&2; exit 2; }
}
need go "install Go 1.24 or newer"
need cargo "install Rust with rustup"
need setsid "install util-linux"

stack=0
tests=0
kind=0
for arg in "$@"; do
  case "$arg" in
    --stack) stack=1 ;;
    --tests) tests=1 ;;
    --kind) kind=1 ;;
    *) echo "setup: unknown argument $arg (use --stack, --tests and/or --kind)" >&2; exit 2 ;;
  esac
done

# Helm 3 and Helm 4 from their Go modules, and with --stack the local provider's stack, all at
# once: they are independent, and each build leaves a core idle part of the time (module
# downloads, links). Nothing below needs them until the end.
# Each runs in a process group of its own (setsid, util-linux like setpriv), so that when this
# script ends early (a failure, SIGINT, SIGTERM) the whole group goes: the script, `go build`
# and the compilers under it, not only the script.
pids=()
setsid "$here/build-component.sh" helm3 >/dev/null &
pids+=("$!:building helm3")
setsid "$here/build-component.sh" helm4 >/dev/null &
pids+=("$!:building helm4")
if [ "$stack" = 1 ]; then
  setsid "$here/setup-stack.sh" &
  pids+=("$!:scripts/setup-stack.sh")
fi
stop_builds() {
  local entry
  for entry in "${pids[@]}"; do kill -- "-${entry%%:*}" 2>/dev/null || true; done
}
trap stop_builds EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
wait_all() {
  local failed=0 entry
  for entry in "${pids[@]}"; do
    wait "${entry%%:*}" || { echo "setup: ${entry#*:} failed" >&2; failed=1; }
  done
  pids=()
  [ "$failed" = 0 ] || exit 2
}

# KEDA's own prometheus scaler as a reference program for the differential parser test.
if [ "$tests" = 1 ]; then
  "$here/build-component.sh" keda-reference >/dev/null || { echo "setup: building keda-reference failed" >&2; exit 2; }
fi

# KEDA's CRDs from the pinned KEDA Go module (only that module's zip is fetched).
keda_version=v2.20.2
crds="$cache_root/keda-crds-$keda_version"
if [ ! -f "$crds/keda.sh_scaledobjects.yaml" ]; then
  echo "setup: fetching KEDA $keda_version CRDs from the Go module proxy" >&2
  dir=$(cd "$here/go/helm3" && GOFLAGS=-mod=mod go mod download -json "github.com/kedacore/keda/v2@$keda_version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$dir/config/crd/bases" ] || { echo "setup: KEDA module has no config/crd/bases at $dir" >&2; exit 2; }
  # A temporary directory of this process's own: two setups at once must not share one.
  tmp="$crds.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  cp "$dir"/config/crd/bases/*.yaml "$tmp/"
  chmod -R u+w "$tmp"
  if [ ! -f "$crds/keda.sh_scaledobjects.yaml" ]; then
    rm -rf "$crds"; mv "$tmp" "$crds"
  else
    rm -rf "$tmp"
  fi
fi

# cargo-nextest, built from crates.io at a pinned version (the tests' runner).
nextest_version=0.9.128
if [ "$tests" = 1 ]; then
nextest_root="$cache_root/cargo-nextest-$nextest_version"
if [ ! -x "$nextest_root/bin/cargo-nextest" ]; then
  echo "setup: building cargo-nextest $nextest_version (a few minutes, once)" >&2
  cargo install --quiet --locked --root "$nextest_root.tmp" --version "$nextest_version" cargo-nextest >&2
  rm -rf "$nextest_root"; mv "$nextest_root.tmp" "$nextest_root"
fi
ln -sf "$nextest_root/bin/cargo-nextest" "$cache_root/bin/cargo-nextest"
fi
wait_all
if [ "$kind" = 1 ]; then
  started_docker=0
  if ! DOCKER_HOST=$("$here/kind/dockerd.sh" env 2>/dev/null); then
    DOCKER_HOST=$(timeout 900 "$here/kind/dockerd.sh" start) || { echo "setup: no Docker engine for the kind images" >&2; exit 2; }
    started_docker=1
  fi
  export DOCKER_HOST
  echo "setup: building or checking the kind images (cold: about 25 minutes on 2 cores)" >&2
  rc=0
  timeout 7200 "$here/kind/build.sh" >/dev/null || rc=$?
  if [ "$started_docker" = 1 ]; then "$here/kind/dockerd.sh" stop || true; fi
  [ "$rc" = 0 ] || { echo "setup: scripts/kind/build.sh failed (exit $rc)" >&2; exit 2; }
  if [ "$tests" = 1 ]; then
    # The registry the kind tests pull from (harness/tests/kind_provider.rs).
    timeout 1800 "$here/kind/build-registry.sh" >/dev/null || { echo "setup: scripts/kind/build-registry.sh failed" >&2; exit 2; }
  fi
fi
echo "setup: ready (cache: $cache_root)" >&2
