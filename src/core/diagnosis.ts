/**
 * Diagnosis: plain-words verdicts per destination from what the kernel saw (connect outcomes, retransmits,
 * drops on this host). Pure rules over counts, so they are unit-tested and shared by `netbpf top`, its JSON,
 * the Prometheus exporter and library users.
 */

/** What a diagnosis rule reads: counts for one destination over the period looked at. */
export interface HealthInput {
  connects: { attempts: number; failures: number; refused: number; timeout: number; unreachable: number };
  /** Segments retransmitted, and retransmitted / sent over the connections seen (0 when unknown). */
  retrans: { segs: number; ratio: number };
  /** Packets dropped on this host (socket-teardown purges excluded), by kernel drop reason name. */
  drops: Record<string, number>;
}

export type DiagnosisCode = 'timeout' | 'refused' | 'unreachable' | 'local-firewall' | 'local-drops' | 'path-loss';
export type Severity = 'critical' | 'warning';

export interface Diagnosis {
  code: DiagnosisCode;
  severity: Severity;
  /** One line in plain words, with the numbers that support it. */
  text: string;
}

export interface DiagnosisThresholds {
  /** Retransmitted / sent at or above which a destination is reported as losing packets. Default 0.01 (1%). */
  lossRatio?: number;
  /** Fewest retransmitted segments worth a verdict (a single retransmit is noise). Default 3. */
  minRetransSegs?: number;
}

/** Drop reasons that mean a firewall rule on this host (nftables/iptables) threw the packet away. */
export const FIREWALL_REASONS: ReadonlySet<string> = new Set(['NETFILTER_DROP', 'IPTABLES_DROP', 'NFT_DROP', 'BPF_CGROUP_EGRESS', 'TC_DROP', 'TC_INGRESS', 'TC_EGRESS']);

const pct = (r: number) => `${(r * 100).toFixed(r >= 0.1 ? 0 : 1)}%`;
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** Verdicts for one destination, most severe first; [] when healthy. */
export function diagnose(h: HealthInput, t: DiagnosisThresholds = {}): Diagnosis[] {
  const lossRatio = t.lossRatio ?? 0.01;
  const minSegs = t.minRetransSegs ?? 3;
  const out: Diagnosis[] = [];
  const c = h.connects;
  const of = `${c.attempts > 0 ? ` of ${c.attempts}` : ''}`;
  if (c.timeout > 0) out.push({ code: 'timeout', severity: 'critical', text: `timing out: filtered or host down (${c.timeout}${of} connects got no answer to their SYNs)` });
  if (c.refused > 0) out.push({ code: 'refused', severity: 'critical', text: `refused: nothing listening (${c.refused}${of} connects answered with RST)` });
  if (c.unreachable > 0) out.push({ code: 'unreachable', severity: 'critical', text: `unreachable: no route / ICMP unreachable (${c.unreachable}${of} connects)` });

  let firewall = 0, other = 0, topOther = '', topOtherCount = 0;
  for (const [reason, n] of Object.entries(h.drops)) {
    // A SYN to a port nobody listens on is freed as NO_SOCKET: the refusal itself, already reported above.
    if (reason === 'NO_SOCKET' && c.refused > 0) continue;
    if (FIREWALL_REASONS.has(reason)) firewall += n;
    else {
      other += n;
      if (n > topOtherCount) { topOther = reason; topOtherCount = n; }
    }
  }
  const retransmitting = h.retrans.segs >= minSegs;
  const lossy = retransmitting && h.retrans.ratio >= lossRatio;
  const ratioText = h.retrans.ratio > 0 ? `, ${pct(h.retrans.ratio)} retransmitted` : '';
  if (firewall > 0) {
    out.push({ code: 'local-firewall', severity: retransmitting || c.failures > 0 ? 'critical' : 'warning', text: `local firewall dropping packets (${plural(firewall, 'packet')} dropped by netfilter on this host${retransmitting ? `, ${h.retrans.segs} segments retransmitted${ratioText}` : ''})` });
  }
  if (other > 0) {
    out.push({ code: 'local-drops', severity: 'warning', text: `packets dropped on this host (${plural(other, 'drop')}, mostly ${topOther})` });
  }
  if (lossy && firewall === 0 && other === 0) {
    out.push({ code: 'path-loss', severity: h.retrans.ratio >= 0.05 ? 'critical' : 'warning', text: `loss on the path (${pct(h.retrans.ratio)} retransmitted, no drops on this host)` });
  }
  return out;
}
