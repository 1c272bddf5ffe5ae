/** Typed access to the native addon (addon/*.cc): a generic libbpf bridge that knows nothing about TCP. */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetbpfError } from './errors.js';

export interface ProgramDesc { name: string; section: string; autoload: boolean }
export interface MapDesc { name: string; type: string; keySize: number; valueSize: number; maxEntries: number }
export interface ProgramInfo { id: number; runCount: number; runTimeNs: number; recursionMisses: number }
export interface MapDump { count: number; keys: Buffer; values: Buffer }

/** A netfilter hook: protocol family (NFPROTO_*), hook (NF_INET_*), priority; attachType is BPF_NETFILTER. */
export interface NetfilterAttachOptions { attachType: number; pf: number; hooknum: number; priority: number; flags?: number }

export interface NativeBpfObject {
  programs(): ProgramDesc[];
  maps(): MapDesc[];
  setAutoload(program: string, on: boolean): void;
  constants(): Record<string, { offset: number; size: number }>;
  setConst(name: string, value: Buffer): void;
  setMapMaxEntries(map: string, entries: number): void;
  load(): void;
  attach(program: string): number;
  /** Program type / expected attach type by number (from kernel BTF), for sections libbpf does not know. */
  setProgramType(program: string, progType: number, expectedAttachType?: number): void;
  /** Links a netfilter program to a hook in the caller's network namespace (kernel >= 6.4). */
  attachNetfilter(program: string, opts: NetfilterAttachOptions): number;
  detach(handle: number): void;
  /** Detaches every program; maps stay readable until close(). */
  detachAll(): void;
  programInfo(program: string): ProgramInfo;
  mapFd(map: string): number;
  mapLookup(map: string, key: Buffer): Buffer | null;
  mapUpdate(map: string, key: Buffer, value: Buffer, flags?: number): void;
  mapDelete(map: string, key: Buffer): boolean;
  mapDump(map: string, limit?: number): MapDump;
  close(): void;
}

export interface NativeRingBuffer {
  stop(): Promise<void>;
  stats(): { records: number; bytes: number; batches: number; finished: boolean };
}

export interface RingBufferOptions { pollMs?: number; batchBytes?: number; maxQueuedBatches?: number }

export interface Addon {
  libbpfVersion: string;
  libbpfLink: 'static' | 'shared';
  numPossibleCpus: number;
  BpfObject: new (path: string) => NativeBpfObject;
  RingBuffer: new (mapFd: number, onBatch: (batch: ArrayBuffer) => void, opts?: RingBufferOptions) => NativeRingBuffer;
  kernelBtfHas(kind: 'struct' | 'union' | 'enum' | 'typedef' | 'func', name: string): boolean;
  kernelBtfEnum(name: string): Array<[string, number]> | null;
}

/** Repository root (the folder holding package.json), from either src/core or dist/core. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: Addon | undefined;

export function addon(): Addon {
  if (cached) return cached;
  const path = join(packageRoot, 'build', 'Release', 'netbpf.node');
  if (!existsSync(path)) {
    throw new NetbpfError('runtime', `native addon not built (${path}); run: npm run build`);
  }
  cached = createRequire(import.meta.url)(path) as Addon;
  return cached;
}

/** Path of a tool's compiled BPF object. */
export function bpfObjectPath(tool: string): string {
  const path = join(packageRoot, 'build', 'bpf', `${tool}.bpf.o`);
  if (!existsSync(path)) throw new NetbpfError('runtime', `BPF object not built (${path}); run: npm run build`);
  return path;
}
