/**
 * netbpf top, host evidence: what the diagnoses need about this host rather than one destination, read at each
 * interval and kept over the run (as the rows are): listeners that dropped connections (their accept queue
 * overflowed), processes holding sockets in CLOSE_WAIT, connections whose receive window stays closed (socket
 * iterator, tools/sockets), and conntrack statistics of the namespaces where a netfilter hook dropped packets
 * (each read from inside its namespace, core/ctnetlink.ts).
 */
import { formatEndpoint } from '../../core/address.js';
import { readNetnsTable, scanNetns } from '../../core/ctnetlink.js';
import type { CloseWaitEvidence, ConntrackEvidence, HostEvidence, ListenerEvidence, StalledWindowEvidence } from '../../core/diagnosis/index.js';
import type { SocketInfo } from '../sockets/index.js';

/** Where sockets come from (a SocketReader; a stub in tests). */
export interface SocketSource {
  read(): SocketInfo[];
  close(): void;
}

/** A namespace's conntrack table: entries now, the limit, and the kernel's counters (/proc/net/stat/nf_conntrack). */
export interface ConntrackTable { count: number; max: number; stat: Record<string, number> }

/** How conntrack tables are read: the namespaces there are, and one namespace's table (null: none there). */
export interface ConntrackSource {
  namespaces(): number[];
  read(netns: number): ConntrackTable | null;
}

/** Every namespace with a name (/run/netns) or a process, each read from inside it (core/ctnetlink.ts). */
export function kernelConntrackSource(): ConntrackSource {
  let scan = scanNetns();
  return {
    namespaces: () => { scan = scanNetns(); return [...scan.keys()]; },
    read: (netns) => {
      let info = scan.get(netns);
      if (!info) { scan = scanNetns(); info = scan.get(netns); }
      if (!info) return null;
      try {
        const t = readNetnsTable(info);
        return t ? { count: t.entries, max: t.max, stat: t.stat } : null;
      } catch {
        return null; // gone, or not enterable: no evidence from it
      }
    },
  };
}

/** States in which a socket receives data, and in which it sends data. */
const RECEIVING: ReadonlySet<string> = new Set(['ESTABLISHED', 'FIN_WAIT1', 'FIN_WAIT2']);
const SENDING: ReadonlySet<string> = new Set(['ESTABLISHED', 'CLOSE_WAIT']);

/** Most entries of each kind kept over a run (the worst ones stay). */
const MAX_KEPT = 256;
/** How often every namespace's conntrack table is read for fill (ms), and the fill kept as evidence (the
 * diagnosis decides with its own threshold, DiagnosisThresholds.conntrackNearFull, default 0.9). */
const FILL_CHECK_MS = 10_000;
const NEAR_FULL_KEPT = 0.5;

interface Stall { side: 'receiver' | 'sender'; since: number; copiedSeq: number; evidence: StalledWindowEvidence }

/** Reads host evidence at each interval and keeps the worst of it over the run. */
export class HostEvidenceCollector {
  /** Why socket evidence is unavailable (null while it works). */
  socketsError: string | null = null;
  private readonly listenerBaseline = new Map<string, number>();
  private readonly listeners = new Map<string, ListenerEvidence>();
  private readonly closeWait = new Map<number, CloseWaitEvidence>();
  private readonly stalls = new Map<string, Stall>();
  /** Stalls that ended (the window reopened or the socket went away), the longest kept. */
  private readonly pastStalls: StalledWindowEvidence[] = [];
  private readonly ctBaseline = new Map<number, ConntrackTable>();
  private readonly conntrack = new Map<number, ConntrackEvidence>();
  private started = false;

  constructor(
    private readonly sockets: SocketSource | null,
    private readonly opts: { conntrack?: ConntrackSource; now?: () => number } = {},
  ) {}

  private get now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private readSockets(): SocketInfo[] {
    if (!this.sockets || this.socketsError) return [];
    try {
      return this.sockets.read();
    } catch (err) {
      this.socketsError = (err as Error).message;
      return [];
    }
  }

  /** Baselines: listener drops and conntrack counters as they are before the run. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const s of this.readSockets()) if (s.state === 'LISTEN') this.listenerBaseline.set(s.id, s.drops);
    const ct = this.conntrackSource();
    for (const netns of ct.namespaces()) {
      const st = ct.read(netns);
      if (st) this.ctBaseline.set(netns, st);
    }
  }

  /** One reading: sockets now, and conntrack of the namespaces where a netfilter hook dropped packets. */
  update(hookDropNetns: ReadonlySet<number> = new Set()): void {
    this.start();
    const now = this.now;
    const seen = this.readSockets();
    const closeWaitNow = new Map<number, CloseWaitEvidence>();
    const live = new Set<string>();
    for (const s of seen) {
      live.add(s.id);
      if (s.state === 'LISTEN') this.listener(s);
      else if (s.state === 'CLOSE_WAIT') {
        const w = closeWaitNow.get(s.pid) ?? { pid: s.pid, comm: s.comm, netns: s.netns, count: 0, oldestIdleMs: 0, local: [] };
        w.count++;
        w.oldestIdleMs = Math.max(w.oldestIdleMs, s.idleMs);
        const local = formatEndpoint(s.saddr, s.sport);
        if (w.local.length < 4 && !w.local.includes(local)) w.local.push(local);
        closeWaitNow.set(s.pid, w);
      }
      this.window(s, now);
    }
    for (const [pid, w] of closeWaitNow) {
      const kept = this.closeWait.get(pid);
      if (kept) {
        kept.count = Math.max(kept.count, w.count);
        kept.oldestIdleMs = Math.max(kept.oldestIdleMs, w.oldestIdleMs);
        for (const l of w.local) if (kept.local.length < 4 && !kept.local.includes(l)) kept.local.push(l);
      } else if (this.closeWait.size < MAX_KEPT) this.closeWait.set(pid, w);
    }
    // A socket gone ends its stall.
    for (const [id, st] of this.stalls) if (!live.has(id)) this.endStall(id, st);
    if (hookDropNetns.size) this.readConntrack(hookDropNetns);
    // Every namespace's table now and then: one nearly full is worth a warning before it drops anything.
    if (now - this.lastFillCheck >= FILL_CHECK_MS) {
      this.lastFillCheck = now;
      this.readConntrack(new Set(this.conntrackSource().namespaces()), NEAR_FULL_KEPT);
    }
  }

  private listener(s: SocketInfo): void {
    // Listeners present at the start count from their value then; later ones from zero.
    const drops = s.drops - (this.listenerBaseline.get(s.id) ?? 0);
    if (drops <= 0 && s.rxQueue <= s.txQueue) return;
    const kept = this.listeners.get(s.id);
    if (kept) {
      kept.drops = Math.max(kept.drops, drops);
      kept.queue = Math.max(kept.queue, s.rxQueue);
    } else if (this.listeners.size < MAX_KEPT) {
      this.listeners.set(s.id, { addr: s.saddr, port: s.sport, pid: s.pid, comm: s.comm, netns: s.netns, queue: s.rxQueue, limit: s.txQueue, drops: Math.max(0, drops) });
    }
  }

  /** A receiver with its window at 0, data queued and its read position frozen; a sender facing a 0 window. */
  private window(s: SocketInfo, now: number): void {
    // Only where data flows: a SYN in flight (SYN_SENT) also shows a window of 0 and one byte queued.
    const receiver = RECEIVING.has(s.state) && s.rcvWnd === 0 && s.rxQueue > 0;
    const sender = SENDING.has(s.state) && s.sndWnd === 0 && s.txQueue > 0;
    const st = this.stalls.get(s.id);
    if (!receiver && !sender) {
      if (st) this.endStall(s.id, st);
      return;
    }
    const side = receiver ? 'receiver' : 'sender';
    if (!st || st.side !== side || (side === 'receiver' && st.copiedSeq !== s.copiedSeq)) {
      if (st) this.endStall(s.id, st);
      if (this.stalls.size >= MAX_KEPT) return;
      const [localAddr, remoteAddr] = [s.saddr, s.daddr];
      this.stalls.set(s.id, {
        side, since: now, copiedSeq: s.copiedSeq,
        evidence: { side, pid: s.pid, comm: s.comm, netns: s.netns, localAddr, localPort: s.sport, remoteAddr, remotePort: s.dport, queued: side === 'receiver' ? s.rxQueue : s.txQueue, stalledMs: 0 },
      });
      return;
    }
    st.evidence.stalledMs = Math.max(st.evidence.stalledMs, now - st.since);
    st.evidence.queued = Math.max(st.evidence.queued, side === 'receiver' ? s.rxQueue : s.txQueue);
  }

  private endStall(id: string, st: Stall): void {
    this.stalls.delete(id);
    if (st.evidence.stalledMs <= 0) return;
    this.pastStalls.push(st.evidence);
    if (this.pastStalls.length > MAX_KEPT) {
      this.pastStalls.sort((a, b) => b.stalledMs - a.stalledMs);
      this.pastStalls.length = MAX_KEPT;
    }
  }

  private lastFillCheck = -Infinity;
  private ct: ConntrackSource | null = null;
  private conntrackSource(): ConntrackSource {
    this.ct ??= this.opts.conntrack ?? kernelConntrackSource();
    return this.ct;
  }

  /** Reads the tables of `netnsSet`; with `minFill`, keeps only those at least that full (or already kept). */
  private readConntrack(netnsSet: ReadonlySet<number>, minFill = 0): void {
    const ct = this.conntrackSource();
    for (const netns of netnsSet) {
      const st = ct.read(netns);
      if (!st) continue;
      if (minFill > 0 && !this.conntrack.has(netns) && !(st.max > 0 && st.count >= minFill * st.max)) continue;
      // A namespace not seen at the start was created since: its counters started at zero.
      const base = this.ctBaseline.get(netns)?.stat ?? {};
      const d = (k: string) => Math.max(0, (st.stat[k] ?? 0) - (base[k] ?? 0));
      const kept = this.conntrack.get(netns);
      const e: ConntrackEvidence = { netns, count: Math.max(st.count, kept?.count ?? 0), max: st.max, drops: d('drop'), earlyDrops: d('early_drop'), insertFailed: d('insert_failed') };
      if (kept || this.conntrack.size < MAX_KEPT) this.conntrack.set(netns, e);
    }
  }

  /** The evidence gathered so far. */
  evidence(): HostEvidence {
    return {
      listeners: [...this.listeners.values()].map((l) => ({ ...l })),
      closeWait: [...this.closeWait.values()].map((w) => ({ ...w, local: [...w.local] })),
      stalled: [...this.pastStalls, ...[...this.stalls.values()].map((s) => s.evidence)].filter((s) => s.stalledMs > 0).map((s) => ({ ...s })),
      conntrack: [...this.conntrack.values()].map((c) => ({ ...c })),
    };
  }

  close(): void {
    this.sockets?.close();
  }
}
