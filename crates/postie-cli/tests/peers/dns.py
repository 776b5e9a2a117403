"""A name server for the doctor's DNS checks, run inside a test's own network namespace (its
127.0.0.1:53, which the namespace's resolv.conf names): nothing it answers is seen outside.

  slow.postie.test     answered after SLOW seconds: 127.0.0.1
  silent.postie.test   never answered
  missing.postie.test  NXDOMAIN
  multi.postie.test    127.0.0.1 (nothing listens on PORT there) and 127.0.0.2

It also listens on 127.0.0.2:PORT (TCP) and closes what it accepts, so a connection to
multi.postie.test succeeds on its second address (the resolver puts 127.0.0.1 first: the
longest prefix shared with the source address, RFC 6724 rule 9). Prints "ready" once both sockets are bound.
Queries for other types than A get an empty answer (no IPv6 addresses).

  dns.py PORT [SLOW]
"""

import socket
import struct
import sys
import threading

PORT = int(sys.argv[1])
SLOW = float(sys.argv[2]) if len(sys.argv) > 2 else 2.5
ANSWERS = {
    "slow.postie.test": ["127.0.0.1"],
    "multi.postie.test": ["127.0.0.2", "127.0.0.1"],
}


def question(packet):
    """(name, qtype, end of the question) of a query."""
    labels, i = [], 12
    while packet[i]:
        n = packet[i]
        labels.append(packet[i + 1 : i + 1 + n].decode("ascii").lower())
        i += 1 + n
    qtype = struct.unpack("!H", packet[i + 1 : i + 3])[0]
    return ".".join(labels), qtype, i + 5


def reply(packet):
    name, qtype, end = question(packet)
    if name == "silent.postie.test":
        return None, 0
    rcode = 3 if name == "missing.postie.test" or name not in ANSWERS else 0
    addrs = ANSWERS.get(name, []) if qtype == 1 else []
    flags = 0x8180 | rcode  # a response, recursion desired and available
    out = packet[:2] + struct.pack("!HHHHH", flags, 1, len(addrs), 0, 0) + packet[12:end]
    for a in addrs:
        # the name by pointer to the question, type A, class IN, TTL 60
        out += struct.pack("!HHHIH", 0xC00C, 1, 1, 60, 4) + socket.inet_aton(a)
    return out, SLOW if name == "slow.postie.test" else 0


def serve_dns(sock):
    while True:
        packet, peer = sock.recvfrom(512)
        try:
            out, delay = reply(packet)
        except Exception:
            continue
        if out is None:
            continue
        if delay:
            threading.Timer(delay, sock.sendto, (out, peer)).start()
        else:
            sock.sendto(out, peer)


def serve_tcp(sock):
    while True:
        conn, _ = sock.accept()
        conn.close()


udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", 53))
tcp = socket.socket()
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("127.0.0.2", PORT))
tcp.listen(16)
threading.Thread(target=serve_tcp, args=(tcp,), daemon=True).start()
print("ready", flush=True)
serve_dns(udp)
