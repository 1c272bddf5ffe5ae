/**
 * A tiny JSON Schema checker for netbpf's own schemas (docs/schema/*.json): the subset they use — type,
 * properties, required, additionalProperties, items, enum, const, anyOf, pattern, $ref to "<file>#/$defs/<name>"
 * or "#/$defs/<name>". Enough to hold every JSON line to its documented shape without a heavy dependency.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../core/addon.js';

export type Schema = Record<string, unknown>;

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'number' ? (Number.isInteger(v) ? 'integer' : 'number') : typeof v);

export class SchemaSet {
  private readonly files = new Map<string, Schema>();
  constructor(private readonly dir = join(packageRoot, 'docs', 'schema')) {}

  file(name: string): Schema {
    let s = this.files.get(name);
    if (!s) {
      s = JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as Schema;
      this.files.set(name, s);
    }
    return s;
  }

  private resolve(ref: string, current: string): [Schema, string] {
    const [f, pointer] = ref.split('#');
    const file = f || current;
    const name = /^\/\$defs\/([\w-]+)$/.exec(pointer ?? '')?.[1];
    const def = name ? (this.file(file).$defs as Record<string, Schema> | undefined)?.[name] : undefined;
    if (!def) throw new Error(`schema: unresolved $ref ${ref} in ${current}`);
    return [def, file];
  }

  /** Errors of `value` against definition `def` of schema file `file` ([] when valid). */
  validate(value: unknown, file: string, def: string): string[] {
    const errors: string[] = [];
    const [schema] = this.resolve(`${file}#/$defs/${def}`, file);
    this.check(value, schema, file, '$', errors);
    return errors;
  }

  private check(v: unknown, s: Schema, file: string, path: string, errors: string[]): void {
    if (typeof s.$ref === 'string') {
      const [t, f] = this.resolve(s.$ref, file);
      this.check(v, t, f, path, errors);
      return;
    }
    if (Array.isArray(s.anyOf)) {
      const ok = (s.anyOf as Schema[]).some((alt) => { const e: string[] = []; this.check(v, alt, file, path, e); return e.length === 0; });
      if (!ok) errors.push(`${path}: matches none of the alternatives (${JSON.stringify(v)?.slice(0, 80)})`);
      return;
    }
    if ('const' in s && v !== s.const) errors.push(`${path}: expected ${JSON.stringify(s.const)}, got ${JSON.stringify(v)}`);
    if (Array.isArray(s.enum) && !s.enum.includes(v)) errors.push(`${path}: ${JSON.stringify(v)} not one of ${JSON.stringify(s.enum)}`);
    if (s.type !== undefined) {
      const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
      const t = typeOf(v);
      if (!types.includes(t) && !(t === 'integer' && types.includes('number'))) { errors.push(`${path}: expected ${types.join('|')}, got ${t}`); return; }
    }
    if (typeof s.pattern === 'string' && typeof v === 'string' && !new RegExp(s.pattern).test(v)) errors.push(`${path}: '${v}' does not match ${s.pattern}`);
    if (typeOf(v) === 'object') {
      const o = v as Record<string, unknown>;
      const props = (s.properties ?? {}) as Record<string, Schema>;
      for (const r of (s.required ?? []) as string[]) if (!(r in o)) errors.push(`${path}: missing ${r}`);
      for (const [k, x] of Object.entries(o)) {
        if (props[k]) this.check(x, props[k], file, `${path}.${k}`, errors);
        else if (s.additionalProperties === false) errors.push(`${path}: unexpected field ${k}`);
        else if (typeof s.additionalProperties === 'object') this.check(x, s.additionalProperties as Schema, file, `${path}.${k}`, errors);
      }
    }
    if (Array.isArray(v) && s.items) v.forEach((x, i) => this.check(x, s.items as Schema, file, `${path}[${i}]`, errors));
  }

  /** Validates one JSON line of a tool's output, choosing the definition from its `type` (and `tool`). */
  validateLine(tool: string, line: Record<string, unknown>): string[] {
    const type = String(line.type);
    if (type === 'start' || type === 'counters') return this.validate(line, 'common.json', type);
    return this.validate(line, `${tool}.json`, type);
  }
}
