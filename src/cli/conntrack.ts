/** `netbpf conntrack`: conntrack entries created/destroyed live (both tuples), per-destination summary, table pressure. */
import { Command, Option } from 'commander';
import { describeNetns, ownNetns, readNetnsTable, type NetnsInfo } from '../core/ctnetlink.js';
import { addon } from '../core/addon.js';
import { NetbpfError } from '../core/errors.js';
import { conntrack, ConntrackAggregator, conntrackEventJson, CONNTRACK_HEADER, conntrackLine, renderConntrackSummary, type NetnsChange } from '../index.js';
import { addCommonOptions, filterOptions, positiveNumber, runSettings, type CommonCliOptions } from './common.js';
import { runTool } from './run.js';
import { jsonText } from '../core/format.js';

interface ConntrackCliOptions extends CommonCliOptions {
  mechanism: 'auto' | 'bpf' | 'ctnetlink';
  enableAccounting?: boolean;
  netns?: string[];
  reliable: boolean;
  netlinkBuffer?: string;
  netnsRescan?: string;
  netlinkReadDelayUs?: string;
}

const collect = (value: string, prev: string[] = []) => [...prev, value];

export function conntrackCommand(): Command {
  const cmd = new Command('conntrack')
    .description('trace conntrack entries created and destroyed (original and reply tuples: NAT visible), lifetimes, table pressure')
    .addOption(new Option('--mechanism <m>', 'how to see entries').choices(['auto', 'bpf', 'ctnetlink']).default('auto'))
    .option('--netns <ns>', 'network namespace to watch: a PID, a namespace file (/run/netns/NAME, /proc/PID/ns/net), an ip netns name, or "all" (repeatable; default: this one)', collect)
    .option('--netns-rescan <seconds>', 'how often to release watched namespaces that are gone and, with --netns all, watch new ones (0: never)', '2')
    .option('--no-reliable', 'do not ask the kernel to re-deliver ctnetlink DESTROY events it could not queue (losses are then counted, not recovered)')
    .option('--netlink-buffer <bytes>', 'ctnetlink receive buffer requested per socket (the kernel doubles it)', String(16 * 1024 * 1024))
    .addOption(new Option('--netlink-read-delay-us <us>', 'test hook: a slow ctnetlink reader').hideHelp())
    .option('--enable-accounting', 'set nf_conntrack_acct=1 and nf_conntrack_timestamp=1 in the watched network namespaces (counters and lifetimes of new entries)');
  addCommonOptions(cmd);
  cmd.action(async (o: ConntrackCliOptions) => {
    process.exitCode = await runConntrack(o);
  });
  return cmd;
}

async function runConntrack(o: ConntrackCliOptions): Promise<number> {
  const s = runSettings(o);
  const filters = filterOptions(o);
  const rescan = positiveNumber(o.netnsRescan, '--netns-rescan', { allowZero: true })!;
  const trace = conntrack({
    ...filters, mechanism: o.mechanism, ringBufferBytes: s.ringBufferBytes, pollMs: s.pollMs, netns: o.netns, reliable: o.reliable,
    netlinkBufferBytes: positiveNumber(o.netlinkBuffer, '--netlink-buffer', { integer: true }), rescanMs: rescan * 1000,
    netlinkReadDelayUs: positiveNumber(o.netlinkReadDelayUs, '--netlink-read-delay-us', { integer: true, allowZero: true }),
  });
  if (o.enableAccounting) {
    const own = ownNetns();
    for (const n of trace.plannedNamespaces()) enableAccounting(n, own);
  }
  const agg = new ConntrackAggregator({ maxDestinations: s.maxDestinations });
  // Later changes (with --netns all); what start watched is reported once the start line is out.
  trace.onNetns((c) => { if (c.change !== 'watched') reportNetns(c, s.json, trace.destroysFromNetlink()); });
  return runTool({
    tool: 'conntrack',
    trace,
    summary: { addAll: (events) => agg.addAll(events), snapshot: () => agg.snapshot(trace.pressure()) },
    live: { header: CONNTRACK_HEADER, lines: (events) => events.map(conntrackLine) },
    eventJson: conntrackEventJson,
    summaryText: (summary, top, final) => renderConntrackSummary(summary, top, final, trace.netlinkCounts()),
    summaryJsonExtras: () => ({ netlink: trace.netlinkCounts() }),
    afterStart: async () => {
      if (trace.startNetns) reportNetns(trace.startNetns, s.json, trace.destroysFromNetlink());
      const own = ownNetns();
      const first = trace.tableStats();
      const notes: string[] = [];
      const sys = first.find((t) => t.netns === own) ?? first[0];
      if (sys?.acct === false) notes.push('nf_conntrack_acct=0: no packet/byte counters');
      if (sys?.timestamp === false) notes.push('nf_conntrack_timestamp=0: lifetimes only for entries created while tracing');
      if (!first.length) notes.push('conntrack statistics unreadable (no /proc/net/stat/nf_conntrack: nf_conntrack not loaded)');
      else notes.push(first.map((t) => `table ${t.entries}/${t.max} entries${first.length > 1 ? ` in ${t.netns}` : ''}`).join(', '));
      process.stderr.write(`netbpf conntrack: ${notes.join('; ')}\n`);
      if (s.json) {
        for (const p of trace.pressure()) {
          const t = first.find((x) => x.netns === p.netns);
          process.stdout.write(jsonText({ type: 'pressure', time: Date.now(), ...p, sysctls: { acct: t?.acct ?? null, timestamp: t?.timestamp ?? null, events: t?.events ?? null } }) + '\n');
        }
      }
    },
  }, s);
}

/** --enable-accounting: the sysctls are per namespace; written from inside each (as `ip netns exec` would). */
function enableAccounting(n: NetnsInfo, own: number): void {
  const path = n.netns === own ? null : n.path;
  for (const name of ['nf_conntrack_acct', 'nf_conntrack_timestamp']) {
    try {
      addon().netnsWriteFile(path, `/proc/sys/net/netfilter/${name}`, '1\n');
    } catch (err) {
      const e = err as { errno?: number; message?: string };
      throw new NetbpfError(e.errno === 1 || e.errno === 13 ? 'privilege' : 'runtime', `--enable-accounting: ${e.message}`, { errno: e.errno, cause: err });
    }
  }
}

/** Start-up and later changes of the watched namespaces: a stderr line, and a JSON record with --json. */
function reportNetns(c: NetnsChange, json: boolean, destroysFromNetlink: boolean): void {
  const own = ownNetns();
  const list = c.namespaces.map((n) => describeNetns(n, own)).join(', ');
  const what = c.change === 'watched' ? `watching ${c.namespaces.length} network namespace${c.namespaces.length === 1 ? '' : 's'}` : c.change === 'added' ? 'now also watching' : 'no longer watching (gone)';
  if (c.namespaces.length || c.change === 'watched') process.stderr.write(`netbpf conntrack: ${what}: ${list || '(none)'}\n`);
  for (const f of c.failed ?? []) process.stderr.write(`netbpf conntrack: cannot watch network namespace ${f.netns} (${f.path}): ${f.error}\n`);
  // nf_conntrack_events=2: entries created before a listener existed carry no event cache, so their DESTROY is never sent.
  if (destroysFromNetlink && c.change !== 'removed') {
    for (const n of c.namespaces) {
      let t;
      try { t = readNetnsTable(n.netns === own ? null : n); } catch { continue; }
      if (!t) continue;
      const where = `network namespace ${describeNetns(n, own)}`;
      if (t.events === 0) process.stderr.write(`netbpf conntrack: ${where}: nf_conntrack_events=0: the kernel sends no conntrack events there (set it to 1)\n`);
      else if (t.events === 2 && t.entries > 0) {
        process.stderr.write(`netbpf conntrack: ${where}: ${t.entries} entries existed before netbpf subscribed; with nf_conntrack_events=2 they carry no event cache, so their destroys will not be reported (nf_conntrack_events=1 makes every entry created from now on report)\n`);
      }
    }
  }
  if (json) {
    process.stdout.write(jsonText({ type: 'netns', time: c.time, change: c.change, namespaces: c.namespaces, ...(c.failed ? { failed: c.failed } : {}) }) + '\n');
  }
}
