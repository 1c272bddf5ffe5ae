#!/usr/bin/env bash
# A pod as deploy/netbpf-daemonset.yaml runs one, made with unshare (podman cannot run containers here):
# new mount, PID, cgroup and network namespaces (no hostPID, no hostNetwork); the pod's own /proc, a read-only
# sysfs (which brings /sys/kernel/btf; no tracefs, no debugfs) and a cgroup2 mount that, in its own cgroup
# namespace, shows only its own subtree; the host's cgroup v2 tree bound read-only at STAGE/host/sys/fs/cgroup
# (the manifest's hostPath volume). COMMAND then runs as uid 0 with only CAPS (bounding, inheritable and
# effective sets; no_new_privs, like allowPrivilegeEscalation: false).
#   pod.sh STAGE HOST_CGROUP2 CAPS COMMAND...     CAPS like +bpf,+perfmon,+net_admin
# Start it from inside the cgroup the pod should own: the cgroup namespace is rooted there.
set -euo pipefail
if [ -z "${NETBPF_POD_NS:-}" ]; then
  exec unshare --mount --pid --fork --cgroup --net --propagation private --kill-child env NETBPF_POD_NS=1 bash "$0" "$@"
fi
stage=$1 hostcg=$2 caps=$3
shift 3
# Hold on to the host's cgroup tree, then replace (not cover) /proc and /sys, so the mount table is a pod's:
# the runtime's mounts first, the hostPath volume after them.
mkdir -p "$stage/hold" "$stage/host/sys/fs/cgroup"
mount --bind "$hostcg" "$stage/hold"
umount --recursive --lazy /sys
umount --recursive --lazy /proc
mount -t proc proc /proc
mount -t sysfs -o ro sysfs /sys
mount -t cgroup2 -o ro cgroup2 /sys/fs/cgroup
mount --bind "$stage/hold" "$stage/host/sys/fs/cgroup"
mount -o remount,bind,ro "$stage/host/sys/fs/cgroup"
umount "$stage/hold"
ip link set lo up
exec setpriv --bounding-set="-all,$caps" --inh-caps="-all,$caps" --no-new-privs "$@"
