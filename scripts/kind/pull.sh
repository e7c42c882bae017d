# shellcheck shell=bash
# Sourced by scripts/kind/build.sh and build-keda.sh (needs their log/die and DOCKER_HOST):
# where the node, backend and KEDA images come from.
#   KEDA_CONFORMANCE_KIND_IMAGES   auto (default): pulled when a registry answers, else built
#                                  here; pull: pulled or the pipeline fails; build: built here.
#   KEDA_CONFORMANCE_IMAGE_MIRROR  host[:port][/path] of a registry mirror (a pull-through
#                                  cache): REF is pulled as <mirror>/<registry>/<path>, e.g.
#                                  ghcr.io/kedacore/keda:2.20.2 as <mirror>/ghcr.io/kedacore/keda:2.20.2,
#                                  then tagged as REF.
# After the first pull that finds no registry at all, `auto` tries no further pull
# (KC_REGISTRY_UNREACHABLE, exported to the scripts this one starts).

KC_IMAGES_POLICY=${KEDA_CONFORMANCE_KIND_IMAGES:-auto}
case "$KC_IMAGES_POLICY" in
  auto|pull|build) ;;
  *) die "KEDA_CONFORMANCE_KIND_IMAGES=$KC_IMAGES_POLICY: set it to auto (default), pull or build" ;;
esac
KC_IMAGE_MIRROR=${KEDA_CONFORMANCE_IMAGE_MIRROR:-}
KC_IMAGE_MIRROR=${KC_IMAGE_MIRROR%/}
if [ -n "$KC_IMAGE_MIRROR" ] && ! [[ $KC_IMAGE_MIRROR =~ ^[A-Za-z0-9][A-Za-z0-9.-]*(:[0-9]{1,5})?(/[a-z0-9][a-z0-9._-]*)*$ ]]; then
  die "KEDA_CONFORMANCE_IMAGE_MIRROR=$KC_IMAGE_MIRROR is not host[:port][/path]"
fi

# kc_valid_ref REF: an image reference that cannot be read as a flag.
kc_valid_ref() { [[ $1 =~ ^[A-Za-z0-9][A-Za-z0-9._/:@-]{0,511}$ ]]; }

# kc_mirror_ref REF: REF as the mirror serves it (<mirror>/<registry host>/<path>...).
kc_mirror_ref() {
  local ref=$1 first=${1%%/*}
  if [[ $ref != */* ]]; then
    ref=docker.io/library/$ref
  elif [[ $first != *.* && $first != *:* && $first != localhost ]]; then
    ref=docker.io/$ref
  fi
  echo "$KC_IMAGE_MIRROR/$ref"
}

# kc_pull REF: 0 when REF was pulled into the engine (through the mirror when set; then the
# engine knows it as kc_pulled_name REF), 1 when it is to be built here.
kc_pull() {
  local ref=$1 src out
  [ "$KC_IMAGES_POLICY" != build ] || return 1
  if [ "$KC_IMAGES_POLICY" = auto ] && [ "${KC_REGISTRY_UNREACHABLE:-0}" = 1 ]; then return 1; fi
  kc_valid_ref "$ref" || die "not an image reference: $ref"
  src=$ref
  [ -z "$KC_IMAGE_MIRROR" ] || src=$(kc_mirror_ref "$ref")
  local rc=0
  out=$(timeout 900 docker pull -q -- "$src" 2>&1) || rc=$?
  if [ "$rc" = 0 ]; then
    if [ "$src" != "$ref" ]; then
      timeout 60 docker tag "$src" "$(kc_pulled_name "$ref")" || die "docker tag $src failed"
      # The mirror's name goes; the image stays under the upstream one.
      [[ $src == *@* ]] || timeout 60 docker rmi -- "$src" >/dev/null 2>&1 || true
    fi
    log "pulled $ref${KC_IMAGE_MIRROR:+ (from $src)}"
    return 0
  fi
  # A pull that outlives its 15 minutes counts as no registry, as for the chart's images.
  [ "$rc" != 124 ] || out="$out (timed out)"
  case "$out" in
    *"no such host"*|*"dial tcp"*|*"i/o timeout"*|*"connection refused"*|*"network is unreachable"*|*"name resolution"*|*"TLS handshake timeout"*|*"timed out"*)
      export KC_REGISTRY_UNREACHABLE=1 ;;
  esac
  [ "$KC_IMAGES_POLICY" != pull ] \
    || die "cannot pull $src: $(tail -n1 <<<"$out" | cut -c1-300) (KEDA_CONFORMANCE_KIND_IMAGES=pull; unset it to build the image here)"
  log "not pulled: $src ($(tail -n1 <<<"$out" | cut -c1-200)); building it here"
  return 1
}

# kc_pulled_name REF: the name the engine knows a pulled REF by (a mirror's pull is tagged
# without the digest, which a tag cannot carry).
kc_pulled_name() {
  if [ -n "$KC_IMAGE_MIRROR" ] && [[ $1 == *@* ]]; then
    local name=${1%%@*}
    [[ ${name##*/} == *:* ]] || name=$name:pulled
    echo "$name"
  else
    echo "$1"
  fi
}
