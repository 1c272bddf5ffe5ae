/** -w's cgroup tree: a partial view (a pod's own /sys/fs/cgroup under a cgroup namespace) is said, never silent. */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { containerResolver } from '../../src/cli/containers.js';
import { isWholeCgroupTree } from '../../src/core/containers.js';

describe('containerResolver for -w', () => {
  afterEach(() => { vi.restoreAllMocks(); });

  it('is null without -w, and refuses a --cgroup-root that does not exist', () => {
    expect(containerResolver('top', {})).toBeNull();
    expect(() => containerResolver('top', { container: true, cgroupRoot: '/nonexistent/cgroup' })).toThrow(/--cgroup-root \/nonexistent\/cgroup: no such directory/);
  });

  it('says when the tree is not the whole cgroup v2 hierarchy', () => {
    const dir = mkdtempSync(join(tmpdir(), 'netbpf-cg-'));
    const write = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(isWholeCgroupTree(dir)).toBe(false);
      expect(containerResolver('serve', { container: true, cgroupRoot: dir })).not.toBeNull();
      expect(write).toHaveBeenCalledWith(`netbpf serve: ${dir} is not the root of the cgroup v2 hierarchy (a cgroup namespace shows only its own cgroups): other containers unnamed; mount the host's /sys/fs/cgroup and pass --cgroup-root DIR\n`);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});
