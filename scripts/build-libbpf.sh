#!/usr/bin/env bash
# Builds a static, position-independent libbpf from Debian's own source package into deps/libbpf,
# so the addon links libbpf in and does not depend on the host's libbpf.so version.
# Debian's libbpf.a is not built with -fPIC and cannot be linked into a shared .node.
# Exits 0 without building when the source is unavailable: CMakeLists.txt then links the system libbpf.so.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/deps/libbpf
[ -f "$out/usr/lib64/libbpf.a" ] && exit 0
work=$root/deps/libbpf-src
mkdir -p "$work"
cd "$work"
if ! ls libbpf_*.orig.tar.gz >/dev/null 2>&1; then
  if ! grep -rqs '^Types: deb-src' /etc/apt/sources.list.d/ && ! grep -qs '^deb-src' /etc/apt/sources.list; then
    cat > /etc/apt/sources.list.d/netbpf-src.sources <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    apt-get update -qq
  fi
  apt-get source --download-only libbpf >/dev/null 2>&1 || { echo "netbpf: libbpf source unavailable; linking the system libbpf.so" >&2; exit 0; }
fi
tar xzf libbpf_*.orig.tar.gz
srcdir=$(find . -maxdepth 1 -type d -name 'libbpf-*' | head -n1)
make -s -C "$srcdir/src" BUILD_STATIC_ONLY=1 EXTRA_CFLAGS='-fPIC -O2' DESTDIR="$out" install >/dev/null
echo "netbpf: built static libbpf $(basename "$srcdir") into deps/libbpf" >&2
