#!/usr/bin/python3
"""UDP echo server that says who it is: every datagram is answered with
"<id> <payload>" back to its source address and port.

Ferry's UDP tests send datagrams from many source ports to a VIP and check,
from the id in each reply, that every flow stays on one backend. SIGTERM and
SIGINT stop it with exit status 0. Standard library only.
"""

import argparse
import select
import signal
import socket
import sys


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=5353)
    p.add_argument("--id", default="udp-echo", help="identity put in replies")
    return p.parse_args(argv)


def serve(sock, ident, stopping):
    """Echo until `stopping()` is true; select() with a timeout so a signal
    is noticed within 0.2 s even when no traffic arrives."""
    prefix = ident.encode() + b" "
    while not stopping():
        ready, _, _ = select.select([sock], [], [], 0.2)
        if not ready:
            continue
        try:
            payload, peer = sock.recvfrom(65535)
            sock.sendto(prefix + payload, peer)
        except OSError:
            continue  # e.g. ICMP-induced ECONNREFUSED: keep serving


def main(argv=None):
    args = parse_args(argv)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.host, args.port))
    print(f"udp_echo ready id={args.id} listen={args.host}:{args.port}", flush=True)
    try:
        serve(sock, args.id, lambda: bool(stop))
    finally:
        sock.close()
    print(f"udp_echo {args.id} stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
