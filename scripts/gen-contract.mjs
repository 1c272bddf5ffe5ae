#!/usr/bin/env node
// Generates the record contract between bpf/ and src/ from the compiled objects' BTF, as cilium/ebpf's bpf2go
// does: struct layouts, enum values and the read-only globals of every build/bpf/<tool>.bpf.o.
//   node scripts/gen-contract.mjs           writes src/core/netbpf.gen.ts and src/tools/<tool>/bpf.gen.ts
//   node scripts/gen-contract.mjs --check   writes nothing; exits 1 naming each file that is stale or missing
// What is generated is what the C side anchors (bpf/netbpf.bpf.h): NETBPF_CONTRACT(type) in a tool's .bpf.c
// goes to that tool's file, NETBPF_CONTRACT_CORE(type) (bpf/netbpf.h's types) to src/core/netbpf.gen.ts,
// checked identical in every object. The .BTF ELF section is parsed here (no bpftool, whose JSON prints some
// unsigned enum values sign-extended, and no JSON numbers past 2^53).
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const ANCHOR = /^netbpf_contract_(core_)?\d+$/;

class ContractError extends Error {}

// ---- ELF: the bytes of one section ----

function elfSection(file, buf, wanted) {
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new ContractError(`${file}: not an ELF file`);
  if (buf[4] !== 2) throw new ContractError(`${file}: not a 64-bit ELF object`);
  const le = buf[5] === 1;
  const u16 = (o) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
  const u32 = (o) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  const u64 = (o) => Number(le ? buf.readBigUInt64LE(o) : buf.readBigUInt64BE(o));
  const shoff = u64(0x28), shentsize = u16(0x3a), shnum = u16(0x3c), shstrndx = u16(0x3e);
  const header = (i) => {
    const o = shoff + i * shentsize;
    return { name: u32(o), offset: u64(o + 0x18), size: u64(o + 0x20) };
  };
  const names = header(shstrndx);
  for (let i = 0; i < shnum; i++) {
    const h = header(i);
    const start = names.offset + h.name;
    const name = buf.toString('latin1', start, buf.indexOf(0, start));
    if (name === wanted) return { bytes: buf.subarray(h.offset, h.offset + h.size), le };
  }
  throw new ContractError(`${file}: no ${wanted} section (built without -g?)`);
}

// ---- BTF: types by id (1-based; 0 is void) ----

const KIND = { INT: 1, PTR: 2, ARRAY: 3, STRUCT: 4, UNION: 5, ENUM: 6, FWD: 7, TYPEDEF: 8, VOLATILE: 9, CONST: 10, RESTRICT: 11, FUNC: 12, FUNC_PROTO: 13, VAR: 14, DATASEC: 15, FLOAT: 16, DECL_TAG: 17, TYPE_TAG: 18, ENUM64: 19 };

function parseBtf(file) {
  const { bytes: b, le } = elfSection(file, readFileSync(file), '.BTF');
  const u16 = (o) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const s32 = (o) => (le ? b.readInt32LE(o) : b.readInt32BE(o));
  if (u16(0) !== 0xeb9f) throw new ContractError(`${file}: bad BTF magic`);
  const hdrLen = u32(4), typeOff = u32(8), typeLen = u32(12), strOff = u32(16);
  const str = (off) => { const s = hdrLen + strOff + off; return b.toString('latin1', s, b.indexOf(0, s)); };
  const types = [null];
  let o = hdrLen + typeOff;
  const end = o + typeLen;
  while (o < end) {
    const info = u32(o + 4), vlen = info & 0xffff, kind = (info >>> 24) & 0x1f, kflag = info >>> 31 === 1;
    const t = { id: types.length, kind, kflag, name: str(u32(o)), sizeOrType: u32(o + 8) };
    o += 12;
    switch (kind) {
      case KIND.INT: case KIND.DECL_TAG: o += 4; break;
      case KIND.VAR: t.linkage = u32(o); o += 4; break; // 0 static, 1 global, 2 extern
      case KIND.ARRAY: t.elem = u32(o); t.nelems = u32(o + 8); o += 12; break;
      case KIND.STRUCT: case KIND.UNION:
        t.members = [];
        for (let i = 0; i < vlen; i++, o += 12) {
          const off = u32(o + 8);
          t.members.push({ name: str(u32(o)), type: u32(o + 4), bitOffset: kflag ? off & 0xffffff : off, bitfieldSize: kflag ? off >>> 24 : 0 });
        }
        break;
      case KIND.ENUM:
        t.values = [];
        for (let i = 0; i < vlen; i++, o += 8) t.values.push({ name: str(u32(o)), value: kflag ? s32(o + 4) : u32(o + 4) });
        break;
      case KIND.ENUM64:
        t.values = [];
        for (let i = 0; i < vlen; i++, o += 12) {
          const v = (BigInt(u32(o + 8)) << 32n) | BigInt(u32(o + 4));
          t.values.push({ name: str(u32(o)), value: kflag ? BigInt.asIntN(64, v) : v });
        }
        break;
      case KIND.FUNC_PROTO: o += 8 * vlen; break;
      case KIND.DATASEC:
        t.vars = [];
        for (let i = 0; i < vlen; i++, o += 12) t.vars.push({ type: u32(o), size: u32(o + 8) });
        break;
      default: break; // PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG: no trailing data
    }
    types.push(t);
  }
  return types;
}

const QUALIFIERS = new Set([KIND.TYPEDEF, KIND.VOLATILE, KIND.CONST, KIND.RESTRICT, KIND.TYPE_TAG]);

function strip(types, id) {
  let t = types[id];
  while (t && QUALIFIERS.has(t.kind)) t = types[t.sizeOrType];
  return t;
}

function sizeOf(types, id) {
  const t = strip(types, id);
  if (!t) throw new ContractError('void has no size');
  if (t.kind === KIND.ARRAY) return t.nelems * sizeOf(types, t.elem);
  if (t.kind === KIND.PTR) return 8;
  return t.sizeOrType;
}

// ---- The contract of one object ----

/** struct -> { struct, size, stride, fields: [name, offset, size][], arrays: [name, elemSize, count][] } */
function structLayout(file, types, t) {
  const fields = [];
  const arrays = [];
  let at = 0;
  for (const m of t.members) {
    if (!m.name) throw new ContractError(`${file}: struct ${t.name} has an anonymous member: name it`);
    if (m.bitfieldSize || m.bitOffset % 8) throw new ContractError(`${file}: struct ${t.name}.${m.name} is a bitfield: records use whole bytes`);
    const offset = m.bitOffset / 8, size = sizeOf(types, m.type);
    // Records are written whole and compared as bytes: every byte belongs to a named field.
    if (offset !== at) throw new ContractError(`${file}: struct ${t.name} has ${offset - at} bytes of implicit padding before ${m.name}: add an explicit pad field`);
    at = offset + size;
    fields.push([m.name, offset, size]);
    const mt = strip(types, m.type);
    if (mt.kind === KIND.ARRAY) arrays.push([m.name, sizeOf(types, mt.elem), mt.nelems]);
  }
  if (at !== t.sizeOrType) throw new ContractError(`${file}: struct ${t.name} has ${t.sizeOrType - at} bytes of implicit padding at its end: add an explicit pad field`);
  return { struct: t.name, size: t.sizeOrType, stride: Math.ceil(t.sizeOrType / 8) * 8, fields, arrays };
}

function enumValues(file, t) {
  return t.values.map(({ name, value }) => {
    const n = Number(value);
    if (!Number.isSafeInteger(n)) throw new ContractError(`${file}: ${name} = ${value} does not fit a JavaScript number`);
    return [name, n];
  });
}

/** Everything one object contributes: anchored types (core or its own) and its read-only globals. */
function objectContract(file) {
  const types = parseBtf(file);
  const own = new Map(), core = new Map();
  const rodata = new Map();
  for (const t of types) {
    if (!t) continue;
    if (t.kind === KIND.VAR && ANCHOR.test(t.name)) {
      const ptr = types[t.sizeOrType];
      const target = ptr?.kind === KIND.PTR ? strip(types, ptr.sizeOrType) : null;
      if (!target || ![KIND.STRUCT, KIND.ENUM, KIND.ENUM64].includes(target.kind) || !target.name) {
        throw new ContractError(`${file}: anchor ${t.name} does not name a struct or an enum`);
      }
      const entry = target.kind === KIND.STRUCT
        ? { kind: 'struct', name: target.name, layout: structLayout(file, types, target) }
        : { kind: 'enum', name: target.name, values: enumValues(file, target) };
      (t.name.startsWith('netbpf_contract_core_') ? core : own).set(`${entry.kind} ${entry.name}`, entry);
    }
    if (t.kind === KIND.DATASEC && t.name === '.rodata') {
      for (const v of t.vars) {
        const vt = types[v.type];
        // Static globals (a zero value in .rodata) have no name to set before load.
        if (vt.kind === KIND.VAR && vt.linkage !== 0) rodata.set(vt.name, v.size);
      }
    }
  }
  for (const key of own.keys()) {
    if (core.has(key)) throw new ContractError(`${file}: ${key} is anchored with NETBPF_CONTRACT_CORE already: drop its NETBPF_CONTRACT`);
  }
  return { own, core, rodata };
}

// ---- TypeScript ----

const upper = (name) => name.toUpperCase();
/** Code-unit order, not the locale's: the output must not depend on the machine. */
const byName = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const num = (v) => (v > 0xffff ? `0x${v.toString(16)}` : String(v));
const key = (name) => (/^[A-Za-z_$][\w$]*$/.test(name) ? name : `'${name}'`);

function layoutTs(l) {
  const lines = [
    `/** struct ${l.struct}: byte offset and size of each field; stride steps its copies in a per-CPU map value. */`,
    `export const ${upper(l.struct)}_LAYOUT = {`,
    `  struct: '${l.struct}',`,
    `  size: ${l.size},`,
    `  stride: ${l.stride},`,
    '  fields: {',
    ...l.fields.map(([n, o, s]) => `    ${key(n)}: [${o}, ${s}],`),
    '  },',
    `  arrays: {${l.arrays.length ? '' : '},'}`,
  ];
  if (l.arrays.length) lines.push(...l.arrays.map(([n, e, c]) => `    ${key(n)}: [${e}, ${c}],`), '  },');
  lines.push('} as const satisfies Layout;');
  return lines.join('\n');
}

/** Values 0..n-1 or 1..n, each once: a kind or a state whose names TypeScript turns into strings. */
function denseBase(values) {
  const sorted = values.map(([, v]) => v).sort((a, b) => a - b);
  if (sorted.length < 2 || (sorted[0] !== 0 && sorted[0] !== 1)) return null;
  return sorted.every((v, i) => v === sorted[0] + i) ? sorted[0] : null;
}

function enumTs(file, e) {
  const out = [`/** enum ${e.name}. */`, `export const ${upper(e.name)} = {`, ...e.values.map(([n, v]) => `  ${key(n)}: ${num(v)},`), '} as const;'];
  if (e.name.endsWith('_flags')) {
    for (const [n, v] of e.values) if (!(v > 0 && (v & (v - 1)) === 0)) throw new ContractError(`${file}: ${n} = ${v} in flag enum ${e.name} is not a single bit`);
    return out.join('\n');
  }
  const base = denseBase(e.values);
  if (base === null) return out.join('\n');
  let prefix = e.values.map(([n]) => n).reduce((p, n) => { let i = 0; while (i < p.length && p[i] === n[i]) i++; return p.slice(0, i); });
  prefix = prefix.slice(0, prefix.lastIndexOf('_') + 1);
  const names = base ? [undefined] : [];
  for (const [n, v] of e.values) names[v] = n.slice(prefix.length).toLowerCase();
  if (new Set(names).size !== names.length || names.some((n, v) => n === '' || (n === undefined && v >= base))) {
    throw new ContractError(`${file}: enum ${e.name}: names are not distinct without the prefix ${prefix}`);
  }
  const items = names.map((n) => (n === undefined ? 'undefined' : `'${n}'`));
  out.push(
    `/** enum ${e.name} names by value (without ${prefix}, lower-cased)${base ? '; 0 is no value' : ''}. */`,
    `export const ${upper(e.name)}_NAMES = [${items.join(', ')}] as const;`,
  );
  return out.join('\n');
}

function rodataTs(name, rodata) {
  const entries = [...rodata.entries()].sort(([a], [b]) => byName(a, b));
  const doc = '/** Read-only globals (const volatile, set before load): size in bytes by name. */';
  if (!entries.length) return `${doc}\nexport const ${name}_RODATA = {} as const;`;
  return [doc, `export const ${name}_RODATA = {`, ...entries.map(([n, s]) => `  ${key(n)}: ${s},`), '} as const;'].join('\n');
}

function fileTs(file, sources, recordImport, entries, rodataName, rodata) {
  const structs = [...entries.values()].filter((e) => e.kind === 'struct').sort((a, b) => byName(a.name, b.name));
  const enums = [...entries.values()].filter((e) => e.kind === 'enum').sort((a, b) => byName(a.name, b.name));
  const parts = [`// Generated by scripts/gen-contract.mjs from ${sources}; do not edit (npm run build:bpf regenerates it).`];
  if (structs.length) parts.push(`import type { Layout } from '${recordImport}';`);
  const blocks = [...structs.map((s) => layoutTs(s.layout)), ...enums.map((e) => enumTs(file, e)), rodataTs(rodataName, rodata)];
  return `${parts.join('\n')}\n\n${blocks.join('\n\n')}\n`;
}

/** The generated files, by path relative to the repository root. */
export function generateContract(root = ROOT) {
  const dir = join(root, 'build/bpf');
  const objects = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.bpf.o')).sort() : [];
  if (!objects.length) throw new ContractError('no BPF objects in build/bpf: run make -C bpf (npm run build:bpf)');
  const contracts = objects.map((f) => ({ tool: f.slice(0, -'.bpf.o'.length), file: `build/bpf/${f}`, ...objectContract(join(dir, f)) }));
  const files = new Map();

  // Core: anchored types identical in every object that carries them; globals every object has, same size.
  const core = new Map();
  const coreFrom = new Map();
  for (const c of contracts) {
    for (const [k, e] of c.core) {
      const text = JSON.stringify(e);
      if (core.has(k) && JSON.stringify(core.get(k)) !== text) throw new ContractError(`${k} differs between ${coreFrom.get(k)} and ${c.file}`);
      core.set(k, e);
      coreFrom.set(k, c.file);
    }
  }
  const coreRodata = new Map();
  for (const [name, size] of contracts[0].rodata) {
    if (contracts.every((c) => c.rodata.has(name))) {
      const other = contracts.find((c) => c.rodata.get(name) !== size);
      if (other) throw new ContractError(`read-only global ${name} is ${size} bytes in ${contracts[0].file} but ${other.rodata.get(name)} in ${other.file}`);
      coreRodata.set(name, size);
    }
  }
  const carriers = contracts.filter((c) => c.core.size).map((c) => c.tool);
  const sources = carriers.length === 1 ? `build/bpf/${carriers[0]}.bpf.o` : `build/bpf/{${carriers.join(',')}}.bpf.o (identical in each)`;
  files.set('src/core/netbpf.gen.ts', fileTs('core', sources, './record.js', core, 'NETBPF', coreRodata));

  for (const c of contracts) {
    const rodata = new Map([...c.rodata].filter(([n]) => !coreRodata.has(n)));
    files.set(`src/tools/${c.tool}/bpf.gen.ts`, fileTs(c.file, c.file, '../../core/record.js', c.own, upper(c.tool), rodata));
  }
  return files;
}

/** Paths (relative to root) whose committed text differs from `files`, or that no object generates any more. */
export function staleContractFiles(files, root = ROOT) {
  const stale = [];
  for (const [path, text] of files) {
    const full = join(root, path);
    if (!existsSync(full) || readFileSync(full, 'utf8') !== text) stale.push(path);
  }
  const toolsDir = join(root, 'src/tools');
  for (const d of existsSync(toolsDir) ? readdirSync(toolsDir, { withFileTypes: true }) : []) {
    const path = `src/tools/${d.name}/bpf.gen.ts`;
    if (d.isDirectory() && existsSync(join(root, path)) && !files.has(path)) stale.push(path);
  }
  return stale;
}

function main(argv) {
  const check = argv.includes('--check');
  let files;
  try {
    files = generateContract();
  } catch (err) {
    if (!(err instanceof ContractError)) throw err;
    console.error(`gen-contract: ${err.message}`);
    return 1;
  }
  const stale = staleContractFiles(files);
  if (check) {
    for (const p of stale) console.error(`gen-contract: ${p} is stale (differs from the BPF objects' BTF): run npm run build:bpf and commit it`);
    return stale.length ? 1 : 0;
  }
  for (const p of stale) {
    if (!files.has(p)) { console.error(`gen-contract: ${p}: no build/bpf object generates it any more: delete it`); return 1; }
    mkdirSync(dirname(join(ROOT, p)), { recursive: true });
    writeFileSync(join(ROOT, p), files.get(p));
    console.log(`gen-contract: wrote ${relative(ROOT, join(ROOT, p))}`);
  }
  return 0;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
