/**
 * The diagnosis engine on the evidence each classic failure produces (counts as measured on Linux 6.18 in
 * test/scenarios; docs/diagnoses.md): the right diagnosis first, its evidence, and no wrong one beside it.
 */
import { describe, expect, it } from 'vitest';
import {
  DIAGNOSIS_CODES, HARMLESS_FREES, diagnose, diagnoseDestination, diagnoseHost, emptyDestination, freeKind, harmlessFree, hurts, noHostEvidence,
  type DestinationEvidence, type FreeCount, type HostEvidence,
} from '../../src/core/diagnosis/index.js';

const NS_A = 4026532001, NS_B = 4026532002;
const dest = (port: number, fill: (d: DestinationEvidence) => void = () => {}): DestinationEvidence => {
  const d = emptyDestination(`10.9.0.2:${port}`, '10.9.0.2', port);
  fill(d);
  return d;
};
const free = (reason: string, location: string, count: number, netns = NS_B, bytes = 60 * count): FreeCount => ({ reason, location, netns, count, bytes });
const codes = (d: DestinationEvidence, host: HostEvidence = noHostEvidence()) => diagnoseDestination(d, host).map((x) => x.code);

describe('harmless frees: one list, each with its reason', () => {
  it('every entry says why it is harmless', () => {
    for (const h of HARMLESS_FREES) expect(h.why.length, h.reason).toBeGreaterThan(20);
  });
  it('housekeeping and purges never hurt; firewall, conntrack, receiver and other drops do', () => {
    expect(freeKind('TCP_OLD_SEQUENCE', 'tcp_validate_incoming+0x1a')).toBe('housekeeping');
    expect(freeKind('TCP_OLD_DATA', 'tcp_rcv_established+0x2')).toBe('housekeeping');
    expect(freeKind('NOT_SPECIFIED', 'tcp_rcv_state_process+0x4c')).toBe('housekeeping');
    expect(freeKind('NOT_SPECIFIED', 'tcp_v4_rcv+0x99')).toBe('housekeeping');
    expect(freeKind('NOT_SPECIFIED', 'tcp_write_queue_purge')).toBe('purge');
    expect(freeKind('SOCKET_CLOSE', '')).toBe('purge');
    expect(freeKind('NOT_SPECIFIED', 'ip_rcv_core+0x10')).toBe('drop');
    expect(freeKind('NETFILTER_DROP', 'nft_do_chain+0x3b0')).toBe('firewall-rule');
    expect(freeKind('NETFILTER_DROP', 'nf_hook_slow+0x9c')).toBe('netfilter-hook');
    expect(freeKind('NO_SOCKET', 'tcp_v4_rcv')).toBe('no-socket');
    expect(freeKind('TCP_FLAGS', 'tcp_v4_do_rcv+0x1f0')).toBe('no-socket');
    expect(freeKind('NOT_SPECIFIED', 'tcp_v4_do_rcv+0x1f0')).toBe('no-socket'); // 6.1: the same, before reasons there
    expect(freeKind('NOT_SPECIFIED', 'tcp_v6_do_rcv+0x2a0')).toBe('no-socket');
    expect(freeKind('NOT_SPECIFIED', 'tcp_rcv_established+0x10')).toBe('drop');
    // 6.1: a zero-window probe (below the window) and a segment beyond it share TCP_INVALID_SEQUENCE; 6.3+ name the
    // first TCP_OLD_SEQUENCE, and TCP_INVALID_SEQUENCE is then only beyond the window.
    expect(freeKind('TCP_INVALID_SEQUENCE', 'tcp_validate_incoming+0x2c', false)).toBe('housekeeping');
    expect(freeKind('TCP_INVALID_SEQUENCE', 'tcp_validate_incoming+0x2c', true)).toBe('drop');
    expect(freeKind('NOT_SPECIFIED', 'tcp_disconnect+0x1a0')).toBe('purge'); // 6.1's queue purge at disconnect
    expect(freeKind('TCP_CLOSE', 'tcp_rcv_state_process+0x2b4')).toBe('no-socket'); // a late segment to a closed socket
    expect(freeKind('TCP_FLAGS', 'tcp_validate_incoming')).toBe('drop');
    expect(freeKind('SOCKET_RCVBUFF', 'tcp_data_queue')).toBe('receiver');
    expect(['housekeeping', 'purge'].map((k) => hurts(k as never))).toEqual([false, false]);
    expect(harmlessFree('TCP_OLD_SEQUENCE', 'x')?.why).toMatch(/zero-window probes/);
  });
});

describe('diagnoses of the classic failures', () => {
  it('healthy: short connections, clean closes and their housekeeping frees give no diagnosis', () => {
    const d = dest(6012, (x) => {
      x.connects.attempts = x.connects.successes = 20;
      x.retrans = { segs: 0, sent: 140 };
      x.frees = [free('NOT_SPECIFIED', 'tcp_rcv_state_process+0x4c', 20), free('NOT_SPECIFIED', 'tcp_v4_rcv+0x5', 3)];
      x.closes.closed = 40;
    });
    const r = diagnose({ destinations: [d], host: noHostEvidence() });
    expect(r.destinations.get(d.key)).toEqual([]);
    expect(r.host).toEqual([]);
  });

  it('the application gives up first (curl --connect-timeout 2, SYNs unanswered, nothing dropped here)', () => {
    const [x, ...rest] = diagnoseDestination(dest(6001, (d) => {
      Object.assign(d.connects, { attempts: 1, abandoned: 1, abandonedSynRetrans: 1, abandonedMaxMs: 2004 });
    }), noHostEvidence());
    expect(rest).toEqual([]);
    expect(x).toMatchObject({ code: 'app-connect-timeout', severity: 'critical', confidence: 'medium', explains: 1 });
    expect(x.text).toBe('timing out: the application gave up waiting for an answer to its SYNs (1 of 1 connects, after up to 2.0 s, 1 SYN retransmitted): filtered or host down');
  });

  it('the application gives up while a firewall rule on this host drops the SYNs: the firewall, not a remote mystery', () => {
    const d = dest(6001, (x) => {
      Object.assign(x.connects, { attempts: 1, abandoned: 1, abandonedSynRetrans: 1, abandonedMaxMs: 2004 });
      x.frees = [free('NETFILTER_DROP', 'nft_do_chain+0x3b0', 2)];
    });
    const r = diagnoseDestination(d, noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['local-firewall']);
    expect(r[0]).toMatchObject({ severity: 'critical', explains: 3 });
    expect(r[0].text).toBe('local firewall dropping packets (2 packets dropped by netfilter on this host, 1 connect unanswered)');
  });

  it('a healthy application cancelling a connect before any retransmit (Happy Eyeballs) is not trouble', () => {
    expect(codes(dest(443, (x) => { Object.assign(x.connects, { attempts: 2, successes: 1, cancelled: 1 }); }))).toEqual([]);
  });

  it('ephemeral ports exhausted: EADDRNOTAVAIL, with the range and the sockets holding ports', () => {
    const d = dest(6002, (x) => {
      Object.assign(x.connects, { attempts: 12, successes: 8, noLocalPort: 4 });
      x.portRange = { low: 41000, high: 41007 };
      x.portsHeld = 8;
      x.frees = [free('NOT_SPECIFIED', 'tcp_rcv_state_process+0x4c', 8)];
    });
    const r = diagnoseDestination(d, noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['port-exhaustion']);
    expect(r[0].text).toBe('no free local port: ephemeral ports exhausted (4 of 12 connects failed with EADDRNOTAVAIL; local ports 41000-41007 (8), 8 sockets to it holding one)');
    expect(r[0].action).toMatch(/ip_local_port_range/);
    expect(r[0].evidence.map((e) => e.count)).toEqual([4, 8, 8]);
  });

  it('nothing listening: RST from this host\'s kernel (NO_SOCKET), high confidence', () => {
    const r = diagnoseDestination(dest(6005, (x) => {
      Object.assign(x.connects, { attempts: 2, refusedRst: 2 });
      x.frees = [free('NO_SOCKET', 'tcp_v4_rcv+0x1', 2)];
    }), noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['refused']);
    expect(r[0]).toMatchObject({ confidence: 'high', explains: 4, text: 'refused: nothing listening (2 of 2 connects answered with RST)' });
  });

  it('a RST from a remote host: refused, medium confidence (a reject rule on the way looks the same)', () => {
    const r = diagnoseDestination(dest(80, (x) => { Object.assign(x.connects, { attempts: 3, successes: 1, refusedRst: 2 }); }), noHostEvidence());
    expect(r.map((x) => [x.code, x.confidence])).toEqual([['refused', 'medium']]);
  });

  it('a firewall reject with a TCP reset on this host is told apart from nothing listening', () => {
    const r = diagnoseDestination(dest(6003, (x) => {
      Object.assign(x.connects, { attempts: 2, refusedRst: 2 });
      x.frees = [free('NETFILTER_DROP', 'nft_do_chain+0x3b0', 2)];
    }), noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['firewall-reject']);
    expect(r[0].text).toMatch(/^rejected by a firewall rule on this host: TCP reset \(2 of 2 connects/);
  });

  it('a firewall reject with ICMP port unreachable: no RST, so not "nothing listening"', () => {
    const local = diagnoseDestination(dest(6004, (x) => {
      Object.assign(x.connects, { attempts: 2, refusedIcmp: 2 });
      x.frees = [free('NETFILTER_DROP', 'nft_do_chain+0x3b0', 2)];
    }), noHostEvidence());
    expect(local.map((x) => x.code)).toEqual(['firewall-reject']);
    expect(local[0].text).toMatch(/^rejected by a firewall rule on this host: ICMP port unreachable \(2 of 2 connects refused without a RST/);
    const remote = diagnoseDestination(dest(6004, (x) => { Object.assign(x.connects, { attempts: 2, refusedIcmp: 2 }); }), noHostEvidence());
    expect(remote.map((x) => x.code)).toEqual(['firewall-reject']);
    expect(remote[0].text).toMatch(/^rejected by a firewall: ICMP port unreachable/);
  });

  it('conntrack table full: its drops (NETFILTER_DROP in nf_hook_slow) are conntrack\'s, not the firewall\'s', () => {
    const host = { ...noHostEvidence(), conntrack: [{ netns: NS_A, count: 8, max: 8, drops: 6, earlyDrops: 0, insertFailed: 0 }] };
    const d = dest(6006, (x) => {
      Object.assign(x.connects, { attempts: 14, successes: 14 });
      x.frees = [free('NETFILTER_DROP', 'nf_hook_slow+0x9c', 6, NS_A)];
    });
    const r = diagnose({ destinations: [d], host });
    expect(r.destinations.get(d.key)!.map((x) => x.code)).toEqual(['conntrack-full']);
    expect(r.destinations.get(d.key)![0].text).toBe("conntrack table full: 6 packets to it dropped for want of an entry (conntrack's drop counter +6; 8 entries now, limit 8)");
    expect(r.host.map((x) => x.code)).toEqual(['conntrack-full']);
    expect(r.host[0].action).toMatch(/nf_conntrack_max/);
    // The same drops with no conntrack drops in that namespace: a netfilter hook's drop, reported as the firewall.
    expect(codes(d)).toEqual(['local-firewall']);
  });

  it('conntrack table full: a destination\'s diagnosis counts only the tables its packets were dropped in', () => {
    // The limit is global: another namespace at it drops its own packets meanwhile (seen on a shared machine).
    const host = { ...noHostEvidence(), conntrack: [
      { netns: NS_A, count: 70, max: 262144, drops: 12, earlyDrops: 0, insertFailed: 0 },
      { netns: NS_B, count: 1743, max: 64, drops: 32, earlyDrops: 0, insertFailed: 0 },
    ] };
    const d = dest(6006, (x) => {
      Object.assign(x.connects, { attempts: 70, successes: 70 });
      x.frees = [free('NETFILTER_DROP', 'nf_hook_slow+0x9c', 12, NS_A)];
    });
    const r = diagnose({ destinations: [d], host });
    expect(r.destinations.get(d.key)![0].text).toBe("conntrack table full: 12 packets to it dropped for want of an entry (conntrack's drop counter +12; 70 entries now, limit 262144)");
    expect(r.destinations.get(d.key)![0].evidence.map((e) => e.count)).toEqual([12, 12]);
    expect(r.host.map((x) => x.subject)).toEqual([`conntrack (netns ${NS_B})`, `conntrack (netns ${NS_A})`]);
  });

  it('conntrack table nearly full: a warning with the count, the limit and the sysctl before anything drops', () => {
    const near = (count: number) => diagnose({ destinations: [], host: { ...noHostEvidence(), conntrack: [{ netns: NS_A, count, max: 1000, drops: 0, earlyDrops: 0, insertFailed: 0 }] } }).host;
    expect(near(899)).toEqual([]);
    const [d] = near(950);
    expect(d).toMatchObject({ code: 'conntrack-near-full', severity: 'warning' });
    expect(d.text).toBe(`conntrack table nearly full in netns ${NS_A}: 950 entries of a limit of 1000 (95%); at the limit new connections' packets are dropped`);
    expect(d.action).toMatch(/net\.netfilter\.nf_conntrack_max/);
  });

  it('accept queue overflow: the listener, its queue and limit, its drops; not "filtered or host down"', () => {
    const host = { ...noHostEvidence(), listeners: [{ addr: '::', port: 6007, pid: 4242, comm: 'python3', netns: NS_B, queue: 2, limit: 1, drops: 18 }] };
    const d = dest(6007, (x) => {
      Object.assign(x.connects, { attempts: 8, successes: 2, abandoned: 6, abandonedSynRetrans: 12, abandonedMaxMs: 2500 });
      x.frees = [free('NOT_SPECIFIED', 'tcp_v4_rcv+0x5', 2)];
    });
    const r = diagnose({ destinations: [d], host });
    expect(r.destinations.get(d.key)!.map((x) => x.code)).toEqual(['listen-overflow']);
    expect(r.destinations.get(d.key)![0].text).toBe('accept queue full: listener [::]:6007 (python3, pid 4242) has 2 connections waiting for a limit of 1 and dropped 18 SYNs; 6 of 8 connects got no answer');
    expect(r.host.map((x) => [x.code, x.subject])).toEqual([['listen-overflow', 'listener [::]:6007 (python3, pid 4242)']]);
    // A listener on another port does not explain these timeouts.
    expect(codes(d, { ...host, listeners: [{ ...host.listeners[0], port: 6008 }] })).toEqual(['app-connect-timeout']);
  });

  it('a server closing with unread data resets its connections: the server, not the network', () => {
    const r = diagnoseDestination(dest(6008, (x) => {
      Object.assign(x.connects, { attempts: 2, successes: 2 });
      x.closes = { closed: 4, resetReceived: 2, resetUnread: 2, resetSentOther: 0 };
    }), noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['reset-unread']);
    expect(r[0].explains).toBe(4);
    // Seen only from the client side (the server elsewhere): reset by the peer.
    expect(codes(dest(6008, (x) => { x.closes = { closed: 2, resetReceived: 2, resetUnread: 0, resetSentOther: 0 }; }))).toEqual(['peer-reset']);
  });

  it('a receiver that stops reading: zero window, who is not reading; its window probes are housekeeping', () => {
    const host: HostEvidence = {
      ...noHostEvidence(),
      stalled: [
        { side: 'receiver', pid: 77, comm: 'python3', netns: NS_B, localAddr: '::ffff:10.9.0.2', localPort: 6009, remoteAddr: '::ffff:10.9.0.1', remotePort: 41192, queued: 127480, stalledMs: 2500 },
        { side: 'sender', pid: 78, comm: 'python3', netns: NS_A, localAddr: '10.9.0.1', localPort: 41192, remoteAddr: '10.9.0.2', remotePort: 6009, queued: 600000, stalledMs: 2400 },
      ],
    };
    const d = dest(6009, (x) => {
      Object.assign(x.connects, { attempts: 1, successes: 1 });
      x.retrans = { segs: 1, sent: 95 };
      x.frees = [free('TCP_OLD_SEQUENCE', 'tcp_validate_incoming+0x1', 3), free('TCP_OLD_DATA', 'tcp_rcv_established+0x1', 1)];
    });
    const r = diagnose({ destinations: [d], host });
    expect(r.destinations.get(d.key)!.map((x) => x.code)).toEqual(['zero-window']);
    expect(r.destinations.get(d.key)![0].text).toBe('receiver not reading: python3 (pid 77) on this host has not read for 2.5 s, 127480 bytes unread; 600000 bytes wait to be sent (zero window)');
    expect(r.host.map((x) => x.code)).toEqual(['zero-window']);
    // A window closed for less than the threshold is a slow reader, not a stalled one.
    expect(codes(d, { ...host, stalled: host.stalled.map((s) => ({ ...s, stalledMs: 300 })) })).toEqual([]);
  });

  it('loss outside this host: the loss verdict holds even with housekeeping frees beside it (the flaky case)', () => {
    const d = dest(6010, (x) => {
      Object.assign(x.connects, { attempts: 3, successes: 3 });
      x.retrans = { segs: 51, sent: 900 };
      // Housekeeping, and a late ACK to the listener after a close (answered with a RST): no drop that hurts.
      x.frees = [free('NOT_SPECIFIED', 'tcp_rcv_state_process+0x4c', 3), free('TCP_OLD_DATA', 'tcp_rcv_established', 1), free('TCP_OLD_SEQUENCE', 'tcp_validate_incoming', 1), free('NOT_SPECIFIED', 'tcp_v4_rcv+0x5', 1), free('TCP_FLAGS', 'tcp_v4_do_rcv+0x1f0', 1), free('TCP_OFOMERGE', 'tcp_data_queue+0x3e1', 1)];
    });
    const r = diagnoseDestination(d, noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['path-loss']);
    expect(r[0]).toMatchObject({ severity: 'critical', text: 'loss on the path (5.7% retransmitted, no drops on this host)' });
  });

  it('drops on a kernel without drop reasons (< 5.17) say so, and point at the freeing functions, not at a reason', () => {
    const r = diagnoseDestination(dest(5301, (x) => { x.frees = [free('UNAVAILABLE', 'ip_rcv_core+0x90', 4), free('UNAVAILABLE', 'udp_destruct_sock+0x7a', 9)]; }), noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['local-drops']);
    expect(r[0].text).toBe('packets dropped on this host (4 drops, this kernel gives no drop reasons)');
    expect(r[0].action).toMatch(/netbpf drops --stack/);
    expect(freeKind('UNAVAILABLE', 'udp_destruct_sock+0x7a')).toBe('purge');
    expect(freeKind('UNAVAILABLE', 'skb_queue_purge+0x1c')).toBe('purge');
    expect(freeKind('UNAVAILABLE', 'ip_rcv_core+0x90')).toBe('drop');
  });
  it('without drop reasons, a free in nf_hook_slow is a netfilter verdict (it frees only for NF_DROP): the firewall is named', () => {
    expect(freeKind('UNAVAILABLE', 'nf_hook_slow+0x90')).toBe('netfilter-hook');
    expect(freeKind('UNAVAILABLE', 'tcp_v4_rcv+0x8c1')).toBe('no-socket'); // no socket, or a TIME_WAIT one: no local drop
    expect(freeKind('UNAVAILABLE', 'tcp_v4_do_rcv+0x1f0')).toBe('no-socket'); // a stray segment, refused with a RST
    const r = diagnoseDestination(dest(5301, (x) => { x.frees = [free('UNAVAILABLE', 'nf_hook_slow+0x90', 4)]; }), noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['local-firewall']);
    expect(r[0].evidence.map((e) => e.source)).toEqual(['drops (skb:kfree_skb reason UNAVAILABLE in nf_hook_slow)']);
  });
  it('local drops claim the retransmits to their destination: no loss-on-the-path verdict beside them', () => {
    // One drop can cost many retransmitted segments (a timeout resends the window; a GRO packet carries several).
    const d = dest(5301, (x) => {
      x.retrans = { segs: 97, sent: 760 };
      x.frees = [free('NETFILTER_DROP', 'nft_do_chain+0x3b0', 10)];
    });
    const r = diagnoseDestination(d, noHostEvidence());
    expect(r.map((x) => x.code)).toEqual(['local-firewall']);
    expect(r[0].text).toBe('local firewall dropping packets (10 packets dropped by netfilter on this host, 97 segments retransmitted, 13% retransmitted)');
    expect(r[0].explains).toBe(107);
  });

  it('CLOSE_WAIT leak: the process, how many, how old; a brief CLOSE_WAIT is not a leak', () => {
    const leak = { pid: 900, comm: 'python3', netns: NS_B, count: 5, oldestIdleMs: 1500, local: ['[::]:6011'] };
    const [x] = diagnoseHost({ ...noHostEvidence(), closeWait: [leak] });
    expect(x).toMatchObject({ code: 'close-wait-leak', subject: 'python3 (pid 900)', severity: 'warning', explains: 5 });
    expect(x.text).toBe('connection leak: python3 (pid 900) holds 5 sockets in CLOSE_WAIT (the peer closed, it did not; oldest idle 1.5 s; [::]:6011)');
    expect(diagnoseHost({ ...noHostEvidence(), closeWait: [{ ...leak, oldestIdleMs: 200 }] })).toEqual([]);
    expect(diagnoseHost({ ...noHostEvidence(), closeWait: [{ ...leak, count: 1 }] })).toEqual([]);
    expect(diagnoseHost({ ...noHostEvidence(), closeWait: [{ ...leak, count: 500 }] })[0].severity).toBe('critical');
  });

  it('several causes at once are all reported, the one that explains most first', () => {
    const d = dest(7000, (x) => {
      Object.assign(x.connects, { attempts: 20, successes: 10, timedOut: 2, refusedRst: 5, unreachable: 1, noLocalPort: 2 });
      x.retrans = { segs: 40, sent: 400 };
    });
    const r = diagnoseDestination(d, noHostEvidence());
    expect(r.map((x) => [x.code, x.explains])).toEqual([['path-loss', 40], ['refused', 5], ['port-exhaustion', 2], ['timeout', 2], ['unreachable', 1]]);
  });

  it('every code is stable and listed', () => {
    expect(new Set(DIAGNOSIS_CODES).size).toBe(DIAGNOSIS_CODES.length);
    expect(DIAGNOSIS_CODES).toContain('close-wait-leak');
  });
});
