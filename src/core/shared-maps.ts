/**
 * Maps shared between the BPF objects of one session (e.g. `top`: retrans, drops, connect and life), so that what
 * one object learns another reads: one socket-owner map (bpf/owner.bpf.h) instead of one per tool. Each object
 * declares the map; the first object of the session to load creates it and lends it here, the others reuse its
 * fd before they load (libbpf bpf_map__reuse_fd checks that type, key, value and size agree). The session keeps a
 * duplicate of the fd, so the map lives as long as any object or the session holds it.
 */
import { closeSync } from 'node:fs';
import type { NativeBpfObject } from './addon.js';

export class SharedMaps {
  private readonly fds = new Map<string, number>();
  /** Objects of the session that have loaded (or are loading) with the shared maps: providers of what they fill. */
  private readonly provided = new Set<string>();

  /** Before load: points `obj`'s map `name` at the session's copy, if one exists. Returns whether it did. */
  reuse(obj: NativeBpfObject, name: string): boolean {
    const fd = this.fds.get(name);
    if (fd === undefined) return false;
    obj.reuseMapFd(name, fd);
    return true;
  }

  /** After load: the first object to create map `name` lends it to the session. */
  adopt(obj: NativeBpfObject, name: string): void {
    if (!this.fds.has(name)) this.fds.set(name, obj.mapFdDup(name));
  }

  /** Whether the session has map `name` already (another object created it). */
  has(name: string): boolean {
    return this.fds.has(name);
  }

  /** Declares that some object of the session keeps `what` up to date (e.g. "owners": captures and forgets them),
   * so others can leave their own programs for it out. */
  provide(what: string): void {
    this.provided.add(what);
  }

  /** Whether some object of the session keeps `what` up to date. */
  provides(what: string): boolean {
    return this.provided.has(what);
  }

  /** Closes the session's copies (objects still using a map keep it alive). */
  close(): void {
    for (const fd of this.fds.values()) closeSync(fd);
    this.fds.clear();
  }
}
