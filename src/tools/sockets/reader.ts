/**
 * netbpf sockets: every TCP socket a process holds, read on demand (bpf/sockets.bpf.c, a BPF iterator over
 * every process's open files, all network namespaces in one pass): owner, state, queues, windows, a
 * listener's accept queue and drops, idle time. The host evidence diagnoses need that no event carries:
 * which listener overflows, which process leaves sockets in CLOSE_WAIT, which receiver stopped reading.
 *
 * Why an iterator and not netlink sock_diag (what `ss` uses), measured here with 7,501 sockets held by one
 * process in a namespace: the iterator read all of them, with owners, in 11-13 ms; `ss -tan` took 26-47 ms
 * for that one namespace without owners and `ss -tanp` (sock_diag plus a walk of /proc/<pid>/fd) 106-174 ms.
 * sock_diag and iter/tcp both see only the caller's namespace. The iterator cannot see sockets no process
 * holds (TIME_WAIT, orphans), which none of its uses needs.
 */
import { AF_INET, type Family } from '../../core/address.js';
import { addon, bpfObjectPath, type NativeBpfObject } from '../../core/addon.js';
import { NetbpfError } from '../../core/errors.js';
import { filterConstants, type FilterOptions } from '../../core/filters.js';
import { readAddress, readCString, readU64 } from '../../core/record.js';
import { tcpStateName, type TcpState } from '../../core/tcp.js';
import { SOCKET_RECORD_LAYOUT } from './bpf.gen.js';

/** struct socket_record (bpf/sockets.h): [offset, size] of each field. */
export { SOCKET_RECORD_LAYOUT as SOCKETS_LAYOUT };

/** One TCP socket held by a process, as the kernel has it now. */
export interface SocketInfo {
  /** Kernel address of the socket: the same socket in two reads has the same id. */
  id: string;
  family: Family;
  state: TcpState;
  saddr: string;
  sport: number;
  daddr: string;
  dport: number;
  /** A process holding it (one of them, when several share it) and its file descriptor. */
  pid: number;
  comm: string;
  fd: number;
  netns: number;
  cgroupId: number;
  /** Bytes received and not read yet (a listener: connections waiting in its accept queue). */
  rxQueue: number;
  /** Bytes written and not acknowledged yet (a listener: its accept queue limit, the backlog). */
  txQueue: number;
  /** Window this socket advertises now, and the window its peer advertises. */
  rcvWnd: number;
  sndWnd: number;
  /** Packets the kernel dropped for this socket (a listener: SYNs and handshake ACKs, ListenDrops). */
  drops: number;
  /** The application's read position (unchanged between reads: it is not reading). */
  copiedSeq: number;
  rcvbuf: number;
  /** Unanswered window or keepalive probes. */
  probesOut: number;
  /** Since the socket last sent or processed a segment, ms (0 for listeners). */
  idleMs: number;
}

const F = SOCKET_RECORD_LAYOUT.fields;

export function decodeSocket(view: DataView, o: number): SocketInfo {
  const family = view.getUint16(o + F.family[0], true);
  return {
    id: readU64(view, o + F.sk[0]).toString(16),
    family: family === AF_INET ? 4 : 6,
    state: tcpStateName(view.getUint8(o + F.state[0])),
    saddr: readAddress(view, o + F.saddr[0], family),
    sport: view.getUint16(o + F.sport[0], true),
    daddr: readAddress(view, o + F.daddr[0], family),
    dport: view.getUint16(o + F.dport[0], true),
    pid: view.getUint32(o + F.pid[0], true),
    comm: readCString(view, o + F.comm[0], F.comm[1]),
    fd: view.getUint32(o + F.fd[0], true),
    netns: view.getUint32(o + F.netns[0], true),
    cgroupId: readU64(view, o + F.cgroup_id[0]),
    rxQueue: view.getUint32(o + F.rx_queue[0], true),
    txQueue: view.getUint32(o + F.tx_queue[0], true),
    rcvWnd: view.getUint32(o + F.rcv_wnd[0], true),
    sndWnd: view.getUint32(o + F.snd_wnd[0], true),
    drops: view.getUint32(o + F.drops[0], true),
    copiedSeq: view.getUint32(o + F.copied_seq[0], true),
    rcvbuf: view.getUint32(o + F.rcvbuf[0], true),
    probesOut: view.getUint8(o + F.probes_out[0]),
    idleMs: readU64(view, o + F.idle_us[0]) / 1000,
  };
}

/** Decodes a read of the iterator; a socket held through several fds or processes is listed once. */
export function decodeSockets(buf: Buffer): SocketInfo[] {
  if (buf.length % SOCKET_RECORD_LAYOUT.size !== 0) throw new NetbpfError('runtime', `socket iterator returned ${buf.length} bytes, not a whole number of ${SOCKET_RECORD_LAYOUT.size}-byte records`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.length);
  const seen = new Set<string>();
  const out: SocketInfo[] = [];
  for (let o = 0; o < buf.length; o += SOCKET_RECORD_LAYOUT.size) {
    const s = decodeSocket(view, o);
    if (seen.has(s.id)) continue;
    seen.add(s.id);
    out.push(s);
  }
  return out;
}

/** Most bytes one read returns (8 MiB: 65,536 sockets); past it the read says it was cut short. */
const MAX_READ = SOCKET_RECORD_LAYOUT.size * 65536;

/** Reads every TCP socket processes hold: `const r = new SocketReader(); r.open(); r.read(); r.close()`. */
export class SocketReader {
  private obj: NativeBpfObject | null = null;
  private link = -1;
  /** Whether the last read stopped at the size bound (more sockets exist than were returned). */
  truncated = false;

  constructor(private readonly filters: FilterOptions = {}) {}

  /** Loads the iterator program (iter/task_file: Linux >= 5.8 with BTF). */
  open(): this {
    if (this.obj) return this;
    const obj = new (addon().BpfObject)(bpfObjectPath('sockets'));
    try {
      for (const [name, value] of Object.entries(filterConstants(this.filters))) obj.setConst(name, value);
      // The shared header's event ring buffer is not used by an iterator: the smallest size the kernel takes.
      obj.setMapMaxEntries('events', 4096);
      obj.load();
      this.link = obj.attach('dump_task_file');
    } catch (err) {
      obj.close();
      throw new NetbpfError('kernel', `socket iterator unavailable (iter/task_file): ${(err as Error).message}`);
    }
    this.obj = obj;
    return this;
  }

  /** Every TCP socket held by a process now. */
  read(): SocketInfo[] {
    if (!this.obj) this.open();
    const buf = this.obj!.readIter(this.link, MAX_READ);
    this.truncated = buf.length >= MAX_READ;
    return decodeSockets(buf.subarray(0, buf.length - (buf.length % SOCKET_RECORD_LAYOUT.size)));
  }

  close(): void {
    this.obj?.close();
    this.obj = null;
  }
}
