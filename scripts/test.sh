#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs or builds what the tests need into
# ~/.cache/keda-conformance/ (reused on the next run), lints the GitHub Action, then runs
# every test with nextest.
# Extra arguments go to `cargo nextest run` (e.g. scripts/test.sh -E 'test(render)').
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/.."
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
"$here/setup.sh" --stack --tests --kind
export PATH="$cache_root/bin:$PATH"
# The GitHub Action: actionlint, zizmor and shellcheck, then the config reader's self-test.
bash "$here/lint-actions.sh"
python3 "$here/action/plan_test.py"
profile=default
if [ -n "${CI:-}" ]; then profile=ci; fi
cargo nextest run --workspace --profile "$profile" --no-tests=fail "$@"
