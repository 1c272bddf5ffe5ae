#!/usr/bin/env bash
# Kernel matrix: runs the BPF integration suite (test/integration) on Debian's own kernels under qemu and on
# this machine's kernel, then writes build/kernels/results.json and docs/kernel-matrix.md (hook each tool
# used on each kernel, which alternatives load, pass/fail per test).
#
#   test/kernels/run.sh [--only LABEL[,LABEL]] [--no-host] [--filter PATTERN]      (npm run test:kernels)
#
# Kernels (override with NETBPF_KERNELS="label=package ..."): Debian 11's 5.10 (bullseye-security), Debian
# 12's 6.1 and 6.12 from bookworm-backports, generic flavour (it has 9p). Packages are fetched with
# `apt-get download` through a private apt configuration (build/kernels/apt: its own sources list, lists and
# cache; the system's apt sources are left alone) and unpacked with `dpkg-deb -x` under build/kernels/
# (nothing is installed into /boot). Each guest boots a
# busybox initramfs that mounts this machine's root file system read-only over 9p with a RAM overlay on top,
# so node, the built addon, BPF objects, fixtures and tools (ip, nft, conntrack, bpftrace) are the host's own,
# and the guest kernel's modules are loaded from the unpacked package. The same BPF objects (built here)
# run on every kernel: that is the CO-RE claim under test.
# Software emulation only (-accel tcg: /dev/kvm here has no VMX/SVM). Every guest runs under a hard timeout;
# qemu is killed on exit or interrupt, and the guest's writes vanish with its RAM.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
work=$root/build/kernels
only='' host=1 filter=''
while [ $# -gt 0 ]; do
  case $1 in
    --only) only=$2; shift ;;
    --no-host) host=0 ;;
    --filter) filter=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
VM_TIMEOUT=${NETBPF_VM_TIMEOUT:-3600}   # seconds per guest, boot to power-off (the suite takes ~30 min under emulation)
VM_MEMORY=${NETBPF_VM_MEMORY:-2G}
VM_CPUS=${NETBPF_VM_CPUS:-2}
log() { echo "kernels: $*" >&2; }

[ "$(id -u)" = 0 ] || { echo "run.sh: needs root (BPF, namespaces, apt-get download)" >&2; exit 1; }

# --- tools on this machine: qemu for the guests, kmod (depmod here; modprobe inside the guests, whose root
# is this file system) ---
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v depmod >/dev/null || need+=(kmod)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if [ ! -f "$root/build/Release/netbpf.node" ] || [ ! -d "$root/dist" ] || ! ls "$root"/build/bpf/*.bpf.o >/dev/null 2>&1; then
  log "building (npm run build)"
  (cd "$root" && npm run build --silent)
fi

mkdir -p "$work/pkgs"
# A private apt configuration under build/kernels/apt: the Debian suites the kernels come from (bookworm and its
# security and backports suites, bullseye and bullseye-security), with its own package lists and cache. The
# system's apt sources and lists are never read or changed for kernels.
apt_dir=$work/apt
APT_OPTS=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o Acquire::Languages=none)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial"
cat > "$apt_dir/sources.list.new" <<SRC
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm-backports main
deb [signed-by=$keyring] http://deb.debian.org/debian bullseye main
deb [signed-by=$keyring] http://deb.debian.org/debian-security bullseye-security main
SRC
# Refreshed when the list of suites changed or the lists are over a day old (a security suite moves weekly).
if ! cmp -s "$apt_dir/sources.list.new" "$apt_dir/sources.list" || [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*_InRelease' -mtime -1)" ]; then
  mv "$apt_dir/sources.list.new" "$apt_dir/sources.list"
  log "updating the private package lists ($apt_dir)"
  apt-get "${APT_OPTS[@]}" update -qq || { echo "run.sh: apt-get update of the private lists failed" >&2; exit 1; }
else
  rm -f "$apt_dir/sources.list.new"
fi
# The package a meta-package points to, e.g. linux-image-amd64 -> linux-image-6.1.0-56-amd64. Without a target
# release the newest version at default priority wins (bookworm or bookworm-security: 6.1).
image_of() { apt-cache "${APT_OPTS[@]}" depends "$@" linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'; }
if [ -n "${NETBPF_KERNELS:-}" ]; then
  read -r -a kernels <<< "$NETBPF_KERNELS"
else
  kernels=("debian-5.10=$(image_of -t bullseye-security)" "debian-6.1=$(image_of)" "debian-6.12=$(image_of -t bookworm-backports)")
fi

# Fetches a package once into build/kernels/pkgs; echoes the .deb path.
fetch() {
  local deb
  deb=$(ls "$work/pkgs/$1"_*.deb 2>/dev/null | head -n1 || true)
  if [ -z "$deb" ]; then
    (cd "$work/pkgs" && apt-get "${APT_OPTS[@]}" download -q "$1" >/dev/null 2>&1) || { echo "run.sh: apt-get download $1 failed" >&2; return 1; }
    deb=$(ls "$work/pkgs/$1"_*.deb | head -n1)
  fi
  echo "$deb"
}

busybox_deb=$(fetch busybox-static)
[ -x "$work/busybox/bin/busybox" ] || dpkg-deb -x "$busybox_deb" "$work/busybox"

qemu_pid=''
cleanup() { if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then kill "$qemu_pid"; wait "$qemu_pid" 2>/dev/null || true; fi; }
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

# Modules (paths relative to the module tree) to insmod, dependencies first, for module names $2.. of tree $1.
module_order() {
  local tree=$1; shift
  local seen=' ' m line deps d
  for m in "$@"; do
    grep -qE "/${m}\.ko(\.[a-z]+)?$" "$tree/modules.builtin" && continue
    line=$(grep -E "(^|/)${m}\.ko(\.[a-z]+)?:" "$tree/modules.dep") || { echo "run.sh: module $m not in $tree" >&2; return 1; }
    # modules.dep lists every dependency, the ones to load last first.
    deps=$(echo "${line#*:}" | tr ' ' '\n' | tac)
    for d in $deps "${line%%:*}"; do
      case $seen in *" $d "*) continue ;; esac
      seen="$seen$d "
      echo "$d"
    done
  done
}

# Boots kernel package $2 (label $1); results land in build/kernels/out/$1.
run_guest() {
  local label=$1 pkg=$2 deb kver tree initrd out
  deb=$(fetch "$pkg") || return 1
  kver=${pkg#linux-image-}
  if [ ! -f "$work/root-$kver/boot/vmlinuz-$kver" ]; then
    log "$label: unpacking $(basename "$deb")"
    mkdir -p "$work/root-$kver"
    dpkg-deb -x "$deb" "$work/root-$kver"
  fi
  tree=$work/root-$kver/lib/modules/$kver
  [ -f "$tree/modules.dep" ] || depmod -b "$work/root-$kver" "$kver"

  # initramfs: busybox, /init, and the modules that reach the host root (virtio PCI, 9p, overlay).
  initrd=$work/initramfs-$kver
  rm -rf "$initrd" && mkdir -p "$initrd"/{bin,dev,proc,sys,mnt,modules}
  cp "$work/busybox/bin/busybox" "$initrd/bin/"
  cp "$root/test/kernels/init.sh" "$initrd/init"
  : > "$initrd/modules.list"
  local m base
  for m in $(module_order "$tree" virtio_pci 9pnet_virtio 9p overlay); do
    base=$(basename "$m")
    case $base in
      *.ko.xz) xz -dc "$tree/$m" > "$initrd/modules/${base%.xz}"; base=${base%.xz} ;;
      *.ko.zst) zstd -qdc "$tree/$m" > "$initrd/modules/${base%.zst}"; base=${base%.zst} ;;
      *) cp "$tree/$m" "$initrd/modules/" ;;
    esac
    echo "$base" >> "$initrd/modules.list"
  done
  (cd "$initrd" && find . | "$work/busybox/bin/busybox" cpio -o -H newc 2>/dev/null | gzip -1) > "$work/initramfs-$kver.cpio.gz"
  rm -rf "$initrd"

  out=$work/out/$label
  rm -rf "$out" && mkdir -p "$out"
  declare -p NETBPF_SUITE_FILTER NETBPF_HOOKS_ONLY NETBPF_SUITE_TIMEOUT NETBPF_GUEST_CMD NETBPF_NO_HOOK_PROBE 2>/dev/null | sed 's/^declare -x /export /' > "$out/env.sh" || true
  printf '{"label":"%s","package":"%s","version":"%s"}\n' "$label" "$pkg" \
    "$(dpkg-deb -f "$deb" Version)" > "$out/meta.json"
  log "$label: booting $kver under qemu (TCG, $VM_CPUS vCPUs, $VM_MEMORY, timeout ${VM_TIMEOUT}s); console: $out/console.log"
  local t0=$SECONDS
  timeout -k 10 "$VM_TIMEOUT" qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp "$VM_CPUS" -m "$VM_MEMORY" \
    -nographic -no-reboot -nic none \
    -kernel "$work/root-$kver/boot/vmlinuz-$kver" -initrd "$work/initramfs-$kver.cpio.gz" \
    -append "console=ttyS0 panic=-1 loglevel=4 netbpf.repo=$root" \
    -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
    -virtfs "local,path=$out,mount_tag=out,security_model=none" \
    < /dev/null > "$out/console.log" 2>&1 &
  qemu_pid=$!
  local rc=0
  wait "$qemu_pid" || rc=$?
  qemu_pid=''
  echo "$(( SECONDS - t0 ))" > "$out/vm.seconds"
  [ $rc = 124 ] && log "$label: timed out after ${VM_TIMEOUT}s"
  log "$label: guest finished in $(( SECONDS - t0 )) s, suite exit $(cat "$out/vitest.rc" 2>/dev/null || echo none)"
}

selected() { [ -z "$only" ] || [[ ",$only," == *",$1,"* ]]; }

export NETBPF_SUITE_FILTER=$filter
for k in "${kernels[@]}"; do
  label=${k%%=*} pkg=${k#*=}
  selected "$label" || continue
  [ -n "$pkg" ] || { log "$label: no kernel package found"; continue; }
  run_guest "$label" "$pkg" || log "$label: failed to run"
done
if [ $host = 1 ] && selected host; then
  log "host: running the suite on this machine's kernel ($(uname -r))"
  rm -rf "$work/out/host" && mkdir -p "$work/out/host"
  printf '{"label":"host","package":null,"version":null}\n' > "$work/out/host/meta.json"
  bash "$root/test/kernels/guest.sh" host "$work/out/host" > "$work/out/host/console.log" 2>&1 || true
  log "host: suite exit $(cat "$work/out/host/vitest.rc" 2>/dev/null || echo none)"
fi
log "matrix finished in $SECONDS s"
node "$root/test/kernels/report.mjs"
