#!/usr/bin/env bash
# Builds, offline, what runs KEDA as pods in a kind cluster of scripts/kind/build.sh, plus the
# programs the kind smoke tests use, into ~/.cache/keda-conformance/kind/ (root overridable with
# KEDA_CONFORMANCE_CACHE) and the Docker engine of scripts/kind/dockerd.sh:
#   KEDA binaries    keda, keda-adapter, keda-admission-webhooks from github.com/kedacore/keda/v2
#                    (wrapper module scripts/go/keda, its version ldflags; static, CGO off)
#                                                          -> kind/go/keda-<v>-<key>/
#   KEDA images      the names KEDA's release manifest uses: ghcr.io/kedacore/keda:<v>,
#                    ghcr.io/kedacore/keda-metrics-apiserver:<v>,
#                    ghcr.io/kedacore/keda-admission-webhooks:<v> (<v> without the leading "v",
#                    as upstream's Makefile tags releases); scratch + one static binary at /,
#                    USER 65532:65532 (the manifests set runAsNonRoot), made with `docker import`
#   KEDA manifest    rendered with `kubectl kustomize` (kubectl from build.sh embeds kustomize)
#                    from a copy of the module's config/default (CRDs, operator, metrics API
#                    server, admission webhooks) through an overlay of ours that pins the image
#                    tags, sets imagePullPolicy IfNotPresent (images come from `kind load`) and
#                    stamps the version label as upstream's release target does
#                                                          -> kind/keda/keda-<v>-<key>.yaml
#   Tempo stand-in   scripts/kind/go/standin -> keda-conformance/tempo-standin:<key> (retag it as
#                    the chart's image with scripts/kind/load-standin.sh)
#   pushseries       scripts/kind/go/pushseries (remote write of one sample; host binary)
# Every artefact carries a key (hash of its inputs); a warm run only checks keys.
# Online (scripts/kind/pull.sh) the three KEDA images are pulled instead of built.
# Writes kind/keda.env (KEDA_VERSION, KEDA_MANIFEST, KEDA_IMAGES, KEDA_PULLED, STANDIN_IMAGE,
# PUSHSERIES).
# Usage: scripts/kind/build-keda.sh   (build.sh runs it; standalone it needs build.sh's kubectl:
#        KC_KUBECTL, else kind/build.env)
# Exit codes: 0 built or cached, 2 a stage failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scripts=$(cd "$here/.." && pwd)
# The Go compiler settings of every pinned build (shared with the local stack's builds).
# shellcheck source=scripts/go-build-env.sh
. "$scripts/go-build-env.sh"
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
C=$cache_root/kind
mkdir -p "$C/go" "$C/keda" "$C/logs"

# shellcheck disable=SC1091
KEDA_VERSION=$(. "$scripts/go/keda/component.env" && echo "$VERSION")
# shellcheck disable=SC1091
KEDA_LDFLAGS=$(. "$scripts/go/keda/component.env" && echo "$LDFLAGS")
KEDA_TAG=${KEDA_VERSION#v}
KEDA_MODULE=github.com/kedacore/keda/v2
KEDA_OPERATOR_IMAGE=ghcr.io/kedacore/keda:$KEDA_TAG
KEDA_ADAPTER_IMAGE=ghcr.io/kedacore/keda-metrics-apiserver:$KEDA_TAG
KEDA_WEBHOOKS_IMAGE=ghcr.io/kedacore/keda-admission-webhooks:$KEDA_TAG
LABEL=io.keda-conformance.key

log() { echo "build-keda.sh: $*" >&2; }
die() { log "$*"; exit 2; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
hash() { sha256sum | cut -c1-12; }
t0=$(date +%s)
stage_t=$t0
stage() { # stage NAME: prints the time of the previous stage
  local now; now=$(date +%s)
  [ -z "${stage_name:-}" ] || log "stage $stage_name: $(( now - stage_t ))s"
  stage_name=$1; stage_t=$now
}

exec 7>"$C/.build-keda.lock"
timeout 3600 flock 7 || die "timed out waiting for $C/.build-keda.lock"

KUBECTL=${KC_KUBECTL:-}
if [ -z "$KUBECTL" ] && [ -f "$C/build.env" ]; then
  # shellcheck disable=SC1091
  KUBECTL=$(. "$C/build.env" && echo "$KUBECTL")
fi
[ -n "$KUBECTL" ] && [ -x "$KUBECTL" ] || die "no kubectl from scripts/kind/build.sh (run it first, or set KC_KUBECTL)"

# ---------------------------------------------------------------- Go binaries
# go_build NAME VERSION WRAPPER LDFLAGS PKG=BIN...: builds in a copy of the wrapper module (the
# source tree is never modified) into $C/go/NAME-VERSION-KEY and prints that directory.
go_build() {
  local name=$1 version=$2 wrapper=$3 ldflags=$4; shift 4
  local key dest tmp work logf start spec
  key=$( { find "$wrapper" -maxdepth 1 \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 \
             | sort -z | xargs -0 cat; echo "$ldflags|$*"; } | hash)
  dest=$C/go/$name-$version-$key
  if [ -f "$dest/.complete" ]; then ln -sfn "$dest" "$C/go/$name-$version"; echo "$dest"; return 0; fi
  logf=$C/logs/go-$name-$version.log
  start=$(date +%s)
  log "go build $name $version (log: $logf)"
  tmp=$dest.tmp.$$; work=$C/go/.work-$name.$$
  rm -rf "$tmp" "$work"; mkdir -p "$tmp" "$work"
  find "$wrapper" -maxdepth 1 \( -name go.mod -o -name go.sum -o -name '*.go' \) -exec cp {} "$work/" \;
  if ! (
    cd "$work"
    export GOTOOLCHAIN=${GOTOOLCHAIN_OVERRIDE:-auto} GOFLAGS="-buildvcs=false -mod=mod" CGO_ENABLED=0
    for spec in "$@"; do
      echo "== go build ${spec%%=*} -> ${spec#*=}"
      timeout 3600 nice -n 10 go build -trimpath -gcflags "$GO_GCFLAGS" -ldflags "$ldflags" -o "$tmp/${spec#*=}" "${spec%%=*}"
    done
  ) >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2; rm -rf "$tmp" "$work"; die "go build $name failed (log: $logf)"
  fi
  rm -rf "$work"
  touch "$tmp/.complete"; rm -rf "$dest"; mv "$tmp" "$dest"; ln -sfn "$dest" "$C/go/$name-$version"
  log "go build $name: $(( $(date +%s) - start ))s"
  echo "$dest"
}
rm -rf "$C"/go/keda-*.tmp.* "$C"/go/standin-*.tmp.* "$C"/go/pushseries-*.tmp.* \
  "$C"/go/.work-keda.* "$C"/go/.work-standin.* "$C"/go/.work-pushseries.* 2>/dev/null || true

# ---------------------------------------------------------------- Docker engine
stage docker
started_docker=0
if ! DOCKER_HOST=$("$here/dockerd.sh" env 2>/dev/null); then
  DOCKER_HOST=$(timeout 900 "$here/dockerd.sh" start); started_docker=1
fi
export DOCKER_HOST
work=$(mktemp -d "$C/.work-keda.XXXXXX")
cleanup() {
  local rc=$?
  rm -rf "$work"
  if [ "$started_docker" = 1 ]; then "$here/dockerd.sh" stop >/dev/null 2>&1 || true; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

image_key() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- images to pull
# Online KEDA's release images are pulled (scripts/kind/pull.sh); all three, or all built here.
stage pull
# shellcheck source=scripts/kind/pull.sh
. "$here/pull.sh"
KEDA_PULLED=""
if kc_pull "$KEDA_OPERATOR_IMAGE" && kc_pull "$KEDA_ADAPTER_IMAGE" && kc_pull "$KEDA_WEBHOOKS_IMAGE"; then
  KEDA_PULLED="$KEDA_OPERATOR_IMAGE $KEDA_ADAPTER_IMAGE $KEDA_WEBHOOKS_IMAGE"
fi

if [ -z "$KEDA_PULLED" ]; then
stage go-keda
keda_dir=$(go_build keda "$KEDA_VERSION" "$scripts/go/keda" "$KEDA_LDFLAGS" \
  "$KEDA_MODULE/cmd/operator=keda" "$KEDA_MODULE/cmd/adapter=keda-adapter" \
  "$KEDA_MODULE/cmd/webhooks=keda-admission-webhooks")
fi
stage go-standin
standin_dir=$(go_build standin 1 "$here/go/standin" "-s -w" .=tempo-standin)
stage go-pushseries
push_dir=$(go_build pushseries 1 "$here/go/pushseries" "-s -w" .=pushseries)
keda_mod=$(cd "$C" && GOFLAGS= timeout 300 go mod download -json "$KEDA_MODULE@$KEDA_VERSION" | jq -r .Dir)
[ -f "$keda_mod/config/default/kustomization.yaml" ] || die "no config/default in the KEDA module at $keda_mod"

# ---------------------------------------------------------------- KEDA manifest
stage keda-manifest
# The image names and the version label exactly as upstream's release manifest has them: the
# images kustomize's config/{manager,metrics-server,webhooks} name, tagged with the release.
for img in ghcr.io/kedacore/keda ghcr.io/kedacore/keda-metrics-apiserver ghcr.io/kedacore/keda-admission-webhooks; do
  grep -rqs "name: $img\$" "$keda_mod/config/manager" "$keda_mod/config/metrics-server" "$keda_mod/config/webhooks" \
    || die "KEDA $KEDA_VERSION's config/ does not name the image $img"
done
overlay=$(cat <<EOF
# Written by keda-conformance scripts/kind/build-keda.sh: KEDA $KEDA_VERSION's config/default
# with release image tags, imagePullPolicy IfNotPresent (images come from kind load).
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../config/default
images:
- {name: ghcr.io/kedacore/keda, newName: ghcr.io/kedacore/keda, newTag: "$KEDA_TAG"}
- {name: ghcr.io/kedacore/keda-metrics-apiserver, newName: ghcr.io/kedacore/keda-metrics-apiserver, newTag: "$KEDA_TAG"}
- {name: ghcr.io/kedacore/keda-admission-webhooks, newName: ghcr.io/kedacore/keda-admission-webhooks, newTag: "$KEDA_TAG"}
patches:
- target: {group: apps, version: v1, kind: Deployment, namespace: keda}
  patch: |-
    - op: replace
      path: /spec/template/spec/containers/0/imagePullPolicy
      value: IfNotPresent
EOF
)
manifest_key=$( { echo "$KEDA_VERSION|$overlay"; "$KUBECTL" version --client 2>/dev/null | head -n1;
                  (cd "$keda_mod/config" && find . -type f -print0 | sort -z | xargs -0 cat); } | hash)
KEDA_MANIFEST=$C/keda/keda-$KEDA_VERSION-$manifest_key.yaml
if [ ! -s "$KEDA_MANIFEST" ]; then
  w=$(mktemp -d "$C/keda/.render.XXXXXX")
  cp -r "$keda_mod/config" "$w/config"; chmod -R u+w "$w/config"
  # As upstream's release target: the version label (app.kubernetes.io/version) of everything.
  sed -i -e "s@version:[ ].*@version: $KEDA_TAG@" "$w/config/default/kustomize-config/metadataLabelTransformer.yaml"
  mkdir "$w/overlay"; echo "$overlay" >"$w/overlay/kustomization.yaml"
  timeout 300 "$KUBECTL" kustomize "$w/overlay" >"$w/out.yaml" 2>"$w/err.log" \
    || { cat "$w/err.log" >&2; rm -rf "$w"; die "kubectl kustomize of KEDA's config/default failed"; }
  # What the smoke test relies on: the three images by their release names, nothing pulled.
  for img in "$KEDA_OPERATOR_IMAGE" "$KEDA_ADAPTER_IMAGE" "$KEDA_WEBHOOKS_IMAGE"; do
    grep -q "image: $img\$" "$w/out.yaml" || { rm -rf "$w"; die "rendered KEDA manifest lacks image $img"; }
  done
  ! grep -q 'imagePullPolicy: Always' "$w/out.yaml" || { rm -rf "$w"; die "rendered KEDA manifest still pulls Always"; }
  for kind in CustomResourceDefinition Deployment APIService ValidatingWebhookConfiguration; do
    grep -q "^kind: $kind\$" "$w/out.yaml" || { rm -rf "$w"; die "rendered KEDA manifest has no $kind"; }
  done
  mv "$w/out.yaml" "$KEDA_MANIFEST"; rm -rf "$w"
  find "$C/keda" -maxdepth 1 -name "keda-*.yaml" ! -name "$(basename "$KEDA_MANIFEST")" -delete
fi
log "KEDA manifest: $KEDA_MANIFEST ($(grep -c '^kind: ' "$KEDA_MANIFEST") objects)"


# ---------------------------------------------------------------- images
stage images
# static_image NAME KEY USER ENTRYPOINT-JSON SRC=DEST...: scratch + static binaries, /etc/passwd
# and /etc/group naming the user, CA certificates, /tmp; `docker import`, no registry.
static_image() {
  local name=$1 key=$2 user=$3 entry=$4; shift 4
  [ "$(image_key "$name")" = "$key" ] && return 0
  local d=$work/img spec
  rm -rf "$d"; mkdir -p "$d/etc/ssl/certs" "$d/tmp"
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\ntempo:x:10001:10001:tempo:/tmp:/sbin/nologin\n' >"$d/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\ntempo:x:10001:\n' >"$d/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
  for spec in "$@"; do mkdir -p "$(dirname "$d/${spec#*=}")"; cp -P "${spec%%=*}" "$d/${spec#*=}"; done
  tar -C "$d" --numeric-owner --owner=0 --group=0 -c . | timeout 600 docker import \
    --change "USER $user" --change "ENTRYPOINT $entry" --change "LABEL $LABEL=$key" - "$name" >/dev/null
  rm -rf "$d"
}
img_key() { echo "$1|$(sed -n '/^static_image() {$/,/^}$/p' "$0" | hash)" | hash; }
if [ -z "$KEDA_PULLED" ]; then
  static_image "$KEDA_OPERATOR_IMAGE" "$(img_key "$keda_dir/keda")" 65532:65532 '["/keda"]' "$keda_dir/keda=keda"
  static_image "$KEDA_ADAPTER_IMAGE" "$(img_key "$keda_dir/keda-adapter")" 65532:65532 '["/keda-adapter"]' \
    "$keda_dir/keda-adapter=keda-adapter"
  static_image "$KEDA_WEBHOOKS_IMAGE" "$(img_key "$keda_dir/keda-admission-webhooks")" 65532:65532 \
    '["/keda-admission-webhooks"]' "$keda_dir/keda-admission-webhooks=keda-admission-webhooks"
fi
standin_key=$(img_key "$standin_dir")
STANDIN_IMAGE=keda-conformance/tempo-standin:$standin_key
# /tempo too: where the official image keeps its binary, for charts that set `command`.
ln -sfn tempo-standin "$work/tempo"
static_image "$STANDIN_IMAGE" "$standin_key" 10001:10001 '["/tempo-standin"]' \
  "$standin_dir/tempo-standin=tempo-standin" "$work/tempo=tempo"
rm -f "$work/tempo"
# Earlier stand-in builds (other keys).
for ref in $(docker images --format '{{.Repository}}:{{.Tag}}' keda-conformance/tempo-standin); do
  [ "$ref" = "$STANDIN_IMAGE" ] || timeout 120 docker rmi "$ref" >/dev/null 2>&1 || true
done
timeout 300 docker image prune -f --filter "label=$LABEL" >/dev/null || true

stage done
{ echo "KEDA_VERSION=$KEDA_VERSION"; echo "KEDA_MANIFEST=$KEDA_MANIFEST";
  echo "KEDA_IMAGES=\"$KEDA_OPERATOR_IMAGE $KEDA_ADAPTER_IMAGE $KEDA_WEBHOOKS_IMAGE\"";
  echo "KEDA_PULLED=\"$KEDA_PULLED\""; echo "STANDIN_IMAGE=$STANDIN_IMAGE"; echo "PUSHSERIES=$push_dir/pushseries"; } >"$C/keda.env"
sizes=$(for i in "$KEDA_OPERATOR_IMAGE" "$KEDA_ADAPTER_IMAGE" "$KEDA_WEBHOOKS_IMAGE" "$STANDIN_IMAGE"; do
  docker image inspect --format '{{.Size}}' "$i" | awk -v n="${i##*/}" '{printf "%s %d MB, ", n, $1/1e6}'; done)
log "ready in $(( $(date +%s) - t0 ))s: ${sizes%, }"
