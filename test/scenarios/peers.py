#!/usr/bin/env python3
"""Misbehaving TCP peers and a lossy relay for the failure scenarios (test/scenarios/failures.ts); stdlib only,
each bounded by --seconds. Run inside a namespace (`ip netns exec NS python3 peers.py MODE ...`).

  noaccept   --port P --backlog B          listen, never accept (the accept queue overflows)
  noclose    --port P                      accept, read to EOF, never close (sockets pile up in CLOSE_WAIT)
  noread     --port P                      accept, never read (the receive window closes)
  closeunread --port P --delay-ms D        accept, wait D ms for data, close without reading it (RST)
  sendwait   --host H --port P --conns C --bytes N --wait-ms W
             client: connect, send N bytes without a FIN, wait W ms for an answer (a reset, a reply or nothing)
  flood      --host H --port P --seconds S
             client: one connection, write as fast as the peer takes it for S seconds, then close
  relay      --ns-a A --tun-a T --ns-b B --tun-b U --loss PCT --seed S [--drop-syn-port P]
             copy IP packets between two TUN devices in two namespaces, discarding PCT% of the A->B packets
             that carry TCP payload (and every SYN to port P): loss outside this host's kernel (it sees every
             packet consumed)

Servers print one line "ready" once listening. On SIGTERM, or after --seconds, every mode prints one JSON line
of what it did (accepted, discarded, ...) and exits 0."""
import ctypes, fcntl, json, os, random, select, signal, socket, struct, sys, time

args = sys.argv[2:]
opt = {args[i].lstrip('-'): args[i + 1] for i in range(0, len(args) - 1, 2)}
mode = sys.argv[1] if len(sys.argv) > 1 else ''
deadline = time.monotonic() + float(opt.get('seconds', '30'))
stats = {'mode': mode}
stopping = False


def stop(*_):
    global stopping
    stopping = True


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)


def running():
    return not stopping and time.monotonic() < deadline


def listener(backlog=128):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(('::', int(opt['port'])))
    s.listen(backlog)
    print('ready', flush=True)
    return s


def serve(on_accept, on_readable=None):
    """Accepts until the deadline; on_accept(conn) keeps the connection (True) or not; on_readable(conn) is
    called for kept connections with data and returns False once it wants no more calls for them."""
    srv = listener()
    srv.setblocking(False)
    kept, watched = [], []
    stats['accepted'] = 0
    while running():
        r, _, _ = select.select([srv] + watched, [], [], 0.05)
        for s in r:
            if s is srv:
                try:
                    conn, _ = srv.accept()
                except BlockingIOError:
                    continue
                stats['accepted'] += 1
                if on_accept(conn):
                    kept.append(conn)
                    if on_readable:
                        watched.append(conn)
            elif not on_readable(s):
                watched.remove(s)
    return kept


def errno_name(n):
    import errno
    return errno.errorcode.get(n, str(n))


def done():
    print(json.dumps(stats), flush=True)
    sys.exit(0)


if mode == 'noaccept':
    srv = listener(int(opt.get('backlog', '1')))
    while running():
        time.sleep(0.05)
    done()

elif mode == 'noclose':
    # Reads everything up to the peer's FIN (so no data is left unread), then holds the socket open.
    stats['eof'] = 0

    def readable(c):
        try:
            if c.recv(65536):
                return True
        except OSError:
            pass
        stats['eof'] += 1
        return False
    kept = serve(lambda c: True, readable)
    stats['held'] = len(kept)
    done()

elif mode == 'noread':
    kept = serve(lambda c: True)
    stats['held'] = len(kept)
    # Before leaving, read what was left (bounded), so the exit does not reset the connections: that would be
    # another failure (a close with unread data) than the one this peer plays.
    stats['drained'] = 0
    until = time.monotonic() + 3
    for c in kept:
        c.settimeout(0.2)
        while time.monotonic() < until:
            try:
                d = c.recv(1 << 20)
            except (socket.timeout, OSError):
                break
            if not d:
                break
            stats['drained'] += len(d)
        c.close()
    done()

elif mode == 'closeunread':
    delay = float(opt.get('delay-ms', '200')) / 1000
    stats['closed_unread'] = 0

    def close_later(c):
        # Wait (bounded) until the client's data is queued, then close with it unread: the kernel sends a RST.
        select.select([c], [], [], delay)
        queued = len(c.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT)) if select.select([c], [], [], 0)[0] else 0
        c.close()
        if queued:
            stats['closed_unread'] += 1
        return False
    serve(close_later)
    done()

elif mode == 'sendwait':
    stats.update({'connected': 0, 'errors': {}, 'received': 0})
    for _ in range(int(opt.get('conns', '1'))):
        c = socket.socket(socket.AF_INET6 if ':' in opt['host'] else socket.AF_INET, socket.SOCK_STREAM)
        c.settimeout(float(opt.get('wait-ms', '1000')) / 1000)
        try:
            c.connect((opt['host'], int(opt['port'])))
            stats['connected'] += 1
            c.sendall(b'q' * int(opt.get('bytes', '1000')))
            while True:
                d = c.recv(65536)
                if not d:
                    break
                stats['received'] += len(d)
        except socket.timeout:
            stats['errors']['timeout'] = stats['errors'].get('timeout', 0) + 1
        except OSError as e:
            name = errno_name(e.errno)
            stats['errors'][name] = stats['errors'].get(name, 0) + 1
        finally:
            c.close()
    done()

elif mode == 'flood':
    c = socket.create_connection((opt['host'], int(opt['port'])), timeout=5)
    c.setblocking(False)
    chunk, sent = b'z' * 65536, 0
    while running():
        try:
            sent += c.send(chunk)
        except BlockingIOError:
            select.select([], [c], [], 0.05)
    stats['sent'] = sent
    c.close()
    done()

elif mode == 'relay':
    libc = ctypes.CDLL(None, use_errno=True)
    CLONE_NEWNET, TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x40000000, 0x400454ca, 0x0001, 0x1000

    def tun_in(ns, name):
        fd = os.open(f'/run/netns/{ns}', os.O_RDONLY)
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f'setns {ns}')
        os.close(fd)
        t = os.open('/dev/net/tun', os.O_RDWR)
        fcntl.ioctl(t, TUNSETIFF, struct.pack('16sH', name.encode(), IFF_TUN | IFF_NO_PI))
        os.set_blocking(t, False)
        return t
    a = tun_in(opt['ns-a'], opt['tun-a'])
    b = tun_in(opt['ns-b'], opt['tun-b'])
    loss = float(opt.get('loss', '5')) / 100
    rng = random.Random(int(opt.get('seed', '1')))
    syn_port = int(opt.get('drop-syn-port', '0'))
    stats.update({'a_to_b': 0, 'b_to_a': 0, 'discarded': 0, 'payload_a_to_b': 0, 'syn_discarded': 0})
    print('ready', flush=True)

    def syn_to(p, port):
        if len(p) < 40 or p[0] >> 4 != 4 or p[9] != 6:
            return False
        ihl = (p[0] & 15) * 4
        return struct.unpack('!H', p[ihl + 2:ihl + 4])[0] == port and p[ihl + 13] & 0x12 == 0x02

    def carries_tcp_payload(p):
        if len(p) < 20 or p[0] >> 4 != 4 or p[9] != 6:
            return False
        ihl = (p[0] & 15) * 4
        total = struct.unpack('!H', p[2:4])[0]
        doff = (p[ihl + 12] >> 4) * 4 if len(p) > ihl + 12 else 0
        return total - ihl - doff > 0

    while running():
        r, _, _ = select.select([a, b], [], [], 0.05)
        for fd in r:
            for _ in range(64):
                try:
                    p = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if fd == a:
                    if syn_port and syn_to(p, syn_port):
                        stats['syn_discarded'] += 1
                        continue
                    if carries_tcp_payload(p):
                        stats['payload_a_to_b'] += 1
                        if rng.random() < loss:
                            stats['discarded'] += 1
                            continue
                    stats['a_to_b'] += 1
                    os.write(b, p)
                else:
                    stats['b_to_a'] += 1
                    os.write(a, p)
    done()

else:
    sys.stderr.write(__doc__)
    sys.exit(2)
