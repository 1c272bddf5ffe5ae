/** Encoders for read-only globals (`const volatile` in the BPF objects), set before load; sizes are checked
 * against the generated contract when a Trace is built. */
export const constU16 = (v: number): Buffer => { const b = Buffer.alloc(2); b.writeUInt16LE(v); return b; };
export const constU32 = (v: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
export const constU64 = (v: number | bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
