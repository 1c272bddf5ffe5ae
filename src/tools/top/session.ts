/**
 * netbpf top, the session: runs the tools top correlates and feeds one TopAggregator (and any other listener, e.g.
 * the Prometheus exporter). By default every tool counts in the kernel (per-destination maps, bpf/agg.bpf.h) and
 * the session reads them at each snapshot or refresh(): no JavaScript object per connection, retransmit or drop,
 * so a connection storm costs the session nothing per connection. With aggregate 'events' every event is delivered
 * instead (onEvents). The objects share one socket-owner map (SharedMaps), kept by life when it runs.
 */
import { randomBytes } from 'node:crypto';
import type { FilterOptions } from '../../core/filters.js';
import type { DiagnosisThresholds } from '../../core/diagnosis/index.js';
import { addon, type NativeBpfObject } from '../../core/addon.js';
import { Kallsyms } from '../../core/kallsyms.js';
import { ClockMapper } from '../../core/record.js';
import { SharedMaps } from '../../core/shared-maps.js';
import { Trace, type StartInfo, type TraceCounters } from '../../core/trace.js';
import { connect, connectSpec, ConnectKernelReader, type ConnectBulk, type ConnectEvent, type ConnectKey } from '../connect/index.js';
import { conntrack, type ConntrackEvent } from '../conntrack/index.js';
import { DropReasons, drops, dropsSpec, KernelSessionDropsReader, type DropBulk, type DropEvent } from '../drops/index.js';
import { LifeKernelReader, LifeTrace, type LifeBulk, type LifeEvent, type LifeKey } from '../life/index.js';
import { retrans, retransSpec, RetransKernelReader, type RetransBulk, type RetransEvent, type RetransKey } from '../retrans/index.js';
import { SocketReader } from '../sockets/index.js';
import { TopAggregator, type TopSummary } from './aggregator.js';
import { HostEvidenceCollector } from './host.js';
import type { GroupBy } from './group-by.js';

export interface TopOptions extends FilterOptions {
  by?: GroupBy;
  /** Also trace connection lifetimes (more connections and sent-segment counts). Default true. */
  life?: boolean;
  /** Also trace conntrack entries. Default false. */
  conntrack?: boolean;
  /** Network namespaces whose conntrack tables to watch (as `netbpf conntrack --netns`). Default: this one. */
  conntrackNetns?: string[];
  /** Read every process's TCP sockets each interval (listener overflows, CLOSE_WAIT leaks, stalled windows) with
   * a BPF iterator. Default true. */
  sockets?: boolean;
  maxDestinations?: number;
  historyLength?: number;
  thresholds?: DiagnosisThresholds;
  containerOf?: (cgroupId: number) => string | null;
  ringBufferBytes?: number;
  pollMs?: number;
  /** Where the tools count: 'kernel' (per-destination maps read at each snapshot; the default) or 'events' (every
   * event delivered to user space, also to onEvents listeners). Conntrack always delivers events. */
  aggregate?: 'kernel' | 'events';
}

export type TopToolName = 'retrans' | 'drops' | 'connect' | 'life' | 'conntrack';

/** What the kernel counted for one key of a tool since the previous read (aggregate 'kernel'). */
export type TopBulk =
  | { tool: 'connect'; key: ConnectKey; bulk: ConnectBulk }
  | { tool: 'life'; key: LifeKey; bulk: LifeBulk }
  | { tool: 'retrans'; key: RetransKey; bulk: RetransBulk }
  | { tool: 'drops'; event: DropEvent; bulk: DropBulk; folded: boolean };

/** What happened to each tool at start: the hooks in use, or why it is not running. */
export type TopStartInfo = Record<string, StartInfo | { error: string }>;

/** The order tools are reported in. */
const TOOL_ORDER: readonly TopToolName[] = ['retrans', 'drops', 'connect', 'life', 'conntrack'];

/** Keys each tool's kernel map holds before folding into "other" (per destination: a few outcomes or reasons). */
const KERNEL_KEYS_PER_DESTINATION = 4;

/** Runs the tools `top` correlates and feeds one TopAggregator. Tools that cannot start are reported, not fatal,
 * as long as one runs. */
export class TopSession {
  readonly aggregator: TopAggregator;
  readonly traces: Array<{ name: TopToolName; trace: Trace<unknown> }> = [];
  /** Whether the tools count in the kernel (aggregate 'kernel'). */
  readonly kernel: boolean;
  private readonly listeners: Array<(tool: TopToolName, events: unknown[]) => void> = [];
  private readonly bulkListeners: Array<(b: TopBulk) => void> = [];
  /** Each kernel-counting tool's read of its maps (into every bulk listener). */
  private readonly readers: Array<{ name: TopToolName; read: (obj: NativeBpfObject) => void }> = [];
  private readonly shared = new SharedMaps();
  private running: TopToolName[] = [];
  /** Host evidence (sockets, conntrack of namespaces where a netfilter hook dropped), read at each snapshot. */
  readonly host: HostEvidenceCollector;

  constructor(opts: TopOptions = {}) {
    this.aggregator = new TopAggregator({ by: opts.by, maxDestinations: opts.maxDestinations, historyLength: opts.historyLength, thresholds: opts.thresholds, containerOf: opts.containerOf, conntrack: !!opts.conntrack });
    const filters: FilterOptions = { family: opts.family, localPort: opts.localPort, remotePort: opts.remotePort, remoteCidrs: opts.remoteCidrs };
    const common = { ...filters, ringBufferBytes: opts.ringBufferBytes, pollMs: opts.pollMs, shared: this.shared };
    const a = this.aggregator;
    const withLife = opts.life !== false;
    // Life keeps the shared owner map (captures, invalidation, destruction); connect and retrans then only read it.
    const owners = { ownersKeptElsewhere: withLife };
    this.kernel = (opts.aggregate ?? 'kernel') === 'kernel';
    this.onBulk((b) => a.addBulk(b));
    if (this.kernel) {
      const keys = Math.max(1024, KERNEL_KEYS_PER_DESTINATION * (opts.maxDestinations ?? 4096));
      const byCgroup = !!opts.containerOf;
      const small = { ...common, ringBufferBytes: 4096 }; // no records flow: one page is enough to load
      const emit = (b: TopBulk) => { for (const l of this.bulkListeners) l(b); };
      // Life first: it creates the shared owner map the others reuse.
      if (withLife) {
        const reader = new LifeKernelReader();
        const read = (obj: NativeBpfObject) => reader.read(obj, (key, bulk) => emit({ tool: 'life', key, bulk }));
        this.addKernel('life', new LifeTrace(small, { keys, byCgroup, session: true, events: () => reader.counted, beforeClose: read }), read, (e: LifeEvent) => a.addLife(e));
      }
      {
        const reader = new ConnectKernelReader();
        const read = (obj: NativeBpfObject) => reader.read(obj, (key, bulk) => emit({ tool: 'connect', key, bulk }));
        this.addKernel('connect', new Trace(connectSpec({ ...small, ...owners }, { keys, byCgroup, session: true, events: () => reader.counted, beforeClose: read }), small), read);
      }
      {
        const reader = new RetransKernelReader();
        const read = (obj: NativeBpfObject) => reader.read(obj, (key, bulk) => emit({ tool: 'retrans', key, bulk }));
        this.addKernel('retrans', new Trace(retransSpec({ ...small, ...owners }, { keys, byCgroup, session: true, events: () => reader.counted, beforeClose: read }), small), read);
      }
      {
        const reader = new KernelSessionDropsReader((event, bulk, folded) => emit({ tool: 'drops', event, bulk, folded }), { clock: new ClockMapper(), reasons: DropReasons.kernel() });
        const read = (obj: NativeBpfObject) => reader.read(obj, addon().numPossibleCpus);
        // Drop ports matter only to groupings by endpoint or service (a storm's drops are one per connection).
        const ports = opts.by !== undefined && (opts.by.kind === 'endpoint' || opts.by.kind === 'service');
        this.addKernel('drops', new Trace(dropsSpec(filters, undefined, {
          keys, frontBuckets: 1, topBuckets: 1, topSeed: randomBytes(8), session: { ports }, events: () => reader.events, beforeClose: read,
        }), small), read);
      }
    } else {
      if (withLife) this.add('life', new LifeTrace({ ...common, established: true }), (e: LifeEvent) => a.addLife(e));
      this.add('retrans', retrans({ ...common, ...owners }), (e: RetransEvent) => a.addRetrans(e));
      this.add('drops', drops(common), (e: DropEvent) => a.addDrop(e));
      this.add('connect', connect({ ...common, ...owners }), (e: ConnectEvent) => a.addConnect(e));
    }
    if (opts.conntrack) this.add('conntrack', conntrack({ ...filters, ringBufferBytes: opts.ringBufferBytes, pollMs: opts.pollMs, netns: opts.conntrackNetns }), (e: ConntrackEvent) => a.addConntrack(e));
    this.host = new HostEvidenceCollector(opts.sockets === false ? null : new SocketReader(filters));
  }

  private add<E>(name: TopToolName, trace: Trace<E>, feed: (e: E) => void): void {
    trace.onEvents((events) => {
      for (const e of events) feed(e);
      for (const l of this.listeners) l(name, events);
    });
    this.traces.push({ name, trace: trace as Trace<unknown> });
  }

  private addKernel<E>(name: TopToolName, trace: Trace<E>, read: (obj: NativeBpfObject) => void, feed?: (e: E) => void): void {
    // The few events a kernel-counting tool still delivers (life: ends held for a late reset when it stops).
    if (feed) {
      trace.onEvents((events) => {
        for (const e of events) feed(e);
        for (const l of this.listeners) l(name, events);
      });
    }
    this.traces.push({ name, trace: trace as Trace<unknown> });
    this.readers.push({ name, read });
  }

  /** Every batch of raw events, by tool (aggregate 'events'; with 'kernel' only conntrack delivers events). */
  onEvents(listener: (tool: TopToolName, events: unknown[]) => void): this {
    this.listeners.push(listener);
    return this;
  }

  /** What the kernel counted per key since the previous read, at every refresh() (aggregate 'kernel'). */
  onBulk(listener: (b: TopBulk) => void): this {
    this.bulkListeners.push(listener);
    return this;
  }

  /** Reads every running tool's kernel maps now and hands what grew to the bulk listeners (no-op with 'events'). */
  refresh(): void {
    for (const { name, read } of this.readers) {
      if (!this.running.includes(name)) continue;
      const trace = this.traces.find((t) => t.name === name)!.trace;
      let obj: NativeBpfObject | null = null;
      try { obj = trace.object(); } catch { obj = null; } // stopped: its last read happened at stop
      if (obj) read(obj);
    }
  }

  /** Starts every tool; fails only when none can start. */
  async start(): Promise<TopStartInfo> {
    const info: TopStartInfo = {};
    let firstError: unknown = null;
    for (const { name, trace } of this.traces) {
      try {
        info[name] = await trace.start();
        this.running.push(name);
      } catch (err) {
        firstError ??= err;
        info[name] = { error: (err as Error).message };
      }
    }
    if (!this.running.length) throw firstError;
    // Drops are named by their freeing function: the kernel's symbol table (~100k symbols, a few hundred ms to
    // parse) is read now, at start, rather than in the first read after the first drop, mid-incident.
    if (this.running.includes('drops')) { try { Kallsyms.load(); } catch { /* unreadable: drops then show addresses */ } }
    this.host.start();
    // Reported in one order whatever order they started in (life starts first: it creates the shared maps).
    const ordered: TopStartInfo = {};
    for (const name of TOOL_ORDER) if (info[name]) ordered[name] = info[name];
    return ordered;
  }

  /** Tools running. */
  tools(): TopToolName[] {
    return TOOL_ORDER.filter((t) => this.running.includes(t));
  }

  /** Events, lost events and recursion misses per running tool. */
  counters(): Partial<Record<TopToolName, TraceCounters>> {
    const out: Partial<Record<TopToolName, TraceCounters>> = {};
    for (const name of this.tools()) out[name] = this.traces.find((t) => t.name === name)!.trace.counters();
    return out;
  }

  /** Rows and diagnoses now (reading the kernel maps first), with the host evidence read at this moment. */
  snapshot(): TopSummary {
    this.refresh();
    this.host.update(this.aggregator.hookDropNetns());
    return this.aggregator.snapshot(this.host.evidence(), this.host.socketsError);
  }

  async stop(): Promise<void> {
    await Promise.all(this.traces.map(({ trace }) => trace.stop()));
    this.shared.close();
    this.host.close();
  }
}

/** Runs retrans, drops, connect (and life, conntrack) together: `const t = top(); await t.start(); t.snapshot()`. */
export function top(opts: TopOptions = {}): TopSession {
  return new TopSession(opts);
}
