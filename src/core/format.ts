/** Text and JSON formatting shared by the renderers of every tool and the CLI. */

/** Escapes control characters (and DEL) so process names cannot move the cursor or inject lines. */
export function safeText(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s
    .replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    // Bidi overrides and isolates reorder what the terminal shows after them.
    .replace(/[\u202a-\u202e\u2066-\u2069]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
}

/**
 * Text cells cached by value (bounded): live lines repeat the same addresses, ports, names and small numbers, and
 * padding a fresh string per line for each is most of what a line costs. `format` makes a cell from a value once.
 */
export class CellCache<K> {
  private readonly cells = new Map<K, string>();
  constructor(private readonly format: (value: K) => string, private readonly max = 8192) {}

  get(value: K): string {
    let cell = this.cells.get(value);
    if (cell === undefined) {
      cell = this.format(value);
      if (this.cells.size >= this.max) this.cells.clear();
      this.cells.set(value, cell);
    }
    return cell;
  }
}

/** HH:MM:SS local time, as BCC tools print it. */
export function clockTime(epochMs: number): string {
  const d = new Date(epochMs);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** A fixed-width table: columns sized to content, numbers right-aligned. */
export function table(header: string[], rows: Array<Array<string | number>>): string[] {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? formatNumber(c) : safeText(c))));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i].length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => typeof r[i] === 'number'));
  const line = (r: string[]) => r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  ').trimEnd();
  return [line(header), ...cells.map(line)];
}

export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 1) return n.toFixed(2);
  return n.toFixed(4);
}

export function percent(ratio: number): string {
  return `${(ratio * 100).toFixed(2)}%`;
}

// eslint-disable-next-line no-control-regex
const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * JSON.stringify, with DEL, C1 controls (U+0080..U+009F: U+009B is CSI on many terminals) and bidi overrides
 * written as \u escapes: JSON lines end up on terminals too, and process names are attacker-chosen. The
 * values are unchanged for a JSON reader. (JSON.stringify already escapes U+0000..U+001F.)
 */
export function jsonText(value: unknown): string {
  return JSON.stringify(value).replace(JSON_UNSAFE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
