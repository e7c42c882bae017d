#!/usr/bin/env bash
# Makes the Tempo stand-in image (scripts/kind/build-keda.sh) available in a kind cluster under
# the image references a chart asks for: tags it as each REF in the Docker engine of
# scripts/kind/dockerd.sh, then `kind load docker-image` into CLUSTER. Pods must use
# imagePullPolicy IfNotPresent (or Never) for the loaded image to be used.
# Usage: scripts/kind/load-standin.sh CLUSTER REF...   e.g. ... kc-abc123 grafana/tempo:2.9.0
# Needs: dockerd.sh started, build.sh + build-keda.sh run (kind/build.env, kind/keda.env).
# Exit codes: 0 loaded, 2 usage or setup error, 1 tag or load failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
C=$cache_root/kind
log() { echo "load-standin.sh: $*" >&2; }
[ $# -ge 2 ] || { echo "usage: $0 CLUSTER REF..." >&2; exit 2; }
cluster=$1; shift
[ -f "$C/build.env" ] && [ -f "$C/keda.env" ] || { log "run scripts/kind/build.sh first"; exit 2; }
# shellcheck disable=SC1091
. "$C/build.env"   # KIND
# shellcheck disable=SC1091
. "$C/keda.env"    # STANDIN_IMAGE
DOCKER_HOST=${DOCKER_HOST:-$("$here/dockerd.sh" env)} || { log "no Docker engine (scripts/kind/dockerd.sh start)"; exit 2; }
export DOCKER_HOST
timeout 30 docker image inspect "$STANDIN_IMAGE" >/dev/null 2>&1 || { log "image $STANDIN_IMAGE missing: run scripts/kind/build.sh"; exit 2; }
for ref in "$@"; do
  timeout 60 docker tag "$STANDIN_IMAGE" "$ref" || { log "docker tag $STANDIN_IMAGE $ref failed"; exit 1; }
done
out=$(timeout 300 "$KIND" load docker-image "$@" --name "$cluster" 2>&1) \
  || { echo "$out" >&2; log "kind load docker-image $* into $cluster failed"; exit 1; }
log "loaded $STANDIN_IMAGE as $* into $cluster"
