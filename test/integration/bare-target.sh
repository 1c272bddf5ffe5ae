#!/usr/bin/env bash
# A target without a toolchain, made from this machine in a private mount namespace: every compiler, linker,
# build tool, bpftool and apt binary (resolved through its symlinks, plus everything under /usr/lib/llvm-*/bin
# and gcc's cc1/cc1plus/collect2) is covered by a bind-mounted tripwire that logs the call and exits 127.
# In there: npm install the packed tarball into $APP (timed), then run the installed CLI and library.
#   bare-target.sh TARBALL APP CIDR PORT    prints "BARE <json>" lines on stdout; tripwire calls go to $APP/tripwire.log
# Nothing outlives the namespace: the mounts vanish with it.
set -euo pipefail
if [ -z "${NETBPF_BARE_NS:-}" ]; then
  exec unshare --mount --propagation private env NETBPF_BARE_NS=1 bash "$0" "$@"
fi
tarball=$1 app=$2 cidr=$3 port=$4
log=$app/tripwire.log
trip=$app/tripwire
mkdir -p "$app"
printf '#!/bin/sh\necho "$0 $*" >> %s\necho "bare target: $0 is not available here" >&2\nexit 127\n' "$log" > "$trip"
chmod 755 "$trip"

names=(clang clang++ 'clang-*' gcc 'gcc-*' g++ 'g++-*' cc c++ cpp 'cpp-*' 'x86_64-linux-gnu-*' ld ld.bfd ld.gold ld.lld as
  cmake ctest make gmake ninja 'llc*' 'llvm-*' bpftool apt apt-get apt-cache aptitude dpkg)
declare -A covered=()
for dir in /usr/bin /usr/sbin /usr/local/bin /usr/local/sbin; do
  for n in "${names[@]}"; do
    for f in "$dir"/$n; do
      [ -e "$f" ] || continue
      real=$(readlink -f "$f")
      covered[$real]=1
    done
  done
done
for f in /usr/lib/llvm-*/bin/* /usr/lib/gcc/*/*/{cc1,cc1plus,collect2,lto1,lto-wrapper}; do
  [ -f "$f" ] && covered[$(readlink -f "$f")]=1
done
for real in "${!covered[@]}"; do mount --bind "$trip" "$real"; done

# The tripwires work: each of these is refused and logged.
for t in clang cc g++ make cmake bpftool apt-get; do
  if command -v "$t" >/dev/null && "$t" --version >/dev/null 2>&1; then echo "bare target: $t still runs" >&2; exit 1; fi
done
echo "BARE {\"type\":\"tripwires\",\"covered\":${#covered[@]},\"selfCheckCalls\":$(wc -l < "$log")}"
: > "$log"

cd "$app"
[ -f package.json ] || echo '{"name":"app","private":true,"type":"module"}' > package.json
t0=$(date +%s%N)
npm install --no-audit --no-fund --loglevel=error "$tarball" >&2
t1=$(date +%s%N)
echo "BARE {\"type\":\"installed\",\"ms\":$(( (t1 - t0) / 1000000 )),\"builtHere\":$([ -e node_modules/netbpf/build ] && echo true || echo false),\"compilerCalls\":$(wc -l < "$log")}"

# The installed CLI, as text then as JSON; lossy traffic to $cidr port $port flows meanwhile (the test makes it).
npx --no-install netbpf retrans --duration 2 -c "$cidr" -D "$port" > cli.txt 2> cli.err
npx --no-install netbpf retrans --duration 2 -c "$cidr" -D "$port" --json > cli.jsonl 2> cli-json.err

cat > use.mjs <<'JS'
import { retrans } from 'netbpf';
const trace = retrans({ remoteCidrs: [process.argv[2]], remotePort: Number(process.argv[3]) });
const info = await trace.start();
let events = 0, segs = 0;
trace.onEvents((batch) => { for (const ev of batch) { events++; segs += ev.segs; } });
await new Promise((r) => setTimeout(r, 2000));
await trace.stop();
console.log(JSON.stringify({ hooks: info.hooks, events, segs, counters: trace.counters() }));
JS
echo "BARE {\"type\":\"esm\",\"result\":$(node use.mjs "$cidr" "$port")}"

echo "const n = require('netbpf'); console.log(JSON.stringify(typeof n.retrans));" > use.cjs
echo "BARE {\"type\":\"cjs\",\"retrans\":$(node use.cjs 2>/dev/null || echo null)}"
legacy=$(node --no-experimental-require-module use.cjs 2>&1 >/dev/null | grep -m1 '^NetbpfError' || true)
echo "BARE {\"type\":\"cjs-legacy\",\"message\":$(node -p 'JSON.stringify(process.argv[1])' "$legacy")}"
echo "BARE {\"type\":\"done\",\"compilerCalls\":$(wc -l < "$log")}"
