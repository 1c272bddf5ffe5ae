/**
 * The diagnoses `netbpf top` makes, for Prometheus: the same engine (core/diagnosis) over the same evidence
 * (a TopAggregator and host evidence: tools/top), but over a window of time rather than the whole run, since an
 * agent runs for weeks and an alert is about now. When a window closes, what the engine says about it is published
 * (NetbpfMetrics.diagnoses) and stays until the next window closes. A new window starts with the drops of the one
 * before it: a failure is often seen after the packets whose loss caused it (a connect times out seconds after its
 * SYNs were dropped), and without them a window that begins between the two would name the failure without its
 * cause ("timing out" instead of "local firewall"). Those drops then count in two windows. A window also knows the
 * destinations connects went to before it (the exporter's placement keeps them), so the drops of a connection made
 * in an earlier window are placed on its destination.
 */
import type { ConnectEvent } from '../connect/index.js';
import type { ConntrackEvent } from '../conntrack/index.js';
import type { DropEvent } from '../drops/index.js';
import type { LifeEvent } from '../life/index.js';
import type { RetransEvent } from '../retrans/index.js';
import { HostEvidenceCollector, TopAggregator, type GroupBy, type SocketSource, type TopBulk, type TopSummary } from '../top/index.js';
import type { DiagnosisThresholds } from '../../core/diagnosis/index.js';

export interface DiagnosisWindowOptions {
  by: GroupBy;
  /** Where host evidence reads sockets from (one reader for every window); null: no socket evidence. */
  sockets: SocketSource | null;
  thresholds?: DiagnosisThresholds;
  /** How long a drop waits for the connect that tells which side is the destination, ms (core/placement.ts). */
  dropHoldMs?: number;
  /** Destinations connects were seen to since the start (a window's drops of older connections are placed on them). */
  knownDestinations?: () => Iterable<string>;
  now?: () => number;
}

/** The evidence of the current window, and what the engine says about it when it closes. */
/** Most drops of a window carried into the next one (the rest are counted in their own window only). */
const MAX_CARRIED_DROPS = 16384;

export class DiagnosisWindow {
  private agg!: TopAggregator;
  private host!: HostEvidenceCollector;
  private readonly sockets: SocketSource | null;
  /** This window's drops, to begin the next one with (events, or what the kernel counted of them). */
  private drops: Array<DropEvent | Extract<TopBulk, { tool: 'drops' }>> = [];

  constructor(private readonly opts: DiagnosisWindowOptions) {
    // Every window reads through the same reader; a window's collector must not close it.
    this.sockets = opts.sockets ? { read: () => opts.sockets!.read(), close: () => undefined } : null;
    this.open(false);
  }

  /** A new, empty window; `baselines`: read listener drops and conntrack counters now, so they count from here
   * (else at the first reading: the first window starts before the tools are attached). */
  private open(baselines: boolean): void {
    const o = this.opts;
    this.agg = new TopAggregator({ by: o.by, thresholds: o.thresholds, dropHoldMs: o.dropHoldMs, knownDestinations: o.knownDestinations?.(), now: o.now });
    this.host = new HostEvidenceCollector(this.sockets, { now: o.now });
    if (baselines) this.host.start();
  }

  addConnect(e: ConnectEvent): void { this.agg.addConnect(e); }
  addRetrans(e: RetransEvent): void { this.agg.addRetrans(e); }
  addDrop(e: DropEvent): void {
    this.agg.addDrop(e);
    if (this.drops.length < MAX_CARRIED_DROPS) this.drops.push(e);
  }
  addLife(e: LifeEvent): void { this.agg.addLife(e); }
  /** What a session counting in the kernel read for one key (drops are carried like events). */
  addBulk(b: TopBulk): void {
    this.agg.addBulk(b);
    if (b.tool === 'drops' && this.drops.length < MAX_CARRIED_DROPS) this.drops.push(b);
  }
  addConntrack(e: ConntrackEvent): void { this.agg.addConntrack(e); }

  /** A reading of host evidence within the window (stalled windows need several). */
  tick(): void {
    this.host.update(this.agg.hookDropNetns());
  }

  /** Closes the window: rows and their diagnoses, and the host's; the next window starts empty. */
  close(): TopSummary {
    this.tick();
    const summary = this.agg.snapshot(this.host.evidence(), this.host.socketsError);
    const carried = this.drops;
    this.drops = [];
    this.open(true);
    for (const e of carried) {
      if ('tool' in e) this.agg.addBulk(e);
      else this.agg.addDrop(e);
    }
    return summary;
  }
}
