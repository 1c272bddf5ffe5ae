/** Every record layout the TypeScript decoders use must match the struct in the compiled BPF object's BTF. */
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as api from '../../src/index.js';
import type { Layout } from '../../src/core/record.js';

interface BtfMember { name: string; bits_offset: number; type_id: number }
interface BtfType { id: number; kind: string; name?: string; size?: number; members?: BtfMember[]; type_id?: number; nr_elems?: number }

function btfTypes(object: string): Map<number, BtfType> {
  const out = execFileSync('bpftool', ['-j', 'btf', 'dump', 'file', object], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return new Map((JSON.parse(out) as { types: BtfType[] }).types.map((t) => [t.id, t]));
}

function sizeOf(types: Map<number, BtfType>, id: number): number {
  const t = types.get(id)!;
  if (t.kind === 'ARRAY') return t.nr_elems! * sizeOf(types, t.type_id!);
  if (['TYPEDEF', 'CONST', 'VOLATILE'].includes(t.kind)) return sizeOf(types, t.type_id!);
  return t.size!;
}

const layouts = Object.entries(api).filter(([name]) => name.endsWith('_LAYOUT')) as Array<[string, Layout]>;
// The object is named after the first word: DROPS_AGG_KEY_LAYOUT lives in drops.bpf.o.
const objectFor = (name: string) => new URL(`../../build/bpf/${name.split('_')[0].toLowerCase()}.bpf.o`, import.meta.url).pathname;

describe('record layouts match the BPF objects', () => {
  it('exports at least the retrans layout', () => {
    expect(layouts.map(([n]) => n)).toContain('RETRANS_LAYOUT');
  });
  it.each(layouts)('%s mirrors its struct (names, offsets, sizes, total size)', (name, layout) => {
    const object = objectFor(name);
    expect(existsSync(object), `${object} missing: run npm run build`).toBe(true);
    const types = btfTypes(object);
    const struct = [...types.values()].find((t) => t.kind === 'STRUCT' && t.name === layout.struct);
    expect(struct, `struct ${layout.struct} not in ${object}'s BTF`).toBeDefined();
    expect(struct!.size).toBe(layout.size);
    const btfFields = Object.fromEntries(struct!.members!.map((m) => [m.name, [m.bits_offset / 8, sizeOf(types, m.type_id)]]));
    expect(layout.fields).toEqual(btfFields);
  });
});
