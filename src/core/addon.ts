/** Typed access to the native addon (addon/*.cc): a generic libbpf bridge that knows nothing about TCP, and native ctnetlink. */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetbpfError } from './errors.js';
import { currentTarget, describeTarget, locateAddon, locateBpfObject } from './native.js';

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
  /** Replaces a map's BPF_F_* flags before load. */
  setMapFlags(map: string, flags: number): void;
  load(): void;
  attach(program: string): number;
  /** Program type / expected attach type by number (from kernel BTF), for sections libbpf does not know. */
  setProgramType(program: string, progType: number, expectedAttachType?: number): void;
  /** Links a netfilter program to a hook in the caller's network namespace (kernel >= 6.4). */
  attachNetfilter(program: string, opts: NetfilterAttachOptions): number;
  detach(handle: number): void;
  /** Runs an attached BPF iterator (iter/...) once: the bytes its program wrote (up to maxBytes). */
  readIter(handle: number, maxBytes?: number): Buffer;
  /** Detaches every program; maps stay readable until close(). */
  detachAll(): void;
  programInfo(program: string): ProgramInfo;
  mapFd(map: string): number;
  /** A duplicate of a loaded map's fd, owned by the caller (close it with fs.closeSync): keeps the map alive. */
  mapFdDup(map: string): number;
  /** Before load: map `map` of this object is the existing map behind `fd` (shared between objects). */
  reuseMapFd(map: string, fd: number): void;
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

/** Options of the native ctnetlink reader (addon/ctnetlink.cc). */
export interface CtnetlinkOptions {
  /** Subscribe to NEW events (a socket per namespace that never asks for re-delivery: loss is counted). Default true. */
  newEvents?: boolean;
  /** Subscribe to DESTROY events. Default true. */
  destroyEvents?: boolean;
  /** DESTROY socket with NETLINK_BROADCAST_ERROR: the kernel re-delivers what it could not queue. Default true. */
  reliable?: boolean;
  /** Receive buffer requested per socket (SO_RCVBUFFORCE; the kernel doubles it). Default 16 MiB. */
  rcvbufBytes?: number;
  /** Longest wait before records already read reach JavaScript. Default 20 ms. */
  pollMs?: number;
  batchBytes?: number;
  maxQueuedBatches?: number;
  /** Test hook: the reader sleeps this long per message (a deliberately slow reader). */
  readDelayUs?: number;
  /** At stop, how long to wait for DESTROY events the kernel still owes (its dying list). Default 2000 ms. */
  stopTimeoutMs?: number;
}

/** One ctnetlink socket's counters; drops is the kernel's own count (SO_MEMINFO SK_MEMINFO_DROPS). */
export interface CtnetlinkSocketStats { portid: number; rcvbuf: number; reliable: boolean; received: number; drops: number }

export interface CtnetlinkNetnsStats {
  netns: number;
  /** Sockets closed (namespace released or reader stopped): the counters are final. */
  closed: boolean;
  new: CtnetlinkSocketStats | null;
  destroy: CtnetlinkSocketStats | null;
  /** Events received twice (same entry id and kind) and passed over. */
  duplicates: number;
  ignored: number;
  malformed: number;
  /** DESTROY events taken from the kernel's dying list at stop (still owed, would have gone to nobody). */
  recoveredAtStop: number;
  recvErrors: number;
  lastError: string | null;
}

export interface NativeCtnetlink {
  /** Opens the sockets in a namespace (a namespace file; null: this process's). */
  addNetns(path: string | null): { netns: number; newPortid: number; destroyPortid: number; rcvbuf: number };
  /** Drains and closes a namespace's sockets (releasing the namespace); its counters stay in stats(). */
  removeNetns(netns: number): void;
  stats(): CtnetlinkNetnsStats[];
  /** Drains every namespace, delivers the last batch, closes everything. */
  stop(): Promise<void>;
}

export interface Addon {
  libbpfVersion: string;
  libbpfLink: 'static' | 'shared';
  numPossibleCpus: number;
  BpfObject: new (path: string) => NativeBpfObject;
  RingBuffer: new (mapFd: number, onBatch: (batch: ArrayBuffer) => void, opts?: RingBufferOptions) => NativeRingBuffer;
  /** Functions: also in loaded modules' BTF unless `modules` is false. */
  kernelBtfHas(kind: 'struct' | 'union' | 'enum' | 'typedef' | 'func', name: string, modules?: boolean): boolean;
  /** Whether module BTF can be found by id here (fentry/fexit on a module's function needs it; 6.1 wants CAP_SYS_ADMIN). */
  moduleBtfIdsReadable(): boolean;
  kernelBtfEnum(name: string): Array<[string, number]> | null;
  Ctnetlink: new (onBatch: (batch: ArrayBuffer) => void, opts?: CtnetlinkOptions) => NativeCtnetlink;
  /** A namespace's conntrack table (or dying list) as struct ct_event records, [u32 length][record]... */
  ctnetlinkDump(netnsPath: string | null, dying?: boolean): Promise<ArrayBuffer>;
  /** Reads files as a thread inside that network namespace sees them; null for each unreadable one. */
  netnsReadFiles(netnsPath: string | null, paths: string[]): Array<string | null>;
  /** Writes a file as a thread inside that network namespace sees it (a per-namespace sysctl). */
  netnsWriteFile(netnsPath: string | null, path: string, text: string): void;
  /** TCP sockets (IPv4 and IPv6) per state number in a network namespace, from inet_diag dumps (addon/sock_diag.cc). */
  sockDiagTcpStates(netnsPath: string | null): Promise<{ netns: number; states: number[]; elapsedNs: number }>;
}

/** Repository root (the folder holding package.json), from either src/core or dist/core. */
export const packageRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

let cached: Addon | undefined;

/** The native addon: built here if it was, else the prebuilt binary that fits this platform (src/core/native.ts). */
export function addon(): Addon {
  if (cached) return cached;
  const target = currentTarget();
  const found = locateAddon(packageRoot, target);
  if (!found) {
    throw new NetbpfError('runtime', `no native addon for ${describeTarget(target)}: none prebuilt fits and none was built; build it with: npm rebuild netbpf (needs clang, cmake, g++, make, libelf-dev, zlib1g-dev, bpftool)`);
  }
  try {
    cached = createRequire(import.meta.url)(found.path) as Addon;
  } catch (err) {
    const msg = (err as Error).message.split('\n')[0];
    // The addon's only shared-library dependencies besides the C/C++ runtime are libelf and zlib.
    const hint = /lib(elf|z)\.so/.test(msg) ? '; install libelf1 and zlib1g (Debian/Ubuntu) or elfutils-libelf and zlib (RHEL)'
      : found.origin === 'prebuilt' ? '; build it for this machine with: NETBPF_BUILD_FROM_SOURCE=1 npm rebuild netbpf' : '; rebuild it with: npm run build';
    throw new NetbpfError('runtime', `cannot load the native addon ${found.path}: ${msg}${hint}`, { cause: err });
  }
  return cached;
}

/** Path of a tool's compiled CO-RE BPF object (built here, else prebuilt). */
export function bpfObjectPath(tool: string): string {
  const found = locateBpfObject(packageRoot, tool);
  if (!found) throw new NetbpfError('runtime', `BPF object ${tool}.bpf.o neither built (build/bpf) nor prebuilt for ${describeTarget(currentTarget())}; run: npm run build`);
  return found.path;
}
