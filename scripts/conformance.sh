#!/usr/bin/env bash
# The main job: a conformance run of the default suite. Installs or builds what it needs
# into ~/.cache/keda-conformance/ (reused on the next run), builds the harness and runs it.
# Extra arguments go to `keda-conformance run` (e.g. --filter compactor, --junit out.xml).
# Builds only what the run needs: `--tier render` needs no cluster stack, and nothing here
# builds what only the tests use (the KEDA reference program, cargo-nextest).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
render_only=0
prev=""
for arg in "$@"; do
  if [ "$arg" = "--tier=render" ] || { [ "$prev" = "--tier" ] && [ "$arg" = "render" ]; }; then
    render_only=1
  fi
  prev=$arg
done
# The Go stack and the harness build at once: they are independent, and each alone leaves a
# core idle part of the time. The harness builds with the `main-job` profile (Cargo.toml).
if [ "$render_only" = 1 ]; then
  "$here/setup.sh" &
else
  "$here/setup.sh" --stack &
fi
setup=$!
trap 'kill "$setup" 2>/dev/null || true' EXIT
cargo build --profile main-job --quiet --bin keda-conformance
wait "$setup"
trap - EXIT
exec "${CARGO_TARGET_DIR:-target}/main-job/keda-conformance" run "$@"
