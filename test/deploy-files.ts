/** The files in deploy/, read the way the tests need them: the manifest's documents, its container's command and
 * capabilities, the systemd unit's [Service] directives and the Containerfile's text. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export const deployDir = new URL('../deploy', import.meta.url).pathname;

/** Every YAML document of deploy/netbpf-daemonset.yaml as plain objects. */
export function manifestDocuments(): Array<Record<string, any>> {
  return parseAllDocuments(readFileSync(join(deployDir, 'netbpf-daemonset.yaml'), 'utf8')).map((d) => {
    if (d.errors.length) throw new Error(`netbpf-daemonset.yaml: ${d.errors[0].message}`);
    return d.toJS() as Record<string, any>;
  });
}

/** The DaemonSet's pod spec. */
export function daemonSetPodSpec(): Record<string, any> {
  const ds = manifestDocuments().find((d) => d.kind === 'DaemonSet');
  if (!ds) throw new Error('netbpf-daemonset.yaml has no DaemonSet');
  return ds.spec.template.spec as Record<string, any>;
}

/** The netbpf container's arguments (the image's entrypoint is `netbpf`). */
export function daemonSetCommand(): string[] {
  return daemonSetPodSpec().containers[0].args as string[];
}

/** The capabilities the netbpf container adds (after dropping ALL), sorted. */
export function daemonSetCapabilities(): string[] {
  const caps = daemonSetPodSpec().containers[0].securityContext.capabilities as { drop: string[]; add: string[] };
  if (caps.drop.join() !== 'ALL') throw new Error('the container must drop ALL capabilities first');
  return [...caps.add].sort();
}

/** deploy/netbpf.service's [Service] directives (last assignment wins, as in systemd for these). */
export function unitDirectives(): Record<string, string> {
  const out: Record<string, string> = {};
  let section = '';
  for (const raw of readFileSync(join(deployDir, 'netbpf.service'), 'utf8').split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const s = /^\[(\w+)\]$/.exec(line);
    if (s) { section = s[1]; continue; }
    const kv = /^(\w+)=(.*)$/.exec(line);
    if (kv && section === 'Service') out[kv[1]] = kv[2];
  }
  return out;
}

/** deploy/Containerfile's text. */
export function containerfile(): string {
  return readFileSync(join(deployDir, 'Containerfile'), 'utf8');
}
