#!/usr/bin/env bash
# The action's main step: reads the chart's config (plan.py), checks out the base branch's
# chart, then for each values file and Helm major runs `keda-conformance render --format
# github` (annotations on the values lines, a report in the step summary) and `keda-conformance
# qualify --previous <base chart>` (render, live scaling and the upgrade from the base chart),
# and writes one summary. Runs from the repository checkout (GITHUB_WORKSPACE, else the current
# directory), so the annotations' paths are the repository's.
#   ACTION_CHART       chart directory, relative to the checkout
#   ACTION_CONFIG      config file (empty: <chart>/ci/keda-conformance.yaml)
#   ACTION_BASE_REF    base branch, tag or commit (empty: GITHUB_BASE_REF; neither: no upgrade check)
#   ACTION_HELM        Helm majors asked for ("3 4")
#   ACTION_PROVIDER    cluster provider: local (default) or kind (real pods in Docker)
#   KEDA_CONFORMANCE_BIN  the keda-conformance binary
#   ACTION_SOURCE      its source (for suites/default; default: this action's checkout)
#   ACTION_WORK_DIR    where results go (default: $RUNNER_TEMP/keda-conformance); emptied first
#   GITHUB_STEP_SUMMARY, GITHUB_OUTPUT  as the runner sets them (either may be unset)
# Results: <work>/results/<values>/helm<N>/{qualify.md,junit.xml,evidence/}; the outputs are
# results-dir, junit-files (a glob) and exit-code.
# Exit code: the first failing qualify's (1 a check failed, 2 bad input, 130 interrupted), else
# the first failing render's, else 0. A config or input error is 2, before anything runs.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "${GITHUB_WORKSPACE:-$PWD}"
bin=${KEDA_CONFORMANCE_BIN:?KEDA_CONFORMANCE_BIN is not set}
work=${ACTION_WORK_DIR:-${RUNNER_TEMP:-${TMPDIR:-/tmp}}/keda-conformance}
summary=${GITHUB_STEP_SUMMARY:-/dev/null}
outputs=${GITHUB_OUTPUT:-/dev/null}

rm -rf -- "$work/plan" "$work/results" "$work/summary"
mkdir -p -- "$work/plan" "$work/results" "$work/summary"
{
  echo "results-dir=$work/results"
  echo "junit-files=$work/results/**/junit.xml"
} >> "$outputs"

# 1. The plan: which values files, headers, suites and Helm majors (exit 2 on a bad config).
plan_rc=0
python3 "$here/plan.py" --chart "${ACTION_CHART:-}" --config "${ACTION_CONFIG:-}" \
  --helm "${ACTION_HELM:-3 4}" --provider "${ACTION_PROVIDER:-local}" \
  --workspace "$PWD" --out "$work/plan" || plan_rc=$?
if [ "$plan_rc" != 0 ]; then
  echo "exit-code=$plan_rc" >> "$outputs"
  exit "$plan_rc"
fi
chart=$(cat "$work/plan/chart")
config=$(cat "$work/plan/config")
mapfile -t values < "$work/plan/values"
mapfile -t headers < "$work/plan/headers"
mapfile -t suites < "$work/plan/suites"
mapfile -t helms < "$work/plan/helm"
if [ "${#helms[@]}" = 0 ]; then
  msg="$config allows none of the Helm majors asked for (${ACTION_HELM:-3 4}): nothing to run"
  echo "::notice title=keda-conformance::$msg"
  printf "## keda-conformance: \`%s\`\n\n%s\n" "$chart" "$msg" >> "$summary"
  echo "exit-code=0" >> "$outputs"
  exit 0
fi
render_args=()
for h in "${headers[@]}"; do render_args+=(--expect-header "$h"); done
suite_args=()
for s in "${suites[@]}"; do suite_args+=(--suite "$s"); done
# The default suite is that of the keda-conformance built (ACTION_SOURCE, else the action's
# own), wherever the step runs.
suites_root="${ACTION_SOURCE:-$here/../..}/suites"
if [ -z "${KEDA_CONFORMANCE_SUITES:-}" ] && [ -d "$suites_root" ]; then
  KEDA_CONFORMANCE_SUITES=$(cd "$suites_root" && pwd)
  export KEDA_CONFORMANCE_SUITES
fi

# 2. The base branch's chart, in a worktree of its own (no fetch when the checkout has the
# base, as with fetch-depth: 0; else one shallow fetch without credentials, which reaches
# public repositories only).
base_ref=${ACTION_BASE_REF:-${GITHUB_BASE_REF:-}}
base_note=""
previous_args=()
base_dir="$work/base"
cleanup() {
  if [ -e "$base_dir" ]; then
    git worktree remove --force "$base_dir" >/dev/null 2>&1 || rm -rf -- "$base_dir"
    git worktree prune >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT
cleanup
if [ -z "$base_ref" ]; then
  base_note="no base ref (not a pull request, and the base-ref input is empty): the upgrade from the base chart is not checked"
  echo "::notice title=keda-conformance::$base_note"
else
  case "$base_ref" in
    -* | *[[:space:]]*) echo "::error title=keda-conformance::base ref '$base_ref' is not a branch, tag or commit"; echo "exit-code=2" >> "$outputs"; exit 2 ;;
  esac
  rev=""
  for candidate in "refs/remotes/origin/$base_ref" "$base_ref"; do
    if rev=$(git rev-parse --verify --quiet "$candidate^{commit}" 2>/dev/null); then
      break
    fi
    rev=""
  done
  if [ -z "$rev" ]; then
    echo "keda-conformance: $base_ref is not in the checkout; fetching it (one commit)"
    if timeout 300 git fetch --quiet --no-tags --depth=1 origin "$base_ref"; then
      rev=$(git rev-parse --verify --quiet "FETCH_HEAD^{commit}" || true)
    fi
  fi
  if [ -z "$rev" ]; then
    msg="cannot find the base ref $base_ref in the checkout; check out with fetch-depth: 0 (or set the base-ref input to a commit it has)"
    echo "::error title=keda-conformance::$msg"
    echo "exit-code=2" >> "$outputs"
    exit 2
  fi
  git worktree add --quiet --detach -- "$base_dir" "$rev"
  short=$(git rev-parse --short "$rev")
  if [ -f "$base_dir/$chart/Chart.yaml" ]; then
    previous_args=(--previous "$base_dir/$chart")
    base_note="upgrade from \`$chart\` at \`$base_ref\` ($short)"
  else
    base_note="\`$chart\` does not exist at \`$base_ref\` ($short): a new chart, so no upgrade is checked"
    echo "::notice title=keda-conformance::$base_note"
  fi
fi

# 3. Render and qualify each values file on each Helm major.
verdict() { case "$1" in 0) echo pass ;; 1) echo "**FAIL**" ;; *) echo "**error (exit $1)**" ;; esac; }
# A workflow command's property value, escaped as the runner expects.
escape_property() {
  local s=${1//%/%25}
  s=${s//$'\r'/%0D}; s=${s//$'\n'/%0A}; s=${s//:/%3A}; s=${s//,/%2C}
  printf '%s' "$s"
}
# Lines a chart or its logs print must not act as workflow commands: qualify's output runs
# between ::stop-commands:: and its token (render --format github emits its commands itself).
token=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
first_qualify=0
first_render=0
rows=()
for v in "${values[@]}"; do
  slug=$(printf '%s' "${v#"$chart"/}" | tr -c 'A-Za-z0-9._-' '_')
  for h in "${helms[@]}"; do
    render_md="$work/summary/render-$slug-helm$h.md"
    : > "$render_md"
    render_rc=0
    GITHUB_STEP_SUMMARY="$render_md" "$bin" render --chart "$chart" -f "$v" --helm "$h" \
      "${render_args[@]}" --format github || render_rc=$?
    if [ "$render_rc" != 0 ] && [ "$first_render" = 0 ]; then first_render=$render_rc; fi

    dir="$work/results/$slug/helm$h"
    mkdir -p -- "$dir"
    echo "::group::keda-conformance qualify $chart with $v on Helm $h"
    echo "::stop-commands::$token"
    start=$(date +%s)
    qualify_rc=0
    "$bin" qualify --provider "${ACTION_PROVIDER:-local}" --chart "$chart" "${previous_args[@]}" -f "$v" "${suite_args[@]}" --helm "$h" \
      --markdown "$dir/qualify.md" --junit "$dir/junit.xml" --out "$dir/evidence" || qualify_rc=$?
    seconds=$(($(date +%s) - start))
    echo "::$token::"
    echo "::endgroup::"
    echo "keda-conformance: qualify $v on Helm $h: exit $qualify_rc in $seconds s"
    if [ "$qualify_rc" != 0 ]; then
      [ "$first_qualify" != 0 ] || first_qualify=$qualify_rc
      echo "::error file=$(escape_property "$v"),title=keda-conformance qualify::qualify of $chart with $v on Helm $h failed (exit $qualify_rc); the job summary has the table, the evidence artifact the details"
    fi
    rows+=("| \`$v\` | $h | $(verdict "$render_rc") | $(verdict "$qualify_rc") | ${seconds} s |")
  done
done

# 4. The summary: an overview, then each qualify table and render report.
rc=$first_qualify
[ "$rc" != 0 ] || rc=$first_render
{
  printf "## keda-conformance: \`%s\` %s\n\n" "$chart" "$([ "$rc" = 0 ] && echo passes || echo fails)"
  printf "Config \`%s\` · provider %s · %s\n\n" "$config" "${ACTION_PROVIDER:-local}" "${base_note:-no upgrade check}"
  echo "| values | Helm | render | qualify | qualify time |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  for v in "${values[@]}"; do
    slug=$(printf '%s' "${v#"$chart"/}" | tr -c 'A-Za-z0-9._-' '_')
    for h in "${helms[@]}"; do
      printf "### qualify \`%s\` on Helm %s\n\n" "$v" "$h"
      if [ -s "$work/results/$slug/helm$h/qualify.md" ]; then
        cat -- "$work/results/$slug/helm$h/qualify.md"
      else
        echo "qualify wrote no summary (see the log of this step)."
      fi
      echo
    done
  done
  for v in "${values[@]}"; do
    slug=$(printf '%s' "${v#"$chart"/}" | tr -c 'A-Za-z0-9._-' '_')
    for h in "${helms[@]}"; do
      if [ -s "$work/summary/render-$slug-helm$h.md" ]; then
        printf '<details><summary>render report: <code>%s</code> on Helm %s</summary>\n\n' "$v" "$h"
        cat -- "$work/summary/render-$slug-helm$h.md"
        printf '\n</details>\n\n'
      fi
    done
  done
} >> "$summary"
echo "exit-code=$rc" >> "$outputs"
exit "$rc"
