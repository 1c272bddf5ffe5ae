#!/usr/bin/env bash
# `npm test`, second half: the BPF integration suite again, in the tracefs world this machine is not in.
# Hosts differ: a fresh machine, a container or `ip netns exec` has no tracefs; a developer's desktop has it.
# netbpf must pass the same tests with the same features in both, so after the suite ran as the machine is,
# it runs again in a private mount namespace (unshare -m) where tracefs (and debugfs) is mounted if the machine
# lacks it, or unmounted if the machine has it. The machine's own mounts are never changed.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "netbpf tests: not root, so the second tracefs world is not run (BPF integration tests need root)" >&2
  [ -z "${NETBPF_REQUIRE_BPF:-}" ] || exit 1
  exit 0
fi
if [ -d /sys/kernel/tracing/events ] || [ -d /sys/kernel/debug/tracing/events ]; then
  world='without tracefs'
  setup='for m in /sys/kernel/debug/tracing /sys/kernel/tracing /sys/kernel/debug; do umount -l $m 2>/dev/null; done; test ! -e /sys/kernel/tracing/events && test ! -e /sys/kernel/debug/tracing/events'
else
  world='with tracefs'
  setup='mount -t tracefs nodev /sys/kernel/tracing && test -d /sys/kernel/tracing/events'
fi
echo "netbpf tests: the BPF integration suite again, $world (private mount namespace)" >&2
# pack.test.ts packs and installs the package: once (in the first run) is enough.
exec unshare -m --propagation private sh -c "$setup || { echo 'netbpf tests: could not set up the $world world' >&2; exit 1; }; exec npx vitest run test/integration --exclude test/integration/pack.test.ts"
