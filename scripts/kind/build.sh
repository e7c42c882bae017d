#!/usr/bin/env bash
# Builds, offline (Go module proxy + Debian mirror only, no image registry), everything the kind
# provider needs, into ~/.cache/keda-conformance/kind/ (override the root with
# KEDA_CONFORMANCE_CACHE) and the Docker engine of scripts/kind/dockerd.sh:
#   kind                      sigs.k8s.io/kind module                 -> kind/go/kind-<v>-<key>/kind
#   node binaries             kubelet kubeadm kubectl kube-proxy from k8s.io/kubernetes, with the
#                             local stack's wrapper module and version ldflags
#                             (scripts/go/kubernetes)                 -> kind/go/kubernetes-node-...
#   control plane, etcd, Cortex  scripts/build-component.sh (shared with the local provider)
#   coredns, local-path-provisioner, pause   scripts/kind/go/<name>  -> kind/go/<name>-<v>-<key>
#   Debian base rootfs        debootstrap (cached tarball)            -> kind/rootfs/
#   images                    keda-conformance/kind-base, the component images under the exact
#                             names `kubeadm config images list` prints, and
#                             keda-conformance/kind-node:<k8s version> (images preloaded with
#                             `ctr -n k8s.io images import`), keda-conformance/cortex:<v>
#   KEDA + Tempo stand-in     scripts/kind/build-keda.sh (KEDA images and manifest, stand-in)
# Every artefact carries a key (hash of its inputs); a warm run only checks keys.
# Online (a registry answers) the node (kind's default kindest/node), Cortex
# (quay.io/cortexproject/cortex) and KEDA's images are pulled instead, and only kind, kubectl,
# KEDA's manifest and the stand-in are built (scripts/kind/pull.sh has the policy and mirror).
# Usage: scripts/kind/build.sh            (prints the node image name on stdout)
# Env: KC_NODE_IMAGE (keda-conformance/kind-node:v1.35.4), KC_DEBIAN_MIRROR (apt's mirror),
#      KEDA_CONFORMANCE_KIND_IMAGES, KEDA_CONFORMANCE_IMAGE_MIRROR, KEDA_CONFORMANCE_KIND_NODE_IMAGE
#      (the node image to pull or use instead of kind's default).
# Exit codes: 0 built or cached, 2 a stage failed (the message and the log tail say which).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
scripts=$(cd "$here/.." && pwd)
# The Go compiler settings of every pinned build (shared with the local stack's builds).
# shellcheck source=scripts/go-build-env.sh
. "$scripts/go-build-env.sh"
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
C=$cache_root/kind
mkdir -p "$C/go" "$C/rootfs" "$C/logs"

# shellcheck disable=SC1091
K8S_VERSION=$(. "$scripts/go/kubernetes/component.env" && echo "$VERSION")
# shellcheck disable=SC1091
K8S_LDFLAGS=$(. "$scripts/go/kubernetes/component.env" && echo "$LDFLAGS")
KIND_VERSION=v0.33.0
COREDNS_VERSION=v1.13.1
LPP_VERSION=v0.0.30
# shellcheck disable=SC1091
CORTEX_VERSION=$(. "$scripts/go/cortex/component.env" && echo "$VERSION")
SUITE=bookworm
NODE_IMAGE=${KC_NODE_IMAGE:-keda-conformance/kind-node:$K8S_VERSION}
CORTEX_IMAGE=keda-conformance/cortex:$CORTEX_VERSION
HELPER_IMAGE=keda-conformance/local-path-helper:$LPP_VERSION
LPP_IMAGE=docker.io/rancher/local-path-provisioner:$LPP_VERSION
POD_CIDR=10.244.0.0/24
LABEL=io.keda-conformance.key
PACKAGES=systemd,systemd-sysv,dbus,containerd,runc,containernetworking-plugins,conntrack,iptables,nftables,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,e2fsprogs,bash,ca-certificates,curl,jq,procps,socat,ebtables,busybox-static

log() { echo "build.sh: $*" >&2; }
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

exec 9>"$C/.build.lock"
timeout 3600 flock 9 || die "timed out waiting for $C/.build.lock"

# ---------------------------------------------------------------- Go binaries
# go_build NAME VERSION WRAPPER LDFLAGS TAGS PKG=BIN...: builds the packages in a copy of the
# wrapper module (the source tree is never modified) into $C/go/NAME-VERSION-KEY, prints it.
go_build() {
  local name=$1 version=$2 wrapper=$3 ldflags=$4 tags=$5; shift 5
  local key dest tmp work logf start spec
  key=$( { find "$wrapper" -maxdepth 1 \( -name go.mod -o -name go.sum -o -name '*.go' \) -print0 \
             | sort -z | xargs -0 cat; echo "$ldflags|$tags|$*"; } | hash)
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
      timeout 3600 nice -n 10 go build -trimpath -gcflags "$GO_GCFLAGS" -tags "$tags" -ldflags "$ldflags" -o "$tmp/${spec#*=}" "${spec%%=*}"
    done
  ) >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2; rm -rf "$tmp" "$work"; die "go build $name failed (log: $logf)"
  fi
  rm -rf "$work"
  touch "$tmp/.complete"; rm -rf "$dest"; mv "$tmp" "$dest"; ln -sfn "$dest" "$C/go/$name-$version"
  log "go build $name: $(( $(date +%s) - start ))s"
  echo "$dest"
}
rm -rf "$C"/go/*.tmp.* "$C"/go/.work-* 2>/dev/null || true

# ---------------------------------------------------------------- Docker engine
stage docker
started_docker=0
if ! DOCKER_HOST=$("$here/dockerd.sh" env 2>/dev/null); then
  DOCKER_HOST=$(timeout 900 "$here/dockerd.sh" start); started_docker=1
fi
export DOCKER_HOST
work=$C/.work.$$
cleanup() {
  local rc=$?
  [ -z "${build_ctr:-}" ] || timeout 60 docker rm -f "$build_ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
  if [ "$started_docker" = 1 ]; then "$here/dockerd.sh" stop >/dev/null 2>&1 || true; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work"

image_key() { docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null || true; }

# ---------------------------------------------------------------- images to pull
# Online the node, the backend and KEDA come from their upstream images (scripts/kind/pull.sh:
# KEDA_CONFORMANCE_KIND_IMAGES, KEDA_CONFORMANCE_IMAGE_MIRROR); what is not pulled is built.
stage pull
# shellcheck source=scripts/kind/pull.sh
. "$here/pull.sh"
kind_mod=$(cd "$C" && GOFLAGS= timeout 300 go mod download -json "sigs.k8s.io/kind@$KIND_VERSION" | jq -r .Dir)
kind_files=$kind_mod/images/base/files
[ -f "$kind_files/usr/local/bin/entrypoint" ] || die "no images/base/files in the kind module at $kind_mod"
# The node image kind $KIND_VERSION was released with (its default), unless the user names one.
UPSTREAM_NODE_IMAGE=${KEDA_CONFORMANCE_KIND_NODE_IMAGE:-$(sed -n 's/^const Image = "\(.*\)"$/\1/p' "$kind_mod/pkg/apis/config/defaults/image.go")}
[ -n "$UPSTREAM_NODE_IMAGE" ] || die "no default node image in the kind module at $kind_mod"
kc_valid_ref "$UPSTREAM_NODE_IMAGE" || die "KEDA_CONFORMANCE_KIND_NODE_IMAGE=$UPSTREAM_NODE_IMAGE is not an image reference"
UPSTREAM_CORTEX_IMAGE=quay.io/cortexproject/cortex:$CORTEX_VERSION
node_pulled=0; cortex_pulled=0; pulled=()
if [ "$KC_IMAGES_POLICY" = build ] && [ -n "${KEDA_CONFORMANCE_KIND_NODE_IMAGE:-}" ]; then
  log "KEDA_CONFORMANCE_KIND_NODE_IMAGE is not used with KEDA_CONFORMANCE_KIND_IMAGES=build: the node image is built here"
fi
if [ -n "${KEDA_CONFORMANCE_KIND_NODE_IMAGE:-}" ] && [ "$KC_IMAGES_POLICY" != build ] \
   && timeout 30 docker image inspect -- "$UPSTREAM_NODE_IMAGE" >/dev/null 2>&1; then
  node_pulled=1; NODE_IMAGE=$UPSTREAM_NODE_IMAGE; log "node image $NODE_IMAGE: the engine has it"
elif kc_pull "$UPSTREAM_NODE_IMAGE"; then
  node_pulled=1; NODE_IMAGE=$(kc_pulled_name "$UPSTREAM_NODE_IMAGE"); pulled+=("$UPSTREAM_NODE_IMAGE")
fi
if kc_pull "$UPSTREAM_CORTEX_IMAGE"; then
  cortex_pulled=1; CORTEX_IMAGE=$(kc_pulled_name "$UPSTREAM_CORTEX_IMAGE"); pulled+=("$UPSTREAM_CORTEX_IMAGE")
fi

stage go-kind
kind_dir=$(go_build kind "$KIND_VERSION" "$here/go/kind" "-s -w" "" sigs.k8s.io/kind=kind)
if [ "$node_pulled" = 1 ]; then
  stage go-kubectl
  kubectl_dir=$(go_build kubectl "$K8S_VERSION" "$scripts/go/kubernetes" "$K8S_LDFLAGS" "" k8s.io/kubernetes/cmd/kubectl=kubectl)
  # The Kubernetes version the pulled node runs (kind reads the same file).
  K8S_VERSION=$(timeout 120 docker run --rm --network none --entrypoint cat "$NODE_IMAGE" /kind/version 2>/dev/null) \
    || die "the node image $NODE_IMAGE has no /kind/version: is it a kind node image?"
  [[ $K8S_VERSION =~ ^v[0-9]+\.[0-9]+\.[0-9]+[A-Za-z0-9.+-]*$ ]] || die "the node image $NODE_IMAGE says version '$K8S_VERSION'"
else
stage go-kubernetes-node
node_dir=$(go_build kubernetes-node "$K8S_VERSION" "$scripts/go/kubernetes" "$K8S_LDFLAGS" "" \
  k8s.io/kubernetes/cmd/kubelet=kubelet k8s.io/kubernetes/cmd/kubeadm=kubeadm \
  k8s.io/kubernetes/cmd/kubectl=kubectl k8s.io/kubernetes/cmd/kube-proxy=kube-proxy)
kubectl_dir=$node_dir
stage go-control-plane+etcd
cp_dir=$(timeout 3600 "$scripts/build-component.sh" kubernetes)
etcd_dir=$(timeout 3600 "$scripts/build-component.sh" etcd)
stage go-coredns
coredns_dir=$(go_build coredns "$COREDNS_VERSION" "$here/go/coredns" \
  "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" "" github.com/coredns/coredns=coredns)
stage go-local-path-provisioner
lpp_dir=$(go_build local-path-provisioner "$LPP_VERSION" "$here/go/local-path-provisioner" \
  "-s -w -X main.VERSION=$LPP_VERSION" "" github.com/rancher/local-path-provisioner=local-path-provisioner)
stage go-pause
pause_dir=$(go_build pause 3.10 "$here/go/pause" "-s -w" "" .=pause)
fi
if [ "$cortex_pulled" = 0 ]; then
  stage go-cortex
  cortex_dir=$(timeout 3600 "$scripts/build-component.sh" cortex)
fi
# mini_image NAME KEY ENTRYPOINT-JSON SRC=DEST...: a scratch image with static binaries,
# /etc/passwd, /etc/group, CA certificates and /tmp.
mini_image() {
  local name=$1 key=$2 entry=$3; shift 3
  [ "$(image_key "$name")" = "$key" ] && return 0
  local d=$work/img; rm -rf "$d"; mkdir -p "$d/etc/ssl/certs" "$d/tmp" "$d/usr/local/bin" "$d/bin"
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n' >"$d/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/etc/group"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
  local spec
  for spec in "$@"; do mkdir -p "$(dirname "$d/${spec#*=}")"; cp -P "${spec%%=*}" "$d/${spec#*=}"; done
  tar -C "$d" --numeric-owner --owner=0 --group=0 -c . | timeout 600 docker import \
    --change 'ENV PATH=/usr/local/bin:/usr/bin:/bin' --change "ENTRYPOINT $entry" \
    --change "LABEL $LABEL=$key" - "$name" >/dev/null
  rm -rf "$d"
}
bin_key() { echo "$1|${BASE_IMAGE:-}|$(sed -n '/^mini_image() {$/,/^}$/p' "$0" | hash)" | hash; }

# Everything from here to the node image only when the node is not pulled (not re-indented:
# the image keys hash the marked blocks).
if [ "$node_pulled" = 0 ]; then
# ---------------------------------------------------------------- Debian rootfs (debootstrap)
stage rootfs
mirror=${KC_DEBIAN_MIRROR:-$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list 2>/dev/null \
  | grep -oE 'https?://[^ ]+/debian/?$' | head -n1 || true)}
[ -n "$mirror" ] || die "no Debian mirror found in apt's sources; set KC_DEBIAN_MIRROR"
rootfs_key=$(echo "$SUITE|$PACKAGES|$mirror" | hash)
rootfs_tar=$C/rootfs/debian-$SUITE-$rootfs_key.tar
if [ ! -f "$rootfs_tar" ]; then
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y debootstrap >&2
  log "debootstrap $SUITE from $mirror (log: $C/logs/debootstrap.log)"
  rm -rf "$work/rootfs"
  timeout 1200 nice -n 10 debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$work/rootfs" "$mirror" \
    >"$C/logs/debootstrap.log" 2>&1 || { tail -n 20 "$C/logs/debootstrap.log" >&2; die "debootstrap failed"; }
  rm -rf "$work/rootfs"/var/cache/apt/archives/*.deb "$work/rootfs"/var/lib/apt/lists/*
  tar -C "$work/rootfs" --numeric-owner -cf "$rootfs_tar.tmp.$$" . && mv "$rootfs_tar.tmp.$$" "$rootfs_tar"
  rm -rf "$work/rootfs"
  find "$C/rootfs" -name 'debian-*.tar' ! -name "$(basename "$rootfs_tar")" -delete
fi

# ---------------------------------------------------------------- base image
# The debootstrap rootfs plus kind's node files (entrypoint, systemd units, containerd config)
# and the settings this machine needs (cgroup v1, restricted oom_score_adj).
stage base-image
base_key=$( { echo "$rootfs_key|$KIND_VERSION|$POD_CIDR"; sed -n '/^# >>> base$/,/^# <<< base$/p' "$0";
              (cd "$kind_files" && find . -type f -print0 | sort -z | xargs -0 cat); } | hash)
BASE_IMAGE=keda-conformance/kind-base:$SUITE-$base_key
if [ "$(image_key "$BASE_IMAGE")" != "$base_key" ]; then
# >>> base
  r=$work/base; rm -rf "$r"; mkdir -p "$r"
  tar -C "$r" --numeric-owner -xf "$rootfs_tar"
  # kind's node files, from the pinned kind module.
  (cd "$kind_files" && tar -c --exclude=./LICENSES .) | tar -C "$r" --no-same-owner --no-overwrite-dir -x
  find "$r/kind" "$r/etc/containerd" "$r/etc/systemd/system" "$r/etc/sysctl.d" -type d -exec chmod 0755 {} +
  find "$r/kind" "$r/etc/containerd" "$r/etc/systemd/system" "$r/etc/default/kubelet" "$r/etc/sysctl.d" "$r/etc/crictl.yaml" \
    -type f -exec chmod 0644 {} +
  chmod 0755 "$r/kind" "$r/kind/bin" "$r"/kind/bin/* "$r"/usr/local/bin/*
  # Services: only what a node starts itself; systemd would otherwise try udev, getty, ...
  rm -f "$r"/lib/systemd/system/sysinit.target.wants/systemd-tmpfiles-setup.service \
        "$r"/lib/systemd/system/multi-user.target.wants/* "$r"/etc/systemd/system/*.wants/* \
        "$r"/lib/systemd/system/local-fs.target.wants/* "$r"/lib/systemd/system/sockets.target.wants/*udev* \
        "$r"/lib/systemd/system/sockets.target.wants/*initctl* "$r"/lib/systemd/system/basic.target.wants/*
  echo "ReadKMsg=no" >>"$r/etc/systemd/journald.conf"
  chroot "$r" systemctl enable kubelet.service containerd.service undo-mount-hacks.service >/dev/null 2>&1 \
    || die "systemctl enable in the node rootfs failed"
  chroot "$r" systemctl mask systemd-binfmt.service >/dev/null 2>&1 || die "systemctl mask in the node rootfs failed"
  mkdir -p "$r/etc/kubernetes/manifests"
  # Debian's containerd and CNI plugins where kind's units and config expect them.
  ln -sf /usr/bin/containerd "$r/usr/local/bin/containerd"
  mkdir -p "$r/opt/cni/bin"
  for p in "$r"/usr/lib/cni/*; do ln -sf "/usr/lib/cni/$(basename "$p")" "$r/opt/cni/bin/"; done
  # The OCI spec containerd starts pods from: Debian containerd's default, with kind's
  # product-files hook and without rlimits.
  chroot "$r" ctr oci spec | jq '.hooks.createContainer = ((.hooks.createContainer // []) + [{path: "/kind/bin/mount-product-files.sh"}]) | del(.process.rlimits)' \
    >"$r/etc/containerd/cri-base.json"
  # cgroup v1 host: kubelet >= 1.35 refuses cgroup v1 unless told otherwise.
  sed -i 's|^KUBELET_EXTRA_ARGS=.*|& --fail-cgroupv1=false|' "$r/etc/default/kubelet"
  grep -q 'fail-cgroupv1=false' "$r/etc/default/kubelet" || echo 'KUBELET_EXTRA_ARGS=--fail-cgroupv1=false' >>"$r/etc/default/kubelet"
  # Writing -998 to oom_score_adj is denied in this VM's containers: pod sandboxes fail with
  # "can't get final child's PID from pipe: EOF" unless containerd restricts it.
  sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' "$r/etc/containerd/config.toml"
  grep -q 'restrict_oom_score_adj = true' "$r/etc/containerd/config.toml" || die "kind's containerd config has no restrict_oom_score_adj line"
  # A static CNI for ONE node: a bridge with host-local addresses from this node's pod CIDR.
  mkdir -p "$r/etc/cni/net.d"
  jq -n --arg subnet "$POD_CIDR" '{cniVersion: "0.4.0", name: "kc-bridge", plugins: [
      {type: "bridge", bridge: "kc-cni0", isGateway: true, ipMasq: true, hairpinMode: true,
       ipam: {type: "host-local", ranges: [[{subnet: $subnet}]], routes: [{dst: "0.0.0.0/0"}]}},
      {type: "portmap", capabilities: {portMappings: true}}]}' >"$r/etc/cni/net.d/10-kc-bridge.conflist"
  tar -C "$r" --numeric-owner -c . | timeout 600 docker import \
    --change 'ENV container=docker' \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' - "$BASE_IMAGE.tmp" >/dev/null
  # systemd stops on SIGRTMIN+3; `docker import` cannot set STOPSIGNAL, a one-line build can
  # (classic builder, no context, no container run).
  printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\nLABEL %s=%s\n' "$BASE_IMAGE.tmp" "$LABEL" "$base_key" \
    | DOCKER_BUILDKIT=0 timeout 300 docker build -q -t "$BASE_IMAGE" - >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; die "docker build of the STOPSIGNAL layer failed"; }
  docker rmi "$BASE_IMAGE.tmp" >/dev/null
  rm -rf "$r"
# <<< base
fi

# ---------------------------------------------------------------- component images
stage component-images

# The names kubeadm itself will ask for, plus the sandbox image kind's containerd config names.
mapfile -t kubeadm_images < <(timeout 60 "$node_dir/kubeadm" config images list --kubernetes-version "$K8S_VERSION")
sandbox=$(sed -n 's/^ *sandbox_image = "\(.*\)"/\1/p' "$kind_files/etc/containerd/config.toml")
preload=()
for img in "${kubeadm_images[@]}" "$sandbox"; do
  repo=${img%:*}
  case "${repo##*/}" in
    kube-apiserver|kube-controller-manager|kube-scheduler)
      b=${repo##*/}; mini_image "$img" "$(bin_key "$cp_dir/$b")" "[\"/usr/local/bin/$b\"]" "$cp_dir/$b=usr/local/bin/$b" ;;
    etcd) mini_image "$img" "$(bin_key "$etcd_dir")" '["/usr/local/bin/etcd"]' "$etcd_dir/etcd=usr/local/bin/etcd" ;;
    coredns) mini_image "$img" "$(bin_key "$coredns_dir")" '["/coredns"]' "$coredns_dir/coredns=coredns" ;;
    pause) mini_image "$img" "$(bin_key "$pause_dir")" '["/pause"]' "$pause_dir/pause=pause" ;;
    kube-proxy)
      # kube-proxy runs iptables, conntrack, ...: a layer on top of the Debian base.
      key=$(bin_key "$node_dir/kube-proxy")
      if [ "$(image_key "$img")" != "$key" ]; then
        # (dockerd warns that IPv4 forwarding is off: by design, our containers talk over L2.)
        c=$(docker create "$BASE_IMAGE" 2> >(grep -v 'IPv4 forwarding' >&2))
        docker cp "$node_dir/kube-proxy" "$c:/usr/local/bin/kube-proxy"
        docker commit --change 'ENTRYPOINT ["/usr/local/bin/kube-proxy"]' --change "LABEL $LABEL=$key" "$c" "$img" >/dev/null
        docker rm "$c" >/dev/null
      fi ;;
    *) die "kubeadm lists an image this script cannot build: $img" ;;
  esac
  preload+=("$img")
done
# local-path-provisioner and the helper image its pods use (busybox from the Debian rootfs).
mini_image "$LPP_IMAGE" "$(bin_key "$lpp_dir")" '["/usr/local/bin/local-path-provisioner"]' \
  "$lpp_dir/local-path-provisioner=usr/local/bin/local-path-provisioner"
preload+=("$LPP_IMAGE")
helper_key=$(bin_key "$rootfs_key-busybox")
if [ "$(image_key "$HELPER_IMAGE")" != "$helper_key" ]; then
  # Debian bookworm is merged-/usr: busybox-static lives in /usr/bin.
  tar -C "$work" -xf "$rootfs_tar" ./usr/bin/busybox
  specs=("$work/usr/bin/busybox=bin/busybox")
  for a in sh mkdir rm rmdir ls cat chmod echo sleep test; do ln -sf busybox "$work/$a"; specs+=("$work/$a=bin/$a"); done
  mini_image "$HELPER_IMAGE" "$helper_key" '["/bin/sh"]' "${specs[@]}"
fi
preload+=("$HELPER_IMAGE")

# ---------------------------------------------------------------- node image
stage node-image
node_key=$( { echo "$BASE_IMAGE|$node_dir|$K8S_VERSION"; for i in "${preload[@]}"; do echo "$i=$(image_key "$i")"; done;
              sed -n '/^# >>> node$/,/^# <<< node$/p' "$0"; } | hash)
if [ "$(image_key "$NODE_IMAGE")" != "$node_key" ]; then
# >>> node
  d=$work/node; rm -rf "$d"; mkdir -p "$d/preload" "$d/manifests"
  i=0
  for img in "${preload[@]}"; do
    # One archive per image: `docker save` of several untagged-registry images loses names.
    timeout 600 docker save -o "$d/preload/$i.tar" "$img"; i=$((i + 1))
  done
  echo "$K8S_VERSION" >"$d/version"
  # The default StorageClass kind installs: local-path-provisioner with our helper image.
  cat >"$d/manifests/default-storage.yaml" <<EOF
# Written by keda-conformance scripts/kind/build.sh: local-path-provisioner $LPP_VERSION as
# the default StorageClass "standard" (volumes under /var/local-path-provisioner on the node).
apiVersion: v1
kind: Namespace
metadata: {name: local-path-storage}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: local-path-provisioner, namespace: local-path-storage}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: local-path-provisioner}
rules:
- apiGroups: [""]
  resources: [nodes, persistentvolumeclaims, configmaps, pods, pods/log]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [persistentvolumes]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [create, delete]
- apiGroups: [storage.k8s.io]
  resources: [storageclasses]
  verbs: [get, list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: local-path-provisioner}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: local-path-provisioner}
subjects: [{kind: ServiceAccount, name: local-path-provisioner, namespace: local-path-storage}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: local-path-config, namespace: local-path-storage}
data:
  config.json: '{"nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": ["/var/local-path-provisioner"]}]}'
  setup: |
    #!/bin/sh
    set -eu
    mkdir -m 0777 -p "\$VOL_DIR"
  teardown: |
    #!/bin/sh
    set -eu
    rm -rf "\$VOL_DIR"
  helperPod.yaml: |
    apiVersion: v1
    kind: Pod
    metadata: {name: helper-pod}
    spec:
      containers:
      - name: helper-pod
        image: $HELPER_IMAGE
        imagePullPolicy: IfNotPresent
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: local-path-provisioner, namespace: local-path-storage}
spec:
  replicas: 1
  selector: {matchLabels: {app: local-path-provisioner}}
  template:
    metadata: {labels: {app: local-path-provisioner}}
    spec:
      serviceAccountName: local-path-provisioner
      tolerations:
      - {key: node-role.kubernetes.io/control-plane, operator: Exists, effect: NoSchedule}
      containers:
      - name: local-path-provisioner
        image: $LPP_IMAGE
        imagePullPolicy: IfNotPresent
        command: [/usr/local/bin/local-path-provisioner, --debug, start,
                  --helper-image, $HELPER_IMAGE, --config, /etc/config/config.json]
        env:
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
        - name: CONFIG_MOUNT_PATH
          value: /etc/config/
        volumeMounts:
        - {name: config-volume, mountPath: /etc/config/}
      volumes:
      - name: config-volume
        configMap: {name: local-path-config}
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
EOF
  # Preload into the node's containerd (started by hand in a build container), then commit.
  build_ctr=kc-nodebuild-$$
  timeout 120 docker run -d --name "$build_ctr" --privileged --network none --entrypoint sleep "$BASE_IMAGE" infinity >/dev/null
  for b in kubelet kubeadm kubectl; do timeout 120 docker cp "$node_dir/$b" "$build_ctr:/usr/bin/$b"; done
  timeout 120 docker cp "$d/version" "$build_ctr:/kind/version"
  timeout 120 docker cp "$d/manifests" "$build_ctr:/kind/manifests"
  timeout 600 docker cp "$d/preload" "$build_ctr:/kind/preload"
  timeout 900 docker exec "$build_ctr" bash -euc '
    containerd >/tmp/containerd-preload.log 2>&1 & ctd=$!
    for _ in $(seq 1 120); do ctr version >/dev/null 2>&1 && break; sleep 0.5; done
    for f in /kind/preload/*.tar; do ctr -n k8s.io images import --no-unpack "$f" >/dev/null; done
    ctr -n k8s.io images ls -q
    kill $ctd; wait $ctd || true
    rm -rf /kind/preload /tmp/containerd-preload.log' >"$C/logs/preload.log" 2>&1 \
    || { cat "$C/logs/preload.log" >&2; die "preloading images into the node failed"; }
  for img in "${preload[@]}"; do
    grep -qx "$img" "$C/logs/preload.log" || grep -qx "docker.io/$img" "$C/logs/preload.log" \
      || { cat "$C/logs/preload.log" >&2; die "image $img missing from the node's containerd after import"; }
  done
  timeout 300 docker commit \
    --change 'ENTRYPOINT ["/usr/local/bin/entrypoint", "/sbin/init"]' --change 'CMD []' \
    --change "LABEL $LABEL=$node_key" "$build_ctr" "$NODE_IMAGE" >/dev/null
  timeout 60 docker rm -f "$build_ctr" >/dev/null; build_ctr=""
  rm -rf "$d"
# <<< node
fi
fi
if [ "$cortex_pulled" = 0 ]; then
  stage cortex-image
  mini_image "$CORTEX_IMAGE" "$(bin_key "$cortex_dir")" '["/usr/local/bin/cortex"]' "$cortex_dir/cortex=usr/local/bin/cortex"
fi
stage keda
# KEDA as pods (images under KEDA's release names, its rendered install manifest), the Tempo
# stand-in image and the smoke tests' pushseries: scripts/kind/build-keda.sh.
KC_KUBECTL=$kubectl_dir/kubectl timeout 7200 "$here/build-keda.sh" || die "scripts/kind/build-keda.sh failed"
stage prune
# Superseded images of ours (older keys): untagged ones, then tags of earlier base images
# (which the untagged ones may have been built on).
timeout 300 docker image prune -f --filter "label=$LABEL" >/dev/null || true
# (Only when this run built the node: a pulled one leaves the offline base in the cache.)
[ "$node_pulled" = 1 ] || for ref in $(docker images --format '{{.Repository}}:{{.Tag}}' keda-conformance/kind-base); do
  [ "$ref" = "$BASE_IMAGE" ] || timeout 120 docker rmi "$ref" >/dev/null 2>&1 || true
done
timeout 300 docker image prune -f --filter "label=$LABEL" >/dev/null || true
stage done
ln -sfn "$kind_dir/kind" "$C/kind"
ln -sfn "$kubectl_dir/kubectl" "$C/kubectl"
# NODE_CNI: kc (our node image: a static bridge, kc-routes for several nodes) or kind (an
# upstream node image: kind's default CNI).
node_cni=kind
[ -z "$(image_key "$NODE_IMAGE")" ] || node_cni=kc
{ echo "KIND=$kind_dir/kind"; echo "KUBECTL=$kubectl_dir/kubectl"; echo "NODE_IMAGE=$NODE_IMAGE";
  echo "NODE_CNI=$node_cni"; echo "CORTEX_IMAGE=$CORTEX_IMAGE"; echo "K8S_VERSION=$K8S_VERSION";
  echo "PULLED=\"${pulled[*]}\""; } >"$C/build.env"
log "ready in $(( $(date +%s) - t0 ))s: $NODE_IMAGE ($(docker image inspect --format '{{.Size}}' "$NODE_IMAGE" | awk '{printf "%d MB", $1/1e6}')), $CORTEX_IMAGE, kind $KIND_VERSION (cache: $C, $(du -sh "$C" 2>/dev/null | cut -f1))"
echo "$NODE_IMAGE"
