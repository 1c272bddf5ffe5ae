/**
 * Hosts as they come: a fresh machine, a container or `ip netns exec` (which remounts /sys) has no tracefs.
 * Every tool must attach the same hooks and offer the same features with or without it. Each tool is started
 * in two private mount namespaces of this machine, one with tracefs mounted and one with tracefs and debugfs
 * unmounted (never touching the host's own mounts), and their JSON start records are compared.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf } from '../helpers.js';

const run = promisify(execFile);
const bin = join(import.meta.dirname, '..', '..', 'bin', 'netbpf.js');

/** Shell prologues that set up each world inside the private mount namespace, then check it really is so. */
const WORLDS = {
  tracefs: 'mountpoint -q /sys/kernel/tracing || mount -t tracefs nodev /sys/kernel/tracing; test -d /sys/kernel/tracing/events',
  'no tracefs': 'for m in /sys/kernel/debug/tracing /sys/kernel/tracing /sys/kernel/debug; do umount -l $m 2>/dev/null; done; ' +
    'test ! -e /sys/kernel/tracing/events && test ! -e /sys/kernel/debug/tracing/events',
} as const;
type World = keyof typeof WORLDS;

interface StartHook { tool: string; feature: string; hook: string | null; unavailable?: string }

async function startRecord(world: World, args: string[], prefix: string[] = []): Promise<{ hooks: StartHook[]; stderr: string }> {
  const cmd = `${WORLDS[world]} || { echo "could not set up the ${world} world" >&2; exit 99; }; exec "$0" "$@"`;
  // Only the start record matters here: a filter that matches no traffic keeps the events of a busy host out.
  const argv = ['-m', '--propagation', 'private', 'sh', '-c', cmd, ...prefix, process.execPath, bin, ...args, '--json', '--duration', '0.5', '-c', '127.255.255.254/32'];
  const { stdout, stderr } = await run('unshare', argv, { timeout: 30_000, maxBuffer: 64 << 20 });
  const starts = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as { type: string; tool: string; hooks?: StartHook[] }).filter((r) => r.type === 'start');
  expect(starts.length, stderr).toBeGreaterThan(0);
  return { hooks: starts.flatMap((s) => (s.hooks ?? []).map((h) => ({ ...h, tool: s.tool }))), stderr };
}

const hookMap = (hooks: StartHook[]) => Object.fromEntries(hooks.map((h) => [`${h.tool}: ${h.feature}`, h.hook]));

describeBpf('tracefs or not: the same hooks and features', () => {
  for (const tool of ['retrans', 'drops', 'life', 'connect', 'conntrack']) {
    it(`${tool}: the same hooks with and without tracefs, nothing unavailable for lack of it`, async () => {
      const withIt = await startRecord('tracefs', [tool]);
      const without = await startRecord('no tracefs', [tool]);
      expect(hookMap(without.hooks)).toEqual(hookMap(withIt.hooks));
      // Only what this kernel cannot provide may be missing (e.g. fexit here), never for want of tracefs.
      for (const h of without.hooks) if (h.hook === null) expect(h.unavailable, h.feature).toBe('kernel');
      expect(without.stderr).not.toMatch(/tracefs|in this environment/);
    });
  }

  let pair: NetnsPair;
  beforeAll(async () => { pair = await NetnsPair.create('tw'); });
  afterAll(async () => { await pair?.destroy(); });

  it('top --conntrack under `ip netns exec` (which remounts /sys without tracefs) loses no hook', async () => {
    const host = await startRecord('tracefs', ['top', '--conntrack', '--once']);
    const inNetns = await startRecord('tracefs', ['top', '--conntrack', '--once'], ['ip', 'netns', 'exec', pair.a]);
    expect(hookMap(inNetns.hooks)).toEqual(hookMap(host.hooks));
    expect(inNetns.stderr).not.toMatch(/tracefs|in this environment/);
  });
});
