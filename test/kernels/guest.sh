#!/bin/bash
# Runs the BPF integration suite on the running kernel and writes what happened into an output folder:
#   kernel.json (release, features), hooks.json (hook each tool chose, and why others were passed over),
#   vitest.json (per-test results), vitest.log, vitest.rc.
# `guest.sh vm` is run by the initramfs (test/kernels/init.sh) inside a qemu guest whose root is the host's
# file system (read-only 9p + RAM overlay): it first mounts the pseudo file systems and makes this kernel's
# modules (unpacked under build/kernels/) loadable. `guest.sh host OUT` runs the same suite on this machine.
set -u
repo=$(cd "$(dirname "$0")/../.." && pwd)
mode=${1:-host}
if [ "$mode" = vm ]; then
  out=/netbpf-out
  # Settings from run.sh (suite filter, timeouts), passed through the results share.
  [ -f "$out/env.sh" ] && . "$out/env.sh"
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
  mount -t proc proc /proc
  mount -t sysfs sysfs /sys
  mount -t devtmpfs devtmpfs /dev
  mkdir -p /dev/pts /dev/shm
  mount -t devpts devpts /dev/pts
  for d in /dev/shm /run /tmp /var/tmp; do mount -t tmpfs tmpfs "$d"; done
  mount -t bpf bpf /sys/fs/bpf
  mount -t tracefs tracefs /sys/kernel/tracing
  mount -t debugfs debugfs /sys/kernel/debug
  mount -t cgroup2 cgroup2 /sys/fs/cgroup
  kver=$(uname -r)
  # This kernel's modules (depmod'ed on the host) where modprobe and the kernel's module autoloader look.
  mkdir -p "/lib/modules/$kver"
  mount --bind "$repo/build/kernels/root-$kver/lib/modules/$kver" "/lib/modules/$kver"
  echo /sbin/modprobe > /proc/sys/kernel/modprobe
  # What the fixtures use (namespaces, veth, nftables loss/NAT rules, conntrack(8) over ctnetlink, TUN relays). The
  # kernel autoloads the rest (nft expressions) on demand. tun must be loaded here: /dev/net/tun appears only then
  # (opening the missing node cannot autoload it; that takes the static nodes kmod/udev make, which no one makes here).
  modprobe -a tun veth nf_tables nft_ct nft_nat nft_chain_nat nft_numgen nft_reject_inet nft_limit \
    nf_conntrack nf_nat nf_conntrack_netlink nfnetlink_queue 2>&1 | grep -v 'not found' || true
  ip link set lo up
  hostname netbpf-guest
else
  out=${2:?usage: guest.sh host OUT}
  mkdir -p "$out"
fi
cd "$repo"
export NETBPF_REQUIRE_BPF=1 CI=true
node test/kernels/kernel-info.mjs > "$out/kernel.json" 2> "$out/kernel-info.log"
echo "guest: kernel $(uname -r), probing hooks" >&2
# In a fresh network namespace: per-namespace hooks (netfilter links) are not disturbed by whatever else runs.
if [ -n "${NETBPF_NO_HOOK_PROBE:-}" ]; then   # iterating on one test file: minutes saved under emulation
  echo "guest: NETBPF_NO_HOOK_PROBE set, hooks not probed" >&2
else
  timeout 300 unshare --net node test/kernels/hooks.mjs > "$out/hooks.json" 2> "$out/hooks.log"
  echo "guest: hooks probed (rc $?), running the integration suite" >&2
fi
if [ -n "${NETBPF_GUEST_CMD:-}" ]; then   # diagnostics: run this instead of the suite
  echo "guest: running NETBPF_GUEST_CMD" >&2
  timeout 600 bash -c "$NETBPF_GUEST_CMD" 2>&1 | tee "$out/guest-cmd.log"
  exit 0
fi
if [ -n "${NETBPF_HOOKS_ONLY:-}" ]; then echo "guest: NETBPF_HOOKS_ONLY set, suite not run" >&2; exit 0; fi
start=$(date +%s)
# The json reporter keeps per-test results; the default one shows progress on the console log.
# Every trace the tests start appends the hooks it used (test/kernels/hook-log.mjs, preloaded), for the matrix.
rm -f "$out/hooks-used.jsonl"
NODE_OPTIONS="--import=$repo/test/kernels/hook-log.mjs ${NODE_OPTIONS:-}" NETBPF_HOOK_LOG=$out/hooks-used.jsonl timeout "${NETBPF_SUITE_TIMEOUT:-3000}" npx vitest run ${NETBPF_SUITE_FILTER:-test/integration --exclude test/integration/pack.test.ts} \
  --reporter=default --reporter=json --outputFile.json="$out/vitest.json" 2>&1 | tee "$out/vitest.log"
rc=${PIPESTATUS[0]}
echo "$rc" > "$out/vitest.rc"
echo "$(( $(date +%s) - start ))" > "$out/vitest.seconds"
echo "guest: integration suite exited with $rc" >&2
if [ "$mode" = vm ]; then
  ip -all netns delete 2>/dev/null
  sync
fi
exit "$rc"
