# Sourced by every script that runs `go build` on a pinned component (build-component.sh,
# kind/build.sh, kind/build-keda.sh, kind/build-registry.sh): one set of compiler settings, so
# the local stack's and the kind images' builds of the same packages share Go's build cache (a
# different -gcflags would compile Kubernetes, KEDA and Cortex twice).
#   GO_GCFLAGS    use as: go build -gcflags "$GO_GCFLAGS"
#   GOGC, GOMEMLIMIT  exported
# The compiler and linker are Go programs: with the collector off up to a soft memory limit
# they spend less time collecting (helm3 cold here: 97 s -> 71 s wall, together with no DWARF).
# The limit is per process, so it is a share of the memory available (an eighth per core, at
# most 1 GiB): several components build at once, each with one compile per core. Upstream's
# release builds strip DWARF at link time (-ldflags -w), so the compiler need not write it.
# shellcheck shell=bash
# shellcheck disable=SC2034 # used by the scripts that source this file
GO_GCFLAGS="all=-dwarf=false"
go_build_mem_kb=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0)
go_build_cores=$(nproc 2>/dev/null || echo 1)
go_build_limit_mb=$(( ${go_build_mem_kb:-0} / 1024 / (8 * go_build_cores) ))
[ "$go_build_limit_mb" -le 1024 ] || go_build_limit_mb=1024
if [ "$go_build_limit_mb" -ge 256 ]; then
  export GOGC=off GOMEMLIMIT="${go_build_limit_mb}MiB"
fi
unset go_build_mem_kb go_build_cores go_build_limit_mb
