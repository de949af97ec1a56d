"""A tiny backend for the load balancer labs: answers with its own name and the client it saw.

    python -m packetlab.tools.lb.httpd --name b1 [--port 80] [--udp-port 5353]

HTTP (any path, keep-alive supported): ``b1 10.9.1.11:40312`` — which backend
served the request and which client address it saw (both LB modes keep the
client's address, unlike a proxy such as HAProxy). UDP: replies to every
datagram with the same text. Prints ``ready`` once listening.
"""

from __future__ import annotations

import argparse
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--udp-port", type=int)
    args = p.parse_args(argv)
    name = args.name

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            body = f"{name} {self.client_address[0]}:{self.client_address[1]}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a) -> None:
            pass

    ThreadingHTTPServer.allow_reuse_address = True
    ThreadingHTTPServer.daemon_threads = True
    httpd = ThreadingHTTPServer(("0.0.0.0", args.port), Handler)
    if args.udp_port:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.bind(("0.0.0.0", args.udp_port))

        def udp_loop() -> None:
            while True:
                data, addr = u.recvfrom(2048)
                u.sendto(f"{name} {addr[0]}:{addr[1]}\n".encode(), addr)

        threading.Thread(target=udp_loop, daemon=True).start()
    print("ready", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
