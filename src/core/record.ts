/** Helpers for decoding fixed-layout records from a ring buffer batch. */
import { AF_INET, formatAddress } from './address.js';
import { NETBPF_LIMITS } from './netbpf.gen.js';

/** A struct of bpf/<tool>.h as its BTF lays it out (generated into *.gen.ts files by scripts/gen-contract.mjs). */
export interface Layout {
  struct: string;
  size: number;
  /** Bytes from one CPU's copy to the next in a per-CPU map value: size rounded up to 8. */
  stride: number;
  fields: Record<string, readonly [offset: number, size: number]>;
  /** Array fields: element size and count. */
  arrays: Record<string, readonly [elementSize: number, count: number]>;
}

const { NETBPF_ADDR_LEN, NETBPF_COMM_LEN } = NETBPF_LIMITS;

const textDecoder = new TextDecoder('utf-8', { fatal: false });

/** A NUL-terminated C string field (task comm), decoded as UTF-8 with invalid bytes replaced. */
export function readCString(view: DataView, offset: number, max: number): string {
  // ASCII fast path (task names nearly always are): no typed array and no TextDecoder call per record.
  let text = '';
  for (let i = 0; i < max; i++) {
    const b = view.getUint8(offset + i);
    if (b === 0) return text;
    if (b >= 0x80) return decodeUtf8CString(new Uint8Array(view.buffer, view.byteOffset + offset, max), max);
    text += String.fromCharCode(b);
  }
  return text;
}

function decodeUtf8CString(bytes: Uint8Array, max: number): string {
  let end = bytes.indexOf(0);
  if (end < 0) end = max;
  return textDecoder.decode(bytes.subarray(0, end));
}

/** Task names cached by their 16 bytes (as four words, checked on every hit): a busy host has few process names,
 * and building a string per record costs more than the rest of a record's decoding. */
interface CommEntry { w0: number; w1: number; w2: number; w3: number; text: string }
const commCache = new Map<number, CommEntry>();
const COMM_CACHE_MAX = 4096;

/** A NUL-terminated task comm field (16 bytes, NETBPF_COMM_LEN), as readCString reads it, without a string
 * built per record. */
export function readComm(view: DataView, offset: number): string {
  const w0 = view.getInt32(offset, true), w1 = view.getInt32(offset + 4, true);
  const w2 = view.getInt32(offset + 8, true), w3 = view.getInt32(offset + 12, true);
  if ((w0 & 0xff) === 0) return '';
  const h = (Math.imul(w0 ^ Math.imul(w1, 0x9e3779b1) ^ Math.imul(w2, 0x85ebca6b) ^ Math.imul(w3, 0xc2b2ae35), 0x27d4eb2f)) | 0;
  const hit = commCache.get(h);
  if (hit !== undefined && hit.w0 === w0 && hit.w1 === w1 && hit.w2 === w2 && hit.w3 === w3) return hit.text;
  const text = readCString(view, offset, NETBPF_COMM_LEN);
  if (commCache.size >= COMM_CACHE_MAX) commCache.clear();
  commCache.set(h, { w0, w1, w2, w3, text });
  return text;
}

/** An unsigned 64-bit little-endian field as a number (exact below 2^53; no BigInt allocated per record). */
export function readU64(view: DataView, offset: number): number {
  return view.getUint32(offset, true) + view.getUint32(offset + 4, true) * 4294967296;
}

/** Formatted addresses are cached by their 16 bytes: a busy host talks to far fewer peers than it sends packets. */
const addressCache = new Map<string, string>();
const ADDRESS_CACHE_MAX = 65536;

/** IPv4-mapped addresses (most traffic) are cached by their 32-bit value: no key string built per record. */
const v4Cache = new Map<number, string>();

export function readAddress(view: DataView, offset: number, family: number): string {
  if (family === AF_INET) {
    const v4 = view.getUint32(offset + 12, false);
    let text = v4Cache.get(v4);
    if (text === undefined) {
      text = formatAddress(new Uint8Array(view.buffer, view.byteOffset + offset, NETBPF_ADDR_LEN), 0, family);
      if (v4Cache.size >= ADDRESS_CACHE_MAX) v4Cache.clear();
      v4Cache.set(v4, text);
    }
    return text;
  }
  const bytes = new Uint8Array(view.buffer, view.byteOffset + offset, NETBPF_ADDR_LEN);
  const key = String.fromCharCode.apply(null, bytes as unknown as number[]);
  let text = addressCache.get(key);
  if (text === undefined) {
    text = formatAddress(bytes, 0, family);
    if (addressCache.size >= ADDRESS_CACHE_MAX) addressCache.clear();
    addressCache.set(key, text);
  }
  return text;
}

/** FNV-1a style hash over `words` 32-bit little-endian words at `offset`: compact numeric keys, no allocation. */
export function hashWords(view: DataView, offset: number, words: number, seed = 0x811c9dc5): number {
  let h = seed >>> 0;
  for (let i = 0; i < words; i++) h = Math.imul(h ^ view.getUint32(offset + 4 * i, true), 0x01000193) >>> 0;
  return h;
}

/** The fields of a record that name its connection: saddr, daddr, netns adjoining, and sport, dport adjoining. */
type ConnectionFields = Layout['fields'] & Record<'saddr' | 'daddr' | 'netns' | 'sport' | 'dport', readonly [number, number]>;

/**
 * A decoder of one record layout's connection id: a hash of both addresses, the namespace and both ports, the
 * same for every record of a connection in every tool whose layout holds those fields in that order (retrans,
 * life and connect do: the contract test checks it), so views can join records of one connection by number.
 */
export function connectionIdReader(layout: { struct: string; fields: ConnectionFields }): (view: DataView, o: number) => number {
  const F = layout.fields;
  const adjoin = F.daddr[0] === F.saddr[0] + F.saddr[1] && F.netns[0] === F.daddr[0] + F.daddr[1] &&
    F.dport[0] === F.sport[0] + F.sport[1] && F.sport[1] + F.dport[1] === 4;
  if (!adjoin) throw new Error(`${layout.struct}: saddr, daddr, netns and sport, dport must adjoin to hash a connection id`);
  const words = (F.netns[0] + F.netns[1] - F.saddr[0]) / 4;
  return (view, o) => hashWords(view, o + F.sport[0], 1, hashWords(view, o + F.saddr[0], words));
}

/** Converts bpf_ktime_get_ns() (CLOCK_MONOTONIC) to wall-clock milliseconds since the epoch. */
export class ClockMapper {
  private readonly offsetMs: number;
  constructor() {
    const monoMs = Number(process.hrtime.bigint()) / 1e6;
    this.offsetMs = Date.now() - monoMs;
  }
  toEpochMs(ktimeNs: number): number {
    return this.offsetMs + ktimeNs / 1e6;
  }
}
