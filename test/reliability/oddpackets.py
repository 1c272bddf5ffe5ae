#!/usr/bin/env python3
"""Odd packets for the drops parser, written by hand onto a link with AF_PACKET (no scapy): IPv4 with options,
IPv6 with extension headers, a truncated TCP header, a truncated IPv4 header, an IPv4 header whose IHL points
past the packet, and an IPv6 chain of more extension headers than the parser walks.
usage: oddpackets.py IFNAME DST_MAC SRC4 DST4 SRC6 DST6 (prints one JSON line per packet: what was sent)"""
import json, socket, struct, sys

ifname, dst_mac, src4, dst4, src6, dst6 = sys.argv[1:7]
src_mac = open(f'/sys/class/net/{ifname}/address').read().strip()
mac = lambda m: bytes(int(x, 16) for x in m.split(':'))

def csum(data):
    if len(data) % 2: data += b'\0'
    s = sum(struct.unpack(f'!{len(data) // 2}H', data))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff

def tcp_syn(sport, dport):
    return struct.pack('!HHIIBBHHH', sport, dport, 1000, 0, 5 << 4, 0x02, 65535, 0, 0)

def ipv4(payload, proto=6, options=b'', ihl=None, tot_len=None):
    hl = 20 + len(options)
    hdr = struct.pack('!BBHHHBBH4s4s', 0x40 | (ihl if ihl is not None else hl // 4), 0, tot_len if tot_len is not None else hl + len(payload),
                      0x1234, 0x4000, 64, proto, 0, socket.inet_aton(src4), socket.inet_aton(dst4)) + options
    hdr = hdr[:10] + struct.pack('!H', csum(hdr)) + hdr[12:]
    return hdr + payload

def tcp4(sport, dport):
    seg = tcp_syn(sport, dport)
    pseudo = socket.inet_aton(src4) + socket.inet_aton(dst4) + struct.pack('!BBH', 0, 6, len(seg))
    return seg[:16] + struct.pack('!H', csum(pseudo + seg)) + seg[18:]

def tcp6(sport, dport):
    seg = tcp_syn(sport, dport)
    pseudo = socket.inet_pton(socket.AF_INET6, src6) + socket.inet_pton(socket.AF_INET6, dst6) + struct.pack('!I3xB', len(seg), 6)
    return seg[:16] + struct.pack('!H', csum(pseudo + seg)) + seg[18:]

def ipv6(exts, l4_proto, payload):
    """exts: list of extension header types (0 hop-by-hop, 60 destination options), each 8 bytes with PadN."""
    chain = b''
    types = exts + [l4_proto]
    for i, t in enumerate(exts):
        chain += struct.pack('!BB', types[i + 1], 0) + b'\x01\x04\0\0\0\0'  # next header, length 0 (8 bytes), PadN(4)
    body = chain + payload
    return struct.pack('!IHBB16s16s', 6 << 28, len(body), exts[0] if exts else l4_proto, 64,
                       socket.inet_pton(socket.AF_INET6, src6), socket.inet_pton(socket.AF_INET6, dst6)) + body

s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
s.bind((ifname, 0))
def send(name, ethertype, packet, **expect):
    s.send(mac(dst_mac) + mac(src_mac) + struct.pack('!H', ethertype) + packet)
    print(json.dumps({'name': name, **expect}), flush=True)

send('ipv4-options', 0x0800, ipv4(tcp4(41001, 7001), options=b'\x01\x01\x01\x00'), sport=41001, dport=7001)
send('ipv6-ext-headers', 0x86DD, ipv6([0, 60], 6, tcp6(41002, 7002)), sport=41002, dport=7002)
send('tcp-truncated', 0x0800, ipv4(tcp4(41003, 7003)[:8]), sport=41003, dport=7003)
send('ipv4-header-truncated', 0x0800, ipv4(b'', proto=6)[:12])
send('ipv4-ihl-past-end', 0x0800, ipv4(tcp4(41005, 7005), ihl=15, tot_len=40), sport=41005, dport=7005)
send('ipv6-long-ext-chain', 0x86DD, ipv6([0, 60, 60, 60, 60, 60], 6, tcp6(41006, 7006)), sport=41006, dport=7006)
