// Preloaded into every node process of a kernel-matrix run (NODE_OPTIONS=--import, set by guest.sh): appends
// the hooks each trace started with to $NETBPF_HOOK_LOG, so the matrix shows what the tests really exercised
// on each kernel. netbpf publishes them on a diagnostics channel (src/core/trace.ts: startChannel).
import { appendFileSync } from 'node:fs';
import { subscribe } from 'node:diagnostics_channel';

const file = process.env.NETBPF_HOOK_LOG;
if (file) {
  subscribe('netbpf:trace-start', (message) => {
    const { tool, hooks } = message;
    try {
      appendFileSync(file, `${JSON.stringify({ tool, hooks: hooks.map((h) => ({ feature: h.feature, hook: h.hook })) })}\n`);
    } catch { /* the log is diagnostics only */ }
  });
}
