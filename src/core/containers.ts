/**
 * Container attribution: events carry the cgroup v2 id of the process (bpf_get_current_cgroup_id), which is
 * the inode number of its cgroup directory under /sys/fs/cgroup. Walking that tree maps ids to paths, and the
 * path names the container the way each runtime writes it (docker-<id>.scope, cri-containerd-<id>.scope,
 * crio-<id>.scope, libpod-<id>.scope, .../docker/<id>, kubepods pod UIDs).
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** Container (or pod) named by a cgroup path: { runtime, id }; null when the path is not a container's. */
export function containerFromPath(path: string): { runtime: string; id: string } | null {
  const parts = path.split('/').reverse();
  for (const p of parts) {
    let m = /^(docker|cri-containerd|crio|libpod)-([0-9a-f]{12,64})\.scope$/.exec(p);
    if (m) return { runtime: m[1] === 'cri-containerd' ? 'containerd' : m[1], id: m[2] };
    m = /^([0-9a-f]{64})$/.exec(p); // cgroupfs driver: /docker/<id>, /kubepods/burstable/pod<uid>/<id>
    if (m) return { runtime: path.includes('docker') ? 'docker' : 'container', id: m[1] };
  }
  for (const p of parts) {
    const pod = /^(?:kubepods-(?:besteffort-|burstable-)?)?pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?:\.slice)?$/.exec(p);
    if (pod) return { runtime: 'kubepods', id: `pod-${pod[1].replace(/_/g, '-')}` };
  }
  return null;
}

/** Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on unified hosts, /sys/fs/cgroup/unified on hybrid
 * ones; null when it is not mounted (cgroup v1 only: ids cannot be mapped to paths). */
export function cgroup2Mount(mounts?: string): string | null {
  let text = mounts;
  if (text === undefined) { try { text = readFileSync('/proc/self/mounts', 'utf8'); } catch { return null; } }
  for (const line of text.split('\n')) {
    const [, dir, type] = line.split(' ');
    if (type === 'cgroup2') return dir.replace(/\\040/g, ' ');
  }
  return null;
}

/** Whether a cgroup v2 mount shows the whole hierarchy: its root directory is the root cgroup (id and inode 1).
 * Mounted inside a cgroup namespace (a container's own /sys/fs/cgroup) it shows only that namespace's subtree,
 * from which other containers' cgroup ids cannot be named. */
export function isWholeCgroupTree(root: string): boolean {
  try { return statSync(root).ino === 1 && statSync(join(root, 'cgroup.controllers')).isFile(); } catch { return false; }
}

export interface ContainerResolverOptions {
  /** cgroup v2 mount. Default: found in /proc/self/mounts (cgroup2Mount()). */
  root?: string;
  /** Least time between two walks of the tree when an id is unknown, ms. Default 1000. */
  rescanMs?: number;
  /** Most directories visited per walk (bounded work on hosts with huge trees). Default 100,000. */
  maxDirs?: number;
}

/** Maps cgroup ids to cgroup paths and container ids, walking /sys/fs/cgroup lazily (cached, bounded). */
export class ContainerResolver {
  private readonly root: string | null;
  private readonly rescanMs: number;
  private readonly maxDirs: number;
  private paths = new Map<number, string>();
  private readonly cache = new Map<number, string | null>();
  private lastScan = 0;

  constructor(opts: ContainerResolverOptions = {}) {
    this.root = opts.root ?? cgroup2Mount();
    this.rescanMs = opts.rescanMs ?? 1000;
    this.maxDirs = opts.maxDirs ?? 100_000;
  }

  /** Re-reads the cgroup tree (inode -> path relative to the root). */
  scan(): void {
    const paths = new Map<number, string>();
    this.lastScan = Date.now();
    if (this.root === null) return;
    const stack = [''];
    let visited = 0;
    while (stack.length && visited < this.maxDirs) {
      const rel = stack.pop()!;
      visited++;
      const abs = join(this.root!, rel);
      try {
        paths.set(statSync(abs).ino, rel === '' ? '/' : `/${rel}`);
        for (const d of readdirSync(abs, { withFileTypes: true })) if (d.isDirectory()) stack.push(rel ? `${rel}/${d.name}` : d.name);
      } catch { /* removed while walking */ }
    }
    this.paths = paths;
    this.lastScan = Date.now();
    // Ids seen as unknown before may resolve now.
    for (const [id, v] of this.cache) if (v === null) this.cache.delete(id);
  }

  /** The cgroup path of an id ("/system.slice/docker-<id>.scope"), or null when unknown. */
  pathOf(cgroupId: number): string | null {
    if (!cgroupId) return null;
    let p = this.paths.get(cgroupId);
    if (p === undefined && Date.now() - this.lastScan >= this.rescanMs) {
      this.scan();
      p = this.paths.get(cgroupId);
    }
    return p ?? null;
  }

  /** The container id of a cgroup id (a 64-hex id, or pod-<uid>), or null when not in a container. */
  containerOf(cgroupId: number): string | null {
    const hit = this.cache.get(cgroupId);
    if (hit !== undefined) return hit;
    const path = this.pathOf(cgroupId);
    const c = path ? containerFromPath(path)?.id ?? null : null;
    // Only remember answers from a known path: an unknown id may be a cgroup created after the last walk.
    if (path !== null && this.cache.size < 65536) this.cache.set(cgroupId, c);
    return c;
  }
}
