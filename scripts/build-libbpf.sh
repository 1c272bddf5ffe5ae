#!/usr/bin/env bash
# Builds a static, position-independent libbpf into deps/libbpf, so the addon links libbpf in and does not
# depend on the host's libbpf.so version (Debian's libbpf.a is not built with -fPIC and cannot be linked into
# a shared .node). The source is Debian's orig tarball of a pinned version, fetched straight from the Debian
# pool over HTTPS and checked against the SHA-256 of the package's .dsc: no apt, no change to the system's apt
# configuration. Exits 0 without building when the source cannot be fetched: CMakeLists.txt then links the
# system libbpf.so.
set -euo pipefail
version=1.1.2
sha256=b50ab60637fb713db78aa98e6ca911ddf13c0799d498a1f6ec03ebffc7dca588
url=https://deb.debian.org/debian/pool/main/libb/libbpf/libbpf_${version}.orig.tar.gz
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/deps/libbpf
[ -f "$out/usr/lib64/libbpf.a" ] && exit 0
work=$root/deps/libbpf-src
tarball=$work/libbpf_${version}.orig.tar.gz
mkdir -p "$work"
if [ ! -f "$tarball" ]; then
  # Node is there whenever npm is; curl or wget may not be.
  node -e '
    const [url, dest] = process.argv.slice(1);
    fetch(url, { signal: AbortSignal.timeout(60000) })
      .then(async (r) => { if (!r.ok) throw new Error(`HTTP ${r.status}`); require("fs").writeFileSync(dest, Buffer.from(await r.arrayBuffer())); })
      .catch((e) => { process.stderr.write(`netbpf: cannot fetch ${url}: ${e.message}\n`); process.exit(1); });
  ' "$url" "$tarball.part" || { rm -f "$tarball.part"; echo "netbpf: libbpf source unavailable; linking the system libbpf.so" >&2; exit 0; }
  if ! echo "$sha256  $tarball.part" | sha256sum -c --status; then
    rm -f "$tarball.part"
    echo "netbpf: $url does not match its pinned SHA-256; linking the system libbpf.so" >&2
    exit 0
  fi
  mv "$tarball.part" "$tarball"
fi
srcdir=$work/libbpf-$version
rm -rf "$srcdir"
tar xzf "$tarball" -C "$work"
make -s -C "$srcdir/src" BUILD_STATIC_ONLY=1 EXTRA_CFLAGS='-fPIC -O2' DESTDIR="$out" install >/dev/null
echo "netbpf: built static libbpf $version into deps/libbpf" >&2
