#!/usr/bin/env bash
# Installs what netbpf needs on Debian 12 (apt and npm packages) and builds it: BPF objects, the addon (with a
# static libbpf built from Debian's libbpf source, fetched from the Debian pool), and the TypeScript. Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(clang llvm libelf-dev zlib1g-dev pkg-config make cmake g++ bpftool bpftrace nftables iproute2 conntrack libbpf-dev python3 util-linux prometheus systemd curl)
missing=()
for p in "${packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "netbpf setup: installing ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Exactly the locked tree (npm ci never rewrites package-lock.json); again only when the lockfile changed.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-fund --no-audit --loglevel=error
fi
bash scripts/build-libbpf.sh
npm run build --silent
