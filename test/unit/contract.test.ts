/** The record contract between bpf/ and src/ is generated from the BPF objects' BTF (scripts/gen-contract.mjs):
 * the committed output must be what the objects generate, and nothing may be mirrored by hand beside it. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateContract, staleContractFiles } from '../../scripts/gen-contract.mjs';
import { checkConstants, type TraceSpec } from '../../src/core/trace.js';
import { NETBPF_OWNER_SOURCE_NAMES, NETBPF_RODATA } from '../../src/core/netbpf.gen.js';
import { connectionIdReader } from '../../src/core/record.js';
import { connectSpec } from '../../src/tools/connect/index.js';
import { conntrackSpec } from '../../src/tools/conntrack/index.js';
import { dropsSpec } from '../../src/tools/drops/index.js';
import { lifeSpec } from '../../src/tools/life/index.js';
import { retransSpec } from '../../src/tools/retrans/index.js';
import { CONNECT_EVENT_LAYOUT, CONNECT_RODATA } from '../../src/tools/connect/bpf.gen.js';
import { CONNTRACK_RODATA, CT_EVENT_KIND_NAMES } from '../../src/tools/conntrack/bpf.gen.js';
import { DROPS_RODATA } from '../../src/tools/drops/bpf.gen.js';
import { LIFE_DIRECTION_NAMES, LIFE_EVENT_LAYOUT, LIFE_KIND_NAMES, LIFE_RODATA } from '../../src/tools/life/bpf.gen.js';
import { RETRANS_EVENT_LAYOUT, RETRANS_KIND_NAMES, RETRANS_RODATA } from '../../src/tools/retrans/bpf.gen.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const generate = () => generateContract(ROOT) as Map<string, string>;

describe('generated contract (scripts/gen-contract.mjs)', () => {
  const files = generate();

  it('covers the core and every tool object in build/bpf', () => {
    const tools = readdirSync(join(ROOT, 'build/bpf')).filter((f) => f.endsWith('.bpf.o')).map((f) => f.slice(0, -6)).sort();
    expect([...files.keys()].sort()).toEqual(['src/core/netbpf.gen.ts', ...tools.map((t) => `src/tools/${t}/bpf.gen.ts`)].sort());
  });

  it.each([...files.keys()])('%s is what the BPF objects generate (else: npm run build:bpf and commit)', (path) => {
    expect(existsSync(join(ROOT, path)) ? read(path) : '(missing)', `${path} is stale`).toBe(files.get(path));
  });

  it('leaves no generated file behind for an object that is gone', () => {
    expect(staleContractFiles(files, ROOT)).toEqual([]);
  });

  it('names a stale, a missing and an orphaned file', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'netbpf-contract-'));
    try {
      for (const [path, text] of files) {
        mkdirSync(join(tmp, path, '..'), { recursive: true });
        writeFileSync(join(tmp, path), text);
      }
      expect(staleContractFiles(files, tmp)).toEqual([]);
      writeFileSync(join(tmp, 'src/tools/retrans/bpf.gen.ts'), files.get('src/tools/retrans/bpf.gen.ts')!.replace('size: 112', 'size: 104'));
      rmSync(join(tmp, 'src/tools/life/bpf.gen.ts'));
      mkdirSync(join(tmp, 'src/tools/gone'));
      writeFileSync(join(tmp, 'src/tools/gone/bpf.gen.ts'), '');
      expect(staleContractFiles(files, tmp).sort()).toEqual(['src/tools/gone/bpf.gen.ts', 'src/tools/life/bpf.gen.ts', 'src/tools/retrans/bpf.gen.ts']);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('--check exits 1 naming the stale file, 0 when none is', () => {
    const check = () => execFileSync(process.execPath, [join(ROOT, 'scripts/gen-contract.mjs'), '--check'], { cwd: ROOT, encoding: 'utf8', stdio: 'pipe' });
    expect(check()).toBe('');
    // A stale copy in a scratch checkout (never the real one): objects and scripts copied, one output edited.
    const tmp = mkdtempSync(join(tmpdir(), 'netbpf-contract-'));
    try {
      cpSync(join(ROOT, 'build/bpf'), join(tmp, 'build/bpf'), { recursive: true, filter: (f) => !f.endsWith('vmlinux.h') });
      cpSync(join(ROOT, 'scripts/gen-contract.mjs'), join(tmp, 'scripts/gen-contract.mjs'));
      for (const [path, text] of files) {
        mkdirSync(join(tmp, path, '..'), { recursive: true });
        writeFileSync(join(tmp, path), path.includes('drops') ? text.replace('DROP_AGG_OTHER: 128', 'DROP_AGG_OTHER: 64') : text);
      }
      let failure: { status: number; stderr: string } | null = null;
      try {
        execFileSync(process.execPath, [join(tmp, 'scripts/gen-contract.mjs'), '--check'], { encoding: 'utf8', stdio: 'pipe' });
      } catch (err) {
        failure = err as { status: number; stderr: string };
      }
      expect(failure?.status).toBe(1);
      expect(failure?.stderr).toMatch(/src\/tools\/drops\/bpf\.gen\.ts is stale/);
      expect(failure?.stderr).not.toMatch(/retrans/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('refuses a record with implicit padding (every byte of a record must be a named field)', () => {
    const tmp = mkdtempSync(join(tmpdir(), 'netbpf-contract-'));
    try {
      mkdirSync(join(tmp, 'build/bpf'), { recursive: true });
      writeFileSync(join(tmp, 'padded.c'), 'struct padded { unsigned long long ts; unsigned int pid; };\nconst struct padded *netbpf_contract_0 __attribute__((unused));\n');
      execFileSync('clang', ['-g', '-O2', '-target', 'bpf', '-c', join(tmp, 'padded.c'), '-o', join(tmp, 'build/bpf/padded.bpf.o')]);
      expect(() => generateContract(tmp)).toThrow(/struct padded has 4 bytes of implicit padding at its end/);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  });

  it('turns dense enums into the strings the JSON output carries', () => {
    expect(RETRANS_KIND_NAMES).toEqual(['other', 'rto', 'fast', 'tlp', 'syn', 'synack']);
    expect(LIFE_DIRECTION_NAMES).toEqual(['unknown', 'connect', 'accept']);
    expect(NETBPF_OWNER_SOURCE_NAMES).toEqual(['none', 'connect', 'recv', 'send', 'close']);
    expect(LIFE_KIND_NAMES).toEqual([undefined, 'established', 'closed']);
    expect(CT_EVENT_KIND_NAMES).toEqual([undefined, 'new', 'destroy', 'listed']);
  });

  it('retrans, life and connect records hash a connection id from adjoining saddr, daddr, netns and both ports', () => {
    for (const L of [RETRANS_EVENT_LAYOUT, LIFE_EVENT_LAYOUT, CONNECT_EVENT_LAYOUT]) {
      const F = L.fields;
      expect(F.daddr[0], L.struct).toBe(F.saddr[0] + F.saddr[1]);
      expect(F.netns[0], L.struct).toBe(F.daddr[0] + F.daddr[1]);
      expect(F.dport[0], L.struct).toBe(F.sport[0] + F.sport[1]);
      expect(F.sport[1] + F.dport[1], L.struct).toBe(4);
      expect(() => connectionIdReader(L)).not.toThrow();
    }
  });
});

describe('every tool sets exactly its object\'s read-only globals, at their sizes', () => {
  const specs: Array<[string, TraceSpec<unknown>, Readonly<Record<string, number>>]> = [
    ['retrans', retransSpec() as TraceSpec<unknown>, RETRANS_RODATA],
    ['life', lifeSpec() as TraceSpec<unknown>, LIFE_RODATA],
    ['connect', connectSpec({ pid: 1 }) as TraceSpec<unknown>, CONNECT_RODATA],
    ['conntrack', conntrackSpec() as TraceSpec<unknown>, CONNTRACK_RODATA],
    ['drops', dropsSpec({ all: true, stack: true }) as TraceSpec<unknown>, DROPS_RODATA],
  ];
  it.each(specs)('%s', (_tool, spec, rodata) => {
    expect(spec.rodata).toBe(rodata);
    expect(() => checkConstants(spec)).not.toThrow();
    // wakeup_bytes is set by Trace itself for every tool.
    expect(['wakeup_bytes', ...Object.keys(spec.constants)].sort()).toEqual(Object.keys({ ...NETBPF_RODATA, ...rodata }).sort());
  });
  it('a constant of the wrong size or name is refused before anything loads', () => {
    const spec = retransSpec();
    expect(() => checkConstants({ ...spec, constants: { ...spec.constants, filter_lport: Buffer.alloc(4) } })).toThrow(/retrans: constant filter_lport is 4 bytes, the BPF object's is 2/);
    expect(() => checkConstants({ ...spec, constants: { filter_pid: Buffer.alloc(4) } })).toThrow(/retrans: the BPF object has no read-only global filter_pid/);
  });
});

// ---- The guard: nothing mirrored by hand between bpf/ and src/ ----

/** Files under `dir` (relative to the repository root) whose name matches, sorted. */
function list(dir: string, match: (name: string) => boolean): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true })
    .flatMap((d) => (d.isDirectory() ? list(`${dir}/${d.name}`, match) : d.isFile() && match(d.name) ? [`${dir}/${d.name}`] : []))
    .sort();
}

/** Headers user space shares (bpf/*.h but not the BPF-only *.bpf.h). */
const sharedHeaders = list('bpf', (f) => f.endsWith('.h') && !f.endsWith('.bpf.h'));
const handWrittenTs = list('src', (f) => f.endsWith('.ts') && !f.endsWith('.gen.ts'));

/** `#define NAME value` lines other than include guards (function-like macros are code, not constants). */
function headerDefines(text: string): string[] {
  const out: string[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const m = /^\s*#\s*define\s+(\w+)(\(?)(.*)$/.exec(line);
    if (!m || m[2] === '(') return;
    const guard = m[3].trim() === '' && new RegExp(`^\\s*#\\s*ifndef\\s+${m[1]}\\s*$`).test(lines[i - 1] ?? '');
    if (!guard) out.push(`line ${i + 1}: ${line.trim()}`);
  });
  return out;
}

/** Hand-written layout tables: `fields: {` literals, `X_LAYOUT =` definitions, `satisfies Layout`. */
function layoutLiterals(text: string): string[] {
  return text.split('\n').flatMap((line, i) => (/\bfields\s*:\s*\{|\b[A-Z0-9_]+_LAYOUT\s*=[^=]|satisfies\s+Layout\b/.test(line) ? [`line ${i + 1}: ${line.trim()}`] : []));
}

/** Enumerators of every enum in a header: name -> value (literals and OR-ed earlier names). */
function headerEnumerators(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const body of text.matchAll(/\benum\s+\w+\s*\{([^}]*)\}/g)) {
    for (const m of body[1].replace(/\/\*[\s\S]*?\*\//g, '').matchAll(/([A-Z][A-Z0-9_]*)\s*=\s*([^,]+)/g)) {
      const value = m[2].split('|').reduce((acc, term) => acc | Number(out.get(term.trim()) ?? parseInt(term.trim().replace(/u$/i, ''))), 0) >>> 0;
      out.set(m[1], value);
    }
  }
  return out;
}

/** Numeric literals bound to an enumerator's name (or its tail after a `_`) with its value: a hand mirror. */
function mirroredConstants(text: string, enumerators: Map<string, number>): string[] {
  const tails = new Map<string, Set<number>>();
  for (const [name, value] of enumerators) {
    const parts = name.split('_');
    for (let i = 0; i < parts.length; i++) {
      const tail = parts.slice(i).join('_');
      tails.set(tail, (tails.get(tail) ?? new Set()).add(value));
    }
  }
  const out: string[] = [];
  const bindings = /(?:\b(?:const|let|var)\s+|,\s*)([A-Z][A-Z0-9_]*)\s*=\s*(0x[0-9a-fA-F]+|\d+)\b|[{,]\s*([A-Z][A-Z0-9_]*)\s*:\s*(0x[0-9a-fA-F]+|\d+)\b/g;
  for (const m of text.matchAll(bindings)) {
    const name = m[1] ?? m[3];
    const value = Number(m[2] ?? m[4]);
    if (tails.get(name)?.has(value)) out.push(`${name} = ${m[2] ?? m[4]}`);
  }
  return out;
}

/** Array literals spelling a generated names-by-value array (three names or more) in order. */
function mirroredNames(text: string, arrays: string[][]): string[] {
  return arrays.filter((names) => names.length >= 3 && new RegExp(names.map((n) => `['"]${n}['"]`).join('\\s*,\\s*')).test(text)).map((n) => n.join(','));
}

describe('guard: no hand-mirrored constant or offset between bpf/ and src/', () => {
  const generated = [...generate().values()].join('\n');
  const enumerators = new Map(sharedHeaders.flatMap((h) => [...headerEnumerators(read(h))]));
  const nameArrays = [...generated.matchAll(/_NAMES = \[([^\]]*)\]/g)].map((m) => [...m[1].matchAll(/'([^']*)'/g)].map((n) => n[1]));

  it('finds the shared headers, their enumerators and the generated name arrays it guards', () => {
    expect(sharedHeaders).toEqual(expect.arrayContaining(['bpf/netbpf.h', 'bpf/retrans.h', 'bpf/drops.h']));
    expect(handWrittenTs).toEqual(expect.arrayContaining(['src/core/filters.ts', 'src/tools/drops/decode.ts']));
    expect(handWrittenTs.filter((f) => f.endsWith('.gen.ts'))).toEqual([]);
    expect(enumerators.get('DROP_REASON_UNAVAILABLE')).toBe(0xffffffff);
    expect(enumerators.get('DROP_AGG_FLAGS')).toBe(1 | 8 | 16);
    expect(nameArrays).toContainEqual(['other', 'rto', 'fast', 'tlp', 'syn', 'synack']);
  });

  it.each(list('bpf', (f) => f.endsWith('.h')))('%s has no #define besides its include guard (constants are enums, in BTF)', (h) => {
    expect(headerDefines(read(h))).toEqual([]);
  });

  it.each(sharedHeaders)('every struct and enum of %s is anchored in some object (generated)', (h) => {
    const types = [...read(h).matchAll(/^(struct|enum)\s+(\w+)\s*\{/gm)].map((m) => `${m[1]} ${m[2]}`);
    expect(types.length).toBeGreaterThan(0);
    const missing = types.filter((t) => {
      const [kind, name] = t.split(' ');
      return !generated.includes(kind === 'struct' ? `struct: '${name}',` : `/** enum ${name}. */`);
    });
    expect(missing, 'anchor them with NETBPF_CONTRACT(...) in the tool\'s .bpf.c (NETBPF_CONTRACT_CORE for netbpf.h)').toEqual([]);
  });

  it.each(handWrittenTs)('%s has no layout table, mirrored constant or mirrored name list', (f) => {
    const text = read(f);
    expect(layoutLiterals(text), 'import the generated *_LAYOUT instead').toEqual([]);
    expect(mirroredConstants(text, enumerators), 'import the generated enum instead').toEqual([]);
    expect(mirroredNames(text, nameArrays), 'import the generated *_NAMES instead').toEqual([]);
  });

  it('catches what it is meant to catch', () => {
    expect(headerDefines('#ifndef X_H\n#define X_H\n#define NETBPF_MAX_CIDRS 8\n#define F(x) (x)\n')).toEqual(['line 3: #define NETBPF_MAX_CIDRS 8']);
    expect(layoutLiterals("export const X_LAYOUT = {\n  fields: { a: [0, 8] },\n} as const satisfies Layout;\nif (Y_LAYOUT === z) {}")).toHaveLength(3);
    expect(mirroredConstants('const MAX_CIDRS = 8;\nconst CT_FLAG_ACCT = 1, CT_FLAG_TSTAMP = 2;\nconst DROP_F = { RECEIVED: 1, SOCKET: 2 };\nconst AGG_LEN_BUCKETS = 33;\nconst CONNS_CAP = 4096;\nconst X = c ? AF_INET6 : 0;', enumerators))
      .toEqual(['MAX_CIDRS = 8', 'CT_FLAG_ACCT = 1', 'CT_FLAG_TSTAMP = 2', 'RECEIVED = 1', 'SOCKET = 2', 'AGG_LEN_BUCKETS = 33']);
    expect(mirroredConstants('const MAX_CIDRS = 16;', enumerators)).toEqual([]);
    expect(mirroredNames("export const RETRANS_KINDS = ['other', 'rto', 'fast', 'tlp', 'syn', 'synack'] as const;", nameArrays)).toHaveLength(1);
  });
});
