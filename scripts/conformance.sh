#!/usr/bin/env bash
# The main job: a conformance run of the default suite. Installs or builds what it needs
# into ~/.cache/keda-conformance/ (reused on the next run), builds the harness and runs it.
# Extra arguments go to `keda-conformance run` (e.g. --filter compactor, --junit out.xml).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
"$here/setup.sh"
if [ -x "$here/setup-stack.sh" ]; then
  "$here/setup-stack.sh"
fi
cargo build --release --quiet --bin keda-conformance
exec ./target/release/keda-conformance run "$@"
