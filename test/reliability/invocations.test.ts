/** Bad invocations: each wrong command line gives exactly one clear line on stderr (no stack) and the documented
 * exit code of its class (src/core/errors.ts: usage 2, privilege 77, kernel feature missing 69, runtime 1). Also
 * least privilege: CAP_BPF + CAP_PERFMON as a non-root uid serves every tracepoint feature (tp_btf / raw_tp need no
 * tracefs); the classic tracepoints, chosen only on request, need tracefs and, as non-root, CAP_DAC_READ_SEARCH
 * (tracefs event ids); ctnetlink needs CAP_NET_ADMIN. */
import { expect, it } from 'vitest';
import { describeBpf, tracefsMounted } from '../helpers.js';
import { runCli } from './lib.js';

const USAGE = 2, PRIVILEGE = 77, KERNEL = 69;
const NOBODY = ['setpriv', '--reuid', '65534', '--regid', '65534', '--clear-groups'];
const caps = (list: string) => [...NOBODY, `--inh-caps=-all,${list}`, `--ambient-caps=${list}`];

interface Case { args: string[]; code: number; message: RegExp; prefix?: string[]; env?: NodeJS.ProcessEnv }

const CASES: Case[] = [
  { args: ['frobnicate'], code: USAGE, message: /unknown command 'frobnicate'/ },
  { args: [], code: USAGE, message: /./ },
  { args: ['retrans', '--cidr', '10.0.0.0/33'], code: USAGE, message: /invalid CIDR '10\.0\.0\.0\/33'/ },
  { args: ['drops', '--cidr', 'not-a-cidr'], code: USAGE, message: /invalid CIDR 'not-a-cidr'/ },
  { args: ['connect', '--cidr', 'fd00::/129'], code: USAGE, message: /invalid CIDR 'fd00::\/129'/ },
  { args: ['retrans', '--cidr'], code: USAGE, message: /argument missing/ },
  { args: ['retrans', ...Array.from({ length: 9 }, (_, i) => ['-c', `10.${i}.0.0/16`]).flat()], code: USAGE, message: /at most 8 remote CIDRs/ },
  { args: ['retrans', '-L', '70000'], code: USAGE, message: /invalid local port '70000'/ },
  { args: ['life', '-D', '0'], code: USAGE, message: /invalid remote port '0'/ },
  { args: ['drops', '--lport', 'http'], code: USAGE, message: /invalid local port 'http'/ },
  { args: ['retrans', '--interval', '-5'], code: USAGE, message: /invalid interval '-5'/ },
  { args: ['conntrack', '--interval', '0'], code: USAGE, message: /invalid interval '0'/ },
  { args: ['life', '--duration', 'soon'], code: USAGE, message: /invalid duration 'soon'/ },
  { args: ['connect', '--top', '0'], code: USAGE, message: /invalid --top '0'/ },
  { args: ['drops', '--max-destinations', '-3'], code: USAGE, message: /invalid --max-destinations '-3'/ },
  { args: ['drops', '--ring-bytes', '1000'], code: USAGE, message: /ring buffer size 1000 must be a power of two/ },
  { args: ['retrans', '-4', '-6'], code: USAGE, message: /-4 and -6 exclude each other/ },
  { args: ['life', '--csv', '--json'], code: USAGE, message: /--csv and --json exclude each other/ },
  { args: ['retrans', '--hook', 'kprobe'], code: USAGE, message: /argument 'kprobe' is invalid/ },
  { args: ['conntrack', '--mechanism', 'magic'], code: USAGE, message: /argument 'magic' is invalid/ },
  { args: ['retrans', '--bogus-flag'], code: USAGE, message: /unknown option '--bogus-flag'/ },
  { args: ['retrans', 'extra-arg'], code: USAGE, message: /too many arguments/ },
  { args: ['drops', '--reason'], code: USAGE, message: /argument missing/ },
  { args: ['drops', '--reason', 'NO_SUCH_REASON'], code: USAGE, message: /unknown drop reason 'NO_SUCH_REASON'/ },
  { args: ['life', '--pid', 'abc'], code: USAGE, message: /invalid pid 'abc'/ },
  { args: ['connect', '--pid', '-7'], code: USAGE, message: /invalid pid '-7'/ },
  { args: ['connect', '--pid', '999999999'], code: USAGE, message: /no process with pid 999999999/ },
  { args: ['life', '--pid', '999999998'], code: USAGE, message: /no process with pid 999999998/ },
  // --netns alone is valid for serve (TCP connections by state per namespace); a namespace that is not there is not.
  { args: ['serve', '--netns', 'no-such-netns-name'], code: USAGE, message: /no network namespace at \/run\/netns\/no-such-netns-name/ },
  { args: ['serve', '--scrape-interval', '-1'], code: USAGE, message: /invalid --scrape-interval '-1'/ },
  { args: ['serve', '--evict-idle', 'never'], code: USAGE, message: /invalid --evict-idle 'never'/ },
  // A hook this kernel lacks (tcp_drop: fentry refused, no kprobes; it exists only before 5.19 anyway).
  { args: ['drops', '--hook', 'tcp_drop'], code: KERNEL, message: /no way to trace packet drops on this kernel/ },
  // No privilege at all, as root without capabilities and as nobody.
  { args: ['retrans'], prefix: [...NOBODY, '--inh-caps=-all'], code: PRIVILEGE, message: /permission denied .*CAP_BPF and CAP_PERFMON/ },
  { args: ['drops'], prefix: ['setpriv', '--inh-caps=-all', '--bounding-set=-all'], code: PRIVILEGE, message: /permission denied .*CAP_BPF and CAP_PERFMON/ },
  // CAP_BPF + CAP_PERFMON as nobody: classic tracepoints need tracefs (mounted) and access to it; ctnetlink needs CAP_NET_ADMIN.
  tracefsMounted()
    ? { args: ['drops', '--hook', 'tracepoint'], prefix: caps('+bpf,+perfmon'), code: PRIVILEGE, message: /permission denied .*CAP_DAC_READ_SEARCH/ }
    : { args: ['drops', '--hook', 'tracepoint'], prefix: caps('+bpf,+perfmon'), code: KERNEL, message: /cannot trace packet drops in this environment \(tracepoint\/skb\/kfree_skb: needs tracefs, which is not mounted \(mount -t tracefs nodev \/sys\/kernel\/tracing\)\)/ },
  { args: ['conntrack', '--mechanism', 'ctnetlink'], prefix: caps('+bpf,+perfmon'), code: PRIVILEGE, message: /ctnetlink .*not permitted.*CAP_NET_ADMIN/ },
  // Namespaces that do not exist or are not network namespaces.
  { args: ['conntrack', '--netns', '999999997'], code: USAGE, message: /--netns 999999997: no process with pid 999999997/ },
  { args: ['conntrack', '--netns', '/etc/hostname'], code: USAGE, message: /--netns \/etc\/hostname: .* is not a namespace file/ },
  { args: ['conntrack', '--netns', 'no-such-netns-name'], code: USAGE, message: /no network namespace at \/run\/netns\/no-such-netns-name/ },
];

describeBpf('bad invocations', () => {
  it(`${CASES.length} wrong command lines: one line on stderr, no stack, the exit code of their class`, async () => {
    const failures: string[] = [];
    // Two at a time: each is a short node start (~0.3 s); some load BPF before failing.
    for (let i = 0; i < CASES.length; i += 2) {
      const batch = CASES.slice(i, i + 2);
      const results = await Promise.all(batch.map((c) => runCli(c.args.length ? [c.args[0], '--duration', '2', ...c.args.slice(1)] : [], { prefix: c.prefix, env: c.env, timeoutMs: 15000 })));
      batch.forEach((c, k) => {
        const r = results[k];
        const lines = r.stderr.split('\n').filter(Boolean);
        const ok = r.code === c.code && lines.length === 1 && /^netbpf: /.test(lines[0]) && c.message.test(lines[0]) && !/\n\s+at /.test(r.stderr) && r.stdout === '';
        if (!ok) failures.push(`netbpf ${c.args.join(' ')} -> exit ${r.code}, stderr ${JSON.stringify(r.stderr)}, stdout ${JSON.stringify(r.stdout.slice(0, 200))}`);
      });
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it('least privilege: as nobody with CAP_BPF + CAP_PERFMON (+ CAP_NET_ADMIN for ctnetlink) each tool starts with every feature and exits 0', async () => {
    const runs: Array<[string[], string]> = [
      [['retrans', '--duration', '1'], '+bpf,+perfmon'],
      [['drops', '--duration', '1'], '+bpf,+perfmon'],
      [['drops', '--hook', 'raw_tp', '--duration', '1'], '+bpf,+perfmon'],
      [['life', '--duration', '1'], '+bpf,+perfmon'],
      [['connect', '--duration', '1'], '+bpf,+perfmon'],
      [['conntrack', '--duration', '1'], '+bpf,+perfmon,+net_admin'],
    ];
    const failures: string[] = [];
    for (const [args, capList] of runs) {
      const r = await runCli(args, { prefix: caps(capList), timeoutMs: 15000 });
      if (r.code !== 0 || !/attached in/.test(r.stderr) || /unavailable/.test(r.stderr)) failures.push(`${capList} netbpf ${args.join(' ')} -> ${r.code}: ${r.stderr}`);
    }
    expect(failures).toEqual([]);
    if (tracefsMounted()) {
      // The classic tracepoint, on request: nobody needs CAP_DAC_READ_SEARCH to read tracefs event ids; uid 0 does not.
      const nobody = await runCli(['drops', '--hook', 'tracepoint', '--duration', '1'], { prefix: caps('+bpf,+perfmon,+dac_read_search'), timeoutMs: 15000 });
      expect(nobody.code, nobody.stderr).toBe(0);
      const root0 = await runCli(['drops', '--hook', 'tracepoint', '--duration', '1'], { prefix: ['setpriv', '--bounding-set=-all,+bpf,+perfmon', '--inh-caps=-all,+bpf,+perfmon'], timeoutMs: 15000 });
      expect(root0.code, root0.stderr).toBe(0);
      expect(root0.stderr).toMatch(/packet drops via tracepoint\/skb\/kfree_skb/);
    }
  }, 120_000);
});
