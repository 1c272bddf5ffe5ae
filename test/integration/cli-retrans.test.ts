/** The `netbpf retrans` command end to end: JSON lines, summaries, signals, and one-line errors. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NetnsPair } from '../../src/testing/netns.js';
import { describeBpf, sleep } from '../helpers.js';

const BIN = fileURLToPath(new URL('../../bin/netbpf.js', import.meta.url));
const PORT = 5102;

interface Run { code: number | null; stdout: string; stderr: string }

/** Runs the CLI; `during` runs once it reports attached; ends by --duration or by `signal`. */
async function runCli(args: string[], during?: () => Promise<void>, signal?: NodeJS.Signals): Promise<Run> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '', stderr = '';
  child.stdout.on('data', (d) => { stdout += d; });
  child.stderr.on('data', (d) => { stderr += d; });
  // 'close', not 'exit': the last lines (the counters) may still be in the pipe when the process has exited.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
  try {
    for (let i = 0; i < 300 && !/attached in/.test(stderr) && child.exitCode === null; i++) await sleep(50);
    await during?.();
    if (signal) child.kill(signal);
    return { code: await exited, stdout, stderr };
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
}

describeBpf('netbpf retrans CLI (real kernel)', () => {
  let pair: NetnsPair;
  beforeAll(async () => {
    pair = await NetnsPair.create('cli');
    await pair.addLoss(5, PORT);
    await pair.startServer(PORT);
  });
  afterAll(async () => { await pair?.destroy(); });

  it('prints JSON lines: a start record naming the hooks, retransmit events with stable fields, final counters', async () => {
    const r = await runCli(['retrans', '--json', '-D', String(PORT), '--duration', '3'], async () => {
      await pair.client(pair.addrB, PORT, { bytes: 8_000_000 });
    });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines[0]).toMatchObject({ type: 'start', tool: 'retrans' });
    expect(lines[0].hooks[0]).toMatchObject({ feature: 'retransmits', hook: 'tp_btf/tcp_retransmit_skb' });
    const events = lines.filter((l) => l.type === 'retransmit');
    expect(events.length).toBeGreaterThan(0);
    for (const e of events) {
      expect(e).toMatchObject({ family: 4, saddr: pair.addrA, daddr: pair.addrB, dport: PORT });
      for (const k of ['time', 'sport', 'state', 'segs', 'kind', 'srttUs', 'netns', 'cgroupId']) expect(e).toHaveProperty(k);
    }
    expect(lines.at(-1)).toMatchObject({ type: 'counters', lost: 0, events: events.length });
    expect(r.stderr).toMatch(/^netbpf retrans: retransmits via tp_btf\/tcp_retransmit_skb.*attached in \d+ ms$/m);
  });

  it('prints the per-destination summary with histograms and lost counters on SIGINT, and exits 0', async () => {
    const r = await runCli(['retrans', '--summary', '-D', String(PORT)], async () => {
      await pair.client(pair.addr6B, PORT, { bytes: 8_000_000 });
      await sleep(100);
    }, 'SIGINT');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('retransmits, whole run');
    expect(r.stdout).toContain(`[${pair.addr6B}]:${PORT}`);
    expect(r.stdout).toContain('consecutive retransmits');
    // Counted in the kernel (the default for --summary): a loss there is a full summary map, not a full ring.
    expect(r.stdout).toMatch(/lost: 0 events \(summary map and its "other" fold both full\)/);
    expect(r.stderr).toMatch(/0 lost in the kernel \(summary map and its "other" fold both full\)/);
  });

  it("with --aggregate events, the summary's losses are the ring buffer's", async () => {
    const r = await runCli(['retrans', '--summary', '--aggregate', 'events', '-D', String(PORT)], async () => {
      await pair.client(pair.addrB, PORT, { bytes: 2_000_000 });
      await sleep(100);
    }, 'SIGINT');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/lost: 0 events \(ring buffer full\)/);
    expect(r.stderr).toMatch(/0 lost in the kernel \(ring buffer full\)/);
  });

  it('prints tcpretrans-style live lines by default', async () => {
    const r = await runCli(['retrans', '-D', String(PORT), '--duration', '3'], async () => {
      await pair.client(pair.addrB, PORT, { bytes: 8_000_000 });
    });
    expect(r.code).toBe(0);
    const [header, ...rows] = r.stdout.trim().split('\n');
    expect(header).toMatch(/^TIME\s+PID\s+IP\s+LADDR:LPORT\s+T> RADDR:RPORT\s+STATE/);
    expect(rows.length).toBeGreaterThan(0);
    expect(rows[0]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d \\d+\\s+4\\s+${pair.addrA.replace(/\./g, '\\.')}:\\d+\\s+[RL]> ${pair.addrB.replace(/\./g, '\\.')}:${PORT}`));
  });

  it('refuses an unprivileged user with one line and the privilege exit code', () => {
    const r = spawnSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', '--inh-caps=-all', process.execPath, BIN, 'retrans', '--duration', '1'], { encoding: 'utf8', timeout: 30000 });
    expect(r.status).toBe(77);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/^netbpf: .*permission denied.*CAP_BPF/);
  });
});

it.each([
  [['retrans', '--lport', '70000'], /invalid local port '70000'/],
  [['retrans', '--cidr', '10.0.0.0/33'], /invalid CIDR/],
  [['retrans', '-4', '-6'], /-4 and -6 exclude each other/],
  [['retrans', '--interval', '-1'], /invalid interval/],
  [['retrans', '--duration', 'soon'], /invalid duration/],
  [['retrans', '--bogus'], /unknown option '--bogus'/],
  [['retrans', '--rport'], /argument missing/],
  [['retrans', '--hook', 'kprobe'], /Allowed choices are/],
  [['nosuchtool'], /unknown command 'nosuchtool'/],
])('rejects %j with one line and exit code 2', (args, message) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 30000 });
  expect(r.status).toBe(2);
  expect(r.stderr.trim().split('\n')).toHaveLength(1);
  expect(r.stderr).toMatch(message);
  expect(r.stderr).not.toMatch(/\n\s+at /);
});
