#!/usr/bin/env bash
# End-to-end smoke test of the offline kind pipeline: Docker engine (scripts/kind/dockerd.sh),
# images (scripts/kind/build.sh), a kind cluster from kind-config/single-node.yaml with a
# unique kc- name, all kube-system pods Ready, then a Deployment of the Cortex image that must
# answer 401 without X-Scope-OrgID and 200 with it (through `kubectl port-forward`). Deletes the
# cluster and stops the dockerd it started, also on failure or interrupt.
# Usage: scripts/kind/smoke.sh [single|multi]
#   single (default)  kind-config/single-node.yaml
#   multi             kind-config/multi-node.yaml (1 control plane + 2 workers) plus the
#                     kc-routes pod network (kind-config/kc-routes.yaml), and a check from a pod
#                     on another node: cluster DNS, Cortex via its Service IP and its pod IP.
# Env: KC_KEEP_DOCKERD=1 leaves a dockerd it started running.
# Exit codes: 0 passed, 1 a check failed, 2 setup failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
mode=${1:-single}
case "$mode" in
  single) config=$root/kind-config/single-node.yaml; min_system_pods=7 ;;
  # + 2 kube-proxy and 3 kc-routes pods
  multi) config=$root/kind-config/multi-node.yaml; min_system_pods=12 ;;
  *) echo "usage: $0 [single|multi]" >&2; exit 2 ;;
esac

log() { echo "smoke.sh: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
t0=$(date +%s)
timings=()
mark() { # mark NAME START: records NAME's duration since START
  local d=$(( $(date +%s) - $2 ))
  timings+=("$1=${d}s"); log "$1: ${d}s"
}

cluster=kc-smoke-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d /tmp/kc-smoke.XXXXXX)
export KUBECONFIG=$tmp/kubeconfig
started_docker=0
pf_pid=""
cluster_created=0
cleanup() {
  local rc=$? s
  trap - EXIT INT TERM ERR
  s=$(date +%s)
  [ -z "$pf_pid" ] || kill "$pf_pid" 2>/dev/null || true
  if [ "$cluster_created" = 1 ]; then
    timeout 120 "$KIND" delete cluster --name "$cluster" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 \
      || log "kind delete cluster $cluster failed"
    # Anything of this cluster kind left behind (containers carry its name label).
    for c in $(timeout 30 docker ps -aq --filter "label=io.x-k8s.kind.cluster=$cluster" 2>/dev/null); do
      timeout 60 docker rm -f -v "$c" >/dev/null 2>&1 || true
    done
    mark delete-cluster "$s"
  fi
  if [ "$started_docker" = 1 ] && [ "${KC_KEEP_DOCKERD:-0}" != 1 ]; then
    s=$(date +%s)
    "$here/dockerd.sh" stop || log "dockerd.sh stop failed"
    mark stop-dockerd "$s"
  fi
  rm -rf "$tmp"
  log "timings: ${timings[*]} total=$(( $(date +%s) - t0 ))s"
  if [ "$rc" = 0 ]; then log "PASSED ($cluster)"; else log "FAILED with exit code $rc ($cluster)"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'log "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- engine and images
s=$(date +%s)
if ! DOCKER_HOST=$("$here/dockerd.sh" env 2>/dev/null); then
  DOCKER_HOST=$(timeout 900 "$here/dockerd.sh" start) || exit 2
  started_docker=1
fi
export DOCKER_HOST
mark start-dockerd "$s"
s=$(date +%s)
timeout 7200 "$here/build.sh" >/dev/null || exit 2
mark build "$s"
# shellcheck disable=SC1091
. "$cache_root/kind/build.env"   # KIND, KUBECTL, NODE_IMAGE, CORTEX_IMAGE
mark pipeline "$t0"
k() { timeout 120 "$KUBECTL" "$@"; }

# ---------------------------------------------------------------- cluster
s=$(date +%s)
cluster_created=1
timeout 600 "$KIND" create cluster --name "$cluster" --config "$config" --image "$NODE_IMAGE" \
  --kubeconfig "$KUBECONFIG" --wait 0s >"$tmp/create.log" 2>&1 \
  || { cat "$tmp/create.log" >&2; fail "kind create cluster failed"; }
mark kind-create "$s"

# wait_ready NAMESPACE MIN DEADLINE: every pod of NAMESPACE Ready, at least MIN of them.
wait_ready() {
  local ns=$1 min=$2 deadline=$(( $(date +%s) + $3 )) total ready
  while :; do
    total=$(k get pods -n "$ns" --no-headers 2>/dev/null | wc -l || true)
    ready=$(k get pods -n "$ns" -o jsonpath='{range .items[*]}{range .status.conditions[?(@.type=="Ready")]}{.status}{"\n"}{end}{end}' 2>/dev/null \
      | grep -c True || true)
    if [ "$total" -ge "$min" ] && [ "$ready" = "$total" ]; then return 0; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      k get pods -n "$ns" -o wide >&2 || true
      k get events -n "$ns" --sort-by=.lastTimestamp 2>/dev/null | tail -n 20 >&2 || true
      return 1
    fi
    sleep 2
  done
}
if [ "$mode" = multi ]; then
  k apply -f "$root/kind-config/kc-routes.yaml" >/dev/null || fail "applying kc-routes failed"
fi
# etcd, apiserver, controller-manager, scheduler, kube-proxy and 2 coredns (+ kc-routes)
wait_ready kube-system "$min_system_pods" 300 || fail "kube-system pods not all Ready within 300s"
mark kube-system-ready "$s"
wait_ready local-path-storage 1 120 || fail "local-path-provisioner not Ready within 120s"
k wait --for=condition=Ready node --all --timeout=60s >/dev/null || fail "node not Ready"
mark cluster-ready "$s"
hpa_flags=$(k -n kube-system get pods -l component=kube-controller-manager \
  -o jsonpath='{.items[0].spec.containers[0].command}' | grep -o 'horizontal-pod-autoscaler[^",]*' | tr '\n' ' ')
log "controller-manager HPA flags: $hpa_flags"
grep -q 'sync-period=5s' <<<"$hpa_flags" && grep -q 'downscale-stabilization=15s' <<<"$hpa_flags" \
  || fail "controller-manager lacks the HPA flags of $config"

# ---------------------------------------------------------------- Cortex as a pod
s=$(date +%s)
timeout 120 "$KIND" load docker-image "$CORTEX_IMAGE" --name "$cluster" >/dev/null 2>&1 \
  || fail "kind load docker-image $CORTEX_IMAGE failed"
mark load-cortex "$s"
s=$(date +%s)
k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: cortex, namespace: default}
data:
  cortex.yaml: |
    # Single-process Cortex, multi-tenant (auth_enabled), state in the pod's emptyDir /data.
    target: all
    auth_enabled: true
    server: {http_listen_port: 9009, grpc_listen_port: 9095, log_level: warn}
    api: {prometheus_http_prefix: /prometheus}
    distributor:
      shard_by_all_labels: true
      ring: {kvstore: {store: inmemory}}
    ingester:
      lifecycler:
        min_ready_duration: 0s
        final_sleep: 0s
        join_after: 0s
        observe_period: 0s
        num_tokens: 64
        ring: {kvstore: {store: inmemory}, replication_factor: 1}
    querier: {query_ingesters_within: 0, active_query_tracker_dir: /data/active-query-tracker}
    blocks_storage:
      backend: filesystem
      filesystem: {dir: /data/blocks}
      tsdb: {dir: /data/tsdb}
      bucket_store: {sync_dir: /data/tsdb-sync}
    compactor:
      data_dir: /data/compactor
      sharding_ring: {kvstore: {store: inmemory}}
    store_gateway:
      sharding_ring: {kvstore: {store: inmemory}, replication_factor: 1}
    ruler:
      rule_path: /data/ruler-tmp
      ring: {kvstore: {store: inmemory}}
    ruler_storage: {backend: local, local: {directory: /data/rules}}
    alertmanager:
      data_dir: /data/alertmanager-data
      external_url: http://127.0.0.1:9009/alertmanager
      cluster: {listen_address: ""}
    alertmanager_storage: {backend: local, local: {path: /data/alertmanager}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: cortex, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: cortex}}
  template:
    metadata: {labels: {app: cortex}}
    spec:
      # The image is a static binary only: a busybox init container creates the directories
      # Cortex expects to exist in its emptyDir (else it crash-loops on lstat /data/alertmanager).
      initContainers:
      - name: layout
        image: keda-conformance/local-path-helper:v0.0.30
        imagePullPolicy: IfNotPresent
        command: [sh, -c, "mkdir -p /data/alertmanager /data/alertmanager-data /data/rules /data/ruler-tmp /data/blocks /data/tsdb /data/tsdb-sync /data/compactor /data/active-query-tracker"]
        volumeMounts: [{name: data, mountPath: /data}]
      containers:
      - name: cortex
        image: $CORTEX_IMAGE
        imagePullPolicy: IfNotPresent
        args: [-config.file=/etc/cortex/cortex.yaml]
        ports: [{containerPort: 9009, name: http}]
        readinessProbe:
          httpGet: {path: /ready, port: 9009}
          periodSeconds: 1
        volumeMounts:
        - {name: data, mountPath: /data}
        - {name: config, mountPath: /etc/cortex}
      volumes:
      - {name: data, emptyDir: {}}
      - {name: config, configMap: {name: cortex}}
---
apiVersion: v1
kind: Service
metadata: {name: cortex, namespace: default}
spec:
  selector: {app: cortex}
  ports: [{name: http, port: 9009, targetPort: 9009}]
EOF
if ! k rollout status deployment/cortex --timeout=120s >/dev/null; then
  k get pods -o wide >&2 || true
  k logs deployment/cortex --all-containers --tail=30 >&2 || true
  fail "Cortex Deployment not available within 120s"
fi
mark cortex-ready "$s"

# ---------------------------------------------------------------- tenancy check
"$KUBECTL" port-forward deployment/cortex :9009 --address 127.0.0.1 >"$tmp/pf.log" 2>&1 &
pf_pid=$!
port=""
for _ in $(seq 1 100); do
  port=$(sed -n 's/^Forwarding from 127.0.0.1:\([0-9]*\) .*/\1/p' "$tmp/pf.log" | head -n1)
  [ -n "$port" ] && break
  kill -0 "$pf_pid" 2>/dev/null || { cat "$tmp/pf.log" >&2; fail "kubectl port-forward exited"; }
  sleep 0.2
done
[ -n "$port" ] || { cat "$tmp/pf.log" >&2; fail "kubectl port-forward did not report a port"; }
url="http://127.0.0.1:$port/prometheus/api/v1/query?query=up"
without=$(timeout 20 curl -s -o "$tmp/without.body" -w '%{http_code}' "$url" || true)
with=$(timeout 20 curl -s -o "$tmp/with.body" -w '%{http_code}' -H 'X-Scope-OrgID: kc-smoke' "$url" || true)
log "Cortex in the cluster: without X-Scope-OrgID -> $without ($(head -c 80 "$tmp/without.body" 2>/dev/null | tr -d '\n')), with -> $with ($(head -c 80 "$tmp/with.body" 2>/dev/null))"
[ "$without" = 401 ] || fail "expected 401 without X-Scope-OrgID, got $without"
[ "$with" = 200 ] || fail "expected 200 with X-Scope-OrgID, got $with"
kill "$pf_pid" 2>/dev/null || true; wait "$pf_pid" 2>/dev/null || true; pf_pid=""

if [ "$mode" = multi ]; then
  # From a pod on another node: cluster DNS, the Service IP (kube-proxy) and the pod IP.
  s=$(date +%s)
  cortex_node=$(k get pods -l app=cortex -o jsonpath='{.items[0].spec.nodeName}')
  cortex_ip=$(k get pods -l app=cortex -o jsonpath='{.items[0].status.podIP}')
  cortex_svc=$(k get service cortex -o jsonpath='{.spec.clusterIP}')
  other=$(k get nodes -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' | grep -vx "$cortex_node" | head -n1)
  k apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: cross-node-check, namespace: default}
spec:
  nodeName: $other
  restartPolicy: Never
  containers:
  - name: check
    # The preloaded kube-proxy image is the Debian node base: it has curl. (busybox-static's
    # wget segfaults in its static-glibc address lookup, even for literal addresses.)
    image: registry.k8s.io/kube-proxy:v1.35.4
    imagePullPolicy: IfNotPresent
    command:
    - bash
    - -c
    - |
      set -e
      echo "dns+service: \$(curl -s -m 10 -w ' %{http_code}' http://cortex.default.svc.cluster.local:9009/ready)"
      echo "service-ip: \$(curl -s -m 10 -o /dev/null -w '%{http_code}' http://$cortex_svc:9009/ready)"
      echo "pod-ip without org: \$(curl -s -m 10 -o /dev/null -w '%{http_code}' 'http://$cortex_ip:9009/prometheus/api/v1/query?query=up')"
      echo "pod-ip with org: \$(curl -s -m 10 -o /dev/null -w '%{http_code}' -H 'X-Scope-OrgID: kc-smoke' 'http://$cortex_ip:9009/prometheus/api/v1/query?query=up')"
EOF
  deadline=$(( $(date +%s) + 120 ))
  while phase=$(k get pod cross-node-check -o jsonpath='{.status.phase}'); [ "$phase" != Succeeded ] && [ "$phase" != Failed ]; do
    [ "$(date +%s)" -lt "$deadline" ] || break
    sleep 1
  done
  out=$(k logs cross-node-check 2>&1 | tr '\n' ' ')
  log "from a pod on $other to Cortex on $cortex_node ($cortex_ip): phase $phase: $out"
  [ "$phase" = Succeeded ] && grep -q 'dns+service: ready 200' <<<"$out" && grep -q 'service-ip: 200' <<<"$out" \
    && grep -q 'pod-ip without org: 401' <<<"$out" && grep -q 'pod-ip with org: 200' <<<"$out" \
    || fail "cross-node check failed (phase $phase): $out"
  mark cross-node-check "$s"
fi
