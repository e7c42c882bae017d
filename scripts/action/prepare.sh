#!/usr/bin/env bash
# The action's first step: checks where keda-conformance's source is and writes, to
# $GITHUB_OUTPUT, the cache key and the directories the later steps use.
#   ACTION_SOURCE    keda-conformance's source (the action's own checkout unless the path input is set)
#   ACTION_CHART     the chart input (for the artifact name)
#   ACTION_HELM      the helm input (for the artifact name)
#   ACTION_ARTIFACT  the artifact-name input (may be empty)
# The keys are computed here rather than with hashFiles(), which only reads the workspace, and
# the action's files are not in it. The main cache (the built stack and the cargo target) is
# keyed by two parts: the Go stack (scripts/, whose wrapper modules pin every component) and
# the harness (Cargo.lock, Cargo.toml, harness/src), so a harness change restores the stack and
# the cargo target of the same stack and rebuilds only the harness. The Go build and module
# caches, which only a build of the stack reads, have a key of their own (the stack part).
# Exit codes: 0 written, 2 the source is not a keda-conformance checkout.
set -euo pipefail
src=${ACTION_SOURCE:?ACTION_SOURCE is not set}
out=${GITHUB_OUTPUT:?GITHUB_OUTPUT is not set (run under GitHub Actions, or point it at a file)}
if [ ! -f "$src/Cargo.toml" ] || [ ! -x "$src/scripts/setup.sh" ] || [ ! -d "$src/harness/src" ]; then
  echo "::error title=keda-conformance::$src is not a keda-conformance checkout (no Cargo.toml, scripts/setup.sh or harness/src); leave the path input empty to build the action's own source"
  exit 2
fi
src=$(cd "$src" && pwd)

# A stable hash of some files under $src: their paths and contents, in byte order of path.
hash_files() {
  (cd "$src" && find "$@" -type f -print0 2>/dev/null | LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -c1-16
}
stack=$(hash_files scripts/go scripts/setup.sh scripts/setup-stack.sh scripts/build-component.sh)
harness=$(hash_files Cargo.lock Cargo.toml harness/Cargo.toml harness/src)
os=${RUNNER_OS:-$(uname -s)}
arch=${RUNNER_ARCH:-$(uname -m)}
prefix="keda-conformance-1-$os-$arch"

# The artifacts' base name: unique per chart and Helm majors, so a matrix over either does not
# collide; only characters an artifact name may hold.
if [ -n "${ACTION_ARTIFACT:-}" ]; then
  artifact=$ACTION_ARTIFACT
else
  chart=${ACTION_CHART:-chart}
  chart=${chart%/}
  majors=$(printf '%s' "${ACTION_HELM:-3 4}" | tr -c '0-9' ' ' | tr -s ' ' | sed 's/^ //; s/ $//; s/ /-/g')
  artifact="keda-conformance-${chart##*/}-helm${majors}"
fi
artifact=$(printf '%s' "$artifact" | tr -c 'A-Za-z0-9._-' '-')

{
  echo "source=$src"
  echo "key=$prefix-stack-$stack-harness-$harness"
  echo "restore-stack=$prefix-stack-$stack-"
  echo "restore-any=$prefix-"
  echo "go-key=keda-conformance-go-1-$os-$arch-stack-$stack"
  echo "go-restore=keda-conformance-go-1-$os-$arch-"
  echo "target=$HOME/.cache/keda-conformance-target"
  echo "artifact=$artifact"
} >> "$out"
echo "keda-conformance: source $src, cache key $prefix-stack-$stack-harness-$harness, artifacts $artifact-*"
