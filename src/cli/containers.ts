/** `-w`/`--container` for top and serve: the cgroup tree that maps cgroup ids to container ids, and a warning
 * when that tree is only a container's own view (a pod's /sys/fs/cgroup under its own cgroup namespace). */
import type { Command } from 'commander';
import { existsSync } from 'node:fs';
import { cgroup2Mount, ContainerResolver, isWholeCgroupTree } from '../core/containers.js';
import { usageError } from '../core/errors.js';

export interface ContainerCliOptions { container?: boolean; cgroupRoot?: string }

/** Adds --cgroup-root next to -w. */
export function addCgroupRootOption(cmd: Command): Command {
  return cmd.option('--cgroup-root <dir>', "cgroup v2 hierarchy to name containers from (default: the cgroup2 mount; in a pod: the host's /sys/fs/cgroup, mounted in)");
}

/** The resolver for -w (null without it); says on stderr when container ids cannot all be named. */
export function containerResolver(tool: string, o: ContainerCliOptions): ContainerResolver | null {
  if (o.cgroupRoot !== undefined && !existsSync(o.cgroupRoot)) throw usageError(`--cgroup-root ${o.cgroupRoot}: no such directory`);
  if (!o.container) return null;
  const root = o.cgroupRoot ?? cgroup2Mount();
  if (root === null) {
    process.stderr.write(`netbpf ${tool}: no cgroup v2 hierarchy is mounted: container ids unavailable\n`);
  } else if (!isWholeCgroupTree(root)) {
    process.stderr.write(`netbpf ${tool}: ${root} is not the root of the cgroup v2 hierarchy (a cgroup namespace shows only its own cgroups): other containers unnamed; mount the host's /sys/fs/cgroup and pass --cgroup-root DIR\n`);
  }
  return new ContainerResolver(root === null ? {} : { root });
}
