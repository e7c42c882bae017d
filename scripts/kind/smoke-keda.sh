#!/usr/bin/env bash
# End-to-end smoke test of KEDA as pods in the offline kind pipeline: Docker engine
# (scripts/kind/dockerd.sh), images and manifests (scripts/kind/build.sh, which runs
# build-keda.sh), a kind cluster from kind-config/single-node.yaml with a unique kc- name, then
#   - KEDA v2.20.x (operator, metrics API server, admission webhooks) from its rendered install
#     manifest (server-side apply), images loaded with `kind load`; all three Ready and the
#     APIService v1beta1.external.metrics.k8s.io Available;
#   - Cortex (multi-tenant) as a pod with a Service; one series pushed for tenant-a by remote
#     write (scripts/kind/go/pushseries through `kubectl port-forward`), checked to be visible
#     to tenant-a only;
#   - a Deployment "tempo" of the Tempo stand-in loaded as grafana/tempo:2.9.0
#     (scripts/kind/load-standin.sh), readiness probe on :3200/ready;
#   - a ScaledObject (prometheus trigger on the Cortex Service, customHeaders
#     X-Scope-OrgID=tenant-a, threshold 250, value 750, min 1, max 5, pollingInterval 5): the
#     Deployment must reach exactly 3 Ready replicas and the ScaledObject Ready=True.
# Prints timings (cluster create -> Ready, KEDA apply -> Ready, ScaledObject -> 3 replicas).
# Deletes the cluster, the stand-in's tag and the dockerd it started, also on failure/interrupt.
# Usage: scripts/kind/smoke-keda.sh
# Env: KC_KEEP_DOCKERD=1 leaves a dockerd it started running; KC_SMOKE_KEEP_CLUSTER=1 keeps the
#      cluster (and so the dockerd) for inspection.
# Exit codes: 0 passed, 1 a check failed, 2 setup failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
config=$root/kind-config/single-node.yaml
tempo_ref=grafana/tempo:2.9.0
tenant=tenant-a
metric=kc_smoke_queue_depth
value=750
threshold=250
want_replicas=3   # ceil(750 / 250), AverageValue

log() { echo "smoke-keda.sh: $*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
trap 'log "failed at line $LINENO: $BASH_COMMAND"' ERR
t0=$(date +%s)
timings=()
mark() { # mark NAME START: records NAME's duration since START
  local d=$(( $(date +%s) - $2 ))
  timings+=("$1=${d}s"); log "$1: ${d}s"
}

cluster=kc-keda-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d /tmp/kc-smoke-keda.XXXXXX)
export KUBECONFIG=$tmp/kubeconfig
started_docker=0
pf_pid=""
cluster_created=0
tagged=0
cleanup() {
  local rc=$? s
  trap - EXIT INT TERM ERR
  [ -z "$pf_pid" ] || { kill "$pf_pid" 2>/dev/null || true; wait "$pf_pid" 2>/dev/null || true; }
  if [ "${KC_SMOKE_KEEP_CLUSTER:-0}" = 1 ] && [ "$cluster_created" = 1 ]; then
    log "keeping cluster $cluster (KUBECONFIG: $tmp/kubeconfig) and the dockerd"
    log "timings: ${timings[*]} total=$(( $(date +%s) - t0 ))s"
    exit "$rc"
  fi
  if [ "$rc" != 0 ] && [ "$cluster_created" = 1 ] && [ -f "$KUBECONFIG" ]; then
    log "state at failure:"
    timeout 30 "$KUBECTL" get pods -A -o wide >&2 2>/dev/null || true
    timeout 30 "$KUBECTL" get scaledobject,hpa -A >&2 2>/dev/null || true
    timeout 30 "$KUBECTL" -n keda logs deployment/keda-operator --tail=25 >&2 2>/dev/null || true
  fi
  s=$(date +%s)
  if [ "$cluster_created" = 1 ]; then
    timeout 120 "$KIND" delete cluster --name "$cluster" --kubeconfig "$KUBECONFIG" >/dev/null 2>&1 \
      || log "kind delete cluster $cluster failed"
    for c in $(timeout 30 docker ps -aq --filter "label=io.x-k8s.kind.cluster=$cluster" 2>/dev/null); do
      timeout 60 docker rm -f -v "$c" >/dev/null 2>&1 || true
    done
    mark delete-cluster "$s"
  fi
  # The stand-in's upstream-named tag only (the image itself stays cached).
  [ "$tagged" = 0 ] || timeout 60 docker rmi "$tempo_ref" >/dev/null 2>&1 || true
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
# shellcheck disable=SC1091
. "$cache_root/kind/keda.env"    # KEDA_VERSION, KEDA_MANIFEST, KEDA_IMAGES, STANDIN_IMAGE, PUSHSERIES
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

# Images into the node while the control plane comes up.
sl=$(date +%s)
# shellcheck disable=SC2086
timeout 300 "$KIND" load docker-image $KEDA_IMAGES "$CORTEX_IMAGE" --name "$cluster" >"$tmp/load.log" 2>&1 \
  || { cat "$tmp/load.log" >&2; fail "kind load docker-image (KEDA, Cortex) failed"; }
tagged=1
"$here/load-standin.sh" "$cluster" "$tempo_ref" || fail "loading the Tempo stand-in as $tempo_ref failed"
mark load-images "$sl"

# etcd, apiserver, controller-manager, scheduler, kube-proxy and 2 coredns
wait_ready kube-system 7 300 || fail "kube-system pods not all Ready within 300s"
k wait --for=condition=Ready node --all --timeout=60s >/dev/null || fail "node not Ready"
mark cluster-ready "$s"   # from kind create, image loads included

# ---------------------------------------------------------------- KEDA, Cortex, stand-in
s=$(date +%s)
k apply --server-side --force-conflicts -f "$KEDA_MANIFEST" >"$tmp/keda-apply.log" 2>&1 \
  || { cat "$tmp/keda-apply.log" >&2; fail "server-side apply of $KEDA_MANIFEST failed"; }
k wait --for=condition=Established crd --all --timeout=60s >/dev/null || fail "KEDA CRDs not Established"

# Cortex and the stand-in start while KEDA does.
sc=$(date +%s)
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
      # A busybox init container creates the directories Cortex expects in its emptyDir.
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
---
# The chart's Tempo container, played by the stand-in under the upstream image name.
apiVersion: apps/v1
kind: Deployment
metadata: {name: tempo, namespace: default}
spec:
  replicas: 1
  selector: {matchLabels: {app: tempo}}
  template:
    metadata: {labels: {app: tempo}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: tempo
        image: $tempo_ref
        imagePullPolicy: IfNotPresent
        args: [-config.file=/conf/tempo.yaml, -target=all]
        ports:
        - {containerPort: 3200, name: http}
        - {containerPort: 9095, name: grpc}
        - {containerPort: 7946, name: memberlist}
        readinessProbe:
          httpGet: {path: /ready, port: 3200}
          periodSeconds: 2
        securityContext: {runAsNonRoot: true, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true}
EOF

# wait_rollout NAMESPACE DEPLOYMENT SECONDS
wait_rollout() {
  if ! timeout $(( $3 + 10 )) "$KUBECTL" -n "$1" rollout status "deployment/$2" --timeout="${3}s" >/dev/null; then
    k -n "$1" get pods -o wide >&2 || true
    k -n "$1" describe deployment "$2" 2>/dev/null | tail -n 15 >&2 || true
    k -n "$1" logs "deployment/$2" --all-containers --tail=30 >&2 || true
    return 1
  fi
}
for d in keda-operator keda-metrics-apiserver keda-admission; do
  wait_rollout keda "$d" 300 || fail "KEDA Deployment $d not Ready within 300s"
done
k wait --for=condition=Available apiservice/v1beta1.external.metrics.k8s.io --timeout=120s >/dev/null \
  || { k get apiservice v1beta1.external.metrics.k8s.io -o yaml >&2 || true; fail "APIService v1beta1.external.metrics.k8s.io not Available"; }
k get --raw /apis/external.metrics.k8s.io/v1beta1 >/dev/null || fail "the external metrics API does not answer"
mark keda-ready "$s"
wait_rollout default cortex 120 || fail "Cortex Deployment not Ready"
wait_rollout default tempo 120 || fail "Tempo stand-in Deployment not Ready"
mark cortex+standin-ready "$sc"

# ---------------------------------------------------------------- a series for tenant-a
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
push() {
  timeout 20 "$PUSHSERIES" -url "http://127.0.0.1:$port/api/v1/push" -tenant "$tenant" \
    -metric "$metric" -label job=kc-smoke -value "$value" >"$tmp/push.log" 2>&1
}
deadline=$(( $(date +%s) + 30 ))
until push; do
  [ "$(date +%s)" -lt "$deadline" ] || { cat "$tmp/push.log" >&2; fail "remote write to Cortex failed"; }
  sleep 1
done
log "$(cat "$tmp/push.log")"
query() { # query TENANT: the instant query's JSON
  timeout 20 curl -s -H "X-Scope-OrgID: $1" "http://127.0.0.1:$port/prometheus/api/v1/query?query=$metric" || true
}
# A fresh tenant's first series shows in queries a moment after the push is acknowledged.
deadline=$(( $(date +%s) + 30 ))
until a=$(query "$tenant"); jq -e --arg v "$value" '.data.result | length == 1 and .[0].value[1] == $v' <<<"$a" >/dev/null 2>&1; do
  [ "$(date +%s)" -lt "$deadline" ] || { log "query as $tenant: $a"; fail "$tenant does not see $metric=$value within 30s"; }
  sleep 1
done
b=$(query tenant-b)
log "query as $tenant: $a"
log "query as tenant-b: $b"
jq -e '.data.result | length == 0' <<<"$b" >/dev/null || fail "tenant-b sees $tenant's series"

# ---------------------------------------------------------------- ScaledObject
s=$(date +%s)
k apply -f - >/dev/null 2>"$tmp/so-apply.log" <<EOF || { cat "$tmp/so-apply.log" >&2; fail "creating the ScaledObject failed"; }
apiVersion: keda.sh/v1alpha1
kind: ScaledObject
metadata: {name: tempo, namespace: default}
spec:
  scaleTargetRef: {name: tempo}
  minReplicaCount: 1
  maxReplicaCount: 5
  pollingInterval: 5
  triggers:
  - type: prometheus
    metadata:
      serverAddress: http://cortex.default.svc.cluster.local:9009/prometheus
      query: sum($metric{job="kc-smoke"})
      threshold: "$threshold"
      customHeaders: X-Scope-OrgID=$tenant
EOF
# KEDA's admission webhook answers with warnings (e.g. that pollingInterval does not matter
# with minReplicaCount >= 1): proof it is wired in.
[ ! -s "$tmp/so-apply.log" ] || log "kubectl apply ScaledObject said: $(tr '\n' ' ' <"$tmp/so-apply.log")"
deadline=$(( $(date +%s) + 300 ))
last_push=$(date +%s)
while :; do
  ready=$(k get deployment tempo -o jsonpath='{.status.readyReplicas}' 2>/dev/null || true)
  so=$(k get scaledobject tempo -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)
  [ "${ready:-0}" -ge "$want_replicas" ] && [ "$so" = True ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    k get scaledobject tempo -o yaml >&2 || true
    k describe hpa keda-hpa-tempo 2>/dev/null | tail -n 25 >&2 || true
    fail "Deployment tempo has ${ready:-0} Ready replicas (want $want_replicas), ScaledObject Ready=${so:-none} after 300s"
  fi
  # Keep the series fresh (an instant query looks back 5 minutes).
  if [ $(( $(date +%s) - last_push )) -ge 20 ]; then push || log "re-push failed: $(cat "$tmp/push.log")"; last_push=$(date +%s); fi
  sleep 2
done
mark scaledobject-to-3-replicas "$s"
# The metric is exactly at target * 3: the HPA must settle at 3, not overshoot.
sleep 12
push || true
replicas=$(k get deployment tempo -o jsonpath='{.spec.replicas}')
ready=$(k get deployment tempo -o jsonpath='{.status.readyReplicas}')
metric_value=$(k get --raw "/apis/external.metrics.k8s.io/v1beta1/namespaces/default/s0-prometheus?labelSelector=scaledobject.keda.sh%2Fname%3Dtempo" \
  | jq -r '.items[0].value' 2>/dev/null || true)
log "HPA: $(k get hpa keda-hpa-tempo --no-headers 2>/dev/null | tr -s ' ')"
log "external metric s0-prometheus via the metrics API server: $metric_value"
[ "$replicas" = "$want_replicas" ] && [ "$ready" = "$want_replicas" ] \
  || fail "Deployment tempo drifted to spec $replicas / ready $ready replicas (want $want_replicas)"
case "$metric_value" in 750|750000m) ;; *) fail "external metric s0-prometheus is '$metric_value', want 750";; esac
log "ScaledObject tempo Ready=True, Deployment tempo at $ready/$want_replicas Ready replicas"
