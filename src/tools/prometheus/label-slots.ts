/**
 * Label values for an unbounded key space (destinations, containers), kept useful over days: at most `max` keys
 * hold a label value of their own. A new key takes the slot of the least recently active key once that one has
 * been idle for `evictIdleMs` (its series are deleted: yesterday's peers make way for today's); while every slot
 * is in use, new keys share "other", so a port scan or a spoofed flood cannot push out the destinations that are
 * talking now, nor blow up the time-series database.
 */
import { OTHER_KEY } from '../../core/table.js';

/** How often a key's activity is re-recorded at most, ms: keeps the per-event cost to a Map lookup. */
const TOUCH_MS = 1000;

export class LabelSlots {
  /** Key -> last activity (ms), least recently active first (Map insertion order). */
  private readonly active = new Map<string, number>();
  /** New keys that got "other" because every slot was in use (each counted once while the sample of them is small). */
  folded = 0;
  /** Keys whose slot was given to a new key after they had been idle for evictIdleMs. */
  evicted = 0;
  private readonly foldedSeen = new Set<string>();

  /**
   * `onEvict` is called with a key when its slot is taken (delete its series there); keys in `passThrough` (e.g.
   * "unknown") are label values of their own that never take a slot.
   */
  constructor(
    readonly max: number,
    readonly evictIdleMs: number,
    private readonly onEvict: (key: string) => void,
    private readonly now: () => number = Date.now,
    private readonly passThrough: ReadonlySet<string> = new Set(),
  ) {}

  /** The label value for `key` now (the key itself or "other"), recording its activity. */
  label(key: string): string {
    if (key === OTHER_KEY || this.passThrough.has(key)) return key;
    const t = this.now();
    const last = this.active.get(key);
    if (last !== undefined) {
      if (t - last >= TOUCH_MS) { this.active.delete(key); this.active.set(key, t); }
      return key;
    }
    if (this.active.size >= this.max) {
      const oldest = this.active.entries().next().value as [string, number] | undefined;
      if (!oldest || t - oldest[1] < this.evictIdleMs) {
        if (!this.foldedSeen.has(key)) { this.folded++; if (this.foldedSeen.size < 65536) this.foldedSeen.add(key); }
        return OTHER_KEY;
      }
      this.active.delete(oldest[0]);
      this.evicted++;
      this.onEvict(oldest[0]);
    }
    this.active.set(key, t);
    return key;
  }

  /** Keys holding a slot now, least recently active first. */
  keys(): string[] {
    return [...this.active.keys()];
  }

  get size(): number {
    return this.active.size;
  }
}
