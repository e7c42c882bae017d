#!/usr/bin/env bash
# The Docker engine the kind provider uses. Usage: scripts/kind/dockerd.sh start|stop|env|status
#   start   use an engine that already answers (DOCKER_HOST, else /var/run/docker.sock) if it can
#           run privileged containers; otherwise start a PRIVATE dockerd of ours (installing
#           docker.io with apt when dockerd is missing; needs root). Prints the DOCKER_HOST to use.
#   env     prints the DOCKER_HOST to use (exit 3 when `start` has not run).
#   stop    stops only what `start` started: our containers, networks, bridges, dockerd and its
#           runtime state. An engine we did not start is left alone. Images stay in the data-root
#           cache (~/.cache/keda-conformance/kind/docker-data) unless `stop --purge`.
#   status  prints what is running.
# The private dockerd has its own socket, exec-root, pidfile, containerd namespaces, bridge
# (kc-docker0) and address pool; it leaves the host's iptables and ip_forward alone
# ("iptables": false; containers on one bridge talk over L2, published ports go through
# docker-proxy on loopback). It never sets "bridge": "none" (dockerd 20.10 would then delete
# the host's docker0).
# Privileged containers: Docker 20.10 grants a privileged container every capability it knows;
# where the host's capability bounding set lacks some of them (this VM lacks CAP_SYS_RESOURCE),
# runc fails with "unable to apply caps: operation not permitted". start probes for that and,
# only then, makes the default runtime a small wrapper around runc that drops the capabilities
# missing from our bounding set from the bundle's config.json (create/run --bundle) and from
# `docker exec`'s process spec (exec --process).
# Env overrides: KC_DOCKER_RUN_DIR (/run/kc-dockerd), KC_DOCKER_BRIDGE (kc-docker0),
# KC_DOCKER_BRIDGE_CIDR (172.29.255.1/24), KC_DOCKER_POOL (172.29.0.0/17),
# KEDA_CONFORMANCE_CACHE (~/.cache/keda-conformance); KEDA_CONFORMANCE_NO_PRIVATE_DOCKERD=1 uses
# only an engine that answers (start fails, exit 2, when none does).
# Exit codes: 0 ok, 2 could not start / stop, 3 not started (env).
set -euo pipefail

cache_root=${KEDA_CONFORMANCE_CACHE:-$HOME/.cache/keda-conformance}
run_dir=${KC_DOCKER_RUN_DIR:-/run/kc-dockerd}
data_root=$cache_root/kind/docker-data
bridge=${KC_DOCKER_BRIDGE:-kc-docker0}
bridge_cidr=${KC_DOCKER_BRIDGE_CIDR:-172.29.255.1/24}
pool=${KC_DOCKER_POOL:-172.29.0.0/17}
sock=$run_dir/docker.sock
state=$run_dir/state            # "private" or "external <DOCKER_HOST>"
probe_image=kc-caps-probe:1

log() { echo "dockerd.sh: $*" >&2; }
die() { log "$*"; exit 2; }

lock() {
  mkdir -p "$run_dir"
  exec 8>"$run_dir.lock"
  timeout 300 flock 8 || die "timed out waiting for $run_dir.lock"
}

# answers HOST: true when a Docker engine answers at HOST.
answers() { DOCKER_HOST=$1 timeout 20 docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

private_pid() {
  local pid
  [ -f "$run_dir/dockerd.pid" ] || return 1
  pid=$(cat "$run_dir/dockerd.pid" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 1
  # The pid must still be our dockerd (pid reuse after a reboot or crash).
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--config-file $run_dir/daemon.json" || return 1
  echo "$pid"
}

# make_probe_image HOST: a tiny image holding the host's /usr/bin/true and its libraries,
# made without any registry.
make_probe_image() {
  local host=$1 tmp lib
  DOCKER_HOST=$host docker image inspect "$probe_image" >/dev/null 2>&1 && return 0
  tmp=$(mktemp -d)
  cp --parents /usr/bin/true "$tmp/"
  for lib in $(ldd /usr/bin/true | grep -oE '/[^ ]+'); do cp --parents -L "$lib" "$tmp/"; done
  tar -C "$tmp" -c . | DOCKER_HOST=$host timeout 60 docker import - "$probe_image" >/dev/null
  rm -rf "$tmp"
}

# probe_privileged HOST [extra docker run args]: prints nothing on success, the error otherwise.
probe_privileged() {
  local host=$1; shift
  make_probe_image "$host"
  DOCKER_HOST=$host timeout 60 docker run --rm --privileged --network none "$@" "$probe_image" /usr/bin/true 2>&1 >/dev/null || true
}

# Capability names the host's bounding set lacks (numbers from linux/capability.h).
missing_caps() {
  local names=(CHOWN DAC_OVERRIDE DAC_READ_SEARCH FOWNER FSETID KILL SETGID SETUID SETPCAP
    LINUX_IMMUTABLE NET_BIND_SERVICE NET_BROADCAST NET_ADMIN NET_RAW IPC_LOCK IPC_OWNER SYS_MODULE
    SYS_RAWIO SYS_CHROOT SYS_PTRACE SYS_PACCT SYS_ADMIN SYS_BOOT SYS_NICE SYS_RESOURCE SYS_TIME
    SYS_TTY_CONFIG MKNOD LEASE AUDIT_WRITE AUDIT_CONTROL SETFCAP MAC_OVERRIDE MAC_ADMIN SYSLOG
    WAKE_ALARM BLOCK_SUSPEND AUDIT_READ PERFMON BPF CHECKPOINT_RESTORE)
  local bnd i
  bnd=$(awk '/^CapBnd:/ {print $2}' /proc/self/status)
  for i in "${!names[@]}"; do
    if (( (16#$bnd >> i & 1) == 0 )); then echo "CAP_${names[$i]}"; fi
  done
}

write_runtime_wrapper() {
  command -v jq >/dev/null || die "jq is required (apt-get install jq)"
  missing_caps | jq -R . | jq -cs . >"$run_dir/kc-runc.drop"
  # One filter for both files: a bundle's config.json has .process.capabilities, exec's
  # process spec has .capabilities.
  cat >"$run_dir/kc-runc.jq" <<'EOF_JQ'
def strip: with_entries(.value |= (if type == "array" then map(select(. as $c | $drop | index($c) | not)) else . end));
if (.process.capabilities? // null) != null then .process.capabilities |= strip
elif (.capabilities? // null) != null then .capabilities |= strip
else . end
EOF_JQ
  cat >"$run_dir/kc-runc" <<'EOF_SH'
#!/bin/sh
# Written by scripts/kind/dockerd.sh: runc without the capabilities this host's bounding set
# lacks (listed in kc-runc.drop), removed from the OCI bundle's config.json (create/run) and
# from `runc exec`'s process spec, then the real runc.
set -e
here=$(dirname "$0")
strip() {
  [ -f "$1" ] || return 0
  jq --argjson drop "$(cat "$here/kc-runc.drop")" -f "$here/kc-runc.jq" "$1" >"$1.kc-tmp"
  mv "$1.kc-tmp" "$1"
}
cmd=""; bundle=""; process=""; prev=""
for a in "$@"; do
  case "$prev" in
    --bundle|-b) bundle=$a ;;
    --process|-p) process=$a ;;
  esac
  case "$a" in
    --bundle=*) bundle=${a#--bundle=} ;;
    --process=*) process=${a#--process=} ;;
    create|run|exec) [ -n "$cmd" ] || cmd=$a ;;
  esac
  prev=$a
done
case "$cmd" in
  create|run) strip "${bundle:-.}/config.json" ;;
  exec) [ -z "$process" ] || strip "$process" ;;
esac
exec /usr/sbin/runc "$@"
EOF_SH
  chmod 755 "$run_dir/kc-runc"
}

write_config() { # write_config DEFAULT_RUNTIME
  jq -n --arg sock "unix://$sock" --arg data "$data_root" --arg exec "$run_dir/exec" \
    --arg pid "$run_dir/dockerd.pid" --arg bridge "$bridge" --arg pool "$pool" \
    --arg wrapper "$run_dir/kc-runc" --arg rt "$1" '{
      hosts: [$sock], "data-root": $data, "exec-root": $exec, pidfile: $pid,
      "containerd-namespace": "kc-moby", "containerd-plugins-namespace": "kc-plugins",
      bridge: $bridge, "default-address-pools": [{base: $pool, size: 24}],
      iptables: false, "ip-forward": false, "ip-masq": false, ipv6: false,
      "storage-driver": "overlay2", "log-level": "warn",
      runtimes: {"kc-runc": {path: $wrapper}}, "default-runtime": $rt }' >"$run_dir/daemon.json"
}

launch() {
  [ -S "$sock" ] && rm -f "$sock"
  # setsid: the daemon outlives this script and is not in the caller's process group.
  setsid dockerd --config-file "$run_dir/daemon.json" </dev/null >>"$run_dir/dockerd.log" 2>&1 8>&- &
  local i
  for i in $(seq 1 120); do
    if answers "unix://$sock"; then return 0; fi
    sleep 0.5
  done
  tail -n 20 "$run_dir/dockerd.log" >&2
  die "our dockerd did not answer on $sock within 60s (log: $run_dir/dockerd.log)"
}

kill_private() {
  local pid i
  pid=$(private_pid) || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.5; done
  log "dockerd $pid did not stop in 30s; SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  sleep 1
}

start() {
  if [ -n "${KEDA_CONFORMANCE_NO_PRIVATE_DOCKERD:-}" ]; then
    local c
    for c in ${DOCKER_HOST:-} unix:///var/run/docker.sock; do
      if answers "$c"; then echo "$c"; return 0; fi
    done
    die "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}, /var/run/docker.sock) and KEDA_CONFORMANCE_NO_PRIVATE_DOCKERD forbids starting a private dockerd"
  fi
  lock
  if [ -f "$state" ]; then
    read -r mode host <"$state" || true
    if [ "$mode" = private ] && private_pid >/dev/null && answers "unix://$sock"; then
      echo "unix://$sock"; return 0
    fi
    if [ "$mode" = external ] && answers "$host"; then echo "$host"; return 0; fi
  fi
  # An engine that already answers, if it can run kind's privileged node containers.
  local candidate err
  for candidate in ${DOCKER_HOST:-} unix:///var/run/docker.sock; do
    [ "$candidate" = "unix://$sock" ] && continue
    answers "$candidate" || continue
    err=$(probe_privileged "$candidate")
    DOCKER_HOST=$candidate docker rmi "$probe_image" >/dev/null 2>&1 || true
    if [ -z "$err" ]; then
      echo "external $candidate" >"$state"
      log "using the Docker engine at $candidate"
      echo "$candidate"; return 0
    fi
    log "the engine at $candidate cannot run privileged containers ($err); starting our own"
  done

  [ "$(id -u)" = 0 ] || die "no Docker engine answers, and a private dockerd needs root"
  if ! command -v dockerd >/dev/null || [ ! -x /usr/sbin/runc ]; then
    log "installing docker.io with apt"
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y --no-install-recommends docker.io >&2 \
      || die "apt-get install docker.io failed"
  fi
  command -v jq >/dev/null || DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y jq >&2

  # Leftovers of a crashed run of ours.
  kill_private
  mkdir -p "$run_dir" "$data_root"
  if ! ip link show "$bridge" >/dev/null 2>&1; then
    ip link add name "$bridge" type bridge
    ip addr add "$bridge_cidr" dev "$bridge"
  fi
  ip link set "$bridge" up
  write_runtime_wrapper
  write_config runc
  echo private >"$state"
  launch
  err=$(probe_privileged "unix://$sock")
  if [ -n "$err" ]; then
    if ! grep -q 'unable to apply caps' <<<"$err"; then
      die "docker run --privileged fails on our dockerd, not for a known reason: $err"
    fi
    log "privileged containers fail here (unable to apply caps; missing from the bounding set: $(missing_caps | paste -sd' ')); using the kc-runc wrapper as default runtime"
    err=$(probe_privileged "unix://$sock" --runtime kc-runc)
    [ -z "$err" ] || die "even the kc-runc wrapper cannot run a privileged container: $err"
    kill_private
    write_config kc-runc
    launch
    err=$(probe_privileged "unix://$sock")
    [ -z "$err" ] || die "privileged probe still fails with the kc-runc default runtime: $err"
  fi
  log "private dockerd ready (pid $(private_pid), socket $sock, default runtime $(jq -r '."default-runtime"' "$run_dir/daemon.json"))"
  echo "unix://$sock"
}

stop() {
  local purge=${1:-}
  lock
  local mode="" host=""
  [ -f "$state" ] && read -r mode host <"$state" || true
  if [ "$mode" = external ]; then
    rm -rf "$run_dir"
    log "the engine at $host is not ours; left running"
    return 0
  fi
  local bridges=() id pid
  if private_pid >/dev/null && answers "unix://$sock"; then
    export DOCKER_HOST=unix://$sock
    # Every container and network of this daemon is ours.
    for id in $(timeout 60 docker ps -aq); do timeout 120 docker rm -f "$id" >/dev/null || true; done
    for id in $(timeout 30 docker network ls -q --filter type=custom); do
      bridges+=("br-${id:0:12}")
      timeout 60 docker network rm "$id" >/dev/null || true
    done
  fi
  kill_private
  # Shims of our containerd namespace that outlived dockerd (matched by our namespace, by pid).
  for pid in $(pgrep -f -- "-namespace kc-moby" || true); do kill -KILL "$pid" 2>/dev/null || true; done
  for b in "${bridges[@]}" "$bridge"; do ip link del "$b" 2>/dev/null || true; done
  # Mounts left under our exec-root or data-root (a killed daemon does not unmount).
  awk -v a="$run_dir" -v b="$data_root" '$5 ~ "^"a || $5 ~ "^"b {print $5}' /proc/self/mountinfo \
    | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
  rm -rf "$run_dir"
  if [ "$purge" = --purge ]; then rm -rf "$data_root"; fi
  log "stopped"
}

case "${1:-}" in
  start) start ;;
  stop) stop "${2:-}" ;;
  env)
    if [ -f "$state" ]; then
      read -r mode host <"$state" || true
      if [ "$mode" = private ] && private_pid >/dev/null; then echo "unix://$sock"; exit 0; fi
      if [ "$mode" = external ]; then echo "$host"; exit 0; fi
    fi
    log "not started (run: scripts/kind/dockerd.sh start)"; exit 3 ;;
  status)
    if [ -f "$state" ]; then cat "$state"; private_pid || true; else echo "not started"; fi ;;
  *) echo "usage: $0 start|stop [--purge]|env|status" >&2; exit 2 ;;
esac
