/** netbpf top, the session: runs the tools top correlates and feeds one TopAggregator. */
import type { FilterOptions } from '../../core/filters.js';
import type { DiagnosisThresholds } from '../../core/diagnosis/index.js';
import type { StartInfo, Trace, TraceCounters } from '../../core/trace.js';
import { connect, type ConnectEvent } from '../connect/index.js';
import { conntrack, type ConntrackEvent } from '../conntrack/index.js';
import { drops, type DropEvent } from '../drops/index.js';
import { life, type LifeEvent } from '../life/index.js';
import { retrans, type RetransEvent } from '../retrans/index.js';
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
}

export type TopToolName = 'retrans' | 'drops' | 'connect' | 'life' | 'conntrack';

/** What happened to each tool at start: the hooks in use, or why it is not running. */
export type TopStartInfo = Record<string, StartInfo | { error: string }>;

/** Runs the tools `top` correlates and feeds one TopAggregator. Tools that cannot start are reported, not fatal,
 * as long as one runs. */
export class TopSession {
  readonly aggregator: TopAggregator;
  readonly traces: Array<{ name: TopToolName; trace: Trace<unknown> }> = [];
  private readonly listeners: Array<(tool: TopToolName, events: unknown[]) => void> = [];
  private running: TopToolName[] = [];
  /** Host evidence (sockets, conntrack of namespaces where a netfilter hook dropped), read at each snapshot. */
  readonly host: HostEvidenceCollector;

  constructor(opts: TopOptions = {}) {
    this.aggregator = new TopAggregator({ by: opts.by, maxDestinations: opts.maxDestinations, historyLength: opts.historyLength, thresholds: opts.thresholds, containerOf: opts.containerOf, conntrack: !!opts.conntrack });
    const filters: FilterOptions = { family: opts.family, localPort: opts.localPort, remotePort: opts.remotePort, remoteCidrs: opts.remoteCidrs };
    const common = { ...filters, ringBufferBytes: opts.ringBufferBytes, pollMs: opts.pollMs };
    const a = this.aggregator;
    this.add('retrans', retrans(common), (e: RetransEvent) => a.addRetrans(e));
    this.add('drops', drops(common), (e: DropEvent) => a.addDrop(e));
    this.add('connect', connect(common), (e: ConnectEvent) => a.addConnect(e));
    if (opts.life !== false) this.add('life', life(common), (e: LifeEvent) => a.addLife(e));
    if (opts.conntrack) this.add('conntrack', conntrack({ ...common, netns: opts.conntrackNetns }), (e: ConntrackEvent) => a.addConntrack(e));
    this.host = new HostEvidenceCollector(opts.sockets === false ? null : new SocketReader(filters));
  }

  private add<E>(name: TopToolName, trace: Trace<E>, feed: (e: E) => void): void {
    trace.onEvents((events) => {
      for (const e of events) feed(e);
      for (const l of this.listeners) l(name, events);
    });
    this.traces.push({ name, trace: trace as Trace<unknown> });
  }

  /** Every batch of raw events, by tool (e.g. to forward them elsewhere). */
  onEvents(listener: (tool: TopToolName, events: unknown[]) => void): this {
    this.listeners.push(listener);
    return this;
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
    this.host.start();
    return info;
  }

  /** Tools running. */
  tools(): TopToolName[] {
    return [...this.running];
  }

  /** Events, lost events and recursion misses per running tool. */
  counters(): Partial<Record<TopToolName, TraceCounters>> {
    const out: Partial<Record<TopToolName, TraceCounters>> = {};
    for (const { name, trace } of this.traces) if (this.running.includes(name)) out[name] = trace.counters();
    return out;
  }

  /** Rows and diagnoses now, with the host evidence read at this moment. */
  snapshot(): TopSummary {
    this.host.update(this.aggregator.hookDropNetns());
    return this.aggregator.snapshot(this.host.evidence(), this.host.socketsError);
  }

  async stop(): Promise<void> {
    await Promise.all(this.traces.map(({ trace }) => trace.stop()));
    this.host.close();
  }
}

/** Runs retrans, drops, connect (and life, conntrack) together: `const t = top(); await t.start(); t.snapshot()`. */
export function top(opts: TopOptions = {}): TopSession {
  return new TopSession(opts);
}
